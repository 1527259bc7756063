package loadgen

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/aivis-dev/aivis/gpuprobe"
	"github.com/aivis-dev/aivis/gpuprobe/gpusim"
	"github.com/aivis-dev/aivis/schemas"
	"github.com/aivis-dev/aivis/serving"
)

// GPUDeployment is the serving deployment the simulated GPU host runs.
const GPUDeployment = "llama-3-8b"

// The simulated host, gpu-node-1, has four H100s:
//
//	0, 1: the two replicas of a vLLM deployment (namespace llm, team
//	      search), whose load steps every 20 minutes of event time;
//	2:    a training job (namespace research) sharing its GPU with a
//	      notebook (namespace notebooks, team ml);
//	3:    reserved and idle.
//
// gpuprobe reads it every 10 s of event time, with 1-minute windows, and
// labels the vLLM pods' time with the deployment by rule. Each replica's
// server reports its tokens every 30 s, as aivis serving would from its
// /metrics page. Teams are set from the namespace (what an enrich
// namespaces rule does in production).
const (
	gpuSimHost     = "gpu-node-1"
	gpuSimModel    = "meta-llama/Llama-3.1-8B-Instruct"
	gpuSimInterval = 10 * time.Second
	gpuSimServing  = 30 * time.Second
)

var gpuSimTeams = map[string]string{"llm": "search", "research": "research", "notebooks": "ml"}

// gpuSimSteps is the vLLM replicas' utilization, one step per 20 minutes.
var gpuSimSteps = []uint32{55, 70, 90, 75, 60, 85}

// GPUSim simulates one GPU host and its serving deployment beside the
// generated API traffic. Not safe for concurrent use.
type GPUSim struct {
	dir       string
	host      *gpusim.Host
	probe     *gpuprobe.Probe
	start     time.Time
	nextRead  time.Time
	nextServe time.Time
	targets   []serving.Target
}

// NewGPUSim starts the simulated host at event time start; Close removes
// its files.
func NewGPUSim(start time.Time) (*GPUSim, error) {
	dir, err := os.MkdirTemp("", "aivis-gpusim-")
	if err != nil {
		return nil, fmt.Errorf("creating the simulated GPU host: %w", err)
	}
	s := &GPUSim{dir: dir, start: start, nextRead: start, nextServe: start.Truncate(gpuSimServing).Add(gpuSimServing)}
	if err := s.setUp(); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

func (s *GPUSim) setUp() error {
	h, err := gpusim.New(s.dir, gpuSimHost, s.start, "", "", "", "")
	if err != nil {
		return err
	}
	s.host = h
	pods := []struct {
		pid           uint32
		uid, name, ns string
	}{
		{7101, "5b0e1c2d-1111-4a2b-8c3d-000000000001", "vllm-llama-3-8b-7c9d5f6b4-4xk2p", "llm"},
		{7102, "5b0e1c2d-1111-4a2b-8c3d-000000000002", "vllm-llama-3-8b-7c9d5f6b4-9qzt7", "llm"},
		{7201, "5b0e1c2d-2222-4a2b-8c3d-000000000003", "pretrain-7b-worker-0", "research"},
		{7301, "5b0e1c2d-3333-4a2b-8c3d-000000000004", "jupyter-alice", "notebooks"},
	}
	for i, p := range pods {
		if err := h.AddPod(p.pid, p.uid, p.name, p.ns); err != nil {
			return err
		}
		if i < 2 {
			s.targets = append(s.targets, serving.Target{Deployment: GPUDeployment, Kind: serving.VLLM, Host: gpuSimHost, Namespace: p.ns,
				URL: fmt.Sprintf("http://10.244.0.%d:8000/metrics", 10+i), Labels: map[string]string{"team": gpuSimTeams[p.ns]}})
		}
	}
	h.Set(2, gpusim.Load{UtilPercent: 97, PowerWatts: 660, Processes: []gpusim.Process{
		{PID: 7201, MemoryBytes: 71 << 30, SMPercent: 88}, {PID: 7301, MemoryBytes: 6 << 30, SMPercent: 9}}})
	h.Set(3, gpusim.Load{PowerWatts: 70})
	s.setServing(0)
	rules, err := gpuprobe.ParseDeployments([]byte("deployments:\n  - deployment: " + GPUDeployment + "\n    match: {namespace: llm, pod: \"vllm-llama-3-8b-*\"}\n"))
	if err != nil {
		return err
	}
	cfg := gpuprobe.DefaultConfig()
	cfg.SampleInterval, cfg.Window, cfg.Host = gpuSimInterval, time.Minute, gpuSimHost
	cfg.ProcRoot, cfg.KubeletRoot = h.ProcRoot(), h.KubeletRoot()
	s.probe, err = gpuprobe.Open(h.Server, cfg, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return err
	}
	s.probe.SetDeployments(rules)
	return nil
}

// step is the vLLM replicas' load at event time t.
func (s *GPUSim) step(t time.Time) uint32 {
	i := int(t.Sub(s.start) / (20 * time.Minute))
	return gpuSimSteps[i%len(gpuSimSteps)]
}

func (s *GPUSim) setServing(util uint32) {
	if util == 0 {
		util = gpuSimSteps[0]
	}
	for i, pid := range []uint32{7101, 7102} {
		s.host.Set(i, gpusim.Load{UtilPercent: util, PowerWatts: 100 + 6*util,
			Processes: []gpusim.Process{{PID: pid, MemoryBytes: 68 << 30, SMPercent: util}}})
	}
}

// Until returns the gpu.usage events of the windows that closed and the
// serving events of the intervals that ended up to event time t.
func (s *GPUSim) Until(t time.Time) ([]schemas.Event, error) {
	var out []schemas.Event
	for !s.nextRead.After(t) || !s.nextServe.After(t) {
		if s.nextServe.Before(s.nextRead) {
			out = append(out, s.served(s.nextServe)...)
			s.nextServe = s.nextServe.Add(gpuSimServing)
			continue
		}
		at := s.nextRead
		s.setServing(s.step(at))
		s.host.Advance(at)
		if err := s.probe.ReadAt(at, func(evs []schemas.Event) error {
			for i := range evs {
				if team := gpuSimTeams[evs[i].GPU.Namespace]; team != "" {
					if evs[i].Labels == nil {
						evs[i].Labels = map[string]string{}
					}
					evs[i].Labels["team"] = team
				}
			}
			out = append(out, evs...)
			return nil
		}); err != nil {
			return out, err
		}
		s.nextRead = at.Add(gpuSimInterval)
	}
	return out, nil
}

// served is what each replica's server counted in the interval ending at
// end: at utilization u, 40u prompt and 15u generated tokens and 0.1u
// requests per second.
func (s *GPUSim) served(end time.Time) []schemas.Event {
	start := end.Add(-gpuSimServing)
	if start.Before(s.start) {
		return nil
	}
	u := int64(s.step(start))
	secs := int64(gpuSimServing / time.Second)
	var out []schemas.Event
	for i, t := range s.targets {
		in, gen, req := 40*u*secs+int64(i)*37, 15*u*secs+int64(i)*11, u*secs/10
		out = append(out, serving.Event(t, "self-hosted", serving.Delta{Model: gpuSimModel, Start: start, End: end,
			InputTokens: &in, OutputTokens: &gen, Requests: &req}))
	}
	return out
}

// Close shuts the probe down and removes the host's files.
func (s *GPUSim) Close() error {
	if s.probe != nil {
		_ = s.probe.Close()
	}
	return os.RemoveAll(s.dir)
}
