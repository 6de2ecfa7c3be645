package gateway

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"time"
	"unicode/utf8"

	"connectrpc.com/connect"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	agentv1 "github.com/kubemdm/kubemdm/api/agent/v1"
	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/internal/enrollment"
	"github.com/kubemdm/kubemdm/internal/lifecycle"
	"github.com/kubemdm/kubemdm/internal/patch"
	"github.com/kubemdm/kubemdm/internal/pki"
)

// ReportStatus records what the device observed. Facts are written only when
// they differ from what Device.status already says; the call itself is a
// heartbeat kept in memory.
func (s *Server) ReportStatus(ctx context.Context, req *connect.Request[agentv1.ReportStatusRequest]) (*connect.Response[agentv1.ReportStatusResponse], error) {
	device, cert, err := s.authenticateWithCert(ctx)
	if err != nil {
		return nil, err
	}
	key := client.ObjectKeyFromObject(device)
	s.presence.seen(key, device.UID)
	facts := req.Msg.GetFacts()
	if facts == nil {
		return connect.NewResponse(&agentv1.ReportStatusResponse{}), nil
	}
	if err := validateFacts(facts); err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	// What follows may write to the apiserver, which a fleet reporting at
	// once (a configuration pushed to all of it) must not flood. The turn
	// may take a while: the status is judged on the Device as it is then,
	// and a stream opening waiting for this report waits with it.
	release := s.presence.reportArriving(key, device.UID, s.now().Add(reportQueueWait))
	defer release()
	leave, err := s.reporting.enter(ctx, reportQueueWait, errReportsBusy)
	if err != nil {
		return nil, err
	}
	defer leave()
	if device, err = s.cachedDevice(ctx, pki.DeviceIdentity{Namespace: key.Namespace, Name: key.Name, UID: device.UID}, cert); err != nil {
		return nil, err
	}
	if !device.Status.Phase.Managed() {
		return nil, connect.NewError(connect.CodePermissionDenied, fmt.Errorf("device %s is %s and no longer managed", key, device.Status.Phase))
	}
	st := reportedStatus(facts, cert)
	if st.Configurations, err = s.configurationRows(ctx, device, facts.GetConfigurations()); err != nil {
		return nil, connect.NewError(connect.CodeUnavailable, err)
	}
	st.AppliedConfigGeneration = min(req.Msg.GetObservedGeneration(), device.Generation)
	st.Reassignment = reassignment(device, facts.GetOwner(), req.Msg.GetObservedGeneration(), s.now())
	// Built as the typed status and converted, so that an empty field is
	// absent on both sides of the comparison, as in the stored object.
	want, err := runtime.DefaultUnstructuredConverter.ToUnstructured(st)
	if err != nil {
		return nil, connect.NewError(connect.CodeInternal, err)
	}
	// The phase shows whether the device enforces Disabled, however it
	// was asked to (Git, or a Disable action). The lifecycle table moves
	// it only between Enrolled and Disabled, and writes only a change.
	if event, ok := map[string]lifecycle.Event{
		string(mdmv1alpha1.DeviceStateDisabled): lifecycle.StateDisabled,
		string(mdmv1alpha1.DeviceStateActive):   lifecycle.StateActive,
	}[facts.GetState()]; ok {
		// Before the facts, whose write would make the version it was
		// decided on stale. When the cache is behind, the table decides
		// again on the Device as the apiserver has it.
		if _, err := lifecycle.ApplyFresh(ctx, s.cache, s.apiReader, device, event); err != nil {
			return nil, connect.NewError(connect.CodeUnavailable, err)
		}
	}
	// A Device whose enrollment record its controller has yet to copy has
	// no phase to move: the controller makes it Enrolled, and a Disabled
	// reported now would be lost until the agent's next facts. The facts
	// are written, and the agent is asked to report again.
	_, recordPending := enrollment.PendingRecord(device)
	recordPending = recordPending && facts.GetState() == string(mdmv1alpha1.DeviceStateDisabled)
	// A stream opening not written yet goes out with the facts.
	opening, carried := s.presence.takeOpening(key, device.UID)
	if !factsChanged(device, want) && !carried {
		if recordPending {
			return nil, errEnrollmentPending(key)
		}
		return connect.NewResponse(&agentv1.ReportStatusResponse{}), nil
	}
	var written *mdmv1alpha1.Device
	err = s.presence.applyGuarded(ctx, key, device.UID, nil, func(d *mdmv1alpha1.Device) (map[string]any, error) {
		written = d
		if !carried {
			return gatewayStatus(d, want, reportFields)
		}
		part := maps.Clone(want)
		maps.Copy(part, s.presence.openStatus(d, opening))
		return gatewayStatus(d, part, reportFields, connectionFields)
	})
	if carried {
		s.presence.finish(opening, err)
	}
	if err != nil {
		return nil, connect.NewError(connect.CodeUnavailable, fmt.Errorf("writing device facts: %w", err))
	}
	if ownsLegacyReport(written) {
		// The facts' former manager lets go of them, so that one the
		// device stops reporting goes away.
		if err := patch.ApplyDeviceStatus(ctx, s.cache, key, device.UID, legacyReportManager, map[string]any{}); err != nil {
			s.log.Error(err, "Releasing the facts of the former report manager", "device", key)
		}
	}
	if recordPending {
		return nil, errEnrollmentPending(key)
	}
	return connect.NewResponse(&agentv1.ReportStatusResponse{}), nil
}

