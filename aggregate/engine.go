package aggregate

import (
	"math"
	"math/bits"
	"slices"
	"sort"
	"time"
	"unsafe"

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

// dims is the key of a window row; model is the canonical model
// (schemas.Enriched.ModelID).
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
	latencyHist                                     histogram

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

// histogram counts latencies per bucket over the range of buckets seen so
// far: counts[i] is bucket lo+i. One key's latencies span a few octaves, so
// this holds about a fifth of the 96 buckets, and nothing for keys without
// latencies; with 100k keys open the difference is most of the engine's
// memory.
type histogram struct {
	lo     int32
	counts []uint64
}

func (h *histogram) add(b int) {
	if i := b - int(h.lo); uint(i) < uint(len(h.counts)) {
		h.counts[i]++
		return
	}
	h.grow(b)
	h.counts[b-int(h.lo)]++
}

// grow widens the range to hold bucket b, with room for a few more
// buckets on the side it grew.
func (h *histogram) grow(b int) {
	const slack = 4
	if len(h.counts) == 0 {
		h.lo, h.counts = int32(b), make([]uint64, 1, slack)
		return
	}
	lo, hi := int(h.lo), int(h.lo)+len(h.counts) // [lo, hi)
	if b >= hi {
		if b < int(h.lo)+cap(h.counts) {
			h.counts = h.counts[:b-lo+1]
			return
		}
		counts := make([]uint64, b-lo+1, min(b-lo+1+slack, schemas.LatencyBuckets-lo))
		copy(counts, h.counts)
		h.counts = counts
		return
	}
	newLo := max(b-slack+1, 0)
	counts := make([]uint64, hi-newLo)
	copy(counts[lo-newLo:], h.counts)
	h.lo, h.counts = int32(newLo), counts
}

// size is the length of the histogram from bucket 0 through its last
// counted bucket: 0 without latencies.
func (h *histogram) size() int {
	n := int(h.lo) + len(h.counts)
	for n > int(h.lo) && h.counts[n-1-int(h.lo)] == 0 {
		n--
	}
	if n == int(h.lo) {
		return 0
	}
	return n
}

// fill writes the counts into dst, size() long and zeroed.
func (h *histogram) fill(dst []uint64) { copy(dst[h.lo:], h.counts[:len(dst)-int(h.lo)]) }

type window struct {
	firstOffset int64 // smallest offset not yet in the sink
	accs        map[uint32]*acc
}

// rows is the number of rows the window emits: one per acc, open or
// closed.
func (w *window) rows() int {
	n := len(w.accs)
	for _, a := range w.accs {
		n += len(a.full)
	}
	return n
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

	seen *dedupTiers // event ids, for dedup and expiry
	// checked holds the ids of the current batch that a sealed tier may
	// hold, each with whether the sink confirmed it stored (Suspects,
	// Resolve); AddBatch clears it. prechecked says Suspects probed the
	// batch's ids: the sealed tiers do not change until the batch ends, so
	// an id not in checked needs only the exact tier.
	checked    map[string]bool
	prechecked bool
	// fps are the fingerprints of the ids Suspects probed, in order, for
	// AddBatch to reuse; fpsFrom is the offset of the first.
	fps     [][2]uint64
	fpsFrom int64
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
	dimCache [dimCacheSize]dimCacheEntry
	// evictions counts ids forgotten before their horizon to stay within
	// DedupMemoryMiB (or MaxDedupEntries).
	evictions int64
	// unconfirmed counts sealed-tier hits taken for duplicates without a
	// Suspects/Resolve round (an engine driven without a sink).
	unconfirmed int64

	batch batchColumns
	// maxFlushRows bounds the rows of one Flush (maxFlushRows; tests
	// lower it).
	maxFlushRows int
	// flushEvents backs Flush.Events, reused from one flush to the next.
	flushEvents []schemas.StoredEvent
	// hists is where appendRow cuts the rows' histograms from.
	hists []uint64
	// byDim and byDimSet are fold's index of the current window's accs
	// by dims id, and the ids set in it; all nil between folds.
	byDim    []*acc
	byDimSet []uint32
}

// batchColumns are the columns of the record batch AddBatch builds, kept
// from poll to poll: the record wraps them without copying, so a batch
// costs no allocation per event.
type batchColumns struct {
	ws, off, in, cr, cw, out, re, cost, lat []int64
	dim, reqs                               []uint32
	isErr, unp                              []uint8
	latValid                                []byte // validity bitmap of lat
	latNulls                                int
}

// size makes every column n rows long (reusing its memory), for AddBatch
// to fill by index, with no row's latency valid yet.
func (c *batchColumns) size(n int) {
	c.ws, c.off, c.in, c.cr, c.cw = sized(c.ws, n), sized(c.off, n), sized(c.in, n), sized(c.cr, n), sized(c.cw, n)
	c.out, c.re, c.cost, c.lat = sized(c.out, n), sized(c.re, n), sized(c.cost, n), sized(c.lat, n)
	c.dim, c.reqs, c.isErr, c.unp = sized(c.dim, n), sized(c.reqs, n), sized(c.isErr, n), sized(c.unp, n)
	c.latValid, c.latNulls = sized(c.latValid, (n+7)/8), 0
	clear(c.latValid)
}

// truncate keeps the first n rows, nulls of which have no latency.
func (c *batchColumns) truncate(n, nulls int) {
	c.ws, c.off, c.in, c.cr, c.cw = c.ws[:n], c.off[:n], c.in[:n], c.cr[:n], c.cw[:n]
	c.out, c.re, c.cost, c.lat = c.out[:n], c.re[:n], c.cost[:n], c.lat[:n]
	c.dim, c.reqs, c.isErr, c.unp = c.dim[:n], c.reqs[:n], c.isErr[:n], c.unp[:n]
	c.latValid, c.latNulls = c.latValid[:(n+7)/8], nulls
}

// sized is s with length n, in its own memory when that is large enough.
func sized[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n, n+n/4)
	}
	return s[:n]
}

