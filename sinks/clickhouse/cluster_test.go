package clickhouse

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/aivis-dev/aivis/internal/testenv"
)

// Every statement of the cluster rendering runs ON CLUSTER and names the
// database, every table gets a replicated local table and a Distributed
// table, and views read the Distributed tables.
func TestOnClusterRendering(t *testing.T) {
	single, err := Migrations(Capabilities{})
	if err != nil {
		t.Fatal(err)
	}
	l := ClusterLayout{Cluster: "c1", Database: "db1"}
	cluster, err := OnCluster(single, l)
	if err != nil {
		t.Fatal(err)
	}
	if len(cluster) != len(single) {
		t.Fatalf("%d cluster migrations, want %d", len(cluster), len(single))
	}
	for i, m := range cluster {
		if m.Version != single[i].Version || m.Name != single[i].Name {
			t.Errorf("migration %d is %d %s, want %d %s", i, m.Version, m.Name, single[i].Version, single[i].Name)
		}
		for _, s := range m.Statements {
			if (!strings.Contains(s, " ON CLUSTER c1") && !IsPerShard(s) && !IsOnce(s)) || !strings.Contains(s, "db1.") {
				t.Errorf("migration %d: statement without ON CLUSTER c1 or db1.: %s", m.Version, s)
			}
			if strings.Contains(s, "ENGINE = ReplacingMergeTree") {
				t.Errorf("migration %d: unreplicated engine: %s", m.Version, s)
			}
		}
	}
	all := strings.Join(cluster[0].Statements, "\n")
	for _, want := range []string{
		"CREATE TABLE IF NOT EXISTS db1.usage_events_local ON CLUSTER c1",
		"ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/db1/usage_events_local', '{replica}', rating_version)",
		"CREATE TABLE IF NOT EXISTS db1.usage_events ON CLUSTER c1 AS db1.usage_events_local ENGINE = Distributed(c1, db1, usage_events_local, cityHash64(event_id))",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("migration 1 lacks %q:\n%s", want, all)
		}
	}
	for _, m := range cluster {
		for _, s := range m.Statements {
			if strings.HasPrefix(s, "CREATE VIEW") && (strings.Contains(s, "FROM usage_events ") || strings.Contains(s, "FROM cost_windows ")) {
				t.Errorf("view reads a table without its database: %s", s)
			}
		}
	}
	// The key sightings: a materialized view on each node from its
	// replicated events to its replicated summary, and a backfill run once
	// between the Distributed tables.
	var sightings string
	for _, m := range cluster {
		if m.Version == 85 {
			sightings = strings.Join(m.Statements, "\n")
		}
	}
	for _, want := range []string{
		"CREATE TABLE IF NOT EXISTS db1.api_key_sightings_local ON CLUSTER c1",
		"ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/db1/api_key_sightings_local', '{replica}')",
		"ENGINE = Distributed(c1, db1, api_key_sightings_local, cityHash64(api_key_id))",
		"CREATE MATERIALIZED VIEW IF NOT EXISTS db1.api_key_sightings_mv ON CLUSTER c1 TO db1.api_key_sightings_local AS",
		"FROM db1.usage_events_local\nWHERE",
		"INSERT INTO db1.api_key_sightings (date, api_key_id, source, provider_region, first_seen, last_seen)\nSELECT",
		"FROM db1.usage_events\nWHERE",
	} {
		if !strings.Contains(sightings, want) {
			t.Errorf("migration 85 lacks %q:\n%s", want, sightings)
		}
	}
	if _, err := OnCluster([]Migration{{Version: 1, Name: "x", Statements: []string{"OPTIMIZE TABLE usage_events"}}}, l); err == nil {
		t.Error("a statement without a cluster form was accepted")
	}
}

