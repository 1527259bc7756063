package aggregate

import (
	"math"
	"math/bits"
	"slices"
)

// dedupTiers is one partition's remembered event ids, in three tiers by
// age, so that a 24 h horizon at 10,000 events/s (864M ids) fits in a few
// GiB:
//
//   - exact: the ids of the last sealSpan or two of arrivals, in a seenSet
//     (128-bit fingerprints, about 40 bytes an id with its index). A retry
//     within minutes, the common duplicate, is decided here exactly.
//   - chunks: the ids sealed out of the exact tier during the current
//     hour, one sorted array of 64-bit fingerprints per sealSpan (8 bytes
//     an id), chunks of as many spans merged like a binary counter (at
//     most four for an hour).
//   - buckets: one per older hour of arrivals, the chunks merged into a
//     compact index (a prefix-offset table over the top q bits and the next
//     32 bits of each fingerprint, about 4.25 bytes an id); every
//     groupHours of them merged into one group whose entries give
//     groupTagBits of the 32 to their hour. An hour is forgotten once its
//     newest event time falls behind the horizon: its bucket dropped, or
//     its entries filtered out of its group.
//
// Every chunk and bucket is probed for a new id, so their number is most
// of a lookup's cost once the state is larger than the cache: at 24 h
// about 9 (2 chunks, 5 or 6 groups, up to 3 hourly buckets) instead of the
// 35 spans and hours.
//
// A chunk or bucket keeps only part of an id, so a hit there is a suspect,
// not a verdict: two ids may share the bits kept (about one probe in 10^8
// per bucket or group). The engine asks the caller to confirm suspects against the
// sink before it calls an event a duplicate (see Engine.Suspects); a miss
// is always exact.
type dedupTiers struct {
	exact *seenSet
	// mark is the ring sequence number where the exact tier's current
	// span began: the ids before it are sealed when the newest remembered
	// event time reaches nextSealMs.
	mark       uint64
	nextSealMs int64
	maxMs      int64 // newest event time remembered
	hasMax     bool

	chunks    []*sealedChunk // the current hour's, oldest first
	chunkHour int64
	buckets   []*compactBucket // older hours, oldest first
	sealedN   int

	// touched keeps the loads of lookup's second pass from being
	// optimised away.
	touched uint64

	// forgotMs is the newest event time of an id forgotten before its
	// horizon to stay within the budget (math.MinInt64 if none).
	forgotMs int64
}

const (
	// sealSpanMs is how much event time the exact tier gathers before its
	// older half is sealed: the exact tier holds one to two spans.
	sealSpanMs = 5 * 60 * 1000
	// bucketSpanMs is the event time of arrivals one compact bucket holds.
	bucketSpanMs = 60 * 60 * 1000
	// perPrefix is the mean number of fingerprints under one prefix of a
	// sealed index: a probe reads one 64-byte line of remainders.
	perPrefix = 16
)

func newDedupTiers(capacity int) *dedupTiers {
	return &dedupTiers{exact: newSeenSet(capacity), forgotMs: math.MinInt64}
}

// Len is the number of ids held in all tiers.
func (d *dedupTiers) Len() int { return d.exact.Len() + d.sealedN }

// Bytes is the memory the tiers hold, from their array sizes.
func (d *dedupTiers) Bytes() int64 {
	n := int64(len(d.exact.ring))*24 + int64(len(d.exact.slots))*8
	for _, c := range d.chunks {
		n += int64(cap(c.fps))*8 + int64(len(c.offs))*4
	}
	for _, b := range d.buckets {
		n += int64(cap(b.rems))*4 + int64(len(b.offs))*4
	}
	return n
}

// dedupHit says where an id was found.
type dedupHit uint8

const (
	hitNone   dedupHit = iota
	hitExact           // certainly seen
	hitSealed          // perhaps seen: confirm before dropping
)

// lookup finds id; fp is its fingerprint, for add.
func (d *dedupTiers) lookup(id string) (fp [2]uint64, hit dedupHit, minMs, maxMs int64) {
	fp = d.exact.fingerprint(id)
	_, hit, minMs, maxMs = d.probe(fp)
	return fp, hit, minMs, maxMs
}

