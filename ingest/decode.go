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
	"sync"
	"time"

	"github.com/aivis-dev/aivis/schemas"
)

// framing says how a request body separates its events.
type framing int

const (
	// framingDetect: a body starting with '[' is an array, anything else a
	// stream of objects (one object being the 1-event case).
	framingDetect framing = iota
	// framingNDJSON: a stream of objects, whatever the first byte.
	framingNDJSON
)

// limits bound what one request may hold.
type limits struct {
	maxEvents     int
	maxEventBytes int
	// maxEventAge and maxClockSkew bound event time around the ingest
	// clock (Config.MaxEventAge, Config.MaxClockSkew).
	maxEventAge, maxClockSkew time.Duration
}

// timeProblem says why an event dated at is outside the range ingest
// accepts at now, or returns nil. An event ahead of the range would move
// its partition's watermark past every current event; one behind it is
// older than the windows can still correct. Either would be accepted and
// then not counted, so the producer is told now instead.
func (l limits) timeProblem(at, now time.Time) *schemas.FieldError {
	oldest, newest := now.Add(-l.maxEventAge), now.Add(l.maxClockSkew)
	var why string
	switch {
	case at.After(newest):
		why = fmt.Sprintf("is %s ahead of the ingest clock", at.Sub(now).Round(time.Second))
	case at.Before(oldest):
		why = fmt.Sprintf("is %s older than the ingest clock", now.Sub(at).Round(time.Second))
	default:
		return nil
	}
	return &schemas.FieldError{Field: "time", Code: schemas.CodeOutOfRange, Message: fmt.Sprintf(
		"%s %s (%s); ingest accepts events from %s to %s, at most %s old (ingest.max_event_age) and %s ahead (ingest.max_clock_skew): send the time the request happened from a synchronised clock, and load older usage as a backfill (docs/delivery.md)",
		at.UTC().Format(time.RFC3339Nano), why, now.UTC().Format(time.RFC3339), oldest.UTC().Format(time.RFC3339), newest.UTC().Format(time.RFC3339),
		l.maxEventAge, l.maxClockSkew)}
}

// parseEvents splits body into events and decodes each with the strict
// rules of schemas.Parse, naming the path of every unknown or mistyped
// field. A body that cannot be split is refused; a value that is not an
// event is an item with its problems. The events, and the items, lie in
// es, which must outlive them; the events' ids lie in body.
func parseEvents(body []byte, f framing, lim limits, es *eventSlab) ([]item, *refusal) {
	d := decoders.Get().(*schemas.Decoder)
	defer decoders.Put(d)
	// The events' ids stay in body: Server.accept is done with the
	// events (check copies what is produced) before it hands body back.
	d.EventIDInPlace = true
	defer func() { d.EventIDInPlace = false }()
	if items, ref, ok := parseEventsOnce(d, body, f, lim, es); ok {
		return items, ref
	}
	return parseEventsSplit(d, body, f, lim, es)
}

// eventSlots hands out the events of one request: from es.events first,
// reusing what earlier requests' events there hold, then from new chunks.
type eventSlots struct {
	es    *eventSlab
	chunk []schemas.Event
	n     int // events kept
}

// next returns the event to decode the next value into; items is how many
// values came before it.
func (s *eventSlots) next(items int, lim limits) *schemas.Event {
	if s.n < len(s.es.events) {
		return &s.es.events[s.n]
	}
	if len(s.chunk) == 0 {
		s.chunk = make([]schemas.Event, max(1, min(lim.maxEvents-items, max(64, items))))
	}
	return &s.chunk[0]
}

// keep records that the event next returned holds a decoded event.
func (s *eventSlots) keep() {
	if s.n >= len(s.es.events) {
		s.chunk = s.chunk[1:]
	}
	s.n++
}

// afterElement moves past the separator that follows an array element
// ending at end: next is where the following element starts; last says
// that ']' closed the array; ok is false when neither ',' nor a final ']'
// (with only space after it) follows.
func afterElement(body []byte, end int) (next int, last, ok bool) {
	i := skipSpace(body, end)
	switch {
	case i < len(body) && body[i] == ',':
		return i + 1, false, true
	case i < len(body) && body[i] == ']':
		return i, true, skipSpace(body, i+1) == len(body)
	default:
		return i, false, false
	}
}

