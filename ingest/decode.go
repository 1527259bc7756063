package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/aivis-dev/aivis/schemas"
)

// EventError is one problem with one event of a request.
type EventError struct {
	// Index is the event's 0-based position in the array or NDJSON stream.
	Index int `json:"index"`
	// Field is the JSON path of the offending field, "" for the whole event.
	Field string `json:"field"`
	// Code classifies the problem: required, unknown_field, invalid_type,
	// out_of_range, too_large or invalid_value (schemas.Code*).
	Code    string `json:"code"`
	Message string `json:"message"`
}

// apiKeyLabel is the label in which a producer may send a raw API key.
const apiKeyLabel = "api_key"

// maxErrors bounds the per-event errors kept for one response.
const maxErrors = 1000

// framing says how a request body separates its events.
type framing int

const (
	// framingDetect: a body starting with '[' is an array, anything else a
	// stream of objects (one object being the 1-event case).
	framingDetect framing = iota
	// framingNDJSON: a stream of objects, whatever the first byte.
	framingNDJSON
)

type limits struct {
	maxEvents     int
	maxEventBytes int
}

// decoded is one valid event and its canonical encoding, ready to produce.
type decoded struct {
	event *schemas.Event
	value []byte
}

// batch is a decoded request body.
type batch struct {
	events  []decoded
	errors  []EventError // at most maxErrors
	invalid int          // events with at least one problem
	total   int          // events in the body
}

// bodyError rejects a request body as a whole.
type bodyError struct {
	status int
	msg    string
}

func (e *bodyError) Error() string { return e.msg }

// decodeBody splits body into events, decodes each with the strict rules of
// schemas.Decode, replaces raw API keys by their ids (headerKey, when not
// empty, applies to events that carry no key of their own) and encodes every
// valid event canonically. A body that cannot be split is a *bodyError;
// problems with single events are listed in the batch.
func decodeBody(body []byte, f framing, lim limits, headerKey string) (batch, error) {
	var b batch
	err := eachValue(body, f, lim.maxEvents, "event", func(raw json.RawMessage) { b.add(raw, lim, headerKey) })
	return b, err
}

// eachValue splits a request body into JSON values — the elements of a
// top-level array, or a stream of values (NDJSON) — and hands each to fn.
// noun names the values in errors ("event", "envelope"). A body that cannot
// be split, is empty, holds no value or more than max values is a
// *bodyError.
func eachValue(body []byte, f framing, max int, noun string, fn func(raw json.RawMessage)) error {
	start := len(body) - len(bytes.TrimLeft(body, " \t\r\n"))
	if start == len(body) {
		return &bodyError{http.StatusBadRequest, fmt.Sprintf("request body is empty; send one JSON %s, a JSON array of %ss, or NDJSON", noun, noun)}
	}
	array := f == framingDetect && body[start] == '['
	dec := json.NewDecoder(bytes.NewReader(body))
	// The whole body is one value when it is an array; otherwise each
	// value's start bounds where to look for an error.
	if array {
		if _, err := dec.Token(); err != nil {
			return syntaxError(body, 0, err)
		}
	}
	n := 0
	for {
		if array && !dec.More() {
			break
		}
		from := int64(0)
		if !array {
			from = dec.InputOffset()
		}
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if !array && errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return syntaxError(body, from, err)
		}
		if n == max {
			return &bodyError{http.StatusRequestEntityTooLarge, fmt.Sprintf(
				"request has more than %d %ss; split it into smaller requests", max, noun)}
		}
		n++
		fn(raw)
	}
	if array {
		// More stopped at ']' or at an error that Token reports.
		if _, err := dec.Token(); err != nil {
			return syntaxError(body, 0, err)
		}
		if _, err := dec.Token(); !errors.Is(err, io.EOF) {
			return syntaxError(body, 0, fmt.Errorf("data after the closing ']' of the %s array", noun))
		}
	}
	if n == 0 {
		return &bodyError{http.StatusBadRequest, fmt.Sprintf("request has no %ss; send at least one", noun)}
	}
	return nil
}

