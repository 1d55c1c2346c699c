{{/* Names, labels and the mode switches shared by every template. */}}

{{- define "modelpilot.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Namespaced object names: "<release>-modelpilot" (or the release name when it already has it). */}}
{{- define "modelpilot.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Names of the RBAC objects. ClusterRoles and ClusterRoleBindings are cluster-scoped, and the Roles
of the namespaced mode live in namespaces other releases may also watch: the name carries the
release name and the release namespace, so two installs never collide.
*/}}
{{- define "modelpilot.rbacName" -}}
{{- printf "%s-%s" (include "modelpilot.fullname" .) .Release.Namespace -}}
{{- end -}}

{{- define "modelpilot.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "modelpilot.selectorLabels" -}}
app.kubernetes.io/name: {{ include "modelpilot.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "modelpilot.labels" -}}
helm.sh/chart: {{ include "modelpilot.chart" . }}
{{ include "modelpilot.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: modelpilot
{{- end -}}

{{/* The activator's Deployment and Service: "<fullname>-activator", at most 63 characters. */}}
{{- define "modelpilot.activatorName" -}}
{{- printf "%s-activator" (include "modelpilot.fullname" . | trunc 53 | trimSuffix "-") -}}
{{- end -}}

{{- define "modelpilot.activatorSelectorLabels" -}}
app.kubernetes.io/name: {{ include "modelpilot.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: activator
{{- end -}}

{{- define "modelpilot.activatorLabels" -}}
helm.sh/chart: {{ include "modelpilot.chart" . }}
{{ include "modelpilot.activatorSelectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: modelpilot
{{- end -}}

{{/* The activator's proxy behind its Service: MODELPILOT_ACTIVATOR_PORT of the operator. */}}
{{- define "modelpilot.activatorServicePort" -}}80{{- end -}}

{{- define "modelpilot.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "modelpilot.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name must name an existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "modelpilot.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* "true" in namespaced mode (watchNamespaces set), "" in cluster-wide mode. */}}
{{- define "modelpilot.namespaced" -}}
{{- if .Values.watchNamespaces -}}
{{- if .Values.namespacePatterns -}}
{{- fail "watchNamespaces (namespaced mode) and namespacePatterns (cluster-wide mode) cannot be combined: choose one" -}}
{{- end -}}
true
{{- end -}}
{{- end -}}

{{/* MODELPILOT_NAMESPACES: the watched namespaces or patterns; empty watches every namespace. */}}
{{- define "modelpilot.watchedNamespaces" -}}
{{- if include "modelpilot.namespaced" . -}}
{{- join "," .Values.watchNamespaces -}}
{{- else -}}
{{- join "," .Values.namespacePatterns -}}
{{- end -}}
{{- end -}}

{{/* True when the prometheus-operator CRDs are served (ServiceMonitor, PodMonitor). */}}
{{- define "modelpilot.hasMonitoring" -}}
{{- if .Capabilities.APIVersions.Has "monitoring.coreos.com/v1" -}}true{{- end -}}
{{- end -}}
