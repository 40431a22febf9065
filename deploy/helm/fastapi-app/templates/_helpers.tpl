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

{{/*
Labels on every object of the app (the helm test pod has its own: it must not match the
selector): the chart's, over the user's commonLabels (the chart's win, so no key is
rendered twice; fastapi-app.validateValues.userLabels refuses a changed selector label).
*/}}
{{- define "fastapi-app.labels" -}}
{{- $chart := merge (include "fastapi-app.chartLabels" . | fromYaml) (include "fastapi-app.selectorLabels" . | fromYaml) (dict "app.kubernetes.io/component" "api") }}
{{- toYaml (merge $chart (deepCopy .Values.commonLabels)) }}
{{- end }}

{{/*
Labels of the pods: the objects' labels over podLabels (the chart's win), without
helm.sh/chart: a pod template carries only what changes with what runs, so a new chart
version with the same values rolls no pod (and renames no migration Job).
*/}}
{{- define "fastapi-app.podLabels" -}}
{{- toYaml (omit (merge (include "fastapi-app.labels" . | fromYaml) (deepCopy .Values.podLabels)) "helm.sh/chart") }}
{{- end }}

{{/* Labels the chart puts on every object it renders. */}}
{{- define "fastapi-app.chartLabels" -}}
helm.sh/chart: {{ include "fastapi-app.chart" . }}
app.kubernetes.io/version: {{ include "fastapi-app.imageTag" . | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
An object's `annotations:` block, or nothing: the object's own annotations over
commonAnnotations. Call with (dict "ctx" $ "own" .Values.x.annotations). checkov's skipped
checks are in deploy/checkov.yaml, never on the objects.
*/}}
{{- define "fastapi-app.annotations" -}}
{{- with merge (deepCopy (.own | default dict)) (deepCopy .ctx.Values.commonAnnotations) -}}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Labels that select the app's pods (never change them on an installed release). */}}
{{- define "fastapi-app.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fastapi-app.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The app's pods, for the objects that select them besides the Deployment (PDB,
NetworkPolicy, metrics Service, spread constraints). With canary.enabled, Flagger renames
app.kubernetes.io/name on the primaries' pods to <name>-primary: those objects select by
what it keeps, so the primaries and the canary are covered alike. */}}
{{- define "fastapi-app.podSelectorLabels" -}}
{{- if .Values.canary.enabled -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: api
{{- else -}}
{{ include "fastapi-app.selectorLabels" . }}
{{- end }}
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

{{/* The metrics Service's name (the ServiceMonitor's selection; its `job` label in Prometheus). */}}
{{- define "fastapi-app.metricsServiceName" -}}
{{- printf "%s-metrics" (include "fastapi-app.fullname" .) | trunc 63 | trimSuffix "-" }}
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

{{/*
Secret-backed variables, as YAML {env: [{name, secret, key, optional}]}. Per variable the
first of: secret.<var>From {name, key} (any Secret, e.g. one an operator made), the
existingSecret (key from existingSecretKeys), the Secret the chart makes from the inline
value. DATABASE_URL is never optional: a missing key stops the pod instead of letting it
run on the embedded SQLite; the other keys of an existingSecret may be missing.
*/}}
{{- define "fastapi-app.secretEnv" -}}
{{- $s := .Values.secret }}
{{- $inline := include "fastapi-app.secretData" . | fromYaml }}
{{- $env := list }}
{{- range $var := list (list "DATABASE_URL" "databaseUrl") (list "REDIS_URL" "redisUrl") (list "ADMIN_TOKEN" "adminToken") (list "API_TOKENS" "apiTokens") }}
{{- $name := index $var 0 }}
{{- $key := index $var 1 }}
{{- $from := get $s (printf "%sFrom" $key) | default dict }}
{{- if $from.name }}
{{- $env = append $env (dict "name" $name "secret" $from.name "key" $from.key "optional" false) }}
{{- else if $s.existingSecret }}
{{- $required := or (eq $name "DATABASE_URL") (and (eq $name "API_TOKENS") (not $.Values.auth.allowAnonymousWrites)) }}
{{- $env = append $env (dict "name" $name "secret" $s.existingSecret "key" (get $s.existingSecretKeys $key) "optional" (not $required)) }}
{{- else if hasKey $inline $name }}
{{- $env = append $env (dict "name" $name "secret" (include "fastapi-app.fullname" $) "key" $name "optional" false) }}
{{- end }}
{{- end }}
{{- toYaml (dict "env" $env) }}
{{- end }}

{{/* "true" when a secret variable (databaseUrl, redisUrl, ...) has a source, else "". */}}
{{- define "fastapi-app.hasSecretVar" -}}
{{- $s := .ctx.Values.secret }}
{{- $from := get $s (printf "%sFrom" .var) | default dict }}
{{- if or (get $s .var) $from.name $s.existingSecret }}true{{ end }}
{{- end }}

{{/*
The migration step: a Job (helm hooks pre-install,pre-upgrade) running
`python -m service.data.migrate` before the Deployment changes. "true" when it is rendered:
migrations.enabled and a DATABASE_URL that is not SQLite (the embedded SQLite, or an inline
sqlite URL, is migrated by the app itself at start). An existingSecret or a databaseUrlFrom
Secret cannot be read here: the Job runs for them.
*/}}
{{- define "fastapi-app.migrationJob" -}}
{{- $hasDatabase := include "fastapi-app.hasSecretVar" (dict "ctx" . "var" "databaseUrl") }}
{{- $sqlite := hasPrefix "sqlite" (lower (toString .Values.secret.databaseUrl)) }}
{{- if and .Values.migrations.enabled $hasDatabase (not $sqlite) }}true{{ end }}
{{- end }}

{{/* Name of the migration Job, its hook Secret and its hook NetworkPolicy. */}}
{{- define "fastapi-app.migrationName" -}}
{{- printf "%s-migrate" (include "fastapi-app.fullname" . | trunc 55 | trimSuffix "-") }}
{{- end }}

{{/* Labels of the migration objects: the chart's, with component migrate. */}}
{{- define "fastapi-app.migrationLabels" -}}
{{- $labels := include "fastapi-app.labels" . | fromYaml }}
{{- $_ := set $labels "app.kubernetes.io/component" "migrate" }}
{{- toYaml $labels }}
{{- end }}

{{/*
Labels of the migration Job's pod: never app.kubernetes.io/name, so it can never match the
selector of the Service, the PodDisruptionBudget or the app's NetworkPolicy (name and
instance); instance and component migrate select it for the migration NetworkPolicy.
*/}}
{{- define "fastapi-app.migrationPodLabels" -}}
{{- $labels := merge (include "fastapi-app.chartLabels" . | fromYaml) (deepCopy .Values.migrations.podLabels) (deepCopy .Values.commonLabels) }}
{{- $_ := set $labels "app.kubernetes.io/instance" .Release.Name }}
{{- $_ := set $labels "app.kubernetes.io/component" "migrate" }}
{{- $_ := unset $labels "app.kubernetes.io/name" }}
{{- /* No helm.sh/chart, as on the app's pods (fastapi-app.podLabels). */}}
{{- $_ := unset $labels "helm.sh/chart" }}
{{- toYaml $labels }}
{{- end }}

{{/*
"true" when the Job reads DATABASE_URL from the hook Secret: an inline secret.databaseUrl, as
a hook. Without hooks (migrations.useHelmHooks false) the Job reads the chart's own Secret,
applied with it (Argo CD: both in sync wave -1).
*/}}
{{- define "fastapi-app.migrationSecret" -}}
{{- $s := .Values.secret }}
{{- if and (include "fastapi-app.migrationJob" .) .Values.migrations.useHelmHooks $s.databaseUrl (not $s.existingSecret) (not ($s.databaseUrlFrom | default dict).name) }}true{{ end }}
{{- end }}

{{/* The migration NetworkPolicy's podSelector (a subset of the Job pod's labels). */}}
{{- define "fastapi-app.migrationSelectorLabels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: migrate
{{- end }}

{{/*
Where the migration Job reads DATABASE_URL, as YAML {secret, key}: the app's source, except
that the chart's own Secret does not exist yet at pre-install: the hook Secret
<fullname>-migrate (fastapi-app.migrationName) holds it for the Job.
*/}}
{{- define "fastapi-app.migrationDatabaseUrlRef" -}}
{{- $ref := dict }}
{{- range (include "fastapi-app.secretEnv" . | fromYaml).env }}
{{- if eq .name "DATABASE_URL" }}{{ $ref = dict "secret" .secret "key" .key }}{{ end }}
{{- end }}
{{- if eq (include "fastapi-app.migrationSecret" .) "true" }}
{{- $ref = dict "secret" (include "fastapi-app.migrationName" .) "key" "DATABASE_URL" }}
{{- end }}
{{- toYaml $ref }}
{{- end }}

{{/*
The migration Job's ServiceAccount: migrations.serviceAccountName, else the app's. Except as
a hook (migrations.useHelmHooks) with serviceAccount.create: the chart's ServiceAccount is a
release object, created only after the pre-install hooks, so the Job runs as the namespace's
default (fastapi-app.validateValues.migrationServiceAccount refuses naming the chart's own).
Without hooks the chart's ServiceAccount is applied with the Job (Argo CD: sync wave -1).
*/}}
{{- define "fastapi-app.migrationServiceAccountName" -}}
{{- $m := .Values.migrations }}
{{- if $m.serviceAccountName }}{{ $m.serviceAccountName }}
{{- else if and $m.useHelmHooks .Values.serviceAccount.create }}default
{{- else }}{{ include "fastapi-app.serviceAccountName" . }}
{{- end }}
{{- end }}

{{/*
The shutdown numbers the app reads (G, C, the drain delay, Retry-After), as YAML {NAME: value}.
They are set in the pod spec's env, next to terminationGracePeriodSeconds, so every pod runs
the G and C that match its own T (a ConfigMap is shared by the old and the new pods of a rollout).
*/}}
{{- define "fastapi-app.shutdownEnv" -}}
{{- $sd := .Values.shutdown }}
{{- $env := dict "GRACE_PERIOD_SECONDS" (toString (int $sd.gracePeriodSeconds)) "SHUTDOWN_CLEANUP_SECONDS" (toString (int $sd.cleanupSeconds)) "SHUTDOWN_DELAY_SECONDS" (toString (int $sd.delaySeconds)) }}
{{- if not (kindIs "invalid" $sd.retryAfterSeconds) }}
{{- $_ := set $env "RETRY_AFTER_SECONDS" (toString (int $sd.retryAfterSeconds)) }}
{{- end }}
{{- toYaml $env }}
{{- end }}

{{/* Non-secret environment (the ConfigMap's data), as YAML; the shutdown numbers are in shutdownEnv. */}}
{{- define "fastapi-app.configData" -}}
{{- $c := .Values.config }}
{{- $data := dict
  "SERVICE_NAME" $c.serviceName
  "LOG_LEVEL" $c.logLevel
  "PORT" (toString (int .Values.containerPort))
  "SLOW_REQUEST_MS" (toString (int $c.slowRequestMs))
  "READINESS_REQUIRES" .Values.readiness.requires
  "METRICS_ENABLED" (toString .Values.metrics.enabled)
  "DEMO_ROUTES" (toString .Values.demoRoutes.enabled)
}}
{{- if .Values.metrics.enabled }}
{{- $_ := set $data "METRICS_PORT" (toString (int .Values.metrics.port)) }}
{{- end }}
{{- if not (kindIs "invalid" $c.webConcurrency) }}
{{- $_ := set $data "WEB_CONCURRENCY" (toString (int $c.webConcurrency)) }}
{{- end }}
{{- if not (kindIs "invalid" $c.forwardedAllowIps) }}
{{- $_ := set $data "FORWARDED_ALLOW_IPS" $c.forwardedAllowIps }}
{{- end }}
{{- if $c.downstreamUrl }}{{ $_ := set $data "DOWNSTREAM_URL" $c.downstreamUrl }}{{ end }}
{{- if not (kindIs "invalid" $c.downstreamTimeoutSeconds) }}
{{- $_ := set $data "DOWNSTREAM_TIMEOUT_SECONDS" (toString $c.downstreamTimeoutSeconds) }}
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
preStop sleep (P) + the app's drain (G) + its cleanup (C, SHUTDOWN_CLEANUP_SECONDS) + the
margin (shutdownMarginSeconds). An explicit terminationGracePeriodSeconds may raise it,
never lower it (fastapi-app.validateValues refuses a lower one).
*/}}
{{- define "fastapi-app.terminationGracePeriodSeconds" -}}
{{- $sum := add (int .Values.shutdown.preStopSeconds) (int .Values.shutdown.gracePeriodSeconds) (int .Values.shutdown.cleanupSeconds) (include "fastapi-app.shutdownMarginSeconds" . | int) }}
{{- $t := .Values.terminationGracePeriodSeconds }}
{{- if kindIs "invalid" $t }}{{ $sum }}{{ else }}{{ int $t }}{{ end }}
{{- end }}

{{/*
After P + G + C: Gunicorn's own 2 s (requests still running cancelled, the workers' exit),
the master's exit, and native sidecars, which the kubelet stops once the app has exited.
*/}}
{{- define "fastapi-app.shutdownMarginSeconds" -}}5{{- end }}

{{/* preStop form for this cluster: sleepAction (Kubernetes >= 1.30) or exec (the image's python sleeps: it has no `sleep`). */}}
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
      command: ["python", "-c", "import sys, time; time.sleep(float(sys.argv[1]))", "{{ $p }}"]
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
  "autoscalingBehavior"
  "ingressHosts"
  "podDisruptionBudget"
  "database"
  "anonymousWrites"
  "secretSources"
  "readinessTimeout"
  "readinessRequires"
  "preStopSleepAction"
  "nativeSidecars"
  "userLabels"
  "serviceType"
  "httpRoute"
  "downstreamPeers"
  "helmHooks"
  "migrationServiceAccount"
  "migrationEnvNames"
  "monitoring"
}}
{{- $messages = append $messages (include (printf "fastapi-app.validateValues.%s" $rule) $ | trim) -}}
{{- end -}}
{{- $messages = without $messages "" -}}
{{- if $messages -}}
{{- fail (printf "\nVALUES VALIDATION:\n%s" (join "\n" $messages)) -}}
{{- end -}}
{{- end -}}

