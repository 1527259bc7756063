package adapters

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/aivis-dev/aivis/schemas"
)

// Adapter normalizes one provider's usage report. Normalize owns nothing
// and blocks on nothing; it returns either an event that passes
// schemas.Event.Validate or an error, a *schemas.ValidationError when
// particular fields are at fault. Implementations are safe for concurrent use.
type Adapter interface {
	Name() string
	Normalize(env Envelope) (*schemas.Event, error)
}

// Envelope is what a gateway posts for one provider request; see the
// package documentation for its JSON form.
type Envelope struct {
	EventID      string            `json:"event_id"`
	Time         time.Time         `json:"time"`
	Source       string            `json:"source"`
	Labels       map[string]string `json:"labels,omitempty"`
	APIKeyID     string            `json:"api_key_id,omitempty"`
	Provider     string            `json:"provider,omitempty"`
	RequestModel string            `json:"request_model,omitempty"`
	Operation    string            `json:"operation,omitempty"`
	LatencyMs    *int64            `json:"latency_ms,omitempty"`
	Status       string            `json:"status,omitempty"`
	ErrorType    string            `json:"error_type,omitempty"`
	ServiceTier  string            `json:"service_tier,omitempty"`
	Batch        bool              `json:"batch,omitempty"`
	Streaming    bool              `json:"streaming,omitempty"`
	// Attribution and data movement the gateway knows: the end user and
	// tags of the request, its size and the size of the response (default:
	// the size of response as sent), and where the provider served it
	// (default region: the one the endpoint host names).
	EndUser          string          `json:"end_user,omitempty"`
	Tags             []string        `json:"tags,omitempty"`
	RequestBytes     *int64          `json:"request_bytes,omitempty"`
	ResponseBytes    *int64          `json:"response_bytes,omitempty"`
	ProviderRegion   string          `json:"provider_region,omitempty"`
	ProviderEndpoint string          `json:"provider_endpoint,omitempty"`
	Response         json.RawMessage `json:"response"`
}

// DecodeEnvelope parses one envelope strictly: unknown fields are errors, so
// that a misspelt field does not silently lose data, and so is what
// schemas.CheckJSON reports anywhere in it, "response" included: a
// repeated key, a key that matches a field only by case, invalid UTF-8.
// Its errors are *EnvelopeError; one whose problems have paths wraps a
// *schemas.ValidationError.
func DecodeEnvelope(data []byte) (Envelope, error) {
	var env Envelope
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		return env, &EnvelopeError{Code: envelopeCode(data, err), Err: fmt.Errorf(
			"decoding the adapter envelope (fields: event_id, time, source, labels, api_key_id, provider, request_model, operation, latency_ms, status, error_type, service_tier, batch, streaming, end_user, tags, request_bytes, response_bytes, provider_region, provider_endpoint, response): %w", err)}
	}
	if dec.More() {
		return env, &EnvelopeError{Code: schemas.CodeInvalidValue, Err: errors.New(
			"decoding the adapter envelope: data after the envelope object; send one object per envelope")}
	}
	if probs := schemas.CheckJSON(data, &env); len(probs) > 0 {
		return env, &EnvelopeError{Code: probs[0].Code, Err: &schemas.ValidationError{Problems: probs}}
	}
	return env, nil
}

// EnvelopeError says why a value is not an envelope.
type EnvelopeError struct {
	// Code classifies the problem: one of the schemas problem codes.
	Code string
	Err  error
}

func (e *EnvelopeError) Error() string { return e.Err.Error() }
func (e *EnvelopeError) Unwrap() error { return e.Err }

// envelopeCode classifies err, the error of strictly decoding data. The
// one error that strictness adds, a member that no envelope field takes,
// carries no type in encoding/json, so data is decoded again without it:
// any other error comes back the same.
func envelopeCode(data []byte, err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) || errors.Is(err, io.ErrUnexpectedEOF) {
		return schemas.CodeInvalidValue
	}
	lenient := json.NewDecoder(bytes.NewReader(data)).Decode(new(Envelope))
	var te *json.UnmarshalTypeError
	switch {
	case lenient == nil || lenient.Error() != err.Error():
		return schemas.CodeUnknownField
	case errors.As(lenient, &te):
		return schemas.CodeInvalidType
	}
	return schemas.CodeInvalidValue
}

