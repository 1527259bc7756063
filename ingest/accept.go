package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/schemas"
)

// The accept path. Each endpoint only knows its wire format: it reads its
// headers, parses its body into events and renders the outcome. Everything
// else is done once, here, for all of them: method, auth, producer limits,
// the in-flight bound, reading the body, validation, API key hashing,
// record building, produce and the outcome.

// endpoint is one wire format, for one request.
type endpoint interface {
	// route names the endpoint in metrics: events, adapter:<name>,
	// adapters (no such adapter) or traces.
	route() string
	// prepare reads the headers of an authenticated request before its
	// body is read. partial says whether the valid events of a request with
	// invalid ones are to be produced.
	prepare(r *http.Request) (partial bool, ref *refusal)
	// parse turns the body into events, one item per value of the body in
	// its order, or refuses the body as a whole.
	parse(body []byte) ([]item, *refusal)
	// render answers with o.
	render(w http.ResponseWriter, o outcome)
}

// recycler is an endpoint whose parsed events lie in memory that it
// reuses for a later request once recycle is called, after check.
type recycler interface {
	recycle()
}

// item is one value of a request body: the event it holds, or the problems
// that kept it from becoming one.
type item struct {
	event *schemas.Event
	probs []schemas.FieldError
}

// refusal turns a request away as a whole.
type refusal struct {
	status int
	code   string // errors.go
	msg    string
}

func (r *refusal) Error() string { return r.msg }

func (r *refusal) outcome() outcome { return outcome{status: r.status, code: r.code, msg: r.msg} }

// outcome is what became of a request, for its endpoint to render.
type outcome struct {
	// status is the HTTP status on /v1/events; other wire formats map it.
	status int
	// code names the problem (errors.go); "" when every event was accepted.
	code string
	// msg says what went wrong in words that fit every endpoint; empty for
	// the problems whose advice each endpoint words itself (see advice).
	msg string
	// lerr is the producer limit that refused the request.
	lerr *limitError
	// partial is the request's partial acceptance switch.
	partial bool
	// Events of the request, once its body is parsed.
	total, accepted, invalid int
	errors                   []EventError // at most maxErrors
}

