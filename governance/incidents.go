package governance

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"

	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/schemas"
)

// Signal kinds: the signal column of governance_signals and the Signal of
// their alerts.
const (
	SignalUnapproved       = "unapproved_use"
	SignalRegionNotAllowed = "region_not_allowed"
	SignalMissingLabels    = "missing_labels"
	SignalUnownedKey       = "unowned_key"
	SignalNewSource        = "new_source"
	SignalNewRegion        = "new_region"
	SignalDormantKey       = "dormant_key_wake"
	SignalAuthFailures     = "auth_failure_burst"
	SignalUnattributed     = "unattributed_share"
)

// AlertGovernance is the Kind of every alert the evaluator publishes;
// Alert.Signal says which signal.
const AlertGovernance = schemas.AlertGovernance

// Signals lists every signal with its category, in report order.
var Signals = []struct{ Name, Category string }{
	{SignalUnapproved, schemas.CategoryGovernance},
	{SignalRegionNotAllowed, schemas.CategoryGovernance},
	{SignalMissingLabels, schemas.CategoryGovernance},
	{SignalUnattributed, schemas.CategoryGovernance},
	{SignalUnownedKey, schemas.CategorySecurity},
	{SignalNewSource, schemas.CategorySecurity},
	{SignalNewRegion, schemas.CategorySecurity},
	{SignalDormantKey, schemas.CategorySecurity},
	{SignalAuthFailures, schemas.CategorySecurity},
}

func categoryOf(signal string) string {
	for _, s := range Signals {
		if s.Name == signal {
			return s.Category
		}
	}
	return schemas.CategoryGovernance
}

// finding is one signal observed in an evaluation: what it is about and
// how much usage is behind it.
type finding struct {
	schemas.GovernanceSignal
}

func (f *finding) key() string { return f.Signal + "\x00" + f.Subject }

// incident is an open incident: what was last published for it.
type incident struct {
	id      string
	update  uint32
	events  uint64
	cost    decimal.Decimal
	started time.Time
}

// incidentID names an incident by its signal, subject and the time it
// opened, so that a later incident of the same subject gets a new id.
func incidentID(signal, subject string, opened time.Time) string {
	sum := sha256.Sum256([]byte(signal + "\x00" + subject))
	return signal + ":" + hex.EncodeToString(sum[:6]) + ":" + strconv.FormatInt(opened.Unix(), 10)
}

// grew reports whether a finding is worth an update of its open incident:
// its requests or cost at least doubled since the last alert.
func (inc *incident) grew(f *finding) bool {
	if f.Events >= 2*inc.events && f.Events > inc.events {
		return true
	}
	return inc.cost.IsPositive() && f.CostUSD.GreaterThanOrEqual(inc.cost.Mul(decimal.NewFromInt(2)))
}

// AlertOf is the alert published with a signal row. Its AlertID is the
// incident and update, so a redelivery keeps it.
func AlertOf(s schemas.GovernanceSignal) schemas.Alert {
	return schemas.Alert{
		AlertID:     s.IncidentID + ":" + strconv.FormatUint(uint64(s.Update), 10),
		Kind:        AlertGovernance,
		Category:    s.Category,
		WindowStart: s.WindowStart, WindowEnd: s.WindowEnd,
		Team: s.Team, Model: s.Model,
		CostUSD:    s.CostUSD.String(),
		DetectedAt: s.DetectedAt,
		IncidentID: s.IncidentID, Status: s.Status,
		Signal: s.Signal, Subject: s.Subject, Detail: s.Detail,
	}
}
