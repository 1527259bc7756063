package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// EnvPrefix is the prefix of environment overrides. A double underscore
// separates levels: AIVIS_AGGREGATE__ALLOWED_LATENESS=2m sets
// aggregate.allowed_lateness.
const EnvPrefix = "AIVIS_"

// envReader turns AIVIS_ variables into key values for koanf's env
// provider and collects the problems, so that Load reports them all.
type envReader struct {
	keys map[string]key
	errs []error
}

func newEnvReader() *envReader {
	r := &envReader{keys: make(map[string]key)}
	for _, k := range keys() {
		r.keys[k.path] = k
	}
	return r
}

// transform maps AIVIS_SECTION__KEY to section.key. Lists of strings are
// comma-separated; keys that cannot be flags (lists of structs) are JSON.
func (r *envReader) transform(name, value string) (string, any) {
	path := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(name, EnvPrefix), "__", "."))
	k, ok := r.keys[path]
	switch {
	case !ok:
		// Left to the strict decode, which names the key.
		return path, value
	case k.flag() && k.value.Kind() == reflect.Slice:
		return path, splitList(value)
	case k.flag():
		return path, value
	}
	var v any
	if err := json.Unmarshal([]byte(value), &v); err != nil {
		r.errs = append(r.errs, fmt.Errorf("environment variable %s: %s is not valid JSON (%v); give it with the same structure as in the YAML file", name, path, err))
		return "", nil
	}
	return path, v
}

func (r *envReader) err() error {
	sort.Slice(r.errs, func(i, j int) bool { return r.errs[i].Error() < r.errs[j].Error() })
	return errors.Join(r.errs...)
}

// splitList splits a comma-separated list; empty items are dropped, so an
// empty variable is an empty list.
func splitList(s string) []string {
	out := []string{}
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