// accept takes one request through the accept path and has ep render what
// became of it.
func (s *Server) accept(w http.ResponseWriter, r *http.Request, ep endpoint) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		s.refuseUnread(w, r, ep, outcome{status: http.StatusMethodNotAllowed, code: codeMethodNotAllowed})
		return
	}
	who, ok := s.auth.lookup(r.Header.Get("Authorization"))
	if !ok {
		s.authFail.record(r.RemoteAddr, s.now())
		w.Header().Set("WWW-Authenticate", `Bearer realm="aivis"`)
		s.refuseUnread(w, r, ep, outcome{status: http.StatusUnauthorized, code: codeUnauthorized})
		return
	}
	producer := who.name
	partial, ref := ep.prepare(r)
	if ref != nil {
		s.refuseUnread(w, r, ep, ref.outcome())
		return
	}
	// A producer with no tokens left is turned away before its body takes
	// a slot and gets read.
	if lerr := s.admission.check(producer, 1); lerr != nil {
		s.refuseUnread(w, r, ep, s.limited(w, producer, lerr, outcome{}))
		return
	}
	select {
	case s.slots <- struct{}{}:
		s.metrics.inflight.Inc()
	default:
		w.Header().Set("Retry-After", s.retryAfter)
		s.refuseUnread(w, r, ep, outcome{status: http.StatusServiceUnavailable, code: codeOverloaded})
		return
	}
	release := s.release
	defer func() {
		if release != nil {
			release()
		}
	}()

	body, buf, ref := s.readBody(w, r)
	if ref != nil && ref.code == codeBodyTooLarge {
		// The rest of the body is discarded without holding a slot.
		release()
		release = nil
		s.refuseUnread(w, r, ep, ref.outcome())
		return
	}
	var items []item
	if ref == nil {
		items, ref = ep.parse(body)
	}
	if ref != nil {
		s.finish(w, ep, ref.outcome())
		return
	}
	// A scoped token reporting for a source or team outside its scope
	// refuses the whole request, partial mode or not: nothing of it is
	// stored, and the errors name every event and field at fault.
	if o, refused := scopeCheck(who, items); refused {
		putBody(buf)
		s.log.Warn("refused events outside the producer's scope", "route", ep.route(), "producer", producer, "out_of_scope", o.invalid, "events", o.total)
		s.finish(w, ep, o)
		return
	}
	sb := getSendBuf()
	defer func() {
		// Unless the producer took it: then it is handed back once the
		// producer is done with the records.
		if sb != nil {
			sb.put()
		}
	}()
	b := check(items, s.lim, r.Header.Get(APIKeyHeader), s.now(), sb)
	// Nothing refers to the body or the parsed events any more: check
	// copied what is produced.
	putBody(buf)
	if rc, ok := ep.(recycler); ok {
		rc.recycle()
	}
	o := outcome{partial: partial, total: b.total, invalid: b.invalid, errors: b.errors}
	if b.invalid > 0 {
		s.log.Debug("rejected invalid events", "route", ep.route(), "producer", producer, "invalid", b.invalid, "events", b.total)
		o.code = codeInvalidEvent
		if !partial || len(b.events) == 0 {
			o.status = http.StatusUnprocessableEntity
			s.finish(w, ep, o)
			return
		}
	}
	admitted, lerr := s.admission.take(producer, len(b.events))
	if lerr != nil {
		s.finish(w, ep, s.limited(w, producer, lerr, o))
		return
	}
	if len(b.events) > 0 {
		recs := sb.records(b.events)
		// The produce call owns the slot and the records from here: it
		// may outlive this handler after a timeout, and the slot must
		// bound it too.
		release = nil
		err := s.produce(r.Context(), recs, sb)
		sb = nil
		if err != nil {
			// The client resends; that attempt is the one to count.
			admitted.refund()
			s.log.Warn("producing events to Kafka", "route", ep.route(), "producer", producer, "events", len(recs), "err", err)
			o.code, o.status = codeKafkaUnavailable, http.StatusServiceUnavailable
			if errors.Is(err, kerr.MessageTooLarge) {
				o.code, o.status = codeEventTooLarge, http.StatusRequestEntityTooLarge
			} else {
				w.Header().Set("Retry-After", s.retryAfter)
			}
			s.finish(w, ep, o)
			return
		}
		o.accepted = len(recs)
	}
	o.status = http.StatusAccepted
	s.finish(w, ep, o)
}

// refuseUnread answers a request whose body is not read, or not to its
// end, with o, and then reads and discards the rest of the body — at most
// drainFactor × max_body_bytes, within drainTimeout — before the
// connection is closed. A client that writes its whole body before it
// reads (most do) would otherwise see a reset connection instead of the
// status and its Retry-After: net/http closes a connection with more than
// 256 KiB of body left unread, and the kernel then drops the answer the
// client has not read yet. A body announced to be larger than the bound,
// or one sent after "Expect: 100-continue" (whose client waits), is not
// read at all.
func (s *Server) refuseUnread(w http.ResponseWriter, r *http.Request, ep endpoint, o outcome) {
	if r.ContentLength == 0 {
		s.finish(w, ep, o)
		return
	}
	// The connection is not kept: the client may be told to go away, and
	// whatever the bound leaves unread must not be taken for a request.
	w.Header().Set("Connection", "close")
	s.finish(w, ep, o)
	limit := drainFactor * s.cfg.MaxBodyBytes
	if r.ContentLength > limit || strings.EqualFold(r.Header.Get("Expect"), "100-continue") {
		return
	}
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	_ = rc.SetReadDeadline(time.Now().Add(min(drainTimeout, s.cfg.ReadTimeout)))
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, limit))
}

