package deploytest

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

const chartDir = "../helm/aivis"

// producerHash is the hash of a random secret that was thrown away: it
// admits no one, which is all a rendering test needs.
const producerHash = "666d64aad3790273845a720977f5fc26aaed5f027ef190a85a40f2ee6b8f3bb7"

// valueSets are the configurations the chart is rendered with.
var valueSets = map[string]string{
	"defaults": `
config:
  ingest:
    producers: [{name: gw, token_sha256: ` + producerHash + `}]
`,
	"minimal": `
config:
  kafka: {brokers: ["kafka-0.kafka:9092", "kafka-1.kafka:9092"], replication: 1}
  ingest: {allow_anonymous: true}
secret: {existingSecret: aivis-credentials}
ingest:
  autoscaling: {enabled: false}
  podDisruptionBudget: {enabled: false}
  replicas: 1
aggregate:
  replicas: 1
  podDisruptionBudget: {enabled: false}
scorer: {enabled: false}
gpuprobe: {enabled: false}
migrate: {enabled: false}
`,
	"large": `
image: {repository: registry.example.com/aivis, tag: v1.2.3, pullPolicy: Always}
imagePullSecrets: [{name: regcred}]
config:
  kafka: {brokers: ["b1:9092", "b2:9092", "b3:9092"], partitions: 24, replication: 3}
  clickhouse: {addr: "ch.db:9000", database: costs}
  ingest:
    producers: [{name: gw, token_sha256: ` + producerHash + `, rate_events_per_second: 5000}]
    max_body_bytes: 10485760
  aggregate: {window: 5m, late_horizon: 48h}
  log_level: debug
budgets:
  - {id: org-monthly, scope: {org: true}, period: monthly, amount_usd: "50000", soft: 80%}
secret: {clickhousePassword: from-a-vault}
ingest:
  autoscaling: {enabled: true, minReplicas: 3, maxReplicas: 30, targetCPUUtilizationPercentage: 60}
aggregate: {replicas: 24, memoryLimitMiB: 3276}
gpuprobe:
  runtimeClassName: nvidia-cdi
  nodeSelector: {gpu: h100}
serviceMonitor: {enabled: true, interval: 15s, labels: {release: prometheus}}
prometheusRule: {enabled: true, labels: {release: prometheus}}
grafanaDashboards: {enabled: true}
nodeSelector: {pool: aivis}
tolerations: [{key: dedicated, operator: Equal, value: aivis, effect: NoSchedule}]
`,
}

// rendered is one object of the chart's output.
type rendered struct {
	file string
	kind string
	name string
	obj  any
}

func render(t *testing.T, valuesYAML string) []rendered {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("loading the chart: %v", err)
	}
	vals, err := chartutil.ReadValues([]byte(valuesYAML))
	if err != nil {
		t.Fatal(err)
	}
	rv, err := chartutil.ToRenderValues(ch, vals, chartutil.ReleaseOptions{Name: "aivis", Namespace: "costs", IsInstall: true, Revision: 1}, nil)
	if err != nil {
		t.Fatalf("computing the values: %v", err)
	}
	files, err := engine.Render(ch, rv)
	if err != nil {
		t.Fatalf("rendering the chart: %v", err)
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []rendered
	for _, name := range names {
		if strings.HasSuffix(name, "NOTES.txt") || strings.HasSuffix(name, ".tpl") {
			continue
		}
		for _, doc := range strings.Split(files[name], "\n---") {
			if strings.TrimSpace(doc) == "" {
				continue
			}
			out = append(out, decodeStrict(t, name, doc))
		}
	}
	return out
}

