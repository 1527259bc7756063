package otlp

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/aivis-dev/aivis/ingest/adapters"
	"github.com/aivis-dev/aivis/schemas"
)

// Span attribute names read by Convert (OpenTelemetry GenAI semantic
// conventions, v1.37 and later, with the deprecated names they replaced).
const (
	attrInputTokens         = "gen_ai.usage.input_tokens"
	attrOutputTokens        = "gen_ai.usage.output_tokens"
	attrPromptTokens        = "gen_ai.usage.prompt_tokens"     // deprecated: input_tokens
	attrCompletionTokens    = "gen_ai.usage.completion_tokens" // deprecated: output_tokens
	attrCacheReadTokens     = "gen_ai.usage.cache_read.input_tokens"
	attrCacheCreationTokens = "gen_ai.usage.cache_creation.input_tokens"
	attrReasoningTokens     = "gen_ai.usage.reasoning.output_tokens"
	attrUsagePrefix         = "gen_ai.usage."

	attrProvider      = "gen_ai.provider.name"
	attrSystem        = "gen_ai.system" // deprecated: provider.name
	attrRequestModel  = "gen_ai.request.model"
	attrResponseModel = "gen_ai.response.model"
	attrOperation     = "gen_ai.operation.name"
	attrStream        = "gen_ai.request.stream"
	attrErrorType     = "error.type"
	attrResponseTier  = "openai.response.service_tier"
	attrRequestTier   = "openai.request.service_tier"

	attrServiceName    = "service.name"
	attrEnvironment    = "deployment.environment.name"
	attrEnvironmentOld = "deployment.environment"
)

// labelAttrs maps resource and span attributes to event labels.
var labelAttrs = map[string]string{
	attrServiceName:     "service",
	attrEnvironment:     "environment",
	attrEnvironmentOld:  "environment",
	"aivis.team":        "team",
	"aivis.project":     "project",
	"aivis.cost_center": "cost_center",
}

// DefaultSource is the event source when the resource has no service.name.
const DefaultSource = "otlp"

// EventIDPrefix starts every event id made from a span.
const EventIDPrefix = "otlp:"

// maxCount bounds one token count, as schemas does.
const maxCount = schemas.MaxTokens

// Result is what Convert made of a trace export.
type Result struct {
	// Events are the usage events, one per span with GenAI usage, each
	// valid under schemas.Event.Validate.
	Events []*schemas.Event
	// Rejected lists the spans with GenAI usage that could not become an
	// event.
	Rejected []SpanError
	// Skipped counts spans without GenAI usage attributes.
	Skipped int
}

// SpanError says why one span could not become an event.
type SpanError struct {
	// TraceID and SpanID are hex, as sent (possibly malformed).
	TraceID, SpanID string
	Name            string
	Problems        []schemas.FieldError
}

func (e SpanError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.Error()
	}
	return fmt.Sprintf("span %s/%s %q: %s", e.TraceID, e.SpanID, e.Name, strings.Join(parts, "; "))
}

// Convert turns every span of td that carries GenAI token usage into an
// llm.request event. It does no I/O and never fails as a whole: spans
// without usage are skipped, spans whose usage cannot be normalized are
// listed in Result.Rejected.
func Convert(td *tracepb.TracesData) Result {
	var res Result
	for _, rs := range td.GetResourceSpans() {
		resLabels := labelsOf(nil, rs.GetResource().GetAttributes())
		resAttribution := attributionOf(attribution{}, rs.GetResource().GetAttributes())
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				attrs := readAttrs(sp.GetAttributes())
				if !attrs.hasUsage() {
					res.Skipped++
					continue
				}
				ev, err := convertSpan(sp, attrs, resLabels, attributionOf(resAttribution, sp.GetAttributes()))
				if err != nil {
					res.Rejected = append(res.Rejected, *err)
					continue
				}
				res.Events = append(res.Events, ev)
			}
		}
	}
	return res
}

// spanAttrs holds the span attributes Convert reads.
type spanAttrs struct {
	input, output, prompt, completion, cacheRead, cacheCreation, reasoning *commonpb.AnyValue

	provider, system, requestModel, responseModel, operation string
	errorType, responseTier, requestTier                     string
	stream                                                   bool

	labels map[string]string
	// usage holds every gen_ai.usage.* attribute, for raw_usage.
	usage map[string]*commonpb.AnyValue
	// repeated lists the attributes Convert reads that the span sets more
	// than once; which one was meant is unknown.
	repeated []string
}

