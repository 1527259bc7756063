// Package prometheus holds aivis's Prometheus alert rules
// (aivis-alerts.yaml) and their tests: promtool's unit tests, a check that
// every metric the rules read is one aivis exports, and a real Prometheus
// scraping a running aivis with the rules loaded.
package prometheus

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aivis-dev/aivis/internal/testenv"
)

// tool returns the path of a Prometheus binary, which
// deploy/scripts/prometheus.sh installs.
func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	testenv.RequireOrSkip(t, name, err, "install Debian's prometheus package with `deploy/scripts/prometheus.sh up` (make test does)")
	return p
}

// TestAlertRules checks the rules and runs their unit tests with promtool.
func TestAlertRules(t *testing.T) {
	promtool := tool(t, "promtool")
	for _, args := range [][]string{{"check", "rules", "aivis-alerts.yaml"}, {"test", "rules", "aivis-alerts.test.yaml"}} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

var (
	metricInText = regexp.MustCompile(`\b(aivis|process)_[a-z_]+`)
	metricInCode = regexp.MustCompile(`Name:\s*"(aivis_[a-z_]+)"`)
)

// exportedMetrics returns the metric names aivis's code registers, with
// the Go and process collectors' that every process also exports.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{"process_cpu_seconds_total": true, "process_resident_memory_bytes": true}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range metricInCode.FindAllSubmatch(b, -1) {
			exported[string(m[1])] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !exported["aivis_deadletter_total"] {
		t.Fatalf("found no aivis_deadletter_total in the code; the scan is broken (found %d names)", len(exported))
	}
	return exported
}

// unexported returns the metric names in text that no aivis process
// exports; histogram series count by their family.
func unexported(exported map[string]bool, text string) []string {
	var out []string
	for _, name := range metricInText.FindAllString(text, -1) {
		base := name
		for _, suffix := range []string{"_count", "_sum", "_bucket"} {
			if b, ok := strings.CutSuffix(name, suffix); ok && exported[b] {
				base = b
			}
		}
		if !exported[base] {
			out = append(out, name)
		}
	}
	return out
}

// TestRulesReadExportedMetrics: a rule on a metric name aivis does not
// export never fires, and promtool cannot tell.
func TestRulesReadExportedMetrics(t *testing.T) {
	rules, err := os.ReadFile("aivis-alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range unexported(exportedMetrics(t), string(rules)) {
		t.Errorf("aivis-alerts.yaml reads %s, which no aivis code registers", name)
	}
}

// dashboardPath is the Prometheus dashboard of the pipeline.
const dashboardPath = "../grafana/aivis-pipeline.json"

// dashboardQuery is one PromQL query of the dashboard.
type dashboardQuery struct {
	panel, expr string
}

