package report

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/shopspring/decimal"
)

// tableCostDecimals is how many decimals of USD the text table shows; JSON
// and CSV carry the exact value.
const tableCostDecimals = 6

// writeJSON writes r as indented JSON. encoding/json escapes C0 controls
// and U+2028/U+2029 but leaves DEL, C1 controls and bidi formatting
// characters raw; those are escaped here as well (\u009b, \u202e), so that
// the JSON is as safe to print to a terminal as the table, and decodes to
// the same names.
func writeJSON(w io.Writer, r *Result) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return err
	}
	_, err := w.Write(escapeJSON(buf.Bytes()))
	return err
}

// escapeJSON writes every rune of encoded JSON that Printable would escape
// as \uXXXX. Outside strings JSON holds only ASCII punctuation, letters,
// digits and whitespace, and the encoder has escaped C0 controls inside
// them, so every such rune from DEL up is inside a string, where the escape
// means the same rune.
func escapeJSON(b []byte) []byte {
	var out []byte
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r >= 0x7f && unprintable(r) {
			if out == nil {
				out = append(make([]byte, 0, len(b)+16), b[:i]...)
			}
			out = fmt.Appendf(out, `\u%04x`, r)
		} else if out != nil {
			out = append(out, b[i:i+size]...)
		}
		i += size
	}
	if out == nil {
		return b
	}
	return out
}

// csvHeader is shared by every section; a section leaves the columns it does
// not have empty, so the file loads as one sheet.
var csvHeader = []string{"section", "window_start", "provider", "model", "team", "project",
	"requests", "errors", "unpriced_requests", "input_tokens", "output_tokens",
	"cache_read_input_tokens", "cache_write_input_tokens", "cost_usd",
	"latency_p50_ms", "latency_p95_ms", "baseline_usd", "z_score",
	"exact_cost_usd", "fallback_requests", "fallback_cost_usd", "fallback_codes", "reported_name",
	"allocated_gpu_seconds", "busy_gpu_seconds", "idle_gpu_seconds", "energy_kwh", "energy_cost_usd", "emissions_gco2",
	"idle_cost_usd", "efficiency", "deployment", "cost_per_1m_tokens_usd", "comparable", "comparable_cost_per_1m_tokens_usd",
	"category", "signal", "subject", "status", "detail", "region", "bytes", "bytes_outside_allowed_regions", "source_address"}

func writeCSV(w io.Writer, r *Result) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(csvHeader); err != nil {
		return err
	}
	u := strconv.FormatUint
	i := func(v int64) string { return strconv.FormatInt(v, 10) }
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	totals := func(t Totals) []string {
		return []string{u(t.Requests, 10), u(t.Errors, 10), u(t.UnpricedRequests, 10),
			i(t.InputTokens), i(t.OutputTokens), i(t.CacheReadInputTokens), i(t.CacheWriteInputTokens), t.CostUSD.String()}
	}
	row := func(section, window, provider, model, team, project string, t []string, rest ...string) error {
		rec := append([]string{section, window, provider, model, team, project}, t...)
		rec = append(rec, rest...)
		for len(rec) < len(csvHeader) {
			rec = append(rec, "")
		}
		for i := range rec {
			rec[i] = csvCell(rec[i])
		}
		return cw.Write(rec)
	}
	noTotals := make([]string, 8)
	if err := row("totals", "", "", "", "", "", totals(r.Totals)); err != nil {
		return err
	}
	for _, m := range r.Models {
		if err := row("models", "", m.Provider, m.Model, "", "", totals(m.Totals), f(m.LatencyP50Ms), f(m.LatencyP95Ms)); err != nil {
			return err
		}
	}
	for _, o := range r.Teams {
		if err := row("teams", "", "", "", o.Team, "", totals(o.Totals)); err != nil {
			return err
		}
	}
	for _, o := range r.Projects {
		if err := row("projects", "", "", "", o.Team, o.Project, totals(o.Totals)); err != nil {
			return err
		}
	}
	for _, c := range r.Confidence {
		t := append([]string(nil), noTotals...)
		t[0], t[2] = u(c.ExactRequests+c.FallbackRequests+c.UnpricedRequests, 10), u(c.UnpricedRequests, 10)
		t[7] = c.ExactCostUSD.Add(c.FallbackCostUSD).String()
		if err := row("pricing_confidence", "", c.Provider, c.Model, "", "", t, "", "", "", "",
			c.ExactCostUSD.String(), u(c.FallbackRequests, 10), c.FallbackCostUSD.String(), strings.Join(c.FallbackCodes, " ")); err != nil {
			return err
		}
	}
	for _, n := range r.ReportedNames {
		t := append([]string(nil), noTotals...)
		t[0], t[7] = u(n.Requests, 10), n.CostUSD.String()
		if err := row("reported_names", "", n.Provider, n.Model, "", "", t, "", "", "", "", "", "", "", "", n.ReportedName); err != nil {
			return err
		}
	}
	for _, a := range r.Anomalies {
		t := append([]string(nil), noTotals...)
		t[7] = a.CostUSD.String()
		if err := row("anomalies", a.WindowStart.Format(time.RFC3339), "", a.Model, a.Team, "", t, "", "", a.BaselineUSD.String(), f(a.ZScore)); err != nil {
			return err
		}
	}
	// The GPU columns come after the 9 from latency_p50_ms to reported_name.
	skip := func(rec []string) []string { return append(make([]string, 9), rec...) }
	for _, g := range r.GPU {
		t := append([]string(nil), noTotals...)
		t[7] = g.CostUSD.String()
		if err := row("gpu", "", "", "", g.Team, "", t, skip([]string{f(g.AllocatedGPUSeconds), f(g.BusyGPUSeconds), f(g.IdleGPUSeconds),
			f(g.EnergyKWh), f(g.EnergyCostUSD), f(g.EmissionsGCO2), g.IdleCostUSD.String(), f(g.Efficiency)})...); err != nil {
			return err
		}
	}
	for _, s := range r.SelfHosted {
		t := append([]string(nil), noTotals...)
		t[0], t[3], t[4], t[7] = u(s.Requests, 10), i(s.InputTokens), i(s.OutputTokens), s.GPUCostUSD.String()
		comparable := ""
		if s.ComparablePriced {
			comparable = s.ComparableCostPer1MUSD.String()
		}
		if err := row("self_hosted", "", "", "", "", "", t, skip([]string{"", "", "", "", "", "", "", "",
			s.Deployment, s.CostPer1MUSD.String(), s.Comparable, comparable})...); err != nil {
			return err
		}
	}
	// The governance columns come after the 9 from latency_p50_ms and the
	// 12 of the GPU sections.
	err := governanceCSV(func(section string, rest ...string) error {
		t := append([]string(nil), noTotals...)
		t[0], t[7] = rest[5], rest[6]
		return row(section, rest[0], rest[1], rest[2], rest[3], rest[4], t, append(make([]string, 9+12), rest[7:]...)...)
	}, r)
	if err != nil {
		return err
	}
	cw.Flush()
	return cw.Error()
}