// add decodes one event; raw is a syntactically valid JSON value.
func (b *batch) add(raw []byte, lim limits, headerKey string) {
	i := b.total
	b.total++
	if raw[0] != '{' {
		b.reject(i, schemas.FieldError{Code: schemas.CodeInvalidType, Message: "an event must be a JSON object, got " + jsonKind(raw[0])})
		return
	}
	if len(raw) > lim.maxEventBytes {
		b.reject(i, schemas.FieldError{Code: schemas.CodeTooLarge, Message: fmt.Sprintf(
			"event is %d bytes, the limit is %d; trim raw_usage or labels", len(raw), lim.maxEventBytes)})
		return
	}
	e, err := schemas.Decode(raw)
	var verr *schemas.ValidationError
	switch {
	case err == nil:
		if p := replaceAPIKey(e, headerKey); p != nil {
			b.reject(i, *p)
			return
		}
	case errors.As(err, &verr):
		// Removing the api_key label may fix the label count, so validate
		// again; report key problems first.
		var probs []schemas.FieldError
		if p := replaceAPIKey(e, headerKey); p != nil {
			probs = append(probs, *p)
		}
		if err := e.Validate(); errors.As(err, &verr) {
			probs = append(probs, verr.Problems...)
		}
		if len(probs) > 0 {
			b.reject(i, probs...)
			return
		}
	default:
		probs := fieldProblems(raw)
		if len(probs) == 0 {
			probs = []schemas.FieldError{{Code: schemas.CodeInvalidValue, Message: err.Error()}}
		}
		b.reject(i, probs...)
		return
	}
	e.Time = e.Time.UTC()
	value, err := json.Marshal(e)
	if err != nil {
		b.reject(i, schemas.FieldError{Code: schemas.CodeInvalidValue, Message: "encoding the event for Kafka: " + err.Error()})
		return
	}
	if len(value) > lim.maxEventBytes {
		b.reject(i, schemas.FieldError{Code: schemas.CodeTooLarge, Message: fmt.Sprintf(
			"event is %d bytes once encoded, the limit is %d; trim raw_usage or labels", len(value), lim.maxEventBytes)})
		return
	}
	b.events = append(b.events, decoded{event: e, value: value})
}

func (b *batch) reject(i int, probs ...schemas.FieldError) {
	b.invalid++
	for _, p := range probs {
		if len(b.errors) == maxErrors {
			return
		}
		code := p.Code
		if code == "" {
			code = schemas.CodeInvalidValue
		}
		b.errors = append(b.errors, EventError{Index: i, Field: p.Field, Code: code, Message: p.Message})
	}
}

// replaceAPIKey moves a raw API key from the api_key label (or else from
// the request header) into APIKeyID, so that the raw key goes no further.
func replaceAPIKey(e *schemas.Event, headerKey string) *schemas.FieldError {
	var id, field string
	var prob *schemas.FieldError
	for k, raw := range e.Labels {
		// Any spelling of the label counts: a raw key must never slip through.
		if !strings.EqualFold(k, apiKeyLabel) {
			continue
		}
		delete(e.Labels, k)
		switch kid := APIKeyID(raw); {
		case raw == "":
			prob = &schemas.FieldError{Field: "labels." + k, Code: schemas.CodeRequired, Message: "is empty; send the caller's API key or leave the label out"}
		case id != "" && kid != id:
			prob = &schemas.FieldError{Field: "labels." + k, Code: schemas.CodeInvalidValue, Message: "differs from labels." + field + "; send one API key per event"}
		default:
			id, field = kid, k
		}
	}
	if e.Labels != nil && len(e.Labels) == 0 {
		e.Labels = nil
	}
	switch {
	case prob != nil:
		return prob
	case id != "" && e.APIKeyID != "" && e.APIKeyID != id:
		return &schemas.FieldError{Field: "api_key_id", Code: schemas.CodeInvalidValue, Message: "does not match the hash of labels." + field + "; send one or the other"}
	case id != "":
		e.APIKeyID = id
	case e.APIKeyID == "" && headerKey != "":
		e.APIKeyID = APIKeyID(headerKey)
	}
	return nil
}

