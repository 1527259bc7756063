package clickhouse

import (
	"cmp"
	"context"
	"fmt"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/ext"
	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/schemas"
)

// History returns what partition already holds: the emitted through-offset
// of each window since `since`, and the ids of events stored below the
// offset consumption restarts from (ids at or above it are replayed and so
// re-learned from the topic). The aggregator streams the ids with SeenIDs
// instead: a 24 h horizon at a high rate does not fit in memory as a slice.
func (s *Store) History(ctx context.Context, partition int32, restartOffset int64, since time.Time) (schemas.PartitionHistory, error) {
	emitted, err := s.Emitted(ctx, partition, since)
	if err != nil {
		return schemas.PartitionHistory{}, err
	}
	h := schemas.PartitionHistory{Emitted: emitted}
	_, err = s.SeenIDs(ctx, partition, restartOffset, since, func(id string, at time.Time) {
		h.SeenIDs = append(h.SeenIDs, schemas.SeenID{ID: id, Time: at})
	})
	return h, err
}

// SeenIDs streams to fn the ids of the partition's events stored below
// restartOffset with event time since `since`, in offset order, and
// returns how many. Nothing bounds them here: the aggregator's dedup
// budget (aggregate.dedup_memory_mib) decides what it keeps.
func (s *Store) SeenIDs(ctx context.Context, partition int32, restartOffset int64, since time.Time, fn func(id string, at time.Time)) (int, error) {
	rows, err := s.conn.Query(ctx, `SELECT event_id, toUInt32(time)
FROM `+TableEvents+`
WHERE src_partition = toUInt32(?) AND src_offset < ? AND time >= toDateTime(?)
ORDER BY src_offset`, int64(partition), restartOffset, since.Unix())
	if err != nil {
		return 0, fmt.Errorf("reading stored event ids of partition %d: %w", partition, err)
	}
	defer rows.Close()
	n := 0
	var id string
	var at uint32
	for rows.Next() {
		if err := rows.Scan(&id, &at); err != nil {
			return n, fmt.Errorf("reading stored event ids of partition %d: %w", partition, err)
		}
		fn(id, time.Unix(int64(at), 0))
		n++
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("reading stored event ids of partition %d: %w", partition, err)
	}
	return n, nil
}

// StoredIDs reports which of ids the partition has stored with event time
// in [from, to] (whole seconds around them): the aggregator's compact dedup
// state asks before it drops an event as a duplicate. The ids travel as an
// external table, like StoredEventIDs'; the date bound limits the read to
// the days of the range.
func (s *Store) StoredIDs(ctx context.Context, partition int32, ids []string, from, to time.Time) (map[string]bool, error) {
	out := make(map[string]bool, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	tbl, err := ext.NewTable("aivis_dedup_ids", ext.Column("event_id", "String"))
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		if err := tbl.Append(id); err != nil {
			return nil, err
		}
	}
	lo, hi := from.Unix(), to.Add(time.Second-1).Unix()
	rows, err := s.conn.Query(ch.Context(ctx, ch.WithExternalTable(tbl)), `SELECT DISTINCT event_id
FROM `+TableEvents+`
WHERE date >= toDate(toDateTime(?)) AND date <= toDate(toDateTime(?))
  AND time >= toDateTime(?) AND time <= toDateTime(?)
  AND src_partition = toUInt32(?) AND event_id IN aivis_dedup_ids`, lo, hi, lo, hi, int64(partition))
	if err != nil {
		return nil, fmt.Errorf("checking %d possibly duplicate event ids of partition %d: %w", len(ids), partition, err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("checking possibly duplicate event ids of partition %d: %w", partition, err)
		}
		out[id] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("checking possibly duplicate event ids of partition %d: %w", partition, err)
	}
	return out, nil
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
			usd[3], sc.EWMAVar, cmp.Or(sc.ScoredAt, now), sc.IncidentID, sc.IncidentStatus, sc.IncidentUpdate); err != nil {
			return fmt.Errorf("appending anomaly score: %w", err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("inserting %d anomaly scores: %w", len(scores), err)
	}
	return nil
}
