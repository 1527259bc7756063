package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/internal/testenv"
	"github.com/aivis-dev/aivis/schemas"
)

func openTest(t testing.TB) *Store {
	t.Helper()
	addr, db := testenv.ClickHouseDatabase(t)
	cfg := DefaultConfig()
	cfg.Addr, cfg.Database = addr, db
	cfg.RetryBackoff = 10 * time.Millisecond
	ctx := context.Background()
	s, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return s
}

var base = time.Date(2025, 1, 31, 23, 58, 0, 0, time.UTC)

// testEvents returns n events over two minutes on partition 0.
func testEvents(n int) []schemas.StoredEvent {
	out := make([]schemas.StoredEvent, n)
	for i := range out {
		e := &schemas.Enriched{
			Event: schemas.Event{
				SchemaVersion: schemas.SchemaVersion,
				EventID:       fmt.Sprintf("01J000000000000000000%05d", i),
				Time:          base.Add(time.Duration(i%120) * time.Second),
				Kind:          schemas.KindLLMRequest,
				Source:        "test",
				Provider:      "openai",
				Model:         "gpt-4o",
				Status:        schemas.StatusOK,
				LatencyMs:     schemas.Int64(int64(100 + i)),
				Labels:        map[string]string{"env": "test", "app": "bench"},
				Usage: &schemas.Usage{
					InputTokens:  schemas.Int64(1000),
					OutputTokens: schemas.Int64(200),
				},
				RawUsage: []byte(`{"prompt_tokens":1000,"completion_tokens":200}`),
			},
			Owner:      schemas.Owner{Team: "search", Project: "ranker", Rule: "default"},
			Pricing:    schemas.Pricing{CatalogVersion: "2025-01-01", PriceID: "openai/gpt-4o"},
			CostPicos:  37_500,
			CostSource: schemas.CostSourceCatalog,
		}
		out[i] = schemas.StoredEvent{Event: e, Partition: 0, Offset: int64(i)}
	}
	return out
}

func testRows() []schemas.WindowRow {
	row := func(start time.Time, part int32, through int64, req uint64, picos int64) schemas.WindowRow {
		h := make([]uint64, schemas.LatencyBuckets)
		h[27] = req
		return schemas.WindowRow{
			WindowStart: start, WindowSeconds: 60,
			Provider: "openai", Model: "gpt-4o", Team: "search", Project: "ranker",
			SrcPartition: part, ThroughOffset: through,
			Requests: req, InputTokens: int64(req) * 1000, OutputTokens: int64(req) * 200,
			CostPicos: schemas.PicosOf(picos), LatencyCount: req, LatencySumMs: int64(req) * 150, LatencyHist: h,
		}
	}
	jan, feb := base, base.Add(2*time.Minute) // window 2 is in February
	return []schemas.WindowRow{
		row(jan, 0, 9, 10, 375_000),
		row(jan, 1, 4, 5, 187_500),
		row(jan.Add(time.Minute), 0, 19, 10, 375_000),
		row(feb, 0, 29, 10, 375_000),
		// A later partial of the same window and partition: through_offset grows.
		row(feb, 0, 31, 2, 75_000),
	}
}

func TestMigrateIsIdempotent(t *testing.T) {
	addr, db := testenv.ClickHouseDatabase(t)
	cfg := DefaultConfig()
	cfg.Addr, cfg.Database = addr, db
	ctx := context.Background()
	s, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	if s.ServerVersion() == "" {
		t.Error("ServerVersion is empty")
	}
	applied, err := s.Migrate(ctx)
	if err != nil {
		t.Fatalf("first Migrate: %v", err)
	}
	if want := []int{1, 2, 3, 4, 5, 6, 7, 20, 30, 40, 41, 42, 50, 51, 52, 60, 61, 85, 90, 91, 100}; !slices.Equal(applied, want) {
		t.Errorf("first Migrate applied %v, want %v", applied, want)
	}
	applied, err = s.Migrate(ctx)
	if err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	if len(applied) != 0 {
		t.Errorf("second Migrate applied %v, want nothing", applied)
	}

	rows, err := s.Query(ctx, "SELECT name FROM system.tables WHERE database = ? ORDER BY name", db)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	for _, want := range []string{TableMigrations, TableEvents, TableWindows,
		TableAnomalies, ViewEvents, ViewWindows, "cost_anomalies_final"} {
		if !slices.Contains(tables, want) {
			t.Errorf("table %s missing; have %v", want, tables)
		}
	}
}

