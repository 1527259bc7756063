package web

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/budget"
	"github.com/aivis-dev/aivis/report"
)

// Querier runs a read-only query; *clickhouse.Store satisfies it.
type Querier interface {
	Query(ctx context.Context, query string, args ...any) (driver.Rows, error)
}

//go:embed openapi.json
var openAPI []byte

//go:embed static
var static embed.FS

// OpenAPI returns the API's OpenAPI 3 document.
func OpenAPI() []byte { return openAPI }

// Defaults of the query parameters.
const (
	defaultSince = 24 * time.Hour
	defaultLimit = 10
	maxLimit     = 1000
	// maxRange bounds a request's range, so that one call cannot scan
	// years of events.
	maxRange = 366 * 24 * time.Hour
)

// Server answers the read API and serves the page.
type Server struct {
	q   Querier
	log *slog.Logger
	now func() time.Time
	mux *http.ServeMux
}

// NewServer builds the handler over q.
func NewServer(q Querier, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	s := &Server{q: q, log: log, now: time.Now, mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /api/openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openAPI)
	})
	s.route("/api/v1/summary", s.summary)
	s.route("/api/v1/spend", s.spend)
	s.route("/api/v1/spend/series", s.series)
	s.route("/api/v1/anomalies", s.anomalies)
	s.route("/api/v1/budgets", s.budgets)
	s.route("/api/v1/gpu", s.gpu)
	sub, _ := fs.Sub(static, "static")
	s.mux.Handle("GET /", http.FileServerFS(sub))
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// route registers a JSON endpoint: h returns the body, or an error that is
// a *paramError (400) or a query failure (502: ClickHouse did not answer).
func (s *Server) route(path string, h func(*http.Request, window) (any, error)) {
	s.mux.HandleFunc("GET "+path, func(w http.ResponseWriter, r *http.Request) {
		win, err := s.window(r)
		var body any
		if err == nil {
			body, err = h(r, win)
		}
		var pe *paramError
		switch {
		case errors.As(err, &pe):
			writeJSON(w, http.StatusBadRequest, errorBody{Error: pe.Error()})
		case err != nil:
			s.log.Warn("read API query failed", "path", path, "err", err)
			writeJSON(w, http.StatusBadGateway, errorBody{Error: "reading ClickHouse: " + err.Error()})
		default:
			writeJSON(w, http.StatusOK, body)
		}
	})
}

type errorBody struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// paramError is a bad query parameter: the caller's to fix.
type paramError struct {
	name, value, want string
}

func (e *paramError) Error() string {
	return fmt.Sprintf("query parameter %s=%q: %s", e.name, e.value, e.want)
}

// window is a request's range and row limit.
type window struct {
	From  time.Time `json:"from"`
	Until time.Time `json:"until"`
	limit int
}

// window reads from/until (RFC 3339 or Unix seconds; until defaults to now,
// from to until minus since, since to 24h) and limit.
func (s *Server) window(r *http.Request) (window, error) {
	q := r.URL.Query()
	w := window{Until: s.now().UTC(), limit: defaultLimit}
	if v := q.Get("until"); v != "" {
		t, err := parseTime(v)
		if err != nil {
			return w, &paramError{"until", v, "want an RFC 3339 time (2026-11-28T00:00:00Z) or Unix seconds"}
		}
		w.Until = t
	}
	since := defaultSince
	if v := q.Get("since"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return w, &paramError{"since", v, "want a positive Go duration such as 1h or 168h"}
		}
		since = d
	}
	w.From = w.Until.Add(-since)
	if v := q.Get("from"); v != "" {
		t, err := parseTime(v)
		if err != nil {
			return w, &paramError{"from", v, "want an RFC 3339 time (2026-11-28T00:00:00Z) or Unix seconds"}
		}
		w.From = t
	}
	if !w.From.Before(w.Until) {
		return w, &paramError{"from", w.From.Format(time.RFC3339), "must be before until " + w.Until.Format(time.RFC3339)}
	}
	if w.Until.Sub(w.From) > maxRange {
		return w, &paramError{"from", w.From.Format(time.RFC3339), "the range may span at most 366 days"}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			return w, &paramError{"limit", v, "want a whole number from 1 to " + strconv.Itoa(maxLimit)}
		}
		w.limit = n
	}
	return w, nil
}

func parseTime(v string) (time.Time, error) {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.Unix(n, 0).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	return t.UTC(), err
}

type summaryBody struct {
	window
	// LatestWindow is null when the range holds no window.
	LatestWindow *time.Time    `json:"latest_window"`
	Totals       report.Totals `json:"totals"`
}

