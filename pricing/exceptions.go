package pricing

import (
	_ "embed"
	"fmt"
	"regexp"
	"strings"

	"github.com/aivis-dev/aivis/internal/yamlstrict"
)

//go:embed defaults/exceptions.yaml
var defaultExceptionsYAML []byte

// Exceptions are reviewed differences between the catalog and a source:
// each says which source, model and meter, why the catalog is right (or
// why the difference does not matter) and where that is documented. A
// difference an exception covers does not fail `aivis catalog diff`.
type Exceptions struct {
	list []exception
}

type exceptionsFile struct {
	Exceptions []exceptionSpec `yaml:"exceptions"`
}

type exceptionSpec struct {
	// Source is the name the diff was run with: litellm, genai-prices, or
	// the label given to --source-name; "*" for every source.
	Source   string `yaml:"source"`
	Provider string `yaml:"provider,omitempty"`
	Model    string `yaml:"model"`
	Meter    string `yaml:"meter,omitempty"`
	Kind     string `yaml:"kind,omitempty"`
	Reason   string `yaml:"reason"`
	URL      string `yaml:"url"`
}

type exception struct {
	spec                           exceptionSpec
	source, provider, model, meter *regexp.Regexp
}

// DefaultExceptions returns the reviewed exceptions embedded from
// defaults/exceptions.yaml, which hold the default catalog against the
// pinned sources in testdata/sources.
func DefaultExceptions() (*Exceptions, error) {
	x, err := ParseExceptions(defaultExceptionsYAML)
	if err != nil {
		return nil, fmt.Errorf("parsing the embedded exceptions: %w", err)
	}
	return x, nil
}

// LoadExceptions reads an exceptions file.
func LoadExceptions(path string) (*Exceptions, error) {
	data, err := yamlstrict.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("opening exceptions %q: %w", path, err)
	}
	x, err := ParseExceptions(data)
	if err != nil {
		return nil, fmt.Errorf("loading exceptions %q: %w", path, err)
	}
	return x, nil
}

// ParseExceptions parses an exceptions document. source, model, reason
// and url are required; source, provider, model and meter are globs in
// which * matches any run of characters, provider and meter default to *.
func ParseExceptions(data []byte) (*Exceptions, error) {
	var f exceptionsFile
	if err := yamlstrict.Decode(data, &f); err != nil {
		return nil, fmt.Errorf("decoding exceptions YAML: %w", err)
	}
	p := yamlstrict.Problems{}
	x := &Exceptions{}
	for i, s := range f.Exceptions {
		path := fmt.Sprintf("exceptions[%d]", i)
		for _, req := range []struct{ key, v string }{{"source", s.Source}, {"model", s.Model}, {"reason", s.Reason}, {"url", s.URL}} {
			if strings.TrimSpace(req.v) == "" {
				p.Add(path+"."+req.key, "is required: every exception says which source and model, why, and where that is documented")
			}
		}
		if s.URL != "" && !strings.HasPrefix(s.URL, "https://") && !strings.HasPrefix(s.URL, "http://") {
			p.Add(path+".url", "%q must be an http(s) address", s.URL)
		}
		switch s.Kind {
		case "", DiffPrice, DiffOnlyInCatalog, DiffOnlyInSource:
		default:
			p.Add(path+".kind", "%q must be %s, %s or %s", s.Kind, DiffPrice, DiffOnlyInCatalog, DiffOnlyInSource)
		}
		x.list = append(x.list, exception{
			spec: s, source: glob(s.Source), provider: glob(s.Provider),
			model: glob(s.Model), meter: glob(s.Meter),
		})
	}
	if err := p.Err(); err != nil {
		return nil, err
	}
	return x, nil
}

// glob compiles a pattern in which * matches any run of characters; an
// empty pattern matches everything.
func glob(s string) *regexp.Regexp {
	if s == "" {
		s = "*"
	}
	return regexp.MustCompile("^" + strings.ReplaceAll(regexp.QuoteMeta(s), `\*`, ".*") + "$")
}

// Filter splits diffs into those no exception covers and counts, per
// exception in file order, how many differences it covered.
func (x *Exceptions) Filter(source string, diffs []Difference) (open []Difference, used []int) {
	if x == nil {
		return diffs, nil
	}
	used = make([]int, len(x.list))
	for _, d := range diffs {
		covered := false
		for i := range x.list {
			if x.list[i].covers(source, d) {
				used[i]++
				covered = true
				break
			}
		}
		if !covered {
			open = append(open, d)
		}
	}
	return open, used
}

// Describe names exception i for messages: its source, provider, model
// and meter.
func (x *Exceptions) Describe(i int) string {
	s := x.list[i].spec
	return fmt.Sprintf("exceptions[%d] source %s provider %s model %s meter %s", i, s.Source, orStar(s.Provider), s.Model, orStar(s.Meter))
}

func orStar(s string) string {
	if s == "" {
		return "*"
	}
	return s
}

func (e *exception) covers(source string, d Difference) bool {
	if e.spec.Kind != "" && e.spec.Kind != d.Kind {
		return false
	}
	return e.source.MatchString(source) && e.provider.MatchString(d.Provider) &&
		e.model.MatchString(d.Model) && e.meter.MatchString(d.Meter)
}
