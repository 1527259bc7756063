package clickhouse

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/schemas"
)

// RatedEvents returns the newest rating of every event with time in
// [from, to), rebuilt as enriched events with their stored position.
func (s *Store) RatedEvents(ctx context.Context, from, to time.Time) ([]schemas.StoredEvent, error) {
	rows, err := s.conn.Query(ctx, `SELECT event_id, toUInt32(time), kind, source, provider, model, canonical_model, operation, status, error_type,
    latency_ms, service_tier, team, project, cost_center, api_key_id,
    input_tokens, cache_read_input_tokens, cache_write_input_tokens, output_tokens, reasoning_output_tokens,
    cost_usd, cost_source, catalog_version, price_id, unpriced, unowned, labels, raw_usage,
    src_partition, src_offset, rating_version, usage_json, provider_cost_usd,
    end_user, tags, request_bytes, response_bytes, provider_region, provider_endpoint,
    unapproved, region_not_allowed, missing_labels,
    gpu_model, gpu_host, mig_profile, gpu_owner_kind, gpu_owner_id, pricing_category,
    allocated_gpu_seconds, busy_gpu_seconds, energy_joules, request_count
FROM `+TableEvents+` FINAL
WHERE time >= toDateTime(?) AND time < toDateTime(?)`, from.Unix(), to.Unix())
	if err != nil {
		return nil, fmt.Errorf("reading events %s..%s for re-rating: %w", from.Format(time.RFC3339), to.Format(time.RFC3339), err)
	}
	defer rows.Close()
	var out []schemas.StoredEvent
	for rows.Next() {
		var (
			e                         schemas.Enriched
			at, partition             uint32
			latency, in, cr, cw, o, r int64
			cost                      decimal.Decimal
			unpriced, unowned         uint8
			labels, raw, usageJSON    string
			se                        schemas.StoredEvent
			reqBytes, respBytes       int64
			unapproved, badRegion     uint8
			missingLabels             uint8
			gpu                       schemas.GPUUsage
			energy                    float64
			requestCount              uint32
		)
		if err := rows.Scan(&e.EventID, &at, &e.Kind, &e.Source, &e.Provider, &e.Model, &e.CanonicalModel, &e.Operation, &e.Status, &e.ErrorType,
			&latency, &e.ServiceTier, &e.Owner.Team, &e.Owner.Project, &e.Owner.CostCenter, &e.APIKeyID,
			&in, &cr, &cw, &o, &r, &cost, &e.CostSource, &e.Pricing.CatalogVersion, &e.Pricing.PriceID,
			&unpriced, &unowned, &labels, &raw, &partition, &se.Offset, &se.RatingVersion, &usageJSON, &e.ProviderCostUSD,
			&e.EndUser, &e.Tags, &reqBytes, &respBytes, &e.ProviderRegion, &e.ProviderEndpoint,
			&unapproved, &badRegion, &missingLabels,
			&gpu.GPUModel, &gpu.Host, &gpu.MIGProfile, &gpu.OwnerKind, &gpu.OwnerID, &gpu.PricingCategory,
			&gpu.AllocatedSeconds, &gpu.BusySeconds, &energy, &requestCount); err != nil {
			return nil, fmt.Errorf("reading events for re-rating: %w", err)
		}
		e.SchemaVersion = schemas.SchemaVersion
		e.Time = time.Unix(int64(at), 0).UTC()
		e.LatencyMs = &latency
		if e.CostPicos, err = usdToPicos(cost); err != nil {
			return nil, fmt.Errorf("reading the cost of event %s: %w", e.EventID, err)
		}
		e.Flags.Unpriced, e.Flags.Unowned = unpriced == 1, unowned == 1
		e.Flags.UnapprovedModel, e.Flags.RegionNotAllowed, e.Flags.MissingLabels = unapproved == 1, badRegion == 1, missingLabels == 1
		if len(e.Tags) == 0 {
			e.Tags = nil
		}
		// 0 bytes is stored for "not reported"; a rewrite keeps that.
		if reqBytes != 0 {
			e.RequestBytes = &reqBytes
		}
		if respBytes != 0 {
			e.ResponseBytes = &respBytes
		}
		// A GPU interval is priced again from its stored model, category,
		// MIG profile, allocated seconds and energy, and rewritten with
		// them (0 J is stored for "not reported"; a rewrite keeps that).
		if e.Kind == schemas.KindGPUUsage {
			if energy != 0 {
				gpu.EnergyJoules = &energy
			}
			e.GPU = &gpu
		}
		if requestCount != 1 {
			c := int64(requestCount)
			e.RequestCount = &c
		}
		if labels != "" && labels != "{}" {
			if err := json.Unmarshal([]byte(labels), &e.Labels); err != nil {
				return nil, fmt.Errorf("reading the labels of event %s: %w", e.EventID, err)
			}
		}
		if raw != "" {
			e.RawUsage = json.RawMessage(raw)
		}
		// Events stored before usage_json existed keep their five counts.
		e.Usage = &schemas.Usage{InputTokens: &in, CacheReadInputTokens: &cr, CacheWriteInputTokens: &cw, OutputTokens: &o, ReasoningOutputTokens: &r}
		if usageJSON != "" {
			var u schemas.Usage
			if err := json.Unmarshal([]byte(usageJSON), &u); err != nil {
				return nil, fmt.Errorf("reading the usage of event %s: %w", e.EventID, err)
			}
			e.Usage = &u
		}
		se.Event = &e
		se.Partition = int32(partition)
		out = append(out, se)
	}
	return out, rows.Err()
}

