package main

import "testing"

func TestScaleOfSplitsCPUByStage(t *testing.T) {
	r := e2eResult{
		EventsPerS: 50_000, AggregatorRSS: 1 << 28, DistinctKeys: 110, WindowRows: 5_000,
		Processes: map[string]usage{
			"enrich":      {CPUSeconds: 0.6},
			"aggregate-0": {CPUSeconds: 0.5},
			"aggregate-1": {CPUSeconds: 0.3},
		},
	}
	p := scaleOf(r, 200_000)
	if p.EnrichCPUUsPerEvent != 3 {
		t.Errorf("enrich CPU µs/event = %v, want 3", p.EnrichCPUUsPerEvent)
	}
	if got := p.AggregateCPUUsPerEvent; got < 3.999 || got > 4.001 {
		t.Errorf("aggregate CPU µs/event = %v, want 4 (both replicas)", got)
	}
	if p.Events != 200_000 || p.EventsPerS != 50_000 || p.AggregatorRSS != 1<<28 || p.DistinctKeys != 110 || p.WindowRows != 5_000 {
		t.Errorf("scaleOf did not carry the run's figures: %+v", p)
	}
	if z := scaleOf(r, 0); z.EnrichCPUUsPerEvent != 0 || z.AggregateCPUUsPerEvent != 0 {
		t.Errorf("no events: CPU per event %v · %v, want 0", z.EnrichCPUUsPerEvent, z.AggregateCPUUsPerEvent)
	}
}