// drainFactor and drainTimeout bound what refuseUnread discards of a body.
const (
	drainFactor  = 4
	drainTimeout = 5 * time.Second
)

// finish counts the events of o and has ep render it.
func (s *Server) finish(w http.ResponseWriter, ep endpoint, o outcome) {
	s.metrics.eventsAccepted.Add(float64(o.accepted))
	s.metrics.eventsRejected.Add(float64(o.total - o.accepted))
	ep.render(w, o)
}

// limited turns o into the refusal of a producer's limit.
func (s *Server) limited(w http.ResponseWriter, producer string, lerr *limitError, o outcome) outcome {
	s.metrics.rateLimited.WithLabelValues(producer, lerr.limit).Inc()
	if lerr.retryAfter > 0 {
		w.Header().Set("Retry-After", retryAfterSeconds(lerr.retryAfter))
	}
	o.status, o.code, o.msg, o.lerr = lerr.status, lerr.code, lerr.msg, lerr
	return o
}

// advice words, for one wire format, the problems whose advice depends on
// who reads it: a client of /v1/events or an OpenTelemetry exporter.
type advice struct {
	method, unauthorized, eventTooLarge string
	// overloaded takes max_inflight_requests and the Retry-After seconds.
	overloaded string
	// kafkaUnavailable takes produce_timeout and the Retry-After seconds.
	kafkaUnavailable string
}

// message is what o says in the words of a.
func (s *Server) message(o outcome, a *advice) string {
	switch o.code {
	case codeMethodNotAllowed:
		return a.method
	case codeUnauthorized:
		return a.unauthorized
	case codeOverloaded:
		return fmt.Sprintf(a.overloaded, s.cfg.MaxInflightRequests, s.retryAfter)
	case codeKafkaUnavailable:
		return fmt.Sprintf(a.kafkaUnavailable, s.cfg.ProduceTimeout, s.retryAfter)
	case codeEventTooLarge:
		return a.eventTooLarge
	}
	return o.msg
}

// write answers with status and body, counted by route.
func (s *Server) write(w http.ResponseWriter, route string, status int, contentType string, body []byte) {
	s.metrics.requests.WithLabelValues(strconv.Itoa(status), route).Inc()
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// produce hands recs to the producer and waits for all acknowledgements,
// at most ProduceTimeout plus a grace period. It releases the caller's slot
// when the producer returns, and hands sb, which holds recs, back for reuse
// (sb may be nil).
func (s *Server) produce(ctx context.Context, recs []*kgo.Record, sb *sendBuf) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ProduceTimeout)
	results := make(chan error, 1)
	s.producing.Add(1)
	go func() {
		defer s.producing.Done()
		defer s.release()
		defer cancel()
		start := time.Now()
		res := s.producer.ProduceSync(ctx, recs...)
		s.metrics.produceSeconds.Observe(time.Since(start).Seconds())
		results <- resultsError(res, len(recs))
		// The producer is done with every record: each has its result.
		sb.put()
	}()
	timer := time.NewTimer(s.cfg.ProduceTimeout + produceGrace)
	defer timer.Stop()
	select {
	case err := <-results:
		return err
	case <-timer.C:
		return fmt.Errorf("no answer from the producer within %s", s.cfg.ProduceTimeout+produceGrace)
	}
}

func resultsError(res kgo.ProduceResults, want int) error {
	if len(res) != want {
		return fmt.Errorf("the producer returned %d results for %d records", len(res), want)
	}
	failed := 0
	var first error
	for _, r := range res {
		if r.Err != nil {
			failed++
			if first == nil {
				first = r.Err
			}
		}
	}
	if first != nil {
		return fmt.Errorf("%d of %d records failed: %w", failed, want, first)
	}
	return nil
}

func (s *Server) release() {
	<-s.slots
	s.metrics.inflight.Dec()
}

