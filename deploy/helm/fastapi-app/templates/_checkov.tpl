{{/*
checkov findings that are choices, not oversights: annotations `checkov.io/skipN: ID=reason`.
Call with (list "CKV_K8S_21" "CKV2_K8S_6:client" ...): an ID, or ID:variant where one check
needs a different reason on another object. Every reason lives here, in one place
(the chart README lists them).
*/}}
{{- define "fastapi-app.checkovSkips" -}}
{{- $reasons := dict
  "CKV_K8S_21" "The namespace comes from helm install --namespace (rendered as .Release.Namespace); checkov renders without one, so it sees default."
  "CKV_K8S_43" "Pinning by digest is offered (image.digest) and used in production; the default pins the tag to the chart's appVersion."
  "CKV_K8S_15" "IfNotPresent is the default pull policy: the tag or digest is pinned, so Always only adds registry round-trips (image.pullPolicy can change it)."
  "CKV_K8S_35" "The app reads DATABASE_URL, REDIS_URL, ADMIN_TOKEN and API_TOKENS from its environment by contract; they come from a Secret by reference, never from the pod spec."
  "CKV_K8S_8" "A one-shot helm test pod that exits after one HTTP check has nothing for a liveness probe to watch."
  "CKV_K8S_9" "A one-shot helm test pod serves no traffic, so it has no readiness to report."
  "CKV2_K8S_6" "A NetworkPolicy is opt-in (networkPolicy.enabled): which peers to admit depends on the cluster's CNI and ingress controller; production values enable it."
  "CKV2_K8S_6:client" "The helm test pod is a short-lived client of the Service that accepts no traffic; the app's NetworkPolicy, when enabled, admits it by its client label."
}}
{{- $lines := list }}
{{- range $i, $id := . }}
{{- $reason := get $reasons $id | required (printf "no reason written for checkov check %s" $id) }}
{{- $lines = append $lines (printf "checkov.io/skip%d: %s" (add1 $i) (printf "%s=%s" (first (splitList ":" $id)) $reason | quote)) }}
{{- end }}
{{- join "\n" $lines }}
{{- end }}
