{{/* The chart name, or nameOverride. */}}
{{- define "ringroute.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Resource names: release-chart, or the release alone when it already contains the chart name. 63 characters: a DNS label. */}}
{{- define "ringroute.fullname" -}}
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

{{- define "ringroute.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select this release's pods; they never change after install. */}}
{{- define "ringroute.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ringroute.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "ringroute.labels" -}}
helm.sh/chart: {{ include "ringroute.chart" . }}
{{ include "ringroute.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
The DNS name the dns source polls: membership.dns.name (templated), or
the SRV name of the backend's headless Service,
_<portName>._<protocol>.<service>.<namespace>.svc.<clusterDomain>, or for
A/AAAA <service>.<namespace>.svc.<clusterDomain>.
*/}}
{{- define "ringroute.dnsName" -}}
{{- $dns := .Values.membership.dns }}
{{- if $dns.name }}
{{- tpl $dns.name . }}
{{- else }}
{{- $service := required "membership.dns.service: name the headless Service of the backend pods (or set membership.dns.name)" $dns.service }}
{{- $host := printf "%s.%s.svc.%s" $service ($dns.namespace | default .Release.Namespace) $dns.clusterDomain }}
{{- if eq (upper $dns.type) "SRV" }}
{{- printf "_%s._%s.%s" $dns.portName $dns.protocol $host }}
{{- else }}
{{- $host }}
{{- end }}
{{- end }}
{{- end }}

{{/* The membership section of ringroute.yaml, as a dict. */}}
{{- define "ringroute.membership" -}}
{{- $m := .Values.membership }}
{{- $out := dict }}
{{- if eq $m.source "dns" }}
{{- $dns := dict "name" (include "ringroute.dnsName" .) "type" (upper $m.dns.type) "interval" $m.dns.interval "timeout" $m.dns.timeout "emptyAfter" (int $m.dns.emptyAfter) }}
{{- if not (kindIs "invalid" $m.dns.port) }}
{{- $_ := set $dns "port" (int $m.dns.port) }}
{{- else if ne (upper $m.dns.type) "SRV" }}
{{- $_ := required (printf "membership.dns.port: required for type %s (A/AAAA records carry no port)" $m.dns.type) $m.dns.port }}
{{- end }}
{{- with $m.dns.server }}{{ $_ := set $dns "server" . }}{{ end }}
{{- with $m.dns.tries }}{{ $_ := set $dns "tries" (int .) }}{{ end }}
{{- with $m.dns.scheme }}{{ $_ := set $dns "scheme" . }}{{ end }}
{{- /* The section's own `protocol` is the SRV name's tcp/udp; the members' is memberProtocol. */}}
{{- with $m.dns.memberProtocol }}{{ $_ := set $dns "protocol" . }}{{ end }}
{{- $_ := set $out "dns" $dns }}
{{- else if eq $m.source "static" }}
{{- if not $m.static.members }}
{{- fail "membership.static.members: list the backends as [{name, url}] when membership.source is static" }}
{{- end }}
{{- $_ := set $out "static" (dict "members" $m.static.members) }}
{{- else if eq $m.source "file" }}
{{- if and (not $m.file.members) (not $m.file.existingConfigMap) }}
{{- fail "membership.file: list the backends in membership.file.members or name a ConfigMap in membership.file.existingConfigMap" }}
{{- end }}
{{- $_ := set $out "file" (dict "path" (printf "%s/%s" (include "ringroute.membersDir" .) $m.file.key) "pollInterval" $m.file.pollInterval "settle" $m.file.settle) }}
{{- else if eq $m.source "serf" }}
{{- $serf := dict "rpc" (required "membership.serf.rpc: the Serf agent's RPC address" $m.serf.rpc) "urlTag" $m.serf.urlTag }}
{{- /* The auth key reaches the pod from a Secret (RINGROUTE_SERF_AUTH_KEY), never through this ConfigMap. */}}
{{- with $m.serf.tags }}{{ $_ := set $serf "tags" . }}{{ end }}
{{- range $field := list "tagMatch" "urlScheme" "reconnectMax" "timeout" "protocol" }}
{{- with index $m.serf $field }}{{ $_ := set $serf $field . }}{{ end }}
{{- end }}
{{- $_ := set $out "serf" $serf }}
{{- else if eq $m.source "etcd" }}
{{- $e := $m.etcd }}
{{- if not $e.endpoints }}
{{- fail "membership.etcd.endpoints: list the etcd client URLs" }}
{{- end }}
{{- $etcd := dict "endpoints" $e.endpoints "cluster" $e.cluster "handoff" $e.handoff "handoffTimeout" $e.handoffTimeout "handoffWait" $e.handoffWait "dialTimeout" $e.dialTimeout }}
{{- with $e.prefix }}{{ $_ := set $etcd "prefix" . }}{{ end }}
{{- with $e.tags }}{{ $_ := set $etcd "tags" . }}{{ end }}
{{- /* The password reaches the pod from a Secret (RINGROUTE_ETCD_PASSWORD), never through this ConfigMap. */}}
{{- if $e.username }}
{{- if not (or $e.password $e.existingSecret) }}
{{- fail "membership.etcd.username: set membership.etcd.password or membership.etcd.existingSecret too" }}
{{- end }}
{{- $_ := set $etcd "username" $e.username }}
{{- end }}
{{- if $e.tls.secretName }}
{{- $tls := dict }}
{{- if $e.tls.ca }}{{ $_ := set $tls "ca" "/etc/ringroute-etcd-tls/ca.crt" }}{{ end }}
{{- if $e.tls.clientCert }}
{{- $_ := set $tls "cert" "/etc/ringroute-etcd-tls/tls.crt" }}
{{- $_ := set $tls "key" "/etc/ringroute-etcd-tls/tls.key" }}
{{- end }}
{{- $_ := set $etcd "tls" $tls }}
{{- end }}
{{- $_ := set $out "etcd" $etcd }}
{{- else }}
{{- fail (printf "membership.source: must be dns, static, file, serf or etcd, got %q" $m.source) }}
{{- end }}
{{- with $m.health }}
{{- $_ := set $out "health" . }}
{{- end }}
{{- toYaml $out }}
{{- end }}

{{/*
ringroute.yaml. Listen and admin bind all interfaces: the Service sends
traffic to the proxy port, and the kubelet probes the admin port.
*/}}
{{- define "ringroute.config" -}}
{{- $config := dict "listen" (printf "0.0.0.0:%d" (int .Values.ports.proxy)) "admin" (printf "0.0.0.0:%d" (int .Values.ports.admin)) }}
{{- range $key, $value := .Values.config }}
{{- if not (kindIs "invalid" $value) }}
{{- if or (not (kindIs "map" $value)) (gt (len $value) 0) }}
{{- $_ := set $config $key $value }}
{{- end }}
{{- end }}
{{- end }}
{{- $_ := set $config "membership" (include "ringroute.membership" . | fromYaml) }}
{{- if .Values.tls.secretName }}
{{- $tls := dict "cert" "/etc/ringroute-tls/tls.crt" "key" "/etc/ringroute-tls/tls.key" }}
{{- if .Values.tls.ca }}{{ $_ := set $tls "ca" "/etc/ringroute-tls/ca.crt" }}{{ end }}
{{- $_ := set $config "tls" $tls }}
{{- end }}
{{- toYaml $config }}
{{- end }}

{{/* Whether the Serf auth key comes from a Secret, and which one: existingSecret, or the one the chart makes. */}}
{{- define "ringroute.serfSecret" -}}
{{- $serf := .Values.membership.serf }}
{{- if and (eq .Values.membership.source "serf") (or $serf.existingSecret $serf.authKey) }}
{{- $serf.existingSecret | default (include "ringroute.suffixed" (list . "serf")) }}
{{- end }}
{{- end }}

{{/* Whether the etcd password comes from a Secret, and which one: existingSecret, or the one the chart makes. */}}
{{- define "ringroute.etcdSecret" -}}
{{- $etcd := .Values.membership.etcd }}
{{- if and (eq .Values.membership.source "etcd") $etcd.username (or $etcd.existingSecret $etcd.password) }}
{{- $etcd.existingSecret | default (include "ringroute.suffixed" (list . "etcd")) }}
{{- end }}
{{- end }}

{{/* Where the members file's ConfigMap is mounted (beside /etc/ringroute: a mount inside a ConfigMap volume cannot be made). */}}
{{- define "ringroute.membersDir" -}}
/etc/ringroute-members
{{- end }}

{{/* The ConfigMap holding the members file: existingConfigMap, or the one the chart makes from membership.file.members. */}}
{{- define "ringroute.membersConfigMap" -}}
{{- .Values.membership.file.existingConfigMap | default (include "ringroute.suffixed" (list . "members")) }}
{{- end }}

{{/* A duration of ringroute's config ("500ms", "5s", "1m", "1h", 0) in seconds. */}}
{{- define "ringroute.seconds" -}}
{{- $d := toString . }}
{{- if hasSuffix "ms" $d }}{{ divf (trimSuffix "ms" $d | float64) 1000 }}
{{- else if hasSuffix "s" $d }}{{ trimSuffix "s" $d | float64 }}
{{- else if hasSuffix "m" $d }}{{ mulf (trimSuffix "m" $d | float64) 60 }}
{{- else if hasSuffix "h" $d }}{{ mulf (trimSuffix "h" $d | float64) 3600 }}
{{- else }}{{ $d | float64 }}
{{- end }}
{{- end }}

{{/* The image: repository@digest when a digest is given, else repository:tag. */}}
{{- define "ringroute.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{- define "ringroute.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- .Values.serviceAccount.name | default (include "ringroute.fullname" .) }}
{{- else }}
{{- .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* fullname-SUFFIX, the full name shortened so the whole still fits a DNS label. */}}
{{- define "ringroute.suffixed" -}}
{{- $root := index . 0 }}
{{- $suffix := index . 1 }}
{{- printf "%s-%s" (include "ringroute.fullname" $root | trunc (int (sub 62 (len $suffix))) | trimSuffix "-") $suffix }}
{{- end }}
