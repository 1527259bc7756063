package serving

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestExampleTargetsFileLoads(t *testing.T) {
	ts, err := LoadTargets(filepath.Join("..", "deploy", "serving-targets.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 4 {
		t.Fatalf("got %d targets, want one per kind", len(ts))
	}
	if ts[0].Host == "" {
		t.Error("host is not defaulted from the url")
	}
}

func TestTargetsReportEveryProblem(t *testing.T) {
	_, err := ParseTargets([]byte(`targets:
  - deployment: ""
    url: ftp://x
    kind: ollama
  - deployment: tgi
    url: http://tgi:80/metrics
    kind: tgi
    labels: {deployment: x}
  - deployment: tgi
    url: http://tgi:80/metrics
    kind: tgi
    model: m
`))
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{"targets[0].deployment", "targets[0].url", "targets[0].kind", "targets[1].model", "targets[1].labels.deployment", "targets[2]: deployment \"tgi\""} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	if _, err := ParseTargets([]byte("targets:\n  - deployment: a\n    urll: http://x\n")); err == nil || !strings.Contains(err.Error(), "urll") {
		t.Errorf("unknown key: %v", err)
	}
	if _, err := ParseTargets([]byte("targets: []\n")); err == nil {
		t.Error("an empty list must be an error")
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	bad := Config{Interval: 0, Timeout: time.Hour, MaxPageMiB: 0, TargetsPath: filepath.Join(t.TempDir(), "nope.yaml")}
	err := bad.Validate()
	for _, want := range []string{"serving.interval", "serving.timeout", "serving.provider", "serving.max_page_mib", "serving.targets_path"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %s in %v", want, err)
		}
	}
}
