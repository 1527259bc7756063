package aggregate

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestSeenSetMatchesMap drives a seenSet and a map with the same random
// adds and removals, across table and ring growth and across the 32-bit
// wrap of sequence numbers.
func TestSeenSetMatchesMap(t *testing.T) {
	for _, start := range []uint64{0, 1<<32 - 1000} {
		t.Run(fmt.Sprint(start), func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, start))
			s := newSeenSet(0)
			s.head, s.tail = start, start
			model := map[string]bool{}
			var order []string
			for step := range 200_000 {
				switch op := r.IntN(10); {
				case op < 6: // add, often an id held already
					id := fmt.Sprint("e-", r.IntN(5000))
					if got, want := s.Add(id, int64(step)), !model[id]; got != want {
						t.Fatalf("step %d: Add(%s) = %v, want %v", step, id, got, want)
					}
					if !model[id] {
						model[id] = true
						order = append(order, id)
					}
				case op < 9:
					if len(order) > 0 {
						s.RemoveOldest()
						delete(model, order[0])
						order = order[1:]
					}
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
