// Package qrscan reads back the QR codes kubemdm draws, for tests that
// check that what a person scans is the payload.
package qrscan

import (
	"fmt"
	"image"

	"github.com/makiuchi-d/gozxing"
	gozxingqr "github.com/makiuchi-d/gozxing/qrcode"
)

// Decode returns the text of the QR code img holds. img is a code alone
// in its quiet zone, as kubemdm draws one, so its modules are read where
// they are: searching for the finder patterns instead fails on about one
// random token value in fifteen at the size of a device-owner payload.
func Decode(img image.Image) (string, error) {
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		return "", fmt.Errorf("reading the image: %w", err)
	}
	res, err := gozxingqr.NewQRCodeReader().Decode(bmp, map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_PURE_BARCODE: true})
	if err != nil {
		return "", fmt.Errorf("decoding the QR code: %w", err)
	}
	return res.GetText(), nil
}