func (s *Server) summary(r *http.Request, w window) (any, error) {
	t, latest, err := report.TotalsIn(r.Context(), s.q, w.From, w.Until)
	if err != nil {
		return nil, err
	}
	b := summaryBody{window: w, Totals: t}
	if !latest.IsZero() {
		b.LatestWindow = &latest
	}
	return b, nil
}

// spendRow is one row of /api/v1/spend: Key names it for display and the
// dimension's own fields are set.
type spendRow struct {
	Key          string          `json:"key"`
	Team         string          `json:"team,omitempty"`
	Project      string          `json:"project,omitempty"`
	Provider     string          `json:"provider,omitempty"`
	Model        string          `json:"model,omitempty"`
	User         *string         `json:"user,omitempty"`
	Day          string          `json:"day,omitempty"`
	Requests     uint64          `json:"requests"`
	InputTokens  int64           `json:"input_tokens"`
	OutputTokens int64           `json:"output_tokens"`
	CostUSD      decimal.Decimal `json:"cost_usd"`
}

type spendBody struct {
	window
	By   string     `json:"by"`
	Rows []spendRow `json:"rows"`
}

func (s *Server) spend(r *http.Request, w window) (any, error) {
	ctx := r.Context()
	by := r.URL.Query().Get("by")
	b := spendBody{window: w, By: by, Rows: []spendRow{}}
	fromTotals := func(t report.Totals) spendRow {
		return spendRow{Requests: t.Requests, InputTokens: t.InputTokens, OutputTokens: t.OutputTokens, CostUSD: t.CostUSD}
	}
	switch by {
	case "team":
		rows, err := report.TopTeams(ctx, s.q, w.From, w.Until, w.limit)
		for _, o := range rows {
			row := fromTotals(o.Totals)
			row.Key, row.Team = o.Team, o.Team
			b.Rows = append(b.Rows, row)
		}
		return b, err
	case "project":
		rows, err := report.TopProjects(ctx, s.q, w.From, w.Until, w.limit)
		for _, o := range rows {
			row := fromTotals(o.Totals)
			row.Key, row.Team, row.Project = o.Team+"/"+o.Project, o.Team, o.Project
			b.Rows = append(b.Rows, row)
		}
		return b, err
	case "model":
		rows, err := report.TopModels(ctx, s.q, w.From, w.Until, w.limit)
		for _, m := range rows {
			row := fromTotals(m.Totals)
			row.Key, row.Provider, row.Model = m.Provider+"/"+m.Model, m.Provider, m.Model
			b.Rows = append(b.Rows, row)
		}
		return b, err
	case "user":
		rows, err := report.TopUsers(ctx, s.q, w.From, w.Until, w.limit)
		for _, u := range rows {
			user := u.User
			b.Rows = append(b.Rows, spendRow{Key: u.User, User: &user, Requests: u.Requests,
				InputTokens: u.InputTokens, OutputTokens: u.OutputTokens, CostUSD: u.CostUSD})
		}
		return b, err
	case "day":
		rows, err := report.Days(ctx, s.q, w.From, w.Until)
		for _, d := range rows {
			row := fromTotals(d.Totals)
			row.Key, row.Day = d.Day, d.Day
			b.Rows = append(b.Rows, row)
		}
		return b, err
	}
	return nil, &paramError{"by", by, "want team, project, model, user or day"}
}

// seriesBody is cost over time: one series per key, the keys beyond the
// limit summed into "other", every series with a point per step that has
// data.
type seriesBody struct {
	window
	By          string   `json:"by"`
	StepSeconds int64    `json:"step_seconds"`
	Series      []series `json:"series"`
}

type series struct {
	Key     string          `json:"key"`
	CostUSD decimal.Decimal `json:"cost_usd"`
	Points  []point         `json:"points"`
}

type point struct {
	Time     time.Time       `json:"time"`
	Requests uint64          `json:"requests"`
	CostUSD  decimal.Decimal `json:"cost_usd"`
}

// OtherKey is the series of the keys beyond the limit.
const OtherKey = "other"

