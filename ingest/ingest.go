// Package ingest is aivis's HTTP front door. Producers (LLM gateways,
// scripts) POST usage events to /v1/events; ingest authenticates them by
// bearer token, decodes and validates every event against the v1 contract
// (package schemas) and produces the valid ones to Kafka topic
// aivis.usage.raw.v1 through a Producer, keyed by event_id so that one event
// id always lands on one partition. Nothing else leaves the package.
//
// A body is one JSON event, a JSON array of events, or NDJSON (objects
// separated by newlines; Content-Type application/x-ndjson, or any body not
// starting with '['). What clients can rely on:
//
//   - 202 {"accepted": n} is sent only after Kafka acknowledged every event of
//     the request (acks=all).
//   - Every other answer is JSON {"code", "message", ...}: code is a stable
//     machine-readable name (list in errors.go), message says what to do;
//     "error" repeats message for older clients.
//   - By default a request is all or nothing: if any event is invalid the
//     response is 422 {"code": "invalid_event", "accepted": 0, "rejected": n,
//     "errors": [{"index", "field", "code", "message"}]} and no event of it is
//     produced, so the client fixes the named events and resubmits the whole
//     request. errors[].code is required, unknown_field, invalid_type,
//     out_of_range, too_large, invalid_value, duplicate_key or invalid_utf8.
//   - JSON is read exactly as sent or not at all, in events, adapter
//     envelopes (the provider response inside included) and OTLP JSON: a
//     key repeated in one object, or two keys that name one field because
//     they differ only in case ("model" and "MODEL"), is duplicate_key;
//     a string or key that is not valid UTF-8, or an escaped lone UTF-16
//     surrogate, is invalid_utf8. Both name the JSON path, e.g.
//     "usage.input_tokens" or "labels.team". A single key in another case
//     ("Model") still names its field; labels that differ in case are
//     distinct labels. In an OTLP JSON export such problems, and keys of
//     one object that differ only in case, refuse the export with 400 and
//     the paths; an attribute that Convert reads set twice on a span
//     rejects that span.
//   - An event's time must lie within ingest.max_event_age before and
//     ingest.max_clock_skew after the ingest clock; otherwise it is invalid
//     like any other (errors[].field "time", code out_of_range, the message
//     naming the range and the clock). Older usage is loaded as a backfill
//     (docs/delivery.md), never accepted and then dropped.
//   - With ?partial=true (or header X-AIVIS-Partial: true) the valid events
//     are produced and the answer is 202 {"accepted": k, "rejected": m,
//     "errors": [...]} listing the invalid ones by index, to be fixed and
//     resent alone; 422 as above when no event is valid.
//   - Malformed JSON is 400 invalid_json with the line and column; a body or
//     event count over the limit is 413 body_too_large or too_many_events.
//   - 429 with Retry-After means a producer limit (limits.go) refused the
//     whole request and nothing was stored: code rate_limited
//     (rate_events_per_second) or quota_exceeded (max_events_per_day, per UTC
//     day), with "producer" and "limit" named. A request larger than the
//     producer's burst_events or daily quota can never pass: 413
//     too_many_events, no Retry-After. Limits count valid events only, and
//     a failed produce gives them back.
//   - 503 with Retry-After means "not stored, or not known to be stored":
//     Kafka failed or timed out (kafka_unavailable), or ingest is at
//     max_inflight_requests (overloaded). Resend the same request with the
//     same event ids; later stages drop duplicates by event_id, so events
//     are never silently lost nor counted twice.
//   - 401 unauthorized for a missing or unknown token. A producer may have
//     several tokens (token_sha256 and tokens_sha256), all valid, so that
//     tokens rotate without a gap.
//   - 403 {"code": "out_of_scope", "accepted": 0, "rejected": n, "errors":
//     [{"index", "field", "code": "out_of_scope", "message"}]} when the
//     token is scoped (producers[].sources, producers[].teams) and an
//     event's source, or its labels.team, lies outside the scope. The
//     whole request is refused, with ?partial=true too, and nothing of it
//     is produced.
//   - With ingest.tls set the API is HTTPS only (a plaintext request is
//     answered 400 "Client sent an HTTP request to an HTTPS server"), and
//     with ingest.tls.client_ca_file every client must also present a
//     certificate that CA signed.
//   - An answer given before the body is read in full (401, 405, 415, 429,
//     503 overloaded, 413 body_too_large, 404 unknown_adapter) carries
//     Connection: close, and ingest then reads and discards the rest of the
//     body, up to 4 × max_body_bytes within 5 seconds (read_timeout if
//     shorter), so that a client that writes its whole body before reading
//     still reads the status and Retry-After rather than a reset
//     connection. A larger announced Content-Length, or Expect:
//     100-continue, is not read.
//
// Nothing that looks like a credential is stored or produced raw; on every
// route, before anything is produced or logged (schemas.Event.HideSecrets):
//
//   - a key sent in label "api_key" (any case) or, for every event of the
//     request that has none, in header X-AIVIS-Api-Key is replaced by
//     api_key_id = APIKeyID(key) ("sha256:" and the hex of the first 16
//     bytes of its SHA-256);
//   - an api_key_id that is not of that form is taken for a raw key and
//     replaced by its APIKeyID (so is LiteLLM's api_key and
//     user_api_key_hash);
//   - the value of every other label whose name looks like a credential
//     (schemas.CredentialName: api_key, x-api-key, token, secret, password,
//     authorization, auth, bearer, access_key, … in any case and spelling)
//     is replaced by its APIKeyID, unless it already has that form; such
//     events are accepted, not refused;
//   - raw_usage keeps only counts (schemas.ReduceRawUsage): numbers, and
//     objects and arrays of them; text is dropped.
//
// OTLP spans give no attribute other than the GenAI ones and a few label
// attributes (package otlp) to an event, so header attributes such as
// http.request.header.authorization are never read.
//
// POST /v1/adapters/{name} takes provider usage reports instead of events:
// envelopes (package ingest/adapters) that adapter {name} normalizes into
// events, which are then handled exactly as above.
//
// POST /v1/traces is an OTLP/HTTP trace receiver: spans with OpenTelemetry
// GenAI usage become events (package ingest/otlp), answered the OTLP way.
// POST /v1/metrics is its metric counterpart: the token-usage histogram
// gen_ai.client.token.usage becomes events, other metrics are skipped.
package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Producer writes records to Kafka. ProduceSync blocks until every record is
// acknowledged or has failed, or ctx is done, and returns one result per
// record. Once it returns, ingest reuses the records, their keys and their
// values for later requests: a Producer that keeps them copies them.
// *kgo.Client satisfies it; configure it with ClientOptions.
type Producer interface {
	ProduceSync(ctx context.Context, rs ...*kgo.Record) kgo.ProduceResults
}

