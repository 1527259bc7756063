package adapters

import (
	"encoding/json"
	"os"
	"testing"
)

// A LiteLLM generic_api callback posts the payload itself; it must
// normalize like the same payload inside an envelope.
func TestDecodeForTakesNativeLiteLLMPayloads(t *testing.T) {
	raw, err := os.ReadFile("testdata/litellm/openai_callback/input.json")
	if err != nil {
		t.Fatal(err)
	}
	var wrapped struct {
		Response json.RawMessage `json:"response"`
	}
	if err := json.Unmarshal(raw, &wrapped); err != nil {
		t.Fatal(err)
	}
	a, _ := Lookup("litellm")
	env, err := DecodeFor(a, wrapped.Response)
	if err != nil {
		t.Fatal(err)
	}
	if env.Source != "litellm" {
		t.Fatalf("source = %q, want litellm", env.Source)
	}
	ev, err := a.Normalize(env)
	if err != nil {
		t.Fatal(err)
	}
	if ev.EventID == "" || ev.Usage == nil || ev.ProviderCostUSD == "" {
		t.Fatalf("native payload normalized to %+v", ev)
	}
	// An envelope is still an envelope, and other adapters never unwrap.
	if env, err := DecodeFor(a, raw); err != nil || env.Source == "litellm" {
		t.Fatalf("envelope decoded as native: %+v, %v", env, err)
	}
	o, _ := Lookup("openai")
	if _, err := DecodeFor(o, wrapped.Response); err == nil {
		t.Fatal("the openai adapter accepted a bare LiteLLM payload")
	}
}
