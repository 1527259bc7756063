package reconcile

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/report"
	"github.com/aivis-dev/aivis/sinks/clickhouse"
)

// Causes of a difference, as Row.Causes codes.
const (
	// CauseUnpriced: aivis has requests of the model and day it could not
	// price, so its cost is short by theirs.
	CauseUnpriced = "unpriced_usage"
	// CauseMissingEvents: the bill has usage aivis has no events for: no
	// events that day, or fewer tokens than billed.
	CauseMissingEvents = "missing_events"
	// CauseExtraEvents: aivis counts more tokens than billed (duplicates,
	// another account's traffic, or a model attributed to this provider).
	CauseExtraEvents = "extra_events"
	// CausePriceDrift: the quantities agree, the cost does not: the billed
	// rate differs from the catalog's.
	CausePriceDrift = "price_drift"
	// CauseCredits: the bill has credits or discounts aivis does not model.
	CauseCredits = "discounts_credits"
	// CauseAmbiguous: the bill names a model that may be several aivis
	// models; the row is compared under the bill's name.
	CauseAmbiguous = "ambiguous_model"
	// CauseNotBilled: aivis has cost the bill does not show.
	CauseNotBilled = "not_on_bill"
	// CauseNoBilledCost: the bill has quantities but no cost for the row
	// (a usage export without the matching cost export).
	CauseNoBilledCost = "no_billed_cost"
	// CauseUnexplained: none of the above can be told from the export.
	CauseUnexplained = "unexplained"
)

// AllModels is the model of rows compared per day and provider, because
// the bill does not say which model its costs belong to.
const AllModels = "*"

// CreditsModel holds credits the bill does not attribute to a model.
const CreditsModel = "(credits)"

// AivisRow is aivis's usage of one UTC day, provider and model, as stored.
type AivisRow struct {
	Day              time.Time
	Provider, Model  string
	Requests         uint64
	UnpricedRequests uint64
	Tokens
	CostUSD decimal.Decimal
}

// Tokens are token counts in aivis's convention: Input includes the
// cache reads and writes.
type Tokens struct {
	Input      int64 `json:"input"`
	CacheRead  int64 `json:"cache_read"`
	CacheWrite int64 `json:"cache_write"`
	Output     int64 `json:"output"`
}

// Load reads aivis's cost per UTC day, provider and model over [from, to)
// from the cost_by_window view (re-rating corrections included).
func Load(ctx context.Context, q report.Querier, from, to time.Time) ([]AivisRow, error) {
	rows, err := q.Query(ctx, `SELECT intDiv(toUInt32(window_start), 86400) AS d, provider, model,
    sum(requests), sum(unpriced_requests),
    sum(input_tokens), sum(cache_read_input_tokens), sum(cache_write_input_tokens), sum(output_tokens),
    sum(cost_usd)
FROM `+clickhouse.ViewWindows+`
WHERE window_start >= toDateTime(?) AND window_start < toDateTime(?)
GROUP BY d, provider, model
ORDER BY d, provider, model`, from.Unix(), to.Unix())
	if err != nil {
		return nil, fmt.Errorf("querying aivis cost per day and model: %w (has `aivis migrate` run against this database?)", err)
	}
	defer rows.Close()
	var out []AivisRow
	for rows.Next() {
		var r AivisRow
		var day uint32
		if err := rows.Scan(&day, &r.Provider, &r.Model, &r.Requests, &r.UnpricedRequests,
			&r.Input, &r.CacheRead, &r.CacheWrite, &r.Output, &r.CostUSD); err != nil {
			return nil, fmt.Errorf("reading aivis cost per day and model: %w", err)
		}
		r.Day = time.Unix(int64(day)*86400, 0).UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading aivis cost per day and model: %w", err)
	}
	return out, nil
}

// Tolerance is how far aivis and the bill may differ and still agree: an
// amount of USD, or a percentage of the billed amount.
type Tolerance struct {
	USD     decimal.Decimal
	Percent decimal.Decimal
	text    string
}

// ParseTolerance reads "0.01" (USD) or "0.5%".
func ParseTolerance(s string) (Tolerance, error) {
	s = strings.TrimSpace(s)
	pct := strings.HasSuffix(s, "%")
	d, err := decimal.NewFromString(strings.TrimSuffix(s, "%"))
	if err != nil || d.IsNegative() {
		return Tolerance{}, fmt.Errorf("%q: want an amount of USD (0.01) or a percentage (0.5%%), not negative", s)
	}
	if pct {
		return Tolerance{Percent: d, text: s}, nil
	}
	return Tolerance{USD: d, text: s}, nil
}