// errEnrollmentPending asks an agent that reported Disabled to report again
// once its Device's enrollment is recorded and its phase can show it.
func errEnrollmentPending(key client.ObjectKey) error {
	return connect.NewError(connect.CodeUnavailable, fmt.Errorf("device %s is still being enrolled and cannot be shown Disabled yet; report again", key))
}

// reportLimit is the longest a reported string may be.
type reportLimit struct {
	field, value string
	max          int
}

func validateFacts(f *agentv1.Facts) error {
	if info := f.GetDeviceInfo(); info != nil {
		// The platform is the Device's; a report cannot change it.
		if err := validateDeviceInfo(info, false); err != nil {
			return err
		}
	}
	if len(f.GetConfigurations()) > 64 || len(f.GetCertificates()) > 63 {
		return errors.New("facts: at most 64 configurations and 63 certificates")
	}
	switch f.GetState() {
	case "", string(mdmv1alpha1.DeviceStateActive), string(mdmv1alpha1.DeviceStateDisabled):
	default:
		return fmt.Errorf("facts.state %q must be Active or Disabled", f.GetState())
	}
	for i, c := range f.GetConfigurations() {
		if c.GetName() == "" || (c.GetState() != "Applied" && c.GetState() != "Failed") {
			return fmt.Errorf("facts.configurations[%d]: name is required and state must be Applied or Failed", i)
		}
		if len(c.GetSettings()) > 256 {
			return fmt.Errorf("facts.configurations[%d]: at most 256 settings", i)
		}
		for j, st := range c.GetSettings() {
			if st.GetReason() != string(mdmv1alpha1.SettingFailed) && st.GetReason() != string(mdmv1alpha1.SettingUnsupported) {
				return fmt.Errorf("facts.configurations[%d].settings[%d].reason must be Failed or Unsupported", i, j)
			}
		}
	}
	// The same limits as the status schema: a report the apiserver would
	// refuse is refused here, so it never blocks the writes after it.
	limits := []reportLimit{
		{"facts.kiosk.app", f.GetKiosk().GetApp(), mdmv1alpha1.MaxReportedField},
		{"facts.lost_mode.message", f.GetLostMode().GetMessage(), mdmv1alpha1.MaxReportedMessage},
		{"facts.lost_mode.phone_number", f.GetLostMode().GetPhoneNumber(), mdmv1alpha1.MaxReportedField},
		{"facts.lost_mode.footnote", f.GetLostMode().GetFootnote(), mdmv1alpha1.MaxReportedField},
	}
	for i, c := range f.GetConfigurations() {
		limits = append(limits,
			reportLimit{fmt.Sprintf("facts.configurations[%d].name", i), c.GetName(), mdmv1alpha1.MaxReportedName},
			reportLimit{fmt.Sprintf("facts.configurations[%d].message", i), c.GetMessage(), mdmv1alpha1.MaxReportedMessage},
			reportLimit{fmt.Sprintf("facts.configurations[%d].revision", i), c.GetRevision(), 64})
		for j, st := range c.GetSettings() {
			limits = append(limits,
				reportLimit{fmt.Sprintf("facts.configurations[%d].settings[%d].path", i, j), st.GetPath(), 1100},
				reportLimit{fmt.Sprintf("facts.configurations[%d].settings[%d].message", i, j), st.GetMessage(), mdmv1alpha1.MaxReportedMessage},
				reportLimit{fmt.Sprintf("facts.configurations[%d].settings[%d].current", i, j), st.GetCurrent(), mdmv1alpha1.MaxReportedField})
		}
	}
	for i, c := range f.GetCertificates() {
		if c.GetSubject() == "" || c.GetSerialNumber() == "" {
			return fmt.Errorf("facts.certificates[%d]: subject and serial_number are required", i)
		}
		limits = append(limits,
			reportLimit{fmt.Sprintf("facts.certificates[%d].subject", i), c.GetSubject(), mdmv1alpha1.MaxReportedMessage},
			reportLimit{fmt.Sprintf("facts.certificates[%d].serial_number", i), c.GetSerialNumber(), mdmv1alpha1.MaxReportedField},
			reportLimit{fmt.Sprintf("facts.certificates[%d].source", i), c.GetSource(), mdmv1alpha1.MaxReportedName})
	}
	for _, l := range limits {
		if len(l.value) > l.max {
			return fmt.Errorf("%s is longer than %d bytes", l.field, l.max)
		}
		if !utf8.ValidString(l.value) {
			return fmt.Errorf("%s must be UTF-8", l.field)
		}
	}
	return nil
}

