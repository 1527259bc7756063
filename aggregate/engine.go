package aggregate

import (
	"math"
	"sort"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/aivis-dev/aivis/schemas"
)

// Outcome says what the engine did with one event.
type Outcome uint8

const (
	// Accepted: first occurrence, counted in its window.
	Accepted Outcome = iota
	// Duplicate: its event_id was seen within the dedup horizon.
	Duplicate
	// Replayed: its window already holds it in the sink (offset at or
	// below the window's emitted through-offset); skipping it is what makes
	// replays and restarts exact.
	Replayed
	// TooLate: older than the late horizon; the caller dead-letters it.
	TooLate
	// Future: further ahead of the processing clock than MaxFuture; it is
	// neither counted nor allowed to move the watermark, and the caller
	// dead-letters it.
	Future
)

func (o Outcome) String() string {
	switch o {
	case Accepted:
		return "accepted"
	case Duplicate:
		return "duplicate"
	case Replayed:
		return "replayed"
	case TooLate:
		return "too_late"
	case Future:
		return "future"
	}
	return "unknown"
}

// Input is one enriched event at its position in the enriched topic.
type Input struct {
	Offset int64
	Event  *schemas.Enriched
}

type dims struct{ provider, model, team, project string }

// acc sums one window's events of one dims. Money is 128 bits wide and
// cannot overflow (2^64 events of the largest int64 cost fit). Token and
// latency sums are int64 like the ClickHouse columns they go to: schemas
// bounds each event (MaxTokens, MaxLatencyMs), so a sum overflows only
// after millions of events at the bound, and then the acc is closed into
// full and a fresh one continues, each becoming its own exact row.
type acc struct {
	requests, errors, unpriced                      uint64
	input, cacheRead, cacheWrite, output, reasoning int64
	costPicos                                       schemas.Picos128
	latencyCount                                    uint64
	latencySumMs                                    int64
	latencyHist                                     [schemas.LatencyBuckets]uint64

	// full are the closed accs of the same window and dims, oldest first;
	// through is the offset a closed acc covers events up to.
	full    []*acc
	through int64
}

// close moves a's sums into a closed acc covering offsets up to through
// and leaves a empty, to continue.
func (a *acc) close(through int64) {
	closed := new(acc)
	*closed = *a
	closed.full, closed.through = nil, through
	*a = acc{full: append(a.full, closed)}
}

type window struct {
	firstOffset int64 // smallest offset not yet in the sink
	accs        map[uint32]*acc
}

type dedupItem struct {
	id     string
	timeMs int64
}

type partition struct {
	id         int32
	position   int64 // last processed offset, -1 before the first
	maxEventMs int64
	hasEvents  bool
	windows    map[int64]*window // by window start, unix seconds
	emitted    map[int64]int64
	pending    []schemas.StoredEvent
	lastActive time.Time

	seen      map[string]int64 // event id → event time ms
	seenOrder []dedupItem      // insertion order, for expiry
	seenHead  int
}

func (p *partition) watermarkMs(outOfOrder time.Duration) int64 {
	if !p.hasEvents {
		return math.MinInt64
	}
	return p.maxEventMs - outOfOrder.Milliseconds()
}

// Engine is the per-process windowing state for the partitions this
// replica owns. It is not safe for concurrent use; the stage serialises
// access.
type Engine struct {
	cfg      Config
	windowMs int64
	parts    map[int32]*partition
	dimIDs   map[dims]uint32
	dimList  []dims
	seenN    int
	// evictions counts ids forgotten early (MaxDedupEntries).
	evictions int64

	mem     memory.Allocator
	builder *array.RecordBuilder
}

