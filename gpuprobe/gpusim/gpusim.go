// Package gpusim simulates a GPU host for demos and end-to-end tests: an
// NVML library (go-nvml's mock dgxa100 server, its GPUs renamed and
// scripted) whose utilization, power, energy counter and compute
// processes follow what the caller sets, and a /proc and kubelet tree that
// name the processes' owners as a real node does. gpuprobe reads it like
// a real host: Config's ProcRoot and KubeletRoot point at the trees, and
// the caller drives the clock with Advance before each Probe.ReadAt.
//
// Energy is exact: each Advance adds the set power (W) times the elapsed
// milliseconds to the counter (mJ), so a test can work out the joules.
package gpusim

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
)

// DefaultModel is the GPU model a simulated GPU reports unless set.
const DefaultModel = "NVIDIA H100 80GB HBM3"

// Process is one compute process on a simulated GPU.
type Process struct {
	PID         uint32
	MemoryBytes uint64
	// SMPercent is the process's SM utilization in NVML's per-process
	// samples (one sample per Advance); 0 leaves no sample.
	SMPercent uint32
}

// Load is what a GPU does from one Advance on.
type Load struct {
	UtilPercent uint32
	PowerWatts  uint32
	Processes   []Process
}

// Host is a simulated GPU host. Its methods are safe for concurrent use
// with the probe's reads.
type Host struct {
	// Server is the NVML library to give gpuprobe.Open.
	Server *dgxa100.Server
	dir    string

	mu   sync.Mutex
	now  time.Time
	gpus []*simGPU
}

type simGPU struct {
	uuid, name string
	load       Load
	energyMJ   uint64
	sampleTS   uint64 // µs of the last Advance, the per-process samples' time
}

// MemoryTotal is each simulated GPU's memory.
const MemoryTotal = 80 << 30

// New returns a host named host with one GPU per model (DefaultModel for
// ""), all idle at start; dir holds its /proc and kubelet trees. UUIDs
// derive from host and index, so a run can be repeated.
func New(dir, host string, start time.Time, models ...string) (*Host, error) {
	if len(models) == 0 || len(models) > 8 {
		return nil, fmt.Errorf("simulating %d GPUs: want 1 to 8", len(models))
	}
	h := &Host{Server: dgxa100.New(), dir: dir, now: start}
	for _, sub := range []string{"proc", "kubelet/pods"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, fmt.Errorf("creating the simulated host's %s: %w", sub, err)
		}
	}
	for i, model := range models {
		if model == "" {
			model = DefaultModel
		}
		sum := sha256.Sum256([]byte(host + "/" + strconv.Itoa(i)))
		g := &simGPU{name: model, uuid: fmt.Sprintf("GPU-%x-%x-%x-%x-%x", sum[0:4], sum[4:6], sum[6:8], sum[8:10], sum[10:16])}
		h.gpus = append(h.gpus, g)
		h.wire(&h.Server.Devices[i].(*dgxa100.Device).Device, g)
	}
	n := len(models)
	h.Server.DeviceGetCountFunc = func() (int, nvml.Return) { return n, nvml.SUCCESS }
	h.Server.EventSetCreateFunc = func() (nvml.EventSet, nvml.Return) {
		return &mock.EventSet{
			FreeFunc: func() nvml.Return { return nvml.SUCCESS },
			WaitFunc: func(uint32) (nvml.EventData, nvml.Return) { return nvml.EventData{}, nvml.ERROR_TIMEOUT },
		}, nvml.SUCCESS
	}
	return h, nil
}

// ProcRoot and KubeletRoot are the trees to give gpuprobe's config.
func (h *Host) ProcRoot() string    { return filepath.Join(h.dir, "proc") }
func (h *Host) KubeletRoot() string { return filepath.Join(h.dir, "kubelet") }

// UUID returns GPU i's UUID.
func (h *Host) UUID(i int) string { return h.gpus[i].uuid }

// Set changes GPU i's load from the next Advance on.
func (h *Host) Set(i int, l Load) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.gpus[i].load = l
}

// Advance moves the clock to at: each GPU's energy counter grows by its
// power over the elapsed time, and each process with SMPercent leaves one
// utilization sample stamped at. A time not after the clock is ignored.
func (h *Host) Advance(at time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ms := at.UnixMilli() - h.now.UnixMilli()
	if ms <= 0 {
		return
	}
	h.now = at
	for _, g := range h.gpus {
		g.energyMJ += uint64(g.load.PowerWatts) * uint64(ms)
		g.sampleTS = uint64(at.UnixMicro())
	}
}

