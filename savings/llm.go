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
// write the prefix once and read it in every other request. Shapes are
// priced as they stream in; memory grows with the scopes and repeated
// prefixes, not with the requests.
func (b *builder) caching(ctx context.Context) error {
	c := b.rules.Caching
	maxShare, _ := decimal.NewFromString(strings.TrimSpace(c.MaxCacheReadShare))
	type scopeUse struct {
		key            llmScope
		in, cacheRead  int64
		candidate      bool // low cache-read share on a model that prices cache reads lower
		repeated       map[string]bool
		cmp            *comparison
		prefixes       map[string]int64 // repeated prefix → its tokens
		lastPrefix     string
		lastHour       uint32
		hadWriter, bad bool
	}
	var order []*scopeUse
	scopes := map[llmScope]*scopeUse{}
	scopeCols := `team, project, api_key_id, provider, model, service_tier`
	scanScope := func(k *llmScope) []any { return []any{&k.team, &k.project, &k.key, &k.provider, &k.model, &k.tier} }
	err := each(ctx, b.q, "prompt caching totals", `SELECT `+scopeCols+`, sum(input_tokens), sum(cache_read_input_tokens)
FROM `+clickhouse.ViewSavingsCaching+` WHERE `+inRange+` GROUP BY `+scopeCols+` ORDER BY `+scopeCols,
		b.rangeArgs(), func(scan func(...any) error) error {
			var k llmScope
			var in, read int64
			if err := scan(append(scanScope(&k), &in, &read)...); err != nil {
				return err
			}
			s := &scopeUse{key: k, in: in, cacheRead: read, repeated: map[string]bool{}, prefixes: map[string]int64{}, cmp: newComparison(1)}
			s.candidate = in > 0 && decimal.NewFromInt(read).LessThan(maxShare.Mul(decimal.NewFromInt(in)))
			if s.candidate {
				full, ok1 := b.price(k.team, k.provider, k.model, k.tier, shape{in: 1_000_000})
				cached, ok2 := b.price(k.team, k.provider, k.model, k.tier, shape{in: 1_000_000, cacheRead: 1_000_000})
				s.candidate = ok1 && ok2 && cached < full
			}
			scopes[k] = s
			order = append(order, s)
			return nil
		})
	if err != nil {
		return err
	}
	prefixSQL := `visitParamExtractString(labels, ?) AS prefix`
	err = each(ctx, b.q, "repeated prompt prefixes", `SELECT `+scopeCols+`, `+prefixSQL+`, count()
FROM `+clickhouse.ViewSavingsCaching+` WHERE `+inRange+` AND prefix != ''
GROUP BY `+scopeCols+`, prefix HAVING count() >= ?`,
		append(append([]any{c.PrefixHashLabel}, b.rangeArgs()...), c.MinRepeats), func(scan func(...any) error) error {
			var k llmScope
			var prefix string
			var n uint64
			if err := scan(append(scanScope(&k), &prefix, &n)...); err != nil {
				return err
			}
			if s := scopes[k]; s != nil && s.candidate {
				s.repeated[prefix] = true
			}
			return nil
		})
	if err != nil {
		return err
	}
	err = each(ctx, b.q, "prompt caching usage", `SELECT `+scopeCols+`, `+prefixSQL+`,
    toInt64OrZero(visitParamExtractString(labels, ?)) AS prefix_tokens, toUnixTimestamp(toStartOfHour(time)) AS hour, `+shapeSQL+`, count()
FROM `+clickhouse.ViewSavingsCaching+` WHERE `+inRange+` AND prefix != '' AND prefix_tokens > 0
GROUP BY `+scopeCols+`, prefix, prefix_tokens, hour, `+shapeSQL+`
ORDER BY `+scopeCols+`, prefix, hour, prefix_tokens, `+shapeSQL,
		append([]any{c.PrefixHashLabel, c.PrefixTokensLabel}, b.rangeArgs()...), func(scan func(...any) error) error {
			var k llmScope
			var prefix string
			var prefixTokens int64
			var hour uint32
			var r shapeRow
			if err := scan(append(append(append(scanScope(&k), &prefix, &prefixTokens, &hour), r.dest()...), &r.n)...); err != nil {
				return err
			}
			s := scopes[k]
			if s == nil || !s.repeated[prefix] || s.bad {
				return nil
			}
			if _, ok := s.prefixes[prefix]; !ok {
				s.prefixes[prefix] = prefixTokens
			}
			if prefix != s.lastPrefix || hour != s.lastHour {
				s.lastPrefix, s.lastHour, s.hadWriter = prefix, hour, false
			}
			now, ok1 := b.price(k.team, k.provider, k.model, k.tier, r.shape)
			read, ok2 := b.price(k.team, k.provider, k.model, k.tier, asReader(r.shape, prefixTokens))
			if !ok1 || !ok2 {
				s.bad = true
				return nil
			}
			s.cmp.cur.add(now, r.n)
			readers := r.n
			if !s.hadWriter {
				write, ok := b.price(k.team, k.provider, k.model, k.tier, asWriter(r.shape, prefixTokens))
				if !ok {
					s.bad = true
					return nil
				}
				s.cmp.alts[0].add(write, 1)
				readers--
				s.hadWriter = true
			}
			s.cmp.alts[0].add(read, readers)
			s.cmp.evidence(r)
			return nil
		})
	if err != nil {
		return err
	}
	for _, s := range order {
		if s.bad || len(s.prefixes) == 0 {
			continue
		}
		k := s.key
		var prefixTokens int64
		for _, n := range s.prefixes {
			prefixTokens += n
		}
		ev := s.cmp.ev
		ev.Detail = fmt.Sprintf("%d requests share %d repeated prompt prefixes (%d tokens each on average); the scope reads %s of its input from the cache",
			ev.Requests, len(s.prefixes), prefixTokens/int64(len(s.prefixes)), pct(s.cacheRead, s.in))
		b.add(Recommendation{Kind: KindCaching, Scope: k.scope(),
			Action:         fmt.Sprintf("cache the repeated prompt prefixes of %s (mark them cacheable; put the shared prefix first)", joinModel(k.provider, k.model)),
			Evidence:       ev,
			CurrentCostUSD: s.cmp.cur.usd(), AlternativeCostUSD: s.cmp.alts[0].usd(),
			Assumption: "each prefix is written to the cache once per hour in which it is sent (at the cache-write rate) and read by every other request of that hour " +
				"(at the cache-read rate); the rest of each request is unchanged",
		})
	}
	return nil
}

