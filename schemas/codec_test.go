package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
	"unsafe"
)

// oracleParse is Parse as it was before Decoder: encoding/json, strict,
// then CheckJSON. The decoder must agree with it on every input.
func oracleParse(data []byte) (*Event, error) {
	var e Event
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return nil, fmt.Errorf("decoding usage event JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("decoding usage event JSON: trailing data after the event")
	}
	if probs := CheckJSON(data, &e); len(probs) > 0 {
		return nil, &ValidationError{Problems: probs}
	}
	return &e, nil
}

// oracleEnriched is DecodeEnriched as it was before Decoder.
func oracleEnriched(data []byte) (*Enriched, error) {
	var e Enriched
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, err
	}
	return &e, nil
}

// dirty is a full value decoded into before each compared decode, so that
// reuse of a value's memory is compared too.
var dirty = []byte(`{"schema_version":"1","event_id":"old","time":"2026-01-01T00:00:00Z","kind":"llm.request","source":"s","api_key_id":"k",
"labels":{"team":"x","old":"y"},"provider":"p","model":"m","operation":"o","status":"ok","error_type":"e","latency_ms":5,"service_tier":"t",
"streaming":true,"usage":{"input_tokens":1,"cache_read_input_tokens":2,"cache_write_input_tokens":3,"output_tokens":4,"reasoning_output_tokens":5,
"cache_write_5m_input_tokens":6,"cache_write_1h_input_tokens":7,"tool_input_tokens":8,"input_audio_tokens":9,"output_audio_tokens":10,
"accepted_prediction_tokens":11,"rejected_prediction_tokens":12,"provider_total_tokens":13,"server_tool_calls":{"web_search":1,"x":2}},
"raw_usage":{"a":[1,2,{"b":3}]},"provider_cost_usd":"1.5","warnings":["w1","w2","w3"],
"gpu":{"gpu_model":"H100","gpu_uuid":"u","mig_profile":"m","host":"h","cluster":"c","namespace":"n","pod":"p","container":"c","pid":7,
"interval_seconds":1.5,"allocated_gpu_seconds":2,"busy_gpu_seconds":3,"memory_bytes":9,"energy_joules":4.5,"pricing_category":"pc",
"owner_kind":"k8s_pod","owner_id":"oid","memory_max_bytes":11,"parent_gpu_uuid":"pu","attribution":"even"},
"end_user":"u1","tags":["t1","t2","t3"],"request_bytes":100,"response_bytes":200,"provider_region":"us-east-1","provider_endpoint":"api.example",
"owner":{"team":"t","project":"p","cost_center":"cc","rule":"r"},"pricing":{"catalog_version":"v","price_id":"pid",
"lines":[{"meter":"a","quantity":1,"unit_price_per_1m":"1","cost_picos":2},{"meter":"b","quantity":3,"unit_price_per_1m":"2","cost_picos":4},{"meter":"c"}]},
"cost_picos":42,"cost_source":"catalog","flags":{"unpriced":true,"unowned":true,"unapproved_model":true,"usage_mismatch":true,"region_not_allowed":true,"missing_labels":true},
"enriched_at":"2026-01-01T00:00:01.5Z","canonical_model":"cm"}`)

var (
	sharedDecoder  Decoder
	sharedEvent    Event
	sharedEnriched Enriched
)

// compareDecoders fails t where Decoder and the oracles disagree on data.
func compareDecoders(t *testing.T, data []byte) {
	t.Helper()
	want, werr := oracleParse(data)
	got, gerr := Parse(data)
	sameResult(t, "Parse", data, want, werr, got, gerr)

	var dirtyDec Decoder
	var dirtyEnriched Enriched
	if err := dirtyDec.Enriched(dirty, &dirtyEnriched); err != nil {
		t.Fatal(err)
	}
	sharedEvent = dirtyEnriched.Event
	gerr = sharedDecoder.Event(data, &sharedEvent)
	if gerr != nil {
		sameResult(t, "Decoder.Event reused", data, want, werr, nil, gerr)
	} else {
		sameResult(t, "Decoder.Event reused", data, want, werr, &sharedEvent, gerr)
		// Hiding secrets with what the decode learnt gives what
		// HideSecrets gives on the oracle's event.
		if hidden, _ := oracleParse(data); werr == nil {
			hidden.HideSecrets()
			sharedDecoder.HideSecrets(&sharedEvent)
			if !reflect.DeepEqual(hidden, &sharedEvent) {
				a, _ := json.Marshal(hidden)
				b, _ := json.Marshal(&sharedEvent)
				t.Fatalf("Decoder.HideSecrets (%q):\n HideSecrets %s\n decoder     %s", data, a, b)
			}
			compareHead(t, data, &sharedDecoder, hidden)
		}
	}

	compareEventAt(t, data, want, werr)

	// With the event id left in the input: the same event.
	inPlace := Decoder{EventIDInPlace: true}
	var ip Event
	if gerr := inPlace.Event(data, &ip); gerr != nil {
		sameResult(t, "Decoder.Event, id in place", data, want, werr, nil, gerr)
	} else {
		sameResult(t, "Decoder.Event, id in place", data, want, werr, &ip, gerr)
	}

	wantE, werrE := oracleEnriched(data)
	gotE, gerrE := DecodeEnriched(data)
	if (werrE == nil) != (gerrE == nil) {
		t.Fatalf("DecodeEnriched(%q): oracle err = %v, decoder err = %v", data, werrE, gerrE)
	}
	if werrE == nil && !reflect.DeepEqual(wantE, gotE) {
		t.Fatalf("DecodeEnriched(%q):\n oracle  %#v\n decoder %#v", data, wantE, gotE)
	}
	if err := dirtyDec.Enriched(dirty, &sharedEnriched); err != nil {
		t.Fatal(err)
	}
	gerrE = sharedDecoder.Enriched(data, &sharedEnriched)
	if (werrE == nil) != (gerrE == nil) {
		t.Fatalf("Decoder.Enriched reused (%q): oracle err = %v, decoder err = %v", data, werrE, gerrE)
	}
	if werrE == nil && !reflect.DeepEqual(wantE, &sharedEnriched) {
		a, _ := json.Marshal(wantE)
		b, _ := json.Marshal(&sharedEnriched)
		t.Fatalf("Decoder.Enriched reused (%q):\n oracle  %s\n decoder %s", data, a, b)
	}

	// Without the cost lines: what the oracle gives less the lines, and
	// still an error for what is not JSON.
	skipDec := Decoder{SkipCostLines: true}
	var skipped Enriched
	if err := skipDec.Enriched(dirty, &skipped); err != nil {
		t.Fatal(err)
	}
	gerrE = skipDec.Enriched(data, &skipped)
	if werrE == nil {
		wantE.Pricing.Lines = nil
		if gerrE != nil || !reflect.DeepEqual(wantE, &skipped) {
			a, _ := json.Marshal(wantE)
			b, _ := json.Marshal(&skipped)
			t.Fatalf("Decoder.Enriched skipping cost lines (%q): err %v\n oracle  %s\n decoder %s", data, gerrE, a, b)
		}
	}
	if !json.Valid(data) && gerrE == nil {
		t.Fatalf("Decoder.Enriched skipping cost lines (%q) takes what is not JSON", data)
	}

	// Labels kept as text: the same event once the text is read back,
	// and the same encoding as the oracle's map gives.
	textDec := Decoder{LabelsAsJSON: true}
	var texted Enriched
	if err := textDec.Enriched(dirty, &texted); err != nil {
		t.Fatal(err)
	}
	gerrE = textDec.Enriched(data, &texted)
	if (werrE == nil) != (gerrE == nil) {
		t.Fatalf("Decoder.Enriched with labels as text (%q): oracle err = %v, decoder err = %v", data, werrE, gerrE)
	}
	if werrE == nil {
		wantE, _ = oracleEnriched(data)
		if got, want := texted.AppendJSON(nil), wantE.AppendJSON(nil); !bytes.Equal(got, want) {
			t.Fatalf("Decoder.Enriched with labels as text (%q) encodes as\n %s\nnot\n %s", data, got, want)
		}
		if texted.LabelsJSON != nil {
			if texted.Labels != nil {
				t.Fatalf("Decoder.Enriched with labels as text (%q) set both Labels and LabelsJSON", data)
			}
			if err := json.Unmarshal(texted.LabelsJSON, &texted.Labels); err != nil {
				t.Fatalf("Decoder.Enriched with labels as text (%q): LabelsJSON %s: %v", data, texted.LabelsJSON, err)
			}
			js, _ := json.Marshal(texted.Labels)
			if !bytes.Equal(js, texted.LabelsJSON) {
				t.Fatalf("Decoder.Enriched with labels as text (%q): LabelsJSON %s, json.Marshal of it %s", data, texted.LabelsJSON, js)
			}
			texted.LabelsJSON = nil
		}
		if !reflect.DeepEqual(wantE, &texted) {
			a, _ := json.Marshal(wantE)
			b, _ := json.Marshal(&texted)
			t.Fatalf("Decoder.Enriched with labels as text (%q):\n oracle  %s\n decoder %s", data, a, b)
		}
	}
}

