package otlp

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/aivis-dev/aivis/schemas"
)

// metricsExample is the documented example export.
func metricsExample(t testing.TB) []byte {
	t.Helper()
	data, err := os.ReadFile("../../docs/examples/otlp-genai-metrics.json")
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestConvertMetricsExample(t *testing.T) {
	data := metricsExample(t)
	md, err := DecodeMetrics(data, JSON)
	if err != nil {
		t.Fatal(err)
	}
	res := ConvertMetrics(md)
	if len(res.Events) != 2 || len(res.Rejected) != 0 || res.Skipped != 3 {
		t.Fatalf("%d events, %d rejected, %d skipped; want 2, 0, 3 (the durations): %+v", len(res.Events), len(res.Rejected), res.Skipped, res.Rejected)
	}
	e := res.Events[0]
	if e.Provider != "openai" || e.Model != "gpt-4o-mini" || schemas.Get(e.Usage.InputTokens) != 48210 || schemas.Get(e.Usage.OutputTokens) != 9630 ||
		e.Labels["otlp_requests"] != "37" || e.Labels["team"] != "support" || e.Labels["environment"] != "staging" || e.Source != "support-bot" ||
		e.Time.UnixNano() != 1772450000000000000 {
		t.Errorf("first event %+v, usage %+v", e, *e.Usage)
	}
	// The protobuf form of the same export gives the same events, ids
	// included: a retry in either encoding is counted once.
	pb, err := proto.Marshal(md)
	if err != nil {
		t.Fatal(err)
	}
	md2, err := DecodeMetrics(pb, Protobuf)
	if err != nil {
		t.Fatal(err)
	}
	res2 := ConvertMetrics(md2)
	for i := range res.Events {
		if res.Events[i].EventID != res2.Events[i].EventID {
			t.Errorf("event %d: id %s from JSON, %s from protobuf", i, res.Events[i].EventID, res2.Events[i].EventID)
		}
	}
	if res.Events[0].EventID == res.Events[1].EventID {
		t.Error("two attribute sets share an event id")
	}
}

func TestConvertMetricsRejects(t *testing.T) {
	base := string(metricsExample(t))
	for name, c := range map[string]struct{ from, to, want string }{
		"cumulative":    {`"aggregationTemporality": 1,`, `"aggregationTemporality": 2,`, "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=delta"},
		"no provider":   {`"key": "gen_ai.provider.name"`, `"key": "gen_ai.vendor"`, "gen_ai.provider.name is required"},
		"unknown type":  {`"stringValue": "output"`, `"stringValue": "thinking"`, `gen_ai.token.type "thinking"`},
		"negative sum":  {`"sum": 9630`, `"sum": -5`, "whole token count"},
		"fractional":    {`"sum": 48210`, `"sum": 48210.5`, "whole token count"},
		"not histogram": {`"histogram": {`, `"gauge": {`, "must be a histogram"},
	} {
		t.Run(name, func(t *testing.T) {
			if !strings.Contains(base, c.from) {
				t.Fatalf("the example no longer holds %q", c.from)
			}
			md, err := DecodeMetrics([]byte(strings.Replace(base, c.from, c.to, 1)), JSON)
			if err != nil {
				t.Fatal(err)
			}
			res := ConvertMetrics(md)
			var msgs []string
			for _, r := range res.Rejected {
				msgs = append(msgs, r.Error())
			}
			if len(res.Rejected) == 0 || res.RejectedPoints == 0 || !strings.Contains(strings.Join(msgs, "\n"), c.want) {
				t.Errorf("rejected %v (%d points); want a problem containing %q", msgs, res.RejectedPoints, c.want)
			}
		})
	}
}

func TestDecodeMetricsErrors(t *testing.T) {
	if _, err := DecodeMetrics([]byte(`{"resourceMetrics": [`), JSON); err == nil || !strings.Contains(err.Error(), "ExportMetricsServiceRequest") {
		t.Errorf("truncated JSON: %v", err)
	}
	if _, err := DecodeMetrics([]byte{0xff, 0xff, 0xff}, Protobuf); err == nil || !strings.Contains(err.Error(), "Content-Type") {
		t.Errorf("bad protobuf: %v", err)
	}
}

// FuzzDecodeMetrics feeds arbitrary bodies, JSON and protobuf, through the
// metric decoder and converter: nothing panics, every event validates, and
// every token-usage point ends as an event or is counted rejected.
func FuzzDecodeMetrics(f *testing.F) {
	data := metricsExample(f)
	f.Add(data, false)
	md, err := DecodeMetrics(data, JSON)
	if err != nil {
		f.Fatal(err)
	}
	pb, err := proto.Marshal(md)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(pb, true)
	f.Add(bytes.Replace(data, []byte(`"aggregationTemporality": 1`), []byte(`"aggregationTemporality": 2`), 1), false)
	f.Add([]byte(`{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"gen_ai.client.token.usage","histogram":{"aggregationTemporality":1,"dataPoints":[{"sum":1e300}]}}]}]}]}`), false)
	f.Fuzz(func(t *testing.T, body []byte, protobuf bool) {
		format := JSON
		if protobuf {
			format = Protobuf
		}
		md, err := DecodeMetrics(body, format)
		if err != nil {
			return
		}
		res := ConvertMetrics(md)
		for _, e := range res.Events {
			if err := e.Validate(); err != nil {
				t.Fatalf("event %+v does not validate: %v", e, err)
			}
			if !strings.HasPrefix(e.EventID, MetricEventIDPrefix) {
				t.Fatalf("event id %q", e.EventID)
			}
		}
		if len(res.Rejected) > 0 && res.RejectedPoints == 0 {
			t.Fatalf("%d rejections but no rejected points", len(res.Rejected))
		}
	})
}
