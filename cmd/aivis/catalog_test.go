package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLICatalogCheck runs aivis catalog check on the built-in catalog, as
// CI does: it must load; stale entries are warnings only.
func TestCLICatalogCheck(t *testing.T) {
	code, stdout, stderr := runCLI("catalog", "check")
	if code != 0 || !strings.Contains(stdout, "the built-in catalog loads") {
		t.Fatalf("exit %d:\n%s%s", code, stdout, stderr)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("catalog_version: x\ncurrency: EUR\nmodels: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runCLI("catalog", "check", "--catalog", bad)
	if code != 1 || !strings.Contains(stderr, "currency") {
		t.Errorf("broken catalog: exit %d, want 1 naming the problem:\n%s", code, stderr)
	}
	old := filepath.Join(t.TempDir(), "old.yaml")
	if err := os.WriteFile(old, []byte(`catalog_version: x
currency: USD
models:
  - id: a
    provider: p
    match: {models: [a]}
    effective_from: 2024-01-01T00:00:00Z
    rates: {input: "1", output: "2"}
    source_url: https://example.com/pricing
    retrieved_at: 2020-01-01
`), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = runCLI("catalog", "check", "--catalog", old, "--max-age-days", "30")
	if code != 0 || !strings.Contains(stdout, "warning: models[0](a@2024-01-01T00:00:00Z): retrieved_at 2020-01-01 is") {
		t.Errorf("stale entry: exit %d, want 0 with a warning:\n%s%s", code, stdout, stderr)
	}
}

// TestCLICatalogDiff diffs the built-in catalog against the pinned
// sources (clean under the built-in exceptions) and against itself with
// a changed price (one difference, exit 1).
func TestCLICatalogDiff(t *testing.T) {
	sources := filepath.Join("..", "..", "pricing", "testdata", "sources")
	for _, f := range []string{"litellm-model-prices.json.gz", "genai-prices.json.gz"} {
		code, stdout, stderr := runCLI("catalog", "diff", "--against", filepath.Join(sources, f))
		if code != 0 || !strings.Contains(stdout, ", 0 not\n") {
			t.Errorf("%s: exit %d:\n%s%s", f, code, stdout, stderr)
		}
	}
	changed := filepath.Join(t.TempDir(), "changed.yaml")
	data, err := os.ReadFile(filepath.Join("..", "..", "pricing", "defaults", "catalog.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	data = []byte(strings.Replace(string(data), `rates: {input: "2.50", cache_read_input: "1.25", output: "10.00"}`, `rates: {input: "2.75", cache_read_input: "1.25", output: "10.00"}`, 1))
	if err := os.WriteFile(changed, data, 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCLI("catalog", "diff", "--against", changed, "--format", "aivis", "--source-name", "mine")
	want := "openai gpt-4o @2024-05-13 standard/input: catalog 2.5 (openai/gpt-4o@2024-05-13T00:00:00Z), source 2.75 (openai/gpt-4o@2024-05-13T00:00:00Z)"
	if code != 1 || !strings.Contains(stdout, want) || !strings.Contains(stderr, "not covered by an exception") {
		t.Errorf("changed price: exit %d, want 1 listing %q:\n%s%s", code, want, stdout, stderr)
	}
}