// readBody reads the request body into a buffer of bodies, which the
// caller may hand back with putBody once nothing refers to the body.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, *bytes.Buffer, *refusal) {
	if r.ContentLength > s.cfg.MaxBodyBytes {
		return nil, nil, s.tooLarge()
	}
	buf := bodies.Get().(*bytes.Buffer)
	buf.Reset()
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength) + bytes.MinRead)
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
			return nil, nil, s.tooLarge()
		}
		return nil, nil, &refusal{http.StatusBadRequest, codeUnreadableBody, "reading the request body: " + err.Error()}
	}
	return buf.Bytes(), buf, nil
}

func (s *Server) tooLarge() *refusal {
	return &refusal{http.StatusRequestEntityTooLarge, codeBodyTooLarge, fmt.Sprintf(
		"request body is larger than %d bytes; split it into smaller requests (operators: ingest.max_body_bytes)", s.cfg.MaxBodyBytes)}
}

// bodies keeps request body buffers between requests; a body is as large
// as the events it carries, so reading each into new memory was a large
// share of ingest's garbage.
var bodies = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBody bounds the buffers kept in bodies.
const maxPooledBody = 4 << 20

func putBody(buf *bytes.Buffer) {
	if buf != nil && buf.Cap() <= maxPooledBody {
		bodies.Put(buf)
	}
}

// sendBuf is what one request hands to the producer: its events' keys
// and values, encoded one after the other, and the records that point into
// them. It is reused (sendBufs) once the producer has answered for every
// record; new ones for every request were a third of ingest's garbage.
type sendBuf struct {
	data   []byte
	events []decoded
	ends   []encodedAt
	recs   []*kgo.Record
	slab   []kgo.Record
}

// encodedAt is where check encoded one event in sendBuf.data.
type encodedAt struct{ key, value, end int }

var sendBufs = sync.Pool{New: func() any { return new(sendBuf) }}

// maxPooledRecords bounds the records of a sendBuf kept in sendBufs.
const maxPooledRecords = 10_000

func getSendBuf() *sendBuf { return sendBufs.Get().(*sendBuf) }

// records returns one record of the raw topic for each of events, whose
// keys and values lie in sb.data.
func (sb *sendBuf) records(events []decoded) []*kgo.Record {
	n := len(events)
	if cap(sb.slab) < n {
		sb.slab, sb.recs = make([]kgo.Record, n), make([]*kgo.Record, n)
	}
	sb.slab, sb.recs = sb.slab[:n], sb.recs[:n]
	for i, d := range events {
		sb.slab[i] = kgo.Record{Topic: schemas.TopicRaw, Key: d.key, Value: d.value}
		sb.recs[i] = &sb.slab[i]
	}
	return sb.recs
}

// put hands sb back for reuse; nothing may refer to its records, keys or
// values any more. A nil sb is ignored.
func (sb *sendBuf) put() {
	if sb == nil || cap(sb.data) > maxPooledBody || cap(sb.slab) > maxPooledRecords || cap(sb.events) > maxPooledRecords {
		return
	}
	// Drop what the records and events point to, so that a kept buffer
	// keeps nothing else alive.
	clear(sb.slab)
	clear(sb.recs)
	clear(sb.events)
	sb.data, sb.events, sb.ends, sb.recs, sb.slab = sb.data[:0], sb.events[:0], sb.ends[:0], sb.recs[:0], sb.slab[:0]
	sendBufs.Put(sb)
}

// EventError is one problem with one event of a request.
type EventError struct {
	// Index is the event's 0-based position in the array or NDJSON stream.
	Index int `json:"index"`
	// Field is the JSON path of the offending field, "" for the whole event.
	Field string `json:"field"`
	// Code classifies the problem: required, unknown_field, invalid_type,
	// out_of_range, too_large, invalid_value, duplicate_key or
	// invalid_utf8 (schemas.Code*).
	Code    string `json:"code"`
	Message string `json:"message"`
}

