package config

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// key is one configuration setting, found by walking Config's koanf tags:
// its dotted path (aggregate.anomaly.alpha), its usage text from the help
// tag and its built-in default.
type key struct {
	path  string
	help  string
	value reflect.Value
}

// env is the environment variable that sets the key:
// aggregate.instance_id is AIVIS_AGGREGATE__INSTANCE_ID.
func (k key) env() string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(k.path, ".", "__"))
}

// flag reports whether the key can be given as a command-line flag: scalars,
// durations and lists of strings can; lists of structs and maps cannot.
func (k key) flag() bool {
	t := k.value.Type()
	if t == durationType {
		return true
	}
	switch t.Kind() {
	case reflect.String, reflect.Bool,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return true
	case reflect.Slice:
		return t.Elem().Kind() == reflect.String
	}
	return false
}

var durationType = reflect.TypeFor[time.Duration]()

// keys lists every key of Config with its default, in path order.
func keys() []key {
	var out []key
	walk(reflect.ValueOf(Default()), "", &out)
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
	return out
}

func walk(v reflect.Value, prefix string, out *[]key) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("koanf"), ",")
		if !f.IsExported() || name == "" || name == "-" {
			continue
		}
		path := prefix + name
		fv := v.Field(i)
		if fv.Kind() == reflect.Struct && fv.Type() != reflect.TypeFor[time.Time]() {
			walk(fv, path+".", out)
			continue
		}
		*out = append(*out, key{path: path, help: f.Tag.Get("help"), value: fv})
	}
}

// Flags registers --config and one flag per configuration key that can be
// a flag, named by its path, with the built-in default. Only flags the user
// set override the file and the environment.
func Flags(fs *pflag.FlagSet) {
	fs.StringP("config", "c", "", "YAML configuration file (every key: deploy/aivis.example.yaml)")
	_ = fs.SetAnnotation("config", configFlag, []string{"true"})
	for _, k := range keys() {
		if k.flag() {
			addFlag(fs, k)
			_ = fs.SetAnnotation(k.path, configFlag, []string{"true"})
		}
	}
}

func addFlag(fs *pflag.FlagSet, k key) {
	v, name, help := k.value, k.path, k.help
	if v.Type() == durationType {
		fs.Duration(name, time.Duration(v.Int()), help)
		return
	}
	switch v.Kind() {
	case reflect.String:
		fs.String(name, v.String(), help)
	case reflect.Bool:
		fs.Bool(name, v.Bool(), help)
	case reflect.Int:
		fs.Int(name, int(v.Int()), help)
	case reflect.Int8:
		fs.Int8(name, int8(v.Int()), help)
	case reflect.Int16:
		fs.Int16(name, int16(v.Int()), help)
	case reflect.Int32:
		fs.Int32(name, int32(v.Int()), help)
	case reflect.Int64:
		fs.Int64(name, v.Int(), help)
	case reflect.Uint:
		fs.Uint(name, uint(v.Uint()), help)
	case reflect.Uint8:
		fs.Uint8(name, uint8(v.Uint()), help)
	case reflect.Uint16:
		fs.Uint16(name, uint16(v.Uint()), help)
	case reflect.Uint32:
		fs.Uint32(name, uint32(v.Uint()), help)
	case reflect.Uint64:
		fs.Uint64(name, v.Uint(), help)
	case reflect.Float32:
		fs.Float32(name, float32(v.Float()), help)
	case reflect.Float64:
		fs.Float64(name, v.Float(), help)
	case reflect.Slice:
		def := make([]string, v.Len())
		for i := range def {
			def[i] = v.Index(i).String()
		}
		fs.StringSlice(name, def, help)
	default:
		panic(fmt.Sprintf("config: key %s of type %s cannot be a flag", name, v.Type()))
	}
}

// IsConfigFlag reports whether f sets a configuration key (or names the
// file) rather than being a command's own flag such as verify --from.
func IsConfigFlag(f *pflag.Flag) bool { return f.Annotations[configFlag] != nil }

// configFlag marks the flags that Flags registers.
const configFlag = "aivis-config"

// NotFlagsUsage describes the keys that cannot be flags and how to set
// them, for the end of a command's --help; empty when every key is a flag.
func NotFlagsUsage() string {
	var b strings.Builder
	for _, k := range keys() {
		if !k.flag() {
			fmt.Fprintf(&b, "  %s (environment: %s)\n%s", k.path, k.env(), wrap(k.help, "      ", 100))
		}
	}
	if b.Len() == 0 {
		return ""
	}
	return "Keys that cannot be flags: set them in the YAML file given with --config,\n" +
		"or in their environment variable as JSON with the same structure as in the file:\n" + b.String()
}

// wrap breaks text into lines of at most width characters (longer words
// stay whole), each starting with indent.
func wrap(text, indent string, width int) string {
	var b strings.Builder
	line := indent
	for _, w := range strings.Fields(text) {
		if line != indent && len(line)+1+len(w) > width {
			b.WriteString(line + "\n")
			line = indent
		}
		if line != indent {
			line += " "
		}
		line += w
	}
	b.WriteString(line + "\n")
	return b.String()
}