// record wraps the columns as an Arrow record; it is valid until the next
// reset.
func (c *batchColumns) record() arrow.Record {
	n := len(c.ws)
	i64 := func(v []int64) arrow.Array {
		return primitive(arrow.PrimitiveTypes.Int64, arrow.Int64Traits.CastToBytes(v), n)
	}
	u8 := func(v []uint8) arrow.Array { return primitive(arrow.PrimitiveTypes.Uint8, v, n) }
	var lat arrow.Array
	if c.latNulls == 0 {
		lat = i64(c.lat)
	} else {
		data := array.NewData(arrow.PrimitiveTypes.Int64, n,
			[]*memory.Buffer{memory.NewBufferBytes(c.latValid), memory.NewBufferBytes(arrow.Int64Traits.CastToBytes(c.lat))},
			nil, c.latNulls, 0)
		lat = array.MakeFromData(data)
		data.Release()
	}
	cols := []arrow.Array{
		colWindow: i64(c.ws), colDim: primitive(arrow.PrimitiveTypes.Uint32, arrow.Uint32Traits.CastToBytes(c.dim), n),
		colOffset: i64(c.off), colError: u8(c.isErr), colUnpriced: u8(c.unp),
		colInput: i64(c.in), colCacheRead: i64(c.cr), colCacheWrite: i64(c.cw),
		colOutput: i64(c.out), colReasoning: i64(c.re), colCost: i64(c.cost), colLatency: lat,
		colRequests: primitive(arrow.PrimitiveTypes.Uint32, arrow.Uint32Traits.CastToBytes(c.reqs), n),
	}
	rec := array.NewRecord(batchSchema, cols, int64(n))
	for _, a := range cols {
		a.Release()
	}
	return rec
}

func primitive(t arrow.DataType, values []byte, n int) arrow.Array {
	data := array.NewData(t, n, []*memory.Buffer{nil, memory.NewBufferBytes(values)}, nil, 0, 0)
	defer data.Release()
	return array.MakeFromData(data)
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
	{Name: "requests", Type: arrow.PrimitiveTypes.Uint32},
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
	colRequests // requests the event stands for (request_count, or 1)
)

