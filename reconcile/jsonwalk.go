package reconcile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// The OpenAI and Anthropic reports share one envelope: a page
// {"data": [bucket...], "has_more", "next_page"} whose buckets hold a time
// range and "results". A file is one page, or a JSON array of pages (the
// pages of one paginated read, saved together).

// jsonResult is one element of a bucket's results, with where it is.
type jsonResult struct {
	raw  json.RawMessage
	line int
	path string // data[0].results[3]
}

// jsonBucket is one bucket: its fields other than results, and its results.
type jsonBucket struct {
	fields  map[string]json.RawMessage
	line    int
	path    string
	results []jsonResult
}

// walker reads JSON with a token decoder so that every bucket and result
// keeps the line it starts on.
type walker struct {
	name string
	data []byte
	dec  *json.Decoder
	// lineAt memo: newlines before lastOff.
	lastOff  int
	lastLine int
}

func newWalker(name string, data []byte) *walker {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return &walker{name: name, data: data, dec: dec, lastLine: 1}
}

// lineAt is the 1-based line of byte offset off.
func (w *walker) lineAt(off int) int {
	off = min(max(off, 0), len(w.data))
	if off < w.lastOff {
		w.lastOff, w.lastLine = 0, 1
	}
	w.lastLine += bytes.Count(w.data[w.lastOff:off], []byte{'\n'})
	w.lastOff = off
	return w.lastLine
}

// nextLine is the line of the next value: past whitespace and separators.
func (w *walker) nextLine() int {
	off := int(w.dec.InputOffset())
	for off < len(w.data) {
		switch w.data[off] {
		case ' ', '\t', '\r', '\n', ',', ':':
			off++
			continue
		}
		break
	}
	return w.lineAt(off)
}

func (w *walker) errAt(line int, field string, err error) error {
	return &ImportError{File: w.name, Line: line, Field: field, Err: err}
}

// syntax turns a decoder error into an ImportError at its line.
func (w *walker) syntax(err error, field string) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return w.errAt(w.lineAt(int(se.Offset)), field, fmt.Errorf("invalid JSON: %v", se))
	case errors.As(err, &te):
		return w.errAt(w.lineAt(int(te.Offset)), field, fmt.Errorf("invalid JSON: %v", te))
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return w.errAt(w.lineAt(len(w.data)), field, errors.New("invalid JSON: the file ends early"))
	}
	return w.errAt(w.nextLine(), field, fmt.Errorf("invalid JSON: %v", err))
}

func (w *walker) delim(want json.Delim, field string) error {
	line := w.nextLine()
	tok, err := w.dec.Token()
	if err != nil {
		return w.syntax(err, field)
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		kind := "an object"
		if want == '[' {
			kind = "an array"
		}
		return w.errAt(line, field, fmt.Errorf("want %s, got %v", kind, tok))
	}
	return nil
}

// object reads an object, calling field for each key; field must consume
// the value.
func (w *walker) object(path string, field func(key string) error) error {
	if err := w.delim('{', path); err != nil {
		return err
	}
	for w.dec.More() {
		tok, err := w.dec.Token()
		if err != nil {
			return w.syntax(err, path)
		}
		key, _ := tok.(string)
		if err := field(key); err != nil {
			return err
		}
	}
	if _, err := w.dec.Token(); err != nil {
		return w.syntax(err, path)
	}
	return nil
}

// array reads an array, calling elem for each element; elem must consume it.
func (w *walker) array(path string, elem func(i int) error) error {
	if err := w.delim('[', path); err != nil {
		return err
	}
	for i := 0; w.dec.More(); i++ {
		if err := elem(i); err != nil {
			return err
		}
	}
	if _, err := w.dec.Token(); err != nil {
		return w.syntax(err, path)
	}
	return nil
}

func (w *walker) raw(path string) (json.RawMessage, error) {
	var r json.RawMessage
	if err := w.dec.Decode(&r); err != nil {
		return nil, w.syntax(err, path)
	}
	return r, nil
}

// buckets reads the whole file as pages and returns their buckets in order.
func (w *walker) buckets() ([]jsonBucket, error) {
	var out []jsonBucket
	page := func(prefix string) error {
		return w.object(prefix, func(key string) error {
			if key != "data" {
				_, err := w.raw(prefix + key)
				return err
			}
			return w.array(prefix+"data", func(i int) error {
				b := jsonBucket{fields: map[string]json.RawMessage{}, line: w.nextLine(), path: fmt.Sprintf("%sdata[%d]", prefix, i)}
				err := w.object(b.path, func(key string) error {
					if key != "results" {
						r, err := w.raw(b.path + "." + key)
						b.fields[key] = r
						return err
					}
					return w.array(b.path+".results", func(j int) error {
						res := jsonResult{line: w.nextLine(), path: fmt.Sprintf("%s.results[%d]", b.path, j)}
						r, err := w.raw(res.path)
						res.raw = r
						b.results = append(b.results, res)
						return err
					})
				})
				out = append(out, b)
				return err
			})
		})
	}
	first := w.nextLine()
	tok, err := w.dec.Token()
	if err != nil {
		return nil, w.syntax(err, "")
	}
	switch tok {
	case json.Delim('{'):
		// Put the page back together: re-read from the start.
		w.dec = json.NewDecoder(bytes.NewReader(w.data))
		w.dec.UseNumber()
		w.lastOff, w.lastLine = 0, 1
		if err := page(""); err != nil {
			return nil, err
		}
	case json.Delim('['):
		for i := 0; w.dec.More(); i++ {
			if err := page(fmt.Sprintf("[%d].", i)); err != nil {
				return nil, err
			}
		}
		if _, err := w.dec.Token(); err != nil {
			return nil, w.syntax(err, "")
		}
	default:
		return nil, w.errAt(first, "", fmt.Errorf("want a report page {\"data\": [...]} or an array of pages, got %v", tok))
	}
	if _, err := w.dec.Token(); !errors.Is(err, io.EOF) {
		return nil, w.errAt(w.nextLine(), "", errors.New("unexpected data after the report"))
	}
	return out, nil
}

// decodeField unmarshals one field of a result into v, naming it on error.
func decodeStrict(w *walker, r jsonResult, v any) error {
	dec := json.NewDecoder(bytes.NewReader(r.raw))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return w.errAt(r.line, r.path+"."+te.Field, fmt.Errorf("want %s, got JSON %s", te.Type, te.Value))
		}
		return w.errAt(r.line, r.path, fmt.Errorf("invalid JSON: %v", err))
	}
	return nil
}

// numberText is the text of a JSON number, or of a string holding one
// (exports quote some amounts); "" for null or absent.
func numberText(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("want a number, got %s", raw)
		}
		return s, nil
	}
	var n json.Number
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&n); err != nil {
		return "", fmt.Errorf("want a number, got %.40s", raw)
	}
	return n.String(), nil
}
