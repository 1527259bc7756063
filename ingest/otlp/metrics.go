package otlp

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"

	"github.com/aivis-dev/aivis/schemas"
)

// OTLP metrics: ingest receives OTLP/HTTP metric exports at POST
// /v1/metrics and hands them to DecodeMetrics and ConvertMetrics.
//
// The token-usage histogram of the GenAI conventions,
// gen_ai.client.token.usage, becomes usage events: the data points of one
// interval that share their attributes apart from gen_ai.token.type (input
// and output) make one llm.request event whose input_tokens and
// output_tokens are the points' sums. Such an event stands for every
// request of the interval (label otlp_requests holds their count), so its
// cost is exact for per-token prices, but windows count it as one request.
// Only delta temporality can be counted by a stateless ingest: cumulative
// points are rejected with the exporter setting that fixes them.
//
//	event field   data point
//	event_id      "otlpm:" + a hash of the resource, the metric's attributes and the interval (stable across retries)
//	time          start_time_unix_nano (else time_unix_nano)
//	source, labels, provider, model, operation, status, error_type: as for spans
//
// Every other metric, the server-side GenAI metrics among them
// (gen_ai.server.request.duration, gen_ai.server.time_to_first_token,
// gen_ai.server.time_per_output_token) and the client durations, is
// accepted and skipped: durations carry no tokens, hence no cost.
//
// An application should send token usage either as spans or as this
// metric, not both, or its cost is counted twice.

// MetricTokenUsage is the GenAI token-usage histogram.
const MetricTokenUsage = "gen_ai.client.token.usage"

// MetricEventIDPrefix starts every event id made from metric points.
const MetricEventIDPrefix = "otlpm:"

const (
	attrTokenType = "gen_ai.token.type"
	// labelRequests holds the number of requests a metric event stands for.
	labelRequests = "otlp_requests"
)

// DecodeMetrics reads an OTLP/HTTP metric export (an
// ExportMetricsServiceRequest, which has the wire form of MetricsData) in
// format f. OTLP JSON carries no ids in what is read here, so no id repair
// is needed.
func DecodeMetrics(body []byte, f Format) (*metricspb.MetricsData, error) {
	md := &metricspb.MetricsData{}
	if f == JSON {
		if probs := schemas.CheckJSONFolded(body); len(probs) > 0 {
			return nil, &JSONError{Problems: probs}
		}
		if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(body, md); err != nil {
			return nil, fmt.Errorf("decoding the OTLP JSON metric export (an ExportMetricsServiceRequest in the OTLP JSON encoding): %w", err)
		}
		return md, nil
	}
	if err := proto.Unmarshal(body, md); err != nil {
		return nil, fmt.Errorf("decoding the OTLP protobuf metric export (an ExportMetricsServiceRequest; check that Content-Type matches the body): %w", err)
	}
	return md, nil
}

// PointError is a token-usage data point that could not be counted.
type PointError struct {
	Metric   string
	Problems []schemas.FieldError
}

func (e PointError) Error() string {
	parts := make([]string, 0, len(e.Problems))
	for _, p := range e.Problems {
		parts = append(parts, p.Error())
	}
	return fmt.Sprintf("%s data point: %s", e.Metric, strings.Join(parts, "; "))
}

// MetricsResult is what ConvertMetrics made of a metric export.
type MetricsResult struct {
	// Events are the usage events, each valid under schemas.Event.Validate.
	Events []*schemas.Event
	// Rejected lists the token-usage points that could not be counted;
	// RejectedPoints counts them.
	Rejected       []PointError
	RejectedPoints int
	// Skipped counts the data points of other metrics.
	Skipped int
}

// usageKey groups the points of one event.
type usageKey struct {
	id    string
	start uint64
	time  uint64
}

type usageGroup struct {
	key           usageKey
	attrs         []*commonpb.KeyValue
	resLabels     map[string]string
	source        string
	input, output *int64
	requests      uint64
	points        int
	problems      []schemas.FieldError
}

