package enrollment

import (
	"testing"

	"github.com/makiuchi-d/gozxing"
	gozxingqr "github.com/makiuchi-d/gozxing/qrcode"
)

func TestQRCodeTextDecodes(t *testing.T) {
	payload := `{"android.app.extra.PROVISIONING_DEVICE_ADMIN_COMPONENT_NAME":"io.kubemdm.agent/.Admin","io.kubemdm.token":"tok-123"}`
	text, err := QRCodeText([]byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(QRCodeTextImage(text))
	if err != nil {
		t.Fatal(err)
	}
	res, err := gozxingqr.NewQRCodeReader().Decode(bmp, nil)
	if err != nil {
		t.Fatalf("the drawing does not decode: %v\n%s", err, text)
	}
	if res.GetText() != payload {
		t.Errorf("decoded %q, want the payload", res.GetText())
	}
}
