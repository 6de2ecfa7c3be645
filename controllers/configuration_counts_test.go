package controllers

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

func TestCountDevices(t *testing.T) {
	cfg := &mdmv1alpha1.Configuration{ObjectMeta: metav1.ObjectMeta{Name: "wifi"},
		Spec:   mdmv1alpha1.ConfigurationSpec{Platforms: []mdmv1alpha1.Platform{mdmv1alpha1.PlatformAndroid, mdmv1alpha1.PlatformLinux}},
		Status: mdmv1alpha1.ConfigurationStatus{Revision: "r2"}}
	device := func(platform mdmv1alpha1.Platform, phase mdmv1alpha1.DevicePhase, row *mdmv1alpha1.DeviceConfigurationStatus, excluded bool) mdmv1alpha1.Device {
		d := mdmv1alpha1.Device{Spec: mdmv1alpha1.DeviceSpec{Platform: platform}, Status: mdmv1alpha1.DeviceStatus{Phase: phase}}
		if excluded {
			d.Spec.Configurations = []mdmv1alpha1.ConfigurationAssignment{{Name: "wifi", Excluded: true}}
		}
		if row != nil {
			row.Name = "wifi"
			d.Status.Configurations = []mdmv1alpha1.DeviceConfigurationStatus{{Name: "other", State: mdmv1alpha1.ConfigurationFailed}, *row}
		}
		return d
	}
	row := func(rev string, state mdmv1alpha1.ConfigurationState) *mdmv1alpha1.DeviceConfigurationStatus {
		return &mdmv1alpha1.DeviceConfigurationStatus{Revision: rev, State: state}
	}
	got := countDevices(cfg, []mdmv1alpha1.Device{
		device("Linux", mdmv1alpha1.DeviceEnrolled, row("r2", mdmv1alpha1.ConfigurationApplied), false),
		device("Linux", mdmv1alpha1.DeviceEnrolled, row("r1", mdmv1alpha1.ConfigurationApplied), false), // an older revision
		device("Linux", mdmv1alpha1.DeviceEnrolled, row("r2", mdmv1alpha1.ConfigurationFailed), false),
		device("Linux", mdmv1alpha1.DeviceEnrolled, row("r1", mdmv1alpha1.ConfigurationFailed), false), // failed the old one
		device("Linux", mdmv1alpha1.DeviceEnrolled, row("r2", mdmv1alpha1.ConfigurationOverridden), false),
		device("Linux", mdmv1alpha1.DeviceEnrolled, nil, false),                 // never reported
		device("Android", mdmv1alpha1.DeviceRegistered, nil, false),             // still in its box
		device("IOS", mdmv1alpha1.DeviceEnrolled, nil, false),                   // another platform
		device("Linux", mdmv1alpha1.DeviceEnrolled, nil, true),                  // excluded
		device("Linux", mdmv1alpha1.DeviceRetired, row("r2", "Applied"), false), // left management
	})
	want := mdmv1alpha1.ConfigurationDeviceCounts{Targeted: 8, Applied: 1, Pending: 4, Failed: 1, Overridden: 1, Unsupported: 1, Excluded: 1}
	if *got != want {
		t.Errorf("counts %+v, want %+v", *got, want)
	}
}
