package ingest

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/ingest/otlp"
	"github.com/aivis-dev/aivis/internal/obs"
	"github.com/aivis-dev/aivis/schemas"
)

// TracesPath is the OTLP/HTTP trace export route, so that an OpenTelemetry
// exporter pointed at the ingest address sends its spans here.
const TracesPath = "/v1/traces"

// Headers on a successful trace export, for operators checking what a
// request did; the OTLP response itself only counts rejected spans.
const (
	spansAcceptedHeader = "X-AIVIS-Spans-Accepted"
	spansSkippedHeader  = "X-AIVIS-Spans-Skipped"
)

// maxRejectedListed bounds the spans named in partial_success.error_message.
const maxRejectedListed = 5

var (
	otlpSpansTotal = promauto.With(obs.Registry).NewCounterVec(prometheus.CounterOpts{
		Name: "aivis_ingest_otlp_spans_total",
		Help: "Spans received on POST /v1/traces, by result: accepted (produced as usage events), rejected (GenAI usage that could not be normalized) or skipped (no GenAI usage).",
	}, []string{"result"})
	otlpSpansAccepted = otlpSpansTotal.WithLabelValues("accepted")
	otlpSpansRejected = otlpSpansTotal.WithLabelValues("rejected")
	otlpSpansSkipped  = otlpSpansTotal.WithLabelValues("skipped")
)

