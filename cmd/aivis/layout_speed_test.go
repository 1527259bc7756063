package main

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/enrich"
	"github.com/aivis-dev/aivis/ingest"
	"github.com/aivis-dev/aivis/internal/testenv"
	"github.com/aivis-dev/aivis/schemas"
)

// TestProductionLayoutKillAtFullSpeed runs enrich and two aggregate
// replicas as separate processes, with the production flush policy, on a
// raw topic that already holds a backlog: twenty minutes of traffic that
// they read as fast as they go. While usage_events fills, each stage is
// killed with SIGKILL and started again: an aggregator at about 15 % and
// 65 %, enrich at about 35 %. The aggregators are dynamic members, so a
// killed one's partitions wait for the session timeout; enrich is a static
// member (enrich.instance_id), so the new process takes its partitions back
// at once. It re-reads from its last commit and writes again events the
// aggregators already hold, which they must skip. Totals must equal the
// expected exactly and `aivis verify`, with the raw topic checked against
// ClickHouse, must pass.
func TestProductionLayoutKillAtFullSpeed(t *testing.T) {
	l := newLayout(t, 6)
	l.migrate()

	const n = 300_000
	start := time.Now().UTC().Add(-20 * time.Minute)
	want := l.preloadRaw(17, n, start)

	store := openStore(t, l.ctx, l.chAddr, l.db)
	stored := func() uint64 { return storedEvents(t, l.ctx, store) }

	// The production flush policy: one insert a second or every 65,536
	// events, not the layout tests' quick one.
	flush := []string{"--aggregate.flush_interval", "1s", "--aggregate.max_pending_events", "65536"}
	l.start("enrich-0", "enrich", "--enrich.instance_id", "e1")
	l.start("aggregate-a0", append([]string{"aggregate"}, flush...)...)
	l.start("aggregate-b0", append([]string{"aggregate"}, flush...)...)
	began := time.Now()
	last := uint64(0)
	for i, k := range []struct {
		share uint64
		name  string
		next  string
		args  []string
	}{
		{15, "aggregate-a0", "aggregate-a1", append([]string{"aggregate"}, flush...)},
		{35, "enrich-0", "enrich-1", []string{"enrich", "--enrich.instance_id", "e1"}},
		{65, "aggregate-b0", "aggregate-b1", append([]string{"aggregate"}, flush...)},
	} {
		deadline := time.Now().Add(2 * time.Minute)
		for c := stored(); c < n*k.share/100 || c == last; c = stored() {
			if time.Now().After(deadline) {
				t.Fatalf("usage_events did not reach %d%% of %d events within 2 minutes; %s log:\n%s", k.share, n, k.name, l.log(k.name))
			}
			time.Sleep(20 * time.Millisecond)
		}
		l.kill9(k.name)
		last = stored()
		if last >= n {
			t.Fatalf("kill %d came after the last event was stored; the test needs a larger backlog", i+1)
		}
		t.Logf("%v in: kill -9 %s at %d of %d events stored", time.Since(began).Round(time.Millisecond), k.name, last, n)
		l.start(k.next, k.args...)
	}

	// enrich.instance_id reached the group: enrich's member is static.
	admin, err := kgo.NewClient(kgo.SeedBrokers(l.brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	groups, err := kadm.NewClient(admin).DescribeGroups(l.ctx, enrich.ConsumerGroup)
	if err != nil {
		t.Fatal(err)
	}
	static := false
	for _, m := range groups[enrich.ConsumerGroup].Members {
		static = static || (m.InstanceID != nil && *m.InstanceID == "e1")
	}
	if !static {
		t.Errorf("group %s has no member with instance id e1: %+v", enrich.ConsumerGroup, groups[enrich.ConsumerGroup].Members)
	}

	l.checkExact(store, want, n, start)
	if !t.Failed() {
		t.Logf("all %d events counted exactly, %v after the start", n, time.Since(began).Round(time.Millisecond))
	}
}

// kill9 kills a process with SIGKILL and forgets it, so that stopAll
// leaves it out.
func (l *layout) kill9(name string) {
	l.t.Helper()
	p := l.procs[name]
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	p.done <- nil
	delete(l.procs, name)
}

// TestProductionLayoutKillIngestUnderLoad posts events to ingest from four
// clients as fast as it answers, and kills ingest with SIGKILL twice while
// they do, starting it again each time (on a new port, as a replacement pod
// gets a new address). A client whose request fails without an answer, or
// is answered 503, sends the same batch again, with the same ids, until it
// is answered 202, as a producer following the API does. Every event answered 202
// must be counted exactly once: none lost in the producer's buffers when
// the process died, none counted twice for being sent again.
func TestProductionLayoutKillIngestUnderLoad(t *testing.T) {
	l := newLayout(t, 6)
	l.migrate()
	ingestName := "ingest-0"
	l.start(ingestName, "ingest")
	l.start("enrich", "enrich", "--enrich.instance_id", "e1")
	l.start("aggregate-a", "aggregate", "--aggregate.instance_id", "a")
	l.start("aggregate-b", "aggregate", "--aggregate.instance_id", "b")

	const batches, size = 800, 500
	rng := rand.New(rand.NewPCG(23, 1))
	now := time.Now().UTC()
	want := map[string]*e2eTotal{}
	bodies := make([][]byte, batches)
	for b := range bodies {
		var body []byte
		for i := 0; i < size; i++ {
			at := now.Add(-time.Duration(rng.IntN(600_000)) * time.Millisecond)
			line := gatewayEvent(rng, fmt.Sprintf("kill-ingest-%03d-%03d", b, i), "load-gateway", at, want)
			body = append(append(body, line...), '\n')
		}
		bodies[b] = body
	}

	// addr is where ingest listens now; it changes with each restart.
	var addrMu sync.Mutex
	addr := ""
	current := func() string {
		addrMu.Lock()
		defer addrMu.Unlock()
		return addr
	}
	setAddr := func(name string) {
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if a := l.boundAddr(name, ingestListening); a != "" {
				addrMu.Lock()
				addr = a
				addrMu.Unlock()
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s did not log its address within 30 s; log:\n%s", name, l.log(name))
			}
		}
	}
	setAddr(ingestName)

	var accepted, resent atomic.Int64
	next := atomic.Int64{}
	client := &http.Client{Timeout: 30 * time.Second}
	errs := make(chan error, 4)
	var wg sync.WaitGroup
	for c := 0; c < 4; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := next.Add(1) - 1; b < batches; b = next.Add(1) - 1 {
				for attempt := 0; ; attempt++ {
					if attempt > 0 {
						resent.Add(1)
						time.Sleep(20 * time.Millisecond)
					}
					if l.ctx.Err() != nil {
						errs <- fmt.Errorf("batch %d never answered 202: %w", b, l.ctx.Err())
						return
					}
					req, _ := http.NewRequestWithContext(l.ctx, http.MethodPost, "http://"+current()+ingest.Path, bytes.NewReader(bodies[b]))
					req.Header.Set("Authorization", "Bearer "+l.token)
					req.Header.Set("Content-Type", "application/x-ndjson")
					resp, err := client.Do(req)
					if err != nil {
						continue // no answer: the process died; send it again
					}
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode == http.StatusAccepted {
						accepted.Add(1)
						break
					}
					if resp.StatusCode != http.StatusServiceUnavailable {
						errs <- fmt.Errorf("batch %d: %d %s", b, resp.StatusCode, body)
						return
					}
				}
			}
		}()
	}
	began := time.Now()
	for i, share := range []int64{25, 60} {
		for accepted.Load() < batches*share/100 {
			if time.Since(began) > 2*time.Minute {
				t.Fatalf("only %d of %d batches accepted within 2 minutes; %s log:\n%s", accepted.Load(), batches, ingestName, l.log(ingestName))
			}
			time.Sleep(5 * time.Millisecond)
		}
		l.kill9(ingestName)
		t.Logf("%v in: kill -9 %s with %d of %d batches answered 202", time.Since(began).Round(time.Millisecond), ingestName, accepted.Load(), batches)
		if accepted.Load() >= batches {
			t.Fatalf("kill %d came after the last batch was answered; the test needs more batches", i+1)
		}
		ingestName = fmt.Sprintf("ingest-%d", i+1)
		l.start(ingestName, "ingest")
		setAddr(ingestName)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d batches of %d answered 202 in %v; %d requests sent again after a kill or a 503",
		batches, size, time.Since(began).Round(time.Millisecond), resent.Load())

	store := openStore(t, l.ctx, l.chAddr, l.db)
	l.checkExact(store, want, batches*size, now.Add(-10*time.Minute))
}

