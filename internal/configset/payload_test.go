package configset

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// TestRevisionDoesNotGiveAwayASecret: a Configuration's revision changes
// with its Secret's content, yet the same password in two Secrets gives two
// revisions, so a guess cannot be tested against status.revision without
// reading the Secret.
func TestRevisionDoesNotGiveAwayASecret(t *testing.T) {
	settings := &mdmv1alpha1.ConfigurationSettings{WiFi: []mdmv1alpha1.WiFiNetwork{{SSID: "corp", Security: "WPA2",
		PasswordSecretRef: &mdmv1alpha1.SecretKeyRef{Name: "wifi", Key: "password"}}}}
	secret := func(ns, uid, password string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "wifi", UID: types.UID(uid),
			Labels: map[string]string{mdmv1alpha1.LabelDevicePayload: "true"}}, Data: map[string][]byte{"password": []byte(password)}}
	}
	revision := func(objs ...client.Object) string {
		t.Helper()
		c := fake.NewClientBuilder().WithObjects(objs...).Build()
		rev, err := Revision(settings, ReaderPayloads{Ctx: context.Background(), Cache: c, Namespace: objs[0].GetNamespace()})
		if err != nil {
			t.Fatal(err)
		}
		return rev
	}
	a := revision(secret("a", "uid-a", "hunter2"))
	if again := revision(secret("a", "uid-a", "hunter2")); again != a {
		t.Errorf("the same Secret gives revisions %s and %s", a, again)
	}
	if rotated := revision(secret("a", "uid-a", "hunter3")); rotated == a {
		t.Error("rotating the password left the revision as it was")
	}
	if other := revision(secret("b", "uid-b", "hunter2")); other == a {
		t.Error("the same password in another Secret gives the same revision: it can be guessed offline")
	}
	fp, err := ReaderPayloads{Ctx: context.Background(), Cache: fake.NewClientBuilder().WithObjects(secret("a", "uid-a", "hunter2")).Build(),
		Namespace: "a"}.Fingerprint(Ref{Kind: "Secret", Name: "wifi", Key: "password"})
	if err != nil {
		t.Fatal(err)
	}
	if plain := sha256.Sum256([]byte("hunter2")); strings.Contains(fmt.Sprintf("%x", fp), fmt.Sprintf("%x", plain)) {
		t.Error("the fingerprint is the password's plain hash")
	}
}
