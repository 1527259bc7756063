package loadgen

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/aivis-dev/aivis/schemas"
)

// Item is one unit of traffic: the bytes to send and what they are.
type Item struct {
	// Event is the event Raw encodes. For a malformed item it is the event
	// the broken bytes were derived from and does not match Raw. Shared
	// with duplicates: treat it as read-only.
	Event *schemas.Event
	// Raw is the JSON to send, one line, no trailing newline.
	Raw []byte
	// Malformed items are broken JSON or fail schemas.Validate.
	Malformed bool
	// Duplicate items resend an earlier item's exact Raw.
	Duplicate bool
	// Late events lie 1 to 3 minutes behind the event-time clock;
	// OutOfOrder ones up to 20 s behind.
	Late       bool
	OutOfOrder bool
	// Due is when to send the item, as wall time since the run began.
	Due time.Duration
}

// Generator produces a deterministic stream of Items from a Config. It is
// not safe for concurrent use.
type Generator struct {
	cfg      Config
	start    time.Time // event time at Due 0
	src      *rand.ChaCha8
	rng      *rand.Rand
	models   []modelProfile
	modelCum []float64
	owners   []Owner
	ownerCum []float64
	due      time.Duration
	history  []Item // recent valid items, for duplicates
	histNext int
	scenario *scenario // nil without one
	// fixed holds the savings scenarios' events, in time order; each is
	// sent once the event-time clock reaches it.
	fixed []schemas.Event
}

// historySize bounds how far back a duplicate may reach.
const historySize = 1024

// sources name the synthetic emitters so generated data is recognisable.
var sources = []string{"loadgen/gateway-eu", "loadgen/gateway-us", "loadgen/batch-runner"}

// NewGenerator returns a generator for cfg, which should pass Validate;
// values that would stall the schedule are replaced by defaults. A zero
// cfg.Start is resolved from the current time (see Config.Start), which
// makes the stream depend on when it was created.
func NewGenerator(cfg Config) *Generator {
	def := DefaultConfig()
	if !(cfg.Rate > 0) {
		cfg.Rate = def.Rate
	}
	if !(cfg.TimeScale > 0) {
		cfg.TimeScale = def.TimeScale
	}
	cfg.DiurnalAmplitude = math.Min(math.Max(cfg.DiurnalAmplitude, 0), 0.99)
	if cfg.Scenario == ScenarioBursts && cfg.BurstEvery <= 0 {
		cfg.BurstEvery, cfg.BurstDuration, cfg.BurstFactor = 2*time.Hour, 5*time.Minute, 5
	}
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], uint64(cfg.Seed))
	src := rand.NewChaCha8(seed)
	g := &Generator{
		cfg:    cfg,
		start:  cfg.startAt(time.Now()),
		src:    src,
		rng:    rand.New(src),
		owners: Owners(cfg),
	}
	for _, m := range catalog {
		if len(cfg.Providers) == 0 || slices.Contains(cfg.Providers, m.provider) {
			g.models = append(g.models, m)
		}
	}
	if len(g.models) == 0 {
		g.models = catalog
	}
	g.modelCum = cumulative(len(g.models), func(i int) float64 { return g.models[i].weight })
	g.ownerCum = cumulative(len(g.owners), func(i int) float64 { return g.owners[i].weight })
	g.scenario = g.scenarioFor(cfg)
	g.fixed = savingsFor(cfg, g.start)
	return g
}

// Scenario says what the configured scenario changes and when; ok is
// false without one.
func (g *Generator) Scenario() (_ ScenarioTarget, ok bool) {
	if g.scenario == nil {
		return ScenarioTarget{}, false
	}
	return g.scenario.ScenarioTarget, true
}

// Start returns the event time at which the stream begins.
func (g *Generator) Start() time.Time { return g.start }

// Next returns the next item; its Due never decreases.
func (g *Generator) Next() Item {
	g.advance()
	if len(g.fixed) > 0 && !g.fixed[0].Time.After(g.eventTime()) {
		ev := &g.fixed[0]
		g.fixed = g.fixed[1:]
		return Item{Event: ev, Raw: marshal(ev), Due: g.due}
	}
	var it Item
	r := g.rng.Float64()
	switch {
	case r < g.cfg.MalformedRate:
		it = g.malformed()
	case r < g.cfg.MalformedRate+g.cfg.DuplicateRate && len(g.history) > 0:
		h := g.history[g.rng.IntN(len(g.history))]
		it = Item{Event: h.Event, Raw: h.Raw, Duplicate: true}
	default:
		it = g.fresh()
		g.remember(it)
	}
	it.Due = g.due
	return it
}

