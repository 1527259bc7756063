package report

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/sinks/clickhouse"
)

// The queries below are the report's sections one by one, for readers that
// need a single section (the read API of package web): the numbers are the
// report's, from the same SQL. from and until bound window_start, [from,
// until); limit caps the rows (at least 1).

// TotalsIn sums the range and returns the start of its newest window (zero
// when the range holds none).
func TotalsIn(ctx context.Context, q Querier, from, until time.Time) (Totals, time.Time, error) {
	var t Totals
	var latest time.Time
	err := each(ctx, q, "totals", `SELECT `+totalsSQL+`, max(window_start) FROM `+clickhouse.ViewWindows+` WHERE `+inRange,
		[]any{from.Unix(), until.Unix()}, func(scan func(...any) error) error {
			return scan(append(totalsDest(&t), &latest)...)
		})
	if err != nil || t.Requests == 0 {
		return t, time.Time{}, err
	}
	return t, latest.UTC(), nil
}

// TopModels is the models by cost, with their latency quantiles.
func TopModels(ctx context.Context, q Querier, from, until time.Time, limit int) ([]ModelRow, error) {
	rows, err := topModels(ctx, q, from.Unix(), until.Unix(), limitSQL(limit))
	if err != nil {
		return nil, err
	}
	return rows, latencies(ctx, q, from.Unix(), until.Unix(), rows)
}

// TopTeams is the teams by cost.
func TopTeams(ctx context.Context, q Querier, from, until time.Time, limit int) ([]OwnerRow, error) {
	return topTeams(ctx, q, from.Unix(), until.Unix(), limitSQL(limit))
}

// TopProjects is the (team, project) pairs by cost.
func TopProjects(ctx context.Context, q Querier, from, until time.Time, limit int) ([]OwnerRow, error) {
	return topProjects(ctx, q, from.Unix(), until.Unix(), limitSQL(limit))
}

// Anomalies is the anomalous (team, model) windows, newest first.
func Anomalies(ctx context.Context, q Querier, from, until time.Time, limit int) ([]AnomalyRow, error) {
	return anomalies(ctx, q, from.Unix(), until.Unix(), limitSQL(limit))
}

// GPUTeams is GPU time and cost by team.
func GPUTeams(ctx context.Context, q Querier, from, until time.Time, limit int) ([]GPURow, error) {
	return gpuTeams(ctx, q, from.Unix(), until.Unix(), limitSQL(limit))
}

// UserRow is one caller's usage. User is the event label "user" when the
// producer set one, else the hashed API key (api_key_id), else empty.
type UserRow struct {
	User         string          `json:"user"`
	Requests     uint64          `json:"requests"`
	InputTokens  int64           `json:"input_tokens"`
	OutputTokens int64           `json:"output_tokens"`
	CostUSD      decimal.Decimal `json:"cost_usd"`
}

// userSQL is the user of an event of usage_events.
const userSQL = `if(visitParamExtractString(labels, 'user') != '', visitParamExtractString(labels, 'user'), api_key_id)`

// TopUsers is the users by cost, from the events (windows carry no user);
// GPU events, which have no caller, are left out.
func TopUsers(ctx context.Context, q Querier, from, until time.Time, limit int) ([]UserRow, error) {
	var out []UserRow
	err := each(ctx, q, "spend by user", `SELECT `+userSQL+` AS user, count(), sum(input_tokens), sum(output_tokens), sum(cost_usd)
FROM `+clickhouse.TableEvents+` FINAL
WHERE kind = 'llm.request' AND time >= toDateTime(?) AND time < toDateTime(?)
GROUP BY user ORDER BY sum(cost_usd) DESC, count() DESC, user`+limitSQL(limit),
		[]any{from.Unix(), until.Unix()}, func(scan func(...any) error) error {
			var u UserRow
			if err := scan(&u.User, &u.Requests, &u.InputTokens, &u.OutputTokens, &u.CostUSD); err != nil {
				return err
			}
			out = append(out, u)
			return nil
		})
	return out, err
}

// DayRow is one UTC day's usage.
type DayRow struct {
	Day string `json:"day"`
	Totals
}

// Days is the usage per UTC day of the range, oldest first.
func Days(ctx context.Context, q Querier, from, until time.Time) ([]DayRow, error) {
	var out []DayRow
	err := each(ctx, q, "spend by day", `SELECT toString(toDate(window_start)) AS day, `+totalsSQL+` FROM `+clickhouse.ViewWindows+`
WHERE `+inRange+` GROUP BY day ORDER BY day`,
		[]any{from.Unix(), until.Unix()}, func(scan func(...any) error) error {
			var d DayRow
			if err := scan(append([]any{&d.Day}, totalsDest(&d.Totals)...)...); err != nil {
				return err
			}
			out = append(out, d)
			return nil
		})
	return out, err
}

