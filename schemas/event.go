// Package schemas holds aivis's data contracts: the canonical usage event
// (v1) as Go types mirroring schemas/usage-event.v1.json, the enriched event
// that enrich publishes, the rows the aggregator stores, the dead-letter
// envelope, alerts and topic names. How a sink lays those rows out (the
// ClickHouse tables and migrations) belongs to the sink.
//
// Token counts follow one normalized convention: input_tokens includes cache
// reads and cache writes, output_tokens includes reasoning; subsets are
// separate fields; a nil count means "not reported", distinct from 0.
// Money is never a float: costs are int64 pico-USD (1e-12 USD), exact for any
// catalog price with up to six decimal places per million tokens.
package schemas

import (
	"encoding/json"
	"time"
)

// Topic names carry the major schema version; a breaking change gets a new topic.
const (
	TopicRaw        = "aivis.usage.raw.v1"
	TopicEnriched   = "aivis.usage.enriched.v1"
	TopicDeadLetter = "aivis.deadletter.v1"
	TopicAlerts     = "aivis.alerts.v1"
)

// SchemaVersion is the version of the canonical usage event these types mirror.
const SchemaVersion = "1"

// Event kinds.
const (
	KindLLMRequest = "llm.request"
	KindGPUUsage   = "gpu.usage"
)

// Request statuses.
const (
	StatusOK        = "ok"
	StatusError     = "error"
	StatusCancelled = "cancelled"
	StatusPartial   = "partial"
)

