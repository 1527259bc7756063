package loadgen

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/aivis-dev/aivis/schemas"
)

// Savings scenarios add fixed traffic, hour after hour, that holds one
// savings opportunity each (package savings, docs/savings.md), so that a
// recommendation and its saving can be checked against a figure worked
// by hand. Unlike the incident scenarios they do not draw from the
// generator's randomness: the same hours give the same events.
const (
	// SavingsCaching: 10 requests an hour on claude-sonnet-4-5 sharing an
	// 8,000-token prompt prefix (labels prefix_hash, prefix_tokens) with no
	// cache reads; 10,000 input and 500 output tokens each.
	SavingsCaching = "savings_caching"
	// SavingsBatch: 20 standard-tier requests an hour on gpt-4.1-mini
	// labelled interactive=false; 2,000 input and 1,000 output tokens.
	SavingsBatch = "savings_batch"
	// SavingsModel: 10 requests an hour on gpt-4o labelled task=summarize;
	// 4,000 input and 800 output tokens.
	SavingsModel = "savings_model"
	// SavingsProvisioned: 10 requests an hour on gpt-4.1-nano, 150,000
	// input and 50,000 output tokens each: 2M tokens every hour.
	SavingsProvisioned = "savings_provisioned"
	// SavingsGPU: per hour, one H100 idle (host gpu-a), one whole H100
	// busy 25% of the hour (gpu-b), and one (gpu-c) serving deployment
	// llama 10 requests of 20,000 input and 5,000 output tokens.
	SavingsGPU = "savings_gpu"
)

// SavingsScenarios lists the savings scenario names.
var SavingsScenarios = []string{SavingsCaching, SavingsBatch, SavingsModel, SavingsProvisioned, SavingsGPU}

// SavingsGPUModel is the GPU model of the savings_gpu events.
const SavingsGPUModel = "NVIDIA H100 80GB HBM3"