{{/* T below P + G + C + margin: the kubelet would SIGKILL the app mid-drain. */}}
{{- define "fastapi-app.validateValues.terminationGracePeriod" -}}
{{- $p := int .Values.shutdown.preStopSeconds }}
{{- $g := int .Values.shutdown.gracePeriodSeconds }}
{{- $c := int .Values.shutdown.cleanupSeconds }}
{{- $m := include "fastapi-app.shutdownMarginSeconds" . | int }}
{{- $sum := add $p $g $c $m }}
{{- $t := .Values.terminationGracePeriodSeconds }}
{{- if and (not (kindIs "invalid" $t)) (lt (int $t) $sum) -}}
terminationGracePeriodSeconds ({{ int $t }}) is below shutdown.preStopSeconds + shutdown.gracePeriodSeconds + shutdown.cleanupSeconds + {{ $m }} s margin = {{ $p }} + {{ $g }} + {{ $c }} + {{ $m }} = {{ $sum }}, so the kubelet would kill the app before it has drained and cleaned up: set terminationGracePeriodSeconds to at least {{ $sum }}, lower the shutdown numbers, or leave it null to have it computed
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
{{- $managed := merge (include "fastapi-app.configData" . | fromYaml) (dict "DATABASE_URL" "" "REDIS_URL" "" "ADMIN_TOKEN" "" "API_TOKENS" "" "GRACE_PERIOD_SECONDS" "" "SHUTDOWN_CLEANUP_SECONDS" "" "SHUTDOWN_DELAY_SECONDS" "" "RETRY_AFTER_SECONDS" "" "READINESS_REQUIRES" "" "APP_VERSION" "") }}
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

