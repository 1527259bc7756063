package ingest

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// fakeClock is a settable clock for limits.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

func TestTokenBucket(t *testing.T) {
	type step struct {
		after    time.Duration // clock advance before this step
		n        int
		wantWait time.Duration
		refund   int // given back after the step
	}
	tests := []struct {
		name  string
		rate  float64
		burst int
		steps []step
	}{
		{name: "starts full, then refills at rate", rate: 10, burst: 20, steps: []step{
			{n: 20},
			{n: 1, wantWait: 100 * time.Millisecond},
			{after: 500 * time.Millisecond, n: 5},
			{n: 10, wantWait: time.Second},
			{after: 10 * time.Second, n: 20}, // refilled to burst, never above
			{n: 1, wantWait: 100 * time.Millisecond},
		}},
		{name: "fractional rate", rate: 0.5, burst: 1, steps: []step{
			{n: 1},
			{n: 1, wantWait: 2 * time.Second},
			{after: 1500 * time.Millisecond, n: 1, wantWait: 500 * time.Millisecond},
			{after: 500 * time.Millisecond, n: 1},
		}},
		{name: "refund gives tokens back, capped at burst", rate: 1, burst: 10, steps: []step{
			{n: 10, refund: 4},
			{n: 4},
			{n: 1, wantWait: time.Second, refund: 100},
			{n: 10},
		}},
		{name: "clock stepping back earns nothing", rate: 1, burst: 2, steps: []step{
			{n: 2},
			{after: -time.Hour, n: 1, wantWait: time.Second},
			{after: time.Hour + time.Second, n: 1},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := t0
			b := newTokenBucket(tt.rate, tt.burst, now)
			for i, s := range tt.steps {
				now = now.Add(s.after)
				got := b.wait(now, s.n)
				if got != s.wantWait {
					t.Fatalf("step %d: wait(%d) = %s, want %s (tokens %.2f)", i, s.n, got, s.wantWait, b.tokens)
				}
				if got == 0 {
					b.take(s.n)
				}
				if s.refund > 0 {
					b.refund(s.refund)
				}
			}
		})
	}
}

func TestDailyQuota(t *testing.T) {
	late := time.Date(2026, 3, 2, 23, 59, 30, 0, time.UTC)
	q := &dailyQuota{max: 100, day: utcDay(late)}
	if d := q.wait(late, 90); d != 0 {
		t.Fatalf("90 of 100: wait %s", d)
	}
	q.take(90)
	if d := q.wait(late, 10); d != 0 {
		t.Fatalf("exactly the quota: wait %s", d)
	}
	if d := q.wait(late, 11); d != 30*time.Second {
		t.Fatalf("over the quota 30s before midnight: wait %s, want 30s", d)
	}
	// A UTC day, whatever the caller's zone.
	paris := late.In(time.FixedZone("CET", 3600))
	if d := q.wait(paris, 11); d != 30*time.Second {
		t.Fatalf("same instant in another zone: wait %s", d)
	}
	day := q.day
	midnight := late.Add(30 * time.Second)
	if d := q.wait(midnight, 100); d != 0 || q.used != 0 {
		t.Fatalf("after rollover: wait %s, used %d; want a fresh day", d, q.used)
	}
	q.take(60)
	// A refund of yesterday's events leaves today's count alone.
	q.refund(day, 90)
	if q.used != 60 {
		t.Fatalf("refund across days changed today's count to %d", q.used)
	}
	q.refund(q.day, 100)
	if q.used != 0 {
		t.Fatalf("refund below zero: used %d", q.used)
	}
	if utcDay(time.Date(1969, 12, 31, 23, 0, 0, 0, time.UTC)) != -1 {
		t.Fatal("utcDay before the epoch")
	}
}

func TestProducerLimitResolution(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxEventsPerRequest = 500
	cfg.DefaultRateEventsPerSecond = 100
	cfg.DefaultMaxEventsPerDay = 1000
	tests := []struct {
		name      string
		defBurst  int
		p         ProducerToken
		wantRate  float64
		wantBurst int
		wantQuota int64
	}{
		{name: "defaults, burst covers one request", p: ProducerToken{}, wantRate: 100, wantBurst: 500, wantQuota: 1000},
		{name: "default burst", defBurst: 50, p: ProducerToken{}, wantRate: 100, wantBurst: 50, wantQuota: 1000},
		{name: "own rate, burst one second", p: ProducerToken{RateEventsPerSecond: 2000}, wantRate: 2000, wantBurst: 2000, wantQuota: 1000},
		{name: "own everything", p: ProducerToken{RateEventsPerSecond: 5, BurstEvents: 7, MaxEventsPerDay: 9}, wantRate: 5, wantBurst: 7, wantQuota: 9},
		{name: "exempt", p: ProducerToken{RateEventsPerSecond: -1, MaxEventsPerDay: -1}, wantRate: 0, wantBurst: 0, wantQuota: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cfg
			c.DefaultBurstEvents = tt.defBurst
			rate, burst := c.producerRate(tt.p)
			if rate != tt.wantRate || burst != tt.wantBurst || c.producerQuota(tt.p) != tt.wantQuota {
				t.Fatalf("rate %v burst %d quota %d, want %v %d %d", rate, burst, c.producerQuota(tt.p), tt.wantRate, tt.wantBurst, tt.wantQuota)
			}
		})
	}
}