// apiKeyLabel is the label in which a producer may send a raw API key.
const apiKeyLabel = "api_key"

// maxErrors bounds the per-event errors kept for one response.
const maxErrors = 1000

// decoded is one valid event, its key and its canonical encoding, ready
// to produce. The event lies in memory that a later request reuses once
// the endpoint recycles it (recycler): the accept path reads only key and
// value after that.
type decoded struct {
	event      *schemas.Event
	key, value []byte
}

// batch is a request's events after check.
type batch struct {
	events  []decoded
	errors  []EventError // at most maxErrors
	invalid int          // events with at least one problem
	total   int          // events in the body
}

// check readies parsed events for Kafka: it replaces raw API keys by their
// ids (headerKey, when not empty, applies to events that carry no key of
// their own), hides what else may be a secret (schemas.Event.HideSecrets),
// validates every event, requires its time to be in the range lim accepts
// around now, and encodes the valid ones canonically, within
// lim.maxEventBytes. Problems are listed by item index. The valid events'
// keys and values lie in sb, which must outlive the batch.
func check(items []item, lim limits, headerKey string, now time.Time, sb *sendBuf) batch {
	maxEventBytes := lim.maxEventBytes
	b := batch{total: len(items), events: sb.events[:0]}
	// Every key and value of the batch lies in buf, reused from an earlier
	// request or grown to size once; offsets are kept while it grows and
	// sliced at the end.
	var (
		buf  = sb.data[:0]
		ends = sb.ends[:0]
		ids  keyIDs
	)
	defer func() { sb.data, sb.events, sb.ends = buf, b.events, ends }()
	for i, it := range items {
		e := it.event
		if e == nil {
			b.reject(i, it.probs...)
			continue
		}
		// Removing the api_key label may fix the label count, so validate
		// after it; report key problems first.
		var probs []schemas.FieldError
		if p := replaceAPIKey(e, headerKey, &ids); p != nil {
			probs = append(probs, *p)
		}
		e.HideSecrets()
		if err := e.Validate(); err != nil {
			probs = append(probs, validationProblems(err)...)
		}
		if !e.Time.IsZero() {
			if p := lim.timeProblem(e.Time, now); p != nil && !hasField(probs, "time") {
				probs = append(probs, *p)
			}
		}
		if len(probs) > 0 {
			b.reject(i, probs...)
			continue
		}
		e.Time = e.Time.UTC()
		if cap(buf) == 0 {
			buf = make([]byte, 0, 512*(len(items)-i))
		}
		// AppendJSON writes what json.Marshal would, without reflection;
		// Validate has ruled out what json.Marshal refuses (times outside
		// years 0–9999), and raw_usage was checked when it was decoded.
		key := len(buf)
		buf = append(buf, e.EventID...)
		value := len(buf)
		buf = e.AppendJSON(buf)
		if n := len(buf) - value; n > maxEventBytes {
			buf = buf[:key]
			b.reject(i, schemas.FieldError{Code: schemas.CodeTooLarge, Message: fmt.Sprintf(
				"event is %d bytes once encoded, the limit is %d; trim raw_usage or labels", n, maxEventBytes)})
			continue
		}
		ends = append(ends, encodedAt{key, value, len(buf)})
		b.events = append(b.events, decoded{event: e})
	}
	for j, o := range ends {
		b.events[j].key = buf[o.key:o.value:o.value]
		b.events[j].value = buf[o.value:o.end:o.end]
	}
	return b
}

// scopeCheck refuses items when a scoped token may not report one of
// them.
func scopeCheck(g *access, items []item) (outcome, bool) {
	if !g.scoped() {
		return outcome{}, false
	}
	var b batch
	b.total = len(items)
	for i, it := range items {
		if it.event == nil {
			continue
		}
		if probs := g.scopeProblems(it.event); len(probs) > 0 {
			b.reject(i, probs...)
		}
	}
	if b.invalid == 0 {
		return outcome{}, false
	}
	return outcome{status: http.StatusForbidden, code: codeOutOfScope, total: b.total, invalid: b.invalid, errors: b.errors,
		msg: fmt.Sprintf("%d of %d events report for a source or team this token may not report for, so none of the request was stored: fix or drop the events listed in errors, or use the token of the producer they belong to", b.invalid, b.total)}, true
}

