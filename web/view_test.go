package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"image/png"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/internal/demodata"
	"github.com/aivis-dev/aivis/internal/testenv"
	"github.com/aivis-dev/aivis/web"
)

var update = flag.Bool("update", false, "rewrite the screenshots under docs/images")

// openAPIRouter loads and validates the served OpenAPI document.
func openAPIRouter(t *testing.T) (*openapi3.T, routers.Router) {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(web.OpenAPI())
	if err != nil {
		t.Fatalf("loading the OpenAPI document: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("the OpenAPI document is invalid: %v", err)
	}
	// Match paths whatever host the test server has.
	doc.Servers = nil
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return doc, router
}

// getValid calls path on srv, checks the status, validates the response
// against the OpenAPI document and decodes it into out.
func getValid(t *testing.T, router routers.Router, srv *httptest.Server, path string, status int, out any) {
	t.Helper()
	res, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != status {
		t.Fatalf("GET %s: status %d, want %d: %s", path, res.StatusCode, status, body)
	}
	req := httptest.NewRequest(http.MethodGet, "http://localhost"+path, nil)
	route, params, err := router.FindRoute(req)
	if err != nil {
		t.Fatalf("GET %s: not in the OpenAPI document: %v", path, err)
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route}
	if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil && status == http.StatusOK {
		t.Fatalf("GET %s: request does not match the document: %v", path, err)
	}
	rv := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: res.StatusCode, Header: res.Header,
		Body: io.NopCloser(bytes.NewReader(body)), Options: &openapi3filter.Options{IncludeResponseStatus: true}}
	if err := openapi3filter.ValidateResponse(context.Background(), rv); err != nil {
		t.Fatalf("GET %s: response does not match the OpenAPI document: %v\n%s", path, err, body)
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
	}
}

