package gpuprobe

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// Owner kinds, in the order a cgroup path is classified.
const (
	OwnerPod       = "k8s_pod"      // ID: pod UID; Container: the container id when known
	OwnerContainer = "container"    // ID: container id (docker, containerd, cri-o, podman outside Kubernetes)
	OwnerSlurmJob  = "slurm_job"    // ID: job id
	OwnerSystemd   = "systemd_unit" // ID: unit name, e.g. "vllm.service"
	OwnerUser      = "user"         // ID: uid from user-<uid>.slice
	OwnerUnknown   = "unknown"      // the process is gone or its cgroup says nothing
	OwnerIdle      = "idle"         // no process held the device
)

// Owner is who a GPU process works for.
type Owner struct {
	Kind string `json:"kind"`
	ID   string `json:"id"`
	// Container is the container id inside a pod, when the cgroup names it.
	Container string `json:"container,omitempty"`
	// Pod and Namespace are a pod's name and namespace, when the kubelet's
	// pod directory says (see kubelet.go).
	Pod       string `json:"pod,omitempty"`
	Namespace string `json:"namespace,omitempty"`
}

// key identifies the owner in splits and metrics; the container is left
// out so that a pod's containers share one row.
func (o Owner) key() string {
	if o.ID == "" {
		return o.Kind
	}
	return o.Kind + "/" + o.ID
}

var (
	idleOwner    = Owner{Kind: OwnerIdle, ID: OwnerIdle}
	unknownOwner = Owner{Kind: OwnerUnknown}

	// pod<uid> in v1 (/kubepods/burstable/pod1234-…/) and v2 systemd
	// (kubepods-burstable-pod1234_….slice) paths.
	podRe = regexp.MustCompile(`pod([0-9a-fA-F]{8}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{12})`)
	// Container ids: docker-<id>.scope, cri-containerd-<id>.scope,
	// crio-<id>.scope, libpod-<id>.scope, or a bare /<id> segment under a
	// pod or /docker/ (cgroupfs driver).
	ctrScopeRe = regexp.MustCompile(`(?:docker|cri-containerd|crio|libpod)-([0-9a-f]{64})\.scope`)
	ctrBareRe  = regexp.MustCompile(`/([0-9a-f]{64})(?:/|$)`)
	slurmRe    = regexp.MustCompile(`/job_([0-9]+)(?:/|$)`)
	unitRe     = regexp.MustCompile(`/([^/]+\.service)(?:/|$)`)
	userRe     = regexp.MustCompile(`/user-([0-9]+)\.slice`)
)

// ClassifyCgroup names the owner of a cgroup path (one line's path from
// /proc/<pid>/cgroup). The most specific owner wins: a pod over its
// container, a container over the systemd unit that runs it, a Slurm job
// over the user.
func ClassifyCgroup(path string) Owner {
	if m := podRe.FindStringSubmatch(path); m != nil {
		o := Owner{Kind: OwnerPod, ID: strings.ReplaceAll(strings.ToLower(m[1]), "_", "-")}
		o.Container = containerID(path)
		return o
	}
	if id := containerID(path); id != "" {
		return Owner{Kind: OwnerContainer, ID: id}
	}
	if m := slurmRe.FindStringSubmatch(path); m != nil {
		return Owner{Kind: OwnerSlurmJob, ID: m[1]}
	}
	if m := unitRe.FindAllStringSubmatch(path, -1); m != nil {
		// The innermost unit: user@1000.service/app.slice/x.service is x.
		return Owner{Kind: OwnerSystemd, ID: m[len(m)-1][1]}
	}
	if m := userRe.FindStringSubmatch(path); m != nil {
		return Owner{Kind: OwnerUser, ID: m[1]}
	}
	return unknownOwner
}

func containerID(path string) string {
	if m := ctrScopeRe.FindAllStringSubmatch(path, -1); m != nil {
		return m[len(m)-1][1]
	}
	if m := ctrBareRe.FindAllStringSubmatch(path, -1); m != nil {
		return m[len(m)-1][1]
	}
	return ""
}

// ownerFromCgroupFile classifies the contents of /proc/<pid>/cgroup. The
// unified (v2, "0::") line wins when it names an owner; otherwise the
// first v1 line that does.
func ownerFromCgroupFile(data []byte) Owner {
	var v1 []string
	for line := range bytes.Lines(data) {
		parts := strings.SplitN(strings.TrimSpace(string(line)), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			if o := ClassifyCgroup(parts[2]); o.Kind != OwnerUnknown {
				return o
			}
			continue
		}
		v1 = append(v1, parts[2])
	}
	for _, p := range v1 {
		if o := ClassifyCgroup(p); o.Kind != OwnerUnknown {
			return o
		}
	}
	return unknownOwner
}

// Resolver maps host pids to owners through a proc root (/proc, or the
// host's /proc mounted elsewhere when the probe runs in a container: NVML
// reports host pids). Lookups are cached by (pid, start time), so a pid the
// kernel reuses for another process is looked up again.
type Resolver struct {
	root string
	// kubeletRoot is where pod names and namespaces are read ("" skips
	// them).
	kubeletRoot string

	mu    sync.Mutex
	cache map[uint32]cachedOwner
}

type cachedOwner struct {
	start uint64
	owner Owner
}

// NewResolver reads processes under root ("" means /proc).
func NewResolver(root string) *Resolver {
	if root == "" {
		root = "/proc"
	}
	return &Resolver{root: root, cache: map[uint32]cachedOwner{}}
}

// Owner returns pid's owner; a process that is gone or unreadable is
// unknown (and not cached).
func (r *Resolver) Owner(pid uint32) Owner {
	dir := filepath.Join(r.root, strconv.FormatUint(uint64(pid), 10))
	start, ok := startTime(filepath.Join(dir, "stat"))
	if !ok {
		return unknownOwner
	}
	r.mu.Lock()
	c, hit := r.cache[pid]
	r.mu.Unlock()
	if hit && c.start == start {
		return c.owner
	}
	data, err := os.ReadFile(filepath.Join(dir, "cgroup"))
	if err != nil {
		return unknownOwner
	}
	o := ownerFromCgroupFile(data)
	if o.Kind == OwnerPod {
		o.Pod, o.Namespace = podMeta(r.kubeletRoot, o.ID)
	}
	r.mu.Lock()
	r.cache[pid] = cachedOwner{start: start, owner: o}
	r.mu.Unlock()
	return o
}

// Forget drops cached pids not in live, so the cache stays as large as the
// set of GPU processes.
func (r *Resolver) Forget(live map[uint32]bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for pid := range r.cache {
		if !live[pid] {
			delete(r.cache, pid)
		}
	}
}

// startTime reads field 22 (starttime, clock ticks since boot) of
// /proc/<pid>/stat. The command name (field 2) may hold spaces and
// parentheses, so fields are counted from the last ')'.
func startTime(path string) (uint64, bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, false
	}
	fields := strings.Fields(string(data[i+1:]))
	const startField = 22 - 3 // fields after ')' start at field 3
	if len(fields) <= startField {
		return 0, false
	}
	v, err := strconv.ParseUint(fields[startField], 10, 64)
	return v, err == nil
}
