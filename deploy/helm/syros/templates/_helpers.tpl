{{/* Names and labels shared by every object of the chart. */}}
{{- define "syros.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "syros.fullname" -}}
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

{{- define "syros.selectorLabels" -}}
app.kubernetes.io/name: {{ include "syros.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "syros.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "syros.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "syros.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "syros.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "syros.secretName" -}}
{{- default (include "syros.fullname" .) .Values.existingSecret }}
{{- end }}

{{/* Refuses values that would deploy a broken or open service. */}}
{{- define "syros.validate" -}}
{{- if not .Values.existingSecret }}
{{- if and (not .Values.secrets.jwtSecret) (not .Values.auth.allowUnauthenticated) }}
{{- fail "set secrets.jwtSecret (or existingSecret): syros binds all interfaces and refuses to without authentication; auth.allowUnauthenticated=true serves without it (trusted networks only)" }}
{{- end }}
{{- if and .Values.secrets.jwtSecret (lt (len .Values.secrets.jwtSecret) 16) }}
{{- fail "secrets.jwtSecret must be at least 16 characters" }}
{{- end }}
{{- if and (gt (int .Values.replicaCount) 1) (or (not .Values.secrets.databaseUrl) (not .Values.secrets.redisUrl)) }}
{{- fail "replicaCount > 1 needs shared storage: set secrets.redisUrl and secrets.databaseUrl (or existingSecret), or replicaCount=1 for the embedded store" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The host names the Service is reached under (ALLOWED_HOSTS). */}}
{{- define "syros.allowedHosts" -}}
{{- $name := include "syros.fullname" . }}
{{- $ns := .Release.Namespace }}
{{- $hosts := list $name (printf "%s.%s" $name $ns) (printf "%s.%s.svc" $name $ns) (printf "%s.%s.svc.cluster.local" $name $ns) }}
{{- concat $hosts .Values.allowedHosts | toJson }}
{{- end }}
