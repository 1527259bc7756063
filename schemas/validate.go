package schemas

import (
	"fmt"
	"strings"
	"time"
)

// FieldError is one validation problem, named by its JSON field path.
type FieldError struct {
	Field string `json:"field"`
	// Code classifies the problem for programs: one of the Code constants.
	Code    string `json:"code,omitempty"`
	Message string `json:"message"`
}

// Problem codes, the classes of FieldError.Code. They are part of the
// ingest API (errors[].code); add new ones, never rename.
const (
	CodeRequired     = "required"      // missing or empty
	CodeUnknownField = "unknown_field" // not in the v1 schema
	CodeInvalidType  = "invalid_type"  // wrong JSON type or not an object
	CodeOutOfRange   = "out_of_range"  // a number, length or count outside its bounds
	CodeTooLarge     = "too_large"     // the whole event is over a size limit
	CodeInvalidValue = "invalid_value" // anything else
	CodeDuplicateKey = "duplicate_key" // a key twice in one JSON object (see CheckJSON)
	CodeInvalidUTF8  = "invalid_utf8"  // a JSON string or key that is not valid UTF-8
)

func (e FieldError) Error() string { return e.Field + ": " + e.Message }

// ValidationError lists every problem found in one event.
type ValidationError struct {
	Problems []FieldError
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.Error()
	}
	return "invalid usage event: " + strings.Join(parts, "; ")
}

// MaxIDLen bounds event ids and other identifiers.
const MaxIDLen = 128

// Bounds on one event's numbers. Each is far beyond anything a real request
// reports, and each keeps the arithmetic after it exact: an event outside
// them is rejected with a field error (ingest answers 422, code
// out_of_range) rather than stored as a number that a later sum or a
// ClickHouse column would wrap. usage-event.v1.json states the same bounds.
const (
	// MaxTokens bounds every token count and server tool call count
	// (2^36, about 6.9e10): tens of thousands of times the largest context
	// windows, and room for usage reports that sum many requests. Sums of
	// a few counts cannot overflow; a window row's int64 token sum, and
	// the int64 sums ClickHouse's views take over all rows of one
	// (window, model, team), hold 2^27 (134 million) events at the bound —
	// more than the pipeline accepts in a window (the aggregator still
	// continues a window in another row rather than wrap). A count whose
	// cost is beyond int64 pico-USD is flagged by pricing, not wrapped.
	MaxTokens = 1 << 36
	// MaxLatencyMs bounds latency_ms at 7 days (604,800,000 ms); no API
	// request, batch jobs included, runs that long. A window row's int64
	// latency sum holds 15 billion events at the bound.
	MaxLatencyMs = 7 * 24 * 3600 * 1000
	// MaxProviderCostUSD bounds provider_cost_usd at one million USD per
	// event, thousands of times the dearest single request. As pico-USD it
	// is 1e18, inside the int64 cost of one event (about 9.2e18).
	MaxProviderCostUSD = "1000000"
	// MaxBytes bounds request_bytes and response_bytes at 1 TiB, far
	// beyond any single API payload; an int64 sum holds 8 million events
	// at the bound.
	MaxBytes = 1 << 40
	// MaxRequestCount bounds request_count at one billion requests in one
	// event; a window row's UInt64 request count cannot wrap on it.
	MaxRequestCount = 1_000_000_000
)

// Event times are accepted in [minTime, maxTime). maxTime is the day on
// which ClickHouse's DateTime (unsigned 32-bit seconds) ends: later times
// would be stored wrapped, 2200 as 2064. minTime is later than ClickHouse's
// start (1970) because no AI usage predates it and DateTime 0 is shown as
// 0000-00-00 by older servers.
var (
	minTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(2106, 2, 7, 0, 0, 0, 0, time.UTC)
)