// reportedStatus is the status a report applies: the facts plus
// the identity certificate the device presented.
func reportedStatus(f *agentv1.Facts, identity *x509.Certificate) *mdmv1alpha1.DeviceStatus {
	st := &mdmv1alpha1.DeviceStatus{}
	if info := f.GetDeviceInfo(); info != nil {
		st.DeviceInfo = &mdmv1alpha1.DeviceInfo{
			Model: info.GetModel(), Manufacturer: info.GetManufacturer(),
			OSVersion: info.GetOsVersion(), AgentVersion: info.GetAgentVersion(),
		}
		if b := info.GetStorageBytes(); b > 0 {
			st.DeviceInfo.Capacity = resource.NewQuantity(b, resource.BinarySI)
		}
	}
	if sec := f.GetSecurity(); sec != nil {
		st.Security = &mdmv1alpha1.DeviceSecurity{PasscodeSet: sec.GetPasscodeSet(), Encrypted: sec.GetEncrypted()}
	}
	if k := f.GetKiosk(); k != nil {
		st.Kiosk = &mdmv1alpha1.KioskStatus{Enabled: k.GetEnabled(), App: k.GetApp()}
	}
	if l := f.GetLostMode(); l != nil {
		st.LostMode = &mdmv1alpha1.LostModeStatus{Enabled: l.GetEnabled(), Message: l.GetMessage(), PhoneNumber: l.GetPhoneNumber(), Footnote: l.GetFootnote()}
	}
	if identity != nil {
		st.Certificates = append(st.Certificates, mdmv1alpha1.CertificateInfo{
			Subject: identity.Subject.String(), SerialNumber: serialHex(identity.SerialNumber),
			NotAfter: &metav1.Time{Time: identity.NotAfter}, Source: "identity"})
	}
	for _, c := range f.GetCertificates() {
		ci := mdmv1alpha1.CertificateInfo{Subject: c.GetSubject(), SerialNumber: c.GetSerialNumber(), Source: c.GetSource()}
		if c.GetNotAfter() != nil {
			ci.NotAfter = &metav1.Time{Time: c.GetNotAfter().AsTime()}
		}
		st.Certificates = append(st.Certificates, ci)
	}
	return st
}

// factsChanged compares the wanted facts with the Device's status as the
// cache has it, at the second precision the apiserver stores times with.
func factsChanged(device *mdmv1alpha1.Device, want map[string]any) bool {
	have, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&device.Status)
	if err != nil {
		return true
	}
	for _, k := range []string{"deviceInfo", "security", "kiosk", "lostMode", "configurations", "certificates", "appliedConfigGeneration", "reassignment"} {
		if !equality.Semantic.DeepEqual(have[k], want[k]) {
			return true
		}
	}
	return false
}

func serialHex(n *big.Int) string {
	return fmt.Sprintf("%x", n)
}

// reassignment is the outcome of the last change of owner as the device's
// report shows it: Succeeded once the device took the owner, Failed when it
// applied the current configuration but kept another owner, Initiated while
// it has not applied it yet. The time moves only when the phase does.
func reassignment(d *mdmv1alpha1.Device, reported string, applied int64, now time.Time) *mdmv1alpha1.ReassignmentStatus {
	want := d.Spec.Owner
	if want == "" {
		return nil
	}
	r := mdmv1alpha1.ReassignmentStatus{Phase: mdmv1alpha1.ReassignmentInitiated, Owner: want}
	switch {
	case reported == want:
		r.Phase = mdmv1alpha1.ReassignmentSucceeded
	case applied >= d.Generation:
		r.Phase = mdmv1alpha1.ReassignmentFailed
		r.Message = fmt.Sprintf("the device applied the configuration but reports owner %q", reported)
	}
	at := metav1.NewTime(now)
	r.Time = &at
	if old := d.Status.Reassignment; old != nil && old.Phase == r.Phase && old.Owner == r.Owner && old.Time != nil {
		r.Time = old.Time
	}
	return &r
}