// rerateSrc is RerateSrcPartition as ClickHouse stores it.
var rerateSrc = func() int64 { p := RerateSrcPartition; return int64(uint32(p)) }()

// MaxRatingVersion is the highest rating version stored.
func (s *Store) MaxRatingVersion(ctx context.Context) (uint64, error) {
	var v uint64
	if err := s.conn.QueryRow(ctx, `SELECT max(rating_version) FROM `+TableEvents).Scan(&v); err != nil {
		return 0, fmt.Errorf("reading the newest rating version: %w", err)
	}
	return v, nil
}

// CostCorrections returns, for each (window, provider, model, team,
// project) with a window start in [from, to), a correction row that brings
// the windows' cost to the events' cost: the events' total (newest ratings)
// minus the windows' total without this version's own corrections. The rows
// are keyed by version, so computing and writing them again replaces them:
// re-running a re-rating converges instead of adding twice.
func (s *Store) CostCorrections(ctx context.Context, from, to time.Time, window time.Duration, version uint64) ([]schemas.WindowRow, error) {
	w := int64(window / time.Second)
	type key struct {
		ws                             uint32
		provider, model, team, project string
	}
	sum := func(q string, args ...any) (map[key]decimal.Decimal, error) {
		rows, err := s.conn.Query(ctx, q, args...)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		out := map[key]decimal.Decimal{}
		for rows.Next() {
			var k key
			var c decimal.Decimal
			if err := rows.Scan(&k.ws, &k.provider, &k.model, &k.team, &k.project, &c); err != nil {
				return nil, err
			}
			out[k] = c
		}
		return out, rows.Err()
	}
	// Windows are keyed by the canonical model (cost_windows.model).
	target, err := sum(`SELECT toUInt32(intDiv(toUInt32(time), ?) * ?) AS ws, provider, canonical_model, team, project, sum(cost_usd)
FROM `+TableEvents+` FINAL
WHERE time >= toDateTime(?) AND time < toDateTime(?)
GROUP BY ws, provider, canonical_model, team, project`, w, w, from.Unix(), to.Unix())
	if err != nil {
		return nil, fmt.Errorf("summing re-rated event costs: %w", err)
	}
	current, err := sum(`SELECT toUInt32(window_start) AS ws, provider, model, team, project, sum(cost_usd)
FROM `+TableWindows+` FINAL
WHERE window_start >= toDateTime(?) AND window_start < toDateTime(?)
  AND NOT (src_partition = toUInt32(?) AND through_offset = ?)
GROUP BY ws, provider, model, team, project`, from.Unix(), to.Unix(), rerateSrc, int64(version))
	if err != nil {
		return nil, fmt.Errorf("summing window costs: %w", err)
	}
	var out []schemas.WindowRow
	for k, t := range target {
		delta := t.Sub(current[k])
		if delta.IsZero() {
			continue
		}
		picos, err := usdToSum(delta)
		if err != nil {
			return nil, fmt.Errorf("correcting window %s: %w", time.Unix(int64(k.ws), 0).UTC().Format(time.RFC3339), err)
		}
		out = append(out, schemas.WindowRow{
			WindowStart: time.Unix(int64(k.ws), 0).UTC(), WindowSeconds: uint32(w),
			Provider: k.provider, Model: k.model, Team: k.team, Project: k.project,
			SrcPartition: RerateSrcPartition, ThroughOffset: int64(version),
			CostPicos:   picos,
			LatencyHist: make([]uint64, schemas.LatencyBuckets),
		})
	}
	return out, nil
}