// compareHead fails t where d, having decoded data and hidden its
// secrets, offers a canonical head that is not what AppendJSON writes for
// hidden (the oracle's event, secrets hidden), or offers none for the text
// AppendJSON writes for it.
func compareHead(t *testing.T, data []byte, d *Decoder, hidden *Event) {
	t.Helper()
	if start, end, ok := d.CanonicalHead(); ok {
		if got, want := data[start:end], hidden.appendHead(nil); !bytes.Equal(got, want) {
			t.Fatalf("CanonicalHead of %q:\n %s\nAppendJSON writes\n %s", data, got, want)
		}
	}
	canon := hidden.AppendJSON(nil)
	var cd Decoder
	var ev Event
	if err := cd.Event(canon, &ev); err != nil {
		return
	}
	cd.HideSecrets(&ev)
	start, end, ok := cd.CanonicalHead()
	if ok && !bytes.Equal(canon[start:end], hidden.appendHead(nil)) {
		t.Fatalf("CanonicalHead of %q: %s", canon, canon[start:end])
	}
	// Left to the encoder on purpose: a time not in UTC or outside
	// years 0–9999, server tool calls (written out of the decoder's
	// order), a raw_usage beyond the counts scan, credential labels.
	expect := hidden.Time.Location() == time.UTC && hidden.Time.Year() >= 0 && hidden.Time.Year() <= 9999 &&
		(hidden.Usage == nil || hidden.Usage.ServerToolCalls == nil) && (len(hidden.RawUsage) == 0 || countsOnly(hidden.RawUsage))
	// Strings with an escape are too.
	for _, s := range []string{hidden.SchemaVersion, hidden.EventID, hidden.Kind, hidden.Source, hidden.APIKeyID, hidden.Provider,
		hidden.Model, hidden.Operation, hidden.Status, hidden.ErrorType, hidden.ServiceTier, hidden.ProviderCostUSD} {
		expect = expect && copiedAsIs(s)
	}
	for k, v := range hidden.Labels {
		expect = expect && !CredentialName(k) && copiedAsIs(k) && copiedAsIs(v)
	}
	if ok != expect {
		t.Fatalf("CanonicalHead of AppendJSON's text %q: ok = %v, want %v", canon, ok, expect)
	}
}

// copiedAsIs reports whether appendString writes s as it is, between
// quotes.
func copiedAsIs(s string) bool {
	for i := 0; ; {
		if i = safeRun(s, i); i == len(s) {
			return true
		}
		if s[i] < utf8.RuneSelf {
			return false
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 || r == '\u2028' || r == '\u2029' {
			return false
		}
		i += n
	}
}

// TestEventIDInPlace: the id refers to the input when it needs no
// decoding, and is a copy when it does.
func TestEventIDInPlace(t *testing.T) {
	d := Decoder{EventIDInPlace: true}
	var e Event
	if err := d.Event(benchEvent, &e); err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(benchEvent, []byte(e.EventID))
	if at < 0 || unsafe.StringData(e.EventID) != &benchEvent[at] {
		t.Fatalf("event id %q is a copy", e.EventID)
	}
	escaped := bytes.Replace(benchEvent, []byte(`"event_id":"0`), []byte(`"event_id":"\u0030`), 1)
	if err := d.Event(escaped, &e); err != nil {
		t.Fatal(err)
	}
	if p := unsafe.StringData(e.EventID); uintptr(unsafe.Pointer(p)) >= uintptr(unsafe.Pointer(&escaped[0])) &&
		uintptr(unsafe.Pointer(p)) < uintptr(unsafe.Pointer(&escaped[0]))+uintptr(len(escaped)) {
		t.Fatalf("event id %q decoded from an escape refers to the input", e.EventID)
	}
	if e.EventID[0] != '0' {
		t.Fatalf("event id %q", e.EventID)
	}
}

// TestCanonicalHead checks which heads the decoder offers.
func TestCanonicalHead(t *testing.T) {
	const head = `{"schema_version":"1","event_id":"e1","time":"2026-11-26T10:00:00.12Z","kind":"llm.request","source":"s"`
	for _, c := range []struct {
		rest string
		ok   bool
	}{
		{`,"provider":"openai","model":"gpt-4o","usage":{"input_tokens":5}}`, true},
		{`,"api_key_id":"sha256:0123456789abcdef0123456789abcdef","labels":{"project":"p","team":"t"},"model":"m","latency_ms":-3,"streaming":true,"usage":{},"raw_usage":{"a":[1,{"b":2}]},"provider_cost_usd":"0.5","warnings":["x"],"end_user":"u"}`, true},
		{`,"model":"café ☕","warnings":[ "space in the tail" ]}`, true},
		{`,"labels":{"team":"t","project":"p"}}`, false},   // keys not sorted
		{`,"labels":{}}`, false},                           // left out
		{`,"labels":{"team":"a<b"}}`, false},               // escaped as <
		{`,"labels":{"t\u0065am":"a"}}`, false},            // an escape
		{`,"model":"m","provider":"p"}`, false},            // out of order
		{`,"model": "m"}`, false},                          // space
		{`,"model":""}`, false},                            // left out
		{`,"model":null}`, false},                          // left out
		{`,"model":"\u2028"}`, false},                      // an escape
		{`,"latency_ms":-0}`, false},                       // written 0
		{`,"streaming":false}`, false},                     // left out
		{`,"usage":{"server_tool_calls":{"w":1}}}`, false}, // written elsewhere
		{`,"raw_usage":{"a":1,"note":"x"}}`, false},        // reduced
		{`,"raw_usage":{"a": 1}}`, false},                  // compacted
		{`,"api_key_id":"sk-live-1"}`, false},              // hashed
		{`,"labels":{"api_key":"sk-live-1"}}`, false},      // hashed
		{`,"Model":"m"}`, false},                           // another case
	} {
		data := []byte(head + c.rest)
		var d Decoder
		var e Event
		if err := d.Event(data, &e); err != nil {
			t.Fatalf("%s: %v", c.rest, err)
		}
		d.HideSecrets(&e)
		start, end, ok := d.CanonicalHead()
		if ok != c.ok {
			t.Errorf("%s: ok = %v, want %v", c.rest, ok, c.ok)
			continue
		}
		if ok && !bytes.Equal(data[start:end], e.appendHead(nil)) {
			t.Errorf("%s: head %s, AppendJSON writes %s", c.rest, data[start:end], e.appendHead(nil))
		}
	}
	for _, time := range []string{"2026-11-26T10:00:00.120Z", "2026-11-26T10:00:00.0Z", "2026-11-26T12:00:00+02:00", "2026-11-26t10:00:00z"} {
		data := []byte(`{"schema_version":"1","event_id":"e1","time":"` + time + `","kind":"llm.request","source":"s"}`)
		var d Decoder
		var e Event
		if err := d.Event(data, &e); err != nil {
			continue
		}
		if _, _, ok := d.CanonicalHead(); ok {
			t.Errorf("time %s: a head offered, AppendJSON writes %s", time, e.appendHead(nil))
		}
	}
	// A required member missing: AppendJSON writes it anyway.
	var d Decoder
	var e Event
	if err := d.Event([]byte(`{"schema_version":"1","event_id":"e1","kind":"llm.request","source":"s"}`), &e); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := d.CanonicalHead(); ok {
		t.Error("a head offered without the time")
	}
}

// TestLabelsAsJSON checks which labels the decoder keeps as text.
func TestLabelsAsJSON(t *testing.T) {
	head := `{"event_id":"e1","labels":`
	for _, c := range []struct {
		labels string
		text   bool
	}{
		{`{"project":"ranking","team":"search"}`, true},
		{`{"":"x","a":""}`, true},
		{`{"team":"search","project":"ranking"}`, false}, // not sorted
		{`{"team":"a","team":"b"}`, false},               // repeated
		{`{}`, false},
		{`{"team": "search"}`, false},
		{`{"team":"se\u0061rch"}`, false},
		{`{"team":"a<b"}`, false},
		{`{"team":"café"}`, false},
		{`null`, false},
	} {
		d := Decoder{LabelsAsJSON: true}
		var e Enriched
		if err := d.Enriched([]byte(head+c.labels+`}`), &e); err != nil {
			t.Fatalf("%s: %v", c.labels, err)
		}
		if got := e.LabelsJSON != nil; got != c.text {
			t.Errorf("%s: kept as text %v, want %v", c.labels, got, c.text)
		}
		if c.text && string(e.LabelsJSON) != c.labels {
			t.Errorf("%s: LabelsJSON %s", c.labels, e.LabelsJSON)
		}
	}
}

func sameResult(t *testing.T, what string, data []byte, want *Event, werr error, got *Event, gerr error) {
	t.Helper()
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("%s(%q): oracle err = %v, decoder err = %v", what, data, werr, gerr)
	}
	if werr == nil {
		if !reflect.DeepEqual(want, got) {
			t.Fatalf("%s(%q):\n oracle  %#v\n decoder %#v", what, data, want, got)
		}
		return
	}
	var wv, gv *ValidationError
	if errors.As(werr, &wv) != errors.As(gerr, &gv) {
		t.Fatalf("%s(%q): oracle err = %v, decoder err = %v: one is a ValidationError, the other not", what, data, werr, gerr)
	}
	if wv != nil && !reflect.DeepEqual(wv.Problems, gv.Problems) {
		t.Fatalf("%s(%q): problems\n oracle  %+v\n decoder %+v", what, data, wv.Problems, gv.Problems)
	}
}