// readKeys are the span attributes other than gen_ai.usage.* that Convert reads.
var readKeys = map[string]bool{
	attrProvider: true, attrSystem: true, attrRequestModel: true, attrResponseModel: true, attrOperation: true,
	attrStream: true, attrErrorType: true, attrResponseTier: true, attrRequestTier: true,
}

func readAttrs(kvs []*commonpb.KeyValue) *spanAttrs {
	a := &spanAttrs{}
	var seen []string
	for _, kv := range kvs {
		k, v := kv.GetKey(), kv.GetValue()
		if v == nil {
			continue
		}
		if _, label := labelAttrs[k]; label || readKeys[k] || strings.HasPrefix(k, attrUsagePrefix) {
			if slices.Contains(seen, k) {
				if !slices.Contains(a.repeated, k) {
					a.repeated = append(a.repeated, k)
				}
			}
			seen = append(seen, k)
		}
		if strings.HasPrefix(k, attrUsagePrefix) {
			if a.usage == nil {
				a.usage = make(map[string]*commonpb.AnyValue)
			}
			a.usage[k] = v
		}
		switch k {
		case attrInputTokens:
			a.input = v
		case attrOutputTokens:
			a.output = v
		case attrPromptTokens:
			a.prompt = v
		case attrCompletionTokens:
			a.completion = v
		case attrCacheReadTokens:
			a.cacheRead = v
		case attrCacheCreationTokens:
			a.cacheCreation = v
		case attrReasoningTokens:
			a.reasoning = v
		case attrProvider:
			a.provider = stringOf(v)
		case attrSystem:
			a.system = stringOf(v)
		case attrRequestModel:
			a.requestModel = stringOf(v)
		case attrResponseModel:
			a.responseModel = stringOf(v)
		case attrOperation:
			a.operation = stringOf(v)
		case attrErrorType:
			a.errorType = stringOf(v)
		case attrResponseTier:
			a.responseTier = stringOf(v)
		case attrRequestTier:
			a.requestTier = stringOf(v)
		case attrStream:
			a.stream = v.GetBoolValue()
		}
	}
	a.labels = labelsOf(nil, kvs)
	return a
}

func (a *spanAttrs) hasUsage() bool {
	return a.input != nil || a.output != nil || a.prompt != nil || a.completion != nil
}

// labelsOf adds the label attributes of kvs to labels, overwriting.
func labelsOf(labels map[string]string, kvs []*commonpb.KeyValue) map[string]string {
	for _, kv := range kvs {
		name, ok := labelAttrs[kv.GetKey()]
		if !ok {
			continue
		}
		s := strings.TrimSpace(stringOf(kv.GetValue()))
		if s == "" {
			continue
		}
		if labels == nil {
			labels = make(map[string]string)
		}
		if kv.GetKey() == attrEnvironmentOld && hasAttr(kvs, attrEnvironment) {
			continue // the current name wins over the deprecated one
		}
		labels[name] = s
	}
	return labels
}

func hasAttr(kvs []*commonpb.KeyValue, key string) bool {
	for _, kv := range kvs {
		if kv.GetKey() == key && stringOf(kv.GetValue()) != "" {
			return true
		}
	}
	return false
}

// stringOf returns a string attribute's value, "" for other types.
func stringOf(v *commonpb.AnyValue) string {
	return strings.TrimSpace(v.GetStringValue())
}

// builder collects one event and the problems found on the way.
type builder struct {
	ev    *schemas.Event
	probs []schemas.FieldError
}

// problem records a problem with field; code is a schemas problem code.
func (b *builder) problem(field, code, format string, args ...any) {
	b.probs = append(b.probs, schemas.FieldError{Field: field, Code: code, Message: fmt.Sprintf(format, args...)})
}

func (b *builder) warn(format string, args ...any) {
	b.ev.Warnings = append(b.ev.Warnings, fmt.Sprintf(format, args...))
}