{{/* One source for the scale-down window: scaleDownStabilizationSeconds. */}}
{{- define "fastapi-app.validateValues.autoscalingBehavior" -}}
{{- $down := (.Values.autoscaling.behavior | default dict).scaleDown | default dict }}
{{- if hasKey $down "stabilizationWindowSeconds" -}}
autoscaling.behavior.scaleDown.stabilizationWindowSeconds is set, but the chart sets it from autoscaling.scaleDownStabilizationSeconds ({{ int .Values.autoscaling.scaleDownStabilizationSeconds }}): set autoscaling.scaleDownStabilizationSeconds instead
{{- end }}
{{- end }}

{{- define "fastapi-app.validateValues.ingressHosts" -}}
{{- if and .Values.ingress.enabled (not .Values.ingress.hosts) -}}
ingress.enabled needs at least one entry in ingress.hosts, e.g. {host: api.example.com, paths: [{path: /, pathType: Prefix}]}
{{- end }}
{{- end }}

{{/*
A PodDisruptionBudget that allows no eviction blocks every node drain. Computed as the
disruption controller does for the fewest pods the release runs (replicaCount, or
autoscaling.minReplicas): a percentage is rounded UP, for minAvailable and maxUnavailable
alike; allowed evictions = pods - minAvailable, or maxUnavailable.
*/}}
{{- define "fastapi-app.validateValues.podDisruptionBudget" -}}
{{- $pdb := .Values.podDisruptionBudget }}
{{- $pods := int (include "fastapi-app.minPods" .) }}
{{- if and $pdb.enabled (gt $pods 0) }}
{{- $useMin := not (kindIs "invalid" $pdb.minAvailable) }}
{{- $value := ternary $pdb.minAvailable $pdb.maxUnavailable $useMin }}
{{- $key := ternary "minAvailable" "maxUnavailable" $useMin }}
{{- $n := 0 }}
{{- $rounded := "" }}
{{- if kindIs "string" $value }}
{{- $n = div (add (mul (int (trimSuffix "%" $value)) $pods) 99) 100 }}
{{- $rounded = printf " (Kubernetes rounds %s of %d pods up to %d)" $value $pods $n }}
{{- else }}
{{- $n = int $value }}
{{- end }}
{{- $allowed := ternary (sub $pods $n) $n $useMin }}
{{- if le (int $allowed) 0 }}
{{- if $useMin -}}
podDisruptionBudget.minAvailable ({{ $value }}) leaves no pod of {{ $pods }} evictable{{ $rounded }}, which would block node drains: {{ if gt $pods 1 }}lower it below the pod count (at most {{ sub $pods 1 }}) or {{ end }}use podDisruptionBudget.maxUnavailable (e.g. 1)
{{- else -}}
podDisruptionBudget.maxUnavailable is {{ $value }}{{ $rounded }}, which would block node drains: use 1 or more (or a percentage above 0%)
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* More than one pod on the embedded SQLite: one database per pod. Fail closed. */}}
{{- define "fastapi-app.validateValues.database" -}}
{{- if not (include "fastapi-app.hasSecretVar" (dict "ctx" . "var" "databaseUrl")) }}
{{- $a := .Values.autoscaling }}
{{- $set := "set it with secret.databaseUrl (a Secret the chart makes), secret.databaseUrlFrom {name, key} (any Secret, e.g. one CloudNativePG or External Secrets made) or secret.existingSecret (key secret.existingSecretKeys.databaseUrl)" }}
{{- if or $a.enabled (gt (int .Values.replicaCount) 1) -}}
DATABASE_URL is not set but the release runs more than one pod ({{ if $a.enabled }}autoscaling.enabled, minReplicas {{ int $a.minReplicas }}{{ else }}replicaCount {{ int .Values.replicaCount }}{{ end }}), and each pod would keep its own embedded SQLite file: {{ $set }}; the embedded SQLite (database.allowEmbeddedSqlite) is for a single-pod demo only (replicaCount 1, autoscaling off)
{{- else if not .Values.database.allowEmbeddedSqlite -}}
DATABASE_URL is not set and database.allowEmbeddedSqlite is false: {{ $set }}; or, for a single-pod demo on the embedded SQLite file in /tmp, set database.allowEmbeddedSqlite to true
{{- end }}
{{- end }}
{{- end }}