// NewEngine returns an engine with no partitions.
func NewEngine(cfg Config) *Engine {
	return &Engine{
		cfg:      cfg,
		windowMs: cfg.Window.Milliseconds(),
		parts:    map[int32]*partition{},
		dimIDs:   map[dims]uint32{},

		maxFlushRows: maxFlushRows,
	}
}

// Close releases the engine's batch columns.
func (e *Engine) Close() { e.batch = batchColumns{} }

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
		seen:       newDedupTiers(min(len(h.SeenIDs), sealSpanIDs)),
		checked:    map[string]bool{},
		lastActive: now,
	}
	if part.emitted == nil {
		part.emitted = map[int64]int64{}
	}
	e.parts[p] = part
	for _, s := range h.SeenIDs {
		e.Remember(p, s.ID, s.Time)
	}
	e.enforceBudget()
}

// sealSpanIDs bounds the exact tier's initial capacity on Assign.
const sealSpanIDs = 1 << 20

// Remember adds an id the sink holds for partition p to its dedup state,
// streaming what Assign would take from PartitionHistory.SeenIDs: the
// ids of a 24 h horizon at a high rate do not fit in memory as strings.
// An id stored twice (a re-rated event not yet merged) is remembered once,
// from its first time; both copies have the same event time.
func (e *Engine) Remember(p int32, id string, at time.Time) {
	part := e.parts[p]
	if part == nil {
		return
	}
	// Only the exact tier is asked: probing every sealed tier for each of
	// hundreds of millions of ids would make a restore take hours, and an
	// id held twice is harmless.
	part.seen.add(part.seen.exact.fingerprint(id), at.UnixMilli())
	if part.seen.due() {
		part.seen.seal()
		e.enforceBudget()
	}
}

// Drop forgets a partition (revoked or lost). Nothing is emitted: the next
// owner replays from the committed offset.
func (e *Engine) Drop(p int32) { delete(e.parts, p) }

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
	// The canonical model, not the reported name: every spelling of one
	// model is one row. A record enriched before canonical_model existed
	// keys by its reported name, as it did when first counted.
	d := dims{ev.Provider, ev.ModelID(), ev.Owner.Team, ev.Owner.Project}
	// A small direct-mapped cache in front of the map, keyed by where the
	// four strings are: the stage's decoder interns short strings, so the
	// events of one key mostly share their strings' memory, and comparing
	// eight words is much cheaper than hashing or comparing the text. Equal
	// headers mean equal strings; equal strings elsewhere in memory only
	// miss the cache and take the map.
	c := &e.dimCache[d.slot()]
	if c.ok && c.d.sameMemory(&d) {
		return c.id
	}
	id, ok := e.dimIDs[d]
	if !ok {
		id = uint32(len(e.dimList))
		e.dimIDs[d] = id
		e.dimList = append(e.dimList, d)
	}
	*c = dimCacheEntry{d: d, id: id, ok: true}
	return id
}

// dimCacheSize is the number of entries of Engine.dimCache.
const (
	dimCacheBits = 8
	dimCacheSize = 1 << dimCacheBits
)

type dimCacheEntry struct {
	d  dims
	id uint32
	ok bool
}

// slot is d's entry in the dim cache, from where its strings are and how
// long they are.
func (d *dims) slot() uint32 {
	w := schemas.MemoryWord
	h := (w(d.provider)*31+w(d.model))*31 + w(d.team)*7 + w(d.project)
	return uint32((h * 0x9e3779b97f4a7c15) >> (64 - dimCacheBits))
}

// sameMemory reports whether d and o hold the same string headers (data
// and length), which implies that they are equal.
func (d *dims) sameMemory(o *dims) bool {
	return unsafe.StringData(d.provider) == unsafe.StringData(o.provider) && len(d.provider) == len(o.provider) &&
		unsafe.StringData(d.model) == unsafe.StringData(o.model) && len(d.model) == len(o.model) &&
		unsafe.StringData(d.team) == unsafe.StringData(o.team) && len(d.team) == len(o.team) &&
		unsafe.StringData(d.project) == unsafe.StringData(o.project) && len(d.project) == len(o.project)
}

