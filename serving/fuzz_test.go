package serving

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzParse feeds arbitrary pages to every kind: Parse must return an error
// or a reading, never panic, and a reading must hold only counts a tracker
// can subtract.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.prom"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("vllm:prompt_tokens_total{model_name=\"m\"} 1e400\n"))
	f.Add([]byte("# TYPE x histogram\nx_bucket{le=\"1\"} 1\n"))
	f.Fuzz(func(t *testing.T, page []byte) {
		for _, k := range Kinds {
			r, err := Parse(k, page, "")
			if err != nil {
				continue
			}
			tr := NewTracker()
			tr.Observe("t", time.Unix(0, 0), r)
			for _, d := range tr.Observe("t", time.Unix(1, 0), r) {
				t.Fatalf("the same reading twice gave a delta: %+v", d)
			}
		}
	})
}
