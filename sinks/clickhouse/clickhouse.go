// Package clickhouse is aivis's ClickHouse sink. It owns the tables and
// views (migrations.go: their DDL and names) and applies their migrations,
// writes accepted events and window rows with batched columnar inserts over
// the native protocol, and reads back the window rows already written so
// that the aggregator can replay safely.
//
// Data enters through Store.Write from the aggregator, which commits its
// Kafka offsets only after Write returns nil: a failing server causes
// backpressure, never loss. Store.Emitted and Store.Query read data back.
package clickhouse

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/aivis-dev/aivis/internal/security"
)

// Config says how to reach ClickHouse and how hard to retry writes.
type Config struct {
	// Addr is host:port of the native protocol (not HTTP); several servers
	// may be given separated by commas.
	Addr     string `koanf:"addr" help:"native-protocol (not HTTP) address host:port; several separated by commas"`
	Database string `koanf:"database" help:"database the tables live in"`
	Username string `koanf:"username" help:"user to connect as"`
	Password string `koanf:"password" help:"password; prefer password_file or AIVIS_CLICKHOUSE__PASSWORD, since flags show in ps"`
	// PasswordFile holds the password instead (a trailing newline is
	// ignored), e.g. a mounted Kubernetes secret.
	PasswordFile string `koanf:"password_file" help:"file holding the password (a trailing newline is ignored)"`
	// TLS connects to the server's secure native port (9440 by default).
	TLS security.ClientTLS `koanf:"tls"`
	// DialTimeout bounds connecting to one server.
	DialTimeout time.Duration `koanf:"dial_timeout" help:"bound on connecting to one server"`
	// MaxRetries is how many times a failed insert is retried before Write
	// gives up (0: one attempt only).
	MaxRetries int `koanf:"max_retries" help:"retries of a failed insert before giving up (0: one attempt)"`
	// RetryBackoff is the first wait between attempts; it doubles on each
	// retry, with jitter, up to maxBackoff.
	RetryBackoff time.Duration `koanf:"retry_backoff" help:"first wait between attempts; it doubles, with jitter, on each retry"`
	// Cluster names the ClickHouse cluster (a remote_servers entry of the
	// servers' configuration) that the tables are spread over; empty, the
	// default, means one server. With a cluster, every table is a
	// Replicated*MergeTree table <name>_local on every node with a
	// Distributed table <name> over it, sharded by the key that keeps the
	// rows that collapse together on one shard, and migrations run ON
	// CLUSTER (docs/cluster.md).
	Cluster string `koanf:"cluster" help:"ClickHouse cluster (remote_servers name) to create replicated, sharded tables on; empty: one server (docs/cluster.md)"`
	// InsertQuorum is, in cluster mode, how many replicas of a shard must
	// hold an insert before it succeeds; 0 means all of them (the replica
	// count of the cluster's shards). With fewer, a read that reaches a
	// lagging replica after a failover can miss acknowledged rows, and the
	// aggregator's read-back after a restart relies on seeing them.
	InsertQuorum int `koanf:"insert_quorum" help:"cluster mode: replicas of a shard that must hold an insert before it succeeds (0: all; fewer risks stale read-back after a failover, docs/cluster.md)"`
}

// DefaultConfig returns the settings for a local server.
func DefaultConfig() Config {
	return Config{
		Addr:         "127.0.0.1:9000",
		Database:     "aivis",
		Username:     "default",
		DialTimeout:  5 * time.Second,
		MaxRetries:   5,
		RetryBackoff: 200 * time.Millisecond,
	}
}

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Validate returns every problem at once, each with its key path under
// "clickhouse." as in the config file.
func (c Config) Validate() error {
	var errs []error
	if len(c.addrs()) == 0 {
		errs = append(errs, errors.New(`clickhouse.addr: must be host:port of the native protocol, e.g. "127.0.0.1:9000"`))
	}
	for _, a := range c.addrs() {
		if !strings.Contains(a, ":") {
			errs = append(errs, fmt.Errorf("clickhouse.addr: %q has no port; the native protocol usually listens on 9000", a))
		}
	}
	if !identifier.MatchString(c.Database) {
		errs = append(errs, fmt.Errorf("clickhouse.database: %q must be letters, digits and underscores, not starting with a digit", c.Database))
	}
	if c.Cluster != "" && !identifier.MatchString(c.Cluster) {
		errs = append(errs, fmt.Errorf("clickhouse.cluster: %q must be letters, digits and underscores, not starting with a digit (a remote_servers name of the servers' configuration), or empty for one server", c.Cluster))
	}
	if c.InsertQuorum < 0 {
		errs = append(errs, fmt.Errorf("clickhouse.insert_quorum: must be 0 (all replicas) or more, got %d", c.InsertQuorum))
	}
	if c.DialTimeout <= 0 {
		errs = append(errs, fmt.Errorf("clickhouse.dial_timeout: must be positive, got %s", c.DialTimeout))
	}
	if c.MaxRetries < 0 {
		errs = append(errs, fmt.Errorf("clickhouse.max_retries: must be 0 or more, got %d", c.MaxRetries))
	}
	if c.RetryBackoff <= 0 {
		errs = append(errs, fmt.Errorf("clickhouse.retry_backoff: must be positive, got %s", c.RetryBackoff))
	}
	if err := security.ValidateSecret("clickhouse.password", c.Password, c.PasswordFile); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.TLS.Validate("clickhouse.tls")...)
	return errors.Join(errs...)
}

