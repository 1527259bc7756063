package aggregate

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestSeenSetMatchesMap drives a seenSet and a map with the same random
// adds and removals (one at a time and in runs), across table and ring
// growth and across the 32-bit wrap of sequence numbers.
func TestSeenSetMatchesMap(t *testing.T) {
	for _, start := range []uint64{0, 1<<32 - 1000} {
		t.Run(fmt.Sprint(start), func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, start))
			s := newSeenSet(0)
			s.head, s.tail = start, start
			model := map[string]bool{}
			var order []string
			added := map[string]int64{}
			for step := range 200_000 {
				switch op := r.IntN(100); {
				case op < 60: // add, often an id held already
					id := fmt.Sprint("e-", r.IntN(5000))
					if got, want := s.Add(id, int64(step)), !model[id]; got != want {
						t.Fatalf("step %d: Add(%s) = %v, want %v", step, id, got, want)
					}
					if !model[id] {
						model[id] = true
						order = append(order, id)
						added[id] = int64(step)
					}
				case op < 89:
					if len(order) > 0 {
						s.RemoveOldest()
						delete(model, order[0])
						order = order[1:]
					}
				case op < 90: // a run, at times longer than what is held
					n := r.IntN(300)
					// The ids older than a time are a prefix: times grow.
					floor := int64(step - r.IntN(2000))
					older := 0
					for older < len(order) && added[order[older]] < floor {
						older++
					}
					if got := s.olderRun(floor); got != older {
						t.Fatalf("step %d: olderRun(%d) = %d, want %d", step, floor, got, older)
					}
					s.RemoveOldestN(n)
					for _, id := range order[:min(n, len(order))] {
						delete(model, id)
					}
					order = order[min(n, len(order)):]
				default:
					id := fmt.Sprint("e-", r.IntN(5000))
					if got := s.Contains(id); got != model[id] {
						t.Fatalf("step %d: Contains(%s) = %v, want %v", step, id, got, model[id])
					}
				}
				if s.Len() != len(model) {
					t.Fatalf("step %d: Len = %d, want %d", step, s.Len(), len(model))
				}
			}
			for id := range model {
				if !s.Contains(id) {
					t.Fatalf("lost %s", id)
				}
			}
			for len(order) > 0 {
				if tm, ok := s.Oldest(); !ok || tm < 0 {
					t.Fatalf("Oldest = %d, %v with %d held", tm, ok, len(order))
				}
				s.RemoveOldest()
				if s.Contains(order[0]) {
					t.Fatalf("%s still held after its removal", order[0])
				}
				order = order[1:]
			}
			if _, ok := s.Oldest(); ok || s.Len() != 0 {
				t.Fatal("set not empty after removing everything")
			}
		})
	}
}

// TestDedupTiersHoldTheHorizon feeds ids over 27 hours of event time (some
// late), sealing and expiring as the engine does, and checks that every id
// within the horizon is found, that ids never added are almost never
// suspects, and that sealed ids cost about 4.3 bytes each.
func TestDedupTiersHoldTheHorizon(t *testing.T) {
	const (
		stepMs    = 500 // 2 ids a second of event time
		hours     = 27
		horizonMs = 24 * 3600 * 1000
	)
	r := rand.New(rand.NewPCG(3, 4))
	d := newDedupTiers(0)
	times := map[string]int64{}
	var floor int64
	for i := range hours * 3600 * 1000 / stepMs {
		at := int64(i) * stepMs
		if r.IntN(50) == 0 {
			at -= int64(r.IntN(3 * 3600 * 1000)) // a late event
		}
		id := fmt.Sprint("t-", i)
		fp, hit, _, _ := d.lookup(id)
		if hit == hitExact {
			t.Fatalf("%s: new id found in the exact tier", id)
		}
		d.add(fp, at)
		times[id] = at
		d.seal()
		floor = d.maxMs - horizonMs
		d.expire(floor)
		if i%60_000 == 0 || i == hours*3600*1000/stepMs-1 {
			for id, at := range times {
				if at < floor {
					delete(times, id)
					continue
				}
				if _, hit, lo, hi := d.lookup(id); hit == hitNone {
					t.Fatalf("step %d: %s (time %d, floor %d) forgotten within the horizon", i, id, at, floor)
				} else if hit == hitSealed && (at < lo || at > hi) {
					t.Fatalf("step %d: %s (time %d) found in a tier of times [%d, %d]", i, id, at, lo, hi)
				}
			}
		}
	}
	held := 0
	for _, b := range d.buckets {
		held += b.live
	}
	if held < 20 || d.sealedN == 0 {
		t.Fatalf("%d hours in buckets, %d sealed ids: want the horizon mostly sealed", held, d.sealedN)
	}
	// Hours merge into groups and chunks into fewer: a new id is probed
	// in about a third of the units the hours and spans would take.
	if units := len(d.buckets) + len(d.chunks); units > 12 {
		t.Fatalf("%d buckets and %d chunks probed per lookup, want at most 12", len(d.buckets), len(d.chunks))
	}
	suspects := 0
	for i := range 100_000 {
		if _, hit, _, _ := d.lookup(fmt.Sprint("never-", i)); hit != hitNone {
			suspects++
		}
	}
	if suspects > 2 {
		t.Fatalf("%d of 100,000 unknown ids are suspects, want about 0 (1e-7 each)", suspects)
	}
	var bucketBytes, bucketIDs int64
	for _, b := range d.buckets {
		bucketBytes += int64(cap(b.rems))*4 + int64(len(b.offs))*4
		bucketIDs += int64(len(b.rems))
	}
	perID := float64(bucketBytes) / float64(bucketIDs)
	t.Logf("%d ids held (%d sealed in %d hours: %d buckets and %d chunks), %.2f bytes/id in buckets, %d bytes in all",
		d.Len(), d.sealedN, held, len(d.buckets), len(d.chunks), perID, d.Bytes())
	if perID > 4.6 {
		t.Fatalf("buckets cost %.2f bytes an id, want about 4.3", perID)
	}
}

