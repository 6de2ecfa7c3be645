package controllers

import (
	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// summarize counts the rows per phase.
func summarize(rows []mdmv1alpha1.DeviceResult) *mdmv1alpha1.ActionSummary {
	s := &mdmv1alpha1.ActionSummary{Total: int32(len(rows))}
	for _, r := range rows {
		switch r.Phase {
		case mdmv1alpha1.CommandIneligible:
			s.Ineligible++
		case mdmv1alpha1.CommandPending:
			s.Pending++
		case mdmv1alpha1.CommandQueued:
			s.Queued++
		case mdmv1alpha1.CommandDelivered:
			s.Delivered++
		case mdmv1alpha1.CommandSucceeded:
			s.Succeeded++
		case mdmv1alpha1.CommandFailed:
			s.Failed++
		case mdmv1alpha1.CommandExpired:
			s.Expired++
		case mdmv1alpha1.CommandCanceled:
			s.Canceled++
		}
	}
	return s
}

// finalPhase is the action's phase once no row is open, or "" while some
// still are: all succeeded is Succeeded, none is Failed (Expired when every
// open row ran out of time), anything between is PartiallySucceeded.
func finalPhase(s *mdmv1alpha1.ActionSummary) mdmv1alpha1.ActionPhase {
	switch {
	case s.Pending+s.Queued+s.Delivered > 0:
		return ""
	case s.Total > 0 && s.Succeeded == s.Total:
		return mdmv1alpha1.ActionSucceeded
	case s.Succeeded > 0:
		return mdmv1alpha1.ActionPartiallySucceeded
	case s.Expired > 0 && s.Expired == s.Total-s.Ineligible-s.Failed && s.Failed == 0:
		return mdmv1alpha1.ActionExpired
	}
	return mdmv1alpha1.ActionFailed
}
