{{/* The one label the operator's objects carry (the same as deploy/). */}}
{{- define "retool-operator.labels" -}}
app.kubernetes.io/name: retool-operator
{{- end -}}

{{- define "retool-operator.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* Rules the operator needs wherever it watches RetoolDeployments (ClusterRole or Role). */}}
{{- define "retool-operator.rules" -}}
# The RetoolDeployments: watched; status written; kopf adds and removes its finalizer.
- apiGroups: [retool-operator.dev]
  resources: [retooldeployments]
  verbs: [get, list, watch, patch]
- apiGroups: [retool-operator.dev]
  resources: [retooldeployments/status]
  verbs: [get, patch]
# Children: watched, written by server-side apply (patch; create for the first apply).
- apiGroups: [apps]
  resources: [deployments, statefulsets]
  verbs: [list, watch, create, patch, delete]
- apiGroups: [apps]
  resources: [deployments/scale]
  verbs: [patch]
- apiGroups: [""]
  resources: [services]
  verbs: [list, watch, create, patch]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [list, watch, create, patch, delete]
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [list, watch, create, patch, delete]
# The pods' ServiceAccount (spec.serviceAccount), and the routes to the api (spec.ingress,
# spec.httpRoute): written like the other children, deleted when the spec drops them.
- apiGroups: [""]
  resources: [serviceaccounts]
  verbs: [list, watch, create, patch, delete]
- apiGroups: [networking.k8s.io]
  resources: [ingresses]
  verbs: [list, watch, create, patch, delete]
- apiGroups: [gateway.networking.k8s.io]
  resources: [httproutes]
  verbs: [list, watch, create, patch, delete]
# Pods: watched; a stuck jobs-runner pod is deleted on rollback (kubernetes/kubernetes#67250).
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch, delete]
# Secrets: read, never written or listed.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create]
{{- end -}}
