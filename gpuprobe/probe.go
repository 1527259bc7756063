// Package gpuprobe samples NVIDIA GPUs through NVML (go-nvml) and emits
// gpu.usage events: per GPU or MIG instance, per owner (Kubernetes pod,
// container, Slurm job, systemd unit, user, or idle) and per window, the
// allocated and busy GPU-seconds, energy and memory. Owners come from the
// GPU processes' cgroups under a proc root; see account.go for how a shared
// device is split (exactly, in integer milliseconds and millijoules).
//
// Data enters through Library (NVML) and the proc root, and leaves through
// the emit function Run is given (Kafka or JSON lines) and Prometheus
// metrics on the registerer passed in.
//
// Hosts without the NVIDIA driver are normal: the probe then runs disabled,
// makes no NVML call but Init (retried every retry_interval), emits
// nothing, says why in its log, readiness and aivis_gpuprobe_enabled.
// go-nvml loads libnvidia-ml.so.1 with dlopen inside Init and leaves NVML
// symbols to lazy binding, so no NVML function may run unless Init
// succeeded, and binaries must not be linked with BIND_NOW: build with
// -ldflags=-extldflags=-Wl,-z,lazy.
package gpuprobe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"sync"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/aivis-dev/aivis/schemas"
)

// ErrDisabled is returned by Snapshot when NVML is unavailable on this host.
var ErrDisabled = errors.New("gpuprobe is disabled")

// Probe reads GPUs through one NVML instance and attributes their use.
type Probe struct {
	lib      Library
	cfg      Config
	log      *slog.Logger
	host     string
	now      func() time.Time
	metrics  *metrics
	resolver *Resolver
	// deployments label GPU time with its serving deployment.
	deployments *Deployments

	stateMu  sync.Mutex
	disabled string // why NVML is unavailable; empty when enabled

	// mu keeps Close from unloading the library while a read is in flight:
	// a call into an unloaded library crashes the process.
	mu     sync.RWMutex
	closed bool

	// Owned by the reading goroutine (Snapshot, Run).
	states  map[string]*deviceState // by UUID, or "index:N" before the UUID is known
	windows map[string]*deviceWindow
	lost    map[int]bool
	// prevOwners remembers each device's processes' owners from the
	// previous read, for processes that exited since.
	prevOwners map[string]map[uint32]Owner
	// ownerSeries holds, per (device, owner) series of the GPU-seconds
	// counters, the end of the last window that added to it.
	ownerSeries map[ownerSeries]time.Time
}

// ownerSeries is the label values of one per-owner counter series.
type ownerSeries struct{ uuid, kind, id string }

// deviceWindow is a device's open window and energy baseline.
type deviceWindow struct {
	win        *window
	meta       DeviceSample
	energy     uint64
	haveEnergy bool
	seen       bool // read in the current tick
}

// OpenSystem opens the host's NVML library (libnvidia-ml.so.1); see Open.
func OpenSystem(cfg Config, reg prometheus.Registerer, log *slog.Logger) (*Probe, error) {
	lib, reason := newLibrary()
	if lib == nil {
		p, err := newProbe(nil, cfg, reg, log)
		if err != nil {
			return nil, err
		}
		p.setDisabled(reason)
		return p, nil
	}
	return Open(lib, cfg, reg, log)
}

// newLibrary builds the NVML binding; go-nvml does not load anything here,
// but a panic must not take the agent down.
func newLibrary() (lib Library, reason string) {
	defer func() {
		if r := recover(); r != nil {
			lib, reason = nil, fmt.Sprintf("NVML bindings failed to set up (%v); gpuprobe runs disabled and emits no GPU usage", r)
		}
	}()
	return nvml.New(), ""
}

// Open initialises lib. When the NVIDIA library or driver is missing it
// returns a Probe in disabled mode (see DisabledReason), not an error; other
// Init failures are errors, because an operator can fix them.
func Open(lib Library, cfg Config, reg prometheus.Registerer, log *slog.Logger) (*Probe, error) {
	p, err := newProbe(lib, cfg, reg, log)
	if err != nil {
		return nil, err
	}
	if lib == nil {
		p.setDisabled("no NVML library was given; gpuprobe runs disabled and emits no GPU usage")
		return p, nil
	}
	reason, err := p.init()
	if err != nil {
		return nil, err
	}
	p.setDisabled(reason)
	return p, nil
}

