package clickhouse

import (
	"github.com/aivis-dev/aivis/pricing"
	"github.com/aivis-dev/aivis/schemas"
)

// pricingWarnings fills out, sized to events, with the pricing_warnings
// column: per event, its warnings whose code is one of
// pricing.FallbackCodes (the event's other warnings, from adapters, say
// nothing about how exactly it was priced). The rows are slices of flat;
// both are returned to be passed again, so that a flush allocates nothing
// for the column once they have grown.
func pricingWarnings(events []schemas.StoredEvent, out [][]string, flat []string) ([][]string, []string) {
	out, flat = sized(out, len(events)), flat[:0]
	if flat == nil {
		flat = make([]string, 0, 64) // rows are never nil, as the driver's Append wants
	}
	for i, se := range events {
		start := len(flat)
		if se.Event != nil {
			for _, w := range se.Event.Warnings {
				if pricing.FallbackCode(w) != "" {
					flat = append(flat, w)
				}
			}
		}
		// A row made before flat grew keeps the old array, which still
		// holds its strings.
		out[i] = flat[start:len(flat):len(flat)]
	}
	return out, flat
}