{{/*
PostgreSQL without API tokens: anyone who reaches the Service could write. Fail closed unless
auth.allowAnonymousWrites. An existingSecret cannot be read here: its API_TOKENS key is
required instead (fastapi-app.secretEnv), so a Secret without it stops the pod at start.
*/}}
{{- define "fastapi-app.validateValues.anonymousWrites" -}}
{{- $s := .Values.secret }}
{{- $postgres := and (include "fastapi-app.hasSecretVar" (dict "ctx" . "var" "databaseUrl")) (not (hasPrefix "sqlite" (lower (toString $s.databaseUrl)))) }}
{{- if and $postgres (not (include "fastapi-app.hasSecretVar" (dict "ctx" . "var" "apiTokens"))) (not .Values.auth.allowAnonymousWrites) -}}
DATABASE_URL names a database that is not SQLite but no API tokens are set, so anyone who reaches the Service could write: set secret.apiTokens (token=user_id pairs) or secret.apiTokensFrom {name, key} (or the key secret.existingSecretKeys.apiTokens in secret.existingSecret), or set auth.allowAnonymousWrites to true to accept anonymous writes
{{- end }}
{{- end }}

{{/* secret.<var>From and the inline secret.<var> are two sources for one variable. */}}
{{- define "fastapi-app.validateValues.secretSources" -}}
{{- $s := .Values.secret }}
{{- $both := list }}
{{- range $key := list "databaseUrl" "redisUrl" "adminToken" "apiTokens" }}
{{- $from := get $s (printf "%sFrom" $key) | default dict }}
{{- if and $from.name (get $s $key) }}{{ $both = append $both $key }}{{ end }}
{{- end }}
{{- range $both -}}
secret.{{ . }}From and secret.{{ . }} are both set: keep one source (the From reference wins over secret.existingSecret, never over an inline value)
{{ end }}
{{- end }}

