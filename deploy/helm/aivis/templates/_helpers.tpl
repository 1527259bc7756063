{{/* The release's name prefix for every object, at most 63 characters. */}}
{{- define "aivis.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "aivis.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "ingest"). */}}
{{- define "aivis.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "aivis.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "aivis.secretName" -}}
{{ .Values.secret.existingSecret | default (printf "%s-secret" (include "aivis.fullname" .)) }}
{{- end -}}

{{/* aivis.yaml: the user's config with the listen addresses pods need. */}}
{{- define "aivis.config" -}}
{{- $in := .Values.config.ingest | default dict -}}
{{- if and (empty $in.producers) (not $in.allow_anonymous) -}}
{{- fail "config.ingest.producers is empty, so ingest would accept no one: list each producer's token_sha256 (`aivis token` prints one), or set config.ingest.allow_anonymous" -}}
{{- end -}}
{{- $fixed := dict "metrics_addr" (printf "0.0.0.0:%v" .Values.metricsPort) "ingest" (dict "listen_addr" (printf "0.0.0.0:%v" .Values.ingest.port)) -}}
{{- if .Values.budgets }}
{{- $_ := set $fixed "budget" (dict "path" "/etc/aivis/budgets.yaml") -}}
{{- end }}
{{- toYaml (mustMergeOverwrite (deepCopy .Values.config) $fixed) -}}
{{- end -}}

{{/*
One aivis container: (dict "root" $ "command" "ingest" "resources" ... "env" (list ...) "ports" (list ...)).
*/}}
{{- define "aivis.container" -}}
{{- $root := .root -}}
- name: {{ .name | default .command }}
  image: {{ include "aivis.image" $root }}
  imagePullPolicy: {{ $root.Values.image.pullPolicy }}
  args: [{{ .command | quote }}, "--config", "/etc/aivis/aivis.yaml"]
  env:
    - name: AIVIS_CLICKHOUSE__PASSWORD
      valueFrom:
        secretKeyRef:
          name: {{ include "aivis.secretName" $root }}
          key: clickhouse-password
          optional: true
    {{- with .env }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    - name: metrics
      containerPort: {{ $root.Values.metricsPort }}
      protocol: TCP
    {{- with .ports }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  livenessProbe:
    httpGet: {path: /healthz, port: metrics}
    periodSeconds: 10
    failureThreshold: 6
  readinessProbe:
    httpGet: {path: /readyz, port: metrics}
    periodSeconds: 5
    failureThreshold: 3
  resources:
    {{- toYaml .resources | nindent 4 }}
  securityContext:
    {{- toYaml (.securityContext | default $root.Values.securityContext) | nindent 4 }}
  volumeMounts:
    - name: config
      mountPath: /etc/aivis
      readOnly: true
{{- end -}}

{{/* The pod-level fields every stage shares. */}}
{{- define "aivis.podCommon" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumes:
  - name: config
    configMap:
      name: {{ include "aivis.fullname" . }}-config
{{- end -}}

{{- define "aivis.podAnnotations" -}}
checksum/config: {{ include "aivis.configData" . | sha256sum }}
{{- end -}}

{{/* The Service that exposes a component's /metrics: (dict "root" $ "component" "enrich" "headless" false). */}}
{{- define "aivis.metricsService" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "aivis.fullname" .root }}-{{ .component }}
  labels:
    {{- include "aivis.labels" .root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
    aivis.dev/metrics: "true"
spec:
  {{- if .headless }}
  clusterIP: None
  {{- end }}
  selector:
    {{- include "aivis.selector" . | nindent 4 }}
  ports:
    - name: metrics
      port: {{ .root.Values.metricsPort }}
      targetPort: metrics
      protocol: TCP
{{- end -}}

{{/* The files of the configuration ConfigMaps. */}}
{{- define "aivis.configData" -}}
aivis.yaml: |
  {{- include "aivis.config" . | nindent 2 }}
{{- with .Values.budgets }}
budgets.yaml: |
  {{- toYaml (dict "budgets" .) | nindent 2 }}
{{- end }}
{{- end -}}