// validationProblems lists the problems of err, an error of
// schemas.Event.Validate. Only an invalid event gets here: errors.As puts
// its target on the heap.
func validationProblems(err error) []schemas.FieldError {
	var verr *schemas.ValidationError
	if errors.As(err, &verr) {
		return verr.Problems
	}
	return []schemas.FieldError{{Code: schemas.CodeInvalidValue, Message: err.Error()}}
}

func hasField(probs []schemas.FieldError, field string) bool {
	for _, p := range probs {
		if p.Field == field {
			return true
		}
	}
	return false
}

func (b *batch) reject(i int, probs ...schemas.FieldError) {
	b.invalid++
	for _, p := range probs {
		if len(b.errors) == maxErrors {
			return
		}
		code := p.Code
		if code == "" {
			code = schemas.CodeInvalidValue
		}
		b.errors = append(b.errors, EventError{Index: i, Field: p.Field, Code: code, Message: p.Message})
	}
}

// keyIDs hashes the API keys of one request, each distinct key once: a
// gateway's batch carries a few keys many times over, and a SHA-256 and
// its string for every event was a tenth of the accept path. It lives as
// long as check, so no raw key outlives its request here.
type keyIDs struct {
	m map[string]string
}

// maxKeyIDs bounds the keys one request's keyIDs remembers.
const maxKeyIDs = 256

// id is APIKeyID(raw).
func (k *keyIDs) id(raw string) string {
	if id, ok := k.m[raw]; ok {
		return id
	}
	id := APIKeyID(raw)
	if k.m == nil {
		k.m = make(map[string]string)
	}
	if len(k.m) < maxKeyIDs {
		k.m[raw] = id
	}
	return id
}

// hash is schemas.HashKey(s).
func (k *keyIDs) hash(s string) string {
	if s == "" || schemas.IsAPIKeyID(s) {
		return s
	}
	return k.id(s)
}

// replaceAPIKey moves a raw API key from the api_key label (or else from
// the request header) into APIKeyID, so that the raw key goes no further.
// ids hashes the keys.
func replaceAPIKey(e *schemas.Event, headerKey string, ids *keyIDs) *schemas.FieldError {
	// An api_key_id that is not a hash is a raw key.
	e.APIKeyID = ids.hash(e.APIKeyID)
	var id, field string
	var prob *schemas.FieldError
	for k, raw := range e.Labels {
		// Any spelling of the label counts: a raw key must never slip through.
		if !strings.EqualFold(k, apiKeyLabel) {
			continue
		}
		delete(e.Labels, k)
		switch kid := ids.id(raw); {
		case raw == "":
			prob = &schemas.FieldError{Field: "labels." + k, Code: schemas.CodeRequired, Message: "is empty; send the caller's API key or leave the label out"}
		case id != "" && kid != id:
			prob = &schemas.FieldError{Field: "labels." + k, Code: schemas.CodeInvalidValue, Message: "differs from labels." + field + "; send one API key per event"}
		default:
			id, field = kid, k
		}
	}
	if e.Labels != nil && len(e.Labels) == 0 {
		e.Labels = nil
	}
	switch {
	case prob != nil:
		return prob
	case id != "" && e.APIKeyID != "" && e.APIKeyID != id:
		return &schemas.FieldError{Field: "api_key_id", Code: schemas.CodeInvalidValue, Message: "does not match the hash of labels." + field + "; send one or the other"}
	case id != "":
		e.APIKeyID = id
	case e.APIKeyID == "" && headerKey != "":
		e.APIKeyID = ids.id(headerKey)
	}
	return nil
}