// LogValue keeps the password out of logs.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("addr", c.Addr),
		slog.String("database", c.Database),
		slog.String("username", c.Username),
		slog.Bool("password_set", c.Password != "" || c.PasswordFile != ""),
		slog.Bool("tls", c.TLS.On()),
		slog.Int("max_retries", c.MaxRetries),
		slog.String("cluster", c.Cluster),
	)
}

func (c Config) addrs() []string {
	var out []string
	for _, a := range strings.Split(c.Addr, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// Store is a connection pool to one ClickHouse database. It is safe for
// concurrent use.
type Store struct {
	conn    driver.Conn
	cfg     Config
	version string
	log     *slog.Logger
	metrics *metrics
	// eventBufs are Write's column buffers between calls.
	eventBufs atomic.Pointer[eventBuffers]
}

// Open connects to ClickHouse, creates cfg.Database if it does not exist and
// returns a Store using it. It does not apply migrations: call Migrate.
func Open(ctx context.Context, cfg Config, opts ...Option) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("opening ClickHouse: invalid config: %w", err)
	}
	log := slog.Default().With("component", "clickhouse")

	// The database may not exist yet, so create it from "default" first.
	boot, err := connect(ctx, cfg, "default", nil)
	if err != nil {
		return nil, err
	}
	var settings ch.Settings
	if cfg.Cluster != "" {
		settings, err = clusterSettings(ctx, boot, cfg)
	}
	if err == nil {
		err = createDatabase(ctx, boot, cfg)
		if err != nil {
			err = fmt.Errorf("creating database %s on %s: %w (the user needs CREATE DATABASE rights, or create it by hand)", cfg.Database, cfg.Addr, err)
		}
	}
	_ = boot.Close()
	if err != nil {
		return nil, err
	}

	conn, err := connect(ctx, cfg, cfg.Database, settings)
	if err != nil {
		return nil, err
	}
	s := &Store{conn: conn, cfg: cfg, log: log, metrics: newMetrics(nil)}
	for _, o := range opts {
		o(s)
	}
	if err := conn.QueryRow(ctx, "SELECT version()").Scan(&s.version); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("reading ClickHouse server version on %s: %w", cfg.Addr, err)
	}
	// The driver's own "unsupported version" warning is silenced (no driver
	// logger); aivis supports old servers through its portable DDL, so say
	// it once at Info.
	log.Info("connected to ClickHouse", "config", cfg, "server_version", s.version)
	return s, nil
}

// onCluster returns " ON CLUSTER <name>" in cluster mode, "" otherwise.
func (c Config) onCluster() string {
	if c.Cluster == "" {
		return ""
	}
	return " ON CLUSTER " + c.Cluster
}

// createDatabase creates cfg.Database. On a cluster it does so ON CLUSTER
// only when the node does not have it yet: a distributed DDL waits for
// every node, so with a shard down it would hold up every process's start.
func createDatabase(ctx context.Context, conn driver.Conn, cfg Config) error {
	if cfg.Cluster != "" {
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM system.databases WHERE name = ?", cfg.Database).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
	}
	return conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS `"+cfg.Database+"`"+cfg.onCluster())
}

// clusterSettings checks that the server knows cfg.Cluster and returns the
// settings of every query in cluster mode.
func clusterSettings(ctx context.Context, conn driver.Conn, cfg Config) (ch.Settings, error) {
	var shards, replicas uint64
	if err := conn.QueryRow(ctx, "SELECT uniqExact(shard_num), toUInt64(max(replica_num)) FROM system.clusters WHERE cluster = ?", cfg.Cluster).Scan(&shards, &replicas); err != nil {
		return nil, fmt.Errorf("reading cluster %s from system.clusters on %s: %w", cfg.Cluster, cfg.Addr, err)
	}
	if shards == 0 {
		return nil, fmt.Errorf("clickhouse.cluster: the server at %s has no cluster %q in its remote_servers configuration (SELECT DISTINCT cluster FROM system.clusters lists those it has)", cfg.Addr, cfg.Cluster)
	}
	quorum := cfg.InsertQuorum
	if quorum == 0 {
		quorum = int(replicas)
	}
	if quorum > int(replicas) {
		return nil, fmt.Errorf("clickhouse.insert_quorum: %d is more than the %d replicas of a shard of cluster %s; no insert could succeed", quorum, replicas, cfg.Cluster)
	}
	return ch.Settings{
		// An insert into a Distributed table returns only once every shard
		// has its rows, so that Write returning nil still means durable
		// (by default the receiving node queues them and sends them later).
		"insert_distributed_sync": 1,
		// ... on insert_quorum replicas of each shard.
		"insert_quorum":         quorum,
		"insert_quorum_timeout": 60_000, // ms: a lost replica fails the insert, which is retried, within a minute
	}, nil
}

