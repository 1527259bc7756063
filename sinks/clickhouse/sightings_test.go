package clickhouse

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/aivis-dev/aivis/internal/testenv"
	"github.com/aivis-dev/aivis/schemas"
)

// api_key_sightings holds, per day, key, source and region, the first and
// last use that a scan of usage_events finds: fed by the materialized view
// on insert (a replayed insert changes nothing), and equally by migration
// 85's backfill over events stored before it.
func TestKeySightings(t *testing.T) {
	s := openTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	evs := sightingEvents()
	if err := s.Write(ctx, evs, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, evs[:3], nil); err != nil { // a replay
		t.Fatal(err)
	}

	scan := func(query string) []string { t.Helper(); return scanSightings(t, ctx, s, query) }
	direct := scan(`SELECT toString(date), api_key_id, source, provider_region, toString(min(time), 'UTC'), toString(max(time), 'UTC')
FROM ` + TableEvents + ` FINAL WHERE kind = 'llm.request' AND api_key_id != ''
GROUP BY date, api_key_id, source, provider_region ORDER BY date, api_key_id, source, provider_region`)
	summary, want := sightingsQuery, sightingsWant
	if !slices.Equal(direct, want) {
		t.Fatalf("usage_events scan:\n  %s\nwant\n  %s", strings.Join(direct, "\n  "), strings.Join(want, "\n  "))
	}
	if got := scan(summary); !slices.Equal(got, want) {
		t.Errorf("the view's %s:\n  %s\nwant\n  %s", TableKeySightings, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}

	// The backfill, as on a database whose events predate migration 85.
	if err := s.conn.Exec(ctx, "TRUNCATE TABLE "+TableKeySightings); err != nil {
		t.Fatal(err)
	}
	if got := scan(summary); len(got) != 0 {
		t.Fatalf("after TRUNCATE: %v", got)
	}
	ms, err := Migrations(CapabilitiesFor(s.version))
	if err != nil {
		t.Fatal(err)
	}
	var backfill string
	for _, m := range ms {
		for _, stmt := range m.Statements {
			if m.Version == 85 && strings.HasPrefix(stmt, "INSERT INTO ") {
				backfill = stmt
			}
		}
	}
	if backfill == "" {
		t.Fatal("migration 85 has no backfill")
	}
	for range 2 { // a migration run again after a failure
		if err := s.conn.Exec(ctx, backfill); err != nil {
			t.Fatal(err)
		}
	}
	if got := scan(summary); !slices.Equal(got, want) {
		t.Errorf("the backfill's %s:\n  %s\nwant\n  %s", TableKeySightings, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// sightingEvents are requests of keys at several places and days, one
// without a key and one gpu.usage event; sightingsWant is their
// api_key_sightings as sightingsQuery reads it.
func sightingEvents() []schemas.StoredEvent {
	var evs []schemas.StoredEvent
	add := func(at time.Time, key, source, region string, kind string) {
		e := &schemas.Enriched{Event: *testenv.LLMEvent("openai", "gpt-4o", testenv.Usage(10, 0, 0, 1, 0))}
		e.EventID = fmt.Sprintf("01JSIGHT%018d", len(evs)+1)
		e.Time, e.APIKeyID, e.Source, e.ProviderRegion = at, key, source, region
		if kind != "" {
			e.Kind = kind
		}
		e.Owner = schemas.Owner{Team: "t"}
		evs = append(evs, schemas.StoredEvent{Event: e, Offset: int64(len(evs) + 1)})
	}
	day := base.Truncate(24 * time.Hour)
	add(day.Add(-26*time.Hour), "k1", "gw-1", "us-east-1", "")
	add(day.Add(-25*time.Hour), "k1", "gw-1", "us-east-1", "")
	add(day.Add(time.Hour), "k1", "gw-1", "us-east-1", "")
	add(day.Add(2*time.Hour), "k1", "gw-2", "us-east-1", "")
	add(day.Add(3*time.Hour), "k1", "gw-2", "eu-west-1", "")
	add(day.Add(4*time.Hour), "k2", "", "", "")
	add(day.Add(5*time.Hour), "", "gw-1", "us-east-1", "")             // no key: not summarized
	add(day.Add(6*time.Hour), "k3", "probe", "", schemas.KindGPUUsage) // not a request
	add(day.Add(7*time.Hour), "k2", "gw-3", "ap-south-1", schemas.KindLLMRequest)
	return evs
}

const sightingsQuery = `SELECT toString(date), api_key_id, source, provider_region, toString(minMerge(first_seen), 'UTC'), toString(maxMerge(last_seen), 'UTC')
FROM ` + TableKeySightings + `
GROUP BY date, api_key_id, source, provider_region ORDER BY date, api_key_id, source, provider_region`

var sightingsWant = []string{
	"2025-01-29 k1 gw-1 us-east-1 2025-01-29 22:00:00 2025-01-29 23:00:00",
	"2025-01-31 k1 gw-1 us-east-1 2025-01-31 01:00:00 2025-01-31 01:00:00",
	"2025-01-31 k1 gw-2 eu-west-1 2025-01-31 03:00:00 2025-01-31 03:00:00",
	"2025-01-31 k1 gw-2 us-east-1 2025-01-31 02:00:00 2025-01-31 02:00:00",
	"2025-01-31 k2   2025-01-31 04:00:00 2025-01-31 04:00:00",
	"2025-01-31 k2 gw-3 ap-south-1 2025-01-31 07:00:00 2025-01-31 07:00:00",
}

// scanSightings runs a query of six string columns and returns its rows
// joined by spaces.
func scanSightings(t *testing.T, ctx context.Context, conn interface {
	Query(ctx context.Context, query string, args ...any) (driver.Rows, error)
}, query string) []string {
	t.Helper()
	rows, err := conn.Query(ctx, query)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var d, key, src, region, first, last string
		if err := rows.Scan(&d, &key, &src, &region, &first, &last); err != nil {
			t.Fatal(err)
		}
		out = append(out, strings.Join([]string{d, key, src, region, first, last}, " "))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
