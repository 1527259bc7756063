package governance

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/schemas"
)

// window is what one evaluation judges: usage in [from, to), and earlier
// use of keys back to history.
type window struct {
	from, to, history time.Time
}

const events = `usage_events FINAL`

// The queries below name a key's team and source by its latest use (ties
// broken by event id), not any(), so that one server and a cluster, whose
// shards answer in any order, report the same; the key subquery is GLOBAL
// IN, so that on a cluster it runs once over the Distributed table rather
// than on each shard (which ClickHouse refuses).

// inWindow is the WHERE clause of usage in the window (date first: the
// table is ordered by date, so the range prunes parts), with its args.
func (w window) inWindow() (string, []any) {
	return `date >= toDate(toDateTime(?)) AND time >= toDateTime(?) AND time < toDateTime(?) AND kind = 'llm.request'`,
		[]any{w.from.Unix(), w.from.Unix(), w.to.Unix()}
}

// observe runs every signal's query over w and returns what it found.
func (e *Evaluator) observe(ctx context.Context, w window) ([]finding, error) {
	var out []finding
	for _, step := range []struct {
		what string
		fn   func(context.Context, window) ([]finding, error)
	}{
		{"policy", e.observePolicy},
		{"required labels", e.observeLabels},
		{"unowned keys", e.observeUnowned},
		{"new sources", func(ctx context.Context, w window) ([]finding, error) {
			return e.observeFirstSeen(ctx, w, SignalNewSource, "source")
		}},
		{"new regions", func(ctx context.Context, w window) ([]finding, error) {
			return e.observeFirstSeen(ctx, w, SignalNewRegion, "provider_region")
		}},
		{"dormant keys", e.observeDormant},
		{"auth failures", e.observeAuthFailures},
		{"unattributed share", e.observeUnattributed},
	} {
		fs, err := step.fn(ctx, w)
		if err != nil {
			return nil, fmt.Errorf("evaluating %s: %w", step.what, err)
		}
		out = append(out, fs...)
	}
	return out, nil
}