// probe finds a fingerprint in every tier. slot is where the exact tier
// would hold it, for insert when nothing changed in between.
func (d *dedupTiers) probe(fp [2]uint64) (slot uint64, hit dedupHit, minMs, maxMs int64) {
	slot, ok := d.exact.find(fp)
	if ok {
		return slot, hitExact, 0, 0
	}
	minMs, maxMs = math.MaxInt64, math.MinInt64
	h := fp[0]
	// Two passes: first the prefix table entry of every chunk and bucket,
	// then their runs. The loads of one pass do not depend on each other,
	// so the processor overlaps their cache misses, which are most of a
	// lookup's cost once the state is larger than the cache.
	var spans [64][2]uint32
	units := len(d.chunks) + len(d.buckets)
	if units > len(spans) {
		units = 0 // more than a day of buckets: probe one at a time
	}
	for i, c := range d.chunks[:min(len(d.chunks), units)] {
		p := h >> c.shift
		spans[i] = [2]uint32{c.offs[p], c.offs[p+1]}
	}
	for i, b := range d.buckets[:max(0, min(len(d.buckets), units-len(d.chunks)))] {
		p := h >> b.shift
		spans[len(d.chunks)+i] = [2]uint32{b.offs[p], b.offs[p+1]}
	}
	// A second pass touches the first entry of every run, without a
	// branch on what it reads, so that those misses overlap too; the
	// scans below then mostly hit the cache (a scan's exit branch would
	// otherwise wait for its miss before the next one starts).
	var touch uint64
	for i, c := range d.chunks[:min(len(d.chunks), units)] {
		if lo := spans[i][0]; lo < uint32(len(c.fps)) {
			touch += c.fps[lo]
		}
	}
	for i, b := range d.buckets[:max(0, min(len(d.buckets), units-len(d.chunks)))] {
		if lo := spans[len(d.chunks)+i][0]; lo < uint32(len(b.rems)) {
			touch += uint64(b.rems[lo])
		}
	}
	d.touched = touch
	for i, c := range d.chunks {
		var found bool
		if i < units {
			found = c.scan(h, spans[i][0], spans[i][1])
		} else {
			found = c.contains(h)
		}
		if found {
			hit, minMs, maxMs = hitSealed, min(minMs, c.minMs), max(maxMs, c.maxMs)
		}
	}
	for i, b := range d.buckets {
		var tags uint32
		if j := len(d.chunks) + i; j < units {
			tags = b.scan(h, spans[j][0], spans[j][1])
		} else {
			tags = b.contains(h)
		}
		for ; tags != 0; tags &= tags - 1 {
			hr := &b.hours[bits.TrailingZeros32(tags)]
			hit, minMs, maxMs = hitSealed, min(minMs, hr.minMs), max(maxMs, hr.maxMs)
		}
	}
	return slot, hit, minMs, maxMs
}

// add remembers an id, by the fingerprint lookup returned, unless the
// exact tier holds it.
func (d *dedupTiers) add(fp [2]uint64, timeMs int64) bool {
	slot, ok := d.exact.find(fp)
	if ok {
		return false
	}
	d.insert(fp, slot, timeMs)
	return true
}

// insert remembers an id the exact tier does not hold at the slot its
// probe returned, with no change to the tiers in between.
func (d *dedupTiers) insert(fp [2]uint64, slot uint64, timeMs int64) {
	d.exact.insert(fp, slot, timeMs)
	if !d.hasMax || timeMs > d.maxMs {
		if !d.hasMax {
			d.nextSealMs = nextBoundary(timeMs, sealSpanMs)
			d.chunkHour = floorDiv(timeMs, bucketSpanMs)
		}
		d.maxMs, d.hasMax = timeMs, true
	}
}

// sealed reports whether any id is in a chunk or bucket.
func (d *dedupTiers) sealed() bool { return len(d.chunks)+len(d.buckets) > 0 }

// due reports whether seal has work to do.
func (d *dedupTiers) due() bool { return d.hasMax && d.maxMs >= d.nextSealMs }

// seal moves the exact tier's ids older than its current span into a
// chunk, and merges the chunks into a bucket when the hour changes.
func (d *dedupTiers) seal() {
	if !d.due() {
		return
	}
	s := d.exact
	if d.mark < s.head {
		d.mark = s.head
	}
	if n := int(d.mark - s.head); n > 0 {
		c := &sealedChunk{fps: make([]uint64, n), minMs: math.MaxInt64, maxMs: math.MinInt64}
		for i := range c.fps {
			it := &s.ring[(s.head+uint64(i))&uint64(len(s.ring)-1)]
			c.fps[i] = it.fp[0]
			c.minMs, c.maxMs = min(c.minMs, it.timeMs), max(c.maxMs, it.timeMs)
		}
		s.RemoveOldestN(n)
		slices.Sort(c.fps)
		c.offs, c.shift = prefixOffsets(c.fps)
		d.sealChunk(c)
	}
	d.mark = s.tail
	d.nextSealMs = nextBoundary(d.maxMs, sealSpanMs)
}

