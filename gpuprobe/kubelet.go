package gpuprobe

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Pod names and namespaces, which cgroups do not carry (they name the pod
// UID only), come from the kubelet's directory of each pod on the node,
// <kubelet_root>/pods/<uid>/ (mount the node's /var/lib/kubelet/pods
// read-only into the probe's pod):
//
//   - etc-hosts: the hosts file the kubelet writes for the pod. Its line
//     for the pod's own address ends with the pod's host name, which is the
//     pod's name unless the pod sets spec.hostname (names longer than 63
//     characters are cut to 63). Pods on the host network get a copy of the
//     node's hosts file instead, without the kubelet's header: no name.
//   - volumes/kubernetes.io~projected/<kube-api-access-…>/namespace: the
//     service account volume holds the pod's namespace. Pods with
//     automountServiceAccountToken: false have none: no namespace.
//
// Both are best effort: a deployment rule that needs a missing one does
// not match, and pod_uid, container, host or gpu rules still can.

// kubeletHostsHeader starts every hosts file the kubelet manages.
const kubeletHostsHeader = "# Kubernetes-managed hosts file"

// dnsLabel is what a pod's host name or a namespace looks like.
var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$`)

// podHostName returns the pod's host name from a kubelet-managed hosts
// file: the last name on the last line before the host aliases that is not
// a loopback or IPv6 multicast entry.
func podHostName(data []byte) (string, bool) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	managed, name := false, ""
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") {
			if strings.HasPrefix(line, kubeletHostsHeader) {
				managed = true
			}
			if strings.Contains(line, "HostAliases") {
				break
			}
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch ip := f[0]; {
		case ip == "127.0.0.1", ip == "::1", strings.HasPrefix(ip, "fe00::"), strings.HasPrefix(ip, "ff0"):
			continue
		}
		name = f[len(f)-1]
	}
	if !managed || !dnsLabel.MatchString(name) {
		return "", false
	}
	return name, true
}

// podMeta reads a pod's name and namespace from the kubelet's directory;
// either is empty when it cannot be read.
func podMeta(kubeletRoot, uid string) (name, namespace string) {
	if kubeletRoot == "" || uid == "" || strings.ContainsAny(uid, `/\.`) {
		return "", ""
	}
	dir := filepath.Join(kubeletRoot, "pods", uid)
	if data, err := readSmall(filepath.Join(dir, "etc-hosts")); err == nil {
		name, _ = podHostName(data)
	}
	vols, _ := filepath.Glob(filepath.Join(dir, "volumes", "kubernetes.io~projected", "*", "namespace"))
	for _, v := range vols {
		data, err := readSmall(v)
		if ns := strings.TrimSpace(string(data)); err == nil && dnsLabel.MatchString(ns) && len(ns) <= 63 {
			namespace = ns
			break
		}
	}
	return name, namespace
}

// readSmall reads at most 64 KiB of a file.
func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 64<<10))
}
