package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shopspring/decimal"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/budget"
	"github.com/aivis-dev/aivis/focus"
	"github.com/aivis-dev/aivis/governance"
	"github.com/aivis-dev/aivis/internal/testenv"
	"github.com/aivis-dev/aivis/pricing"
	"github.com/aivis-dev/aivis/reconcile"
	"github.com/aivis-dev/aivis/report"
	"github.com/aivis-dev/aivis/rerate"
	"github.com/aivis-dev/aivis/savings"
	"github.com/aivis-dev/aivis/schemas"
	chsink "github.com/aivis-dev/aivis/sinks/clickhouse"
	"github.com/aivis-dev/aivis/web"
)

// The cluster tests run on the local cluster of deploy/scripts/cluster.sh
// (`make test-cluster` starts it): a three-broker Kafka KRaft cluster
// (replication factor 3, min.insync.replicas=2) and ClickHouse in 2 shards
// of 2 replicas. See docs/cluster.md.

// TestClusterFaults runs the aggregator as a separate process on the
// cluster and breaks it three times under load: a broker killed with
// SIGKILL, a ClickHouse replica stopped and restarted, and a whole shard
// unavailable for 30 s. After each, the totals must equal the ground truth
// exactly and `aivis verify` must pass on the cluster.
func TestClusterFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster tests need the local cluster")
	}
	c := testenv.ClusterAll(t)
	db := c.Database(t)
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	script := testenv.ClusterScript(t)
	run := func(args ...string) {
		t.Helper()
		out, err := exec.Command(script, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("cluster.sh %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		t.Logf("cluster.sh %s: %s", strings.Join(args, " "), strings.TrimSpace(string(out)))
	}
	// Whatever happens, leave the cluster whole for the tests after this one.
	t.Cleanup(func() {
		for _, args := range [][]string{{"kafka-start", "2"}, {"ch-start", "1"}, {"ch-start", "2"}, {"ch-start", "3"}} {
			if out, err := exec.Command(script, args...).CombinedOutput(); err != nil {
				t.Errorf("cluster.sh %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
	})

	f := newFaultEnvOn(t, ctx, c.Kafka, 3, strings.Join(c.ClickHouse, ","), db, c.Name)
	// `aivis migrate` on the cluster, twice: the second run applies nothing.
	for i, want := range []string{"applied migrations [1 2 3", "schema is up to date"} {
		cmd := exec.Command(f.bin, "migrate", "--topics=false")
		cmd.Env = f.env()
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), want) {
			t.Fatalf("aivis migrate run %d on the cluster: %v, want %q in:\n%s", i+1, err, want, out)
		}
	}
	a := f.startAggregator("a")
	load := func(seed uint64) *sync.WaitGroup {
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); f.produce(seed, 2000, 10*time.Second) }()
		return &wg
	}

	t.Log("stage 1: a broker killed with SIGKILL under load")
	wg := load(21)
	time.Sleep(3 * time.Second)
	run("kafka-kill", "2")
	wg.Wait()
	f.check(120 * time.Second)
	run("kafka-start", "2")

	// retries counts the aggregator's retried inserts so far.
	retries := func() int {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(f.logDir, "a.log"))
		if err != nil {
			t.Fatal(err)
		}
		return strings.Count(string(b), "insert failed, retrying")
	}
	// holdFault keeps a fault in place for at least min and then until the
	// aggregator has met it (a retried insert after before), at most max. A
	// fixed sleep is not enough: after the broker restart of stage 1 the
	// consumer may be idle for seconds, and a replica whose ZooKeeper session
	// outlives it counts as alive until the quorum wait times out.
	holdFault := func(stage int, before int, since time.Time, min, max time.Duration) int {
		t.Helper()
		for {
			n := retries()
			elapsed := time.Since(since)
			if n > before && elapsed >= min {
				t.Logf("stage %d: the aggregator retried %d inserts; fault held %s", stage, n-before, elapsed.Round(time.Second))
				return n
			}
			if elapsed >= max {
				t.Errorf("stage %d: the aggregator never had to retry an insert in %s; the fault did not reach it", stage, max)
				return n
			}
			time.Sleep(250 * time.Millisecond)
		}
	}

	t.Log("stage 2: a ClickHouse replica stopped and restarted under load")
	before := retries()
	wg = load(22)
	time.Sleep(time.Second)
	run("ch-stop", "1")
	before = holdFault(2, before, time.Now(), 9*time.Second, 90*time.Second)
	run("ch-start", "1")
	wg.Wait()
	f.check(120 * time.Second)

	t.Log("stage 3: shard 2 (both replicas) unavailable for 30 s under load")
	wg = load(23)
	time.Sleep(time.Second)
	run("ch-stop", "2")
	run("ch-stop", "3")
	down := time.Now()
	// A process starting meanwhile finds the schema up to date without
	// waiting for the missing shard (a distributed DDL would wait minutes).
	mctx, mcancel := context.WithTimeout(ctx, 20*time.Second)
	cmd := exec.CommandContext(mctx, f.bin, "migrate", "--topics=false")
	cmd.Env = f.env()
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "schema is up to date") {
		t.Errorf("aivis migrate with shard 2 down: %v, want the schema up to date within 20 s:\n%s", err, out)
	}
	mcancel()
	holdFault(3, before, down, 30*time.Second, 90*time.Second)
	run("ch-start", "2")
	run("ch-start", "3")
	wg.Wait()
	f.check(150 * time.Second)
	f.stop(a)
	if t.Failed() {
		t.Logf("aggregator log:\n%s", f.log("a"))
	}
}