func (s *Server) series(r *http.Request, w window) (any, error) {
	q := r.URL.Query()
	by := q.Get("by")
	if by != "" && by != "team" && by != "model" && by != "project" {
		return nil, &paramError{"by", by, "want team, model, project or nothing"}
	}
	step := int64(0)
	if v := q.Get("step"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Minute || d%time.Minute != 0 {
			return nil, &paramError{"step", v, "want whole minutes, at least 1m (e.g. 5m, 1h, 24h)"}
		}
		step = int64(d / time.Second)
	} else {
		// About 120 points over the range, in whole minutes.
		step = max(60, int64(w.Until.Sub(w.From)/time.Second)/120/60*60)
	}
	if int64(w.Until.Sub(w.From)/time.Second)/step > 5000 {
		return nil, &paramError{"step", q.Get("step"), "too small for the range: at most 5000 steps"}
	}
	pts, err := report.Series(r.Context(), s.q, w.From, w.Until, step, by)
	if err != nil {
		return nil, err
	}
	return seriesBody{window: w, By: by, StepSeconds: step, Series: topSeries(pts, w.limit)}, nil
}

// topSeries groups pts by key, keeps the limit keys of highest cost and sums
// the rest into OtherKey, per step.
func topSeries(pts []report.SeriesPoint, limit int) []series {
	byKey := map[string]*series{}
	var order []*series
	for _, p := range pts {
		sr := byKey[p.Key]
		if sr == nil {
			sr = &series{Key: p.Key}
			byKey[p.Key] = sr
			order = append(order, sr)
		}
		sr.CostUSD = sr.CostUSD.Add(p.CostUSD)
		sr.Points = append(sr.Points, point{Time: p.Time, Requests: p.Requests, CostUSD: p.CostUSD})
	}
	sortSeries(order)
	out := []series{}
	var other *series
	for i, sr := range order {
		if i < limit {
			out = append(out, *sr)
			continue
		}
		if other == nil {
			other = &series{Key: OtherKey}
		}
		other.CostUSD = other.CostUSD.Add(sr.CostUSD)
		other.Points = mergePoints(other.Points, sr.Points)
	}
	if other != nil {
		out = append(out, *other)
	}
	return out
}

func (s *Server) anomalies(r *http.Request, w window) (any, error) {
	rows, err := report.Anomalies(r.Context(), s.q, w.From, w.Until, w.limit)
	if rows == nil {
		rows = []report.AnomalyRow{}
	}
	return struct {
		window
		Anomalies []report.AnomalyRow `json:"anomalies"`
	}{w, rows}, err
}

// budgetRow is a budget's newest evaluation.
type budgetRow struct {
	Budget          string          `json:"budget"`
	Name            string          `json:"name"`
	Scope           string          `json:"scope"`
	Period          string          `json:"period"`
	PeriodStart     time.Time       `json:"period_start"`
	PeriodEnd       time.Time       `json:"period_end"`
	AmountUSD       decimal.Decimal `json:"amount_usd"`
	SpentUSD        decimal.Decimal `json:"spent_usd"`
	ForecastUSD     decimal.Decimal `json:"forecast_usd"`
	ForecastLowUSD  decimal.Decimal `json:"forecast_low_usd"`
	ForecastHighUSD decimal.Decimal `json:"forecast_high_usd"`
	ExhaustsAt      *time.Time      `json:"exhausts_at"`
	State           string          `json:"state"`
	EvaluatedAt     time.Time       `json:"evaluated_at"`
}

// budgets answers the newest status of every budget, whatever the range:
// a budget's period is its own.
func (s *Server) budgets(r *http.Request, _ window) (any, error) {
	rows, err := budget.LatestStatus(r.Context(), s.q)
	out := []budgetRow{}
	for _, b := range rows {
		row := budgetRow{Budget: b.BudgetID, Name: b.Name, Scope: b.Scope, Period: b.Period,
			PeriodStart: b.PeriodStart.UTC(), PeriodEnd: b.PeriodEnd.UTC(), AmountUSD: b.AmountUSD, SpentUSD: b.SpentUSD,
			ForecastUSD: b.ForecastUSD, ForecastLowUSD: b.ForecastLowUSD, ForecastHighUSD: b.ForecastHighUSD,
			State: b.State, EvaluatedAt: b.EvaluatedAt.UTC()}
		if !b.ExhaustsAt.IsZero() {
			t := b.ExhaustsAt.UTC()
			row.ExhaustsAt = &t
		}
		out = append(out, row)
	}
	return struct {
		Budgets []budgetRow `json:"budgets"`
	}{out}, err
}

func (s *Server) gpu(r *http.Request, w window) (any, error) {
	rows, err := report.GPUTeams(r.Context(), s.q, w.From, w.Until, w.limit)
	if rows == nil {
		rows = []report.GPURow{}
	}
	return struct {
		window
		Teams []report.GPURow `json:"teams"`
	}{w, rows}, err
}
