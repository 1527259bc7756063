package gpuprobe

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/aivis-dev/aivis/internal/testenv"
	"github.com/aivis-dev/aivis/schemas"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

const podA = "1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901" // pid 101 in testdata/proc

// gpu is a scripted GPU: tests change its fields between reads.
type gpu struct {
	util       uint32
	energy     uint64
	mem        uint64
	procs      []nvml.ProcessInfo
	procUtil   []nvml.ProcessUtilizationSample
	utilRet    nvml.Return // for GetUtilizationRates
	procUtilOK bool
	lost       bool
}

// fill sets every NVML call the probe makes on d from g; dgxa100 wires
// identity, memory total and MIG mode only.
func (g *gpu) fill(d *mock.Device) {
	lost := func(r nvml.Return) nvml.Return {
		if g.lost {
			return nvml.ERROR_GPU_IS_LOST
		}
		return r
	}
	d.GetMemoryInfoFunc = func() (nvml.Memory, nvml.Return) {
		return nvml.Memory{Total: 40 << 30, Used: g.mem, Free: 40<<30 - g.mem}, lost(nvml.SUCCESS)
	}
	d.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
		return nvml.Utilization{Gpu: g.util, Memory: g.util / 2}, lost(g.utilRet)
	}
	d.GetPowerUsageFunc = func() (uint32, nvml.Return) { return 250_000, lost(nvml.SUCCESS) }
	d.GetTotalEnergyConsumptionFunc = func() (uint64, nvml.Return) { return g.energy, lost(nvml.SUCCESS) }
	d.GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) { return 0, lost(nvml.ERROR_NOT_SUPPORTED) }
	d.GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) { return g.procs, lost(nvml.SUCCESS) }
	d.GetProcessUtilizationFunc = func(last uint64) ([]nvml.ProcessUtilizationSample, nvml.Return) {
		if !g.procUtilOK {
			return nil, lost(nvml.ERROR_NOT_SUPPORTED)
		}
		if len(g.procUtil) == 0 {
			return nil, lost(nvml.ERROR_NOT_FOUND)
		}
		return g.procUtil, lost(nvml.SUCCESS)
	}
	d.GetSupportedEventTypesFunc = func() (uint64, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED }
}

// server is a dgxa100 with n of its GPUs scripted.
func server(t *testing.T, gpus ...*gpu) (*dgxa100.Server, []*dgxa100.Device) {
	t.Helper()
	s := dgxa100.New()
	var devs []*dgxa100.Device
	for i, g := range gpus {
		d := s.Devices[i].(*dgxa100.Device)
		g.utilRet = nvml.SUCCESS
		g.fill(&d.Device)
		devs = append(devs, d)
	}
	s.DeviceGetCountFunc = func() (int, nvml.Return) { return len(gpus), nvml.SUCCESS }
	s.EventSetCreateFunc = func() (nvml.EventSet, nvml.Return) {
		return &mock.EventSet{FreeFunc: func() nvml.Return { return nvml.SUCCESS }}, nvml.SUCCESS
	}
	return s, devs
}

// clock is a manual clock for the probe.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func openProbe(t *testing.T, lib Library, window time.Duration) (*Probe, *clock, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	p, err := Open(lib, Config{SampleInterval: 10 * time.Second, Window: window, ProcRoot: "testdata/proc", RetryInterval: time.Minute}, reg, quiet)
	if err != nil || !p.Enabled() {
		t.Fatalf("Open: %v (%s)", err, p.DisabledReason())
	}
	c := &clock{t: time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)}
	p.now = c.now
	t.Cleanup(func() { _ = p.Close() })
	return p, c, reg
}

// step advances the clock and reads once, collecting emitted events.
func step(t *testing.T, p *Probe, c *clock, d time.Duration) []schemas.Event {
	t.Helper()
	c.t = c.t.Add(d)
	var got []schemas.Event
	if err := p.tick(func(evs []schemas.Event) error { got = append(got, evs...); return nil }); err != nil {
		t.Fatal(err)
	}
	for _, e := range got {
		if err := e.Validate(); err != nil {
			t.Errorf("invalid event %+v: %v", e.GPU, err)
		}
	}
	return got
}

