// Package pki holds the device CA, the identity certificates it signs for
// devices, and the gateway's serving certificate.
package pki

import (
	"crypto/x509"
	"fmt"
	"net/url"
	"strings"

	"k8s.io/apimachinery/pkg/types"
)

// identityScheme and identityHost make the URI SAN that names a device:
// spiffe://mdm.kubemdm.io/ns/<namespace>/devices/<name>/<uid>. The UID makes a
// certificate of a deleted and re-created Device of the same name worthless.
const (
	identityScheme = "spiffe"
	identityHost   = "mdm.kubemdm.io"
)

// DeviceIdentity is who a client certificate speaks for.
type DeviceIdentity struct {
	Namespace string
	Name      string
	UID       types.UID
}

// Key is the namespace/name of the Device.
func (d DeviceIdentity) Key() types.NamespacedName {
	return types.NamespacedName{Namespace: d.Namespace, Name: d.Name}
}

func (d DeviceIdentity) String() string {
	return d.Namespace + "/" + d.Name
}

// URI is the certificate's URI SAN for the device.
func (d DeviceIdentity) URI() *url.URL {
	return &url.URL{Scheme: identityScheme, Host: identityHost,
		Path: "/ns/" + d.Namespace + "/devices/" + d.Name + "/" + string(d.UID)}
}

// IdentityFromCertificate reads the device identity of a verified client
// certificate.
func IdentityFromCertificate(cert *x509.Certificate) (DeviceIdentity, error) {
	for _, u := range cert.URIs {
		if u.Scheme != identityScheme || u.Host != identityHost {
			continue
		}
		parts := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
		if len(parts) != 5 || parts[0] != "ns" || parts[2] != "devices" || parts[1] == "" || parts[3] == "" || parts[4] == "" {
			return DeviceIdentity{}, fmt.Errorf("malformed device identity %q", u.String())
		}
		return DeviceIdentity{Namespace: parts[1], Name: parts[3], UID: types.UID(parts[4])}, nil
	}
	return DeviceIdentity{}, fmt.Errorf("certificate names no device")
}
