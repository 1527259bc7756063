package main

import "time"

// progress records how many of a step's n events were done at each poll,
// to tell the rate a pipeline sustains from the time it took overall:
// the overall figure also holds starting processes, joining the group and
// closing the last windows, seconds that do not grow with the input.
type progress struct {
	began time.Time
	at    []time.Duration
	done  []uint64
}

func newProgress(began time.Time) *progress { return &progress{began: began} }

// add records that done events were done now.
func (p *progress) add(done uint64) {
	p.at = append(p.at, time.Since(p.began))
	p.done = append(p.done, done)
}

// sustained is the rate between the first polls that saw 10% and 90% of
// n done, or 0 when the polls are too few to tell (fewer than two apart).
func (p *progress) sustained(n int) float64 {
	lo, hi := -1, -1
	for i, d := range p.done {
		if lo < 0 && d*10 >= uint64(n) {
			lo = i
		}
		if d*10 >= uint64(n)*9 {
			hi = i
			break
		}
	}
	if lo < 0 || hi <= lo || p.at[hi] <= p.at[lo] {
		return 0
	}
	return float64(p.done[hi]-p.done[lo]) / (p.at[hi] - p.at[lo]).Seconds()
}

// firstAndAll is when the polls first saw any of n done and all n done,
// from began; a moment never seen is 0. Between them the input streams;
// before the first, processes start and join; after all, only what the
// step waits on beyond the count (the windows' close) remains.
func (p *progress) firstAndAll(n int) (first, all time.Duration) {
	for i, d := range p.done {
		if first == 0 && d > 0 {
			first = p.at[i]
		}
		if d >= uint64(n) {
			return first, p.at[i]
		}
	}
	return first, 0
}
