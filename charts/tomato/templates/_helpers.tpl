{{- define "tomato.labels" -}}
app.kubernetes.io/name: tomato
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "tomato.selector" -}}
app.kubernetes.io/name: tomato
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "tomato.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
