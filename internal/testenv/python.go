package testenv

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// VenvPython returns the interpreter of the venv that a deploy/scripts
// install script puts a Python package into: the directory in the
// environment variable venvEnv, or <repo>/.aivis/<dir>. It requires that
// module imports there (see RequirePython).
func VenvPython(t testing.TB, venvEnv, dir, module, what, script string) string {
	t.Helper()
	venv := os.Getenv(venvEnv)
	if venv == "" {
		root, err := RepoRoot()
		if err != nil {
			t.Fatalf("finding the repository root for the %s venv: %v", what, err)
		}
		venv = filepath.Join(root, ".aivis", dir)
	}
	py := filepath.Join(venv, "bin", "python")
	RequirePython(t, py, module, what, script)
	return py
}

// RequirePython checks that the interpreter py imports module. Locally a
// missing interpreter or module skips the test, naming what and the
// install script; under CI=true it fails it.
func RequirePython(t testing.TB, py, module, what, script string) {
	t.Helper()
	var err error
	if _, statErr := os.Stat(py); statErr != nil {
		err = statErr
	} else if out, runErr := exec.Command(py, "-c", "import "+module).CombinedOutput(); runErr != nil {
		err = errors.New(strings.TrimSpace(string(out)))
	}
	RequireOrSkip(t, what+" at "+py, err, "install it with `"+script+" up` (make test does)")
}