// TestCompactBucketFindsEveryFingerprint checks the prefix index at sizes
// around its boundaries, with fingerprints crowded at the ends of the
// range.
func TestCompactBucketFindsEveryFingerprint(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{0, 1, 15, 16, 17, 33, 1000, 70_000} {
		fps := make([]uint64, n)
		for i := range fps {
			switch i % 4 {
			case 0:
				fps[i] = uint64(i)
			case 1:
				fps[i] = ^uint64(0) - uint64(i)
			default:
				fps[i] = r.Uint64()
			}
		}
		slices.Sort(fps)
		// A bucket merged from three chunks: the first half, and the
		// rest dealt alternately into two.
		var parts [3][]uint64
		for i, h := range fps {
			k := 0
			if i >= n/2 {
				k = 1 + i%2
			}
			parts[k] = append(parts[k], h)
		}
		var chunks []*sealedChunk
		for _, p := range parts {
			c := &sealedChunk{fps: p}
			c.offs, c.shift = prefixOffsets(p)
			chunks = append(chunks, c)
		}
		b := mergeChunks(chunks)
		c := &sealedChunk{fps: fps}
		c.offs, c.shift = prefixOffsets(fps)
		want, _ := prefixOffsets(fps)
		if !slices.Equal(b.offs, want) || len(b.rems) != n || b.shift != c.shift {
			t.Fatalf("n=%d: the merged bucket's index differs from one built from all the fingerprints", n)
		}
		for _, h := range fps {
			if b.contains(h) == 0 || !c.contains(h) {
				t.Fatalf("n=%d: %#x not found", n, h)
			}
		}
	}
}

// TestBucketGroups merges hourly buckets into a group, finds every id of
// every hour under its own hour (an id sealed in two hours under both),
// forgets the hours one by one, and leaves hours of very different sizes
// unmerged.
func TestBucketGroups(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	hour := func(k, n int, extra ...uint64) (*compactBucket, []uint64) {
		fps := append(extra, make([]uint64, n)...)
		for i := len(extra); i < len(fps); i++ {
			fps[i] = r.Uint64()
		}
		slices.Sort(fps)
		c := &sealedChunk{fps: fps, minMs: int64(k) * 10, maxMs: int64(k)*10 + 9}
		c.offs, c.shift = prefixOffsets(fps)
		return mergeChunks([]*sealedChunk{c}), fps
	}
	shared := r.Uint64()
	var bs []*compactBucket
	var fps [][]uint64
	for k, n := range []int{40_000, 50_000, 30_000, 45_000} {
		b, f := hour(k, n, shared)
		bs, fps = append(bs, b), append(fps, f)
	}
	g := mergeBuckets(bs)
	if g == nil {
		t.Fatal("hours of similar sizes not merged")
	}
	for k := range groupHours {
		for _, h := range fps[k] {
			tags := g.contains(h)
			if tags&(1<<k) == 0 {
				t.Fatalf("hour %d: %#x not found under its hour (tags %b)", k, h, tags)
			}
		}
	}
	if got := g.contains(shared); got != 1<<groupHours-1 {
		t.Fatalf("an id of every hour found under hours %b, want all", got)
	}
	suspects := 0
	for range 100_000 {
		if g.contains(r.Uint64()) != 0 {
			suspects++
		}
	}
	if suspects > 2 {
		t.Fatalf("%d of 100,000 unknown fingerprints are suspects, want about 0", suspects)
	}
	for k := range groupHours - 1 {
		if n := g.dropHour(g.oldestTag()); n != len(fps[k]) {
			t.Fatalf("dropping hour %d forgot %d ids, want %d", k, n, len(fps[k]))
		}
		for j, f := range fps {
			for _, h := range f {
				if found := g.contains(h)&(1<<j) != 0; found != (j > k) {
					t.Fatalf("after dropping hours up to %d: %#x of hour %d found %v", k, h, j, found)
				}
			}
		}
		if g.oldestTag() != k+1 || len(g.rems) != cap(g.rems) {
			t.Fatalf("after dropping hour %d: oldest %d, %d of %d entries", k, g.oldestTag(), len(g.rems), cap(g.rems))
		}
	}
	// A quiet hour among busy ones: its fingerprints keep too few bits
	// for the group's index.
	bs = bs[:0]
	for k, n := range []int{40_000, 500, 40_000, 40_000} {
		b, _ := hour(k, n)
		bs = append(bs, b)
	}
	if mergeBuckets(bs) != nil {
		t.Fatal("a quiet hour merged into a group whose index needs more bits than it keeps")
	}
}
