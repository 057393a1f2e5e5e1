{{/*
Naming, labels and image references shared by every template.
*/}}

{{- define "gatehouse.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* <release>-gatehouse, or <release> when it already contains the chart name. */}}
{{- define "gatehouse.fullname" -}}
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

{{/* Name of the operator's Deployment, Service, ClusterRole, ... */}}
{{- define "gatehouse.operator.fullname" -}}
{{- printf "%s-operator" (include "gatehouse.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "gatehouse.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "gatehouse.operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "gatehouse.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "gatehouse.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: gatehouse
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "gatehouse.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gatehouse.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "gatehouse.operator.labels" -}}
{{ include "gatehouse.labels" . }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "gatehouse.operator.selectorLabels" -}}
{{ include "gatehouse.selectorLabels" . }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* image reference: [registry/]repository(@digest | :tag). Call with (dict "root" $ "image" .Values.x.image) */}}
{{- define "gatehouse.image" -}}
{{- $registry := .root.Values.image.registry | trimSuffix "/" -}}
{{- $repo := .image.repository -}}
{{- if $registry -}}{{- $repo = printf "%s/%s" $registry $repo -}}{{- end -}}
{{- if .image.digest -}}
{{- printf "%s@%s" $repo .image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (default .root.Chart.AppVersion .root.Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "gatehouse.operator.image" -}}
{{- include "gatehouse.image" (dict "root" . "image" .Values.operator.image) -}}
{{- end -}}

{{- define "gatehouse.gateway.image" -}}
{{- include "gatehouse.image" (dict "root" . "image" .Values.gateway.image) -}}
{{- end -}}

{{/* The URL gateways dial for config pushes: https unless operator.pushTls.enabled is false. */}}
{{- define "gatehouse.operator.pushUrl" -}}
{{- $scheme := ternary "https" "http" .Values.operator.pushTls.enabled -}}
{{- printf "%s://%s.%s.svc:%v" $scheme (include "gatehouse.operator.fullname" .) .Release.Namespace .Values.operator.pushPort -}}
{{- end -}}

{{/* The Secret with the push endpoint's tls.crt, tls.key and ca.crt. */}}
{{- define "gatehouse.operator.pushTlsSecretName" -}}
{{- if .Values.operator.pushTls.existingSecret -}}
{{- .Values.operator.pushTls.existingSecret -}}
{{- else -}}
{{- printf "%s-push-tls" (include "gatehouse.operator.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Where the operator container mounts that Secret. */}}
{{- define "gatehouse.operator.pushTlsDir" -}}
/etc/gatehouse/push-tls
{{- end -}}

{{/* PodSecurity "restricted" pod- and container-level security contexts. */}}
{{- define "gatehouse.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "gatehouse.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end -}}
