package otlp

import (
	"encoding/hex"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

func TestFormatOf(t *testing.T) {
	for _, tt := range []struct {
		ct   string
		want Format
		ok   bool
	}{
		{"application/x-protobuf", Protobuf, true},
		{"application/protobuf", Protobuf, true},
		{"application/json", JSON, true},
		{"application/json; charset=utf-8", JSON, true},
		{"text/plain", Protobuf, false},
		{"", Protobuf, false},
	} {
		if got, ok := FormatOf(tt.ct); got != tt.want || ok != tt.ok {
			t.Errorf("FormatOf(%q) = %v, %v; want %v, %v", tt.ct, got, ok, tt.want, tt.ok)
		}
	}
}

// TestJSONIDs checks that OTLP JSON ids are read as hex (either case) and
// base64 ids still work, and that malformed ids reject the span.
func TestJSONIDs(t *testing.T) {
	const usage = `"startTimeUnixNano":"1772445600000000000","attributes":[{"key":"gen_ai.provider.name","value":{"stringValue":"openai"}},{"key":"gen_ai.request.model","value":{"stringValue":"gpt-4o"}},{"key":"gen_ai.usage.input_tokens","value":{"intValue":"3"}}]`
	for _, tt := range []struct {
		name, traceID, spanID string
		wantID, wantProblem   string
	}{
		{"lower hex", "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174", "otlp:5b8efff798038103d269b633813fc60c:eee19b7ec3c1b174", ""},
		{"upper hex", "5B8EFFF798038103D269B633813FC60C", "EEE19B7EC3C1B174", "otlp:5b8efff798038103d269b633813fc60c:eee19b7ec3c1b174", ""},
		{"base64", "W47/95gDgQPSabYzgT/GDA==", "7uGbfsPBsXQ=", "otlp:5b8efff798038103d269b633813fc60c:eee19b7ec3c1b174", ""},
		{"short span id", "5b8efff798038103d269b633813fc60c", "eee19b7e", "", "span_id"},
		{"zero trace id", "00000000000000000000000000000000", "eee19b7ec3c1b174", "", "trace_id"},
		{"missing ids", "", "", "", "trace_id"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body := `{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"` + tt.traceID + `","spanId":"` + tt.spanID + `",` + usage + `}]}]}]}`
			td, err := Decode([]byte(body), JSON)
			if err != nil {
				t.Fatal(err)
			}
			res := Convert(td)
			if tt.wantProblem != "" {
				if len(res.Rejected) != 1 || res.Rejected[0].Problems[0].Field != tt.wantProblem {
					t.Fatalf("got %+v, want the span rejected for %s", res, tt.wantProblem)
				}
				return
			}
			if len(res.Events) != 1 || res.Events[0].EventID != tt.wantID {
				t.Fatalf("got %+v, want one event %s", res, tt.wantID)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	if _, err := Decode([]byte(`{"resourceSpans":`), JSON); err == nil || !strings.Contains(err.Error(), "OTLP JSON") {
		t.Errorf("truncated JSON: err = %v", err)
	}
	if _, err := Decode([]byte{0x0a, 0xff}, Protobuf); err == nil || !strings.Contains(err.Error(), "Content-Type") {
		t.Errorf("truncated protobuf: err = %v", err)
	}
	if _, err := Decode([]byte(`{"resourceSpans":[],"someFutureField":1}`), JSON); err != nil {
		t.Errorf("unknown fields must be ignored: %v", err)
	}
}

func TestResponse(t *testing.T) {
	if got := string(Response(JSON, 0, "")); got != `{}` {
		t.Errorf("JSON success = %s", got)
	}
	if got := string(Response(JSON, 2, "bad")); got != `{"partialSuccess":{"rejectedSpans":"2","errorMessage":"bad"}}` {
		t.Errorf("JSON partial = %s", got)
	}
	if got := Response(Protobuf, 0, ""); len(got) != 0 {
		t.Errorf("protobuf success = %x, want empty", got)
	}
	// partial_success (1) { rejected_spans (1) = 2, error_message (2) = "bad" }
	if got, want := hex.EncodeToString(Response(Protobuf, 2, "bad")), "0a0708021203626164"; got != want {
		t.Errorf("protobuf partial = %s, want %s", got, want)
	}
	if got := string(Status(JSON, CodeUnavailable, "retry")); got != `{"code":14,"message":"retry"}` {
		t.Errorf("JSON status = %s", got)
	}
	st := Status(Protobuf, CodeInvalidArgument, "no")
	num, typ, n := protowire.ConsumeTag(st)
	code, m := protowire.ConsumeVarint(st[n:])
	if num != 1 || typ != protowire.VarintType || code != 3 || m < 0 {
		t.Errorf("protobuf status = %x", st)
	}
}

func TestEnvironmentLabel(t *testing.T) {
	body := `{"resourceSpans":[{"resource":{"attributes":[
		{"key":"deployment.environment.name","value":{"stringValue":"prod"}},
		{"key":"deployment.environment","value":{"stringValue":"old"}}]},
	"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","startTimeUnixNano":"1772445600000000000","attributes":[
		{"key":"gen_ai.provider.name","value":{"stringValue":"openai"}},{"key":"gen_ai.request.model","value":{"stringValue":"gpt-4o"}},
		{"key":"gen_ai.usage.output_tokens","value":{"intValue":"3"}},{"key":"aivis.project","value":{"stringValue":"p1"}}]}]}]}]}`
	td, err := Decode([]byte(body), JSON)
	if err != nil {
		t.Fatal(err)
	}
	res := Convert(td)
	if len(res.Events) != 1 {
		t.Fatalf("got %+v", res)
	}
	l := res.Events[0].Labels
	if l["environment"] != "prod" || l["project"] != "p1" || res.Events[0].Source != DefaultSource {
		t.Errorf("labels %v, source %q", l, res.Events[0].Source)
	}
}
