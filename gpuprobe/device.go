package gpuprobe

import (
	"errors"
	"fmt"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// The NVML calls the probe makes on a device, named as in the unsupported
// lists. A call that answers NOT_SUPPORTED once is not made again on that
// device while the probe runs.
const (
	metricUtil        = "utilization"
	metricMemory      = "memory"
	metricPower       = "power"
	metricEnergy      = "energy"
	metricTemperature = "temperature"
	metricProcesses   = "processes"
	metricProcUtil    = "process_utilization"
)

// errLost marks a device that answered GPU_IS_LOST or RESET_REQUIRED.
var errLost = errors.New("GPU is lost")

// DeviceSample is one reading of one GPU or MIG instance. Pointer fields
// are nil when the device does not report them.
type DeviceSample struct {
	Index int    `json:"index"`
	UUID  string `json:"uuid"`
	Name  string `json:"name"`
	// MIG instances: the physical GPU, the instance's profile
	// (e.g. "3g.20gb") and its share of the GPU's slices.
	ParentUUID  string  `json:"parent_uuid,omitempty"`
	MIGProfile  string  `json:"mig_profile,omitempty"`
	SliceCount  uint32  `json:"slice_count,omitempty"`
	MIGEnabled  bool    `json:"mig_enabled,omitempty"`
	MemoryTotal *uint64 `json:"memory_total_bytes"`
	MemoryUsed  *uint64 `json:"memory_used_bytes"`
	// Util is nil when the device does not report utilization (MIG-enabled
	// GPUs and MIG instances do not).
	Util              *Utilization `json:"utilization"`
	PowerMilliwatts   *uint32      `json:"power_milliwatts"`
	EnergyMillijoules *uint64      `json:"energy_millijoules"`
	TemperatureC      *uint32      `json:"temperature_celsius"`
	Processes         []Process    `json:"processes"`
	// ProcessUtilKnown is true when per-process utilization was read (an
	// empty answer then means no process ran a kernel).
	ProcessUtilKnown bool      `json:"process_util_known"`
	Unsupported      []string  `json:"unsupported,omitempty"`
	Time             time.Time `json:"time"`
}

// Utilization is the share of the driver's last sample period (1/6 s to 1 s)
// in which a kernel ran (GPU) or memory was read or written (Memory).
type Utilization struct {
	GPUPercent    uint32 `json:"gpu_percent"`
	MemoryPercent uint32 `json:"memory_percent"`
}

// Process is one compute process on a device.
type Process struct {
	PID uint32 `json:"pid"`
	// UsedMemoryBytes is nil when the driver does not say (WDDM, some MIG
	// setups).
	UsedMemoryBytes *uint64 `json:"used_memory_bytes"`
	// SMUtilSum and SMUtilSamples are the per-process SM utilization
	// samples since the previous read (sum of percents, count).
	SMUtilSum     uint64 `json:"sm_util_sum"`
	SMUtilSamples uint32 `json:"sm_util_samples"`
	Owner         Owner  `json:"owner"`
}

// deviceState is what the probe remembers about one device between reads.
type deviceState struct {
	unsupported map[string]bool
	// lastUtilTS is the newest per-process utilization sample seen (µs),
	// passed to GetProcessUtilization so only newer samples come back.
	lastUtilTS uint64
}

func (s *deviceState) supported(metric string) bool { return !s.unsupported[metric] }

// read calls f unless the metric is known unsupported; NOT_SUPPORTED is
// remembered. It reports whether the value is usable, and errLost or
// another error for a failure that spoils the whole read.
func read[T any](s *deviceState, metric string, f func() (T, nvml.Return)) (T, bool, error) {
	var zero T
	if s.unsupported[metric] {
		return zero, false, nil
	}
	v, ret := f()
	switch ret {
	case nvml.SUCCESS:
		return v, true, nil
	case nvml.ERROR_NOT_SUPPORTED, nvml.ERROR_FUNCTION_NOT_FOUND:
		s.unsupported[metric] = true
		return zero, false, nil
	case nvml.ERROR_GPU_IS_LOST, nvml.ERROR_RESET_REQUIRED:
		return zero, false, fmt.Errorf("reading %s: %w (%v)", metric, errLost, ret)
	default:
		return zero, false, fmt.Errorf("reading %s: %v", metric, ret)
	}
}

// readDevice reads one physical GPU or MIG instance. mig is true for a MIG
// instance handle; migEnabled for a physical GPU in MIG mode, whose
// processes and memory are read per instance instead.
func readDevice(dev nvml.Device, st *deviceState, s *DeviceSample, mig, migEnabled bool) error {
	if mem, ok, err := read(st, metricMemory, dev.GetMemoryInfo); err != nil {
		return err
	} else if ok {
		s.MemoryTotal, s.MemoryUsed = &mem.Total, &mem.Used
	}
	if !mig {
		if !migEnabled {
			u, ok, err := read(st, metricUtil, dev.GetUtilizationRates)
			if err != nil {
				return err
			}
			if ok {
				s.Util = &Utilization{GPUPercent: min(u.Gpu, 100), MemoryPercent: min(u.Memory, 100)}
			}
		}
		if p, ok, err := read(st, metricPower, dev.GetPowerUsage); err != nil {
			return err
		} else if ok {
			s.PowerMilliwatts = &p
		}
		if e, ok, err := read(st, metricEnergy, dev.GetTotalEnergyConsumption); err != nil {
			return err
		} else if ok {
			s.EnergyMillijoules = &e
		}
		temp := func() (uint32, nvml.Return) { return dev.GetTemperature(nvml.TEMPERATURE_GPU) }
		if t, ok, err := read(st, metricTemperature, temp); err != nil {
			return err
		} else if ok {
			s.TemperatureC = &t
		}
	}
	if migEnabled {
		return nil
	}
	procs, ok, err := read(st, metricProcesses, dev.GetComputeRunningProcesses)
	if err != nil {
		return err
	}
	byPID := map[uint32]int{}
	if ok {
		for _, p := range procs {
			if _, dup := byPID[p.Pid]; dup {
				continue
			}
			pr := Process{PID: p.Pid}
			if p.UsedGpuMemory != ^uint64(0) {
				m := p.UsedGpuMemory
				pr.UsedMemoryBytes = &m
			}
			byPID[p.Pid] = len(s.Processes)
			s.Processes = append(s.Processes, pr)
		}
	}
	if mig {
		return nil // per-process utilization is not available on MIG
	}
	// ERROR_NOT_FOUND: no process ran a kernel since lastUtilTS.
	util := func() ([]nvml.ProcessUtilizationSample, nvml.Return) {
		samples, ret := dev.GetProcessUtilization(st.lastUtilTS)
		if ret == nvml.ERROR_NOT_FOUND {
			return nil, nvml.SUCCESS
		}
		return samples, ret
	}
	samples, ok, err := read(st, metricProcUtil, util)
	if err != nil {
		return err
	}
	if !ok {
		return nil
	}
	s.ProcessUtilKnown = true
	for _, u := range samples {
		if u.TimeStamp <= st.lastUtilTS {
			continue
		}
		i, held := byPID[u.Pid]
		if !held {
			// A process that ran and exited between reads: kept so its
			// work is attributed, with no memory.
			i = len(s.Processes)
			byPID[u.Pid] = i
			s.Processes = append(s.Processes, Process{PID: u.Pid})
		}
		s.Processes[i].SMUtilSum += uint64(min(u.SmUtil, 100))
		s.Processes[i].SMUtilSamples++
	}
	for _, u := range samples {
		st.lastUtilTS = max(st.lastUtilTS, u.TimeStamp)
	}
	return nil
}

// unsupportedList lists the metrics a device does not support, in a fixed
// order.
func unsupportedList(st *deviceState) []string {
	var out []string
	for _, m := range []string{metricUtil, metricMemory, metricPower, metricEnergy, metricTemperature, metricProcesses, metricProcUtil} {
		if st.unsupported[m] {
			out = append(out, m)
		}
	}
	return out
}

// migProfile names a MIG instance from its attributes, as nvidia-smi does
// ("3g.20gb"): slices and memory rounded up to whole GB.
func migProfile(a nvml.DeviceAttributes) string {
	return fmt.Sprintf("%dg.%dgb", a.GpuInstanceSliceCount, (a.MemorySizeMB+1023)/1024)
}
