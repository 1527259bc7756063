package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aivis-dev/aivis/schemas"
)

// event returns a valid llm.request event as JSON, with id and any extra
// top-level members spliced in.
func event(id string, extra ...string) string {
	s := `{"schema_version":"1","event_id":"` + id + `","time":"2026-01-02T15:04:05Z","kind":"llm.request","source":"gw-eu","provider":"openai","model":"gpt-4o","usage":{"input_tokens":100,"output_tokens":20}`
	for _, e := range extra {
		s += "," + e
	}
	return s + "}"
}

var testLimits = limits{maxEvents: 5, maxEventBytes: 4096, maxEventAge: fixtureAge, maxClockSkew: 5 * time.Minute}

// decodeBody is what the accept path does with a body posted to /v1/events
// before admission: parse, then check.
func decodeBody(body []byte, f framing, lim limits, headerKey string) (batch, error) {
	items, ref := parseEvents(body, f, lim, new(eventSlab))
	if ref != nil {
		return batch{}, ref
	}
	return check(items, lim, headerKey, time.Now(), new(sendBuf)), nil
}

func TestDecodeBody(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		framing   framing
		headerKey string
		wantIDs   []string
		wantErrs  []EventError // nil: none expected
		wantCode  int          // a *bodyError's status; 0 for none
		wantMsg   string       // substring of the body error
	}{
		{name: "single object", body: event("a"), wantIDs: []string{"a"}},
		{name: "single object with surrounding space", body: "\n  " + event("a") + "\n\n", wantIDs: []string{"a"}},
		{name: "pretty printed object", body: "{\n \"schema_version\": \"1\",\n \"event_id\": \"p\",\n \"time\": \"2026-01-02T15:04:05Z\",\n \"kind\": \"gpu.usage\",\n \"source\": \"h\",\n \"gpu\": {\"gpu_model\": \"H100\", \"interval_seconds\": 10, \"allocated_gpu_seconds\": 10, \"busy_gpu_seconds\": 5}\n}", wantIDs: []string{"p"}},
		{name: "array", body: "[" + event("a") + ", " + event("b") + "]", wantIDs: []string{"a", "b"}},
		{name: "ndjson detected", body: event("a") + "\n" + event("b") + "\n" + event("c") + "\n", wantIDs: []string{"a", "b", "c"}},
		{name: "ndjson declared", body: event("a") + "\r\n" + event("b"), framing: framingNDJSON, wantIDs: []string{"a", "b"}},
		{name: "empty body", body: "", wantCode: http.StatusBadRequest, wantMsg: "empty"},
		{name: "blank body", body: " \n\t", wantCode: http.StatusBadRequest, wantMsg: "empty"},
		{name: "empty array", body: "[]", wantCode: http.StatusBadRequest, wantMsg: "no events"},
		{name: "too many events", body: strings.Repeat(event("a")+"\n", 6), wantCode: http.StatusRequestEntityTooLarge, wantMsg: "more than 5 events"},
		{name: "too many in array", body: "[" + strings.Repeat(event("a")+",", 5) + event("b") + "]", wantCode: http.StatusRequestEntityTooLarge},
		{name: "malformed object", body: event("a") + "\n{\"event_id\": x}\n", wantCode: http.StatusBadRequest, wantMsg: "line 2, column 14"},
		{name: "truncated", body: `{"event_id": "a"`, wantCode: http.StatusBadRequest, wantMsg: "line 1, column 16 (byte 15): unexpected end of JSON input"},
		{name: "unclosed array", body: "[" + event("a"), wantCode: http.StatusBadRequest, wantMsg: "unexpected end"},
		{name: "malformed in array", body: "[" + event("a") + ",\n  " + event("b") + ",\n {oops}]", wantCode: http.StatusBadRequest, wantMsg: "line 3, column 3 (byte"},
		{name: "garbage after object", body: event("a") + "\n x", wantCode: http.StatusBadRequest, wantMsg: "line 2, column 2"},
		{name: "missing comma in array", body: "[" + event("a") + event("b") + "]", wantCode: http.StatusBadRequest, wantMsg: "line 1, column"},
		{name: "data after array", body: "[" + event("a") + "] {}", wantCode: http.StatusBadRequest, wantMsg: "after top-level value"},
		{name: "array as ndjson", body: "[" + event("a") + "]", framing: framingNDJSON,
			wantErrs: []EventError{{Index: 0, Field: "", Code: "invalid_type", Message: "an event must be a JSON object, got an array"}}},
		{name: "non-object element", body: `[` + event("a") + `, 42, "x"]`,
			wantErrs: []EventError{{Index: 1, Field: "", Code: "invalid_type", Message: "an event must be a JSON object, got a number"}, {Index: 2, Field: "", Code: "invalid_type", Message: "an event must be a JSON object, got a string"}}},
		{name: "unknown fields with paths", body: event("a", `"modle":"x"`, `"gpu":{"gpu_model":"x","bogus":1}`),
			wantErrs: []EventError{
				{Index: 0, Field: "gpu.bogus", Code: "unknown_field", Message: "unknown field; check its spelling against the usage event v1 schema"},
				{Index: 0, Field: "modle", Code: "unknown_field", Message: "unknown field; check its spelling against the usage event v1 schema"},
			}},
		{name: "nested unknown field", body: `{"schema_version":"1","event_id":"a","time":"2026-01-02T15:04:05Z","kind":"llm.request","source":"s","provider":"p","model":"m","usage":{"input_tokenz":1}}`,
			wantErrs: []EventError{{Index: 0, Field: "usage.input_tokenz", Code: "unknown_field", Message: "unknown field; check its spelling against the usage event v1 schema"}}},
		{name: "wrong types", body: event("a", `"latency_ms":"12"`, `"labels":{"team":7}`, `"streaming":1`),
			wantErrs: []EventError{
				{Index: 0, Field: "labels.team", Code: "invalid_type", Message: "must be a string, got number"},
				{Index: 0, Field: "latency_ms", Code: "invalid_type", Message: "must be an integer, got string"},
				{Index: 0, Field: "streaming", Code: "invalid_type", Message: "must be a boolean, got number"},
			}},
		{name: "bad time", body: `{"schema_version":"1","event_id":"a","time":"yesterday","kind":"llm.request","source":"s","provider":"p","model":"m"}`,
			wantErrs: []EventError{{Index: 0, Field: "time", Code: "invalid_type", Message: ""}}},
		{name: "invalid events per index", body: event("ok1") + "\n" + `{"schema_version":"1","event_id":"b","time":"2026-01-02T15:04:05Z","kind":"llm.request","source":"s"}` + "\n" + event("ok2") + "\n" + event("bad id!"),
			wantErrs: []EventError{
				{Index: 1, Field: "provider", Code: "required", Message: `is required for kind "llm.request"`},
				{Index: 1, Field: "model", Code: "required", Message: `is required for kind "llm.request"`},
				{Index: 3, Field: "event_id", Code: "invalid_value", Message: "may only contain letters, digits and - _ . : /"},
			}},
		{name: "case-insensitive keys are the schema's", body: strings.Replace(event("a"), `"model"`, `"Model"`, 1), wantIDs: []string{"a"}},
		{name: "api key label", body: event("a", `"labels":{"api_key":"sk-secret","team":"x"}`), wantIDs: []string{"a"}},
		{name: "api key header", body: event("a"), headerKey: "sk-secret", wantIDs: []string{"a"}},
		{name: "empty api key label", body: event("a", `"labels":{"API_KEY":""}`),
			wantErrs: []EventError{{Index: 0, Field: "labels.API_KEY", Code: "required", Message: "is empty; send the caller's API key or leave the label out"}}},
		{name: "api key conflicts with id", body: event("a", `"api_key_id":"sha256:00"`, `"labels":{"api_key":"sk-secret"}`),
			wantErrs: []EventError{{Index: 0, Field: "api_key_id", Code: "invalid_value", Message: "does not match the hash of labels.api_key; send one or the other"}}},
		{name: "event too large", body: event("a", `"labels":{"x":"`+strings.Repeat("y", 5000)+`"}`),
			wantErrs: []EventError{{Index: 0, Field: "", Message: ""}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := decodeBody([]byte(tt.body), tt.framing, testLimits, tt.headerKey)
			if tt.wantCode != 0 {
				var be *refusal
				if !errors.As(err, &be) {
					t.Fatalf("err = %v, want a body error with status %d", err, tt.wantCode)
				}
				if be.status != tt.wantCode || !strings.Contains(be.msg, tt.wantMsg) {
					t.Fatalf("body error = %d %q, want %d containing %q", be.status, be.msg, tt.wantCode, tt.wantMsg)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected body error: %v", err)
			}
			if tt.wantErrs != nil {
				if len(b.errors) != len(tt.wantErrs) {
					t.Fatalf("errors = %+v, want %+v", b.errors, tt.wantErrs)
				}
				for i, w := range tt.wantErrs {
					g := b.errors[i]
					if g.Index != w.Index || g.Field != w.Field || !strings.Contains(g.Message, w.Message) || (w.Code != "" && g.Code != w.Code) {
						t.Errorf("errors[%d] = %+v, want %+v", i, g, w)
					}
				}
				return
			}
			if len(b.errors) > 0 || b.invalid > 0 {
				t.Fatalf("unexpected event errors: %+v", b.errors)
			}
			var ids []string
			for _, d := range b.events {
				ids = append(ids, d.event.EventID)
			}
			if fmt.Sprint(ids) != fmt.Sprint(tt.wantIDs) {
				t.Fatalf("ids = %v, want %v", ids, tt.wantIDs)
			}
			for _, d := range b.events {
				if bytes.Contains(d.value, []byte("sk-secret")) {
					t.Fatalf("raw API key in produced value: %s", d.value)
				}
			}
		})
	}
}

