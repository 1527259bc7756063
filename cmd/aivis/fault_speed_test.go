package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/schemas"
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

	f.migrate()
	store := openStore(t, f.ctx, f.chAddr, f.db)
	stored := func() uint64 { return storedEvents(t, f.ctx, store) }

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
	bp := newBacklogProducer(f.t, f.ctx, f.brokers, f.topic)
	rng := rand.New(rand.NewPCG(seed, 11))
	proto := []kgo.RecordHeader{{Key: schemas.HeaderContentType, Value: []byte(schemas.ContentTypeProtobuf)}}
	start := time.Now().UTC().Add(-span)
	var sent []*kgo.Record
	var err error
	for i := 0; i < n; i++ {
		at := start.Add(span*time.Duration(i)/time.Duration(n) - time.Duration(rng.IntN(4000))*time.Millisecond)
		ev := f.event(rng, fmt.Sprintf("%s-%d-%d", f.topic, seed, i), at)
		r := &kgo.Record{Key: []byte(ev.EventID)}
		if i%3 == 2 {
			r.Value, r.Headers = ev.AppendProto(nil), proto
		} else if r.Value, err = json.Marshal(ev); err != nil {
			f.t.Fatal(err)
		}
		bp.produce(r)
		if i%20 == 0 {
			sent = append(sent, r)
		}
		if len(sent) > 0 && rng.IntN(20) == 0 {
			again := sent[rng.IntN(len(sent))]
			bp.produce(&kgo.Record{Key: again.Key, Value: again.Value, Headers: again.Headers})
		}
	}
	bp.finish()
}

// TestFaultClickHouseOutageAtFullSpeed stops ClickHouse for 15 s while two
// aggregator replicas work through a backlog with the production flush
// policy, and more of it arrives during the outage: a replica holds a full
// flush (max_pending_events) it cannot write, stops reading, retries, and
// resumes when the server is back. Totals must equal the ground truth
// exactly and `aivis verify` must pass.
func TestFaultClickHouseOutageAtFullSpeed(t *testing.T) {
	if testing.Short() {
		t.Skip("fault tests need Kafka and ClickHouse")
	}
	addr, run := privateClickHouse(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	f := newFaultEnv(t, ctx, addr, "aivis_fault_speed")
	f.extraEnv = []string{
		"AIVIS_AGGREGATE__FLUSH_INTERVAL=1s",
		"AIVIS_AGGREGATE__MAX_PENDING_EVENTS=65536",
		"AIVIS_AGGREGATE__WINDOW=10s",
	}
	f.preload(9, 300_000, 20*time.Minute)
	f.migrate()
	store := openStore(t, f.ctx, f.chAddr, f.db)
	a, b := f.startAggregator("a"), f.startAggregator("b")
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c := storedEvents(t, f.ctx, store); c >= uint64(f.n)/10 {
			if c >= uint64(f.n) {
				t.Fatalf("all %d events were stored before the outage; the test needs a larger backlog", c)
			}
			t.Logf("stopping ClickHouse for 15 s at %d of %d events stored", c, f.n)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("usage_events did not reach 10%% of %d events within 90 s; log:\n%s", f.n, f.log("a"))
		}
	}
	run("down")
	// More of the backlog arrives while the server is down, so that the
	// replicas fill flushes they cannot write however far they had got.
	stopped := time.Now()
	f.preload(10, 200_000, 10*time.Minute)
	time.Sleep(15*time.Second - time.Since(stopped))
	run("up")
	f.check(3 * time.Minute)
	// The events sent during the outage could only be stored after it, so
	// the replicas held work they could not write; whether they met the
	// outage as a failed write or as a write that waited for the server
	// depends on how fast it went down, which the totals do not.
	retried := 0
	for _, name := range []string{"a", "b"} {
		b, err := os.ReadFile(filepath.Join(f.logDir, name+".log"))
		if err != nil {
			t.Fatal(err)
		}
		retried += strings.Count(string(b), "retrying")
	}
	t.Logf("the replicas logged %d retries during the outage", retried)
	f.stop(a)
	f.stop(b)
}
