package adapters

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// fuzzAdapter seeds f with the adapter's golden inputs and checks that
// Normalize never panics and that every event it returns validates and
// encodes.
func fuzzAdapter(f *testing.F, name string) {
	a, ok := Lookup(name)
	if !ok {
		f.Fatalf("no adapter %q", name)
	}
	inputs, err := filepath.Glob(filepath.Join("testdata", name, "*", "input.json"))
	if err != nil || len(inputs) == 0 {
		f.Fatalf("no golden inputs for %s: %v", name, err)
	}
	for _, p := range inputs {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"event_id":"x","time":"2026-01-01T00:00:00Z","source":"s","request_model":"m","response":{}}`))
	f.Add([]byte(`{"event_id":"x","time":"2026-01-01T00:00:00Z","source":"s","request_model":"m","response":{"usage":null}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := DecodeEnvelope(data)
		if err != nil {
			return
		}
		ev, err := a.Normalize(env)
		if err != nil {
			if ev != nil {
				t.Fatalf("Normalize returned both an event and an error: %v", err)
			}
			return
		}
		if err := ev.Validate(); err != nil {
			t.Fatalf("Normalize returned an invalid event: %v", err)
		}
		if _, err := json.Marshal(ev); err != nil {
			t.Fatalf("encoding the normalized event: %v", err)
		}
	})
}

func FuzzOpenAI(f *testing.F)    { fuzzAdapter(f, "openai") }
func FuzzAnthropic(f *testing.F) { fuzzAdapter(f, "anthropic") }
func FuzzGemini(f *testing.F)    { fuzzAdapter(f, "gemini") }
func FuzzBedrock(f *testing.F)   { fuzzAdapter(f, "bedrock") }
func FuzzLiteLLM(f *testing.F)   { fuzzAdapter(f, "litellm") }
