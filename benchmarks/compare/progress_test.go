package main

import (
	"testing"
	"time"
)

func TestProgressSustained(t *testing.T) {
	p := &progress{}
	// 2 s of start-up, then 100 events a second, then a 3 s tail.
	for i, d := range []uint64{0, 0, 0, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000, 1000, 1000} {
		p.at = append(p.at, time.Duration(i)*time.Second)
		p.done = append(p.done, d)
	}
	if got := p.sustained(1000); got != 100 {
		t.Errorf("sustained = %v, want 100", got)
	}
	if got := (&progress{at: []time.Duration{0, time.Second}, done: []uint64{0, 1000}}).sustained(1000); got != 0 {
		t.Errorf("sustained over a single step = %v, want 0 (too few polls to tell)", got)
	}
}

func TestProgressFirstAndAll(t *testing.T) {
	p := &progress{}
	for i, d := range []uint64{0, 0, 0, 100, 500, 1000, 1000} {
		p.at = append(p.at, time.Duration(i)*time.Second)
		p.done = append(p.done, d)
	}
	if first, all := p.firstAndAll(1000); first != 3*time.Second || all != 5*time.Second {
		t.Errorf("firstAndAll = %v, %v, want 3s, 5s", first, all)
	}
	if first, all := p.firstAndAll(2000); first != 3*time.Second || all != 0 {
		t.Errorf("firstAndAll short of n = %v, %v, want 3s, 0", first, all)
	}
}
