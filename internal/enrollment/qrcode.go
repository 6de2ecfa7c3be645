package enrollment

import (
	"bytes"
	"fmt"
	"image"
	"image/draw"
	"image/png"
	"strings"

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

// QRCodeText draws payload as a QR code for a terminal: two rows of modules
// per line in half blocks, with the four-module quiet zone. Light modules
// are drawn, dark ones left blank, so the code reads right on a terminal
// with a dark background.
func QRCodeText(payload []byte) (string, error) {
	code, err := qr.Encode(string(payload), qr.M, qr.Auto)
	if err != nil {
		return "", fmt.Errorf("encoding QR code: %w", err)
	}
	n := code.Bounds().Dx()
	const quiet = 4
	light := func(x, y int) bool {
		x, y = x-quiet, y-quiet
		if x < 0 || y < 0 || x >= n || y >= n {
			return true
		}
		r, _, _, _ := code.At(x, y).RGBA()
		return r > 0x7fff
	}
	side := n + 2*quiet
	var b strings.Builder
	for y := 0; y < side; y += 2 {
		for x := 0; x < side; x++ {
			top, bottom := light(x, y), y+1 >= side || light(x, y+1)
			switch {
			case top && bottom:
				b.WriteString("█")
			case top:
				b.WriteString("▀")
			case bottom:
				b.WriteString("▄")
			default:
				b.WriteString(" ")
			}
		}
		b.WriteString("\n")
	}
	return b.String(), nil
}

// QRCodeTextImage reads a QRCodeText drawing back into an image, light
// where the drawing is, for a decoder: tests check with it that what a
// terminal shows scans.
func QRCodeTextImage(text string) image.Image {
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	const px = 4
	img := image.NewGray(image.Rect(0, 0, len([]rune(lines[0]))*px, 2*len(lines)*px))
	fill := func(x, y int) {
		draw.Draw(img, image.Rect(x*px, y*px, (x+1)*px, (y+1)*px), image.White, image.Point{}, draw.Src)
	}
	for row, line := range lines {
		for x, r := range []rune(line) {
			if r == '█' || r == '▀' {
				fill(x, 2*row)
			}
			if r == '█' || r == '▄' {
				fill(x, 2*row+1)
			}
		}
	}
	return img
}