// observePolicy finds usage of unapproved providers or models and flows to
// regions the team or the data class may not use.
func (e *Evaluator) observePolicy(ctx context.Context, w window) ([]finding, error) {
	p := e.Policy()
	if p == nil {
		return nil, nil
	}
	where, args := w.inWindow()
	rows, err := e.store.Query(ctx, `SELECT team, provider, canonical_model, provider_region,
    visitParamExtractString(labels, '`+LabelDataClass+`') AS data_class,
    count() AS n, sum(cost_usd) AS cost, sum(request_bytes + response_bytes) AS bytes
FROM `+events+`
WHERE `+where+`
GROUP BY team, provider, canonical_model, provider_region, data_class`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	merged := map[string]*finding{}
	add := func(f finding) {
		k := f.key()
		if m, ok := merged[k]; ok {
			m.Events += f.Events
			m.CostUSD = m.CostUSD.Add(f.CostUSD)
			m.Bytes += f.Bytes
			return
		}
		merged[k] = &f
	}
	for rows.Next() {
		var (
			team, provider, model, region, class string
			n                                    uint64
			cost                                 decimal.Decimal
			bytes                                int64
		)
		if err := rows.Scan(&team, &provider, &model, &region, &class, &n, &cost, &bytes); err != nil {
			return nil, err
		}
		if ok, why := p.Approved(team, provider, model); !ok {
			add(finding{schemas.GovernanceSignal{Signal: SignalUnapproved, Subject: team + "/" + provider + "/" + model,
				Team: team, Provider: provider, Model: model, Events: n, CostUSD: cost, Bytes: bytes, Detail: why}})
		}
		if ok, why := p.RegionAllowed(team, class, region); !ok {
			subject := team + "/" + provider + "/" + region
			if class != "" {
				subject += "/" + class
			}
			add(finding{schemas.GovernanceSignal{Signal: SignalRegionNotAllowed, Subject: subject,
				Team: team, Provider: provider, Region: region, Events: n, CostUSD: cost, Bytes: bytes, Detail: why}})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make([]finding, 0, len(merged))
	for _, f := range merged {
		out = append(out, *f)
	}
	return out, nil
}

// observeLabels finds, per team, usage that lacks a required label.
func (e *Evaluator) observeLabels(ctx context.Context, w window) ([]finding, error) {
	req := e.Policy().RequiredLabels()
	if len(req) == 0 {
		return nil, nil
	}
	where, args := w.inWindow()
	var lacks []string
	for _, l := range req {
		// Label names are validated to need no escaping.
		lacks = append(lacks, `visitParamExtractString(labels, '`+l+`') = ''`)
	}
	rows, err := e.store.Query(ctx, `SELECT team, count() AS n, sum(cost_usd) AS cost
FROM `+events+`
WHERE `+where+` AND (`+strings.Join(lacks, ` OR `)+`)
GROUP BY team`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []finding
	for rows.Next() {
		f := finding{schemas.GovernanceSignal{Signal: SignalMissingLabels}}
		if err := rows.Scan(&f.Team, &f.Events, &f.CostUSD); err != nil {
			return nil, err
		}
		f.Subject = f.Team
		f.Detail = fmt.Sprintf("%d requests of team %s lack a required label (%s)", f.Events, f.Team, strings.Join(req, ", "))
		out = append(out, f)
	}
	return out, rows.Err()
}

// observeUnowned finds API keys whose usage no ownership rule attributed.
func (e *Evaluator) observeUnowned(ctx context.Context, w window) ([]finding, error) {
	where, args := w.inWindow()
	rows, err := e.store.Query(ctx, `SELECT api_key_id, argMax(source, (time, event_id)) AS src, count() AS n, sum(cost_usd) AS cost
FROM `+events+`
WHERE `+where+` AND unowned = 1 AND api_key_id != ''
GROUP BY api_key_id`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []finding
	for rows.Next() {
		f := finding{schemas.GovernanceSignal{Signal: SignalUnownedKey}}
		if err := rows.Scan(&f.APIKeyID, &f.Source, &f.Events, &f.CostUSD); err != nil {
			return nil, err
		}
		f.Subject = f.APIKeyID
		f.Detail = fmt.Sprintf("API key %s spent %s USD in %d requests and no ownership rule knows it", f.APIKeyID, f.CostUSD.StringFixed(6), f.Events)
		out = append(out, f)
	}
	return out, rows.Err()
}

// sightings is the summary of where and when each API key was used, one
// row per day, key, source and provider region (migration 85); it is kept
// by a materialized view on usage_events, so that the first-seen and
// dormant signals read weeks of it instead of weeks of events.
const sightings = `api_key_sightings`

// windowKeys is the subquery of the keys used in the window, with its args.
// GLOBAL: on a cluster, both the summary and the events are Distributed
// tables, and a plain IN would run the subquery on every shard again.
func (w window) windowKeys() (string, []any) {
	where, args := w.inWindow()
	return `api_key_id GLOBAL IN (SELECT api_key_id FROM ` + events + ` WHERE ` + where + ` AND api_key_id != '')`, args
}

// observeFirstSeen finds keys used from a source (or in a provider region)
// for the first time within the window, that were used before the window
// from elsewhere; col is the column, source or provider_region. The window's
// use comes from the events, the earlier use from the sightings: days of
// the history whose last use is older than the history are left out, so
// the history's far end counts to the day.
func (e *Evaluator) observeFirstSeen(ctx context.Context, w window, signal, col string) ([]finding, error) {
	win, wargs := w.inWindow()
	rows, err := e.store.Query(ctx, `SELECT api_key_id, `+col+`, min(time) AS first_seen, count() AS n, sum(cost_usd) AS cost, argMax(team, (time, event_id)) AS team
FROM `+events+`
WHERE `+win+` AND api_key_id != '' AND `+col+` != ''
GROUP BY api_key_id, `+col, wargs...)
	if err != nil {
		return nil, err
	}
	type place struct {
		key, place, team string
		first            time.Time
		n                uint64
		cost             decimal.Decimal
	}
	var places []place
	for rows.Next() {
		var p place
		if err := rows.Scan(&p.key, &p.place, &p.first, &p.n, &p.cost, &p.team); err != nil {
			rows.Close()
			return nil, err
		}
		places = append(places, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(places) == 0 {
		return nil, nil
	}

	// The first use of each of those keys at each place since the history.
	keys, kargs := w.windowKeys()
	args := append([]any{w.history.Unix()}, kargs...)
	args = append(args, w.history.Unix())
	rows, err = e.store.Query(ctx, `SELECT api_key_id, place, min(first) AS first_seen
FROM (
    SELECT date, api_key_id, `+col+` AS place, minMerge(first_seen) AS first, maxMerge(last_seen) AS last
    FROM `+sightings+`
    WHERE date >= toDate(toDateTime(?)) AND `+col+` != '' AND `+keys+`
    GROUP BY date, api_key_id, place
)
WHERE last >= toDateTime(?)
GROUP BY api_key_id, place`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	firstAt := map[[2]string]time.Time{}
	firstOfKey := map[string]time.Time{}
	for rows.Next() {
		var key, at string
		var first time.Time
		if err := rows.Scan(&key, &at, &first); err != nil {
			return nil, err
		}
		firstAt[[2]string{key, at}] = first
		if f, ok := firstOfKey[key]; !ok || first.Before(f) {
			firstOfKey[key] = first
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var out []finding
	for _, p := range places {
		if f, ok := firstAt[[2]string{p.key, p.place}]; ok && f.Before(w.from) {
			continue // not new
		}
		if f, ok := firstOfKey[p.key]; !ok || !f.Before(w.from) {
			continue // the key itself is new: nothing to compare with
		}
		f := finding{schemas.GovernanceSignal{Signal: signal, Subject: p.key + "@" + p.place, APIKeyID: p.key, Team: p.team,
			Events: p.n, CostUSD: p.cost}}
		what := "source"
		if col == "provider_region" {
			f.Region, what = p.place, "provider region"
		} else {
			f.Source = p.place
		}
		f.Detail = fmt.Sprintf("API key %s was used from %s %s for the first time at %s", p.key, what, p.place, p.first.UTC().Format(time.RFC3339))
		out = append(out, f)
	}
	return out, nil
}

// observeDormant finds keys that spent at least DormantWakeUSD in the
// window after DormantAfter without use (but used before that); a wake-up
// already open stays open while the key keeps spending that much. The
// events of the window's first day give the window's spend and any use
// earlier that day; the sightings give the last use on the days before.
func (e *Evaluator) observeDormant(ctx context.Context, w window) ([]finding, error) {
	rows, err := e.store.Query(ctx, `SELECT api_key_id, sumIf(cost_usd, time >= toDateTime(?)) AS cost, countIf(time >= toDateTime(?)) AS n,
    countIf(time < toDateTime(?)) AS before, maxIf(time, time < toDateTime(?)) AS last_before, argMax(team, (time, event_id)) AS team
FROM `+events+`
WHERE date >= toDate(toDateTime(?)) AND time >= toDateTime(?) AND time < toDateTime(?) AND kind = 'llm.request' AND api_key_id != ''
GROUP BY api_key_id
HAVING n > 0`, w.from.Unix(), w.from.Unix(), w.from.Unix(), w.from.Unix(),
		w.from.Unix(), w.history.Unix(), w.to.Unix())
	if err != nil {
		return nil, err
	}
	type use struct {
		key, team  string
		cost       decimal.Decimal
		n, before  uint64
		lastBefore time.Time
	}
	var heavy []use
	for rows.Next() {
		var u use
		if err := rows.Scan(&u.key, &u.cost, &u.n, &u.before, &u.lastBefore, &u.team); err != nil {
			rows.Close()
			return nil, err
		}
		if !u.cost.LessThan(e.wakeUSD) {
			heavy = append(heavy, u)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(heavy) == 0 {
		return nil, nil
	}

	// The last use of the keys used in the window on the days before it.
	keys, kargs := w.windowKeys()
	args := append([]any{w.history.Unix(), w.from.Unix()}, kargs...)
	args = append(args, w.history.Unix())
	rows, err = e.store.Query(ctx, `SELECT api_key_id, maxMerge(last_seen) AS last
FROM `+sightings+`
WHERE date >= toDate(toDateTime(?)) AND date < toDate(toDateTime(?)) AND `+keys+`
GROUP BY api_key_id
HAVING last >= toDateTime(?)`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	earlier := map[string]time.Time{}
	for rows.Next() {
		var key string
		var last time.Time
		if err := rows.Scan(&key, &last); err != nil {
			return nil, err
		}
		earlier[key] = last
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}

	var out []finding
	dormantSince := w.from.Add(-e.cfg.DormantAfter)
	for _, u := range heavy {
		used := u.before > 0
		if last, ok := earlier[u.key]; ok {
			if !used || last.After(u.lastBefore) {
				u.lastBefore = last
			}
			used = true
		}
		_, open := e.open[SignalDormantKey+"\x00"+u.key]
		if !open && (!used || !u.lastBefore.Before(dormantSince)) {
			continue
		}
		f := finding{schemas.GovernanceSignal{Signal: SignalDormantKey, Subject: u.key, APIKeyID: u.key, Team: u.team, Events: u.n, CostUSD: u.cost}}
		f.Detail = fmt.Sprintf("API key %s, last used %s, spent %s USD in %d requests", u.key, u.lastBefore.UTC().Format(time.RFC3339), u.cost.StringFixed(6), u.n)
		out = append(out, f)
	}
	return out, nil
}

// observeAuthFailures finds source addresses whose rejected producer
// authentications in the window reach AuthFailureBurst.
func (e *Evaluator) observeAuthFailures(ctx context.Context, w window) ([]finding, error) {
	rows, err := e.store.Query(ctx, `SELECT source_address, sum(failures) AS n
FROM auth_failures FINAL
WHERE minute >= toDateTime(?) AND minute < toDateTime(?)
GROUP BY source_address
HAVING n >= ?`, w.from.Unix(), w.to.Unix(), int64(e.cfg.AuthFailureBurst))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []finding
	for rows.Next() {
		var (
			addr string
			n    int64
		)
		if err := rows.Scan(&addr, &n); err != nil {
			return nil, err
		}
		f := finding{schemas.GovernanceSignal{Signal: SignalAuthFailures, Subject: addr, SourceAddress: addr, Events: uint64(n),
			Value: float64(n), Threshold: float64(e.cfg.AuthFailureBurst)}}
		f.Detail = fmt.Sprintf("%d requests from %s were refused for a missing or unknown token in the last %s", n, addr, e.cfg.Window)
		out = append(out, f)
	}
	return out, rows.Err()
}

// observeUnattributed finds a window whose unowned share of spend is above
// UnattributedShare, once its spend is at least UnattributedMinUSD.
func (e *Evaluator) observeUnattributed(ctx context.Context, w window) ([]finding, error) {
	where, args := w.inWindow()
	rows, err := e.store.Query(ctx, `SELECT sum(cost_usd) AS total, sumIf(cost_usd, team = '`+schemas.Unattributed+`') AS unowned,
    countIf(team = '`+schemas.Unattributed+`') AS n
FROM `+events+`
WHERE `+where, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []finding
	for rows.Next() {
		var (
			total, unowned decimal.Decimal
			n              uint64
		)
		if err := rows.Scan(&total, &unowned, &n); err != nil {
			return nil, err
		}
		if total.IsZero() || total.LessThan(e.minUSD) {
			continue
		}
		share, _ := unowned.Div(total).Float64()
		if share <= e.cfg.UnattributedShare {
			continue
		}
		f := finding{schemas.GovernanceSignal{Signal: SignalUnattributed, Subject: "org", Team: schemas.Unattributed,
			Events: n, CostUSD: unowned, Value: share, Threshold: e.cfg.UnattributedShare}}
		f.Detail = fmt.Sprintf("%.1f%% of the last %s's spend (%s of %s USD) has no owner; the limit is %.1f%%",
			share*100, e.cfg.Window, unowned.StringFixed(6), total.StringFixed(6), e.cfg.UnattributedShare*100)
		out = append(out, f)
	}
	return out, rows.Err()
}
