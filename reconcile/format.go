package reconcile

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/report"
)

// tableDecimals is how many decimals of USD the table shows; JSON
// carries the exact values.
const tableDecimals = 6

// WriteJSON writes res as indented JSON; amounts are exact decimal strings.
func WriteJSON(w io.Writer, res *Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(res)
}

// WriteTable prints res for a terminal: one line per day, provider and
// model, then the causes of every difference. Names from bills and
// producers go through report.Printable.
func WriteTable(w io.Writer, res *Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := func(format string, args ...any) { fmt.Fprintf(tw, format, args...) }
	usd := func(d decimal.Decimal) string { return d.StringFixed(tableDecimals) }
	p("aivis reconcile: UTC days %s to %s (exclusive), tolerance %s\n\n", res.From, res.To, tolText(res.Tolerance))
	if len(res.Rows) == 0 {
		p("(no rows)\n")
	} else {
		p("DAY\tPROVIDER\tMODEL\tAIVIS USD\tBILLED USD\tCREDITS USD\tDIFF USD\tDIFF %%\tRESULT\n")
		for _, r := range res.Rows {
			pct := "n/a"
			if r.DiffPercent != nil {
				pct = r.DiffPercent.StringFixed(2)
			}
			result := "agrees"
			if !r.Agrees {
				codes := make([]string, len(r.Causes))
				for i, c := range r.Causes {
					codes[i] = c.Code
				}
				result = strings.Join(codes, ",")
			}
			p("%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Day, report.Printable(r.Provider), report.Printable(r.Model),
				usd(r.AivisUSD), usd(r.BilledUSD), usd(r.CreditsUSD), usd(r.DiffUSD), pct, result)
		}
		t := res.Totals
		p("TOTAL\t\t\t%s\t%s\t%s\t%s\t\t%d agree, %d differ\n", usd(t.AivisUSD), usd(t.BilledUSD), usd(t.CreditsUSD), usd(t.DiffUSD), t.Agreeing, t.Differing)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var b strings.Builder
	for _, r := range res.Rows {
		if r.Agrees {
			continue
		}
		if b.Len() == 0 {
			b.WriteString("\nCAUSES\n")
		}
		fmt.Fprintf(&b, "%s %s %s:\n", r.Day, report.Printable(r.Provider), report.Printable(r.Model))
		for _, c := range r.Causes {
			fmt.Fprintf(&b, "  %s: %s\n", c.Code, report.Printable(c.Detail))
		}
		if len(r.Sources) > 0 {
			fmt.Fprintf(&b, "  bill lines: %s\n", report.Printable(strings.Join(r.Sources, ", ")))
		}
	}
	if len(res.Notes) > 0 {
		b.WriteString("\nNOTES\n")
		for _, n := range res.Notes {
			fmt.Fprintf(&b, "  %s\n", report.Printable(n))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func tolText(t string) string {
	if strings.HasSuffix(t, "%") {
		return t + " of the billed amount"
	}
	return t + " USD"
}