// dashboardQueries reads every panel's queries, checking that each panel
// is on the dashboard's Prometheus data source.
func dashboardQueries(t *testing.T) []dashboardQuery {
	t.Helper()
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title      string `json:"title"`
			Type       string `json:"type"`
			Datasource struct {
				Type string `json:"type"`
				UID  string `json:"uid"`
			} `json:"datasource"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	var out []dashboardQuery
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue
		}
		if p.Datasource.Type != "prometheus" || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: data source %+v, want the dashboard's Prometheus variable", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			out = append(out, dashboardQuery{p.Title, tg.Expr})
		}
	}
	if len(out) < 10 {
		t.Fatalf("%s: found %d queries; the parse is broken", dashboardPath, len(out))
	}
	return out
}

// TestDashboardReadsExportedMetrics: a panel on a metric name aivis does
// not export stays empty, and nothing says why.
func TestDashboardReadsExportedMetrics(t *testing.T) {
	exported := exportedMetrics(t)
	for _, q := range dashboardQueries(t) {
		for _, name := range unexported(exported, q.expr) {
			t.Errorf("panel %q reads %s, which no aivis process exports", q.panel, name)
		}
		if !strings.Contains(q.expr, `job=~"$job"`) {
			t.Errorf("panel %q does not filter on the job variable: %s", q.panel, q.expr)
		}
	}
}

// start runs cmd until the test ends, then interrupts it and waits.
func start(t *testing.T, name string, cmd *exec.Cmd) {
	t.Helper()
	log := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		f.Close()
		if t.Failed() {
			b, _ := os.ReadFile(log)
			t.Logf("%s log (last 3000 bytes):\n%s", name, tail(b, 3000))
		}
	})
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// promQuery runs an instant query and returns its result vector.
func promQuery(ctx context.Context, addr, q string) ([]json.RawMessage, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/api/v1/query?query="+url.QueryEscape(q), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("query %s: %s", q, body.Error)
	}
	return body.Data.Result, nil
}

// TestPrometheusScrapesAivis runs aivis dev (embedded Kafka, real
// ClickHouse, a little synthetic traffic) and Debian's Prometheus with the
// alert rules, and checks that Prometheus scrapes aivis's metrics, sees
// the pipeline work, and evaluates every rule without error.
func TestPrometheusScrapesAivis(t *testing.T) {
	if testing.Short() {
		t.Skip("starts aivis and Prometheus")
	}
	promBin := tool(t, "prometheus")
	chAddr, db := testenv.ClickHouseDatabase(t)
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	aivis := filepath.Join(dir, "aivis")
	build := exec.Command("go", "build", "-o", aivis, "./cmd/aivis")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building aivis: %v\n%s", err, out)
	}

	metricsAddr, promAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
	dev := exec.Command(aivis, "dev", "--rate", "20")
	dev.Env = append(os.Environ(),
		"AIVIS_CLICKHOUSE__ADDR="+chAddr, "AIVIS_CLICKHOUSE__DATABASE="+db,
		"AIVIS_METRICS_ADDR="+metricsAddr, "AIVIS_INGEST__LISTEN_ADDR="+testenv.FreeAddr(t),
		"AIVIS_AGGREGATE__ANOMALY__INTERVAL=1s")
	start(t, "aivis", dev)

	rules, err := filepath.Abs("aivis-alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: aivis
    static_configs:
      - targets: [%q]
`, rules, metricsAddr)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	start(t, "prometheus", exec.Command(promBin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+promAddr, "--log.level=warn"))

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	// Each query must return a series before the deadline: the target is
	// up, events went through ingest and enrich, and the aggregator made
	// flushes durable in ClickHouse.
	for _, q := range []string{
		`up{job="aivis"} == 1`,
		`aivis_build_info{job="aivis"}`,
		`sum(aivis_ingest_events_total{job="aivis"}) > 0`,
		`sum(aivis_enrich_events_total{job="aivis"}) > 0`,
		`aivis_enrich_consumer_lag{job="aivis"}`,
		`aivis_aggregate_consumer_lag{job="aivis"}`,
		`aivis_aggregate_flush_seconds_count{job="aivis"} > 0`,
		`aivis_aggregate_dedup_evictions_total{job="aivis"} == 0`,
	} {
		for {
			res, err := promQuery(ctx, promAddr, q)
			if err == nil && len(res) > 0 {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("Prometheus never answered %s with a series (last error: %v)", q, err)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}

	// Every dashboard query runs; those of a working pipeline show data.
	shows := map[string]bool{
		"Events per second, by stage": true, "Consumer lag, by process": true, "Aggregator flush time": true,
		"Ingest requests per second, by status": true, "Ingest produce time": true, "ClickHouse INSERT time, p99 by table": true,
		"Open windows and pending events": true, "Dedup memory": true, "CPU per process": true, "Resident memory per process": true,
	}
	for _, q := range dashboardQueries(t) {
		expr := strings.NewReplacer(`$job`, `aivis`, `$__rate_interval`, `30s`).Replace(q.expr)
		for {
			res, err := promQuery(ctx, promAddr, expr)
			if err != nil {
				t.Fatalf("panel %q: %v", q.panel, err)
			}
			if len(res) > 0 || !shows[q.panel] {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("panel %q shows nothing on a working pipeline: %s", q.panel, expr)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}

	// Every rule has been evaluated, without error.
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+promAddr+"/api/v1/rules", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("reading the rules' state: %v", err)
		}
		var body struct {
			Data struct {
				Groups []struct {
					Rules []struct {
						Name           string    `json:"name"`
						Health         string    `json:"health"`
						LastError      string    `json:"lastError"`
						LastEvaluation time.Time `json:"lastEvaluation"`
						State          string    `json:"state"`
					} `json:"rules"`
				} `json:"groups"`
			} `json:"data"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		n, evaluated := 0, 0
		for _, g := range body.Data.Groups {
			for _, r := range g.Rules {
				n++
				if r.LastEvaluation.Year() > 2000 {
					evaluated++
				}
				if r.Health == "err" {
					t.Fatalf("rule %s fails to evaluate: %s", r.Name, r.LastError)
				}
				if r.State == "firing" {
					t.Errorf("rule %s fires on a healthy pipeline", r.Name)
				}
			}
		}
		if n == 0 {
			t.Fatal("Prometheus loaded no rules from aivis-alerts.yaml")
		}
		if evaluated == n {
			t.Logf("Prometheus scraped aivis and evaluated %d rules", n)
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("only %d of %d rules were evaluated", evaluated, n)
		}
		time.Sleep(time.Second)
	}
}

// TestRunbookLinks: every docs/operations.md#section an alert points at
// exists, so the link in a page lands where it should.
func TestRunbookLinks(t *testing.T) {
	rules, err := os.ReadFile("aivis-alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for _, line := range strings.Split(string(doc), "\n") {
		if h, ok := strings.CutPrefix(line, "## "); ok {
			anchors[strings.ReplaceAll(strings.ToLower(strings.TrimSpace(h)), " ", "-")] = true
		}
	}
	links := regexp.MustCompile(`docs/operations\.md#([a-z0-9-]+)`).FindAllStringSubmatch(string(rules), -1)
	if len(links) < 5 {
		t.Fatalf("found %d runbook links in the rules; the scan is broken", len(links))
	}
	for _, l := range links {
		if !anchors[l[1]] {
			t.Errorf("aivis-alerts.yaml links to docs/operations.md#%s, which has no such section", l[1])
		}
	}
}
