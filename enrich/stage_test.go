package enrich

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/internal/bus"
	"github.com/aivis-dev/aivis/internal/testenv"
	"github.com/aivis-dev/aivis/pricing"
	"github.com/aivis-dev/aivis/schemas"
)

// testReg holds the metrics of every stage these tests build.
var testReg = prometheus.NewRegistry()

// testDial dials the stage's consumer on addrs with extra options.
func testDial(addrs []string, extra ...kgo.Opt) Dial {
	d := bus.Dialer{Brokers: addrs, ClientID: "test", Extra: extra}
	return DialWith(d)
}

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

func rawEvent(id, model string) []byte {
	ev := llmEvent("testprov", model, usage(1_000_001, 0, 0, 0, 0))
	ev.EventID = id
	b, err := json.Marshal(ev)
	if err != nil {
		panic(err)
	}
	return b
}

// counter reads a counter from the process registry; labels are name,
// value pairs that must all match.
func counter(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := testReg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func newCluster(t *testing.T, topics ...string) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, topics...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

func newClient(t *testing.T, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func TestStage(t *testing.T) {
	addrs := newCluster(t, schemas.TopicRaw, schemas.TopicEnriched, schemas.TopicDeadLetter)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	type input struct {
		key, value []byte
		dead       string // expected dead-letter reason
	}
	inputs := []input{
		{key: []byte("01JA"), value: rawEvent("01JA", "cheap")},
		{key: []byte("01JB"), value: rawEvent("01JB", "cheap")},
		{key: []byte("01JC"), value: rawEvent("01JC", "mystery")},
		// The most web searches an event may report (schemas.MaxTokens) at
		// 0.01 USD each: 687 million USD, beyond int64 pico-USD.
		{key: []byte("01JG"), value: func() []byte {
			ev := llmEvent("testprov", "cachey", &schemas.Usage{InputTokens: schemas.Int64(1), OutputTokens: schemas.Int64(1),
				ServerToolCalls: map[string]int64{"web_search": schemas.MaxTokens}})
			ev.EventID = "01JG"
			b, _ := json.Marshal(ev)
			return b
		}()},
		{key: nil, value: rawEvent("01JD", "cheap")},
		// Priced at the standard rates, which is a fallback.
		{key: []byte("01JH"), value: func() []byte {
			ev := llmEvent("testprov", "cheap", usage(1_000_001, 0, 0, 0, 0))
			ev.EventID, ev.ServiceTier = "01JH", "warp-speed"
			b, _ := json.Marshal(ev)
			return b
		}()},
		{key: []byte("broken"), value: []byte(`{"schema_version":"1",`), dead: schemas.ReasonInvalidJSON},
		{key: []byte("01JE"), value: []byte(`{"schema_version":"1","event_id":"01JE","kind":"llm.request"}`), dead: schemas.ReasonInvalidSchema},
		{key: []byte("01JF"), value: []byte(`{"schema_version":"1","bogus":true}`), dead: schemas.ReasonInvalidJSON},
	}
	for i := 0; i < 20; i++ {
		id := "01JK" + string(rune('A'+i))
		inputs = append(inputs, input{key: []byte(id), value: rawEvent(id, "full")})
	}
	prod := newClient(t, kgo.SeedBrokers(addrs...))
	type pos struct {
		partition int32
		offset    int64
	}
	positions := map[string]pos{} // by value
	for _, in := range inputs {
		r, err := prod.ProduceSync(ctx, &kgo.Record{Topic: schemas.TopicRaw, Key: in.key, Value: in.value}).First()
		if err != nil {
			t.Fatal(err)
		}
		positions[string(in.value)] = pos{r.Partition, r.Offset}
	}

	enrichedBefore := counter(t, "aivis_enrich_events_total", "result", "enriched")
	deadBefore := counter(t, "aivis_deadletter_total", "stage", StageName, "reason", schemas.ReasonInvalidJSON)
	unpricedBefore := counter(t, "aivis_enrich_unpriced_total", "provider", "testprov", "reason", pricing.UnpricedNoPrice)
	outOfRangeBefore := counter(t, "aivis_enrich_unpriced_total", "provider", "testprov", "reason", pricing.UnpricedOutOfRange)
	tierBefore := counter(t, "aivis_enrich_pricing_fallbacks_total", "provider", "testprov", "code", pricing.WarnUnknownServiceTier)

	stage := newStage(testDial(addrs), testEnricher(t), testReg, quietLog)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- stage.Run(runCtx) }()

	out := newClient(t, kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(schemas.TopicEnriched, schemas.TopicDeadLetter),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var enriched, dead []*kgo.Record
	for len(enriched)+len(dead) < len(inputs) {
		fs := out.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("got %d enriched and %d dead letters before timing out", len(enriched), len(dead))
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Topic == schemas.TopicEnriched {
				enriched = append(enriched, r)
			} else {
				dead = append(dead, r)
			}
		})
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}

	wantDead := map[string]string{}
	for _, in := range inputs {
		if in.dead != "" {
			wantDead[string(in.value)] = in.dead
		}
	}
	if len(dead) != len(wantDead) {
		t.Errorf("got %d dead letters, want %d", len(dead), len(wantDead))
	}
	for _, r := range dead {
		var dl schemas.DeadLetter
		if err := json.Unmarshal(r.Value, &dl); err != nil {
			t.Fatal(err)
		}
		want, ok := wantDead[string(dl.Original)]
		if !ok {
			t.Errorf("unexpected dead letter for %q", dl.Original)
			continue
		}
		p := positions[string(dl.Original)]
		if dl.Reason != want || dl.Stage != StageName || dl.Topic != schemas.TopicRaw || dl.Partition != p.partition || dl.Offset != p.offset || dl.Detail == "" {
			t.Errorf("dead letter %+v, want reason %s at %d@%d", dl, want, p.partition, p.offset)
		}
	}

	seen := map[string]bool{}
	for _, r := range enriched {
		ev, err := schemas.DecodeEnriched(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		if string(r.Key) != ev.EventID {
			t.Errorf("enriched record key %q, event_id %q", r.Key, ev.EventID)
		}
		if seen[ev.EventID] {
			t.Errorf("event %s enriched twice", ev.EventID)
		}
		seen[ev.EventID] = true
		switch ev.Model {
		case "cheap":
			if ev.CostPicos != 37_500_037_500 || ev.CostSource != schemas.CostSourceCatalog {
				t.Errorf("%s: cost %d source %s", ev.EventID, ev.CostPicos, ev.CostSource)
			}
			if tiered := ev.ServiceTier != ""; tiered != (len(ev.Warnings) == 1 && strings.HasPrefix(ev.Warnings[0], pricing.WarnUnknownServiceTier+": ")) {
				t.Errorf("%s (service tier %q): warnings %q", ev.EventID, ev.ServiceTier, ev.Warnings)
			}
		case "mystery":
			if !ev.Flags.Unpriced || ev.CostSource != schemas.CostSourceNone {
				t.Errorf("%s: want unpriced, got %+v", ev.EventID, ev.Flags)
			}
		case "cachey":
			if !ev.Flags.Unpriced || ev.CostPicos != 0 || len(ev.Warnings) != 1 || !strings.HasPrefix(ev.Warnings[0], pricing.WarnCostOutOfRange+":") {
				t.Errorf("%s: want unpriced with a %s warning, got %+v, warnings %q", ev.EventID, pricing.WarnCostOutOfRange, ev.Flags, ev.Warnings)
			}
		}
	}
	if want := len(inputs) - len(wantDead); len(enriched) != want {
		t.Errorf("got %d enriched, want %d", len(enriched), want)
	}

	// Every input offset is committed: a restart would not redo the work.
	adm := kadm.NewClient(prod)
	committed, err := adm.FetchOffsets(ctx, ConsumerGroup)
	if err != nil {
		t.Fatal(err)
	}
	ends, err := adm.ListEndOffsets(ctx, schemas.TopicRaw)
	if err != nil {
		t.Fatal(err)
	}
	ends.Each(func(o kadm.ListedOffset) {
		c, ok := committed.Lookup(o.Topic, o.Partition)
		if o.Offset > 0 && (!ok || c.At != o.Offset) {
			t.Errorf("partition %d: committed %v, end offset %d", o.Partition, c.At, o.Offset)
		}
	})

	if d := counter(t, "aivis_enrich_events_total", "result", "enriched") - enrichedBefore; d != float64(len(enriched)) {
		t.Errorf("enriched metric grew by %v, want %d", d, len(enriched))
	}
	if d := counter(t, "aivis_deadletter_total", "stage", StageName, "reason", schemas.ReasonInvalidJSON) - deadBefore; d != 2 {
		t.Errorf("invalid_json dead-letter metric grew by %v, want 2", d)
	}
	if d := counter(t, "aivis_enrich_unpriced_total", "provider", "testprov", "reason", pricing.UnpricedNoPrice) - unpricedBefore; d != 1 {
		t.Errorf("unpriced no_price metric grew by %v, want 1", d)
	}
	if d := counter(t, "aivis_enrich_unpriced_total", "provider", "testprov", "reason", pricing.UnpricedOutOfRange) - outOfRangeBefore; d != 1 {
		t.Errorf("unpriced cost_out_of_range metric grew by %v, want 1", d)
	}
	if d := counter(t, "aivis_enrich_pricing_fallbacks_total", "provider", "testprov", "code", pricing.WarnUnknownServiceTier) - tierBefore; d != 1 {
		t.Errorf("unknown_service_tier fallback metric grew by %v, want 1", d)
	}
}

// TestStageHidesSecretsOfDirectProducers: a producer that writes the raw
// topic itself, bypassing ingest, may send a raw API key, a credential
// label or a credential header; enrich must not pass them on.
func TestStageHidesSecretsOfDirectProducers(t *testing.T) {
	addrs := newCluster(t, schemas.TopicRaw, schemas.TopicEnriched, schemas.TopicDeadLetter)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ev := llmEvent("testprov", "cheap", usage(10, 0, 0, 5, 0))
	ev.EventID, ev.APIKeyID = "01JS", "sk-direct-raw-key"
	ev.Labels = map[string]string{"password": "hunter2-direct", "team": "search"}
	raw, _ := json.Marshal(ev)
	prod := newClient(t, kgo.SeedBrokers(addrs...))
	// A gateway that forwards its request's headers.
	headers := []kgo.RecordHeader{{Key: "Authorization", Value: []byte("Bearer sk-direct-header")}, {Key: "traceparent", Value: []byte("00-abc-def-01")}}
	if err := prod.ProduceSync(ctx, &kgo.Record{Topic: schemas.TopicRaw, Key: []byte("01JS"), Value: raw, Headers: headers}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	stage := newStage(testDial(addrs), testEnricher(t), testReg, quietLog)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- stage.Run(runCtx) }()
	out := newClient(t, kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(schemas.TopicEnriched), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	fetches := out.PollRecords(ctx, 1)
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	recs := fetches.Records()
	if len(recs) != 1 {
		t.Fatalf("got %d enriched records (%v), want 1", len(recs), fetches.Errors())
	}
	for _, secret := range []string{"sk-direct-raw-key", "hunter2-direct"} {
		if bytes.Contains(recs[0].Value, []byte(secret)) {
			t.Errorf("enriched record carries %q: %s", secret, recs[0].Value)
		}
	}
	got := recs[0].Headers
	if len(got) != 2 || got[0].Key != "Authorization" || string(got[0].Value) != schemas.APIKeyID("Bearer sk-direct-header") ||
		got[1].Key != "traceparent" || string(got[1].Value) != "00-abc-def-01" {
		t.Errorf("enriched record headers %v, want Authorization as its APIKeyID and traceparent as sent", got)
	}
}

// TestStageProduceFailure checks that a record whose output is not
// acknowledged is never committed.
func TestStageProduceFailure(t *testing.T) {
	// No enriched topic: every enriched produce fails.
	addrs := newCluster(t, schemas.TopicRaw, schemas.TopicDeadLetter)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	prod := newClient(t, kgo.SeedBrokers(addrs...))
	if err := prod.ProduceSync(ctx, &kgo.Record{Topic: schemas.TopicRaw, Key: []byte("01JA"), Value: rawEvent("01JA", "cheap")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	stage := newStage(testDial(addrs, kgo.RecordDeliveryTimeout(time.Second)), testEnricher(t), testReg, quietLog)
	err := stage.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "producing the output of") {
		t.Fatalf("Run = %v, want a produce error", err)
	}
	if rerr := stage.Ready(); rerr == nil || rerr.Error() != err.Error() {
		t.Errorf("Ready = %v after a failed run, want its error", rerr)
	}
	committed, err := kadm.NewClient(prod).FetchOffsets(ctx, ConsumerGroup)
	if err != nil {
		t.Fatal(err)
	}
	committed.Each(func(o kadm.OffsetResponse) {
		if o.Topic == schemas.TopicRaw && o.At > 0 {
			t.Errorf("partition %d committed at %d although its output failed", o.Partition, o.At)
		}
	})
}

func TestReload(t *testing.T) {
	dir := t.TempDir()
	catPath := filepath.Join(dir, "catalog.yaml")
	good, err := os.ReadFile(testCatalog)
	if err != nil {
		t.Fatal(err)
	}
	write := func(b []byte) {
		t.Helper()
		if err := os.WriteFile(catPath, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(good)
	cfg := Config{CatalogPath: catPath, OwnersPath: "testdata/owners.yaml", ReloadInterval: 10 * time.Millisecond}
	e, err := Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.now = fixedNow
	s := newStage(nil, e, testReg, quietLog)

	errsBefore := counter(t, "aivis_enrich_reload_errors_total")
	write([]byte("catalog_version: broken\ncurrency: USD\nmodels: [{id: x, rates: {input: \"-1\"}}]\n"))
	if err := s.Reload(cfg); err == nil {
		t.Fatal("reloading a bad catalog succeeded")
	}
	if got := s.Enricher().Catalog().Version(); got != "test-1" {
		t.Errorf("after a bad reload the catalog is %q, want the previous test-1", got)
	}
	if d := counter(t, "aivis_enrich_reload_errors_total") - errsBefore; d != 1 {
		t.Errorf("reload errors grew by %v, want 1", d)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Watch(ctx, cfg) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	time.Sleep(30 * time.Millisecond) // let Watch record the current content
	write(bytes.Replace(good, []byte("catalog_version: test-1"), []byte("catalog_version: test-2"), 1))
	deadline := time.Now().Add(5 * time.Second)
	for s.Enricher().Catalog().Version() != "test-2" {
		if time.Now().After(deadline) {
			t.Fatal("Watch did not pick up the new catalog")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !s.Enricher().now().Equal(fixedNow()) {
		t.Error("reload lost the clock")
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		t.Fatal("unexpected cancel")
	}
}

// TestTransformOutputsStayIntact: transform reuses its scratch, the cost
// lines of the previous event and blocks of memory shared by many outputs;
// every output handed out must still read as the enrichment of its own
// event after later records were transformed, whatever their shapes.
func TestTransformOutputsStayIntact(t *testing.T) {
	e := testEnricher(t)
	s := &Stage{}
	events := []*schemas.Event{
		llmEvent("testprov", "cheap", usage(120000, 100000, 20000, 1800, 900)),
		llmEvent("testprov", "cheap", usage(10, 0, 0, 5, 0)),
		llmEvent("nobody", "unknown-model", usage(10, 0, 0, 5, 0)),
		llmEvent("testprov", "cheap", usage(5000, 0, 4000, 50, 0)),
	}
	var outs []*kgo.Record
	var want [][]byte
	for i := range 3 * valueBlock / 700 { // past at least two value blocks
		ev := *events[i%len(events)]
		ev.EventID = fmt.Sprintf("01JT%022d", i)
		raw, err := json.Marshal(&ev)
		if err != nil {
			t.Fatal(err)
		}
		out, res := s.transform(e, &kgo.Record{Topic: schemas.TopicRaw, Value: raw}, time.Time{})
		if res.dead != "" {
			t.Fatalf("event %d dead-lettered: %s", i, res.dead)
		}
		outs = append(outs, out)
		fresh, _ := e.enrich(&ev)
		fresh.EnrichedAt = time.Time{}
		b, _ := json.Marshal(fresh)
		want = append(want, b)
	}
	for i, out := range outs {
		var got schemas.Enriched
		if err := json.Unmarshal(out.Value, &got); err != nil {
			t.Fatalf("output %d: %v: %s", i, err, out.Value)
		}
		got.EnrichedAt = time.Time{}
		b, _ := json.Marshal(&got)
		if !bytes.Equal(b, want[i]) {
			t.Fatalf("output %d changed after later records:\ngot  %s\nwant %s", i, b, want[i])
		}
		if string(out.Key) != got.EventID {
			t.Fatalf("output %d: key %q, event id %q", i, out.Key, got.EventID)
		}
	}
}

// TestTransformStampsEachRecord runs one stage over the golden inputs
// with a clock that stays, moves on and comes back, as transform's callers
// read it once per run of records: every output must carry its own
// record's enriched_at.
func TestTransformStampsEachRecord(t *testing.T) {
	e := testEnricher(t)
	s := &Stage{log: slog.New(slog.DiscardHandler), dead: transformDead}
	at := time.Date(2026, 11, 30, 8, 0, 0, 123_000_000, time.UTC)
	clock := []time.Time{at, at, at.Add(time.Second), at, at.In(time.FixedZone("", 3600)), time.Now(), time.Now().UTC(), {}}
	var outs []*kgo.Record
	var want [][]byte
	for i, raw := range append(transformInputs(t), transformInputs(t)...) {
		stamp := clock[i%len(clock)]
		out, res := s.transform(e, &kgo.Record{Topic: schemas.TopicRaw, Value: raw}, stamp)
		ev, err := schemas.Parse(raw)
		if err == nil {
			err = ev.Validate()
		}
		if err != nil || res.dead != "" {
			continue
		}
		ev.HideSecrets()
		var w schemas.Enriched
		e.enrichInto(&w, ev, stamp)
		outs, want = append(outs, out), append(want, w.AppendJSON(nil))
	}
	if len(outs) < len(clock) {
		t.Fatalf("only %d golden inputs were enriched", len(outs))
	}
	for i, out := range outs {
		if !bytes.Equal(out.Value, want[i]) {
			t.Fatalf("output %d:\n transform %s\n encoder   %s", i, out.Value, want[i])
		}
	}
}

// TestAppendValueBeyondRoom: an output longer than the room asked for
// makes the encoder take new memory; it must still end up in a value
// block, and later outputs must not overwrite it.
func TestAppendValueBeyondRoom(t *testing.T) {
	s := &Stage{}
	fill := func(c byte, n int) func([]byte) []byte {
		return func(b []byte) []byte { return append(b, bytes.Repeat([]byte{c}, n)...) }
	}
	var outs [][]byte
	var want []string
	for i, n := range []int{valueBlock - 100, 50, 5000, 10, 3 * valueBlock, 7, valueBlock} {
		c := byte('a' + i)
		outs = append(outs, s.appendValue(64, fill(c, n)))
		want = append(want, strings.Repeat(string(c), n))
	}
	for i, out := range outs {
		if string(out) != want[i] {
			t.Fatalf("output %d: %d bytes, want %d of %q", i, len(out), len(want[i]), want[i][0])
		}
		if cap(out) != len(out) {
			t.Fatalf("output %d: capacity %d past its length %d: an append to it would write into the block", i, cap(out), len(out))
		}
	}
}

// TestTransformCopiesCanonicalHead: for an input written as AppendJSON
// writes it, transform copies the event's first members instead of
// encoding them again; its output must be byte for byte what encoding the
// enriched event gives. The golden events are tried as written (keys out
// of order, secrets to hide) and as ingest writes them.
func TestTransformCopiesCanonicalHead(t *testing.T) {
	e := testEnricher(t)
	s := &Stage{log: slog.New(slog.DiscardHandler), dead: transformDead}
	copied := 0
	for _, raw := range transformInputs(t) {
		if checkTransform(t, s, e, raw) {
			copied++
		}
	}
	if copied == 0 {
		t.Fatal("no input had its head copied")
	}
}

// FuzzTransformMatchesEncoder is TestTransformCopiesCanonicalHead on
// any input.
func FuzzTransformMatchesEncoder(f *testing.F) {
	for _, raw := range transformInputs(f) {
		f.Add(raw)
	}
	e := testEnricher(f)
	// One stage for every input, as in the stage: what its encoder keeps
	// from one record must not leak into the next.
	s := &Stage{log: slog.New(slog.DiscardHandler), dead: transformDead}
	ps := &Stage{log: slog.New(slog.DiscardHandler), dead: transformDead, protobuf: true}
	f.Fuzz(func(t *testing.T, raw []byte) {
		checkTransform(t, s, e, raw)
		checkTransform(t, ps, e, raw)
	})
}

// TestTransformProtobuf: with enrich.output_format protobuf, each output is
// AppendProto of the enrichment of its event, under the one content-type
// header that says so, whatever content type the producer sent; a JSON
// output never carries a producer's header naming protobuf, which would
// make the aggregator misread it.
func TestTransformProtobuf(t *testing.T) {
	e := testEnricher(t)
	s := &Stage{log: slog.New(slog.DiscardHandler), dead: transformDead, protobuf: true}
	for _, raw := range transformInputs(t) {
		checkTransform(t, s, e, raw)
	}
	raw := transformInputs(t)[0]
	at := time.Now().UTC()
	for _, c := range []struct {
		protobuf bool
		in, want []kgo.RecordHeader
	}{
		{true, []kgo.RecordHeader{{Key: "traceparent", Value: []byte("t")}, {Key: "Content-Type", Value: []byte("application/json")}},
			[]kgo.RecordHeader{{Key: "traceparent", Value: []byte("t")}, {Key: schemas.HeaderContentType, Value: []byte(schemas.ContentTypeProtobuf)}}},
		{false, []kgo.RecordHeader{{Key: "content-type", Value: []byte("application/x-protobuf")}, {Key: "traceparent", Value: []byte("t")}},
			[]kgo.RecordHeader{{Key: "traceparent", Value: []byte("t")}}},
		{false, []kgo.RecordHeader{{Key: "content-type", Value: []byte("application/json")}},
			[]kgo.RecordHeader{{Key: "content-type", Value: []byte("application/json")}}},
	} {
		st := &Stage{log: slog.New(slog.DiscardHandler), dead: transformDead, protobuf: c.protobuf}
		in := &kgo.Record{Topic: schemas.TopicRaw, Value: raw, Headers: slices.Clone(c.in)}
		out, res := st.transform(e, in, at)
		if res.dead != "" || !reflect.DeepEqual(out.Headers, c.want) {
			t.Errorf("protobuf %v, headers %v: got %v (%s), want %v", c.protobuf, c.in, out.Headers, res.dead, c.want)
		}
		if !reflect.DeepEqual(in.Headers, c.in) {
			t.Errorf("the input's headers changed: %v", in.Headers)
		}
	}
}

// transformInputs are the golden events as written and, once secrets are
// hidden, as AppendJSON writes them.
func transformInputs(t testing.TB) [][]byte {
	files, err := filepath.Glob("testdata/golden/*/event.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden events: %v", err)
	}
	var inputs [][]byte
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := schemas.Parse(raw)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		ev.HideSecrets()
		inputs = append(inputs, raw, ev.AppendJSON(nil))
	}
	return inputs
}

// transformDead is checkTransform's dead-letter writer.
var transformDead = bus.NewDeadLetters(StageName, prometheus.NewRegistry())

// checkTransform fails t unless s's transform output for raw is what
// encoding the enrichment of raw's event gives, or raw is dead-lettered
// when Parse or Validate refuse it. It reports whether transform copied
// raw's head.
func checkTransform(t *testing.T, s *Stage, e *Enricher, raw []byte) (copied bool) {
	t.Helper()
	defer s.reuse() // nothing holds the output after the check
	at := time.Date(2026, 11, 30, 8, 0, 0, 123_000_000, time.UTC)
	out, res := s.transform(e, &kgo.Record{Topic: schemas.TopicRaw, Value: raw}, at)
	ev, err := schemas.Parse(raw)
	if err == nil {
		err = ev.Validate()
	}
	if err != nil {
		if res.dead == "" {
			t.Fatalf("%q: enriched, but %v", raw, err)
		}
		return false
	}
	if res.dead != "" {
		t.Fatalf("%q: dead-lettered (%s), but it is valid", raw, res.dead)
	}
	ev.HideSecrets()
	var want schemas.Enriched
	e.enrichInto(&want, ev, at)
	if s.protobuf {
		if w := want.AppendProto(nil); !bytes.Equal(out.Value, w) {
			t.Fatalf("%q:\n transform %x\n encoder   %x", raw, out.Value, w)
		}
		if len(out.Headers) != 1 || !schemas.IsProtobuf(out.Headers[0].Value) {
			t.Fatalf("%q: headers %v, want the protobuf content type", raw, out.Headers)
		}
		return false
	}
	if w := want.AppendJSON(nil); !bytes.Equal(out.Value, w) {
		t.Fatalf("%q:\n transform %s\n encoder   %s", raw, out.Value, w)
	}
	_, _, copied = s.dec.CanonicalHead()
	return copied
}

// TestStageManyPolls runs the stage over polls whose outputs fill several
// value blocks each, so that later polls write into the blocks and fetch
// memory of earlier ones, and checks every output against the enrichment
// of its own event.
func TestStageManyPolls(t *testing.T) {
	addrs := newCluster(t, schemas.TopicRaw, schemas.TopicEnriched, schemas.TopicDeadLetter)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e := testEnricher(t)
	const n = 4 * defaultMaxPollRecords
	want := map[string][]byte{}
	prod := newClient(t, kgo.SeedBrokers(addrs...))
	for i := range n {
		ev := llmEvent("testprov", []string{"cheap", "full", "mystery"}[i%3], usage(int64(1000+i), 0, 0, int64(i), 0))
		ev.EventID = fmt.Sprintf("01JM%022d", i)
		raw, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		prod.Produce(ctx, &kgo.Record{Topic: schemas.TopicRaw, Key: []byte(ev.EventID), Value: raw}, func(_ *kgo.Record, err error) {
			if err != nil {
				t.Error(err)
			}
		})
		fresh, _ := e.enrich(ev)
		fresh.EnrichedAt = time.Time{}
		want[ev.EventID], _ = json.Marshal(fresh)
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	e.now = time.Now
	stage := newStage(testDial(addrs), e, prometheus.NewRegistry(), quietLog)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	started := time.Now().Truncate(time.Millisecond)
	go func() { done <- stage.Run(runCtx) }()
	out := newClient(t, kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(schemas.TopicEnriched),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	for seen := 0; seen < n; {
		fs := out.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("got %d of %d enriched events before timing out", seen, n)
		}
		fs.EachRecord(func(r *kgo.Record) {
			var got schemas.Enriched
			if err := json.Unmarshal(r.Value, &got); err != nil {
				t.Fatalf("output at %d@%d: %v: %s", r.Partition, r.Offset, err, r.Value)
			}
			// Stamped when enriched: after the stage started, before
			// the record was read back.
			if got.EnrichedAt.Before(started) || got.EnrichedAt.After(time.Now()) {
				t.Fatalf("output keyed %q: enriched_at %v, not between the start %v and now", r.Key, got.EnrichedAt, started)
			}
			got.EnrichedAt = time.Time{}
			b, _ := json.Marshal(&got)
			if w, ok := want[string(r.Key)]; !ok || !bytes.Equal(b, w) {
				t.Fatalf("output keyed %q:\ngot  %s\nwant %s", r.Key, b, w)
			}
			delete(want, string(r.Key))
			seen++
		})
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(want) != 0 {
		t.Errorf("%d events not enriched", len(want))
	}
}

// lagOf returns the partitions reg exports aivis_enrich_consumer_lag for,
// with their values, by label ("partition=0").
func lagOf(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	return testenv.Series(t, reg, "aivis_enrich_consumer_lag")
}

// TestStageLag: each replica exports the lag of the partitions it holds,
// zero once it has caught up, and forgets those it gives away, so that
// a sum of lag per replica never counts a partition twice.
func TestStageLag(t *testing.T) {
	addrs := newCluster(t, schemas.TopicRaw, schemas.TopicEnriched, schemas.TopicDeadLetter)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e := testEnricher(t)
	prod := newClient(t, kgo.SeedBrokers(addrs...))
	produce := func(from, n int) {
		t.Helper()
		for i := from; i < from+n; i++ {
			ev := llmEvent("testprov", "cheap", usage(10, 0, 0, 5, 0))
			ev.EventID = fmt.Sprintf("01JL%022d", i)
			raw, _ := json.Marshal(ev)
			prod.Produce(ctx, &kgo.Record{Topic: schemas.TopicRaw, Key: []byte(ev.EventID), Value: raw}, nil)
		}
		if err := prod.Flush(ctx); err != nil {
			t.Fatalf("producing raw events (the replicas never reached the state waited for?): %v", err)
		}
	}
	type replica struct {
		reg  *prometheus.Registry
		stop context.CancelFunc
		done chan error
	}
	start := func() *replica {
		r := &replica{reg: prometheus.NewRegistry(), done: make(chan error, 1)}
		st := newStage(testDial(addrs), e, r.reg, quietLog)
		sctx, stop := context.WithCancel(ctx)
		r.stop = stop
		go func() { r.done <- st.Run(sctx) }()
		return r
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			if ctx.Err() != nil {
				t.Fatalf("timed out waiting until %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// caughtUp: the replicas' lag series cover the 3 partitions once
	// each, all at zero.
	caughtUp := func(rs ...*replica) bool {
		seen := map[string]int{}
		for _, r := range rs {
			for p, v := range lagOf(t, r.reg) {
				if v != 0 {
					return false
				}
				seen[p]++
			}
		}
		return len(seen) == 3 && seen["partition=0"] == 1 && seen["partition=1"] == 1 && seen["partition=2"] == 1
	}

	a := start()
	produce(0, 600)
	waitFor("one replica exports lag 0 for all 3 partitions", func() bool { return caughtUp(a) })

	b := start()
	waitFor("the second replica holds a partition", func() bool {
		produce(600+int(time.Now().UnixNano()%1e6), 30)
		return len(lagOf(t, b.reg)) > 0
	})
	waitFor("the two replicas export each partition once", func() bool {
		produce(2_000_000+int(time.Now().UnixNano()%1e6), 30)
		return caughtUp(a, b)
	})

	b.stop()
	if err := <-b.done; err != nil {
		t.Fatalf("second replica: %v", err)
	}
	if lag := lagOf(t, b.reg); len(lag) != 0 {
		t.Errorf("a stopped replica still exports lag for %v", lag)
	}
	a.stop()
	if err := <-a.done; err != nil {
		t.Fatalf("first replica: %v", err)
	}
}

// TestTransformOwnersOfAStream runs one stage over a stream whose events
// repeat and vary api keys, labels (more label texts than the decoder
// keeps, some named like credentials, some in no canonical order) and GPU
// namespaces, under two sets of ownership rules in turn, and checks every
// output against attributing its event afresh: what the stage remembers
// of earlier owners must never answer for an event it does not fit.
func TestTransformOwnersOfAStream(t *testing.T) {
	first := testEnricher(t)
	path := filepath.Join(t.TempDir(), "owners.yaml")
	if err := os.WriteFile(path, []byte("trust_event_labels: false\napi_keys:\n  key-bare: {team: other}\nlabels:\n  - match: {service: checkout}\n    team: shop\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	second, err := Load(Config{CatalogPath: testCatalog, OwnersPath: path})
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{"", "key-search", "key-bare", schemas.APIKeyID("sk-unknown"), "sk-live-raw-secret-0123456789"}
	labelSets := []map[string]string{
		nil, {"team": "search"}, {"team": "search", "project": "p1"}, {"service": "checkout", "env": "prod"},
		{"service": "checkout"}, {"service": "checkout", "env": "prod", "project": "x", "cost_center": "CC-9"},
		{"api_key": "sk-in-a-label", "team": "leak"},
	}
	for i := range 150 {
		labelSets = append(labelSets, map[string]string{"team": fmt.Sprint("t", i%90), "project": fmt.Sprint("p", i)})
	}
	for _, protobuf := range []bool{false, true} {
		s := &Stage{log: slog.New(slog.DiscardHandler), dead: transformDead, protobuf: protobuf}
		for i := range 4000 {
			e := first
			if i/500%2 == 1 {
				e = second
			}
			var ev *schemas.Event
			if i%13 == 0 {
				ev = &schemas.Event{SchemaVersion: schemas.SchemaVersion, Time: testenv.EventTime, Kind: schemas.KindGPUUsage, Source: "node-1",
					GPU: &schemas.GPUUsage{GPUModel: "H100", IntervalSeconds: 60, AllocatedSeconds: 60, Namespace: []string{"", "ml-train", "web"}[i%3]}}
			} else {
				ev = llmEvent("testprov", []string{"cheap", "full"}[i%2], usage(int64(100+i), 0, 0, 10, 0))
			}
			ev.EventID = fmt.Sprintf("01JS%022d", i)
			// Runs of one owner, and owners that come back.
			ev.APIKeyID = keys[(i/3+i/7)%len(keys)]
			ev.Labels = labelSets[(i/2*7+i/11)%len(labelSets)]
			raw := ev.AppendJSON(nil)
			if i%17 == 0 && len(ev.Labels) > 1 {
				// Labels in another order: the same map, another text.
				raw, err = json.Marshal(map[string]any{"schema_version": "1", "event_id": ev.EventID, "time": ev.Time, "kind": ev.Kind,
					"source": ev.Source, "api_key_id": ev.APIKeyID, "labels": ev.Labels, "provider": ev.Provider, "model": ev.Model,
					"status": ev.Status, "usage": ev.Usage, "gpu": ev.GPU})
				if err != nil {
					t.Fatal(err)
				}
			}
			checkTransform(t, s, e, raw)
		}
	}
}

// TestTransformMixedStream runs one stage over the stream of the
// "decoder-mixed" benchmark, twice, in both output formats, and checks
// every output against the enrichment of its own event: what the stage
// keeps from earlier records must leave each output as it would be alone.
func TestTransformMixedStream(t *testing.T) {
	// The embedded catalog prices the stream's models; the test catalog
	// leaves them unpriced.
	def, err := Load(Config{OwnersPath: "testdata/owners.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	ins := mixedRecords(3000)
	for _, e := range []*Enricher{def, testEnricher(t)} {
		for _, protobuf := range []bool{false, true} {
			s := &Stage{log: slog.New(slog.DiscardHandler), dead: transformDead, protobuf: protobuf}
			for range 2 {
				for _, in := range ins {
					checkTransform(t, s, e, in.Value)
				}
			}
		}
	}
}
