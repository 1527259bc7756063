package ingest

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/aivis-dev/aivis/ingest/otlp"
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

// serveTraces accepts an OTLP/HTTP trace export and produces one event per
// span with GenAI usage (package ingest/otlp). It follows OTLP/HTTP rather
// than /v1/events: 200 with an ExportTraceServiceResponse in the request's
// encoding once Kafka acknowledged the events, rejected spans counted in
// partial_success (the others are produced), errors as google.rpc.Status.
// 503 with Retry-After has the same meaning as on /v1/events; exporters
// retry it with the same span ids, which are the event ids.
func (s *Server) serveTraces(w http.ResponseWriter, r *http.Request) {
	format, ok := otlp.FormatOf(r.Header.Get("Content-Type"))
	s.accept(w, r, &traceRequest{s: s, format: format, formatOK: ok})
}

// traceRequest is a POST /v1/traces.
type traceRequest struct {
	s        *Server
	format   otlp.Format
	formatOK bool
	gzipped  bool
	res      otlp.Result
}

var otlpAdvice = advice{
	method:           "use POST to export traces",
	unauthorized:     "missing or unknown bearer token: configure the exporter with header `Authorization: Bearer <token>` (OTEL_EXPORTER_OTLP_HEADERS), a token whose SHA-256 is listed under ingest.producers",
	overloaded:       "ingest is handling its limit of %d concurrent requests; the exporter should retry after %s seconds (operators: raise ingest.max_inflight_requests or add ingest replicas)",
	eventTooLarge:    "an event is larger than the Kafka topic accepts (operators: lower ingest.max_event_bytes below the topic's max.message.bytes)",
	kafkaUnavailable: "Kafka did not acknowledge the events within %s, so they may not be stored: the exporter should retry after %s seconds (span ids are event ids, so duplicates are dropped)",
}

func (t *traceRequest) route() string { return routeTraces }

// prepare checks the encoding. Exporters cannot fix single spans, so the
// valid ones are always produced and the others counted in partial_success.
func (t *traceRequest) prepare(r *http.Request) (bool, *refusal) {
	if !t.formatOK {
		t.format = otlp.JSON
		return true, &refusal{http.StatusUnsupportedMediaType, codeUnsupportedMediaType, fmt.Sprintf(
			"Content-Type %q is not supported on %s; send application/x-protobuf or application/json (OTLP/HTTP)", r.Header.Get("Content-Type"), TracesPath)}
	}
	switch ce := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); ce {
	case "", "identity":
	case "gzip":
		t.gzipped = true
	default:
		return true, &refusal{http.StatusUnsupportedMediaType, codeUnsupportedMediaType, fmt.Sprintf(
			"Content-Encoding %q is not supported; send the body uncompressed or gzip-compressed", ce)}
	}
	return true, nil
}

// parse decodes the export and converts its spans: the events first, in
// the order of Result.Events, then the spans that could not become one.
func (t *traceRequest) parse(body []byte) ([]item, *refusal) {
	if t.gzipped {
		var ref *refusal
		if body, ref = t.s.gunzip(body); ref != nil {
			return nil, ref
		}
	}
	td, err := otlp.Decode(body, t.format)
	if err != nil {
		return nil, &refusal{http.StatusBadRequest, codeBadRequest, err.Error()}
	}
	t.res = otlp.Convert(td)
	t.s.metrics.spansSkipped.Add(float64(t.res.Skipped))
	if len(t.res.Events) > t.s.lim.maxEvents {
		t.s.metrics.spansRejected.Add(float64(len(t.res.Events) + len(t.res.Rejected)))
		return nil, &refusal{http.StatusRequestEntityTooLarge, codeTooManyEvents, fmt.Sprintf(
			"the export has %d spans with GenAI usage, more than the %d events ingest takes per request; lower the exporter's batch size (OTEL_BSP_MAX_EXPORT_BATCH_SIZE) or raise ingest.max_events_per_request",
			len(t.res.Events), t.s.lim.maxEvents)}
	}
	items := make([]item, 0, len(t.res.Events)+len(t.res.Rejected))
	for _, ev := range t.res.Events {
		items = append(items, item{event: ev})
	}
	for _, se := range t.res.Rejected {
		items = append(items, item{probs: se.Problems})
	}
	return items, nil
}