type row struct {
	uuid, kind, id, attr string
	allocMs, busyMs      int64
	energyMJ             int64
}

func rows(evs []schemas.Event) map[string]row {
	out := map[string]row{}
	for _, e := range evs {
		g := e.GPU
		r := row{uuid: g.GPUUUID, kind: g.OwnerKind, id: g.OwnerID, attr: g.Attribution,
			allocMs: int64(g.AllocatedSeconds*1000 + 0.5), busyMs: int64(g.BusySeconds*1000 + 0.5)}
		if g.EnergyJoules != nil {
			r.energyMJ = int64(*g.EnergyJoules*1000 + 0.5)
		}
		out[g.GPUUUID+" "+g.OwnerKind+"/"+g.OwnerID] = r
	}
	return out
}

// conserved checks that per device the owners' allocated milliseconds add
// up to the interval and their energy to the device's delta.
func conserved(t *testing.T, evs []schemas.Event, energyMJ map[string]int64) {
	t.Helper()
	alloc, energy, interval := map[string]int64{}, map[string]int64{}, map[string]int64{}
	for _, r := range rows(evs) {
		alloc[r.uuid] += r.allocMs
		energy[r.uuid] += r.energyMJ
	}
	for _, e := range evs {
		interval[e.GPU.GPUUUID] = int64(e.GPU.IntervalSeconds*1000 + 0.5)
	}
	for uuid, ms := range interval {
		if alloc[uuid] != ms {
			t.Errorf("%s: owners' allocated %d ms, interval %d ms", uuid, alloc[uuid], ms)
		}
		if want, ok := energyMJ[uuid]; ok && energy[uuid] != want {
			t.Errorf("%s: owners' energy %d mJ, device delta %d mJ", uuid, energy[uuid], want)
		}
	}
}

func TestSharedGPUSplitByProcessUtilization(t *testing.T) {
	idle, shared, sole := &gpu{}, &gpu{procUtilOK: true}, &gpu{procUtilOK: true}
	s, devs := server(t, idle, shared, sole)
	p, c, reg := openProbe(t, s, 30*time.Second)
	if evs := step(t, p, c, 0); len(evs) != 0 {
		t.Fatalf("the first read is a baseline, got %d events", len(evs))
	}
	// GPU 1 is shared by a pod (pid 101) and a Slurm job (pid 105), which
	// used it 3:1; GPU 2 runs a systemd unit alone.
	mem := uint64(1 << 30)
	shared.procs = []nvml.ProcessInfo{{Pid: 101, UsedGpuMemory: mem}, {Pid: 105, UsedGpuMemory: ^uint64(0)}}
	shared.procUtil = []nvml.ProcessUtilizationSample{{Pid: 101, TimeStamp: 10, SmUtil: 60}, {Pid: 105, TimeStamp: 11, SmUtil: 20}}
	shared.util, shared.energy = 80, 10_001
	sole.procs = []nvml.ProcessInfo{{Pid: 106, UsedGpuMemory: mem}}
	sole.util, sole.energy = 50, 3_000
	idle.energy = 1_000
	for range 2 {
		step(t, p, c, 10*time.Second)
	}
	shared.procUtil = nil // no kernels in the last stretch: even split
	shared.energy = 20_000
	sole.energy = 6_001
	idle.energy = 2_000
	evs := step(t, p, c, 10*time.Second)
	got := rows(evs)
	u0, u1, u2 := devs[0].UUID, devs[1].UUID, devs[2].UUID
	want := map[string]row{
		u0 + " idle/idle":                   {uuid: u0, kind: "idle", id: "idle", attr: "idle", allocMs: 30_000, energyMJ: 1_000},
		u1 + " k8s_pod/" + podA:             {uuid: u1, kind: "k8s_pod", id: podA, attr: "even", allocMs: 17_500, busyMs: 14_000},
		u1 + " slurm_job/4242":              {uuid: u1, kind: "slurm_job", id: "4242", attr: "even", allocMs: 12_500, busyMs: 10_000},
		u2 + " systemd_unit/ollama.service": {uuid: u2, kind: "systemd_unit", id: "ollama.service", attr: "sole", allocMs: 30_000, busyMs: 15_000, energyMJ: 3_001},
	}
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("missing row %s; got %v", k, got)
			continue
		}
		g.energyMJ, w.energyMJ = 0, 0 // checked below
		if g != w {
			t.Errorf("%s:\n got %+v\nwant %+v", k, g, w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d rows, want %d: %v", len(got), len(want), got)
	}
	// Pod and job used the GPU 3:1 in the first stretch; the second
	// brought no new samples and the third none at all: even.
	conserved(t, evs, map[string]int64{u0: 2_000, u1: 20_000, u2: 6_001})
	// Pod: 3/4 of 10001 mJ (7500.75, and the leftover mJ as the larger
	// remainder), nothing, then half of 9999 (the tie's leftover to the
	// first owner).
	if r := got[u1+" k8s_pod/"+podA]; r.energyMJ != 7_501+0+5_000 {
		t.Errorf("pod energy %d mJ", r.energyMJ)
	}
	for _, e := range evs {
		if e.GPU.GPUUUID == u1 && e.GPU.OwnerKind == "k8s_pod" {
			if e.GPU.Container != strings.Repeat("0123456789abcdef", 4) || e.GPU.MemoryBytes != 1<<30 || e.GPU.MemoryMaxBytes != 1<<30 {
				t.Errorf("pod row %+v", e.GPU)
			}
		}
	}
	if v := testutil.ToFloat64(p.metrics.allocated.WithLabelValues(u1, "slurm_job", "4242")); v != 12.5 {
		t.Errorf("allocated seconds metric %v", v)
	}
	if n, _ := testutil.GatherAndCount(reg, "aivis_gpu_utilization_ratio", "aivis_gpu_power_watts", "aivis_gpu_memory_free_bytes"); n != 9 {
		t.Errorf("%d device gauges, want 9", n)
	}
	// Temperature answered NOT_SUPPORTED once and is not asked again.
	if n := len(devs[0].GetTemperatureCalls()); n != 1 {
		t.Errorf("temperature read %d times after NOT_SUPPORTED", n)
	}
	if n := len(devs[0].GetProcessUtilizationCalls()); n != 1 {
		t.Errorf("process utilization read %d times after NOT_SUPPORTED", n)
	}
}

