package bus

import (
	"bytes"
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

// TestDeadLetterBounded: the dead letter of a record of any size fits
// MaxDeadLetterBytes, so that writing it cannot fail for its size and
// block the partition. An original that fits is kept whole; a longer one
// is cut as little as the bound allows and says so; headers over 64 KiB
// and a key over 1 KiB are left out.
func TestDeadLetterBounded(t *testing.T) {
	d := NewDeadLetters("enrich", prometheus.NewRegistry())
	value := make([]byte, 2<<20)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	decode := func(t *testing.T, out *kgo.Record) schemas.DeadLetter {
		t.Helper()
		size := len(out.Value) + len(out.Key)
		for _, h := range out.Headers {
			size += len(h.Key) + len(h.Value)
		}
		if size > MaxDeadLetterBytes {
			t.Fatalf("dead letter of %d bytes, more than %d", size, MaxDeadLetterBytes)
		}
		var dl schemas.DeadLetter
		if err := json.Unmarshal(out.Value, &dl); err != nil {
			t.Fatal(err)
		}
		return dl
	}
	whole, cut := 0, 0
	for _, n := range []int{0, 1000, 500_000, 585_000, 592_000, 600_000, 1 << 20, 2 << 20} {
		in := &kgo.Record{Topic: schemas.TopicRaw, Key: []byte("ev-1"), Value: value[:n],
			Headers: []kgo.RecordHeader{{Key: "traceparent", Value: []byte("00-abc-def-01")}}}
		out := d.Record(in, schemas.ReasonInvalidJSON, "bad")
		dl := decode(t, out)
		if dl.OriginalBytes != n || !bytes.Equal(dl.Original, value[:len(dl.Original)]) {
			t.Fatalf("%d bytes: original_bytes %d, original not a prefix of the value", n, dl.OriginalBytes)
		}
		if len(out.Headers) != 1 || string(out.Key) != "ev-1" {
			t.Fatalf("%d bytes: key %q headers %v", n, out.Key, out.Headers)
		}
		switch {
		case !dl.OriginalTruncated && len(dl.Original) == n:
			whole++
		case dl.OriginalTruncated && len(dl.Original) < n:
			cut++
			// Cut no more than a base64 quantum and the other fields need.
			if len(out.Value) < MaxDeadLetterBytes-len("ev-1")-len("traceparent00-abc-def-01")-4 {
				t.Errorf("%d bytes: cut to %d, a value of %d bytes, when %d fit", n, len(dl.Original), len(out.Value), MaxDeadLetterBytes)
			}
		default:
			t.Fatalf("%d bytes: original of %d bytes, truncated %v", n, len(dl.Original), dl.OriginalTruncated)
		}
	}
	if whole != 4 || cut != 4 {
		t.Errorf("%d originals kept whole and %d cut, want 4 and 4", whole, cut)
	}

	big := []kgo.RecordHeader{{Key: "a", Value: value[:40<<10]}, {Key: "b", Value: value[:40<<10]}}
	out := d.Record(&kgo.Record{Key: value[:2000], Value: []byte("{"), Headers: big}, schemas.ReasonInvalidJSON, "bad")
	dl := decode(t, out)
	if len(out.Headers) != 0 || dl.HeadersDropped != 2 || out.Key != nil || string(dl.Original) != "{" || dl.OriginalTruncated {
		t.Errorf("headers %d, headers_dropped %d, key %d bytes, original %q truncated %v", len(out.Headers), dl.HeadersDropped, len(out.Key), dl.Original, dl.OriginalTruncated)
	}
}

// TestDeadLetterBare: the dead letter for a topic that refused the full one
// keeps where the original is and why it was rejected, and no more.
func TestDeadLetterBare(t *testing.T) {
	d := NewDeadLetters("aggregate", prometheus.NewRegistry())
	in := &kgo.Record{Topic: schemas.TopicEnriched, Partition: 2, Offset: 9, Key: []byte("ev-1"), Value: bytes.Repeat([]byte("v"), 300_000),
		Headers: []kgo.RecordHeader{{Key: "traceparent", Value: []byte("00-abc-def-01")}}}
	for _, detail := range []string{"too late", strings.Repeat("d", 5000)} {
		out := d.Bare(in, "ev-1", schemas.ReasonTooLate, detail)
		if len(out.Value) > 2048 || len(out.Headers) != 0 || string(out.Key) != "ev-1" {
			t.Fatalf("bare dead letter of %d bytes, headers %v, key %q", len(out.Value), out.Headers, out.Key)
		}
		var dl schemas.DeadLetter
		if err := json.Unmarshal(out.Value, &dl); err != nil {
			t.Fatal(err)
		}
		if len(dl.Original) != 0 || !dl.OriginalTruncated || dl.OriginalBytes != 300_000 || dl.HeadersDropped != 1 || dl.EventID != "ev-1" ||
			dl.Topic != schemas.TopicEnriched || dl.Partition != 2 || dl.Offset != 9 || dl.Reason != schemas.ReasonTooLate ||
			!strings.HasPrefix(dl.Detail, detail[:8]) || !strings.HasSuffix(dl.Detail, bareNote) || len(dl.Detail) > maxDetailBytes {
			t.Errorf("bare dead letter %+v", dl)
		}
	}
	out := d.Bare(&kgo.Record{Topic: schemas.TopicRaw}, "", schemas.ReasonInvalidJSON, "empty")
	var dl schemas.DeadLetter
	if err := json.Unmarshal(out.Value, &dl); err != nil || dl.OriginalTruncated || dl.HeadersDropped != 0 || strings.Contains(string(out.Value), `"event_id"`) {
		t.Errorf("bare dead letter of an empty record: %+v, %v", dl, err)
	}
}