// render answers the OTLP way: an ExportTraceServiceResponse that counts
// the invalid spans when the valid ones are stored (or there are none),
// else a google.rpc.Status.
func (t *traceRequest) render(w http.ResponseWriter, o outcome) {
	s := t.s
	s.metrics.spansAccepted.Add(float64(o.accepted))
	s.metrics.spansRejected.Add(float64(o.invalid))
	if o.code == "" || o.code == codeInvalidEvent {
		h := w.Header()
		h.Set(spansAcceptedHeader, strconv.Itoa(o.accepted))
		h.Set(spansSkippedHeader, strconv.Itoa(t.res.Skipped))
		s.write(w, routeTraces, http.StatusOK, t.format.ContentType(), otlp.Response(t.format, int64(o.invalid), t.rejectedMessage(o)))
		return
	}
	status, code := o.status, otlp.CodeInvalidArgument
	switch {
	case o.lerr != nil, o.code == codeBodyTooLarge:
		code = otlp.CodeResourceExhausted
	case o.code == codeMethodNotAllowed:
		code = otlp.CodeUnimplemented
	case o.code == codeUnauthorized:
		code = otlp.CodeUnauthenticated
	case o.code == codeOutOfScope:
		code = otlp.CodePermissionDenied
	case o.code == codeOverloaded, o.code == codeKafkaUnavailable:
		code = otlp.CodeUnavailable
	case o.code == codeEventTooLarge:
		// OTLP/HTTP answers data that must not be resent with 400.
		status = http.StatusBadRequest
	}
	s.write(w, routeTraces, status, t.format.ContentType(), otlp.Status(t.format, code, s.message(o, &otlpAdvice)))
}

// rejectedMessage describes the rejected spans for partial_success, naming
// the first few with their problems.
func (t *traceRequest) rejectedMessage(o outcome) string {
	if o.invalid == 0 {
		return ""
	}
	errs := make([]string, 0, len(t.res.Rejected))
	for _, e := range t.res.Rejected {
		errs = append(errs, e.Error())
	}
	errs = appendEventProblems(errs, o.errors, len(t.res.Events), func(i int) string { return t.res.Events[i].EventID })
	listed := errs[:min(len(errs), maxRejectedListed)]
	msg := fmt.Sprintf("%d spans with GenAI usage were rejected and not stored (fix the instrumentation; resending will not help): %s", o.invalid, strings.Join(listed, " | "))
	if len(errs) > len(listed) {
		msg += fmt.Sprintf(" | and %d more", len(errs)-len(listed))
	}
	return msg
}

// appendEventProblems appends the problems of the events among errors
// (indexed by their position among n converted events), one entry per
// event in the order first met: "event <id>: field: problem; ...".
func appendEventProblems(out []string, errors []EventError, n int, eventID func(int) string) []string {
	byIndex := map[int][]string{}
	var order []int
	for _, e := range errors {
		if e.Index >= n {
			continue
		}
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
		out = append(out, fmt.Sprintf("event %s: %s", eventID(i), strings.Join(byIndex[i], "; ")))
	}
	return out
}

// gunzip decompresses a gzip body, bounding the result by the body limit.
func (s *Server) gunzip(body []byte) ([]byte, *refusal) {
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return nil, &refusal{http.StatusBadRequest, codeUnreadableBody, "reading the gzip request body (Content-Encoding: gzip): " + err.Error()}
	}
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(zr, s.cfg.MaxBodyBytes+1))
	if err != nil {
		return nil, &refusal{http.StatusBadRequest, codeUnreadableBody, "decompressing the gzip request body: " + err.Error()}
	}
	if n > s.cfg.MaxBodyBytes {
		return nil, &refusal{http.StatusRequestEntityTooLarge, codeBodyTooLarge, fmt.Sprintf(
			"decompressed request body is larger than %d bytes; lower the exporter's batch size (operators: ingest.max_body_bytes)", s.cfg.MaxBodyBytes)}
	}
	return buf.Bytes(), nil
}
