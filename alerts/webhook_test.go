package alerts

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/aivis-dev/aivis/schemas"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// receiver is a webhook endpoint that answers each request with the next
// scripted status (then 200), and records the bodies it accepted.
type receiver struct {
	mu       sync.Mutex
	script   []int
	header   http.Header // extra headers on failures
	requests int
	accepted []*http.Request
	bodies   [][]byte
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	if len(r.script) > 0 {
		code := r.script[0]
		r.script = r.script[1:]
		for k, v := range r.header {
			w.Header()[k] = v
		}
		w.WriteHeader(code)
		return
	}
	r.accepted = append(r.accepted, req)
	r.bodies = append(r.bodies, body)
	w.WriteHeader(http.StatusAccepted)
}

func testConfig() Config {
	c := DefaultConfig()
	c.Backoff, c.MaxBackoff, c.RequestTimeout = time.Millisecond, 5*time.Millisecond, 2*time.Second
	return c
}

func anomaly(id, status string) schemas.Alert {
	t0 := time.Date(2026, 3, 2, 14, 0, 0, 0, time.UTC)
	return schemas.Alert{
		AlertID: "cost_anomaly:" + id, Kind: schemas.AlertCostAnomaly, WindowStart: t0, WindowEnd: t0.Add(time.Minute),
		Team: "search", Model: "gpt-4o", CostUSD: "52.1", BaselineUSD: "10.4", StddevUSD: "2.1", ZScore: 7.93,
		Observations: 120, DetectedAt: t0.Add(2 * time.Minute), IncidentID: "inc-" + id, Status: status,
		Contributors: []schemas.Contributor{{Dimension: "api_key_id", Key: "key-search-1", CostUSD: "40", BaselineUSD: "1.5"}},
	}
}

func TestGenericRetriesThenDeliversOnceSigned(t *testing.T) {
	rcv := &receiver{script: []int{503, 503}}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	reg := prometheus.NewRegistry()
	hook := Webhook{Name: "ops", Type: TypeGeneric, URL: srv.URL, Secret: "s3cret"}
	w := NewWebhooks(testConfig(), []Webhook{hook}, reg, nil)
	alerts := []schemas.Alert{anomaly("a", schemas.AlertFiring), anomaly("b", schemas.AlertFiring)}
	if err := w.Deliver(context.Background(), alerts); err != nil {
		t.Fatal(err)
	}
	if rcv.requests != 4 || len(rcv.bodies) != 2 {
		t.Fatalf("%d requests, %d accepted; want 4 requests (two 503s) and 2 accepted", rcv.requests, len(rcv.bodies))
	}
	for i, req := range rcv.accepted {
		if err := Verify("s3cret", req.Header.Get(HeaderTimestamp), req.Header.Get(HeaderSignature), rcv.bodies[i], time.Now(), 5*time.Minute); err != nil {
			t.Fatalf("delivery %d: %v", i, err)
		}
		if err := Verify("other", req.Header.Get(HeaderTimestamp), req.Header.Get(HeaderSignature), rcv.bodies[i], time.Now(), 5*time.Minute); err == nil {
			t.Fatal("a wrong secret verified")
		}
		var got schemas.Alert
		if err := json.Unmarshal(rcv.bodies[i], &got); err != nil || got.AlertID != alerts[i].AlertID || req.Header.Get(HeaderAlertID) != got.AlertID {
			t.Fatalf("delivery %d: %+v %v", i, got, err)
		}
	}
	if v := testutil.ToFloat64(w.metrics.deliveries.WithLabelValues("ops", OutcomeDelivered)); v != 2 {
		t.Fatalf("delivered = %g, want 2", v)
	}
	if v := testutil.ToFloat64(w.metrics.retries.WithLabelValues("ops")); v != 2 {
		t.Fatalf("retries = %g, want 2", v)
	}
}