// convertSpan builds the event of one span with usage; resLabels are the
// labels of its resource, which the span's own label attributes override.
func convertSpan(sp *tracepb.Span, a *spanAttrs, resLabels map[string]string, attr attribution) (*schemas.Event, *SpanError) {
	traceID, spanID := hex.EncodeToString(sp.GetTraceId()), hex.EncodeToString(sp.GetSpanId())
	b := &builder{ev: &schemas.Event{
		SchemaVersion: schemas.SchemaVersion,
		Kind:          schemas.KindLLMRequest,
		Status:        schemas.StatusOK,
	}}
	e := b.ev

	tidOK := b.checkID("trace_id", sp.GetTraceId(), traceIDLen)
	sidOK := b.checkID("span_id", sp.GetSpanId(), spanIDLen)
	if tidOK && sidOK {
		e.EventID = EventIDPrefix + traceID + ":" + spanID
	}

	start, end := sp.GetStartTimeUnixNano(), sp.GetEndTimeUnixNano()
	switch {
	case start == 0:
		b.problem("start_time_unix_nano", schemas.CodeRequired, "is required: the span's start time becomes the event time")
	case start > math.MaxInt64:
		b.problem("start_time_unix_nano", schemas.CodeOutOfRange, "%d is out of range (nanoseconds since 1970)", start)
	default:
		e.Time = time.Unix(0, int64(start)).UTC()
		switch {
		case end == 0:
		case end < start:
			b.warn("otlp_span_end_before_start: end_time_unix_nano %d is before start_time_unix_nano %d; latency left out", end, start)
		default:
			ms := int64((end - start) / uint64(time.Millisecond))
			e.LatencyMs = &ms
		}
	}

	labels := maps.Clone(resLabels)
	for k, v := range a.labels {
		if labels == nil {
			labels = make(map[string]string)
		}
		labels[k] = v
	}
	e.Labels = labels
	e.Source = DefaultSource
	if svc := labels["service"]; svc != "" {
		e.Source = svc
		if len(svc) > schemas.MaxIDLen {
			e.Source = truncate(svc, schemas.MaxIDLen)
			b.warn("otlp_source_truncated: service.name is %d bytes, the source keeps the first %d", len(svc), len(e.Source))
		}
	}

	switch {
	case a.provider != "":
		e.Provider = Provider(a.provider)
	case a.system != "":
		e.Provider = Provider(a.system)
	default:
		b.problem(attrProvider, schemas.CodeRequired, "is required: set gen_ai.provider.name (or the older gen_ai.system) on the span, e.g. \"openai\"")
	}
	e.Model = a.responseModel
	if e.Model == "" {
		e.Model = a.requestModel
	}
	if e.Model == "" {
		b.problem(attrResponseModel, schemas.CodeRequired, "is required: set gen_ai.response.model or gen_ai.request.model on the span")
	}
	e.Operation = a.operation
	e.Streaming = a.stream
	e.ServiceTier = normalizeTier(a.responseTier)
	if e.ServiceTier == "" {
		e.ServiceTier = normalizeTier(a.requestTier)
	}
	if sp.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR || a.errorType != "" {
		e.Status = schemas.StatusError
		e.ErrorType = a.errorType
	}

	for _, k := range a.repeated {
		b.problem(k, schemas.CodeDuplicateKey, "is set more than once on the span; OpenTelemetry attribute keys are unique, so send it once")
	}
	b.usage(a)
	e.RawUsage = rawUsage(a.usage)
	attr.apply(e)

	if len(b.probs) == 0 {
		var verr *schemas.ValidationError
		if err := e.Validate(); errors.As(err, &verr) {
			b.probs = append(b.probs, verr.Problems...)
		} else if err != nil {
			b.problem("", schemas.CodeInvalidValue, "%v", err)
		}
	}
	if len(b.probs) > 0 {
		return nil, &SpanError{TraceID: traceID, SpanID: spanID, Name: sp.GetName(), Problems: b.probs}
	}
	return e, nil
}

// usage normalizes the token counts. OpenTelemetry's input_tokens already
// includes cache reads and writes and output_tokens includes reasoning;
// counts that contradict this (an instrumentation that reports input
// without the cache) are summed instead, with a warning.
func (b *builder) usage(a *spanAttrs) {
	in := b.count(attrInputTokens, a.input)
	if a.input == nil {
		in = b.count(attrPromptTokens, a.prompt)
	}
	out := b.count(attrOutputTokens, a.output)
	if a.output == nil {
		out = b.count(attrCompletionTokens, a.completion)
	}
	read := b.count(attrCacheReadTokens, a.cacheRead)
	write := b.count(attrCacheCreationTokens, a.cacheCreation)
	reasoning := b.count(attrReasoningTokens, a.reasoning)

	if cached := schemas.Get(read) + schemas.Get(write); cached > schemas.Get(in) {
		if in == nil {
			b.warn("otlp_input_missing: the span reports cache tokens but no gen_ai.usage.input_tokens; input counted as the %d cache tokens", cached)
			in = schemas.Int64(cached)
		} else {
			b.warn("otlp_input_excludes_cache: gen_ai.usage.input_tokens %d is less than cache read %d + cache creation %d, so it is taken to exclude the cache; input counted as %d",
				*in, schemas.Get(read), schemas.Get(write), *in+cached)
			in = schemas.Int64(*in + cached)
		}
	}
	if r := schemas.Get(reasoning); r > schemas.Get(out) {
		b.warn("otlp_output_excludes_reasoning: gen_ai.usage.output_tokens %d is less than reasoning %d, so it is taken to exclude reasoning; output counted as %d",
			schemas.Get(out), r, schemas.Get(out)+r)
		out = schemas.Int64(schemas.Get(out) + r)
	}
	b.ev.Usage = &schemas.Usage{
		InputTokens:           in,
		CacheReadInputTokens:  read,
		CacheWriteInputTokens: write,
		OutputTokens:          out,
		ReasoningOutputTokens: reasoning,
	}
}

