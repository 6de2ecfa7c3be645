package agent

import (
	"fmt"
	"strings"
	"unicode/utf8"

	agentv1 "github.com/kubemdm/kubemdm/api/agent/v1"
)

// The gateway refuses a report with more than these, as the Device status
// schema would; a platform may say more (a long dpkg error, hundreds of
// failing settings), so the report is cut to fit rather than refused.
const (
	maxReportedConfigurations = 64
	maxReportedSettings       = 256
	maxReportedMessage        = 1024
	maxReportedPath           = 1100
	maxReportedField          = 256
)

// TrimFacts cuts the configurations' states of a report to the gateway's
// limits, saying what it left out.
func TrimFacts(f *agentv1.Facts) {
	if n := len(f.GetConfigurations()); n > maxReportedConfigurations {
		f.Configurations = f.Configurations[:maxReportedConfigurations]
	}
	for _, c := range f.GetConfigurations() {
		c.Message = truncate(strings.ToValidUTF8(c.GetMessage(), "\uFFFD"), maxReportedMessage)
		if n := len(c.GetSettings()); n > maxReportedSettings {
			kept := c.Settings[:maxReportedSettings-1]
			last := c.Settings[maxReportedSettings-1]
			c.Settings = append(kept, &agentv1.SettingState{Path: "…", Reason: last.GetReason(),
				Message: fmt.Sprintf("and %d more settings", n-len(kept))})
		}
		for _, s := range c.GetSettings() {
			// Tool output (dpkg's) need not be UTF-8.
			s.Message = truncate(strings.ToValidUTF8(s.GetMessage(), "\uFFFD"), maxReportedMessage)
			s.Path = truncate(strings.ToValidUTF8(s.GetPath(), "\uFFFD"), maxReportedPath)
			s.Current = truncate(strings.ToValidUTF8(s.GetCurrent(), "\uFFFD"), maxReportedField)
		}
	}
}

// truncate cuts s to at most max bytes on a rune boundary, ending in "…".
func truncate(s string, max int) string {
	if len(s) <= max {
		return s
	}
	const ellipsis = "…"
	cut := max - len(ellipsis)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ellipsis
}
