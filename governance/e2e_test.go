package governance_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/aggregate"
	"github.com/aivis-dev/aivis/governance"
	"github.com/aivis-dev/aivis/ingest"
	"github.com/aivis-dev/aivis/internal/testenv"
	"github.com/aivis-dev/aivis/report"
	"github.com/aivis-dev/aivis/schemas"
	"github.com/aivis-dev/aivis/sinks/clickhouse"
)

// ScenarioPolicy is the policy of the end-to-end scenario: two approved
// providers, preview models denied, US and EU regions, search in the US
// only, personal data in the EU only.
const scenarioPolicy = `default:
  providers: {allow: [openai, anthropic]}
  models: {allow: ["gpt-4o*", "claude-*", "o1*"], deny: ["*-preview"]}
  regions: ["us-*", "eu-*"]
teams:
  search:
    regions: ["us-*"]
data_classes:
  pii: {regions: ["eu-*"]}
`

// scenario is the usage of the end-to-end test, relative to the
// evaluation time now: a history of known keys, then, within the window,
// ordinary use, an unapproved model, an unknown key, a known key in a new
// region, a known key from a new gateway, personal data sent out of its
// region and a dormant key waking up. Key-ops is what must not fire: it
// spends heavily in the window from a gateway and region it used two hours
// earlier (so it is neither new there nor dormant).
func scenario(now time.Time) []schemas.StoredEvent {
	var out []schemas.StoredEvent
	n := 0
	add := func(at time.Time, key, team, source, provider, model, region string, usd int64, labels map[string]string) {
		n++
		e := &schemas.Enriched{Event: *testenv.LLMEvent(provider, model, testenv.Usage(1000, 0, 0, 100, 0))}
		e.EventID = fmt.Sprintf("01JGOV%020d", n)
		e.Time, e.APIKeyID, e.Source, e.ProviderRegion, e.Labels = at, key, source, region, labels
		e.CanonicalModel = model
		e.RequestBytes, e.ResponseBytes = schemas.Int64(4000), schemas.Int64(1000)
		e.Owner = schemas.Owner{Team: team, Project: "p", Rule: "keys"}
		if team == schemas.Unattributed {
			e.Owner.Rule, e.Flags.Unowned = "default", true
		}
		// The flags enrich sets under the same policy.
		e.Flags.UnapprovedModel = strings.HasSuffix(model, "-preview")
		e.Flags.RegionNotAllowed = labels["data_class"] == "pii" && !strings.HasPrefix(region, "eu-")
		e.CostPicos, e.CostSource = usd*1_000_000_000_000, schemas.CostSourceCatalog
		out = append(out, schemas.StoredEvent{Event: e, Offset: int64(n)})
	}
	in := now.Add(-5 * time.Minute)
	// History: search's key from gw-1 in us-east-1, ads' key from gw-2 in
	// us-east-1, ml's key 20 days ago.
	add(now.Add(-72*time.Hour), "key-search", "search", "gw-1", "openai", "gpt-4o", "us-east-1", 1, nil)
	add(now.Add(-48*time.Hour), "key-ads", "ads", "gw-2", "openai", "gpt-4o", "us-east-1", 1, nil)
	add(now.Add(-20*24*time.Hour), "key-ml", "ml", "gw-3", "anthropic", "claude-sonnet-4", "us-east-1", 1, nil)
	add(now.Add(-3*24*time.Hour), "key-ops", "ops", "gw-6", "openai", "gpt-4o", "us-east-1", 1, nil)
	add(now.Add(-2*time.Hour), "key-ops", "ops", "gw-5", "anthropic", "claude-sonnet-4", "eu-west-1", 1, nil)
	// Within the window.
	add(in, "key-search", "search", "gw-1", "openai", "gpt-4o", "us-east-1", 2, nil)                              // fine
	add(in, "key-search", "search", "gw-1", "openai", "o1-preview", "us-east-1", 1, nil)                          // unapproved model
	add(in, "key-unknown", schemas.Unattributed, "gw-9", "openai", "gpt-4o", "us-east-1", 10, nil)                // unknown key, 10 of 43 USD
	add(in, "key-search", "search", "gw-4", "openai", "gpt-4o", "us-east-1", 1, nil)                              // known key, new gateway
	add(in, "key-ops", "ops", "gw-5", "anthropic", "claude-sonnet-4", "eu-west-1", 12, nil)                       // heavy, but used 2 h ago there
	add(in, "key-ads", "ads", "gw-2", "openai", "gpt-4o", "eu-west-1", 1, nil)                                    // known key, new region
	add(in, "key-pii", "ads", "gw-2", "openai", "gpt-4o", "us-west-2", 1, map[string]string{"data_class": "pii"}) // out of region
	add(in, "key-ml", "ml", "gw-3", "anthropic", "claude-sonnet-4", "us-east-1", 15, nil)                         // dormant key wakes up
	return out
}

