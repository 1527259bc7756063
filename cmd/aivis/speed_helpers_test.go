package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/internal/testenv"
	chsink "github.com/aivis-dev/aivis/sinks/clickhouse"
)

// openStore opens the database the test's processes write; it is closed
// when the test ends.
func openStore(t *testing.T, ctx context.Context, addr, db string) *chsink.Store {
	t.Helper()
	cfg := chsink.DefaultConfig()
	cfg.Addr, cfg.Database = addr, db
	store, err := chsink.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store
}

// storedEvents is how many rows usage_events holds (an event written
// again counts until the table merges it away): how far the aggregators
// have got.
func storedEvents(t *testing.T, ctx context.Context, store *chsink.Store) uint64 {
	t.Helper()
	rows, err := store.Query(ctx, "SELECT count() FROM usage_events")
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

// backlogProducer writes records to one topic as fast as the broker takes
// them, to preload a backlog.
type backlogProducer struct {
	t   *testing.T
	ctx context.Context
	cl  *kgo.Client
	wg  sync.WaitGroup
	mu  sync.Mutex
	err error
}

func newBacklogProducer(t *testing.T, ctx context.Context, brokers []string, topic string) *backlogProducer {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic),
		kgo.ProducerLinger(5*time.Millisecond), kgo.MaxBufferedRecords(50_000))
	if err != nil {
		t.Fatal(err)
	}
	return &backlogProducer{t: t, ctx: ctx, cl: cl}
}

func (p *backlogProducer) produce(r *kgo.Record) {
	p.wg.Add(1)
	p.cl.Produce(p.ctx, r, func(_ *kgo.Record, err error) {
		defer p.wg.Done()
		if err != nil {
			p.mu.Lock()
			p.err = err
			p.mu.Unlock()
		}
	})
}

// finish waits until every record is acknowledged, and fails the test if
// one was not.
func (p *backlogProducer) finish() {
	p.t.Helper()
	p.wg.Wait()
	p.cl.Close()
	if p.err != nil {
		p.t.Fatalf("preloading the backlog: %v", p.err)
	}
}

// migrate runs `aivis migrate` with the layout's configuration: the
// ClickHouse schema and the topics.
func (l *layout) migrate() {
	l.t.Helper()
	if out, err := exec.Command(l.bin, "migrate", "--config", l.config).CombinedOutput(); err != nil {
		l.t.Fatalf("aivis migrate: %v\n%s", err, out)
	}
}

// migrate runs `aivis migrate --topics=false`: the test made its topic.
func (f *faultEnv) migrate() {
	f.t.Helper()
	cmd := exec.Command(f.bin, "migrate", "--topics=false")
	cmd.Env = f.env()
	if out, err := cmd.CombinedOutput(); err != nil {
		f.t.Fatalf("aivis migrate: %v\n%s", err, out)
	}
}

// checkExact waits until cost_by_window counts n requests, stops every
// process, and requires the per-(model, team) totals to equal want and
// `aivis verify`, the raw topic included, to pass from an hour before
// from until now.
func (l *layout) checkExact(store *chsink.Store, want map[string]*e2eTotal, n int64, from time.Time) {
	t := l.t
	t.Helper()
	var got map[string]*e2eTotal
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(500 * time.Millisecond) {
		got = layoutTotals(t, l.ctx, store)
		var sum int64
		for _, g := range got {
			sum += g.Requests
		}
		if sum >= n || time.Now().After(deadline) {
			break
		}
	}
	time.Sleep(2 * time.Second) // anything more arriving now would be a double count
	l.stopAll()
	got = layoutTotals(t, l.ctx, store)
	if len(got) != len(want) {
		t.Errorf("got %d (model, team) groups, want %d: %v", len(got), len(want), keys(got))
	}
	for k, w := range want {
		if g := got[k]; g == nil || *g != *w {
			t.Errorf("%s: got %+v, want %+v", k, g, *w)
		}
	}
	verify := exec.Command(l.bin, "verify", "--config", l.config,
		"--from", from.Add(-time.Hour).Format(time.RFC3339), "--to", time.Now().UTC().Add(time.Hour).Format(time.RFC3339))
	if out, err := verify.CombinedOutput(); err != nil {
		t.Errorf("aivis verify: %v\n%s", err, out)
	}
}

// gatewayEvent is a canonical llm.request of model-a or model-b (priced by
// e2eCatalog) for a random team, as a gateway sends it; its request,
// tokens and cost are added to want.
func gatewayEvent(rng *rand.Rand, id, source string, at time.Time, want map[string]*e2eTotal) []byte {
	model := []string{"model-a", "model-b"}[rng.IntN(2)]
	provider := map[string]string{"model-a": "openai", "model-b": "anthropic"}[model]
	team := []string{"search", "chat", "ops"}[rng.IntN(3)]
	in := int64(100 + rng.IntN(5000))
	cacheRead := int64(rng.IntN(int(in / 2)))
	out := int64(1 + rng.IntN(800))
	b, err := json.Marshal(map[string]any{
		"schema_version": "1", "event_id": id, "time": at.Format(time.RFC3339Nano),
		"kind": "llm.request", "source": source, "provider": provider, "model": model, "status": "ok",
		"labels": map[string]string{"team": team},
		"usage":  map[string]int64{"input_tokens": in, "cache_read_input_tokens": cacheRead, "output_tokens": out},
	})
	if err != nil {
		panic(err) // a map of strings and numbers always encodes
	}
	addExpected(want, model, team, in, cacheRead, 0, out)
	return b
}

// privateClickHouse starts a ClickHouse server of the test's own, which it
// may stop without disturbing the others, and returns its address and a
// function running `clickhouse.sh up|down` on it. It is stopped when the
// test ends.
func privateClickHouse(t *testing.T) (addr string, run func(arg string)) {
	t.Helper()
	port := testenv.FreePorts(t, 10) // clickhouse.sh also binds port+9 (interserver)
	script := testenv.ClickHouseScript(t)
	env := append(os.Environ(), fmt.Sprintf("AIVISDEV_CH_PORT=%d", port), fmt.Sprintf("AIVISDEV_CH_HTTP_PORT=%d", port+1),
		fmt.Sprintf("AIVISDEV_CH_TLS_PORT=%d", port+2), "AIVISDEV_CH_DIR="+t.TempDir())
	run = func(arg string) {
		t.Helper()
		cmd := exec.Command(script, arg)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("clickhouse.sh %s: %v\n%s", arg, err, out)
		}
	}
	run("up")
	t.Cleanup(func() { run("down") })
	return fmt.Sprintf("127.0.0.1:%d", port), run
}