// decodeStrict decodes one manifest into its Kubernetes API type, failing
// on fields the type does not have and on duplicate keys.
func decodeStrict(t *testing.T, file, doc string) rendered {
	t.Helper()
	var head metav1.TypeMeta
	if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
		t.Fatalf("%s: not YAML: %v\n%s", file, err, doc)
	}
	var obj any
	switch head.APIVersion + "/" + head.Kind {
	case "v1/ConfigMap":
		obj = &corev1.ConfigMap{}
	case "v1/Secret":
		obj = &corev1.Secret{}
	case "v1/Service":
		obj = &corev1.Service{}
	case "apps/v1/Deployment":
		obj = &appsv1.Deployment{}
	case "apps/v1/StatefulSet":
		obj = &appsv1.StatefulSet{}
	case "apps/v1/DaemonSet":
		obj = &appsv1.DaemonSet{}
	case "batch/v1/Job":
		obj = &batchv1.Job{}
	case "autoscaling/v2/HorizontalPodAutoscaler":
		obj = &autoscalingv2.HorizontalPodAutoscaler{}
	case "policy/v1/PodDisruptionBudget":
		obj = &policyv1.PodDisruptionBudget{}
	case "monitoring.coreos.com/v1/ServiceMonitor":
		obj = &monitoringv1.ServiceMonitor{}
	case "monitoring.coreos.com/v1/PrometheusRule":
		obj = &monitoringv1.PrometheusRule{}
	default:
		t.Fatalf("%s: no API type known for %s %s", file, head.APIVersion, head.Kind)
	}
	if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
		t.Fatalf("%s: %s does not decode strictly: %v\n%s", file, head.Kind, err, doc)
	}
	m := obj.(metav1.ObjectMetaAccessor).GetObjectMeta()
	return rendered{file: file, kind: head.Kind, name: m.GetName(), obj: obj}
}

// TestChartRendersValidObjects renders the chart for each value set and
// checks what Kubernetes would check and what aivis needs: selectors that
// match their pods, references to objects that exist, probes on declared
// ports, and a configuration every container's aivis accepts.
func TestChartRendersValidObjects(t *testing.T) {
	for name, values := range valueSets {
		t.Run(name, func(t *testing.T) {
			objs := render(t, values)
			byKind := map[string]map[string]rendered{}
			for _, o := range objs {
				if byKind[o.kind] == nil {
					byKind[o.kind] = map[string]rendered{}
				}
				if _, dup := byKind[o.kind][o.name]; dup {
					t.Errorf("two %s objects named %s", o.kind, o.name)
				}
				byKind[o.kind][o.name] = o
			}
			for _, o := range objs {
				if len(o.name) > 63 {
					t.Errorf("%s %s: name longer than 63 characters", o.kind, o.name)
				}
				switch obj := o.obj.(type) {
				case *appsv1.Deployment:
					checkPods(t, o, obj.Spec.Selector, obj.Spec.Template, byKind, name)
				case *appsv1.StatefulSet:
					checkPods(t, o, obj.Spec.Selector, obj.Spec.Template, byKind, name)
					if _, ok := byKind["Service"][obj.Spec.ServiceName]; !ok {
						t.Errorf("StatefulSet %s: serviceName %s is no rendered Service", o.name, obj.Spec.ServiceName)
					}
				case *appsv1.DaemonSet:
					checkPods(t, o, obj.Spec.Selector, obj.Spec.Template, byKind, name)
				case *batchv1.Job:
					checkPods(t, o, nil, obj.Spec.Template, byKind, name)
				case *corev1.Service:
					if !selectsSome(obj.Spec.Selector, objs) {
						t.Errorf("Service %s selects no pod of the chart: %v", o.name, obj.Spec.Selector)
					}
				case *autoscalingv2.HorizontalPodAutoscaler:
					if _, ok := byKind["Deployment"][obj.Spec.ScaleTargetRef.Name]; !ok {
						t.Errorf("HPA %s scales %s, which is not rendered", o.name, obj.Spec.ScaleTargetRef.Name)
					}
				case *policyv1.PodDisruptionBudget:
					if !selectsSome(obj.Spec.Selector.MatchLabels, objs) {
						t.Errorf("PDB %s selects no pod of the chart", o.name)
					}
				case *monitoringv1.ServiceMonitor:
					n := 0
					for _, s := range byKind["Service"] {
						if labels.SelectorFromSet(obj.Spec.Selector.MatchLabels).Matches(labels.Set(s.obj.(*corev1.Service).Labels)) {
							n++
						}
					}
					if n == 0 {
						t.Errorf("ServiceMonitor %s selects no Service", o.name)
					}
				}
			}
		})
	}
}