// parseEventsOnce is parseEvents in one pass over a well-formed body: each
// event is decoded where the split finds it, so that its bytes are read
// once. ok is false for a body it leaves to parseEventsSplit, which words
// the refusal or the problems exactly: a syntax error anywhere, an empty
// body, no values.
func parseEventsOnce(d *schemas.Decoder, body []byte, f framing, lim limits, es *eventSlab) (_ []item, _ *refusal, ok bool) {
	start := skipSpace(body, 0)
	if start == len(body) {
		return nil, nil, false
	}
	array := f == framingDetect && body[start] == '['
	i := start
	if array {
		if i = skipSpace(body, i+1); i < len(body) && body[i] == ']' {
			return nil, nil, false
		}
	}
	items := es.items[:0]
	slots := eventSlots{es: es}
	defer func() {
		if ok {
			es.items, es.used = items, slots.n
		}
	}()
	for {
		i = skipSpace(body, i)
		if !array && i == len(body) {
			break
		}
		if len(items) == lim.maxEvents {
			// One value more than allowed, checked as the split does.
			if _, valid := d.Skip(body, i); !valid {
				return nil, nil, false
			}
			items = items[:0]
			return items, tooManyValues(lim.maxEvents, "event"), true
		}
		e := slots.next(len(items), lim)
		end, syntax, err := d.EventAt(body, i, e)
		if syntax {
			return nil, nil, false
		}
		var it item
		if err == nil && end-i <= lim.maxEventBytes {
			it = item{event: e}
		} else {
			// Not an event, too large, or with problems: what the split
			// and parseEvent make of it, words included.
			var valid bool
			if end, valid = d.Skip(body, i); !valid {
				return nil, nil, false
			}
			it = parseEvent(d, body[i:end], e, lim.maxEventBytes)
		}
		if it.event != nil {
			slots.keep()
		}
		items = append(items, it)
		if !array {
			i = end
			continue
		}
		next, last, valid := afterElement(body, end)
		if !valid {
			return nil, nil, false
		}
		if last {
			return items, nil, true
		}
		i = next
	}
	if len(items) == 0 {
		return nil, nil, false
	}
	return items, nil, true
}

// parseEventsSplit is parseEvents that splits the body first, then decodes
// each value: the path of bodies parseEventsOnce leaves.
func parseEventsSplit(d *schemas.Decoder, body []byte, f framing, lim limits, es *eventSlab) ([]item, *refusal) {
	items := es.items[:0]
	slots := eventSlots{es: es}
	ref := eachValue(body, f, lim.maxEvents, "event", func(raw json.RawMessage) {
		it := parseEvent(d, raw, slots.next(len(items), lim), lim.maxEventBytes)
		if it.event != nil {
			slots.keep()
		}
		items = append(items, it)
	})
	es.items, es.used = items, slots.n
	return items, ref
}

// eventSlab holds the events of one request, for a later request to decode
// into once check has encoded them (eventSlabs): an event decoded into
// again reuses its labels map, usage, raw_usage and counts, which were most
// of ingest's allocations per event.
type eventSlab struct {
	events []schemas.Event
	items  []item
	used   int // events decoded by the last parseEvents
}

var eventSlabs = sync.Pool{New: func() any { return new(eventSlab) }}

// maxPooledEvents bounds the events of an eventSlab kept in eventSlabs.
const maxPooledEvents = 10_000

func getEventSlab() *eventSlab { return eventSlabs.Get().(*eventSlab) }

// put hands es back for reuse: nothing may refer to its events or items
// any more.
func (es *eventSlab) put() {
	if es.used > maxPooledEvents || cap(es.items) > maxPooledEvents {
		return
	}
	if es.used > len(es.events) {
		// Some events took new chunks; next time one slab holds them all.
		es.events = make([]schemas.Event, es.used)
	}
	clear(es.items)
	es.items, es.used = es.items[:0], 0
	eventSlabs.Put(es)
}

// decoders serve parseEvents: a Decoder keeps its scratch and recent
// strings between requests.
var decoders = sync.Pool{New: func() any { return new(schemas.Decoder) }}

// eachValue splits a request body into JSON values — the elements of a
// top-level array, or a stream of values (NDJSON) — and hands each to fn,
// as a slice of body. noun names the values in errors ("event",
// "envelope"). A body that cannot be split, is empty, or holds no value or
// more than max values is refused.
func eachValue(body []byte, f framing, max int, noun string, fn func(raw json.RawMessage)) *refusal {
	start := len(body) - len(bytes.TrimLeft(body, " \t\r\n"))
	if start == len(body) {
		return &refusal{http.StatusBadRequest, codeInvalidJSON, fmt.Sprintf("request body is empty; send one JSON %s, a JSON array of %ss, or NDJSON", noun, noun)}
	}
	array := f == framingDetect && body[start] == '['
	sp := spanPool.Get().(*[]span)
	defer spanPool.Put(sp)
	spans, ok := splitValues(body, start, array, max, (*sp)[:0])
	*sp = spans[:0]
	if ok {
		if len(spans) > max {
			return tooManyValues(max, noun)
		}
		if len(spans) == 0 {
			return &refusal{http.StatusBadRequest, codeInvalidJSON, fmt.Sprintf("request has no %ss; send at least one", noun)}
		}
		for _, v := range spans {
			fn(body[v.from:v.to])
		}
		return nil
	}
	// A body with a syntax error takes encoding/json's path, whose errors
	// the refusal words.
	return eachValueSlow(body, array, max, noun, fn)
}

