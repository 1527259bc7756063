package main

import (
	"strings"
	"testing"
)

// TestReportSavingsArgs: bad values of the report's own flags fail before
// anything is read, each saying what to give instead.
func TestReportSavingsArgs(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--format", "xml"}, `--format "xml": want table or json`},
		{[]string{"--until", "yesterday"}, `--until "yesterday": want an RFC 3339 time`},
		{[]string{"--since", "10s"}, "--since 10s: want at least 1m"},
		{[]string{"--savings.path", "/nonexistent/savings.yaml"}, "savings.path"},
	} {
		code, _, stderr := runCLI(append([]string{"report", "savings"}, c.args...)...)
		if code == 0 || !strings.Contains(stderr, c.want) {
			t.Errorf("aivis report savings %s: exit %d, stderr %q, want it to say %q", strings.Join(c.args, " "), code, stderr, c.want)
		}
	}
}
