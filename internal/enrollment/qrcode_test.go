package enrollment

import (
	"testing"

	"github.com/kubemdm/kubemdm/internal/qrscan"
)

func TestQRCodeTextDecodes(t *testing.T) {
	payload := `{"android.app.extra.PROVISIONING_DEVICE_ADMIN_COMPONENT_NAME":"io.kubemdm.agent/.Admin","io.kubemdm.token":"tok-123"}`
	text, err := QRCodeText([]byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	got, err := qrscan.Decode(QRCodeTextImage(text))
	if err != nil {
		t.Fatalf("the drawing does not decode: %v\n%s", err, text)
	}
	if got != payload {
		t.Errorf("decoded %q, want the payload", got)
	}
}
