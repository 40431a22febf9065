{{/*
The canary analysis' queries, one named template each, over the app's own metrics. The
selector parts come in as strings, so one query serves Flagger's MetricTemplate (its
template variables, "{{ namespace }}" ...) and could serve an Argo Rollouts AnalysisTemplate
("{{args.namespace}}" ...) alike:
  namespace  the namespace label's value
  pods       a regular expression of the canary's pod names
  routes     a regular expression of the route templates judged (http_route)
  interval   the range of rate()
*/}}
{{- define "fastapi-app.canary.selector" -}}
namespace="{{ .namespace }}",pod=~"{{ .pods }}",http_route=~"{{ .routes }}"
{{- end }}

{{/* Percentage (0-100) of the canary's requests that did not answer 5xx. */}}
{{- define "fastapi-app.canary.successRateQuery" -}}
{{- $sel := include "fastapi-app.canary.selector" . -}}
100 * sum(rate(http_server_request_duration_seconds_count{ {{- $sel }},http_response_status_code!~"5.."}[{{ .interval }}]))
  / sum(rate(http_server_request_duration_seconds_count{ {{- $sel }}}[{{ .interval }}]))
{{- end }}

{{/* The canary's p99 request duration, in milliseconds. */}}
{{- define "fastapi-app.canary.latencyP99Query" -}}
{{- $sel := include "fastapi-app.canary.selector" . -}}
1000 * histogram_quantile(0.99, sum by (le) (rate(http_server_request_duration_seconds_bucket{ {{- $sel }}}[{{ .interval }}])))
{{- end }}

{{/* Flagger's template variables: the canary's pods are <target>-<hash>-<id>, the
primaries' <target>-primary-<hash>-<id> (one part more: not matched). */}}
{{- define "fastapi-app.canary.flaggerArgs" -}}
{{- dict "namespace" "{{ namespace }}" "pods" "{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)" "routes" "{{ variables.routes }}" "interval" "{{ interval }}" | toJson }}
{{- end }}
