package schemas

import (
	"time"

	"github.com/shopspring/decimal"
)

// TopicSecurity carries ingest's counts of rejected producer
// authentications (AuthFailureCount), keyed by source address. The
// governance evaluator stores them and judges bursts.
const TopicSecurity = "aivis.security.v1"

// AuthFailureCount is how many requests from one source address one ingest
// process refused for a missing or unknown token within one minute. A
// redelivered count replaces the first (same minute, address and node).
type AuthFailureCount struct {
	Minute        time.Time `json:"minute"`
	SourceAddress string    `json:"source_address"`
	Node          string    `json:"node"`
	Failures      int64     `json:"failures"`
}

// GovernanceSignal is one change of a governance or security incident: a
// row of governance_signals and the alert published with it. An incident
// opens (firing), may grow (updated) and ends (resolved); its rows share
// IncidentID, each with the next Update.
type GovernanceSignal struct {
	Signal     string
	Category   string
	Subject    string
	IncidentID string
	Status     string
	Update     uint32
	// The window of usage the evaluation judged.
	WindowStart, WindowEnd time.Time
	// Dimensions the signal is about; empty where they do not apply.
	Team, Provider, Model, Region, APIKeyID, Source, SourceAddress string
	// CostUSD is the exact spend behind the signal in the window, Events
	// the requests (or, for auth failures, the rejected requests), Bytes
	// the request and response bytes.
	CostUSD decimal.Decimal
	Events  uint64
	Bytes   int64
	// Value is the measure judged against Threshold (a share, a count).
	Value, Threshold float64
	Detail           string
	DetectedAt       time.Time
}
