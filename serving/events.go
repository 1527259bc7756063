package serving

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"

	"github.com/aivis-dev/aivis/schemas"
)

// EventID is the deduplication key of a target's model over the interval
// that starts at start: a retried round produces the same id, so that the
// raw topic's consumers drop the copy. The URL is part of it because one
// deployment usually has several replicas, each its own target.
func EventID(t Target, model string, startUnixNano int64) string {
	h := sha256.New()
	for _, s := range []string{t.Deployment, t.URL, model, strconv.FormatInt(startUnixNano, 10)} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return "serving-" + hex.EncodeToString(h.Sum(nil)[:20])
}

// intervalUsage is kept in raw_usage for audit: what the event sums.
type intervalUsage struct {
	Serving         Kind    `json:"serving"`
	IntervalStart   string  `json:"interval_start"`
	IntervalSeconds float64 `json:"interval_seconds"`
	Requests        *int64  `json:"requests,omitempty"`
	InputTokens     *int64  `json:"input_tokens,omitempty"`
	OutputTokens    *int64  `json:"output_tokens,omitempty"`
	CounterReset    bool    `json:"counter_reset,omitempty"`
}

// Event builds the llm.request event of one delta: time is the start of
// the interval, usage the token deltas, operation serving.interval,
// provider_cost_usd 0 (the cost of self-hosted tokens is the GPU time,
// joined by deployment; see docs/serving.md).
func Event(t Target, provider string, d Delta) schemas.Event {
	labels := make(map[string]string, len(t.Labels)+4)
	for k, v := range t.Labels {
		labels[k] = v
	}
	labels["deployment"] = t.Deployment
	labels["serving"] = string(t.Kind)
	if t.Host != "" {
		labels["host"] = t.Host
	}
	if t.Namespace != "" {
		labels["namespace"] = t.Namespace
	}
	raw, _ := json.Marshal(intervalUsage{
		Serving: t.Kind, IntervalStart: d.Start.UTC().Format("2006-01-02T15:04:05.999999999Z07:00"),
		IntervalSeconds: d.End.Sub(d.Start).Seconds(), Requests: d.Requests,
		InputTokens: d.InputTokens, OutputTokens: d.OutputTokens, CounterReset: d.Reset,
	})
	// The server's own request count, when it exports one, is what the
	// windows count for this event.
	var count *int64
	if r := d.Requests; r != nil && *r >= 0 && *r <= schemas.MaxRequestCount {
		count = r
	}
	return schemas.Event{
		SchemaVersion:   schemas.SchemaVersion,
		EventID:         EventID(t, d.Model, d.Start.UnixNano()),
		Time:            d.Start.UTC(),
		Kind:            schemas.KindLLMRequest,
		Source:          Source,
		Labels:          labels,
		Provider:        provider,
		Model:           d.Model,
		Operation:       Operation,
		Status:          schemas.StatusOK,
		Usage:           &schemas.Usage{InputTokens: d.InputTokens, OutputTokens: d.OutputTokens},
		RawUsage:        raw,
		ProviderCostUSD: "0",
		RequestCount:    count,
	}
}