func TestWriteReplayCountsOnce(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	events, rows := testEvents(40), testRows()
	for i := range 2 { // the second write is a replay
		if err := s.Write(ctx, events, rows); err != nil {
			t.Fatalf("Write #%d: %v", i+1, err)
		}
	}

	var requests uint64
	var cost decimal.Decimal
	var windows uint64
	if err := s.conn.QueryRow(ctx, "SELECT sum(requests), sum(cost_usd), count() FROM "+ViewWindows).
		Scan(&requests, &cost, &windows); err != nil {
		t.Fatal(err)
	}
	if requests != 37 || windows != 3 {
		t.Errorf("cost_by_window: %d requests in %d windows, want 37 in 3", requests, windows)
	}
	if want := decimal.New(37*37_500, -12); !cost.Equal(want) {
		t.Errorf("cost_by_window cost = %s, want %s", cost, want)
	}

	var n uint64
	if err := s.conn.QueryRow(ctx, "SELECT count() FROM "+ViewEvents).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 40 {
		t.Errorf("usage_events_final has %d events, want 40", n)
	}

	var p50, p95 float64
	if err := s.conn.QueryRow(ctx, "SELECT latency_p50_ms, latency_p95_ms FROM "+ViewWindows+" WHERE window_start = ?", base).
		Scan(&p50, &p95); err != nil {
		t.Fatal(err)
	}
	if p50 < 90 || p50 > 120 || p95 != p50 {
		t.Errorf("latency p50/p95 = %v/%v, want both about 2^(26.5/4) = 98.7", p50, p95)
	}
}

func TestWriteColumns(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	ev := testEvents(1)
	ev[0].Event.Usage.CacheReadInputTokens = nil
	ev[0].Event.LatencyMs = nil
	ev[0].Event.Flags.Unpriced = true
	ev[0].Partition, ev[0].Offset = 7, 12345
	if err := s.Write(ctx, ev, nil); err != nil {
		t.Fatal(err)
	}
	var (
		cost                   decimal.Decimal
		costText, labels, raw  string
		date, tm               time.Time
		latency, cacheRead, in int64
		unpriced               uint8
		part                   uint32
		off                    int64
		rating                 uint64
	)
	err := s.conn.QueryRow(ctx, `SELECT cost_usd, toString(cost_usd), labels, raw_usage, date, time, latency_ms,
		cache_read_input_tokens, input_tokens, unpriced, src_partition, src_offset, rating_version FROM `+ViewEvents).
		Scan(&cost, &costText, &labels, &raw, &date, &tm, &latency, &cacheRead, &in, &unpriced, &part, &off, &rating)
	if err != nil {
		t.Fatal(err)
	}
	if want := decimal.RequireFromString("0.0000000375"); !cost.Equal(want) {
		t.Errorf("cost_usd = %s, want %s", cost, want)
	}
	if costText != "0.000000037500" {
		t.Errorf("toString(cost_usd) = %q, want 0.000000037500", costText)
	}
	if labels != `{"app":"bench","env":"test"}` {
		t.Errorf("labels = %s", labels)
	}
	if raw != `{"prompt_tokens":1000,"completion_tokens":200}` {
		t.Errorf("raw_usage = %s", raw)
	}
	if !tm.Equal(base) || date.Format("2006-01-02") != "2025-01-31" {
		t.Errorf("time, date = %s, %s", tm, date)
	}
	if latency != 0 || cacheRead != 0 || in != 1000 || unpriced != 1 || part != 7 || off != 12345 || rating != 0 {
		t.Errorf("latency=%d cache_read=%d input=%d unpriced=%d partition=%d offset=%d rating=%d",
			latency, cacheRead, in, unpriced, part, off, rating)
	}
}

func TestEmitted(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	if err := s.Write(ctx, nil, testRows()); err != nil {
		t.Fatal(err)
	}
	got, err := s.Emitted(ctx, 0, base)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int64]int64{
		base.Unix():                      9,
		base.Add(time.Minute).Unix():     19,
		base.Add(2 * time.Minute).Unix(): 31,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Emitted(0) = %v, want %v", got, want)
	}
	got, err = s.Emitted(ctx, 1, base.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Errorf("Emitted(1, since second window) = %v, want empty", got)
	}
	got, err = s.Emitted(ctx, 1, base)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(map[int64]int64{base.Unix(): 4}) {
		t.Errorf("Emitted(1) = %v", got)
	}
}

