package gateway

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/go-logr/logr"
	"google.golang.org/protobuf/types/known/timestamppb"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	agentv1 "github.com/kubemdm/kubemdm/api/agent/v1"
	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/internal/enrollment"
	"github.com/kubemdm/kubemdm/internal/lifecycle"
	"github.com/kubemdm/kubemdm/internal/patch"
	"github.com/kubemdm/kubemdm/internal/pki"
)

// enrollManager is the field manager of the status fields enrollment sets.
const enrollManager = "kubemdm-gateway-enroll"

// LabelEnrollmentToken names, on a Device, the token it enrolled with.
const LabelEnrollmentToken = mdmv1alpha1.LabelEnrollmentToken

var errTokenRefused = errors.New("enrollment token is unknown, expired, revoked or already used")

// Enroll exchanges an enrollment token and a CSR for a device certificate.
func (s *Server) Enroll(ctx context.Context, req *connect.Request[agentv1.EnrollRequest]) (*connect.Response[agentv1.EnrollResponse], error) {
	msg := req.Msg
	// Every refused token gets the same answer, so that the answer tells an
	// attacker nothing about which tokens exist.
	if !enrollment.WellFormed(msg.GetToken()) {
		return nil, connect.NewError(connect.CodeUnauthenticated, errTokenRefused)
	}
	csr, err := pki.ParseCSR([]byte(msg.GetCsrPem()))
	if err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("csr_pem: %w", err))
	}
	info := msg.GetDeviceInfo()
	if err := validateDeviceInfo(info, true); err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}

	token, usable, err := s.findToken(ctx, msg.GetToken())
	if err != nil {
		return nil, err
	}
	// Past the checks that cost nothing: what follows writes to the
	// apiserver, which a fleet enrolling at once must not flood.
	leave, err := s.enrolling.enter(ctx, enrollQueueWait, errEnrollmentsBusy)
	if err != nil {
		return nil, err
	}
	defer leave()
	log := s.log.WithValues("enrollmentToken", klog.KObj(token))
	digest := keyDigest(csr)

	// A retry of an enrollment that happened: the same Device, a new
	// certificate, and nothing else written. The token may be spent by it.
	device, err := s.enrolledBefore(ctx, s.cache, token, info, digest)
	if err == nil && device == nil && !usable {
		// About to refuse a spent token: the cache may not show yet the
		// enrollment this is a retry of.
		device, err = s.enrolledBefore(ctx, s.apiReader, token, info, digest)
	}
	if err != nil {
		return nil, err
	}
	if device != nil {
		return s.retried(ctx, log, token, device, csr)
	}
	if !usable {
		// A spent, expired token gets the answer of an unknown one.
		return nil, connect.NewError(connect.CodeUnauthenticated, errTokenRefused)
	}
	if string(token.Spec.Platform) != info.GetPlatform() {
		return nil, connect.NewError(connect.CodeFailedPrecondition,
			fmt.Errorf("this enrollment token enrolls %s devices, not %s", token.Spec.Platform, info.GetPlatform()))
	}

	if err := s.claim(ctx, token); err != nil {
		return nil, err
	}
	now := s.now()
	device, retry, recorded, err := s.findOrCreateDevice(ctx, token, info, digest, now)
	if err != nil {
		s.releaseOneTime(ctx, token)
		return nil, err
	}
	if retry {
		return s.retried(ctx, log, token, device, csr)
	}
	id := pki.DeviceIdentity{Namespace: device.Namespace, Name: device.Name, UID: device.UID}
	certPEM, cert, err := s.deviceCA.SignDevice(csr, id, s.opts.CertificateLifetime)
	if err != nil {
		s.releaseOneTime(ctx, token)
		return nil, connect.NewError(connect.CodeInternal, err)
	}
	// The Device first: once it records the key, a retry is answered from
	// it, so a token not yet marked spent is never claimed by another one.
	// A Device created with the signed record holds it already.
	if err := s.markEnrolledUnlessRecorded(ctx, device, recorded, token.Name, digest, now); err != nil {
		// The write may have landed though its answer did not: then the
		// token is this Device's, and its controller settles it from it.
		fresh := &mdmv1alpha1.Device{}
		if s.apiReader.Get(ctx, client.ObjectKeyFromObject(device), fresh) == nil && fresh.Status.EnrollmentKey != digest {
			s.releaseOneTime(ctx, token)
		}
		return nil, connect.NewError(connect.CodeUnavailable, err)
	}
	if err := s.recordEnrollment(ctx, token); err != nil {
		// The device is enrolled and its certificate valid; a one-time
		// token left Processing is settled from its Device by the token
		// controller.
		log.Error(err, "Marking the one-time token spent", "device", klog.KObj(device))
	}
	// No Event per enrollment: at fleet size they would be a write per
	// device. The Enrolled condition and enrolledAt say it on the Device.
	log.Info("Device enrolled", "device", klog.KObj(device))
	return s.answer(device, certPEM, cert), nil
}

