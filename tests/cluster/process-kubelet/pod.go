package main

// The pure half of the process kubelet: how a pod's containers become local commands
// (environment, volume paths) and what status a pod reports for the state of its processes.
// No API calls here, so both are unit-tested (pod_test.go).

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Lookup reads one key of a Secret or ConfigMap in the pod's namespace; ok is false when the
// object or the key is missing.
type Lookup func(kind, name, key string) (value string, ok bool, err error)

// ListData reads every key of a Secret or ConfigMap (for envFrom); ok is false when missing.
type ListData func(kind, name string) (data map[string]string, ok bool, err error)

// PodFacts are the values a fieldRef may name.
type PodFacts struct {
	Name, Namespace, UID, NodeName, ServiceAccount, PodIP, HostIP string
	Labels, Annotations                                           map[string]string
}

// ResolveEnv returns a container's environment in Kubernetes order: envFrom first, then env,
// later entries overriding earlier ones; `$(VAR)` references to earlier variables are expanded
// as the kubelet does. A missing non-optional Secret/ConfigMap (or key) is an error, which the
// kubelet reports as CreateContainerConfigError and retries.
func ResolveEnv(c *corev1.Container, facts PodFacts, lookup Lookup, list ListData) ([]string, error) {
	values := map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, seen := values[k]; !seen {
			order = append(order, k)
		}
		values[k] = v
	}
	for _, from := range c.EnvFrom {
		kind, name, optional := "", "", false
		switch {
		case from.SecretRef != nil:
			kind, name, optional = "Secret", from.SecretRef.Name, from.SecretRef.Optional != nil && *from.SecretRef.Optional
		case from.ConfigMapRef != nil:
			kind, name, optional = "ConfigMap", from.ConfigMapRef.Name, from.ConfigMapRef.Optional != nil && *from.ConfigMapRef.Optional
		default:
			continue
		}
		data, ok, err := list(kind, name)
		if err != nil {
			return nil, err
		}
		if !ok {
			if optional {
				continue
			}
			return nil, fmt.Errorf("%s %q not found", strings.ToLower(kind), name)
		}
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			set(from.Prefix+k, data[k])
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			set(e.Name, expand(e.Value, values))
			continue
		}
		v, ok, err := resolveSource(e.ValueFrom, facts, lookup)
		if err != nil {
			return nil, fmt.Errorf("env %s: %w", e.Name, err)
		}
		if ok {
			set(e.Name, v)
		}
	}
	env := make([]string, 0, len(order))
	for _, k := range order {
		env = append(env, k+"="+values[k])
	}
	return env, nil
}

func resolveSource(src *corev1.EnvVarSource, facts PodFacts, lookup Lookup) (string, bool, error) {
	keyRef := func(kind, name, key string, optional *bool) (string, bool, error) {
		v, ok, err := lookup(kind, name, key)
		if err != nil {
			return "", false, err
		}
		if !ok {
			if optional != nil && *optional {
				return "", false, nil
			}
			return "", false, fmt.Errorf("key %q of %s %q not found", key, strings.ToLower(kind), name)
		}
		return v, true, nil
	}
	switch {
	case src.SecretKeyRef != nil:
		r := src.SecretKeyRef
		return keyRef("Secret", r.Name, r.Key, r.Optional)
	case src.ConfigMapKeyRef != nil:
		r := src.ConfigMapKeyRef
		return keyRef("ConfigMap", r.Name, r.Key, r.Optional)
	case src.FieldRef != nil:
		path := src.FieldRef.FieldPath
		switch path {
		case "metadata.name":
			return facts.Name, true, nil
		case "metadata.namespace":
			return facts.Namespace, true, nil
		case "metadata.uid":
			return facts.UID, true, nil
		case "spec.nodeName":
			return facts.NodeName, true, nil
		case "spec.serviceAccountName":
			return facts.ServiceAccount, true, nil
		case "status.podIP", "status.podIPs":
			return facts.PodIP, true, nil
		case "status.hostIP", "status.hostIPs":
			return facts.HostIP, true, nil
		}
		for prefix, m := range map[string]map[string]string{"metadata.labels['": facts.Labels, "metadata.annotations['": facts.Annotations} {
			if strings.HasPrefix(path, prefix) && strings.HasSuffix(path, "']") {
				return m[strings.TrimSuffix(strings.TrimPrefix(path, prefix), "']")], true, nil
			}
		}
		return "", false, fmt.Errorf("fieldRef %q is not supported by the process kubelet", path)
	case src.ResourceFieldRef != nil:
		return "", false, nil
	}
	return "", false, nil
}

