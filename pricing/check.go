package pricing

import (
	"fmt"
	"time"

	"github.com/aivis-dev/aivis/internal/yamlstrict"
)

// Finding is one warning of CheckCatalog about an entry that loads but
// should be looked at.
type Finding struct {
	Entry   string // "models[3](openai/gpt-4o)"
	Problem string
}

func (f Finding) String() string { return f.Entry + ": " + f.Problem }

// CheckCatalog parses a catalog document and returns ParseCatalog's error
// for structural problems. For a catalog that loads, it lists entries
// without source_url or retrieved_at, with a retrieved_at older than
// maxAge at now, or with one in the future: prices nobody has re-read
// recently enough to sign off.
func CheckCatalog(data []byte, now time.Time, maxAge time.Duration) ([]Finding, error) {
	if _, err := ParseCatalog(data); err != nil {
		return nil, err
	}
	var f catalogFile
	if err := yamlstrict.Decode(data, &f); err != nil {
		return nil, fmt.Errorf("decoding catalog YAML: %w", err)
	}
	var out []Finding
	check := func(entry, url, retrieved string) {
		if url == "" {
			out = append(out, Finding{entry, "has no source_url: say where the price was read"})
		}
		if retrieved == "" {
			out = append(out, Finding{entry, "has no retrieved_at: say when the price was read"})
			return
		}
		t, err := time.Parse(time.DateOnly, retrieved)
		if err != nil {
			t, _ = time.Parse(time.RFC3339, retrieved) // ParseCatalog accepted one of the two
		}
		switch age := now.Sub(t); {
		case age > maxAge:
			out = append(out, Finding{entry, fmt.Sprintf("retrieved_at %s is %d days old (more than %d); re-read %s and update it",
				retrieved, int(age.Hours()/24), int(maxAge.Hours()/24), orNone(url))})
		case age < -24*time.Hour:
			out = append(out, Finding{entry, fmt.Sprintf("retrieved_at %s is in the future", retrieved)})
		}
	}
	for i, m := range f.Models {
		check(fmt.Sprintf("models[%d](%s@%s)", i, m.ID, m.EffectiveFrom), m.SourceURL, m.RetrievedAt)
	}
	for i, g := range f.GPUs {
		check(fmt.Sprintf("gpus[%d](%s)", i, g.ID), g.SourceURL, g.RetrievedAt)
	}
	return out, nil
}

func orNone(s string) string {
	if s == "" {
		return "its source"
	}
	return s
}
