package enrich

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
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
	stream := func(ins []*kgo.Record, protobuf ...bool) func(b *testing.B) {
		return func(b *testing.B) {
			s := &Stage{protobuf: len(protobuf) > 0}
			size := 0
			for _, in := range ins {
				size += len(in.Value)
			}
			b.SetBytes(int64(size / len(ins)))
			b.ReportAllocs()
			n, i := 0, 0
			var at time.Time
			for b.Loop() {
				in := ins[i]
				if i++; i == len(ins) {
					i = 0
				}
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
	stage := func(in *kgo.Record, protobuf ...bool) func(b *testing.B) {
		return stream([]*kgo.Record{in}, protobuf...)
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
	// A mixed stream: what the decoder, the owners and the encoder keep
	// from earlier records is as often missing as in the field.
	b.Run("decoder-mixed", stream(mixedRecords(8192)))
}

// mixedRecords returns n raw records of a mixed stream, drawn with a fixed
// seed: three gateways, 40 owners (a key and team and project labels
// each) and ten models of the embedded catalog, the cheap ones the most
// often, with token counts of a few hundred to tens of thousands.
func mixedRecords(n int) []*kgo.Record {
	rng := rand.New(rand.NewPCG(1, 2))
	models := []struct {
		provider, name string
		weight         int
	}{
		{"openai", "gpt-4o-mini", 40}, {"openai", "gpt-4o", 12}, {"openai", "o3-mini", 5},
		{"anthropic", "claude-sonnet-4-5", 14}, {"anthropic", "claude-haiku-4-5", 8}, {"anthropic", "claude-opus-4-1", 2},
		{"google", "gemini-2.5-flash", 8}, {"google", "gemini-2.5-pro", 3}, {"mistral", "mistral-large-latest", 3},
		{"vllm", "acme-support-llama-3.1-8b-ft", 1},
	}
	total := 0
	for _, m := range models {
		total += m.weight
	}
	sources := []string{"gateway-eu", "gateway-us", "batch-runner"}
	base := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	ins := make([]*kgo.Record, n)
	for i := range ins {
		w, m := rng.IntN(total), 0
		for ; w >= models[m].weight; m++ {
			w -= models[m].weight
		}
		owner := rng.IntN(40)
		in := 200 + rng.Int64N(30_000)
		read := in * rng.Int64N(4) / 5
		out := 50 + rng.Int64N(2_000)
		ev := schemas.Event{
			SchemaVersion: schemas.SchemaVersion, EventID: fmt.Sprintf("01JMIX%020d", i), Time: base.Add(time.Duration(i) * time.Millisecond),
			Kind: schemas.KindLLMRequest, Source: sources[rng.IntN(len(sources))], APIKeyID: schemas.APIKeyID(fmt.Sprint("sk-mixed-", owner)),
			Labels:   map[string]string{"team": fmt.Sprint("team-", owner%12), "project": fmt.Sprint("project-", owner)},
			Provider: models[m].provider, Model: models[m].name, Operation: "chat", Status: schemas.StatusOK,
			LatencyMs: schemas.Int64(200 + rng.Int64N(3_000)), Streaming: rng.IntN(2) == 0,
			Usage:    &schemas.Usage{InputTokens: schemas.Int64(in), CacheReadInputTokens: schemas.Int64(read), OutputTokens: schemas.Int64(out)},
			RawUsage: json.RawMessage(fmt.Sprintf(`{"prompt_tokens":%d,"completion_tokens":%d}`, in, out)),
		}
		ins[i] = &kgo.Record{Topic: schemas.TopicRaw, Value: ev.AppendJSON(nil)}
	}
	return ins
}
