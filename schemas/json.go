package schemas

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// CheckJSON reports, by JSON path, what encoding/json would decode into v
// (a pointer, as for json.Unmarshal; nil for no Go type) without a word:
//
//   - a key that appears twice in one object, where the last one would win
//     (CodeDuplicateKey);
//   - in an object that decodes into a struct, two keys that name the same
//     field because encoding/json ignores case, such as "model" and
//     "MODEL" (CodeDuplicateKey); a single "MODEL" is the field model;
//   - a string or key that is not valid UTF-8, or an escaped lone UTF-16
//     surrogate, which would become U+FFFD (CodeInvalidUTF8).
//
// It checks keys and strings only; syntax and types are the decoder's to
// report, and CheckJSON stops quietly at malformed JSON. Paths join keys
// with "." and write array elements as "[i]", e.g.
// "response.usage.prompt_tokens" or "warnings[2]". At most 20 problems are
// returned.
func CheckJSON(data []byte, v any) []FieldError {
	var sh *shape
	if v != nil {
		sh = shapeOf(reflect.TypeOf(v))
	}
	s := scanners.Get().(*scanner)
	defer s.release()
	s.data = data
	s.value(sh, 0)
	return s.probs
}

// scanners keeps the buffers of CheckJSON between calls.
var scanners = sync.Pool{New: func() any { return new(scanner) }}

func (s *scanner) release() {
	clear(s.keys[:cap(s.keys)])
	clear(s.path[:cap(s.path)])
	*s = scanner{keys: s.keys[:0], path: s.path[:0], set: s.set[:0], arena: s.arena[:0]}
	scanners.Put(s)
}

// CheckJSONFolded is CheckJSON for JSON that a case-sensitive decoder reads
// (OTLP JSON through protojson): besides repeated keys and invalid UTF-8,
// two keys of one object that differ only in case are CodeDuplicateKey.
func CheckJSONFolded(data []byte) []FieldError {
	s := scanners.Get().(*scanner)
	defer s.release()
	s.data, s.foldAll = data, true
	s.value(nil, 0)
	return s.probs
}

// maxJSONProblems bounds the problems CheckJSON reports for one value.
const maxJSONProblems = 20

// maxJSONDepth matches the nesting limit of encoding/json.
const maxJSONDepth = 10000

// shape is what CheckJSON knows of the Go type a JSON value decodes into;
// nil stands for a value whose objects are not structs (json.RawMessage,
// any, a scalar).
type shape struct {
	kind   shapeKind
	fields map[string]field // structs: JSON field name → the field
	folded map[string]field // structs: folded JSON field name → the field
	elem   *shape           // maps, slices and arrays
}

// field is one field of a struct shape.
type field struct {
	name  string // its JSON name
	shape *shape
}

type shapeKind int

const (
	structShape shapeKind = iota + 1
	mapShape
	listShape
)

var (
	shapes          sync.Map // reflect.Type → *shape
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
)

func shapeOf(t reflect.Type) *shape {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if sh, ok := shapes.Load(t); ok {
		return sh.(*shape)
	}
	sh := buildShape(t, map[reflect.Type]*shape{})
	shapes.Store(t, sh)
	return sh
}

// buildShape follows encoding/json's rules for the struct types aivis
// decodes: exported fields named by their json tag or Go name, embedded
// structs' fields promoted; a type with its own UnmarshalJSON is opaque.
func buildShape(t reflect.Type, building map[reflect.Type]*shape) *shape {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(jsonUnmarshaler) {
		return nil
	}
	if sh, ok := building[t]; ok {
		return sh
	}
	switch t.Kind() {
	case reflect.Struct:
		sh := &shape{kind: structShape, fields: map[string]field{}, folded: map[string]field{}}
		building[t] = sh
		for _, f := range reflect.VisibleFields(t) {
			tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			switch {
			case tag == "-":
				continue
			case f.Anonymous && tag == "" && ft.Kind() == reflect.Struct:
				continue // its fields are promoted
			case !f.IsExported():
				continue
			}
			name := tag
			if name == "" {
				name = f.Name
			}
			if _, dup := sh.fields[name]; dup {
				continue // the shallower field wins, as VisibleFields lists it first
			}
			fd := field{name: name, shape: buildShape(f.Type, building)}
			sh.fields[name] = fd
			if folded := string(foldName([]byte(name))); sh.folded[folded].name == "" {
				sh.folded[folded] = fd
			}
		}
		return sh
	case reflect.Map:
		return &shape{kind: mapShape, elem: buildShape(t.Elem(), building)}
	case reflect.Slice, reflect.Array:
		return &shape{kind: listShape, elem: buildShape(t.Elem(), building)}
	}
	return nil
}