// advance moves the schedule by an exponential gap at the current rate, so
// arrivals are Poisson with the daily shape and bursts applied.
func (g *Generator) advance() {
	now := g.eventTime()
	rate := g.cfg.Rate * (1 + g.cfg.DiurnalAmplitude*math.Sin(2*math.Pi*(hourOfDay(now)-8)/24))
	if _, in := g.burst(now); in {
		rate *= g.cfg.BurstFactor
	}
	rate *= 1 + g.scenario.extra(now)
	g.due += time.Duration(g.rng.ExpFloat64() / rate * float64(time.Second))
}

func (g *Generator) eventTime() time.Time {
	return g.start.Add(time.Duration(float64(g.due) * g.cfg.TimeScale))
}

func hourOfDay(t time.Time) float64 {
	h, m, s := t.Clock()
	return float64(h) + float64(m)/60 + float64(s)/3600
}

// burst reports which burst period t falls in and whether it is inside the
// burst that ends that period.
func (g *Generator) burst(t time.Time) (period int64, in bool) {
	every := g.cfg.BurstEvery
	if every <= 0 || g.cfg.BurstFactor <= 1 || g.scenario != nil {
		return 0, false
	}
	off := t.Sub(g.start)
	if off < 0 {
		return 0, false
	}
	return int64(off / every), off%every >= every-g.cfg.BurstDuration
}

func (g *Generator) remember(it Item) {
	if len(g.history) < historySize {
		g.history = append(g.history, it)
		return
	}
	g.history[g.histNext] = it
	g.histNext = (g.histNext + 1) % historySize
}

// fresh builds a new valid event, possibly late or out of order.
func (g *Generator) fresh() Item {
	t := g.eventTime()
	var it Item
	switch r := g.rng.Float64(); {
	case r < g.cfg.LateRate:
		t = t.Add(-time.Minute - time.Duration(g.rng.Float64()*float64(2*time.Minute)))
		it.Late = true
	case r < g.cfg.LateRate+g.cfg.OutOfOrderRate:
		t = t.Add(-time.Duration(g.rng.Float64() * float64(20*time.Second)))
		it.OutOfOrder = true
	}
	it.Event = g.event(t)
	it.Raw = marshal(it.Event)
	return it
}

// marshal encodes an event built here; the types hold nothing that
// encoding/json can reject, and RawUsage is itself produced by json.Marshal.
func marshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return []byte(`{}`)
	}
	return b
}

func (g *Generator) event(t time.Time) *schemas.Event {
	t = t.UTC().Truncate(time.Millisecond)
	m := g.models[pick(g.rng, g.modelCum)]
	var owner *Owner
	if g.rng.Float64() >= g.cfg.UnownedRate {
		owner = &g.owners[pick(g.rng, g.ownerCum)]
	}
	// During a burst the extra traffic comes from one team on one model.
	if k, in := g.burst(t); in && g.rng.Float64() > 1/g.cfg.BurstFactor {
		owner = &g.owners[int(k*7+3)%len(g.owners)]
		m = g.burstModel(k)
	}
	noCache := g.scenario.shape(g, t, &owner, &m)
	ev := &schemas.Event{
		SchemaVersion: schemas.SchemaVersion,
		EventID:       g.id(t),
		Time:          t,
		Kind:          schemas.KindLLMRequest,
		Source:        sources[g.rng.IntN(len(sources))],
		Provider:      m.provider,
		Model:         m.name,
		Operation:     "chat",
		Status:        schemas.StatusOK,
		Streaming:     g.rng.Float64() < 0.6,
	}
	if owner != nil {
		ev.APIKeyID = owner.APIKeyID
		ev.Labels = map[string]string{"team": owner.Team, "project": owner.Project}
	} else {
		ev.APIKeyID = unownedKeyID
	}
	if g.rng.Float64() < g.cfg.ErrorRate {
		g.failRequest(ev)
		return ev
	}
	in := g.logNormal(m.inMedian, 1.0, 1, 400_000)
	out := g.logNormal(m.outMedian, 0.8, 1, 64_000)
	ev.Usage, ev.RawUsage = g.usage(m, in, out, noCache)
	latency := m.ttftMs*math.Exp(0.35*g.rng.NormFloat64()) +
		float64(out)/m.tokensPerSec*1000*math.Exp(0.2*g.rng.NormFloat64())
	ev.LatencyMs = schemas.Int64(int64(latency))
	g.scenario.govern(g, ev, owner)
	return ev
}