// TestClusterSameResults runs the same events through the pipeline once
// onto a single server and once onto the 2×2 cluster, then requires every
// query of the project to return the same on both: the report, verify,
// re-rating (dry and real, and what follows it), the anomaly scorer's
// reads (series costs, contributors, published incidents), budgets (spend
// by every kind of scope, statuses), the governance evaluator (every
// signal, and a restart that resolves them), savings (computed, stored by
// the daily recommender, found stored), the FOCUS export, reconciliation's
// aivis side, catalog check's traffic, the read API, the aggregator's
// history read-back, and every view of the database.
func TestClusterSameResults(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster tests need the local cluster")
	}
	c := testenv.ClusterClickHouse(t)
	changed := strings.Replace(strings.Replace(gpuE2ECatalog, `rates: {input: "2.50"`, `rates: {input: "3.10"`, 1), `"e2e-1"`, `"e2e-2"`, 1)
	catalog, err := pricing.LoadCatalog(writeTestFile(t, "new.yaml", changed))
	if err != nil {
		t.Fatal(err)
	}
	oldCatalog, err := pricing.LoadCatalog(writeTestFile(t, "old.yaml", gpuE2ECatalog))
	if err != nil {
		t.Fatal(err)
	}
	savingsRules, err := savings.ParseRules([]byte(savingsRulesYAML))
	if err != nil {
		t.Fatal(err)
	}
	day := time.Now().UTC().Truncate(24 * time.Hour).Add(-24 * time.Hour)
	var recs []*kgo.Record
	for i := 0; i < 400; i++ {
		model, provider := "model-a", "openai"
		if i%3 == 0 {
			model, provider = "model-b", "anthropic"
		}
		in, cacheRead, out := int64(1000+i*37), int64(i*3), int64(50+i)
		lat := int64(20 + i%900)
		ev := schemas.Event{SchemaVersion: "1", EventID: fmt.Sprintf("same-%d", i), Time: day.Add(10*time.Hour + time.Duration(i*17)*time.Second),
			Kind: schemas.KindLLMRequest, Source: "t", Provider: provider, Model: model, Status: schemas.StatusOK, LatencyMs: &lat,
			Labels: map[string]string{"team": []string{"alpha", "beta", "gamma"}[i%3], "app": []string{"chat", "search"}[i%2]},
			Usage:  &schemas.Usage{InputTokens: &in, CacheReadInputTokens: &cacheRead, OutputTokens: &out}}
		if i%11 == 0 {
			ev.Status, ev.ErrorType = schemas.StatusError, "rate_limit"
		}
		if i%4 == 0 {
			ev.Labels[chsink.LabelDeployment] = "dep-1"
		}
		ev.Labels["project"] = []string{"p1", "p2"}[i%2]
		if i >= 300 {
			ev.Labels["project"] = "p-new"
		}
		// API keys, sources, regions and labels for the governance and
		// savings queries: key-1 appears from a new source and key-2 in a
		// new region in the last hour, key-sleepy wakes after an hour and
		// a half of silence, prompts repeat a prefix (caching), half the
		// traffic is not interactive (tiers).
		ev.APIKeyID = fmt.Sprintf("key-%d", i%4)
		ev.ProviderRegion = "us-east-1"
		if i < 3 || i >= 380 {
			ev.APIKeyID = "key-sleepy"
		}
		if i >= 250 && i%4 == 1 {
			ev.Source = "t-new"
		}
		if i >= 260 && i%4 == 2 {
			ev.ProviderRegion = "eu-west-1"
		}
		ev.Labels["prefix_hash"] = fmt.Sprintf("h%d", i%5)
		ev.Labels["prefix_tokens"] = "400"
		ev.Labels["interactive"] = []string{"true", "false"}[i%2]
		ev.Labels["task"] = "summarize"
		ev.EndUser, ev.Tags = fmt.Sprintf("user-%d", i%7), []string{"tag-" + []string{"x", "y"}[i%2]}
		if i%10 == 1 {
			energy := float64(1000 + i)
			ev.APIKeyID, ev.ProviderRegion = "", ""
			ev.Labels[chsink.LabelDeployment] = "dep-1" // the GPUs serving dep-1's tokens
			ev.Kind, ev.Provider, ev.Model, ev.Usage, ev.LatencyMs = schemas.KindGPUUsage, "", "", nil, nil
			ev.GPU = &schemas.GPUUsage{GPUModel: "NVIDIA H100 80GB HBM3", Host: "h1", IntervalSeconds: 60, AllocatedSeconds: 60, BusySeconds: float64(i % 60),
				EnergyJoules: &energy, OwnerKind: "k8s_pod", OwnerID: "pod-1"}
		}
		b, _ := json.Marshal(ev)
		recs = append(recs, &kgo.Record{Key: []byte(ev.EventID), Value: b})
	}
	for _, r := range recs[5:35] { // resent duplicates
		recs = append(recs, &kgo.Record{Key: r.Key, Value: r.Value})
	}

	type side struct {
		name  string
		store *chsink.Store
		ctx   context.Context
	}
	run := func(name string, onCluster bool) side {
		cfg, token := testConfig(t, nil, 2)
		cfg.Enrich.CatalogPath = writeTestFile(t, "catalog.yaml", gpuE2ECatalog) // GPU time priced too
		if onCluster {
			cfg.ClickHouse.Addr, cfg.ClickHouse.Database, cfg.ClickHouse.Cluster = strings.Join(c.ClickHouse, ","), c.Database(t), c.Name
		}
		cfg.Aggregate.IdleTimeout = time.Second
		cfg.Aggregate.ScoreAnomalies = false
		p, ctx := startPipeline(t, cfg, token, slog.New(slog.NewTextHandler(io.Discard, nil)))
		cl, err := kgo.NewClient(kgo.SeedBrokers(p.Brokers...), kgo.DefaultProduceTopic(schemas.TopicRaw))
		if err != nil {
			t.Fatal(err)
		}
		batch := make([]*kgo.Record, len(recs))
		for i, r := range recs {
			batch[i] = &kgo.Record{Key: r.Key, Value: r.Value}
		}
		if err := cl.ProduceSync(ctx, batch...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		cl.Close()
		if err := p.Drain(time.Minute); err != nil {
			t.Fatal(err)
		}
		return side{name: name, store: p.Store, ctx: ctx}
	}
	sides := []side{run("single server", false), run("cluster", true)}

	// same requires f to give the same JSON on both sides; sorted, the
	// elements of a list compare whatever their order.
	same := func(what string, sorted bool, f func(s side) (any, error)) {
		t.Helper()
		var first string
		for i, s := range sides {
			v, err := f(s)
			if err != nil {
				t.Fatalf("%s on the %s: %v", what, s.name, err)
			}
			got := canonicalJSON(t, v, sorted)
			if i == 0 {
				first = got
				if got == "null" || got == "[]" || got == "{}" {
					t.Errorf("%s is empty on the %s; the comparison would prove nothing", what, s.name)
				}
				continue
			}
			if got != first {
				t.Errorf("%s differs:\n%s: %s\n%s: %s", what, sides[0].name, first, s.name, got)
			}
		}
	}
	from, to := day, day.Add(24*time.Hour)
	queries := func(stage string) {
		same(stage+"report", false, func(s side) (any, error) {
			return report.Build(s.ctx, s.store, report.Options{Since: 24 * time.Hour, Until: to, Limit: 50})
		})
		same(stage+"verify", false, func(s side) (any, error) { return s.store.Reconcile(s.ctx, from, to) })
		same(stage+"rated events", true, func(s side) (any, error) { return s.store.RatedEvents(s.ctx, from, to) })
		same(stage+"series costs", true, func(s side) (any, error) { return s.store.SeriesCosts(s.ctx, from, to) })
		same(stage+"contributors", true, func(s side) (any, error) {
			return s.store.Contributors(s.ctx, "beta", "model-a", day.Add(11*time.Hour), time.Hour, 3)
		})
		for _, scope := range []budget.Scope{{Org: true}, {Team: "beta"}, {Model: "model-a"}, {Label: "app=chat"}} {
			spec := budget.Spec{ID: "b", Name: "b", Scope: scope, Period: "month", Location: time.UTC, Amount: decimal.New(1000, 0), Hard: decimal.New(1000, 0)}
			if k, v, ok := strings.Cut(scope.Label, "="); ok {
				spec.LabelKey, spec.LabelValue = k, v
			}
			same(fmt.Sprintf("%sspend of %+v", stage, scope), false, func(s side) (any, error) {
				return budget.ReadSpend(s.ctx, s.store, spec, day.Add(11*time.Hour), from.AddDate(0, 0, -3), to)
			})
		}
		same(stage+"savings", false, func(s side) (any, error) {
			res, err := savings.Build(s.ctx, s.store, oldCatalog, savingsRules, from.AddDate(0, 0, -1), to)
			if err == nil && len(res.Recommendations) == 0 {
				err = fmt.Errorf("no recommendations; the comparison would prove nothing")
			}
			return res, err
		})
		same(stage+"FOCUS rows", false, func(s side) (any, error) {
			var rows []focus.Row
			err := focus.Rows(s.ctx, s.store, from, to, func(r focus.Row) error { rows = append(rows, r); return nil })
			return rows, err
		})
		same(stage+"FOCUS CSV", false, func(s side) (any, error) {
			var b strings.Builder
			_, err := focus.Export(s.ctx, s.store, focus.Options{From: from, Until: to, Format: focus.FormatCSV}, &b)
			return b.String(), err
		})
		same(stage+"reconcile's aivis side", true, func(s side) (any, error) { return reconcile.Load(s.ctx, s.store, from, to) })
		same(stage+"model names", false, func(s side) (any, error) {
			return queryRows(s.ctx, s.store, chsink.ModelNamesQuery, "model-a", from.Unix(), to.Unix())
		})
		// catalog check reads the pairs without FINAL (a count is a hint
		// there), so only the pairs compare.
		same(stage+"traffic models", false, func(s side) (any, error) {
			rows, err := queryRows(s.ctx, s.store, chsink.TrafficModelsQuery, schemas.KindLLMRequest, from.Unix())
			var pairs []string
			for _, r := range rows {
				pairs = append(pairs, r[0]+"/"+r[1])
			}
			slices.Sort(pairs)
			return pairs, err
		})
		window := fmt.Sprintf("from=%d&until=%d&limit=50", from.Unix(), to.Unix())
		for _, path := range []string{"/api/v1/summary", "/api/v1/spend?by=team", "/api/v1/spend?by=project", "/api/v1/spend?by=model",
			"/api/v1/spend?by=user", "/api/v1/spend?by=day", "/api/v1/spend/series", "/api/v1/spend/series?by=team&step=10m", "/api/v1/spend/series?by=model",
			"/api/v1/spend/series?by=project&step=1h", "/api/v1/anomalies", "/api/v1/budgets", "/api/v1/gpu"} {
			same(stage+"read API "+path, false, func(s side) (any, error) { return readAPI(s.ctx, s.store, path, window) })
		}
		var views []string
		same(stage+"views", false, func(s side) (any, error) {
			rows, err := queryRows(s.ctx, s.store, "SELECT name FROM system.tables WHERE database = currentDatabase() AND engine = 'View' ORDER BY name")
			views = views[:0]
			for _, r := range rows {
				views = append(views, r[0])
			}
			return views, err
		})
		for _, view := range []string{chsink.ViewEvents, chsink.ViewWindows, chsink.ViewBudgetStatus, chsink.ViewGPUCost, chsink.ViewSelfHostedCost,
			chsink.ViewGovernanceIncidents, chsink.ViewAuthFailures, chsink.ViewDataMovement, chsink.ViewSavings} {
			if !slices.Contains(views, view) {
				t.Errorf("view %s is missing from the database's views %v", view, views)
			}
		}
		for _, view := range views {
			same(stage+"view "+view, true, func(s side) (any, error) { return viewRows(s.ctx, s.store, view) })
		}
	}

	// Scores and budget statuses as the scorer and the evaluator write them.
	for _, s := range sides {
		scores := []schemas.Score{
			{SeriesCost: schemas.SeriesCost{WindowStart: day.Add(11 * time.Hour), Team: "alpha", Model: "model-a", CostPicos: schemas.PicosOf(5)}, Z: 4.5, Anomaly: true, IncidentID: "inc-1", IncidentStatus: "firing", IncidentUpdate: 1},
			{SeriesCost: schemas.SeriesCost{WindowStart: day.Add(11*time.Hour + time.Minute), Team: "beta", Model: "model-b", CostPicos: schemas.PicosOf(2)}, Z: 0.5},
		}
		if err := s.store.WriteScores(s.ctx, scores); err != nil {
			t.Fatal(err)
		}
		st := schemas.BudgetStatus{BudgetID: "b1", Name: "b1", Scope: "org", Period: "month", Timezone: "UTC", PeriodStart: from, PeriodEnd: to,
			AmountUSD: decimal.New(100, 0), HardUSD: decimal.New(100, 0), SpentUSD: decimal.New(12345, -3), State: "ok", EvaluatedAt: to,
			ForecastUSD: decimal.New(98765432109876543, -12), ForecastLowUSD: decimal.New(12345, -3), ForecastHighUSD: decimal.New(1, 14), ForecastMethod: "linear"}
		later := st
		later.SpentUSD, later.EvaluatedAt, later.Alerted = decimal.New(23456, -3), to.Add(time.Minute), []string{"soft"}
		if err := s.store.WriteBudgetStatus(s.ctx, []schemas.BudgetStatus{st}); err != nil {
			t.Fatal(err)
		}
		if err := s.store.WriteBudgetStatus(s.ctx, []schemas.BudgetStatus{later}); err != nil {
			t.Fatal(err)
		}
	}
	same("published incidents", true, func(s side) (any, error) { return s.store.PublishedIncidents(s.ctx, from) })
	same("latest scored", false, func(s side) (any, error) { return s.store.LatestScored(s.ctx) })
	same("budget statuses", true, func(s side) (any, error) { return budget.LatestStatus(s.ctx, s.store) })
	same("latest window", false, func(s side) (any, error) { return s.store.LatestWindow(s.ctx) })
	same("stored event ids", true, func(s side) (any, error) {
		return s.store.StoredEventIDs(s.ctx, []string{"same-1", "same-2", "same-399", "none"}, from, to)
	})
	// Governance: auth failures as ingest nodes count them, then the
	// evaluator's every signal over the last hour of the data, and a
	// fresh evaluator two hours later that seeds the open incidents from
	// governance_signals and resolves them.
	policy := writeTestFile(t, "policy.yaml", "default:\n  models: {deny: [model-b]}\n  regions: [us-*]\nrequired_labels: [app, env]\n")
	gcfg := governance.DefaultConfig()
	gcfg.Path, gcfg.Window, gcfg.History, gcfg.DormantAfter, gcfg.DormantWakeUSD = policy, time.Hour, 72*time.Hour, 30*time.Minute, "0.000001"
	gcfg.AuthFailureBurst, gcfg.UnattributedMinUSD = 5, "0"
	evaluate := func(s side, at time.Time) (any, error) {
		ev, err := governance.NewEvaluator(gcfg, s.store, nil, nil, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			return nil, err
		}
		ev.SetClock(func() time.Time { return at })
		return ev.EvaluateOnce(s.ctx)
	}
	for _, s := range sides {
		fails := []schemas.AuthFailureCount{
			{Minute: day.Add(11*time.Hour + 30*time.Minute), SourceAddress: "203.0.113.9", Node: "ingest-0", Failures: 4},
			{Minute: day.Add(11*time.Hour + 31*time.Minute), SourceAddress: "203.0.113.9", Node: "ingest-1", Failures: 3},
			{Minute: day.Add(11*time.Hour + 32*time.Minute), SourceAddress: "198.51.100.4", Node: "ingest-0", Failures: 1},
		}
		if err := s.store.WriteAuthFailures(s.ctx, fails); err != nil {
			t.Fatal(err)
		}
	}
	signalsOf := func(v any, err error) (any, error) {
		changes, _ := v.([]schemas.GovernanceSignal)
		if err == nil && len(changes) == 0 {
			err = fmt.Errorf("no incident changed; the comparison would prove nothing")
		}
		return changes, err
	}
	same("governance signals", true, func(s side) (any, error) { return signalsOf(evaluate(s, day.Add(12*time.Hour))) })
	var opened map[string]bool
	same("governance signal kinds", false, func(s side) (any, error) {
		rows, err := queryRows(s.ctx, s.store, "SELECT DISTINCT signal FROM "+chsink.ViewGovernanceIncidents+" ORDER BY signal")
		opened = map[string]bool{}
		for _, r := range rows {
			opened[r[0]] = true
		}
		return rows, err
	})
	for _, sig := range []string{governance.SignalUnapproved, governance.SignalRegionNotAllowed, governance.SignalMissingLabels,
		governance.SignalNewSource, governance.SignalNewRegion, governance.SignalDormantKey, governance.SignalAuthFailures} {
		if !opened[sig] {
			t.Errorf("governance signal %s never fired; its queries are not compared (fired: %v)", sig, opened)
		}
	}
	same("governance signals resolved by a restarted evaluator", true, func(s side) (any, error) {
		return signalsOf(evaluate(s, day.Add(14*time.Hour)))
	})
	// Savings as the daily recommender computes, stores and reads them.
	scfg := savings.DefaultConfig()
	scfg.Path, scfg.Lookback = writeTestFile(t, "savings.yaml", savingsRulesYAML), 48*time.Hour
	same("daily savings", true, func(s side) (any, error) {
		r, err := savings.NewRecommender(scfg, oldCatalog, s.store, nil, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			return nil, err
		}
		r.SetClock(func() time.Time { return to.Add(time.Hour) })
		recs, err := r.RunOnce(s.ctx)
		if err == nil && len(recs) == 0 {
			err = fmt.Errorf("no recommendations; the comparison would prove nothing")
		}
		return recs, err
	})
	same("daily savings, already stored", false, func(s side) (any, error) {
		r, err := savings.NewRecommender(scfg, oldCatalog, s.store, nil, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			return nil, err
		}
		r.SetClock(func() time.Time { return to.Add(2 * time.Hour) })
		recs, err := r.RunOnce(s.ctx)
		if err == nil && recs != nil {
			err = fmt.Errorf("computed %d recommendations again, want none: the day's are stored", len(recs))
		}
		return "stored", err
	})
	queries("")

	// Models with equal changes come in any order, on one server too.
	rerateRun := func(s side, dry bool) (any, error) {
		res, err := rerate.Run(s.ctx, s.store, catalog, from, to, time.Minute, dry)
		if err == nil {
			slices.SortFunc(res.Models, func(a, b rerate.ModelChange) int {
				return strings.Compare(a.Provider+"/"+a.Model, b.Provider+"/"+b.Model)
			})
		}
		return res, err
	}
	same("rerate dry run", false, func(s side) (any, error) { return rerateRun(s, true) })
	same("rerate", false, func(s side) (any, error) { return rerateRun(s, false) })
	same("max rating version", false, func(s side) (any, error) { return s.store.MaxRatingVersion(s.ctx) })
	queries("after re-rating: ")

	// The aggregator's read-back, on rows written alike to partition 9.
	var events []schemas.StoredEvent
	var rows []schemas.WindowRow
	for i := 0; i < 50; i++ {
		e := &schemas.Enriched{Event: schemas.Event{SchemaVersion: schemas.SchemaVersion, EventID: fmt.Sprintf("hist-%d", i),
			Time: day.Add(20*time.Hour + time.Duration(i)*time.Second), Kind: schemas.KindLLMRequest, Source: "t", Provider: "openai",
			Model: "model-a", Status: schemas.StatusOK}, Owner: schemas.Owner{Team: "alpha", Project: "p"}}
		events = append(events, schemas.StoredEvent{Event: e, Partition: 9, Offset: int64(i)})
		if i%10 == 9 {
			rows = append(rows, schemas.WindowRow{WindowStart: day.Add(20 * time.Hour), WindowSeconds: 60, Provider: "openai", Model: "model-a",
				Team: "alpha", Project: "p", SrcPartition: 9, ThroughOffset: int64(i), Requests: 10, LatencyHist: make([]uint64, schemas.LatencyBuckets)})
		}
	}
	for _, s := range sides {
		if err := s.store.Write(s.ctx, events, rows); err != nil {
			t.Fatal(err)
		}
		if err := s.store.Write(s.ctx, events[:20], rows[:2]); err != nil { // a replay
			t.Fatal(err)
		}
	}
	same("history read-back", false, func(s side) (any, error) { return s.store.History(s.ctx, 9, 30, from) })
	same("emitted windows", false, func(s side) (any, error) { return s.store.Emitted(s.ctx, 9, from) })
}