// serveTraces accepts an OTLP/HTTP trace export and produces one event per
// span with GenAI usage (package ingest/otlp). It follows OTLP/HTTP rather
// than /v1/events: 200 with an ExportTraceServiceResponse in the request's
// encoding once Kafka acknowledged the events, rejected spans counted in
// partial_success (the others are produced), errors as google.rpc.Status.
// 503 with Retry-After has the same meaning as on /v1/events; exporters
// retry it with the same span ids, which are the event ids.
func (s *Server) serveTraces(w http.ResponseWriter, r *http.Request) {
	format, ok := otlp.FormatOf(r.Header.Get("Content-Type"))
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		s.otlpStatus(w, format, http.StatusMethodNotAllowed, otlp.CodeUnimplemented, "use POST to export traces")
		return
	}
	if !ok {
		s.otlpStatus(w, otlp.JSON, http.StatusUnsupportedMediaType, otlp.CodeInvalidArgument, fmt.Sprintf(
			"Content-Type %q is not supported on %s; send application/x-protobuf or application/json (OTLP/HTTP)", r.Header.Get("Content-Type"), TracesPath))
		return
	}
	producer, ok := s.auth.check(r.Header.Get("Authorization"))
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="aivis"`)
		s.otlpStatus(w, format, http.StatusUnauthorized, otlp.CodeUnauthenticated,
			"missing or unknown bearer token: configure the exporter with header `Authorization: Bearer <token>` (OTEL_EXPORTER_OTLP_HEADERS), a token whose SHA-256 is listed under ingest.producers")
		return
	}
	gzipped := false
	switch ce := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); ce {
	case "", "identity":
	case "gzip":
		gzipped = true
	default:
		s.otlpStatus(w, format, http.StatusUnsupportedMediaType, otlp.CodeInvalidArgument, fmt.Sprintf(
			"Content-Encoding %q is not supported; send the body uncompressed or gzip-compressed", ce))
		return
	}
	// A producer with no tokens left is turned away before its body is read.
	if lerr := s.admission.check(producer, 1); lerr != nil {
		s.otlpLimited(w, format, lerr)
		return
	}
	select {
	case s.slots <- struct{}{}:
		inflight.Inc()
	default:
		s.otlpUnavailable(w, format, fmt.Sprintf("ingest is handling its limit of %d concurrent requests; the exporter should retry after %s seconds (operators: raise ingest.max_inflight_requests or add ingest replicas)",
			s.cfg.MaxInflightRequests, s.retryAfter))
		return
	}
	release := s.release
	defer func() {
		if release != nil {
			release()
		}
	}()

	body, berr := s.readBody(w, r)
	if berr == nil && gzipped {
		body, berr = s.gunzip(body)
	}
	if berr != nil {
		s.otlpStatus(w, format, berr.status, otlpCode(berr.status), berr.msg)
		return
	}
	td, err := otlp.Decode(body, format)
	if err != nil {
		s.otlpStatus(w, format, http.StatusBadRequest, otlp.CodeInvalidArgument, err.Error())
		return
	}
	res := otlp.Convert(td)
	otlpSpansSkipped.Add(float64(res.Skipped))
	if len(res.Events) > s.lim.maxEvents {
		otlpSpansRejected.Add(float64(len(res.Events) + len(res.Rejected)))
		s.otlpStatus(w, format, http.StatusRequestEntityTooLarge, otlp.CodeInvalidArgument, fmt.Sprintf(
			"the export has %d spans with GenAI usage, more than the %d events ingest takes per request; lower the exporter's batch size (OTEL_BSP_MAX_EXPORT_BATCH_SIZE) or raise ingest.max_events_per_request",
			len(res.Events), s.lim.maxEvents))
		return
	}

	// Each event goes through the same decoding as one posted to
	// /v1/events: strict validation, API key hashing, size limit.
	var b batch
	for _, ev := range res.Events {
		value, err := json.Marshal(ev)
		if err != nil {
			b.total++
			b.reject(b.total-1, schemas.FieldError{Code: schemas.CodeInvalidValue, Message: "encoding the event: " + err.Error()})
			continue
		}
		b.add(value, s.lim, r.Header.Get(APIKeyHeader))
	}
	rejected := rejectedMessage(res, b)
	nRejected := len(res.Rejected) + b.invalid
	otlpSpansRejected.Add(float64(nRejected))
	if nRejected > 0 {
		eventsRejected.Add(float64(nRejected))
		s.log.Debug("rejected OTLP spans", "producer", producer, "rejected", nRejected, "message", rejected)
	}

	if len(b.events) > 0 {
		admitted, lerr := s.admission.take(producer, len(b.events))
		if lerr != nil {
			s.otlpLimited(w, format, lerr)
			return
		}
		recs := make([]*kgo.Record, len(b.events))
		for i, d := range b.events {
			recs[i] = &kgo.Record{Topic: schemas.TopicRaw, Key: []byte(d.event.EventID), Value: d.value}
		}
		// The produce call owns the slot from here, as in serveBatch.
		release = nil
		if err := s.produce(r.Context(), recs); err != nil {
			// The exporter resends; that attempt is the one to count.
			admitted.refund()
			eventsRejected.Add(float64(len(recs)))
			s.log.Warn("producing OTLP span events to Kafka", "producer", producer, "events", len(recs), "err", err)
			if errors.Is(err, kerr.MessageTooLarge) {
				s.otlpStatus(w, format, http.StatusBadRequest, otlp.CodeInvalidArgument,
					"an event is larger than the Kafka topic accepts (operators: lower ingest.max_event_bytes below the topic's max.message.bytes)")
				return
			}
			s.otlpUnavailable(w, format, fmt.Sprintf("Kafka did not acknowledge the events within %s, so they may not be stored: the exporter should retry after %s seconds (span ids are event ids, so duplicates are dropped)",
				s.cfg.ProduceTimeout, s.retryAfter))
			return
		}
		eventsAccepted.Add(float64(len(recs)))
		otlpSpansAccepted.Add(float64(len(recs)))
	}
	h := w.Header()
	h.Set(spansAcceptedHeader, strconv.Itoa(len(b.events)))
	h.Set(spansSkippedHeader, strconv.Itoa(res.Skipped))
	s.otlpWrite(w, format, http.StatusOK, otlp.Response(format, int64(nRejected), rejected))
}

// rejectedMessage describes the rejected spans for partial_success, naming
// the first few with their problems.
func rejectedMessage(res otlp.Result, b batch) string {
	var errs []string
	for _, e := range res.Rejected {
		errs = append(errs, e.Error())
	}
	// Batch errors are indexed by position in res.Events.
	byIndex := map[int][]string{}
	var order []int
	for _, e := range b.errors {
		if _, seen := byIndex[e.Index]; !seen {
			order = append(order, e.Index)
		}
		p := e.Message
		if e.Field != "" {
			p = e.Field + ": " + p
		}
		byIndex[e.Index] = append(byIndex[e.Index], p)
	}
	for _, i := range order {
		id := "?"
		if i < len(res.Events) {
			id = res.Events[i].EventID
		}
		errs = append(errs, fmt.Sprintf("event %s: %s", id, strings.Join(byIndex[i], "; ")))
	}
	n := len(res.Rejected) + b.invalid
	if n == 0 {
		return ""
	}
	listed := errs[:min(len(errs), maxRejectedListed)]
	msg := fmt.Sprintf("%d spans with GenAI usage were rejected and not stored (fix the instrumentation; resending will not help): %s", n, strings.Join(listed, " | "))
	if len(errs) > len(listed) {
		msg += fmt.Sprintf(" | and %d more", len(errs)-len(listed))
	}
	return msg
}

// gunzip decompresses a gzip body, bounding the result by the body limit.
func (s *Server) gunzip(body []byte) ([]byte, *bodyError) {
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return nil, &bodyError{http.StatusBadRequest, "reading the gzip request body (Content-Encoding: gzip): " + err.Error()}
	}
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(zr, s.cfg.MaxBodyBytes+1))
	if err != nil {
		return nil, &bodyError{http.StatusBadRequest, "decompressing the gzip request body: " + err.Error()}
	}
	if n > s.cfg.MaxBodyBytes {
		return nil, &bodyError{http.StatusRequestEntityTooLarge, fmt.Sprintf(
			"decompressed request body is larger than %d bytes; lower the exporter's batch size (operators: ingest.max_body_bytes)", s.cfg.MaxBodyBytes)}
	}
	return buf.Bytes(), nil
}

// otlpCode maps an HTTP status to the gRPC code of the error body.
func otlpCode(status int) int32 {
	switch status {
	case http.StatusServiceUnavailable:
		return otlp.CodeUnavailable
	case http.StatusRequestEntityTooLarge:
		return otlp.CodeResourceExhausted
	default:
		return otlp.CodeInvalidArgument
	}
}

// otlpLimited answers a request refused by a producer's limit: 429 with
// Retry-After, which exporters retry, or 413 when the request alone is over
// the limit.
func (s *Server) otlpLimited(w http.ResponseWriter, f otlp.Format, lerr *limitError) {
	if lerr.retryAfter > 0 {
		w.Header().Set("Retry-After", retryAfterSeconds(lerr.retryAfter))
	}
	s.otlpStatus(w, f, lerr.status, otlp.CodeResourceExhausted, lerr.msg)
}

func (s *Server) otlpUnavailable(w http.ResponseWriter, f otlp.Format, msg string) {
	w.Header().Set("Retry-After", s.retryAfter)
	s.otlpStatus(w, f, http.StatusServiceUnavailable, otlp.CodeUnavailable, msg)
}

func (s *Server) otlpStatus(w http.ResponseWriter, f otlp.Format, status int, code int32, msg string) {
	s.otlpWrite(w, f, status, otlp.Status(f, code, msg))
}

func (s *Server) otlpWrite(w http.ResponseWriter, f otlp.Format, status int, body []byte) {
	requestsTotal.WithLabelValues(strconv.Itoa(status)).Inc()
	h := w.Header()
	h.Set("Content-Type", f.ContentType())
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
