// Package eligibility is the one table that says which action a device can
// run: by action, platform and device phase. The DeviceAction controller,
// dry runs and the admission webhook's warnings all ask it.
package eligibility

import (
	"fmt"
	"slices"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// Verdict is whether a device can run an action and, if not, the google.rpc
// code and the reason for its status row.
type Verdict struct {
	Eligible bool
	Code     int32
	Reason   string
}

var (
	all      = []mdmv1alpha1.Platform{mdmv1alpha1.PlatformAndroid, mdmv1alpha1.PlatformAndroidAOSP, mdmv1alpha1.PlatformIOS, mdmv1alpha1.PlatformChromeOS, mdmv1alpha1.PlatformWindows, mdmv1alpha1.PlatformLinux}
	android  = []mdmv1alpha1.Platform{mdmv1alpha1.PlatformAndroid, mdmv1alpha1.PlatformAndroidAOSP}
	lostMode = []mdmv1alpha1.Platform{mdmv1alpha1.PlatformIOS, mdmv1alpha1.PlatformAndroid, mdmv1alpha1.PlatformAndroidAOSP}
	sessions = []mdmv1alpha1.Platform{mdmv1alpha1.PlatformIOS, mdmv1alpha1.PlatformChromeOS, mdmv1alpha1.PlatformWindows, mdmv1alpha1.PlatformLinux}
	chromeOS = []mdmv1alpha1.Platform{mdmv1alpha1.PlatformChromeOS}
)

// platforms is the table: the platforms each action is implemented on.
var platforms = map[mdmv1alpha1.ActionType][]mdmv1alpha1.Platform{
	mdmv1alpha1.ActionLock:                   all,
	mdmv1alpha1.ActionUnlock:                 all,
	mdmv1alpha1.ActionWipe:                   all,
	mdmv1alpha1.ActionRetire:                 all,
	mdmv1alpha1.ActionUnenroll:               all,
	mdmv1alpha1.ActionRestart:                all,
	mdmv1alpha1.ActionSync:                   all,
	mdmv1alpha1.ActionSendMessage:            all,
	mdmv1alpha1.ActionLogoutUser:             sessions,
	mdmv1alpha1.ActionUpdateOS:               all,
	mdmv1alpha1.ActionReinstallConfiguration: all,
	mdmv1alpha1.ActionSyncCompliance:         all,
	mdmv1alpha1.ActionEnterKiosk:             android,
	mdmv1alpha1.ActionExitKiosk:              android,
	mdmv1alpha1.ActionEnableLostMode:         lostMode,
	mdmv1alpha1.ActionDisableLostMode:        lostMode,
	mdmv1alpha1.ActionRelinquish:             android,
	mdmv1alpha1.ActionCancelRelinquish:       android,
	mdmv1alpha1.ActionDisable:                all,
	mdmv1alpha1.ActionReenable:               all,
	mdmv1alpha1.ActionDeprovision:            chromeOS,
}

// whileDisabled are the actions a Disabled (lost or stolen) device still
// takes: bringing it back, or the ways to be done with it.
var whileDisabled = []mdmv1alpha1.ActionType{mdmv1alpha1.ActionReenable, mdmv1alpha1.ActionWipe, mdmv1alpha1.ActionRetire,
	mdmv1alpha1.ActionUnenroll, mdmv1alpha1.ActionDeprovision}

// whileWipePending are the actions a device with a wipe pending still takes:
// a wipe whose device never answered leaves it pending, and these are the
// ways to be done with it.
var whileWipePending = []mdmv1alpha1.ActionType{mdmv1alpha1.ActionWipe, mdmv1alpha1.ActionRetire, mdmv1alpha1.ActionDeprovision}

// Check decides whether device can run action.
func Check(action mdmv1alpha1.ActionType, device *mdmv1alpha1.Device) Verdict {
	phase := device.Status.Phase
	switch {
	case !slices.Contains(platforms[action], device.Spec.Platform):
		return Verdict{Code: mdmv1alpha1.CodeUnimplemented,
			Reason: fmt.Sprintf("%s is not available on %s devices", action, device.Spec.Platform)}
	case phase == "" || phase == mdmv1alpha1.DeviceRegistered:
		return Verdict{Code: mdmv1alpha1.CodeFailedPrecondition, Reason: "the device has not enrolled yet"}
	case !phase.Managed():
		return Verdict{Code: mdmv1alpha1.CodeFailedPrecondition, Reason: fmt.Sprintf("the device is %s and no longer managed", phase)}
	case phase == mdmv1alpha1.DeviceWipePending && !slices.Contains(whileWipePending, action):
		return Verdict{Code: mdmv1alpha1.CodeFailedPrecondition, Reason: "a wipe is pending on the device; only Wipe, Retire and Deprovision are allowed"}
	case phase == mdmv1alpha1.DeviceDisabled && !slices.Contains(whileDisabled, action):
		return Verdict{Code: mdmv1alpha1.CodeFailedPrecondition, Reason: "the device is Disabled; only Reenable, Wipe, Retire, Unenroll and Deprovision are allowed"}
	case phase != mdmv1alpha1.DeviceDisabled && action == mdmv1alpha1.ActionReenable:
		return Verdict{Code: mdmv1alpha1.CodeFailedPrecondition, Reason: "the device is not Disabled"}
	}
	return Verdict{Eligible: true}
}
