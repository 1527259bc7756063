package clickhouse

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aivis-dev/aivis/internal/security"
	"github.com/aivis-dev/aivis/internal/testenv"
)

// TestPasswordUser connects as the user with a password that
// deploy/scripts/clickhouse.sh configures, with the password inline and in
// a file; a wrong password is refused with what to check, and never
// quoted.
func TestPasswordUser(t *testing.T) {
	if testing.Short() {
		t.Skip("needs ClickHouse")
	}
	addr, db := testenv.ClickHouseDatabase(t)
	user, password := testenv.ClickHouseUser(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	cfg := DefaultConfig()
	cfg.Addr, cfg.Database, cfg.Username = addr, db, user
	pwFile := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.PasswordFile = pwFile
	s, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("opening with password_file: %v", err)
	}
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatalf("migrating as %s: %v", user, err)
	}
	_ = s.Close()

	cfg.PasswordFile, cfg.Password = "", "not-"+password
	_, err = Open(ctx, cfg)
	if err == nil || !strings.Contains(err.Error(), "check clickhouse.username and clickhouse.password") {
		t.Fatalf("a wrong password: %v; want the credentials named", err)
	}
	if strings.Contains(err.Error(), cfg.Password) {
		t.Errorf("the error quotes the password: %v", err)
	}
}

// TestSecretAndTLSConfig: password and password_file exclude each other,
// an unreadable file is named by its key, and clickhouse.tls reaches the
// driver's options.
func TestSecretAndTLSConfig(t *testing.T) {
	certs := testenv.TestCerts(t)
	cfg := DefaultConfig()
	cfg.Password, cfg.PasswordFile = "inline-secret", filepath.Join(t.TempDir(), "missing")
	cfg.TLS = security.ClientTLS{CAFile: "/nonexistent/ca.pem", CertFile: certs.ClientCert}
	err := cfg.Validate()
	for _, want := range []string{"clickhouse.password and clickhouse.password_file are both set",
		"clickhouse.tls.ca_file: stat /nonexistent/ca.pem", "clickhouse.tls: cert_file and key_file go together"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want %q", err, want)
		}
	}
	if err != nil && strings.Contains(err.Error(), "inline-secret") {
		t.Errorf("Validate quotes the password: %v", err)
	}

	cfg = DefaultConfig()
	cfg.Addr = "db.example.internal:9440"
	cfg.PasswordFile = filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(cfg.PasswordFile, []byte("from-file\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.TLS = security.ClientTLS{CAFile: certs.CA, CertFile: certs.ClientCert, KeyFile: certs.ClientKey, ServerName: "db.example.internal"}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	o, err := options(cfg, "aivis", nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.Auth.Password != "from-file" {
		t.Errorf("password from the file = %q", o.Auth.Password)
	}
	if o.TLS == nil || o.TLS.RootCAs == nil || len(o.TLS.Certificates) != 1 || o.TLS.ServerName != "db.example.internal" {
		t.Errorf("TLS options = %+v", o.TLS)
	}
	cfg.TLS = security.ClientTLS{}
	if o, _ := options(cfg, "aivis", nil); o.TLS != nil {
		t.Error("TLS is on without clickhouse.tls")
	}
	cfg.TLS.Enabled = true
	if o, _ := options(cfg, "aivis", nil); o.TLS == nil || o.TLS.RootCAs != nil {
		t.Error("clickhouse.tls.enabled alone should use TLS with the system's roots")
	}
	if got := cfg.LogValue().String(); strings.Contains(got, "from-file") || !strings.Contains(got, "password_set=true") {
		t.Errorf("LogValue = %s", got)
	}
}

// TestTLS connects to the TLS native port that deploy/scripts/clickhouse.sh
// opens, as the user with a password and trusting the script's CA: the
// migrations, a write and its read-back go over it. A plaintext client on
// that port, a TLS client that trusts another CA and a TLS client on the
// plaintext port are refused, each with an error that names the setting
// to fix and never quotes the password.
func TestTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("needs ClickHouse")
	}
	addr, db := testenv.ClickHouseDatabase(t)
	user, password := testenv.ClickHouseUser(t, addr)
	sec := testenv.ClickHouseTLS(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	cfg := DefaultConfig()
	cfg.Addr, cfg.Database, cfg.Username, cfg.Password = sec.Addr, db, user, password
	cfg.TLS = security.ClientTLS{CAFile: sec.CAFile}
	s, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("opening over TLS: %v", err)
	}
	defer s.Close()
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatalf("migrating over TLS: %v", err)
	}
	if err := s.Write(ctx, testEvents(10), nil); err != nil {
		t.Fatalf("writing over TLS: %v", err)
	}
	var n uint64
	if err := s.QueryRow(ctx, "SELECT count() FROM "+TableEvents).Scan(&n); err != nil || n != 10 {
		t.Fatalf("read back over TLS: %d events, %v; want 10", n, err)
	}

	for _, c := range []struct {
		name string
		edit func(*Config)
		want []string
	}{
		{"plaintext client on the TLS port", func(c *Config) { c.TLS = security.ClientTLS{} },
			[]string{"clickhouse.tls"}},
		{"TLS client trusting another CA", func(c *Config) { c.TLS.CAFile = testenv.TestCerts(t).CA },
			[]string{"certificate", "clickhouse.tls.ca_file"}},
		{"TLS client on the plaintext port", func(c *Config) { c.Addr = addr },
			[]string{"clickhouse.addr", "TLS"}},
	} {
		bad := cfg
		c.edit(&bad)
		bad.DialTimeout = 3 * time.Second
		_, err := Open(ctx, bad)
		if err == nil {
			t.Errorf("%s: connected", c.name)
			continue
		}
		t.Logf("%s: %v", c.name, err)
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v; want it to say %q", c.name, err, w)
			}
		}
		if strings.Contains(err.Error(), password) {
			t.Errorf("%s: the error quotes the password: %v", c.name, err)
		}
	}
}