// Validate checks an event against the v1 contract and returns a
// *ValidationError naming every offending field, or nil.
func (e *Event) Validate() error {
	var probs []FieldError
	add := func(field, code, format string, args ...any) {
		probs = append(probs, FieldError{Field: field, Code: code, Message: fmt.Sprintf(format, args...)})
	}
	if e.SchemaVersion != SchemaVersion {
		add("schema_version", CodeInvalidValue, "must be %q, got %q", SchemaVersion, e.SchemaVersion)
	}
	switch {
	case e.EventID == "":
		add("event_id", CodeRequired, "is required (a ULID or UUID assigned by the producer; reuse it on retry)")
	case len(e.EventID) > MaxIDLen:
		add("event_id", CodeOutOfRange, "is %d bytes long, the limit is %d", len(e.EventID), MaxIDLen)
	case !printableID(e.EventID):
		add("event_id", CodeInvalidValue, "may only contain letters, digits and - _ . : /")
	}
	if e.Time.IsZero() {
		add("time", CodeRequired, "is required (RFC 3339 UTC timestamp of the request)")
	} else if e.Time.Before(minTime) || !e.Time.Before(maxTime) {
		add("time", CodeOutOfRange, "%s is out of range: times from %s until before %s are accepted",
			e.Time.Format(time.RFC3339Nano), minTime.Format(time.DateOnly), maxTime.Format(time.DateOnly))
	}
	if e.Source == "" {
		add("source", CodeRequired, "is required (the gateway or host that emitted the event)")
	} else if len(e.Source) > MaxIDLen {
		add("source", CodeOutOfRange, "is longer than %d bytes", MaxIDLen)
	}
	switch e.Kind {
	case KindLLMRequest:
		e.validateLLM(add)
	case KindGPUUsage:
		if e.GPU == nil {
			add("gpu", CodeRequired, "is required for kind %q", KindGPUUsage)
		} else {
			if e.GPU.GPUModel == "" {
				add("gpu.gpu_model", CodeRequired, "is required")
			}
			if e.GPU.IntervalSeconds <= 0 {
				add("gpu.interval_seconds", CodeOutOfRange, "must be positive")
			}
			if e.GPU.AllocatedSeconds < 0 || e.GPU.BusySeconds < 0 {
				add("gpu", CodeOutOfRange, "GPU seconds must not be negative")
			}
		}
	case "":
		add("kind", CodeRequired, "is required (%q or %q)", KindLLMRequest, KindGPUUsage)
	default:
		add("kind", CodeInvalidValue, "unknown kind %q (want %q or %q)", e.Kind, KindLLMRequest, KindGPUUsage)
	}
	if e.ProviderCostUSD != "" {
		if !decimalString(e.ProviderCostUSD) {
			add("provider_cost_usd", CodeInvalidValue, "%q is not a non-negative decimal number of USD (e.g. \"0.0125\")", e.ProviderCostUSD)
		} else if !decimalAtMost(e.ProviderCostUSD, MaxProviderCostUSD) {
			add("provider_cost_usd", CodeOutOfRange, "%s USD is out of range: the limit is %s USD per event", e.ProviderCostUSD, MaxProviderCostUSD)
		}
	}
	if len(e.Warnings) > 16 {
		add("warnings", CodeOutOfRange, "has %d entries, the limit is 16", len(e.Warnings))
	}
	if len(e.Labels) > 64 {
		add("labels", CodeOutOfRange, "has %d entries, the limit is 64", len(e.Labels))
	}
	if len(e.EndUser) > 256 {
		add("end_user", CodeOutOfRange, "is longer than 256 bytes")
	}
	if len(e.Tags) > 16 {
		add("tags", CodeOutOfRange, "has %d entries, the limit is 16", len(e.Tags))
	}
	for i, t := range e.Tags {
		if len(t) > 128 {
			add(fmt.Sprintf("tags[%d]", i), CodeOutOfRange, "is longer than 128 bytes")
		}
	}
	for _, b := range []struct {
		name string
		v    *int64
	}{{"request_bytes", e.RequestBytes}, {"response_bytes", e.ResponseBytes}} {
		if b.v != nil && (*b.v < 0 || *b.v > MaxBytes) {
			add(b.name, CodeOutOfRange, "must be between 0 and %d, got %d", int64(MaxBytes), *b.v)
		}
	}
	if c := e.RequestCount; c != nil {
		switch {
		case e.Kind != KindLLMRequest:
			add("request_count", CodeInvalidValue, "is only for %s events (one event standing for several requests)", KindLLMRequest)
		case *c < 0 || *c > MaxRequestCount:
			add("request_count", CodeOutOfRange, "must be between 0 and %d, got %d; leave it out for one request", MaxRequestCount, *c)
		}
	}
	if len(e.ProviderRegion) > 64 {
		add("provider_region", CodeOutOfRange, "is longer than 64 bytes")
	}
	if len(e.ProviderEndpoint) > 256 {
		add("provider_endpoint", CodeOutOfRange, "is longer than 256 bytes")
	}
	if len(probs) == 0 {
		return nil
	}
	return &ValidationError{Problems: probs}
}

