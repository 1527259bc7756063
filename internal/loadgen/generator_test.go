package loadgen

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/aivis-dev/aivis/schemas"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var testStart = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.Start = testStart
	cfg.Rate = 1000
	return cfg
}

func TestSameSeedSameItems(t *testing.T) {
	a, b := NewGenerator(testConfig()), NewGenerator(testConfig())
	other := testConfig()
	other.Seed = 2
	c := NewGenerator(other)
	differ := 0
	for i := range 3000 {
		x, y, z := a.Next(), b.Next(), c.Next()
		if !bytes.Equal(x.Raw, y.Raw) || x.Due != y.Due || x.Malformed != y.Malformed || x.Duplicate != y.Duplicate {
			t.Fatalf("item %d differs for the same seed:\n%s\n%s", i, x.Raw, y.Raw)
		}
		if !bytes.Equal(x.Raw, z.Raw) {
			differ++
		}
	}
	if differ < 2900 {
		t.Errorf("another seed changed only %d of 3000 items", differ)
	}
}

func TestItemsFollowTheContract(t *testing.T) {
	cfg := testConfig()
	cfg.MalformedRate = 0.02
	g := NewGenerator(cfg)
	const n = 30_000
	seen := map[string][]byte{}
	var malformed, dups, late, ooo, errs, unowned, prevDue = 0, 0, 0, 0, 0, 0, time.Duration(0)
	models := map[string]int{}
	owners := map[string]Owner{}
	for _, o := range Owners(cfg) {
		owners[o.APIKeyID] = o
	}
	for i := range n {
		it := g.Next()
		if it.Due < prevDue {
			t.Fatalf("item %d: Due went back from %s to %s", i, prevDue, it.Due)
		}
		prevDue = it.Due
		if bytes.ContainsAny(it.Raw, "\n\r") {
			t.Fatalf("item %d: raw bytes contain a newline, breaking NDJSON: %s", i, it.Raw)
		}
		ev, err := schemas.Decode(it.Raw)
		if it.Malformed {
			malformed++
			if err == nil {
				t.Fatalf("item %d is marked malformed but decodes and validates: %s", i, it.Raw)
			}
			continue
		}
		if err != nil {
			t.Fatalf("item %d: %v\n%s", i, err, it.Raw)
		}
		if it.Duplicate {
			dups++
			if prev, ok := seen[ev.EventID]; !ok || !bytes.Equal(prev, it.Raw) {
				t.Fatalf("item %d: duplicate of %s does not repeat an earlier event's exact bytes", i, ev.EventID)
			}
			continue
		}
		if _, ok := seen[ev.EventID]; ok {
			t.Fatalf("item %d: event id %s reused by a fresh event", i, ev.EventID)
		}
		seen[ev.EventID] = it.Raw
		models[ev.Model]++

		// Event time relative to the schedule.
		lag := testStart.Add(it.Due).Sub(ev.Time) // TimeScale 1
		switch {
		case it.Late:
			late++
			if lag < time.Minute-time.Millisecond || lag > 3*time.Minute+time.Millisecond {
				t.Errorf("item %d: late event lags %s, want 1-3 min", i, lag)
			}
		case it.OutOfOrder:
			ooo++
			if lag < 0 || lag > 20*time.Second+time.Millisecond {
				t.Errorf("item %d: out-of-order event lags %s, want 0-20 s", i, lag)
			}
		default:
			if lag < 0 || lag > time.Millisecond {
				t.Errorf("item %d: on-time event lags %s", i, lag)
			}
		}

		if o, ok := owners[ev.APIKeyID]; ok {
			if ev.Labels["team"] != o.Team || ev.Labels["project"] != o.Project {
				t.Errorf("item %d: labels %v disagree with key owner %s/%s", i, ev.Labels, o.Team, o.Project)
			}
		} else {
			unowned++
			if ev.APIKeyID != unownedKeyID || len(ev.Labels) != 0 {
				t.Errorf("item %d: unknown key %s with labels %v", i, ev.APIKeyID, ev.Labels)
			}
		}
		if !strings.HasPrefix(ev.APIKeyID, "sha256:") {
			t.Errorf("item %d: api_key_id %q is not a hash", i, ev.APIKeyID)
		}

		if ev.Status == schemas.StatusError {
			errs++
			if ev.Usage != nil || ev.ErrorType == "" {
				t.Errorf("item %d: failed request with usage or without error_type", i)
			}
			continue
		}
		checkUsage(t, i, ev)
	}

	for _, r := range []struct {
		name      string
		got, want float64
	}{
		{"malformed", frac(malformed, n), cfg.MalformedRate},
		{"duplicate", frac(dups, n), cfg.DuplicateRate},
		{"late", frac(late, n), cfg.LateRate},
		{"out of order", frac(ooo, n), cfg.OutOfOrderRate},
		{"error", frac(errs, n), cfg.ErrorRate},
		{"unowned", frac(unowned, n), cfg.UnownedRate},
	} {
		// Loose bounds: 30,000 draws put 4 standard deviations well inside.
		if math.Abs(r.got-r.want) > 0.3*r.want {
			t.Errorf("%s share %.4f, want about %.4f", r.name, r.got, r.want)
		}
	}

	top, topN := "", 0
	for m, c := range models {
		if c > topN {
			top, topN = m, c
		}
	}
	if top != "gpt-4o-mini" || frac(topN, n) < 0.3 {
		t.Errorf("dominant model %s has %.2f of traffic, want gpt-4o-mini with over 0.3", top, frac(topN, n))
	}
	for _, m := range Models() {
		if models[m.Name] == 0 {
			t.Errorf("model %s/%s never appeared", m.Provider, m.Name)
		}
	}
}

