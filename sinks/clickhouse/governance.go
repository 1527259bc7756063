package clickhouse

import (
	"context"
	"fmt"

	"github.com/aivis-dev/aivis/schemas"
)

// WriteGovernanceSignals inserts incident changes; a change written again
// (same incident and update) replaces the first.
func (s *Store) WriteGovernanceSignals(ctx context.Context, rows []schemas.GovernanceSignal) error {
	if len(rows) == 0 {
		return nil
	}
	batch, err := s.conn.PrepareBatch(ctx, `INSERT INTO `+TableGovernanceSignals+` (signal, category, subject, incident_id, status, update,
    window_start, window_end, team, provider, model, region, api_key_id, source, source_address,
    cost_usd, events, bytes, value, threshold, detail, detected_at)`)
	if err != nil {
		return fmt.Errorf("preparing governance signals insert: %w", err)
	}
	defer batch.Abort()
	for _, r := range rows {
		if err := batch.Append(r.Signal, r.Category, r.Subject, r.IncidentID, r.Status, r.Update,
			r.WindowStart, r.WindowEnd, r.Team, r.Provider, r.Model, r.Region, r.APIKeyID, r.Source, r.SourceAddress,
			r.CostUSD, r.Events, r.Bytes, r.Value, r.Threshold, r.Detail, r.DetectedAt); err != nil {
			return fmt.Errorf("appending governance signal %s: %w", r.IncidentID, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("inserting %d governance signals: %w", len(rows), err)
	}
	return nil
}

// WriteAuthFailures inserts ingest's auth-failure counts; a count written
// again (same minute, address and node) replaces the first.
func (s *Store) WriteAuthFailures(ctx context.Context, rows []schemas.AuthFailureCount) error {
	if len(rows) == 0 {
		return nil
	}
	batch, err := s.conn.PrepareBatch(ctx, `INSERT INTO `+TableAuthFailures+` (minute, source_address, node, failures)`)
	if err != nil {
		return fmt.Errorf("preparing auth failures insert: %w", err)
	}
	defer batch.Abort()
	for _, r := range rows {
		if err := batch.Append(r.Minute.UTC(), r.SourceAddress, r.Node, r.Failures); err != nil {
			return fmt.Errorf("appending the auth failures of %s: %w", r.SourceAddress, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("inserting %d auth failure counts: %w", len(rows), err)
	}
	return nil
}