func TestProcessChurnBetweenReads(t *testing.T) {
	g := &gpu{procUtilOK: true}
	s, devs := server(t, g)
	p, c, _ := openProbe(t, s, 20*time.Second)
	g.procs = []nvml.ProcessInfo{{Pid: 101, UsedGpuMemory: 1}}
	step(t, p, c, 0)
	g.procs = []nvml.ProcessInfo{{Pid: 101, UsedGpuMemory: 1}}
	step(t, p, c, 10*time.Second)
	// 101 exits after a last kernel; 104 (docker) starts.
	g.procs = []nvml.ProcessInfo{{Pid: 104, UsedGpuMemory: 1}}
	g.procUtil = []nvml.ProcessUtilizationSample{{Pid: 101, TimeStamp: 5, SmUtil: 10}, {Pid: 104, TimeStamp: 6, SmUtil: 30}}
	got := rows(step(t, p, c, 10*time.Second))
	u := devs[0].UUID
	if r := got[u+" k8s_pod/"+podA]; r.allocMs != 12_500 {
		t.Errorf("pod: %+v, want 10 s alone + 1/4 of the next 10 s", r)
	}
	if r := got[u+" container/"+strings.Repeat("0123456789abcdef", 4)]; r.allocMs != 7_500 || r.attr != "process_util" {
		t.Errorf("docker container: %+v", r)
	}
	if p.lastTS(u) != 6 {
		t.Errorf("lastSeen %d, want the newest sample's timestamp", p.lastTS(u))
	}
}

func (p *Probe) lastTS(uuid string) uint64 { return p.states[uuid].lastUtilTS }