// expand replaces $(NAME) with earlier variables; $$ escapes; unknown references stay as written.
func expand(s string, vars map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+end]
			if v, ok := vars[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+end+1])
			}
			i += end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

// Mounts maps each of a container's volumeMount paths to the pod's directory for that volume.
// With no mount namespaces, a path inside a mount is rewritten to the directory wherever it
// appears as a prefix of an argument, an env value or the working directory.
type Mounts []struct{ From, To string }

// MountsFor returns a container's mounts, longest mount path first.
func MountsFor(c *corev1.Container, volumesDir string) Mounts {
	var m Mounts
	for _, vm := range c.VolumeMounts {
		to := filepath.Join(volumesDir, vm.Name)
		if vm.SubPath != "" {
			to = filepath.Join(to, vm.SubPath)
		}
		m = append(m, struct{ From, To string }{filepath.Clean(vm.MountPath), to})
	}
	sort.Slice(m, func(i, j int) bool { return len(m[i].From) > len(m[j].From) })
	return m
}

// Map rewrites mount paths inside s (at its start, or after '=' or ':' as in `--out=/x` or PATH lists).
func (m Mounts) Map(s string) string {
	for _, mt := range m {
		for _, sep := range []string{"", "=", ":"} {
			idx := 0
			for {
				var at int
				if sep == "" {
					if idx > 0 || !hasPathPrefix(s, mt.From) {
						break
					}
					at = 0
				} else {
					k := strings.Index(s[idx:], sep+mt.From)
					if k < 0 {
						break
					}
					at = idx + k + len(sep)
					if !hasPathPrefix(s[at:], mt.From) {
						idx = at
						continue
					}
				}
				s = s[:at] + mt.To + s[at+len(mt.From):]
				idx = at + len(mt.To)
				if sep == "" {
					break
				}
			}
		}
	}
	return s
}

func hasPathPrefix(s, prefix string) bool {
	return strings.HasPrefix(s, prefix) && (len(s) == len(prefix) || s[len(prefix)] == '/' || prefix == "/")
}

// Run is what happened to one container, as the kubelet saw it.
type Run struct {
	Started, Finished time.Time
	Running, Done     bool
	ExitCode          int32
	Reason, Message   string // terminated reason or, while not started, the waiting reason
	Restarts          int32
	PID               int
}

// PodState is the kubelet's knowledge of a pod: one Run per init container and container.
type PodState struct {
	Started    time.Time
	Init, Main map[string]*Run
	// Phase is set once the pod has finished (Succeeded or Failed), with its reason.
	Final           corev1.PodPhase
	Reason, Message string
	HostIP, PodIP   string
}

