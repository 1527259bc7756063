package testenv

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"
)

// GoldenJSON compares v, encoded as indented JSON with a final newline, with
// the golden file at path; with update it rewrites the file instead.
func GoldenJSON(t testing.TB, path string, v any, update bool) {
	t.Helper()
	got, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatalf("encoding the value for %s: %v", path, err)
	}
	Golden(t, path, append(got, '\n'), update)
}

// Golden compares got with the golden file at path; with update it
// rewrites the file instead. Check a rewritten file by hand before
// committing it.
func Golden(t testing.TB, path string, got []byte, update bool) {
	t.Helper()
	if update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file %s (run the test with -update to create it, then check it by hand): %v", path, err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}