// `aivis migrate` on the 2×2 cluster creates every object of a single
// server on every node (each table as a replicated local table and a
// Distributed table with the same columns), and a second run, from another
// node, applies nothing.
func TestClusterMigrate(t *testing.T) {
	c := testenv.ClusterClickHouse(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	singleStore := openTest(t)
	want := objects(t, ctx, singleStore.conn, singleStore.cfg.Database)

	db := c.Database(t)
	cfg := DefaultConfig()
	cfg.Addr, cfg.Database, cfg.Cluster = c.ClickHouse[0], db, c.Name
	s, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	applied, err := s.Migrate(ctx)
	if err != nil {
		t.Fatalf("Migrate on cluster %s: %v", c.Name, err)
	}
	ms, _ := Migrations(CapabilitiesFor(s.version))
	if len(applied) != len(ms) {
		t.Errorf("applied %v, want all %d migrations", applied, len(ms))
	}

	for i, addr := range c.ClickHouse {
		conn, err := ch.Open(&ch.Options{Addr: []string{addr}})
		if err != nil {
			t.Fatal(err)
		}
		got := objects(t, ctx, conn, db)
		_ = conn.Close()
		for name, w := range want {
			g, ok := got[name]
			switch {
			case !ok:
				t.Errorf("node %d (%s): %s missing", i, addr, name)
			case strings.HasSuffix(w.engine, "MergeTree") && name != TableMigrations:
				if g.engine != "Distributed" {
					t.Errorf("node %d: %s has engine %s, want Distributed", i, name, g.engine)
				}
				l, ok := got[name+LocalSuffix]
				if !ok || !strings.HasPrefix(l.engine, "Replicated") {
					t.Errorf("node %d: %s%s missing or not replicated (%+v)", i, name, LocalSuffix, l)
				}
				if !slices.Equal(g.columns, w.columns) || !slices.Equal(l.columns, w.columns) {
					t.Errorf("node %d: %s columns\n%v\n%v (local), want\n%v", i, name, g.columns, l.columns, w.columns)
				}
			case name == TableMigrations:
				if g.engine != "Replicated"+w.engine {
					t.Errorf("node %d: %s has engine %s, want Replicated%s", i, name, g.engine, w.engine)
				}
			case g.engine != w.engine:
				t.Errorf("node %d: %s has engine %s, want %s", i, name, g.engine, w.engine)
			case w.engine == "View" && !slices.Equal(g.columns, w.columns):
				t.Errorf("node %d: view %s columns %v, want %v", i, name, g.columns, w.columns)
			}
		}
		if len(got) != len(want)+len(ShardingKeys) {
			t.Errorf("node %d has %d objects, want %d", i, len(got), len(want)+len(ShardingKeys))
		}
	}

	// The key sightings: each node's materialized view summarizes the
	// events its shard receives, the Distributed table merges them, and
	// the backfill (run again, as after a failed migration) changes
	// nothing.
	if err := s.Write(ctx, sightingEvents(), nil); err != nil {
		t.Fatal(err)
	}
	if got := scanSightings(t, ctx, s, sightingsQuery); !slices.Equal(got, sightingsWant) {
		t.Errorf("%s on the cluster:\n  %s\nwant\n  %s", TableKeySightings, strings.Join(got, "\n  "), strings.Join(sightingsWant, "\n  "))
	}
	clusterMs, err := OnCluster(ms, ClusterLayout{Cluster: c.Name, Database: db})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range clusterMs {
		for _, stmt := range m.Statements {
			if IsOnce(stmt) {
				if err := s.conn.Exec(ctx, stmt); err != nil {
					t.Fatalf("backfill on the cluster: %v", err)
				}
			}
		}
	}
	if got := scanSightings(t, ctx, s, sightingsQuery); !slices.Equal(got, sightingsWant) {
		t.Errorf("%s on the cluster after the backfill:\n  %s\nwant\n  %s", TableKeySightings, strings.Join(got, "\n  "), strings.Join(sightingsWant, "\n  "))
	}

	cfg.Addr = c.ClickHouse[3]
	again, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if applied, err := again.Migrate(ctx); err != nil || len(applied) != 0 {
		t.Errorf("second Migrate from node 3: applied %v, %v; want nothing", applied, err)
	}
}

type object struct {
	engine  string
	columns []string
}

func objects(t *testing.T, ctx context.Context, conn driver.Conn, db string) map[string]object {
	t.Helper()
	out := map[string]object{}
	rows, err := conn.Query(ctx, "SELECT name, engine FROM system.tables WHERE database = ?", db)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name, engine string
		if err := rows.Scan(&name, &engine); err != nil {
			t.Fatal(err)
		}
		out[name] = object{engine: engine}
	}
	rows.Close()
	rows, err = conn.Query(ctx, "SELECT table, name, type FROM system.columns WHERE database = ?", db)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var table, name, typ string
		if err := rows.Scan(&table, &name, &typ); err != nil {
			t.Fatal(err)
		}
		o := out[table]
		o.columns = append(o.columns, name+" "+typ)
		out[table] = o
	}
	return out
}

// A cluster the server does not know is refused at Open, saying so.
func TestOpenUnknownCluster(t *testing.T) {
	addr, db := testenv.ClickHouseDatabase(t)
	cfg := DefaultConfig()
	cfg.Addr, cfg.Database, cfg.Cluster = addr, db, "no_such_cluster"
	s, err := Open(context.Background(), cfg)
	if err == nil {
		s.Close()
		t.Fatal("Open accepted a cluster the server does not have")
	}
	if !strings.Contains(err.Error(), `no cluster "no_such_cluster"`) {
		t.Errorf("Open: %v; want it to name the missing cluster", err)
	}
}
