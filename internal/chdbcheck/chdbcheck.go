// Package chdbcheck runs the SQL that aivis sends to ClickHouse on current
// ClickHouse, embedded in Python by chDB, so that tests check the DDL and
// queries for modern servers as well as the 18.16 server they run against.
// A Recorder stands in for the connection and collects the statements; Run
// executes them in order in a fresh chDB session (deploy/scripts/chdb_check.py)
// and fails the test with the statement and the engine's error. A Conn
// instead runs each statement at once in a live chDB session
// (deploy/scripts/chdb_serve.py) and answers queries with their rows, so
// that tests can run aivis's code on both engines and compare what it
// builds. chDB checks SQL only, not the native protocol.
package chdbcheck

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aivis-dev/aivis/internal/testenv"
)

// Python returns the interpreter of the venv that deploy/scripts/chdb.sh
// installs chDB into: AIVISDEV_CHDB_PYTHON, or <repo>/.aivis/chdb-venv.
// Locally a missing venv skips the test; under CI=true it fails it.
func Python(t testing.TB) string {
	t.Helper()
	const what, script = "chDB (current ClickHouse in Python)", "deploy/scripts/chdb.sh"
	if py := os.Getenv("AIVISDEV_CHDB_PYTHON"); py != "" {
		testenv.RequirePython(t, py, "chdb", what, script)
		return py
	}
	return testenv.VenvPython(t, "AIVISDEV_CHDB_VENV", "chdb-venv", "chdb", what, script)
}

// Run executes stmts in order in one fresh chDB session and fails t with
// the first statement the engine rejects.
func Run(t testing.TB, stmts []Statement) {
	t.Helper()
	py := Python(t)
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatalf("finding the repository root for chdb_check.py: %v", err)
	}
	b, err := json.MarshalIndent(stmts, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "statements.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, filepath.Join(root, "deploy", "scripts", "chdb_check.py"), path)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("running %d statements on chDB (%s): %v\n%s", len(stmts), path, err, out.String())
	}
	t.Logf("chDB: %s", strings.TrimSpace(out.String()))
}
