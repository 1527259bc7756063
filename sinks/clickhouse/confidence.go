package clickhouse

import (
	"github.com/aivis-dev/aivis/pricing"
	"github.com/aivis-dev/aivis/schemas"
)

// pricingWarnings is the pricing_warnings column: per event, its warnings
// whose code is one of pricing.FallbackCodes (the event's other warnings,
// from adapters, say nothing about how exactly it was priced).
func pricingWarnings(events []schemas.StoredEvent) [][]string {
	out := make([][]string, len(events))
	for i, se := range events {
		out[i] = []string{}
		if se.Event == nil {
			continue
		}
		for _, w := range se.Event.Warnings {
			if pricing.FallbackCode(w) != "" {
				out[i] = append(out[i], w)
			}
		}
	}
	return out
}