// APIKeyHeader carries a raw API key that applies to every event of a
// request that does not carry its own.
const APIKeyHeader = "X-AIVIS-Api-Key"

// Path is where events are posted.
const Path = "/v1/events"

// produceGrace is how long past ProduceTimeout the handler waits for the
// producer before answering 503 anyway (kgo cannot fail records already
// sent to a broker until the broker answers).
const produceGrace = time.Second

// ClientOptions are the kgo options ingest adds to a producer made by
// bus.Dialer (which sets acks from all in-sync replicas, with kgo's
// idempotent writes, for every aivis client): records that give up within
// the produce timeout.
func ClientOptions(cfg Config) []kgo.Opt {
	return []kgo.Opt{
		// kgo refuses less than a second; the request context bounds it too.
		kgo.RecordDeliveryTimeout(max(cfg.ProduceTimeout, time.Second)),
		// A request's records are handed over together and its answer
		// waits for them: lingering would only add to every request's
		// latency (bus.Dialer's linger suits the streaming stages).
		kgo.ProducerLinger(0),
	}
}

// Response is the JSON body of every answer to POST /v1/events.
type Response struct {
	// Accepted events were acknowledged by Kafka.
	Accepted int `json:"accepted"`
	// Rejected events were not produced: every event of a rejected request,
	// or the invalid ones in partial mode.
	Rejected int `json:"rejected,omitempty"`
	// Errors lists per-event problems, at most 1000.
	Errors []EventError `json:"errors,omitempty"`
	// Code names the problem for programs; see errors.go for the list.
	Code string `json:"code,omitempty"`
	// Message says what went wrong and what to do.
	Message string `json:"message,omitempty"`
	// Error repeats Message for clients written before it existed.
	Error string `json:"error,omitempty"`
	// Producer and Limit name the producer and the limit (the config key's
	// last part, e.g. "rate_events_per_second") of a 429 or 413 due to a
	// producer's limit.
	Producer string `json:"producer,omitempty"`
	Limit    string `json:"limit,omitempty"`
}

