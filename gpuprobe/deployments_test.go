package gpuprobe

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/aivis-dev/aivis/schemas"
)

func TestPodNamesFromKubeletFixtures(t *testing.T) {
	r := NewResolver("testdata/proc")
	r.kubeletRoot = "testdata/kubelet"
	if o := r.Owner(101); o.Pod != "vllm-llama-3-8b-6d5f7c9b8-x2kqp" || o.Namespace != "llm" || o.ID != podA {
		t.Errorf("pod with a kubelet directory: %+v", o)
	}
	// A pod on the host network: its hosts file is the node's, so no name;
	// and no service account volume, so no namespace.
	if o := r.Owner(102); o.Pod != "" || o.Namespace != "" || o.Kind != OwnerPod {
		t.Errorf("pod without a managed hosts file: %+v", o)
	}
	// No kubelet directory for the pod at all.
	if o := r.Owner(103); o.Pod != "" || o.Namespace != "" || o.Kind != OwnerPod {
		t.Errorf("pod without a directory: %+v", o)
	}
}

func TestPodHostName(t *testing.T) {
	for _, c := range []struct {
		name, hosts, want string
	}{
		{"plain", "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n10.1.2.3\tweb-0\n", "web-0"},
		{"subdomain", "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n10.1.2.3\tweb-0.web.ns.svc.cluster.local\tweb-0\n", "web-0"},
		{"dual stack", "# Kubernetes-managed hosts file.\n10.1.2.3\tweb-0\nfd00::3\tweb-0\n", "web-0"},
		{"host aliases after", "# Kubernetes-managed hosts file.\n10.1.2.3\tweb-0\n\n# Entries added by HostAliases.\n10.9.9.9\tfoo bar\n", "web-0"},
		{"not managed", "127.0.0.1 localhost\n10.0.0.5 node-1\n", ""},
		{"no pod line", "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n", ""},
		{"not a name", "# Kubernetes-managed hosts file.\n10.1.2.3\tWeb_0!\n", ""},
	} {
		if got, ok := podHostName([]byte(c.hosts)); got != c.want || ok != (c.want != "") {
			t.Errorf("%s: got %q %v, want %q", c.name, got, ok, c.want)
		}
	}
}

func FuzzPodHostName(f *testing.F) {
	data, err := os.ReadFile("testdata/kubelet/pods/" + podA + "/etc-hosts")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte("# Kubernetes-managed hosts file.\n10.1.2.3\tweb-0.web.ns.svc\tweb-0\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		name, ok := podHostName(data)
		if ok != (name != "") || (ok && !dnsLabel.MatchString(name)) {
			t.Fatalf("%q, %v", name, ok)
		}
	})
}

const deploymentsYAML = `deployments:
  - deployment: llama-3-8b
    match: {namespace: llm, pod: "vllm-llama-3-8b-*"}
  - deployment: ollama
    match: {systemd_unit: ollama.service, host: "gpu-*"}
  - deployment: batch-4242
    match: {slurm_job: "4242"}
  - deployment: reserved-a100
    match: {host: gpu-node-7, gpu: "1"}
  - deployment: mig-box
    match: {gpu: GPU-parent}
  - deployment: sidecar
    match: {container: 0123456789ab}
`

