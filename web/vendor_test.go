package web

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestVendoredChartJS checks the embedded Chart.js against the sha256 that
// deploy/scripts/vendor-chartjs.sh pins (and fetches from npm with), and
// that its license ships beside it.
func TestVendoredChartJS(t *testing.T) {
	script, err := os.ReadFile("../deploy/scripts/vendor-chartjs.sh")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^sha256=([0-9a-f]{64})$`).FindSubmatch(script)
	if m == nil {
		t.Fatal("deploy/scripts/vendor-chartjs.sh pins no sha256")
	}
	lib, err := static.ReadFile("static/vendor/chart.umd.min.js")
	if err != nil {
		t.Fatal(err)
	}
	if got := sha256.Sum256(lib); hex.EncodeToString(got[:]) != string(m[1]) {
		t.Errorf("embedded chart.umd.min.js has sha256 %x, the script pins %s: run deploy/scripts/vendor-chartjs.sh fetch", got, m[1])
	}
	license, err := static.ReadFile("static/vendor/chart.js.LICENSE.md")
	if err != nil || !strings.Contains(string(license), "MIT") {
		t.Errorf("Chart.js's license is missing beside it: %v", err)
	}
}