func (e *Event) validateLLM(add func(field, code, format string, args ...any)) {
	if e.Provider == "" {
		add("provider", CodeRequired, "is required for kind %q", KindLLMRequest)
	}
	if e.Model == "" {
		add("model", CodeRequired, "is required for kind %q", KindLLMRequest)
	}
	if len(e.Model) > 256 {
		add("model", CodeOutOfRange, "is longer than 256 bytes")
	}
	switch e.Status {
	case "", StatusOK, StatusError, StatusCancelled, StatusPartial:
	default:
		add("status", CodeInvalidValue, "unknown status %q (want ok, error, cancelled or partial)", e.Status)
	}
	if e.LatencyMs != nil && (*e.LatencyMs < 0 || *e.LatencyMs > MaxLatencyMs) {
		add("latency_ms", CodeOutOfRange, "must be between 0 and %d (7 days), got %d", int64(MaxLatencyMs), *e.LatencyMs)
	}
	u := e.Usage
	if u == nil {
		return
	}
	for i, v := range [...]*int64{u.InputTokens, u.CacheReadInputTokens, u.CacheWriteInputTokens, u.OutputTokens,
		u.ReasoningOutputTokens, u.ProviderTotalTokens, u.CacheWrite5mInputTokens, u.CacheWrite1hInputTokens,
		u.ToolInputTokens, u.InputAudioTokens, u.OutputAudioTokens, u.AcceptedPredictionTokens, u.RejectedPredictionTokens} {
		if v != nil && (*v < 0 || *v > MaxTokens) {
			add(countFields[i], CodeOutOfRange, "must be between 0 and %d, got %d", int64(MaxTokens), *v)
		}
	}
	if Get(u.CacheReadInputTokens)+Get(u.CacheWriteInputTokens) > Get(u.InputTokens) {
		add("usage.input_tokens", CodeInvalidValue, "must include cache reads and writes (input_tokens %d < cache_read %d + cache_write %d)",
			Get(u.InputTokens), Get(u.CacheReadInputTokens), Get(u.CacheWriteInputTokens))
	}
	if Get(u.CacheWrite5mInputTokens)+Get(u.CacheWrite1hInputTokens) > Get(u.CacheWriteInputTokens) {
		add("usage.cache_write_input_tokens", CodeInvalidValue, "must include the 5m and 1h cache writes (%d < %d + %d)",
			Get(u.CacheWriteInputTokens), Get(u.CacheWrite5mInputTokens), Get(u.CacheWrite1hInputTokens))
	}
	if Get(u.ToolInputTokens) > Get(u.InputTokens) || Get(u.InputAudioTokens) > Get(u.InputTokens) {
		add("usage.input_tokens", CodeInvalidValue, "must include tool and audio input tokens")
	}
	if Get(u.AcceptedPredictionTokens)+Get(u.RejectedPredictionTokens) > Get(u.OutputTokens) || Get(u.OutputAudioTokens) > Get(u.OutputTokens) {
		add("usage.output_tokens", CodeInvalidValue, "must include prediction (accepted and rejected) and audio output tokens")
	}
	for k, v := range u.ServerToolCalls { // mostly none
		if v < 0 || v > MaxTokens {
			add("usage.server_tool_calls."+k, CodeOutOfRange, "must be between 0 and %d, got %d", int64(MaxTokens), v)
		}
	}
	if len(u.ServerToolCalls) > 16 {
		add("usage.server_tool_calls", CodeOutOfRange, "has %d kinds, the limit is 16", len(u.ServerToolCalls))
	}
	if Get(u.ReasoningOutputTokens) > Get(u.OutputTokens) {
		add("usage.output_tokens", CodeInvalidValue, "must include reasoning tokens (output_tokens %d < reasoning %d)",
			Get(u.OutputTokens), Get(u.ReasoningOutputTokens))
	}
}