// span is where one value of a body lies.
type span struct{ from, to int }

var spanPool = sync.Pool{New: func() any { return new([]span) }}

// splitValues appends to spans where the values of body lie, splitting it
// as eachValueSlow does, from start (the first byte that is not space).
// It stops after max+1 values; ok is false when the body has a syntax
// error before that.
func splitValues(body []byte, start int, array bool, max int, spans []span) (_ []span, ok bool) {
	d := decoders.Get().(*schemas.Decoder)
	defer decoders.Put(d)
	i := start
	if array {
		i = skipSpace(body, i+1)
		if i < len(body) && body[i] == ']' {
			return spans, skipSpace(body, i+1) == len(body)
		}
	}
	for len(spans) <= max {
		i = skipSpace(body, i)
		if !array && i == len(body) {
			return spans, true
		}
		end, ok := d.Skip(body, i)
		if !ok {
			return spans, false
		}
		spans = append(spans, span{i, end})
		if !array {
			i = end
			continue
		}
		next, last, valid := afterElement(body, end)
		if last || !valid {
			return spans, valid
		}
		i = next
	}
	return spans, true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

func tooManyValues(max int, noun string) *refusal {
	return &refusal{http.StatusRequestEntityTooLarge, codeTooManyEvents, fmt.Sprintf(
		"request has more than %d %ss; split it into smaller requests", max, noun)}
}

// eachValueSlow is eachValue with encoding/json, for bodies with a syntax
// error: it finds the error and its position.
func eachValueSlow(body []byte, array bool, max int, noun string, fn func(raw json.RawMessage)) *refusal {
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
		from := dec.InputOffset()
		err := dec.Decode(&skipValue{})
		if !array && errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if array {
				from = 0
			}
			return syntaxError(body, from, err)
		}
		if n == max {
			return tooManyValues(max, noun)
		}
		n++
		// The value ends where the decoder stands; before it are the
		// separators after the previous one.
		fn(bytes.TrimLeft(body[from:dec.InputOffset()], ", \t\r\n"))
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
		return &refusal{http.StatusBadRequest, codeInvalidJSON, fmt.Sprintf("request has no %ss; send at least one", noun)}
	}
	return nil
}

// parseEvent decodes one event into e with d; raw is a syntactically
// valid JSON value.
func parseEvent(d *schemas.Decoder, raw []byte, e *schemas.Event, maxEventBytes int) item {
	if raw[0] != '{' {
		return item{probs: []schemas.FieldError{{Code: schemas.CodeInvalidType, Message: "an event must be a JSON object, got " + jsonKind(raw[0])}}}
	}
	if len(raw) > maxEventBytes {
		return item{probs: []schemas.FieldError{{Code: schemas.CodeTooLarge, Message: fmt.Sprintf(
			"event is %d bytes, the limit is %d; trim raw_usage or labels", len(raw), maxEventBytes)}}}
	}
	// As schemas.Parse, into e.
	err := d.Event(raw, e)
	if err == nil {
		// Checked first: errors.As would put its target on the heap for
		// every event.
		return item{event: e}
	}
	if verr := (*schemas.ValidationError)(nil); errors.As(err, &verr) {
		return item{probs: verr.Problems}
	}
	probs := fieldProblems(raw)
	if len(probs) == 0 {
		probs = []schemas.FieldError{{Code: schemas.CodeInvalidValue, Message: err.Error()}}
	}
	return item{probs: probs}
}

// skipValue checks a JSON value's syntax and keeps nothing of it.
type skipValue struct{}

func (*skipValue) UnmarshalJSON([]byte) error { return nil }

// syntaxError turns a JSON framing error into a 400 with a position. The
// Decoder's own offsets are not reliable inside arrays, so the bytes from
// the failing value on are checked again to find the offending byte.
func syntaxError(body []byte, from int64, err error) *refusal {
	var se *json.SyntaxError
	if errors.As(json.Unmarshal(body[from:], new(json.RawMessage)), &se) {
		// Offset counts the offending byte itself.
		return &refusal{http.StatusBadRequest, codeInvalidJSON, fmt.Sprintf("malformed JSON at %s: %s", position(body, from+se.Offset-1), se.Error())}
	}
	return &refusal{http.StatusBadRequest, codeInvalidJSON, "malformed JSON: " + err.Error()}
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