// codecSeeds are inputs for the differential tests: the test files of
// enrich and ingest and the corner cases of encoding/json.
func codecSeeds(t testing.TB) [][]byte {
	seeds := [][]byte{benchEvent, dirty, benchEnriched()}
	for _, pattern := range []string{"../enrich/testdata/golden/*/*.json", "../ingest/testdata/*.json", "../ingest/testdata/*/*.json"} {
		files, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			seeds = append(seeds, b)
		}
	}
	const head = `{"schema_version":"1","event_id":"e1","time":"2026-11-26T10:00:00Z","kind":"llm.request","source":"s","provider":"openai",`
	for _, tail := range []string{
		`"model":"m"}`, `"model":"cheap","model":"gpt-4o"}`, `"model" :"m"}`, `"modelx":"m"}`, `"model":"m","provider":"p"}`, `"model":"m","usage":{"input_tokens":1,"input_tokens":1000}}`,
		`"model":"m","labels":{"team":"a","team":"b"}}`, `"model":"m","\u006dodel":"n"}`, `"model":"m","raw_usage":{"a":1,"a":2}}`,
		`"model":"m","labels":{"team":"a","X-Api-Key":"sk-live-1"}}`, `"model":"m","labels":{"db.password":"hunter2","githubToken":"t"}}`,
		`"model":"m","labels":{"max_tokens":"5","author":"a"}}`, `"model":"m","labels":{"api_key":"sha256:0123456789abcdef0123456789abcdef"}}`,
		`"model":"m","MODEL":"other"}`, `"Model":"m","MODEL":"other"}`, `"MODEL":"m"}`, `"ſource":"x","model":"m"}`, `"model":"m","usage":{"input_tokens":5,"Input_Tokens":5}}`,
		"\"model\":\"m\xff\"}", "\"model\":\"m\",\"labels\":{\"team\":\"a\xc3\"}}", "\"model\":\"m\",\"labels\":{\"t\xffm\":\"a\"}}",
		`"model":"m\ud800"}`, `"model":"m\udc00x"}`, `"model":"m\ud83d\ude00é\u00e9\t\"\\\/\b\f\n\r"}`, `"model":"m\ud800\u0041"}`,
		"\"model\":\"m\",\"warnings\":[\"ok\",\"b\xffd\"]}", `"model":"m","warnings":["a",null,"c"]}`, `"model":"m","warnings":[]}`, `"model":"m","warnings":null}`,
		`"model":null,"labels":null,"usage":null,"raw_usage":null,"gpu":null,"latency_ms":null,"streaming":null,"time":null}`,
		`"latency_ms":1.0}`, `"latency_ms":1e3}`, `"latency_ms":9223372036854775808}`, `"latency_ms":-9223372036854775808}`, `"latency_ms":-0}`,
		`"latency_ms":"1"}`, `"streaming":"true"}`, `"streaming":1}`, `"labels":{"a":1}}`, `"labels":[]}`, `"usage":[]}`, `"usage":{"server_tool_calls":{"w":1.5}}}`,
		`"gpu":{"interval_seconds":1e400}}`, `"gpu":{"interval_seconds":-0,"energy_joules":1e-7,"pid":1}}`, `"time":"2026-11-26T10:00:00+02:00"}`,
		`"time":"2026-11-26T10:00:00\u005a"}`, `"time":5}`, `"time":"x"}`, `"raw_usage":  { "a" : [ 1 , { } , [ ] ] } }`, `"raw_usage":"s"}`,
		`"unknown":1}`, `"usage":{"unknown":1}}`, `"model":"m",}`, `"model":"m"} x`, `"model":"m"}  `, `"model":"m"`, `"model":01}`,
		`"owner":{"team":"t"},"cost_picos":5,"flags":{"unpriced":true},"pricing":{"lines":[{"meter":"a"},null]}}`,
		`"pricing":{"lines":[{"meter":"a","quantity":1}]},"pricing":{"lines":[{"meter":"b"}]}}`,
		`"warnings":["a","b","c"],"warnings":["x"],"warnings":[null,null,null]}`, `"usage":{"input_tokens":1},"usage":{"output_tokens":2}}`,
		`"labels":{"a":"1"},"labels":{"b":"2"}}`, `"raw_usage":{"a":1},"raw_usage":[2]}`, `"enriched_at":"2026-11-26T10:00:00.123456789Z"}`,
		`"model":"GPT-4o","canonical_model":"gpt-4o"}`, `"canonical_model":null}`, `"canonical_model":1}`, `"Canonical_Model":"x","canonical_model":"y"}`,
		`"labels":{"a":null}}`, `"usage":{"server_tool_calls":{"w":null}}}`, `"Owner":{"TEAM":"t"}}`, `"model":"\u003c\u2028"}`,
		`"model":"m","end_user":"u","tags":["a","b"],"request_bytes":10,"response_bytes":0,"provider_region":"eu-west-1","provider_endpoint":"h"}`,
		`"tags":null,"request_bytes":null,"end_user":null}`, `"tags":[],"Request_Bytes":1,"request_bytes":2}`, `"tags":["a",1]}`, `"request_bytes":1.5}`,
		`"tags":["a","b","c"],"tags":["x"],"warnings":["w"]}`, `"response_bytes":-1,"provider_region":7}`,
		`"flags":{"region_not_allowed":true,"missing_labels":false}}`, `"flags":{"Region_Not_Allowed":1}}`,
	} {
		seeds = append(seeds, []byte(head+tail))
	}
	seeds = append(seeds, []byte(`null`), []byte(` null `), []byte(`[]`), []byte(`"s"`), []byte(`1`), []byte(``), []byte(`{}`), []byte(`{`),
		[]byte(`{"raw_usage":`+strings.Repeat("[", 10001)+strings.Repeat("]", 10001)+`}`),
		[]byte(`{"raw_usage":`+strings.Repeat("[", 9999)+strings.Repeat("]", 9999)+`}`),
		[]byte(`{"raw_usage":`+strings.Repeat(`{"a":`, 100)+"1"+strings.Repeat("}", 100)+`}`))
	return seeds
}

func benchEnriched() []byte {
	e, err := Decode(benchEvent)
	if err != nil {
		panic(err)
	}
	data, err := json.Marshal(Enriched{Event: *e, Owner: Owner{Team: "search", Project: "ranking", Rule: "labels"},
		Pricing:   Pricing{CatalogVersion: "2026-11-26.1", PriceID: "openai/gpt-4o", Lines: []CostLine{{Meter: "input", Quantity: 1000, UnitPrice: "2.50", CostPicos: 2_500_000_000}}},
		CostPicos: 5_000_000_000, CostSource: CostSourceCatalog, EnrichedAt: time.Date(2026, 11, 26, 10, 0, 1, 5, time.UTC), CanonicalModel: "gpt-4o"})
	if err != nil {
		panic(err)
	}
	return data
}

func TestDecoderMatchesEncodingJSON(t *testing.T) {
	for _, s := range codecSeeds(t) {
		compareDecoders(t, s)
	}
}

func FuzzDecodeMatchesEncodingJSON(f *testing.F) {
	for _, s := range codecSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(compareDecoders)
}

