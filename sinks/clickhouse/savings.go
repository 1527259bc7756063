package clickhouse

import (
	"context"
	"fmt"
	"time"

	"github.com/shopspring/decimal"
)

// SavingsRow is one stored savings recommendation of a day (package
// savings); Scope and Evidence are JSON.
type SavingsRow struct {
	Day              time.Time
	ID, Kind         string
	Team, Project    string
	APIKeyID         string
	Provider, Model  string
	Scope, Action    string
	Evidence         string
	Assumption       string
	CurrentCostUSD   decimal.Decimal
	SavingUSD        decimal.Decimal
	MonthlySavingUSD decimal.Decimal
	From, Until      time.Time
	Published        bool
	ComputedAt       time.Time
}

// WriteSavings inserts a day's recommendations; rows of the same (day, id)
// written later replace earlier ones (by version, the computation time).
func (s *Store) WriteSavings(ctx context.Context, rows []SavingsRow) error {
	if len(rows) == 0 {
		return nil
	}
	batch, err := s.conn.PrepareBatch(ctx, `INSERT INTO `+TableSavings+` (day, id, kind, team, project, api_key_id, provider, model,
    scope, action, evidence, assumption, current_cost_usd, saving_usd, monthly_saving_usd, range_from, range_until,
    published, computed_at, version)`)
	if err != nil {
		return fmt.Errorf("preparing savings insert: %w", err)
	}
	defer batch.Abort()
	for _, r := range rows {
		pub := uint8(0)
		if r.Published {
			pub = 1
		}
		if err := batch.Append(r.Day, r.ID, r.Kind, r.Team, r.Project, r.APIKeyID, r.Provider, r.Model,
			r.Scope, r.Action, r.Evidence, r.Assumption, r.CurrentCostUSD, r.SavingUSD, r.MonthlySavingUSD, r.From, r.Until,
			pub, r.ComputedAt, uint64(r.ComputedAt.UnixNano())); err != nil {
			return fmt.Errorf("appending savings recommendation %s: %w", r.ID, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("inserting %d savings recommendations: %w", len(rows), err)
	}
	return nil
}
