package main

import (
	"strings"
	"testing"
)

// TestCLIServingNeedsTargets: without a targets file aivis serving says
// which key to set instead of idling.
func TestCLIServingNeedsTargets(t *testing.T) {
	code, _, stderr := runCLI("serving", "--metrics_addr", "")
	if code != 1 || !strings.Contains(stderr, "serving.targets_path") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	code, _, stderr = runCLI("serving", "--metrics_addr", "", "--serving.targets_path", "../../deploy/nope.yaml")
	if code != 2 || !strings.Contains(stderr, "serving.targets_path") {
		t.Fatalf("a missing file: exit %d, stderr:\n%s", code, stderr)
	}
}