func TestDeploymentRules(t *testing.T) {
	d, err := ParseDeployments([]byte(deploymentsYAML))
	if err != nil {
		t.Fatal(err)
	}
	ctr := strings.Repeat("0123456789abcdef", 4)
	dev0 := &DeviceSample{Index: 0, UUID: "GPU-a"}
	dev1 := &DeviceSample{Index: 1, UUID: "GPU-b"}
	mig := &DeviceSample{Index: 2, UUID: "MIG-x", ParentUUID: "GPU-parent"}
	llama := Owner{Kind: OwnerPod, ID: podA, Container: ctr, Pod: "vllm-llama-3-8b-6d5f7c9b8-x2kqp", Namespace: "llm"}
	for _, c := range []struct {
		name string
		host string
		dev  *DeviceSample
		o    Owner
		want string
	}{
		{"pod by namespace and name glob", "gpu-node-1", dev0, llama, "llama-3-8b"},
		{"same pod name, other namespace", "gpu-node-1", dev0, Owner{Kind: OwnerPod, ID: podA, Pod: llama.Pod, Namespace: "dev"}, ""},
		{"pod name unknown", "gpu-node-1", dev0, Owner{Kind: OwnerPod, ID: podA, Namespace: "llm"}, ""},
		{"unit on a matching host", "gpu-node-1", dev0, Owner{Kind: OwnerSystemd, ID: "ollama.service"}, "ollama"},
		{"unit on another host", "cpu-node-1", dev0, Owner{Kind: OwnerSystemd, ID: "ollama.service"}, ""},
		{"slurm job", "x", dev0, Owner{Kind: OwnerSlurmJob, ID: "4242"}, "batch-4242"},
		{"a reserved GPU's idle time", "gpu-node-7", dev1, idleOwner, "reserved-a100"},
		{"the reserved GPU's index on another host", "gpu-node-8", dev1, idleOwner, ""},
		{"MIG instance by its GPU", "x", mig, unknownOwner, "mig-box"},
		{"container id prefix", "x", dev0, Owner{Kind: OwnerContainer, ID: ctr}, "sidecar"},
		{"container in a pod", "x", dev0, Owner{Kind: OwnerPod, ID: "other", Container: ctr}, "sidecar"},
		{"nothing", "x", dev0, Owner{Kind: OwnerUser, ID: "1000"}, ""},
	} {
		if got := d.Match(c.host, c.dev, c.o); got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
	var none *Deployments
	if none.Match("h", dev0, llama) != "" || none.Len() != 0 {
		t.Error("nil rules matched")
	}
}

func TestDeploymentRulesErrors(t *testing.T) {
	for _, c := range []struct{ name, yaml, want string }{
		{"unknown key", "deployments:\n  - deployment: a\n    match: {pods: x}\n", "pods"},
		{"empty match", "deployments:\n  - deployment: a\n    match: {}\n", "deployments[0].match: needs at least one"},
		{"bad name", "deployments:\n  - deployment: ''\n    match: {host: h}\n", "deployments[0].deployment"},
		{"bad glob", "deployments:\n  - deployment: a\n    match: {pod: '[x'}\n", "deployments[0].match.pod"},
		{"bad container", "deployments:\n  - deployment: a\n    match: {container: xyz}\n", "deployments[0].match.container"},
		{"two kinds", "deployments:\n  - deployment: a\n    match: {pod: x, systemd_unit: y}\n", "different kinds"},
	} {
		_, err := ParseDeployments([]byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error naming %q", c.name, err, c.want)
		}
	}
	path := filepath.Join(t.TempDir(), "d.yaml")
	if err := os.WriteFile(path, []byte("deployments: [{deployment: a, match: {}}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.DeploymentsPath = path
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "gpuprobe.deployments_path") {
		t.Errorf("Validate: %v", err)
	}
}

func FuzzParseDeployments(f *testing.F) {
	f.Add([]byte(deploymentsYAML))
	f.Add([]byte("deployments: [{deployment: a, match: {gpu: '0'}}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := ParseDeployments(data)
		if err != nil {
			return
		}
		for _, r := range d.rules {
			if r.Match == (DeploymentMatch{}) {
				t.Fatalf("accepted an empty match: %+v", r)
			}
		}
		_ = d.Match("h", &DeviceSample{UUID: "GPU-a"}, Owner{Kind: OwnerPod, ID: "x", Pod: "p"})
	})
}

// TestEventsCarryTheDeployment: the probe labels the time of the serving
// pod with its deployment, names the pod, and leaves another owner's time
// on the same GPU unlabelled.
func TestEventsCarryTheDeployment(t *testing.T) {
	rules := filepath.Join(t.TempDir(), "deployments.yaml")
	if err := os.WriteFile(rules, []byte(deploymentsYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	a := &gpu{util: 50, procUtilOK: true}
	srv, _ := server(t, a)
	cfg := Config{SampleInterval: 10 * time.Second, Window: 20 * time.Second, ProcRoot: "testdata/proc", RetryInterval: time.Minute,
		KubeletRoot: "testdata/kubelet", DeploymentsPath: rules, Host: "gpu-node-1"}
	p, err := Open(srv, cfg, nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	at := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	a.procs = []nvml.ProcessInfo{{Pid: 101, UsedGpuMemory: 1 << 30}, {Pid: 107, UsedGpuMemory: 1 << 30}}
	var evs []schemas.Event
	for i := range 3 {
		if err := p.ReadAt(at.Add(time.Duration(i)*10*time.Second), func(e []schemas.Event) error { evs = append(evs, e...); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if len(evs) != 2 {
		t.Fatalf("got %d events, want 2 (pod and user)", len(evs))
	}
	for _, e := range evs {
		g := e.GPU
		switch g.OwnerKind {
		case OwnerPod:
			if e.Labels[LabelDeployment] != "llama-3-8b" || g.Pod != "vllm-llama-3-8b-6d5f7c9b8-x2kqp" || g.Namespace != "llm" || g.Host != "gpu-node-1" {
				t.Errorf("pod event: labels %v, gpu %+v", e.Labels, g)
			}
		case OwnerUser:
			if len(e.Labels) != 0 || g.Pod != "" {
				t.Errorf("user event: labels %v, gpu %+v", e.Labels, g)
			}
		default:
			t.Errorf("unexpected owner %s", g.OwnerKind)
		}
		if err := e.Validate(); err != nil {
			t.Error(err)
		}
	}
}

func TestExampleDeploymentsFile(t *testing.T) {
	d, err := LoadDeployments("../deploy/gpu-deployments.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if d.Len() != 3 {
		t.Errorf("%d rules, want the example's 3", d.Len())
	}
}
