package web

import (
	"slices"
	"strings"
)

// sortSeries orders series by cost, highest first, then by key.
func sortSeries(s []*series) {
	slices.SortStableFunc(s, func(a, b *series) int {
		if c := b.CostUSD.Cmp(a.CostUSD); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
}

// mergePoints adds b's points into a's, both ordered by time.
func mergePoints(a, b []point) []point {
	out := make([]point, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || (i < len(a) && a[i].Time.Before(b[j].Time)):
			out = append(out, a[i])
			i++
		case i == len(a) || b[j].Time.Before(a[i].Time):
			out = append(out, b[j])
			j++
		default:
			p := a[i]
			p.Requests += b[j].Requests
			p.CostUSD = p.CostUSD.Add(b[j].CostUSD)
			out = append(out, p)
			i++
			j++
		}
	}
	return out
}
