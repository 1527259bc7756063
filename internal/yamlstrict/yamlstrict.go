// Package yamlstrict reads the YAML files that operators write (the pricing
// catalog, contracts, ownership rules) strictly: files are bounded in size,
// hold exactly one document and no unknown keys, and validation reports
// every problem with the key path of the offending value.
package yamlstrict

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxYAMLNodes bounds the work spent walking one document, so that alias
// bombs cannot stall a reload.
const maxYAMLNodes = 1 << 20

// MaxFileBytes bounds the files ReadFile reads.
const MaxFileBytes = 16 << 20

// ReadFile reads a file of at most MaxFileBytes.
func ReadFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("file is larger than the limit of %d bytes", MaxFileBytes)
	}
	return data, nil
}

// Problems collects validation errors, each prefixed with its key path.
type Problems struct{ list []error }

// Add records a problem with the value at path.
func (p *Problems) Add(path, format string, args ...any) {
	p.list = append(p.list, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
}

// Err joins every problem recorded, or returns nil when there are none.
func (p *Problems) Err() error { return errors.Join(p.list...) }

// Decode decodes exactly one YAML document into v (a pointer to a
// struct). Unknown keys are rejected with their full path, e.g.
// "models[3].rates.inptu", so that a typo never silently drops a price.
func Decode(data []byte, v any) (err error) {
	// The YAML library is third-party code fed with operator files; a panic
	// there must become an error, not a crashed stage.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("parsing YAML: %v", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("the document is empty")
		}
		return err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return err
		}
		return fmt.Errorf("line %d: a second YAML document follows the first; keep one document per file", extra.Line)
	}
	w := keyWalker{}
	if err := w.check(&root, reflect.TypeOf(v).Elem(), ""); err != nil {
		return err
	}
	return root.Decode(v)
}

type keyWalker struct{ visited int }

func (w *keyWalker) check(n *yaml.Node, t reflect.Type, path string) error {
	w.visited++
	if w.visited > maxYAMLNodes {
		return errors.New("the document is too large or too deeply aliased")
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil
		}
		return w.check(n.Content[0], t, path)
	case yaml.AliasNode:
		if n.Alias == nil {
			return nil
		}
		return w.check(n.Alias, t, path)
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return nil // the decoder reports the type mismatch with its line
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if k.Value == "<<" && k.Tag == "!!merge" {
				if err := w.check(val, t, path); err != nil {
					return err
				}
				continue
			}
			f, ok := fields[k.Value]
			if !ok {
				return fmt.Errorf("line %d: %s: unknown key (known keys: %s)",
					k.Line, joinPath(path, k.Value), strings.Join(sortedKeys(fields), ", "))
			}
			if err := w.check(val, f, joinPath(path, k.Value)); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		if n.Kind != yaml.SequenceNode {
			return nil
		}
		for i, c := range n.Content {
			if err := w.check(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return nil
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := w.check(n.Content[i+1], t.Elem(), joinPath(path, n.Content[i].Value)); err != nil {
				return err
			}
		}
	}
	return nil
}

// yamlFields maps the YAML key of each exported field to its type.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := make(map[string]reflect.Type, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}

func sortedKeys(m map[string]reflect.Type) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
