package schemas

import "time"

// Cost sources.
const (
	CostSourceCatalog  = "catalog"
	CostSourceProvider = "provider_reported"
	CostSourceNone     = "none"
)

// Unattributed is the owner used when no ownership rule matches.
const Unattributed = "unattributed"

// Enriched is an Event with ownership, pricing and policy flags attached by
// enrich. It is what aivis.usage.enriched.v1 carries; subscribers may rely
// on every field below being present.
type Enriched struct {
	Event
	Owner   Owner   `json:"owner"`
	Pricing Pricing `json:"pricing"`
	// CostPicos is the event's cost in pico-USD (1e-12 USD).
	CostPicos  int64     `json:"cost_picos"`
	CostSource string    `json:"cost_source"`
	Flags      Flags     `json:"flags"`
	EnrichedAt time.Time `json:"enriched_at"`
	// CanonicalModel is the one name of the event's model, whatever
	// spelling the provider reported (Model keeps that): the model name of
	// the catalog entry that matched it (gpt-4o for gpt-4o-2024-08-06,
	// GPT-4o and openai/gpt-4o), else the reported name normalized
	// (pricing.NormalizeModel) and lower-cased. Windows, reports and
	// anomaly series group by it. Records enriched before it existed lack
	// it; read it through ModelID.
	CanonicalModel string `json:"canonical_model"`
}

// ModelID is the name the event's cost is grouped under: CanonicalModel,
// or the reported Model for a record enriched before canonical_model
// existed, which is what aggregates keyed such records by then, so that
// replaying one lands on the rows it was first counted in.
func (e *Enriched) ModelID() string {
	if e.CanonicalModel != "" {
		return e.CanonicalModel
	}
	return e.Model
}

// Owner says who pays for an event.
type Owner struct {
	Team       string `json:"team"`
	Project    string `json:"project"`
	CostCenter string `json:"cost_center,omitempty"`
	// Rule names the ownership rule that matched ("default" when none did).
	Rule string `json:"rule"`
}

// Pricing records how CostPicos was computed so that it can be audited and
// recomputed under another catalog version.
type Pricing struct {
	CatalogVersion string `json:"catalog_version"`
	// PriceID and Lines are always on the wire: "" and [] when no price
	// applied (flags.unpriced).
	PriceID string     `json:"price_id"`
	Lines   []CostLine `json:"lines"`
}

// CostLine is one meter of an event's cost.
type CostLine struct {
	Meter     string `json:"meter"`
	Quantity  int64  `json:"quantity"`
	UnitPrice string `json:"unit_price_per_1m"` // decimal USD per 1M units
	CostPicos int64  `json:"cost_picos"`
}

// Flags are policy findings; they never drop an event.
type Flags struct {
	Unpriced        bool `json:"unpriced,omitempty"`
	Unowned         bool `json:"unowned,omitempty"`
	UnapprovedModel bool `json:"unapproved_model,omitempty"`
	// UsageMismatch: the provider's total disagrees with the normalized
	// counts (see Event.Warnings).
	UsageMismatch bool `json:"usage_mismatch,omitempty"`
	// RegionNotAllowed: the provider region is outside the regions the
	// governance policy allows the team (or the event's data class).
	RegionNotAllowed bool `json:"region_not_allowed,omitempty"`
	// MissingLabels: the event lacks a label the policy requires.
	MissingLabels bool `json:"missing_labels,omitempty"`
}

// DeadLetter is what aivis.deadletter.v1 carries: the original bytes, why
// they were rejected and by which stage.
type DeadLetter struct {
	Stage     string `json:"stage"`
	Reason    string `json:"reason"`
	Detail    string `json:"detail"`
	Topic     string `json:"topic,omitempty"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	// EventID is the event_id of the original, when the stage decoded one.
	EventID  string `json:"event_id,omitempty"`
	Original []byte `json:"original"`
	// OriginalBytes is the length of the original value. Original holds
	// all of it unless OriginalTruncated: a dead letter is kept under
	// 768 KiB, which the Kafka client and a topic of default limits take,
	// and a longer original is cut to fit; on a dead-letter topic that
	// refuses even that, Original is empty. The whole record stays at
	// Topic, Partition, Offset for as long as that topic keeps it.
	OriginalBytes     int  `json:"original_bytes"`
	OriginalTruncated bool `json:"original_truncated,omitempty"`
	// HeadersDropped is the number of the original's headers left out of
	// the dead letter because together they were over 64 KiB.
	HeadersDropped int       `json:"headers_dropped,omitempty"`
	At             time.Time `json:"at"`
}

// Dead-letter reasons.
const (
	ReasonInvalidJSON   = "invalid_json"
	ReasonInvalidSchema = "invalid_schema"
	ReasonTooLate       = "too_late"
	// ReasonFuture: the event is further ahead of the aggregator's clock
	// than aggregate.max_future. Counting it would move its partition's
	// watermark past every current event, which would then be too late.
	ReasonFuture = "future"
	// ReasonTooLarge: the stage's output for the record is larger than its
	// topic takes (the Kafka client's batch of 1,000,012 bytes, or the
	// topic's max.message.bytes), so it could not be written.
	ReasonTooLarge = "too_large"
)