// checkUsage asserts the normalized token convention.
func checkUsage(t *testing.T, i int, ev *schemas.Event) {
	t.Helper()
	u := ev.Usage
	if u == nil || u.InputTokens == nil || u.OutputTokens == nil || len(ev.RawUsage) == 0 {
		t.Fatalf("item %d: successful request without input/output counts or raw usage", i)
	}
	in, out := *u.InputTokens, *u.OutputTokens
	if in <= 0 || out <= 0 {
		t.Errorf("item %d: counts must be positive, got in %d out %d", i, in, out)
	}
	if r, w := schemas.Get(u.CacheReadInputTokens), schemas.Get(u.CacheWriteInputTokens); r < 0 || w < 0 || r+w > in {
		t.Errorf("item %d: cache read %d + write %d must fit in input %d", i, r, w, in)
	}
	if r := schemas.Get(u.ReasoningOutputTokens); r < 0 || r > out {
		t.Errorf("item %d: reasoning %d must fit in output %d", i, r, out)
	}
	if u.ProviderTotalTokens != nil && *u.ProviderTotalTokens != in+out {
		t.Errorf("item %d: provider total %d != input %d + output %d", i, *u.ProviderTotalTokens, in, out)
	}
	if ev.Model == "o3-mini" && schemas.Get(u.ReasoningOutputTokens) == 0 {
		t.Errorf("item %d: o3-mini without reasoning tokens", i)
	}
	if ev.Provider == "anthropic" && (u.ReasoningOutputTokens != nil || u.ProviderTotalTokens != nil) {
		t.Errorf("item %d: anthropic reports neither reasoning nor a total", i)
	}
	if ev.LatencyMs == nil || *ev.LatencyMs <= 0 {
		t.Errorf("item %d: missing latency", i)
	}
}

func frac(n, total int) float64 { return float64(n) / float64(total) }

func TestRawUsageMatchesProvider(t *testing.T) {
	cfg := testConfig()
	cfg.ErrorRate, cfg.MalformedRate, cfg.DuplicateRate = 0, 0, 0
	g := NewGenerator(cfg)
	want := map[string]string{
		"openai":      `"prompt_tokens":`,
		"anthropic":   `"cache_read_input_tokens":`,
		"aws.bedrock": `"inputTokens":`,
		"google":      `"promptTokenCount":`,
		"mistral":     `"prompt_tokens":`,
	}
	found := map[string]bool{}
	for range 5000 {
		ev := g.Next().Event
		if key, ok := want[ev.Provider]; ok {
			if !bytes.Contains(ev.RawUsage, []byte(key)) {
				t.Fatalf("%s raw usage %s lacks %s", ev.Provider, ev.RawUsage, key)
			}
			found[ev.Provider] = true
		}
	}
	if len(found) != len(want) {
		t.Errorf("saw providers %v, want all of %v", found, want)
	}
}

