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
// (a broker refuses a whole batch for one record over the topic's limit);
// an enriched event refused alone is dead-lettered as too_large, a dead
// letter refused alone is written without the original's bytes. Every
// limit is exercised: the Kafka client's batch of 1,000,012 bytes, and
// max.message.bytes set lower than the client's batches on the enriched
// topic and on the dead-letter topic.
func TestStageTooLargeMovesOn(t *testing.T) {
	for _, tc := range []struct {
		name string
		// topicMax is the max.message.bytes of topic (none: default).
		topic    string
		topicMax int
		// bigSize is the raw size of a valid event among the others.
		bigSize int
		small   int // normal events around it
		// tooLarge: the big event is dead-lettered as too_large; bare:
		// the dead letters carry no original.
		tooLarge, bare bool
	}{
		{name: "client batch", bigSize: 999_900, small: 4, tooLarge: true},
		{name: "enriched topic limit", topic: schemas.TopicEnriched, topicMax: 20_000, bigSize: 60_000, small: 60, tooLarge: true},
		{name: "dead-letter topic limit", topic: schemas.TopicDeadLetter, topicMax: 20_000, bigSize: 60_000, small: 60, bare: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addrs := newCluster(t, schemas.TopicRaw, schemas.TopicEnriched, schemas.TopicDeadLetter)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			prod := newClient(t, kgo.SeedBrokers(addrs...))
			adm := kadm.NewClient(prod)
			if tc.topicMax > 0 {
				v := fmt.Sprint(tc.topicMax)
				rs, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "max.message.bytes", Value: &v}}, tc.topic)
				if err == nil {
					_, err = rs.On(tc.topic, nil)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			// One key: everything on one partition, the big records among
			// the others, so that a stuck partition would show. The
			// garbage is random letters, which compress little: brokers
			// hold batches to their limit compressed.
			key := []byte("k")
			rng := rand.New(rand.NewPCG(3, 4))
			garbage := []byte(`{"schema_version":"1","event_id":"`)
			for range 800_000 {
				garbage = append(garbage, byte('a'+rng.IntN(26)))
			}
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
			enriched := 0
			dead := map[string]schemas.DeadLetter{}
			for enriched+len(dead) < len(inputs) {
				fs := out.PollFetches(ctx)
				if ctx.Err() != nil {
					t.Fatalf("got %d enriched and %d dead letters of %d records before timing out", enriched, len(dead), len(inputs))
				}
				fs.EachRecord(func(r *kgo.Record) {
					if r.Topic == schemas.TopicEnriched {
						enriched++
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
			wantEnriched, wantDead := tc.small+1, 1
			if tc.tooLarge {
				wantEnriched, wantDead = tc.small, 2
			}
			if enriched != wantEnriched || len(dead) != wantDead {
				t.Fatalf("%d enriched and dead letters %v, want %d enriched and %d dead letters", enriched, len(dead), wantEnriched, wantDead)
			}
			g := dead[schemas.ReasonInvalidJSON]
			kept := len(g.Original) >= 500_000 && !strings.Contains(g.Detail, "left out")
			if tc.bare {
				kept = len(g.Original) == 0 && strings.Contains(g.Detail, "left out")
			}
			if g.OriginalBytes != len(garbage) || !g.OriginalTruncated || !bytes.HasPrefix(garbage, g.Original) || !kept {
				t.Errorf("the garbage's dead letter: original_bytes %d (want %d), truncated %v, %d bytes kept, detail %q", g.OriginalBytes, len(garbage), g.OriginalTruncated, len(g.Original), g.Detail)
			}
			if tc.tooLarge {
				b := dead[schemas.ReasonTooLarge]
				if b.OriginalBytes != len(big) || !bytes.HasPrefix(big, b.Original) || b.OriginalTruncated != (len(big) > 500_000) || b.EventID != "big" ||
					!strings.Contains(b.Detail, "is not counted") || !strings.Contains(b.Detail, schemas.TopicEnriched) {
					t.Errorf("the big event's dead letter: event_id %q, original_bytes %d (want %d), truncated %v, detail %q", b.EventID, b.OriginalBytes, len(big), b.OriginalTruncated, b.Detail)
				}
			}
			if d := counter(t, "aivis_deadletter_total", "stage", StageName, "reason", schemas.ReasonTooLarge) - tooLargeBefore; d != float64(wantDead-1) {
				t.Errorf("too_large dead-letter metric grew by %v, want %d", d, wantDead-1)
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
