package clickhouse

import (
	"fmt"
	"regexp"
	"strings"
)

// LocalSuffix ends the name of the replicated table that holds a shard's
// rows on each node of a cluster; the table of the plain name is the
// Distributed table over them, which every query and insert uses.
const LocalSuffix = "_local"

// ShardingKeys are the sharding keys of the Distributed tables in cluster
// mode. Each is a function of columns of its table's ORDER BY key only, so
// that every version of a row (a re-rated event, a window row written
// again on replay, a newer budget evaluation) lands on the shard of its
// first version, where ReplacingMergeTree and FINAL collapse them. They are
// not configurable: any other key would let duplicates escape the collapse.
var ShardingKeys = map[string]string{
	// Every version of an event keeps its event_id; its date, team and model
	// could change on re-rating, so they must not pick the shard.
	TableEvents: "cityHash64(event_id)",
	// The window key: all rows of one window and series, every partition.
	TableWindows:      "cityHash64(window_start, provider, model, team, project)",
	TableAnomalies:    "cityHash64(window_start, team, model)",
	TableBudgetStatus: "cityHash64(budget_id, period_start)",
	TableGPUSettings:  "cityHash64(name)",
	// Every update of one governance incident, every count of one
	// (minute, address, ingest node), every evaluation of one savings
	// recommendation on one day.
	TableGovernanceSignals: "cityHash64(incident_id)",
	TableAuthFailures:      "cityHash64(minute, source_address, node)",
	TableSavings:           "cityHash64(day, id)",
	// The backfill of api_key_sightings goes through the Distributed table
	// and lands by key; the materialized view on each node writes its
	// shard's rows to the local table. Min and max states merge the same
	// whichever shard holds them, and every query groups them.
	TableKeySightings: "cityHash64(api_key_id)",
}

// ClusterLayout says how migrations are rendered for a cluster.
type ClusterLayout struct {
	// Cluster is the remote_servers name the DDL runs ON CLUSTER.
	Cluster string
	// Database holds the tables; cluster DDL names it explicitly, since a
	// node running a distributed DDL task resolves bare names in its own
	// default database.
	Database string
}

// ReplicationPath returns the ZooKeeper path of a replicated table; the
// server fills in the {shard} macro, and {replica} names the replica.
func (l ClusterLayout) ReplicationPath(table string) string {
	return "/clickhouse/tables/{shard}/" + l.Database + "/" + table
}

// MigrationsTableDDL returns the DDL of the table of applied migrations on
// the cluster: one replicated table whose every node is a replica (a path
// without {shard}), so that each node can tell what was applied.
func (l ClusterLayout) MigrationsTableDDL() string {
	ddl := strings.Replace(MigrationsTableDDL, "CREATE TABLE IF NOT EXISTS "+TableMigrations,
		"CREATE TABLE IF NOT EXISTS "+l.qualify(TableMigrations)+l.onCluster(), 1)
	return strings.Replace(ddl, "ENGINE = ReplacingMergeTree()",
		"ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/all/"+l.Database+"/"+TableMigrations+"', '{replica}')", 1)
}

// IsPerShard says whether a statement of OnCluster's output runs on one
// replica of each shard rather than ON CLUSTER.
func IsPerShard(stmt string) bool {
	return strings.HasPrefix(stmt, "ALTER TABLE ") && !strings.Contains(stmt, " ON CLUSTER ")
}

func (l ClusterLayout) qualify(name string) string { return l.Database + "." + name }
func (l ClusterLayout) onCluster() string          { return " ON CLUSTER " + l.Cluster }

var (
	createTableRe = regexp.MustCompile(`(?s)^CREATE TABLE IF NOT EXISTS ([A-Za-z_][A-Za-z0-9_]*) \((.*)\) ENGINE = ([A-Za-z]*MergeTree)\(([^)]*)\)(.*)$`)
	alterTableRe  = regexp.MustCompile(`(?s)^ALTER TABLE ([A-Za-z_][A-Za-z0-9_]*) (.*)$`)
	dropTableRe   = regexp.MustCompile(`^DROP TABLE IF EXISTS ([A-Za-z_][A-Za-z0-9_]*)$`)
	createViewRe  = regexp.MustCompile(`(?s)^CREATE VIEW IF NOT EXISTS ([A-Za-z_][A-Za-z0-9_]*) AS(.*)$`)
	createMVRe    = regexp.MustCompile(`(?s)^CREATE MATERIALIZED VIEW IF NOT EXISTS ([A-Za-z_][A-Za-z0-9_]*) TO ([A-Za-z_][A-Za-z0-9_]*) AS(.*)$`)
	insertRe      = regexp.MustCompile(`(?s)^INSERT INTO ([A-Za-z_][A-Za-z0-9_]*) (.*)$`)
	tableRefRe    = regexp.MustCompile(`\b(FROM|JOIN)\s+([A-Za-z_][A-Za-z0-9_]*)\b`)
)