func (h *Host) wire(d *mock.Device, g *simGPU) {
	locked := func(f func()) {
		h.mu.Lock()
		defer h.mu.Unlock()
		f()
	}
	d.GetUUIDFunc = func() (string, nvml.Return) { return g.uuid, nvml.SUCCESS }
	d.GetNameFunc = func() (string, nvml.Return) { return g.name, nvml.SUCCESS }
	d.GetMigModeFunc = func() (int, int, nvml.Return) {
		return nvml.DEVICE_MIG_DISABLE, nvml.DEVICE_MIG_DISABLE, nvml.SUCCESS
	}
	d.GetMemoryInfoFunc = func() (m nvml.Memory, r nvml.Return) {
		locked(func() {
			var used uint64
			for _, p := range g.load.Processes {
				used += p.MemoryBytes
			}
			m = nvml.Memory{Total: MemoryTotal, Used: min(used, MemoryTotal), Free: MemoryTotal - min(used, MemoryTotal)}
		})
		return m, nvml.SUCCESS
	}
	d.GetUtilizationRatesFunc = func() (u nvml.Utilization, r nvml.Return) {
		locked(func() { u = nvml.Utilization{Gpu: g.load.UtilPercent, Memory: g.load.UtilPercent / 2} })
		return u, nvml.SUCCESS
	}
	d.GetPowerUsageFunc = func() (mw uint32, r nvml.Return) {
		locked(func() { mw = g.load.PowerWatts * 1000 })
		return mw, nvml.SUCCESS
	}
	d.GetTotalEnergyConsumptionFunc = func() (e uint64, r nvml.Return) {
		locked(func() { e = g.energyMJ })
		return e, nvml.SUCCESS
	}
	d.GetTemperatureFunc = func(nvml.TemperatureSensors) (t uint32, r nvml.Return) {
		locked(func() { t = 35 + g.load.UtilPercent*4/10 })
		return t, nvml.SUCCESS
	}
	d.GetComputeRunningProcessesFunc = func() (out []nvml.ProcessInfo, r nvml.Return) {
		locked(func() {
			for _, p := range g.load.Processes {
				out = append(out, nvml.ProcessInfo{Pid: p.PID, UsedGpuMemory: p.MemoryBytes})
			}
		})
		return out, nvml.SUCCESS
	}
	d.GetProcessUtilizationFunc = func(last uint64) (out []nvml.ProcessUtilizationSample, r nvml.Return) {
		locked(func() {
			if g.sampleTS <= last {
				return
			}
			for _, p := range g.load.Processes {
				if p.SMPercent > 0 {
					out = append(out, nvml.ProcessUtilizationSample{Pid: p.PID, TimeStamp: g.sampleTS, SmUtil: p.SMPercent})
				}
			}
		})
		if len(out) == 0 {
			return nil, nvml.ERROR_NOT_FOUND
		}
		return out, nvml.SUCCESS
	}
	d.GetSupportedEventTypesFunc = func() (uint64, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED }
}

// AddPod gives process pid the cgroup of a container of a Kubernetes pod
// (cgroup v2, systemd driver, containerd) and writes the pod's kubelet
// directory with its name and namespace, as a node has them.
func (h *Host) AddPod(pid uint32, podUID, name, namespace string) error {
	slice := "kubepods-burstable-pod" + underscores(podUID) + ".slice"
	ctr := fmt.Sprintf("%064x", sha256.Sum256([]byte(podUID)))
	cgroup := "0::/kubepods.slice/kubepods-burstable.slice/" + slice + "/cri-containerd-" + ctr[:64] + ".scope\n"
	if err := h.addProc(pid, cgroup); err != nil {
		return err
	}
	dir := filepath.Join(h.KubeletRoot(), "pods", podUID)
	vol := filepath.Join(dir, "volumes", "kubernetes.io~projected", "kube-api-access-sim")
	if err := os.MkdirAll(vol, 0o755); err != nil {
		return fmt.Errorf("simulating pod %s: %w", name, err)
	}
	hosts := "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n10.244.0." +
		strconv.Itoa(int(pid%250)+2) + "\t" + name + "\n"
	if err := os.WriteFile(filepath.Join(dir, "etc-hosts"), []byte(hosts), 0o644); err != nil {
		return fmt.Errorf("simulating pod %s: %w", name, err)
	}
	if err := os.WriteFile(filepath.Join(vol, "namespace"), []byte(namespace), 0o644); err != nil {
		return fmt.Errorf("simulating pod %s: %w", name, err)
	}
	return nil
}

// AddUnit gives process pid the cgroup of a systemd service.
func (h *Host) AddUnit(pid uint32, unit string) error {
	return h.addProc(pid, "0::/system.slice/"+unit+"\n")
}

func (h *Host) addProc(pid uint32, cgroup string) error {
	dir := filepath.Join(h.ProcRoot(), strconv.FormatUint(uint64(pid), 10))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("simulating process %d: %w", pid, err)
	}
	stat := fmt.Sprintf("%d (sim) S 1 %d %d 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 %d 0 0\n", pid, pid, pid, 1000+pid)
	if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o644); err != nil {
		return fmt.Errorf("simulating process %d: %w", pid, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup"), []byte(cgroup), 0o644); err != nil {
		return fmt.Errorf("simulating process %d: %w", pid, err)
	}
	return nil
}

func underscores(uid string) string {
	b := []byte(uid)
	for i, c := range b {
		if c == '-' {
			b[i] = '_'
		}
	}
	return string(b)
}