type alertLog struct{ sent []schemas.Alert }

// TestGovernanceEndToEnd runs the scenario through the real ClickHouse
// and a real Kafka broker: ingest refuses a burst of bad tokens and sends
// the counts to aivis.security.v1, the evaluator stores them, judges the
// usage and must find exactly the expected signals, write them to
// governance_signals, publish them to aivis.alerts.v1 with their category,
// count them in its metrics and show them in the report. A second
// evaluation and a restarted evaluator publish nothing new; once the
// window has passed every incident resolves with its incident_id.
func TestGovernanceEndToEnd(t *testing.T) {
	addr, db := testenv.ClickHouseDatabase(t)
	// An in-process Kafka cluster of the test's own: the topics' names are
	// fixed, and the end-to-end tests of cmd/aivis delete and recreate them
	// on the shared broker while other packages' tests run.
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, schemas.TopicSecurity, schemas.TopicAlerts))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	brokers := kc.ListenAddrs()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := clickhouse.DefaultConfig()
	cfg.Addr, cfg.Database = addr, db
	store, err := clickhouse.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	if _, err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}

	started := time.Now()
	now := started.Add(time.Minute).UTC().Truncate(time.Second)
	if err := store.Write(ctx, scenario(now), nil); err != nil {
		t.Fatal(err)
	}

	// Kafka: the topics, an ingest that refuses 25 bad tokens and sends
	// the counts, and the evaluator's feed in a group of its own that
	// starts at this test's records.
	prod, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	adm := kadm.NewClient(prod)
	icfg := ingest.DefaultConfig()
	icfg.Producers = []ingest.ProducerToken{{Name: "gw", TokenSHA256: ingest.HashToken("aivis_right-token")}}
	srv, err := ingest.New(icfg, prod, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	for range 25 {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, hs.URL+ingest.Path, strings.NewReader(`{}`))
		req.Header.Set("Authorization", "Bearer aivis_wrong-token")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("a wrong token got %d, want 401", resp.StatusCode)
		}
	}
	if err := srv.FlushAuthFailures(ctx); err != nil {
		t.Fatal(err)
	}
	group := fmt.Sprintf("aivis-governance-test-%d", started.UnixNano())
	cons, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumerGroup(group), kgo.ConsumeTopics(schemas.TopicSecurity),
		kgo.ConsumeResetOffset(kgo.NewOffset().AfterMilli(started.UnixMilli())), kgo.AutoCommitMarks(), kgo.BlockRebalanceOnPoll())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cons.Close()
		_, _ = adm.DeleteGroups(context.Background(), group)
	})
	feed := &governance.KafkaFeed{Client: cons, Wait: 3 * time.Second}
	alertsOut := aggregate.KafkaAlerts{Client: prod, Topic: schemas.TopicAlerts}

	path := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(path, []byte(scenarioPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	gcfg := governance.DefaultConfig()
	gcfg.Path = path
	reg := prometheus.NewRegistry()
	ev, err := governance.NewEvaluator(gcfg, store, alertsOut, feed, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ev.SetClock(func() time.Time { return now })
	fired, err := ev.EvaluateOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}

	want := []string{
		"auth_failure_burst security 127.0.0.1 events=25",
		"dormant_key_wake security key-ml events=1 cost=15",
		"new_region security key-ads@eu-west-1 events=1 cost=1",
		"new_source security key-search@gw-4 events=1 cost=1",
		"region_not_allowed governance ads/openai/us-west-2/pii events=1 cost=1",
		"unapproved_use governance search/openai/o1-preview events=1 cost=1",
		"unattributed_share governance org events=1 cost=10",
		"unowned_key security key-unknown events=1 cost=10",
	}
	if got := describe(fired, schemas.AlertFiring); !slices.Equal(got, want) {
		t.Fatalf("first evaluation fired\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}

	// The rows in ClickHouse, as the view shows them.
	rows, err := store.Query(ctx, `SELECT signal, category, subject, status, toString(cost_usd), events FROM `+clickhouse.ViewGovernanceIncidents+` ORDER BY signal`)
	if err != nil {
		t.Fatal(err)
	}
	var stored []string
	for rows.Next() {
		var signal, category, subject, status, cost string
		var events uint64
		if err := rows.Scan(&signal, &category, &subject, &status, &cost, &events); err != nil {
			t.Fatal(err)
		}
		stored = append(stored, fmt.Sprintf("%s %s %s %s %s %d", signal, category, subject, status, strings.TrimRight(strings.TrimRight(cost, "0"), "."), events))
	}
	rows.Close()
	wantStored := []string{
		"auth_failure_burst security 127.0.0.1 firing 0 25",
		"dormant_key_wake security key-ml firing 15 1",
		"new_region security key-ads@eu-west-1 firing 1 1",
		"new_source security key-search@gw-4 firing 1 1",
		"region_not_allowed governance ads/openai/us-west-2/pii firing 1 1",
		"unapproved_use governance search/openai/o1-preview firing 1 1",
		"unattributed_share governance org firing 10 1",
		"unowned_key security key-unknown firing 10 1",
	}
	if !slices.Equal(stored, wantStored) {
		t.Fatalf("governance_incidents holds\n  %s\nwant\n  %s", strings.Join(stored, "\n  "), strings.Join(wantStored, "\n  "))
	}

	// Metrics.
	if got := testutil.ToFloat64(mustCounter(t, reg, "aivis_governance_signals_total", map[string]string{"signal": "auth_failure_burst", "category": "security", "status": "firing"})); got != 1 {
		t.Errorf("aivis_governance_signals_total{auth_failure_burst,firing} = %v, want 1", got)
	}
	if n, err := testutil.GatherAndCount(reg, "aivis_governance_signals_total"); err != nil || n != 8 {
		t.Errorf("aivis_governance_signals_total has %d series (%v), want 8", n, err)
	}

	// Nothing changed: a second evaluation and a restarted evaluator
	// publish nothing.
	now = now.Add(time.Minute)
	if again, err := ev.EvaluateOnce(ctx); err != nil || len(again) != 0 {
		t.Fatalf("second evaluation: %v, changes %v; want none", err, describe(again, ""))
	}
	restarted, err := governance.NewEvaluator(gcfg, store, alertsOut, nil, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	restarted.SetClock(func() time.Time { return now })
	if again, err := restarted.EvaluateOnce(ctx); err != nil || len(again) != 0 {
		t.Fatalf("restarted evaluator: %v, changes %v; want none", err, describe(again, ""))
	}

	// The report's governance section.
	var out bytes.Buffer
	if err := report.Report(ctx, store, report.Options{Since: 24 * time.Hour, Until: now}, &out); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, line := range []string{
		"GOVERNANCE AND SECURITY",
		"security\tauth_failure_burst\t127.0.0.1\tfiring",
		"governance\tunapproved_use\tsearch/openai/o1-preview\tfiring",
		"security\tunowned_key\tkey-unknown\tfiring",
		"security\tnew_region\tkey-ads@eu-west-1\tfiring",
		"security\tnew_source\tkey-search@gw-4\tfiring",
		"governance\tregion_not_allowed\tads/openai/us-west-2/pii\tfiring",
		"DATA MOVEMENT BY PROVIDER AND REGION",
		"openai\teu-west-1\tads\t1\t5000\t0\t",
		"openai\tus-west-2\tads\t1\t5000\t5000\t",
		"AUTH FAILURES BY SOURCE ADDRESS",
		"127.0.0.1\t25",
	} {
		if !strings.Contains(text, line) && !strings.Contains(squeeze(text), line) {
			t.Errorf("the report lacks %q:\n%s", line, text)
		}
	}

	// Once the window has passed, every incident resolves.
	now = now.Add(gcfg.Window + time.Minute)
	resolved, err := restarted.EvaluateOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := describe(resolved, schemas.AlertResolved); len(got) != len(want) {
		t.Fatalf("after the window: %v, want %d resolved", describe(resolved, ""), len(want))
	}
	ids := map[string]bool{}
	for _, f := range fired {
		ids[f.IncidentID] = true
	}
	for _, r := range resolved {
		if !ids[r.IncidentID] || r.Update != 1 {
			t.Errorf("resolved %s %s (update %d) is not one of the incidents fired", r.Signal, r.IncidentID, r.Update)
		}
	}

	// The alerts topic has exactly one firing and one resolved alert per
	// incident, with its category.
	got := readAlerts(t, brokers, started, ids, 2*len(want))
	sort.Slice(got, func(a, b int) bool { return got[a].AlertID < got[b].AlertID })
	perIncident := map[string][]string{}
	for _, a := range got {
		if a.Kind != governance.AlertGovernance || (a.Category != schemas.CategoryGovernance && a.Category != schemas.CategorySecurity) {
			t.Errorf("alert %s has kind %q category %q", a.AlertID, a.Kind, a.Category)
		}
		perIncident[a.IncidentID] = append(perIncident[a.IncidentID], a.Status)
	}
	for id := range ids {
		if s := perIncident[id]; !slices.Equal(s, []string{schemas.AlertFiring, schemas.AlertResolved}) {
			t.Errorf("incident %s has alerts %v, want firing then resolved", id, s)
		}
	}
}

// describe lists changes of status (all when empty) as
// "signal category subject events=n cost=usd", sorted.
func describe(changes []schemas.GovernanceSignal, status string) []string {
	var out []string
	for _, c := range changes {
		if status != "" && c.Status != status {
			continue
		}
		s := fmt.Sprintf("%s %s %s events=%d", c.Signal, c.Category, c.Subject, c.Events)
		if !c.CostUSD.IsZero() {
			s += " cost=" + c.CostUSD.String()
		}
		if status == "" {
			s += " " + c.Status
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// squeeze collapses the runs of spaces a tabwriter pads with into tabs.
func squeeze(s string) string {
	var b strings.Builder
	space := false
	for _, r := range s {
		if r == ' ' || r == '\t' {
			if !space {
				b.WriteByte('\t')
			}
			space = true
			continue
		}
		space = false
		b.WriteRune(r)
	}
	return b.String()
}

func mustCounter(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue metrics
				}
			}
			c := prometheus.NewCounter(prometheus.CounterOpts{Name: name})
			c.Add(m.GetCounter().GetValue())
			return c
		}
	}
	t.Fatalf("no %s with %v", name, labels)
	return nil
}

// readAlerts reads the alerts of the incidents ids from aivis.alerts.v1,
// produced since started, until it has n of them.
func readAlerts(t *testing.T, brokers []string, started time.Time, ids map[string]bool, n int) []schemas.Alert {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(schemas.TopicAlerts),
		kgo.ConsumeResetOffset(kgo.NewOffset().AfterMilli(started.UnixMilli())))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []schemas.Alert
	for len(out) < n && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			var a schemas.Alert
			if err := json.Unmarshal(r.Value, &a); err != nil {
				t.Errorf("alert at offset %d: %v", r.Offset, err)
				return
			}
			if ids[a.IncidentID] {
				out = append(out, a)
			}
		})
	}
	if len(out) != n {
		t.Fatalf("read %d alerts of the test's incidents, want %d", len(out), n)
	}
	return out
}