// retried answers an enrollment retried with the key a Device enrolled
// with: a new certificate for it, and the token marked as having enrolled
// it if that was not written the first time.
func (s *Server) retried(ctx context.Context, log logr.Logger, token *mdmv1alpha1.EnrollmentToken, device *mdmv1alpha1.Device, csr *x509.CertificateRequest) (*connect.Response[agentv1.EnrollResponse], error) {
	log.Info("Enrollment retried with the same key", "device", klog.KObj(device))
	if !token.Spec.Perpetual && token.Status.Phase != mdmv1alpha1.TokenDone {
		if err := s.recordEnrollment(ctx, token); err != nil {
			log.Error(err, "Marking the one-time token spent", "device", klog.KObj(device))
		}
	}
	return s.enrollResponse(device, csr)
}

// enrollResponse signs a new certificate for a Device enrolled before.
func (s *Server) enrollResponse(device *mdmv1alpha1.Device, csr *x509.CertificateRequest) (*connect.Response[agentv1.EnrollResponse], error) {
	id := pki.DeviceIdentity{Namespace: device.Namespace, Name: device.Name, UID: device.UID}
	certPEM, cert, err := s.deviceCA.SignDevice(csr, id, s.opts.CertificateLifetime)
	if err != nil {
		return nil, connect.NewError(connect.CodeInternal, err)
	}
	return s.answer(device, certPEM, cert), nil
}

func (s *Server) answer(device *mdmv1alpha1.Device, certPEM []byte, cert *x509.Certificate) *connect.Response[agentv1.EnrollResponse] {
	return connect.NewResponse(&agentv1.EnrollResponse{
		DeviceName:          device.Name,
		Namespace:           device.Namespace,
		DeviceUid:           string(device.UID),
		CertificatePem:      string(certPEM),
		CertificateNotAfter: timestamppb.New(cert.NotAfter),
		CaBundlePem:         string(s.opts.Serving.CABundle()),
	})
}

var serialPattern = regexp.MustCompile(`^[A-Za-z0-9][-A-Za-z0-9_.:/]*$`)

// validateDeviceInfo checks what an agent says about itself; the platform
// matters only when enrolling.
func validateDeviceInfo(info *agentv1.DeviceInfo, enrolling bool) error {
	if info == nil {
		return errors.New("device_info is required")
	}
	valid := []string{"Android", "AndroidAOSP", "IOS", "ChromeOS", "Windows", "Linux"}
	if enrolling && !slices.Contains(valid, info.GetPlatform()) {
		return fmt.Errorf("device_info.platform %q is not one of %s", info.GetPlatform(), strings.Join(valid, ", "))
	}
	if sn := info.GetSerialNumber(); sn != "" && (len(sn) > 128 || !serialPattern.MatchString(sn)) {
		return fmt.Errorf("device_info.serial_number %q must be at most 128 letters, digits and -_.:/", sn)
	}
	for name, v := range map[string]string{"model": info.GetModel(), "manufacturer": info.GetManufacturer(),
		"os_version": info.GetOsVersion(), "agent_version": info.GetAgentVersion()} {
		if len(v) > mdmv1alpha1.MaxReportedField {
			return fmt.Errorf("device_info.%s is longer than %d bytes", name, mdmv1alpha1.MaxReportedField)
		}
	}
	if info.GetStorageBytes() < 0 {
		return errors.New("device_info.storage_bytes must not be negative")
	}
	return nil
}

