package config

import (
	"flag"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/aivis-dev/aivis/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite docs/configuration.md from the configuration structs")

// TestReferenceIsCurrent fails when a key, default or help text changed
// without docs/configuration.md being regenerated.
func TestReferenceIsCurrent(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	path := root + "/docs/configuration.md"
	if *update {
		testenv.Golden(t, path, []byte(Reference()), true)
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading %s (regenerate it with `go test ./internal/config -run TestReferenceIsCurrent -update`): %v", path, err)
	}
	if string(want) != Reference() {
		t.Fatalf("%s is out of date with internal/config; regenerate it with `go test ./internal/config -run TestReferenceIsCurrent -update` and commit it", path)
	}
	for _, k := range keys() {
		if strings.TrimSpace(k.help) == "" {
			t.Errorf("key %s has no help tag: the reference and --help would not describe it", k.path)
		}
	}
}

// exampleNotDefault are the keys whose example value is deliberately not
// the default: the example shows what a producer entry looks like.
var exampleNotDefault = []string{"ingest.producers"}

// TestExampleHasEveryKeyWithItsDefault keeps deploy/aivis.example.yaml's
// promise: every key, each with its built-in default, and nothing else.
func TestExampleHasEveryKeyWithItsDefault(t *testing.T) {
	b, err := os.ReadFile("../../deploy/aivis.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	inFile := map[string]bool{}
	var flatten func(prefix string, m map[string]any)
	flatten = func(prefix string, m map[string]any) {
		for name, v := range m {
			if sub, ok := v.(map[string]any); ok {
				flatten(prefix+name+".", sub)
				continue
			}
			inFile[prefix+name] = true
		}
	}
	flatten("", doc)

	c, err := load(t, []string{"--config", "../../deploy/aivis.example.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	loaded := map[string]reflect.Value{}
	var got []key
	walk(reflect.ValueOf(c), "", &got)
	for _, k := range got {
		loaded[k.path] = k.value
	}
	for _, k := range keys() {
		if !inFile[k.path] {
			t.Errorf("deploy/aivis.example.yaml lacks %s (default %s)", k.path, formatDefault(k.value))
			continue
		}
		delete(inFile, k.path)
		if slices.Contains(exampleNotDefault, k.path) {
			continue
		}
		v := loaded[k.path]
		if v.Kind() == reflect.Slice && v.Len() == 0 && k.value.Len() == 0 {
			continue // [] in the file, nil by default
		}
		if !reflect.DeepEqual(v.Interface(), k.value.Interface()) {
			t.Errorf("deploy/aivis.example.yaml sets %s to %s, but its default is %s", k.path, formatDefault(v), formatDefault(k.value))
		}
	}
	for path := range inFile {
		t.Errorf("deploy/aivis.example.yaml has %s, which is no configuration key", path)
	}
}
