package gateway

import (
	"strings"
	"testing"

	agentv1 "github.com/kubemdm/kubemdm/api/agent/v1"
)

// A body the gateway cannot decode is explained with the protocol's message
// and field names, never the gateway's Go types.
func TestDecodeErrorsNameTheProtocol(t *testing.T) {
	for _, tc := range []struct {
		name  string
		codec interface{ Unmarshal([]byte, any) error }
		body  string
		want  []string
	}{
		{"wrong JSON type", jsonCodec{name: "json"}, `{"configGeneration":"x"}`, []string{"not a valid kubemdm.agent.v1.PollRequest in JSON", "configGeneration", `"x"`}},
		{"not JSON", jsonCodec{name: "json"}, `garbage`, []string{"kubemdm.agent.v1.PollRequest in JSON", "syntax error"}},
		{"empty JSON", jsonCodec{name: "json"}, ``, []string{"the body is empty; send {}"}},
		{"bad protobuf", protoCodec{}, "\x0a\x05ab", []string{"not a valid kubemdm.agent.v1.PollRequest in binary protobuf"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.codec.Unmarshal([]byte(tc.body), &agentv1.PollRequest{})
			if err == nil {
				t.Fatal("decoded a malformed body")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "agentv1") || strings.Contains(err.Error(), "proto:") {
				t.Errorf("%q names Go types or the library", err)
			}
		})
	}
	var msg agentv1.PollRequest
	if err := (jsonCodec{}).Unmarshal([]byte(`{"configGeneration":"7","fromANewerAgent":true}`), &msg); err != nil || msg.GetConfigGeneration() != 7 {
		t.Errorf("a well-formed body with an unknown field: %v, %v", err, msg.GetConfigGeneration())
	}
}

// Answers are compact JSON, the same bytes every time.
func TestJSONAnswersAreStable(t *testing.T) {
	resp := &agentv1.PollResponse{Config: &agentv1.DesiredConfig{Generation: 1, State: "Active"}}
	for range 20 {
		out, err := (jsonCodec{}).Marshal(resp)
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != `{"config":{"generation":"1","state":"Active"}}` {
			t.Fatalf("got %s", out)
		}
	}
}
