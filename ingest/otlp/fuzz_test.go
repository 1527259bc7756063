package otlp

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/aivis-dev/aivis/schemas"
)

// seeds returns the golden inputs as OTLP JSON and as protobuf.
func seeds(f *testing.F) (jsonSeeds, protoSeeds [][]byte) {
	for _, dir := range goldenDirs(f) {
		data, err := os.ReadFile(filepath.Join(dir, "input.json"))
		if err != nil {
			f.Fatal(err)
		}
		jsonSeeds = append(jsonSeeds, data)
		td, err := Decode(data, JSON)
		if err != nil {
			f.Fatal(err)
		}
		pb, err := proto.Marshal(td)
		if err != nil {
			f.Fatal(err)
		}
		protoSeeds = append(protoSeeds, pb)
	}
	return jsonSeeds, protoSeeds
}

// checkConvert decodes data and checks that every event Convert returns
// validates, survives the strict decoding ingest applies, and that every
// span is accounted for exactly once.
func checkConvert(t *testing.T, data []byte, f Format) {
	td, err := Decode(data, f)
	if err != nil {
		return
	}
	spans := 0
	for _, rs := range td.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			spans += len(ss.GetSpans())
		}
	}
	res := Convert(td)
	if n := len(res.Events) + len(res.Rejected) + res.Skipped; n != spans {
		t.Fatalf("Convert accounted for %d spans of %d", n, spans)
	}
	for _, ev := range res.Events {
		if err := ev.Validate(); err != nil {
			t.Fatalf("Convert returned an invalid event: %v", err)
		}
		raw, err := json.Marshal(ev)
		if err != nil {
			t.Fatalf("encoding the event: %v", err)
		}
		if _, err := schemas.Decode(raw); err != nil {
			t.Fatalf("the encoded event does not decode: %v: %s", err, raw)
		}
	}
	for _, r := range res.Rejected {
		if len(r.Problems) == 0 {
			t.Fatalf("span %s/%s rejected without a problem", r.TraceID, r.SpanID)
		}
	}
}

func FuzzOTLPJSON(f *testing.F) {
	js, _ := seeds(f)
	for _, s := range js {
		f.Add(s)
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"","spanId":"","attributes":[{"key":"gen_ai.usage.input_tokens","value":{"intValue":"1"}}]}]}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) { checkConvert(t, data, JSON) })
}

func FuzzOTLPProto(f *testing.F) {
	_, ps := seeds(f)
	for _, s := range ps {
		f.Add(s)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) { checkConvert(t, data, Protobuf) })
}
