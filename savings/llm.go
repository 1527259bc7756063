package savings

import (
	"context"
	"fmt"
	"strings"

	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/sinks/clickhouse"
)

// llmScope keys the API usage of the caching and tier recommendations.
type llmScope struct {
	team, project, key, provider, model, tier string
}

func (s llmScope) scope() Scope {
	return Scope{Team: s.team, Project: s.project, APIKeyID: s.key, Provider: s.provider, Model: s.model}
}

// shapeRows is a request shape and how many requests had it.
type shapeRow struct {
	shape
	n uint64
}

// caching: requests of one scope that share a prompt prefix (the prefix
// hash label) at least MinRepeats times in the range, in scopes whose
// cache reads are below MaxCacheReadShare of their input, on models whose
// cache reads are priced below input. Each (prefix, hour) is assumed to
// write the prefix once and read it in every other request.
func (b *builder) caching(ctx context.Context) error {
	c := b.rules.Caching
	maxShare, _ := decimal.NewFromString(strings.TrimSpace(c.MaxCacheReadShare))
	type group struct {
		prefix       string
		prefixTokens int64
		hour         int64
		rows         []shapeRow
	}
	type scopeUse struct {
		key              llmScope
		in, cacheRead    int64
		groups           []*group
		byKey            map[[2]any]*group
		prefixRequests   map[string]uint64
		labelledRequests uint64
	}
	var order []*scopeUse
	scopes := map[llmScope]*scopeUse{}
	err := each(ctx, b.q, "prompt caching usage", `SELECT team, project, api_key_id, provider, model, service_tier,
    visitParamExtractString(labels, ?) AS prefix, toInt64OrZero(visitParamExtractString(labels, ?)) AS prefix_tokens,
    toUnixTimestamp(toStartOfHour(time)) AS hour, `+shapeSQL+`, count()
FROM `+clickhouse.ViewSavingsCaching+` WHERE `+inRange+`
GROUP BY team, project, api_key_id, provider, model, service_tier, prefix, prefix_tokens, hour, `+shapeSQL+`
ORDER BY team, project, api_key_id, provider, model, service_tier, prefix, hour, prefix_tokens, `+shapeSQL,
		append([]any{c.PrefixHashLabel, c.PrefixTokensLabel}, b.rangeArgs()...), func(scan func(...any) error) error {
			var k llmScope
			var prefix string
			var prefixTokens int64
			var hour uint32
			var r shapeRow
			if err := scan(append(append([]any{&k.team, &k.project, &k.key, &k.provider, &k.model, &k.tier, &prefix, &prefixTokens, &hour}, r.dest()...), &r.n)...); err != nil {
				return err
			}
			s := scopes[k]
			if s == nil {
				s = &scopeUse{key: k, byKey: map[[2]any]*group{}, prefixRequests: map[string]uint64{}}
				scopes[k] = s
				order = append(order, s)
			}
			s.in += r.in * int64(r.n)
			s.cacheRead += r.cacheRead * int64(r.n)
			if prefix == "" || prefixTokens <= 0 {
				return nil
			}
			gk := [2]any{prefix, int64(hour)}
			g := s.byKey[gk]
			if g == nil {
				g = &group{prefix: prefix, prefixTokens: prefixTokens, hour: int64(hour)}
				s.byKey[gk] = g
				s.groups = append(s.groups, g)
			}
			g.rows = append(g.rows, r)
			s.prefixRequests[prefix] += r.n
			return nil
		})
	if err != nil {
		return err
	}
	probe := shape{in: 1_000_000}
	for _, s := range order {
		if s.in == 0 || len(s.groups) == 0 {
			continue
		}
		// A scope that already reads this share of its input from the
		// cache is caching.
		if decimal.NewFromInt(s.cacheRead).GreaterThanOrEqual(maxShare.Mul(decimal.NewFromInt(s.in))) {
			continue
		}
		k := s.key
		full, ok1 := b.price(k.team, k.provider, k.model, k.tier, probe)
		cached, ok2 := b.price(k.team, k.provider, k.model, k.tier, shape{in: 1_000_000, cacheRead: 1_000_000})
		if !ok1 || !ok2 || cached >= full {
			continue // the model does not price cache reads below input
		}
		var cur, alt picos
		var ev Evidence
		prefixes := map[string]bool{}
		var prefixTokenSum int64
		priced := true
		for _, g := range s.groups {
			if s.prefixRequests[g.prefix] < uint64(c.MinRepeats) {
				continue
			}
			if !prefixes[g.prefix] {
				prefixes[g.prefix] = true
				prefixTokenSum += g.prefixTokens
			}
			for i, r := range g.rows {
				now, ok := b.price(k.team, k.provider, k.model, k.tier, r.shape)
				read, ok2 := b.price(k.team, k.provider, k.model, k.tier, asReader(r.shape, g.prefixTokens))
				if !ok || !ok2 {
					priced = false
					break
				}
				cur.add(now, r.n)
				readers := r.n
				if i == 0 {
					write, ok := b.price(k.team, k.provider, k.model, k.tier, asWriter(r.shape, g.prefixTokens))
					if !ok {
						priced = false
						break
					}
					alt.add(write, 1)
					readers--
				}
				alt.add(read, readers)
				ev.Requests += r.n
				ev.InputTokens += r.in * int64(r.n)
				ev.CacheReadInputTokens += r.cacheRead * int64(r.n)
				ev.CacheWriteInputTokens += r.cacheWrite * int64(r.n)
				ev.OutputTokens += r.out * int64(r.n)
			}
		}
		if !priced || len(prefixes) == 0 {
			continue
		}
		ev.Detail = fmt.Sprintf("%d requests share %d repeated prompt prefixes (%d tokens each on average); the scope reads %s of its input from the cache",
			ev.Requests, len(prefixes), prefixTokenSum/int64(len(prefixes)), pct(s.cacheRead, s.in))
		b.add(Recommendation{Kind: KindCaching, Scope: k.scope(),
			Action:         fmt.Sprintf("cache the repeated prompt prefixes of %s (mark them cacheable; put the shared prefix first)", joinModel(k.provider, k.model)),
			Evidence:       ev,
			CurrentCostUSD: cur.usd(), AlternativeCostUSD: alt.usd(),
			Assumption: "each prefix is written to the cache once per hour in which it is sent (at the cache-write rate) and read by every other request of that hour " +
				"(at the cache-read rate); the rest of each request is unchanged",
		})
	}
	return nil
}

