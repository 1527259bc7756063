package aggregate_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/aggregate"
	"github.com/aivis-dev/aivis/alerts"
	"github.com/aivis-dev/aivis/internal/testenv"
	"github.com/aivis-dev/aivis/schemas"
	chsink "github.com/aivis-dev/aivis/sinks/clickhouse"
)

// flakyReceiver is a generic webhook receiver that answers 503 to its
// first requests, then verifies each delivery's signature and records it.
type flakyReceiver struct {
	mu       sync.Mutex
	failures int
	secret   string
	requests int
	got      []schemas.Alert
	bad      []string
}

func (r *flakyReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	if r.failures > 0 {
		r.failures--
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	if err := alerts.Verify(r.secret, req.Header.Get(alerts.HeaderTimestamp), req.Header.Get(alerts.HeaderSignature), body, time.Now(), time.Minute); err != nil {
		r.bad = append(r.bad, err.Error())
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var a schemas.Alert
	if err := json.Unmarshal(body, &a); err != nil {
		r.bad = append(r.bad, err.Error())
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	r.got = append(r.got, a)
	w.WriteHeader(http.StatusNoContent)
}

func alertStatuses(as []schemas.Alert) string {
	var out []string
	for _, a := range as {
		out = append(out, a.Status)
	}
	return strings.Join(out, ",")
}

// TestSustainedAnomalyReachesTheTopicAndAWebhookOnce runs the real scorer
// pass by pass over windows written to ClickHouse, publishing through the
// same topic-first fan-out as the pipeline to aivis.alerts.v1 on a Kafka
// broker and to a generic webhook on a real HTTP receiver that fails its
// first requests. A sustained anomaly gives exactly one firing and one
// resolved alert, of one incident, at both; the receiver's failures are
// retried without the scorer waiting for them.
func TestSustainedAnomalyReachesTheTopicAndAWebhookOnce(t *testing.T) {
	seeds := testenv.Kafka(t)
	addr, db := testenv.ClickHouseDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cfg := chsink.DefaultConfig()
	cfg.Addr, cfg.Database = addr, db
	store, err := chsink.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if _, err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}

	// A topic of this test's own: the end-to-end tests of other packages
	// delete and recreate aivis.alerts.v1 on the same broker.
	topic := fmt.Sprintf("%s.test-%d", schemas.TopicAlerts, time.Now().UnixNano())
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, topic); err != nil {
		t.Fatalf("creating %s: %v", topic, err)
	}
	defer adm.DeleteTopics(context.Background(), topic)
	// A topic just created may be listed without its partition (-1, an
	// unknown-topic error) until the broker's metadata has it.
	var before kadm.ListedOffsets
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		before, err = adm.ListEndOffsets(ctx, topic)
		if err == nil && before.Error() == nil && len(before[topic]) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("listing the end offsets of %s: %v %v", topic, err, before.Error())
		}
	}

	rcv := &flakyReceiver{failures: 3, secret: "e2e-secret"}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	acfg := alerts.DefaultConfig()
	acfg.Backoff, acfg.MaxBackoff, acfg.MaxAttempts = 200*time.Millisecond, time.Second, 5
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	hooks := alerts.NewWebhooks(acfg, []alerts.Webhook{{Name: "ops", Type: alerts.TypeGeneric, URL: srv.URL, Secret: rcv.secret}}, prometheus.NewRegistry(), quiet)
	sink := alerts.Fanout{Topic: aggregate.KafkaAlerts{Client: cl, Topic: topic}, Webhooks: hooks}

	scfg := aggregate.DefaultAnomalyConfig()
	scfg.MinHistory, scfg.ResolveWindows = 30, 5
	scfg.SettleWindows, scfg.RescoreWindows = 0, 5
	scorer := aggregate.NewScorer(scfg, time.Minute, store, sink, nil, quiet)
	write := runawayWindows(ctx, t, store)
	for i := 0; i < 75; i++ {
		write(i)
		start := time.Now()
		if _, err := scorer.ScoreOnce(ctx); err != nil {
			t.Fatalf("pass at window %d: %v", i, err)
		}
		// A pass reads ClickHouse; a receiver's retries (200ms and more
		// each) must not be in it.
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("pass at window %d took %s", i, d)
		}
	}
	dctx, dcancel := context.WithTimeout(ctx, 30*time.Second)
	defer dcancel()
	if err := hooks.Close(dctx); err != nil {
		t.Fatalf("draining the webhook: %v", err)
	}

	var onTopic []schemas.Alert
	offsets := map[string]map[int32]kgo.Offset{topic: {}}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	before.Each(func(o kadm.ListedOffset) {
		offsets[topic][o.Partition] = kgo.NewOffset().At(o.Offset)
		if e, ok := ends.Lookup(topic, o.Partition); ok {
			want += int(e.Offset - o.Offset)
		}
	})
	rd, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumePartitions(offsets))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	for len(onTopic) < want {
		fs := rd.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d alerts from the topic: %v", len(onTopic), want, ctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) {
			var a schemas.Alert
			if err := json.Unmarshal(r.Value, &a); err != nil {
				t.Fatal(err)
			}
			onTopic = append(onTopic, a)
		})
	}
	if got := alertStatuses(onTopic); got != "firing,resolved" || onTopic[0].IncidentID != onTopic[1].IncidentID {
		t.Fatalf("alerts on the topic: %s, want firing,resolved of one incident: %+v", got, onTopic)
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if len(rcv.bad) > 0 {
		t.Errorf("receiver refused deliveries: %v", rcv.bad)
	}
	if got := alertStatuses(rcv.got); got != "firing,resolved" {
		t.Fatalf("alerts at the webhook: %s, want firing,resolved: %+v", got, rcv.got)
	}
	for i, a := range rcv.got {
		if a.AlertID != onTopic[i].AlertID || a.IncidentID != onTopic[0].IncidentID {
			t.Errorf("webhook alert %d is %s of %s, topic has %s of %s", i, a.AlertID, a.IncidentID, onTopic[i].AlertID, onTopic[i].IncidentID)
		}
	}
	if rcv.requests != 2+3 {
		t.Errorf("receiver saw %d requests, want 5 (2 alerts, 3 refused and retried)", rcv.requests)
	}
	if f := rcv.got[0]; len(f.Contributors) == 0 || f.Contributors[0].Key != "k-runaway" {
		t.Errorf("firing contributors %+v, want k-runaway first", f.Contributors)
	}
}
