package gpuprobe

import (
	"errors"
	"fmt"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// Config is the gpuprobe.* section of the aivis configuration.
type Config struct {
	SampleInterval time.Duration `koanf:"sample_interval" help:"how often GPUs are read (NVML utilization covers only its last 1/6 to 1 s, so shorter reads see more of the load)"`
	Window         time.Duration `koanf:"window" help:"length of the interval each gpu.usage event covers; a multiple of sample_interval is best"`
	ProcRoot       string        `koanf:"proc_root" help:"where the host's /proc is mounted, for attributing GPU processes to pods, jobs and units (NVML reports host pids)"`
	RetryInterval  time.Duration `koanf:"retry_interval" help:"how often a probe without an NVIDIA driver tries to load it again"`
	// Host names the host in events and deployment rules; empty: the
	// machine's host name. Set it to the Kubernetes node name when the
	// probe's pod has a host name of its own.
	Host string `koanf:"host" help:"host name written into events and matched by deployment rules (empty: this machine's host name)"`
	// KubeletRoot is where the kubelet keeps its pod directories, for pod
	// names and namespaces (cgroups name pods by UID only).
	KubeletRoot string `koanf:"kubelet_root" help:"the node's kubelet directory (pods/<uid>/ under it), for the names and namespaces of GPU pods (empty: pod UIDs only)"`
	// DeploymentsPath names the rules that label GPU time with the serving
	// deployment it runs, so that self-hosted cost per 1M tokens can be
	// joined; they are a list, so they live in their own file.
	DeploymentsPath string `koanf:"deployments_path" help:"YAML file of rules mapping pods, containers, units, Slurm jobs, hosts or GPUs to serving deployments (label deployment), see docs/gpu.md (empty: none)"`
	// OwnerSeriesTTL bounds the per-owner metric series: pods, containers
	// and Slurm jobs come and go, and a series kept for each one ever seen
	// grows the probe's memory and every scrape without end.
	OwnerSeriesTTL time.Duration `koanf:"owner_series_ttl" help:"how long the per-owner GPU-seconds metric series of an owner that has stopped using a GPU (a finished pod or job) stay exported before they are removed; at least 5m and gpuprobe.window"`
}

// minOwnerSeriesTTL leaves scrapers, which rarely wait more than a minute
// or two, time to read an owner's last value.
const minOwnerSeriesTTL = 5 * time.Minute

// DefaultConfig returns gpuprobe's defaults.
func DefaultConfig() Config {
	return Config{SampleInterval: 10 * time.Second, Window: time.Minute, ProcRoot: "/proc", RetryInterval: 10 * time.Minute, KubeletRoot: "/var/lib/kubelet", OwnerSeriesTTL: time.Hour}
}

// Validate reports every problem at once, with its key path.
func (c Config) Validate() error {
	var errs []error
	if c.SampleInterval < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("gpuprobe.sample_interval: %s must be at least 100ms (NVML calls cost CPU on the GPU host)", c.SampleInterval))
	}
	if c.Window < c.SampleInterval {
		errs = append(errs, fmt.Errorf("gpuprobe.window: %s must be at least gpuprobe.sample_interval %s", c.Window, c.SampleInterval))
	}
	if c.RetryInterval < time.Second {
		errs = append(errs, fmt.Errorf("gpuprobe.retry_interval: %s must be at least 1s", c.RetryInterval))
	}
	if c.OwnerSeriesTTL < minOwnerSeriesTTL || c.OwnerSeriesTTL < c.Window {
		errs = append(errs, fmt.Errorf("gpuprobe.owner_series_ttl: %s must be at least %s and at least gpuprobe.window %s, so that a scrape sees an owner's last GPU-seconds before its series is removed", c.OwnerSeriesTTL, minOwnerSeriesTTL, c.Window))
	}
	if c.ProcRoot == "" {
		errs = append(errs, errors.New("gpuprobe.proc_root: must be set (usually /proc, or the host's /proc mounted into the container)"))
	}
	if c.DeploymentsPath != "" {
		if _, err := LoadDeployments(c.DeploymentsPath); err != nil {
			errs = append(errs, fmt.Errorf("gpuprobe.deployments_path: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Library is the part of NVML the probe uses. nvml.New() satisfies it in
// production and go-nvml's mocks (mock.Interface, dgxa100.New()) in
// tests. Devices are go-nvml's nvml.Device: the probe calls only the
// methods listed in device.go.
type Library interface {
	Init() nvml.Return
	Shutdown() nvml.Return
	DeviceGetCount() (int, nvml.Return)
	DeviceGetHandleByIndex(index int) (nvml.Device, nvml.Return)
	EventSetCreate() (nvml.EventSet, nvml.Return)
}