func TestMIGInstances(t *testing.T) {
	g := &gpu{}
	s, devs := server(t, g)
	parent := devs[0]
	parent.MigMode = nvml.DEVICE_MIG_ENABLE
	slices := []uint32{3, 4}
	migs := make([]*mock.Device, 2)
	for i := range migs {
		uuid := "MIG-" + string(rune('a'+i))
		procs := []nvml.ProcessInfo{}
		if i == 0 {
			procs = []nvml.ProcessInfo{{Pid: 103, UsedGpuMemory: 2 << 30}}
		}
		migs[i] = &mock.Device{
			GetUUIDFunc: func() (string, nvml.Return) { return uuid, nvml.SUCCESS },
			GetAttributesFunc: func() (nvml.DeviceAttributes, nvml.Return) {
				return nvml.DeviceAttributes{GpuInstanceSliceCount: slices[i], MemorySizeMB: uint64(slices[i]) * 4864}, nvml.SUCCESS
			},
			GetMemoryInfoFunc:              func() (nvml.Memory, nvml.Return) { return nvml.Memory{Total: 20 << 30, Used: 2 << 30}, nvml.SUCCESS },
			GetComputeRunningProcessesFunc: func() ([]nvml.ProcessInfo, nvml.Return) { return procs, nvml.SUCCESS },
		}
	}
	parent.GetMaxMigDeviceCountFunc = func() (int, nvml.Return) { return 7, nvml.SUCCESS }
	parent.GetMigDeviceHandleByIndexFunc = func(i int) (nvml.Device, nvml.Return) {
		if i < len(migs) {
			return migs[i], nvml.SUCCESS
		}
		return nil, nvml.ERROR_NOT_FOUND
	}
	p, c, _ := openProbe(t, s, 10*time.Second)
	step(t, p, c, 0)
	g.energy = 7_001
	evs := step(t, p, c, 10*time.Second)
	got := rows(evs)
	if len(got) != 2 {
		t.Fatalf("want one row per MIG instance and none for the GPU, got %v", got)
	}
	pod := got["MIG-a k8s_pod/33333333-4444-5555-6666-777777777777"]
	if pod.allocMs != 10_000 || pod.energyMJ != 3_000 {
		t.Errorf("MIG pod row %+v, want the whole interval and 3/7 of the energy", pod)
	}
	if r := got["MIG-b idle/idle"]; r.allocMs != 10_000 || r.energyMJ != 4_001 {
		t.Errorf("idle MIG row %+v", r)
	}
	for _, e := range evs {
		if e.GPU.ParentGPUUUID != parent.UUID || e.GPU.MIGProfile == "" {
			t.Errorf("MIG row %+v: want parent %s and a profile", e.GPU, parent.UUID)
		}
	}
	if got[`MIG-a k8s_pod/33333333-4444-5555-6666-777777777777`].busyMs != 0 {
		t.Error("MIG has no utilization: busy must be 0")
	}
	if len(migs[0].GetUtilizationRatesCalls()) != 0 || len(parent.GetUtilizationRatesCalls()) != 0 {
		t.Error("utilization must not be read on MIG")
	}
}

func TestLostGPUKeepsTheOthers(t *testing.T) {
	a, b := &gpu{}, &gpu{}
	s, devs := server(t, a, b)
	p, c, reg := openProbe(t, s, time.Minute)
	step(t, p, c, 0)
	step(t, p, c, 10*time.Second)
	a.lost = true
	evs := step(t, p, c, 10*time.Second)
	got := rows(evs)
	if r := got[devs[0].UUID+" idle/idle"]; r.allocMs != 10_000 {
		t.Errorf("lost GPU's partial window: %+v (%v)", r, got)
	}
	if len(evs) != 1 {
		t.Errorf("the healthy GPU's window is still open, got %d events", len(evs))
	}
	if v := testutil.ToFloat64(p.metrics.lost); v != 1 {
		t.Errorf("gpus_lost %v", v)
	}
	// A lost GPU's gauges are gone, not frozen at their last values.
	if n := gaugeSeries(t, reg, "aivis_gpu_utilization_ratio", devs[0].UUID); n != 0 {
		t.Errorf("the lost GPU still exports %d utilization series", n)
	}
	if n := gaugeSeries(t, reg, "aivis_gpu_utilization_ratio", devs[1].UUID); n != 1 {
		t.Errorf("the healthy GPU exports %d utilization series, want 1", n)
	}
	a.lost = false
	step(t, p, c, 10*time.Second)
	if v := testutil.ToFloat64(p.metrics.lost); v != 0 {
		t.Errorf("gpus_lost %v after recovery", v)
	}
	if n := gaugeSeries(t, reg, "aivis_gpu_utilization_ratio", devs[0].UUID); n != 1 {
		t.Errorf("the recovered GPU exports %d utilization series, want 1", n)
	}
}