// options are the driver's options for cfg on database; the password file
// is read here, so a rotated password takes effect on the next connect.
func options(cfg Config, database string, settings ch.Settings) (*ch.Options, error) {
	pw, err := security.Secret("clickhouse.password", cfg.Password, cfg.PasswordFile)
	if err != nil {
		return nil, err
	}
	tc, err := cfg.TLS.Config("clickhouse.tls")
	if err != nil {
		return nil, err
	}
	return &ch.Options{
		Protocol:    ch.Native,
		Addr:        cfg.addrs(),
		Auth:        ch.Auth{Database: database, Username: cfg.Username, Password: pw},
		TLS:         tc,
		DialTimeout: cfg.DialTimeout,
		Compression: &ch.Compression{Method: ch.CompressionLZ4},
		Settings:    settings,
	}, nil
}

// authCodes are the server's error codes for refused credentials: unknown
// user, wrong password, password required (18.16), authentication failed
// (current servers).
var authCodes = map[int32]bool{192: true, 193: true, 194: true, 516: true}

func connect(ctx context.Context, cfg Config, database string, settings ch.Settings) (driver.Conn, error) {
	opts, err := options(cfg, database, settings)
	if err != nil {
		return nil, fmt.Errorf("connecting to ClickHouse at %s: %w", cfg.Addr, err)
	}
	conn, err := ch.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("connecting to ClickHouse at %s: %w", cfg.Addr, err)
	}
	if err := conn.Ping(ctx); err != nil {
		_ = conn.Close()
		var ex *ch.Exception
		if errors.As(err, &ex) && authCodes[ex.Code] {
			return nil, fmt.Errorf("connecting to ClickHouse at %s (database %s) as %q: %w (check clickhouse.username and clickhouse.password or password_file)", cfg.Addr, database, cfg.Username, err)
		}
		return nil, fmt.Errorf("connecting to ClickHouse at %s (database %s): %w (%s)", cfg.Addr, database, err, connectHint(cfg, err))
	}
	return conn, nil
}

// connectHint says what to check after a failed connection: the TLS
// settings when the failure is TLS's, else whether the server runs there.
func connectHint(cfg Config, err error) string {
	var (
		verify *tls.CertificateVerificationError
		record tls.RecordHeaderError
		unk    x509.UnknownAuthorityError
		host   x509.HostnameError
	)
	msg := err.Error()
	switch {
	case errors.As(err, &verify) || errors.As(err, &unk) || errors.As(err, &host) || strings.Contains(msg, "x509: "):
		return "the server's TLS certificate is not trusted: set clickhouse.tls.ca_file to the CA that signed it, and clickhouse.tls.server_name if it names another host"
	case errors.As(err, &record) || strings.Contains(msg, "does not look like a TLS handshake"):
		return "clickhouse.addr is not a TLS port: use the server's tcp_port_secure (usually 9440) with clickhouse.tls, or its plaintext native port (usually 9000) without"
	case !cfg.TLS.On() && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || strings.Contains(msg, "connection reset") || strings.Contains(msg, "EOF")):
		return "the server closed the connection during the handshake: if clickhouse.addr is a TLS port (tcp_port_secure, usually 9440), set clickhouse.tls.enabled or clickhouse.tls.ca_file"
	}
	return "is the server running and clickhouse.addr its native port, usually 9000, or 9440 with clickhouse.tls? locally: make clickhouse-up"
}

// ServerVersion returns the server's `SELECT version()`, e.g. "18.16.1".
func (s *Store) ServerVersion() string { return s.version }

// Query runs a read-only query; it lets reports use the Store's pool.
func (s *Store) Query(ctx context.Context, query string, args ...any) (driver.Rows, error) {
	return s.conn.Query(ctx, query, args...)
}

// Close releases the connection pool.
func (s *Store) Close() error { return s.conn.Close() }

// QueryRow runs a query expected to return one row.
func (s *Store) QueryRow(ctx context.Context, query string, args ...any) driver.Row {
	return s.conn.QueryRow(ctx, query, args...)
}

// OptimizeFinal merges every part of table into one per partition (OPTIMIZE
// TABLE … FINAL), collapsing replaced rows, as the server's background
// merges eventually would; `aivis capacity measure` sizes tables in that
// state. It refuses a cluster, whose Distributed tables hold no parts.
func (s *Store) OptimizeFinal(ctx context.Context, table string) error {
	if s.cfg.Cluster != "" {
		return fmt.Errorf("optimizing table %s: not supported in cluster mode (clickhouse.cluster %q); measure on one server", table, s.cfg.Cluster)
	}
	if !identifier.MatchString(table) {
		return fmt.Errorf("optimizing table %q: not a table name", table)
	}
	if err := s.conn.Exec(ctx, "OPTIMIZE TABLE "+table+" FINAL"); err != nil {
		return fmt.Errorf("optimizing table %s: %w", table, err)
	}
	return nil
}
