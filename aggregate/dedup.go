package aggregate

import "hash/maphash"

// seenSet is one partition's remembered event ids, oldest first, built for
// the way the engine uses it: ids arrive at the back and leave at the
// front.
//
// An id is held as a 128-bit fingerprint (two independently seeded 64-bit
// hashes), not as a string: 24 bytes per id in a pointer-free ring that
// the collector never scans, whatever the id's length. Two distinct ids
// are taken for one only if both hashes collide; among the few million ids
// the exact tier holds (see dedupTiers) the chance that any two do is about 2^-87,
// and the seeds are drawn per process, so a producer cannot aim for it.
//
// The index is a pointer-free open-addressing table of (hash, ring
// position) pairs, so growing it reads no ids and deleting the oldest id
// finds its slot from the stored hash.
type seenSet struct {
	seed0, seed1 maphash.Seed
	slots        []uint64 // hash<<32 | seq, or emptySlot; linear probing
	mask         uint64
	n            int

	ring       []dedupItem // item of sequence number s at s & (len-1)
	head, tail uint64      // sequence numbers of the oldest and next item

	touched uint64 // what touch read, kept so that its loads are not dropped
}

type dedupItem struct {
	fp     [2]uint64
	timeMs int64
}

// hash is the index's 32 bits of a fingerprint.
func (it *dedupItem) hash() uint32 { return slotHash(it.fp[0]) }

const emptySlot = ^uint64(0)

func newSeenSet(capacity int) *seenSet {
	s := &seenSet{seed0: maphash.MakeSeed(), seed1: maphash.MakeSeed()}
	size := 16
	for size/2 < capacity {
		size *= 2
	}
	s.slots = make([]uint64, size)
	for i := range s.slots {
		s.slots[i] = emptySlot
	}
	s.mask = uint64(size - 1)
	ringSize := 16
	for ringSize < capacity {
		ringSize *= 2
	}
	s.ring = make([]dedupItem, ringSize)
	return s
}

// Len is the number of ids held.
func (s *seenSet) Len() int { return s.n }

func (s *seenSet) fingerprint(id string) [2]uint64 {
	return [2]uint64{maphash.String(s.seed0, id), maphash.String(s.seed1, id)}
}

func slotHash(fp0 uint64) uint32 {
	h := uint32(fp0 >> 32)
	if h == ^uint32(0) {
		h-- // keeps every slot distinct from emptySlot
	}
	return h
}

// find returns the index slot holding fp, or the empty slot where it
// would go, and whether it is held.
func (s *seenSet) find(fp [2]uint64) (uint64, bool) {
	h := slotHash(fp[0])
	for i := uint64(h) & s.mask; ; i = (i + 1) & s.mask {
		slot := s.slots[i]
		if slot == emptySlot {
			return i, false
		}
		if uint32(slot>>32) == h && s.at(uint32(slot)).fp == fp {
			return i, true
		}
	}
}

// touch reads the index slot where a lookup of each of fps starts,
// without a branch on what it reads, so that the misses of a batch
// overlap and its lookups then find the slots in cache.
func (s *seenSet) touch(fps [][2]uint64) {
	var x uint64
	for _, fp := range fps {
		x |= s.slots[uint64(slotHash(fp[0]))&s.mask]
	}
	s.touched = x
}

// Contains reports whether id is held.
func (s *seenSet) Contains(id string) bool {
	_, ok := s.find(s.fingerprint(id))
	return ok
}

// Add appends id with its event time unless it is held already, and
// reports whether it was added.
func (s *seenSet) Add(id string, timeMs int64) bool { return s.addFP(s.fingerprint(id), timeMs) }

// addFP is Add of a fingerprint already computed.
func (s *seenSet) addFP(fp [2]uint64, timeMs int64) bool {
	i, ok := s.find(fp)
	if ok {
		return false
	}
	s.insert(fp, i, timeMs)
	return true
}