func TestDecodeBodyAPIKeyID(t *testing.T) {
	want := APIKeyID("sk-secret")
	for _, body := range []string{
		event("a", `"labels":{"api_key":"sk-secret"}`),
		event("a", `"labels":{"Api_Key":"sk-secret"}`),
		event("a", `"api_key_id":"`+want+`"`, `"labels":{"api_key":"sk-secret"}`),
	} {
		b, err := decodeBody([]byte(body), framingDetect, testLimits, "sk-other")
		if err != nil || len(b.events) != 1 {
			t.Fatalf("decodeBody(%s) = %+v, %v", body, b, err)
		}
		e := b.events[0].event
		if e.APIKeyID != want || e.Labels != nil {
			t.Errorf("api_key_id = %q labels = %v, want %q and no labels", e.APIKeyID, e.Labels, want)
		}
	}
	// The header fills in events without a key of their own only.
	b, err := decodeBody([]byte(event("a")+"\n"+event("b", `"api_key_id":"key-7"`)), framingDetect, testLimits, "sk-secret")
	if err != nil {
		t.Fatal(err)
	}
	if got := b.events[0].event.APIKeyID; got != want {
		t.Errorf("header key: api_key_id = %q, want %q", got, want)
	}
	// An api_key_id that is not of the APIKeyID form is a raw key.
	if got := b.events[1].event.APIKeyID; got != APIKeyID("key-7") {
		t.Errorf("own api_key_id = %q, want it hashed", got)
	}
}