func TestWriteGivesUpAfterRetries(t *testing.T) {
	// Nothing listens on port 1: every attempt fails to connect.
	conn, err := ch.Open(&ch.Options{Addr: []string{"127.0.0.1:1"}, DialTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Addr, cfg.MaxRetries, cfg.RetryBackoff = "127.0.0.1:1", 2, time.Millisecond
	reg := prometheus.NewRegistry()
	s := &Store{conn: conn, cfg: cfg, log: discardLogger(), metrics: newMetrics(reg)}
	defer s.Close()

	before := counterValue(t, reg, "aivis_sink_retries_total", TableWindows)
	err = s.Write(context.Background(), nil, testRows()[:1])
	if err == nil || !strings.Contains(err.Error(), "after 3 attempt(s)") {
		t.Fatalf("Write = %v, want an error after 3 attempts", err)
	}
	if got := counterValue(t, reg, "aivis_sink_retries_total", TableWindows) - before; got != 2 {
		t.Errorf("retries metric grew by %v, want 2", got)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s.cfg.MaxRetries = 100
	if err := s.Write(ctx, nil, testRows()[:1]); !errors.Is(err, context.Canceled) {
		t.Errorf("Write with a cancelled context = %v, want context.Canceled", err)
	}
}

func TestWriteRejectsNilEvent(t *testing.T) {
	s := &Store{cfg: DefaultConfig(), log: discardLogger()}
	err := s.Write(context.Background(), []schemas.StoredEvent{{Partition: 3, Offset: 9}}, nil)
	if err == nil || !strings.Contains(err.Error(), "offset 9") {
		t.Errorf("Write(nil event) = %v", err)
	}
}

func TestWindowInserts(t *testing.T) {
	mar := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	jan := time.Date(2025, 1, 31, 23, 59, 0, 0, time.UTC)
	rows := []schemas.WindowRow{{WindowStart: mar}, {WindowStart: jan}, {WindowStart: mar, Model: "b"}}
	got := windowInserts(rows)
	if len(got) != 2 || len(got[0]) != 1 || got[0][0] != 1 || len(got[1]) != 2 || got[1][0] != 0 || got[1][1] != 2 {
		t.Errorf("windowInserts = %v, want [[1] [0 2]]", got)
	}

	// Many keys: windows stay whole, inserts stay near the bound.
	var many []schemas.WindowRow
	perWindow := maxWindowRowsPerInsert/2 + 1
	for w := 0; w < 3; w++ {
		for k := 0; k < perWindow; k++ {
			many = append(many, schemas.WindowRow{WindowStart: mar.Add(time.Duration(w) * time.Minute), Team: fmt.Sprint(k)})
		}
	}
	big := make([]schemas.WindowRow, maxWindowRowsPerInsert+5)
	for i := range big {
		big[i].WindowStart = mar.Add(time.Hour)
	}
	many = append(many, big...)
	got = windowInserts(many)
	if len(got) != 4 {
		t.Fatalf("windowInserts of 3 windows of %d rows and one of %d: %d inserts, want 4", perWindow, len(big), len(got))
	}
	seen := 0
	for i, ins := range got {
		start := many[ins[0]].WindowStart
		for _, at := range ins {
			if !many[at].WindowStart.Equal(start) {
				t.Errorf("insert %d mixes window %s and %s", i, start, many[at].WindowStart)
			}
		}
		seen += len(ins)
	}
	if seen != len(many) || len(got[3]) != len(big) {
		t.Errorf("inserts hold %d rows (last %d), want %d (last %d)", seen, len(got[3]), len(many), len(big))
	}

	// One window_start over many keys of three partitions: each
	// partition's rows stay whole, but they need not share an INSERT.
	var parts []schemas.WindowRow
	for k := range 3 * perWindow {
		parts = append(parts, schemas.WindowRow{WindowStart: mar, SrcPartition: int32(k % 3), Team: fmt.Sprint(k)})
	}
	got = windowInserts(parts)
	if len(got) != 3 {
		t.Fatalf("windowInserts of one window of 3 partitions x %d rows: %d inserts, want 3", perWindow, len(got))
	}
	for i, ins := range got {
		p := parts[ins[0]].SrcPartition
		for _, at := range ins {
			if parts[at].SrcPartition != p {
				t.Errorf("insert %d mixes partitions %d and %d", i, p, parts[at].SrcPartition)
			}
		}
		if len(ins) != perWindow {
			t.Errorf("insert %d holds %d rows of partition %d, want all %d", i, len(ins), p, perWindow)
		}
	}
}

func TestBackoff(t *testing.T) {
	for attempt, max := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 50: maxBackoff} {
		for range 20 {
			if d := backoff(100*time.Millisecond, attempt); d < max/2 || d > max {
				t.Errorf("backoff(attempt %d) = %s, want within [%s, %s]", attempt, d, max/2, max)
			}
		}
	}
}

func TestValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("default config: %v", err)
	}
	bad := Config{Addr: "localhost", Database: "a-b", MaxRetries: -1, Cluster: "my-cluster", InsertQuorum: -1}
	err := bad.Validate()
	for _, key := range []string{"clickhouse.addr", "clickhouse.database", "clickhouse.dial_timeout", "clickhouse.max_retries", "clickhouse.retry_backoff", "clickhouse.cluster", "clickhouse.insert_quorum"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("Validate() = %v, want a problem at %s", err, key)
		}
	}
}

