package enrich

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/schemas"
)

// BenchmarkDecodeEnrich is the per-core cost of the enrich stage for one
// raw record: decode, HideSecrets, enrich and encode, without Kafka.
// "encoding-json" is the path enrich took before schemas.Decoder, kept
// here so that one run compares both.
func BenchmarkDecodeEnrich(b *testing.B) {
	def, err := Load(Config{OwnersPath: "testdata/owners.yaml"})
	if err != nil {
		b.Fatal(err)
	}
	raw := []byte(`{"schema_version":"1","event_id":"01JDX8T3V0Q8M4B2K7Y6N5P1RZ","time":"2026-11-26T10:00:00.120Z","kind":"llm.request","source":"gateway-eu","api_key_id":"sha256:0123456789abcdef0123456789abcdef","provider":"anthropic","model":"claude-sonnet-4-5-20250929","status":"ok","latency_ms":812,"labels":{"team":"search","project":"ranking"},"usage":{"input_tokens":120500,"cache_read_input_tokens":100000,"cache_write_input_tokens":20000,"output_tokens":1800,"reasoning_output_tokens":900},"raw_usage":{"input_tokens":500,"cache_read_input_tokens":100000,"output_tokens":1800}}`)
	in := &kgo.Record{Topic: schemas.TopicRaw, Value: raw}
	b.Run("encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		b.ReportAllocs()
		for b.Loop() {
			var ev schemas.Event
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&ev); err != nil {
				b.Fatal(err)
			}
			if _, err := dec.Token(); !errors.Is(err, io.EOF) {
				b.Fatal("trailing data")
			}
			if probs := schemas.CheckJSON(raw, &ev); len(probs) > 0 || ev.Validate() != nil {
				b.Fatal(probs)
			}
			ev.HideSecrets()
			out, _ := def.enrich(&ev)
			if _, err := json.Marshal(out); err != nil {
				b.Fatal(err)
			}
		}
	})
	stage := func(in *kgo.Record, protobuf ...bool) func(b *testing.B) {
		return func(b *testing.B) {
			s := &Stage{protobuf: len(protobuf) > 0}
			b.SetBytes(int64(len(in.Value)))
			b.ReportAllocs()
			n := 0
			var at time.Time
			for b.Loop() {
				// As Stage.process: one clock read per stampEvery records.
				if n%stampEvery == 0 {
					at = time.Now().UTC()
				}
				if out, res := s.transform(def, in, at); res.dead != "" || out.Topic != schemas.TopicEnriched {
					b.Fatal(res.dead)
				}
				// The stage reuses its output blocks once a poll's outputs
				// are acknowledged.
				if n++; n == defaultMaxPollRecords {
					s.reuse()
					n = 0
				}
			}
		}
	}
	// The record as ingest and the Go client write it (Event.AppendJSON:
	// labels sorted, no space), which the raw topic holds; and as typed
	// above, which a producer writing the topic itself may send.
	ev, err := schemas.Parse(raw)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("decoder", stage(&kgo.Record{Topic: schemas.TopicRaw, Value: ev.AppendJSON(nil)}))
	b.Run("decoder-as-typed", stage(in))
	// enrich.output_format: protobuf.
	b.Run("decoder-protobuf", stage(&kgo.Record{Topic: schemas.TopicRaw, Value: ev.AppendJSON(nil)}, true))
}
