package clickhouse

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/schemas"
)

// maxContributors bounds the sub-keys one alert names.
const maxContributors = 5

// ContributorsQuery splits one (team, canonical model) series' events in
// [baseline start, window end) by API key, project and reported model name
// (plus one whole-series row, dimension "series"), with each key's cost and
// input and cache-read tokens in the anomalous window (from window start)
// and in the baseline windows before it. One scan: ARRAY JOIN fans each
// event out to its keys. Arguments: window start ×6, team, model, baseline
// start, window end, and the same two as dates.
const ContributorsQuery = `SELECT kv.1 AS dim, kv.2 AS key,
    sumIf(cost_usd, time >= toDateTime(?)) AS cur_usd,
    sumIf(cost_usd, time < toDateTime(?)) AS base_usd,
    sumIf(input_tokens, time >= toDateTime(?)) AS cur_input,
    sumIf(cache_read_input_tokens, time >= toDateTime(?)) AS cur_read,
    sumIf(input_tokens, time < toDateTime(?)) AS base_input,
    sumIf(cache_read_input_tokens, time < toDateTime(?)) AS base_read
FROM ` + TableEvents + ` FINAL
ARRAY JOIN [('api_key_id', api_key_id), ('project', toString(project)), ('reported_model', toString(model)), ('series', '')] AS kv
WHERE team = ? AND canonical_model = ? AND time >= toDateTime(?) AND time < toDateTime(?)
    AND date >= toDate(?) AND date <= toDate(?)
GROUP BY dim, key
ORDER BY dim, key`

// Contributors explains the anomalous window of team's model starting at
// windowStart: the API keys, projects and reported model names whose cost
// in it rose most above their own mean over the baselineWindows windows
// before it (at most five, largest rise first; a dimension with one key in
// those windows is left out, as that key is the whole series). A reported model with no
// cost in the baseline is named as dimension new_model; when the series'
// cache-read share of input tokens fell to under half of what it was (from
// at least 20%), a cache_hit_rate entry comes first, its key the shares
// ("0.05 (baseline 0.80)") and its costs the series'.
func (s *Store) Contributors(ctx context.Context, team, model string, windowStart time.Time, window time.Duration, baselineWindows int) ([]schemas.Contributor, error) {
	if baselineWindows < 1 {
		baselineWindows = 1
	}
	from := windowStart.Add(-time.Duration(baselineWindows) * window)
	end := windowStart.Add(window)
	ws := windowStart.Unix()
	rows, err := s.conn.Query(ctx, ContributorsQuery, ws, ws, ws, ws, ws, ws, team, model,
		from.Unix(), end.Unix(), from.Unix(), end.Add(-time.Second).Unix())
	if err != nil {
		return nil, fmt.Errorf("reading the contributors of team %s, model %s at %s: %w", team, model, windowStart.Format(time.RFC3339), err)
	}
	defer rows.Close()
	type keyCost struct {
		c    schemas.Contributor
		dim  string
		rise float64
	}
	perDim := map[string]int{}
	n := decimal.NewFromInt(int64(baselineWindows))
	var keys []keyCost
	var cache *schemas.Contributor
	for rows.Next() {
		var dim, key string
		var cur, base decimal.Decimal
		var curIn, curRead, baseIn, baseRead int64
		if err := rows.Scan(&dim, &key, &cur, &base, &curIn, &curRead, &baseIn, &baseRead); err != nil {
			return nil, fmt.Errorf("reading the contributors of team %s, model %s: %w", team, model, err)
		}
		perWindow := base.Div(n).Round(6)
		if dim == "series" {
			if baseIn <= 0 || curIn <= 0 {
				continue
			}
			before, now := float64(baseRead)/float64(baseIn), float64(curRead)/float64(curIn)
			if before >= 0.2 && now < before/2 {
				cache = &schemas.Contributor{Dimension: "cache_hit_rate", Key: fmt.Sprintf("%.2f (baseline %.2f)", now, before),
					CostUSD: cur.String(), BaselineUSD: perWindow.String()}
			}
			continue
		}
		perDim[dim]++
		group := dim
		rise := cur.Sub(perWindow)
		if key == "" || !rise.IsPositive() {
			continue
		}
		if dim == "reported_model" && base.IsZero() {
			dim = "new_model"
		}
		f, _ := rise.Float64()
		keys = append(keys, keyCost{dim: group, c: schemas.Contributor{Dimension: dim, Key: key, CostUSD: cur.String(), BaselineUSD: perWindow.String()}, rise: f})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading the contributors of team %s, model %s: %w", team, model, err)
	}
	sort.SliceStable(keys, func(i, j int) bool {
		if keys[i].rise != keys[j].rise {
			return keys[i].rise > keys[j].rise
		}
		return keys[i].c.Dimension+keys[i].c.Key < keys[j].c.Dimension+keys[j].c.Key
	})
	var out []schemas.Contributor
	if cache != nil {
		out = append(out, *cache)
	}
	for _, k := range keys {
		if len(out) == maxContributors {
			break
		}
		// The only key of its dimension (one project, one reported name)
		// carries the whole series and explains nothing.
		if perDim[k.dim] < 2 {
			continue
		}
		out = append(out, k.c)
	}
	return out, nil
}