// counterValue reads a counter with the given table label from reg.
func counterValue(t *testing.T, reg *prometheus.Registry, name, table string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "table" && l.GetValue() == table {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestMigrateConcurrently starts several replicas on a fresh database at
// once, as a production rollout does: every one of them must come up.
func TestMigrateConcurrently(t *testing.T) {
	addr, db := testenv.ClickHouseDatabase(t)
	cfg := DefaultConfig()
	cfg.Addr, cfg.Database = addr, db
	ctx := context.Background()
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			s, err := Open(ctx, cfg)
			if err != nil {
				errs <- err
				return
			}
			defer s.Close()
			_, err = s.Migrate(ctx)
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Errorf("concurrent Migrate: %v", err)
		}
	}
}

// TestVerifyStoredEventIDs: the ids that usage_events holds on the given
// days come back, once each, however many versions of a row exist.
func TestVerifyStoredEventIDs(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	events := testEvents(5) // all on 2025-01-31
	if err := s.Write(ctx, events, nil); err != nil {
		t.Fatal(err)
	}
	events[0].RatingVersion = 1 // a re-rated copy of the first
	if err := s.Write(ctx, events[:1], nil); err != nil {
		t.Fatal(err)
	}
	ids := []string{"not-stored"}
	for _, e := range events {
		ids = append(ids, e.Event.EventID)
	}
	day := func(s string) time.Time { d, _ := time.Parse(time.DateOnly, s); return d }
	for _, c := range []struct {
		first, last string
		want        int
	}{{"2025-01-31", "2025-02-01", 5}, {"2025-01-31", "2025-01-31", 5}, {"2025-02-02", "2025-02-03", 0}} {
		found, err := s.StoredEventIDs(ctx, ids, day(c.first), day(c.last))
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(found)
		if len(found) != c.want || slices.Contains(found, "not-stored") || len(slices.Compact(found)) != len(found) {
			t.Errorf("%s..%s: found %v, want %d stored ids once each", c.first, c.last, found, c.want)
		}
	}
}

// TestDedupReadBack checks the aggregator's two dedup reads: SeenIDs
// streams a partition's ids below the restart offset, and StoredIDs
// confirms suspects only for the partition and the time range asked.
func TestDedupReadBack(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	events := testEvents(6) // times base .. base+5s, offsets 0..5
	events[5].Partition = 1
	if err := s.Write(ctx, events, nil); err != nil {
		t.Fatal(err)
	}
	var seen []string
	n, err := s.SeenIDs(ctx, 0, 4, base, func(id string, at time.Time) {
		seen = append(seen, fmt.Sprintf("%s@%d", id[len(id)-2:], at.Unix()-base.Unix()))
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := "[00@0 01@1 02@2 03@3]"; n != 4 || fmt.Sprint(seen) != want {
		t.Errorf("SeenIDs(0, below 4) = %d %v, want %s", n, seen, want)
	}
	ids := []string{events[1].Event.EventID, events[4].Event.EventID, events[5].Event.EventID, "not-stored"}
	for _, c := range []struct {
		from, to time.Duration
		want     string
	}{
		{0, 10 * time.Second, "[01 04]"}, // 05 is on partition 1
		{2 * time.Second, 10 * time.Second, "[04]"},
		{0, 1500 * time.Millisecond, "[01]"}, // whole seconds: 1.5 s reaches 01 at 1 s
		{time.Hour, 2 * time.Hour, "[]"},
	} {
		stored, err := s.StoredIDs(ctx, 0, ids, base.Add(c.from), base.Add(c.to))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for id := range stored {
			got = append(got, id[len(id)-2:])
		}
		slices.Sort(got)
		if fmt.Sprint(got) != c.want {
			t.Errorf("StoredIDs in [%s, %s] = %v, want %s", c.from, c.to, got, c.want)
		}
	}
}
