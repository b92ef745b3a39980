{{/* Names, labels and the topology's checks. */}}

{{- define "coffre.labels" -}}
app.kubernetes.io/name: coffre
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "storage-node"). */}}
{{- define "coffre.selector" -}}
app.kubernetes.io/name: coffre
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "coffre.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* A storage node's id: country-region-index, e.g. fr-paris-0. (dict "region" $r "index" $i) */}}
{{- define "coffre.nodeId" -}}
{{ lower .region.country }}-{{ .region.name }}-{{ .index }}
{{- end -}}

{{- define "coffre.nodeName" -}}
{{ .root.Release.Name }}-node-{{ .region.name }}-{{ .index }}
{{- end -}}

{{/* A storage node's URL, through its region's headless Service. */}}
{{- define "coffre.nodeHost" -}}
{{ include "coffre.nodeName" . }}-0.{{ .root.Release.Name }}-nodes-{{ .region.name }}.{{ .root.Release.Namespace }}.svc.{{ .root.Values.clusterDomain }}
{{- end -}}

{{- define "coffre.coordinatorSet" -}}
{{ .root.Release.Name }}-coordinator-{{ .region.name }}
{{- end -}}

{{/* The i-th coordinator of a region: its pod name, which is its id. */}}
{{- define "coffre.coordinatorId" -}}
{{ include "coffre.coordinatorSet" . }}-{{ .index }}
{{- end -}}

{{- define "coffre.etcdName" -}}
{{ .root.Release.Name }}-etcd-{{ lower .member.country }}
{{- end -}}

{{- define "coffre.etcdHost" -}}
{{ include "coffre.etcdName" . }}-0.{{ .root.Release.Name }}-etcd.{{ .root.Release.Namespace }}.svc.{{ .root.Values.clusterDomain }}
{{- end -}}

{{/* Whether certificates come from cert-manager. */}}
{{- define "coffre.certManager" -}}
{{- if eq (toString .Values.tls.certManager) "true" -}}true
{{- else if and (eq (toString .Values.tls.certManager) "auto") (.Capabilities.APIVersions.Has "cert-manager.io/v1") -}}true
{{- else -}}false
{{- end -}}
{{- end -}}

{{/* Pod and container security, the same for every daemon. */}}
{{- define "coffre.podSecurity" -}}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
automountServiceAccountToken: false
{{- end -}}

{{/* Probes on the telemetry listener; the argument is the seconds a start may take. */}}
{{- define "coffre.probes" -}}
startupProbe:
  httpGet: {path: /livez, port: telemetry}
  periodSeconds: 2
  failureThreshold: {{ div (int .) 2 }}
livenessProbe:
  httpGet: {path: /livez, port: telemetry}
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 3
readinessProbe:
  httpGet: {path: /readyz, port: telemetry}
  periodSeconds: 5
  timeoutSeconds: 4
  failureThreshold: 2
{{- end -}}

{{/*
The topology's checks, beyond values.schema.json: what a schema cannot compare. Each failure
names the values to change.
*/}}
{{- define "coffre.validate" -}}
{{- $k := int .Values.policy.k -}}
{{- $m := int .Values.policy.m -}}
{{- $margin := int .Values.policy.margin -}}
{{- if lt (sub $m $margin) 1 -}}
{{- fail (printf "policy: margin %d leaves no shard per country (m - margin = %d); it must be below m = %d" $margin (sub $m $margin) $m) -}}
{{- end -}}
{{- $countries := dict -}}
{{- $nodes := 0 -}}
{{- $names := dict -}}
{{- range .Values.regions -}}
{{- if hasKey $names .name -}}{{- fail (printf "regions: the name %s is used twice" .name) -}}{{- end -}}
{{- $_ := set $names .name true -}}
{{- if and (gt (int .storageNodes) 0) (not (has .country $.Values.policy.excludedCountries)) -}}
{{- $_ := set $countries .country true -}}
{{- $nodes = add $nodes .storageNodes -}}
{{- end -}}
{{- end -}}
{{- $perCountry := sub $m $margin -}}
{{- $needed := div (add $k $m $perCountry -1) $perCountry -}}
{{- if lt (int $nodes) (add $k $m) -}}
{{- fail (printf "regions: %d storage nodes (outside excluded countries) cannot hold the %d shards of RS(%d, %d): add storage nodes or lower policy.k/m" (int $nodes) (add $k $m) $k $m) -}}
{{- end -}}
{{- if and (lt (len $countries) (int $needed)) (not .Values.policy.allowFewerCountries) -}}
{{- fail (printf "regions: RS(%d, %d) with margin %d puts at most %d shards in one country, so it needs %d countries with storage nodes; these values have %d (%s). Add regions in other countries, or set policy.allowFewerCountries for a development install" $k $m $margin $perCountry (int $needed) (len $countries) (keys $countries | sortAlpha | join ", ")) -}}
{{- end -}}
{{- $members := len .Values.etcd.members -}}
{{- if not (or (eq $members 3) (eq $members 5) (and (eq $members 1) .Values.policy.allowFewerCountries)) -}}
{{- fail (printf "etcd.members: %d members; etcd needs 3 or 5 (1 only for a development install with policy.allowFewerCountries)" $members) -}}
{{- end -}}
{{- $etcdCountries := dict -}}
{{- range .Values.etcd.members -}}
{{- if hasKey $etcdCountries .country -}}{{- fail (printf "etcd.members: two members in %s; each must be in its own country, so that losing one country loses one member" .country) -}}{{- end -}}
{{- $_ := set $etcdCountries .country true -}}
{{- end -}}
{{- end -}}