// findToken finds the token of the presented value by its hash, from the
// cache index, and says whether it may enroll a new device. A spent or
// expired token is still returned, for a retry of an enrollment it made; a
// revoked or deleted one is not.
func (s *Server) findToken(ctx context.Context, value string) (*mdmv1alpha1.EnrollmentToken, bool, error) {
	list := &mdmv1alpha1.EnrollmentTokenList{}
	if err := s.cache.List(ctx, list, client.MatchingFields{IndexTokenHash: enrollment.Hash(value)}); err != nil {
		return nil, false, connect.NewError(connect.CodeUnavailable, fmt.Errorf("looking up token: %w", err))
	}
	now := s.now()
	var spent *mdmv1alpha1.EnrollmentToken
	for i := range list.Items {
		t := &list.Items[i]
		if !enrollment.Matches(value, t.Status.TokenHash) || t.Spec.Revoked || !t.DeletionTimestamp.IsZero() {
			continue
		}
		if tokenUsable(t, now) {
			return t, true, nil
		}
		spent = t
	}
	if spent != nil {
		return spent, false, nil
	}
	return nil, false, connect.NewError(connect.CodeUnauthenticated, errTokenRefused)
}

// keyDigest identifies the key of a CSR.
func keyDigest(csr *x509.CertificateRequest) string {
	sum := sha256.Sum256(csr.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// enrolledBefore finds the Device this token already enrolled with this
// key: the answer to an earlier try was lost, and the agent tries again.
// It is looked up by serial number, or, for an agent without one, by the
// name its key gives it.
func (s *Server) enrolledBefore(ctx context.Context, reader client.Reader, token *mdmv1alpha1.EnrollmentToken, info *agentv1.DeviceInfo, digest string) (*mdmv1alpha1.Device, error) {
	var candidates []mdmv1alpha1.Device
	if serial := info.GetSerialNumber(); serial != "" {
		list := &mdmv1alpha1.DeviceList{}
		// The cache index and the apiserver's selectable field share the name.
		if err := reader.List(ctx, list, client.InNamespace(token.Namespace), client.MatchingFields{IndexSerialNumber: serial}); err != nil {
			return nil, connect.NewError(connect.CodeUnavailable, fmt.Errorf("looking up serial number: %w", err))
		}
		candidates = list.Items
	} else {
		d := &mdmv1alpha1.Device{}
		err := reader.Get(ctx, client.ObjectKey{Namespace: token.Namespace, Name: keyName(token.Spec.Platform, digest)}, d)
		if client.IgnoreNotFound(err) != nil {
			return nil, connect.NewError(connect.CodeUnavailable, fmt.Errorf("looking up device: %w", err))
		}
		if err == nil {
			candidates = append(candidates, *d)
		}
	}
	for i := range candidates {
		if d := &candidates[i]; s.sameEnrollment(d, token, digest) {
			return d, nil
		}
	}
	return nil, nil
}

// EnrollRetryWindow is how long after an enrollment a retry with its key is
// answered: long enough for an agent to retry a lost answer, short enough
// that the key does not become a lasting way to get certificates for the
// Device (renewal, with the current certificate, is that way).
const EnrollRetryWindow = 10 * time.Minute

// sameEnrollment reports whether d is the Device this token enrolled with
// this key, recently.
func (s *Server) sameEnrollment(d *mdmv1alpha1.Device, token *mdmv1alpha1.EnrollmentToken, digest string) bool {
	e, ok := s.enrollmentOf(d)
	return ok && e.Key == digest && e.Token == token.Name && d.Spec.Platform == token.Spec.Platform &&
		d.Status.Phase.Managed() && s.now().Sub(e.At) < EnrollRetryWindow
}

// enrollmentOf is the enrollment a Device records: in its status once
// enrolled, or, until the Device controller copies it there, in the record
// the gateway signed on the Device it created.
func (s *Server) enrollmentOf(d *mdmv1alpha1.Device) (enrollment.Record, bool) {
	if !lifecycle.Claimable(d) {
		if d.Status.EnrolledAt == nil {
			return enrollment.Record{}, false
		}
		return enrollment.Record{Token: d.Status.EnrollmentToken, Key: d.Status.EnrollmentKey, At: d.Status.EnrolledAt.Time}, true
	}
	value, ok := enrollment.PendingRecord(d)
	if !ok {
		return enrollment.Record{}, false
	}
	rec, err := enrollment.Verify(value, s.deviceCA.PublicKey(), d.Namespace, d.Name, d.CreationTimestamp.Time)
	return rec, err == nil
}

// claimable reports whether an enrolling agent may take d: a Device that
// never enrolled, and that no enrollment created a moment ago.
func claimable(d *mdmv1alpha1.Device) bool {
	_, pending := enrollment.PendingRecord(d)
	return lifecycle.Claimable(d) && !pending
}

// keyName is the name of a Device whose agent has no serial number: derived
// from its key, so that a retry finds the Device it created and leaves no
// orphan behind.
func keyName(p mdmv1alpha1.Platform, digest string) string {
	return generateNamePrefix(p) + strings.TrimPrefix(digest, "sha256:")[:16]
}

func tokenUsable(t *mdmv1alpha1.EnrollmentToken, now time.Time) bool {
	if t.Spec.Revoked || !t.DeletionTimestamp.IsZero() || t.Status.ExpiresAt == nil || !now.Before(t.Status.ExpiresAt.Time) {
		return false
	}
	return t.Status.Phase == mdmv1alpha1.TokenPending ||
		(t.Spec.Perpetual && t.Status.Phase == mdmv1alpha1.TokenProcessing)
}

// claim checks the token again on a fresh read, so that a revocation the
// cache has not seen yet still refuses the device, and moves a one-time token
// from Pending to Processing, guarded by that read's resourceVersion: of many
// devices enrolling at once, exactly one wins and the others are refused.
func (s *Server) claim(ctx context.Context, token *mdmv1alpha1.EnrollmentToken) error {
	if err := s.apiReader.Get(ctx, client.ObjectKeyFromObject(token), token); err != nil {
		return connect.NewError(connect.CodeUnavailable, fmt.Errorf("reading token: %w", err))
	}
	if !tokenUsable(token, s.now()) {
		return connect.NewError(connect.CodeUnauthenticated, errTokenRefused)
	}
	if token.Spec.Perpetual {
		return nil
	}
	if token.Status.Phase != mdmv1alpha1.TokenPending {
		return connect.NewError(connect.CodeUnauthenticated, errTokenRefused)
	}
	before := token.DeepCopy()
	claimed := metav1.NewTime(s.now())
	token.Status.Phase, token.Status.ClaimedAt = mdmv1alpha1.TokenProcessing, &claimed
	err := s.cache.Status().Patch(ctx, token, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
	if apierrors.IsConflict(err) {
		return connect.NewError(connect.CodeUnauthenticated, errTokenRefused)
	}
	if err != nil {
		return connect.NewError(connect.CodeUnavailable, fmt.Errorf("claiming token: %w", err))
	}
	return nil
}

// releaseOneTime puts a claimed one-time token back to Pending after a
// failed enrollment, so that the device can try again.
func (s *Server) releaseOneTime(ctx context.Context, token *mdmv1alpha1.EnrollmentToken) {
	if token.Spec.Perpetual {
		return
	}
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		fresh := &mdmv1alpha1.EnrollmentToken{}
		if err := s.apiReader.Get(ctx, client.ObjectKeyFromObject(token), fresh); err != nil {
			return err
		}
		if fresh.Status.Phase != mdmv1alpha1.TokenProcessing {
			return nil
		}
		before := fresh.DeepCopy()
		fresh.Status.Phase, fresh.Status.ClaimedAt = mdmv1alpha1.TokenPending, nil
		return s.cache.Status().Patch(ctx, fresh, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
	})
	if err != nil {
		s.log.Error(err, "Releasing one-time token after a failed enrollment", "enrollmentToken", klog.KObj(token))
	}
}

// recordEnrollment marks a one-time token Done. A perpetual token is not
// written per enrollment: its controller counts the Devices that name it,
// so a fleet enrolling at once never contends on the token.
func (s *Server) recordEnrollment(ctx context.Context, token *mdmv1alpha1.EnrollmentToken) error {
	if token.Spec.Perpetual {
		return nil
	}
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		fresh := &mdmv1alpha1.EnrollmentToken{}
		if err := s.apiReader.Get(ctx, client.ObjectKeyFromObject(token), fresh); err != nil {
			return fmt.Errorf("reading token: %w", err)
		}
		if fresh.Status.Phase == mdmv1alpha1.TokenDone {
			return nil // the token controller recorded it from the Device already
		}
		before := fresh.DeepCopy()
		fresh.Status.Phase, fresh.Status.ClaimedAt = mdmv1alpha1.TokenDone, nil
		return s.cache.Status().Patch(ctx, fresh, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
	})
}

// findOrCreateDevice claims the pre-registered Device with the agent's
// serial number, or creates a Device from the token's template. A Device
// created under a name known beforehand carries the signed enrollment
// record (recorded), so that the enrollment needs no status write of its
// own; the Device controller copies the record into the status.
func (s *Server) findOrCreateDevice(ctx context.Context, token *mdmv1alpha1.EnrollmentToken, info *agentv1.DeviceInfo, digest string, now time.Time) (_ *mdmv1alpha1.Device, retry, recorded bool, _ error) {
	serial := info.GetSerialNumber()
	if serial != "" {
		list := &mdmv1alpha1.DeviceList{}
		if err := s.cache.List(ctx, list, client.InNamespace(token.Namespace), client.MatchingFields{IndexSerialNumber: serial}); err != nil {
			return nil, false, false, connect.NewError(connect.CodeUnavailable, fmt.Errorf("looking up serial number: %w", err))
		}
		for i := range list.Items {
			d := &list.Items[i]
			if d.Spec.Platform != token.Spec.Platform {
				continue
			}
			// Only a Device that never enrolled can be claimed. A Device
			// that was enrolled keeps its identity; re-enrolling needs a new
			// Device object, whose new UID voids every old certificate.
			if !claimable(d) {
				// The cache may not show yet the enrollment this is a
				// retry of: the apiserver says.
				if again, err := s.enrolledBefore(ctx, s.apiReader, token, info, digest); err == nil && again != nil {
					return again, true, false, nil
				}
				return nil, false, false, connect.NewError(connect.CodeAlreadyExists,
					fmt.Errorf("device %s with serial number %s was already enrolled (phase %s); delete it to enroll the hardware again", d.Name, serial, phaseText(d)))
			}
			return d, false, false, nil
		}
	}
	device := newDeviceFromTemplate(token, serial)
	if serial == "" {
		device.Name, device.GenerateName = keyName(token.Spec.Platform, digest), ""
	}
	recorded = device.Name != ""
	if recorded {
		value, err := enrollment.Record{Token: token.Name, Key: digest, At: now}.Sign(s.deviceCA.Key, device.Namespace, device.Name)
		if err != nil {
			return nil, false, false, connect.NewError(connect.CodeInternal, err)
		}
		device.Annotations = map[string]string{mdmv1alpha1.AnnotationEnrollment: value}
	}
	err := s.cache.Create(ctx, device, client.FieldOwner(enrollManager))
	if apierrors.IsAlreadyExists(err) {
		// The name is taken. The cache may be behind an earlier try with
		// this key, which created it, and perhaps enrolled it: read it.
		existing := &mdmv1alpha1.Device{}
		if err := s.apiReader.Get(ctx, client.ObjectKeyFromObject(device), existing); err != nil {
			return nil, false, false, connect.NewError(connect.CodeUnavailable, fmt.Errorf("reading device: %w", err))
		}
		mine := existing.Spec.Platform == token.Spec.Platform && existing.Spec.SerialNumber == serial
		switch {
		case mine && s.sameEnrollment(existing, token, digest):
			return existing, true, false, nil
		case mine && claimable(existing):
			return existing, false, false, nil
		case mine || serial == "":
			return nil, false, false, connect.NewError(connect.CodeAlreadyExists,
				fmt.Errorf("device %s for this hardware was already enrolled (phase %s); delete it to enroll the hardware again", existing.Name, phaseText(existing)))
		}
		// The serial-derived name is taken by a Device with another serial.
		// Its name is the apiserver's to choose, so no record is signed for
		// it: the enrollment writes its status.
		device = newDeviceFromTemplate(token, serial)
		device.Name, device.GenerateName, recorded = "", generateNamePrefix(token.Spec.Platform), false
		err = s.cache.Create(ctx, device, client.FieldOwner(enrollManager))
	}
	if err != nil {
		return nil, false, false, connect.NewError(connect.CodeUnavailable, fmt.Errorf("creating device: %w", err))
	}
	return device, false, recorded, nil
}

// phaseText is a Device's phase for a message; an enrollment the Device
// controller has yet to copy into the status is one.
func phaseText(d *mdmv1alpha1.Device) string {
	if _, pending := enrollment.PendingRecord(d); pending {
		return "enrolling"
	}
	return string(d.Status.Phase)
}

func newDeviceFromTemplate(token *mdmv1alpha1.EnrollmentToken, serial string) *mdmv1alpha1.Device {
	d := &mdmv1alpha1.Device{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: token.Namespace,
			Labels:    map[string]string{LabelEnrollmentToken: token.Name},
			// The Device controller would add it a moment later, at the
			// cost of a write per enrolled device.
			Finalizers: []string{mdmv1alpha1.Finalizer},
		},
		Spec: mdmv1alpha1.DeviceSpec{
			Platform:     token.Spec.Platform,
			SerialNumber: serial,
			Owner:        token.Spec.Owner,
		},
	}
	if name := deviceNameFromSerial(serial); name != "" {
		d.Name = name
	} else {
		d.GenerateName = generateNamePrefix(token.Spec.Platform)
	}
	if t := token.Spec.DeviceTemplate; t != nil {
		for k, v := range t.Labels {
			d.Labels[k] = v
		}
		d.Spec.Attributes = t.Attributes
		for _, p := range t.Policies {
			d.Spec.Configurations = append(d.Spec.Configurations, mdmv1alpha1.ConfigurationAssignment{Name: p.Name, Priority: p.Priority})
		}
	}
	return d
}