func (e *Engine) windowStart(timeMs int64) int64 {
	ws := timeMs / e.windowMs
	if timeMs%e.windowMs < 0 {
		ws--
	}
	return ws * e.windowMs / 1000
}

// seenBefore reports whether id, of fingerprint fp, is a duplicate: held
// by the exact tier, or by a sealed tier and confirmed stored by the sink.
// slot is where the exact tier would hold it, for firstSeen.
func (e *Engine) seenBefore(part *partition, id string, fp [2]uint64) (slot uint64, seen bool) {
	if part.prechecked {
		slot, ok := part.seen.exact.find(fp)
		if ok {
			return slot, true
		}
		if len(part.checked) == 0 {
			return slot, false
		}
		return slot, part.checked[id]
	}
	slot, hit, _, _ := part.seen.probe(fp)
	switch hit {
	case hitExact:
		return slot, true
	case hitSealed:
		stored, ok := part.checked[id]
		if !ok {
			// Not asked about: without a sink to ask, the engine keeps
			// the old behaviour of a set that holds the id.
			e.unconfirmed++
			return slot, true
		}
		return slot, stored
	}
	return slot, false
}

// firstSeen remembers id and reports whether it was new.
func (e *Engine) firstSeen(part *partition, id string, fp [2]uint64, timeMs int64) bool {
	slot, seen := e.seenBefore(part, id, fp)
	if seen {
		return false
	}
	part.seen.insert(fp, slot, timeMs)
	return true
}

// fingerprints returns the dedup fingerprints of in's ids, in order: the
// ones Suspects computed for the same poll when it did, else computed
// now. All of them are computed, and their index slots touched, before
// any is looked up: the loads of one pass do not depend on each other,
// so the processor overlaps their cache misses (the ids and the index
// are mostly out of cache), which the classifying loop, one event after
// the other, would wait for one at a time.
func (part *partition) fingerprints(in []Input) [][2]uint64 {
	if len(in) == 0 {
		return nil
	}
	if len(part.fps) != len(in) || part.fpsFrom != in[0].Offset {
		part.fps = part.fps[:0]
		for _, rec := range in {
			part.fps = append(part.fps, part.seen.exact.fingerprint(rec.Event.EventID))
		}
		part.fpsFrom = in[0].Offset
	}
	part.seen.exact.touch(part.fps)
	return part.fps
}

