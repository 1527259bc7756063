package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/schemas"
	chsink "github.com/aivis-dev/aivis/sinks/clickhouse"
)

// stop sends SIGTERM to one process and requires exit status 0.
func (l *layout) stop(name string) {
	l.t.Helper()
	_ = l.procs[name].cmd.Process.Signal(syscall.SIGTERM)
	l.waitExit(name)
}

// TestProductionLayoutSwitchesToProtobuf switches a running pipeline's
// enriched topic from JSON to protobuf as an operator would: enrich is
// restarted with enrich.output_format: protobuf while two aggregate
// replicas keep running. The topic then holds both forms, including
// protobuf copies of events first enriched as JSON (resent by the
// producer); the totals in cost_by_window must be exact, each event counted
// once, and `aivis verify` must pass.
func TestProductionLayoutSwitchesToProtobuf(t *testing.T) {
	l := newLayout(t, 6)
	l.start("ingest", "ingest")
	l.start("enrich", "enrich")
	for _, id := range []string{"a1", "a2"} {
		l.start("aggregate-"+id, "aggregate", "--aggregate.instance_id", id)
	}
	for name := range l.procs {
		l.waitReady(name, 60*time.Second)
	}

	now := time.Now().UTC()
	want := map[string]*e2eTotal{}
	const n = 400
	var lines [][]byte
	for i := range n {
		model := []string{"model-a", "model-b"}[i%2]
		team := []string{"search", "chat", "ops"}[i%3]
		in, read, out := int64(1000+7*i), int64(i%400), int64(1+i%300)
		b, _ := json.Marshal(map[string]any{
			"schema_version": "1", "event_id": fmt.Sprintf("proto-%04d", i), "time": now.Add(-time.Duration(n-i) * 100 * time.Millisecond).Format(time.RFC3339Nano),
			"kind": "llm.request", "source": "proto-gateway", "provider": map[string]string{"model-a": "openai", "model-b": "anthropic"}[model],
			"model": model, "status": "ok", "labels": map[string]string{"team": team, "project": "p" + fmt.Sprint(i%4)},
			"usage": map[string]int64{"input_tokens": in, "cache_read_input_tokens": read, "output_tokens": out},
		})
		lines = append(lines, b)
		addExpected(want, model, team, in, read, 0, out)
	}
	first, second := lines[:n/2], lines[n/2:]
	l.post(first)
	waitRecords(t, l, int64(len(first)))
	l.stop("enrich")

	l.start("enrich-protobuf", "enrich", "--enrich.output_format", "protobuf")
	l.waitReady("enrich-protobuf", 60*time.Second)
	l.waitLog("enrich-protobuf", "msg=\"writing enriched events\" stage=enrich topic="+schemas.TopicEnriched+" format=protobuf", 10*time.Second)
	// Resent events of the first half, now enriched as protobuf.
	var resent [][]byte
	for i := 0; i < len(first); i += 4 {
		resent = append(resent, first[i])
	}
	l.post(append(second, resent...))
	waitRecords(t, l, int64(len(lines)+len(resent)))

	cfg := chsink.DefaultConfig()
	cfg.Addr, cfg.Database = l.chAddr, l.db
	store, err := chsink.Open(l.ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		var sum int64
		for _, g := range layoutTotals(t, l.ctx, store) {
			sum += g.Requests
		}
		if sum >= n || time.Now().After(deadline) {
			break
		}
	}
	l.stopAll()

	got := layoutTotals(t, l.ctx, store)
	if len(got) != len(want) {
		t.Errorf("got %d (model, team) groups, want %d: %v", len(got), len(want), keys(got))
	}
	for k, w := range want {
		if g := got[k]; g == nil || *g != *w {
			t.Errorf("%s: got %+v, want %+v", k, g, *w)
		}
	}
	jsonRecs, protoRecs := enrichedForms(t, l.ctx, l.brokers)
	if jsonRecs != len(first) || protoRecs != len(second)+len(resent) {
		t.Errorf("the enriched topic holds %d JSON and %d protobuf records, want %d and %d", jsonRecs, protoRecs, len(first), len(second)+len(resent))
	}
	verify := exec.Command(l.bin, "verify", "--config", l.config,
		"--from", now.Add(-2*time.Hour).Format(time.RFC3339), "--to", now.Add(time.Hour).Format(time.RFC3339))
	if out, err := verify.CombinedOutput(); err != nil {
		t.Errorf("aivis verify: %v\n%s", err, out)
	}
}

// waitRecords waits until the enriched topic holds n records.
func waitRecords(t *testing.T, l *layout, n int64) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); recordsIn(t, l.brokers, schemas.TopicEnriched) < n; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the enriched topic holds %d of %d records", recordsIn(t, l.brokers, schemas.TopicEnriched), n)
		}
	}
}

// enrichedForms reads the whole enriched topic and counts its records by
// form, requiring each to decode as the form its header names.
func enrichedForms(t *testing.T, ctx context.Context, brokers []string) (jsonRecs, protoRecs int) {
	t.Helper()
	total := recordsIn(t, brokers, schemas.TopicEnriched)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(schemas.TopicEnriched), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var d schemas.Decoder
	var e schemas.Enriched
	for int64(jsonRecs+protoRecs) < total {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of the enriched topic's %d records", jsonRecs+protoRecs, total)
		}
		fs.EachRecord(func(r *kgo.Record) {
			var err error
			if len(r.Headers) == 1 && r.Headers[0].Key == schemas.HeaderContentType && schemas.IsProtobuf(r.Headers[0].Value) {
				protoRecs++
				err = d.EnrichedProto(r.Value, &e)
			} else {
				jsonRecs++
				err = d.Enriched(r.Value, &e)
			}
			if err != nil || string(r.Key) != e.EventID || e.Owner.Team == "" {
				t.Errorf("record %d@%d (headers %v): %v, event %q, team %q", r.Partition, r.Offset, r.Headers, err, e.EventID, e.Owner.Team)
			}
		})
	}
	return jsonRecs, protoRecs
}