// init calls Init and says why the probe stays disabled ("" when enabled),
// or returns an error an operator must fix.
func (p *Probe) init() (string, error) {
	ret, panicked := initLibrary(p.lib)
	switch {
	case panicked != nil:
		return fmt.Sprintf("NVML could not be loaded (%v); gpuprobe runs disabled and emits no GPU usage", panicked), nil
	case ret == nvml.SUCCESS:
		return "", nil
	case ret == nvml.ERROR_LIBRARY_NOT_FOUND:
		return "no NVIDIA driver: libnvidia-ml.so.1 not found; gpuprobe runs disabled, emits no GPU usage and retries", nil
	case ret == nvml.ERROR_DRIVER_NOT_LOADED:
		return "NVIDIA driver not loaded (libnvidia-ml.so.1 is present but the kernel module is not); gpuprobe runs disabled, emits no GPU usage and retries", nil
	case ret == nvml.ERROR_NO_PERMISSION:
		return "", fmt.Errorf("initialising NVML: %v; run gpuprobe with access to /dev/nvidia* (root, or the device's group)", ret)
	case ret == nvml.ERROR_LIB_RM_VERSION_MISMATCH:
		return "", fmt.Errorf("initialising NVML: %v; the driver library and kernel module differ, usually after a driver upgrade: reboot or reload the nvidia module", ret)
	default:
		return "", fmt.Errorf("initialising NVML: %v (code %d); check that nvidia-smi works on this host", ret, int32(ret))
	}
}

func newProbe(lib Library, cfg Config, reg prometheus.Registerer, log *slog.Logger) (*Probe, error) {
	var deployments *Deployments
	if cfg.DeploymentsPath != "" {
		var err error
		if deployments, err = LoadDeployments(cfg.DeploymentsPath); err != nil {
			return nil, fmt.Errorf("gpuprobe.deployments_path: %w", err)
		}
	}
	if log == nil {
		log = slog.Default()
	}
	def := DefaultConfig()
	if cfg.SampleInterval <= 0 {
		cfg.SampleInterval = def.SampleInterval
	}
	if cfg.Window < cfg.SampleInterval {
		cfg.Window = max(def.Window, cfg.SampleInterval)
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = def.RetryInterval
	}
	if cfg.OwnerSeriesTTL <= 0 {
		cfg.OwnerSeriesTTL = def.OwnerSeriesTTL
	}
	host := cfg.Host
	if host == "" {
		host, _ = os.Hostname()
	}
	resolver := NewResolver(cfg.ProcRoot)
	resolver.kubeletRoot = cfg.KubeletRoot
	return &Probe{lib: lib, cfg: cfg, log: log, host: host, now: time.Now, metrics: newMetrics(reg),
		resolver: resolver, deployments: deployments, states: map[string]*deviceState{}, windows: map[string]*deviceWindow{},
		lost: map[int]bool{}, prevOwners: map[string]map[uint32]Owner{}, ownerSeries: map[ownerSeries]time.Time{}}, nil
}

// initLibrary calls Init, turning a panic into a value.
func initLibrary(lib Library) (ret nvml.Return, panicked any) {
	defer func() {
		if r := recover(); r != nil {
			panicked = r
		}
	}()
	return lib.Init(), nil
}

func (p *Probe) setDisabled(reason string) {
	p.stateMu.Lock()
	p.disabled = reason
	p.stateMu.Unlock()
	if reason == "" {
		p.metrics.enabled.Set(1)
	} else {
		p.metrics.enabled.Set(0)
	}
}

// Enabled reports whether NVML initialised.
func (p *Probe) Enabled() bool { return p.DisabledReason() == "" }

// DisabledReason says why the probe is disabled; empty when enabled.
func (p *Probe) DisabledReason() string {
	p.stateMu.Lock()
	defer p.stateMu.Unlock()
	return p.disabled
}

// Ready reports a disabled probe as not ready, with its reason: it cannot
// produce anything until the driver is there.
func (p *Probe) Ready() error {
	if r := p.DisabledReason(); r != "" {
		return errors.New(r)
	}
	return nil
}

