package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/schemas"
	chsink "github.com/aivis-dev/aivis/sinks/clickhouse"
)

// TestFaultKillAtFullSpeed breaks the aggregator where its throughput
// comes from: a backlog read as fast as two replicas go, flushes of up to
// max_pending_events events with the next poll already decoding, and
// windows closing by the thousand as the watermark sweeps twenty minutes of
// event time (flushes split at 16,384 rows). The other fault tests feed a
// few hundred events a second, which never fills a flush. Here the
// replicas are killed with SIGKILL three times while usage_events fills,
// and restarted at once; the totals must still equal the ground truth
// exactly and `aivis verify` must pass.
func TestFaultKillAtFullSpeed(t *testing.T) {
	f, _ := faultSetup(t)
	// The production flush policy, not the fault tests' quick one, and
	// 10 s windows: twenty minutes of event time make 120 windows a
	// partition, each with 15 keys and their correction rows.
	f.extraEnv = []string{
		"AIVIS_AGGREGATE__FLUSH_INTERVAL=1s",
		"AIVIS_AGGREGATE__MAX_PENDING_EVENTS=65536",
		"AIVIS_AGGREGATE__WINDOW=10s",
	}
	const n = 500_000
	loaded := time.Now()
	f.preload(7, n, 20*time.Minute)
	t.Logf("preloaded %d distinct events (and 5%% resent) in %v", f.n, time.Since(loaded).Round(time.Millisecond))

	migrate := exec.Command(f.bin, "migrate", "--topics=false")
	migrate.Env = f.env()
	if out, err := migrate.CombinedOutput(); err != nil {
		t.Fatalf("aivis migrate: %v\n%s", err, out)
	}
	cfg := chsink.DefaultConfig()
	cfg.Addr, cfg.Database = f.chAddr, f.db
	store, err := chsink.Open(f.ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	stored := func() uint64 {
		t.Helper()
		rows, err := store.Query(f.ctx, "SELECT count() FROM usage_events")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var c uint64
		for rows.Next() {
			if err := rows.Scan(&c); err != nil {
				t.Fatal(err)
			}
		}
		return c
	}

	// Each kill waits for its share of the events to be stored and for
	// one more insert after the previous kill, so that the restarted
	// replicas are at work again when the next one dies.
	replicas := []*proc{f.startAggregator("a0"), f.startAggregator("b0")}
	began := time.Now()
	midStream, last := 0, uint64(0)
	for i, share := range []uint64{10, 40, 70} {
		deadline := time.Now().Add(90 * time.Second)
		for c := stored(); c < uint64(f.n)*share/100 || c == last; c = stored() {
			if time.Now().After(deadline) {
				t.Fatalf("usage_events did not reach %d%% of %d events within 90 s; logs:\n%s\n%s",
					share, f.n, f.log(replicas[0].name), f.log(replicas[1].name))
			}
			time.Sleep(20 * time.Millisecond)
		}
		r := i % 2
		f.kill9(replicas[r])
		last = stored()
		if last < uint64(f.n) {
			midStream++
		}
		t.Logf("%v in: kill -9 %s at %d of %d events stored", time.Since(began).Round(time.Millisecond), replicas[r].name, last, f.n)
		replicas[r] = f.startAggregator(fmt.Sprintf("%c%d", "ab"[r], i+1))
	}
	if midStream < 3 {
		t.Fatalf("only %d of the kills came before the last event was stored; the test needs a larger backlog", midStream)
	}
	f.check(3 * time.Minute)
	if t.Failed() {
		return
	}
	t.Logf("all %d events counted exactly, %v after the start", f.n, time.Since(began).Round(time.Millisecond))
	for _, p := range replicas {
		f.stop(p)
	}
}

// preload writes n distinct enriched events to the topic as fast as the
// broker takes them, with 5 % of them sent again, event times rising over
// span up to now with a few seconds of disorder, and every third one as
// protobuf (the content-type header), as a topic holds while its producers
// switch format. It returns once all are acknowledged.
func (f *faultEnv) preload(seed uint64, n int, span time.Duration) {
	f.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(f.brokers...), kgo.DefaultProduceTopic(f.topic),
		kgo.ProducerLinger(5*time.Millisecond), kgo.MaxBufferedRecords(50_000))
	if err != nil {
		f.t.Fatal(err)
	}
	defer cl.Close()
	rng := rand.New(rand.NewPCG(seed, 11))
	proto := []kgo.RecordHeader{{Key: schemas.HeaderContentType, Value: []byte(schemas.ContentTypeProtobuf)}}
	start := time.Now().UTC().Add(-span)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		sent     []*kgo.Record
	)
	produce := func(r *kgo.Record) {
		wg.Add(1)
		cl.Produce(f.ctx, r, func(_ *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		})
	}
	for i := 0; i < n; i++ {
		at := start.Add(span*time.Duration(i)/time.Duration(n) - time.Duration(rng.IntN(4000))*time.Millisecond)
		ev := f.event(rng, fmt.Sprintf("%s-%d-%d", f.topic, seed, i), at)
		r := &kgo.Record{Key: []byte(ev.EventID)}
		if i%3 == 2 {
			r.Value, r.Headers = ev.AppendProto(nil), proto
		} else if r.Value, err = json.Marshal(ev); err != nil {
			f.t.Fatal(err)
		}
		produce(r)
		if i%20 == 0 {
			sent = append(sent, r)
		}
		if len(sent) > 0 && rng.IntN(20) == 0 {
			again := sent[rng.IntN(len(sent))]
			produce(&kgo.Record{Key: again.Key, Value: again.Value, Headers: again.Headers})
		}
	}
	wg.Wait()
	if firstErr != nil {
		f.t.Fatalf("preloading the topic: %v", firstErr)
	}
}