func TestDecodeBodyCanonicalValue(t *testing.T) {
	body := `{"time":"2026-01-02T17:04:05+02:00","schema_version":"1","event_id":"a","kind":"llm.request","source":"s","provider":"p","model":"m","raw_usage":{ "x" : 1 }}`
	b, err := decodeBody([]byte(body), framingDetect, testLimits, "")
	if err != nil || len(b.events) != 1 {
		t.Fatalf("decodeBody = %+v, %v", b, err)
	}
	want := `{"schema_version":"1","event_id":"a","time":"2026-01-02T15:04:05Z","kind":"llm.request","source":"s","provider":"p","model":"m","raw_usage":{"x":1}}`
	if got := string(b.events[0].value); got != want {
		t.Fatalf("value =\n%s\nwant\n%s", got, want)
	}
}

func TestDecodeBodyCapsErrors(t *testing.T) {
	body := strings.Repeat(`{"event_id":"x"}`+"\n", maxErrors+10)
	b, err := decodeBody([]byte(body), framingDetect, limits{maxEvents: 10_000, maxEventBytes: 1000}, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(b.errors) != maxErrors || b.invalid != maxErrors+10 || b.total != maxErrors+10 {
		t.Fatalf("errors=%d invalid=%d total=%d", len(b.errors), b.invalid, b.total)
	}
}

// bodySeeds are request bodies every body-parsing fuzz target starts from:
// arrays, lines, bad events, other kinds and broken JSON.
func bodySeeds() []string {
	return []string{
		event("a"),
		"[" + event("a") + "," + event("b") + "]",
		event("a") + "\n" + event("b") + "\n",
		event("a", `"labels":{"api_key":"k"}`),
		event("a", `"usage":{"input_tokens":-1}`),
		`{"schema_version":"1","event_id":"g","time":"2026-01-02T15:04:05Z","kind":"gpu.usage","source":"h","gpu":{"gpu_model":"H100","interval_seconds":10,"allocated_gpu_seconds":10,"busy_gpu_seconds":5}}`,
		"[1, {}, null]",
		"{\"a\":",
		"",
		"[]",
		"] [",
		`{"time":"x"}`,
	}
}

func FuzzDecodeBody(f *testing.F) {
	for _, s := range bodySeeds() {
		f.Add([]byte(s), false, "")
		f.Add([]byte(s), true, "hdr-key")
	}
	f.Fuzz(func(t *testing.T, body []byte, ndjson bool, headerKey string) {
		fr := framingDetect
		if ndjson {
			fr = framingNDJSON
		}
		lim := limits{maxEvents: 100, maxEventBytes: 64 << 10}
		b, err := decodeBody(body, fr, lim, headerKey)
		if err != nil {
			var be *refusal
			if !errors.As(err, &be) || be.status < 400 || be.msg == "" {
				t.Fatalf("error %v is not a body error with a status and message", err)
			}
			return
		}
		if b.total == 0 || b.total > lim.maxEvents || len(b.events)+b.invalid != b.total {
			t.Fatalf("counts: total=%d valid=%d invalid=%d", b.total, len(b.events), b.invalid)
		}
		if b.invalid > 0 && len(b.errors) == 0 {
			t.Fatal("invalid events without errors")
		}
		for _, d := range b.events {
			if len(d.value) > lim.maxEventBytes {
				t.Fatalf("value of %d bytes passed the limit", len(d.value))
			}
			e, err := schemas.Decode(d.value)
			if err != nil {
				t.Fatalf("accepted event does not re-validate: %v\n%s", err, d.value)
			}
			for k := range e.Labels {
				if strings.EqualFold(k, apiKeyLabel) {
					t.Fatalf("raw api key label survived: %s", d.value)
				}
			}
			again, _ := json.Marshal(e)
			if !bytes.Equal(again, d.value) {
				t.Fatalf("value is not canonical:\n%s\n%s", d.value, again)
			}
		}
	})
}

func BenchmarkDecodeBody(b *testing.B) {
	for _, n := range []int{1, 100} {
		var buf bytes.Buffer
		buf.WriteByte('[')
		for i := range n {
			if i > 0 {
				buf.WriteByte(',')
			}
			buf.WriteString(event(fmt.Sprintf("01JH5V6Z8X9Y0A%012d", i), `"labels":{"api_key":"sk-secret","team":"search"}`))
		}
		buf.WriteByte(']')
		body := buf.Bytes()
		lim := limits{maxEvents: 10_000, maxEventBytes: 1 << 20, maxEventAge: fixtureAge, maxClockSkew: fixtureAge}
		b.Run(fmt.Sprintf("events=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				bt, err := decodeBody(body, framingDetect, lim, "")
				if err != nil || len(bt.events) != n {
					b.Fatalf("decodeBody: %d events, %v", len(bt.events), err)
				}
			}
		})
	}
}

