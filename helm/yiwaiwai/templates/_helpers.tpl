{{/*
Chart name, truncated to the 63 characters a label value allows.
*/}}
{{- define "yiwaiwai.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Prefix of every resource name. Component suffixes add up to 13 characters ("-ticket-sync",
"-nats-headless"), so it is cut to 50 to keep names within 63.
*/}}
{{- define "yiwaiwai.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "yiwaiwai.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Labels of every resource; pass (dict "root" $ "component" "gateway").
*/}}
{{- define "yiwaiwai.labels" -}}
helm.sh/chart: {{ include "yiwaiwai.chart" .root }}
{{ include "yiwaiwai.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: yiwaiwai
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end -}}

{{/*
Labels that select a component's pods. They are immutable in a Deployment's selector, so nothing
that changes between releases belongs here.
*/}}
{{- define "yiwaiwai.selectorLabels" -}}
app.kubernetes.io/name: {{ include "yiwaiwai.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/*
The five services: values key, resource-name suffix, binary, the SERVICE part of their
YY_<SERVICE>__... environment variables, and the config sections only that service reads (the
others refuse them as unknown keys). The binaries are the cargo packages under services/.
*/}}
{{- define "yiwaiwai.components" -}}
- key: gateway
  component: gateway
  binary: yy-gateway
  envPrefix: YY_GATEWAY
  sections: [auth, upstream, api]
- key: conversation
  component: conversation
  binary: yy-conversation
  envPrefix: YY_CONVERSATION
  sections: [limits]
- key: routing
  component: routing
  binary: yy-routing
  envPrefix: YY_ROUTING
  sections: [upstream, routing]
- key: ticketSync
  component: ticket-sync
  binary: yy-ticket-sync
  envPrefix: YY_TICKET_SYNC
  sections: [upstream, ticket_sync]
- key: webhook
  component: webhook
  binary: yy-webhook
  envPrefix: YY_WEBHOOK
  sections: [webhook]
{{- end -}}

{{/*
Config keys every service reads: sections, and top-level fields.
*/}}
{{- define "yiwaiwai.commonConfigKeys" -}}
[nats, eventlog, http, grpc, telemetry, shutdown_grace_secs, snapshot_interval_secs]
{{- end -}}

