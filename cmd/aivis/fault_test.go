package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/internal/testenv"
	"github.com/aivis-dev/aivis/schemas"
	chsink "github.com/aivis-dev/aivis/sinks/clickhouse"
)

// The fault tests run the real aivis binary as aggregator processes
// against a real Kafka broker and ClickHouse, break something mid-stream,
// and require the totals to equal the ground truth exactly and
// `aivis verify` to pass.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// TestMain removes the binary aivisBinary built once the tests are done.
func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		_ = os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

func aivisBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "aivis-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "aivis")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("building aivis: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

type faultEnv struct {
	t       *testing.T
	ctx     context.Context
	bin     string
	brokers []string
	chAddr  string
	db      string
	topic   string
	group   string
	logDir  string
	// cluster is clickhouse.cluster (empty: one server).
	cluster string
	// extraEnv is added to the aggregators' environment after env's own.
	extraEnv []string

	mu    sync.Mutex
	truth map[string]*e2eTotal // model/team → totals of distinct events
	n     int
}

func newFaultEnv(t *testing.T, ctx context.Context, chAddr, db string) *faultEnv {
	t.Helper()
	return newFaultEnvOn(t, ctx, testenv.Kafka(t), 1, chAddr, db, "")
}

// newFaultEnvOn is newFaultEnv on the given brokers, creating the topics
// with the given replication factor, and on the ClickHouse cluster named
// by cluster (empty: one server).
func newFaultEnvOn(t *testing.T, ctx context.Context, brokers []string, replication int16, chAddr, db, cluster string) *faultEnv {
	t.Helper()
	name := fmt.Sprintf("aivis-fault-%d", time.Now().UnixNano())
	f := &faultEnv{t: t, ctx: ctx, bin: aivisBinary(t), brokers: brokers, chAddr: chAddr, db: db, cluster: cluster,
		topic: name, group: name, logDir: t.TempDir(), truth: map[string]*e2eTotal{}}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).CreateTopics(ctx, 6, replication, nil, f.topic, schemas.TopicDeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resp {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			t.Fatalf("creating topic %s: %v", r.Topic, r.Err)
		}
	}
	return f
}

func (f *faultEnv) env() []string {
	return append(append(os.Environ(),
		"AIVIS_KAFKA__BROKERS="+strings.Join(f.brokers, ","),
		"AIVIS_CLICKHOUSE__ADDR="+f.chAddr,
		"AIVIS_CLICKHOUSE__CLUSTER="+f.cluster,
		"AIVIS_CLICKHOUSE__DATABASE="+f.db,
		"AIVIS_AGGREGATE__TOPIC="+f.topic,
		"AIVIS_AGGREGATE__GROUP="+f.group,
		"AIVIS_AGGREGATE__SESSION_TIMEOUT=6s",
		// Short windows so that windows close, are written and committed
		// many times while the faults happen, and late events make
		// correction rows.
		"AIVIS_AGGREGATE__WINDOW=2s",
		"AIVIS_AGGREGATE__OUT_OF_ORDER=1s",
		"AIVIS_AGGREGATE__ALLOWED_LATENESS=1s",
		"AIVIS_AGGREGATE__IDLE_TIMEOUT=2s",
		"AIVIS_AGGREGATE__FLUSH_INTERVAL=300ms",
		"AIVIS_AGGREGATE__SCORE_ANOMALIES=false",
		"AIVIS_METRICS_ADDR=",
	), f.extraEnv...)
}

type proc struct {
	name string
	cmd  *exec.Cmd
	done chan error
}

// startAggregator runs `aivis aggregate` as a separate process.
func (f *faultEnv) startAggregator(name string) *proc {
	f.t.Helper()
	logf, err := os.OpenFile(filepath.Join(f.logDir, name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		f.t.Fatal(err)
	}
	cmd := exec.Command(f.bin, "aggregate")
	cmd.Env = f.env()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait(); logf.Close() }()
	f.t.Cleanup(func() { _ = cmd.Process.Kill(); <-p.done })
	return p
}

func (f *faultEnv) kill9(p *proc) {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	p.done <- nil
	f.t.Logf("kill -9 %s", p.name)
}

func (f *faultEnv) stop(p *proc) {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			f.t.Errorf("%s exited with %v after SIGTERM; log:\n%s", p.name, err, f.log(p.name))
		}
		p.done <- nil
	case <-time.After(60 * time.Second):
		f.t.Fatalf("%s did not stop within 60 s of SIGTERM", p.name)
	}
}

