package web

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/report"
)

func TestOpenAPIDocumentIsValid(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPI())
	if err != nil {
		t.Fatalf("loading the OpenAPI document: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("the OpenAPI document is invalid: %v", err)
	}
	// Every JSON route the server answers is documented.
	for _, path := range []string{"/api/v1/summary", "/api/v1/spend", "/api/v1/spend/series", "/api/v1/anomalies", "/api/v1/budgets", "/api/v1/gpu"} {
		if doc.Paths.Find(path) == nil {
			t.Errorf("%s is served but not in the OpenAPI document", path)
		}
	}
}

// failingQuerier stands in for an unreachable ClickHouse.
type failingQuerier struct{}

func (failingQuerier) Query(context.Context, string, ...any) (driver.Rows, error) {
	return nil, errors.New("dial tcp 127.0.0.1:9000: connection refused")
}

func TestParametersAndFailures(t *testing.T) {
	s := NewServer(failingQuerier{}, nil)
	s.now = func() time.Time { return time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC) }
	for _, c := range []struct {
		path   string
		status int
		want   string
	}{
		{"/api/v1/spend?by=region", 400, "want team, project, model, user or day"},
		{"/api/v1/summary?since=-1h", 400, "positive Go duration"},
		{"/api/v1/summary?from=yesterday", 400, "RFC 3339"},
		{"/api/v1/summary?from=2026-11-29T00:00:00Z", 400, "must be before until"},
		{"/api/v1/summary?since=9000h", 400, "366 days"},
		{"/api/v1/gpu?limit=0", 400, "from 1 to 1000"},
		{"/api/v1/spend/series?step=90s", 400, "whole minutes"},
		{"/api/v1/spend/series?step=1m&since=720h", 400, "at most 5000 steps"},
		{"/api/v1/summary", 502, "connection refused"},
		{"/api/v1/spend?by=team&since=1h", 502, "querying top teams"},
	} {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, c.path, nil))
		var body errorBody
		_ = json.Unmarshal(rec.Body.Bytes(), &body)
		if rec.Code != c.status || !strings.Contains(body.Error, c.want) {
			t.Errorf("GET %s: %d %q; want %d containing %q", c.path, rec.Code, body.Error, c.status, c.want)
		}
	}
	for path, want := range map[string]string{"/": "<canvas id=\"chart-series\">", "/vendor/chart.umd.min.js": "Chart.js", "/api/openapi.json": `"openapi": "3.0.3"`} {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != 200 || !strings.Contains(rec.Body.String(), want) {
			t.Errorf("GET %s: %d, body without %q", path, rec.Code, want)
		}
	}
}

func TestTopSeriesSumsTheRestIntoOther(t *testing.T) {
	at := func(m int) time.Time { return time.Date(2026, 11, 28, 12, m, 0, 0, time.UTC) }
	d := decimal.RequireFromString
	pts := []report.SeriesPoint{
		{Time: at(0), Key: "a", Requests: 1, CostUSD: d("1.000000000001")},
		{Time: at(0), Key: "b", Requests: 1, CostUSD: d("5")},
		{Time: at(0), Key: "c", Requests: 2, CostUSD: d("0.1")},
		{Time: at(5), Key: "c", Requests: 1, CostUSD: d("0.2")},
		{Time: at(5), Key: "d", Requests: 1, CostUSD: d("0.3")},
		{Time: at(10), Key: "a", Requests: 1, CostUSD: d("1")},
	}
	got := topSeries(pts, 2)
	if len(got) != 3 || got[0].Key != "b" || got[1].Key != "a" || got[2].Key != OtherKey {
		t.Fatalf("series %+v", got)
	}
	other := got[2]
	if !other.CostUSD.Equal(d("0.6")) || len(other.Points) != 2 || !other.Points[1].CostUSD.Equal(d("0.5")) || other.Points[1].Requests != 2 {
		t.Errorf("other %+v", other)
	}
	if !got[1].CostUSD.Equal(d("2.000000000001")) {
		t.Errorf("a sums to %s", got[1].CostUSD)
	}
}