{{- define "yiwaiwai.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "yiwaiwai.nats.fullname" -}}
{{- printf "%s-nats" (include "yiwaiwai.fullname" .) -}}
{{- end -}}

{{- define "yiwaiwai.nats.headless" -}}
{{- printf "%s-nats-headless" (include "yiwaiwai.fullname" .) -}}
{{- end -}}

{{- define "yiwaiwai.nats.url" -}}
{{- if .Values.nats.enabled -}}
{{- printf "nats://%s:%v" (include "yiwaiwai.nats.fullname" .) .Values.nats.ports.client -}}
{{- else -}}
{{- .Values.nats.external.url -}}
{{- end -}}
{{- end -}}

{{- define "yiwaiwai.nats.monitorUrl" -}}
{{- if .Values.nats.enabled -}}
{{- printf "http://%s:%v" (include "yiwaiwai.nats.fullname" .) .Values.nats.ports.monitor -}}
{{- else -}}
{{- .Values.nats.external.monitorUrl -}}
{{- end -}}
{{- end -}}

{{/*
Stops a release that could not work, with the reason, before anything is applied.
*/}}
{{- define "yiwaiwai.validate" -}}
{{- if and (not .Values.nats.enabled) (not .Values.nats.external.url) -}}
{{- fail "nats.enabled is false: set nats.external.url to the NATS server the services use" -}}
{{- end -}}
{{- if .Values.nats.enabled -}}
{{- $nodes := int .Values.nats.replicas -}}
{{- if or (lt $nodes 1) (eq $nodes 2) -}}
{{- fail "nats.replicas must be 1 (one node that syncs every write) or 3 or more (a cluster): with 2 nodes, losing either stops JetStream" -}}
{{- end -}}
{{- $streamReplicas := int (dig "eventlog" "replicas" 1 .Values.config) -}}
{{- if gt $streamReplicas $nodes -}}
{{- fail (printf "config.eventlog.replicas is %d but the bundled NATS has %d node(s): a stream cannot have more replicas than there are servers" $streamReplicas $nodes) -}}
{{- end -}}
{{- end -}}
{{- /* A section one service does not know makes it exit at start (64), so refuse it here. */ -}}
{{- $common := include "yiwaiwai.commonConfigKeys" . | fromYamlArray -}}
{{- $components := include "yiwaiwai.components" . | fromYamlArray -}}
{{- range $key, $_ := (.Values.config | default dict) -}}
{{- if not (has $key $common) -}}
{{- $readers := list -}}
{{- range $c := $components -}}
{{- if has $key $c.sections -}}
{{- $readers = append $readers (printf "services.%s.config.%s" $c.key $key) -}}
{{- end -}}
{{- end -}}
{{- if $readers -}}
{{- fail (printf "config.%s is read by one service only and the others refuse it: set it as %s" $key (join " or " $readers)) -}}
{{- else -}}
{{- fail (printf "config.%s is no setting of any service" $key) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- range $c := $components -}}
{{- $svc := index $.Values.services $c.key -}}
{{- range $key, $_ := ($svc.config | default dict) -}}
{{- if and (eq $c.key "gateway") (eq $key "auth") -}}
{{- fail "services.gateway.config.auth would put the gateway's secrets into plain environment variables: set services.gateway.auth instead" -}}
{{- end -}}
{{- if not (or (has $key $common) (has $key $c.sections)) -}}
{{- fail (printf "services.%s.config.%s: %s has no such setting" $c.key $key $c.binary) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $auth := .Values.services.gateway.auth -}}
{{- if and $auth.keySecret (lt (len $auth.keySecret) 32) -}}
{{- fail "services.gateway.auth.keySecret must be at least 32 characters: the gateway refuses a shorter key" -}}
{{- end -}}
{{- end -}}

{{/*
The Secret that holds the gateway's admin token and API-key secret, and its keys.
*/}}
{{- define "yiwaiwai.gateway.authSecret" -}}
{{- .Values.services.gateway.auth.existingSecret | default (printf "%s-gateway-auth" (include "yiwaiwai.fullname" .)) -}}
{{- end -}}

{{- define "yiwaiwai.gateway.authKeys" -}}
{{- if .Values.services.gateway.auth.existingSecret -}}
{{- toYaml .Values.services.gateway.auth.existingSecretKeys -}}
{{- else -}}
adminToken: admin-token
keySecret: key-secret
{{- end -}}
{{- end -}}

{{/*
The data (base64) of the chart's own auth Secret as it is in the cluster, empty on a first
install and wherever there is no cluster to ask (helm template, client-side dry runs).
*/}}
{{- define "yiwaiwai.gateway.storedAuth" -}}
{{- $secret := lookup "v1" "Secret" .Release.Namespace (include "yiwaiwai.gateway.authSecret" .) | default dict -}}
{{- toYaml (dig "data" dict $secret) -}}
{{- end -}}

{{/*
A service's configuration: what the chart derives (NATS addresses, listen addresses, the
upstreams of the gateway, routing and ticket-sync), under the shared `config`, under the service's own `config`. Pass
(dict "root" $ "svc" <service values> "component" <component>). Returns YAML.
*/}}
{{- define "yiwaiwai.serviceConfig" -}}
{{- $root := .root -}}
{{- $nats := dict "url" (include "yiwaiwai.nats.url" $root) -}}
{{- $monitor := include "yiwaiwai.nats.monitorUrl" $root -}}
{{- if $monitor -}}
{{- $_ := set $nats "monitor_url" $monitor -}}
{{- end -}}
{{- if $root.Values.nats.credentials.secretName -}}
{{- $_ := set $nats "credentials_file" (printf "/etc/yiwaiwai/nats/%s" $root.Values.nats.credentials.key) -}}
{{- end -}}
{{- $derived := dict
      "nats" $nats
      "http" (dict "listen" (printf "0.0.0.0:%v" $root.Values.ports.http))
      "grpc" (dict "listen" (printf "0.0.0.0:%v" $root.Values.ports.grpc)) -}}
{{- if eq .component "gateway" -}}
{{- $_ := set $derived "upstream" (dict
      "conversation" (printf "http://%s-conversation:%v" (include "yiwaiwai.fullname" $root) $root.Values.ports.grpc)
      "routing" (printf "http://%s-routing:%v" (include "yiwaiwai.fullname" $root) $root.Values.ports.grpc)
      "webhook" (printf "http://%s-webhook:%v" (include "yiwaiwai.fullname" $root) $root.Values.ports.grpc)
      "ticket_sync" (printf "http://%s-ticket-sync:%v" (include "yiwaiwai.fullname" $root) $root.Values.ports.grpc)) -}}
{{- else if or (eq .component "routing") (eq .component "ticket-sync") -}}
{{- $_ := set $derived "upstream" (dict
      "conversation" (printf "http://%s-conversation:%v" (include "yiwaiwai.fullname" $root) $root.Values.ports.grpc)) -}}
{{- end -}}
{{- /* Field by field rather than mergeOverwrite, which skips false and 0 in the overriding map. */ -}}
{{- range $layer := list ($root.Values.config | default dict) (.svc.config | default dict) -}}
{{- range $key, $value := $layer -}}
{{- if and (kindIs "map" $value) (kindIs "map" (get $derived $key)) -}}
{{- range $field, $v := $value -}}
{{- $_ := set (get $derived $key) $field $v -}}
{{- end -}}
{{- else if kindIs "map" $value -}}
{{- $_ := set $derived $key (deepCopy $value) -}}
{{- else -}}
{{- $_ := set $derived $key $value -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toYaml $derived -}}
{{- end -}}

{{/*
Environment variables from a service configuration: one per field, named
<prefix>__<SECTION>__<FIELD> or <prefix>__<FIELD>. Null fields are left out, so a config.toml
or the built-in default applies. Pass (dict "prefix" "YY_GATEWAY" "config" <map>).
*/}}
{{- define "yiwaiwai.configEnv" -}}
{{- $prefix := .prefix -}}
{{- range $key, $value := .config -}}
{{- if kindIs "map" $value -}}
{{- range $field, $v := $value -}}
{{- if not (kindIs "invalid" $v) }}
- name: {{ printf "%s__%s__%s" $prefix (upper $key) (upper $field) }}
  value: {{ include "yiwaiwai.scalar" $v | quote }}
{{- end -}}
{{- end -}}
{{- else if not (kindIs "invalid" $value) }}
- name: {{ printf "%s__%s" $prefix (upper $key) }}
  value: {{ include "yiwaiwai.scalar" $value | quote }}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The config.toml a service gets, empty when it gets none.
*/}}
{{- define "yiwaiwai.configToml" -}}
{{- default .root.Values.configToml .svc.configToml -}}
{{- end -}}

