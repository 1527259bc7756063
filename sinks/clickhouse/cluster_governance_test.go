package clickhouse_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aivis-dev/aivis/governance"
	"github.com/aivis-dev/aivis/internal/testenv"
	"github.com/aivis-dev/aivis/schemas"
	"github.com/aivis-dev/aivis/sinks/clickhouse"
)

// TestClusterKeySignals runs the governance evaluator's first-seen and
// dormant checks on the 2×2 cluster, where the key sightings are spread
// over the shards and the checks filter them by the window's keys with
// GLOBAL IN: they find what they find on one server.
func TestClusterKeySignals(t *testing.T) {
	c := testenv.ClusterClickHouse(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	now := time.Now().UTC().Truncate(time.Second)
	var evs []schemas.StoredEvent
	add := func(at time.Time, key, source, region string, usd int64) {
		e := &schemas.Enriched{Event: *testenv.LLMEvent("openai", "gpt-4o", testenv.Usage(100, 0, 0, 10, 0))}
		e.EventID = fmt.Sprintf("01JCLKEY%018d", len(evs)+1)
		e.Time, e.APIKeyID, e.Source, e.ProviderRegion = at, key, source, region
		e.Owner = schemas.Owner{Team: "t", Rule: "keys"}
		e.CostPicos, e.CostSource = usd*1_000_000_000_000, schemas.CostSourceCatalog
		evs = append(evs, schemas.StoredEvent{Event: e, Offset: int64(len(evs) + 1)})
	}
	for i := range 8 { // spread over the shards by event id
		add(now.Add(-time.Duration(72+i)*time.Hour), "key-a", "gw-1", "us-east-1", 1)
	}
	add(now.Add(-20*24*time.Hour), "key-b", "gw-3", "us-east-1", 1)
	add(now.Add(-2*time.Hour), "key-c", "gw-4", "us-east-1", 1)
	in := now.Add(-5 * time.Minute)
	add(in, "key-a", "gw-2", "eu-west-1", 1)  // new gateway and region
	add(in, "key-b", "gw-3", "us-east-1", 15) // dormant, wakes up
	add(in, "key-c", "gw-4", "us-east-1", 15) // heavy, used 2 h ago
	add(in, "key-d", "gw-5", "us-east-1", 1)  // a new key

	signals := func(cfg clickhouse.Config) []string {
		t.Helper()
		store, err := clickhouse.Open(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		if _, err := store.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		if err := store.Write(ctx, evs, nil); err != nil {
			t.Fatal(err)
		}
		ev, err := governance.NewEvaluator(governance.DefaultConfig(), store, nil, nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		ev.SetClock(func() time.Time { return now })
		changes, err := ev.EvaluateOnce(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, s := range changes {
			out = append(out, fmt.Sprintf("%s %s %s events=%d cost=%s", s.Signal, s.Status, s.Subject, s.Events, s.CostUSD))
		}
		sort.Strings(out)
		return out
	}

	addr, db := testenv.ClickHouseDatabase(t)
	single := clickhouse.DefaultConfig()
	single.Addr, single.Database = addr, db
	want := []string{
		"dormant_key_wake firing key-b events=1 cost=15",
		"new_region firing key-a@eu-west-1 events=1 cost=1",
		"new_source firing key-a@gw-2 events=1 cost=1",
	}
	if got := signals(single); !slices.Equal(got, want) {
		t.Fatalf("one server:\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	cluster := clickhouse.DefaultConfig()
	cluster.Addr, cluster.Database, cluster.Cluster = c.ClickHouse[0], c.Database(t), c.Name
	if got := signals(cluster); !slices.Equal(got, want) {
		t.Fatalf("cluster %s:\n  %s\nwant\n  %s", c.Name, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}
