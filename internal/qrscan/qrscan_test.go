package qrscan_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"image/png"
	"testing"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/internal/enrollment"
	"github.com/kubemdm/kubemdm/internal/qrscan"
)

// TestDecodeReadsEveryDrawing: both drawings of many payloads, each with
// its own random token and CA pin, read back, the PNG and the terminal's.
// Searching for the finder patterns failed on about one in fifteen.
func TestDecodeReadsEveryDrawing(t *testing.T) {
	for i := range 100 {
		token, err := enrollment.NewToken()
		if err != nil {
			t.Fatal(err)
		}
		pin := make([]byte, 32)
		_, _ = rand.Read(pin)
		in := enrollment.PayloadInput{Token: token, EnrollmentHost: fmt.Sprintf("127.0.0.1:%d", 30000+i),
			Namespace: fmt.Sprintf("fleet-%d", i), GatewayCAPin: hex.EncodeToString(pin)}
		if i%2 == 1 {
			in.Spec.Provisioning = &mdmv1alpha1.AndroidProvisioning{DPCComponentName: "io.kubemdm.agent/.AdminReceiver",
				DPCDownloadURL: "https://downloads.kubemdm.example/agent.apk", DPCSignatureChecksum: "gJD2YwtOiWJHkSMkkIfLRlj-quNqG1fb6v100QmzM9w"}
		}
		payload, err := enrollment.Payload(in)
		if err != nil {
			t.Fatal(err)
		}
		pngBytes, err := enrollment.QRCodePNG(payload)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(pngBytes))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := qrscan.Decode(img); err != nil || got != string(payload) {
			t.Fatalf("payload %d, the PNG: %q, %v", i, got, err)
		}
		text, err := enrollment.QRCodeText(payload)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := qrscan.Decode(enrollment.QRCodeTextImage(text)); err != nil || got != string(payload) {
			t.Fatalf("payload %d, the terminal's drawing: %q, %v\n%s", i, got, err, text)
		}
	}
}
