package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/proto"
)

// Migrate applies the schema steps not yet recorded in TableMigrations, in
// order, and returns their versions; a second run applies nothing. Every
// step is idempotent (IF NOT EXISTS, and an ADD COLUMN that finds its
// column, which ClickHouse 18.16 cannot say with IF NOT EXISTS, counts as
// done), so replicas migrating at once only record a step twice, which the
// ReplacingMergeTree collapses.
//
// With clickhouse.cluster set, the steps are rendered for the cluster
// (OnCluster) and each runs ON CLUSTER: it returns once every node has
// applied it, and a step that reaches a node that already has it (the
// replicated tables' ALTERs run on one replica of each shard) counts as
// done there as on one server.
func (s *Store) Migrate(ctx context.Context) (applied []int, err error) {
	caps := CapabilitiesFor(s.version)
	migrations, err := Migrations(caps)
	if err != nil {
		return nil, fmt.Errorf("preparing migrations for ClickHouse %s: %w", s.version, err)
	}
	ddl := MigrationsTableDDL
	if s.cfg.Cluster != "" {
		layout := ClusterLayout{Cluster: s.cfg.Cluster, Database: s.cfg.Database}
		if migrations, err = OnCluster(migrations, layout); err != nil {
			return nil, err
		}
		// A distributed DDL waits for every node: with a shard down, a
		// process that finds the schema up to date must not wait for it.
		var n uint64
		if err := s.conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ? AND name = ?", s.cfg.Database, TableMigrations).Scan(&n); err != nil {
			return nil, fmt.Errorf("looking for %s: %w", TableMigrations, err)
		}
		if ddl = layout.MigrationsTableDDL(); n > 0 {
			ddl = ""
		}
	}
	if ddl != "" {
		if err := s.conn.Exec(ctx, ddl); err != nil {
			return nil, fmt.Errorf("creating %s: %w", TableMigrations, err)
		}
	}
	done, err := s.appliedVersions(ctx)
	if err != nil {
		return nil, err
	}
	for _, m := range migrations {
		if done[m.Version] {
			continue
		}
		for i, stmt := range m.Statements {
			exec := s.conn.Exec
			if s.cfg.Cluster != "" && IsPerShard(stmt) {
				exec = s.onEveryShard
			}
			if err := exec(ctx, stmt); err != nil && !appliedConcurrently(err) {
				return applied, fmt.Errorf("applying migration %d %s (statement %d of %d) on ClickHouse %s: %w",
					m.Version, m.Name, i+1, len(m.Statements), s.version, err)
			}
		}
		if err := s.recordMigration(ctx, m); err != nil {
			return applied, err
		}
		s.log.Info("applied migration", "version", m.Version, "name", m.Name)
		applied = append(applied, m.Version)
	}
	return applied, nil
}

// onEveryShard runs stmt on one replica of each shard of the cluster, the
// first that accepts a connection in the order of system.clusters.
func (s *Store) onEveryShard(ctx context.Context, stmt string, _ ...any) error {
	rows, err := s.conn.Query(ctx, "SELECT shard_num, host_address, port FROM system.clusters WHERE cluster = ? ORDER BY shard_num, replica_num", s.cfg.Cluster)
	if err != nil {
		return fmt.Errorf("reading the nodes of cluster %s: %w", s.cfg.Cluster, err)
	}
	shards := map[uint32][]string{}
	var order []uint32
	for rows.Next() {
		var shard uint32
		var host string
		var port uint16
		if err := rows.Scan(&shard, &host, &port); err != nil {
			rows.Close()
			return fmt.Errorf("reading the nodes of cluster %s: %w", s.cfg.Cluster, err)
		}
		if shards[shard] == nil {
			order = append(order, shard)
		}
		shards[shard] = append(shards[shard], net.JoinHostPort(host, strconv.Itoa(int(port))))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading the nodes of cluster %s: %w", s.cfg.Cluster, err)
	}
	for _, shard := range order {
		var errs []error
		done := false
		for _, addr := range shards[shard] {
			cfg := s.cfg
			cfg.Addr = addr
			conn, err := connect(ctx, cfg, cfg.Database, nil)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			err = conn.Exec(ctx, stmt)
			_ = conn.Close()
			if err != nil && !appliedConcurrently(err) {
				return fmt.Errorf("on shard %d (%s): %w", shard, addr, err)
			}
			done = true
			break
		}
		if !done {
			return fmt.Errorf("no replica of shard %d of cluster %s accepts connections: %w", shard, s.cfg.Cluster, errors.Join(errs...))
		}
	}
	return nil
}

func (s *Store) appliedVersions(ctx context.Context) (map[int]bool, error) {
	rows, err := s.conn.Query(ctx, "SELECT DISTINCT version FROM "+TableMigrations)
	if err != nil {
		return nil, fmt.Errorf("reading applied migrations from %s: %w", TableMigrations, err)
	}
	defer rows.Close()
	done := map[int]bool{}
	for rows.Next() {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("reading applied migrations from %s: %w", TableMigrations, err)
		}
		done[int(v)] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading applied migrations from %s: %w", TableMigrations, err)
	}
	return done, nil
}

func (s *Store) recordMigration(ctx context.Context, m Migration) error {
	batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+TableMigrations+" (version, name, applied_at)")
	if err == nil {
		defer batch.Close()
		if err = batch.Append(uint32(m.Version), m.Name, time.Now()); err == nil {
			err = batch.Send()
		}
	}
	if err != nil {
		return fmt.Errorf("recording migration %d %s in %s: %w", m.Version, m.Name, TableMigrations, err)
	}
	return nil
}

// appliedConcurrently says whether a failed step failed only because
// another process applied it first (an ADD COLUMN whose column exists).
func appliedConcurrently(err error) bool {
	var ex *proto.Exception
	return errors.As(err, &ex) && ex.Code == 44 && strings.Contains(ex.Message, "already exists")
}