// gaugeSeries counts the series of family name on reg whose uuid is uuid.
func gaugeSeries(t *testing.T, reg *prometheus.Registry, name, uuid string) int {
	t.Helper()
	n := 0
	for labels := range testenv.Series(t, reg, name) {
		if strings.Contains(","+labels+",", ",uuid="+uuid+",") {
			n++
		}
	}
	return n
}

func TestEnergyCounterReset(t *testing.T) {
	g := &gpu{energy: 5_000_000}
	s, _ := server(t, g)
	p, c, _ := openProbe(t, s, 30*time.Second)
	step(t, p, c, 0)
	g.energy = 5_002_000
	step(t, p, c, 10*time.Second)
	g.energy = 100 // driver reloaded
	step(t, p, c, 10*time.Second)
	g.energy = 1_100
	evs := step(t, p, c, 10*time.Second)
	if r := rows(evs); len(r) != 1 || *evs[0].GPU.EnergyJoules != 3 {
		t.Errorf("energy %v J, want 2 + 0 (reset) + 1", *evs[0].GPU.EnergyJoules)
	}
	if d, reset := energyDelta(^uint64(0)-9, 10); reset || d != 20 {
		t.Errorf("wrap: %d %v", d, reset)
	}
}

func TestSplitExactConserves(t *testing.T) {
	for _, tc := range []struct {
		total   int64
		weights []uint64
		want    []int64
	}{
		{10, []uint64{1, 1, 1}, []int64{4, 3, 3}},
		{10_000, []uint64{60, 20}, []int64{7_500, 2_500}},
		{7, []uint64{0, 0}, []int64{4, 3}},
		{1, []uint64{1, 3}, []int64{0, 1}},
		{100, []uint64{^uint64(0), ^uint64(0)}, []int64{50, 50}},
	} {
		if got := splitExact(tc.total, tc.weights); !equal(got, tc.want) {
			t.Errorf("splitExact(%d, %v) = %v, want %v", tc.total, tc.weights, got, tc.want)
		}
	}
	for total := int64(0); total < 500; total += 7 {
		for n := 1; n < 9; n++ {
			w := make([]uint64, n)
			for i := range w {
				w[i] = uint64((int(total) * (i + 3)) % 11)
			}
			var sum int64
			for _, v := range splitExact(total, w) {
				sum += v
			}
			if sum != total {
				t.Fatalf("splitExact(%d, %v) adds up to %d", total, w, sum)
			}
		}
	}
}

