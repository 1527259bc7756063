package pricing

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/aivis-dev/aivis/internal/yamlstrict"
	"github.com/aivis-dev/aivis/schemas"
	"github.com/shopspring/decimal"
)

// Rate keys index a rateTable. Every priced meter reads exactly one key.
const (
	rkInput = iota
	rkCacheRead
	rkCacheWrite
	rkCacheWrite5m
	rkCacheWrite1h
	rkInputAudio
	rkOutput
	rkReasoning
	rkOutputAudio
	numRateKeys
)

// rateKeyNames are the YAML names of the rate keys, in rk order.
var rateKeyNames = [numRateKeys]string{
	"input", "cache_read_input", "cache_write_input", "cache_write_input_5m",
	"cache_write_input_1h", "input_audio", "output", "reasoning_output", "output_audio",
}

// rateSpec holds decimal USD per 1M tokens; nil means "not set".
type rateSpec struct {
	Input             *string `yaml:"input,omitempty"`
	CacheReadInput    *string `yaml:"cache_read_input,omitempty"`
	CacheWriteInput   *string `yaml:"cache_write_input,omitempty"`
	CacheWriteInput5m *string `yaml:"cache_write_input_5m,omitempty"`
	CacheWriteInput1h *string `yaml:"cache_write_input_1h,omitempty"`
	InputAudio        *string `yaml:"input_audio,omitempty"`
	Output            *string `yaml:"output,omitempty"`
	ReasoningOutput   *string `yaml:"reasoning_output,omitempty"`
	OutputAudio       *string `yaml:"output_audio,omitempty"`
}

func (r *rateSpec) slots() [numRateKeys]**string {
	return [numRateKeys]**string{
		&r.Input, &r.CacheReadInput, &r.CacheWriteInput, &r.CacheWriteInput5m,
		&r.CacheWriteInput1h, &r.InputAudio, &r.Output, &r.ReasoningOutput, &r.OutputAudio,
	}
}

// merged returns r with every key that over sets replaced by over's value.
func (r rateSpec) merged(over rateSpec) rateSpec {
	out := r
	dst, src := out.slots(), over.slots()
	for i := range dst {
		if *src[i] != nil {
			*dst[i] = *src[i]
		}
	}
	return out
}

// rateFallback names the key an unset rate takes its price from. Cache
// reads and all cache writes fall back to the plain cache-write or input
// rate; audio and reasoning to their family's base rate.
var rateFallback = [numRateKeys]int{
	rkInput:        -1,
	rkCacheRead:    rkInput,
	rkCacheWrite:   rkInput,
	rkCacheWrite5m: rkCacheWrite,
	rkCacheWrite1h: rkCacheWrite,
	rkInputAudio:   rkInput,
	rkOutput:       -1,
	rkReasoning:    rkOutput,
	rkOutputAudio:  rkOutput,
}

// rate is one price, precomputed for the hot path.
type rate struct {
	picosPerToken int64
	perMillion    string // canonical decimal USD per 1M tokens, for cost lines
	// set is false for a rate taken from its fallback; Diff compares only
	// rates that one side or the other states.
	set bool
}

type rateTable [numRateKeys]rate

// resolveRates parses a merged rate spec into a table, applying fallbacks.
// input and output are required. Problems are reported under path.
func resolveRates(p *yamlstrict.Problems, path string, r rateSpec) (rateTable, bool) {
	var t rateTable
	var set [numRateKeys]bool
	ok := true
	for i, s := range r.slots() {
		if *s == nil {
			if rateFallback[i] < 0 {
				p.Add(path+"."+rateKeyNames[i], "is required (decimal USD per 1M tokens, e.g. \"2.50\")")
				ok = false
			}
			continue
		}
		d, good := parsePrice(p, path+"."+rateKeyNames[i], **s, maxPricePerMillion)
		if !good {
			ok = false
			continue
		}
		// price per 1M tokens × 1e12 picos / 1e6 tokens = price × 1e6 picos per token.
		t[i] = rate{picosPerToken: d.Shift(6).IntPart(), perMillion: d.String(), set: true}
		set[i] = true
	}
	// Fallback targets precede their users in rk order, so one pass resolves chains.
	for i := range t {
		if !set[i] && rateFallback[i] >= 0 {
			t[i] = t[rateFallback[i]]
			t[i].set = false
		}
	}
	return t, ok
}

