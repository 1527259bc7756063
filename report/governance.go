package report

import (
	"context"
	"strconv"
	"time"

	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/sinks/clickhouse"
)

// IncidentRow is one governance or security incident open in the range or
// changed in it (governance_incidents): unapproved use, unowned keys, new
// sources and regions, dormant keys, auth failures, flows out of region.
type IncidentRow struct {
	Category string          `json:"category"`
	Signal   string          `json:"signal"`
	Subject  string          `json:"subject"`
	Status   string          `json:"status"`
	OpenedAt time.Time       `json:"opened_at"`
	Events   uint64          `json:"events"`
	CostUSD  decimal.Decimal `json:"cost_usd"`
	Detail   string          `json:"detail"`
}

// DataRow is the data sent to one provider region by one team
// (data_movement_by_hour); OutsideBytes is the part that left the regions
// the policy allows (enrich's region_not_allowed flag).
type DataRow struct {
	Provider      string          `json:"provider"`
	Region        string          `json:"region"`
	Team          string          `json:"team"`
	Requests      uint64          `json:"requests"`
	Bytes         int64           `json:"bytes"`
	OutsideBytes  int64           `json:"bytes_outside_allowed_regions"`
	OutsideEvents uint64          `json:"requests_outside_allowed_regions"`
	CostUSD       decimal.Decimal `json:"cost_usd"`
}

// AuthRow is the producer authentications ingest refused from one source
// address in the range (auth_failures_by_hour).
type AuthRow struct {
	SourceAddress string `json:"source_address"`
	Failures      int64  `json:"failures"`
	MaxPerMinute  int64  `json:"max_per_minute"`
}

// governance fills the governance section: incidents first open ones, then
// by category, signal and cost; data movement by bytes; auth failures by
// count.
func governance(ctx context.Context, q Querier, res *Result, from, until int64, limit string) error {
	err := each(ctx, q, "governance incidents", `SELECT category, signal, subject, status, opened_at, events, cost_usd, detail
FROM `+clickhouse.ViewGovernanceIncidents+`
WHERE changed_at >= toDateTime(?) AND opened_at < toDateTime(?)
ORDER BY status = 'resolved', category, signal, cost_usd DESC, events DESC, subject`+limit,
		[]any{from, until}, func(scan func(...any) error) error {
			var r IncidentRow
			if err := scan(&r.Category, &r.Signal, &r.Subject, &r.Status, &r.OpenedAt, &r.Events, &r.CostUSD, &r.Detail); err != nil {
				return err
			}
			r.OpenedAt = r.OpenedAt.UTC()
			res.Governance = append(res.Governance, r)
			return nil
		})
	if err != nil {
		return err
	}
	err = each(ctx, q, "data movement", `SELECT provider, provider_region, team, sum(requests), sum(bytes),
    sum(bytes_outside_allowed_regions), sum(requests_outside_allowed_regions), sum(cost_usd)
FROM `+clickhouse.ViewDataMovement+`
WHERE hour >= toStartOfHour(toDateTime(?)) AND hour < toDateTime(?)
GROUP BY provider, provider_region, team
ORDER BY sum(bytes) DESC, sum(requests) DESC, provider, provider_region, team`+limit,
		[]any{from, until}, func(scan func(...any) error) error {
			var r DataRow
			if err := scan(&r.Provider, &r.Region, &r.Team, &r.Requests, &r.Bytes, &r.OutsideBytes, &r.OutsideEvents, &r.CostUSD); err != nil {
				return err
			}
			res.DataMovement = append(res.DataMovement, r)
			return nil
		})
	if err != nil {
		return err
	}
	return each(ctx, q, "auth failures", `SELECT source_address, sum(failures), max(max_per_minute)
FROM `+clickhouse.ViewAuthFailures+`
WHERE hour >= toStartOfHour(toDateTime(?)) AND hour < toDateTime(?)
GROUP BY source_address
ORDER BY sum(failures) DESC, source_address`+limit,
		[]any{from, until}, func(scan func(...any) error) error {
			var r AuthRow
			if err := scan(&r.SourceAddress, &r.Failures, &r.MaxPerMinute); err != nil {
				return err
			}
			res.AuthFailures = append(res.AuthFailures, r)
			return nil
		})
}

func governanceTable(p func(string, ...any), r *Result) {
	p("\nGOVERNANCE AND SECURITY\n")
	if len(r.Governance) == 0 {
		p("(none)\n")
	} else {
		p("CATEGORY\tSIGNAL\tSUBJECT\tSTATUS\tOPENED\tEVENTS\tCOST USD\tDETAIL\n")
		for _, g := range r.Governance {
			p("%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", Printable(g.Category), Printable(g.Signal), Printable(g.Subject), Printable(g.Status),
				g.OpenedAt.Format("2006-01-02 15:04 UTC"), num(int64(g.Events)), usd(g.CostUSD), Printable(g.Detail))
		}
	}
	p("\nDATA MOVEMENT BY PROVIDER AND REGION\n")
	if len(r.DataMovement) == 0 {
		p("(none)\n")
	} else {
		p("PROVIDER\tREGION\tTEAM\tREQUESTS\tBYTES\tOUTSIDE ALLOWED BYTES\tCOST USD\n")
		for _, d := range r.DataMovement {
			region := d.Region
			if region == "" {
				region = "-"
			}
			p("%s\t%s\t%s\t%s\t%s\t%s\t%s\n", Printable(d.Provider), Printable(region), Printable(d.Team), num(int64(d.Requests)),
				strconv.FormatInt(d.Bytes, 10), strconv.FormatInt(d.OutsideBytes, 10), usd(d.CostUSD))
		}
	}
	p("\nAUTH FAILURES BY SOURCE ADDRESS\n")
	if len(r.AuthFailures) == 0 {
		p("(none)\n")
		return
	}
	p("ADDRESS\tFAILURES\tMAX PER MINUTE\n")
	for _, a := range r.AuthFailures {
		p("%s\t%d\t%d\n", Printable(a.SourceAddress), a.Failures, a.MaxPerMinute)
	}
}

// governanceCSV is the governance section's CSV rows: the section, then
// signal, subject, status, category, detail, region, bytes and the
// address in the columns named for them.
func governanceCSV(row func(section string, rest ...string) error, r *Result) error {
	for _, g := range r.Governance {
		if err := row("governance", g.OpenedAt.Format(time.RFC3339), "", "", "", "", strconv.FormatUint(g.Events, 10), g.CostUSD.String(),
			g.Category, g.Signal, g.Subject, g.Status, g.Detail, "", "", ""); err != nil {
			return err
		}
	}
	for _, d := range r.DataMovement {
		if err := row("data_movement", "", d.Provider, "", d.Team, "", strconv.FormatUint(d.Requests, 10), d.CostUSD.String(),
			"", "", "", "", "", d.Region, strconv.FormatInt(d.Bytes, 10), strconv.FormatInt(d.OutsideBytes, 10), ""); err != nil {
			return err
		}
	}
	for _, a := range r.AuthFailures {
		if err := row("auth_failures", "", "", "", "", "", strconv.FormatInt(a.Failures, 10), "",
			"", "", "", "", "", "", "", "", a.SourceAddress); err != nil {
			return err
		}
	}
	return nil
}
