package savings

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/sinks/clickhouse"
)

// provisioned: for each offer, the model's on-demand cost hour by hour
// against k units (1..MaxUnits) paid for the whole range, the tokens
// beyond k units' capacity in a clock hour still paid on demand; the
// cheapest k wins when it costs less than on demand.
func (b *builder) provisioned(ctx context.Context) error {
	// The clock hours the range touches, whose traffic is set against
	// the units' hourly capacity.
	base := b.from.Truncate(time.Hour)
	hours := int((b.until.Sub(base) + time.Hour - 1) / time.Hour)
	for _, o := range b.rules.Provisioned {
		cost := make([]decimal.Decimal, hours) // on-demand pico-USD per hour
		tokens := make([]int64, hours)
		var ev Evidence
		ok := true
		err := each(ctx, b.q, "hourly usage of "+o.Name, `SELECT toUnixTimestamp(hour), provider, model, service_tier, `+shapeSQL+`, requests
FROM `+clickhouse.ViewSavingsProvisioned+`
WHERE lower(provider) = lower(?) AND canonical_model = ? AND hour >= toDateTime(?) AND hour < toDateTime(?)
ORDER BY hour, model, service_tier, `+shapeSQL,
			append([]any{o.Provider, o.Model}, b.rangeArgs()...), func(scan func(...any) error) error {
				var hour uint32
				var provider, model, tier string
				var r shapeRow
				if err := scan(append(append([]any{&hour, &provider, &model, &tier}, r.dest()...), &r.n)...); err != nil {
					return err
				}
				if !standardTier(tier) {
					return nil
				}
				h := int(time.Unix(int64(hour), 0).Sub(base) / time.Hour)
				if h < 0 || h >= hours {
					return nil
				}
				c, good := b.price("", provider, model, tier, r.shape)
				if !good {
					ok = false
					return nil
				}
				cost[h] = cost[h].Add(decimal.NewFromInt(c).Mul(decimal.NewFromUint64(r.n)))
				tokens[h] += (r.in + r.out) * int64(r.n)
				ev.Requests += r.n
				ev.InputTokens += r.in * int64(r.n)
				ev.OutputTokens += r.out * int64(r.n)
				return nil
			})
		if err != nil {
			return err
		}
		if !ok || ev.Requests == 0 {
			continue
		}
		var onDemand decimal.Decimal
		busy := 0
		for h := range hours {
			onDemand = onDemand.Add(cost[h])
			if tokens[h] > 0 {
				busy++
			}
		}
		// One unit paid for the range: its price × the range in hours.
		rangeSeconds := decimal.NewFromInt(int64(b.until.Sub(b.from) / time.Second))
		unitPicos := o.unitPrice.Shift(12).Mul(rangeSeconds).DivRound(decimal.NewFromInt(3600), 0)
		var best decimal.Decimal
		bestUnits := 0
		for k := 1; k <= o.MaxUnits; k++ {
			capacity := int64(k) * o.UnitTokensPerHour
			total := unitPicos.Mul(decimal.NewFromInt(int64(k)))
			for h := range hours {
				if over := tokens[h] - capacity; over > 0 {
					total = total.Add(cost[h].Mul(decimal.NewFromInt(over)).DivRound(decimal.NewFromInt(tokens[h]), 0))
				}
			}
			if bestUnits == 0 || total.LessThan(best) {
				best, bestUnits = total, k
			}
		}
		peak := int64(0)
		for _, t := range tokens {
			peak = max(peak, t)
		}
		ev.Detail = fmt.Sprintf("%d of %d hours with traffic, peak %d tokens per hour; %d unit(s) of %d tokens per hour at %s USD per unit-hour",
			busy, hours, peak, bestUnits, o.UnitTokensPerHour, o.unitPrice.String())
		b.add(Recommendation{Kind: KindProvisioned, Scope: Scope{Provider: strings.ToLower(o.Provider), Model: o.Model},
			Action:         fmt.Sprintf("buy %d unit(s) of %s for %s", bestUnits, o.Name, joinModel(o.Provider, o.Model)),
			Evidence:       ev,
			CurrentCostUSD: usd(onDemand), AlternativeCostUSD: usd(best),
			Assumption: fmt.Sprintf("the units are paid for the whole range; tokens above their capacity in an hour are paid on demand at that hour's average price; "+
				"each unit serves %d input plus output tokens per hour, as the offer %s states", o.UnitTokensPerHour, o.Name),
		})
	}
	return nil
}

