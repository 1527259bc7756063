// Package gpuprobe samples NVIDIA GPUs through NVML (go-nvml) and emits one
// gpu.usage event per device per interval: allocated GPU-seconds, busy
// GPU-seconds from the device's utilization, and memory in use. Process and
// owner attribution come later.
//
// Hosts without the NVIDIA driver are normal: Open then returns a Probe in
// disabled mode that makes no NVML call and emits nothing, with a reason the
// operator can read. go-nvml loads libnvidia-ml.so.1 with dlopen inside Init
// and leaves NVML symbols to lazy binding, so no NVML function may run unless
// Init succeeded, and binaries must not be linked with BIND_NOW: build with
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

	"github.com/aivis-dev/aivis/internal/obs"
	"github.com/aivis-dev/aivis/schemas"
)

// ErrDisabled is returned by Snapshot when NVML is unavailable on this host.
var ErrDisabled = errors.New("gpuprobe is disabled")

// DeviceSample is one reading of one GPU.
type DeviceSample struct {
	Index            int    `json:"index"`
	UUID             string `json:"uuid"`
	Name             string `json:"name"`
	MemoryTotalBytes uint64 `json:"memory_total_bytes"`
	MemoryUsedBytes  uint64 `json:"memory_used_bytes"`
	// Util is nil when the device does not report utilization (MIG-enabled
	// GPUs do not).
	Util *Utilization `json:"utilization,omitempty"`
	Time time.Time    `json:"time"`
}

// Utilization is the share of the driver's last sample period (1/6 s to 1 s)
// in which a kernel ran (GPU) or memory was read or written (Memory).
type Utilization struct {
	GPUPercent    uint32 `json:"gpu_percent"`
	MemoryPercent uint32 `json:"memory_percent"`
}

// Probe reads GPUs through one NVML instance.
type Probe struct {
	lib nvml.Interface
	log *slog.Logger
	// disabled is the reason NVML is unavailable; empty when enabled.
	disabled string
	host     string
	now      func() time.Time
	metrics  *metrics

	// mu keeps Close from unloading the library while a read is in flight:
	// a call into an unloaded library crashes the process.
	mu     sync.RWMutex
	closed bool
}

// metrics are gpuprobe's families.
type metrics struct {
	enabled       prometheus.Gauge
	devices       prometheus.Gauge
	sampleErrors  prometheus.Counter
	eventsEmitted prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	return &metrics{
		enabled: obs.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "aivis_gpuprobe_enabled",
			Help: "1 when NVML initialised and GPUs are sampled, 0 in disabled mode.",
		})),
		devices: obs.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "aivis_gpuprobe_devices",
			Help: "GPUs read successfully in the last sample.",
		})),
		sampleErrors: obs.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aivis_gpuprobe_sample_errors_total",
			Help: "GPU reads that failed; the affected device is left out of that interval.",
		})),
		eventsEmitted: obs.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aivis_gpuprobe_events_total",
			Help: "gpu.usage events handed to the emitter.",
		})),
	}
}

// OpenSystem opens the host's NVML library (libnvidia-ml.so.1); see Open.
func OpenSystem(reg prometheus.Registerer, log *slog.Logger) (*Probe, error) {
	lib, reason := newLibrary()
	if lib == nil {
		p := newProbe(nil, reg, log)
		p.disabled = reason
		return p, nil
	}
	return Open(lib, reg, log)
}