// syntaxError turns a JSON framing error into a 400 with a position. The
// Decoder's own offsets are not reliable inside arrays, so the bytes from
// the failing value on are checked again to find the offending byte.
func syntaxError(body []byte, from int64, err error) error {
	var se *json.SyntaxError
	if errors.As(json.Unmarshal(body[from:], new(json.RawMessage)), &se) {
		// Offset counts the offending byte itself.
		return &bodyError{http.StatusBadRequest, fmt.Sprintf("malformed JSON at %s: %s", position(body, from+se.Offset-1), se.Error())}
	}
	return &bodyError{http.StatusBadRequest, "malformed JSON: " + err.Error()}
}

// position describes a byte offset as line and column, both 1-based.
func position(body []byte, off int64) string {
	off = max(0, min(off, int64(len(body))))
	before := body[:off]
	line := bytes.Count(before, []byte{'\n'}) + 1
	col := off - int64(bytes.LastIndexByte(before, '\n'))
	return fmt.Sprintf("line %d, column %d (byte %d)", line, col, off)
}

func jsonKind(first byte) string {
	switch first {
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}

var (
	timeType        = reflect.TypeFor[time.Time]()
	unmarshalerType = reflect.TypeFor[json.Unmarshaler]()
)

// fieldProblems finds, with their paths, the unknown fields and mistyped
// values that made strict decoding of raw fail; encoding/json names neither
// path. It runs only on the error path.
func fieldProblems(raw []byte) []schemas.FieldError {
	var probs []schemas.FieldError
	walk(raw, reflect.TypeFor[schemas.Event](), "", &probs)
	return probs
}

func walk(raw []byte, t reflect.Type, path string, probs *[]schemas.FieldError) {
	add := func(code, msg string) {
		*probs = append(*probs, schemas.FieldError{Field: path, Code: code, Message: msg})
	}
	if t.Kind() == reflect.Pointer {
		if string(raw) != "null" {
			walk(raw, t.Elem(), path, probs)
		}
		return
	}
	leaf := reflect.PointerTo(t).Implements(unmarshalerType)
	switch {
	case !leaf && t.Kind() == reflect.Struct:
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil {
			add(schemas.CodeInvalidType, "must be a JSON object")
			return
		}
		fields := reflect.VisibleFields(t)
		for _, k := range sortedKeys(obj) {
			name, ft, ok := fieldByJSONName(fields, k)
			if !ok {
				*probs = append(*probs, schemas.FieldError{Field: join(path, k), Code: schemas.CodeUnknownField, Message: "unknown field; check its spelling against the usage event v1 schema"})
				continue
			}
			walk(obj[k], ft, join(path, name), probs)
		}
	case !leaf && t.Kind() == reflect.Map && t.Key().Kind() == reflect.String:
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil {
			add(schemas.CodeInvalidType, "must be a JSON object")
			return
		}
		for _, k := range sortedKeys(obj) {
			walk(obj[k], t.Elem(), join(path, k), probs)
		}
	default:
		v := reflect.New(t)
		if err := json.Unmarshal(raw, v.Interface()); err != nil {
			add(leafProblem(t, err))
		}
	}
}

// fieldByJSONName matches a key the way encoding/json does: exact name
// first, then case-insensitively.
func fieldByJSONName(fields []reflect.StructField, key string) (string, reflect.Type, bool) {
	var foldName string
	var foldType reflect.Type
	for _, f := range fields {
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || (name == "" && f.Anonymous) {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if name == key {
			return name, f.Type, true
		}
		if foldType == nil && strings.EqualFold(name, key) {
			foldName, foldType = name, f.Type
		}
	}
	return foldName, foldType, foldType != nil
}

// leafProblem classifies and words the error of decoding one value of
// type t.
func leafProblem(t reflect.Type, err error) (code, msg string) {
	if t == timeType {
		return schemas.CodeInvalidType, `must be an RFC 3339 timestamp string such as "2026-01-02T15:04:05Z" (` + err.Error() + ")"
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return schemas.CodeInvalidType, fmt.Sprintf("must be %s, got %s", jsonTypeName(t), te.Value)
	}
	return schemas.CodeInvalidValue, strings.TrimPrefix(err.Error(), "json: ")
}

func jsonTypeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	default:
		return "a JSON value of type " + t.String()
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func sortedKeys(m map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