// count reads a token count attribute: an integer, an integral double or
// a string of digits, between 0 and maxCount. Anything else is a problem
// and reads as not reported.
func (b *builder) count(name string, v *commonpb.AnyValue) *int64 {
	if v == nil {
		return nil
	}
	var n int64
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_IntValue:
		n = x.IntValue
	case *commonpb.AnyValue_DoubleValue:
		if x.DoubleValue != math.Trunc(x.DoubleValue) || x.DoubleValue < 0 || x.DoubleValue > maxCount {
			b.problem(name, schemas.CodeInvalidType, "must be a whole token count between 0 and %d, got %v", int64(maxCount), x.DoubleValue)
			return nil
		}
		n = int64(x.DoubleValue)
	case *commonpb.AnyValue_StringValue:
		p, err := strconv.ParseInt(strings.TrimSpace(x.StringValue), 10, 64)
		if err != nil {
			b.problem(name, schemas.CodeInvalidType, "must be an integer token count, got the string %q", truncate(x.StringValue, 64))
			return nil
		}
		n = p
	default:
		b.problem(name, schemas.CodeInvalidType, "must be an integer token count (intValue)")
		return nil
	}
	if n < 0 || n > maxCount {
		b.problem(name, schemas.CodeOutOfRange, "must be a token count between 0 and %d, got %d", int64(maxCount), n)
		return nil
	}
	return &n
}

// maxRawUsage bounds the attributes kept in raw_usage.
const maxRawUsage = 32

// rawUsage encodes the numeric gen_ai.usage.* attributes as one JSON
// object; text is never kept (schemas.ReduceRawUsage).
func rawUsage(attrs map[string]*commonpb.AnyValue) json.RawMessage {
	if len(attrs) == 0 {
		return nil
	}
	m := make(map[string]any, len(attrs))
	for k, v := range attrs {
		if len(m) == maxRawUsage {
			break
		}
		switch x := v.GetValue().(type) {
		case *commonpb.AnyValue_IntValue:
			m[k] = x.IntValue
		case *commonpb.AnyValue_DoubleValue:
			m[k] = jsonNumber(x.DoubleValue)
		}
	}
	if len(m) == 0 {
		return nil
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil
	}
	return schemas.ReduceRawUsage(raw)
}

// Provider maps a gen_ai.provider.name (or gen_ai.system) value onto the
// provider names of the price catalog; unknown names are kept lower-cased.
func Provider(name string) string {
	switch p := strings.ToLower(strings.TrimSpace(name)); p {
	case "gcp.gemini", "gcp.vertex_ai", "gcp.gen_ai", "gemini", "vertex_ai":
		return "gcp.gemini"
	case "aws.bedrock", "aws_bedrock", "bedrock":
		return "aws.bedrock"
	case "az.ai.openai":
		return "azure.ai.openai"
	case "az.ai.inference":
		return "azure.ai.inference"
	default:
		return p
	}
}

// normalizeTier writes service tiers in the vocabulary the adapters use.
// "auto" names no tier: the provider chose, and the response tier says how.
func normalizeTier(t string) string {
	if strings.EqualFold(strings.TrimSpace(t), "auto") {
		return ""
	}
	return adapters.NormalizeTier(t)
}

// checkID reports a trace or span id that cannot name an event.
func (b *builder) checkID(field string, id []byte, n int) bool {
	switch {
	case len(id) != n:
		b.problem(field, schemas.CodeInvalidValue, "must be %d bytes (%d hex digits in OTLP JSON, where text that is not hex reads as base64), got %d bytes", n, 2*n, len(id))
		return false
	case allZero(id):
		b.problem(field, schemas.CodeInvalidValue, "is all zeros, which OpenTelemetry defines as invalid; fix the exporter's id generator")
		return false
	}
	return true
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
