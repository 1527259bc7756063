package ingest

import (
	"fmt"
	"math"
	"net/http"
	"sync"
	"time"
)

// Per-producer admission: a token bucket on events (rate_events_per_second,
// burst_events) and a quota of events per UTC day (max_events_per_day), both
// in this process's memory, so per ingest replica.
//
// Only valid events that are about to be produced count. Tokens and quota
// are taken before producing, so that concurrent requests cannot overshoot,
// and given back when the produce fails or times out: the client is told to
// resend, and the resend is what should count. A timed-out produce that
// Kafka stored after all is then not counted; its resend is dropped as a
// duplicate downstream, so the events are counted once either way.

// Names of the limits, as reported in 429/413 bodies and in the limit label
// of aivis_ingest_rate_limited_total.
const (
	limitRate  = "rate_events_per_second"
	limitBurst = "burst_events"
	limitQuota = "max_events_per_day"
)

// limitProblems validates the rate limit and quota keys.
func (c Config) limitProblems() []error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("ingest.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if r := c.DefaultRateEventsPerSecond; r < 0 || math.IsNaN(r) || math.IsInf(r, 0) {
		add("default_rate_events_per_second", "must be 0 (unlimited) or positive, got %v", r)
	}
	if c.DefaultBurstEvents < 0 {
		add("default_burst_events", "must be 0 (derived from the rate) or positive, got %d", c.DefaultBurstEvents)
	}
	if c.DefaultBurstEvents > 0 && c.DefaultRateEventsPerSecond == 0 {
		add("default_burst_events", "has no effect without ingest.default_rate_events_per_second; set that too or remove it")
	}
	if c.DefaultMaxEventsPerDay < 0 {
		add("default_max_events_per_day", "must be 0 (unlimited) or positive, got %d", c.DefaultMaxEventsPerDay)
	}
	for i, p := range c.Producers {
		key := fmt.Sprintf("producers[%d]", i)
		if r := p.RateEventsPerSecond; (r < 0 && r != -1) || math.IsNaN(r) || math.IsInf(r, 0) {
			add(key+".rate_events_per_second", "must be positive, 0 (use ingest.default_rate_events_per_second) or -1 (unlimited), got %v", r)
		}
		if p.BurstEvents < 0 {
			add(key+".burst_events", "must be 0 (use the default) or positive, got %d", p.BurstEvents)
		}
		if rate, _ := c.producerRate(p); p.BurstEvents > 0 && rate == 0 {
			add(key+".burst_events", "has no effect: this producer has no rate limit; set rate_events_per_second or remove burst_events")
		}
		if p.MaxEventsPerDay < -1 {
			add(key+".max_events_per_day", "must be positive, 0 (use ingest.default_max_events_per_day) or -1 (unlimited), got %d", p.MaxEventsPerDay)
		}
	}
	return errs
}

// producerRate returns the rate (0: unlimited) and burst that apply to p.
func (c Config) producerRate(p ProducerToken) (float64, int) {
	rate, burst := p.RateEventsPerSecond, p.BurstEvents
	switch {
	case rate < 0:
		return 0, 0
	case rate == 0:
		rate = c.DefaultRateEventsPerSecond
	}
	if burst == 0 {
		burst = c.DefaultBurstEvents
	}
	if rate > 0 && burst == 0 {
		// One second of rate, and never less than one whole request.
		burst = max(int(math.Ceil(rate)), c.MaxEventsPerRequest)
	}
	return rate, burst
}

// producerQuota returns the daily quota that applies to p; 0 is unlimited.
func (c Config) producerQuota(p ProducerToken) int64 {
	switch {
	case p.MaxEventsPerDay < 0:
		return 0
	case p.MaxEventsPerDay == 0:
		return c.DefaultMaxEventsPerDay
	}
	return p.MaxEventsPerDay
}