{{/*
A config value as text. Numbers from values files arrive as floats, which print large whole
numbers in exponent form (2592000 as 2.592e+06) that the services would not parse as integers.
*/}}
{{- define "yiwaiwai.scalar" -}}
{{- if and (kindIs "float64" .) (eq (floor .) (float64 .)) -}}
{{- int64 . -}}
{{- else -}}
{{- toString . -}}
{{- end -}}
{{- end -}}

{{/*
nats.conf of the bundled NATS nodes.
*/}}
{{- define "yiwaiwai.nats.conf" -}}
{{- $fullname := include "yiwaiwai.nats.fullname" . -}}
{{- $headless := include "yiwaiwai.nats.headless" . -}}
{{- $nodes := int .Values.nats.replicas -}}
{{- $n := .Values.nats -}}
# $SERVER_NAME is the pod name: JetStream in a cluster needs a stable, unique name per node.
server_name: $SERVER_NAME
listen: 0.0.0.0:{{ $n.ports.client }}
# /healthz for the probes; /varz and /jsz for the services' durability check at start-up.
http: 0.0.0.0:{{ $n.ports.monitor }}
# Clients move to the other nodes gradually when a node stops, instead of all at once.
lame_duck_duration: 30s
lame_duck_grace_period: 10s
# Where the pre-stop hook finds the process to put into lame-duck mode.
pid_file: /var/run/nats/nats.pid

jetstream {
  store_dir: /data
  {{- if or (eq $nodes 1) $n.jetstream.syncAlways }}
  # {{ if eq $nodes 1 }}A single node keeps acknowledged events through a crash only if each is on disk first.{{ else }}Each event on disk before it is acknowledged, on top of the replicas.{{ end }}
  sync_interval: always
  {{- end }}
  max_file_store: {{ $n.jetstream.maxFileStore }}
  max_memory_store: {{ $n.jetstream.maxMemoryStore }}
}
{{- if gt $nodes 1 }}

cluster {
  name: {{ $n.clusterName }}
  listen: 0.0.0.0:{{ $n.ports.cluster }}
  # Clients keep using the Service name rather than learning pod addresses, which change.
  no_advertise: true
  routes: [
    {{- range $i := until $nodes }}
    nats://{{ $fullname }}-{{ $i }}.{{ $headless }}.{{ $.Release.Namespace }}.svc.{{ $.Values.clusterDomain }}:{{ $n.ports.cluster }}
    {{- end }}
  ]
}
{{- end }}
{{- end -}}

{{/*
What the chart's auth Secret holds, as YAML (admin-token, key-secret): a value from
services.gateway.auth, else the one already in the cluster, else a new random one. A key_secret
once in use is never replaced unasked, since every issued API key is hashed with it. Worked out
once per release render, so the Secret and the gateway's checksum see the same random values.
*/}}
{{- define "yiwaiwai.gateway.authData" -}}
{{- if not (hasKey .Values "__gatewayAuth") -}}
{{- $auth := .Values.services.gateway.auth -}}
{{- $stored := include "yiwaiwai.gateway.storedAuth" . | fromYaml -}}
{{- $storedKey := get $stored "key-secret" | default "" | b64dec -}}
{{- if and $auth.keySecret $storedKey (ne $auth.keySecret $storedKey) -}}
{{- fail (printf "services.gateway.auth.keySecret differs from the key_secret in Secret %s, and changing it would invalidate every API key issued so far. To replace it all the same, delete that Secret first." (include "yiwaiwai.gateway.authSecret" .)) -}}
{{- end -}}
{{- $data := dict
      "admin-token" ($auth.adminToken | default (get $stored "admin-token" | default "" | b64dec) | default (randAlphaNum 32))
      "key-secret" ($auth.keySecret | default $storedKey | default (randAlphaNum 48)) -}}
{{- $_ := set .Values "__gatewayAuth" $data -}}
{{- end -}}
{{- toYaml (get .Values "__gatewayAuth") -}}
{{- end -}}