func (p *Probe) state(key string) *deviceState {
	st := p.states[key]
	if st == nil {
		st = &deviceState{unsupported: map[string]bool{}}
		p.states[key] = st
	}
	return st
}

// Snapshot reads every GPU and, for GPUs in MIG mode, every MIG instance
// after its GPU. A device that cannot be read is left out and its error
// joined into the returned error, next to the devices that could.
func (p *Probe) Snapshot() ([]DeviceSample, error) { return p.snapshot(p.now()) }

// snapshot is Snapshot with the reads stamped now.
func (p *Probe) snapshot(now time.Time) ([]DeviceSample, error) {
	if r := p.DisabledReason(); r != "" {
		return nil, fmt.Errorf("%w: %s", ErrDisabled, r)
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return nil, errors.New("reading GPUs: the probe is closed")
	}
	n, ret := p.lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return nil, fmt.Errorf("counting GPUs: %v", ret)
	}
	samples := make([]DeviceSample, 0, n)
	var errs []error
	for i := range n {
		got, err := p.readGPU(i, now)
		if errors.Is(err, errLost) {
			if !p.lost[i] {
				p.lost[i] = true
				p.metrics.lostTotal.Inc()
				p.log.Error("GPU lost: it is left out until it answers again; the driver usually needs a GPU reset or a reboot (see dmesg for Xid 79)",
					"index", i, "err", err)
			}
		} else if err == nil && p.lost[i] {
			delete(p.lost, i)
			p.log.Info("GPU is back", "index", i)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		samples = append(samples, got...)
	}
	p.metrics.lost.Set(float64(len(p.lost)))
	p.metrics.devices.Set(float64(len(samples)))
	return samples, errors.Join(errs...)
}

// readGPU reads GPU i and its MIG instances.
func (p *Probe) readGPU(i int, now time.Time) ([]DeviceSample, error) {
	s := DeviceSample{Index: i, Time: now}
	dev, ret := p.lib.DeviceGetHandleByIndex(i)
	if ret != nvml.SUCCESS {
		return nil, wrapRet(fmt.Sprintf("opening GPU %d", i), ret)
	}
	if s.UUID, ret = dev.GetUUID(); ret != nvml.SUCCESS {
		return nil, wrapRet(fmt.Sprintf("reading the UUID of GPU %d", i), ret)
	}
	if s.Name, ret = dev.GetName(); ret != nvml.SUCCESS {
		return nil, wrapRet(fmt.Sprintf("reading the name of GPU %d (%s)", i, s.UUID), ret)
	}
	st := p.state(s.UUID)
	mode, ok, err := read(st, "mig", func() (int, nvml.Return) {
		cur, _, ret := dev.GetMigMode()
		return cur, ret
	})
	if err != nil {
		return nil, fmt.Errorf("GPU %d (%s): %w", i, s.UUID, err)
	}
	s.MIGEnabled = ok && mode == nvml.DEVICE_MIG_ENABLE
	if err := readDevice(dev, st, &s, false, s.MIGEnabled); err != nil {
		return nil, fmt.Errorf("GPU %d (%s): %w", i, s.UUID, err)
	}
	s.Unsupported = unsupportedList(st)
	p.resolveOwners(&s)
	out := []DeviceSample{s}
	if !s.MIGEnabled {
		return out, nil
	}
	count, ret := dev.GetMaxMigDeviceCount()
	if ret != nvml.SUCCESS {
		return nil, wrapRet(fmt.Sprintf("counting MIG instances of GPU %d (%s)", i, s.UUID), ret)
	}
	for j := range count {
		mig, ret := dev.GetMigDeviceHandleByIndex(j)
		if ret == nvml.ERROR_NOT_FOUND || ret == nvml.ERROR_INVALID_ARGUMENT {
			continue // empty slot
		}
		if ret != nvml.SUCCESS {
			return nil, wrapRet(fmt.Sprintf("opening MIG instance %d of GPU %d (%s)", j, i, s.UUID), ret)
		}
		m := DeviceSample{Index: i, Name: s.Name, ParentUUID: s.UUID, Time: now}
		if m.UUID, ret = mig.GetUUID(); ret != nvml.SUCCESS {
			return nil, wrapRet(fmt.Sprintf("reading the UUID of MIG instance %d of GPU %d", j, i), ret)
		}
		if a, ret := mig.GetAttributes(); ret == nvml.SUCCESS {
			m.MIGProfile, m.SliceCount = migProfile(a), a.GpuInstanceSliceCount
		}
		mst := p.state(m.UUID)
		if err := readDevice(mig, mst, &m, true, false); err != nil {
			return nil, fmt.Errorf("MIG instance %s of GPU %d: %w", m.UUID, i, err)
		}
		m.Unsupported = unsupportedList(mst)
		p.resolveOwners(&m)
		out = append(out, m)
	}
	return out, nil
}

