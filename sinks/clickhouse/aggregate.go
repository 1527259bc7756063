package clickhouse

import (
	"context"
	"fmt"
	"time"

	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/schemas"
)

// maxSeenIDs bounds the event ids read back for one partition's dedup state.
const maxSeenIDs = 2_000_000

// History returns what partition already holds: the emitted through-offset
// of each window since `since`, and the ids of events stored below the
// offset consumption restarts from (ids at or above it are replayed and so
// re-learned from the topic).
func (s *Store) History(ctx context.Context, partition int32, restartOffset int64, since time.Time) (schemas.PartitionHistory, error) {
	emitted, err := s.Emitted(ctx, partition, since)
	if err != nil {
		return schemas.PartitionHistory{}, err
	}
	h := schemas.PartitionHistory{Emitted: emitted}
	rows, err := s.conn.Query(ctx, `SELECT event_id, toUInt32(time)
FROM `+TableEvents+`
WHERE src_partition = toUInt32(?) AND src_offset < ? AND time >= toDateTime(?)
ORDER BY src_offset
LIMIT ?`, int64(partition), restartOffset, since.Unix(), int64(maxSeenIDs))
	if err != nil {
		return h, fmt.Errorf("reading stored event ids of partition %d: %w", partition, err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var at uint32
		if err := rows.Scan(&id, &at); err != nil {
			return h, fmt.Errorf("reading stored event ids of partition %d: %w", partition, err)
		}
		h.SeenIDs = append(h.SeenIDs, schemas.SeenID{ID: id, Time: time.Unix(int64(at), 0)})
	}
	return h, rows.Err()
}

// LatestWindow returns the newest window start in cost_windows.
func (s *Store) LatestWindow(ctx context.Context) (time.Time, error) {
	var ts uint32
	if err := s.conn.QueryRow(ctx, `SELECT toUInt32(max(window_start)) FROM `+TableWindows).Scan(&ts); err != nil {
		return time.Time{}, fmt.Errorf("reading the newest window: %w", err)
	}
	if ts == 0 {
		return time.Time{}, nil
	}
	return time.Unix(int64(ts), 0).UTC(), nil
}

// LatestScored returns the newest window start in cost_anomalies.
func (s *Store) LatestScored(ctx context.Context) (time.Time, error) {
	var ts uint32
	if err := s.conn.QueryRow(ctx, `SELECT toUInt32(max(window_start)) FROM `+TableAnomalies).Scan(&ts); err != nil {
		return time.Time{}, fmt.Errorf("reading the newest anomaly score: %w", err)
	}
	if ts == 0 {
		return time.Time{}, nil
	}
	return time.Unix(int64(ts), 0).UTC(), nil
}

// PublishedIncidents returns the incident marks of score rows with window
// start at or after since: the incident alerts already published. Every
// row ever written with a mark counts (no FINAL), so a score rewritten
// later cannot hide one.
func (s *Store) PublishedIncidents(ctx context.Context, since time.Time) ([]schemas.Score, error) {
	rows, err := s.conn.Query(ctx, `SELECT DISTINCT toUInt32(window_start), team, model, incident_id, toString(incident_status), incident_update
FROM `+TableAnomalies+`
WHERE window_start >= toDateTime(?) AND incident_id != ''
ORDER BY incident_id, incident_update`, since.Unix())
	if err != nil {
		return nil, fmt.Errorf("reading published incidents: %w", err)
	}
	defer rows.Close()
	var out []schemas.Score
	for rows.Next() {
		var ts uint32
		var sc schemas.Score
		if err := rows.Scan(&ts, &sc.Team, &sc.Model, &sc.IncidentID, &sc.IncidentStatus, &sc.IncidentUpdate); err != nil {
			return nil, fmt.Errorf("reading published incidents: %w", err)
		}
		sc.WindowStart = time.Unix(int64(ts), 0).UTC()
		out = append(out, sc)
	}
	return out, rows.Err()
}

// SeriesCosts returns per-(window, team, model) cost for windows in [from, to].
func (s *Store) SeriesCosts(ctx context.Context, from, to time.Time) ([]schemas.SeriesCost, error) {
	rows, err := s.conn.Query(ctx, `SELECT toUInt32(window_start) AS ws, team, model, sum(cost_usd)
FROM `+ViewWindows+`
WHERE window_start >= toDateTime(?) AND window_start <= toDateTime(?)
GROUP BY ws, team, model
ORDER BY ws, team, model`, from.Unix(), to.Unix())
	if err != nil {
		return nil, fmt.Errorf("reading window costs %s..%s: %w", from.Format(time.RFC3339), to.Format(time.RFC3339), err)
	}
	defer rows.Close()
	var out []schemas.SeriesCost
	for rows.Next() {
		var ts uint32
		var c schemas.SeriesCost
		var cost decimal.Decimal
		if err := rows.Scan(&ts, &c.Team, &c.Model, &cost); err != nil {
			return nil, fmt.Errorf("reading window costs: %w", err)
		}
		c.WindowStart = time.Unix(int64(ts), 0).UTC()
		if c.CostPicos, err = usdToSum(cost); err != nil {
			return nil, fmt.Errorf("reading window costs of team %s, model %s: %w", c.Team, c.Model, err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// WriteScores inserts scores; rows with the same (window, team, model)
// replace each other, so rescoring is idempotent.
func (s *Store) WriteScores(ctx context.Context, scores []schemas.Score) error {
	batch, err := s.conn.PrepareBatch(ctx, `INSERT INTO `+TableAnomalies+` (window_start, team, model, cost_usd, baseline_usd, stddev_usd, z_score, observations, is_anomaly, ewma_mean_usd, ewma_var, scored_at, incident_id, incident_status, incident_update)`)
	if err != nil {
		return fmt.Errorf("preparing anomaly insert: %w", err)
	}
	defer batch.Abort()
	now := time.Now().UTC()
	for _, sc := range scores {
		var usd [4]decimal.Decimal
		for i, p := range []schemas.Picos128{sc.CostPicos, sc.BaselinePicos, sc.StddevPicos, sc.EWMAMeanPicos} {
			if usd[i], err = sumToUSD(p); err != nil {
				return fmt.Errorf("appending the anomaly score of team %s, model %s: %w", sc.Team, sc.Model, err)
			}
		}
		if err := batch.Append(sc.WindowStart, sc.Team, sc.Model, usd[0],
			usd[1], usd[2], sc.Z, sc.Observations, flag(sc.Anomaly),
			usd[3], sc.EWMAVar, now, sc.IncidentID, sc.IncidentStatus, sc.IncidentUpdate); err != nil {
			return fmt.Errorf("appending anomaly score: %w", err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("inserting %d anomaly scores: %w", len(scores), err)
	}
	return nil
}
