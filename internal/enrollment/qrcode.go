package enrollment

import (
	"bytes"
	"fmt"
	"image"
	"image/draw"
	"image/png"

	"github.com/boombuler/barcode"
	"github.com/boombuler/barcode/qr"
)

// qrModulePixels is the size of one QR module in the PNG; phone cameras read
// codes of this density from a screen or a print without trouble.
const qrModulePixels = 8

// QRCodePNG encodes payload as a QR code PNG. Medium error correction keeps
// the code readable with some damage while leaving room for payloads with
// Wi-Fi settings.
func QRCodePNG(payload []byte) ([]byte, error) {
	code, err := qr.Encode(string(payload), qr.M, qr.Auto)
	if err != nil {
		return nil, fmt.Errorf("encoding QR code: %w", err)
	}
	side := code.Bounds().Dx() * qrModulePixels
	scaled, err := barcode.Scale(code, side, side)
	if err != nil {
		return nil, fmt.Errorf("scaling QR code: %w", err)
	}
	// Scanners need a quiet zone of four white modules around the code.
	margin := 4 * qrModulePixels
	img := image.NewGray(image.Rect(0, 0, side+2*margin, side+2*margin))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	draw.Draw(img, image.Rect(margin, margin, margin+side, margin+side), scaled, image.Point{}, draw.Src)
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("writing QR code PNG: %w", err)
	}
	return buf.Bytes(), nil
}
