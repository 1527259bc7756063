package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/enrich"
	"github.com/aivis-dev/aivis/ingest"
	"github.com/aivis-dev/aivis/internal/bus"
	"github.com/aivis-dev/aivis/internal/testenv"
	"github.com/aivis-dev/aivis/schemas"
	chsink "github.com/aivis-dev/aivis/sinks/clickhouse"
)

// layout runs the documented production layout: each stage a separate
// `aivis` process on the real broker (topic auto-creation off) and the real
// ClickHouse, configured the way an operator would, with one YAML file and
// per-process flags.
type layout struct {
	t       *testing.T
	ctx     context.Context
	bin     string
	brokers []string
	chAddr  string
	db      string
	config  string
	logDir  string
	token   string
	procs   map[string]*layoutProc
}

type layoutProc struct {
	cmd  *exec.Cmd
	done chan error
}

func newLayout(t *testing.T, partitions int) *layout {
	t.Helper()
	if testing.Short() {
		t.Skip("production-layout test: needs Kafka and ClickHouse")
	}
	brokers := testenv.Kafka(t)
	requireAutoCreateOff(t, brokers)
	deleteAivisTopics(t, brokers)
	addr, db := testenv.ClickHouseDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel)
	l := &layout{t: t, ctx: ctx, bin: aivisBinary(t), brokers: brokers, chAddr: addr, db: db,
		logDir: t.TempDir(), token: ingest.NewToken(), procs: map[string]*layoutProc{}}
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	catalog := write("catalog.yaml", e2eCatalog)
	owners := write("owners.yaml", "trust_event_labels: true\n")
	l.config = write("aivis.yaml", fmt.Sprintf(`kafka:
  brokers: [%s]
  partitions: %d
clickhouse:
  addr: %s
  database: %s
ingest:
  producers:
    - name: gateway
      token_sha256: %s
enrich:
  catalog_path: %s
  owners_path: %s
aggregate:
  group: aivis-aggregate-%s
  flush_interval: 200ms
  idle_timeout: 2s
  session_timeout: 6s
  score_anomalies: false
`, strings.Join(brokers, ", "), partitions, addr, db, ingest.HashToken(l.token), catalog, owners, db))
	return l
}

// requireAutoCreateOff makes sure the broker refuses to create topics on
// first use, so that this test proves the stages create their own.
func requireAutoCreateOff(t *testing.T, brokers []string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	rcs, err := kadm.NewClient(cl).DescribeBrokerConfigs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, rc := range rcs {
		for _, c := range rc.Configs {
			if c.Key == "auto.create.topics.enable" && c.MaybeValue() != "false" {
				t.Fatalf("the test broker has auto.create.topics.enable=%s; start it with deploy/scripts/kafka.sh", c.MaybeValue())
			}
		}
	}
}

// start runs `aivis <args...> --config FILE --metrics_addr 127.0.0.1:0`
// (and --ingest.listen_addr 127.0.0.1:0 for ingest): each process takes a
// port of its own and logs it, which boundAddr reads. A port picked free
// beforehand can be taken by any outgoing connection before the process
// binds it.
func (l *layout) start(name string, args ...string) *layoutProc {
	l.t.Helper()
	logf, err := os.Create(filepath.Join(l.logDir, name+".log"))
	if err != nil {
		l.t.Fatal(err)
	}
	p := &layoutProc{done: make(chan error, 1)}
	args = append(args, "--config", l.config, "--metrics_addr", "127.0.0.1:0")
	if args[0] == "ingest" {
		args = append(args, "--ingest.listen_addr", "127.0.0.1:0")
	}
	p.cmd = exec.Command(l.bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait(); logf.Close() }()
	// A static member stays in the group after its process ends, until
	// its session times out; the next test to use enrich's fixed group
	// would wait for it. Cleanups run last first: this one after the kill.
	if i := slices.Index(args, "--enrich.instance_id"); i >= 0 && i+1 < len(args) {
		id := args[i+1]
		l.t.Cleanup(func() { l.leaveGroup(enrich.ConsumerGroup, id) })
	}
	l.t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		p.done <- nil
	})
	l.procs[name] = p
	return p
}

