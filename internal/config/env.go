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
// provider and collects the problems, so that Load reports them all. Every
// AIVIS_ variable must be a key: one that is not (a typo, or a variable
// meant for something else) is an error that names it, rather than a
// setting silently ignored or a decode error about a key nobody wrote.
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
		r.errs = append(r.errs, r.stray(name))
		return "", nil
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

// stray explains an AIVIS_ variable that is no key: a near miss gets the
// right name; anything else is told how keys are spelled, and that the
// scripts' and tests' variables start with AIVISDEV_.
func (r *envReader) stray(name string) error {
	rest := strings.TrimPrefix(name, EnvPrefix)
	dev := "AIVISDEV_" + rest
	if k, ok := r.nearMiss(rest); ok {
		return fmt.Errorf("environment variable %s matches no configuration key: did you mean %s (%s; levels are separated by a double underscore), or %s if it is meant for deploy/scripts or the tests?", name, k.env(), k.path, dev)
	}
	return fmt.Errorf("environment variable %s matches no configuration key (keys are %sSECTION__KEY, e.g. %sKAFKA__BROKERS for kafka.brokers; aivis <command> --help lists them); unset it, or rename it %s if it is meant for deploy/scripts or the tests", name, EnvPrefix, EnvPrefix, dev)
}

// nearMiss finds the one key that rest names when underscores and case are
// ignored (AGGREGATE_INSTANCE_ID for aggregate.instance_id).
func (r *envReader) nearMiss(rest string) (key, bool) {
	squash := func(s string) string {
		return strings.ToLower(strings.NewReplacer("_", "", ".", "").Replace(s))
	}
	var found []key
	for _, k := range r.keys {
		if squash(k.path) == squash(rest) {
			found = append(found, k)
		}
	}
	if len(found) != 1 {
		return key{}, false
	}
	return found[0], true
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
