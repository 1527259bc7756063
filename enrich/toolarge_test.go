package enrich

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/schemas"
)

// paddedEvent is a valid raw event of size bytes, give or take a few,
// most of them in raw_usage: random counts, which enrich keeps (it drops
// strings there) and which compress about as little as text does.
func paddedEvent(t *testing.T, id string, size int) []byte {
	t.Helper()
	ev := llmEvent("testprov", "cheap", usage(1_000_001, 0, 0, 0, 0))
	ev.EventID = id
	base, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	pad := max(size-len(base)-len(`,"raw_usage":{"p":[0]}`), 0)
	counts := []byte(`{"p":[`)
	rng := rand.New(rand.NewPCG(1, 2))
	for len(counts) < len(`{"p":[`)+pad-10 {
		counts = strconv.AppendInt(counts, rng.Int64N(1e8)+1e8, 10) // 9 digits
		counts = append(counts, ',')
	}
	for len(counts) < len(`{"p":[`)+pad-1 {
		counts = append(counts, '1', ',')
	}
	counts = append(counts[:len(`{"p":[`)+pad-1], "0]}"...)
	ev.RawUsage = json.RawMessage(counts)
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestStageTooLargeMovesOn: a record whose dead letter or enriched event
// is larger than a topic takes must not stop its partition. Before, the
// stage failed on the refused write and every restart enriched the same
// record again. Now an output refused for its size is sent again alone
// (a broker refuses a whole batch for one record over the topic's limit),
// and one refused alone is dead-lettered as too_large; a dead letter is
// never too large (bus.MaxDeadLetterBytes). Both limits are exercised: the
// Kafka client's batch of 1,000,012 bytes, and a topic's max.message.bytes
// set lower than the batches the client sends.
func TestStageTooLargeMovesOn(t *testing.T) {
	for _, tc := range []struct {
		name string
		// topicMax is the enriched topic's max.message.bytes (0: default).
		topicMax int
		// bigSize is the raw size of the event whose output is too large.
		bigSize int
		small   int // normal events around it
	}{
		{name: "client batch", bigSize: 999_900, small: 4},
		{name: "topic limit", topicMax: 20_000, bigSize: 60_000, small: 60},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addrs := newCluster(t, schemas.TopicRaw, schemas.TopicEnriched, schemas.TopicDeadLetter)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			prod := newClient(t, kgo.SeedBrokers(addrs...))
			adm := kadm.NewClient(prod)
			if tc.topicMax > 0 {
				v := fmt.Sprint(tc.topicMax)
				rs, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "max.message.bytes", Value: &v}}, schemas.TopicEnriched)
				if err == nil {
					_, err = rs.On(schemas.TopicEnriched, nil)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			// One key: everything on one partition, the big records among
			// the others, so that a stuck partition would show.
			key := []byte("k")
			garbage := append([]byte(`{"schema_version":"1","event_id":"`), bytes.Repeat([]byte("g"), 800_000)...)
			big := paddedEvent(t, "big", tc.bigSize)
			var inputs [][]byte
			for i := range tc.small {
				inputs = append(inputs, rawEvent(fmt.Sprintf("ev-%03d", i), "cheap"))
				switch i {
				case tc.small / 4:
					inputs = append(inputs, garbage)
				case tc.small / 2:
					inputs = append(inputs, big)
				}
			}
			for _, v := range inputs {
				if err := prod.ProduceSync(ctx, &kgo.Record{Topic: schemas.TopicRaw, Key: key, Value: v}).FirstErr(); err != nil {
					t.Fatalf("producing a raw record of %d bytes: %v", len(v), err)
				}
			}
			tooLargeBefore := counter(t, "aivis_deadletter_total", "stage", StageName, "reason", schemas.ReasonTooLarge)

			stage := newStage(testDial(addrs), testEnricher(t), testReg, quietLog)
			runCtx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- stage.Run(runCtx) }()
			out := newClient(t, kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(schemas.TopicEnriched, schemas.TopicDeadLetter),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(8<<20))
			enriched := map[string]bool{}
			dead := map[string]schemas.DeadLetter{}
			for len(enriched)+len(dead) < len(inputs) {
				fs := out.PollFetches(ctx)
				if ctx.Err() != nil {
					t.Fatalf("got %d enriched and %d dead letters of %d records before timing out", len(enriched), len(dead), len(inputs))
				}
				fs.EachRecord(func(r *kgo.Record) {
					if r.Topic == schemas.TopicEnriched {
						enriched[string(r.Key)+"/"+fmt.Sprint(r.Offset)] = true
						return
					}
					var dl schemas.DeadLetter
					if err := json.Unmarshal(r.Value, &dl); err != nil {
						t.Fatal(err)
					}
					dead[dl.Reason] = dl
				})
			}
			stop()
			if err := <-done; err != nil {
				t.Fatalf("Run: %v", err)
			}
			if len(enriched) != tc.small || len(dead) != 2 {
				t.Fatalf("%d enriched and dead letters %v, want %d enriched, one invalid_json and one too_large", len(enriched), len(dead), tc.small)
			}
			g, b := dead[schemas.ReasonInvalidJSON], dead[schemas.ReasonTooLarge]
			if g.OriginalBytes != len(garbage) || !g.OriginalTruncated || !bytes.HasPrefix(garbage, g.Original) || len(g.Original) < 500_000 {
				t.Errorf("the garbage's dead letter: original_bytes %d (want %d), truncated %v, %d bytes kept", g.OriginalBytes, len(garbage), g.OriginalTruncated, len(g.Original))
			}
			if b.OriginalBytes != len(big) || !bytes.HasPrefix(big, b.Original) || b.OriginalTruncated != (len(big) > 500_000) ||
				!strings.Contains(b.Detail, "is not counted") || !strings.Contains(b.Detail, schemas.TopicEnriched) {
				t.Errorf("the big event's dead letter: original_bytes %d (want %d), truncated %v, detail %q", b.OriginalBytes, len(big), b.OriginalTruncated, b.Detail)
			}
			if d := counter(t, "aivis_deadletter_total", "stage", StageName, "reason", schemas.ReasonTooLarge) - tooLargeBefore; d != 1 {
				t.Errorf("too_large dead-letter metric grew by %v, want 1", d)
			}
			committed, err := adm.FetchOffsets(ctx, ConsumerGroup)
			if err != nil {
				t.Fatal(err)
			}
			var at int64
			committed.Each(func(o kadm.OffsetResponse) {
				if o.Topic == schemas.TopicRaw {
					at += o.At
				}
			})
			if at != int64(len(inputs)) {
				t.Errorf("committed %d raw offsets, want all %d", at, len(inputs))
			}
		})
	}
}
