package main

import (
	"slices"
	"strings"
	"testing"
)

// TestBudgetReportCommand: `report budgets` is its own command, and
// `report` still takes its flags right after it.
func TestBudgetReportCommand(t *testing.T) {
	for _, c := range []struct {
		args []string
		name string
		rest []string
	}{
		{[]string{"report", "budgets", "--format", "json"}, "report budgets", []string{"--format", "json"}},
		{[]string{"report", "--since", "1h"}, "report", []string{"--since", "1h"}},
		{[]string{"config", "validate"}, "config validate", []string{}},
	} {
		name, rest := pickCommand(c.args)
		if name != c.name || !slices.Equal(rest, c.rest) {
			t.Errorf("pickCommand(%q) = %q %q, want %q %q", c.args, name, rest, c.name, c.rest)
		}
	}
	code, _, stderr := runCLI("report", "budgets", "--format", "xml")
	if code == 0 || !strings.Contains(stderr, `--format "xml": want table or json`) {
		t.Fatalf("report budgets --format xml: exit %d, stderr:\n%s", code, stderr)
	}
}
