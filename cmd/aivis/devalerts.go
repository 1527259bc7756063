package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/internal/bus"
	"github.com/aivis-dev/aivis/schemas"
)

// readAlerts reads every alert on the alerts topic, oldest first per
// partition: what subscribers received during the run.
func readAlerts(ctx context.Context, d bus.Dialer) ([]schemas.Alert, error) {
	ends, err := d.EndOffsets(ctx, schemas.TopicAlerts)
	if err != nil {
		return nil, err
	}
	want, from := map[int32]int64{}, map[int32]int64{}
	for p, o := range ends {
		if o > 0 {
			want[p], from[p] = o, 0
		}
	}
	if len(want) == 0 {
		return nil, nil
	}
	cl, err := d.Reader("dev-alerts", schemas.TopicAlerts, from)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	var out []schemas.Alert
	for len(want) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return out, fmt.Errorf("reading %s: %w", schemas.TopicAlerts, err)
		}
		for _, fe := range fs.Errors() {
			return out, fmt.Errorf("reading %s: %w", schemas.TopicAlerts, fe.Err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			var a schemas.Alert
			if err := json.Unmarshal(r.Value, &a); err == nil {
				out = append(out, a)
			}
			if r.Offset+1 >= want[r.Partition] {
				delete(want, r.Partition)
			}
		})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].WindowStart.Before(out[j].WindowStart) })
	return out, nil
}

// printAlerts writes the alerts the run raised: each incident change with
// its cost against baseline and the top contributor behind it, then the
// budget alerts.
func printAlerts(w io.Writer, alerts []schemas.Alert) {
	fmt.Fprintf(w, "\nALERTS RAISED (%s)\n", schemas.TopicAlerts)
	if len(alerts) == 0 {
		fmt.Fprintln(w, "(none)")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "KIND\tSTATUS\tWINDOW\tSUBJECT\tCOST USD\tBASELINE USD\tTOP CONTRIBUTOR / BUDGET\t")
	for _, a := range alerts {
		subject, top := a.Team+"/"+a.Model, ""
		if a.Kind == schemas.AlertBudget {
			subject = a.BudgetID + " " + a.Threshold
		}
		if len(a.Contributors) > 0 {
			c := a.Contributors[0]
			top = fmt.Sprintf("%s %s (%s, baseline %s)", c.Dimension, c.Key, c.CostUSD, c.BaselineUSD)
		}
		status := a.Status
		if status == "" {
			status = schemas.AlertFiring
		}
		base := a.BaselineUSD
		if a.Kind == schemas.AlertBudget {
			base, top = "-", fmt.Sprintf("amount %s, forecast %s", a.AmountUSD, a.ForecastUSD)
		}
		cost := a.CostUSD
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", a.Kind, status, a.WindowStart.UTC().Format(time.DateTime), subject, cost, base, top)
	}
	_ = tw.Flush()
}