// sealChunk adds one span's chunk, sorted and indexed, after merging the
// chunks of the hour before into a bucket when the hour changed.
func (d *dedupTiers) sealChunk(c *sealedChunk) {
	hour := floorDiv(d.maxMs, bucketSpanMs)
	if hour != d.chunkHour && len(d.chunks) > 0 {
		d.compact()
	} else {
		// A seal after the one that made the hour's bucket, so that the
		// group's copy and the merged chunks' are not held at once.
		d.group()
	}
	d.chunkHour = hour
	c.spans = 1
	d.appendChunk(c)
	d.sealedN += len(c.fps)
}

// appendChunk adds the newest chunk and merges chunks of as many spans
// like a binary counter, so that an hour's twelve spans are probed in at
// most four chunks; each id is merged at most twice an hour.
func (d *dedupTiers) appendChunk(c *sealedChunk) {
	d.chunks = append(d.chunks, c)
	for n := len(d.chunks); n >= 2 && d.chunks[n-2].spans == d.chunks[n-1].spans; n-- {
		d.chunks[n-2] = mergeTwoChunks(d.chunks[n-2], d.chunks[n-1])
		d.chunks[n-1] = nil
		d.chunks = d.chunks[:n-1]
	}
}

// compact merges the chunks into one bucket.
func (d *dedupTiers) compact() {
	d.buckets = append(d.buckets, mergeChunks(d.chunks))
	clear(d.chunks)
	d.chunks = d.chunks[:0]
}

// group merges the last groupHours buckets into one when they are all
// hourly. The merge holds a copy of those hours for a moment: a sixth of
// a 24 h state with four hours.
func (d *dedupTiers) group() {
	n := 0
	for i := len(d.buckets) - 1; i >= 0 && len(d.buckets[i].hours) == 1; i-- {
		n++
	}
	if n < groupHours {
		return
	}
	last := d.buckets[len(d.buckets)-groupHours:]
	if g := mergeBuckets(last); g != nil {
		clear(last)
		d.buckets = append(d.buckets[:len(d.buckets)-groupHours], g)
	}
}

// expire forgets the ids whose event time is before floorMs, and reports
// how many it forgot: the exact tier id by id, the sealed ones a chunk or
// bucket at a time once all of its ids are that old.
func (d *dedupTiers) expire(floorMs int64) int {
	n := d.exact.olderRun(floorMs)
	d.exact.RemoveOldestN(n)
	for len(d.buckets) > 0 && d.buckets[0].oldest().maxMs < floorMs {
		n += d.dropHour()
	}
	for len(d.chunks) > 0 && d.chunks[0].maxMs < floorMs {
		n += d.dropChunk()
	}
	return n
}

// dropHour forgets the oldest hour the buckets hold: the oldest bucket
// whole when it is the bucket's last, else its entries in its group.
func (d *dedupTiers) dropHour() int {
	b := d.buckets[0]
	var n int
	if b.live == 1 {
		n = len(b.rems)
		d.buckets[0] = nil
		d.buckets = d.buckets[1:]
	} else {
		n = b.dropHour(b.oldestTag())
	}
	d.sealedN -= n
	return n
}

func (d *dedupTiers) dropChunk() int {
	c := d.chunks[0]
	d.chunks[0] = nil
	d.chunks = d.chunks[1:]
	d.sealedN -= len(c.fps)
	return len(c.fps)
}

// oldestSealed is the newest event time in the oldest chunk or bucket: the
// horizon evicting it leaves.
func (d *dedupTiers) oldestSealed() (int64, bool) {
	switch {
	case len(d.buckets) > 0:
		return d.buckets[0].oldest().maxMs, true
	case len(d.chunks) > 0:
		return d.chunks[0].maxMs, true
	}
	return 0, false
}

// evict forgets the oldest chunk or bucket, or with none the oldest exact
// id, before its horizon, and reports how many ids it forgot.
func (d *dedupTiers) evict() int {
	if t, ok := d.oldestSealed(); ok {
		d.forgotMs = max(d.forgotMs, t)
		if len(d.buckets) > 0 {
			return d.dropHour()
		}
		return d.dropChunk()
	}
	t, ok := d.exact.Oldest()
	if !ok {
		return 0
	}
	d.forgotMs = max(d.forgotMs, t)
	d.exact.RemoveOldest()
	return 1
}

