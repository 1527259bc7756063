package gpuprobe

import (
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/aivis-dev/aivis/internal/yamlstrict"
)

// LabelDeployment is the label a deployment rule sets on gpu.usage events:
// the same label package serving sets on the token events of a serving
// deployment, so that the two join (view self_hosted_cost_by_day).
const LabelDeployment = "deployment"

// MaxDeploymentRules bounds the deployments file.
const MaxDeploymentRules = 1000

// DeploymentsFile is the file gpuprobe.deployments_path names.
type DeploymentsFile struct {
	Deployments []DeploymentRule `yaml:"deployments"`
}

// DeploymentRule names the serving deployment of the GPU time it matches.
type DeploymentRule struct {
	// Deployment is the name serving's targets use for the same
	// deployment.
	Deployment string          `yaml:"deployment"`
	Match      DeploymentMatch `yaml:"match"`
}

// DeploymentMatch says which GPU time belongs to a deployment. Every field
// set must match; at least one must be set. Host and GPU alone match every
// owner of the device, idle time included (a GPU reserved for one
// deployment); the owner fields match only the time of that owner's
// processes. Pod, SystemdUnit and Host are globs (path.Match: *, ?, [..]).
type DeploymentMatch struct {
	// Host is the probe's host name.
	Host string `yaml:"host"`
	// GPU is a GPU's or MIG instance's UUID (GPU-…, MIG-…; a GPU's UUID
	// also matches its MIG instances), or a GPU's index on the host.
	GPU string `yaml:"gpu"`
	// Namespace and Pod are a Kubernetes pod's namespace and name, read
	// from the kubelet's pod directory (gpuprobe.kubelet_root); PodUID its
	// UID, from the cgroup.
	Namespace string `yaml:"namespace"`
	Pod       string `yaml:"pod"`
	PodUID    string `yaml:"pod_uid"`
	// Container is a container id (the full 64 hex digits or a prefix of
	// at least 12), in a pod or outside Kubernetes.
	Container string `yaml:"container"`
	// SystemdUnit is a unit name, e.g. vllm.service.
	SystemdUnit string `yaml:"systemd_unit"`
	// SlurmJob is a Slurm job id.
	SlurmJob string `yaml:"slurm_job"`
	// User is the uid of a user-<uid>.slice.
	User string `yaml:"user"`
}

// Deployments is a parsed, immutable set of deployment rules; first match
// wins. The zero value (and nil) matches nothing.
type Deployments struct {
	rules []DeploymentRule
}

var deploymentNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$`)

// LoadDeployments reads and validates a deployments file.
func LoadDeployments(filePath string) (*Deployments, error) {
	data, err := yamlstrict.ReadFile(filePath)
	if err != nil {
		return nil, fmt.Errorf("reading gpuprobe deployments %q: %w", filePath, err)
	}
	d, err := ParseDeployments(data)
	if err != nil {
		return nil, fmt.Errorf("gpuprobe deployments %q: %w", filePath, err)
	}
	return d, nil
}

// ParseDeployments decodes and validates a deployments document,
// reporting every problem with its key path.
func ParseDeployments(data []byte) (*Deployments, error) {
	var f DeploymentsFile
	if err := yamlstrict.Decode(data, &f); err != nil {
		return nil, fmt.Errorf("decoding deployments YAML: %w", err)
	}
	p := yamlstrict.Problems{}
	if len(f.Deployments) > MaxDeploymentRules {
		p.Add("deployments", "%d rules, at most %d", len(f.Deployments), MaxDeploymentRules)
	}
	for i, r := range f.Deployments {
		at := fmt.Sprintf("deployments[%d]", i)
		if !deploymentNamePattern.MatchString(r.Deployment) {
			p.Add(at+".deployment", "%q must be 1 to 128 letters, digits or _.:/- and start with a letter or digit (the name serving's targets use)", r.Deployment)
		}
		m := r.Match
		if m == (DeploymentMatch{}) {
			p.Add(at+".match", "needs at least one of host, gpu, namespace, pod, pod_uid, container, systemd_unit, slurm_job, user (an empty match would take every GPU)")
			continue
		}
		for key, glob := range map[string]string{"host": m.Host, "pod": m.Pod, "systemd_unit": m.SystemdUnit} {
			if _, err := path.Match(glob, ""); err != nil {
				p.Add(at+".match."+key, "%q is not a valid glob: %v", glob, err)
			}
		}
		if c := m.Container; c != "" && (len(c) < 12 || len(c) > 64 || strings.Trim(c, "0123456789abcdef") != "") {
			p.Add(at+".match.container", "%q must be a container id: 12 to 64 lowercase hex digits", c)
		}
		var kinds []string
		if m.Namespace != "" || m.Pod != "" || m.PodUID != "" {
			kinds = append(kinds, "namespace/pod/pod_uid")
		}
		if m.SystemdUnit != "" {
			kinds = append(kinds, "systemd_unit")
		}
		if m.SlurmJob != "" {
			kinds = append(kinds, "slurm_job")
		}
		if m.User != "" {
			kinds = append(kinds, "user")
		}
		if len(kinds) > 1 {
			p.Add(at+".match", "names owners of different kinds (%s), which no process has at once; write one rule per kind", strings.Join(kinds, ", "))
		}
	}
	if err := p.Err(); err != nil {
		return nil, err
	}
	return &Deployments{rules: f.Deployments}, nil
}

// Len is the number of rules.
func (d *Deployments) Len() int {
	if d == nil {
		return 0
	}
	return len(d.rules)
}

// Match returns the deployment of owner o's time on device s of host, or
// "" when no rule matches.
func (d *Deployments) Match(host string, s *DeviceSample, o Owner) string {
	if d == nil {
		return ""
	}
	for i := range d.rules {
		if d.rules[i].Match.matches(host, s, o) {
			return d.rules[i].Deployment
		}
	}
	return ""
}

func (m *DeploymentMatch) matches(host string, s *DeviceSample, o Owner) bool {
	if m.Host != "" && !glob(m.Host, host) {
		return false
	}
	if m.GPU != "" && m.GPU != s.UUID && m.GPU != s.ParentUUID && m.GPU != strconv.Itoa(s.Index) {
		return false
	}
	if m.Namespace != "" || m.Pod != "" || m.PodUID != "" {
		if o.Kind != OwnerPod ||
			(m.Namespace != "" && m.Namespace != o.Namespace) ||
			(m.Pod != "" && (o.Pod == "" || !glob(m.Pod, o.Pod))) ||
			(m.PodUID != "" && !strings.EqualFold(m.PodUID, o.ID)) {
			return false
		}
	}
	if m.Container != "" {
		id := o.Container
		if o.Kind == OwnerContainer {
			id = o.ID
		}
		if id == "" || !strings.HasPrefix(id, m.Container) {
			return false
		}
	}
	if m.SystemdUnit != "" && (o.Kind != OwnerSystemd || !glob(m.SystemdUnit, o.ID)) {
		return false
	}
	if m.SlurmJob != "" && (o.Kind != OwnerSlurmJob || m.SlurmJob != o.ID) {
		return false
	}
	if m.User != "" && (o.Kind != OwnerUser || m.User != o.ID) {
		return false
	}
	return true
}

func glob(pattern, name string) bool {
	ok, err := path.Match(pattern, name)
	return ok && err == nil
}