// asReader is s with its prefix read from the cache.
func asReader(s shape, prefix int64) shape {
	s.cacheRead = max(s.cacheRead, min(prefix, s.in-s.cacheWrite))
	return s
}

// asWriter is s writing its prefix to the cache.
func asWriter(s shape, prefix int64) shape {
	s.cacheWrite = max(s.cacheWrite, min(prefix, s.in-s.cacheRead))
	return s
}

// tiers: standard-tier traffic that the non-interactive rule marks,
// priced at each candidate tier the model's catalog entry offers; the
// cheapest wins.
func (b *builder) tiers(ctx context.Context) error {
	t := b.rules.Tiers
	if len(t.Candidates) == 0 || (len(t.NonInteractiveLabels) == 0 && t.MinP50LatencyMs == 0) {
		return nil
	}
	var cond []string
	var args []any
	for _, k := range sortedKeys(t.NonInteractiveLabels) {
		for _, v := range t.NonInteractiveLabels[k] {
			cond = append(cond, `visitParamExtractString(labels, ?) = ?`)
			args = append(args, k, v)
		}
	}
	labelled := "0"
	if len(cond) > 0 {
		labelled = "(" + strings.Join(cond, " OR ") + ")"
	}
	slow := map[llmScope]bool{}
	if t.MinP50LatencyMs > 0 {
		err := each(ctx, b.q, "batch tier latency", `SELECT team, project, api_key_id, provider, model, service_tier, quantileExact(0.5)(latency_ms)
FROM `+clickhouse.ViewSavingsTier+` WHERE `+inRange+` AND latency_ms > 0
GROUP BY team, project, api_key_id, provider, model, service_tier`, b.rangeArgs(), func(scan func(...any) error) error {
			var k llmScope
			var p50 int64
			if err := scan(&k.team, &k.project, &k.key, &k.provider, &k.model, &k.tier, &p50); err != nil {
				return err
			}
			if p50 >= t.MinP50LatencyMs {
				slow[k] = true
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	type scopeUse struct {
		key  llmScope
		rows []shapeRow
	}
	var order []*scopeUse
	scopes := map[llmScope]*scopeUse{}
	err := each(ctx, b.q, "batch tier usage", `SELECT team, project, api_key_id, provider, model, service_tier, toUInt8(`+labelled+`) AS labelled, `+shapeSQL+`, count()
FROM `+clickhouse.ViewSavingsTier+` WHERE `+inRange+`
GROUP BY team, project, api_key_id, provider, model, service_tier, labelled, `+shapeSQL+`
ORDER BY team, project, api_key_id, provider, model, service_tier, labelled, `+shapeSQL,
		append(args, b.rangeArgs()...), func(scan func(...any) error) error {
			var k llmScope
			var lab uint8
			var r shapeRow
			if err := scan(append(append([]any{&k.team, &k.project, &k.key, &k.provider, &k.model, &k.tier, &lab}, r.dest()...), &r.n)...); err != nil {
				return err
			}
			if !standardTier(k.tier) || (lab == 0 && !slow[k]) {
				return nil
			}
			s := scopes[k]
			if s == nil {
				s = &scopeUse{key: k}
				scopes[k] = s
				order = append(order, s)
			}
			s.rows = append(s.rows, r)
			return nil
		})
	if err != nil {
		return err
	}
	for _, s := range order {
		k := s.key
		var cur picos
		var ev Evidence
		ok := true
		for _, r := range s.rows {
			c, good := b.price(k.team, k.provider, k.model, k.tier, r.shape)
			if !good {
				ok = false
				break
			}
			cur.add(c, r.n)
			ev.Requests += r.n
			ev.InputTokens += r.in * int64(r.n)
			ev.CacheReadInputTokens += r.cacheRead * int64(r.n)
			ev.OutputTokens += r.out * int64(r.n)
		}
		if !ok {
			continue
		}
		best, bestTier := decimal.Decimal{}, ""
		for _, tier := range t.Candidates {
			var alt picos
			good := true
			for _, r := range s.rows {
				c, ok := b.price(k.team, k.provider, k.model, tier, r.shape)
				if !ok {
					good = false
					break
				}
				alt.add(c, r.n)
			}
			if good && (bestTier == "" || alt.d.LessThan(best)) {
				best, bestTier = alt.d, tier
			}
		}
		if bestTier == "" {
			continue
		}
		why := "labelled not interactive"
		if slow[k] {
			why = fmt.Sprintf("median latency at least %d ms", t.MinP50LatencyMs)
		}
		ev.Detail = fmt.Sprintf("%d standard-tier requests %s", ev.Requests, why)
		b.add(Recommendation{Kind: KindTier, Scope: k.scope(),
			Action:         fmt.Sprintf("send this traffic to %s at the %s service tier", joinModel(k.provider, k.model), bestTier),
			Evidence:       ev,
			CurrentCostUSD: cur.usd(), AlternativeCostUSD: usd(best),
			Assumption: fmt.Sprintf("the requests marked non-interactive tolerate the %s tier's completion time; every token is priced at the catalog's %s rates", bestTier, bestTier),
		})
	}
	return nil
}

// models: per team and task, the traffic on a model of the equivalence
// table priced at each model it is compared with, with the same token
// mix and service tier; the cheapest wins.
func (b *builder) models(ctx context.Context) error {
	e := b.rules.Equivalents
	if len(e.Models) == 0 {
		return nil
	}
	targets := map[string][]string{} // lower-cased provider/model → to
	for _, m := range e.Models {
		key := strings.ToLower(strings.TrimSpace(m.From))
		targets[key] = append(targets[key], m.To...)
	}
	type key struct{ team, task, provider, canonical string }
	type row struct {
		model, tier string
		shapeRow
	}
	type scopeUse struct {
		key
		rows []row
	}
	var order []*scopeUse
	scopes := map[key]*scopeUse{}
	err := each(ctx, b.q, "model usage", `SELECT team, visitParamExtractString(labels, ?) AS task, provider, canonical_model, model, service_tier, `+shapeSQL+`, count()
FROM `+clickhouse.ViewSavingsModel+` WHERE `+inRange+`
GROUP BY team, task, provider, canonical_model, model, service_tier, `+shapeSQL+`
ORDER BY team, task, provider, canonical_model, model, service_tier, `+shapeSQL,
		append([]any{e.TaskLabel}, b.rangeArgs()...), func(scan func(...any) error) error {
			var k key
			var r row
			if err := scan(append(append([]any{&k.team, &k.task, &k.provider, &k.canonical, &r.model, &r.tier}, r.dest()...), &r.n)...); err != nil {
				return err
			}
			if _, ok := targets[strings.ToLower(k.provider+"/"+k.canonical)]; !ok {
				return nil
			}
			s := scopes[k]
			if s == nil {
				s = &scopeUse{key: k}
				scopes[k] = s
				order = append(order, s)
			}
			s.rows = append(s.rows, r)
			return nil
		})
	if err != nil {
		return err
	}
	for _, s := range order {
		var cur picos
		var ev Evidence
		ok := true
		for _, r := range s.rows {
			c, good := b.price(s.team, s.provider, r.model, r.tier, r.shape)
			if !good {
				ok = false
				break
			}
			cur.add(c, r.n)
			ev.Requests += r.n
			ev.InputTokens += r.in * int64(r.n)
			ev.CacheReadInputTokens += r.cacheRead * int64(r.n)
			ev.CacheWriteInputTokens += r.cacheWrite * int64(r.n)
			ev.OutputTokens += r.out * int64(r.n)
		}
		if !ok {
			continue
		}
		var best decimal.Decimal
		bestTo := ""
		for _, to := range targets[strings.ToLower(s.provider+"/"+s.canonical)] {
			prov, model, _ := strings.Cut(to, "/")
			var alt picos
			good := true
			for _, r := range s.rows {
				c, ok := b.price(s.team, prov, model, r.tier, r.shape)
				if !ok {
					good = false
					break
				}
				alt.add(c, r.n)
			}
			if good && (bestTo == "" || alt.d.LessThan(best)) {
				best, bestTo = alt.d, to
			}
		}
		if bestTo == "" {
			continue
		}
		ev.Detail = fmt.Sprintf("%d requests on %s", ev.Requests, joinModel(s.provider, s.canonical))
		b.add(Recommendation{Kind: KindModel, Scope: Scope{Team: s.team, Task: s.task, Provider: s.provider, Model: s.canonical},
			Action:         fmt.Sprintf("compare %s with %s for this task; it prices the same tokens lower", joinModel(s.provider, s.canonical), bestTo),
			Evidence:       ev,
			CurrentCostUSD: cur.usd(), AlternativeCostUSD: usd(best),
			Assumption: fmt.Sprintf("%s is listed as an equivalent of %s in the savings rules and the task would send it the same input, cache and output tokens; a price comparison only, not a claim about quality",
				bestTo, joinModel(s.provider, s.canonical)),
		})
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}