// insert appends fp, which find did not hold, at the empty slot find
// returned for it; nothing may change the set in between.
func (s *seenSet) insert(fp [2]uint64, i uint64, timeMs int64) {
	if s.tail-s.head == uint64(len(s.ring)) {
		s.growRing()
	}
	seq := s.tail
	h := slotHash(fp[0])
	s.ring[seq&uint64(len(s.ring)-1)] = dedupItem{fp, timeMs}
	s.tail++
	s.slots[i] = uint64(h)<<32 | uint64(uint32(seq))
	s.n++
	if s.n*2 > len(s.slots) { // at most half full: short probe runs
		s.growSlots()
	}
}

// Oldest returns the event time of the oldest id; ok is false when empty.
func (s *seenSet) Oldest() (timeMs int64, ok bool) {
	if s.n == 0 {
		return 0, false
	}
	return s.ring[s.head&uint64(len(s.ring)-1)].timeMs, true
}

// RemoveOldest forgets the oldest id.
func (s *seenSet) RemoveOldest() {
	if s.n == 0 {
		return
	}
	pos := s.head & uint64(len(s.ring)-1)
	h := s.ring[pos].hash()
	want := uint64(h)<<32 | uint64(uint32(s.head))
	s.head++
	s.n--
	i := uint64(h) & s.mask
	for s.slots[i] != want {
		i = (i + 1) & s.mask
	}
	// Backward-shift deletion: move later slots of the probe run into the
	// hole when their home is not between the hole and them.
	for j := (i + 1) & s.mask; s.slots[j] != emptySlot; j = (j + 1) & s.mask {
		home := (s.slots[j] >> 32) & s.mask
		if (j-home)&s.mask >= (j-i)&s.mask {
			s.slots[i] = s.slots[j]
			i = j
		}
	}
	s.slots[i] = emptySlot
}

// olderRun is the number of ids, oldest first, before the first one whose
// event time is at or after floorMs.
func (s *seenSet) olderRun(floorMs int64) int {
	ringMask := uint64(len(s.ring) - 1)
	n := 0
	for seq := s.head; seq < s.tail && s.ring[seq&ringMask].timeMs < floorMs; seq++ {
		n++
	}
	return n
}

// RemoveOldestN forgets the n oldest ids, or all when fewer are held. It
// reads the index slots of a group of them before removing any, so that
// their cache misses overlap instead of each removal waiting for its own.
func (s *seenSet) RemoveOldestN(n int) {
	const group = 64
	n = min(n, s.n)
	ringMask := uint64(len(s.ring) - 1)
	for n > 0 {
		g := min(n, group)
		var x uint64
		for seq := s.head; seq < s.head+uint64(g); seq++ {
			x |= s.slots[uint64(s.ring[seq&ringMask].hash())&s.mask]
		}
		s.touched = x
		for range g {
			s.RemoveOldest()
		}
		n -= g
	}
}

// at returns the item whose sequence number ends in the 32 bits seq32; the
// held items span fewer than 2^32 sequence numbers from head.
func (s *seenSet) at(seq32 uint32) *dedupItem {
	seq := s.head + uint64(seq32-uint32(s.head))
	return &s.ring[seq&uint64(len(s.ring)-1)]
}

func (s *seenSet) growRing() {
	ring := make([]dedupItem, 2*len(s.ring))
	oldMask, newMask := uint64(len(s.ring)-1), uint64(len(ring)-1)
	// Copy in runs that are contiguous in both rings (at most three).
	for seq := s.head; seq < s.tail; {
		from, to := seq&oldMask, seq&newMask
		n := min(uint64(len(s.ring))-from, uint64(len(ring))-to, s.tail-seq)
		copy(ring[to:to+n], s.ring[from:from+n])
		seq += n
	}
	s.ring = ring
}

func (s *seenSet) growSlots() {
	slots := make([]uint64, 2*len(s.slots))
	for i := range slots {
		slots[i] = emptySlot
	}
	mask := uint64(len(slots) - 1)
	for _, slot := range s.slots {
		if slot == emptySlot {
			continue
		}
		i := (slot >> 32) & mask
		for slots[i] != emptySlot {
			i = (i + 1) & mask
		}
		slots[i] = slot
	}
	s.slots, s.mask = slots, mask
}