// TestChartLayout pins down what the production layout needs of the
// default rendering.
func TestChartLayout(t *testing.T) {
	objs := render(t, valueSets["defaults"])
	find := func(kind, name string) any {
		for _, o := range objs {
			if o.kind == kind && o.name == name {
				return o.obj
			}
		}
		t.Fatalf("no %s %s rendered", kind, name)
		return nil
	}
	ds := find("DaemonSet", "aivis-gpuprobe").(*appsv1.DaemonSet)
	if !ds.Spec.Template.Spec.HostPID || ds.Spec.Template.Spec.RuntimeClassName == nil || *ds.Spec.Template.Spec.RuntimeClassName != "nvidia" {
		t.Errorf("gpuprobe needs hostPID and the nvidia runtime class: %+v", ds.Spec.Template.Spec)
	}
	sts := find("StatefulSet", "aivis-aggregate").(*appsv1.StatefulSet)
	env := envOf(sts.Spec.Template.Spec.Containers[0])
	if env["AIVIS_AGGREGATE__INSTANCE_ID"] != "$(metadata.name)" {
		t.Errorf("aggregate replicas need their pod name as instance id, env is %v", env)
	}
	enr := find("StatefulSet", "aivis-enrich").(*appsv1.StatefulSet)
	if env := envOf(enr.Spec.Template.Spec.Containers[0]); env["AIVIS_ENRICH__INSTANCE_ID"] != "$(metadata.name)" {
		t.Errorf("enrich replicas need their pod name as instance id, env is %v", env)
	}
	if env["AIVIS_AGGREGATE__DEDUP_MEMORY_MIB"] != "1024" {
		t.Errorf("the aggregators' dedup budget must fit their 2Gi limit (1024 MiB), env is %v", env)
	}
	if env["AIVIS_AGGREGATE__SCORE_ANOMALIES"] != "false" {
		t.Errorf("with the scorer deployed, aggregators must not score too: %v", env)
	}
	job := find("Job", "aivis-migrate").(*batchv1.Job)
	if hook := job.Annotations["helm.sh/hook"]; hook != "pre-install,pre-upgrade" {
		t.Errorf("migrate Job hook = %q", hook)
	}
	if got := job.Spec.Template.Spec.Containers[0].Args[0]; got != "migrate" {
		t.Errorf("migrate Job runs %q", got)
	}
	for _, n := range []string{"aivis-migrate-config", "aivis-migrate-secret"} {
		var ann map[string]string
		switch o := find(map[bool]string{true: "ConfigMap", false: "Secret"}[strings.HasSuffix(n, "config")], n).(type) {
		case *corev1.ConfigMap:
			ann = o.Annotations
		case *corev1.Secret:
			ann = o.Annotations
		}
		if w := ann["helm.sh/hook-weight"]; w != "-10" {
			t.Errorf("%s must be a hook created before the Job, weight %q", n, w)
		}
	}
	find("HorizontalPodAutoscaler", "aivis-ingest")
	find("PodDisruptionBudget", "aivis-ingest")
	if d := find("Deployment", "aivis-scorer").(*appsv1.Deployment); *d.Spec.Replicas != 1 {
		t.Errorf("scorer replicas = %d, want 1", *d.Spec.Replicas)
	}
}

