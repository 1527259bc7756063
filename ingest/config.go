package ingest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"path"
	"strings"
	"time"
)

// Config configures the ingest server. It is the "ingest" section of the
// aivis config; Validate names problems with that prefix.
type Config struct {
	// ListenAddr is where POST /v1/events is served.
	ListenAddr string `koanf:"listen_addr" help:"address of the ingest HTTP API"`
	// TLS makes the API HTTPS only, optionally with client certificates.
	TLS TLSConfig `koanf:"tls"`
	// MaxBodyBytes bounds one request body; larger bodies get 413.
	MaxBodyBytes int64 `koanf:"max_body_bytes" help:"largest request body; larger requests get 413"`
	// MaxEventsPerRequest bounds the events in one request; more get 413.
	MaxEventsPerRequest int `koanf:"max_events_per_request" help:"most events in one request; more get 413"`
	// MaxEventBytes bounds one event as produced to Kafka. Keep it below the
	// topic's max.message.bytes (1 MB by default) so that an oversized event
	// is rejected with its index instead of failing the whole produce. It
	// may be at most MaxEventBytesLimit.
	MaxEventBytes int `koanf:"max_event_bytes" help:"largest event as produced to Kafka, at most 921600 (900 KiB, so that it still fits once enriched); keep it below the topic's max.message.bytes"`
	// MaxInflightRequests bounds requests being read, decoded or produced at
	// once; more get 503 at once rather than queueing. Memory use is about
	// MaxInflightRequests × 3 × MaxBodyBytes.
	MaxInflightRequests int `koanf:"max_inflight_requests" help:"requests handled at once; more get 503 at once (memory: about 3 × this × max_body_bytes)"`
	// ProduceTimeout bounds the wait for the broker's acknowledgement.
	ProduceTimeout time.Duration `koanf:"produce_timeout" help:"bound on the wait for the broker's acknowledgement"`
	// RetryAfter is what 503 responses tell clients to wait (whole seconds).
	RetryAfter time.Duration `koanf:"retry_after" help:"wait that 503 responses ask clients for (whole seconds)"`
	// MaxEventAge is how far behind the ingest clock an event's time may
	// be. Older events get a field error at once: keep it within what the
	// aggregator can still correct (aggregate.late_horizon minus
	// aggregate.max_future), so that nothing accepted is dropped later as
	// too late.
	MaxEventAge time.Duration `koanf:"max_event_age" help:"oldest event time accepted, behind the ingest clock; older events get a field error (at most aggregate.late_horizon minus aggregate.max_future)"`
	// MaxClockSkew is how far ahead of the ingest clock an event's time may
	// be: producers' clocks differ a little, but an event far ahead would
	// move its partition's watermark past every current event.
	MaxClockSkew time.Duration `koanf:"max_clock_skew" help:"newest event time accepted, ahead of the ingest clock; later events get a field error (at most aggregate.max_future)"`
	// ReadTimeout bounds reading one request, headers and body.
	ReadTimeout time.Duration `koanf:"read_timeout" help:"bound on reading one request, headers and body"`
	// ShutdownTimeout bounds finishing in-flight requests on shutdown.
	ShutdownTimeout time.Duration `koanf:"shutdown_timeout" help:"bound on finishing the requests in flight at shutdown"`
	// AllowAnonymous accepts requests without a token. Only valid when no
	// producers are configured; meant for local development.
	AllowAnonymous bool `koanf:"allow_anonymous" help:"accept requests without a token when no producers are configured (local development only)"`
	// Producers are the clients allowed to send events.
	Producers []ProducerToken `koanf:"producers" help:"clients allowed to send events: a list of {name, token_sha256 (from aivis token), and optional rate_events_per_second, burst_events, max_events_per_day}"`

	// DefaultRateEventsPerSecond limits the events per second of every
	// producer that sets no rate of its own, and of anonymous requests;
	// 0 is unlimited. See limits.go.
	DefaultRateEventsPerSecond float64 `koanf:"default_rate_events_per_second" help:"events per second of each producer without a rate of its own, and of anonymous requests (0: unlimited)"`
	// DefaultBurstEvents is the token bucket size for those producers; 0
	// takes the larger of one second of rate and max_events_per_request.
	DefaultBurstEvents int `koanf:"default_burst_events" help:"token bucket size of each producer without a burst of its own (0: the larger of one second of rate and max_events_per_request)"`
	// DefaultMaxEventsPerDay is the daily quota (UTC days) of every producer
	// that sets none of its own; 0 is unlimited. Counted per ingest replica.
	DefaultMaxEventsPerDay int64 `koanf:"default_max_events_per_day" help:"daily quota, UTC days, per ingest replica, of each producer without one of its own (0: unlimited)"`
}