// gpus: idle GPU time (owner kind idle) of at least MinIdleHours per GPU,
// and whole GPUs busy at most MaxBusyShare of their allocated time that
// the smallest MIG profile with at least that share could serve.
func (b *builder) gpus(ctx context.Context) error {
	g := b.rules.GPU
	type idleKey struct{ team, host, gpuModel, mig string }
	type idleUse struct {
		idleKey
		alloc, busy float64
		cost        decimal.Decimal
	}
	var idle []*idleUse
	idleBy := map[idleKey]*idleUse{}
	err := each(ctx, b.q, "GPU usage", `SELECT team, host, gpu_model, mig_profile, owner_kind, owner_id,
    sum(allocated_gpu_seconds), sum(busy_gpu_seconds), sum(cost_usd)
FROM `+clickhouse.ViewSavingsGPU+` WHERE kind = 'gpu.usage' AND `+inRange+`
GROUP BY team, host, gpu_model, mig_profile, owner_kind, owner_id
ORDER BY team, host, gpu_model, mig_profile, owner_kind, owner_id`, b.rangeArgs(), func(scan func(...any) error) error {
		var k idleKey
		var ownerKind, ownerID string
		var alloc, busy float64
		var cost decimal.Decimal
		if err := scan(&k.team, &k.host, &k.gpuModel, &k.mig, &ownerKind, &ownerID, &alloc, &busy, &cost); err != nil {
			return err
		}
		if ownerKind == "idle" {
			u := idleBy[k]
			if u == nil {
				u = &idleUse{idleKey: k}
				idleBy[k] = u
				idle = append(idle, u)
			}
			u.alloc += alloc
			u.busy += busy
			u.cost = u.cost.Add(cost)
			return nil
		}
		b.migRightSize(Scope{Team: k.team, Host: k.host, GPUModel: k.gpuModel, Owner: ownerKind + ":" + ownerID}, k.mig, alloc, busy, cost)
		return nil
	})
	if err != nil {
		return err
	}
	for _, u := range idle {
		if u.alloc < g.MinIdleHours*3600 || u.cost.Sign() <= 0 {
			continue
		}
		b.add(Recommendation{Kind: KindIdleGPU, Scope: Scope{Team: u.team, Host: u.host, GPUModel: u.gpuModel, MIGProfile: u.mig},
			Action: fmt.Sprintf("release or scale down the %s GPU(s) of %s while no process holds them", u.gpuModel, u.host),
			Evidence: Evidence{AllocatedGPUSeconds: u.alloc, BusyGPUSeconds: u.busy,
				Detail: fmt.Sprintf("%.1f GPU-hours allocated with no process holding the GPU", u.alloc/3600)},
			CurrentCostUSD: u.cost, AlternativeCostUSD: decimal.Zero,
			Assumption: "the idle GPU time can be released (scale to zero, autoscaling or a shorter reservation) and is then not billed; priced at the GPU price the events were costed at",
		})
	}
	return nil
}

// migRightSize recommends the smallest MIG profile whose share covers a
// whole GPU's busy share.
func (b *builder) migRightSize(s Scope, mig string, alloc, busy float64, cost decimal.Decimal) {
	g := b.rules.GPU
	profiles := g.MIGProfiles[s.GPUModel]
	if mig != "" || alloc <= 0 || len(profiles) == 0 || cost.Sign() <= 0 {
		return
	}
	share := busy / alloc
	if share > g.MaxBusyShare {
		return
	}
	for _, p := range profiles {
		if p.share.InexactFloat64() < share || p.share.GreaterThanOrEqual(decimal.NewFromInt(1)) {
			continue
		}
		alt := cost.Mul(p.share).RoundBank(12)
		b.add(Recommendation{Kind: KindMIG, Scope: s,
			Action: fmt.Sprintf("move this workload to a %s MIG slice of the %s", p.Profile, s.GPUModel),
			Evidence: Evidence{AllocatedGPUSeconds: alloc, BusyGPUSeconds: busy,
				Detail: fmt.Sprintf("a whole %s busy %.1f%% of its allocated time", s.GPUModel, share*100)},
			CurrentCostUSD: cost, AlternativeCostUSD: alt,
			Assumption: fmt.Sprintf("the workload's busy time fits in a %s slice (%s of the GPU), which costs that share of the GPU's price; its memory fits the slice too (not measured here)",
				p.Profile, p.share.String()),
		})
		return
	}
}