// OnCluster rewrites single-server migrations for a cluster. A CREATE TABLE
// becomes a Replicated*MergeTree table <name>_local on every node and a
// Distributed table <name> over it; an ALTER TABLE alters the replicated
// tables and then recreates the Distributed one (ClickHouse 18.16 cannot
// alter a Distributed table ON CLUSTER over replicated shards, and a
// Distributed table holds no data: inserts are synchronous); views are
// created on every node over the Distributed tables. A materialized view
// is created on every node over the node's replicated table and writes to
// the replicated table of its target: it sees the rows the Distributed
// table sends to that node, and replication copies what it writes. An
// INSERT ... SELECT (a backfill) runs once, from one node, between the
// Distributed tables. Every other statement names the database and runs
// ON CLUSTER, except the ALTER of a replicated table: that one is meant for
// one replica of each shard (IsPerShard), which replicates it to the
// others. 18.16 runs such an ALTER ON CLUSTER on every
// replica at once, and the replica that loses the race can stop its
// distributed DDL worker for good. The versions and names are unchanged, so
// a cluster records the same migrations as one server.
func OnCluster(migrations []Migration, l ClusterLayout) ([]Migration, error) {
	out := make([]Migration, 0, len(migrations))
	for _, m := range migrations {
		cm := Migration{Version: m.Version, Name: m.Name}
		for i, stmt := range m.Statements {
			stmts, err := l.rewrite(strings.TrimSpace(stmt))
			if err != nil {
				return nil, fmt.Errorf("rendering migration %d %s (statement %d) for cluster %s: %w", m.Version, m.Name, i+1, l.Cluster, err)
			}
			cm.Statements = append(cm.Statements, stmts...)
		}
		out = append(out, cm)
	}
	return out, nil
}

func (l ClusterLayout) distributed(table string) (string, error) {
	key, ok := ShardingKeys[table]
	if !ok {
		return "", fmt.Errorf("table %s has no sharding key (add it to ShardingKeys)", table)
	}
	return "CREATE TABLE IF NOT EXISTS " + l.qualify(table) + l.onCluster() + " AS " + l.qualify(table+LocalSuffix) +
		" ENGINE = Distributed(" + l.Cluster + ", " + l.Database + ", " + table + LocalSuffix + ", " + key + ")", nil
}

// tableRefs qualifies the tables that a query reads (FROM, JOIN) with the
// database, and appends suffix to their names (LocalSuffix: the node's
// replicated table instead of the Distributed one).
func (l ClusterLayout) tableRefs(query, suffix string) string {
	return tableRefRe.ReplaceAllStringFunc(query, func(ref string) string {
		r := tableRefRe.FindStringSubmatch(ref)
		if _, isTable := ShardingKeys[r[2]]; !isTable {
			return ref
		}
		return r[1] + " " + l.qualify(r[2]+suffix)
	})
}

// IsOnce says whether a statement of OnCluster's output runs once, from the
// node migrating, rather than ON CLUSTER: an INSERT ... SELECT between
// Distributed tables.
func IsOnce(stmt string) bool { return strings.HasPrefix(stmt, "INSERT INTO ") }

func (l ClusterLayout) rewrite(stmt string) ([]string, error) {
	if m := createTableRe.FindStringSubmatch(stmt); m != nil {
		table, columns, engine, args, rest := m[1], m[2], m[3], m[4], m[5]
		repl := "'" + l.ReplicationPath(table+LocalSuffix) + "', '{replica}'"
		if strings.TrimSpace(args) != "" {
			repl += ", " + args
		}
		dist, err := l.distributed(table)
		if err != nil {
			return nil, err
		}
		local := "CREATE TABLE IF NOT EXISTS " + l.qualify(table+LocalSuffix) + l.onCluster() + " (" + columns +
			") ENGINE = Replicated" + engine + "(" + repl + ")" + rest
		return []string{local, dist}, nil
	}
	if m := alterTableRe.FindStringSubmatch(stmt); m != nil {
		table := m[1]
		dist, err := l.distributed(table)
		if err != nil {
			return nil, err
		}
		return []string{
			"ALTER TABLE " + l.qualify(table+LocalSuffix) + " " + m[2],
			"DROP TABLE IF EXISTS " + l.qualify(table) + l.onCluster(),
			dist,
		}, nil
	}
	if m := dropTableRe.FindStringSubmatch(stmt); m != nil {
		if _, isTable := ShardingKeys[m[1]]; isTable {
			return nil, fmt.Errorf("dropping table %s is not supported on a cluster", m[1])
		}
		return []string{"DROP TABLE IF EXISTS " + l.qualify(m[1]) + l.onCluster()}, nil
	}
	if m := createViewRe.FindStringSubmatch(stmt); m != nil {
		body := l.tableRefs(m[2], "")
		return []string{"CREATE VIEW IF NOT EXISTS " + l.qualify(m[1]) + l.onCluster() + " AS" + body}, nil
	}
	if m := createMVRe.FindStringSubmatch(stmt); m != nil {
		if _, isTable := ShardingKeys[m[2]]; !isTable {
			return nil, fmt.Errorf("materialized view %s writes to %s, which has no sharding key (add it to ShardingKeys)", m[1], m[2])
		}
		return []string{"CREATE MATERIALIZED VIEW IF NOT EXISTS " + l.qualify(m[1]) + l.onCluster() +
			" TO " + l.qualify(m[2]+LocalSuffix) + " AS" + l.tableRefs(m[3], LocalSuffix)}, nil
	}
	if m := insertRe.FindStringSubmatch(stmt); m != nil {
		if _, isTable := ShardingKeys[m[1]]; !isTable {
			return nil, fmt.Errorf("inserting into %s, which has no sharding key (add it to ShardingKeys)", m[1])
		}
		return []string{"INSERT INTO " + l.qualify(m[1]) + " " + l.tableRefs(m[2], "")}, nil
	}
	first, _, _ := strings.Cut(stmt, "\n")
	return nil, fmt.Errorf("no cluster form for the statement %q", first)
}
