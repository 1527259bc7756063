package schemas

import "time"

// Alert kinds.
const (
	AlertCostAnomaly = "cost_anomaly"
)

// Alert is what aivis.alerts.v1 carries. Delivery is at least once: a
// window scored again (after a restart) publishes the same AlertID again,
// so subscribers deduplicate by it. Records are keyed by AlertID.
type Alert struct {
	AlertID     string    `json:"alert_id"`
	Kind        string    `json:"kind"`
	WindowStart time.Time `json:"window_start"`
	WindowEnd   time.Time `json:"window_end"`
	Team        string    `json:"team"`
	// Model is the canonical model (Enriched.CanonicalModel) whose cost
	// the series sums, over every name it was reported under.
	Model string `json:"model"`
	// CostUSD and BaselineUSD are decimal strings; BaselineUSD and
	// StddevUSD are estimates (the EWMA baseline), CostUSD is exact.
	CostUSD      string    `json:"cost_usd"`
	BaselineUSD  string    `json:"baseline_usd"`
	StddevUSD    string    `json:"stddev_usd"`
	ZScore       float64   `json:"z_score"`
	Observations uint32    `json:"observations"`
	DetectedAt   time.Time `json:"detected_at"`
}