// foldName folds name as encoding/json does when it matches keys to fields:
// two names fold alike exactly when bytes.EqualFold holds.
func foldName(name []byte) []byte { return appendFolded(make([]byte, 0, len(name)), name) }

// appendFolded appends foldName(name) to out.
func appendFolded(out, name []byte) []byte {
	for i := 0; i < len(name); {
		if c := name[i]; c < utf8.RuneSelf {
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			out = append(out, c)
			i++
			continue
		}
		r, n := utf8.DecodeRune(name[i:])
		for {
			r2 := unicode.SimpleFold(r)
			if r2 <= r {
				r = r2
				break
			}
			r = r2
		}
		out = utf8.AppendRune(out, r)
		i += n
	}
	return out
}

// scanner walks one JSON value byte by byte, keeping the path to where it
// stands and the keys of the objects it is in.
type scanner struct {
	data    []byte
	i       int
	foldAll bool
	probs   []FieldError
	path    []pathSeg
	keys    [][]byte // keys of the open objects, innermost last
	set     []string // fields set in the open struct objects, innermost last
	arena   []byte   // folded keys
}

// pathSeg is an object key or, when key is nil, an array index.
type pathSeg struct {
	key   []byte
	index int
}

func (s *scanner) pathString() string {
	var b strings.Builder
	for _, seg := range s.path {
		if seg.key == nil {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(seg.index))
			b.WriteByte(']')
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(strings.ToValidUTF8(string(seg.key), "\uFFFD"))
	}
	return b.String()
}

func (s *scanner) problem(code, format string, args ...any) {
	if len(s.probs) == maxJSONProblems {
		return
	}
	s.probs = append(s.probs, FieldError{Field: s.pathString(), Code: code, Message: fmt.Sprintf(format, args...)})
}

func (s *scanner) skipSpace() {
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ' ', '\t', '\r', '\n':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) peek() byte {
	if s.i < len(s.data) {
		return s.data[s.i]
	}
	return 0
}

// value scans one value whose Go type has shape sh; false means malformed
// JSON, where scanning stops.
func (s *scanner) value(sh *shape, depth int) bool {
	s.skipSpace()
	if depth > maxJSONDepth {
		return false
	}
	switch c := s.peek(); c {
	case '{':
		return s.object(sh, depth)
	case '[':
		return s.array(sh, depth)
	case '"':
		_, ok := s.str(false)
		return ok
	case 0:
		return false
	default:
		// A number or literal; the decoder checks its syntax.
		start := s.i
		for s.i < len(s.data) {
			switch s.data[s.i] {
			case ',', ']', '}', ' ', '\t', '\r', '\n':
				return s.i > start
			}
			s.i++
		}
		return s.i > start
	}
}

func (s *scanner) array(sh *shape, depth int) bool {
	s.i++ // '['
	var elem *shape
	if sh != nil && sh.kind == listShape {
		elem = sh.elem
	}
	s.skipSpace()
	if s.peek() == ']' {
		s.i++
		return true
	}
	s.path = append(s.path, pathSeg{})
	defer func() { s.path = s.path[:len(s.path)-1] }()
	for n := 0; ; n++ {
		s.path[len(s.path)-1].index = n
		if !s.value(elem, depth+1) {
			return false
		}
		s.skipSpace()
		switch s.peek() {
		case ',':
			s.i++
		case ']':
			s.i++
			return true
		default:
			return false
		}
	}
}

// smallObject is the number of keys up to which duplicates are found by
// comparing with each earlier key rather than through a map.
const smallObject = 16