// Server serves POST /v1/events, /v1/adapters/{name}, /v1/traces and /v1/metrics.
type Server struct {
	cfg      Config
	producer Producer
	log      *slog.Logger
	metrics  *metrics
	auth     authenticator
	lim      limits
	// now is the ingest clock that event times are checked against.
	now        func() time.Time
	admission  *admission
	slots      chan struct{}
	retryAfter string
	// producing counts produce calls still running, which may outlive their
	// request after a timeout; Serve waits for them on shutdown.
	producing sync.WaitGroup
	// state is where Serve is: stateIdle, stateServing or stateStopped.
	state atomic.Int32
	// authFail counts refused authentications per source address.
	authFail *authFailures
}

const (
	stateIdle int32 = iota
	stateServing
	stateStopped
)

// New validates cfg and returns a server that produces through producer
// and registers its metrics with reg (a registry of its own when nil).
func New(cfg Config, producer Producer, reg prometheus.Registerer, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("configuring ingest: %w", err)
	}
	if producer == nil {
		return nil, errors.New("configuring ingest: no Kafka producer given")
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("configuring ingest: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:      cfg,
		producer: producer,
		log:      log,
		metrics:  m,
		auth:     newAuthenticator(cfg),
		lim: limits{maxEvents: cfg.MaxEventsPerRequest, maxEventBytes: cfg.MaxEventBytes,
			maxEventAge: cfg.MaxEventAge, maxClockSkew: cfg.MaxClockSkew},
		now:        time.Now,
		slots:      make(chan struct{}, cfg.MaxInflightRequests),
		retryAfter: strconv.Itoa(int((cfg.RetryAfter + time.Second - 1) / time.Second)),
	}
	s.admission = newAdmission(cfg, s.auth, time.Now)
	if s.authFail, err = newAuthFailures(reg); err != nil {
		return nil, fmt.Errorf("configuring ingest: %w", err)
	}
	if s.auth.anonymous {
		log.Warn("ingest accepts events without a token (ingest.allow_anonymous); use this only for local development")
	}
	return s, nil
}

// Handler returns the handler of every ingest route.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/", s.notFound)

	mux.HandleFunc(Path, s.serveEvents)
	mux.HandleFunc(AdaptersPath+"{name}", s.serveAdapter)
	mux.HandleFunc(TracesPath, s.serveTraces)
	mux.HandleFunc(MetricsPath, s.serveMetrics)
	return mux
}

// Ready says why the server cannot accept requests, for a readiness check:
// before Serve listens and once it is shutting down; nil otherwise.
func (s *Server) Ready() error {
	switch s.state.Load() {
	case stateServing:
		return nil
	case stateStopped:
		return errors.New("ingest is shutting down")
	default:
		return errors.New("ingest is not listening yet")
	}
}

// Run listens on cfg.ListenAddr and serves until ctx is done; see Serve.
func (s *Server) Run(ctx context.Context) error {
	return s.ListenAndServe(ctx, s.cfg.ListenAddr)
}

// ListenAndServe listens on addr (cfg.ListenAddr when empty) and serves
// until ctx is done; see Serve.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	if addr == "" {
		addr = s.cfg.ListenAddr
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening for events on %s (set ingest.listen_addr to a free address): %w", addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx is done, then stops accepting connections and
// lets in-flight requests finish within cfg.ShutdownTimeout; requests still
// running then are cut off and reported in the error. It closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: min(10*time.Second, s.cfg.ReadTimeout),
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.ReadTimeout + s.cfg.ProduceTimeout + 2*produceGrace,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.log.Info("serving usage events", "addr", ln.Addr().String(), "path", Path)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	s.state.Store(stateServing)
	rctx, stopReports := context.WithCancel(ctx)
	defer stopReports()
	go s.reportAuthFailures(rctx, s.log)
	select {
	case err := <-served:
		s.state.Store(stateStopped)
		return fmt.Errorf("serving events on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	// Not ready from here on, so that load balancers stop sending.
	s.state.Store(stateStopped)

	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	<-served
	if err != nil {
		_ = srv.Close()
		return fmt.Errorf("finishing in-flight ingest requests: cut off after %s (raise ingest.shutdown_timeout): %w", s.cfg.ShutdownTimeout, err)
	}
	done := make(chan struct{})
	go func() { s.producing.Wait(); close(done) }()
	select {
	case <-done:
		s.log.Info("ingest stopped")
		return nil
	case <-sctx.Done():
		return fmt.Errorf("finishing in-flight ingest requests: produce calls still waiting for Kafka after %s (raise ingest.shutdown_timeout)", s.cfg.ShutdownTimeout)
	}
}

func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request) {
	s.accept(w, r, &eventsRequest{jsonRequest: jsonRequest{s: s, routeLabel: routeEvents}})
}

