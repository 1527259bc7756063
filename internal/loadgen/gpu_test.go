package loadgen

import (
	"testing"
	"time"

	"github.com/aivis-dev/aivis/schemas"
	"github.com/aivis-dev/aivis/serving"
)

// TestGPUSim: an hour of the simulated host gives a window per GPU owner
// per minute whose allocated seconds fill each GPU, the vLLM pods' time
// labelled with the deployment and a team, and one token event per
// replica per 30 s.
func TestGPUSim(t *testing.T) {
	start := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	sim, err := NewGPUSim(start)
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	var evs []schemas.Event
	for m := 1; m <= 60; m++ {
		got, err := sim.Until(start.Add(time.Duration(m) * time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, got...)
	}
	perDevice := map[string]float64{}
	var gpuEvents, servingEvents, labelled int
	var tokens int64
	for _, e := range evs {
		if err := e.Validate(); err != nil {
			t.Fatalf("invalid event: %v", err)
		}
		switch e.Kind {
		case schemas.KindGPUUsage:
			gpuEvents++
			perDevice[e.GPU.GPUUUID+e.Time.String()] += e.GPU.AllocatedSeconds
			if e.Labels["deployment"] == GPUDeployment {
				labelled++
				if e.Labels["team"] != "search" || e.GPU.Namespace != "llm" {
					t.Errorf("deployment event %+v labels %v", e.GPU, e.Labels)
				}
			}
		case schemas.KindLLMRequest:
			servingEvents++
			if e.Operation != serving.Operation || e.Labels["deployment"] != GPUDeployment {
				t.Errorf("serving event %+v", e)
			}
			tokens += *e.Usage.InputTokens + *e.Usage.OutputTokens
		}
	}
	// 60 windows of 4 GPUs, the shared GPU with two owners.
	if want := 60 * 5; gpuEvents != want {
		t.Errorf("%d gpu.usage events, want %d", gpuEvents, want)
	}
	for k, s := range perDevice {
		if s != 60 {
			t.Errorf("device window %s: %g allocated seconds, want 60", k, s)
		}
	}
	if labelled != 60*2 || servingEvents != 2*120 || tokens == 0 {
		t.Errorf("%d labelled GPU events, %d serving events, %d tokens", labelled, servingEvents, tokens)
	}
}
