package schemas

import (
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

// jsonFields lists the JSON names of a struct's fields.
func jsonFields(t reflect.Type) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		name := strings.Split(t.Field(i).Tag.Get("json"), ",")[0]
		if name != "" && name != "-" {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

func schemaProps(t *testing.T, m map[string]any) []string {
	t.Helper()
	props, ok := m["properties"].(map[string]any)
	if !ok {
		t.Fatal("schema has no properties")
	}
	out := make([]string, 0, len(props))
	for k := range props {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestJSONSchemaMirrorsGoTypes keeps usage-event.v1.json and Event in step.
func TestJSONSchemaMirrorsGoTypes(t *testing.T) {
	b, err := os.ReadFile("usage-event.v1.json")
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	if got, want := schemaProps(t, s), jsonFields(reflect.TypeOf(Event{})); !reflect.DeepEqual(got, want) {
		t.Errorf("event properties\n schema: %v\n Go:     %v", got, want)
	}
	props := s["properties"].(map[string]any)
	if got, want := schemaProps(t, props["usage"].(map[string]any)), jsonFields(reflect.TypeOf(Usage{})); !reflect.DeepEqual(got, want) {
		t.Errorf("usage properties\n schema: %v\n Go:     %v", got, want)
	}
	if got, want := schemaProps(t, props["gpu"].(map[string]any)), jsonFields(reflect.TypeOf(GPUUsage{})); !reflect.DeepEqual(got, want) {
		t.Errorf("gpu properties\n schema: %v\n Go:     %v", got, want)
	}
}

func TestDecodeNamesEveryBadField(t *testing.T) {
	_, err := Decode([]byte(`{"schema_version":"1","event_id":"a b","time":"2026-11-26T10:00:00Z","kind":"llm.request","source":"s","provider":"openai","usage":{"input_tokens":5,"cache_read_input_tokens":9,"output_tokens":-1}}`))
	ve, ok := err.(*ValidationError)
	if !ok {
		t.Fatalf("err = %v, want a ValidationError", err)
	}
	var fields []string
	for _, p := range ve.Problems {
		fields = append(fields, p.Field)
	}
	for _, want := range []string{"event_id", "model", "usage.output_tokens", "usage.input_tokens"} {
		if !strings.Contains(strings.Join(fields, ","), want) {
			t.Errorf("problems %v do not name %s", fields, want)
		}
	}
	if _, err := Decode([]byte(`{"schema_version":"1","evnt_id":"x"}`)); err == nil || !strings.Contains(err.Error(), "evnt_id") {
		t.Errorf("unknown field: err = %v", err)
	}
}

func TestValidEventPasses(t *testing.T) {
	e := Event{SchemaVersion: "1", EventID: "01JDX8T3V0Q8M4B2K7Y6N5P1RZ", Time: time.Now(), Kind: KindLLMRequest,
		Source: "gw", Provider: "openai", Model: "gpt-4o", Usage: &Usage{InputTokens: Int64(10), CacheReadInputTokens: Int64(4), OutputTokens: Int64(3)}}
	if err := e.Validate(); err != nil {
		t.Fatal(err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"schema_version":"1","event_id":"a","time":"2026-11-26T10:00:00Z","kind":"llm.request","source":"s","provider":"p","model":"m","usage":{"input_tokens":1}}`))
	f.Add([]byte(`{"schema_version":"1","event_id":"g","time":"2026-11-26T10:00:00Z","kind":"gpu.usage","source":"s","gpu":{"gpu_model":"H100","interval_seconds":10,"allocated_gpu_seconds":10,"busy_gpu_seconds":3}}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"usage":{"input_tokens":1e99}}`))
	// At and past the per-event bounds.
	f.Add([]byte(`{"schema_version":"1","event_id":"b","time":"2106-02-06T23:59:59.999Z","kind":"llm.request","source":"s","provider":"p","model":"m","latency_ms":604800000,"provider_cost_usd":"1000000","usage":{"input_tokens":68719476736,"output_tokens":68719476736}}`))
	f.Add([]byte(`{"schema_version":"1","event_id":"b","time":"2106-02-07T00:00:00Z","kind":"llm.request","source":"s","provider":"p","model":"m","latency_ms":604800001,"provider_cost_usd":"1000000.000000000001","usage":{"output_tokens":9223372036854775807}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := Decode(data)
		if err == nil {
			if e.Validate() != nil {
				t.Fatal("decoded event does not validate")
			}
			out, merr := json.Marshal(e)
			if merr != nil {
				t.Fatal(merr)
			}
			if _, err := Decode(out); err != nil {
				t.Fatalf("re-encoded event fails to decode: %v\n%s", err, out)
			}
		}
	})
}

var benchEvent = []byte(`{"schema_version":"1","event_id":"01JDX8T3V0Q8M4B2K7Y6N5P1RZ","time":"2026-11-26T10:00:00.120Z","kind":"llm.request","source":"gateway-eu","provider":"openai","model":"gpt-4o","status":"ok","latency_ms":812,"labels":{"team":"search","project":"ranking"},"usage":{"input_tokens":1200,"cache_read_input_tokens":200,"output_tokens":300}}`)

func BenchmarkDecode(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchEvent)))
	for i := 0; i < b.N; i++ {
		if _, err := Decode(benchEvent); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeEnriched(b *testing.B) {
	e, _ := Decode(benchEvent)
	data, _ := json.Marshal(Enriched{Event: *e, Owner: Owner{Team: "search", Project: "ranking", Rule: "labels"},
		Pricing:   Pricing{CatalogVersion: "2026-11-26.1", PriceID: "openai/gpt-4o", Lines: []CostLine{{Meter: "input", Quantity: 1000, UnitPrice: "2.50", CostPicos: 2_500_000_000}}},
		CostPicos: 5_000_000_000, CostSource: CostSourceCatalog, EnrichedAt: time.Now()})
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for i := 0; i < b.N; i++ {
		if _, err := DecodeEnriched(data); err != nil {
			b.Fatal(err)
		}
	}
}

// Every problem says what kind it is, so that callers need not read the
// message.
func TestValidateCodesEveryProblem(t *testing.T) {
	e := Event{SchemaVersion: "2", EventID: strings.Repeat("x", MaxIDLen+1), Time: time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC), Kind: KindLLMRequest,
		Source: "", Model: strings.Repeat("m", 300), Status: "weird", LatencyMs: Int64(-1), ProviderCostUSD: "-1",
		Usage: &Usage{InputTokens: Int64(1), CacheReadInputTokens: Int64(5), OutputTokens: Int64(-2)}}
	var verr *ValidationError
	if !errors.As(e.Validate(), &verr) {
		t.Fatal("Validate passed a broken event")
	}
	codes := map[string]string{}
	for _, p := range verr.Problems {
		codes[p.Field+" "+p.Message] = p.Code
	}
	for problem, want := range map[string]string{
		"schema_version": CodeInvalidValue, "event_id": CodeOutOfRange, "time": CodeOutOfRange, "source": CodeRequired,
		"provider": CodeRequired, "model": CodeOutOfRange, "status": CodeInvalidValue, "latency_ms": CodeOutOfRange,
		"provider_cost_usd": CodeInvalidValue, "usage.output_tokens must be between": CodeOutOfRange,
		"usage.input_tokens must include": CodeInvalidValue,
	} {
		found := false
		for p, code := range codes {
			if strings.HasPrefix(p, problem+" ") {
				found = true
				if code != want {
					t.Errorf("%s: code %q, want %q", p, code, want)
				}
			}
		}
		if !found {
			t.Errorf("no problem with %s in %v", problem, codes)
		}
	}
}

// Parse decodes as strictly as Decode and leaves validation to the caller.
func TestParseDoesNotValidate(t *testing.T) {
	e, err := Parse([]byte(`{"event_id":"a b"}`))
	if err != nil || e.EventID != "a b" {
		t.Fatalf("Parse = %+v, %v", e, err)
	}
	if _, err := Parse([]byte(`{"evnt_id":"x"}`)); err == nil {
		t.Fatal("Parse accepted an unknown field")
	}
}

// TestPrintableIDBytes checks printableID on every byte, alone and after
// an id's worth of accepted ones.
func TestPrintableIDBytes(t *testing.T) {
	for c := range 256 {
		want := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':' || c == '/'
		for _, s := range []string{string([]byte{byte(c)}), "01JDX8T3V0Q8M4B2K7Y6N5P1RZ" + string([]byte{byte(c)})} {
			if got := printableID(s); got != want {
				t.Errorf("printableID(%q) = %v, want %v", s, got, want)
			}
		}
	}
}

// TestValidateNamesEachCount puts each usage count out of range in turn
// and checks that the one out_of_range problem names it.
func TestValidateNamesEachCount(t *testing.T) {
	for i, name := range usageNames[:13] {
		ev := Event{SchemaVersion: SchemaVersion, EventID: "e1", Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Kind: KindLLMRequest,
			Source: "s", Provider: "p", Model: "m", Usage: &Usage{}}
		*ev.Usage.counts()[i] = Int64(-1)
		var verr *ValidationError
		if err := ev.Validate(); !errors.As(err, &verr) {
			t.Fatalf("%s = -1: %v", name, err)
		}
		var ranges []string
		for _, p := range verr.Problems {
			if p.Code == CodeOutOfRange {
				ranges = append(ranges, p.Field)
			}
		}
		if len(ranges) != 1 || ranges[0] != "usage."+name {
			t.Errorf("%s = -1: out of range %v", name, ranges)
		}
	}
}