// Usage fields a tier condition may test.
const (
	fInput = iota
	fCacheRead
	fCacheWrite
	fCacheWrite5m
	fCacheWrite1h
	fOutput
	fReasoning
	fToolInput
	fInputAudio
	fOutputAudio
	fAcceptedPrediction
	fRejectedPrediction
	fUncachedInput
	numFields
)

var fieldNames = map[string]int{
	"input_tokens":                fInput,
	"cache_read_input_tokens":     fCacheRead,
	"cache_write_input_tokens":    fCacheWrite,
	"cache_write_5m_input_tokens": fCacheWrite5m,
	"cache_write_1h_input_tokens": fCacheWrite1h,
	"output_tokens":               fOutput,
	"reasoning_output_tokens":     fReasoning,
	"tool_input_tokens":           fToolInput,
	"input_audio_tokens":          fInputAudio,
	"output_audio_tokens":         fOutputAudio,
	"accepted_prediction_tokens":  fAcceptedPrediction,
	"rejected_prediction_tokens":  fRejectedPrediction,
	"uncached_input_tokens":       fUncachedInput,
}

func sortedFieldNames() string {
	names := make([]string, 0, len(fieldNames))
	for n := range fieldNames {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// Meters, in the order their cost lines appear.
const (
	mInput = iota
	mCacheRead
	mCacheWrite
	mCacheWrite5m
	mCacheWrite1h
	mInputAudio
	mOutput
	mReasoning
	mOutputAudio
	mRejectedPrediction
	numMeters
)

// Meter names used in cost lines. A line priced at a tier's rates carries
// the tier's name after "@", e.g. "input@long_context".
const (
	MeterInput              = "input"
	MeterCacheReadInput     = "cache_read_input"
	MeterCacheWriteInput    = "cache_write_input"
	MeterCacheWriteInput5m  = "cache_write_input_5m"
	MeterCacheWriteInput1h  = "cache_write_input_1h"
	MeterInputAudio         = "input_audio"
	MeterOutput             = "output"
	MeterReasoningOutput    = "reasoning_output"
	MeterOutputAudio        = "output_audio"
	MeterRejectedPrediction = "rejected_prediction_output"
	// MeterGPUMicrohours counts allocated GPU time in millionths of an hour,
	// so that its price per 1M units is exactly the catalog's gpu_hour price.
	MeterGPUMicrohours = "gpu_allocated_microhours"
	// MeterCallPrefix starts the meter of a per-call fee: "call:web_search".
	MeterCallPrefix = "call:"
	// MeterProviderAdjustment is provider-reported cost minus the catalog
	// estimate; the catalog lines stay for audit.
	MeterProviderAdjustment = "adjustment:provider_reported"
	// MeterContractRates is contract rates minus list rates.
	MeterContractRates = "discount:contract_rates"
	// MeterContractDiscount is the contract's fractional discount.
	MeterContractDiscount = "discount:contract"
)

var meterNames = [numMeters]string{
	MeterInput, MeterCacheReadInput, MeterCacheWriteInput, MeterCacheWriteInput5m,
	MeterCacheWriteInput1h, MeterInputAudio, MeterOutput, MeterReasoningOutput,
	MeterOutputAudio, MeterRejectedPrediction,
}

// meterRate is the rate key each meter is priced at; rejected predictions
// are billed as output.
var meterRate = [numMeters]int{
	rkInput, rkCacheRead, rkCacheWrite, rkCacheWrite5m, rkCacheWrite1h,
	rkInputAudio, rkOutput, rkReasoning, rkOutputAudio, rkOutput,
}

// fieldFamily lists, for a usage field, the meters its tokens are priced
// in, in the order a graduated tier fills its base allowance. For input
// that is prompt order: the cached prefix, then the newly cached part, then
// the rest. Fields with no family (tool input, accepted predictions) may
// drive whole_request tiers only.
var fieldFamily = [numFields][]int{
	fInput:              {mCacheRead, mCacheWrite5m, mCacheWrite1h, mCacheWrite, mInputAudio, mInput},
	fCacheRead:          {mCacheRead},
	fCacheWrite:         {mCacheWrite5m, mCacheWrite1h, mCacheWrite},
	fCacheWrite5m:       {mCacheWrite5m},
	fCacheWrite1h:       {mCacheWrite1h},
	fOutput:             {mReasoning, mOutputAudio, mRejectedPrediction, mOutput},
	fReasoning:          {mReasoning},
	fInputAudio:         {mInputAudio},
	fOutputAudio:        {mOutputAudio},
	fRejectedPrediction: {mRejectedPrediction},
	fUncachedInput:      {mInputAudio, mInput},
}

// tierSpec is one entry of a model's tiers list.
type tierSpec struct {
	Name  string   `yaml:"name"`
	When  whenSpec `yaml:"when"`
	Mode  string   `yaml:"mode"`
	Rates rateSpec `yaml:"rates"`
}

type whenSpec struct {
	Field string `yaml:"field"`
	Op    string `yaml:"op"`
	Value int64  `yaml:"value"`
}

// Tier modes.
const (
	ModeWholeRequest = "whole_request"
	ModeGraduated    = "graduated"
)

// serviceTierSpec modifies an entry's rates for one service tier: rates
// replace base rates key by key, then multiply scales every token rate.
type serviceTierSpec struct {
	Multiply *string  `yaml:"multiply,omitempty"`
	Rates    rateSpec `yaml:"rates,omitempty"`
	// Warning is added to every quote priced under this service tier, in
	// "code: detail" form; e.g. provisioned throughput, whose per-token
	// price is 0 because its cost is a commitment entered as a contract.
	Warning string `yaml:"warning,omitempty"`
}

// tier is a parsed tier condition.
type tier struct {
	name      string
	field     int
	op        string
	value     int64
	graduated bool
	// meterNames are the meter names of lines priced at this tier.
	meterNames [numMeters]string
	// baseAllowance is how many tokens of the field's family stay at the
	// base rates under a graduated tier.
	baseAllowance int64
}

// holds reports whether the condition is true for a field value.
func (t *tier) holds(v int64) bool {
	switch t.op {
	case "gt":
		return v > t.value
	case "gte":
		return v >= t.value
	case "lt":
		return v < t.value
	default: // lte
		return v <= t.value
	}
}

var tierNameRE = regexp.MustCompile(`^[a-z0-9_]{1,64}$`)

// callRate is a per-call fee.
type callRate struct {
	picosPerCall int64
	perMillion   string // USD per 1M calls, the unit of CostLine.UnitPrice
}

// Limits on per-call fees and service tier factors.
const (
	maxCallPriceUSD = 1000
	callDecimals    = 12
	maxMultiply     = 100
)

// parseTiers parses a model entry's tiers. tables[0] of the result is left
// to the caller; the tier tables are built per service tier by buildTables.
func parseTiers(p *yamlstrict.Problems, path string, specs []tierSpec) ([]tier, bool) {
	ok := true
	out := make([]tier, 0, len(specs))
	seen := map[string]bool{}
	for i, s := range specs {
		tp := fmt.Sprintf("%s.tiers[%d]", path, i)
		t := tier{name: s.Name, op: s.When.Op, value: s.When.Value}
		for m := range numMeters {
			t.meterNames[m] = meterNames[m] + "@" + s.Name
		}
		if !tierNameRE.MatchString(s.Name) {
			p.Add(tp+".name", "%q must be 1-64 characters of a-z, 0-9 and _ (it names the tier's cost lines, e.g. \"long_context\")", s.Name)
			ok = false
		} else if seen[s.Name] {
			p.Add(tp+".name", "%q is used by an earlier tier of this entry", s.Name)
			ok = false
		}
		seen[s.Name] = true
		f, known := fieldNames[s.When.Field]
		if !known {
			p.Add(tp+".when.field", "%q is not a usage field (one of %s)", s.When.Field, sortedFieldNames())
			ok = false
		}
		t.field = f
		switch s.When.Op {
		case "gt", "gte", "lt", "lte":
		default:
			p.Add(tp+".when.op", "%q must be one of gt, gte, lt, lte", s.When.Op)
			ok = false
		}
		if s.When.Value < 0 {
			p.Add(tp+".when.value", "%d must not be negative", s.When.Value)
			ok = false
		}
		switch s.Mode {
		case ModeWholeRequest:
		case ModeGraduated:
			t.graduated = true
			if s.When.Op != "gt" && s.When.Op != "gte" {
				p.Add(tp+".mode", "graduated needs op gt or gte: it prices the tokens beyond the threshold")
				ok = false
			}
			if known && fieldFamily[f] == nil {
				p.Add(tp+".mode", "graduated cannot split %s, which has no meters of its own; use whole_request", s.When.Field)
				ok = false
			}
			t.baseAllowance = s.When.Value
			if s.When.Op == "gte" && t.baseAllowance > 0 {
				t.baseAllowance--
			}
		default:
			p.Add(tp+".mode", "%q must be whole_request or graduated", s.Mode)
			ok = false
		}
		out = append(out, t)
	}
	return out, ok
}

// parseMultiply parses a service tier factor.
func parseMultiply(p *yamlstrict.Problems, path, s string) (decimal.Decimal, bool) {
	d, err := decimal.NewFromString(strings.TrimSpace(s))
	if err != nil {
		p.Add(path, "%q is not a decimal number", s)
		return d, false
	}
	if d.Sign() < 0 || d.GreaterThan(decimal.NewFromInt(maxMultiply)) {
		p.Add(path, "%s must be between 0 and %d", s, maxMultiply)
		return d, false
	}
	return d, true
}

// scaleTable multiplies every rate by f. It fails, naming the rate, when a
// product is not a whole number of pico-USD per token.
func scaleTable(t rateTable, f decimal.Decimal) (rateTable, string, bool) {
	for i := range t {
		d := decimal.NewFromInt(t[i].picosPerToken).Mul(f)
		if !d.IsInteger() {
			return t, rateKeyNames[i], false
		}
		t[i] = rate{picosPerToken: d.IntPart(), perMillion: d.Shift(-6).String(), set: t[i].set}
	}
	return t, "", true
}

// parsePerCall parses per-call fees in USD per call.
func parsePerCall(p *yamlstrict.Problems, path string, m map[string]string) (map[string]callRate, bool) {
	if len(m) == 0 {
		return nil, true
	}
	ok := true
	out := make(map[string]callRate, len(m))
	for name, s := range m {
		kp := path + ".per_call." + name
		if name == "" {
			p.Add(path+".per_call", "call kinds must not be empty")
			ok = false
			continue
		}
		d, err := decimal.NewFromString(strings.TrimSpace(s))
		switch {
		case err != nil:
			p.Add(kp, "%q is not a decimal number of USD per call", s)
		case d.Sign() < 0:
			p.Add(kp, "%s is negative; fees must be zero or more", s)
		case d.GreaterThan(decimal.NewFromInt(maxCallPriceUSD)):
			p.Add(kp, "%s is above the limit of %d USD per call; check the unit", s, maxCallPriceUSD)
		case !d.Shift(callDecimals).IsInteger():
			p.Add(kp, "%s has more than %d decimal places; a fee must be a whole number of pico-USD", s, callDecimals)
		default:
			out[name] = callRate{picosPerCall: d.Shift(callDecimals).IntPart(), perMillion: d.Shift(6).String()}
			continue
		}
		ok = false
	}
	return out, ok
}

// counts are an event's usage as meter quantities plus the raw field
// values tier conditions test.
type counts struct {
	meter [numMeters]int64
	field [numFields]int64
}

// usageCounts splits usage into meters so that each input token lands in
// exactly one input meter and each output token in exactly one output
// meter:
//
//	cache_read_input      cache reads
//	cache_write_input_5m  5-minute cache writes
//	cache_write_input_1h  1-hour cache writes
//	cache_write_input     cache writes not split by lifetime
//	input_audio           audio input, counted within uncached input
//	input                 the rest of the input (text, images, tool results)
//	reasoning_output      reasoning
//	output_audio          audio output
//	rejected_prediction_output  rejected predicted tokens (output rate)
//	output                the rest of the output
//
// Audio input beyond the uncached input is taken to be cached and stays in
// cache_read_input. An absent cache_write_input_tokens is the sum of its
// lifetime subsets. Counts that cannot be split consistently (negative,
// subsets larger than their total) return false: unpriced, never guessed.
func usageCounts(u *schemas.Usage) (counts, bool) {
	var c counts
	in := schemas.Get(u.InputTokens)
	read := schemas.Get(u.CacheReadInputTokens)
	w5 := schemas.Get(u.CacheWrite5mInputTokens)
	w1 := schemas.Get(u.CacheWrite1hInputTokens)
	write := schemas.Get(u.CacheWriteInputTokens)
	if u.CacheWriteInputTokens == nil {
		write = w5 + w1
	}
	out := schemas.Get(u.OutputTokens)
	reason := schemas.Get(u.ReasoningOutputTokens)
	audioIn := schemas.Get(u.InputAudioTokens)
	audioOut := schemas.Get(u.OutputAudioTokens)
	rejected := schemas.Get(u.RejectedPredictionTokens)
	tool := schemas.Get(u.ToolInputTokens)
	accepted := schemas.Get(u.AcceptedPredictionTokens)
	if in < 0 || read < 0 || write < 0 || w5 < 0 || w1 < 0 || out < 0 || reason < 0 ||
		audioIn < 0 || audioOut < 0 || rejected < 0 || tool < 0 || accepted < 0 {
		return c, false
	}
	// Each comparison is against a difference of non-negative values, so
	// no sum can overflow.
	if read > in || write > in-read || w5 > write || w1 > write-w5 ||
		reason > out || audioOut > out-reason || rejected > out-reason-audioOut ||
		tool > in || accepted > out {
		return c, false
	}
	uncached := in - read - write
	audioUncached := min(audioIn, uncached)
	c.meter = [numMeters]int64{
		mInput:              uncached - audioUncached,
		mCacheRead:          read,
		mCacheWrite:         write - w5 - w1,
		mCacheWrite5m:       w5,
		mCacheWrite1h:       w1,
		mInputAudio:         audioUncached,
		mOutput:             out - reason - audioOut - rejected,
		mReasoning:          reason,
		mOutputAudio:        audioOut,
		mRejectedPrediction: rejected,
	}
	c.field = [numFields]int64{
		fInput: in, fCacheRead: read, fCacheWrite: write, fCacheWrite5m: w5, fCacheWrite1h: w1,
		fOutput: out, fReasoning: reason, fToolInput: tool, fInputAudio: audioIn, fOutputAudio: audioOut,
		fAcceptedPrediction: accepted, fRejectedPrediction: rejected, fUncachedInput: uncached,
	}
	return c, true
}