// eventsRequest is a POST /v1/events: usage events as JSON.
type eventsRequest struct {
	jsonRequest
	slab *eventSlab
}

func (e *eventsRequest) parse(body []byte) ([]item, *refusal) {
	e.slab = getEventSlab()
	return parseEvents(body, e.framing, e.s.lim, e.slab)
}

func (e *eventsRequest) recycle() {
	if e.slab != nil {
		e.slab.put()
		e.slab = nil
	}
}

// jsonRequest is what POST /v1/events and /v1/adapters/{name} share: a
// body of one JSON value, an array or NDJSON, partial acceptance on
// request, and Response as the answer.
type jsonRequest struct {
	s          *Server
	routeLabel string
	framing    framing
}

var jsonAdvice = advice{
	method:           "use POST to send events",
	unauthorized:     "missing or unknown bearer token: send `Authorization: Bearer <token>` with a token whose SHA-256 is listed under ingest.producers",
	overloaded:       "ingest is handling its limit of %d concurrent requests; retry after %s seconds with the same event ids (operators: raise ingest.max_inflight_requests or add ingest replicas)",
	eventTooLarge:    "an event is larger than the Kafka topic accepts; send smaller events (operators: lower ingest.max_event_bytes below the topic's max.message.bytes)",
	kafkaUnavailable: "Kafka did not acknowledge the events within %s, so they may not be stored: retry the same request with the same event ids after %s seconds (duplicates are dropped by event_id)",
}

func (j *jsonRequest) route() string { return j.routeLabel }

func (j *jsonRequest) prepare(r *http.Request) (bool, *refusal) {
	if ce := r.Header.Get("Content-Encoding"); ce != "" && ce != "identity" {
		return false, &refusal{http.StatusUnsupportedMediaType, codeUnsupportedMediaType, fmt.Sprintf("Content-Encoding %q is not supported; send the body uncompressed", ce)}
	}
	partial, err := partialMode(r)
	if err != nil {
		return false, &refusal{http.StatusBadRequest, codeInvalidParameter, err.Error()}
	}
	j.framing = framingOf(r.Header.Get("Content-Type"))
	return partial, nil
}

func (j *jsonRequest) render(w http.ResponseWriter, o outcome) {
	resp := Response{Accepted: o.accepted, Code: o.code, Message: j.s.message(o, &jsonAdvice)}
	switch {
	case o.lerr != nil:
		resp.Rejected, resp.Producer, resp.Limit = o.total, o.lerr.producer, o.lerr.limit
	case o.code == codeEventTooLarge:
		resp.Rejected = o.total
	case o.code == codeInvalidEvent:
		resp.Rejected, resp.Errors, resp.Message = o.total-o.accepted, o.errors, invalidMessage(o)
	case o.code == codeOutOfScope:
		resp.Rejected, resp.Errors = o.total, o.errors
	}
	j.s.respond(w, j.routeLabel, o.status, resp)
}

// invalidMessage says what to do about the invalid events of o.
func invalidMessage(o outcome) string {
	var msg string
	switch {
	case o.accepted > 0:
		msg = fmt.Sprintf("%d of %d events are invalid and were not stored; the other %d were: fix only the events listed in errors and resend them", o.invalid, o.total, o.accepted)
	case o.partial:
		msg = fmt.Sprintf("all %d events are invalid, so none was accepted: fix the events listed in errors and resubmit them", o.total)
	default:
		msg = fmt.Sprintf("%d of %d events are invalid, so none was accepted: fix the events listed in errors and resubmit the whole request", o.invalid, o.total)
	}
	if len(o.errors) == maxErrors {
		msg += fmt.Sprintf(" (only the first %d problems are listed)", maxErrors)
	}
	return msg
}

func framingOf(contentType string) framing {
	mt, _, _ := mime.ParseMediaType(contentType)
	switch mt {
	case "application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines":
		return framingNDJSON
	}
	return framingDetect
}

// respond writes resp with status code, counted by route. Message and
// error carry the same text whichever of them was set.
func (s *Server) respond(w http.ResponseWriter, route string, code int, resp Response) {
	if resp.Message == "" {
		resp.Message = resp.Error
	}
	resp.Error = resp.Message
	body, err := json.Marshal(resp)
	if err != nil {
		// Response holds only strings and ints; this cannot happen.
		body = []byte(`{"accepted":0,"error":"encoding the response failed"}`)
	}
	s.write(w, route, code, "application/json", append(body, '\n'))
}