// canonicalJSON renders v as JSON; sorted, a list's elements are sorted
// by their own JSON first.
func canonicalJSON(t *testing.T, v any, sorted bool) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if !sorted {
		return string(b)
	}
	var list []json.RawMessage
	if err := json.Unmarshal(b, &list); err != nil {
		return string(b)
	}
	items := make([]string, len(list))
	for i, r := range list {
		items[i] = string(r)
	}
	slices.Sort(items)
	return "[" + strings.Join(items, ",") + "]"
}

// viewRows returns every row of a view, each as the list of its values
// but the time it was written (scored_at, emitted_at), which differs by
// run.
func viewRows(ctx context.Context, store *chsink.Store, view string) ([][]string, error) {
	rows, err := store.Query(ctx, "SELECT * FROM "+view)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	types := rows.ColumnTypes()
	var out [][]string
	for rows.Next() {
		dest := make([]any, len(types))
		for i, ct := range types {
			dest[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		var row []string
		for i, d := range dest {
			if name := types[i].Name(); name != "scored_at" && name != "emitted_at" {
				row = append(row, fmt.Sprint(reflect.ValueOf(d).Elem().Interface()))
			}
		}
		out = append(out, row)
	}
	return out, rows.Err()
}

// savingsRulesYAML makes every LLM kind of recommendation possible on the
// test's traffic (repeated prefixes, non-interactive requests, a cheaper
// equivalent) and prices dep-1's self-hosted tokens against an API model.
const savingsRulesYAML = `min_monthly_usd: "0.000001"
equivalents:
  models:
    - from: openai/model-a
      to: [anthropic/model-b]
gpu:
  comparables:
    dep-1: openai/model-a
`

// queryRows returns the rows of a query, each value printed.
func queryRows(ctx context.Context, store *chsink.Store, query string, args ...any) ([][]string, error) {
	rows, err := store.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	types := rows.ColumnTypes()
	var out [][]string
	for rows.Next() {
		dest := make([]any, len(types))
		for i, ct := range types {
			dest[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		row := make([]string, len(dest))
		for i, d := range dest {
			row[i] = fmt.Sprint(reflect.ValueOf(d).Elem().Interface())
		}
		out = append(out, row)
	}
	return out, rows.Err()
}

// readAPI answers one GET of the web read API over store, path carrying
// its own parameters and window the range; a status other than 200 is an
// error.
func readAPI(ctx context.Context, store *chsink.Store, path, window string) (any, error) {
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, path+sep+window, nil)
	rec := httptest.NewRecorder()
	web.NewServer(store, slog.New(slog.NewTextHandler(io.Discard, nil))).ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %d %s", path, rec.Code, rec.Body.String())
	}
	return json.RawMessage(rec.Body.Bytes()), nil
}