{{/* The readiness probe must outlast the app's own per-check timeout (0.8 s) by 1 s. */}}
{{- define "fastapi-app.validateValues.readinessTimeout" -}}
{{- $t := int .Values.readinessProbe.timeoutSeconds }}
{{- if lt $t 2 -}}
readinessProbe.timeoutSeconds ({{ $t }}) leaves less than 1 s over the app's per-check timeout (0.8 s), so a slow dependency would look like a dead pod instead of answering 503: set it to 2 or more
{{- end }}
{{- end }}

{{/* READINESS_REQUIRES=...redis with no REDIS_URL: no pod would ever be ready. */}}
{{- define "fastapi-app.validateValues.readinessRequires" -}}
{{- if and (has "redis" (splitList "," .Values.readiness.requires)) (not (include "fastapi-app.hasSecretVar" (dict "ctx" . "var" "redisUrl"))) -}}
readiness.requires ({{ .Values.readiness.requires }}) names redis but REDIS_URL is not set, so no pod would ever be ready: set secret.redisUrl, secret.redisUrlFrom or secret.existingSecret, or drop redis from readiness.requires
{{- end }}
{{- end }}

{{/* The native sleep action exists from Kubernetes 1.30 on (beta, on by default). */}}
{{- define "fastapi-app.validateValues.preStopSleepAction" -}}
{{- if and (eq .Values.shutdown.preStopAction "sleepAction") (gt (int .Values.shutdown.preStopSeconds) 0) (not (semverCompare ">=1.30.0-0" .Capabilities.KubeVersion.Version)) -}}
shutdown.preStopAction is sleepAction, which needs Kubernetes 1.30 or later (this cluster: {{ .Capabilities.KubeVersion.Version }}): use auto (exec sleep below 1.30) or exec
{{- end }}
{{- end }}