// csvCell keeps a spreadsheet from running a name as a formula: text
// that starts with =, +, -, @, a tab or a carriage return gets a leading
// single quote, as OWASP advises for CSV injection. Numbers, negative ones
// included, stay numbers.
func csvCell(s string) string {
	if s == "" || !strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return s
	}
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		return s
	}
	return "'" + s
}

// writeTable prints r for a terminal; every name goes through Printable.
func writeTable(w io.Writer, r *Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := func(format string, args ...any) { fmt.Fprintf(tw, format, args...) }
	const stamp = "2006-01-02 15:04 UTC"

	p("aivis cost report: windows starting %s to %s", r.From.Format(stamp), r.Until.Format(stamp))
	if !r.LatestWindow.IsZero() {
		p(" (latest window %s)", r.LatestWindow.Format(stamp))
	}
	p("\n\nTOTALS\n")
	t := r.Totals
	p("requests\t%s\n", num(int64(t.Requests)))
	p("errors\t%s\n", num(int64(t.Errors)))
	p("unpriced requests\t%s\n", num(int64(t.UnpricedRequests)))
	p("input tokens\t%s\t(cache read %s, cache write %s)\n", num(t.InputTokens), num(t.CacheReadInputTokens), num(t.CacheWriteInputTokens))
	p("output tokens\t%s\n", num(t.OutputTokens))
	p("cost USD\t%s\n", usd(t.CostUSD))

	p("\nTOP MODELS BY COST\n")
	if len(r.Models) == 0 {
		p("(none)\n")
	} else {
		p("PROVIDER\tMODEL\tREQUESTS\tINPUT\tOUTPUT\tCACHE READ\tCACHE WRITE\tCOST USD\tP50 MS\tP95 MS\n")
		for _, m := range r.Models {
			provider, model := Printable(m.Provider), Printable(m.Model)
			if m.Provider == "" && m.Model == "" {
				// gpu.usage intervals are priced GPU time, not a model.
				provider, model = "-", "GPU time (no model)"
			}
			p("%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", provider, model, num(int64(m.Requests)),
				num(m.InputTokens), num(m.OutputTokens), num(m.CacheReadInputTokens), num(m.CacheWriteInputTokens),
				usd(m.CostUSD), ms(m.LatencyP50Ms), ms(m.LatencyP95Ms))
		}
	}

	owners := func(title string, rows []OwnerRow, projects bool) {
		p("\n%s\n", title)
		if len(rows) == 0 {
			p("(none)\n")
			return
		}
		if projects {
			p("TEAM\tPROJECT\tREQUESTS\tINPUT\tOUTPUT\tUNPRICED\tCOST USD\n")
		} else {
			p("TEAM\tREQUESTS\tINPUT\tOUTPUT\tUNPRICED\tCOST USD\n")
		}
		for _, o := range rows {
			p("%s\t", Printable(o.Team))
			if projects {
				p("%s\t", Printable(o.Project))
			}
			p("%s\t%s\t%s\t%s\t%s\n", num(int64(o.Requests)), num(o.InputTokens), num(o.OutputTokens),
				num(int64(o.UnpricedRequests)), usd(o.CostUSD))
		}
	}
	owners("TOP TEAMS BY COST", r.Teams, false)
	owners("TOP PROJECTS BY COST", r.Projects, true)

	p("\nPRICING CONFIDENCE BY MODEL\n")
	if len(r.Confidence) == 0 {
		p("(none)\n")
	} else {
		p("PROVIDER\tMODEL\tEXACT USD\tFALLBACK USD\tFALLBACK REQUESTS\tFALLBACK CODES\tUNPRICED REQUESTS\n")
		for _, c := range r.Confidence {
			codes := "-"
			if len(c.FallbackCodes) > 0 {
				codes = Printable(strings.Join(c.FallbackCodes, ","))
			}
			p("%s\t%s\t%s\t%s\t%s\t%s\t%s\n", Printable(c.Provider), Printable(c.Model), usd(c.ExactCostUSD), usd(c.FallbackCostUSD),
				num(int64(c.FallbackRequests)), codes, num(int64(c.UnpricedRequests)))
		}
	}

	p("\nCOST BY REPORTED NAME\n")
	if len(r.ReportedNames) == 0 {
		p("(none)\n")
	} else {
		p("PROVIDER\tMODEL\tREPORTED NAME\tREQUESTS\tCOST USD\n")
		for _, n := range r.ReportedNames {
			p("%s\t%s\t%s\t%s\t%s\n", Printable(n.Provider), Printable(n.Model), Printable(n.ReportedName), num(int64(n.Requests)), usd(n.CostUSD))
		}
	}

	p("\nRECENT ANOMALIES\n")
	if len(r.Anomalies) == 0 {
		p("(none)\n")
	} else {
		p("WINDOW\tTEAM\tMODEL\tCOST USD\tBASELINE USD\tZ\n")
		for _, a := range r.Anomalies {
			p("%s\t%s\t%s\t%s\t%s\t%.2f\n", a.WindowStart.Format(stamp), Printable(a.Team), Printable(a.Model), usd(a.CostUSD), a.BaselineUSD.StringFixed(6), a.ZScore)
		}
	}
	gpuTable(p, r)
	governanceTable(p, r)
	return tw.Flush()
}