func (t Tolerance) String() string {
	if t.text == "" {
		return "0"
	}
	return t.text
}

// within reports whether diff is inside the tolerance of billed.
func (t Tolerance) within(diff, billed decimal.Decimal) bool {
	limit := t.USD
	if !t.Percent.IsZero() {
		limit = billed.Abs().Mul(t.Percent).Div(decimal.NewFromInt(100))
	}
	return diff.Abs().LessThanOrEqual(limit)
}

// Options choose the range and the tolerance.
type Options struct {
	// From and To bound the UTC days compared, [From, To); zero means the
	// bill's own first and last day.
	From, To  time.Time
	Tolerance Tolerance
}

// Cause is one likely reason for a row's difference.
type Cause struct {
	Code   string `json:"code"`
	Detail string `json:"detail"`
}

// Row compares one UTC day, provider and model.
type Row struct {
	Day      string          `json:"day"`
	Provider string          `json:"provider"`
	Model    string          `json:"model"`
	AivisUSD decimal.Decimal `json:"aivis_usd"`
	// BilledUSD is the bill before credits; CreditsUSD (≤ 0 as a rule) the
	// credits and discounts; DiffUSD = BilledUSD + CreditsUSD − AivisUSD.
	BilledUSD  decimal.Decimal `json:"billed_usd"`
	CreditsUSD decimal.Decimal `json:"credits_usd"`
	DiffUSD    decimal.Decimal `json:"diff_usd"`
	// DiffPercent is DiffUSD over the net billed amount; nil when nothing
	// was billed.
	DiffPercent      *decimal.Decimal `json:"diff_percent"`
	Agrees           bool             `json:"agrees"`
	Requests         uint64           `json:"aivis_requests"`
	UnpricedRequests uint64           `json:"aivis_unpriced_requests"`
	AivisTokens      Tokens           `json:"aivis_tokens"`
	// BilledTokens are the bill's quantities, when it gives them.
	BilledTokens *Tokens `json:"billed_tokens,omitempty"`
	Causes       []Cause `json:"causes,omitempty"`
	// Sources are where the bill's lines came from (file:line), a few.
	Sources []string `json:"sources,omitempty"`
}

// Result is the whole comparison.
type Result struct {
	From      string `json:"from"`
	To        string `json:"to"`
	Tolerance string `json:"tolerance"`
	Rows      []Row  `json:"rows"`
	Totals    struct {
		AivisUSD   decimal.Decimal `json:"aivis_usd"`
		BilledUSD  decimal.Decimal `json:"billed_usd"`
		CreditsUSD decimal.Decimal `json:"credits_usd"`
		DiffUSD    decimal.Decimal `json:"diff_usd"`
		Agreeing   int             `json:"agreeing_rows"`
		Differing  int             `json:"differing_rows"`
	} `json:"totals"`
	Notes []string `json:"notes,omitempty"`
}

// group accumulates one row's sides.
type group struct {
	day             time.Time
	provider, model string
	aivis           AivisRow
	billed, credits decimal.Decimal
	costLines       int
	creditLines     int
	tokenLines      int
	billTokens      Tokens
	ambiguous       []string
	sources         []string
}

// maxSources bounds Row.Sources.
const maxSources = 3