func TestConfigValidateLimits(t *testing.T) {
	good := HashToken("t1")
	cfg := DefaultConfig()
	cfg.DefaultRateEventsPerSecond = -1
	cfg.DefaultBurstEvents = -2
	cfg.DefaultMaxEventsPerDay = -3
	cfg.Producers = []ProducerToken{
		{Name: "a", TokenSHA256: good, RateEventsPerSecond: -2, BurstEvents: -1, MaxEventsPerDay: -2},
		{Name: "b", TokenSHA256: HashToken("t2"), RateEventsPerSecond: -1, BurstEvents: 10},
	}
	want := []string{
		"ingest.default_rate_events_per_second: must be 0 (unlimited) or positive",
		"ingest.default_burst_events: must be 0",
		"ingest.default_max_events_per_day: must be 0 (unlimited) or positive",
		"ingest.producers[0].rate_events_per_second: must be positive, 0",
		"ingest.producers[0].burst_events: must be 0",
		"ingest.producers[0].max_events_per_day: must be positive, 0",
		"ingest.producers[1].burst_events: has no effect",
	}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("Validate passed")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(lines), len(want), err)
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) {
			t.Errorf("problem %d = %q, want it to contain %q", i, lines[i], w)
		}
	}

	cfg = DefaultConfig()
	cfg.AllowAnonymous = true
	cfg.DefaultBurstEvents = 10
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "ingest.default_burst_events: has no effect") {
		t.Fatalf("default burst without a default rate: %v", err)
	}
}

// limitedServer returns a server whose limits run on clk.
func limitedServer(t *testing.T, cfg Config, p Producer, clk *fakeClock) *Server {
	t.Helper()
	s := newTestServer(t, cfg, p)
	s.admission = newAdmission(cfg, s.auth, clk.Now)
	return s
}

