package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aivis-dev/aivis/internal/testenv"
)

// TestMigrateOverTLS runs `aivis migrate` against ClickHouse's TLS native
// port (deploy/scripts/clickhouse.sh opens it) as the user with a
// password, trusting the script's CA; without clickhouse.tls, and trusting
// another CA, it fails with an error that names the setting to fix and
// never the password.
func TestMigrateOverTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("needs ClickHouse")
	}
	addr, db := testenv.ClickHouseDatabase(t)
	user, password := testenv.ClickHouseUser(t, addr)
	sec := testenv.ClickHouseTLS(t, addr)
	pwFile := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"migrate", "--topics=false", "--clickhouse.addr", sec.Addr, "--clickhouse.database", db,
		"--clickhouse.username", user, "--clickhouse.password_file", pwFile}

	code, stdout, stderr := runCLI(append(args, "--clickhouse.tls.ca_file", sec.CAFile)...)
	if code != 0 || !strings.Contains(stdout, "applied migrations [1 ") || !strings.Contains(stderr, "config.tls=true") {
		t.Fatalf("aivis migrate over TLS: exit %d\n%s%s", code, stdout, stderr)
	}
	if code, stdout, stderr := runCLI(append(args, "--clickhouse.tls.ca_file", sec.CAFile)...); code != 0 || strings.Contains(stdout+stderr, "applied migration") {
		t.Errorf("a second aivis migrate over TLS: exit %d, applied something\n%s%s", code, stdout, stderr)
	}

	for _, c := range []struct {
		name  string
		extra []string
		want  string
	}{
		{"without clickhouse.tls", nil, "set clickhouse.tls.enabled or clickhouse.tls.ca_file"},
		{"trusting another CA", []string{"--clickhouse.tls.ca_file", testenv.TestCerts(t).CA}, "set clickhouse.tls.ca_file to the CA that signed it"},
	} {
		code, stdout, stderr := runCLI(append(append(args, c.extra...), "--clickhouse.dial_timeout", "3s")...)
		if code == 0 || !strings.Contains(stderr, c.want) {
			t.Errorf("aivis migrate %s: exit %d, want an error saying %q\n%s%s", c.name, code, c.want, stdout, stderr)
		}
		if strings.Contains(stdout+stderr, password) {
			t.Errorf("aivis migrate %s prints the password", c.name)
		}
	}
}