// tokenBucket holds up to burst tokens and gains rate tokens per second;
// one token admits one event. It is not safe for concurrent use.
type tokenBucket struct {
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

// newTokenBucket returns a full bucket.
func newTokenBucket(rate float64, burst int, now time.Time) *tokenBucket {
	return &tokenBucket{rate: rate, burst: float64(burst), tokens: float64(burst), last: now}
}

// advance adds the tokens earned since the last call. A clock that steps
// back earns nothing until it has caught up.
func (b *tokenBucket) advance(now time.Time) {
	if now.After(b.last) {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
		b.last = now
	}
}

// wait returns how long until n tokens are available, 0 when they are now.
// n must not exceed burst.
func (b *tokenBucket) wait(now time.Time, n int) time.Duration {
	b.advance(now)
	missing := float64(n) - b.tokens
	if missing <= 0 {
		return 0
	}
	// Capped so that a tiny rate cannot overflow the Duration.
	return time.Duration(math.Ceil(min(missing/b.rate, 366*86400) * float64(time.Second)))
}

func (b *tokenBucket) take(n int) { b.tokens -= float64(n) }

// refund gives back n tokens taken earlier.
func (b *tokenBucket) refund(n int) { b.tokens = min(b.burst, b.tokens+float64(n)) }

// dailyQuota counts events per UTC day. It is not safe for concurrent use.
type dailyQuota struct {
	max  int64
	day  int64 // days since the Unix epoch, UTC
	used int64
}

// utcDay numbers the UTC day of t.
func utcDay(t time.Time) int64 {
	return int64(math.Floor(float64(t.Unix()) / 86400))
}

// wait returns how long until n more events fit, 0 when they fit now: the
// time left until the next UTC day. n must not exceed max.
func (q *dailyQuota) wait(now time.Time, n int) time.Duration {
	if d := utcDay(now); d != q.day {
		q.day, q.used = d, 0
	}
	if q.used+int64(n) <= q.max {
		return 0
	}
	return time.Unix((q.day+1)*86400, 0).Sub(now)
}

func (q *dailyQuota) take(n int) { q.used += int64(n) }

// refund gives back n events taken on day; once the day is over there is
// nothing to give back.
func (q *dailyQuota) refund(day int64, n int) {
	if q.day == day {
		q.used = max(0, q.used-int64(n))
	}
}

// producerLimit is one producer's bucket and quota; nil ones are unlimited.
type producerLimit struct {
	name string
	// rateKey, burstKey and quotaKey are the config keys that set the
	// limits, for messages to operators.
	rateKey, burstKey, quotaKey string

	mu     sync.Mutex
	bucket *tokenBucket
	quota  *dailyQuota
}

// admission applies producerLimits; producers it does not know (none
// configured with limits) are unlimited.
type admission struct {
	now       func() time.Time
	producers map[string]*producerLimit
}

// newAdmission builds the limits of every producer named by auth, reusing
// the names that auth reports (and logs).
func newAdmission(cfg Config, auth authenticator, now func() time.Time) *admission {
	a := &admission{now: now, producers: map[string]*producerLimit{}}
	add := func(name, key string, p ProducerToken) {
		rate, burst := cfg.producerRate(p)
		quota := cfg.producerQuota(p)
		if rate == 0 && quota == 0 {
			return
		}
		pl := &producerLimit{name: name,
			rateKey:  configKey(key, "rate_events_per_second", p.RateEventsPerSecond != 0),
			burstKey: configKey(key, "burst_events", p.BurstEvents != 0),
			quotaKey: configKey(key, "max_events_per_day", p.MaxEventsPerDay != 0),
		}
		if rate > 0 {
			pl.bucket = newTokenBucket(rate, burst, now())
		}
		if quota > 0 {
			pl.quota = &dailyQuota{max: quota, day: utcDay(now())}
		}
		a.producers[name] = pl
	}
	if auth.anonymous {
		add("anonymous", "", ProducerToken{})
	}
	for i, p := range cfg.Producers {
		add(auth.grants[i].name, fmt.Sprintf("producers[%d]", i), p)
	}
	return a
}

// configKey names the key that sets a limit: the producer's own, or the
// default.
func configKey(producerKey, name string, own bool) string {
	if own && producerKey != "" {
		return "ingest." + producerKey + "." + name
	}
	return "ingest.default_" + name
}

// limitError says which limit a request ran into.
type limitError struct {
	status     int
	code       string
	limit      string
	producer   string
	retryAfter time.Duration // 0: retrying the same request cannot succeed
	msg        string
}

// grant is what admit took; refund gives it back.
type grant struct {
	pl  *producerLimit
	n   int
	day int64
}

func (g grant) refund() {
	if g.pl == nil || g.n == 0 {
		return
	}
	g.pl.mu.Lock()
	defer g.pl.mu.Unlock()
	if g.pl.bucket != nil {
		g.pl.bucket.refund(g.n)
	}
	if g.pl.quota != nil {
		g.pl.quota.refund(g.day, g.n)
	}
}

// check reports whether n events of producer would be admitted now,
// without taking anything.
func (a *admission) check(producer string, n int) *limitError {
	_, lerr := a.admit(producer, n, false)
	return lerr
}

// take admits n events of producer and takes them from its bucket and
// quota, or takes nothing and says which limit stands in the way.
func (a *admission) take(producer string, n int) (grant, *limitError) {
	return a.admit(producer, n, true)
}

func (a *admission) admit(producer string, n int, take bool) (grant, *limitError) {
	pl := a.producers[producer]
	if pl == nil || n <= 0 {
		return grant{}, nil
	}
	now := a.now()
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if lerr := pl.blocked(now, n); lerr != nil {
		return grant{}, lerr
	}
	if !take {
		return grant{}, nil
	}
	g := grant{pl: pl, n: n}
	if pl.bucket != nil {
		pl.bucket.take(n)
	}
	if pl.quota != nil {
		pl.quota.take(n)
		g.day = pl.quota.day
	}
	return g, nil
}

// blocked returns the limit that n events run into now, the daily quota
// first since its wait is the longer one. pl.mu is held.
func (pl *producerLimit) blocked(now time.Time, n int) *limitError {
	if q := pl.quota; q != nil {
		if int64(n) > q.max {
			return &limitError{status: http.StatusRequestEntityTooLarge, code: codeTooManyEvents, limit: limitQuota, producer: pl.name,
				msg: fmt.Sprintf("request has %d events but producer %q may send only %d per day; split it into smaller requests (operators: %s)", n, pl.name, q.max, pl.quotaKey)}
		}
		if d := q.wait(now, n); d > 0 {
			return &limitError{status: http.StatusTooManyRequests, code: codeQuotaExceeded, limit: limitQuota, producer: pl.name, retryAfter: d,
				msg: fmt.Sprintf("producer %q has used %d of its %d events for today (UTC); nothing was stored: resend after %s seconds, at 00:00 UTC (operators: raise %s)",
					pl.name, q.used, q.max, retryAfterSeconds(d), pl.quotaKey)}
		}
	}
	if b := pl.bucket; b != nil {
		if float64(n) > b.burst {
			return &limitError{status: http.StatusRequestEntityTooLarge, code: codeTooManyEvents, limit: limitBurst, producer: pl.name,
				msg: fmt.Sprintf("request has %d events but producer %q may send at most %d at once; split it into smaller requests (operators: %s)", n, pl.name, int(b.burst), pl.burstKey)}
		}
		if d := b.wait(now, n); d > 0 {
			return &limitError{status: http.StatusTooManyRequests, code: codeRateLimited, limit: limitRate, producer: pl.name, retryAfter: d,
				msg: fmt.Sprintf("producer %q is over its rate of %g events per second; nothing was stored: resend after %s seconds, or send fewer events per second (operators: raise %s or %s)",
					pl.name, b.rate, retryAfterSeconds(d), pl.rateKey, pl.burstKey)}
		}
	}
	return nil
}

// retryAfterSeconds renders d as a Retry-After value: whole seconds,
// rounded up, at least 1.
func retryAfterSeconds(d time.Duration) string {
	return fmt.Sprint(max(1, int64((d+time.Second-1)/time.Second)))
}