// ProducerToken identifies one producer by the SHA-256 of its bearer token;
// the token itself is never stored in config.
type ProducerToken struct {
	// Name labels the producer in logs; optional.
	Name string `koanf:"name"`
	// TokenSHA256 is HashToken(token): 64 hex characters.
	TokenSHA256 string `koanf:"token_sha256"`
	// TokensSHA256 are further tokens of the same producer, for rotation:
	// add the new token's hash, move the producer to it, then remove the
	// old one. Every listed token is valid.
	TokensSHA256 []string `koanf:"tokens_sha256"`
	// Sources, when set, are the only event sources this producer may
	// report for (path.Match patterns such as "gw-eu-*").
	Sources []string `koanf:"sources"`
	// Teams, when set, are the only teams this producer may report for:
	// each event must carry labels.team matching one of them.
	Teams []string `koanf:"teams"`
	// RateEventsPerSecond limits this producer's events per second with a
	// token bucket; 0 takes default_rate_events_per_second, -1 is unlimited.
	RateEventsPerSecond float64 `koanf:"rate_events_per_second"`
	// BurstEvents is the bucket size: the most events accepted at once
	// after an idle period; 0 takes default_burst_events.
	BurstEvents int `koanf:"burst_events"`
	// MaxEventsPerDay is a quota per UTC day; 0 takes
	// default_max_events_per_day, -1 is unlimited. The count lives in memory
	// and is per ingest replica: with N replicas behind a load balancer a
	// producer may send up to N times this, and a restart resets it.
	MaxEventsPerDay int64 `koanf:"max_events_per_day"`
}

// tokenHashes lists every token hash of the producer.
func (p ProducerToken) tokenHashes() []string {
	var out []string
	if p.TokenSHA256 != "" {
		out = append(out, p.TokenSHA256)
	}
	return append(out, p.TokensSHA256...)
}