var registry = map[string]Adapter{}

func register(a Adapter) { registry[a.Name()] = a }

func init() {
	register(openAI{})
	register(anthropic{})
	register(gemini{})
	register(bedrock{})
	register(liteLLM{})
}

// Lookup returns the adapter registered under name.
func Lookup(name string) (Adapter, bool) {
	a, ok := registry[name]
	return a, ok
}

// Names lists the registered adapters, sorted.
func Names() []string {
	return slices.Sorted(maps.Keys(registry))
}

// maxCount bounds one provider count, as schemas does, so that sums of a
// few counts cannot overflow.
const maxCount = schemas.MaxTokens

// builder accumulates one normalized event and the problems found on the way.
type builder struct {
	ev    *schemas.Event
	probs []schemas.FieldError
}

// newBuilder starts an llm.request event from the envelope's own fields.
func newBuilder(env Envelope, provider, operation string) *builder {
	e := &schemas.Event{
		SchemaVersion: schemas.SchemaVersion,
		EventID:       env.EventID,
		Time:          env.Time.UTC(),
		Kind:          schemas.KindLLMRequest,
		Source:        env.Source,
		APIKeyID:      schemas.HashKey(env.APIKeyID),
		Labels:        maps.Clone(env.Labels),
		Provider:      provider,
		Model:         env.RequestModel,
		Operation:     operation,
		Status:        env.Status,
		ErrorType:     env.ErrorType,
		LatencyMs:     env.LatencyMs,
		ServiceTier:   NormalizeTier(env.ServiceTier),
		Streaming:     env.Streaming,

		EndUser: env.EndUser, Tags: env.Tags,
		RequestBytes: env.RequestBytes, ResponseBytes: env.ResponseBytes,
		ProviderRegion: env.ProviderRegion, ProviderEndpoint: env.ProviderEndpoint,
	}
	// A provider's own response is what the provider sent back; LiteLLM's
	// payload (provider "") is a log record, not the response.
	if e.ResponseBytes == nil && provider != "" && len(env.Response) > 0 {
		e.ResponseBytes = schemas.Int64(int64(len(env.Response)))
	}
	if e.ProviderRegion == "" {
		e.ProviderRegion = schemas.RegionOfEndpoint(e.ProviderEndpoint)
	}
	if env.Provider != "" {
		e.Provider = env.Provider
	}
	if env.Operation != "" {
		e.Operation = env.Operation
	}
	return &builder{ev: e}
}

// problem records a problem with field; code is a schemas problem code.
func (b *builder) problem(field, code, format string, args ...any) {
	b.probs = append(b.probs, schemas.FieldError{Field: field, Code: code, Message: fmt.Sprintf(format, args...)})
}

func (b *builder) warn(format string, args ...any) {
	b.ev.Warnings = append(b.ev.Warnings, fmt.Sprintf(format, args...))
}

// count checks one provider count; an out-of-range count is a problem and
// reads as not reported, so that sums stay in range.
func (b *builder) count(field string, p *int64) *int64 {
	if p == nil {
		return nil
	}
	if *p < 0 || *p > maxCount {
		b.problem(field, schemas.CodeOutOfRange, "must be a token count between 0 and %d, got %d", int64(maxCount), *p)
		return nil
	}
	return p
}

// usage returns the event's usage, creating it on first use.
func (b *builder) usage() *schemas.Usage {
	if b.ev.Usage == nil {
		b.ev.Usage = &schemas.Usage{}
	}
	return b.ev.Usage
}

// setModel prefers the model the response names over the requested one.
func (b *builder) setModel(responseModel string) {
	if responseModel != "" {
		b.ev.Model = responseModel
	}
}

// setTier applies the response's tier unless the envelope says batch.
func (b *builder) setTier(responseTier string, batch bool) {
	if t := NormalizeTier(responseTier); t != "" {
		b.ev.ServiceTier = t
	}
	if batch {
		b.ev.ServiceTier = "batch"
	}
}

