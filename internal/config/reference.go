package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Reference returns docs/configuration.md: every key with its environment
// variable, built-in default and description, generated from Config's tags
// so that the document cannot drift from the code (a test compares them).
func Reference() string {
	var b strings.Builder
	b.WriteString("# Configuration reference\n\n")
	b.WriteString("<!-- Generated from internal/config by `go test ./internal/config -run TestReferenceIsCurrent -update`; do not edit by hand. -->\n\n")
	b.WriteString("Every key aivis reads, with its built-in default. Set a key in the YAML file given with\n")
	b.WriteString("`--config` (nested as the dots show), in its environment variable, or as a flag named like the\n")
	b.WriteString("key (`--aggregate.window 5m`); flags win over the environment, which wins over the file.\n")
	b.WriteString("Keys holding lists of objects cannot be flags: give them in the file, or as JSON in the\n")
	b.WriteString("environment variable. `aivis config validate --print` shows the effective configuration;\n")
	b.WriteString("[`deploy/aivis.example.yaml`](../deploy/aivis.example.yaml) lists every key with its default.\n")
	section := "-"
	for _, k := range keys() {
		s, _, nested := strings.Cut(k.path, ".")
		if !nested {
			s = ""
		}
		if s != section {
			section = s
			title := "Process"
			if s != "" {
				title = "`" + s + "`"
			}
			fmt.Fprintf(&b, "\n## %s\n\n| key | environment | default | description |\n| --- | --- | --- | --- |\n", title)
		}
		fmt.Fprintf(&b, "| `%s` | `%s` | %s | %s |\n", k.path, k.env(), formatDefault(k.value), strings.ReplaceAll(k.help, "|", `\|`))
	}
	return b.String()
}

// formatDefault writes a default as it would be written in the YAML file.
func formatDefault(v reflect.Value) string {
	if v.Type() == durationType {
		return "`" + shortDuration(time.Duration(v.Int())) + "`"
	}
	switch v.Kind() {
	case reflect.String:
		if v.String() == "" {
			return `""`
		}
		return "`" + v.String() + "`"
	case reflect.Float32, reflect.Float64:
		return "`" + strconv.FormatFloat(v.Float(), 'g', -1, 64) + "`"
	case reflect.Slice, reflect.Map:
		if v.Len() == 0 {
			return "`[]`"
		}
		return fmt.Sprintf("`%v`", v.Interface())
	}
	return fmt.Sprintf("`%v`", v.Interface())
}

// shortDuration writes 1m rather than time.Duration's 1m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
