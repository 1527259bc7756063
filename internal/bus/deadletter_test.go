package bus

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/schemas"
)

// TestDeadLetterKeepsKeyHeadersAndBytes checks the dead-letter contract of
// docs/topics.md: the original key and headers on the record, the original
// value as standard base64 in "original", and where it came from.
func TestDeadLetterKeepsKeyHeadersAndBytes(t *testing.T) {
	in := &kgo.Record{Topic: schemas.TopicRaw, Partition: 3, Offset: 41, Key: []byte("ev-1"), Value: []byte("{not json\xff"),
		Headers: []kgo.RecordHeader{{Key: "traceparent", Value: []byte("00-abc-def-01")}, {Key: "content-type", Value: []byte("application/json")}}}
	out := NewDeadLetters("enrich", prometheus.NewRegistry()).Record(in, schemas.ReasonInvalidJSON, strings.Repeat("x", 10))
	in.Headers[0].Value[0] = 'X' // the fetch's memory may be reused
	if out.Topic != schemas.TopicDeadLetter || string(out.Key) != "ev-1" {
		t.Fatalf("topic %s key %q", out.Topic, out.Key)
	}
	if len(out.Headers) != 2 || out.Headers[0].Key != "traceparent" || string(out.Headers[0].Value) != "00-abc-def-01" || out.Headers[1].Key != "content-type" {
		t.Fatalf("headers %+v", out.Headers)
	}
	var raw map[string]any
	if err := json.Unmarshal(out.Value, &raw); err != nil {
		t.Fatal(err)
	}
	if raw["original"] != base64.StdEncoding.EncodeToString(in.Value) {
		t.Fatalf("original %v, want the standard base64 of the value", raw["original"])
	}
	if raw["topic"] != schemas.TopicRaw || raw["partition"] != float64(3) || raw["offset"] != float64(41) || raw["stage"] != "enrich" || raw["reason"] != schemas.ReasonInvalidJSON {
		t.Fatalf("dead letter %v", raw)
	}
}
