package bus

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/schemas"
)

// TestHideHeaderSecrets: headers named like credentials carry their
// APIKeyID, the others pass unchanged, and the input is not written to.
func TestHideHeaderSecrets(t *testing.T) {
	in := []kgo.RecordHeader{
		{Key: "traceparent", Value: []byte("00-abc-def-01")},
		{Key: "Authorization", Value: []byte("Bearer sk-live-123")},
		{Key: "X-Api-Key", Value: []byte("sk-other")},
		{Key: "content-type", Value: []byte("application/json")},
		{Key: "cookie"},
	}
	out := HideHeaderSecrets(in)
	want := []string{"00-abc-def-01", schemas.APIKeyID("Bearer sk-live-123"), schemas.APIKeyID("sk-other"), "application/json", ""}
	for i, h := range out {
		if h.Key != in[i].Key || string(h.Value) != want[i] {
			t.Errorf("header %d: %s=%q, want %s=%q", i, h.Key, h.Value, in[i].Key, want[i])
		}
	}
	if string(in[1].Value) != "Bearer sk-live-123" {
		t.Errorf("the input was changed: %q", in[1].Value)
	}
	plain := in[:1]
	if got := HideHeaderSecrets(plain); &got[0] != &plain[0] {
		t.Errorf("headers with nothing to hide were copied")
	}
	if HideHeaderSecrets(nil) != nil {
		t.Errorf("no headers became some")
	}
}
