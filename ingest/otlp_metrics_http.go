package ingest

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/aivis-dev/aivis/ingest/otlp"
)

// MetricsPath is the OTLP/HTTP metric export route, beside TracesPath, so
// that an exporter pointed at the ingest address sends its GenAI metrics
// here.
const MetricsPath = "/v1/metrics"

// Headers on a successful metric export.
const (
	pointsAcceptedHeader = "X-AIVIS-Events-Accepted"
	pointsSkippedHeader  = "X-AIVIS-Points-Skipped"
)

// serveMetrics accepts an OTLP/HTTP metric export and produces one event
// per interval and attribute set of gen_ai.client.token.usage (package
// ingest/otlp); other metrics are skipped. It answers as serveTraces does,
// with an ExportMetricsServiceResponse whose partial_success counts the
// rejected data points.
func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	format, ok := otlp.FormatOf(r.Header.Get("Content-Type"))
	t := &traceRequest{s: s, format: format, formatOK: ok}
	s.accept(w, r, &metricsRequest{traceRequest: t})
}

// metricsRequest is a POST /v1/metrics; it shares the trace request's
// header checks and error answers.
type metricsRequest struct {
	*traceRequest
	res otlp.MetricsResult
}

func (m *metricsRequest) route() string { return routeMetrics }

func (m *metricsRequest) parse(body []byte) ([]item, *refusal) {
	s := m.s
	if m.gzipped {
		var ref *refusal
		if body, ref = s.gunzip(body); ref != nil {
			return nil, ref
		}
	}
	md, err := otlp.DecodeMetrics(body, m.format)
	if err != nil {
		return nil, &refusal{http.StatusBadRequest, codeBadRequest, err.Error()}
	}
	m.res = otlp.ConvertMetrics(md)
	s.metrics.pointsSkipped.Add(float64(m.res.Skipped))
	if len(m.res.Events) > s.lim.maxEvents {
		s.metrics.pointsRejected.Add(float64(len(m.res.Events) + m.res.RejectedPoints))
		return nil, &refusal{http.StatusRequestEntityTooLarge, codeTooManyEvents, fmt.Sprintf(
			"the export makes %d usage events, more than the %d events ingest takes per request; export more often (OTEL_METRIC_EXPORT_INTERVAL) or raise ingest.max_events_per_request",
			len(m.res.Events), s.lim.maxEvents)}
	}
	items := make([]item, 0, len(m.res.Events)+len(m.res.Rejected))
	for _, ev := range m.res.Events {
		items = append(items, item{event: ev})
	}
	for _, pe := range m.res.Rejected {
		items = append(items, item{probs: pe.Problems})
	}
	return items, nil
}

// render answers the OTLP way, as for traces.
func (m *metricsRequest) render(w http.ResponseWriter, o outcome) {
	s := m.s
	s.metrics.pointsAccepted.Add(float64(o.accepted))
	s.metrics.pointsRejected.Add(float64(m.res.RejectedPoints))
	if o.code == "" || o.code == codeInvalidEvent {
		h := w.Header()
		h.Set(pointsAcceptedHeader, strconv.Itoa(o.accepted))
		h.Set(pointsSkippedHeader, strconv.Itoa(m.res.Skipped))
		s.write(w, routeMetrics, http.StatusOK, m.format.ContentType(),
			otlp.MetricsResponse(m.format, int64(m.res.RejectedPoints+o.invalid-len(m.res.Rejected)), m.rejectedMessage(o)))
		return
	}
	m.traceRequest.render(w, o)
}

// rejectedMessage names the first rejected points and events with their
// problems.
func (m *metricsRequest) rejectedMessage(o outcome) string {
	if o.invalid == 0 {
		return ""
	}
	errs := make([]string, 0, len(m.res.Rejected))
	for _, e := range m.res.Rejected {
		errs = append(errs, e.Error())
	}
	errs = appendEventProblems(errs, o.errors, len(m.res.Events), func(i int) string { return m.res.Events[i].EventID })
	listed := errs[:min(len(errs), maxRejectedListed)]
	msg := fmt.Sprintf("%s data points were rejected and not counted (fix the exporter or instrumentation; resending will not help): %s",
		otlp.MetricTokenUsage, strings.Join(listed, " | "))
	if len(errs) > len(listed) {
		msg += fmt.Sprintf(" | and %d more", len(errs)-len(listed))
	}
	return msg
}