// evictExact forgets the n oldest ids of the exact tier (all, when it
// holds fewer) before their horizon, as n calls of evict do when nothing
// is sealed, and reports how many it forgot.
func (d *dedupTiers) evictExact(n int) int {
	s := d.exact
	n = min(n, s.Len())
	for i := range n {
		d.forgotMs = max(d.forgotMs, s.ring[(s.head+uint64(i))&uint64(len(s.ring)-1)].timeMs)
	}
	s.RemoveOldestN(n)
	return n
}

// sealedChunk is a sorted array of 64-bit fingerprints with a prefix
// index.
type sealedChunk struct {
	fps          []uint64
	offs         []uint32
	shift        uint8
	spans        int // seals merged into it
	minMs, maxMs int64
}

// mergeTwoChunks is one chunk holding the fingerprints of a and b.
func mergeTwoChunks(a, b *sealedChunk) *sealedChunk {
	c := &sealedChunk{fps: make([]uint64, 0, len(a.fps)+len(b.fps)), spans: a.spans + b.spans,
		minMs: min(a.minMs, b.minMs), maxMs: max(a.maxMs, b.maxMs)}
	i, j := 0, 0
	for i < len(a.fps) && j < len(b.fps) {
		if a.fps[i] <= b.fps[j] {
			c.fps = append(c.fps, a.fps[i])
			i++
		} else {
			c.fps = append(c.fps, b.fps[j])
			j++
		}
	}
	c.fps = append(append(c.fps, a.fps[i:]...), b.fps[j:]...)
	c.offs, c.shift = prefixOffsets(c.fps)
	return c
}

func (c *sealedChunk) contains(h uint64) bool {
	p := h >> c.shift
	return c.scan(h, c.offs[p], c.offs[p+1])
}

// scan looks for h in the run [lo, hi) of its prefix.
func (c *sealedChunk) scan(h uint64, lo, hi uint32) bool {
	for _, v := range c.fps[lo:hi] {
		if v >= h {
			return v == h
		}
	}
	return false
}

// compactBucket keeps of each fingerprint its top q bits, as the position
// in a prefix-offset table, and the 32 bits after them, sorted: about
// 4 + 4/perPrefix bytes an id. A group (several hours merged, so that a
// lookup probes one index instead of one an hour) gives tagBits of those
// 32 to the hour an id was sealed in, so that hours can still be
// forgotten one at a time.
type compactBucket struct {
	rems    []uint32 // remainder<<tagBits | tag, sorted
	offs    []uint32
	shift   uint8 // 64 - q
	tagBits uint8
	hours   []sealedHour // by tag
	live    int          // hours not dropped
}

// sealedHour is the event-time range and the number of ids of one hour of
// a bucket; n is 0 once the hour is dropped.
type sealedHour struct {
	minMs, maxMs int64
	n            int
}

const (
	// groupHours is how many hourly buckets merge into one group, and
	// groupTagBits the bits that tell them apart.
	groupHours   = 4
	groupTagBits = 2
)

// oldestTag is the tag of the oldest hour not dropped.
func (b *compactBucket) oldestTag() int {
	for k := range b.hours {
		if b.hours[k].n > 0 {
			return k
		}
	}
	return 0
}

func (b *compactBucket) oldest() *sealedHour { return &b.hours[b.oldestTag()] }

// key is the part of h a bucket compares: the 32 - tagBits bits after the
// prefix.
func (b *compactBucket) key(h uint64) uint32 {
	return uint32(h << (64 - b.shift) >> (32 + b.tagBits))
}

func (b *compactBucket) contains(h uint64) uint32 {
	p := h >> b.shift
	return b.scan(h, b.offs[p], b.offs[p+1])
}

// scan looks for h in the run [lo, hi) of its prefix, and returns the set
// of tags (hours) it is found under: 0 when it is not.
func (b *compactBucket) scan(h uint64, lo, hi uint32) (tags uint32) {
	r := b.key(h)
	for _, v := range b.rems[lo:hi] {
		switch k := v >> b.tagBits; {
		case k == r:
			tags |= 1 << (v & (1<<b.tagBits - 1))
		case k > r:
			return tags
		}
	}
	return tags
}

// dropHour forgets the ids of hour tag, into a new array of the size the
// others need, and reports how many it forgot.
func (b *compactBucket) dropHour(tag int) int {
	n := b.hours[tag].n
	rems := make([]uint32, 0, len(b.rems)-n)
	lo := b.offs[0]
	for p := 0; p+1 < len(b.offs); p++ {
		hi := b.offs[p+1]
		b.offs[p] = uint32(len(rems))
		for _, v := range b.rems[lo:hi] {
			if int(v&(1<<b.tagBits-1)) != tag {
				rems = append(rems, v)
			}
		}
		lo = hi
	}
	b.offs[len(b.offs)-1] = uint32(len(rems))
	b.rems = rems
	b.hours[tag].n = 0
	b.live--
	return n
}