// preloadRaw writes a backlog to the raw topic: n distinct events keyed by
// id, event times rising over the twenty minutes from start with a few
// seconds of disorder, and 5 % sent again by the producer. It returns the
// expected totals.
func (l *layout) preloadRaw(seed uint64, n int, start time.Time) map[string]*e2eTotal {
	t := l.t
	rng := rand.New(rand.NewPCG(seed, 5))
	want := map[string]*e2eTotal{}
	bp := newBacklogProducer(t, l.ctx, l.brokers, schemas.TopicRaw)
	var sent []*kgo.Record
	loaded := time.Now()
	for i := 0; i < n; i++ {
		at := start.Add(20*time.Minute*time.Duration(i)/time.Duration(n) - time.Duration(rng.IntN(4000))*time.Millisecond)
		id := fmt.Sprintf("speed-%d-%06d", seed, i)
		b := gatewayEvent(rng, id, "speed-gateway", at, want)
		r := &kgo.Record{Key: []byte(id), Value: b}
		bp.produce(r)
		if i%20 == 0 {
			sent = append(sent, r)
		}
		if len(sent) > 0 && rng.IntN(20) == 0 {
			again := sent[rng.IntN(len(sent))]
			bp.produce(&kgo.Record{Key: again.Key, Value: again.Value})
		}
	}
	bp.finish()
	t.Logf("preloaded %d events (and 5%% resent) in %v", n, time.Since(loaded).Round(time.Millisecond))

	return want
}

