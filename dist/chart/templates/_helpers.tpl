{{/*
Names and labels of the chart's objects. Written by hand; make chart
generates the other templates from config/ and refers to these.
*/}}

{{/* The chart's name, as a DNS label. */}}
{{- define "kubemdm.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The release's prefix for object names: the release name alone when it
already holds the chart's ("kubemdm", "kubemdm-prod"), else both.
*/}}
{{- define "kubemdm.fullname" -}}
{{- $name := include "kubemdm.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/*
An object's name: the release's prefix and the object's suffix
(controller-manager, webhook-service), within 63 characters; the suffix
is kept whole and the prefix shortened.
Usage: include "kubemdm.resourceName" (dict "suffix" "gateway" "context" $)
*/}}
{{- define "kubemdm.resourceName" -}}
{{- $prefix := include "kubemdm.fullname" .context }}
{{- $room := sub 62 (len .suffix) | int }}
{{- printf "%s-%s" ($prefix | trunc $room | trimSuffix "-") .suffix }}
{{- end }}

{{/*
Labels Helm's conventions add to every object; app.kubernetes.io/name
and part-of come from config/ with the objects.
*/}}
{{- define "kubemdm.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Chart.AppVersion }}
app.kubernetes.io/version: {{ . | quote }}
{{- end }}
{{- end }}