// Event is the canonical usage event, v1. Producers assign EventID; it is the
// deduplication key, so a retried submission must reuse it.
type Event struct {
	SchemaVersion string    `json:"schema_version"`
	EventID       string    `json:"event_id"`
	Time          time.Time `json:"time"`
	Kind          string    `json:"kind"`
	Source        string    `json:"source"`

	// APIKeyID is a hash of the caller's API key, never the key itself.
	APIKeyID string            `json:"api_key_id,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
	// LabelsJSON holds the labels in place of Labels, as the JSON object
	// that AppendJSON writes for them, when a Decoder with LabelsAsJSON
	// read them so written: for readers that store labels and look none
	// up, such as the aggregator. Nil otherwise; AppendJSON writes it
	// when Labels is empty.
	LabelsJSON json.RawMessage `json:"-"`

	// llm.request fields.
	Provider    string `json:"provider,omitempty"`
	Model       string `json:"model,omitempty"`
	Operation   string `json:"operation,omitempty"`
	Status      string `json:"status,omitempty"`
	ErrorType   string `json:"error_type,omitempty"`
	LatencyMs   *int64 `json:"latency_ms,omitempty"`
	ServiceTier string `json:"service_tier,omitempty"`
	Streaming   bool   `json:"streaming,omitempty"`
	Usage       *Usage `json:"usage,omitempty"`
	// RawUsage is the provider's usage object as received, kept for audit.
	RawUsage json.RawMessage `json:"raw_usage,omitempty"`
	// ProviderCostUSD is the cost the provider itself reported, as a
	// decimal string; when present it wins over the catalog.
	ProviderCostUSD string `json:"provider_cost_usd,omitempty"`
	// Warnings are adapter findings that do not reject the event, e.g. a
	// provider total that disagrees with the normalized counts.
	Warnings []string `json:"warnings,omitempty"`

	// gpu.usage fields.
	GPU *GPUUsage `json:"gpu,omitempty"`

	// Attribution depth: who the request was made for (the gateway's end
	// user) and the caller's tags. Enrich bounds how many distinct values
	// each takes (see package governance) so one noisy caller cannot blow
	// up the views that group by them.
	EndUser string   `json:"end_user,omitempty"`
	Tags    []string `json:"tags,omitempty"`
	// Data movement: the request and response sizes in bytes where the
	// payload or the provider tells them, and where the provider served
	// the request (a region such as us-east-1 or europe-west4, and the
	// endpoint host).
	RequestBytes     *int64 `json:"request_bytes,omitempty"`
	ResponseBytes    *int64 `json:"response_bytes,omitempty"`
	ProviderRegion   string `json:"provider_region,omitempty"`
	ProviderEndpoint string `json:"provider_endpoint,omitempty"`
	// RequestCount is how many requests an llm.request event stands for
	// when it sums several (a self-hosted server's counters over an
	// interval, which may be 0 when only unfinished requests produced
	// tokens); absent means one. Windows count requests by it.
	RequestCount *int64 `json:"request_count,omitempty"`
}

// Requests is the number of requests e stands for: RequestCount, or 1.
func (e *Event) Requests() uint64 {
	if e.RequestCount != nil && *e.RequestCount >= 0 {
		return uint64(*e.RequestCount)
	}
	return 1
}

// Usage holds normalized token counts. Nil means "not reported".
type Usage struct {
	InputTokens           *int64 `json:"input_tokens,omitempty"`
	CacheReadInputTokens  *int64 `json:"cache_read_input_tokens,omitempty"`
	CacheWriteInputTokens *int64 `json:"cache_write_input_tokens,omitempty"`
	OutputTokens          *int64 `json:"output_tokens,omitempty"`
	ReasoningOutputTokens *int64 `json:"reasoning_output_tokens,omitempty"`
	// Subsets of CacheWriteInputTokens by cache lifetime (Anthropic,
	// Bedrock): they price differently.
	CacheWrite5mInputTokens *int64 `json:"cache_write_5m_input_tokens,omitempty"`
	CacheWrite1hInputTokens *int64 `json:"cache_write_1h_input_tokens,omitempty"`
	// ToolInputTokens is the subset of input that re-fed tool results
	// (Gemini toolUsePromptTokenCount).
	ToolInputTokens *int64 `json:"tool_input_tokens,omitempty"`
	// Audio subsets of input and output.
	InputAudioTokens  *int64 `json:"input_audio_tokens,omitempty"`
	OutputAudioTokens *int64 `json:"output_audio_tokens,omitempty"`
	// Predicted-output subsets of output (OpenAI); rejected ones are billed.
	AcceptedPredictionTokens *int64 `json:"accepted_prediction_tokens,omitempty"`
	RejectedPredictionTokens *int64 `json:"rejected_prediction_tokens,omitempty"`
	// ServerToolCalls counts billable provider-side tool calls by kind,
	// e.g. {"web_search": 2}.
	ServerToolCalls map[string]int64 `json:"server_tool_calls,omitempty"`
	// ProviderTotalTokens is the provider's own total, kept to cross-check
	// the normalized input+output.
	ProviderTotalTokens *int64 `json:"provider_total_tokens,omitempty"`
}

// GPUUsage describes GPU time used by one owner over an interval (declared
// in v1; produced by gpuprobe).
type GPUUsage struct {
	GPUModel         string   `json:"gpu_model"`
	GPUUUID          string   `json:"gpu_uuid,omitempty"`
	MIGProfile       string   `json:"mig_profile,omitempty"`
	Host             string   `json:"host,omitempty"`
	Cluster          string   `json:"cluster,omitempty"`
	Namespace        string   `json:"namespace,omitempty"`
	Pod              string   `json:"pod,omitempty"`
	Container        string   `json:"container,omitempty"`
	PID              int64    `json:"pid,omitempty"`
	IntervalSeconds  float64  `json:"interval_seconds"`
	AllocatedSeconds float64  `json:"allocated_gpu_seconds"`
	BusySeconds      float64  `json:"busy_gpu_seconds"`
	MemoryBytes      int64    `json:"memory_bytes,omitempty"`
	EnergyJoules     *float64 `json:"energy_joules,omitempty"`
	PricingCategory  string   `json:"pricing_category,omitempty"`
	// OwnerKind and OwnerID say whom the GPU time is attributed to, from
	// the process's cgroup: k8s_pod (pod UID), container, slurm_job,
	// systemd_unit, user, unknown, or idle (no process held the device).
	OwnerKind string `json:"owner_kind,omitempty"`
	OwnerID   string `json:"owner_id,omitempty"`
	// MemoryMaxBytes is the largest memory reading in the interval;
	// MemoryBytes is the average.
	MemoryMaxBytes int64 `json:"memory_max_bytes,omitempty"`
	// ParentGPUUUID is the physical GPU of a MIG instance (GPUUUID is then
	// the MIG-… UUID).
	ParentGPUUUID string `json:"parent_gpu_uuid,omitempty"`
	// Attribution says how a shared device's time was split between
	// owners: sole, process_util, even, or idle.
	Attribution string `json:"attribution,omitempty"`
}

// Get returns the value of a nullable count, 0 when not reported.
func Get(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

// Int64 returns a pointer to v, for building events in code.
func Int64(v int64) *int64 { return &v }
