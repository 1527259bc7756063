package schemas

import "time"

// Alert kinds.
const (
	AlertCostAnomaly = "cost_anomaly"
	// AlertBudget: a budget crossed its soft or hard threshold, or is
	// forecast to run out before its period ends (Threshold says which).
	AlertBudget = "budget"
	// AlertSavings: a savings recommendation (package savings) whose
	// estimated monthly saving exceeds the configured threshold.
	AlertSavings = "savings"
	// AlertGovernance: a governance or security incident changed (package
	// governance); Signal names the signal, Category says which of the two.
	AlertGovernance = "governance"
)

// Alert categories (Alert.Category).
const (
	CategoryCost       = "cost"
	CategoryGovernance = "governance"
	CategorySecurity   = "security"
	CategorySavings    = "savings"
)

// Alert is what aivis.alerts.v1 carries. Cost anomalies come as one alert
// per change of an incident (firing, updated, resolved; see IncidentID and
// Status), budgets as one per (budget, period, threshold). Delivery is at
// least once: an alert published again after a failure keeps its AlertID,
// so subscribers deduplicate by it. Records are keyed by AlertID.
type Alert struct {
	AlertID string `json:"alert_id"`
	Kind    string `json:"kind"`
	// Category groups kinds for receivers: cost, governance, security or
	// savings (empty on alerts published before it existed).
	Category    string    `json:"category,omitempty"`
	WindowStart time.Time `json:"window_start"`
	WindowEnd   time.Time `json:"window_end"`
	Team        string    `json:"team"`
	// Model is the canonical model (Enriched.CanonicalModel) whose cost
	// the series sums, over every name it was reported under.
	Model string `json:"model"`
	// CostUSD, BaselineUSD and StddevUSD are exact decimal strings of
	// whole picodollars: the window's cost, and the detector's expected
	// cost a window and spread, as cost_anomalies stores them.
	CostUSD      string    `json:"cost_usd"`
	BaselineUSD  string    `json:"baseline_usd"`
	StddevUSD    string    `json:"stddev_usd"`
	ZScore       float64   `json:"z_score"`
	Observations uint32    `json:"observations"`
	DetectedAt   time.Time `json:"detected_at"`

	// Budget alerts (Kind AlertBudget) also carry these; WindowStart and
	// WindowEnd are the budget's period, CostUSD its spend so far, Team
	// and Model the scope's when it has them.
	BudgetID  string `json:"budget_id,omitempty"`
	Scope     string `json:"scope,omitempty"`
	Period    string `json:"period,omitempty"`
	Threshold string `json:"threshold,omitempty"` // soft, hard or forecast
	AmountUSD string `json:"amount_usd,omitempty"`
	// ForecastUSD is the forecast spend at period end, an exact decimal
	// string of whole picodollars (as stored in budget_status); ExhaustsAt
	// when the amount is (forecast to be) used up within the period.
	ForecastUSD string     `json:"forecast_usd,omitempty"`
	ExhaustsAt  *time.Time `json:"exhausts_at,omitempty"`

	// IncidentID names one incident across its alerts: the firing one, any
	// updates and the resolution carry the same IncidentID (and their own
	// AlertIDs). Receivers that page (PagerDuty's dedup_key) key on it.
	IncidentID string `json:"incident_id,omitempty"`
	// Status is AlertFiring, AlertUpdated or AlertResolved; empty on
	// alerts that have no lifecycle.
	Status string `json:"status,omitempty"`
	// Contributors explain a change: the sub-keys (API keys, projects,
	// reported model names, …) that moved most against their baseline.
	Contributors []Contributor `json:"contributors,omitempty"`

	// Governance and security signals (package governance) also carry
	// these: Signal is the signal's kind (Signal* of that package),
	// Subject what it is about (an API key id, a source address, a
	// team/model pair), Detail a sentence for a person.
	Signal  string `json:"signal,omitempty"`
	Subject string `json:"subject,omitempty"`
	Detail  string `json:"detail,omitempty"`
}

// Alert statuses of an incident's lifecycle.
const (
	AlertFiring   = "firing"
	AlertUpdated  = "updated"
	AlertResolved = "resolved"
)

// Contributor is one sub-key behind an anomaly: its cost in the anomalous
// window against its baseline, as decimal USD strings.
type Contributor struct {
	// Dimension is what the key is: api_key_id, project, reported_model,
	// new_model or cache_hit_rate.
	Dimension   string `json:"dimension"`
	Key         string `json:"key"`
	CostUSD     string `json:"cost_usd"`
	BaselineUSD string `json:"baseline_usd"`
}