func TestRetryAfterHonouredAndAttemptsBounded(t *testing.T) {
	rcv := &receiver{script: []int{429, 429, 429, 429, 429}, header: http.Header{"Retry-After": {"3"}}}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	cfg := testConfig()
	cfg.MaxBackoff = 4 * time.Second
	w := NewWebhooks(cfg, []Webhook{{Name: "slow", Type: TypeSlack, URL: srv.URL}}, nil, nil)
	var slept []time.Duration
	w.sleep = func(_ context.Context, d time.Duration) error { slept = append(slept, d); return nil }
	err := w.Deliver(context.Background(), []schemas.Alert{anomaly("a", "")})
	if err == nil || !strings.Contains(err.Error(), "429") {
		t.Fatalf("err = %v, want the 429 after giving up", err)
	}
	if rcv.requests != cfg.MaxAttempts || len(slept) != cfg.MaxAttempts-1 {
		t.Fatalf("%d requests, %d sleeps; want %d attempts", rcv.requests, len(slept), cfg.MaxAttempts)
	}
	for _, d := range slept {
		if d != 3*time.Second {
			t.Fatalf("slept %v, want Retry-After's 3s", slept)
		}
	}
	if v := testutil.ToFloat64(w.metrics.deliveries.WithLabelValues("slow", OutcomeGaveUp)); v != 1 {
		t.Fatalf("gave_up = %g", v)
	}
}

func TestPermanentRejectionIsNotRetriedAndDoesNotBlockOthers(t *testing.T) {
	bad := &receiver{script: []int{400, 400, 400}}
	good := &receiver{}
	down := httptest.NewServer(http.NotFoundHandler())
	badSrv, goodSrv := httptest.NewServer(bad), httptest.NewServer(good)
	defer badSrv.Close()
	defer goodSrv.Close()
	downURL := down.URL
	down.Close() // connection refused: a network error, retried then given up
	w := NewWebhooks(testConfig(), []Webhook{
		{Name: "bad", Type: TypeGeneric, URL: badSrv.URL, Secret: "x"},
		{Name: "down", Type: TypeGeneric, URL: downURL + "/hook?token=SECRET", Secret: "x"},
		{Name: "good", Type: TypeGeneric, URL: goodSrv.URL, Secret: "x"},
	}, nil, nil)
	err := w.Deliver(context.Background(), []schemas.Alert{anomaly("a", "")})
	if err == nil || !strings.Contains(err.Error(), "webhook bad") || !strings.Contains(err.Error(), "webhook down") {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), "SECRET") {
		t.Fatalf("the error shows the URL's token: %v", err)
	}
	if bad.requests != 1 {
		t.Fatalf("a 400 was sent %d times, want once", bad.requests)
	}
	if len(good.bodies) != 1 {
		t.Fatalf("the good receiver got %d alerts", len(good.bodies))
	}
	if v := testutil.ToFloat64(w.metrics.deliveries.WithLabelValues("bad", OutcomeRejected)); v != 1 {
		t.Fatalf("rejected = %g", v)
	}
	if v := testutil.ToFloat64(w.metrics.deliveries.WithLabelValues("down", OutcomeGaveUp)); v != 1 {
		t.Fatalf("down gave_up = %g", v)
	}
}

func TestFilters(t *testing.T) {
	rcv := &receiver{}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	w := NewWebhooks(testConfig(), []Webhook{{Name: "f", Type: TypeSlack, URL: srv.URL,
		Kinds: []string{schemas.AlertCostAnomaly}, Statuses: []string{schemas.AlertFiring, schemas.AlertResolved}}}, nil, nil)
	budget := schemas.Alert{AlertID: "budget:x", Kind: schemas.AlertBudget}
	alerts := []schemas.Alert{anomaly("a", schemas.AlertFiring), anomaly("a2", schemas.AlertUpdated), anomaly("a3", schemas.AlertResolved), anomaly("a4", ""), budget}
	if err := w.Deliver(context.Background(), alerts); err != nil {
		t.Fatal(err)
	}
	if len(rcv.bodies) != 3 {
		t.Fatalf("got %d deliveries, want firing, resolved and the one without status", len(rcv.bodies))
	}
}