// Compare sums bills and aivis rows per UTC day, provider and model and
// names the likely cause of each difference. Only the providers the bills
// cover are compared.
func Compare(bills []*Bill, aivis []AivisRow, models *Models, opts Options) (*Result, error) {
	var lines []Line
	res := &Result{Tolerance: opts.Tolerance.String()}
	providers := map[string]bool{}
	for _, b := range bills {
		lines = append(lines, b.Lines...)
		res.Notes = append(res.Notes, b.Notes...)
	}
	from, to := opts.From, opts.To
	for _, l := range lines {
		providers[l.Provider] = true
		if opts.From.IsZero() && (from.IsZero() || l.Day.Before(from)) {
			from = l.Day
		}
		if opts.To.IsZero() && !l.Day.Before(to) {
			to = l.Day.AddDate(0, 0, 1)
		}
	}
	if from.IsZero() || to.IsZero() {
		if len(lines) == 0 {
			return nil, errors.New("the bill has no AI usage lines: nothing to reconcile (is it the right export and --format?)")
		}
		return nil, errors.New("set both --from and --to")
	}
	if !from.Before(to) {
		return nil, fmt.Errorf("the range %s .. %s is empty", from.Format(time.DateOnly), to.Format(time.DateOnly))
	}
	res.From, res.To = from.Format(time.DateOnly), to.Format(time.DateOnly)
	inRange := func(d time.Time) bool { return !d.Before(from) && d.Before(to) }

	// Days and providers on which the bill has costs without a model are
	// compared over all models.
	type dp struct {
		day      time.Time
		provider string
	}
	total := map[dp]bool{}
	for _, l := range lines {
		if l.Model == "" && !l.Credit && inRange(l.Day) {
			total[dp{l.Day, l.Provider}] = true
		}
	}
	groups := map[[3]string]*group{}
	get := func(day time.Time, provider, model string) *group {
		if total[dp{day, provider}] {
			model = AllModels
		}
		k := [3]string{day.Format(time.DateOnly), provider, model}
		g := groups[k]
		if g == nil {
			g = &group{day: day, provider: provider, model: model}
			groups[k] = g
		}
		return g
	}
	outside := 0
	for _, l := range lines {
		if !inRange(l.Day) {
			outside++
			continue
		}
		model := l.Model
		if model == "" && l.Credit {
			model = CreditsModel
		}
		g := get(l.Day, l.Provider, model)
		if l.Ambiguous != "" && !contains(g.ambiguous, l.Ambiguous) {
			g.ambiguous = append(g.ambiguous, l.Ambiguous)
		}
		if len(g.sources) < maxSources && l.Where != "" && !contains(g.sources, l.Where) {
			g.sources = append(g.sources, l.Where)
		}
		switch {
		case l.Credit:
			g.credits = g.credits.Add(l.CostUSD)
			g.creditLines++
		case l.HasTokens && l.CostUSD.IsZero():
			// A usage line: quantities only.
		default:
			g.billed = g.billed.Add(l.CostUSD)
			g.costLines++
		}
		if l.HasTokens {
			g.tokenLines++
			switch l.Meter {
			case MeterInput:
				g.billTokens.Input += l.Tokens
			case MeterCacheRead:
				g.billTokens.CacheRead += l.Tokens
				g.billTokens.Input += l.Tokens
			case MeterCacheWrite:
				g.billTokens.CacheWrite += l.Tokens
				g.billTokens.Input += l.Tokens
			case MeterOutput:
				g.billTokens.Output += l.Tokens
			}
		}
	}
	if outside > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%d bill lines outside %s .. %s left out", outside, res.From, res.To))
	}
	for _, a := range aivis {
		provider := ProviderOf(a.Provider)
		if !providers[provider] || !inRange(a.Day) {
			continue
		}
		g := get(a.Day, provider, models.Key(provider, a.Model, a.Day))
		g.aivis.Requests += a.Requests
		g.aivis.UnpricedRequests += a.UnpricedRequests
		g.aivis.Input += a.Input
		g.aivis.CacheRead += a.CacheRead
		g.aivis.CacheWrite += a.CacheWrite
		g.aivis.Output += a.Output
		g.aivis.CostUSD = g.aivis.CostUSD.Add(a.CostUSD)
	}

	for _, g := range groups {
		res.Rows = append(res.Rows, g.row(opts.Tolerance))
	}
	sort.Slice(res.Rows, func(i, j int) bool {
		a, b := res.Rows[i], res.Rows[j]
		if a.Day != b.Day {
			return a.Day < b.Day
		}
		if a.Provider != b.Provider {
			return a.Provider < b.Provider
		}
		return a.Model < b.Model
	})
	t := &res.Totals
	for _, r := range res.Rows {
		t.AivisUSD = t.AivisUSD.Add(r.AivisUSD)
		t.BilledUSD = t.BilledUSD.Add(r.BilledUSD)
		t.CreditsUSD = t.CreditsUSD.Add(r.CreditsUSD)
		t.DiffUSD = t.DiffUSD.Add(r.DiffUSD)
		if r.Agrees {
			t.Agreeing++
		} else {
			t.Differing++
		}
	}
	return res, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func (g *group) row(tol Tolerance) Row {
	net := g.billed.Add(g.credits)
	r := Row{
		Day: g.day.Format(time.DateOnly), Provider: g.provider, Model: g.model,
		AivisUSD: g.aivis.CostUSD, BilledUSD: g.billed, CreditsUSD: g.credits,
		DiffUSD:  net.Sub(g.aivis.CostUSD),
		Requests: g.aivis.Requests, UnpricedRequests: g.aivis.UnpricedRequests,
		AivisTokens: g.aivis.Tokens, Sources: g.sources,
	}
	if !net.IsZero() {
		p := r.DiffUSD.Mul(decimal.NewFromInt(100)).DivRound(net.Abs(), 2)
		r.DiffPercent = &p
	}
	if g.tokenLines > 0 {
		bt := g.billTokens
		r.BilledTokens = &bt
	}
	r.Agrees = tol.within(r.DiffUSD, net) && len(g.ambiguous) == 0
	if r.Agrees {
		return r
	}
	add := func(code, format string, args ...any) {
		r.Causes = append(r.Causes, Cause{Code: code, Detail: fmt.Sprintf(format, args...)})
	}
	for _, a := range g.ambiguous {
		add(CauseAmbiguous, "%s; aivis cannot tell which, so this row holds the bill's name and the aivis rows stay under their own", a)
	}
	if tol.within(r.DiffUSD, net) {
		return r
	}
	usd := func(d decimal.Decimal) string { return d.String() }
	switch {
	case g.costLines == 0 && g.creditLines == 0 && g.tokenLines == 0:
		add(CauseNotBilled, "aivis recorded $%s (%d requests) that the bill does not show: traffic of another account or key, or outside the export", usd(g.aivis.CostUSD), g.aivis.Requests)
		return r
	case g.costLines == 0 && g.creditLines == 0:
		add(CauseNoBilledCost, "the bill has token quantities but no cost for this model and day: pass the cost export as well")
		return r
	}
	if g.aivis.Requests == 0 && g.aivis.CostUSD.IsZero() && g.billed.IsPositive() {
		add(CauseMissingEvents, "billed $%s on a day aivis has no events for this model: producers did not report it", usd(g.billed))
		return r
	}
	if !g.credits.IsZero() {
		gross := g.billed.Sub(g.aivis.CostUSD)
		if tol.within(gross, g.billed) {
			add(CauseCredits, "credits and discounts of $%s; before them the bill agrees with aivis", usd(g.credits))
			return r
		}
		add(CauseCredits, "credits and discounts of $%s; before them the difference is $%s", usd(g.credits), usd(gross))
	}
	if g.aivis.UnpricedRequests > 0 {
		add(CauseUnpriced, "aivis has %d unpriced requests of this model that day: add the model to the catalog, then `aivis rerate`", g.aivis.UnpricedRequests)
	}
	if g.tokenLines > 0 {
		b, a := g.billTokens, g.aivis.Tokens
		var more, less []string
		cmp := func(name string, billed, seen int64) {
			switch {
			case billed > seen:
				more = append(more, fmt.Sprintf("%s %d billed vs %d in aivis", name, billed, seen))
			case billed < seen:
				less = append(less, fmt.Sprintf("%s %d billed vs %d in aivis", name, billed, seen))
			}
		}
		cmp("input tokens", b.Input, a.Input)
		cmp("cache read tokens", b.CacheRead, a.CacheRead)
		cmp("cache write tokens", b.CacheWrite, a.CacheWrite)
		cmp("output tokens", b.Output, a.Output)
		if len(more) > 0 {
			add(CauseMissingEvents, "the bill has more tokens than aivis: %s", strings.Join(more, "; "))
		}
		if len(less) > 0 {
			add(CauseExtraEvents, "aivis has more tokens than billed: %s", strings.Join(less, "; "))
		}
		if len(more) == 0 && len(less) == 0 && g.aivis.UnpricedRequests == 0 && g.credits.IsZero() {
			add(CausePriceDrift, "token quantities agree but the cost differs by $%s: the billed rate differs from the catalog's", usd(r.DiffUSD))
		}
	}
	if len(r.Causes) == 0 {
		add(CauseUnexplained, "the export has no token quantities for this row: add the provider's usage export to tell missing events from price drift")
	}
	return r
}