// counterValue reads a counter of testRegistry; 0 when absent.
func counterValue(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := testRegistry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func events(ids ...string) string {
	var b strings.Builder
	for _, id := range ids {
		b.WriteString(event(id) + "\n")
	}
	return b.String()
}

func TestHandlerRateLimit(t *testing.T) {
	cfg := testConfig()
	cfg.Producers[0].RateEventsPerSecond = 2
	cfg.Producers[0].BurstEvents = 4
	clk := &fakeClock{t: t0}
	p := &fakeProducer{}
	h := limitedServer(t, cfg, p, clk).Handler()
	metric := map[string]string{"producer": "gw-eu", "limit": limitRate}
	before := counterValue(t, "aivis_ingest_rate_limited_total", metric)

	if rec, _ := (call{body: events("a", "b", "c"), token: testToken}).do(t, h); rec.Code != http.StatusAccepted {
		t.Fatalf("within the burst: %d %s", rec.Code, rec.Body)
	}
	// One token left: two events must wait half a second, rounded up to 1.
	rec, resp := call{body: events("d", "e"), token: testToken}.do(t, h)
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("over the rate: %d Retry-After %q; body %s", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
	if resp.Code != codeRateLimited || resp.Limit != limitRate || resp.Producer != "gw-eu" || resp.Accepted != 0 || resp.Rejected != 2 ||
		!strings.Contains(resp.Message, "ingest.producers[0].rate_events_per_second") || resp.Error != resp.Message {
		t.Fatalf("429 body %+v", resp)
	}
	if got := counterValue(t, "aivis_ingest_rate_limited_total", metric) - before; got != 1 {
		t.Errorf("rate_limited_total rose by %v, want 1", got)
	}
	// The refused request took nothing: one event still fits.
	if rec, _ := (call{body: events("f"), token: testToken}).do(t, h); rec.Code != http.StatusAccepted {
		t.Fatalf("the remaining token: %d %s", rec.Code, rec.Body)
	}
	// The bucket is empty: refused before the body is read.
	if rec, resp := (call{body: events("g"), token: testToken}).do(t, h); rec.Code != http.StatusTooManyRequests || resp.Rejected != 0 {
		t.Fatalf("empty bucket: %d %+v", rec.Code, resp)
	}
	clk.Add(time.Second)
	if rec, _ := (call{body: events("d", "e"), token: testToken}).do(t, h); rec.Code != http.StatusAccepted {
		t.Fatalf("after refilling: %d %s", rec.Code, rec.Body)
	}
	// More events than the burst can never pass: 413, no Retry-After.
	clk.Add(time.Hour)
	rec, resp = call{body: events("1", "2", "3", "4", "5"), token: testToken}.do(t, h)
	if rec.Code != http.StatusRequestEntityTooLarge || resp.Code != codeTooManyEvents || resp.Limit != limitBurst || rec.Header().Get("Retry-After") != "" {
		t.Fatalf("over the burst: %d Retry-After %q %+v", rec.Code, rec.Header().Get("Retry-After"), resp)
	}
	var keys []string
	for _, r := range p.records() {
		keys = append(keys, string(r.Key))
	}
	if got := strings.Join(keys, ","); got != "a,b,c,f,d,e" {
		t.Fatalf("produced %s, want a,b,c,f,d,e", got)
	}
}

func TestHandlerDailyQuota(t *testing.T) {
	cfg := testConfig()
	cfg.DefaultMaxEventsPerDay = 5
	clk := &fakeClock{t: time.Date(2026, 3, 2, 23, 0, 0, 0, time.UTC)}
	p := &fakeProducer{}
	h := limitedServer(t, cfg, p, clk).Handler()

	if rec, _ := (call{body: events("a", "b", "c"), token: testToken}).do(t, h); rec.Code != http.StatusAccepted {
		t.Fatalf("within the quota: %d %s", rec.Code, rec.Body)
	}
	clk.Add(59*time.Minute + 30*time.Second)
	rec, resp := call{body: events("d", "e", "f"), token: testToken}.do(t, h)
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "30" {
		t.Fatalf("over the quota: %d Retry-After %q, want 429 and 30 s to midnight; body %s", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
	if resp.Code != codeQuotaExceeded || resp.Limit != limitQuota || resp.Producer != "gw-eu" ||
		!strings.Contains(resp.Message, "ingest.default_max_events_per_day") {
		t.Fatalf("429 body %+v", resp)
	}
	if rec, _ := (call{body: events("d", "e"), token: testToken}).do(t, h); rec.Code != http.StatusAccepted {
		t.Fatalf("exactly the quota: %d %s", rec.Code, rec.Body)
	}
	clk.Add(30 * time.Second) // 00:00 UTC
	if rec, _ := (call{body: events("g", "h", "i", "j", "k"), token: testToken}).do(t, h); rec.Code != http.StatusAccepted {
		t.Fatalf("next UTC day: %d %s", rec.Code, rec.Body)
	}
	if n := len(p.records()); n != 10 {
		t.Fatalf("produced %d events, want 10", n)
	}
	clk.Add(24 * time.Hour)
	if rec, resp := (call{body: events(strings.Split("1 2 3 4 5 6", " ")...), token: testToken}).do(t, h); rec.Code != http.StatusRequestEntityTooLarge || resp.Limit != limitQuota {
		t.Fatalf("more than a day's quota in one request: %d %+v", rec.Code, resp)
	}
}

// A failed produce gives its tokens and quota back: the client's resend is
// what counts.
func TestHandlerLimitRefund(t *testing.T) {
	cfg := testConfig()
	cfg.Producers[0].RateEventsPerSecond = 1
	cfg.Producers[0].BurstEvents = 3
	cfg.Producers[0].MaxEventsPerDay = 3
	clk := &fakeClock{t: t0}
	p := &fakeProducer{err: kerr.NotEnoughReplicas}
	h := limitedServer(t, cfg, p, clk).Handler()
	if rec, _ := (call{body: events("a", "b", "c"), token: testToken}).do(t, h); rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("failing producer: %d %s", rec.Code, rec.Body)
	}
	p.mu.Lock()
	p.err = nil
	p.mu.Unlock()
	if rec, _ := (call{body: events("a", "b", "c"), token: testToken}).do(t, h); rec.Code != http.StatusAccepted {
		t.Fatalf("resend after a failed produce: %d %s", rec.Code, rec.Body)
	}
}

// Anonymous requests get the default limits; producers with their own
// limits or -1 are not held to them.
func TestHandlerDefaultLimits(t *testing.T) {
	cfg := testConfig()
	cfg.Producers = nil
	cfg.AllowAnonymous = true
	cfg.DefaultRateEventsPerSecond = 1
	cfg.DefaultBurstEvents = 2
	clk := &fakeClock{t: t0}
	h := limitedServer(t, cfg, &fakeProducer{}, clk).Handler()
	if rec, _ := (call{body: events("a", "b")}).do(t, h); rec.Code != http.StatusAccepted {
		t.Fatalf("anonymous within the default: %d", rec.Code)
	}
	if rec, resp := (call{body: events("c")}).do(t, h); rec.Code != http.StatusTooManyRequests || resp.Producer != "anonymous" ||
		!strings.Contains(resp.Message, "ingest.default_rate_events_per_second") {
		t.Fatalf("anonymous over the default: %d %+v", rec.Code, resp)
	}

	cfg = testConfig()
	cfg.DefaultRateEventsPerSecond = 1
	cfg.DefaultBurstEvents = 1
	cfg.Producers[0].RateEventsPerSecond = -1
	h = limitedServer(t, cfg, &fakeProducer{}, clk).Handler()
	for range 3 {
		if rec, _ := (call{body: events("a", "b", "c"), token: testToken}).do(t, h); rec.Code != http.StatusAccepted {
			t.Fatalf("exempt producer: %d %s", rec.Code, rec.Body)
		}
	}
}