// FuzzParseEventsOnce: the one-pass parse must give what splitting first
// gives, for every body: the same refusal, or the same items (the same
// events and the same problems, in order).
func FuzzParseEventsOnce(f *testing.F) {
	seeds := append(bodySeeds(),
		" [ "+event("a")+" , 7, null, "+event("b")+" ] ",
		event("a")+event("b"),
		event("a", `"usage":5`),
		event("a", `"unknown":1`),
		event("a", `"Model":"x"`),
		event("a", `"labels":{"t":"\ud800"}`),
		event("a", "\"labels\":{\"t\":\"\xff\"}"),
		event("a", `"raw_usage":{"x":[1,{"y":2}]}`),
		"["+event("a")+"] x",
		"["+event("a")+",]",
		event("a")+"\n{\"event_id\": x}\n",
		strings.Repeat(event("a")+"\n", 4)+"{",
		strings.Repeat(event("a")+"\n", 5),
	)
	for _, s := range seeds {
		f.Add([]byte(s), false, uint8(3))
		f.Add([]byte(s), true, uint8(200))
	}
	f.Fuzz(func(t *testing.T, body []byte, ndjson bool, maxEvents uint8) {
		fr := framingDetect
		if ndjson {
			fr = framingNDJSON
		}
		lim := limits{maxEvents: 1 + int(maxEvents%8), maxEventBytes: 512}
		d := new(schemas.Decoder)
		once, onceRef, ok := parseEventsOnce(d, body, fr, lim, new(eventSlab))
		if !ok {
			return // parseEvents takes the split path
		}
		split, splitRef := parseEventsSplit(d, body, fr, lim, new(eventSlab))
		if (onceRef == nil) != (splitRef == nil) || onceRef != nil && *onceRef != *splitRef {
			t.Fatalf("refusal %+v, split first %+v", onceRef, splitRef)
		}
		if onceRef != nil {
			return
		}
		if len(once) != len(split) {
			t.Fatalf("%d items, split first %d", len(once), len(split))
		}
		for i := range once {
			a, b := once[i], split[i]
			if (a.event == nil) != (b.event == nil) {
				t.Fatalf("item %d: event %v, split first %v (problems %v / %v)", i, a.event != nil, b.event != nil, a.probs, b.probs)
			}
			if a.event != nil {
				ja, _ := json.Marshal(a.event)
				jb, _ := json.Marshal(b.event)
				if !bytes.Equal(ja, jb) {
					t.Fatalf("item %d: event\n%s\nsplit first\n%s", i, ja, jb)
				}
			}
			if fmt.Sprint(a.probs) != fmt.Sprint(b.probs) {
				t.Fatalf("item %d: problems %v, split first %v", i, a.probs, b.probs)
			}
		}
	})
}

// TestParseEventsOnceTakesWellFormedBodies: bodies without syntax errors go
// the one-pass way, those with problems in some events included.
func TestParseEventsOnceTakesWellFormedBodies(t *testing.T) {
	for _, body := range []string{
		event("a"),
		"[" + event("a") + ", 7, " + event("b", `"usage":{"input_tokens":-1}`) + "]",
		event("a") + "\n" + event("b", `"nope":1`) + "\n",
		strings.Repeat(event("a")+"\n", 6),
	} {
		items, ref, ok := parseEventsOnce(new(schemas.Decoder), []byte(body), framingDetect, testLimits, new(eventSlab))
		if !ok {
			t.Errorf("left to the split path: %s", body)
		}
		if ref == nil && len(items) == 0 {
			t.Errorf("no items and no refusal: %s", body)
		}
	}
}
