{{/*
Helpers shared by the templates: names, labels, the image, the shutdown arithmetic and the
checks that span several values (values.schema.json checks each value on its own).
*/}}

{{/* Chart name, or nameOverride. */}}
{{- define "fastapi-app.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Object name: fullnameOverride, or <release>-<chart> (just <release> if it already holds the chart name). */}}
{{- define "fastapi-app.fullname" -}}
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

{{/* helm.sh/chart label value. */}}
{{- define "fastapi-app.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object of the app (the helm test pod has its own: it must not match the selector). */}}
{{- define "fastapi-app.labels" -}}
{{ include "fastapi-app.commonLabels" . }}
{{ include "fastapi-app.selectorLabels" . }}
app.kubernetes.io/component: api
{{- end }}

{{/* Labels shared by every object the chart renders. */}}
{{- define "fastapi-app.commonLabels" -}}
helm.sh/chart: {{ include "fastapi-app.chart" . }}
app.kubernetes.io/version: {{ include "fastapi-app.imageTag" . | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the app's pods (never change them on an installed release). */}}
{{- define "fastapi-app.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fastapi-app.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Label a pod may carry to be let in by the NetworkPolicy (the helm test pod has it). */}}
{{- define "fastapi-app.clientLabel" -}}
{{ include "fastapi-app.fullname" . | trunc 56 | trimSuffix "-" }}-client
{{- end }}

{{/* ServiceAccount the pods run as. */}}
{{- define "fastapi-app.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "fastapi-app.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Image tag: image.tag, or the chart's appVersion. */}}
{{- define "fastapi-app.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{/* Image reference: repository:tag, or repository:tag@digest when a digest pins it. */}}
{{- define "fastapi-app.image" -}}
{{- $ref := printf "%s:%s" .Values.image.repository (include "fastapi-app.imageTag" .) }}
{{- if .Values.image.digest }}
{{- $ref = printf "%s@%s" $ref .Values.image.digest }}
{{- end }}
{{- $ref }}
{{- end }}

{{/* imagePullSecrets entries: names, or {name: ...} objects. */}}
{{- define "fastapi-app.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ if kindIs "string" . }}{{ . }}{{ else }}{{ .name }}{{ end }}
  {{- end }}
{{- end }}
{{- end }}

{{/* Name of the Secret holding DATABASE_URL, REDIS_URL, ADMIN_TOKEN and API_TOKENS. */}}
{{- define "fastapi-app.secretName" -}}
{{- default (include "fastapi-app.fullname" .) .Values.secret.existingSecret }}
{{- end }}

{{/* Secret values the chart manages, as YAML: {ENV_NAME: value} for each one set. */}}
{{- define "fastapi-app.secretData" -}}
{{- $s := .Values.secret }}
{{- $data := dict }}
{{- if $s.databaseUrl }}{{ $_ := set $data "DATABASE_URL" $s.databaseUrl }}{{ end }}
{{- if $s.redisUrl }}{{ $_ := set $data "REDIS_URL" $s.redisUrl }}{{ end }}
{{- if $s.adminToken }}{{ $_ := set $data "ADMIN_TOKEN" $s.adminToken }}{{ end }}
{{- if $s.apiTokens }}{{ $_ := set $data "API_TOKENS" $s.apiTokens }}{{ end }}
{{- toYaml $data }}
{{- end }}

{{/* Secret-backed variables as YAML {ENV_NAME: key in the Secret}; empty when there is none. */}}
{{- define "fastapi-app.secretEnv" -}}
{{- $env := dict }}
{{- if .Values.secret.existingSecret }}
{{- $keys := .Values.secret.existingSecretKeys }}
{{- $env = dict "DATABASE_URL" $keys.databaseUrl "REDIS_URL" $keys.redisUrl "ADMIN_TOKEN" $keys.adminToken "API_TOKENS" $keys.apiTokens }}
{{- else }}
{{- range $name, $_ := include "fastapi-app.secretData" . | fromYaml }}
{{- $_ := set $env $name $name }}
{{- end }}
{{- end }}
{{- if $env }}{{ toYaml $env }}{{ end }}
{{- end }}

{{/*
Non-secret environment (the ConfigMap's data), as YAML. GRACE_PERIOD_SECONDS is G: the app
drains for at most G seconds and derives Gunicorn's graceful timeout from it.
*/}}
{{- define "fastapi-app.configData" -}}
{{- $c := .Values.config }}
{{- $sd := .Values.shutdown }}
{{- $data := dict
  "SERVICE_NAME" $c.serviceName
  "LOG_LEVEL" $c.logLevel
  "PORT" (toString (int .Values.containerPort))
  "SLOW_REQUEST_MS" (toString (int $c.slowRequestMs))
  "GRACE_PERIOD_SECONDS" (toString (int $sd.gracePeriodSeconds))
  "SHUTDOWN_DELAY_SECONDS" (toString (int $sd.delaySeconds))
}}
{{- if not (kindIs "invalid" $c.webConcurrency) }}
{{- $_ := set $data "WEB_CONCURRENCY" (toString (int $c.webConcurrency)) }}
{{- end }}
{{- if not (kindIs "invalid" $sd.retryAfterSeconds) }}
{{- $_ := set $data "RETRY_AFTER_SECONDS" (toString (int $sd.retryAfterSeconds)) }}
{{- end }}
{{- if not (kindIs "invalid" $c.forwardedAllowIps) }}
{{- $_ := set $data "FORWARDED_ALLOW_IPS" $c.forwardedAllowIps }}
{{- end }}
{{- $otel := $c.opentelemetry }}
{{- if $otel.serviceName }}{{ $_ := set $data "OTEL_SERVICE_NAME" $otel.serviceName }}{{ end }}
{{- if $otel.exporterOtlpEndpoint }}{{ $_ := set $data "OTEL_EXPORTER_OTLP_ENDPOINT" $otel.exporterOtlpEndpoint }}{{ end }}
{{- if $otel.tracesSampler }}{{ $_ := set $data "OTEL_TRACES_SAMPLER" $otel.tracesSampler }}{{ end }}
{{- if $otel.tracesSamplerArg }}{{ $_ := set $data "OTEL_TRACES_SAMPLER_ARG" $otel.tracesSamplerArg }}{{ end }}
{{- if $otel.resourceAttributes }}{{ $_ := set $data "OTEL_RESOURCE_ATTRIBUTES" $otel.resourceAttributes }}{{ end }}
{{- toYaml $data }}
{{- end }}

{{/*
T, the pod's terminationGracePeriodSeconds. It must cover the whole timeline:
preStop sleep (P) + the app's drain (G) + cleanup and margin (C). An explicit
terminationGracePeriodSeconds may raise it, never lower it (fastapi-app.validateValues
refuses a lower one).
*/}}
{{- define "fastapi-app.terminationGracePeriodSeconds" -}}
{{- $sum := add (int .Values.shutdown.preStopSeconds) (int .Values.shutdown.gracePeriodSeconds) (int .Values.shutdown.cleanupSeconds) }}
{{- $t := .Values.terminationGracePeriodSeconds }}
{{- if kindIs "invalid" $t }}{{ $sum }}{{ else }}{{ int $t }}{{ end }}
{{- end }}

{{/* preStop form for this cluster: sleepAction (Kubernetes >= 1.30) or exec (runs `sleep` in the image). */}}
{{- define "fastapi-app.preStopForm" -}}
{{- $form := .Values.shutdown.preStopAction }}
{{- if eq $form "auto" }}
{{- if semverCompare ">=1.30.0-0" .Capabilities.KubeVersion.Version }}sleepAction{{ else }}exec{{ end }}
{{- else }}
{{- $form }}
{{- end }}
{{- end }}

{{/* The container's lifecycle block: preStop waits P seconds; nothing when P is 0. */}}
{{- define "fastapi-app.lifecycle" -}}
{{- $p := int .Values.shutdown.preStopSeconds }}
{{- if gt $p 0 -}}
lifecycle:
  preStop:
    {{- if eq (include "fastapi-app.preStopForm" .) "sleepAction" }}
    sleep:
      seconds: {{ $p }}
    {{- else }}
    exec:
      command: ["sleep", "{{ $p }}"]
    {{- end }}
{{- end }}
{{- end }}

{{/* Fewest pods the release runs: autoscaling.minReplicas, or replicaCount. */}}
{{- define "fastapi-app.minPods" -}}
{{- if .Values.autoscaling.enabled }}{{ int .Values.autoscaling.minReplicas }}{{ else }}{{ int .Values.replicaCount }}{{ end }}
{{- end }}

{{/* "true" when an integer-or-percentage value (1, "25%") is zero. */}}
{{- define "fastapi-app.isZero" -}}
{{- if kindIs "string" . }}{{ eq (trimSuffix "%" .) "0" }}{{ else }}{{ eq (int .) 0 }}{{ end }}
{{- end }}

{{/*
Checks across values (values.schema.json checks each value on its own). One template per
rule, bitnami's validateValues style: each renders its message, or nothing when the values
are fine. fastapi-app.validateValues collects them and fails ONCE with every message, so a
user sees all problems in one run. Every template that depends on these values includes it.
*/}}
{{- define "fastapi-app.validateValues" -}}
{{- $messages := list -}}
{{- range $rule := list
  "terminationGracePeriod"
  "shutdownDelay"
  "extraEnvNames"
  "existingSecretAndInline"
  "rolloutDeadline"
  "rolloutProgress"
  "autoscalingRange"
  "autoscalingTarget"
  "ingressHosts"
  "podDisruptionBudget"
}}
{{- $messages = append $messages (include (printf "fastapi-app.validateValues.%s" $rule) $) -}}
{{- end -}}
{{- $messages = without $messages "" -}}
{{- if $messages -}}
{{- fail (printf "\nVALUES VALIDATION:\n%s" (join "\n" $messages)) -}}
{{- end -}}
{{- end -}}

{{/* T below P + G + C: the kubelet would SIGKILL the app mid-drain. */}}
{{- define "fastapi-app.validateValues.terminationGracePeriod" -}}
{{- $p := int .Values.shutdown.preStopSeconds }}
{{- $g := int .Values.shutdown.gracePeriodSeconds }}
{{- $c := int .Values.shutdown.cleanupSeconds }}
{{- $sum := add $p $g $c }}
{{- $t := .Values.terminationGracePeriodSeconds }}
{{- if and (not (kindIs "invalid" $t)) (lt (int $t) $sum) -}}
terminationGracePeriodSeconds ({{ int $t }}) is below shutdown.preStopSeconds + shutdown.gracePeriodSeconds + shutdown.cleanupSeconds = {{ $p }} + {{ $g }} + {{ $c }} = {{ $sum }}, so the kubelet would kill the app before it has drained and cleaned up: set terminationGracePeriodSeconds to at least {{ $sum }}, lower the shutdown numbers, or leave it null to have it computed
{{- end }}
{{- end }}

{{/* The drain delay is part of the drain. */}}
{{- define "fastapi-app.validateValues.shutdownDelay" -}}
{{- $sd := .Values.shutdown }}
{{- if gt (int $sd.delaySeconds) (int $sd.gracePeriodSeconds) -}}
shutdown.delaySeconds ({{ int $sd.delaySeconds }}) exceeds shutdown.gracePeriodSeconds ({{ int $sd.gracePeriodSeconds }}): the delay is part of the drain, so lower the delay or raise the grace period
{{- end }}
{{- end }}

{{/* extraEnv may not set a variable the chart sets from its own values. */}}
{{- define "fastapi-app.validateValues.extraEnvNames" -}}
{{- $managed := merge (include "fastapi-app.configData" . | fromYaml) (dict "DATABASE_URL" "" "REDIS_URL" "" "ADMIN_TOKEN" "" "API_TOKENS" "") }}
{{- $clashes := list }}
{{- range .Values.extraEnv }}
{{- if hasKey $managed .name }}{{ $clashes = append $clashes .name }}{{ end }}
{{- end }}
{{- if $clashes -}}
extraEnv sets {{ join ", " $clashes }}, which the chart sets from its own values: use the values key for it (config.*, shutdown.*, containerPort or secret.*) instead
{{- end }}
{{- end }}

{{/* One source per secret: an existing Secret, or inline values. */}}
{{- define "fastapi-app.validateValues.existingSecretAndInline" -}}
{{- if and .Values.secret.existingSecret (include "fastapi-app.secretData" . | fromYaml) -}}
secret.existingSecret is set together with inline secret.databaseUrl/redisUrl/adminToken/apiTokens: keep the values in the existing Secret and leave the inline ones empty
{{- end }}
{{- end }}

{{/* A rollout needs time to become ready before its deadline. */}}
{{- define "fastapi-app.validateValues.rolloutDeadline" -}}
{{- $r := .Values.rollout }}
{{- if le (int $r.progressDeadlineSeconds) (int $r.minReadySeconds) -}}
rollout.progressDeadlineSeconds ({{ int $r.progressDeadlineSeconds }}) must be greater than rollout.minReadySeconds ({{ int $r.minReadySeconds }})
{{- end }}
{{- end }}

{{/* maxSurge 0 and maxUnavailable 0: a rollout could never start a new pod. */}}
{{- define "fastapi-app.validateValues.rolloutProgress" -}}
{{- $r := .Values.rollout }}
{{- if and (eq (include "fastapi-app.isZero" $r.maxSurge) "true") (eq (include "fastapi-app.isZero" $r.maxUnavailable) "true") -}}
rollout.maxSurge and rollout.maxUnavailable are both 0, so a rollout could never progress: set rollout.maxSurge to 1 (keeps full capacity)
{{- end }}
{{- end }}

{{- define "fastapi-app.validateValues.autoscalingRange" -}}
{{- $a := .Values.autoscaling }}
{{- if and $a.enabled (gt (int $a.minReplicas) (int $a.maxReplicas)) -}}
autoscaling.minReplicas ({{ int $a.minReplicas }}) is above autoscaling.maxReplicas ({{ int $a.maxReplicas }})
{{- end }}
{{- end }}

{{- define "fastapi-app.validateValues.autoscalingTarget" -}}
{{- $a := .Values.autoscaling }}
{{- if and $a.enabled (kindIs "invalid" $a.targetCPUUtilizationPercentage) (kindIs "invalid" $a.targetMemoryUtilizationPercentage) -}}
autoscaling.enabled needs autoscaling.targetCPUUtilizationPercentage or autoscaling.targetMemoryUtilizationPercentage
{{- end }}
{{- end }}

{{- define "fastapi-app.validateValues.ingressHosts" -}}
{{- if and .Values.ingress.enabled (not .Values.ingress.hosts) -}}
ingress.enabled needs at least one entry in ingress.hosts, e.g. {host: api.example.com, paths: [{path: /, pathType: Prefix}]}
{{- end }}
{{- end }}

{{/* A PodDisruptionBudget that allows no eviction blocks every node drain. */}}
{{- define "fastapi-app.validateValues.podDisruptionBudget" -}}
{{- $pdb := .Values.podDisruptionBudget }}
{{- $pods := int (include "fastapi-app.minPods" .) }}
{{- if and $pdb.enabled (gt $pods 1) }}
{{- if not (kindIs "invalid" $pdb.minAvailable) }}
{{- $blocks := false }}
{{- if kindIs "string" $pdb.minAvailable }}
{{- $blocks = eq (trimSuffix "%" $pdb.minAvailable) "100" }}
{{- else }}
{{- $blocks = ge (int $pdb.minAvailable) $pods }}
{{- end }}
{{- if $blocks -}}
podDisruptionBudget.minAvailable ({{ $pdb.minAvailable }}) leaves no pod of {{ $pods }} evictable, which would block node drains: lower it below the pod count or use podDisruptionBudget.maxUnavailable
{{- end }}
{{- else if eq (include "fastapi-app.isZero" $pdb.maxUnavailable) "true" -}}
podDisruptionBudget.maxUnavailable is 0, which would block node drains: use 1 or more
{{- end }}
{{- end }}
{{- end }}
