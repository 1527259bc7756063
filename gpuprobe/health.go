package gpuprobe

import (
	"context"
	"strconv"
	"sync"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// waitMs bounds one event wait, and so how long Run takes to stop.
const waitMs = 1000

// health watches the driver's Xid critical error events for every GPU that
// supports them, in its own goroutine. Each Xid is logged with its GPU and
// counted in aivis_gpu_xid_errors_total; sampling goes on for all GPUs
// (a GPU that then stops answering is reported as lost by the reads).
type health struct{ wg sync.WaitGroup }

func (h *health) wait() { h.wg.Wait() }

// Application Xids (13, 31, 43, 45, 68, 109: a program's fault, not the
// GPU's) are logged at info level; the rest as errors, as
// k8s-device-plugin does.
var applicationXids = map[uint64]bool{13: true, 31: true, 43: true, 45: true, 68: true, 109: true}

func (p *Probe) startHealth(ctx context.Context) *health {
	h := &health{}
	set, ok := p.registerXid()
	if !ok {
		return h
	}
	h.wg.Go(func() {
		defer func() {
			p.mu.RLock()
			defer p.mu.RUnlock()
			if !p.closed {
				set.Free()
			}
		}()
		for ctx.Err() == nil {
			if !p.waitEvent(set) {
				return
			}
		}
	})
	return h
}

// registerXid creates an event set and registers Xid events on every GPU
// that supports them; false when none does.
func (p *Probe) registerXid() (nvml.EventSet, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return nil, false
	}
	set, ret := p.lib.EventSetCreate()
	if ret != nvml.SUCCESS {
		p.log.Warn("Xid errors are not watched: creating an NVML event set", "err", ret)
		return nil, false
	}
	n, ret := p.lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		n = 0
	}
	registered := 0
	for i := range n {
		dev, ret := p.lib.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			continue
		}
		types, ret := dev.GetSupportedEventTypes()
		if ret != nvml.SUCCESS || types&nvml.EventTypeXidCriticalError == 0 {
			continue
		}
		if ret := dev.RegisterEvents(nvml.EventTypeXidCriticalError, set); ret != nvml.SUCCESS {
			p.log.Warn("Xid errors of one GPU are not watched: registering for events", "index", i, "err", ret)
			continue
		}
		registered++
	}
	if registered == 0 {
		set.Free()
		p.log.Info("no GPU supports Xid events; Xid errors are not watched")
		return nil, false
	}
	return set, true
}

// waitEvent waits for one event; false when the set is unusable.
func (p *Probe) waitEvent(set nvml.EventSet) bool {
	p.mu.RLock()
	if p.closed {
		p.mu.RUnlock()
		return false
	}
	e, ret := set.Wait(waitMs)
	p.mu.RUnlock()
	switch ret {
	case nvml.SUCCESS:
	case nvml.ERROR_TIMEOUT:
		return true
	case nvml.ERROR_GPU_IS_LOST:
		// Reported by the reads; keep watching the others.
		return true
	default:
		p.log.Warn("Xid errors are no longer watched: waiting for NVML events", "err", ret)
		return false
	}
	if e.EventType&nvml.EventTypeXidCriticalError == 0 {
		return true
	}
	uuid := "unknown"
	if e.Device != nil {
		p.mu.RLock()
		if u, ret := e.Device.GetUUID(); ret == nvml.SUCCESS {
			uuid = u
		}
		p.mu.RUnlock()
	}
	p.metrics.xid.WithLabelValues(uuid, strconv.FormatUint(e.EventData, 10)).Inc()
	attrs := []any{"uuid", uuid, "xid", e.EventData, "gpu_instance", e.GpuInstanceId, "compute_instance", e.ComputeInstanceId}
	if applicationXids[e.EventData] {
		p.log.Info("GPU Xid error caused by an application", attrs...)
	} else {
		p.log.Error("GPU Xid critical error: the GPU may need a reset; see NVIDIA's Xid catalog", attrs...)
	}
	return true
}
