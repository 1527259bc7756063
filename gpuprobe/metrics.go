package gpuprobe

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/aivis-dev/aivis/internal/obs"
)

// metrics are gpuprobe's families: the probe's own health, and per GPU the
// core of dcgm-exporter's default set (utilization, memory used and free,
// power, energy, temperature, Xid errors) plus GPU-seconds per owner.
type metrics struct {
	enabled       prometheus.Gauge
	devices       prometheus.Gauge
	lost          prometheus.Gauge
	lostTotal     prometheus.Counter
	sampleErrors  prometheus.Counter
	eventsEmitted prometheus.Counter
	initRetries   prometheus.Counter
	energyResets  prometheus.Counter
	xid           *prometheus.CounterVec

	util      *prometheus.GaugeVec
	memUsed   *prometheus.GaugeVec
	memFree   *prometheus.GaugeVec
	power     *prometheus.GaugeVec
	temp      *prometheus.GaugeVec
	energy    *prometheus.CounterVec
	allocated *prometheus.CounterVec
	busy      *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	dev := []string{"uuid", "model"}
	owner := []string{"uuid", "owner_kind", "owner_id"}
	gauge := func(name, help string, labels []string) *prometheus.GaugeVec {
		return obs.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels))
	}
	counter := func(name, help string, labels []string) *prometheus.CounterVec {
		return obs.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels))
	}
	return &metrics{
		enabled: obs.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "aivis_gpuprobe_enabled",
			Help: "1 when NVML initialised and GPUs are sampled, 0 in disabled mode (no NVIDIA driver; see the log).",
		})),
		devices: obs.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "aivis_gpuprobe_devices",
			Help: "GPUs and MIG instances read successfully in the last sample.",
		})),
		lost: obs.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "aivis_gpuprobe_gpus_lost",
			Help: "GPUs that answer GPU_IS_LOST or RESET_REQUIRED now.",
		})),
		lostTotal: obs.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aivis_gpuprobe_gpu_lost_total",
			Help: "Times a GPU was found lost (GPU_IS_LOST or RESET_REQUIRED).",
		})),
		sampleErrors: obs.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aivis_gpuprobe_sample_errors_total",
			Help: "GPU reads that failed; the affected device is left out of that interval.",
		})),
		eventsEmitted: obs.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aivis_gpuprobe_events_total",
			Help: "gpu.usage events handed to the emitter.",
		})),
		initRetries: obs.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aivis_gpuprobe_init_retries_total",
			Help: "Attempts to load NVML again while disabled.",
		})),
		energyResets: obs.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aivis_gpuprobe_energy_counter_resets_total",
			Help: "Times a GPU's energy counter went back (driver reload, GPU reset); that stretch's energy is unknown.",
		})),
		xid: counter("aivis_gpu_xid_errors_total", "Xid critical errors reported by the driver, by GPU and Xid number.", []string{"uuid", "xid"}),

		util:      gauge("aivis_gpu_utilization_ratio", "Share of the driver's last sample period (1/6 s to 1 s) in which a kernel ran (DCGM_FI_DEV_GPU_UTIL / 100).", dev),
		memUsed:   gauge("aivis_gpu_memory_used_bytes", "GPU memory in use (DCGM_FI_DEV_FB_USED, in bytes).", dev),
		memFree:   gauge("aivis_gpu_memory_free_bytes", "GPU memory free (DCGM_FI_DEV_FB_FREE, in bytes).", dev),
		power:     gauge("aivis_gpu_power_watts", "GPU power draw (DCGM_FI_DEV_POWER_USAGE).", dev),
		temp:      gauge("aivis_gpu_temperature_celsius", "GPU temperature (DCGM_FI_DEV_GPU_TEMP).", dev),
		energy:    counter("aivis_gpu_energy_joules_total", "Energy the GPU used while sampled (deltas of DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION, in joules).", dev),
		allocated: counter("aivis_gpu_owner_allocated_seconds_total", "GPU-seconds allocated to each owner (a device held by its processes; idle when none).", owner),
		busy:      counter("aivis_gpu_owner_busy_seconds_total", "GPU-seconds each owner kept the GPU busy (utilization × time).", owner),
	}
}
