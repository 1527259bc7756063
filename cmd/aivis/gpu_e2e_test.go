package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/spf13/pflag"

	"github.com/aivis-dev/aivis/gpuprobe"
	"github.com/aivis-dev/aivis/gpuprobe/gpusim"
	"github.com/aivis-dev/aivis/internal/bus"
	"github.com/aivis-dev/aivis/internal/testenv"
	"github.com/aivis-dev/aivis/report"
	"github.com/aivis-dev/aivis/schemas"
	"github.com/aivis-dev/aivis/serving"
)

// gpuE2ECatalog is e2eCatalog plus an H100 at 3.60 USD per GPU-hour:
// 0.001 USD per allocated GPU-second.
const gpuE2ECatalog = e2eCatalog + `gpus:
  - id: e2e/h100
    match: {gpu_models: [NVIDIA H100 80GB HBM3]}
    effective_from: 2020-01-01T00:00:00Z
    gpu_hour: "3.60"
    source_url: https://example.com/gpus
    retrieved_at: 2026-11-26
`

// TestGPUEndToEndRealBroker runs a mocked GPU host (go-nvml's dgxa100
// mock through gpusim: two H100s, /proc and kubelet trees) read by
// gpuprobe, and a vLLM server's recorded /metrics pages scraped by
// serving, into the real Kafka broker → enrich → aggregate → ClickHouse,
// and checks GPU cost per team, idle cost, energy and cost per 1M
// self-hosted tokens against numbers worked by hand, then `aivis report`.
//
// GPU 0 (500 W, 80 % busy) is shared by the vLLM pod (SM 60, namespace
// llm → team search, deployment llama-3-8b by rule) and a training pod
// (SM 20, namespace research → team research): 3/4 and 1/4 of every
// 10 s read. GPU 1 (60 W) is idle. Twelve reads make two 1-minute windows:
//
//	search:       90 s = 0.09 USD, busy 72 s, 45 kJ = 0.0125 kWh
//	research:     30 s = 0.03 USD, busy 24 s, 15 kJ
//	unattributed: 120 s idle = 0.12 USD, all idle cost, 7.2 kJ = 0.002 kWh
//
// The pages count 750 prompt and 925 generated tokens and 5 requests
// between the two scrapes: 0.09 USD × 1e6 / 1675 tokens per 1M; model-a
// (2.50 in, 10.00 out per 1M) would cost 0.011125 USD for them.
func TestGPUEndToEndRealBroker(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: needs Kafka and ClickHouse")
	}
	brokers := testenv.Kafka(t)
	deleteAivisTopics(t, brokers)
	cfg, token := testConfig(t, brokers, 3)
	cfg.Enrich.CatalogPath = writeTestFile(t, "catalog.yaml", gpuE2ECatalog)
	cfg.Enrich.OwnersPath = writeTestFile(t, "owners.yaml", "namespaces:\n  llm: {team: search}\n  research: {team: research}\n")
	cfg.GPUCost.EnergyUSDPerKWh, cfg.GPUCost.GridGCO2PerKWh = "0.10", 400
	cfg.Aggregate.IdleTimeout = 3 * time.Second
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	p, ctx := startPipeline(t, cfg, token, log)
	producer, err := bus.Dialer{Brokers: brokers, ClientID: "gpu-e2e"}.Producer("test")
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	produced := 0
	emit := func(ctx context.Context, evs []schemas.Event) error {
		produced += len(evs)
		return bus.ProduceEvents(ctx, producer, evs, "test events")
	}

	// The GPU host.
	base := time.Now().UTC().Truncate(time.Minute).Add(-5 * time.Minute)
	host, err := gpusim.New(t.TempDir(), "gpu-node-1", base, gpusim.DefaultModel, gpusim.DefaultModel)
	if err != nil {
		t.Fatal(err)
	}
	for _, pod := range []struct {
		pid           uint32
		uid, name, ns string
	}{
		{4101, "7f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b", "vllm-llama-3-8b-6d5f7c9b8-x2kqp", "llm"},
		{4102, "8a1b2c3d-4e5f-4a6b-9c7d-8e9f0a1b2c3d", "trainer-0", "research"},
	} {
		if err := host.AddPod(pod.pid, pod.uid, pod.name, pod.ns); err != nil {
			t.Fatal(err)
		}
	}
	host.Set(0, gpusim.Load{UtilPercent: 80, PowerWatts: 500, Processes: []gpusim.Process{
		{PID: 4101, MemoryBytes: 60 << 30, SMPercent: 60}, {PID: 4102, MemoryBytes: 10 << 30, SMPercent: 20}}})
	host.Set(1, gpusim.Load{PowerWatts: 60})
	gcfg := cfg.GPUProbe
	gcfg.ProcRoot, gcfg.KubeletRoot, gcfg.Host = host.ProcRoot(), host.KubeletRoot(), "gpu-node-1"
	gcfg.DeploymentsPath = writeTestFile(t, "deployments.yaml",
		"deployments:\n  - deployment: llama-3-8b\n    match: {namespace: llm, pod: \"vllm-llama-3-8b-*\"}\n")
	probe, err := gpuprobe.Open(host.Server, gcfg, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	for i := range 13 {
		at := base.Add(time.Duration(i) * 10 * time.Second)
		host.Advance(at)
		if err := probe.ReadAt(at, func(evs []schemas.Event) error { return emit(ctx, evs) }); err != nil {
			t.Fatal(err)
		}
	}
	if produced != 6 {
		t.Fatalf("the probe emitted %d events, want 2 windows × 3 owners", produced)
	}

	// The vLLM server: its first page, then its second.
	var scrapes atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		page := "../../serving/testdata/vllm-2.prom"
		if scrapes.Add(1) == 1 {
			page = "../../serving/testdata/vllm-1.prom"
		}
		body, err := os.ReadFile(page)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_, _ = w.Write(body)
	}))
	defer srv.Close()
	scfg := serving.DefaultConfig()
	targets := []serving.Target{{Deployment: "llama-3-8b", URL: srv.URL + "/metrics", Kind: serving.VLLM, Host: "gpu-node-1",
		Namespace: "llm", Labels: map[string]string{"team": "search"}}}
	scraper, err := serving.NewScraper(scfg, targets, emit, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	scraper.Round(ctx, base)
	if sent := scraper.Round(ctx, base.Add(scfg.Interval)); len(sent) != 1 {
		t.Fatalf("the second scrape sent %d events, want 1 (the Llama model's delta)", len(sent))
	}

	if err := p.Drain(2 * time.Minute); err != nil {
		t.Fatal(err)
	}

	// GPU cost per team, from the report (view gpu_cost_by_window).
	comparables := map[string]string{"llama-3-8b": "openai/model-a"}
	opts, err := reportOptions(reportFlagSet(t, "--since", "3h"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if opts.Comparables != nil && len(opts.Comparables) != 0 {
		t.Fatalf("comparables without configuration: %v", opts.Comparables)
	}
	cfg.SelfHosted.Comparables = []string{"llama-3-8b=openai/model-a"}
	if opts, err = reportOptions(reportFlagSet(t, "--since", "3h"), cfg); err != nil || opts.Catalog == nil || opts.Comparables["llama-3-8b"] != comparables["llama-3-8b"] {
		t.Fatalf("report options from the configuration: %+v, %v", opts, err)
	}
	res, err := report.Build(ctx, p.Store, opts)
	if err != nil {
		t.Fatal(err)
	}
	d := decimal.RequireFromString
	type team struct {
		alloc, busy, kwh, energyUSD, gco2 float64
		cost, idleCost                    string
	}
	want := map[string]team{
		"search":             {90, 72, 0.0125, 0.00125, 5, "0.09", "0"},
		"research":           {30, 24, 15000.0 / 3.6e6, 0.0015 / 3.6, 15000.0 / 3.6e6 * 400, "0.03", "0"},
		schemas.Unattributed: {120, 0, 0.002, 0.0002, 0.8, "0.12", "0.12"},
	}
	if len(res.GPU) != len(want) {
		t.Errorf("GPU rows %+v, want %d teams", res.GPU, len(want))
	}
	near := func(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }
	for _, g := range res.GPU {
		w, ok := want[g.Team]
		if !ok || !near(g.AllocatedGPUSeconds, w.alloc) || !near(g.BusyGPUSeconds, w.busy) || !near(g.IdleGPUSeconds, w.alloc-w.busy) ||
			!near(g.EnergyKWh, w.kwh) || !near(g.EnergyCostUSD, w.energyUSD) || !near(g.EmissionsGCO2, w.gco2) ||
			!g.CostUSD.Equal(d(w.cost)) || !g.IdleCostUSD.Equal(d(w.idleCost)) {
			t.Errorf("team %s: got %+v, want %+v", g.Team, g, w)
		}
	}

	// Cost per 1M self-hosted tokens (view self_hosted_cost_by_day).
	perM := d("90000").DivRound(d("1675"), 12)
	comparablePerM := d("11125").DivRound(d("1675"), 12)
	if len(res.SelfHosted) != 1 {
		t.Fatalf("self-hosted rows %+v, want llama-3-8b", res.SelfHosted)
	}
	sh := res.SelfHosted[0]
	if sh.Deployment != "llama-3-8b" || !sh.GPUCostUSD.Equal(d("0.09")) || sh.Requests != 5 || sh.InputTokens != 750 || sh.OutputTokens != 925 ||
		!sh.CostPer1MUSD.Equal(perM) || !sh.ComparablePriced || !sh.ComparableCostPer1MUSD.Equal(comparablePerM) {
		t.Errorf("llama-3-8b = %+v, want 0.09 USD, 5 requests, 750+925 tokens, %s per 1M against %s", sh, perM, comparablePerM)
	}
	var viewPerM decimal.Decimal
	if err := p.Store.QueryRow(ctx, "SELECT sum(gpu_cost_usd) * 1000000 / sum(tokens) FROM self_hosted_cost_by_day WHERE deployment = 'llama-3-8b'").Scan(&viewPerM); err != nil {
		t.Fatal(err)
	}
	if !viewPerM.Round(6).Equal(perM.Round(6)) {
		t.Errorf("view: %s per 1M, want %s", viewPerM, perM)
	}
	var gpuSettings uint64
	if err := p.Store.QueryRow(ctx, "SELECT count() FROM gpu_settings FINAL WHERE value > 0").Scan(&gpuSettings); err != nil || gpuSettings != 2 {
		t.Errorf("gpu_settings rows written from gpu_cost: %d, %v", gpuSettings, err)
	}

	// aivis report shows them.
	code, stdout, stderr := runCLI("report", "--metrics_addr", "", "--clickhouse.addr", cfg.ClickHouse.Addr, "--clickhouse.database", cfg.ClickHouse.Database,
		"--enrich.catalog_path", cfg.Enrich.CatalogPath, "--self_hosted.comparables", "llama-3-8b=openai/model-a", "--since", "3h")
	if code != 0 {
		t.Fatalf("aivis report: exit %d\n%s", code, stderr)
	}
	for _, line := range [][]string{
		{"-", "GPU time (no model)", "6", "0.240000"},
		{"GPU COST BY TEAM"},
		{"search", "0.025", "0.020", "80.0%", "0.013", "0.001250", "0.005", "0.000000", "0.090000"},
		{schemas.Unattributed, "0.033", "0.000", "0.0%", "0.002", "0.000200", "0.001", "0.120000", "0.120000"},
		{"SELF-HOSTED VS API"},
		{"llama-3-8b", "5", "1,675", "0.090000", perM.StringFixed(6), "openai/model-a", comparablePerM.StringFixed(6)},
	} {
		if !hasLine(stdout, line...) {
			t.Errorf("aivis report has no line with %q:\n%s", line, stdout)
		}
	}
}

// hasLine reports whether one line of out holds every field, in order.
func hasLine(out string, fields ...string) bool {
	for _, l := range strings.Split(out, "\n") {
		rest, ok := l, true
		for _, f := range fields {
			i := strings.Index(rest, f)
			if i < 0 {
				ok = false
				break
			}
			rest = rest[i+len(f):]
		}
		if ok {
			return true
		}
	}
	return false
}

// reportFlagSet is aivis report's flags, parsed from args.
func reportFlagSet(t *testing.T, args ...string) *pflag.FlagSet {
	t.Helper()
	fs := pflag.NewFlagSet("report", pflag.ContinueOnError)
	reportFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return fs
}
