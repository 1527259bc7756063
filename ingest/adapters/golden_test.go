package adapters

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/aivis-dev/aivis/internal/testenv"
	"github.com/aivis-dev/aivis/schemas"
)

var update = flag.Bool("update", false, "rewrite testdata/*/*/expected.json from the adapters' output")

// goldenCase is one testdata/<adapter>/<case> folder.
type goldenCase struct {
	adapter, name, dir string
}

func goldenCases(t testing.TB) []goldenCase {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join("testdata", "*", "*"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []goldenCase
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "input.json")); err != nil {
			continue
		}
		cases = append(cases, goldenCase{adapter: filepath.Base(filepath.Dir(d)), name: filepath.Base(d), dir: d})
	}
	return cases
}

// goldenResult is what expected.json holds: the event, or the error.
type goldenResult struct {
	Event  *schemas.Event       `json:"event,omitempty"`
	Error  string               `json:"error,omitempty"`
	Fields []schemas.FieldError `json:"fields,omitempty"`
}

func normalizeFile(t testing.TB, adapter string, input []byte) goldenResult {
	t.Helper()
	a, ok := Lookup(adapter)
	if !ok {
		t.Fatalf("testdata folder %q names no adapter; want one of %v", adapter, Names())
	}
	env, err := DecodeEnvelope(input)
	if err != nil {
		return goldenResult{Error: err.Error()}
	}
	ev, err := a.Normalize(env)
	if err != nil {
		var verr *schemas.ValidationError
		if errors.As(err, &verr) {
			return goldenResult{Error: "invalid", Fields: verr.Problems}
		}
		return goldenResult{Error: err.Error()}
	}
	return goldenResult{Event: ev}
}

func TestGolden(t *testing.T) {
	cases := goldenCases(t)
	perAdapter := map[string]int{}
	for _, c := range cases {
		perAdapter[c.adapter]++
		t.Run(c.adapter+"/"+c.name, func(t *testing.T) {
			input, err := os.ReadFile(filepath.Join(c.dir, "input.json"))
			if err != nil {
				t.Fatal(err)
			}
			testenv.GoldenJSON(t, filepath.Join(c.dir, "expected.json"), normalizeFile(t, c.adapter, input), *update)
		})
	}
	for _, name := range Names() {
		if perAdapter[name] < 5 {
			t.Errorf("adapter %s has %d golden cases under testdata/%s, want at least 5", name, perAdapter[name], name)
		}
	}
}
