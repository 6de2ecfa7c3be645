package controllers

import (
	"testing"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

func TestFinalPhase(t *testing.T) {
	rows := func(phases ...mdmv1alpha1.DeviceCommandPhase) []mdmv1alpha1.DeviceResult {
		var out []mdmv1alpha1.DeviceResult
		for _, p := range phases {
			out = append(out, mdmv1alpha1.DeviceResult{Phase: p})
		}
		return out
	}
	for name, tc := range map[string]struct {
		rows []mdmv1alpha1.DeviceResult
		want mdmv1alpha1.ActionPhase
	}{
		"open rows":           {rows(mdmv1alpha1.CommandSucceeded, mdmv1alpha1.CommandQueued), ""},
		"delivered":           {rows(mdmv1alpha1.CommandDelivered), ""},
		"all succeeded":       {rows(mdmv1alpha1.CommandSucceeded, mdmv1alpha1.CommandSucceeded), mdmv1alpha1.ActionSucceeded},
		"some":                {rows(mdmv1alpha1.CommandSucceeded, mdmv1alpha1.CommandIneligible), mdmv1alpha1.ActionPartiallySucceeded},
		"none":                {rows(mdmv1alpha1.CommandFailed, mdmv1alpha1.CommandIneligible), mdmv1alpha1.ActionFailed},
		"all expired":         {rows(mdmv1alpha1.CommandExpired, mdmv1alpha1.CommandExpired), mdmv1alpha1.ActionExpired},
		"expired, ineligible": {rows(mdmv1alpha1.CommandExpired, mdmv1alpha1.CommandIneligible), mdmv1alpha1.ActionExpired},
		"expired and failed":  {rows(mdmv1alpha1.CommandExpired, mdmv1alpha1.CommandFailed), mdmv1alpha1.ActionFailed},
		"no rows":             {nil, mdmv1alpha1.ActionFailed},
	} {
		if got := finalPhase(summarize(tc.rows)); got != tc.want {
			t.Errorf("%s: %q, want %q", name, got, tc.want)
		}
	}
}