func gpuTable(p func(string, ...any), r *Result) {
	p("\nGPU COST BY TEAM\n")
	if len(r.GPU) == 0 {
		p("(none)\n")
	} else {
		p("TEAM\tGPU HOURS\tBUSY HOURS\tEFFICIENCY\tENERGY KWH\tENERGY USD\tCO2 KG\tIDLE COST USD\tCOST USD\n")
		for _, g := range r.GPU {
			p("%s\t%.3f\t%.3f\t%.1f%%\t%.3f\t%.6f\t%.3f\t%s\t%s\n", Printable(g.Team), g.AllocatedGPUSeconds/3600, g.BusyGPUSeconds/3600,
				100*g.Efficiency, g.EnergyKWh, g.EnergyCostUSD, g.EmissionsGCO2/1000, usd(g.IdleCostUSD), usd(g.CostUSD))
		}
	}
	p("\nSELF-HOSTED VS API (PER 1M TOKENS)\n")
	if len(r.SelfHosted) == 0 {
		p("(none)\n")
		return
	}
	p("DEPLOYMENT\tREQUESTS\tTOKENS\tGPU COST USD\tUSD PER 1M\tCOMPARABLE\tCOMPARABLE USD PER 1M\n")
	for _, s := range r.SelfHosted {
		comparable, price := "-", "-"
		if s.Comparable != "" {
			comparable, price = Printable(s.Comparable), "unpriced"
			if s.ComparablePriced {
				price = usd(s.ComparableCostPer1MUSD)
			}
		}
		p("%s\t%s\t%s\t%s\t%s\t%s\t%s\n", Printable(s.Deployment), num(int64(s.Requests)), num(s.tokens()),
			usd(s.GPUCostUSD), usd(s.CostPer1MUSD), comparable, price)
	}
}

func usd(d decimal.Decimal) string { return d.StringFixed(tableCostDecimals) }

func ms(v float64) string {
	if v == 0 {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

// num groups digits in thousands: 1234567 -> 1,234,567.
func num(v int64) string {
	s := strconv.FormatInt(v, 10)
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