var nonNameChars = regexp.MustCompile(`[^a-z0-9-]+`)

// deviceNameFromSerial makes a readable, valid object name of a serial
// number, or "" when nothing usable is left.
func deviceNameFromSerial(serial string) string {
	name := strings.Trim(nonNameChars.ReplaceAllString(strings.ToLower(serial), "-"), "-")
	if len(name) > 63 {
		name = strings.Trim(name[:63], "-")
	}
	return name
}

func generateNamePrefix(p mdmv1alpha1.Platform) string {
	return strings.ToLower(string(p)) + "-"
}

// markEnrolledUnlessRecorded writes the enrollment into the status of a
// Device that does not carry it as a signed record.
func (s *Server) markEnrolledUnlessRecorded(ctx context.Context, device *mdmv1alpha1.Device, recorded bool, token, digest string, now time.Time) error {
	if recorded {
		return nil
	}
	return s.markEnrolled(ctx, device, token, digest, now)
}

// markEnrolled writes the enrollment into the Device's status in one write:
// phase, dates, token and key. The facts the agent sent are not written
// here: its first report, made as soon as it applied the configuration its
// stream delivers, writes them under the report manager, which alone owns
// them, so that a fact the device stops reporting goes away.
func (s *Server) markEnrolled(ctx context.Context, device *mdmv1alpha1.Device, token, digest string, now time.Time) error {
	// The phase goes with the dates; the lifecycle table says which
	// (Enrolled, from a Device that never enrolled).
	phase, _ := lifecycle.Next(device, lifecycle.Enrolled)
	if err := patch.ApplyDeviceStatus(ctx, s.cache, client.ObjectKeyFromObject(device), device.UID, enrollManager, map[string]any{
		"phase":           string(phase),
		"enrolledAt":      metav1.NewTime(now).ToUnstructured(),
		"enrollmentToken": token,
		"enrollmentKey":   digest,
	}); err != nil {
		return fmt.Errorf("marking device enrolled: %w", err)
	}
	return nil
}