// setRaw keeps the counts of the provider's usage object for audit
// (schemas.ReduceRawUsage): nothing in it that is text.
func (b *builder) setRaw(raw json.RawMessage) {
	b.ev.RawUsage = schemas.ReduceRawUsage(raw)
}

// checkTotal compares the provider's total with normalized input+output.
func (b *builder) checkTotal(total *int64) {
	u := b.ev.Usage
	if u == nil || total == nil {
		return
	}
	u.ProviderTotalTokens = total
	if u.InputTokens == nil && u.OutputTokens == nil {
		return
	}
	if n := schemas.Get(u.InputTokens) + schemas.Get(u.OutputTokens); n != *total {
		b.warn("provider_total_mismatch: provider reports %d, normalized %d", *total, n)
	}
}

// clampReasoning keeps reasoning within output: some providers re-tokenize
// the reasoning count, which may then exceed the billed output slightly.
func (b *builder) clampReasoning() {
	u := b.ev.Usage
	if u == nil || u.ReasoningOutputTokens == nil {
		return
	}
	if out := schemas.Get(u.OutputTokens); *u.ReasoningOutputTokens > out {
		b.warn("reasoning_exceeds_output: provider reports %d reasoning of %d output tokens; reasoning capped at output", *u.ReasoningOutputTokens, out)
		u.ReasoningOutputTokens = schemas.Int64(out)
	}
}

// splitCacheWrites fills the cache-write total and its 5m/1h subsets from a
// provider's total (may be nil) and TTL split (either may be nil; split says
// whether the provider sent a split at all). A missing split leaves the
// subsets unset; a split short of the total counts the rest as 5m; a split
// above the total raises the total.
func (b *builder) splitCacheWrites(total, m5, h1 *int64, split bool) {
	u := b.usage()
	if !split {
		u.CacheWriteInputTokens = total
		if schemas.Get(total) > 0 {
			b.warn("cache_write_ttl_split_missing: %d cache-write tokens have no 5m/1h split; price them at the 5m rate", *total)
		}
		return
	}
	sum := schemas.Get(m5) + schemas.Get(h1)
	switch {
	case total == nil:
		total = schemas.Int64(sum)
	case sum < *total:
		b.warn("cache_write_ttl_split_incomplete: split covers %d of %d cache-write tokens; the rest is counted as 5m", sum, *total)
		m5 = schemas.Int64(*total - schemas.Get(h1))
	case sum > *total:
		b.warn("cache_write_split_exceeds_total: split sums to %d, total is %d; the total is raised to the split", sum, *total)
		total = schemas.Int64(sum)
	}
	u.CacheWriteInputTokens = total
	u.CacheWrite5mInputTokens = m5
	u.CacheWrite1hInputTokens = h1
}

// finish validates the event and returns it, or every problem found.
func (b *builder) finish() (*schemas.Event, error) {
	if b.ev.Model == "" {
		b.problem("request_model", schemas.CodeRequired, "is required: the response names no model, so send the requested model in the envelope")
	}
	probs := b.probs
	var verr *schemas.ValidationError
	if err := b.ev.Validate(); errors.As(err, &verr) {
		for _, p := range verr.Problems {
			if p.Field == "model" && b.ev.Model == "" {
				continue // already reported as request_model
			}
			if strings.HasPrefix(p.Field, "usage.") {
				p.Message += " (in the normalized usage; the provider's counts contradict each other)"
			}
			probs = append(probs, p)
		}
	} else if err != nil {
		return nil, err
	}
	if len(probs) > 0 {
		return nil, &schemas.ValidationError{Problems: probs}
	}
	return b.ev, nil
}

// sum adds counts; nil when every count is nil. Counts are bounded by
// maxCount, so the sum cannot overflow.
func sum(ps ...*int64) *int64 {
	var n int64
	seen := false
	for _, p := range ps {
		if p != nil {
			n += *p
			seen = true
		}
	}
	if !seen {
		return nil
	}
	return &n
}

// zeroIfNil reads a count the provider omits when it is 0.
func zeroIfNil(p *int64) *int64 {
	if p == nil {
		return schemas.Int64(0)
	}
	return p
}

