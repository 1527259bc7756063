package adapters

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkAnthropicNormalize measures decoding and normalizing one
// envelope carrying a full Messages response with cache reads and writes.
func BenchmarkAnthropicNormalize(b *testing.B) {
	data, err := os.ReadFile(filepath.Join("testdata", "anthropic", "cache_read_write_5m_1h", "input.json"))
	if err != nil {
		b.Fatal(err)
	}
	a, _ := Lookup("anthropic")
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		env, err := DecodeEnvelope(data)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := a.Normalize(env); err != nil {
			b.Fatal(err)
		}
	}
}
