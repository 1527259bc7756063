package gpuprobe

import (
	"sort"
	"time"
)

// Attribution rules, written into each gpu.usage event.
//
// Each read of a device closes the stretch of time since the previous read.
// That stretch, in milliseconds, is split between the owners whose
// processes held the device during it: those listed by
// GetComputeRunningProcesses at the read, plus those that left per-process
// utilization samples since the previous read (a process that ran and
// exited in between). The split is
//   - sole: one owner gets it all;
//   - process_util: in proportion to each owner's per-process SM
//     utilization samples (sum of percents) since the previous read, when
//     any holder has one;
//   - even: equal shares, when per-process utilization is unsupported (MIG)
//     or every holder's is zero;
//   - idle: no process held the device: owner "idle".
//
// Busy milliseconds (device utilization × stretch) and the energy counter's
// delta over the stretch (millijoules; for MIG, the GPU's delta split over
// its instances by slice count) are split with the same weights. Every
// split is in integers with largest remainders (splitExact), so per device
// and window the owners' allocated milliseconds add up exactly to the
// window and their millijoules to the device's energy delta.
const (
	attrSole        = "sole"
	attrProcessUtil = "process_util"
	attrEven        = "even"
	attrIdle        = "idle"
)

// window accumulates one device's reads until the window closes.
type window struct {
	start, last time.Time
	owners      map[string]*ownerUsage
	// energyKnown is false when the device has no energy counter.
	energyKnown bool
}

// ownerUsage is one owner's share of one device in one window.
type ownerUsage struct {
	owner     Owner
	allocMs   int64
	busyMs    int64
	energyMJ  int64
	memSum    uint64
	memN      uint64
	memMax    uint64
	attrs     map[string]bool
	firstSeen int // order of appearance, for stable output
}

func newWindow(start time.Time) *window {
	return &window{start: start, last: start, owners: map[string]*ownerUsage{}}
}

// stretch is what one read says about the time since the previous one.
type stretch struct {
	end time.Time
	// procs are the holding processes with their owners resolved.
	procs []Process
	// utilPercent is the device utilization; nil when unknown.
	utilPercent *uint32
	// energyMJ is the energy used over the stretch; nil when unknown.
	energyMJ *int64
	// memUsed is the device's memory in use, for the idle row.
	memUsed *uint64
}

// add splits one stretch between its owners.
func (w *window) add(s stretch) {
	ms := s.end.UnixMilli() - w.last.UnixMilli()
	w.last = s.end
	if ms < 0 {
		ms = 0
	}
	type holder struct {
		owner  Owner
		weight uint64
		mem    uint64
		memOK  bool
	}
	var holders []*holder
	byKey := map[string]*holder{}
	anyWeight := false
	for _, p := range s.procs {
		k := p.Owner.key()
		h := byKey[k]
		if h == nil {
			h = &holder{owner: p.Owner}
			byKey[k] = h
			holders = append(holders, h)
		}
		h.weight += p.SMUtilSum
		anyWeight = anyWeight || p.SMUtilSum > 0
		if p.UsedMemoryBytes != nil {
			h.mem += *p.UsedMemoryBytes
			h.memOK = true
		}
	}
	attr := attrIdle
	switch {
	case len(holders) == 0:
		h := &holder{owner: idleOwner}
		if s.memUsed != nil {
			h.mem, h.memOK = *s.memUsed, true
		}
		holders = append(holders, h)
	case len(holders) == 1:
		attr = attrSole
	case anyWeight:
		attr = attrProcessUtil
	default:
		attr = attrEven
	}
	weights := make([]uint64, len(holders))
	for i, h := range holders {
		if attr == attrProcessUtil {
			weights[i] = h.weight
		} else {
			weights[i] = 1
		}
	}
	alloc := splitExact(ms, weights)
	var busy, energy []int64
	if s.utilPercent != nil {
		busy = splitExact((ms*int64(*s.utilPercent)+50)/100, weights)
	}
	if s.energyMJ != nil {
		w.energyKnown = true
		energy = splitExact(*s.energyMJ, weights)
	}
	for i, h := range holders {
		k := h.owner.key()
		u := w.owners[k]
		if u == nil {
			u = &ownerUsage{owner: h.owner, attrs: map[string]bool{}, firstSeen: len(w.owners)}
			w.owners[k] = u
		}
		if h.owner.Container == "" && u.owner.Container != "" {
			h.owner.Container = u.owner.Container
		}
		u.owner = h.owner
		u.attrs[attr] = true
		u.allocMs += alloc[i]
		if busy != nil {
			u.busyMs += busy[i]
		}
		if energy != nil {
			u.energyMJ += energy[i]
		}
		if h.memOK {
			u.memSum += h.mem
			u.memN++
			u.memMax = max(u.memMax, h.mem)
		}
	}
}

// rows returns the window's owners in order of appearance.
func (w *window) rows() []*ownerUsage {
	out := make([]*ownerUsage, 0, len(w.owners))
	for _, u := range w.owners {
		out = append(out, u)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].firstSeen < out[j].firstSeen })
	return out
}

// attribution names how an owner's share was found; an owner split
// different ways in one window reports the least exact of them.
func (u *ownerUsage) attribution() string {
	for _, a := range []string{attrEven, attrProcessUtil, attrSole, attrIdle} {
		if u.attrs[a] {
			return a
		}
	}
	return ""
}

// energyDelta turns two energy counter readings into the energy used
// between them (mJ). The counter counts since the driver loaded: a smaller
// reading means it restarted (driver reload, GPU reset), and the energy
// used across the restart is unknown, so the stretch reports none; a
// reading just past 2^64 wraps.
func energyDelta(prev, cur uint64) (delta int64, reset bool) {
	if cur >= prev {
		return int64(min(cur-prev, 1<<62)), false
	}
	if prev > 1<<63 && cur < 1<<62 {
		return int64(cur + (^uint64(0) - prev) + 1), false // wrapped
	}
	return 0, true
}
