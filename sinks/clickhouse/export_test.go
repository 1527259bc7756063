package clickhouse

import (
	"log/slog"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// NewStoreOn returns a Store that sends its statements to conn as if conn
// were a server of the given version, for tests that record them.
func NewStoreOn(conn driver.Conn, version string) *Store {
	return &Store{conn: conn, cfg: DefaultConfig(), version: version, log: slog.New(slog.DiscardHandler), metrics: newMetrics(nil)}
}
