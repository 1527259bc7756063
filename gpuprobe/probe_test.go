package gpuprobe

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"go.uber.org/goleak"

	"github.com/aivis-dev/aivis/schemas"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// fakeDevice builds a mock GPU; unset NVML calls panic, so the probe cannot
// make calls the test did not expect.
func fakeDevice(uuid, name string, usedBytes uint64, util uint32, utilRet nvml.Return) *mock.Device {
	return &mock.Device{
		GetUUIDFunc: func() (string, nvml.Return) { return uuid, nvml.SUCCESS },
		GetNameFunc: func() (string, nvml.Return) { return name, nvml.SUCCESS },
		GetMemoryInfoFunc: func() (nvml.Memory, nvml.Return) {
			return nvml.Memory{Total: 80 << 30, Used: usedBytes, Free: 80<<30 - usedBytes}, nvml.SUCCESS
		},
		GetUtilizationRatesFunc: func() (nvml.Utilization, nvml.Return) {
			return nvml.Utilization{Gpu: util, Memory: util / 2}, utilRet
		},
	}
}

func fakeLibrary(devs ...nvml.Device) *mock.Interface {
	return &mock.Interface{
		InitFunc:           func() nvml.Return { return nvml.SUCCESS },
		ShutdownFunc:       func() nvml.Return { return nvml.SUCCESS },
		DeviceGetCountFunc: func() (int, nvml.Return) { return len(devs), nvml.SUCCESS },
		DeviceGetHandleByIndexFunc: func(i int) (nvml.Device, nvml.Return) {
			if i < 0 || i >= len(devs) || devs[i] == nil {
				return nil, nvml.ERROR_INVALID_ARGUMENT
			}
			return devs[i], nvml.SUCCESS
		},
	}
}

func TestSnapshotReadsEveryDevice(t *testing.T) {
	lib := fakeLibrary(
		fakeDevice("GPU-aaaa", "NVIDIA H100 80GB HBM3", 10<<30, 75, nvml.SUCCESS),
		fakeDevice("GPU-bbbb", "NVIDIA H100 80GB HBM3", 0, 0, nvml.ERROR_NOT_SUPPORTED),
	)
	p, err := Open(lib, nil, quiet)
	if err != nil || !p.Enabled() {
		t.Fatalf("Open: %v, enabled %v (%s)", err, p.Enabled(), p.DisabledReason())
	}
	got, err := p.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d samples, want 2", len(got))
	}
	a, b := got[0], got[1]
	if a.UUID != "GPU-aaaa" || a.Name != "NVIDIA H100 80GB HBM3" || a.MemoryUsedBytes != 10<<30 ||
		a.MemoryTotalBytes != 80<<30 || a.Util == nil || a.Util.GPUPercent != 75 || a.Util.MemoryPercent != 37 {
		t.Errorf("first device: %+v (util %+v)", a, a.Util)
	}
	if b.UUID != "GPU-bbbb" || b.Index != 1 || b.Util != nil {
		t.Errorf("second device %+v: want index 1 with utilization unreported", b)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil || len(lib.ShutdownCalls()) != 1 {
		t.Errorf("second Close: %v, Shutdown called %d times, want once", err, len(lib.ShutdownCalls()))
	}
	if _, err := p.Snapshot(); err == nil {
		t.Error("Snapshot after Close: want an error")
	}
}