// ConvertMetrics turns the token-usage points of md into events.
func ConvertMetrics(md *metricspb.MetricsData) MetricsResult {
	var res MetricsResult
	groups := map[usageKey]*usageGroup{}
	var order []*usageGroup
	for _, rm := range md.GetResourceMetrics() {
		resAttrs := rm.GetResource().GetAttributes()
		resLabels := labelsOf(nil, resAttrs)
		source := DefaultSource
		for _, kv := range resAttrs {
			if kv.GetKey() == attrServiceName && stringOf(kv.GetValue()) != "" {
				source = stringOf(kv.GetValue())
			}
		}
		resHash := attrsHash(resAttrs)
		for _, sm := range rm.GetScopeMetrics() {
			for _, m := range sm.GetMetrics() {
				if m.GetName() != MetricTokenUsage {
					res.Skipped += pointCount(m)
					continue
				}
				h := m.GetHistogram()
				if h == nil {
					res.Rejected = append(res.Rejected, PointError{Metric: m.GetName(), Problems: []schemas.FieldError{{
						Field: "histogram", Code: schemas.CodeInvalidType,
						Message: "gen_ai.client.token.usage must be a histogram, as the GenAI conventions define it"}}})
					res.RejectedPoints += max(1, pointCount(m))
					continue
				}
				if h.GetAggregationTemporality() != metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_DELTA {
					res.Rejected = append(res.Rejected, PointError{Metric: m.GetName(), Problems: []schemas.FieldError{{
						Field: "aggregation_temporality", Code: schemas.CodeInvalidValue,
						Message: "must be delta: aivis counts each export once and keeps no running totals; set OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=delta in the exporter"}}})
					// Counted as one when it has no points, as a metric
					// that is no histogram is: the export is still refused.
					res.RejectedPoints += max(1, len(h.GetDataPoints()))
					continue
				}
				for _, dp := range h.GetDataPoints() {
					if dp == nil {
						continue
					}
					attrs := withoutAttr(dp.GetAttributes(), attrTokenType)
					k := usageKey{id: resHash + "/" + attrsHash(attrs), start: dp.GetStartTimeUnixNano(), time: dp.GetTimeUnixNano()}
					g := groups[k]
					if g == nil {
						g = &usageGroup{key: k, attrs: attrs, resLabels: resLabels, source: source}
						groups[k] = g
						order = append(order, g)
					}
					g.add(dp)
				}
			}
		}
	}
	for _, g := range order {
		ev, probs := g.event()
		if len(probs) > 0 {
			res.Rejected = append(res.Rejected, PointError{Metric: MetricTokenUsage, Problems: probs})
			res.RejectedPoints += g.points
			continue
		}
		res.Events = append(res.Events, ev)
	}
	return res
}

// add folds one data point into the group.
func (g *usageGroup) add(dp *metricspb.HistogramDataPoint) {
	g.points++
	problem := func(code, format string, args ...any) {
		g.problems = append(g.problems, schemas.FieldError{Field: "data_points", Code: code, Message: fmt.Sprintf(format, args...)})
	}
	var typ string
	for _, kv := range dp.GetAttributes() {
		if kv.GetKey() == attrTokenType {
			typ = strings.ToLower(stringOf(kv.GetValue()))
		}
	}
	var slot **int64
	switch typ {
	case "input", "prompt":
		slot = &g.input
	case "output", "completion":
		slot = &g.output
	default:
		problem(schemas.CodeInvalidValue, "gen_ai.token.type %q: want input or output", truncate(typ, 64))
		return
	}
	if dp.Sum == nil {
		problem(schemas.CodeRequired, "the %s point has no sum: the sum is the tokens counted", typ)
		return
	}
	sum := dp.GetSum()
	if sum < 0 || sum != math.Trunc(sum) || sum > maxCount || math.IsNaN(sum) {
		problem(schemas.CodeOutOfRange, "the %s point's sum must be a whole token count between 0 and %d, got %v", typ, int64(maxCount), sum)
		return
	}
	if *slot != nil {
		problem(schemas.CodeDuplicateKey, "two %s points for the same attributes and interval", typ)
		return
	}
	n := int64(sum)
	*slot = &n
	g.requests = max(g.requests, dp.GetCount())
}