// TestFaultBrokerRestartAtFullSpeed restarts the Kafka broker while enrich
// and two aggregate replicas work through a backlog in the production
// layout: enrich has many batches in flight to the enriched topic, and its
// idempotent producer must carry them across the restart without losing
// or repeating one. Totals must equal the expected exactly and `aivis
// verify`, with the raw topic checked, must pass. (A fault test: it
// restarts the shared broker, so it runs alone.)
func TestFaultBrokerRestartAtFullSpeed(t *testing.T) {
	l := newLayout(t, 6)
	l.migrate()
	const n = 300_000
	start := time.Now().UTC().Add(-20 * time.Minute)
	want := l.preloadRaw(29, n, start)

	store := openStore(t, l.ctx, l.chAddr, l.db)
	flush := []string{"--aggregate.flush_interval", "1s", "--aggregate.max_pending_events", "65536"}
	l.start("enrich", "enrich", "--enrich.instance_id", "e1")
	l.start("aggregate-a", append([]string{"aggregate", "--aggregate.instance_id", "a"}, flush...)...)
	l.start("aggregate-b", append([]string{"aggregate", "--aggregate.instance_id", "b"}, flush...)...)
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if c := storedEvents(t, l.ctx, store); c >= n/5 {
			if c >= n {
				t.Fatalf("all %d events were stored before the restart; the test needs a larger backlog", c)
			}
			t.Logf("restarting the broker at %d of %d events stored", c, n)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("usage_events did not reach 20%% of %d events within 2 minutes; enrich log:\n%s", n, l.log("enrich"))
		}
	}
	if out, err := exec.Command(testenv.KafkaScript(), "restart").CombinedOutput(); err != nil {
		t.Fatalf("restarting the broker: %v\n%s", err, out)
	}
	l.checkExact(store, want, n, start)
}