// newLibrary builds the NVML binding; go-nvml does not load anything here,
// but a panic must not take the agent down.
func newLibrary() (lib nvml.Interface, reason string) {
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
func Open(lib nvml.Interface, reg prometheus.Registerer, log *slog.Logger) (*Probe, error) {
	p := newProbe(lib, reg, log)
	if lib == nil {
		p.disabled = "no NVML library was given; gpuprobe runs disabled and emits no GPU usage"
		return p, nil
	}
	ret, panicked := initLibrary(lib)
	switch {
	case panicked != nil:
		p.disabled = fmt.Sprintf("NVML could not be loaded (%v); gpuprobe runs disabled and emits no GPU usage", panicked)
	case ret == nvml.SUCCESS:
		p.metrics.enabled.Set(1)
		return p, nil
	case ret == nvml.ERROR_LIBRARY_NOT_FOUND:
		p.disabled = "no NVIDIA driver: libnvidia-ml.so.1 not found; gpuprobe runs disabled and emits no GPU usage"
	case ret == nvml.ERROR_DRIVER_NOT_LOADED:
		p.disabled = "NVIDIA driver not loaded (libnvidia-ml.so.1 is present but the kernel module is not); gpuprobe runs disabled and emits no GPU usage"
	case ret == nvml.ERROR_NO_PERMISSION:
		return nil, fmt.Errorf("initialising NVML: %v; run gpuprobe with access to /dev/nvidia* (root, or the device's group)", ret)
	case ret == nvml.ERROR_LIB_RM_VERSION_MISMATCH:
		return nil, fmt.Errorf("initialising NVML: %v; the driver library and kernel module differ, usually after a driver upgrade: reboot or reload the nvidia module", ret)
	default:
		return nil, fmt.Errorf("initialising NVML: %v (code %d); check that nvidia-smi works on this host", ret, int32(ret))
	}
	p.metrics.enabled.Set(0)
	return p, nil
}

func newProbe(lib nvml.Interface, reg prometheus.Registerer, log *slog.Logger) *Probe {
	if log == nil {
		log = slog.Default()
	}
	host, _ := os.Hostname()
	return &Probe{lib: lib, log: log, host: host, now: time.Now, metrics: newMetrics(reg)}
}

// initLibrary calls Init, turning a panic into a value.
func initLibrary(lib nvml.Interface) (ret nvml.Return, panicked any) {
	defer func() {
		if r := recover(); r != nil {
			panicked = r
		}
	}()
	return lib.Init(), nil
}

// Enabled reports whether NVML initialised.
func (p *Probe) Enabled() bool { return p.disabled == "" }

// DisabledReason says why the probe is disabled; empty when enabled.
func (p *Probe) DisabledReason() string { return p.disabled }

// Snapshot reads every GPU. A device that cannot be read is left out and
// its error joined into the returned error, next to the devices that could.
func (p *Probe) Snapshot() ([]DeviceSample, error) {
	if p.disabled != "" {
		return nil, fmt.Errorf("%w: %s", ErrDisabled, p.disabled)
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
		s, err := p.sample(i)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		samples = append(samples, s)
	}
	return samples, errors.Join(errs...)
}

func (p *Probe) sample(i int) (DeviceSample, error) {
	s := DeviceSample{Index: i, Time: p.now()}
	dev, ret := p.lib.DeviceGetHandleByIndex(i)
	if ret != nvml.SUCCESS {
		return s, fmt.Errorf("opening GPU %d: %v", i, ret)
	}
	if s.UUID, ret = dev.GetUUID(); ret != nvml.SUCCESS {
		return s, fmt.Errorf("reading the UUID of GPU %d: %v", i, ret)
	}
	if s.Name, ret = dev.GetName(); ret != nvml.SUCCESS {
		return s, fmt.Errorf("reading the name of GPU %d (%s): %v", i, s.UUID, ret)
	}
	// Memory and utilization may be unsupported (MIG, some boards): the
	// device is still allocated and counts.
	switch mem, ret := dev.GetMemoryInfo(); ret {
	case nvml.SUCCESS:
		s.MemoryTotalBytes, s.MemoryUsedBytes = mem.Total, mem.Used
	case nvml.ERROR_NOT_SUPPORTED:
	default:
		return s, fmt.Errorf("reading memory of GPU %d (%s): %v", i, s.UUID, ret)
	}
	switch u, ret := dev.GetUtilizationRates(); ret {
	case nvml.SUCCESS:
		s.Util = &Utilization{GPUPercent: min(u.Gpu, 100), MemoryPercent: min(u.Memory, 100)}
	case nvml.ERROR_NOT_SUPPORTED:
	default:
		return s, fmt.Errorf("reading utilization of GPU %d (%s): %v", i, s.UUID, ret)
	}
	return s, nil
}

// Run samples every interval and emits one gpu.usage event per device,
// covering the time since that device was last read: allocated GPU-seconds
// are the whole interval, busy GPU-seconds the interval times the
// utilization (0 where unreported). An event's time is the start of the
// interval it covers. Unreadable devices are logged and skipped; an emit
// error ends Run. In disabled mode Run logs the reason once and waits for
// ctx. Run returns nil when ctx ends.
func (p *Probe) Run(ctx context.Context, interval time.Duration, emit func([]schemas.Event) error) error {
	if interval <= 0 {
		return fmt.Errorf("running gpuprobe: the sample interval must be positive, got %s", interval)
	}
	if p.disabled != "" {
		p.log.Warn(p.disabled)
		<-ctx.Done()
		return nil
	}
	p.log.Info("gpuprobe sampling GPUs", "interval", interval, "host", p.host)
	start := p.now()
	last := map[string]time.Time{} // device UUID -> end of its last interval
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
		samples, err := p.Snapshot()
		if err != nil {
			p.metrics.sampleErrors.Inc()
			p.log.Warn("reading GPUs; unreadable devices are left out of this interval", "err", err)
		}
		p.metrics.devices.Set(float64(len(samples)))
		events := make([]schemas.Event, 0, len(samples))
		for _, s := range samples {
			from, ok := last[s.UUID]
			// A device seen for the first time, or back after a long gap,
			// covers one interval: the gap is not known to be allocated.
			if !ok || s.Time.Sub(from) > 3*interval {
				from = s.Time.Add(-interval)
				if !ok && from.Before(start) {
					from = start
				}
			}
			last[s.UUID] = s.Time
			if !s.Time.After(from) {
				continue
			}
			events = append(events, p.event(s, from))
		}
		if len(events) == 0 {
			continue
		}
		if err := emit(events); err != nil {
			return fmt.Errorf("emitting %d GPU usage events: %w", len(events), err)
		}
		p.metrics.eventsEmitted.Add(float64(len(events)))
	}
}

// event turns a sample covering [from, s.Time] into a gpu.usage event.
func (p *Probe) event(s DeviceSample, from time.Time) schemas.Event {
	seconds := s.Time.Sub(from).Seconds()
	var busy float64
	if s.Util != nil {
		busy = seconds * float64(s.Util.GPUPercent) / 100
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
	return schemas.Event{
		SchemaVersion: schemas.SchemaVersion,
		EventID:       ulid.Make().String(),
		Time:          from.UTC(),
		Kind:          schemas.KindGPUUsage,
		Source:        source,
		GPU: &schemas.GPUUsage{
			GPUModel:         model,
			GPUUUID:          s.UUID,
			Host:             p.host,
			IntervalSeconds:  seconds,
			AllocatedSeconds: seconds,
			BusySeconds:      busy,
			MemoryBytes:      int64(min(s.MemoryUsedBytes, math.MaxInt64)),
		},
	}
}

// Close shuts NVML down; it is safe to call more than once and does nothing
// in disabled mode.
func (p *Probe) Close() error {
	if p.disabled != "" {
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
