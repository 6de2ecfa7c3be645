package eligibility

import (
	"testing"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

func device(p mdmv1alpha1.Platform, phase mdmv1alpha1.DevicePhase) *mdmv1alpha1.Device {
	return &mdmv1alpha1.Device{Spec: mdmv1alpha1.DeviceSpec{Platform: p}, Status: mdmv1alpha1.DeviceStatus{Phase: phase}}
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		action   mdmv1alpha1.ActionType
		platform mdmv1alpha1.Platform
		phase    mdmv1alpha1.DevicePhase
		code     int32 // 0: eligible
	}{
		{mdmv1alpha1.ActionLock, mdmv1alpha1.PlatformIOS, mdmv1alpha1.DeviceEnrolled, 0},
		{mdmv1alpha1.ActionEnterKiosk, mdmv1alpha1.PlatformAndroid, mdmv1alpha1.DeviceEnrolled, 0},
		{mdmv1alpha1.ActionEnterKiosk, mdmv1alpha1.PlatformIOS, mdmv1alpha1.DeviceEnrolled, mdmv1alpha1.CodeUnimplemented},
		{mdmv1alpha1.ActionEnableLostMode, mdmv1alpha1.PlatformIOS, mdmv1alpha1.DeviceEnrolled, 0},
		{mdmv1alpha1.ActionEnableLostMode, mdmv1alpha1.PlatformLinux, mdmv1alpha1.DeviceEnrolled, mdmv1alpha1.CodeUnimplemented},
		{mdmv1alpha1.ActionRelinquish, mdmv1alpha1.PlatformChromeOS, mdmv1alpha1.DeviceEnrolled, mdmv1alpha1.CodeUnimplemented},
		{mdmv1alpha1.ActionDeprovision, mdmv1alpha1.PlatformChromeOS, mdmv1alpha1.DeviceEnrolled, 0},
		{mdmv1alpha1.ActionDeprovision, mdmv1alpha1.PlatformAndroid, mdmv1alpha1.DeviceEnrolled, mdmv1alpha1.CodeUnimplemented},
		{mdmv1alpha1.ActionLogoutUser, mdmv1alpha1.PlatformAndroid, mdmv1alpha1.DeviceEnrolled, mdmv1alpha1.CodeUnimplemented},
		{mdmv1alpha1.ActionLock, mdmv1alpha1.PlatformLinux, mdmv1alpha1.DeviceRegistered, mdmv1alpha1.CodeFailedPrecondition},
		{mdmv1alpha1.ActionLock, mdmv1alpha1.PlatformLinux, mdmv1alpha1.DeviceRetired, mdmv1alpha1.CodeFailedPrecondition},
		{mdmv1alpha1.ActionWipe, mdmv1alpha1.PlatformLinux, mdmv1alpha1.DeviceWiped, mdmv1alpha1.CodeFailedPrecondition},
		{mdmv1alpha1.ActionLock, mdmv1alpha1.PlatformLinux, mdmv1alpha1.DeviceWipePending, mdmv1alpha1.CodeFailedPrecondition},
		// A wipe that was never answered can be sent again, or the device retired.
		{mdmv1alpha1.ActionWipe, mdmv1alpha1.PlatformLinux, mdmv1alpha1.DeviceWipePending, 0},
		{mdmv1alpha1.ActionRetire, mdmv1alpha1.PlatformLinux, mdmv1alpha1.DeviceWipePending, 0},
		{mdmv1alpha1.ActionLock, mdmv1alpha1.PlatformChromeOS, mdmv1alpha1.DeviceDisabled, mdmv1alpha1.CodeFailedPrecondition},
		{mdmv1alpha1.ActionReenable, mdmv1alpha1.PlatformChromeOS, mdmv1alpha1.DeviceDisabled, 0},
		// A lost or stolen device can still be wiped, retired or deprovisioned.
		{mdmv1alpha1.ActionWipe, mdmv1alpha1.PlatformChromeOS, mdmv1alpha1.DeviceDisabled, 0},
		{mdmv1alpha1.ActionRetire, mdmv1alpha1.PlatformChromeOS, mdmv1alpha1.DeviceDisabled, 0},
		{mdmv1alpha1.ActionDeprovision, mdmv1alpha1.PlatformChromeOS, mdmv1alpha1.DeviceDisabled, 0},
		{mdmv1alpha1.ActionUnlock, mdmv1alpha1.PlatformChromeOS, mdmv1alpha1.DeviceDisabled, mdmv1alpha1.CodeFailedPrecondition},
		{mdmv1alpha1.ActionReenable, mdmv1alpha1.PlatformChromeOS, mdmv1alpha1.DeviceEnrolled, mdmv1alpha1.CodeFailedPrecondition},
		{mdmv1alpha1.ActionDisable, mdmv1alpha1.PlatformChromeOS, mdmv1alpha1.DeviceEnrolled, 0},
	} {
		v := Check(tc.action, device(tc.platform, tc.phase))
		if v.Eligible != (tc.code == 0) || v.Code != tc.code {
			t.Errorf("%s on %s/%s: %+v, want code %d", tc.action, tc.platform, tc.phase, v, tc.code)
		}
		if !v.Eligible && v.Reason == "" {
			t.Errorf("%s on %s/%s: no reason", tc.action, tc.platform, tc.phase)
		}
	}
}

func TestEveryActionHasARow(t *testing.T) {
	for _, a := range []mdmv1alpha1.ActionType{"Lock", "Unlock", "Wipe", "Retire", "Unenroll", "Restart", "Sync", "SendMessage",
		"LogoutUser", "UpdateOS", "ReinstallConfiguration", "SyncCompliance", "EnterKiosk", "ExitKiosk", "EnableLostMode",
		"DisableLostMode", "Relinquish", "CancelRelinquish", "Disable", "Reenable", "Deprovision"} {
		if len(platforms[a]) == 0 {
			t.Errorf("%s has no platforms in the table", a)
		}
	}
}