func TestSnapshotSkipsUnreadableDevices(t *testing.T) {
	broken := &mock.Device{
		GetUUIDFunc: func() (string, nvml.Return) { return "", nvml.ERROR_GPU_IS_LOST },
	}
	lib := fakeLibrary(broken, fakeDevice("GPU-cccc", "NVIDIA A100-SXM4-40GB", 1, 10, nvml.SUCCESS))
	p, err := Open(lib, nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.Snapshot()
	if len(got) != 1 || got[0].UUID != "GPU-cccc" {
		t.Errorf("got %+v, want the readable device", got)
	}
	if err == nil || !strings.Contains(err.Error(), "GPU 0") {
		t.Errorf("got %v, want an error naming GPU 0", err)
	}

	lib.DeviceGetCountFunc = func() (int, nvml.Return) { return 0, nvml.ERROR_UNKNOWN }
	if _, err := p.Snapshot(); err == nil || !strings.Contains(err.Error(), "counting GPUs") {
		t.Errorf("got %v, want a counting error", err)
	}
}

func TestRunEmitsOneEventPerDevicePerInterval(t *testing.T) {
	lib := fakeLibrary(
		fakeDevice("GPU-aaaa", "NVIDIA H100 80GB HBM3", 10<<30, 75, nvml.SUCCESS),
		fakeDevice("GPU-bbbb", "NVIDIA H100 80GB HBM3", 2<<30, 0, nvml.ERROR_NOT_SUPPORTED),
	)
	p, err := Open(lib, nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	// A fake clock: each read moves half an interval on, so that each device
	// is read exactly one interval after its last read.
	t0 := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := t0
	p.now = func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		c := clock
		clock = clock.Add(5 * time.Millisecond) // two devices per interval
		return c
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var batches [][]schemas.Event
	err = p.Run(ctx, 10*time.Millisecond, func(evs []schemas.Event) error {
		batches = append(batches, evs)
		if len(batches) == 3 {
			cancel()
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(batches) != 3 {
		t.Fatalf("got %d batches, want 3", len(batches))
	}
	ids := map[string]bool{}
	for i, evs := range batches {
		if len(evs) != 2 {
			t.Fatalf("batch %d has %d events, want one per device", i, len(evs))
		}
		for _, ev := range evs {
			if err := ev.Validate(); err != nil {
				t.Errorf("batch %d: %v", i, err)
			}
			if ids[ev.EventID] {
				t.Errorf("event id %s repeated", ev.EventID)
			}
			ids[ev.EventID] = true
			g := ev.GPU
			if ev.Kind != schemas.KindGPUUsage || g.GPUModel != "NVIDIA H100 80GB HBM3" || g.Host != p.host {
				t.Errorf("batch %d: event %+v", i, ev)
			}
		}
		a, b := evs[0].GPU, evs[1].GPU
		// The first interval runs from Run's start (t0) to the first read.
		wantA := 0.010
		if i == 0 {
			wantA = 0.005
		}
		if a.GPUUUID != "GPU-aaaa" || !near(a.IntervalSeconds, wantA) || !near(a.AllocatedSeconds, wantA) ||
			!near(a.BusySeconds, wantA*0.75) || a.MemoryBytes != 10<<30 {
			t.Errorf("batch %d: first device %+v", i, a)
		}
		if b.GPUUUID != "GPU-bbbb" || !near(b.IntervalSeconds, 0.010) || b.BusySeconds != 0 || b.MemoryBytes != 2<<30 {
			t.Errorf("batch %d: second device %+v (utilization unreported: busy 0)", i, b)
		}
		if i == 0 {
			continue
		}
		// Intervals of one device follow each other without gap or overlap.
		for k, ev := range evs {
			prev := batches[i-1][k]
			end := prev.Time.Add(time.Duration(math.Round(prev.GPU.IntervalSeconds * 1e9)))
			if !ev.Time.Equal(end) {
				t.Errorf("batch %d device %d starts at %s, want %s where its previous interval ended", i, k, ev.Time, end)
			}
		}
	}
	if !batches[0][0].Time.Equal(t0) {
		t.Errorf("first event time %s, want the start of its interval %s", batches[0][0].Time, t0)
	}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestRunStopsOnEmitError(t *testing.T) {
	p, err := Open(fakeLibrary(fakeDevice("GPU-aaaa", "NVIDIA L4", 1, 1, nvml.SUCCESS)), nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	err = p.Run(context.Background(), time.Millisecond, func([]schemas.Event) error { return errors.New("broker down") })
	if err == nil || !strings.Contains(err.Error(), "broker down") {
		t.Errorf("got %v, want the emit error", err)
	}
	if err := p.Run(context.Background(), 0, nil); err == nil {
		t.Error("zero interval: want an error")
	}
}

func TestDisabledWithoutDriver(t *testing.T) {
	for _, tc := range []struct {
		name string
		init func() nvml.Return
		want string
	}{
		{"library not found", func() nvml.Return { return nvml.ERROR_LIBRARY_NOT_FOUND },
			"no NVIDIA driver: libnvidia-ml.so.1 not found; gpuprobe runs disabled and emits no GPU usage"},
		{"driver not loaded", func() nvml.Return { return nvml.ERROR_DRIVER_NOT_LOADED }, "driver not loaded"},
		{"init panics", func() nvml.Return { panic("symbol lookup") }, "could not be loaded (symbol lookup)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Only Init is set: any other NVML call would panic the test.
			lib := &mock.Interface{InitFunc: tc.init}
			p, err := Open(lib, nil, quiet)
			if err != nil {
				t.Fatalf("Open: %v, want disabled mode", err)
			}
			if p.Enabled() || !strings.Contains(p.DisabledReason(), tc.want) {
				t.Fatalf("enabled %v, reason %q, want disabled with %q", p.Enabled(), p.DisabledReason(), tc.want)
			}
			if _, err := p.Snapshot(); !errors.Is(err, ErrDisabled) {
				t.Errorf("Snapshot: %v, want ErrDisabled", err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			defer cancel()
			err = p.Run(ctx, time.Millisecond, func([]schemas.Event) error {
				t.Error("disabled probe emitted events")
				return nil
			})
			if err != nil {
				t.Errorf("Run: %v", err)
			}
			if err := p.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
}

func TestOpenFailsOnFixableInitErrors(t *testing.T) {
	for ret, want := range map[nvml.Return]string{
		nvml.ERROR_NO_PERMISSION:           "/dev/nvidia",
		nvml.ERROR_LIB_RM_VERSION_MISMATCH: "reboot",
		nvml.ERROR_UNKNOWN:                 "nvidia-smi",
	} {
		_, err := Open(&mock.Interface{InitFunc: func() nvml.Return { return ret }}, nil, quiet)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Init %v: got %v, want an error mentioning %q", ret, err, want)
		}
	}
}

// TestRealLibrary opens the host's NVML. Without a driver (CI) it must come
// up disabled, not panic; on a GPU host it must read every device.
func TestRealLibrary(t *testing.T) {
	p, err := OpenSystem(nil, quiet)
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
		t.Logf("GPU %d %s %s: memory %d/%d bytes, util %+v", s.Index, s.UUID, s.Name, s.MemoryUsedBytes, s.MemoryTotalBytes, s.Util)
	}
}