// compareEncoders fails t where AppendJSON and json.Marshal differ on the
// events data decodes to, and on an event carrying s in its strings.
func compareEncoders(t *testing.T, data []byte, s string) {
	t.Helper()
	var values []*Enriched
	if e, err := DecodeEnriched(data); err == nil {
		values = append(values, e)
	}
	f := 1.5e-7
	values = append(values, &Enriched{
		Event: Event{SchemaVersion: s, EventID: s, Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("", 3600)), Kind: s,
			Labels: map[string]string{s: s, "a" + s: "b", "z": s}, Provider: s, LatencyMs: Int64(-3), Streaming: true,
			Usage:    &Usage{ServerToolCalls: map[string]int64{s: 1, "b": 2}, ProviderTotalTokens: Int64(0)},
			Warnings: []string{s, ""}, GPU: &GPUUsage{GPUModel: s, PID: 3, IntervalSeconds: 1e21, BusySeconds: -2.5e-9, EnergyJoules: &f,
				OwnerKind: s, OwnerID: s, MemoryMaxBytes: -4, ParentGPUUUID: s, Attribution: s}},
		Owner: Owner{CostCenter: s}, Pricing: Pricing{Lines: []CostLine{{Meter: s}}}, Flags: Flags{Unowned: true, UsageMismatch: true},
		CanonicalModel: s,
	}, &Enriched{Event: Event{Usage: &Usage{}, RequestCount: Int64(7)}})
	for _, e := range values {
		want, err := json.Marshal(e)
		if err != nil {
			continue // AppendJSON is defined for what json.Marshal encodes
		}
		if got := e.AppendJSON(nil); !bytes.Equal(got, want) {
			t.Fatalf("Enriched.AppendJSON:\n got  %s\n want %s", got, want)
		}
		want, _ = json.Marshal(&e.Event)
		if got := e.Event.AppendJSON(nil); !bytes.Equal(got, want) {
			t.Fatalf("Event.AppendJSON:\n got  %s\n want %s", got, want)
		}
		want, _ = json.Marshal(e.Usage)
		if got := AppendUsageJSON(nil, e.Usage); !bytes.Equal(got, want) {
			t.Fatalf("AppendUsageJSON:\n got  %s\n want %s", got, want)
		}
	}
}

func TestAppendJSONMatchesMarshal(t *testing.T) {
	for _, s := range codecSeeds(t) {
		compareEncoders(t, s, string(s))
	}
	for _, s := range []string{"", "plain", "<a&b>", "\u2028\u2029", "\x00\x1f\x7f\b\f\n\r\t\"\\/", "\xff\xc3(", "é😀", "\xe2\x80"} {
		compareEncoders(t, nil, s)
	}
}

func FuzzAppendJSONMatchesMarshal(f *testing.F) {
	for _, s := range codecSeeds(f) {
		f.Add(s, "<\u2028\xff")
	}
	f.Fuzz(compareEncoders)
}

// BenchmarkCodec compares, in one run, the encoding/json paths the
// pipeline used with Decoder and AppendJSON.
func BenchmarkCodec(b *testing.B) {
	enriched := benchEnriched()
	var ev Enriched
	if err := json.Unmarshal(enriched, &ev); err != nil {
		b.Fatal(err)
	}
	run := func(name string, n int, fn func() error) {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(n))
			for b.Loop() {
				if err := fn(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	var d Decoder
	var e Event
	run("event/encoding-json", len(benchEvent), func() error { _, err := oracleParse(benchEvent); return err })
	run("event/decoder", len(benchEvent), func() error { return d.Event(benchEvent, &e) })
	run("event/parse", len(benchEvent), func() error { _, err := Parse(benchEvent); return err })
	run("enriched/encoding-json", len(enriched), func() error { _, err := oracleEnriched(enriched); return err })
	run("enriched/decoder-new-value", len(enriched), func() error { return d.Enriched(enriched, new(Enriched)) })
	// An enriched record with the lines a cached prompt gets, as the
	// aggregator reads them: all of it, and without the lines.
	cached := ev
	cached.Pricing.Lines = []CostLine{
		{Meter: "input", Quantity: 500, UnitPrice: "3", CostPicos: 1_500_000_000},
		{Meter: "cache_read", Quantity: 100_000, UnitPrice: "0.30", CostPicos: 30_000_000_000},
		{Meter: "cache_write_5m", Quantity: 20_000, UnitPrice: "3.75", CostPicos: 75_000_000_000},
		{Meter: "output", Quantity: 1800, UnitPrice: "15", CostPicos: 27_000_000_000},
	}
	lined, _ := json.Marshal(&cached)
	var re Enriched
	run("enriched/lines/decoder", len(lined), func() error { return d.Enriched(lined, &re) })
	skip := Decoder{SkipCostLines: true}
	run("enriched/lines/skip-lines", len(lined), func() error { return skip.Enriched(lined, &re) })
	agg := Decoder{SkipCostLines: true, LabelsAsJSON: true} // as the aggregator decodes
	run("enriched/lines/aggregator", len(lined), func() error { return agg.Enriched(lined, &re) })
	run("encode/encoding-json", len(enriched), func() error { _, err := json.Marshal(&ev); return err })
	var buf []byte
	run("encode/append", len(enriched), func() error { buf = ev.AppendJSON(buf[:0]); return nil })
}

func FuzzValidJSON(f *testing.F) {
	for _, s := range codecSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if validJSON(data) != json.Valid(data) {
			t.Fatalf("validJSON(%q) = %v, json.Valid says otherwise", data, validJSON(data))
		}
		checkSkipPlain(t, data)
	})
}

// checkSkipPlain checks that where skipPlain takes a value, at each of
// the first offsets of data, skipCareful takes it too, ends at the same
// byte and notes nothing. (Every offset would make a long input cost the
// square of its length.)
func checkSkipPlain(t *testing.T, data []byte) {
	for i := range min(len(data)+1, 64) {
		end := skipPlain(data, i)
		if end < 0 {
			continue
		}
		var d Decoder
		d.begin(data, false)
		d.i = i
		d.skipCareful()
		if d.err != nil || d.soft || d.i != end {
			t.Fatalf("%q from %d: skipPlain ends at %d, skipCareful at %d (error %v, soft %v)", data, i, end, d.i, d.err, d.soft)
		}
	}
}

// TestSkipPlainTakesCanonicalValues checks that the fast skip takes what
// canonical writers produce (else it only costs time), and agrees with
// the careful one on them and on values it must leave to it.
func TestSkipPlainTakesCanonicalValues(t *testing.T) {
	for _, v := range []string{
		`[{"meter":"input","quantity":500,"unit_price_per_1m":"3","cost_picos":1500000000},{"meter":"output","quantity":9,"unit_price_per_1m":"15.5","cost_picos":-1.5e-3}]`,
		` { "a" : [ 1 , 2.0 , -0 , 3E+2 , true , false , null , { } , [ ] ] } `,
		`"plain"`, `0`, `-12.25e-7`, `{}`, `[]`,
	} {
		if skipPlain([]byte(v), 0) < 0 {
			t.Errorf("skipPlain does not take %s", v)
		}
		checkSkipPlain(t, []byte(v))
	}
	for _, v := range []string{
		`"esc\"aped"`, `"café"`, "\"é\"", `[1,]`, `{"a":1,}`, `{"a" 1}`, `[01]`, `1.`, `-`, `1e`, `tru`, `[`, `{"a":1`, `""`,
		strings.Repeat("[", plainDepth+1) + strings.Repeat("]", plainDepth+1),
	} {
		if end := skipPlain([]byte(v), 0); end >= 0 {
			t.Errorf("skipPlain takes %q (to %d); it must leave it to skipCareful", v, end)
		}
		checkSkipPlain(t, []byte(v))
	}
}

// TestPlainRunMatchesBytewise compares plainRun with a byte-at-a-time scan
// on every byte value at every position of a word, and on random strings.
func TestPlainRunMatchesBytewise(t *testing.T) {
	runMatchesBytewise(t, "plainRun", plainRun, func(c byte) bool { return c == '"' || c == '\\' || c < 0x20 || c >= 0x80 })
}

// TestSafeRunMatchesBytewise is the same for safeRun.
func TestSafeRunMatchesBytewise(t *testing.T) {
	run := func(b []byte, i int) int { return safeRun(string(b), i) }
	runMatchesBytewise(t, "safeRun", run, func(c byte) bool { return c >= 0x80 || !jsonSafe[c] })
}

// runMatchesBytewise fails t where run, which returns the index of the
// first byte from i on that stops says to stop at (or the length), gives
// another answer than a byte loop.
func runMatchesBytewise(t *testing.T, name string, run func([]byte, int) int, stops func(byte) bool) {
	slow := func(b []byte, i int) int {
		for ; i < len(b) && !stops(b[i]); i++ {
		}
		return i
	}
	for c := range 256 {
		for pos := range 17 {
			b := []byte("abcdefghijklmnopqrstuvwxyz")
			b[pos] = byte(c)
			for start := range 3 {
				if got, want := run(b, start), slow(b, start); got != want {
					t.Fatalf("byte %#x at %d from %d: %s = %d, want %d", c, pos, start, name, got, want)
				}
			}
		}
	}
	// Short inputs, which the scans may test whole: every length up to
	// 12, every byte at every place, from every start.
	for n := range 13 {
		for c := range 256 {
			for pos := range n {
				b := []byte("abcdefghijkl")[:n]
				b[pos] = byte(c)
				for start := range n + 1 {
					if got, want := run(b, start), slow(b, start); got != want {
						t.Fatalf("%q from %d: %s = %d, want %d", b, start, name, got, want)
					}
				}
			}
		}
	}
	// Two bytes in one word: a match below another byte borrows into it,
	// which must not move the answer.
	near := []byte{0x00, 0x01, 0x02, 0x1f, 0x20, 0x21, '"' - 1, '"', '"' + 1, '&' - 1, '&', '&' + 1, '<' - 1, '<', '<' + 1, '>', '>' + 1,
		'\\' - 1, '\\', '\\' + 1, 0x7f, 0x80, 0x81, 0xff}
	for _, c1 := range near {
		for _, c2 := range near {
			for p1 := range 9 {
				for p2 := p1 + 1; p2 < 10; p2++ {
					b := []byte("abcdefghijklmnop")
					b[p1], b[p2] = c1, c2
					if got, want := run(b, 0), slow(b, 0); got != want {
						t.Fatalf("%q: %s = %d, want %d", b, name, got, want)
					}
					// And at the end of a short input.
					for n := p2 + 1; n <= 10; n++ {
						if got, want := run(b[:n], 0), slow(b[:n], 0); got != want {
							t.Fatalf("%q: %s = %d, want %d", b[:n], name, got, want)
						}
					}
				}
			}
		}
	}
	r := rand.New(rand.NewPCG(7, 7))
	for range 100_000 {
		b := make([]byte, r.IntN(40))
		for i := range b {
			b[i] = byte(0x20 + r.IntN(0x60))
			if r.IntN(30) == 0 {
				b[i] = byte(r.IntN(256))
			}
		}
		if got, want := run(b, 0), slow(b, 0); got != want {
			t.Fatalf("%q: %s = %d, want %d", b, name, got, want)
		}
	}
}