// NormalizeTier maps provider service-tier names onto the one vocabulary
// aivis uses: standard, priority, flex, scale, batch, provisioned_throughput.
func NormalizeTier(t string) string {
	switch lt := strings.ToLower(strings.TrimSpace(t)); lt {
	case "default", "standard", "on_demand", "standard_only":
		return "standard"
	case "on_demand_priority":
		return "priority"
	case "on_demand_flex":
		return "flex"
	case "provisioned_throughput", "provisioned":
		return "provisioned_throughput"
	default:
		return lt
	}
}

// splitResponse decodes a response into full, whose usage member is
// *usage (JSON key usageKey), and returns the usage object and its path, or the whole response when it has
// no usage member (the gateway sent the usage object alone). A usage member
// that is null returns nil.
func splitResponse(name string, resp json.RawMessage, full any, usageKey string, usage *json.RawMessage) (raw json.RawMessage, path string, err error) {
	resp = bytes.TrimSpace(resp)
	if len(resp) == 0 || bytes.Equal(resp, []byte("null")) {
		return nil, "", &schemas.ValidationError{Problems: []schemas.FieldError{{Field: "response", Code: schemas.CodeRequired,
			Message: "is required: send the " + name + " response JSON object, or its usage object"}}}
	}
	if resp[0] != '{' {
		return nil, "", &schemas.ValidationError{Problems: []schemas.FieldError{{Field: "response", Code: schemas.CodeInvalidType,
			Message: "must be a JSON object: the " + name + " response, or its usage object"}}}
	}
	if err := unmarshal("response", resp, full); err != nil {
		return nil, "", fieldError("response", "decoding the "+name+" response", err)
	}
	u := bytes.TrimSpace(*usage)
	switch {
	case len(u) == 0:
		return resp, "response", nil
	case bytes.Equal(u, []byte("null")):
		return nil, "response." + usageKey, nil
	}
	return u, "response." + usageKey, nil
}

// decodeUsage decodes a usage object into v, naming the field path on error.
func decodeUsage(field, name string, raw json.RawMessage, v any) error {
	if len(raw) == 0 || raw[0] != '{' {
		return &schemas.ValidationError{Problems: []schemas.FieldError{{Field: field, Code: schemas.CodeInvalidType, Message: "must be a JSON object"}}}
	}
	if err := unmarshal(field, raw, v); err != nil {
		return fieldError(field, "decoding the "+name+" usage", err)
	}
	return nil
}

// unmarshal decodes raw, found at field, into v like json.Unmarshal, but
// refuses what schemas.CheckJSON reports: a provider's "Usage" or a second
// "prompt_tokens" must not quietly replace the first.
func unmarshal(field string, raw json.RawMessage, v any) error {
	if err := json.Unmarshal(raw, v); err != nil {
		return err
	}
	probs := schemas.CheckJSON(raw, v)
	if len(probs) == 0 {
		return nil
	}
	for i := range probs {
		if probs[i].Field == "" {
			probs[i].Field = field
		} else {
			probs[i].Field = field + "." + probs[i].Field
		}
	}
	return &schemas.ValidationError{Problems: probs}
}

// fieldError turns a JSON decoding error into a field-named problem.
func fieldError(field, doing string, err error) error {
	if verr := (*schemas.ValidationError)(nil); errors.As(err, &verr) {
		return err
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return &schemas.ValidationError{Problems: []schemas.FieldError{{Field: field + "." + te.Field, Code: schemas.CodeInvalidType,
			Message: fmt.Sprintf("%s: got a JSON %s, want %s", doing, te.Value, typeName(te.Type.String()))}}}
	}
	return &schemas.ValidationError{Problems: []schemas.FieldError{{Field: field, Code: schemas.CodeInvalidValue, Message: doing + ": " + strings.TrimPrefix(err.Error(), "json: ")}}}
}

func typeName(goType string) string {
	switch strings.TrimPrefix(goType, "*") {
	case "int64":
		return "an integer token count"
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	default:
		return "a JSON value of Go type " + goType
	}
}