// IsTokenHash reports whether s has the form of producers[].token_sha256:
// 64 hex characters, in either case. Anything else in that field may be a
// token pasted by mistake, so it must not be printed.
func IsTokenHash(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// DefaultConfig returns the defaults. It does not validate on its own: add
// producers, or set AllowAnonymous for local development.
func DefaultConfig() Config {
	return Config{
		ListenAddr:          "127.0.0.1:8080",
		MaxBodyBytes:        5 << 20,
		MaxEventsPerRequest: 10_000,
		MaxEventBytes:       256 << 10,
		MaxInflightRequests: 64,
		ProduceTimeout:      10 * time.Second,
		RetryAfter:          5 * time.Second,
		MaxEventAge:         23 * time.Hour,
		MaxClockSkew:        5 * time.Minute,
		ReadTimeout:         30 * time.Second,
		ShutdownTimeout:     15 * time.Second,
	}
}

// Validate reports every problem at once, each prefixed with its key path.
func (c Config) Validate() error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("ingest.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if _, _, err := net.SplitHostPort(c.ListenAddr); err != nil {
		add("listen_addr", "must be host:port such as 127.0.0.1:8080 (%v)", err)
	}
	if c.MaxBodyBytes <= 0 {
		add("max_body_bytes", "must be positive, got %d", c.MaxBodyBytes)
	}
	if c.MaxEventsPerRequest <= 0 {
		add("max_events_per_request", "must be positive, got %d", c.MaxEventsPerRequest)
	}
	if c.MaxEventBytes <= 0 || c.MaxEventBytes > MaxEventBytesLimit {
		add("max_event_bytes", "must be between 1 and %d, got %d: enrich adds pricing and ownership to an event, and the enriched event must still fit the 1,000,012 bytes of a Kafka client's batch, or it is dead-lettered instead of counted", MaxEventBytesLimit, c.MaxEventBytes)
	}
	if c.MaxInflightRequests <= 0 {
		add("max_inflight_requests", "must be positive, got %d", c.MaxInflightRequests)
	}
	if c.MaxEventAge <= 0 {
		add("max_event_age", "must be positive, got %s (e.g. 23h)", c.MaxEventAge)
	}
	if c.MaxClockSkew < 0 {
		add("max_clock_skew", "must not be negative, got %s (e.g. 5m)", c.MaxClockSkew)
	}
	for _, d := range []struct {
		key string
		v   time.Duration
		min time.Duration
	}{
		{"produce_timeout", c.ProduceTimeout, time.Millisecond},
		{"retry_after", c.RetryAfter, time.Second},
		{"read_timeout", c.ReadTimeout, time.Millisecond},
		{"shutdown_timeout", c.ShutdownTimeout, time.Millisecond},
	} {
		if d.v < d.min {
			add(d.key, "must be at least %s, got %s", d.min, d.v)
		}
	}

	names := map[string]int{}
	hashes := map[string]string{}
	for i, p := range c.Producers {
		key := fmt.Sprintf("producers[%d]", i)
		if p.Name != "" {
			if j, dup := names[p.Name]; dup {
				add(key+".name", "%q is also the name of producers[%d]; names must be unique", p.Name, j)
			}
			names[p.Name] = i
		}
		if p.TokenSHA256 == "" && len(p.TokensSHA256) == 0 {
			add(key+".token_sha256", "is required: the SHA-256 of the producer's token as `aivis token` prints it (tokens_sha256 lists more, for rotation)")
		}
		for j, t := range append([]string{p.TokenSHA256}, p.TokensSHA256...) {
			tkey := key + ".token_sha256"
			if j > 0 {
				tkey = fmt.Sprintf("%s.tokens_sha256[%d]", key, j-1)
			} else if t == "" {
				continue
			}
			if !IsTokenHash(t) {
				// Never echo the value: it may be a raw token pasted by mistake.
				add(tkey, "must be 64 hex characters, the SHA-256 of the token as `aivis token` prints it; never put the token itself in config")
				continue
			}
			h := strings.ToLower(t)
			if other, dup := hashes[h]; dup {
				add(tkey, "is also a token of %s; give every producer its own tokens and list each once", other)
			}
			hashes[h] = key
		}
		for j, pat := range p.Sources {
			if _, err := path.Match(pat, ""); err != nil || pat == "" {
				add(fmt.Sprintf("%s.sources[%d]", key, j), "%q is not a valid pattern (exact names, or path.Match patterns such as gw-eu-*)", pat)
			}
		}
		for j, pat := range p.Teams {
			if _, err := path.Match(pat, ""); err != nil || pat == "" {
				add(fmt.Sprintf("%s.teams[%d]", key, j), "%q is not a valid pattern (exact names, or path.Match patterns such as ml-*)", pat)
			}
		}
	}
	errs = append(errs, c.limitProblems()...)
	errs = append(errs, c.TLS.problems()...)
	switch {
	case len(c.Producers) == 0 && !c.AllowAnonymous:
		add("producers", "none configured, so no client could send events; add {name, token_sha256} entries (create a token and its hash with `aivis token`), or set ingest.allow_anonymous: true for local development only")
	case len(c.Producers) > 0 && c.AllowAnonymous:
		add("allow_anonymous", "must be false when producers are configured (their tokens are then required); remove one or the other")
	}
	return errors.Join(errs...)
}

// MaxEventBytesLimit bounds ingest.max_event_bytes at 900 KiB. An event
// ingest accepts must stay countable: enrich writes it again with its
// pricing, owners and flags (a few KiB at most), and a record the Kafka
// client cannot fit in a batch of 1,000,012 bytes is dead-lettered.
const MaxEventBytesLimit = 900 << 10