{{/* Native sidecars (init containers with restartPolicy Always) need Kubernetes 1.29. */}}
{{- define "fastapi-app.validateValues.nativeSidecars" -}}
{{- if not (semverCompare ">=1.29.0-0" .Capabilities.KubeVersion.Version) }}
{{- range .Values.initContainers }}
{{- if eq (toString .restartPolicy) "Always" -}}
initContainers: {{ .name }} has restartPolicy Always (a native sidecar), which needs Kubernetes 1.29 or later (this cluster: {{ $.Capabilities.KubeVersion.Version }}): move it to sidecars, with a preStop that sleeps at least shutdown.preStopSeconds + shutdown.gracePeriodSeconds + shutdown.cleanupSeconds
{{ end }}
{{- end }}
{{- range .Values.migrations.initContainers }}
{{- if eq (toString .restartPolicy) "Always" -}}
migrations.initContainers: {{ .name }} has restartPolicy Always (a native sidecar), which needs Kubernetes 1.29 or later (this cluster: {{ $.Capabilities.KubeVersion.Version }}); older clusters would run it as a plain init container that never exits, and the Job would never start its migration
{{ end }}
{{- end }}
{{- end }}
{{- end }}

{{/* commonLabels and podLabels may not change a selector label (Service, PDB, spread). */}}
{{- define "fastapi-app.validateValues.userLabels" -}}
{{- $selector := merge (include "fastapi-app.selectorLabels" . | fromYaml) (include "fastapi-app.podSelectorLabels" . | fromYaml) }}
{{- range $values := list "commonLabels" "podLabels" }}
{{- range $name, $value := index $.Values $values }}
{{- if and (hasKey $selector $name) (ne (toString $value) (get $selector $name)) -}}
{{ $values }} sets {{ $name }} to {{ $value }}, a selector label of the chart ({{ get $selector $name }}): the Service, the PodDisruptionBudget and the spread constraints select the pods by it, so remove it from {{ $values }} (use nameOverride to change the name)
{{ end }}
{{- end }}
{{- end }}
{{- end }}