// TestChartShipsRulesAndDashboards: with prometheusRule and
// grafanaDashboards on, the chart installs the alert rules of
// deploy/prometheus and the dashboards of deploy/grafana, unchanged. The
// chart holds copies (Helm reads files inside the chart only): this test
// fails when a copy falls behind.
func TestChartShipsRulesAndDashboards(t *testing.T) {
	objs := render(t, valueSets["large"])
	var rule *monitoringv1.PrometheusRule
	var dashboards *corev1.ConfigMap
	for _, o := range objs {
		switch obj := o.obj.(type) {
		case *monitoringv1.PrometheusRule:
			rule = obj
		case *corev1.ConfigMap:
			if o.name == "aivis-dashboards" {
				dashboards = obj
			}
		}
	}
	if rule == nil || dashboards == nil {
		t.Fatalf("rendered PrometheusRule %v, dashboards ConfigMap %v; want both", rule != nil, dashboards != nil)
	}
	if rule.Labels["release"] != "prometheus" {
		t.Errorf("PrometheusRule labels %v lack prometheusRule.labels", rule.Labels)
	}
	b, err := os.ReadFile("../prometheus/aivis-alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var want monitoringv1.PrometheusRuleSpec
	if err := yaml.UnmarshalStrict(b, &want); err != nil {
		t.Fatalf("deploy/prometheus/aivis-alerts.yaml: %v", err)
	}
	if len(want.Groups) == 0 || !reflect.DeepEqual(rule.Spec, want) {
		t.Errorf("the chart's rules differ from deploy/prometheus/aivis-alerts.yaml: cp deploy/prometheus/aivis-alerts.yaml deploy/helm/aivis/files/")
	}
	if dashboards.Labels["grafana_dashboard"] != "1" {
		t.Errorf("dashboards ConfigMap labels %v lack the sidecar's grafana_dashboard: \"1\"", dashboards.Labels)
	}
	files, err := filepath.Glob("../grafana/*.json")
	if err != nil || len(files) < 2 {
		t.Fatalf("deploy/grafana holds %v (%v)", files, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := dashboards.Data[filepath.Base(f)]; !ok || got != string(b) {
			t.Errorf("the chart's %s differs from deploy/grafana's (or is missing): cp deploy/grafana/*.json deploy/helm/aivis/files/dashboards/", filepath.Base(f))
		}
	}
	if len(dashboards.Data) != len(files) {
		t.Errorf("the chart ships %d dashboards, deploy/grafana holds %d", len(dashboards.Data), len(files))
	}
}

// TestChartRefusesIngestWithoutProducers: an ingest that admits no one is
// a mistake to report at install time, not a crash loop.
func TestChartRefusesIngestWithoutProducers(t *testing.T) {
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	rv, err := chartutil.ToRenderValues(ch, map[string]any{}, chartutil.ReleaseOptions{Name: "aivis", Namespace: "costs", IsInstall: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = engine.Render(ch, rv)
	if err == nil || !strings.Contains(err.Error(), "config.ingest.producers is empty") {
		t.Fatalf("rendering without producers: %v, want the producers error", err)
	}
}

// TestChartLints runs Helm's own linter on each value set.
func TestChartLints(t *testing.T) {
	dir, err := filepath.Abs(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	for name, values := range valueSets {
		vals, err := chartutil.ReadValues([]byte(values))
		if err != nil {
			t.Fatal(err)
		}
		l := lint.All(dir, vals, "costs", false)
		for _, m := range l.Messages {
			if m.Severity >= support.WarningSev {
				t.Errorf("%s: helm lint: %s", name, m)
			}
		}
	}
}

func envOf(c corev1.Container) map[string]string {
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.FieldRef != nil:
			env[e.Name] = "$(" + e.ValueFrom.FieldRef.FieldPath + ")"
		case e.ValueFrom.SecretKeyRef != nil:
			env[e.Name] = "secret-" + e.ValueFrom.SecretKeyRef.Key
		}
	}
	return env
}

func selectsSome(sel map[string]string, objs []rendered) bool {
	if len(sel) == 0 {
		return false
	}
	for _, o := range objs {
		var l map[string]string
		switch obj := o.obj.(type) {
		case *appsv1.Deployment:
			l = obj.Spec.Template.Labels
		case *appsv1.StatefulSet:
			l = obj.Spec.Template.Labels
		case *appsv1.DaemonSet:
			l = obj.Spec.Template.Labels
		}
		if l != nil && labels.SelectorFromSet(sel).Matches(labels.Set(l)) {
			return true
		}
	}
	return false
}

// checkPods checks one workload's pod template and validates the aivis
// configuration its containers get.
func checkPods(t *testing.T, o rendered, sel *metav1.LabelSelector, tpl corev1.PodTemplateSpec, byKind map[string]map[string]rendered, set string) {
	t.Helper()
	if sel != nil {
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil || s.Empty() || !s.Matches(labels.Set(tpl.Labels)) {
			t.Errorf("%s %s: selector %v does not match its pod labels %v (%v)", o.kind, o.name, sel, tpl.Labels, err)
		}
	}
	spec := tpl.Spec
	var config string
	files := map[string]string{}
	for _, v := range spec.Volumes {
		if v.ConfigMap == nil {
			continue
		}
		cm, ok := byKind["ConfigMap"][v.ConfigMap.Name]
		if !ok {
			t.Errorf("%s %s: volume %s names ConfigMap %s, which is not rendered", o.kind, o.name, v.Name, v.ConfigMap.Name)
			continue
		}
		files = cm.obj.(*corev1.ConfigMap).Data
		config = files["aivis.yaml"]
	}
	if len(spec.Containers) == 0 {
		t.Fatalf("%s %s: no containers", o.kind, o.name)
	}
	for _, c := range spec.Containers {
		ports := map[string]bool{}
		for _, p := range c.Ports {
			ports[p.Name] = true
		}
		for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe} {
			if p != nil && p.HTTPGet != nil && !ports[p.HTTPGet.Port.String()] {
				t.Errorf("%s %s: probe on port %s, which the container does not declare", o.kind, o.name, p.HTTPGet.Port.String())
			}
		}
		if c.Image == "" || strings.HasSuffix(c.Image, ":") {
			t.Errorf("%s %s: image %q has no tag", o.kind, o.name, c.Image)
		}
		for _, e := range c.Env {
			if r := e.ValueFrom; r != nil && r.SecretKeyRef != nil && r.SecretKeyRef.Name != "aivis-credentials" {
				if _, ok := byKind["Secret"][r.SecretKeyRef.Name]; !ok {
					t.Errorf("%s %s: env %s reads Secret %s, which is not rendered", o.kind, o.name, e.Name, r.SecretKeyRef.Name)
				}
			}
		}
		if len(c.Args) == 0 {
			t.Errorf("%s %s: container %s has no aivis command", o.kind, o.name, c.Name)
			continue
		}
		env := map[string]string{}
		for k, v := range envOf(c) {
			if strings.HasPrefix(k, "AIVIS_") {
				env[k] = strings.NewReplacer("$(metadata.name)", o.name+"-0", "$(spec.nodeName)", "node-1").Replace(v)
			}
		}
		if c.Args[0] != "ingest" && !strings.Contains(config, "token_sha256") && !strings.Contains(config, "allow_anonymous: true") {
			// Stages other than ingest do not validate its producers;
			// config validate does, so admit anyone here.
			env["AIVIS_INGEST__ALLOW_ANONYMOUS"] = "true"
		}
		if !slices.Contains([]string{"ingest", "enrich", "aggregate", "score", "gpuprobe", "migrate"}, c.Args[0]) {
			t.Errorf("%s %s: unknown aivis command %q", o.kind, o.name, c.Args[0])
		}
		validateConfig(t, fmt.Sprintf("%s: %s %s", set, o.kind, o.name), config, files, env)
	}
}