// Suspects lists the ids of in that only a sealed tier of partition p may
// hold (its compact fingerprints cannot tell two ids apart with
// certainty), with the event-time range of the chunks and buckets that
// matched; the original, if any, has its time in that range. The caller
// asks the sink which of them it stores for p and passes the answer to
// Resolve before AddBatch, which must get the same in; an id the sink
// does not hold is new. Ids among the partition's pending events
// (accepted, not yet written) are confirmed here and not listed.
func (e *Engine) Suspects(p int32, in []Input) (ids []string, from, to time.Time) {
	part := e.parts[p]
	if part == nil {
		return nil, time.Time{}, time.Time{}
	}
	clear(part.checked)
	part.prechecked = true
	part.fps = part.fps[:0]
	if !part.seen.sealed() {
		return nil, time.Time{}, time.Time{}
	}
	minMs, maxMs := int64(math.MaxInt64), int64(math.MinInt64)
	part.fps = part.fps[:0]
	if len(in) > 0 {
		part.fpsFrom = in[0].Offset
	}
	for _, rec := range in {
		id := rec.Event.EventID
		fp := part.seen.exact.fingerprint(id)
		part.fps = append(part.fps, fp)
		if _, done := part.checked[id]; done {
			continue
		}
		_, hit, lo, hi := part.seen.probe(fp)
		if hit != hitSealed {
			continue
		}
		part.checked[id] = false
		minMs, maxMs = min(minMs, lo), max(maxMs, hi)
	}
	if len(part.checked) == 0 {
		return nil, time.Time{}, time.Time{}
	}
	for _, ev := range part.pending {
		if _, ok := part.checked[ev.Event.EventID]; ok {
			part.checked[ev.Event.EventID] = true
		}
	}
	for id, stored := range part.checked {
		if !stored {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids, time.UnixMilli(minMs).UTC(), time.UnixMilli(maxMs).UTC()
}

// Resolve records which of the ids Suspects listed the sink stores for
// partition p: those are duplicates, the others new.
func (e *Engine) Resolve(p int32, stored map[string]bool) {
	part := e.parts[p]
	if part == nil {
		return
	}
	for id := range part.checked {
		if stored[id] {
			part.checked[id] = true
		}
	}
}

// expire seals the exact tier's older span, forgets ids older than the
// dedup horizon behind the watermark and keeps the state within its
// budget.
func (e *Engine) expire(part *partition) {
	part.seen.seal()
	if part.hasEvents {
		part.seen.expire(part.maxEventMs - e.cfg.DedupHorizon.Milliseconds())
	}
	e.enforceBudget()
}

// enforceBudget forgets the oldest sealed ids across partitions while the
// dedup state is over DedupMemoryMiB (or holds more than MaxDedupEntries
// ids). With nothing sealed left, it halves the largest exact tier.
// Either shortens the horizon held; Stats reports by how much.
func (e *Engine) enforceBudget() {
	limit := e.cfg.DedupMemoryMiB << 20
	for {
		var bytes int64
		n := 0
		var victim, largest *partition
		var victimMs int64
		for _, part := range e.parts {
			bytes += part.seen.Bytes()
			n += part.seen.Len()
			if t, ok := part.seen.oldestSealed(); ok && (victim == nil || t < victimMs) {
				victim, victimMs = part, t
			}
			if largest == nil || part.seen.exact.Len() > largest.seen.exact.Len() {
				largest = part
			}
		}
		if (limit <= 0 || bytes <= limit) && (e.cfg.MaxDedupEntries <= 0 || n <= e.cfg.MaxDedupEntries) {
			return
		}
		if victim == nil {
			// The exact tier alone is over: its arrays do not shrink, so
			// forget half of the largest one and stop.
			if largest != nil {
				n := largest.seen.exact.Len()
				k := n / 2
				if n-k == 1 {
					k = n // one left would be kept for ever
				}
				e.evictions += int64(largest.seen.evictExact(k))
			}
			return
		}
		e.evictions += int64(victim.seen.evict())
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
	c := &e.batch
	c.size(len(in))
	// The columns as local slices, filled by index: appending to the
	// fields of c would load and store each one's length per event.
	// Each as long as in, so that an index below len(in) needs no
	// bounds check.
	n := len(in)
	cws, cdim, coff, creqs, cerr, cunp := c.ws[:n], c.dim[:n], c.off[:n], c.reqs[:n], c.isErr[:n], c.unp[:n]
	cin, ccr, ccw, cout, cre, ccost, clat, valid := c.in[:n], c.cr[:n], c.cw[:n], c.out[:n], c.re[:n], c.cost[:n], c.lat[:n], c.latValid
	accepted, nulls := 0, 0
	outcomes = slices.Grow(outcomes, len(in))[:len(in)]

	lateHorizonMs := e.cfg.LateHorizon.Milliseconds()
	futureMs := now.UnixMilli() + e.cfg.MaxFuture.Milliseconds()
	// The window of the last accepted event, its start in ms, and what
	// the sink holds of it.
	var (
		ws, curMs = int64(0), int64(math.MaxInt64)
		through   int64
		emitted   bool
	)
	fps := part.fingerprints(in)
	for k := range in {
		rec := &in[k]
		ev := rec.Event
		part.position = rec.Offset
		timeMs := ev.Time.UnixMilli()
		fp := fps[k]
		if timeMs > futureMs || part.hasEvents && timeMs < part.watermarkMs(e.cfg.OutOfOrder)-lateHorizonMs {
			// A duplicate is reported as one even when it is also out of
			// range. Neither is remembered: a future event sent again
			// once its time has come counts.
			_, seen := e.seenBefore(part, ev.EventID, fp)
			switch {
			case seen:
				outcomes[k] = Duplicate
			case timeMs > futureMs:
				outcomes[k] = Future
			default:
				outcomes[k] = TooLate
			}
			continue
		}
		if !e.firstSeen(part, ev.EventID, fp, timeMs) {
			outcomes[k] = Duplicate
			continue
		}
		if !part.hasEvents || timeMs > part.maxEventMs {
			part.maxEventMs, part.hasEvents = timeMs, true
		}
		if timeMs < curMs || timeMs >= curMs+e.windowMs {
			// Another window than the last event's: most events of a
			// poll share a few windows.
			ws = e.windowStart(timeMs)
			curMs = floorDiv(timeMs, e.windowMs) * e.windowMs
			through, emitted = part.emitted[ws]
		}
		if emitted && rec.Offset <= through {
			outcomes[k] = Replayed
			continue
		}
		outcomes[k] = Accepted
		part.pending = append(part.pending, schemas.StoredEvent{Event: ev, Partition: p, Offset: rec.Offset})

		i := accepted // at most k, below n
		if i >= n {
			break
		}
		accepted++
		cws[i] = ws
		cdim[i] = e.dimID(ev)
		coff[i] = rec.Offset
		cerr[i] = flag(ev.Status == schemas.StatusError)
		cunp[i] = flag(ev.Flags.Unpriced)
		creqs[i] = uint32(ev.Requests()) // at most schemas.MaxRequestCount
		if u := ev.Usage; u != nil {
			cin[i] = schemas.Get(u.InputTokens)
			ccr[i] = schemas.Get(u.CacheReadInputTokens)
			ccw[i] = schemas.Get(u.CacheWriteInputTokens)
			cout[i] = schemas.Get(u.OutputTokens)
			cre[i] = schemas.Get(u.ReasoningOutputTokens)
		} else {
			cin[i], ccr[i], ccw[i], cout[i], cre[i] = 0, 0, 0, 0, 0
		}
		ccost[i] = ev.CostPicos
		if ev.LatencyMs != nil {
			clat[i] = *ev.LatencyMs
			valid[i/8] |= 1 << (i % 8)
		} else {
			clat[i] = 0
			nulls++
		}
	}
	c.truncate(accepted, nulls)
	if len(c.ws) > 0 {
		rec := c.record()
		e.fold(part, rec)
		rec.Release()
	}
	e.expire(part)
	clear(part.checked)
	part.prechecked = false
	part.fps = part.fps[:0]
	return outcomes
}

func flag(b bool) uint8 {
	if b {
		return 1
	}
	return 0
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
	reqs := rec.Column(colRequests).(*array.Uint32).Uint32Values()
	in := rec.Column(colInput).(*array.Int64).Int64Values()
	cr := rec.Column(colCacheRead).(*array.Int64).Int64Values()
	cw := rec.Column(colCacheWrite).(*array.Int64).Int64Values()
	out := rec.Column(colOutput).(*array.Int64).Int64Values()
	re := rec.Column(colReasoning).(*array.Int64).Int64Values()
	cost := rec.Column(colCost).(*array.Int64).Int64Values()
	latCol := rec.Column(colLatency).(*array.Int64)
	lat := latCol.Int64Values()
	hasNulls := latCol.NullN() > 0
	// Every column as long as the record, so that the loop's index needs
	// no bounds checks.
	ws, dim, off, isErr, unp, reqs = ws[:n], dim[:n], off[:n], isErr[:n], unp[:n], reqs[:n]
	in, cr, cw, out, re, cost, lat = in[:n], cr[:n], cw[:n], out[:n], re[:n], cost[:n], lat[:n]

	var (
		curWS  int64 = math.MinInt64
		curWin *window
		curDim uint32
		cur    *acc
	)
	// byDim holds the current window's accs by dims id as they are met,
	// so that events of interleaved keys find theirs without a map
	// lookup; it is cleared when the window changes.
	if len(e.byDim) < len(e.dimList) {
		e.byDim = append(e.byDim, make([]*acc, len(e.dimList)-len(e.byDim))...)
	}
	byDim := e.byDim
	clearByDim := func() {
		for _, d := range e.byDimSet {
			byDim[d] = nil
		}
		e.byDimSet = e.byDimSet[:0]
	}
	defer clearByDim()
	for i := 0; i < n; i++ {
		if ws[i] != curWS || curWin == nil {
			curWS = ws[i]
			curWin = part.windows[curWS]
			if curWin == nil {
				curWin = &window{firstOffset: off[i], accs: map[uint32]*acc{}}
				part.windows[curWS] = curWin
			}
			cur = nil
			clearByDim()
		}
		if cur == nil || dim[i] != curDim {
			curDim = dim[i]
			cur = byDim[curDim]
			if cur == nil {
				cur = curWin.accs[curDim]
				if cur == nil {
					cur = &acc{}
					curWin.accs[curDim] = cur
				}
				byDim[curDim] = cur
				e.byDimSet = append(e.byDimSet, curDim)
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
		r := uint64(reqs[i])
		cur.requests += r
		cur.errors += uint64(isErr[i]) * r
		cur.unpriced += uint64(unp[i]) * r
		cur.input, cur.cacheRead, cur.cacheWrite = input, cacheRead, cacheWrite
		cur.output, cur.reasoning = output, reasoning
		cur.costPicos = cur.costPicos.Add(cost[i])
		if hasLatency {
			cur.latencyCount++
			cur.latencySumMs = latencySum
			cur.latencyHist.add(LatencyBucket(latency))
		}
	}
}

// LatencyBucket maps a latency to its histogram bucket: bucket i holds
// (2^((i-1)/4), 2^(i/4)] milliseconds; the last bucket is open-ended.
// It looks the bucket up among the four of the latency's octave instead of
// taking a logarithm per event.
func LatencyBucket(ms int64) int {
	if ms <= 1 {
		return 0
	}
	if ms > latencyBucketMax[schemas.LatencyBuckets-2] {
		return schemas.LatencyBuckets - 1
	}
	// ms is in (2^(k-1), 2^k], so its bucket is in (4(k-1), 4k].
	k := bits.Len64(uint64(ms - 1))
	b := 4*k - 4
	for ms > latencyBucketMax[b] {
		b++
	}
	return b
}

// latencyBucketMax[b] is the largest latency in bucket b, found with the
// bucket's definition, ceil(4·log2(ms)), so that both agree exactly.
var latencyBucketMax = func() (upper [schemas.LatencyBuckets]int64) {
	for b := range schemas.LatencyBuckets - 1 {
		// The largest ms with latencyBucketLog(ms) <= b.
		lo, hi := int64(1), int64(1)<<40
		for lo < hi {
			mid := lo + (hi-lo+1)/2
			if latencyBucketLog(mid) <= b {
				lo = mid
			} else {
				hi = mid - 1
			}
		}
		upper[b] = lo
	}
	upper[schemas.LatencyBuckets-1] = math.MaxInt64
	return upper
}()

// latencyBucketLog is LatencyBucket by its definition, without the cap.
func latencyBucketLog(ms int64) int {
	if ms <= 1 {
		return 0
	}
	return int(math.Ceil(4 * math.Log2(float64(ms))))
}

// Flush is the output of one flush: accepted events not yet stored and the
// rows of the windows that closed. Apply it with Ack once the sink has made
// it durable.
type Flush struct {
	Events []schemas.StoredEvent
	Rows   []schemas.WindowRow
	// More says that windows were ready beyond the rows this flush took
	// (see maxFlushRows): flush again once this one is acked.
	More    bool
	closed  map[int32][]int64 // partition → window starts emitted
	taken   map[int32]int     // partition → pending events taken
	through map[int32]int64
}

// maxFlushRows bounds the window rows one Flush takes. 100,000 keys
// closing at once would otherwise be built as rows (with their
// histograms, about 500 bytes a row) and then held again in the sink's
// columns, all at the same time. A partition's window is never split: a
// larger one is taken alone.
const maxFlushRows = 16_384

// Empty reports whether there is nothing to write.
func (f *Flush) Empty() bool { return len(f.Events) == 0 && len(f.Rows) == 0 }

// Flush collects what is ready: every pending event, and the windows whose
// end plus allowed lateness the watermark has passed. Partitions idle for
// IdleTimeout emit all their windows; all=true emits everything (shutdown).
// Windows are taken whole, in order within each partition, until their
// rows reach maxFlushRows; Flush.More then says to flush again after Ack.
// The engine is unchanged until Ack. The Events slice is reused by the next
// Flush, so a flush must be written or dropped before the next one.
func (e *Engine) Flush(now time.Time, all bool) *Flush {
	f := &Flush{closed: map[int32][]int64{}, taken: map[int32]int{}, through: map[int32]int64{}}
	latenessMs := e.cfg.AllowedLateness.Milliseconds()
	prev := len(e.flushEvents)
	f.Events = e.flushEvents[:0]
	defer func() {
		e.flushEvents = f.Events
		if n := len(f.Events); n < prev {
			clear(f.Events[n:prev]) // let acked events go
		}
	}()
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
		for i, ws := range starts {
			if n := part.windows[ws].rows(); len(f.Rows) > 0 && len(f.Rows)+n > e.maxFlushRows {
				starts, f.More = starts[:i], true
				break
			}
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
	slices.Sort(ids)
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
	// Trailing empty buckets are left out: a key's latencies span a few
	// octaves, and 100k rows of 96 buckets would be most of a flush.
	n := a.latencyHist.size()
	var hist []uint64
	if n > 0 {
		if len(e.hists) < n {
			// One allocation for the histograms of many rows; each row
			// keeps its own part of it.
			e.hists = make([]uint64, 64*schemas.LatencyBuckets)
		}
		hist = e.hists[:n:n]
		e.hists = e.hists[n:]
		a.latencyHist.fill(hist)
	}
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
		clear(part.pending[rest:])
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
	// DedupBytes is the memory the dedup state holds.
	DedupBytes int64
	// DedupEvictions counts ids forgotten before their horizon to stay
	// within DedupMemoryMiB (or MaxDedupEntries), since the engine was made.
	DedupEvictions int64
	// DedupHeld is the dedup horizon every owned partition holds now:
	// DedupHorizon, or less when ids within it were evicted (DedupShort).
	// ShortPartition is the partition holding the least.
	DedupHeld      time.Duration
	DedupShort     bool
	ShortPartition int32
	// DedupUnconfirmed counts sealed-tier hits dropped without the sink's
	// confirmation (only when AddBatch is used without Suspects/Resolve).
	DedupUnconfirmed int64
}

// Stats reports the current state sizes.
func (e *Engine) Stats() Stats {
	s := Stats{Partitions: len(e.parts), DedupEvictions: e.evictions, DedupHeld: e.cfg.DedupHorizon,
		DedupUnconfirmed: e.unconfirmed}
	for _, part := range e.parts {
		s.OpenWindows += len(part.windows)
		s.PendingEvents += len(part.pending)
		s.DedupEntries += part.seen.Len()
		s.DedupBytes += part.seen.Bytes()
		if held := e.heldHorizon(part); held < s.DedupHeld {
			s.DedupHeld, s.ShortPartition = held, part.id
		}
	}
	s.DedupShort = s.DedupHeld < e.cfg.DedupHorizon
	return s
}

// heldHorizon is how far back in event time partition part is sure to
// remember every id: the dedup horizon, unless an id newer than that was
// evicted.
func (e *Engine) heldHorizon(part *partition) time.Duration {
	newest := part.seen.maxMs
	if part.hasEvents {
		newest = max(newest, part.maxEventMs)
	}
	if part.seen.forgotMs == math.MinInt64 {
		return e.cfg.DedupHorizon
	}
	held := time.Duration(newest-part.seen.forgotMs) * time.Millisecond
	return max(min(held, e.cfg.DedupHorizon), 0)
}

// Watermark returns partition p's watermark (zero time before any event).
func (e *Engine) Watermark(p int32) time.Time {
	part := e.parts[p]
	if part == nil || !part.hasEvents {
		return time.Time{}
	}
	return time.UnixMilli(part.watermarkMs(e.cfg.OutOfOrder)).UTC()
}
