package savings

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/aivis-dev/aivis/report"
)

// Write prints res as a table (one block per recommendation) or JSON.
// Names from producers pass through report.Printable.
func Write(w io.Writer, res *Result, format string) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	case "", "table":
	default:
		return fmt.Errorf("format %q: want table or json", format)
	}
	fmt.Fprintf(w, "Savings recommendations, usage from %s to %s (monthly = saving × 30 days / range):\n",
		res.From.Format(time.RFC3339), res.Until.Format(time.RFC3339))
	if len(res.Recommendations) == 0 {
		_, err := fmt.Fprintln(w, "  none: no usage in the range has a saving under the savings rules")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  KIND\tMONTHLY USD\tSAVING USD (RANGE)\tCURRENT USD\tSCOPE")
	for _, r := range res.Recommendations {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", r.Kind, r.MonthlySavingUSD.StringFixed(2), r.SavingUSD.StringFixed(6),
			r.CurrentCostUSD.StringFixed(6), report.Printable(r.Scope.String()))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for i, r := range res.Recommendations {
		fmt.Fprintf(w, "\n%d. %s — %s USD a month\n   action:     %s\n   evidence:   %s\n   assumption: %s\n",
			i+1, r.Kind, r.MonthlySavingUSD.StringFixed(2), report.Printable(r.Action), report.Printable(r.Evidence.Detail), r.Assumption)
	}
	_, err := fmt.Fprintf(w, "\nTotal: %s USD a month (kinds can overlap on the same usage)\n", res.MonthlySavingUSD.StringFixed(2))
	return err
}
