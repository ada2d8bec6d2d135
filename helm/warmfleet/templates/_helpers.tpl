{{/* Names ------------------------------------------------------------------------------------ */}}
{{- define "warmfleet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "warmfleet.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* "<fullname>-<component>", for a dict {root, component} */}}
{{- define "warmfleet.componentName" -}}
{{- printf "%s-%s" (include "warmfleet.fullname" .root | trunc 50 | trimSuffix "-") .component }}
{{- end }}

{{- define "warmfleet.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "warmfleet.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "warmfleet.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Labels: dict {root, component} ------------------------------------------------------------ */}}
{{- define "warmfleet.selectorLabels" -}}
app.kubernetes.io/name: {{ include "warmfleet.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "warmfleet.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "warmfleet.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: warmfleet
{{- end }}

{{/* WARMFLEET_EXCHANGE_URLS: values.exchangeUrls, else the simulator when it is deployed */}}
{{- define "warmfleet.exchangeUrls" -}}
{{- $pairs := list }}
{{- if .Values.exchangeUrls }}
{{- range $exchange, $url := .Values.exchangeUrls }}
{{- $pairs = append $pairs (printf "%s=%s" $exchange $url) }}
{{- end }}
{{- else if .Values.sim.enabled }}
{{- $sim := printf "http://%s:%d" (include "warmfleet.componentName" (dict "root" . "component" "sim")) (int .Values.sim.port) }}
{{- $pairs = list (printf "binance=%s" $sim) (printf "okx=%s" $sim) }}
{{- end }}
{{- join "," $pairs }}
{{- end }}

{{/* Environment shared by every warmfleet container. Secrets are referenced, never inlined. */}}
{{- define "warmfleet.env" -}}
- name: WARMFLEET_KAFKA_URL
  value: {{ .Values.kafka.url | quote }}
{{- with .Values.kafka.auth }}
{{- if .existingSecret }}
- name: WARMFLEET_KAFKA_SASL_MECHANISM
  value: {{ .mechanism | quote }}
- name: WARMFLEET_KAFKA_SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .usernameKey }}
- name: WARMFLEET_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .passwordKey }}
{{- end }}
{{- end }}
{{- if .Values.redis.auth.existingSecret }}
- name: WARMFLEET_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redis.auth.existingSecret }}
      key: {{ .Values.redis.auth.passwordKey }}
# $(WARMFLEET_REDIS_PASSWORD) is expanded by the kubelet from the variable above
- name: WARMFLEET_REDIS_URL
  value: {{ .Values.redis.url | replace "://" "://:$(WARMFLEET_REDIS_PASSWORD)@" | quote }}
{{- else }}
- name: WARMFLEET_REDIS_URL
  value: {{ .Values.redis.url | quote }}
{{- end }}
- name: WARMFLEET_MEMCACHED_URL
  value: {{ .Values.memcached.url | quote }}
- name: WARMFLEET_MEMORY_URL
  value: {{ .Values.memoryUrl | quote }}
- name: WARMFLEET_EXCHANGE_URLS
  value: {{ include "warmfleet.exchangeUrls" . | quote }}
- name: WARMFLEET_NAMESPACE
  value: {{ .Values.namespacePrefix | quote }}
- name: WARMFLEET_KEY_PREFIX
  value: {{ .Values.keyPrefix | quote }}
- name: WARMFLEET_LOG_LEVEL
  value: {{ .Values.log.level | quote }}
- name: WARMFLEET_LOG_FORMAT
  value: {{ .Values.log.format | quote }}
- name: WARMFLEET_PHASES
  value: /etc/warmfleet/phases.toml
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Volumes every pod mounts: the phases ConfigMap and writable scratch dirs (root fs is read-only) */}}
{{- define "warmfleet.volumes" -}}
- name: phases
  configMap:
    name: {{ include "warmfleet.componentName" (dict "root" . "component" "phases") }}
- name: tmp
  emptyDir: {}
{{- end }}

{{- define "warmfleet.volumeMounts" -}}
- name: phases
  mountPath: /etc/warmfleet
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- end }}

{{/* Pod spec fields shared by every process */}}
{{- define "warmfleet.podCommon" -}}
serviceAccountName: {{ include "warmfleet.serviceAccountName" . }}
automountServiceAccountToken: {{ .Values.serviceAccount.automountToken }}
terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Pod metadata: dict {root, component} */}}
{{- define "warmfleet.podMetadata" -}}
labels:
  {{- include "warmfleet.selectorLabels" . | nindent 2 }}
  app.kubernetes.io/part-of: warmfleet
  {{- with .root.Values.podLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
annotations:
  checksum/phases: {{ include (print .root.Template.BasePath "/configmap-phases.yaml") .root | sha256sum }}
  {{- with .root.Values.podAnnotations }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}

{{/* Liveness/readiness on the metrics HTTP port: the process answers /metrics while its loop runs */}}
{{- define "warmfleet.metricsProbes" -}}
startupProbe:
  httpGet: {path: /metrics, port: metrics}
  periodSeconds: 5
  failureThreshold: 36
livenessProbe:
  httpGet: {path: /metrics, port: metrics}
  periodSeconds: 15
  timeoutSeconds: 5
  failureThreshold: 4
readinessProbe:
  httpGet: {path: /metrics, port: metrics}
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 3
{{- end }}

{{/* "true" when the KEDA ScaledObject is rendered (it then owns the agents' replica count) */}}
{{- define "warmfleet.kedaActive" -}}
{{- if and .Values.keda.enabled .Values.agents.enabled (.Capabilities.APIVersions.Has "keda.sh/v1alpha1") }}true{{- end }}
{{- end }}
