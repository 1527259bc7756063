package gpusim

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/aivis-dev/aivis/gpuprobe"
	"github.com/aivis-dev/aivis/schemas"
)

// TestProbeReadsTheSimulatedHost: gpuprobe attributes the simulated GPUs'
// time and energy to the pod (by name and namespace), the unit and idle,
// exactly.
func TestProbeReadsTheSimulatedHost(t *testing.T) {
	start := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	h, err := New(t.TempDir(), "sim-1", start, "", "NVIDIA A100-SXM4-40GB")
	if err != nil {
		t.Fatal(err)
	}
	const pod = "0a1b2c3d-0000-4000-8000-000000000001"
	if err := h.AddPod(4100, pod, "vllm-0", "llm"); err != nil {
		t.Fatal(err)
	}
	if err := h.AddUnit(4200, "ollama.service"); err != nil {
		t.Fatal(err)
	}
	h.Set(0, Load{UtilPercent: 80, PowerWatts: 500, Processes: []Process{{PID: 4100, MemoryBytes: 40 << 30, SMPercent: 60}, {PID: 4200, MemoryBytes: 8 << 30, SMPercent: 20}}})
	h.Set(1, Load{PowerWatts: 60})
	cfg := gpuprobe.DefaultConfig()
	cfg.ProcRoot, cfg.KubeletRoot, cfg.Host = h.ProcRoot(), h.KubeletRoot(), "sim-1"
	p, err := gpuprobe.Open(h.Server, cfg, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var evs []schemas.Event
	for i := range 7 {
		at := start.Add(time.Duration(i) * 10 * time.Second)
		h.Advance(at)
		if err := p.ReadAt(at, func(e []schemas.Event) error { evs = append(evs, e...); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	type got struct{ alloc, busy, joules float64 }
	by := map[string]got{}
	for _, e := range evs {
		g := e.GPU
		k := g.GPUModel + "/" + g.OwnerKind + "/" + g.Pod + g.Namespace
		by[k] = got{g.AllocatedSeconds, g.BusySeconds, *g.EnergyJoules}
	}
	want := map[string]got{
		DefaultModel + "/k8s_pod/vllm-0llm": {45, 36, 22500}, // 3/4 of 60 s, of 48 busy s, of 30 kJ
		DefaultModel + "/systemd_unit/":     {15, 12, 7500},
		"NVIDIA A100-SXM4-40GB/idle/":       {60, 0, 3600},
	}
	if len(by) != len(want) {
		t.Fatalf("got %v, want %v", by, want)
	}
	for k, w := range want {
		if by[k] != w {
			t.Errorf("%s: got %+v, want %+v", k, by[k], w)
		}
	}
}