// SeriesPoint is the cost of one key (team, model or project) in one step
// of a time series.
type SeriesPoint struct {
	Time     time.Time       `json:"time"`
	Key      string          `json:"key"`
	Requests uint64          `json:"requests"`
	CostUSD  decimal.Decimal `json:"cost_usd"`
}

// seriesKeys are the dimensions a series can be split by.
var seriesKeys = map[string]string{"team": "team", "model": "model", "project": "concat(team, '/', project)", "": "''"}

// Series is the cost per step (seconds, at least 60) and key ("team",
// "model", "project" or "" for none), oldest first. Steps start at
// multiples of step since the Unix epoch.
func Series(ctx context.Context, q Querier, from, until time.Time, step int64, by string) ([]SeriesPoint, error) {
	key, ok := seriesKeys[by]
	if !ok || step < 60 {
		return nil, errBadSeries
	}
	s := strconv.FormatInt(step, 10)
	var out []SeriesPoint
	err := each(ctx, q, "cost over time", `SELECT toDateTime(intDiv(toUInt32(window_start), `+s+`) * `+s+`) AS t, `+key+` AS k, sum(requests), sum(cost_usd)
FROM `+clickhouse.ViewWindows+` WHERE `+inRange+` GROUP BY t, k ORDER BY t, k`,
		[]any{from.Unix(), until.Unix()}, func(scan func(...any) error) error {
			var p SeriesPoint
			if err := scan(&p.Time, &p.Key, &p.Requests, &p.CostUSD); err != nil {
				return err
			}
			p.Time = p.Time.UTC()
			out = append(out, p)
			return nil
		})
	return out, err
}

var errBadSeries = errors.New("series: step must be at least 60 seconds and by one of team, model, project or empty")

func limitSQL(limit int) string { return " LIMIT " + strconv.Itoa(max(limit, 1)) }

func topModels(ctx context.Context, q Querier, from, until int64, limit string) ([]ModelRow, error) {
	var out []ModelRow
	err := each(ctx, q, "top models", `SELECT provider, model, `+totalsSQL+` FROM `+clickhouse.ViewWindows+`
WHERE `+inRange+` GROUP BY provider, model
ORDER BY sum(cost_usd) DESC, sum(requests) DESC, provider, model`+limit,
		[]any{from, until}, func(scan func(...any) error) error {
			var m ModelRow
			if err := scan(append([]any{&m.Provider, &m.Model}, totalsDest(&m.Totals)...)...); err != nil {
				return err
			}
			out = append(out, m)
			return nil
		})
	return out, err
}

func topTeams(ctx context.Context, q Querier, from, until int64, limit string) ([]OwnerRow, error) {
	var out []OwnerRow
	err := each(ctx, q, "top teams", `SELECT team, `+totalsSQL+` FROM `+clickhouse.ViewWindows+`
WHERE `+inRange+` GROUP BY team ORDER BY sum(cost_usd) DESC, sum(requests) DESC, team`+limit,
		[]any{from, until}, func(scan func(...any) error) error {
			var o OwnerRow
			if err := scan(append([]any{&o.Team}, totalsDest(&o.Totals)...)...); err != nil {
				return err
			}
			out = append(out, o)
			return nil
		})
	return out, err
}

func topProjects(ctx context.Context, q Querier, from, until int64, limit string) ([]OwnerRow, error) {
	var out []OwnerRow
	err := each(ctx, q, "top projects", `SELECT team, project, `+totalsSQL+` FROM `+clickhouse.ViewWindows+`
WHERE `+inRange+` GROUP BY team, project ORDER BY sum(cost_usd) DESC, sum(requests) DESC, team, project`+limit,
		[]any{from, until}, func(scan func(...any) error) error {
			var o OwnerRow
			if err := scan(append([]any{&o.Team, &o.Project}, totalsDest(&o.Totals)...)...); err != nil {
				return err
			}
			out = append(out, o)
			return nil
		})
	return out, err
}

func anomalies(ctx context.Context, q Querier, from, until int64, limit string) ([]AnomalyRow, error) {
	var out []AnomalyRow
	err := each(ctx, q, "anomalies", `SELECT window_start, team, model, cost_usd, baseline_usd, z_score
FROM cost_anomalies_final WHERE is_anomaly = 1 AND `+inRange+`
ORDER BY window_start DESC, z_score DESC, team, model`+limit,
		[]any{from, until}, func(scan func(...any) error) error {
			var a AnomalyRow
			if err := scan(&a.WindowStart, &a.Team, &a.Model, &a.CostUSD, &a.BaselineUSD, &a.ZScore); err != nil {
				return err
			}
			a.WindowStart = a.WindowStart.UTC()
			out = append(out, a)
			return nil
		})
	return out, err
}