{{/* Service fields only some Service types accept. */}}
{{- define "fastapi-app.validateValues.serviceType" -}}
{{- $svc := .Values.service }}
{{- if and (eq $svc.type "ClusterIP") (not (kindIs "invalid" $svc.nodePort)) -}}
service.nodePort ({{ int $svc.nodePort }}) needs service.type NodePort or LoadBalancer (it is ClusterIP)
{{ end }}
{{- if and (eq $svc.type "ClusterIP") $svc.externalTrafficPolicy -}}
service.externalTrafficPolicy ({{ $svc.externalTrafficPolicy }}) needs service.type NodePort or LoadBalancer (it is ClusterIP)
{{ end }}
{{- if and (ne $svc.type "LoadBalancer") $svc.loadBalancerSourceRanges -}}
service.loadBalancerSourceRanges needs service.type LoadBalancer (it is {{ $svc.type }})
{{ end }}
{{- end }}

{{- define "fastapi-app.validateValues.httpRoute" -}}
{{- if and .Values.httpRoute.enabled (not .Values.httpRoute.parentRefs) -}}
httpRoute.enabled needs at least one entry in httpRoute.parentRefs (the Gateway to attach to), e.g. {name: gateway, namespace: infra}
{{- end }}
{{- end }}

{{/* migrations.useHelmHooks false promises a release without helm hooks; the helm test pod is one. */}}
{{- define "fastapi-app.validateValues.helmHooks" -}}
{{- if and (not .Values.migrations.useHelmHooks) .Values.tests.enabled -}}
migrations.useHelmHooks is false (no helm hooks: Argo CD, kubectl apply) but tests.enabled renders the helm test pod, a helm.sh/hook test hook that Argo CD and kubectl apply do not treat as a test: set tests.enabled to false (or migrations.useHelmHooks to true)
{{- end }}
{{- end }}

{{/* As a hook, the Job runs before the chart's ServiceAccount exists (first install). */}}
{{- define "fastapi-app.validateValues.migrationServiceAccount" -}}
{{- $m := .Values.migrations }}
{{- if and (include "fastapi-app.migrationJob" .) $m.useHelmHooks .Values.serviceAccount.create (eq $m.serviceAccountName (include "fastapi-app.serviceAccountName" .)) -}}
migrations.serviceAccountName ({{ $m.serviceAccountName }}) is the ServiceAccount this chart creates, which does not exist yet when the pre-install hook Job starts on a first install: name one that exists before the install, leave it empty (the namespace's default), or set migrations.useHelmHooks to false
{{- end }}
{{- end }}

{{/* migrations.extraEnv may not set what the Job's container sets from the chart's values. */}}
{{- define "fastapi-app.validateValues.migrationEnvNames" -}}
{{- $clashes := list }}
{{- range .Values.migrations.extraEnv }}
{{- if has .name (list "SERVICE_NAME" "LOG_LEVEL" "DATABASE_URL") }}{{ $clashes = append $clashes .name }}{{ end }}
{{- end }}
{{- if $clashes -}}
migrations.extraEnv sets {{ join ", " $clashes }}, which the migration Job sets from the chart's values (config.serviceName, config.logLevel, secret.*): use those values keys instead
{{- end }}
{{- end }}

{{/* A ServiceMonitor or PrometheusRule without metrics would watch nothing. */}}
{{- define "fastapi-app.validateValues.monitoring" -}}
{{- $m := .Values.metrics }}
{{- if not $m.enabled }}
{{- range $key := list "serviceMonitor" "prometheusRule" }}
{{- if (get $m $key).enabled -}}
metrics.{{ $key }}.enabled is true but metrics.enabled is false, so the pods serve no /metrics: set metrics.enabled to true or metrics.{{ $key }}.enabled to false
{{ end }}
{{- end }}
{{- end }}
{{- end }}

{{/* A rule toward the downstream without a downstream to call. */}}
{{- define "fastapi-app.validateValues.downstreamPeers" -}}
{{- if and .Values.networkPolicy.downstream.peers (not .Values.config.downstreamUrl) -}}
networkPolicy.downstream.peers is set but config.downstreamUrl is empty, so the pods call no downstream: set config.downstreamUrl (e.g. http://backend-fastapi-app:80) or leave the peers empty
{{- end }}
{{- end }}