var batchSchema = arrow.NewSchema([]arrow.Field{
	{Name: "window_start", Type: arrow.PrimitiveTypes.Int64},
	{Name: "dim", Type: arrow.PrimitiveTypes.Uint32},
	{Name: "offset", Type: arrow.PrimitiveTypes.Int64},
	{Name: "is_error", Type: arrow.PrimitiveTypes.Uint8},
	{Name: "unpriced", Type: arrow.PrimitiveTypes.Uint8},
	{Name: "input_tokens", Type: arrow.PrimitiveTypes.Int64},
	{Name: "cache_read_input_tokens", Type: arrow.PrimitiveTypes.Int64},
	{Name: "cache_write_input_tokens", Type: arrow.PrimitiveTypes.Int64},
	{Name: "output_tokens", Type: arrow.PrimitiveTypes.Int64},
	{Name: "reasoning_output_tokens", Type: arrow.PrimitiveTypes.Int64},
	{Name: "cost_picos", Type: arrow.PrimitiveTypes.Int64},
	{Name: "latency_ms", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
}, nil)

const (
	colWindow = iota
	colDim
	colOffset
	colError
	colUnpriced
	colInput
	colCacheRead
	colCacheWrite
	colOutput
	colReasoning
	colCost
	colLatency
)

// NewEngine returns an engine with no partitions.
func NewEngine(cfg Config) *Engine {
	mem := memory.NewGoAllocator()
	return &Engine{
		cfg:      cfg,
		windowMs: cfg.Window.Milliseconds(),
		parts:    map[int32]*partition{},
		dimIDs:   map[dims]uint32{},
		mem:      mem,
		builder:  array.NewRecordBuilder(mem, batchSchema),
	}
}

// Close releases the Arrow builder.
func (e *Engine) Close() { e.builder.Release() }

// Owns reports whether the partition's state is loaded.
func (e *Engine) Owns(p int32) bool { _, ok := e.parts[p]; return ok }

// Assign loads a partition's history so that replayed records are
// recognised. It must precede the partition's first AddBatch.
func (e *Engine) Assign(p int32, h schemas.PartitionHistory, now time.Time) {
	e.Drop(p)
	part := &partition{
		id:         p,
		position:   -1,
		windows:    map[int64]*window{},
		emitted:    h.Emitted,
		seen:       make(map[string]int64, len(h.SeenIDs)),
		lastActive: now,
	}
	if part.emitted == nil {
		part.emitted = map[int64]int64{}
	}
	for _, s := range h.SeenIDs {
		e.remember(part, s.ID, s.Time.UnixMilli())
	}
	e.parts[p] = part
}

// Drop forgets a partition (revoked or lost). Nothing is emitted: the next
// owner replays from the committed offset.
func (e *Engine) Drop(p int32) {
	if part, ok := e.parts[p]; ok {
		e.seenN -= len(part.seen)
		delete(e.parts, p)
	}
}

// Partitions lists the owned partitions in order.
func (e *Engine) Partitions() []int32 {
	out := make([]int32, 0, len(e.parts))
	for p := range e.parts {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func (e *Engine) dimID(ev *schemas.Enriched) uint32 {
	d := dims{ev.Provider, ev.Model, ev.Owner.Team, ev.Owner.Project}
	if id, ok := e.dimIDs[d]; ok {
		return id
	}
	id := uint32(len(e.dimList))
	e.dimIDs[d] = id
	e.dimList = append(e.dimList, d)
	return id
}

func (e *Engine) windowStart(timeMs int64) int64 {
	ws := timeMs / e.windowMs
	if timeMs%e.windowMs < 0 {
		ws--
	}
	return ws * e.windowMs / 1000
}

func (e *Engine) remember(part *partition, id string, timeMs int64) {
	part.seen[id] = timeMs
	part.seenOrder = append(part.seenOrder, dedupItem{id, timeMs})
	e.seenN++
	if e.seenN > e.cfg.MaxDedupEntries {
		e.evictOldest(part)
	}
}

// expire forgets ids older than the dedup horizon behind the watermark.
func (e *Engine) expire(part *partition) {
	if !part.hasEvents {
		return
	}
	horizon := part.maxEventMs - e.cfg.DedupHorizon.Milliseconds()
	for part.seenHead < len(part.seenOrder) && part.seenOrder[part.seenHead].timeMs < horizon {
		e.forget(part)
	}
	if part.seenHead > 4096 && part.seenHead*2 > len(part.seenOrder) {
		part.seenOrder = append([]dedupItem(nil), part.seenOrder[part.seenHead:]...)
		part.seenHead = 0
	}
}

func (e *Engine) evictOldest(part *partition) {
	if part.seenHead < len(part.seenOrder) {
		e.forget(part)
		e.evictions++
	}
}

func (e *Engine) forget(part *partition) {
	it := part.seenOrder[part.seenHead]
	part.seenOrder[part.seenHead] = dedupItem{}
	part.seenHead++
	if t, ok := part.seen[it.id]; ok && t == it.timeMs {
		delete(part.seen, it.id)
		e.seenN--
	}
}

// AddBatch classifies and aggregates one poll's records of one partition,
// in offset order. Accepted events are appended to an Arrow record batch
// and folded into their windows column by column. outcomes[i] belongs to
// in[i]. now is the processing clock: no event later than now plus
// MaxFuture moves the watermark.
func (e *Engine) AddBatch(p int32, in []Input, now time.Time, outcomes []Outcome) []Outcome {
	part := e.parts[p]
	outcomes = outcomes[:0]
	if part == nil {
		return outcomes
	}
	part.lastActive = now
	b := e.builder
	b.Reserve(len(in))
	wsB := b.Field(colWindow).(*array.Int64Builder)
	dimB := b.Field(colDim).(*array.Uint32Builder)
	offB := b.Field(colOffset).(*array.Int64Builder)
	errB := b.Field(colError).(*array.Uint8Builder)
	unpB := b.Field(colUnpriced).(*array.Uint8Builder)
	inB := b.Field(colInput).(*array.Int64Builder)
	crB := b.Field(colCacheRead).(*array.Int64Builder)
	cwB := b.Field(colCacheWrite).(*array.Int64Builder)
	outB := b.Field(colOutput).(*array.Int64Builder)
	reB := b.Field(colReasoning).(*array.Int64Builder)
	costB := b.Field(colCost).(*array.Int64Builder)
	latB := b.Field(colLatency).(*array.Int64Builder)

	lateHorizonMs := e.cfg.LateHorizon.Milliseconds()
	futureMs := now.UnixMilli() + e.cfg.MaxFuture.Milliseconds()
	for _, rec := range in {
		ev := rec.Event
		part.position = rec.Offset
		timeMs := ev.Time.UnixMilli()
		if _, dup := part.seen[ev.EventID]; dup {
			outcomes = append(outcomes, Duplicate)
			continue
		}
		if timeMs > futureMs {
			// Not remembered: sent again once its time has come, it counts.
			outcomes = append(outcomes, Future)
			continue
		}
		if part.hasEvents && timeMs < part.watermarkMs(e.cfg.OutOfOrder)-lateHorizonMs {
			outcomes = append(outcomes, TooLate)
			continue
		}
		e.remember(part, ev.EventID, timeMs)
		if !part.hasEvents || timeMs > part.maxEventMs {
			part.maxEventMs, part.hasEvents = timeMs, true
		}
		ws := e.windowStart(timeMs)
		if through, ok := part.emitted[ws]; ok && rec.Offset <= through {
			outcomes = append(outcomes, Replayed)
			continue
		}
		outcomes = append(outcomes, Accepted)
		part.pending = append(part.pending, schemas.StoredEvent{Event: ev, Partition: p, Offset: rec.Offset})

		wsB.Append(ws)
		dimB.Append(e.dimID(ev))
		offB.Append(rec.Offset)
		isErr := uint8(0)
		if ev.Status == schemas.StatusError {
			isErr = 1
		}
		errB.Append(isErr)
		unp := uint8(0)
		if ev.Flags.Unpriced {
			unp = 1
		}
		unpB.Append(unp)
		var u schemas.Usage
		if ev.Usage != nil {
			u = *ev.Usage
		}
		inB.Append(schemas.Get(u.InputTokens))
		crB.Append(schemas.Get(u.CacheReadInputTokens))
		cwB.Append(schemas.Get(u.CacheWriteInputTokens))
		outB.Append(schemas.Get(u.OutputTokens))
		reB.Append(schemas.Get(u.ReasoningOutputTokens))
		costB.Append(ev.CostPicos)
		if ev.LatencyMs != nil {
			latB.Append(*ev.LatencyMs)
		} else {
			latB.AppendNull()
		}
	}
	rec := b.NewRecord()
	e.fold(part, rec)
	rec.Release()
	e.expire(part)
	return outcomes
}

// fold aggregates a record batch into the partition's open windows, reading
// the columns as plain slices.
func (e *Engine) fold(part *partition, rec arrow.Record) {
	n := int(rec.NumRows())
	if n == 0 {
		return
	}
	ws := rec.Column(colWindow).(*array.Int64).Int64Values()
	dim := rec.Column(colDim).(*array.Uint32).Uint32Values()
	off := rec.Column(colOffset).(*array.Int64).Int64Values()
	isErr := rec.Column(colError).(*array.Uint8).Uint8Values()
	unp := rec.Column(colUnpriced).(*array.Uint8).Uint8Values()
	in := rec.Column(colInput).(*array.Int64).Int64Values()
	cr := rec.Column(colCacheRead).(*array.Int64).Int64Values()
	cw := rec.Column(colCacheWrite).(*array.Int64).Int64Values()
	out := rec.Column(colOutput).(*array.Int64).Int64Values()
	re := rec.Column(colReasoning).(*array.Int64).Int64Values()
	cost := rec.Column(colCost).(*array.Int64).Int64Values()
	latCol := rec.Column(colLatency).(*array.Int64)
	lat := latCol.Int64Values()
	hasNulls := latCol.NullN() > 0

	var (
		curWS  int64 = math.MinInt64
		curWin *window
		curDim uint32
		cur    *acc
	)
	for i := 0; i < n; i++ {
		if ws[i] != curWS || curWin == nil {
			curWS = ws[i]
			curWin = part.windows[curWS]
			if curWin == nil {
				curWin = &window{firstOffset: off[i], accs: map[uint32]*acc{}}
				part.windows[curWS] = curWin
			}
			cur = nil
		}
		if cur == nil || dim[i] != curDim {
			curDim = dim[i]
			cur = curWin.accs[curDim]
			if cur == nil {
				cur = &acc{}
				curWin.accs[curDim] = cur
			}
		}
		if off[i] < curWin.firstOffset {
			curWin.firstOffset = off[i]
		}
		hasLatency := !hasNulls || latCol.IsValid(i)
		var latency int64
		if hasLatency {
			latency = lat[i]
		}
		// Checked int64 sums: the sign bit of (a^s)&(b^s) is set when a+b
		// overflowed into s. A window that would overflow continues in a
		// new acc, closed through the offset before this event's.
		input, cacheRead, cacheWrite := cur.input+in[i], cur.cacheRead+cr[i], cur.cacheWrite+cw[i]
		output, reasoning, latencySum := cur.output+out[i], cur.reasoning+re[i], cur.latencySumMs+latency
		if (cur.input^input)&(in[i]^input)|(cur.cacheRead^cacheRead)&(cr[i]^cacheRead)|
			(cur.cacheWrite^cacheWrite)&(cw[i]^cacheWrite)|(cur.output^output)&(out[i]^output)|
			(cur.reasoning^reasoning)&(re[i]^reasoning)|(cur.latencySumMs^latencySum)&(latency^latencySum) < 0 {
			cur.close(off[i] - 1)
			input, cacheRead, cacheWrite = in[i], cr[i], cw[i]
			output, reasoning, latencySum = out[i], re[i], latency
		}
		cur.requests++
		cur.errors += uint64(isErr[i])
		cur.unpriced += uint64(unp[i])
		cur.input, cur.cacheRead, cur.cacheWrite = input, cacheRead, cacheWrite
		cur.output, cur.reasoning = output, reasoning
		cur.costPicos = cur.costPicos.Add(cost[i])
		if hasLatency {
			cur.latencyCount++
			cur.latencySumMs = latencySum
			cur.latencyHist[LatencyBucket(latency)]++
		}
	}
}

// LatencyBucket maps a latency to its histogram bucket: bucket i holds
// (2^((i-1)/4), 2^(i/4)] milliseconds; the last bucket is open-ended.
func LatencyBucket(ms int64) int {
	if ms <= 1 {
		return 0
	}
	b := int(math.Ceil(4 * math.Log2(float64(ms))))
	if b >= schemas.LatencyBuckets {
		return schemas.LatencyBuckets - 1
	}
	return b
}

// Flush is the output of one flush: accepted events not yet stored and the
// rows of the windows that closed. Apply it with Ack once the sink has made
// it durable.
type Flush struct {
	Events  []schemas.StoredEvent
	Rows    []schemas.WindowRow
	closed  map[int32][]int64 // partition → window starts emitted
	taken   map[int32]int     // partition → pending events taken
	through map[int32]int64
}

// Empty reports whether there is nothing to write.
func (f *Flush) Empty() bool { return len(f.Events) == 0 && len(f.Rows) == 0 }

// Flush collects what is ready: every pending event, and the windows whose
// end plus allowed lateness the watermark has passed. Partitions idle for
// IdleTimeout emit all their windows; all=true emits everything (shutdown).
// The engine is unchanged until Ack.
func (e *Engine) Flush(now time.Time, all bool) *Flush {
	f := &Flush{closed: map[int32][]int64{}, taken: map[int32]int{}, through: map[int32]int64{}}
	latenessMs := e.cfg.AllowedLateness.Milliseconds()
	for _, p := range e.Partitions() {
		part := e.parts[p]
		f.Events = append(f.Events, part.pending...)
		f.taken[p] = len(part.pending)
		idle := now.Sub(part.lastActive) >= e.cfg.IdleTimeout
		wm := part.watermarkMs(e.cfg.OutOfOrder)
		starts := make([]int64, 0, len(part.windows))
		for ws := range part.windows {
			endMs := ws*1000 + e.windowMs
			if all || idle || endMs+latenessMs <= wm {
				starts = append(starts, ws)
			}
		}
		sort.Slice(starts, func(i, j int) bool { return starts[i] < starts[j] })
		for _, ws := range starts {
			f.Rows = e.appendRows(f.Rows, part, ws)
		}
		if len(starts) > 0 {
			f.closed[p] = starts
			f.through[p] = part.position
		}
	}
	return f
}

func (e *Engine) appendRows(rows []schemas.WindowRow, part *partition, ws int64) []schemas.WindowRow {
	w := part.windows[ws]
	ids := make([]uint32, 0, len(w.accs))
	for id := range w.accs {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		a := w.accs[id]
		for _, f := range a.full {
			rows = e.appendRow(rows, part, ws, id, f, f.through)
		}
		rows = e.appendRow(rows, part, ws, id, a, part.position)
	}
	return rows
}

// appendRow appends the row of one acc, covering offsets up to through.
// A window's closed accs have smaller throughs than its open one, so every
// row has its own key, and the highest through stays part.position.
func (e *Engine) appendRow(rows []schemas.WindowRow, part *partition, ws int64, id uint32, a *acc, through int64) []schemas.WindowRow {
	d := e.dimList[id]
	hist := make([]uint64, schemas.LatencyBuckets)
	copy(hist, a.latencyHist[:])
	return append(rows, schemas.WindowRow{
		WindowStart:           time.Unix(ws, 0).UTC(),
		WindowSeconds:         uint32(e.windowMs / 1000),
		Provider:              d.provider,
		Model:                 d.model,
		Team:                  d.team,
		Project:               d.project,
		SrcPartition:          part.id,
		ThroughOffset:         through,
		Requests:              a.requests,
		Errors:                a.errors,
		UnpricedRequests:      a.unpriced,
		InputTokens:           a.input,
		CacheReadInputTokens:  a.cacheRead,
		CacheWriteInputTokens: a.cacheWrite,
		OutputTokens:          a.output,
		ReasoningOutputTokens: a.reasoning,
		CostPicos:             a.costPicos,
		LatencyCount:          a.latencyCount,
		LatencySumMs:          a.latencySumMs,
		LatencyHist:           hist,
	})
}

// Ack applies a flush that the sink made durable: its events leave the
// pending list and its windows are recorded as emitted through the offset
// the partition had reached.
func (e *Engine) Ack(f *Flush) {
	for p, n := range f.taken {
		part := e.parts[p]
		if part == nil {
			continue
		}
		rest := len(part.pending) - n
		copy(part.pending, part.pending[n:])
		for i := rest; i < len(part.pending); i++ {
			part.pending[i] = schemas.StoredEvent{}
		}
		part.pending = part.pending[:rest]
	}
	for p, starts := range f.closed {
		part := e.parts[p]
		if part == nil {
			continue
		}
		for _, ws := range starts {
			delete(part.windows, ws)
			part.emitted[ws] = f.through[p]
		}
		e.pruneEmitted(part)
	}
}

// pruneEmitted forgets emitted markers that no accepted event can reach
// any more (older than the late horizon behind the watermark).
func (e *Engine) pruneEmitted(part *partition) {
	if !part.hasEvents || len(part.emitted) < 4096 {
		return
	}
	floor := (part.watermarkMs(e.cfg.OutOfOrder) - e.cfg.LateHorizon.Milliseconds() - e.windowMs) / 1000
	for ws := range part.emitted {
		if ws < floor {
			delete(part.emitted, ws)
		}
	}
}

// CommitOffset is the offset from which a restart must replay partition p:
// the smallest offset of an event not yet in the sink, or one past the
// last processed record. ok is false before the first record.
func (e *Engine) CommitOffset(p int32) (offset int64, ok bool) {
	part := e.parts[p]
	if part == nil || part.position < 0 {
		return 0, false
	}
	low := part.position + 1
	for _, w := range part.windows {
		if w.firstOffset < low {
			low = w.firstOffset
		}
	}
	return low, true
}

// Stats describes the engine state, for metrics.
type Stats struct {
	Partitions    int
	OpenWindows   int
	PendingEvents int
	DedupEntries  int
	// DedupEvictions counts ids forgotten early because MaxDedupEntries was
	// reached, since the engine was made.
	DedupEvictions int64
}

// Stats reports the current state sizes.
func (e *Engine) Stats() Stats {
	s := Stats{Partitions: len(e.parts), DedupEntries: e.seenN, DedupEvictions: e.evictions}
	for _, part := range e.parts {
		s.OpenWindows += len(part.windows)
		s.PendingEvents += len(part.pending)
	}
	return s
}

// Watermark returns partition p's watermark (zero time before any event).
func (e *Engine) Watermark(p int32) time.Time {
	part := e.parts[p]
	if part == nil || !part.hasEvents {
		return time.Time{}
	}
	return time.UnixMilli(part.watermarkMs(e.cfg.OutOfOrder)).UTC()
}