func (f *faultEnv) log(name string) string {
	b, _ := os.ReadFile(filepath.Join(f.logDir, name+".log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// produce sends n enriched events over d (wall clock) with event times
// close to now, a few out of order and 5 % resent duplicates, recording the
// ground truth. It returns when all are acknowledged.
func (f *faultEnv) produce(seed uint64, n int, d time.Duration) {
	f.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(f.brokers...), kgo.DefaultProduceTopic(f.topic),
		kgo.RecordRetries(1_000_000), kgo.RequestRetries(1_000_000))
	if err != nil {
		f.t.Fatal(err)
	}
	defer cl.Close()
	rng := rand.New(rand.NewPCG(seed, 9))
	var sent [][]byte
	var keys []string
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var firstErr error
	step := d / time.Duration(n)
	start := time.Now()
	for i := 0; i < n; i++ {
		if wait := time.Until(start.Add(time.Duration(i) * step)); wait > 0 {
			time.Sleep(wait)
		}
		var key string
		var value []byte
		if len(sent) > 0 && rng.IntN(20) == 0 {
			j := rng.IntN(len(sent))
			key, value = keys[j], sent[j]
		} else {
			at := time.Now().UTC().Add(-time.Duration(rng.IntN(3000)) * time.Millisecond)
			ev := f.event(rng, fmt.Sprintf("%s-%d-%d", f.topic, seed, i), at)
			value, _ = json.Marshal(ev)
			key = ev.EventID
			sent, keys = append(sent, value), append(keys, key)
		}
		wg.Add(1)
		cl.Produce(f.ctx, &kgo.Record{Key: []byte(key), Value: value}, func(_ *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				errMu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				errMu.Unlock()
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		f.t.Fatalf("producing: %v", firstErr)
	}
}

// event makes a distinct enriched event of id at time at and adds it to
// the ground truth.
func (f *faultEnv) event(rng *rand.Rand, id string, at time.Time) *schemas.Enriched {
	model := []string{"m-hot", "m-hot", "m-hot", "m-a", "m-b"}[rng.IntN(5)]
	team := []string{"t1", "t2", "t3"}[rng.IntN(3)]
	in, out, cost := int64(rng.IntN(5000)), int64(rng.IntN(700)), int64(rng.IntN(90_000_000))
	lat := int64(rng.IntN(5000))
	ev := &schemas.Enriched{
		Event: schemas.Event{SchemaVersion: "1", EventID: id, Time: at,
			Kind: schemas.KindLLMRequest, Source: "fault", Provider: "openai", Model: model, Status: schemas.StatusOK,
			LatencyMs: &lat, Usage: &schemas.Usage{InputTokens: schemas.Int64(in), OutputTokens: schemas.Int64(out)}},
		Owner: schemas.Owner{Team: team, Project: "p"}, CostPicos: cost,
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	k := model + "/" + team
	if f.truth[k] == nil {
		f.truth[k] = &e2eTotal{}
	}
	tt := f.truth[k]
	tt.Requests++
	tt.Input += in
	tt.Output += out
	tt.CostPicos += cost
	f.n++
	return ev
}

// check waits until ClickHouse holds every distinct event, then requires
// exact per-(model, team) totals and a passing `aivis verify`.
func (f *faultEnv) check(timeout time.Duration) {
	f.t.Helper()
	cfg := chsink.DefaultConfig()
	cfg.Addr, cfg.Database, cfg.Cluster = f.chAddr, f.db, f.cluster
	store, err := chsink.Open(f.ctx, cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	defer store.Close()
	deadline := time.Now().Add(timeout)
	var got map[string]*e2eTotal
	for {
		got = f.totals(store)
		var sum int64
		for _, g := range got {
			sum += g.Requests
		}
		if sum >= int64(f.n) || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // anything more arriving now would be a double count
	got = f.totals(store)
	if len(got) != len(f.truth) {
		f.t.Errorf("%d (model, team) groups, want %d", len(got), len(f.truth))
	}
	for k, w := range f.truth {
		if g := got[k]; g == nil || *g != *w {
			f.t.Errorf("%s: got %+v, want %+v", k, g, *w)
		}
	}
	if out, err := f.verify(); err != nil {
		f.t.Errorf("aivis verify: %v\n%s", err, out)
	}
}

func (f *faultEnv) totals(store *chsink.Store) map[string]*e2eTotal {
	rows, err := store.Query(f.ctx, `SELECT model, team, toInt64(sum(requests)), sum(input_tokens), sum(output_tokens), sum(cost_usd)
FROM cost_by_window GROUP BY model, team`)
	if err != nil {
		f.t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]*e2eTotal{}
	for rows.Next() {
		var model, team string
		var g e2eTotal
		var cost decimal.Decimal
		if err := rows.Scan(&model, &team, &g.Requests, &g.Input, &g.Output, &cost); err != nil {
			f.t.Fatal(err)
		}
		g.CostPicos = cost.Shift(12).IntPart()
		out[model+"/"+team] = &g
	}
	return out
}

// verify runs aivis verify without the check from the raw topic: these
// tests produce straight to an enriched topic of their own, and the shared
// broker's raw topic holds other tests' events.
func (f *faultEnv) verify() (string, error) {
	cmd := exec.Command(f.bin, "verify", "--source=false", "--from", time.Now().UTC().Add(-2*time.Hour).Format(time.RFC3339),
		"--to", time.Now().UTC().Add(time.Hour).Format(time.RFC3339))
	cmd.Env = f.env()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func (f *faultEnv) resetGroupToEarliest() {
	f.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(f.brokers...))
	if err != nil {
		f.t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	starts, err := adm.ListStartOffsets(f.ctx, f.topic)
	if err != nil {
		f.t.Fatal(err)
	}
	offsets := kadm.Offsets{}
	starts.Each(func(o kadm.ListedOffset) {
		offsets.Add(kadm.Offset{Topic: f.topic, Partition: o.Partition, At: o.Offset, LeaderEpoch: -1})
	})
	resp, err := adm.CommitOffsets(f.ctx, f.group, offsets)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		f.t.Fatalf("resetting group %s to the earliest offsets: %v", f.group, err)
	}
}

func faultSetup(t *testing.T) (*faultEnv, context.Context) {
	if testing.Short() {
		t.Skip("fault tests need Kafka and ClickHouse")
	}
	addr, db := testenv.ClickHouseDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return newFaultEnv(t, ctx, addr, db), ctx
}

// (a) kill -9 an aggregator mid-stream and restart it; (e) then reset the
// group to the earliest offsets and replay everything.
func TestFaultKillAndReplay(t *testing.T) {
	f, _ := faultSetup(t)
	a := f.startAggregator("a")
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); f.produce(1, 3000, 8*time.Second) }()
	time.Sleep(4 * time.Second)
	f.kill9(a)
	time.Sleep(time.Second)
	a = f.startAggregator("a2")
	wg.Wait()
	f.check(90 * time.Second)

	f.stop(a)
	f.resetGroupToEarliest()
	a = f.startAggregator("a3")
	time.Sleep(8 * time.Second) // replays the whole topic; nothing may change
	f.check(30 * time.Second)
	if !strings.Contains(f.log("a3"), "from_offset=0") {
		t.Errorf("the replica after the reset did not replay from offset 0; log:\n%s", f.log("a3"))
	}
	f.stop(a)

	// A corrupted window row must make verify fail.
	cfg := chsink.DefaultConfig()
	cfg.Addr, cfg.Database = f.chAddr, f.db
	store, err := chsink.Open(f.ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	row := schemas.WindowRow{WindowStart: time.Now().UTC().Truncate(time.Minute), WindowSeconds: 60, Provider: "openai",
		Model: "m-hot", Team: "t1", Project: "p", SrcPartition: 99, ThroughOffset: 1, Requests: 1, CostPicos: schemas.PicosOf(1),
		LatencyHist: make([]uint64, schemas.LatencyBuckets)}
	if err := store.Write(f.ctx, nil, []schemas.WindowRow{row}); err != nil {
		t.Fatal(err)
	}
	if out, err := f.verify(); err == nil {
		t.Fatalf("aivis verify passed on a corrupted window row:\n%s", out)
	} else if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(out, "DIFF") {
		t.Fatalf("aivis verify on a corrupted row: %v, want exit status 1 and a DIFF line:\n%s", err, out)
	}
}

// (b) add and remove replicas under load.
func TestFaultScaleReplicas(t *testing.T) {
	f, _ := faultSetup(t)
	a := f.startAggregator("a")
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); f.produce(2, 4000, 12*time.Second) }()
	time.Sleep(2 * time.Second)
	b, c := f.startAggregator("b"), f.startAggregator("c")
	time.Sleep(4 * time.Second)
	f.stop(b)
	time.Sleep(2 * time.Second)
	f.kill9(c)
	wg.Wait()
	f.check(90 * time.Second)
	f.stop(a)
}

// (c) stop ClickHouse for 30 s mid-stream.
func TestFaultClickHouseOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("fault tests need Kafka and ClickHouse")
	}
	addr, run := privateClickHouse(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	f := newFaultEnv(t, ctx, addr, "aivis_fault")

	a := f.startAggregator("a")
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); f.produce(3, 3000, 10*time.Second) }()
	time.Sleep(3 * time.Second)
	run("down")
	t.Log("ClickHouse stopped for 30 s")
	time.Sleep(30 * time.Second)
	run("up")
	wg.Wait()
	f.check(120 * time.Second)
	f.stop(a)
}

// (d) restart the Kafka broker mid-stream.
func TestFaultBrokerRestart(t *testing.T) {
	f, _ := faultSetup(t)
	a := f.startAggregator("a")
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); f.produce(4, 3000, 10*time.Second) }()
	time.Sleep(3 * time.Second)
	out, err := exec.Command(testenv.KafkaScript(), "restart").CombinedOutput()
	if err != nil {
		t.Fatalf("restarting the broker: %v\n%s", err, out)
	}
	t.Log("broker restarted")
	wg.Wait()
	f.check(120 * time.Second)
	f.stop(a)
}