func wrapRet(doing string, ret nvml.Return) error {
	if ret == nvml.ERROR_GPU_IS_LOST || ret == nvml.ERROR_RESET_REQUIRED {
		return fmt.Errorf("%s: %w (%v)", doing, errLost, ret)
	}
	return fmt.Errorf("%s: %v", doing, ret)
}

// resolveOwners fills each process's owner. A process that is gone keeps
// the owner it had at the previous read.
func (p *Probe) resolveOwners(s *DeviceSample) {
	prev := p.prevOwners[s.UUID]
	cur := make(map[uint32]Owner, len(s.Processes))
	for i := range s.Processes {
		pr := &s.Processes[i]
		pr.Owner = p.resolver.Owner(pr.PID)
		if o, ok := prev[pr.PID]; ok && pr.Owner.Kind == OwnerUnknown {
			pr.Owner = o
		}
		cur[pr.PID] = pr.Owner
	}
	p.prevOwners[s.UUID] = cur
}

// Run samples every sample_interval and emits gpu.usage events each time a
// device's window closes. A device that stops answering (lost, removed, MIG
// reconfigured) has its partial window emitted. In disabled mode Run logs
// the reason, retries Init every retry_interval and otherwise waits for
// ctx. An emit error ends Run; Run returns nil when ctx ends.
func (p *Probe) Run(ctx context.Context, emit func([]schemas.Event) error) error {
	if r := p.DisabledReason(); r != "" {
		p.log.Warn(r, "retry_interval", p.cfg.RetryInterval)
		if !p.retryInit(ctx) {
			return nil
		}
	}
	p.log.Info("gpuprobe sampling GPUs", "sample_interval", p.cfg.SampleInterval, "window", p.cfg.Window, "host", p.host,
		"proc_root", p.resolver.root, "kubelet_root", p.resolver.kubeletRoot, "deployment_rules", p.deployments.Len())
	health := p.startHealth(ctx)
	defer health.wait()
	ticker := time.NewTicker(p.cfg.SampleInterval)
	defer ticker.Stop()
	for {
		if err := p.tick(emit); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

// retryInit waits for NVML to become available; false when ctx ended first.
func (p *Probe) retryInit(ctx context.Context) bool {
	if p.lib == nil {
		<-ctx.Done()
		return false
	}
	t := time.NewTicker(p.cfg.RetryInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
		p.metrics.initRetries.Inc()
		reason, err := p.init()
		if err != nil {
			reason = err.Error()
		}
		if reason == "" {
			p.setDisabled("")
			p.log.Info("NVML is available now; gpuprobe starts sampling")
			return true
		}
		if reason != p.DisabledReason() {
			p.log.Warn(reason)
		}
		p.setDisabled(reason)
	}
}

// SetDeployments replaces the deployment rules (those of
// gpuprobe.deployments_path by default). Call it before reading.
func (p *Probe) SetDeployments(d *Deployments) { p.deployments = d }

// ReadAt reads every device once as of at and emits the windows that
// closed, as one step of Run does. It is for driving the probe on a clock
// of its own (simulations, replays); at must not go back, and ReadAt must
// not run beside Run.
func (p *Probe) ReadAt(at time.Time, emit func([]schemas.Event) error) error {
	return p.tickAt(at, emit)
}

// tick reads every device once and emits the windows that closed.
func (p *Probe) tick(emit func([]schemas.Event) error) error { return p.tickAt(p.now(), emit) }

func (p *Probe) tickAt(now time.Time, emit func([]schemas.Event) error) error {
	samples, err := p.snapshot(now)
	if err != nil {
		p.metrics.sampleErrors.Inc()
		p.log.Warn("reading GPUs; unreadable devices are left out of this interval", "err", err)
	}
	events := p.account(samples)
	p.forgetOwners(now)
	if len(events) == 0 {
		return nil
	}
	if err := emit(events); err != nil {
		return fmt.Errorf("emitting %d GPU usage events: %w", len(events), err)
	}
	p.metrics.eventsEmitted.Add(float64(len(events)))
	return nil
}

// account adds one read of every device to its window and returns the
// events of the windows that closed.
func (p *Probe) account(samples []DeviceSample) []schemas.Event {
	var events []schemas.Event
	for _, dw := range p.windows {
		dw.seen = false
	}
	// MIG instances get their GPU's energy delta split by slice count.
	migEnergy := map[string]*int64{}
	children := map[string][]int{}
	for i, s := range samples {
		if s.ParentUUID != "" {
			children[s.ParentUUID] = append(children[s.ParentUUID], i)
		}
	}
	for _, s := range samples {
		p.observe(s)
		dw := p.windows[s.UUID]
		fresh := dw == nil
		if fresh {
			dw = &deviceWindow{win: newWindow(s.Time)}
			p.windows[s.UUID] = dw
		}
		dw.seen, dw.meta = true, s
		var energy *int64
		if s.ParentUUID != "" {
			energy = migEnergy[s.UUID]
		} else if s.EnergyMillijoules != nil {
			cur := *s.EnergyMillijoules
			if dw.haveEnergy {
				d, reset := energyDelta(dw.energy, cur)
				if reset {
					p.metrics.energyResets.Inc()
					p.log.Warn("GPU energy counter went back (driver reload or GPU reset); this stretch reports no energy", "uuid", s.UUID)
				} else {
					energy = &d
					p.metrics.energy.WithLabelValues(s.UUID, s.Name).Add(float64(d) / 1000)
				}
			}
			dw.energy, dw.haveEnergy = cur, true
		}
		if kids := children[s.UUID]; len(kids) > 0 {
			// A GPU in MIG mode is accounted through its instances.
			if energy != nil {
				weights := make([]uint64, len(kids))
				for k, idx := range kids {
					weights[k] = uint64(max(samples[idx].SliceCount, 1))
				}
				for k, part := range splitExact(*energy, weights) {
					migEnergy[samples[kids[k]].UUID] = &part
				}
			}
			dw.win = newWindow(s.Time)
			continue
		}
		if fresh {
			continue // the first read is the baseline
		}
		st := stretch{end: s.Time, procs: s.Processes, energyMJ: energy, memUsed: s.MemoryUsed}
		if s.Util != nil {
			u := s.Util.GPUPercent
			st.utilPercent = &u
		}
		dw.win.add(st)
		if s.Time.Sub(dw.win.start) >= p.cfg.Window {
			events = append(events, p.flush(dw)...)
			dw.win = newWindow(s.Time)
		}
	}
	for uuid, dw := range p.windows {
		if !dw.seen {
			events = append(events, p.flush(dw)...)
			delete(p.windows, uuid)
			delete(p.prevOwners, uuid)
			p.forgetGauges(uuid)
		}
	}
	live := map[uint32]bool{}
	for _, s := range samples {
		for _, pr := range s.Processes {
			live[pr.PID] = true
		}
	}
	p.resolver.Forget(live)
	return events
}

// forgetGauges removes the gauges of a device that was not read (lost, or
// a MIG instance destroyed): its last values would read as current. Its
// counters stay, as counters do.
func (p *Probe) forgetGauges(uuid string) {
	for _, g := range []*prometheus.GaugeVec{p.metrics.util, p.metrics.memUsed, p.metrics.memFree, p.metrics.power, p.metrics.temp} {
		g.DeletePartialMatch(prometheus.Labels{"uuid": uuid})
	}
}

// forgetOwners removes the per-owner counter series no window has added to
// for owner_series_ttl: on a node that runs many short pods or jobs, a
// series for each one ever seen would grow without end. A scraper reads
// the last value for the whole TTL first; a rate over a range that
// reaches back before the removal still counts it.
func (p *Probe) forgetOwners(now time.Time) {
	for k, last := range p.ownerSeries {
		if now.Sub(last) < p.cfg.OwnerSeriesTTL {
			continue
		}
		p.metrics.allocated.DeleteLabelValues(k.uuid, k.kind, k.id)
		p.metrics.busy.DeleteLabelValues(k.uuid, k.kind, k.id)
		delete(p.ownerSeries, k)
	}
}

// observe sets the device gauges from one read.
func (p *Probe) observe(s DeviceSample) {
	l := []string{s.UUID, s.Name}
	if s.Util != nil {
		p.metrics.util.WithLabelValues(l...).Set(float64(s.Util.GPUPercent) / 100)
	}
	if s.MemoryUsed != nil && s.MemoryTotal != nil {
		p.metrics.memUsed.WithLabelValues(l...).Set(float64(*s.MemoryUsed))
		p.metrics.memFree.WithLabelValues(l...).Set(float64(*s.MemoryTotal - min(*s.MemoryUsed, *s.MemoryTotal)))
	}
	if s.PowerMilliwatts != nil {
		p.metrics.power.WithLabelValues(l...).Set(float64(*s.PowerMilliwatts) / 1000)
	}
	if s.TemperatureC != nil {
		p.metrics.temp.WithLabelValues(l...).Set(float64(*s.TemperatureC))
	}
}

// flush turns a device's window into one event per owner.
func (p *Probe) flush(dw *deviceWindow) []schemas.Event {
	w, s := dw.win, dw.meta
	ms := w.last.UnixMilli() - w.start.UnixMilli()
	if ms <= 0 {
		return nil
	}
	model := s.Name
	if model == "" {
		model = "unknown NVIDIA GPU"
	}
	source := "gpuprobe"
	if p.host != "" {
		source += "/" + p.host
	}
	if len(source) > schemas.MaxIDLen {
		source = source[:schemas.MaxIDLen]
	}
	rows := w.rows()
	events := make([]schemas.Event, 0, len(rows))
	for _, u := range rows {
		g := &schemas.GPUUsage{
			GPUModel:         model,
			GPUUUID:          s.UUID,
			MIGProfile:       s.MIGProfile,
			Host:             p.host,
			Container:        u.owner.Container,
			IntervalSeconds:  float64(ms) / 1000,
			AllocatedSeconds: float64(u.allocMs) / 1000,
			BusySeconds:      float64(u.busyMs) / 1000,
			Namespace:        u.owner.Namespace,
			Pod:              u.owner.Pod,
			OwnerKind:        u.owner.Kind,
			OwnerID:          u.owner.ID,
			ParentGPUUUID:    s.ParentUUID,
			Attribution:      u.attribution(),
		}
		if u.memN > 0 {
			g.MemoryBytes = int64(min(u.memSum/u.memN, math.MaxInt64))
			g.MemoryMaxBytes = int64(min(u.memMax, math.MaxInt64))
		}
		if w.energyKnown {
			j := float64(u.energyMJ) / 1000
			g.EnergyJoules = &j
		}
		p.metrics.allocated.WithLabelValues(s.UUID, u.owner.Kind, u.owner.ID).Add(g.AllocatedSeconds)
		p.metrics.busy.WithLabelValues(s.UUID, u.owner.Kind, u.owner.ID).Add(g.BusySeconds)
		p.ownerSeries[ownerSeries{s.UUID, u.owner.Kind, u.owner.ID}] = w.last
		ev := schemas.Event{
			SchemaVersion: schemas.SchemaVersion,
			EventID:       ulid.Make().String(),
			Time:          w.start.UTC(),
			Kind:          schemas.KindGPUUsage,
			Source:        source,
			GPU:           g,
		}
		if d := p.deployments.Match(p.host, &s, u.owner); d != "" {
			ev.Labels = map[string]string{LabelDeployment: d}
		}
		events = append(events, ev)
	}
	return events
}

// Close shuts NVML down; it is safe to call more than once and does nothing
// in disabled mode.
func (p *Probe) Close() error {
	if !p.Enabled() {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	p.metrics.enabled.Set(0)
	if ret := p.lib.Shutdown(); ret != nvml.SUCCESS {
		return fmt.Errorf("shutting down NVML: %v", ret)
	}
	return nil
}