// SavingsTraffic returns the events of a savings scenario for hours whole
// hours from start, in time order. control gives the same workload
// without the opportunity: prompts already read from the cache, the batch
// tier already used, the cheaper model already used, the same tokens
// sent in the first hour only (no steady load), and GPUs that are busy
// and serve more than the comparable API would charge for.
func SavingsTraffic(name string, start time.Time, hours int, control bool) ([]schemas.Event, error) {
	if !slices.Contains(SavingsScenarios, name) {
		return nil, fmt.Errorf("unknown savings scenario %q (known: %s)", name, strings.Join(SavingsScenarios, ", "))
	}
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], uint64(start.Unix()))
	copy(seed[8:], name)
	if control {
		seed[31] = 1
	}
	src := rand.NewChaCha8(seed)
	var out []schemas.Event
	start = start.UTC().Truncate(time.Millisecond)
	llm := func(t time.Time, team, project, provider, model, tier string, labels map[string]string, in, read, write, outTokens int64) {
		l := map[string]string{"team": team, "project": project}
		for k, v := range labels {
			l[k] = v
		}
		out = append(out, schemas.Event{SchemaVersion: schemas.SchemaVersion, EventID: savingsID(t, src), Time: t,
			Kind: schemas.KindLLMRequest, Source: "loadgen/" + name, Provider: provider, Model: model, Operation: "chat",
			Status: schemas.StatusOK, ServiceTier: tier, APIKeyID: keyID(team, project), Labels: l,
			LatencyMs: schemas.Int64(1200),
			Usage: &schemas.Usage{InputTokens: schemas.Int64(in), CacheReadInputTokens: schemas.Int64(read),
				CacheWriteInputTokens: schemas.Int64(write), OutputTokens: schemas.Int64(outTokens)}})
	}
	// gpu reports an hour of one GPU as gpuprobe does, one interval a
	// minute (its default window), busy seconds spread evenly: an hour in
	// one interval would land in one window and look like a spike each
	// hour to the anomaly detector.
	gpu := func(t time.Time, team, host, ownerKind, ownerID string, labels map[string]string, busyPerHour float64) {
		l := map[string]string{"team": team}
		for k, v := range labels {
			l[k] = v
		}
		for m := range 60 {
			at := t.Add(time.Duration(m) * time.Minute)
			out = append(out, schemas.Event{SchemaVersion: schemas.SchemaVersion, EventID: savingsID(at, src), Time: at,
				Kind: schemas.KindGPUUsage, Source: "loadgen/" + name, Labels: l,
				GPU: &schemas.GPUUsage{GPUModel: SavingsGPUModel, Host: host, IntervalSeconds: 60, AllocatedSeconds: 60,
					BusySeconds: busyPerHour / 60, OwnerKind: ownerKind, OwnerID: ownerID}})
		}
	}
	// each spreads n events evenly over hour h.
	each := func(h, n int, f func(t time.Time, i int)) {
		for i := range n {
			f(start.Add(time.Duration(h)*time.Hour+time.Duration(i)*time.Hour/time.Duration(n)), i)
		}
	}
	for h := range hours {
		switch name {
		case SavingsCaching:
			prefix := map[string]string{"prefix_hash": "sha256:support-system-prompt-v3", "prefix_tokens": "8000"}
			each(h, 10, func(t time.Time, i int) {
				read, write := int64(0), int64(0)
				if control {
					if i == 0 {
						write = 8000
					} else {
						read = 8000
					}
				}
				llm(t, "support", "chatbot", "anthropic", "claude-sonnet-4-5", "", prefix, 10_000, read, write, 500)
			})
		case SavingsBatch:
			tier := ""
			if control {
				tier = "batch"
			}
			each(h, 20, func(t time.Time, _ int) {
				llm(t, "research", "evals", "openai", "gpt-4.1-mini", tier, map[string]string{"interactive": "false"}, 2000, 0, 0, 1000)
			})
		case SavingsModel:
			model := "gpt-4o"
			if control {
				model = "gpt-4.1"
			}
			each(h, 10, func(t time.Time, _ int) {
				llm(t, "sales", "crm", "openai", model, "", map[string]string{"task": "summarize"}, 4000, 0, 0, 800)
			})
		case SavingsProvisioned:
			if control && h > 0 {
				continue
			}
			n := 10
			if control {
				n = 10 * hours
			}
			each(h, n, func(t time.Time, _ int) {
				llm(t, "platform", "assistant", "openai", "gpt-4.1-nano", "", nil, 150_000, 0, 0, 50_000)
			})
		case SavingsGPU:
			t := start.Add(time.Duration(h) * time.Hour)
			busyB := 900.0
			if !control {
				gpu(t, "ml", "gpu-a", "idle", "", nil, 0)
			} else {
				busyB = 3240
			}
			gpu(t.Add(time.Second), "ml", "gpu-b", "k8s_pod", "trainer", nil, busyB)
			gpu(t.Add(2*time.Second), "ml", "gpu-c", "k8s_pod", "llama-server", map[string]string{"deployment": "llama"}, 3240)
			n, in, outTokens := 10, int64(20_000), int64(5_000)
			if control {
				n, in, outTokens = 40, 400_000, 100_000
			}
			each(h, n, func(t time.Time, _ int) {
				llm(t.Add(3*time.Second), "ml", "serving", "self-hosted", "llama-3-70b", "", map[string]string{"deployment": "llama"}, in, 0, 0, outTokens)
			})
		}
	}
	slices.SortStableFunc(out, func(a, b schemas.Event) int { return a.Time.Compare(b.Time) })
	return out, nil
}

// savingsID is a ULID for t with entropy from the scenario's own source.
func savingsID(t time.Time, src *rand.ChaCha8) string {
	id, err := ulid.New(ulid.Timestamp(t), src)
	if err != nil {
		return ulid.Make().String()
	}
	return id.String()
}

// savingsFor is the traffic of cfg's savings scenarios over the hours of
// event time a bounded run covers (a day for an unbounded one).
func savingsFor(cfg Config, start time.Time) []schemas.Event {
	if len(cfg.SavingsScenarios) == 0 {
		return nil
	}
	hours := 24
	if cfg.Duration > 0 {
		span := time.Duration(float64(cfg.Duration) * cfg.TimeScale)
		hours = max(1, int((span+time.Hour-1)/time.Hour))
	}
	var out []schemas.Event
	for _, name := range cfg.SavingsScenarios {
		evs, err := SavingsTraffic(name, start, hours, false)
		if err != nil {
			continue // Validate reports unknown names
		}
		out = append(out, evs...)
	}
	slices.SortStableFunc(out, func(a, b schemas.Event) int { return a.Time.Compare(b.Time) })
	return out
}
