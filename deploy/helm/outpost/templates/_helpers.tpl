{{/* The release's resource name: the release name, or release-chart when they differ. */}}
{{- define "outpost.fullname" -}}
{{- if eq .Release.Name .Chart.Name -}}
{{- .Release.Name | trunc 63 -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* wsproxy for a workspace proxy, coder for a primary (the reference's component label). */}}
{{- define "outpost.component" -}}
{{- if .Values.coder.workspaceProxy -}}wsproxy{{- else -}}coder{{- end -}}
{{- end -}}

{{- define "outpost.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: {{ include "outpost.component" . }}
{{- end -}}

{{- define "outpost.labels" -}}
{{ include "outpost.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* "true" when coder.env sets CODER_PROMETHEUS_ENABLE=true (then the metrics port is exposed). */}}
{{- define "outpost.prometheus" -}}
{{- $on := false -}}
{{- range .Values.coder.env -}}
{{- if and (eq .name "CODER_PROMETHEUS_ENABLE") (eq (toString .value) "true") -}}
{{- $on = true -}}
{{- end -}}
{{- end -}}
{{- if $on -}}true{{- end -}}
{{- end -}}
