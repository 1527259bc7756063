package serving

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"

	"github.com/aivis-dev/aivis/internal/yamlstrict"
)

// TargetsFile is the file serving.targets_path names.
type TargetsFile struct {
	Targets []Target `yaml:"targets"`
}

// Target is one inference server's metrics endpoint.
type Target struct {
	// Deployment names what is being served (a Kubernetes Deployment, a
	// service); it is the label GPU cost is joined on.
	Deployment string `yaml:"deployment"`
	// URL is the server's Prometheus endpoint, e.g.
	// http://vllm.llm.svc:8000/metrics.
	URL string `yaml:"url"`
	// Kind is vllm, tgi, sglang or triton.
	Kind Kind `yaml:"kind"`
	// Model replaces the model the page names (required for tgi, whose
	// metrics carry no model label).
	Model string `yaml:"model"`
	// Host and Namespace are copied to the events' labels; Host defaults
	// to the URL's host name.
	Host      string `yaml:"host"`
	Namespace string `yaml:"namespace"`
	// Labels are added to every event of the target.
	Labels map[string]string `yaml:"labels"`
}

// Name identifies the target in logs and metrics.
func (t Target) Name() string { return t.Deployment + "@" + t.URL }

// MaxTargets bounds the file, and with it the per-target metric series.
const MaxTargets = 1000

// reservedLabels are set by the scraper; a target cannot override them.
var reservedLabels = []string{"deployment", "host", "namespace", "serving"}

var (
	deploymentPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$`)
	labelKeyPattern   = regexp.MustCompile(`^[A-Za-z0-9_.:/-]{1,128}$`)
)

// LoadTargets reads and validates a targets file.
func LoadTargets(path string) ([]Target, error) {
	data, err := yamlstrict.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading serving targets %q: %w", path, err)
	}
	ts, err := ParseTargets(data)
	if err != nil {
		return nil, fmt.Errorf("serving targets %q: %w", path, err)
	}
	return ts, nil
}

// ParseTargets decodes a targets file strictly and validates it, reporting
// every problem with its path (targets[2].kind: …).
func ParseTargets(data []byte) ([]Target, error) {
	var f TargetsFile
	if err := yamlstrict.Decode(data, &f); err != nil {
		return nil, err
	}
	var p yamlstrict.Problems
	if len(f.Targets) == 0 {
		p.Add("targets", "lists no target; add at least one (deployment, url, kind)")
	}
	if len(f.Targets) > MaxTargets {
		p.Add("targets", "%d targets are more than the limit of %d", len(f.Targets), MaxTargets)
	}
	seen := map[string]int{}
	out := make([]Target, 0, len(f.Targets))
	for i, t := range f.Targets {
		at := fmt.Sprintf("targets[%d]", i)
		switch {
		case t.Deployment == "":
			p.Add(at+".deployment", "is required: the name GPU cost is joined on (e.g. the Kubernetes Deployment)")
		case !deploymentPattern.MatchString(t.Deployment):
			p.Add(at+".deployment", "%q must be 1-128 letters, digits, _ . : / - starting with a letter or digit", t.Deployment)
		}
		u, err := url.Parse(t.URL)
		switch {
		case t.URL == "":
			p.Add(at+".url", "is required (e.g. http://vllm:8000/metrics)")
		case err != nil:
			p.Add(at+".url", "%q is not a URL: %v", t.URL, err)
		case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
			p.Add(at+".url", "%q must be an http:// or https:// URL with a host", t.URL)
		default:
			if t.Host == "" {
				t.Host = u.Hostname()
			}
		}
		if !slices.Contains(Kinds, t.Kind) {
			p.Add(at+".kind", "%q must be one of %v", t.Kind, Kinds)
		}
		if t.Kind == TGI && t.Model == "" {
			p.Add(at+".model", "is required for kind tgi: its metrics carry no model name (use the --model-id the server was started with)")
		}
		if len(t.Model) > 256 {
			p.Add(at+".model", "is longer than 256 bytes")
		}
		if len(t.Labels) > 32 {
			p.Add(at+".labels", "has %d entries, the limit is 32", len(t.Labels))
		}
		for k, v := range t.Labels {
			switch {
			case slices.Contains(reservedLabels, k):
				p.Add(at+".labels."+k, "is set by aivis serving; use the target's own %s field", k)
			case !labelKeyPattern.MatchString(k):
				p.Add(at+".labels."+k, "the key must be 1-128 letters, digits, _ . : / -")
			case len(v) > 256:
				p.Add(at+".labels."+k, "the value is longer than 256 bytes")
			}
		}
		key := t.Deployment + "\x00" + t.URL
		if j, dup := seen[key]; dup {
			p.Add(at, "deployment %q at %s is also targets[%d]; each endpoint is scraped once", t.Deployment, t.URL, j)
		}
		seen[key] = i
		out = append(out, t)
	}
	if err := p.Err(); err != nil {
		return nil, err
	}
	return out, nil
}