func equal(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestConservationUnderChurn runs many reads with owners coming and going
// and checks every window adds up exactly.
func TestConservationUnderChurn(t *testing.T) {
	g := &gpu{procUtilOK: true}
	s, devs := server(t, g)
	p, c, _ := openProbe(t, s, 70*time.Second)
	pids := []uint32{101, 102, 103, 104, 105, 106, 107}
	step(t, p, c, 0)
	var energy, windowStart uint64
	for i := 1; i <= 60; i++ {
		g.procs = nil
		for k, pid := range pids {
			if (i+k)%3 != 0 && (i*k)%5 != 1 {
				g.procs = append(g.procs, nvml.ProcessInfo{Pid: pid, UsedGpuMemory: uint64(k) << 20})
			}
		}
		g.procUtil = nil
		if i%2 == 0 {
			for k, pr := range g.procs {
				g.procUtil = append(g.procUtil, nvml.ProcessUtilizationSample{Pid: pr.Pid, TimeStamp: uint64(i*10 + k), SmUtil: uint32((i + k) % 7 * 13)})
			}
		}
		g.util = uint32(i * 37 % 101)
		energy += uint64(i*997) % 3001
		g.energy = energy
		evs := step(t, p, c, time.Duration(7000+i*13)*time.Millisecond)
		if len(evs) > 0 {
			conserved(t, evs, map[string]int64{devs[0].UUID: int64(energy - windowStart)})
			windowStart = energy
		}
	}
}

func TestCgroupFixtures(t *testing.T) {
	ctr := strings.Repeat("0123456789abcdef", 4)
	r := NewResolver("testdata/proc")
	for pid, want := range map[uint32]Owner{
		101: {Kind: OwnerPod, ID: podA, Container: ctr},                                   // v2 systemd, containerd
		102: {Kind: OwnerPod, ID: "22222222-3333-4444-5555-666666666666", Container: ctr}, // v2, cri-o; ")" in comm
		103: {Kind: OwnerPod, ID: "33333333-4444-5555-6666-777777777777", Container: ctr}, // v1 cgroupfs
		104: {Kind: OwnerContainer, ID: ctr},                                              // docker scope
		105: {Kind: OwnerSlurmJob, ID: "4242"},                                            // Slurm v1
		106: {Kind: OwnerSystemd, ID: "ollama.service"},                                   // systemd unit
		107: {Kind: OwnerUser, ID: "1000"},                                                // user session
		108: {Kind: OwnerContainer, ID: ctr},                                              // docker v1 cgroupfs
		109: {Kind: OwnerUnknown},                                                         // init.scope
		999: {Kind: OwnerUnknown},                                                         // gone
	} {
		if got := r.Owner(pid); got != want {
			t.Errorf("pid %d: got %+v, want %+v", pid, got, want)
		}
	}
}

func TestReusedPIDIsLookedUpAgain(t *testing.T) {
	root := t.TempDir()
	write := func(start, cgroup string) {
		dir := filepath.Join(root, "42")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		stat := "42 (x) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 " + start + " 0 0\n"
		if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "cgroup"), []byte(cgroup), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := NewResolver(root)
	write("100", "0::/system.slice/a.service\n")
	if o := r.Owner(42); o.ID != "a.service" {
		t.Fatalf("got %+v", o)
	}
	write("100", "0::/system.slice/changed.service\n")
	if o := r.Owner(42); o.ID != "a.service" {
		t.Errorf("same process: want the cached owner, got %+v", o)
	}
	write("200", "0::/system.slice/b.service\n")
	if o := r.Owner(42); o.ID != "b.service" {
		t.Errorf("reused pid: got %+v, want the new process's owner", o)
	}
}

func TestXidEventsAreCounted(t *testing.T) {
	g := &gpu{}
	s, devs := server(t, g)
	d := devs[0]
	d.GetSupportedEventTypesFunc = func() (uint64, nvml.Return) { return nvml.EventTypeXidCriticalError | 1, nvml.SUCCESS }
	d.RegisterEventsFunc = func(uint64, nvml.EventSet) nvml.Return { return nvml.SUCCESS }
	var n atomic.Int32
	s.EventSetCreateFunc = func() (nvml.EventSet, nvml.Return) {
		return &mock.EventSet{
			WaitFunc: func(uint32) (nvml.EventData, nvml.Return) {
				switch n.Add(1) {
				case 1:
					return nvml.EventData{Device: d, EventType: nvml.EventTypeXidCriticalError, EventData: 79}, nvml.SUCCESS
				case 2:
					return nvml.EventData{Device: d, EventType: nvml.EventTypeXidCriticalError, EventData: 13}, nvml.SUCCESS
				}
				time.Sleep(time.Millisecond)
				return nvml.EventData{}, nvml.ERROR_TIMEOUT
			},
			FreeFunc: func() nvml.Return { return nvml.SUCCESS },
		}, nvml.SUCCESS
	}
	p, _, _ := openProbe(t, s, time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, func([]schemas.Event) error { return nil }) }()
	deadline := time.Now().Add(5 * time.Second)
	for n.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if v := testutil.ToFloat64(p.metrics.xid.WithLabelValues(d.UUID, "79")); v != 1 {
		t.Errorf("xid 79 counted %v times", v)
	}
	if v := testutil.ToFloat64(p.metrics.xid.WithLabelValues(d.UUID, "13")); v != 1 {
		t.Errorf("xid 13 counted %v times", v)
	}
}