// burstModel picks a priced model for burst k, so bursts show up as cost.
func (g *Generator) burstModel(k int64) modelProfile {
	var priced []modelProfile
	for _, m := range g.models {
		if !m.unpriced {
			priced = append(priced, m)
		}
	}
	if len(priced) == 0 {
		priced = g.models
	}
	return priced[int(k*5+1)%len(priced)]
}

// failRequest turns ev into a failed call: no usage, latency by failure.
func (g *Generator) failRequest(ev *schemas.Event) {
	ev.Status = schemas.StatusError
	var ms float64
	switch r := g.rng.Float64(); {
	case r < 0.6:
		ev.ErrorType, ms = "rate_limit", 30+g.rng.Float64()*200
	case r < 0.85:
		ev.ErrorType, ms = "server_error", 200+g.rng.Float64()*3000
	default:
		ev.ErrorType, ms = "timeout", 30_000+g.rng.Float64()*30_000
	}
	ev.LatencyMs = schemas.Int64(int64(ms))
}

// usage splits token totals the way the model's provider reports them and
// returns the normalized counts with the provider's raw usage object.
// Normalized input includes cache reads and writes; output includes reasoning.
func (g *Generator) usage(m modelProfile, in, out int64, noCache bool) (*schemas.Usage, json.RawMessage) {
	var read, write int64
	share := func(n int64, lo, hi float64) int64 { return int64(float64(n) * (lo + g.rng.Float64()*(hi-lo))) }
	switch m.provider {
	case "openai":
		// OpenAI caches prompt prefixes of 1024+ tokens in 128-token steps.
		if in >= 1024 && g.rng.Float64() < 0.35 {
			read = share(in, 0.3, 0.9) / 128 * 128
		}
	case "anthropic", "aws.bedrock":
		if g.rng.Float64() < 0.45 {
			read = share(in, 0.5, 0.95)
			if g.rng.Float64() < 0.25 {
				write = share(in-read, 0.3, 0.9)
			}
		} else if g.rng.Float64() < 0.25 {
			write = share(in, 0.3, 0.8)
		}
	case "google":
		if g.rng.Float64() < 0.2 {
			read = share(in, 0.4, 0.9)
		}
	}
	if noCache {
		read = 0
	}
	var reasoning int64
	if m.reasoningShare > 0 {
		reasoning = min(out, share(out, 0.6*m.reasoningShare, 1.3*m.reasoningShare))
	}
	u := &schemas.Usage{
		InputTokens:  schemas.Int64(in),
		OutputTokens: schemas.Int64(out),
	}
	var raw any
	switch m.provider {
	case "openai":
		u.CacheReadInputTokens = schemas.Int64(read)
		u.ReasoningOutputTokens = schemas.Int64(reasoning)
		u.ProviderTotalTokens = schemas.Int64(in + out)
		raw = openAIUsage{
			PromptTokens: in, CompletionTokens: out, TotalTokens: in + out,
			PromptDetails:     openAIPromptDetails{CachedTokens: read},
			CompletionDetails: openAICompletionDetails{ReasoningTokens: reasoning},
		}
	case "anthropic":
		u.CacheReadInputTokens = schemas.Int64(read)
		u.CacheWriteInputTokens = schemas.Int64(write)
		raw = anthropicUsage{InputTokens: in - read - write, CacheCreation: write, CacheRead: read, OutputTokens: out}
	case "aws.bedrock":
		u.CacheReadInputTokens = schemas.Int64(read)
		u.CacheWriteInputTokens = schemas.Int64(write)
		u.ProviderTotalTokens = schemas.Int64(in + out)
		raw = bedrockUsage{InputTokens: in - read - write, OutputTokens: out, TotalTokens: in + out, CacheRead: read, CacheWrite: write}
	case "google":
		u.CacheReadInputTokens = schemas.Int64(read)
		u.ReasoningOutputTokens = schemas.Int64(reasoning)
		u.ProviderTotalTokens = schemas.Int64(in + out)
		raw = geminiUsage{Prompt: in, Cached: read, Candidates: out - reasoning, Thoughts: reasoning, Total: in + out}
	default: // OpenAI-compatible servers without cache or reasoning details
		u.ProviderTotalTokens = schemas.Int64(in + out)
		raw = openAIUsage{PromptTokens: in, CompletionTokens: out, TotalTokens: in + out}
	}
	return u, marshal(raw)
}