// comparison accumulates a scope's current cost and its cost under each
// alternative, shape by shape as the rows stream in.
type comparison struct {
	cur   picos
	curOK bool
	alts  []picos
	altOK []bool
	ev    Evidence
}

func newComparison(alternatives int) *comparison {
	c := &comparison{curOK: true, alts: make([]picos, alternatives), altOK: make([]bool, alternatives)}
	for i := range c.altOK {
		c.altOK[i] = true
	}
	return c
}

func (c *comparison) evidence(r shapeRow) {
	c.ev.Requests += r.n
	c.ev.InputTokens += r.in * int64(r.n)
	c.ev.CacheReadInputTokens += r.cacheRead * int64(r.n)
	c.ev.CacheWriteInputTokens += r.cacheWrite * int64(r.n)
	c.ev.OutputTokens += r.out * int64(r.n)
}

// best returns the cheapest alternative that priced every shape, or -1.
func (c *comparison) best() int {
	best := -1
	for i := range c.alts {
		if c.altOK[i] && (best < 0 || c.alts[i].d.LessThan(c.alts[best].d)) {
			best = i
		}
	}
	return best
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
	var order []llmScope
	scopes := map[llmScope]*comparison{}
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
			c := scopes[k]
			if c == nil {
				c = newComparison(len(t.Candidates))
				scopes[k] = c
				order = append(order, k)
			}
			if !c.curOK {
				return nil
			}
			now, ok := b.price(k.team, k.provider, k.model, k.tier, r.shape)
			if !ok {
				c.curOK = false
				return nil
			}
			c.cur.add(now, r.n)
			c.evidence(r)
			for i, tier := range t.Candidates {
				if alt, ok := b.price(k.team, k.provider, k.model, tier, r.shape); ok {
					c.alts[i].add(alt, r.n)
				} else {
					c.altOK[i] = false
				}
			}
			return nil
		})
	if err != nil {
		return err
	}
	for _, k := range order {
		c := scopes[k]
		i := c.best()
		if !c.curOK || i < 0 {
			continue
		}
		tier := t.Candidates[i]
		why := "labelled not interactive"
		if slow[k] {
			why = fmt.Sprintf("median latency at least %d ms", t.MinP50LatencyMs)
		}
		ev := c.ev
		ev.Detail = fmt.Sprintf("%d standard-tier requests %s", ev.Requests, why)
		b.add(Recommendation{Kind: KindTier, Scope: k.scope(),
			Action:         fmt.Sprintf("send this traffic to %s at the %s service tier", joinModel(k.provider, k.model), tier),
			Evidence:       ev,
			CurrentCostUSD: c.cur.usd(), AlternativeCostUSD: c.alts[i].usd(),
			Assumption: fmt.Sprintf("the requests marked non-interactive tolerate the %s tier's completion time; every token is priced at the catalog's %s rates", tier, tier),
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
	var order []key
	scopes := map[key]*comparison{}
	err := each(ctx, b.q, "model usage", `SELECT team, visitParamExtractString(labels, ?) AS task, provider, canonical_model, model, service_tier, `+shapeSQL+`, count()
FROM `+clickhouse.ViewSavingsModel+` WHERE `+inRange+`
GROUP BY team, task, provider, canonical_model, model, service_tier, `+shapeSQL+`
ORDER BY team, task, provider, canonical_model, model, service_tier, `+shapeSQL,
		append([]any{e.TaskLabel}, b.rangeArgs()...), func(scan func(...any) error) error {
			var k key
			var model, tier string
			var r shapeRow
			if err := scan(append(append([]any{&k.team, &k.task, &k.provider, &k.canonical, &model, &tier}, r.dest()...), &r.n)...); err != nil {
				return err
			}
			to, ok := targets[strings.ToLower(k.provider+"/"+k.canonical)]
			if !ok {
				return nil
			}
			c := scopes[k]
			if c == nil {
				c = newComparison(len(to))
				scopes[k] = c
				order = append(order, k)
			}
			if !c.curOK {
				return nil
			}
			now, ok := b.price(k.team, k.provider, model, tier, r.shape)
			if !ok {
				c.curOK = false
				return nil
			}
			c.cur.add(now, r.n)
			c.evidence(r)
			for i, m := range to {
				prov, name, _ := strings.Cut(m, "/")
				if alt, ok := b.price(k.team, prov, name, tier, r.shape); ok {
					c.alts[i].add(alt, r.n)
				} else {
					c.altOK[i] = false
				}
			}
			return nil
		})
	if err != nil {
		return err
	}
	for _, k := range order {
		c := scopes[k]
		i := c.best()
		if !c.curOK || i < 0 {
			continue
		}
		to := targets[strings.ToLower(k.provider+"/"+k.canonical)][i]
		ev := c.ev
		ev.Detail = fmt.Sprintf("%d requests on %s", ev.Requests, joinModel(k.provider, k.canonical))
		b.add(Recommendation{Kind: KindModel, Scope: Scope{Team: k.team, Task: k.task, Provider: k.provider, Model: k.canonical},
			Action:         fmt.Sprintf("compare %s with %s for this task; it prices the same tokens lower", joinModel(k.provider, k.canonical), to),
			Evidence:       ev,
			CurrentCostUSD: c.cur.usd(), AlternativeCostUSD: c.alts[i].usd(),
			Assumption: fmt.Sprintf("%s is listed as an equivalent of %s in the savings rules and the task would send it the same input, cache and output tokens; a price comparison only, not a claim about quality",
				to, joinModel(k.provider, k.canonical)),
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