// ComputeStatus is the pod status the kubelet reports for state.
func ComputeStatus(pod *corev1.Pod, st *PodState, now time.Time) corev1.PodStatus {
	s := corev1.PodStatus{
		HostIP:   st.HostIP,
		HostIPs:  []corev1.HostIP{{IP: st.HostIP}},
		PodIP:    st.PodIP,
		PodIPs:   []corev1.PodIP{{IP: st.PodIP}},
		QOSClass: pod.Status.QOSClass,
		Reason:   st.Reason,
		Message:  st.Message,
	}
	if !st.Started.IsZero() {
		t := metav1.NewTime(st.Started)
		s.StartTime = &t
	}
	initDone := true
	for _, c := range pod.Spec.InitContainers {
		r := st.Init[c.Name]
		if r == nil || !r.Done || r.ExitCode != 0 {
			initDone = false
		}
		s.InitContainerStatuses = append(s.InitContainerStatuses, containerStatus(c, r))
	}
	allRunning, anyRunning, allDone, allOK := len(pod.Spec.Containers) > 0, false, true, true
	for _, c := range pod.Spec.Containers {
		r := st.Main[c.Name]
		cs := containerStatus(c, r)
		s.ContainerStatuses = append(s.ContainerStatuses, cs)
		if r == nil || !r.Running {
			allRunning = false
		} else {
			anyRunning = true
		}
		if r == nil || !r.Done {
			allDone = false
		} else if r.ExitCode != 0 {
			allOK = false
		}
	}
	switch {
	case st.Final != "":
		s.Phase = st.Final
	case allDone && allOK:
		s.Phase = corev1.PodSucceeded
	case anyRunning || allDone:
		s.Phase = corev1.PodRunning
	default:
		s.Phase = corev1.PodPending
	}
	ready := allRunning && st.Final == ""
	cond := func(t corev1.PodConditionType, ok bool, reason string) corev1.PodCondition {
		c := corev1.PodCondition{Type: t, Status: corev1.ConditionFalse, Reason: reason}
		if ok {
			c.Status, c.Reason = corev1.ConditionTrue, ""
		}
		// Keep the transition time of an unchanged condition, as the kubelet does.
		c.LastTransitionTime = metav1.NewTime(now)
		for _, old := range pod.Status.Conditions {
			if old.Type == t && old.Status == c.Status {
				c.LastTransitionTime = old.LastTransitionTime
			}
		}
		return c
	}
	notReady := "ContainersNotReady"
	if s.Phase == corev1.PodSucceeded || s.Phase == corev1.PodFailed {
		notReady = "PodCompleted"
	}
	initReason := "ContainersNotInitialized"
	if s.Phase == corev1.PodSucceeded || s.Phase == corev1.PodFailed {
		initReason = "PodCompleted"
	}
	s.Conditions = []corev1.PodCondition{
		cond(corev1.PodReadyToStartContainers, !st.Started.IsZero(), ""),
		cond(corev1.PodInitialized, initDone, initReason),
		cond(corev1.PodReady, ready, notReady),
		cond(corev1.ContainersReady, ready, notReady),
		cond(corev1.PodScheduled, true, ""),
	}
	return s
}

func containerStatus(c corev1.Container, r *Run) corev1.ContainerStatus {
	cs := corev1.ContainerStatus{
		Name:    c.Name,
		Image:   c.Image,
		ImageID: "process-kubelet://" + c.Image,
	}
	if r == nil {
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "PodInitializing"}
		return cs
	}
	cs.RestartCount = r.Restarts
	started := !r.Started.IsZero()
	cs.Started = &started
	switch {
	case r.Running:
		cs.State.Running = &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(r.Started)}
		cs.Ready = true
		cs.ContainerID = fmt.Sprintf("process://%d", r.PID)
	case r.Done:
		reason := r.Reason
		if reason == "" {
			reason = "Completed"
			if r.ExitCode != 0 {
				reason = "Error"
			}
		}
		cs.State.Terminated = &corev1.ContainerStateTerminated{
			ExitCode:   r.ExitCode,
			Reason:     reason,
			Message:    r.Message,
			StartedAt:  metav1.NewTime(r.Started),
			FinishedAt: metav1.NewTime(r.Finished),
		}
		if r.PID != 0 {
			cs.State.Terminated.ContainerID = fmt.Sprintf("process://%d", r.PID)
			cs.ContainerID = cs.State.Terminated.ContainerID
		}
	default:
		reason := r.Reason
		if reason == "" {
			reason = "ContainerCreating"
		}
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: reason, Message: r.Message}
	}
	return cs
}
