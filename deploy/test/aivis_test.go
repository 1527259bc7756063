package deploytest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// repoRoot is the aivis repository, two levels up from deploy/test.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

var (
	buildOnce sync.Once
	aivisBin  string
	buildErr  error
	buildOut  []byte
)

// aivis returns the aivis binary: AIVISDEV_AIVIS_BIN, bin/aivis when make
// build made it, or one built here into a temporary directory.
func aivis(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("AIVISDEV_AIVIS_BIN"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "aivis-deploytest-")
		if err != nil {
			buildErr = err
			return
		}
		aivisBin = filepath.Join(dir, "aivis")
		cmd := exec.Command("go", "build", "-o", aivisBin, "./cmd/aivis")
		cmd.Dir = repoRoot(t)
		buildOut, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("building aivis: %v\n%s", buildErr, buildOut)
	}
	return aivisBin
}

// validateConfig runs `aivis config validate` with the config file (if
// any, with the other files of its ConfigMap beside it) and only the given
// environment, so that every key a deployment sets must be one aivis knows,
// with a value it accepts.
func validateConfig(t *testing.T, what string, configYAML string, files map[string]string, env map[string]string) {
	t.Helper()
	args := []string{"config", "validate"}
	if configYAML != "" {
		// The ConfigMap's files, where the pod would see them.
		dir := t.TempDir()
		configYAML = strings.ReplaceAll(configYAML, "/etc/aivis/", dir+"/")
		for name, content := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		path := filepath.Join(dir, "aivis.yaml")
		if err := os.WriteFile(path, []byte(configYAML), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--config", path)
	}
	cmd := exec.Command(aivis(t), args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("%s: aivis config validate rejects the configuration it is given: %v\n%s\nconfig:\n%s\nenv: %v",
			what, err, strings.TrimSpace(string(out)), configYAML, env)
	}
}
