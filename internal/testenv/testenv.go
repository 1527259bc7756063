// Package testenv finds the real services that integration tests need.
// Locally a missing service skips the test with a message saying how to start
// it; with CI=true a missing service fails the test, so CI never passes by
// skipping. It also holds what many packages' tests share: golden files and
// events to price.
package testenv

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
)

// DefaultClickHouseAddr is where tests look for ClickHouse's native protocol
// when AIVISDEV_CLICKHOUSE_ADDR is unset.
const DefaultClickHouseAddr = "127.0.0.1:9000"

// CI reports whether the tests run under CI (env CI=true), where a missing
// service is a failure.
func CI() bool {
	v, _ := strconv.ParseBool(os.Getenv("CI"))
	return v
}

// RequireOrSkip stops the test when a service is unavailable (err != nil):
// it skips locally and fails under CI. how says how to start the service.
func RequireOrSkip(t testing.TB, service string, err error, how string) {
	t.Helper()
	if err == nil {
		return
	}
	if CI() {
		t.Fatalf("%s is required under CI=true but unavailable: %v (%s)", service, err, how)
	}
	t.Skipf("skipping: %s unavailable: %v (%s)", service, err, how)
}

// ClickHouse returns the native-protocol address of a reachable ClickHouse
// server, from AIVISDEV_CLICKHOUSE_ADDR or DefaultClickHouseAddr.
func ClickHouse(t testing.TB) string {
	t.Helper()
	addr := os.Getenv("AIVISDEV_CLICKHOUSE_ADDR")
	if addr == "" {
		addr = DefaultClickHouseAddr
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := ch.Open(&ch.Options{Addr: []string{addr}, DialTimeout: 2 * time.Second})
	if err == nil {
		err = conn.Ping(ctx)
		_ = conn.Close()
	}
	RequireOrSkip(t, "ClickHouse at "+addr, err,
		"start it with `make clickhouse-up` or point AIVISDEV_CLICKHOUSE_ADDR at a server's native port")
	return addr
}

// ClickHouseDatabase returns the address of a reachable server and the name
// of a fresh database (aivis_test_<random>) that is dropped when the test
// ends. The database itself is not created: the code under test does that.
func ClickHouseDatabase(t testing.TB) (addr, database string) {
	t.Helper()
	addr = ClickHouse(t)
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("naming a test database: %v", err)
	}
	database = "aivis_test_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := ch.Open(&ch.Options{Addr: []string{addr}, DialTimeout: 2 * time.Second})
		if err != nil {
			t.Errorf("connecting to drop test database %s: %v", database, err)
			return
		}
		defer conn.Close()
		if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS `"+database+"`"); err != nil {
			t.Errorf("dropping test database %s: %v", database, err)
		}
	})
	return addr, database
}

// ClickHouseScript returns the absolute path of deploy/scripts/clickhouse.sh,
// for tests that start and stop a private server.
func ClickHouseScript(t testing.TB) string {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "deploy", "scripts", "clickhouse.sh")
}

// ClickHouseUser returns the user with a password that
// deploy/scripts/clickhouse.sh configures (AIVISDEV_CH_USER and
// AIVISDEV_CH_PASSWORD, or the script's defaults), after checking that it
// can log in to the server at addr. A server without it skips the test
// locally and fails it under CI=true.
func ClickHouseUser(t testing.TB, addr string) (user, password string) {
	t.Helper()
	user, password = envOr("AIVISDEV_CH_USER", "aivis_test"), envOr("AIVISDEV_CH_PASSWORD", "aivis-dev-password")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := ch.Open(&ch.Options{Addr: []string{addr}, DialTimeout: 2 * time.Second,
		Auth: ch.Auth{Username: user, Password: password}})
	if err == nil {
		err = conn.Ping(ctx)
		_ = conn.Close()
	}
	RequireOrSkip(t, "ClickHouse user "+user+" at "+addr, err,
		"start the server with `make clickhouse-up` (deploy/scripts/clickhouse.sh up configures the user; a server started by an older script lacks it: clickhouse.sh down && up), or set AIVISDEV_CH_USER and AIVISDEV_CH_PASSWORD")
	return user, password
}

// SecureClickHouse is the TLS native port of the test server, as
// deploy/scripts/clickhouse.sh configures it.
type SecureClickHouse struct {
	// Addr is host:port of the TLS native protocol.
	Addr string
	// CAFile signed the server's certificate.
	CAFile string
}

// ClickHouseTLS returns the TLS native port of the server at addr (from
// ClickHouse): AIVISDEV_CLICKHOUSE_TLS_ADDR, or else addr's port + 440
// (clickhouse.sh's default, 9440 for 9000); the CA from
// AIVISDEV_CH_CA_FILE, or else tls/ca.pem in AIVISDEV_CH_DIR or
// <repo>/.aivis/clickhouse. A port that does not complete a TLS handshake
// and a ClickHouse ping with that CA skips the test locally and fails it
// under CI=true.
func ClickHouseTLS(t testing.TB, addr string) SecureClickHouse {
	t.Helper()
	s := SecureClickHouse{Addr: os.Getenv("AIVISDEV_CLICKHOUSE_TLS_ADDR"), CAFile: os.Getenv("AIVISDEV_CH_CA_FILE")}
	if s.Addr == "" {
		if host, port, err := net.SplitHostPort(addr); err == nil {
			n, _ := strconv.Atoi(port)
			s.Addr = net.JoinHostPort(host, strconv.Itoa(n+440))
		}
	}
	if s.CAFile == "" {
		dir := os.Getenv("AIVISDEV_CH_DIR")
		if dir == "" {
			root, err := RepoRoot()
			if err != nil {
				t.Fatal(err)
			}
			dir = filepath.Join(root, ".aivis", "clickhouse")
		}
		s.CAFile = filepath.Join(dir, "tls", "ca.pem")
	}
	err := func() error {
		b, err := os.ReadFile(s.CAFile)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return fmt.Errorf("%s holds no PEM certificate", s.CAFile)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn, err := ch.Open(&ch.Options{Addr: []string{s.Addr}, DialTimeout: 2 * time.Second,
			TLS: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}})
		if err != nil {
			return err
		}
		defer conn.Close()
		return conn.Ping(ctx)
	}()
	RequireOrSkip(t, "the TLS native port of ClickHouse at "+s.Addr+" (CA "+s.CAFile+")", err,
		"start the server with `make clickhouse-up` (deploy/scripts/clickhouse.sh up opens it; a server started by an older script lacks it: clickhouse.sh down && up), or set AIVISDEV_CLICKHOUSE_TLS_ADDR and AIVISDEV_CH_CA_FILE")
	return s
}