// countFields name the counts validateLLM checks, in its order.
var countFields = [...]string{"usage.input_tokens", "usage.cache_read_input_tokens", "usage.cache_write_input_tokens",
	"usage.output_tokens", "usage.reasoning_output_tokens", "usage.provider_total_tokens", "usage.cache_write_5m_input_tokens",
	"usage.cache_write_1h_input_tokens", "usage.tool_input_tokens", "usage.input_audio_tokens", "usage.output_audio_tokens",
	"usage.accepted_prediction_tokens", "usage.rejected_prediction_tokens"}

func printableID(s string) bool {
	for i := 0; i < len(s); i++ {
		if !idByte[s[i]] {
			return false
		}
	}
	return true
}

// idByte marks the bytes printableID accepts.
var idByte = func() (t [256]bool) {
	for c := range t {
		t[c] = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_.:/", byte(c)) >= 0
	}
	return t
}()

// Decode parses one JSON event and validates it. Unknown fields are
// rejected so that typos do not silently lose data.
func Decode(data []byte) (*Event, error) {
	e, err := Parse(data)
	if err != nil {
		return nil, err
	}
	if err := e.Validate(); err != nil {
		return e, err
	}
	return e, nil
}

// Parse parses one JSON event as strictly as Decode (unknown fields,
// trailing data, and what CheckJSON reports — repeated keys, keys that
// match a field only by case, invalid UTF-8 — are errors) but does not
// validate it, for callers that change the event before calling Validate.
// The problems CheckJSON finds come as a *ValidationError.
func Parse(data []byte) (*Event, error) {
	d := decoders.Get().(*Decoder)
	defer decoders.Put(d)
	e := new(Event)
	if err := d.Event(data, e); err != nil {
		return nil, err
	}
	return e, nil
}

// DecodeEnriched parses one enriched event (no validation beyond JSON) as
// json.Unmarshal would: unknown fields are ignored.
func DecodeEnriched(data []byte) (*Enriched, error) {
	d := decoders.Get().(*Decoder)
	defer decoders.Put(d)
	e := new(Enriched)
	if err := d.Enriched(data, e); err != nil {
		return nil, err
	}
	return e, nil
}

// decimalAtMost reports whether the plain decimal s (see decimalString) is
// at most the whole number limit, without parsing it into a number.
func decimalAtMost(s, limit string) bool {
	whole, frac, _ := strings.Cut(s, ".")
	whole = strings.TrimLeft(whole, "0")
	if len(whole) != len(limit) {
		return len(whole) < len(limit)
	}
	if whole != limit {
		return whole < limit
	}
	return strings.Trim(frac, "0") == ""
}

// decimalString accepts plain non-negative decimals such as "12", "0.0125".
func decimalString(s string) bool {
	if len(s) == 0 || len(s) > 40 {
		return false
	}
	dot := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
		case c == '.' && !dot && i > 0 && i < len(s)-1:
			dot = true
		default:
			return false
		}
	}
	return true
}