func TestSlackBody(t *testing.T) {
	b, err := Body(Webhook{Type: TypeSlack}, anomaly("a", schemas.AlertFiring))
	if err != nil {
		t.Fatal(err)
	}
	var msg struct {
		Text   string `json:"text"`
		Blocks []struct {
			Type   string `json:"type"`
			Text   struct{ Text string }
			Fields []struct{ Text string }
		} `json:"blocks"`
	}
	if err := json.Unmarshal(b, &msg); err != nil {
		t.Fatal(err)
	}
	const want = "[FIRING] cost anomaly: team search, model gpt-4o spent $52.10 against a baseline of $10.40 (z 7.9)"
	if msg.Text != want || strings.Contains(msg.Text, "\n") {
		t.Fatalf("text = %q, want %q", msg.Text, want)
	}
	all := string(b)
	for _, s := range []string{"*Baseline*\\n$10.40", "*Actual*\\n$52.10", "api_key_id `key-search-1`: $40.00 (baseline $1.50)"} {
		if !strings.Contains(all, s) {
			t.Fatalf("message lacks %q:\n%s", s, all)
		}
	}
}

func TestPagerDutyBody(t *testing.T) {
	h := Webhook{Type: TypePagerDuty, RoutingKey: "R0UTING"}
	decode := func(a schemas.Alert) map[string]any {
		b, err := Body(h, a)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	fire := decode(anomaly("a", schemas.AlertFiring))
	if fire["routing_key"] != "R0UTING" || fire["event_action"] != "trigger" || fire["dedup_key"] != "inc-a" {
		t.Fatalf("trigger: %v", fire)
	}
	p := fire["payload"].(map[string]any)
	if p["severity"] != "error" || p["source"] != "aivis" || !strings.HasPrefix(p["summary"].(string), "[FIRING] cost anomaly") ||
		p["custom_details"].(map[string]any)["incident_id"] != "inc-a" {
		t.Fatalf("payload: %v", p)
	}
	if upd := decode(anomaly("a", schemas.AlertUpdated)); upd["event_action"] != "trigger" || upd["dedup_key"] != "inc-a" {
		t.Fatalf("update: %v", upd)
	}
	res := decode(anomaly("a", schemas.AlertResolved))
	if res["event_action"] != "resolve" || res["dedup_key"] != "inc-a" || res["payload"] != nil {
		t.Fatalf("resolve: %v", res)
	}
	b := decode(schemas.Alert{AlertID: "budget:m:hard", Kind: schemas.AlertBudget, BudgetID: "m", Threshold: "hard", CostUSD: "10", AmountUSD: "9"})
	if b["dedup_key"] != "budget:m:hard" || b["payload"].(map[string]any)["severity"] != "critical" {
		t.Fatalf("budget: %v", b)
	}
}

// fakeSink records what it was given and fails when told to.
type fakeSink struct {
	got [][]schemas.Alert
	err error
}

func (f *fakeSink) Publish(_ context.Context, a []schemas.Alert) error {
	f.got = append(f.got, a)
	return f.err
}

func TestFanoutQueuesForWebhooksOnceTheTopicHasThem(t *testing.T) {
	topic, hooks := &fakeSink{err: io.ErrUnexpectedEOF}, &fakeSink{err: io.ErrShortWrite}
	f := Fanout{Topic: topic, Webhooks: hooks}
	if err := f.Publish(context.Background(), []schemas.Alert{anomaly("a", "")}); err == nil || len(topic.got) != 1 || len(hooks.got) != 0 {
		t.Fatalf("topic down: err %v, topic %d, webhooks %d; want the topic's error and nothing queued", err, len(topic.got), len(hooks.got))
	}
	topic.err = nil
	// A webhook that cannot take the alert does not make the publisher
	// publish to the topic again.
	if err := f.Publish(context.Background(), []schemas.Alert{anomaly("a", "")}); err != nil || len(topic.got) != 2 || len(hooks.got) != 1 {
		t.Fatalf("topic up: err %v, topic %d, webhooks %d", err, len(topic.got), len(hooks.got))
	}
}

// Publish never waits for a receiver: with one that hangs, it returns at
// once, drops what its bounded queue cannot hold (counted, queue_full),
// and Close gives up the rest at its deadline (counted, shutdown).
func TestPublishDoesNotWaitForAHungReceiver(t *testing.T) {
	release := make(chan struct{})
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hung.Close()
	defer close(release)
	cfg := testConfig()
	cfg.QueueSize, cfg.RequestTimeout = 2, time.Minute
	w := NewWebhooks(cfg, []Webhook{{Name: "hung", Type: TypeGeneric, URL: hung.URL, Secret: "s"}}, prometheus.NewRegistry(), nil)
	start := time.Now()
	var dropped int
	for i := range 6 {
		if err := w.Publish(context.Background(), []schemas.Alert{anomaly(string(rune('a'+i)), "")}); err != nil {
			dropped++
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Publish took %s with a hung receiver", d)
	}
	// One is being delivered, two wait, the rest did not fit; the first
	// may or may not have been taken off the queue yet.
	full := testutil.ToFloat64(w.metrics.dropped.WithLabelValues("hung", DropQueueFull))
	if dropped < 3 || int(full) != dropped {
		t.Fatalf("%d Publish errors, %v counted queue_full, want 3 or 4 and equal", dropped, full)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := w.Close(ctx); err == nil {
		t.Fatal("Close met its deadline with a hung receiver")
	}
	gaveUp := testutil.ToFloat64(w.metrics.deliveries.WithLabelValues("hung", OutcomeGaveUp))
	shut := testutil.ToFloat64(w.metrics.dropped.WithLabelValues("hung", DropShutdown))
	if int(gaveUp+shut+full) != 6 {
		t.Errorf("gave up %v + dropped at shutdown %v + queue full %v, want all 6 alerts accounted for", gaveUp, shut, full)
	}
	if q := testutil.ToFloat64(w.metrics.queued.WithLabelValues("hung")); q != 0 {
		t.Errorf("queue gauge %v after Close, want 0", q)
	}
	if err := w.Publish(context.Background(), []schemas.Alert{anomaly("late", "")}); err == nil {
		t.Error("Publish after Close was accepted")
	}
}

// Close delivers what is queued before it returns: retries included, in
// order per webhook.
func TestCloseDrainsTheQueues(t *testing.T) {
	rcv := &receiver{script: []int{503, 503}}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	w := NewWebhooks(testConfig(), []Webhook{{Name: "ops", Type: TypeGeneric, URL: srv.URL, Secret: "s"}}, nil, nil)
	for _, id := range []string{"1", "2", "3"} {
		if err := w.Publish(context.Background(), []schemas.Alert{anomaly(id, schemas.AlertFiring)}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	var ids []string
	for _, r := range rcv.accepted {
		ids = append(ids, r.Header.Get(HeaderAlertID))
	}
	if strings.Join(ids, ",") != "cost_anomaly:1,cost_anomaly:2,cost_anomaly:3" || rcv.requests != 5 {
		t.Fatalf("delivered %v in %d requests, want 1,2,3 in order after two retries", ids, rcv.requests)
	}
}

func TestRetryAfterParsing(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{"": 0, "7": 7 * time.Second, "x": 0, "-1": 0,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second} {
		if got := retryAfter(v, now); got != want {
			t.Errorf("retryAfter(%q) = %v, want %v", v, got, want)
		}
	}
}

func TestSavingsSummary(t *testing.T) {
	a := schemas.Alert{AlertID: "savings:abc:2025-11-11", Kind: schemas.AlertSavings, Category: schemas.CategorySavings,
		Scope: "prompt_caching team=support model=anthropic/claude-sonnet-4-5", CostUSD: "9", AmountUSD: "135.65",
		WindowStart: time.Date(2025, 11, 10, 0, 0, 0, 0, time.UTC), WindowEnd: time.Date(2025, 11, 11, 0, 0, 0, 0, time.UTC)}
	const want = "[SAVINGS] prompt_caching team=support model=anthropic/claude-sonnet-4-5: about $135.65 a month ($9.00 over 2025-11-10 – 2025-11-11)"
	if got := Summary(a); got != want {
		t.Errorf("Summary = %q, want %q", got, want)
	}
	b, err := Body(Webhook{Type: TypeSlack}, a)
	if err != nil || !strings.Contains(string(b), "*Monthly saving*\\n$135.65") {
		t.Errorf("slack body %s, %v", b, err)
	}
	if severity(a) != "info" {
		t.Errorf("severity %s, want info", severity(a))
	}
}