// Provider usage objects, with the providers' own field names.
type openAIUsage struct {
	PromptTokens      int64                   `json:"prompt_tokens"`
	CompletionTokens  int64                   `json:"completion_tokens"`
	TotalTokens       int64                   `json:"total_tokens"`
	PromptDetails     openAIPromptDetails     `json:"prompt_tokens_details,omitzero"`
	CompletionDetails openAICompletionDetails `json:"completion_tokens_details,omitzero"`
}

type openAIPromptDetails struct {
	CachedTokens int64 `json:"cached_tokens"`
}

type openAICompletionDetails struct {
	ReasoningTokens int64 `json:"reasoning_tokens"`
}

type anthropicUsage struct {
	InputTokens   int64 `json:"input_tokens"`
	CacheCreation int64 `json:"cache_creation_input_tokens"`
	CacheRead     int64 `json:"cache_read_input_tokens"`
	OutputTokens  int64 `json:"output_tokens"`
}

type bedrockUsage struct {
	InputTokens  int64 `json:"inputTokens"`
	OutputTokens int64 `json:"outputTokens"`
	TotalTokens  int64 `json:"totalTokens"`
	CacheRead    int64 `json:"cacheReadInputTokens,omitempty"`
	CacheWrite   int64 `json:"cacheWriteInputTokens,omitempty"`
}

type geminiUsage struct {
	Prompt     int64 `json:"promptTokenCount"`
	Cached     int64 `json:"cachedContentTokenCount,omitempty"`
	Candidates int64 `json:"candidatesTokenCount"`
	Thoughts   int64 `json:"thoughtsTokenCount,omitempty"`
	Total      int64 `json:"totalTokenCount"`
}

// malformed derives an item ingest must reject from a fresh event.
func (g *Generator) malformed() Item {
	ev := g.event(g.eventTime())
	it := Item{Event: ev, Malformed: true}
	switch g.rng.IntN(6) {
	case 0: // truncated in transit
		raw := marshal(ev)
		it.Raw = raw[:len(raw)/2]
	case 1:
		ev.Model = ""
	case 2:
		ev.Usage = &schemas.Usage{InputTokens: schemas.Int64(100), OutputTokens: schemas.Int64(-1 - g.rng.Int64N(500))}
	case 3: // a field the contract does not have
		raw := marshal(ev)
		it.Raw = append(raw[:len(raw)-1:len(raw)-1], `,"tokens_used":1234}`...)
	case 4: // cache reads not included in input, against the convention
		ev.Usage = &schemas.Usage{InputTokens: schemas.Int64(100), CacheReadInputTokens: schemas.Int64(900)}
	case 5:
		ev.EventID = ""
	}
	if it.Raw == nil {
		it.Raw = marshal(ev)
	}
	return it
}

// id returns a ULID for event time t with entropy from the seeded source.
func (g *Generator) id(t time.Time) string {
	id, err := ulid.New(ulid.Timestamp(t), g.src)
	if err != nil {
		// Unreachable: ChaCha8 never fails and event times are validated.
		return ulid.Make().String()
	}
	return id.String()
}

// logNormal draws around median with spread sigma, clamped to [lo, hi].
func (g *Generator) logNormal(median, sigma float64, lo, hi int64) int64 {
	v := int64(median * math.Exp(sigma*g.rng.NormFloat64()))
	return min(max(v, lo), hi)
}

func cumulative(n int, weight func(int) float64) []float64 {
	cum := make([]float64, n)
	var sum float64
	for i := range n {
		sum += weight(i)
		cum[i] = sum
	}
	return cum
}

func pick(rng *rand.Rand, cum []float64) int {
	i := sort.SearchFloat64s(cum, rng.Float64()*cum[len(cum)-1])
	return min(i, len(cum)-1)
}