func TestDailyShapeAndBursts(t *testing.T) {
	cfg := testConfig()
	cfg.TimeScale = 3600 // one wall second per event hour
	cfg.Rate = 2000
	cfg.BurstEvery = 6 * time.Hour
	cfg.BurstDuration = 30 * time.Minute
	cfg.BurstFactor = 4
	cfg.MalformedRate, cfg.DuplicateRate, cfg.LateRate, cfg.OutOfOrderRate = 0, 0, 0, 0
	g := NewGenerator(cfg)
	perHour := make([]int, 24)
	var inBurst, burstOwner, outside int
	owner := g.owners[(0*7+3)%len(g.owners)].APIKeyID
	for {
		it := g.Next()
		off := it.Event.Time.Sub(testStart)
		if off >= 24*time.Hour {
			break
		}
		perHour[it.Event.Time.Hour()]++
		if off < 6*time.Hour {
			if off >= 5*time.Hour+30*time.Minute {
				inBurst++
				if it.Event.APIKeyID == owner {
					burstOwner++
				}
			} else if off >= 5*time.Hour {
				outside++
			}
		}
	}
	if perHour[14] < 2*perHour[2] {
		t.Errorf("14:00 has %d events and 02:00 has %d; want a daily peak at least twice the trough", perHour[14], perHour[2])
	}
	// Same length just before the burst; the daily shape changes little
	// between 05:00 and 06:00.
	if ratio := float64(inBurst) / float64(outside); ratio < 3 || ratio > 5 {
		t.Errorf("burst has %.2f× the traffic of the half hour before, want about 4×", ratio)
	}
	if frac(burstOwner, inBurst) < 0.6 {
		t.Errorf("burst owner has %.2f of burst traffic, want most of it", frac(burstOwner, inBurst))
	}
}

func TestZeroStartEndsAtNow(t *testing.T) {
	cfg := DefaultConfig()
	cfg.TimeScale = 60
	cfg.Duration = time.Minute
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	if got, want := cfg.startAt(now), now.Add(-59*time.Minute); !got.Equal(want) {
		t.Errorf("start %s, want %s (event clock reaches now+1m when the run ends)", got, want)
	}
	cfg.TimeScale = 1
	if got := cfg.startAt(now); !got.Equal(now) {
		t.Errorf("start %s, want now", got)
	}
}

func TestValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	bad := DefaultConfig()
	bad.Rate = 0
	bad.TimeScale = -1
	bad.DuplicateRate = 1.5
	bad.Providers = []string{"openia"}
	bad.Teams = []string{"a", "a"}
	bad.BurstEvery, bad.BurstDuration = 2*time.Hour, 3*time.Hour
	err := bad.Validate()
	if err == nil {
		t.Fatal("invalid config passed")
	}
	for _, key := range []string{"rate:", "time_scale:", "duplicate_rate:", "providers[0]:", "teams[1]:", "burst_duration:"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error does not name %s:\n%v", key, err)
		}
	}
}

func TestCustomTeamsAndProviders(t *testing.T) {
	cfg := testConfig()
	cfg.Teams = []string{"red", "blue"}
	cfg.Providers = []string{"anthropic"}
	cfg.MalformedRate = 0
	g := NewGenerator(cfg)
	for range 2000 {
		ev := g.Next().Event
		if ev.Provider != "anthropic" {
			t.Fatalf("provider %s, want only anthropic", ev.Provider)
		}
		if team := ev.Labels["team"]; team != "" && team != "red" && team != "blue" {
			t.Fatalf("team %s, want red or blue", team)
		}
	}
}

func BenchmarkNext(b *testing.B) {
	g := NewGenerator(testConfig())
	b.ReportAllocs()
	var n int64
	for b.Loop() {
		n += int64(len(g.Next().Raw))
	}
	b.SetBytes(n / int64(max(b.N, 1)))
}