// The lines a process logs once it listens, with the address it got.
var (
	opsListening    = regexp.MustCompile(`msg="serving /metrics, /healthz, /readyz"[^\n]* addr=(\S+)`)
	ingestListening = regexp.MustCompile(`msg="serving usage events"[^\n]* addr=(\S+)`)
)

// boundAddr is the address the process logged with line, or "" before it
// has.
func (l *layout) boundAddr(name string, line *regexp.Regexp) string {
	if m := line.FindStringSubmatch(l.log(name)); m != nil {
		return m[1]
	}
	return ""
}

func (l *layout) log(name string) string {
	b, _ := os.ReadFile(filepath.Join(l.logDir, name+".log"))
	return string(b)
}

// waitLog waits until the process's log holds want.
func (l *layout) waitLog(name, want string, timeout time.Duration) {
	l.t.Helper()
	for deadline := time.Now().Add(timeout); !strings.Contains(l.log(name), want); {
		if time.Now().After(deadline) {
			l.t.Fatalf("%s did not log %q within %s; log:\n%s", name, want, timeout, l.log(name))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// get fetches a path of a process's ops endpoint.
func (l *layout) get(name, path string) (int, string) {
	addr := l.boundAddr(name, opsListening)
	if addr == "" {
		return 0, name + " has not logged its ops address yet"
	}
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitReady waits until the process's /readyz passes.
func (l *layout) waitReady(name string, timeout time.Duration) {
	l.t.Helper()
	var body string
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		var code int
		if code, body = l.get(name, "/readyz"); code == http.StatusOK {
			return
		}
	}
	l.t.Fatalf("%s not ready within %s: %s\nlog:\n%s", name, timeout, body, l.log(name))
}

// post sends lines to the ingest process as NDJSON, 50 a request, and
// requires 202 for each request.
func (l *layout) post(lines [][]byte) {
	l.t.Helper()
	addr := l.boundAddr("ingest", ingestListening)
	for deadline := time.Now().Add(30 * time.Second); addr == ""; addr = l.boundAddr("ingest", ingestListening) {
		if time.Now().After(deadline) {
			l.t.Fatalf("ingest did not log the address it listens on within 30s; log:\n%s", l.log("ingest"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	url := "http://" + addr + ingest.Path
	for i := 0; i < len(lines); i += 50 {
		req, _ := http.NewRequestWithContext(l.ctx, http.MethodPost, url, bytes.NewReader(bytes.Join(lines[i:min(i+50, len(lines))], []byte("\n"))))
		req.Header.Set("Authorization", "Bearer "+l.token)
		req.Header.Set("Content-Type", "application/x-ndjson")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			l.t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			l.t.Fatalf("POST %s: %d %s\ningest log:\n%s", url, resp.StatusCode, body, l.log("ingest"))
		}
	}
}

// stopAll sends SIGTERM to every process and requires exit status 0.
func (l *layout) stopAll() {
	l.t.Helper()
	for _, p := range l.procs {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	for name := range l.procs {
		l.waitExit(name)
	}
}

// waitExit waits for a process sent SIGTERM and requires exit status 0.
func (l *layout) waitExit(name string) {
	l.t.Helper()
	p := l.procs[name]
	select {
	case err := <-p.done:
		if err != nil {
			l.t.Errorf("%s exited with %v after SIGTERM; log:\n%s", name, err, l.log(name))
		}
		p.done <- nil
	case <-time.After(60 * time.Second):
		l.t.Fatalf("%s did not stop within 60 s of SIGTERM", name)
	}
}

// TestProductionLayout runs ingest, enrich and three aggregate replicas as
// separate processes on a broker that does not create topics by itself,
// sends events over HTTP, and requires exact totals in cost_by_window and a
// passing `aivis verify`. It also checks what each process exports and that
// every replica does work. ingest and enrich write zstd batches, which the
// aggregators and verify read beside the default snappy of dead letters.
func TestProductionLayout(t *testing.T) {
	l := newLayout(t, 6)
	l.start("ingest", "ingest", "--kafka.compression", "zstd")
	l.start("enrich", "enrich", "--kafka.compression", "zstd")
	for _, id := range []string{"a1", "a2", "a3"} {
		l.start("aggregate-"+id, "aggregate", "--aggregate.instance_id", id)
	}
	for name := range l.procs {
		l.waitReady(name, 60*time.Second)
	}

	// Events over HTTP, with resent duplicates; expected totals computed
	// here from the hand-written rates.
	rng := rand.New(rand.NewPCG(7, 3))
	now := time.Now().UTC()
	want := map[string]*e2eTotal{}
	var lines [][]byte
	// The last `after` events are posted after the oversized records below.
	const n, after = 630, 30
	for i := 0; i < n; i++ {
		at := now.Add(-time.Duration(n-i) * 100 * time.Millisecond)
		lines = append(lines, gatewayEvent(rng, fmt.Sprintf("layout-%04d", i), "layout-gateway", at, want))
	}
	later := slices.Clone(lines[n-after:])
	lines = lines[:n-after]
	for i, k := 0, len(lines); i < k; i += 7 {
		lines = append(lines, lines[i])
	}
	l.post(lines)
	// A producer writing the raw topic directly may send records near the
	// broker's limit: their dead letter, or the event enriched, is then too
	// large to write. The partition must move on past them, the events
	// around them counted.
	oversized := oversizedRecords(t, now)
	direct, err := kgo.NewClient(kgo.SeedBrokers(l.brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	for _, r := range oversized {
		if err := direct.ProduceSync(l.ctx, r).FirstErr(); err != nil {
			t.Fatalf("producing a raw record of %d bytes: %v", len(r.Value), err)
		}
	}
	l.post(later)

	cfg := chsink.DefaultConfig()
	cfg.Addr, cfg.Database = l.chAddr, l.db
	store, err := chsink.Open(l.ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var got map[string]*e2eTotal
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		got = layoutTotals(t, l.ctx, store)
		var sum int64
		for _, g := range got {
			sum += g.Requests
		}
		if sum >= n || time.Now().After(deadline) {
			break
		}
	}

	// Each process exports the families of what it runs, and its version.
	_, ingestMetrics := l.get("ingest", "/metrics")
	_, enrichMetrics := l.get("enrich", "/metrics")
	_, aggMetrics := l.get("aggregate-a1", "/metrics")
	for _, c := range []struct {
		body, family string
		want         bool
	}{
		{ingestMetrics, "aivis_build_info", true},
		{ingestMetrics, "aivis_aggregate_events_total", false},
		{ingestMetrics, "aivis_enrich_events_total", false},
		{enrichMetrics, "aivis_enrich_events_total", true},
		{enrichMetrics, "aivis_enrich_consumer_lag", true},
		{enrichMetrics, "aivis_aggregate_consumer_lag", false},
		{aggMetrics, "aivis_aggregate_events_total", true},
		{aggMetrics, "aivis_aggregate_consumer_lag", true},
		{aggMetrics, "aivis_build_info", true},
		{aggMetrics, "aivis_enrich_events_total", false},
	} {
		if strings.Contains(c.body, "\n"+c.family) != c.want {
			t.Errorf("family %s exported: %v, want %v", c.family, !c.want, c.want)
		}
	}

	// kafka.compression reached the producers: the broker holds zstd.
	for _, topic := range []string{schemas.TopicRaw, schemas.TopicEnriched} {
		codecs := testenv.BatchCodecs(t, l.brokers, topic)
		for p, c := range codecs {
			if c != 4 {
				t.Errorf("%s[%d] holds batches of codec %d, want 4 (zstd)", topic, p, c)
			}
		}
		if len(codecs) == 0 {
			t.Errorf("%s holds no batch", topic)
		}
	}

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
	// Every replica owned partitions: the topics got 6, not the broker's
	// default.
	for _, id := range []string{"a1", "a2", "a3"} {
		if !strings.Contains(l.log("aggregate-"+id), "partitions assigned") {
			t.Errorf("aggregate-%s was given no partition; log:\n%s", id, l.log("aggregate-"+id))
		}
	}
	if !strings.Contains(l.log("ingest"), "created Kafka topics") && !strings.Contains(l.log("enrich"), "created Kafka topics") {
		t.Errorf("no stage logged creating the topics")
	}
	checkOversizedDeadLetters(t, l.ctx, l.brokers, oversized)
	verify := exec.Command(l.bin, "verify", "--config", l.config,
		"--from", now.Add(-2*time.Hour).Format(time.RFC3339), "--to", now.Add(time.Hour).Format(time.RFC3339))
	if out, err := verify.CombinedOutput(); err != nil {
		t.Errorf("aivis verify: %v\n%s", err, out)
	}
}

// TestProductionLayoutFewPartitions starts on topics created beforehand
// with fewer partitions than configured: the stages must say so, and a
// replica left without partitions must say why.
func TestProductionLayoutFewPartitions(t *testing.T) {
	l := newLayout(t, 6)
	cl, err := kgo.NewClient(kgo.SeedBrokers(l.brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).CreateTopics(l.ctx, 2, 1, nil, bus.Topics...)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatalf("creating the topics with 2 partitions: %v", err)
	}
	l.start("enrich", "enrich")
	for _, id := range []string{"a1", "a2", "a3"} {
		l.start("aggregate-"+id, "aggregate", "--aggregate.instance_id", id)
	}
	l.waitLog("enrich", "topic "+schemas.TopicRaw+" has 2 partitions, fewer than kafka.partitions=6", 60*time.Second)
	l.waitLog("aggregate-a1", "topic "+schemas.TopicEnriched+" has 2 partitions, fewer than kafka.partitions=6", 60*time.Second)
	// With 3 replicas on 2 partitions one of them idles and says so.
	deadline := time.Now().Add(60 * time.Second)
	for {
		idle := 0
		for _, id := range []string{"a1", "a2", "a3"} {
			if strings.Contains(l.log("aggregate-"+id), "more replicas than the topic has partitions") {
				idle++
			}
		}
		if idle == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d replicas reported idling, want 1; logs:\n%s\n%s\n%s", idle,
				l.log("aggregate-a1"), l.log("aggregate-a2"), l.log("aggregate-a3"))
		}
		time.Sleep(500 * time.Millisecond)
	}
	l.stopAll()
}

// TestStageReportsMissingTopics runs ingest without the right to create
// topics (kafka.create_topics=false) on a broker that lacks them: it must
// stay up, report not ready naming the topic and how to create it, and
// become ready once the topic exists.
func TestStageReportsMissingTopics(t *testing.T) {
	l := newLayout(t, 3)
	l.start("ingest", "ingest", "--kafka.create_topics=false")
	l.waitLog("ingest", "kafka-topics.sh --bootstrap-server "+l.brokers[0]+" --create --topic "+schemas.TopicRaw+" --partitions 3", 30*time.Second)
	code, body := l.get("ingest", "/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, schemas.TopicRaw) {
		t.Fatalf("/readyz = %d %q, want 503 naming %s", code, body, schemas.TopicRaw)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(l.brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// Ingest writes the raw events and the refused-authentication counts.
	resp, err := kadm.NewClient(cl).CreateTopics(l.ctx, 3, 1, nil, schemas.TopicRaw, schemas.TopicSecurity)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatalf("creating %s and %s: %v", schemas.TopicRaw, schemas.TopicSecurity, err)
	}
	l.waitReady("ingest", 30*time.Second)
	l.stopAll()
}

func layoutTotals(t *testing.T, ctx context.Context, store *chsink.Store) map[string]*e2eTotal {
	t.Helper()
	rows, err := store.Query(ctx, `SELECT model, team, toInt64(sum(requests)), sum(input_tokens), sum(cache_read_input_tokens), sum(output_tokens), sum(cost_usd)
FROM cost_by_window GROUP BY model, team`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]*e2eTotal{}
	for rows.Next() {
		var model, team string
		var g e2eTotal
		var cost decimal.Decimal
		if err := rows.Scan(&model, &team, &g.Requests, &g.Input, &g.CacheRead, &g.Output, &cost); err != nil {
			t.Fatal(err)
		}
		g.CostPicos = cost.Shift(12).IntPart()
		out[model+"/"+team] = &g
	}
	return out
}

// oversizedRecords are two raw records as a careless producer writing the
// raw topic directly may send them, each keyed like one of the events
// posted after them, so that it sits before it on its partition: 800,000 bytes that are not JSON (their dead
// letter, base64, would be over the Kafka client's 1,000,012-byte batch
// unless cut), and a valid event of 999,900 bytes whose enriched form is
// over it.
func oversizedRecords(t *testing.T, now time.Time) []*kgo.Record {
	t.Helper()
	garbage := append([]byte(`{"schema_version":"1","event_id":"`), bytes.Repeat([]byte("g"), 800_000)...)
	ev := map[string]any{
		"schema_version": "1", "event_id": "layout-oversized", "time": now.Add(-time.Second).Format(time.RFC3339Nano),
		"kind": "llm.request", "source": "direct-producer", "provider": "openai", "model": "model-a", "status": "ok",
		"labels": map[string]string{"team": "search"},
		"usage":  map[string]int64{"input_tokens": 1000, "output_tokens": 10},
	}
	base, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	// Counts in raw_usage, which enrich keeps, as digits that compress
	// about as little as text.
	counts := []byte(`{"n":[`)
	rng := rand.New(rand.NewPCG(5, 5))
	for len(base)+len(`,"raw_usage":`)+len(counts)+len(`0]}`) < 999_900-10 {
		counts = append(strconv.AppendInt(counts, 1e8+rng.Int64N(1e8), 10), ',')
	}
	ev["raw_usage"] = json.RawMessage(append(counts, "0]}"...))
	big, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return []*kgo.Record{
		{Topic: schemas.TopicRaw, Key: []byte("layout-0620"), Value: garbage},
		{Topic: schemas.TopicRaw, Key: []byte("layout-0621"), Value: big},
	}
}

// checkOversizedDeadLetters reads the dead-letter topic for the records of
// oversizedRecords: the garbage as invalid_json with its original cut to
// fit, the event as too_large, each at the offset it was written to.
func checkOversizedDeadLetters(t *testing.T, ctx context.Context, brokers []string, oversized []*kgo.Record) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(schemas.TopicDeadLetter),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	want := map[string]*kgo.Record{schemas.ReasonInvalidJSON: oversized[0], schemas.ReasonTooLarge: oversized[1]}
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for len(want) > 0 && pctx.Err() == nil {
		cl.PollFetches(pctx).EachRecord(func(r *kgo.Record) {
			var dl schemas.DeadLetter
			if err := json.Unmarshal(r.Value, &dl); err != nil {
				t.Errorf("dead letter %.200q: %v", r.Value, err)
				return
			}
			in := want[dl.Reason]
			if in == nil || dl.Partition != in.Partition || dl.Offset != in.Offset {
				return
			}
			delete(want, dl.Reason)
			if dl.Stage != "enrich" || dl.OriginalBytes != len(in.Value) || !bytes.HasPrefix(in.Value, dl.Original) || !dl.OriginalTruncated || len(dl.Original) < 500_000 {
				t.Errorf("%s dead letter: stage %s, original_bytes %d of %d, %d bytes kept, truncated %v", dl.Reason, dl.Stage, dl.OriginalBytes, len(in.Value), len(dl.Original), dl.OriginalTruncated)
			}
		})
	}
	for reason, in := range want {
		t.Errorf("no %s dead letter for the %d-byte raw record at %d@%d", reason, len(in.Value), in.Partition, in.Offset)
	}
}

// leaveGroup removes the static member id from group, as an operator does
// after stopping a static member for good.
func (l *layout) leaveGroup(group, id string) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(l.brokers...))
	if err != nil {
		l.t.Errorf("removing static member %s from group %s: %v", id, group, err)
		return
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := kadm.NewClient(cl).LeaveGroup(ctx, kadm.LeaveGroup(group).InstanceIDs(id).Reason("test done"))
	if err == nil {
		err = resp.Error()
	}
	if err != nil && !errors.Is(err, kerr.UnknownMemberID) && !errors.Is(err, kerr.GroupIDNotFound) {
		l.t.Errorf("removing static member %s from group %s: %v", id, group, err)
	}
}