// TestWebViewOnPipelineData runs the whole pipeline on synthetic traffic
// (LLM requests with a staged spike, GPU usage, the example budgets) into
// ClickHouse, then checks every read-API endpoint against the OpenAPI
// document and against sums the test computes in ClickHouse, and renders
// the web view in headless Chromium: the numbers on the page must be
// ClickHouse's, exactly. With -update it rewrites the screenshots in
// docs/images.
func TestWebViewOnPipelineData(t *testing.T) {
	_, router := openAPIRouter(t)
	chromium := chromiumPath(t)
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	data := demodata.Fill(t, demodata.Options{Rate: 150, Duration: 10 * time.Second, TimeScale: 1080})
	store := data.Store
	ctx := context.Background()
	// A range around the data, fixed so that the page and the test read the
	// same rows.
	from, until := data.From, data.Until
	rng := fmt.Sprintf("from=%d&until=%d", from.Unix(), until.Unix())
	srv := httptest.NewServer(web.NewServer(store, slog.New(slog.NewTextHandler(io.Discard, nil))))
	defer srv.Close()

	sum := func(query string) decimal.Decimal {
		t.Helper()
		var d decimal.Decimal
		if err := store.QueryRow(ctx, query, from.Unix(), until.Unix()).Scan(&d); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		return d
	}
	byKey := func(query string) map[string]decimal.Decimal {
		t.Helper()
		rows, err := store.Query(ctx, query, from.Unix(), until.Unix())
		if err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		defer rows.Close()
		out := map[string]decimal.Decimal{}
		for rows.Next() {
			var k string
			var d decimal.Decimal
			if err := rows.Scan(&k, &d); err != nil {
				t.Fatal(err)
			}
			out[k] = d
		}
		return out
	}
	const windowRange = `window_start >= toDateTime(?) AND window_start < toDateTime(?)`
	total := sum(`SELECT sum(cost_usd) FROM cost_by_window WHERE ` + windowRange)
	teams := byKey(`SELECT team, sum(cost_usd) FROM cost_by_window WHERE ` + windowRange + ` GROUP BY team`)
	models := byKey(`SELECT concat(provider, '/', model), sum(cost_usd) FROM cost_by_window WHERE ` + windowRange + ` GROUP BY provider, model`)
	projects := byKey(`SELECT concat(team, '/', project), sum(cost_usd) FROM cost_by_window WHERE ` + windowRange + ` GROUP BY team, project`)
	gpuTeams := byKey(`SELECT team, sum(cost_usd) FROM usage_events_final WHERE kind = 'gpu.usage' AND time >= toDateTime(?) AND time < toDateTime(?) GROUP BY team`)
	llmEvents := sum(`SELECT sum(cost_usd) FROM usage_events_final WHERE kind = 'llm.request' AND time >= toDateTime(?) AND time < toDateTime(?)`)
	if total.Sign() <= 0 || len(teams) < 3 || len(models) < 3 || len(gpuTeams) < 2 {
		t.Fatalf("the pipeline left too little data: total %s, %d teams, %d models, %d GPU teams", total, len(teams), len(models), len(gpuTeams))
	}

	t.Run("api", func(t *testing.T) {
		var s struct {
			Totals struct {
				CostUSD decimal.Decimal `json:"cost_usd"`
			} `json:"totals"`
		}
		getValid(t, router, srv, "/api/v1/summary?"+rng, 200, &s)
		if !s.Totals.CostUSD.Equal(total) {
			t.Errorf("summary cost %s, ClickHouse %s", s.Totals.CostUSD, total)
		}
		type spend struct {
			Rows []struct {
				Key     string          `json:"key"`
				CostUSD decimal.Decimal `json:"cost_usd"`
			} `json:"rows"`
		}
		for by, want := range map[string]map[string]decimal.Decimal{"team": teams, "model": models, "project": projects} {
			var sp spend
			getValid(t, router, srv, "/api/v1/spend?by="+by+"&limit=1000&"+rng, 200, &sp)
			if len(sp.Rows) != len(want) {
				t.Errorf("spend by %s: %d rows, ClickHouse %d", by, len(sp.Rows), len(want))
			}
			for _, r := range sp.Rows {
				if !r.CostUSD.Equal(want[r.Key]) {
					t.Errorf("spend by %s, %s: %s, ClickHouse %s", by, r.Key, r.CostUSD, want[r.Key])
				}
			}
		}
		for by, want := range map[string]decimal.Decimal{"day": total, "user": llmEvents} {
			var sp spend
			getValid(t, router, srv, "/api/v1/spend?by="+by+"&limit=1000&"+rng, 200, &sp)
			got := decimal.Zero
			for _, r := range sp.Rows {
				got = got.Add(r.CostUSD)
			}
			if len(sp.Rows) == 0 || !got.Equal(want) {
				t.Errorf("spend by %s sums to %s over %d rows, ClickHouse %s", by, got, len(sp.Rows), want)
			}
		}
		var se struct {
			Series []struct {
				Key    string `json:"key"`
				Points []struct {
					CostUSD decimal.Decimal `json:"cost_usd"`
				} `json:"points"`
			} `json:"series"`
		}
		getValid(t, router, srv, "/api/v1/spend/series?by=team&limit=2&step=10m&"+rng, 200, &se)
		got := decimal.Zero
		for _, s := range se.Series {
			for _, pt := range s.Points {
				got = got.Add(pt.CostUSD)
			}
		}
		if len(se.Series) != 3 || se.Series[2].Key != web.OtherKey || !got.Equal(total) {
			t.Errorf("series: %d series (last %q), summing to %s; want 2 teams and other summing to %s", len(se.Series), se.Series[len(se.Series)-1].Key, got, total)
		}
		var g struct {
			Teams []struct {
				Team    string          `json:"team"`
				CostUSD decimal.Decimal `json:"cost_usd"`
			} `json:"teams"`
		}
		getValid(t, router, srv, "/api/v1/gpu?"+rng, 200, &g)
		for _, r := range g.Teams {
			if !r.CostUSD.Equal(gpuTeams[r.Team]) {
				t.Errorf("GPU cost of %s: %s, ClickHouse %s", r.Team, r.CostUSD, gpuTeams[r.Team])
			}
		}
		var b struct {
			Budgets []json.RawMessage `json:"budgets"`
		}
		getValid(t, router, srv, "/api/v1/budgets", 200, &b)
		if len(b.Budgets) == 0 {
			t.Error("no budgets: the evaluator wrote no status")
		}
		getValid(t, router, srv, "/api/v1/anomalies?"+rng, 200, nil)
		for _, bad := range []string{"/api/v1/spend?by=region", "/api/v1/summary?since=-1h", "/api/v1/summary?from=yesterday",
			"/api/v1/spend/series?step=30s", "/api/v1/gpu?limit=0", "/api/v1/summary?from=1700000000&until=1600000000"} {
			getValid(t, router, srv, bad, 400, nil)
		}
	})

	t.Run("spend metrics", func(t *testing.T) {
		// The aggregator's counters (floats, for Grafana) agree with the
		// exact sums to a millionth of a dollar; their labels are bounded.
		var cost float64
		teamLabels := map[string]bool{}
		for _, mf := range data.Metrics {
			if mf.GetName() != "aivis_spend_usd_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				cost += m.GetCounter().GetValue()
				for _, l := range m.GetLabel() {
					if l.GetName() == "team" {
						teamLabels[l.GetValue()] = true
					}
				}
			}
		}
		exact, _ := total.Float64()
		if math.Abs(cost-exact) > 1e-6 || len(teamLabels) != len(teams) {
			t.Errorf("aivis_spend_usd_total sums to %f over %d teams, ClickHouse %s over %d", cost, len(teamLabels), total, len(teams))
		}
	})

	t.Run("chromium", func(t *testing.T) {
		dom, shot := renderPage(t, chromium, srv.URL+"/?"+rng)
		checkCell := func(sel string, want decimal.Decimal) {
			t.Helper()
			got, ok := dom[sel]
			if !ok {
				t.Errorf("the page has no %s", sel)
				return
			}
			if d, err := decimal.NewFromString(got); err != nil || !d.Equal(want) {
				t.Errorf("%s shows %q, ClickHouse %s", sel, got, want)
			}
		}
		checkCell("#total-cost", total)
		if got, want := dom["#total-cost text"], usdHalfUp(total); got != want {
			t.Errorf("#total-cost text %q, want %q", got, want)
		}
		for _, list := range []struct {
			table string
			want  map[string]decimal.Decimal
			all   bool
		}{{"table-teams", teams, true}, {"table-models", models, false}, {"table-projects", projects, false}, {"table-gpu", gpuTeams, true}} {
			n := 0
			for sel := range dom {
				if key, ok := strings.CutPrefix(sel, "#"+list.table+" "); ok {
					checkCell(sel, list.want[key])
					n++
				}
			}
			if n == 0 || (list.all && n != min(len(list.want), 8)) {
				t.Errorf("%s shows %d rows, ClickHouse has %d", list.table, n, len(list.want))
			}
		}
		if dom["#status state"] != "ready" {
			t.Errorf("page status %q: %s", dom["#status state"], dom["#status text"])
		}
		img, err := png.Decode(bytes.NewReader(shot))
		if err != nil || img.Bounds().Dx() < 1000 {
			t.Fatalf("screenshot: %v, %v", err, img)
		}
		if *update {
			out := filepath.Join(root, "docs", "images", "web-view.png")
			if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(out, shot, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// usdHalfUp formats d as the page does: dollars, thousands separators,
// cents rounded half up.
func usdHalfUp(d decimal.Decimal) string {
	s := d.Round(2).StringFixed(2)
	whole, frac, _ := strings.Cut(s, ".")
	var b strings.Builder
	for i, c := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return "$" + b.String() + "." + frac
}

// chromiumPath finds the browser deploy/scripts/chromium.sh installs.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("AIVISDEV_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	testenv.RequireOrSkip(t, "Chromium", exec.ErrNotFound, "install it with `deploy/scripts/chromium.sh up` (make test does)")
	return ""
}

// renderPage opens u in headless Chromium, waits until the page has loaded
// every section, and returns the exact values it shows (selector → the
// data-usd of a cost cell, keyed by table and row) and a full-page
// screenshot.
func renderPage(t *testing.T, chromium, u string) (map[string]string, []byte) {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.WindowSize(1400, 1000),
		chromedp.Flag("disable-gpu", true), chromedp.Flag("font-render-hinting", "none"))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	cctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	cctx, cancel = context.WithTimeout(cctx, 90*time.Second)
	defer cancel()
	err := chromedp.Do(cctx, chromedp.Navigate(u),
		chromedp.WaitReady(chromedp.CSS(`#status[data-state="ready"], #status[data-state="error"]`)))
	if err != nil {
		t.Fatalf("rendering %s in Chromium: %v", u, err)
	}
	values, err := chromedp.Run(cctx, chromedp.Evaluate[map[string]string](`(() => {
  const out = {};
  const total = document.getElementById("total-cost");
  out["#total-cost"] = total.dataset.usd;
  out["#total-cost text"] = total.textContent;
  const st = document.getElementById("status");
  out["#status state"] = st.dataset.state;
  out["#status text"] = st.textContent;
  for (const td of document.querySelectorAll("table td.cost[data-key]")) {
    out["#" + td.closest("table").id + " " + td.dataset.key] = td.dataset.usd;
  }
  return out;
})()`))
	if err != nil {
		t.Fatalf("reading the page: %v", err)
	}
	shot, err := chromedp.Run(cctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("taking a screenshot: %v", err)
	}
	return values, shot
}