// mergeBuckets merges hourly buckets, oldest first, into one group, or
// returns nil when their sizes differ so much that the bits they keep do
// not fill a group's index (a quiet hour among busy ones): they then stay
// separate. Each keeps q+32 bits of a fingerprint; the group needs q'+30,
// so q' is at most the smallest q plus groupTagBits.
func mergeBuckets(bs []*compactBucket) *compactBucket {
	n, qMin := 0, 64
	for _, b := range bs {
		n += len(b.rems)
		qMin = min(qMin, 64-int(b.shift))
	}
	want := min(bits.Len(uint(n/perPrefix)), 32)
	q := min(want, qMin+groupTagBits)
	if q < want-1 || len(bs) > 1<<groupTagBits {
		return nil
	}
	g := &compactBucket{shift: uint8(64 - q), tagBits: groupTagBits, live: len(bs),
		rems: make([]uint32, n), offs: make([]uint32, 1<<q+1), hours: make([]sealedHour, len(bs))}
	type cursor struct {
		b    *compactBucket
		j, p int
	}
	cur := make([]cursor, len(bs))
	for k, b := range bs {
		cur[k] = cursor{b: b}
		g.hours[k] = b.hours[0]
	}
	// top is the fingerprint bits a cursor's entry keeps, in place.
	top := func(c *cursor) (uint64, bool) {
		if c.j >= len(c.b.rems) {
			return 0, false
		}
		for c.b.offs[c.p+1] <= uint32(c.j) {
			c.p++
		}
		return uint64(c.p)<<c.b.shift | uint64(c.b.rems[c.j])<<(c.b.shift-32), true
	}
	for i := range g.rems {
		best, v := -1, uint64(0)
		for k := range cur {
			if x, ok := top(&cur[k]); ok && (best < 0 || x < v) {
				best, v = k, x
			}
		}
		cur[best].j++
		g.rems[i] = g.key(v)<<groupTagBits | uint32(best)
		g.offs[v>>g.shift+1]++
	}
	for p := 1; p < len(g.offs); p++ {
		g.offs[p] += g.offs[p-1]
	}
	return g
}

// prefixOffsets indexes sorted fingerprints by their top q bits, q chosen
// for about perPrefix of them under each prefix: offs[p] is the first
// position of prefix p, offs[p+1] the end. shift is 64 - q (at least 32).
func prefixOffsets(sorted []uint64) ([]uint32, uint8) {
	q := min(bits.Len(uint(len(sorted)/perPrefix)), 32)
	shift := uint8(64 - q)
	offs := make([]uint32, 1<<q+1)
	if q == 0 {
		offs[1] = uint32(len(sorted))
		return offs, shift
	}
	i := 0
	for p := range 1 << q {
		offs[p] = uint32(i)
		for i < len(sorted) && sorted[i]>>shift == uint64(p) {
			i++
		}
	}
	offs[1<<q] = uint32(i)
	return offs, shift
}

// mergeChunks builds one bucket from sorted chunks, merging them straight
// into the bucket's remainders: the only memory it takes is the bucket's.
func mergeChunks(chunks []*sealedChunk) *compactBucket {
	n := 0
	hr := sealedHour{minMs: math.MaxInt64, maxMs: math.MinInt64}
	for _, c := range chunks {
		n += len(c.fps)
		hr.minMs, hr.maxMs = min(hr.minMs, c.minMs), max(hr.maxMs, c.maxMs)
	}
	hr.n = n
	b := &compactBucket{hours: []sealedHour{hr}, live: 1}
	q := min(bits.Len(uint(n/perPrefix)), 32)
	b.shift = uint8(64 - q)
	b.rems = make([]uint32, n)
	b.offs = make([]uint32, 1<<q+1)
	pos := make([]int, len(chunks))
	for i := range b.rems {
		best, v := -1, uint64(0)
		for k, c := range chunks {
			if pos[k] < len(c.fps) && (best < 0 || c.fps[pos[k]] < v) {
				best, v = k, c.fps[pos[k]]
			}
		}
		pos[best]++
		b.rems[i] = uint32(v >> (b.shift - 32))
		b.offs[v>>b.shift+1]++
	}
	for p := 1; p < len(b.offs); p++ {
		b.offs[p] += b.offs[p-1]
	}
	return b
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}

// nextBoundary is the first multiple of span after t.
func nextBoundary(t, span int64) int64 { return (floorDiv(t, span) + 1) * span }