func TestRunStopsOnEmitError(t *testing.T) {
	s, _ := server(t, &gpu{})
	p, _, _ := openProbe(t, s, 10*time.Second)
	p.now = time.Now
	p.cfg.SampleInterval, p.cfg.Window = time.Millisecond, time.Millisecond
	err := p.Run(context.Background(), func([]schemas.Event) error { return errors.New("broker down") })
	if err == nil || !strings.Contains(err.Error(), "broker down") {
		t.Errorf("got %v, want the emit error", err)
	}
}

func TestDisabledWithoutDriver(t *testing.T) {
	for _, tc := range []struct {
		name string
		init func() nvml.Return
		want string
	}{
		{"library not found", func() nvml.Return { return nvml.ERROR_LIBRARY_NOT_FOUND }, "no NVIDIA driver: libnvidia-ml.so.1 not found"},
		{"driver not loaded", func() nvml.Return { return nvml.ERROR_DRIVER_NOT_LOADED }, "driver not loaded"},
		{"init panics", func() nvml.Return { panic("symbol lookup") }, "could not be loaded (symbol lookup)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Only Init is set: any other NVML call would panic the test.
			lib := &mock.Interface{InitFunc: tc.init}
			reg := prometheus.NewRegistry()
			p, err := Open(lib, Config{RetryInterval: time.Millisecond}, reg, quiet)
			if err != nil {
				t.Fatalf("Open: %v, want disabled mode", err)
			}
			if p.Enabled() || !strings.Contains(p.DisabledReason(), tc.want) || p.Ready() == nil {
				t.Fatalf("enabled %v, reason %q, ready %v; want disabled with %q", p.Enabled(), p.DisabledReason(), p.Ready(), tc.want)
			}
			if _, err := p.Snapshot(); !errors.Is(err, ErrDisabled) {
				t.Errorf("Snapshot: %v, want ErrDisabled", err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
			defer cancel()
			if err := p.Run(ctx, func([]schemas.Event) error { t.Error("disabled probe emitted events"); return nil }); err != nil {
				t.Errorf("Run: %v", err)
			}
			if len(lib.InitCalls()) < 2 {
				t.Errorf("Init called %d times: want retries", len(lib.InitCalls()))
			}
			if v := testutil.ToFloat64(p.metrics.enabled); v != 0 {
				t.Errorf("enabled gauge %v", v)
			}
			if err := p.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
}

func TestDriverAppearsLater(t *testing.T) {
	s, _ := server(t, &gpu{})
	var calls atomic.Int32
	s.InitFunc = func() nvml.Return {
		if calls.Add(1) == 1 {
			return nvml.ERROR_DRIVER_NOT_LOADED
		}
		return nvml.SUCCESS
	}
	p, err := Open(s, Config{SampleInterval: time.Millisecond, Window: time.Millisecond, RetryInterval: time.Millisecond, ProcRoot: "testdata/proc"}, nil, quiet)
	if err != nil || p.Enabled() {
		t.Fatalf("Open: %v, enabled %v", err, p.Enabled())
	}
	defer p.Close()
	errDone := errors.New("got events")
	err = p.Run(context.Background(), func([]schemas.Event) error { return errDone })
	if !errors.Is(err, errDone) || !p.Enabled() || p.Ready() != nil {
		t.Errorf("Run: %v, enabled %v: want sampling once the driver loads", err, p.Enabled())
	}
}

func TestOpenFailsOnFixableInitErrors(t *testing.T) {
	for ret, want := range map[nvml.Return]string{
		nvml.ERROR_NO_PERMISSION:           "/dev/nvidia",
		nvml.ERROR_LIB_RM_VERSION_MISMATCH: "reboot",
		nvml.ERROR_UNKNOWN:                 "nvidia-smi",
	} {
		_, err := Open(&mock.Interface{InitFunc: func() nvml.Return { return ret }}, Config{}, nil, quiet)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Init %v: got %v, want an error mentioning %q", ret, err, want)
		}
	}
}

// TestRealLibrary opens the host's NVML. Without a driver (CI) it must come
// up disabled, not panic; on a GPU host it must read every device.
func TestRealLibrary(t *testing.T) {
	p, err := OpenSystem(DefaultConfig(), nil, quiet)
	if err != nil {
		t.Fatalf("OpenSystem: %v", err)
	}
	defer p.Close()
	if !p.Enabled() {
		if !strings.Contains(p.DisabledReason(), "libnvidia-ml.so.1") {
			t.Errorf("disabled for an unexpected reason: %s", p.DisabledReason())
		}
		return
	}
	samples, err := p.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot on a GPU host: %v", err)
	}
	for _, s := range samples {
		t.Logf("GPU %d %s %s: util %+v, %d processes, unsupported %v", s.Index, s.UUID, s.Name, s.Util, len(s.Processes), s.Unsupported)
	}
}

// A finished owner's GPU-seconds series stay for owner_series_ttl after
// its last window, then go; owners still running keep theirs.
func TestFinishedOwnersSeriesExpire(t *testing.T) {
	g := &gpu{procUtilOK: true}
	s, devs := server(t, g)
	p, c, reg := openProbe(t, s, 20*time.Second)
	u := devs[0].UUID
	series := func() map[string]bool {
		t.Helper()
		got := map[string]bool{}
		for _, family := range []string{"allocated_seconds_total", "busy_seconds_total"} {
			for labels := range testenv.Series(t, reg, "aivis_gpu_owner_"+family) {
				// owner_id=…,owner_kind=…,uuid=…: label names in order.
				var id, kind, uuid string
				for _, l := range strings.Split(labels, ",") {
					name, value, _ := strings.Cut(l, "=")
					switch name {
					case "owner_id":
						id = value
					case "owner_kind":
						kind = value
					case "uuid":
						uuid = value
					}
				}
				if uuid != u {
					t.Errorf("series of another device: %s", labels)
				}
				got[family+" "+kind+"/"+id] = true
			}
		}
		return got
	}
	// The pod (pid 101) runs for one window, then only the Slurm job
	// (pid 105).
	g.procs = []nvml.ProcessInfo{{Pid: 101, UsedGpuMemory: 1}}
	step(t, p, c, 0)
	step(t, p, c, 10*time.Second)
	step(t, p, c, 10*time.Second) // the pod's window closes
	g.procs = []nvml.ProcessInfo{{Pid: 105, UsedGpuMemory: 1}}
	pod, job := "k8s_pod/"+podA, "slurm_job/4242"
	for _, want := range []string{"allocated_seconds_total " + pod, "busy_seconds_total " + pod} {
		if !series()[want] {
			t.Fatalf("no %s after the pod's window: %v", want, series())
		}
	}
	// Just short of an hour after the pod's last window it is still there.
	for elapsed := time.Duration(0); elapsed < time.Hour-10*time.Second; elapsed += 10 * time.Second {
		step(t, p, c, 10*time.Second)
	}
	got := series()
	if !got["allocated_seconds_total "+pod] || !got["allocated_seconds_total "+job] {
		t.Fatalf("series before the TTL: %v", got)
	}
	step(t, p, c, 10*time.Second)
	got = series()
	if got["allocated_seconds_total "+pod] || got["busy_seconds_total "+pod] {
		t.Errorf("the finished pod's series outlived owner_series_ttl: %v", got)
	}
	if !got["allocated_seconds_total "+job] || !got["busy_seconds_total "+job] {
		t.Errorf("the running job's series went: %v", got)
	}
	if len(p.ownerSeries) != 1 {
		t.Errorf("%d owner series remembered, want the job's only", len(p.ownerSeries))
	}
	// The pod comes back: a fresh series from zero.
	g.procs = []nvml.ProcessInfo{{Pid: 101, UsedGpuMemory: 1}}
	step(t, p, c, 10*time.Second)
	step(t, p, c, 10*time.Second)
	if v := testutil.ToFloat64(p.metrics.allocated.WithLabelValues(u, "k8s_pod", podA)); v <= 0 || v > 20 {
		t.Errorf("the returning pod's series reads %v s, want a fresh count of at most one window", v)
	}
}

func TestOwnerSeriesTTLValidated(t *testing.T) {
	cfg := DefaultConfig()
	cfg.OwnerSeriesTTL = time.Minute
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "gpuprobe.owner_series_ttl") {
		t.Errorf("a 1m TTL: %v", err)
	}
	cfg.OwnerSeriesTTL, cfg.Window = 10*time.Minute, 15*time.Minute
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "gpuprobe.owner_series_ttl") {
		t.Errorf("a TTL shorter than the window: %v", err)
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}