func (s *scanner) object(sh *shape, depth int) bool {
	s.i++ // '{'
	base, setBase := len(s.keys), len(s.set)
	defer func() { s.keys, s.set = s.keys[:base], s.set[:setBase] }()
	s.skipSpace()
	if s.peek() == '}' {
		s.i++
		return true
	}
	var seen map[string]bool // once the object has more than smallObject keys
	for {
		s.skipSpace()
		if s.peek() != '"' {
			return false
		}
		key, ok := s.str(true)
		if !ok {
			return false
		}
		s.path = append(s.path, pathSeg{key: key})
		if s.foldAll {
			// Compare folded keys, kept in the scanner's arena.
			n := len(s.arena)
			s.arena = appendFolded(s.arena, key)
			key = s.arena[n:len(s.arena):len(s.arena)]
		}
		dup := false
		if seen != nil {
			dup = seen[string(key)]
			seen[string(key)] = true
		} else {
			for _, k := range s.keys[base:] {
				if bytes.Equal(k, key) {
					dup = true
					break
				}
			}
			s.keys = append(s.keys, key)
			if len(s.keys)-base > smallObject {
				seen = make(map[string]bool, 2*smallObject)
				for _, k := range s.keys[base:] {
					seen[string(k)] = true
				}
			}
		}
		if dup {
			if s.foldAll {
				s.problem(CodeDuplicateKey, "appears more than once in the object, perhaps in another case; send each key once, spelt as the format defines it")
			} else {
				s.problem(CodeDuplicateKey, "appears more than once in the object; send each key once")
			}
		}
		var child *shape
		if sh != nil {
			switch sh.kind {
			case structShape:
				fd, ok := sh.fields[string(key)]
				if !ok {
					fd, ok = sh.folded[string(foldName(key))]
				}
				if ok {
					child = fd.shape
					if slices.Contains(s.set[setBase:], fd.name) && !dup {
						s.problem(CodeDuplicateKey, "sets field %q again: keys that differ only in case name the same field; send it once", fd.name)
					}
					s.set = append(s.set, fd.name)
				}
			case mapShape:
				child = sh.elem
			}
		}
		s.skipSpace()
		if s.peek() != ':' {
			return false
		}
		s.i++
		if !s.value(child, depth+1) {
			return false
		}
		s.path = s.path[:len(s.path)-1]
		s.skipSpace()
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return true
		default:
			return false
		}
	}
}

// str scans a string starting at its quote and checks its text. For a key
// it returns the key's text, unescaped when it holds escapes.
func (s *scanner) str(isKey bool) ([]byte, bool) {
	start := s.i + 1
	s.i++
	escaped, bad := false, ""
	for {
		if s.i >= len(s.data) {
			return nil, false
		}
		c := s.data[s.i]
		switch {
		case c == '"':
			s.i++
			text := s.data[start : s.i-1]
			if isKey && escaped {
				var k string
				if json.Unmarshal(s.data[start-1:s.i], &k) != nil {
					return nil, false
				}
				text = []byte(k)
			}
			if bad != "" {
				if isKey {
					// Name the key itself, whose invalid bytes show as U+FFFD.
					s.path = append(s.path, pathSeg{key: text})
					s.problem(CodeInvalidUTF8, "the key %s; send keys as UTF-8", bad)
					s.path = s.path[:len(s.path)-1]
				} else {
					s.problem(CodeInvalidUTF8, "the string %s; send text as UTF-8", bad)
				}
			}
			return text, true
		case c == '\\':
			escaped = true
			if s.i+1 >= len(s.data) {
				return nil, false
			}
			if s.data[s.i+1] != 'u' {
				s.i += 2
				continue
			}
			r, ok := s.hex4(s.i + 2)
			if !ok {
				return nil, false
			}
			s.i += 6
			switch {
			case r >= 0xDC00 && r <= 0xDFFF:
				bad = orBad(bad, "holds a lone UTF-16 surrogate (\\u"+strconv.FormatInt(int64(r), 16)+")")
			case r >= 0xD800 && r <= 0xDBFF:
				lo, ok := rune(0), false
				if s.i+1 < len(s.data) && s.data[s.i] == '\\' && s.data[s.i+1] == 'u' {
					lo, ok = s.hex4(s.i + 2)
				}
				if ok && lo >= 0xDC00 && lo <= 0xDFFF {
					s.i += 6
				} else {
					bad = orBad(bad, "holds a lone UTF-16 surrogate (\\u"+strconv.FormatInt(int64(r), 16)+")")
				}
			}
		case c < 0x20:
			return nil, false
		case c < utf8.RuneSelf:
			s.i++
		default:
			r, n := utf8.DecodeRune(s.data[s.i:])
			if r == utf8.RuneError && n == 1 {
				bad = orBad(bad, fmt.Sprintf("is not valid UTF-8 (byte 0x%02x at offset %d)", c, s.i-start))
			}
			s.i += n
		}
	}
}

func orBad(bad, msg string) string {
	if bad != "" {
		return bad
	}
	return msg
}

// hex4 reads the four hex digits of a \u escape at i.
func (s *scanner) hex4(i int) (rune, bool) {
	if i+4 > len(s.data) {
		return 0, false
	}
	var r rune
	for _, c := range s.data[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}