// compareEventAt checks EventAt on data as the first element of an array
// against the oracle on data alone: where the oracle accepts, EventAt
// decodes the same event and ends just past it; where EventAt ends at the
// array's end, the oracle accepts; a syntax error is one for both.
func compareEventAt(t *testing.T, data []byte, want *Event, werr error) {
	t.Helper()
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	trimmed = bytes.TrimRight(trimmed, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return
	}
	buf := append(append([]byte("[ "), trimmed...), ']')
	var d Decoder
	var e Event
	end, syntax, err := d.EventAt(buf, 2, &e)
	if werr == nil {
		if err != nil {
			t.Fatalf("EventAt(%q): %v; the oracle accepts it", data, err)
		}
		if end != 2+len(trimmed) {
			t.Fatalf("EventAt(%q) ends at %d, want %d", data, end, 2+len(trimmed))
		}
		sameResult(t, "Decoder.EventAt", data, want, werr, &e, err)
		return
	}
	if err == nil && end == 2+len(trimmed) {
		t.Fatalf("EventAt(%q) accepts what the oracle refuses: %v", data, werr)
	}
	if syntax && json.Valid(trimmed) {
		t.Fatalf("EventAt(%q) reports malformed JSON: %v", data, err)
	}
}

// TestParseUTCMatchesParse compares parseUTC with time.Parse on every day
// of the years around its arithmetic's edges (year 0, a leap year, the
// epoch, 2100, which is not one, year 9999) and on random times of the
// whole range.
func TestParseUTCMatchesParse(t *testing.T) {
	// One decoder throughout: what it keeps of the minute it parsed last
	// must not answer for another.
	var d Decoder
	check := func(text string) {
		t.Helper()
		want, werr := time.Parse(time.RFC3339Nano, text)
		got, ok := parseUTC([]byte(text))
		if ok != (werr == nil) || ok && (!got.Equal(want) || got.Location() != time.UTC) {
			t.Fatalf("parseUTC(%s) = %v, %v; time.Parse: %v, %v", text, got, ok, want, werr)
		}
		if dgot, dok := d.parseUTCAt([]byte(text)); dok != ok || dgot != got {
			t.Fatalf("Decoder.parseUTCAt(%s) = %v, %v; parseUTC: %v, %v", text, dgot, dok, got, ok)
		}
	}
	// Texts of one minute, good and bad, and a bad minute between them;
	// parseUTC may leave text time.Parse takes to UnmarshalJSON.
	for _, text := range []string{"2026-11-26T10:00:05Z", "2026-11-26T10:00:59.999Z", "2026-11-26T10:00:60Z", "2026-11-26T10:00:5xZ",
		"2026-11-26T10:00:05.Z", "2026-11-26T10:00:05.1234567890Z", "2026-11-26T10:00:05+01:00", "2026-11-26T10:00:05",
		"2026-11-26T10:0x:05Z", "2026-11-26T10:00:06Z", "2026-02-30T10:00:05Z", "2026-11-26T10:00:07.5Z", "2026-11-26T10:01:07.5Z"} {
		got, ok := parseUTC([]byte(text))
		if want, err := time.Parse(time.RFC3339Nano, text); ok && (err != nil || !got.Equal(want)) {
			t.Fatalf("parseUTC(%s) = %v; time.Parse: %v, %v", text, got, want, err)
		}
		if dgot, dok := d.parseUTCAt([]byte(text)); dok != ok || dgot != got {
			t.Fatalf("Decoder.parseUTCAt(%s) = %v, %v; parseUTC: %v, %v", text, dgot, dok, got, ok)
		}
	}
	for _, year := range []int{0, 1, 4, 1600, 1969, 1970, 2000, 2024, 2100, 9999} {
		for d := time.Date(year, 1, 1, 23, 59, 59, 0, time.UTC); d.Year() == year; d = d.AddDate(0, 0, 1) {
			check(d.Format(time.RFC3339Nano))
		}
		check(fmt.Sprintf("%04d-02-29T00:00:00Z", year))
		check(fmt.Sprintf("%04d-04-31T00:00:00Z", year))
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 100_000 {
		sec := -62_167_219_200 + r.Int64N(315_537_897_600)
		check(time.Unix(sec, r.Int64N(1e9)).UTC().Format(time.RFC3339Nano))
	}
}

// TestAppendTimeMatchesFormat checks appendTime against AppendFormat on
// UTC times across the fast path's range and its edges, and on times it
// leaves to AppendFormat.
func TestAppendTimeMatchesFormat(t *testing.T) {
	times := []time.Time{
		{},
		time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 6, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 11, 26, 10, 0, 0, 120_000_000, time.UTC),
		time.Date(2026, 11, 26, 10, 0, 0, 1, time.UTC),
		time.Date(2026, 11, 26, 10, 0, 0, 100_000_000, time.UTC),
		time.Date(2026, 11, 26, 10, 0, 0, 120_000_000, time.FixedZone("", 3600)),
		time.Date(2026, 11, 26, 10, 0, 0, 0, time.Local),
		time.Now(),
		time.Now().UTC(),
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 20_000 {
		// Seconds from year -100 to year 10100; nanoseconds whole, or
		// rounded to micro- or milliseconds, or none.
		sec := -65_300_000_000 + r.Int64N(321_000_000_000)
		ns := r.Int64N(1e9)
		ns -= ns % []int64{1, 1e3, 1e6, 1e9}[r.IntN(4)]
		times = append(times, time.Unix(sec, ns).UTC())
	}
	for _, tm := range times {
		want := `"` + tm.Format(time.RFC3339Nano) + `"`
		if got := string(appendTime(nil, tm)); got != want {
			t.Fatalf("appendTime(%v) = %s, want %s", tm, got, want)
		}
	}
}

// TestEncoderRemembersOnlyEqualTimes runs one Encoder over runs of times
// that are equal, differ only in their location or monotonic reading, or
// come back after others, and checks every text.
func TestEncoderRemembersOnlyEqualTimes(t *testing.T) {
	at := time.Date(2026, 11, 30, 8, 0, 0, 123_000_000, time.UTC)
	now := time.Now()
	times := []time.Time{
		at, at, at.Add(time.Millisecond), at, at.In(time.FixedZone("", 3600)), at,
		at.In(time.FixedZone("", -1800)), {}, {}, at, now, now.Round(0), now, now.UTC(), now, at,
	}
	var c Encoder
	var buf []byte
	for i, tm := range times {
		buf = c.appendTime(append(buf[:0], "x"...), tm)
		if want := "x" + string(appendTime(nil, tm)); string(buf) != want {
			t.Fatalf("time %d (%v): %s, want %s", i, tm, buf, want)
		}
	}
}

// TestEncoderLinesMatchAppendJSON encodes records whose cost lines share
// the catalog's strings, repeat, collide in the Encoder's slots, and
// whose strings' memory is overwritten with other text between records
// (as a decoder's reused buffers may be), and compares every record with
// AppendJSON.
func TestEncoderLinesMatchAppendJSON(t *testing.T) {
	mem := []byte("input_tokens12.5")
	// Strings over mem: same addresses, other text once mem is rewritten.
	meter, price := unsafe.String(&mem[0], 12), unsafe.String(&mem[12], 4)
	var meters, prices []string
	for i := range 3 * lineSets {
		meters = append(meters, fmt.Sprintf("meter_%d", i%(2*lineSets+3)))
		prices = append(prices, fmt.Sprintf("%d.%d", i%7, i))
	}
	var enc Encoder
	var got []byte
	for i := range 80 * lineSets {
		if i%5 == 0 {
			copy(mem, fmt.Sprintf("outpt_tokens%04d", i%10_000))
		}
		e := &Enriched{Event: Event{EventID: fmt.Sprint(i)}, Pricing: Pricing{Lines: []CostLine{
			{Meter: meters[i%len(meters)], Quantity: int64(i), UnitPrice: prices[(i*7)%len(prices)], CostPicos: int64(i) * 3},
			{Meter: meter, Quantity: -1, UnitPrice: price, CostPicos: math.MaxInt64},
			{Meter: "<é\u2028>", Quantity: 0, UnitPrice: "\"", CostPicos: math.MinInt64},
		}}, EnrichedAt: time.Unix(int64(i/3), 0).UTC()}
		got = e.AppendJSONHead(got[:0], e.Event.appendHead(nil), &enc)
		if want := e.AppendJSON(nil); !bytes.Equal(got, want) {
			t.Fatalf("record %d:\n got  %s\n want %s", i, got, want)
		}
	}
}

// TestEncoderOwnMatchesAppendJSON encodes records whose owners, prices,
// cost sources, flags and models repeat, differ in one member at a time,
// collide in the Encoder's slots and sit in memory that is overwritten
// between records, and compares every record with AppendJSON.
func TestEncoderOwnMatchesAppendJSON(t *testing.T) {
	mem := []byte("searchanthropic/claude@1")
	team, priceID := unsafe.String(&mem[0], 6), unsafe.String(&mem[6], 18)
	// Strings that come back are one string, as a catalog's and a
	// decoder's are.
	var strs []string
	for i := range 300 {
		strs = append(strs, fmt.Sprint("s", i))
	}
	var enc Encoder
	var got []byte
	for i := range 40 * textSets {
		// A base of a few hundred that come back, and each record's base
		// with one member changed.
		b := i / 11 % (3 * textSets)
		e := &Enriched{Event: Event{EventID: fmt.Sprint(i)}, EnrichedAt: time.Unix(int64(i/5), 0).UTC(), CostPicos: int64(i) - 3}
		e.Owner = Owner{Team: strs[b%97], Project: strs[b%5], Rule: "rule"}
		e.Pricing = Pricing{CatalogVersion: "v1", PriceID: strs[b%13+100], Lines: []CostLine{{Meter: "input", Quantity: int64(i), UnitPrice: "3", CostPicos: 1}}}
		e.CostSource, e.CanonicalModel = "catalog", strs[b%7+200]
		e.Flags.Unowned = b%2 == 0
		switch i % 11 {
		case 1:
			// Alike but for the text of team or priceID, which changes
			// in memory that does not.
			switch g := i / 11; g % 4 {
			case 0:
				copy(mem, fmt.Sprintf("rank%02d", g%100))
			case 2:
				copy(mem[6:], fmt.Sprintf("openai/gpt-5@%05d", g))
			}
			e.Owner, e.Pricing.PriceID, e.CanonicalModel, e.Flags = Owner{Team: team, Rule: "rule"}, priceID, "m", Flags{}
		case 2:
			e.Owner.CostCenter = "cc-\u2028\"\xff"
		case 3:
			e.Owner.Rule = "other"
		case 4:
			e.Pricing.CatalogVersion = "v2"
		case 5:
			e.Pricing.PriceID += "x"
		case 6:
			e.Pricing.Lines = nil
		case 7:
			e.Pricing.Lines = []CostLine{}
		case 8:
			e.CostSource = "provider"
		case 9:
			e.CanonicalModel += "x"
		case 10:
			e.Flags = Flags{Unpriced: i%4 == 0, Unowned: i%6 == 0, UnapprovedModel: i%10 == 0, UsageMismatch: i%3 == 0, RegionNotAllowed: i%14 == 0, MissingLabels: i%15 == 0}
		}
		got = e.AppendJSONHead(got[:0], e.Event.appendHead(nil), &enc)
		if want := e.AppendJSON(nil); !bytes.Equal(got, want) {
			t.Fatalf("record %d:\n got  %s\n want %s", i, got, want)
		}
	}
}

// TestEncoderTextsOfOneSet writes, alternately, records that differ in
// one member of an owner, a price or a cost source, cut from one string
// so that they pick one set of the Encoder's texts, and compares each with
// AppendJSON.
func TestEncoderTextsOfOneSet(t *testing.T) {
	mem := strings.Repeat("abcdefghij", 4*textSets)
	// other returns a string of mem, other than s, that picks the set s
	// picks beside fixed.
	other := func(s, fixed string) string {
		for off := 1; off+len(s) <= len(mem); off++ {
			if o := mem[off : off+len(s)]; o != s && textSet(MemoryWord(fixed), MemoryWord(o)) == textSet(MemoryWord(fixed), MemoryWord(s)) {
				return o
			}
		}
		t.Fatalf("no string of %q's set", s)
		return ""
	}
	base := Enriched{Owner: Owner{Team: "search", Project: mem[:4], Rule: "rule"}, Pricing: Pricing{CatalogVersion: mem[:3], PriceID: "p@1"},
		CostSource: mem[:5], CanonicalModel: "m", EnrichedAt: time.Unix(1, 0).UTC()}
	project, version, source := base, base, base
	project.Owner.Project = other(base.Owner.Project, base.Owner.Team)
	version.Pricing.CatalogVersion = other(base.Pricing.CatalogVersion, base.Pricing.PriceID)
	source.CostSource = other(base.CostSource, base.CanonicalModel)
	var enc Encoder
	var got []byte
	for i := range 12 {
		e := []*Enriched{&base, &project, &base, &version, &base, &source}[i%6]
		got = e.AppendJSONHead(got[:0], e.Event.appendHead(nil), &enc)
		if want := e.AppendJSON(nil); !bytes.Equal(got, want) {
			t.Fatalf("record %d:\n got  %s\n want %s", i, got, want)
		}
	}
}

// TestEncoderKeepsTwoLinesOfOneSet finds two cost lines whose strings
// pick the same set of the Encoder's cache and writes them alternately:
// once both are known, nothing is allocated again.
func TestEncoderKeepsTwoLinesOfOneSet(t *testing.T) {
	mem := strings.Repeat("input_tokens", 64)
	price := "2.50"
	first := CostLine{Meter: mem[:5], Quantity: 1, UnitPrice: price, CostPicos: 2}
	second := first
	for off := 1; off < len(mem)-5; off++ {
		if l := (CostLine{Meter: mem[off : off+5], UnitPrice: price}); lineSet(&l) == lineSet(&first) {
			second.Meter = l.Meter
			break
		}
	}
	if unsafe.StringData(second.Meter) == unsafe.StringData(first.Meter) {
		t.Fatal("no second line of the first line's set")
	}
	var enc Encoder
	buf := make([]byte, 0, 256)
	write := func() {
		buf = enc.appendLine(buf[:0], &first)
		buf = enc.appendLine(buf, &second)
	}
	write()
	if n := testing.AllocsPerRun(100, write); n != 0 {
		t.Errorf("%v allocations a record for two lines of one set", n)
	}
	if want := `{"meter":"input","quantity":1,"unit_price_per_1m":"2.50","cost_picos":2}`; string(buf) != want+strings.Replace(want, "input", second.Meter, 1) {
		t.Errorf("got %s", buf)
	}
}

// TestAppendStringEveryPosition puts each character appendString treats
// apart at every position of strings around the eight-byte steps of
// safeRun, and compares with json.Marshal.
func TestAppendStringEveryPosition(t *testing.T) {
	specials := []string{`"`, `\`, "<", ">", "&", "\x00", "\x1f", "\n", "\x7f", "é", "\u2028", "\u2029", "\xff", "😀", "\xe2\x80"}
	for n := range 26 {
		for _, sp := range specials {
			for at := 0; at <= n; at++ {
				str := strings.Repeat("a", at) + sp + strings.Repeat("b", n-at)
				want, _ := json.Marshal(str)
				if got := appendString(nil, str); !bytes.Equal(got, want) {
					t.Fatalf("appendString(%q) = %s, want %s", str, got, want)
				}
			}
		}
		// Two specials in one word: the lower one decides.
		for _, sp1 := range specials {
			for _, sp2 := range specials {
				str := strings.Repeat("a", n%9) + sp1 + strings.Repeat("b", n%3) + sp2 + "cdefghij"
				want, _ := json.Marshal(str)
				if got := appendString(nil, str); !bytes.Equal(got, want) {
					t.Fatalf("appendString(%q) = %s, want %s", str, got, want)
				}
			}
		}
		plain := strings.Repeat("x", n)
		want, _ := json.Marshal(plain)
		if got := appendString(nil, plain); !bytes.Equal(got, want) {
			t.Fatalf("appendString(%q) = %s, want %s", plain, got, want)
		}
	}
}

// TestAppendCompactMatchesMarshal puts each byte appendCompact may change
// at every position of a raw value, inside and outside its strings, and
// compares with json.Marshal of the json.RawMessage.
func TestAppendCompactMatchesMarshal(t *testing.T) {
	base := `{"input_tokens":12,"modality":"TEXT_and_more","details":[1,2,{"x":3}]}`
	for _, sp := range []string{" ", "\t", "\n", "\r", "<", ">", "&", "é", "\u2028", "\u2029", "\\u003c", "\\\""} {
		for at := range len(base) + 1 {
			raw := base[:at] + sp + base[at:]
			if !json.Valid([]byte(raw)) {
				continue
			}
			want, err := json.Marshal(json.RawMessage(raw))
			if err != nil {
				t.Fatal(err)
			}
			if got := appendCompact(nil, json.RawMessage(raw)); !bytes.Equal(got, want) {
				t.Fatalf("appendCompact(%q) = %s, want %s", raw, got, want)
			}
		}
	}
	if !compactAlready([]byte(base)) || compactAlready([]byte(base+" ")) {
		t.Fatal("compactAlready misjudges the plain value or its trailing space")
	}
}

// TestErrorsNameTheirPath checks that an error names where in the event it
// is, from Decoder.Event, EventAt and Enriched alike, and with a Decoder
// that has just decoded a valid event (the path is kept only when an
// input fails).
func TestErrorsNameTheirPath(t *testing.T) {
	head := `{"schema_version":"1","event_id":"e1","time":"2026-11-26T10:00:00Z","kind":"llm.request","source":"s","provider":"p","model":"m",`
	var d Decoder
	var e Event
	var en Enriched
	for _, c := range []struct{ body, want string }{
		{`"usage":{"input_tokens":"x"}}`, "usage.input_tokens: must be"},
		{`"labels":{"team":7}}`, "labels.team: must be"},
		{`"gpu":{"pid":"x"}}`, "gpu.pid: must be"},
		{`"usage":{"inputs_tokens":1}}`, `unknown field "usage.inputs_tokens"`},
	} {
		if err := d.Event([]byte(head+`"status":"ok"}`), &e); err != nil {
			t.Fatal(err)
		}
		data := []byte(head + c.body)
		if err := d.Event(data, &e); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Event(%s): error %v, want one naming %q", c.body, err, c.want)
		}
		arr := append(append([]byte("["), data...), ']')
		if _, _, err := d.EventAt(arr, 1, &e); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("EventAt(%s): error %v, want one naming %q", c.body, err, c.want)
		}
	}
	for _, c := range []struct{ body, want string }{
		{`"pricing":{"lines":[{"meter":"input"},{"quantity":"x"}]}}`, "pricing.lines[1].quantity: must be"},
		{`"owner":{"team":1}}`, "owner.team: must be"},
	} {
		if err := d.Enriched([]byte(head+c.body), &en); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Enriched(%s): error %v, want one naming %q", c.body, err, c.want)
		}
	}
}

// TestInternHashReadsEveryByte: a string that differs from another in any
// one byte, at every length the table keeps, gets another hash, so no
// part of a key is left out of the slot choice.
// TestInternKeepsTwoStringsOfOneSet finds two strings of one set of the
// intern table and reads them in turns: once both are kept, nothing is
// allocated.
func TestInternKeepsTwoStringsOfOneSet(t *testing.T) {
	a := []byte("gpt-4o-mini")
	var b []byte
	for i := 0; b == nil; i++ {
		c := []byte(fmt.Sprintf("model-%d", i))
		if internHash(c)&(internSize-1) == internHash(a)&(internSize-1) {
			b = c
		}
	}
	var d Decoder
	d.intern(a)
	d.intern(b)
	if n := testing.AllocsPerRun(100, func() {
		if d.intern(a) != string(a) || d.intern(b) != string(b) {
			t.Fatal("wrong string")
		}
	}); n != 0 {
		t.Errorf("%v allocations for two strings of one set", n)
	}
	// A third string of the set replaces the one used less recently.
	c := []byte("third")
	for i := 0; internHash(c)&(internSize-1) != internHash(a)&(internSize-1); i++ {
		c = []byte(fmt.Sprintf("third-%d", i))
	}
	d.intern(a)
	d.intern(c)
	if n := testing.AllocsPerRun(100, func() { d.intern(a); d.intern(c) }); n != 0 {
		t.Errorf("%v allocations after a third string replaced the older one", n)
	}
}

func TestInternHashReadsEveryByte(t *testing.T) {
	for n := 1; n <= maxIntern; n++ {
		b := []byte(strings.Repeat("a", n))
		h := internHash(b)
		for i := range b {
			b[i] = 'b'
			if internHash(b) == h {
				t.Errorf("length %d: changing byte %d leaves the hash %#x", n, i, h)
			}
			b[i] = 'a'
		}
	}
}

// TestAppendIntMatchesStrconv holds appendInt to strconv at every length,
// sign and digit boundary, and at random values.
func TestAppendIntMatchesStrconv(t *testing.T) {
	vals := []int64{0, 1, 9, 10, 11, 99, 100, 101, math.MaxInt64, math.MinInt64, math.MinInt64 + 1, -1, -9, -10}
	for p := int64(1); p <= math.MaxInt64/10; p *= 10 {
		vals = append(vals, p-1, p, p+1, 2*p-1, 9*p, -p, -(p - 1), -(p + 1))
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 100_000 {
		v := int64(r.Uint64() >> r.IntN(64))
		vals = append(vals, v, -v)
	}
	for _, v := range vals {
		prefix := []byte("x:")
		got := string(appendInt(prefix, v))
		if want := string(strconv.AppendInt([]byte("x:"), v, 10)); got != want {
			t.Fatalf("appendInt(%d) = %q, want %q", v, got, want)
		}
	}
}

// plainInt takes the integers it can read in one pass, and leaves every
// other literal, untouched, to the general path.
func TestPlainInt(t *testing.T) {
	for _, tc := range []struct {
		lit  string
		want int64 // when taken
		ok   bool
	}{
		{"0", 0, true},
		{"7", 7, true},
		{"120500", 120500, true},
		{"123456789012345678", 123456789012345678, true},
		{"1234567890123456789", 0, false},
		{"9223372036854775807", 0, false},
		{"01", 0, false},
		{"00", 0, false},
		{"-5", 0, false},
		{"1.5", 0, false},
		{"1e3", 0, false},
		{"1E3", 0, false},
		{"0.0", 0, false},
		{"x", 0, false},
		{"", 0, false},
	} {
		for _, after := range []string{"", ",", "}", " "} {
			var d Decoder
			d.begin([]byte(tc.lit+after), true)
			v, ok := d.plainInt()
			if ok != tc.ok || ok && (v != tc.want || d.i != len(tc.lit)) || !ok && d.i != 0 {
				t.Errorf("plainInt(%q) = %d, %v at %d; want %d, %v at %d", tc.lit+after, v, ok, d.i, tc.want, tc.ok, len(tc.lit))
			}
		}
	}
}

// compareReuse decodes a sequence of inputs, with HideSecrets after each
// as enrich does, into one Event with ReuseLabels set, and each input
// alone with a fresh Decoder: the events, errors and canonical heads must
// be the same.
func compareReuse(t *testing.T, inputs ...[]byte) {
	t.Helper()
	d := Decoder{ReuseLabels: true}
	var e Event
	// LabelsID's numbers, by the labels they were given for.
	ids := map[uint64]string{}
	for i, data := range inputs {
		gerr := d.Event(data, &e)
		if gerr == nil {
			d.HideSecrets(&e)
		}
		gs, ge, gok := d.CanonicalHead()
		var fresh Decoder
		var w Event
		werr := fresh.Event(data, &w)
		if werr == nil {
			fresh.HideSecrets(&w)
		}
		ws, we, wok := fresh.CanonicalHead()
		if (gerr == nil) != (werr == nil) || gerr != nil && gerr.Error() != werr.Error() {
			t.Fatalf("input %d %q: error %v, alone %v", i, data, gerr, werr)
		}
		if gerr == nil && !reflect.DeepEqual(e, w) {
			t.Fatalf("input %d %q:\n reused %#v\n alone  %#v", i, data, e, w)
		}
		if gok != wok || gok && (gs != ws || ge != we) {
			t.Fatalf("input %d %q: head %d:%d %v, alone %d:%d %v", i, data, gs, ge, gok, ws, we, wok)
		}
		if pb := d.LabelsProto(e.Labels); pb != nil && !bytes.Equal(pb, appendProtoLabels(nil, e.Labels)) {
			t.Fatalf("input %d %q: LabelsProto %x for labels %v (error %v)", i, data, pb, e.Labels, gerr)
		}
		id := d.LabelsID(e.Labels)
		if (id != 0) != (d.LabelsProto(e.Labels) != nil) {
			t.Fatalf("input %d %q: LabelsID %d, LabelsProto %x", i, data, id, d.LabelsProto(e.Labels))
		}
		if id != 0 {
			text, _ := json.Marshal(e.Labels)
			if was, ok := ids[id]; ok && was != string(text) {
				t.Fatalf("input %d %q: LabelsID %d for labels %s, given before for %s", i, data, id, text, was)
			}
			ids[id] = string(text)
		}
	}
}

func TestReuseLabels(t *testing.T) {
	ev := func(labels string) []byte {
		return []byte(`{"schema_version":"1","event_id":"e1","time":"2026-11-26T10:00:00Z","kind":"llm.request","source":"s",` +
			`"api_key_id":"sha256:0123456789abcdef0123456789abcdef","labels":` + labels + `,"provider":"openai","model":"m"}`)
	}
	a, b := ev(`{"project":"ranking","team":"search"}`), ev(`{"project":"ranking","team":"searcH"}`)
	cred := ev(`{"api_key":"sk-live-1","team":"search"}`)
	loose := ev(`{"team":"search","project":"ranking"}`)
	spaced := ev(`{"project": "ranking","team":"search"}`)
	escaped := ev(`{"project":"r\u0061nking","team":"search"}`)
	dup := []byte(`{"schema_version":"1","event_id":"e1","time":"2026-11-26T10:00:00Z","kind":"llm.request","source":"s","labels":{"team":"a"},"labels":{"team":"a"}}`)
	bad := ev(`{"project":"ranking","team":"search"`)
	none := ev(`null`)
	compareReuse(t, a, a, a, b, b, a)
	compareReuse(t, cred, cred, a, cred, a, a)
	compareReuse(t, a, loose, a, loose, loose, spaced, spaced, a, escaped, escaped, a)
	compareReuse(t, a, dup, a, dup, dup, a, bad, a, none, a, a)
	compareReuse(t, a, b, a, b, cred, b, a, loose, a, dup, b)
	teamA := ev(`{"team":"a"}`)
	merged := []byte(`{"schema_version":"1","event_id":"e1","time":"2026-11-26T10:00:00Z","kind":"llm.request","source":"s","labels":{"team":"a"},"labels":{"team":"b"}}`)
	grown := []byte(`{"schema_version":"1","event_id":"e1","time":"2026-11-26T10:00:00Z","kind":"llm.request","source":"s","labels":{"team":"a"},"labels":{"project":"x"}}`)
	compareReuse(t, teamA, merged, teamA, grown, teamA, merged, merged, teamA)
	// More label sets than slots, in turns: kept maps are evicted and
	// their memory used again.
	var many [][]byte
	for round := range 3 {
		for i := range 3 * labelSetSlots {
			many = append(many, ev(fmt.Sprintf(`{"project":"p%d","team":"t%d"}`, i%7, i)))
			if i%5 == round {
				many = append(many, a, dup)
			}
		}
	}
	compareReuse(t, many...)
	// A labels object with a brace in a value picks its slot by a prefix.
	braces := ev(`{"a":"}","b":"x"}`)
	compareReuse(t, braces, braces, a, braces)

	// A run of one text hands the one map back, filled once.
	d := Decoder{ReuseLabels: true}
	var e Event
	if err := d.Event(a, &e); err != nil {
		t.Fatal(err)
	}
	first := e.Labels
	if err := d.Event(a, &e); err != nil {
		t.Fatal(err)
	}
	if !sameMap(first, e.Labels) {
		t.Error("the same labels text filled another map")
	}
	// Two texts in turns keep their own maps.
	if err := d.Event(b, &e); err != nil {
		t.Fatal(err)
	}
	second := e.Labels
	for range 3 {
		if err := d.Event(a, &e); err != nil || !sameMap(first, e.Labels) {
			t.Fatalf("a: %v, its map kept %v", err, sameMap(first, e.Labels))
		}
		if err := d.Event(b, &e); err != nil || !sameMap(second, e.Labels) {
			t.Fatalf("b: %v, its map kept %v", err, sameMap(second, e.Labels))
		}
	}
	if first["team"] != "search" || second["team"] != "searcH" {
		t.Errorf("kept maps changed: %v %v", first, second)
	}
	// After a credential label it is filled again, and hidden again.
	if err := d.Event(cred, &e); err != nil {
		t.Fatal(err)
	}
	d.HideSecrets(&e)
	if err := d.Event(cred, &e); err != nil {
		t.Fatal(err)
	}
	if d.HideSecrets(&e); e.Labels["api_key"] != HashKey("sk-live-1") {
		t.Errorf("credential label %q", e.Labels["api_key"])
	}
}

// TestDecoderRuns decodes events that repeat, and nearly repeat, the run
// of members from kind to error_type that the decoder keeps, with one
// decoder, and compares each with a decode by a fresh one: a kept run
// must decode exactly as its text does, and what follows it as it would.
func TestDecoderRuns(t *testing.T) {
	ev := func(run, rest string) []byte {
		return []byte(`{"schema_version":"1","event_id":"e1","time":"2026-11-26T10:00:00Z"` + run + rest + `}`)
	}
	const key = `"api_key_id":"sha256:0123456789abcdef0123456789abcdef"`
	full := `,"kind":"llm.request","source":"gw",` + key + `,"labels":{"project":"p","team":"t"},"provider":"openai","model":"gpt-5","operation":"chat","status":"error","error_type":"rate_limit"`
	short := `,"kind":"llm.request","source":"gw",` + key + `,"labels":{"project":"p","team":"t"},"provider":"openai","model":"gpt-5"`
	usage := `,"latency_ms":12,"usage":{"input_tokens":5,"output_tokens":1}`
	inputs := [][]byte{
		ev(full, usage), ev(full, usage), ev(short, usage), ev(short, `,"status":"ok"`+usage), ev(full, usage),
		// A member of the run again after it, or out of order.
		ev(full, `,"model":"gpt-4"`+usage), ev(short, `,"source":"gw2"`+usage), ev(short, `,"labels":{"a":"b"}`+usage),
		ev(full, `,"kind":"gpu.usage"`), ev(short, `,"provider":"x"`),
		// Text that is no run, or not the kept one.
		ev(strings.Replace(full, `"gw"`, `"g\u0077"`, 1), usage), ev(strings.Replace(full, `"gw"`, `"gw\""`, 1), usage),
		// An escaped quote, as a canonical writer writes one, where the
		// run's scan looks for a value's end.
		ev(strings.Replace(full, `"gw"`, `"gw\"x"`, 1), usage), ev(strings.Replace(full, `"gw"`, `"gw\""`, 1), usage),
		ev(strings.Replace(full, `"team":"t"`, `"team":"}"`, 1), usage),
		// A brace in a label, where the run's scan looks for the labels'
		// end, and malformed text up to it.
		ev(short[:strings.Index(short, `"t"}`)]+`"}"}`, usage), ev(short[:strings.Index(short, `"t"}`)]+`"}`, usage), ev(strings.Replace(full, `,"source"`, ` ,"source"`, 1), usage),
		ev(strings.Replace(full, `"project":"p",`, ``, 1), usage), ev(strings.Replace(full, `"api_key_id":"sha256:0123456789abcdef0123456789abcdef"`, `"api_key_id":"sk-live-raw"`, 1), usage),
		ev(strings.Replace(full, `{"project":"p","team":"t"}`, `{"password":"x","team":"t"}`, 1), usage),
		ev(strings.Replace(full, `"labels":{"project":"p","team":"t"}`, `"labels":null`, 1), usage),
		ev(strings.Replace(full, `"source":"gw"`, `"source":""`, 1), usage), ev(full[:len(full)-1], usage),
		ev(`,"kind":"gpu.usage","source":"node"`, `,"gpu":{"gpu_model":"H100","interval_seconds":60}`),
		ev(full, `,"latency_ms":"x"`), ev(full, usage+`,"unknown":1`), ev(full, usage),
	}
	compareReuse(t, inputs...)
	compareReuse(t, slices.Concat(inputs, inputs, inputs)...)
	// More runs than the decoder keeps, and labels maps filled again
	// under runs kept before.
	var many [][]byte
	for round := range 3 {
		for i := range 3 * runSets * runWays {
			run := strings.Replace(full, `"gpt-5"`, fmt.Sprintf(`"gpt-%d"`, i%(runSets*runWays+7)), 1)
			run = strings.Replace(run, `"project":"p"`, fmt.Sprintf(`"project":"p%d"`, (i+round)%(2*labelSetSlots)), 1)
			many = append(many, ev(run, usage))
			if i%3 == round {
				many = append(many, ev(full, usage), ev(short, `,"model":"m"`+usage))
			}
		}
	}
	compareReuse(t, many...)
}

func FuzzReuseLabels(f *testing.F) {
	seeds := codecSeeds(f)
	for i := range seeds {
		f.Add(seeds[i], seeds[(i+1)%len(seeds)])
	}
	f.Fuzz(func(t *testing.T, a, b []byte) {
		compareReuse(t, a, a, b, b, a, b, a)
	})
}
