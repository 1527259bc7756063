package gpuprobe

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/internal/bus"
	"github.com/aivis-dev/aivis/schemas"
)

func TestPrintSnapshot(t *testing.T) {
	a, b := &gpu{util: 40, mem: 1 << 30}, &gpu{mem: 2 << 30}
	srv, devs := server(t, a, b)
	devs[1].GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) { return nvml.Utilization{}, nvml.ERROR_NOT_SUPPORTED }
	p, _, _ := openProbe(t, srv, time.Minute)
	var out bytes.Buffer
	if err := PrintSnapshot(p, &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want one per GPU:\n%s", len(lines), out.String())
	}
	var s DeviceSample
	if err := json.Unmarshal([]byte(lines[0]), &s); err != nil || s.UUID != devs[0].UUID || s.Util == nil || s.Util.GPUPercent != 40 {
		t.Errorf("first line %s: %+v %v", lines[0], s, err)
	}

	disabled, err := Open(&mock.Interface{InitFunc: func() nvml.Return { return nvml.ERROR_LIBRARY_NOT_FOUND }}, Config{}, nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := PrintSnapshot(disabled, &out); err != nil || !strings.Contains(out.String(), `"enabled":false`) {
		t.Errorf("disabled probe printed %q, %v", out.String(), err)
	}
}

func sampleEvents(t *testing.T) []schemas.Event {
	t.Helper()
	a, b := &gpu{util: 40, procUtilOK: true}, &gpu{util: 90}
	s, _ := server(t, a, b)
	a.procs = []nvml.ProcessInfo{{Pid: 101, UsedGpuMemory: 1 << 30}}
	p, c, _ := openProbe(t, s, 10*time.Second)
	step(t, p, c, 0)
	return step(t, p, c, 10*time.Second)
}

func TestWriteJSONLinesDecode(t *testing.T) {
	evs := sampleEvents(t)
	var out bytes.Buffer
	if err := bus.WriteEvents(&out, evs, "GPU usage events"); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(&out)
	var n int
	for sc.Scan() {
		ev, err := schemas.Decode(sc.Bytes())
		if err != nil {
			t.Fatalf("line %d: %v", n, err)
		}
		if ev.GPU.BusySeconds != evs[n].GPU.BusySeconds || ev.EventID != evs[n].EventID {
			t.Errorf("line %d decodes to %+v", n, ev.GPU)
		}
		n++
	}
	if n != len(evs) {
		t.Errorf("%d lines, want %d", n, len(evs))
	}
}

func TestProduce(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, schemas.TopicRaw))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...),
		kgo.ConsumeTopics(schemas.TopicRaw), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	evs := sampleEvents(t)
	if err := bus.ProduceEvents(ctx, cl, evs, "GPU usage events"); err != nil {
		t.Fatal(err)
	}
	var got int
	for got < len(evs) {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			ev, err := schemas.Decode(r.Value)
			if err != nil || string(r.Key) != ev.EventID || ev.Kind != schemas.KindGPUUsage {
				t.Errorf("record %s: %v", r.Value, err)
			}
			got++
		})
	}
}