// selfHosted: serving deployments whose GPU cost over the range is above
// what their tokens, request by request, cost at the API price of the
// comparable model configured for them.
func (b *builder) selfHosted(ctx context.Context) error {
	comps := b.rules.GPU.Comparables
	if len(comps) == 0 {
		return nil
	}
	type use struct {
		team        string
		gpuCost     decimal.Decimal
		alloc, busy float64
		api         *comparison
	}
	deps := map[string]*use{}
	var order []string
	err := each(ctx, b.q, "serving deployments' GPU cost", `SELECT deployment, any(team), sum(cost_usd), sum(allocated_gpu_seconds), sum(busy_gpu_seconds)
FROM `+clickhouse.ViewSavingsGPU+` WHERE kind = 'gpu.usage' AND deployment != '' AND `+inRange+`
GROUP BY deployment ORDER BY deployment`, b.rangeArgs(), func(scan func(...any) error) error {
		var d, team string
		var cost decimal.Decimal
		var alloc, busy float64
		if err := scan(&d, &team, &cost, &alloc, &busy); err != nil {
			return err
		}
		if _, ok := comps[d]; !ok {
			return nil
		}
		deps[d] = &use{team: team, gpuCost: cost, alloc: alloc, busy: busy, api: newComparison(1)}
		order = append(order, d)
		return nil
	})
	if err != nil {
		return err
	}
	err = each(ctx, b.q, "serving deployments' tokens", `SELECT deployment, input_tokens, output_tokens, count()
FROM `+clickhouse.ViewSavingsGPU+` WHERE kind = 'llm.request' AND `+inRange+`
GROUP BY deployment, input_tokens, output_tokens ORDER BY deployment, input_tokens, output_tokens`, b.rangeArgs(), func(scan func(...any) error) error {
		var d string
		var r shapeRow
		if err := scan(&d, &r.in, &r.out, &r.n); err != nil {
			return err
		}
		u, ok := deps[d]
		if !ok || !u.api.altOK[0] {
			return nil
		}
		prov, model, _ := strings.Cut(comps[d], "/")
		c, good := b.price(u.team, prov, model, "", shape{in: r.in, out: r.out})
		if !good {
			u.api.altOK[0] = false
			return nil
		}
		u.api.alts[0].add(c, r.n)
		u.api.evidence(r)
		return nil
	})
	if err != nil {
		return err
	}
	for _, d := range order {
		u := deps[d]
		if u.api.ev.Requests == 0 || !u.api.altOK[0] || u.gpuCost.Sign() <= 0 {
			continue
		}
		comp := comps[d]
		api := u.api.alts[0]
		ev := u.api.ev
		ev.AllocatedGPUSeconds, ev.BusyGPUSeconds = u.alloc, u.busy
		tokens := ev.InputTokens + ev.OutputTokens
		ev.Detail = fmt.Sprintf("%d tokens served for %s USD of GPU time; %s would price them at %s USD",
			tokens, u.gpuCost.String(), comp, api.usd().String())
		b.add(Recommendation{Kind: KindSelfHosted, Scope: Scope{Team: u.team, Deployment: d},
			Action:         fmt.Sprintf("serve deployment %s's traffic through %s, or raise its throughput per GPU", d, comp),
			Evidence:       ev,
			CurrentCostUSD: u.gpuCost, AlternativeCostUSD: api.usd(),
			Assumption: fmt.Sprintf("%s is configured as comparable to the deployment; its GPUs are released when the traffic moves, and each request is priced at its list price with the same input and output tokens",
				comp),
		})
	}
	return nil
}
