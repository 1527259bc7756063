package otlp

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/aivis-dev/aivis/internal/testenv"
	"github.com/aivis-dev/aivis/schemas"
)

var update = flag.Bool("update", false, "rewrite testdata/*/expected.json from Convert's output")

// goldenResult is what expected.json holds.
type goldenResult struct {
	Events   []*schemas.Event `json:"events"`
	Rejected []goldenRejected `json:"rejected,omitempty"`
	Skipped  int              `json:"skipped"`
}

type goldenRejected struct {
	TraceID  string               `json:"trace_id"`
	SpanID   string               `json:"span_id"`
	Name     string               `json:"name"`
	Problems []schemas.FieldError `json:"problems"`
}

func golden(res Result) goldenResult {
	g := goldenResult{Events: res.Events, Skipped: res.Skipped}
	for _, r := range res.Rejected {
		g.Rejected = append(g.Rejected, goldenRejected{r.TraceID, r.SpanID, r.Name, r.Problems})
	}
	return g
}

func goldenDirs(t testing.TB) []string {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join("testdata", "*", "input.json"))
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range dirs {
		dirs[i] = filepath.Dir(d)
	}
	return dirs
}

// TestGolden converts each testdata/<case>/input.json (OTLP JSON) and
// compares with expected.json; the same request re-encoded as protobuf
// must convert to the same result.
func TestGolden(t *testing.T) {
	dirs := goldenDirs(t)
	if len(dirs) < 5 {
		t.Fatalf("found %d golden cases under testdata, want at least 5", len(dirs))
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			input, err := os.ReadFile(filepath.Join(dir, "input.json"))
			if err != nil {
				t.Fatal(err)
			}
			td, err := Decode(input, JSON)
			if err != nil {
				t.Fatal(err)
			}
			got := encodeGolden(t, golden(Convert(td)))
			testenv.Golden(t, filepath.Join(dir, "expected.json"), got, *update)

			pb, err := proto.Marshal(td)
			if err != nil {
				t.Fatal(err)
			}
			td2, err := Decode(pb, Protobuf)
			if err != nil {
				t.Fatalf("decoding the protobuf encoding of the JSON request: %v", err)
			}
			if fromPB := encodeGolden(t, golden(Convert(td2))); !bytes.Equal(fromPB, got) {
				t.Errorf("protobuf encoding converts differently:\n--- protobuf\n%s\n--- JSON\n%s", fromPB, got)
			}
		})
	}
}

func encodeGolden(t testing.TB, g goldenResult) []byte {
	t.Helper()
	b, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}