// event builds the group's event.
func (g *usageGroup) event() (*schemas.Event, []schemas.FieldError) {
	probs := g.problems
	a := readAttrs(g.attrs)
	e := &schemas.Event{SchemaVersion: schemas.SchemaVersion, Kind: schemas.KindLLMRequest, Status: schemas.StatusOK, Source: g.source}
	at := g.key.start
	if at == 0 {
		at = g.key.time
	}
	switch {
	case at == 0:
		probs = append(probs, schemas.FieldError{Field: "time_unix_nano", Code: schemas.CodeRequired, Message: "is required: the interval's start becomes the event time"})
	case at > math.MaxInt64:
		probs = append(probs, schemas.FieldError{Field: "time_unix_nano", Code: schemas.CodeOutOfRange, Message: fmt.Sprintf("%d is out of range (nanoseconds since 1970)", at)})
	default:
		e.Time = time.Unix(0, int64(at)).UTC()
	}
	e.Provider = Provider(a.provider)
	if e.Provider == "" {
		e.Provider = Provider(a.system)
	}
	e.Model = a.responseModel
	if e.Model == "" {
		e.Model = a.requestModel
	}
	if e.Provider == "" {
		probs = append(probs, schemas.FieldError{Field: "attributes", Code: schemas.CodeRequired, Message: "gen_ai.provider.name is required to price the tokens"})
	}
	if e.Model == "" {
		probs = append(probs, schemas.FieldError{Field: "attributes", Code: schemas.CodeRequired, Message: "gen_ai.response.model or gen_ai.request.model is required to price the tokens"})
	}
	e.Operation = a.operation
	if et := a.errorType; et != "" {
		e.Status, e.ErrorType = schemas.StatusError, truncate(et, 128)
	}
	e.Usage = &schemas.Usage{InputTokens: g.input, OutputTokens: g.output}
	labels := make(map[string]string, len(g.resLabels)+2)
	for k, v := range g.resLabels {
		labels[k] = v
	}
	for k, v := range a.labels {
		labels[k] = v
	}
	labels[labelRequests] = strconv.FormatUint(g.requests, 10)
	e.Labels = labels
	sum := sha256.New()
	var buf [16]byte
	binary.BigEndian.PutUint64(buf[:8], g.key.start)
	binary.BigEndian.PutUint64(buf[8:], g.key.time)
	sum.Write([]byte(g.key.id))
	sum.Write(buf[:])
	e.EventID = MetricEventIDPrefix + hex.EncodeToString(sum.Sum(nil)[:16])
	if len(probs) > 0 {
		return nil, probs
	}
	if err := e.Validate(); err != nil {
		return nil, []schemas.FieldError{{Field: "event", Code: schemas.CodeInvalidValue, Message: err.Error()}}
	}
	return e, nil
}

// pointCount is the number of data points of m, whatever its type.
func pointCount(m *metricspb.Metric) int {
	switch {
	case m.GetHistogram() != nil:
		return len(m.GetHistogram().GetDataPoints())
	case m.GetSum() != nil:
		return len(m.GetSum().GetDataPoints())
	case m.GetGauge() != nil:
		return len(m.GetGauge().GetDataPoints())
	case m.GetExponentialHistogram() != nil:
		return len(m.GetExponentialHistogram().GetDataPoints())
	case m.GetSummary() != nil:
		return len(m.GetSummary().GetDataPoints())
	}
	return 0
}

func withoutAttr(kvs []*commonpb.KeyValue, key string) []*commonpb.KeyValue {
	out := make([]*commonpb.KeyValue, 0, len(kvs))
	for _, kv := range kvs {
		if kv.GetKey() != key {
			out = append(out, kv)
		}
	}
	return out
}

// attrsHash is an order-independent digest of attributes, for grouping and
// for stable event ids.
func attrsHash(kvs []*commonpb.KeyValue) string {
	parts := make([]string, 0, len(kvs))
	for _, kv := range kvs {
		b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(kv.GetValue())
		parts = append(parts, kv.GetKey()+"="+hex.EncodeToString(b))
	}
	slices.Sort(parts)
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(sum[:12])
}

// MetricsResponse is the ExportMetricsServiceResponse for f: its
// partial_success counts rejected data points (same wire form as the trace
// response, another JSON name).
func MetricsResponse(f Format, rejectedPoints int64, msg string) []byte {
	if f != JSON {
		return Response(f, rejectedPoints, msg)
	}
	type partial struct {
		RejectedDataPoints int64  `json:"rejectedDataPoints,string,omitempty"`
		ErrorMessage       string `json:"errorMessage,omitempty"`
	}
	var resp struct {
		PartialSuccess *partial `json:"partialSuccess,omitempty"`
	}
	if rejectedPoints != 0 || msg != "" {
		resp.PartialSuccess = &partial{RejectedDataPoints: rejectedPoints, ErrorMessage: msg}
	}
	return mustJSON(resp)
}
