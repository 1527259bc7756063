package clickhouse

import (
	"context"
	"testing"

	"github.com/aivis-dev/aivis/internal/chdbcheck"
	"github.com/aivis-dev/aivis/internal/testenv"
)

// upgradeStores runs an upgrade test on a fresh database of the shared
// ClickHouse 18.16 and on current ClickHouse (chDB, the modern DDL).
func upgradeStores(t *testing.T, test func(t *testing.T, s *Store)) {
	t.Run("18.16", func(t *testing.T) {
		addr, db := testenv.ClickHouseDatabase(t)
		cfg := DefaultConfig()
		cfg.Addr, cfg.Database = addr, db
		s, err := Open(context.Background(), cfg)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer s.Close()
		test(t, s)
	})
	t.Run("chDB", func(t *testing.T) {
		conn := chdbcheck.Open(t)
		for _, stmt := range []string{"CREATE DATABASE IF NOT EXISTS `aivis`", "USE aivis"} {
			if err := conn.Exec(context.Background(), stmt); err != nil {
				t.Fatal(err)
			}
		}
		test(t, NewStoreOn(conn, "26.9.2.1"))
	})
}

// schemaBefore creates the schema as it was before migration version: the
// earlier migrations applied and recorded, so that Migrate applies version
// and what follows it.
func schemaBefore(t *testing.T, s *Store, version int) {
	t.Helper()
	ctx := context.Background()
	migrations, err := Migrations(CapabilitiesFor(s.ServerVersion()))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.conn.Exec(ctx, MigrationsTableDDL); err != nil {
		t.Fatal(err)
	}
	for _, m := range migrations {
		if m.Version >= version {
			continue
		}
		for _, stmt := range m.Statements {
			if err := s.conn.Exec(ctx, stmt); err != nil {
				t.Fatalf("migration %d: %v", m.Version, err)
			}
		}
		if err := s.recordMigration(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
}
