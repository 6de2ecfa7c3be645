package gateway

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/kubemdm/kubemdm/agent"
	agentv1 "github.com/kubemdm/kubemdm/api/agent/v1"
)

// TestTrimmedFactsAreTaken: what an agent says beyond the gateway's limits
// is cut to fit by the agent, saying what it left out, on a rune boundary,
// and the gateway takes the report.
func TestTrimmedFactsAreTaken(t *testing.T) {
	long := strings.Repeat("é", 600) // 1,200 bytes
	var settings []*agentv1.SettingState
	for i := range 300 {
		settings = append(settings, &agentv1.SettingState{Path: fmt.Sprintf("files[/etc/%d]", i), Reason: "Failed", Message: long})
	}
	var configs []*agentv1.ConfigurationState
	for i := range 70 {
		configs = append(configs, &agentv1.ConfigurationState{Name: fmt.Sprintf("c%d", i), State: "Failed", Message: long})
	}
	configs[0].Settings = settings
	// dpkg's output, cut mid-rune, and a path longer than any allowed
	configs[1].Settings = []*agentv1.SettingState{{Path: "files[/" + strings.Repeat("p", 1200) + "]", Reason: "Failed", Message: "dpkg: \xe9\xff error"}}
	f := &agentv1.Facts{Configurations: configs}
	agent.TrimFacts(f)
	if err := validateFacts(f); err != nil {
		t.Fatalf("trimmed facts still refused: %v", err)
	}
	c := f.GetConfigurations()[0]
	if len(f.GetConfigurations()) != 64 || len(c.GetSettings()) != 256 {
		t.Errorf("%d configurations, %d settings; want 64 and 256", len(f.GetConfigurations()), len(c.GetSettings()))
	}
	if last := c.GetSettings()[255]; last.GetMessage() != "and 45 more settings" {
		t.Errorf("the last setting says %q", last.GetMessage())
	}
	if !utf8.ValidString(c.GetMessage()) || len(c.GetMessage()) > 1024 || !strings.HasSuffix(c.GetMessage(), "…") {
		t.Errorf("message cut to %d bytes, valid UTF-8 %v", len(c.GetMessage()), utf8.ValidString(c.GetMessage()))
	}
}
