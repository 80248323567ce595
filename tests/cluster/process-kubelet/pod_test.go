package main

import (
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

func objects(kind, name string) (map[string]string, bool, error) {
	all := map[string]map[string]string{
		"Secret/token":   {"token": "s3cret"},
		"ConfigMap/conf": {"B": "2", "A": "1"},
	}
	d, ok := all[kind+"/"+name]
	return d, ok, nil
}

func lookupIn(kind, name, key string) (string, bool, error) {
	d, ok, _ := objects(kind, name)
	v, ok2 := d[key]
	return v, ok && ok2, nil
}

func TestEnvResolvesValuesSecretsConfigMapsFieldsAndReferencesInOrder(t *testing.T) {
	yes := true
	c := &corev1.Container{
		EnvFrom: []corev1.EnvFromSource{{Prefix: "CM_", ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "conf"}}}},
		Env: []corev1.EnvVar{
			{Name: "PLAIN", Value: "x"},
			{Name: "TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "token"}, Key: "token"}}},
			{Name: "POD", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			{Name: "NS", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
			{Name: "IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
			{Name: "MAYBE", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "absent"}, Key: "k", Optional: &yes}}},
			{Name: "REF", Value: "$(PLAIN)-$(CM_A)-$$(PLAIN)-$(UNKNOWN)"},
			{Name: "PLAIN", Value: "y"},
		},
	}
	facts := PodFacts{Name: "p", Namespace: "qa", PodIP: "127.0.0.1"}
	env, err := ResolveEnv(c, facts, lookupIn, objects)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"CM_A=1", "CM_B=2", "PLAIN=y", "TOKEN=s3cret", "POD=p", "NS=qa", "IP=127.0.0.1", "REF=x-1-$(PLAIN)-$(UNKNOWN)"}
	if !reflect.DeepEqual(env, want) {
		t.Fatalf("env = %q, want %q", env, want)
	}
}

func TestEnvWithAMissingSecretKeyIsAnErrorNamingIt(t *testing.T) {
	c := &corev1.Container{Env: []corev1.EnvVar{
		{Name: "TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "token"}, Key: "nope"}}},
	}}
	_, err := ResolveEnv(c, PodFacts{}, lookupIn, objects)
	if err == nil || err.Error() != `env TOKEN: key "nope" of secret "token" not found` {
		t.Fatalf("err = %v", err)
	}
}

func TestMountPathsAreRewrittenToThePodsVolumeDirectories(t *testing.T) {
	c := &corev1.Container{VolumeMounts: []corev1.VolumeMount{
		{Name: "bin", MountPath: "/tomato/bin"}, {Name: "work", MountPath: "/tomato/work/"},
	}}
	m := MountsFor(c, "/pods/x/volumes")
	cases := map[string]string{
		"/tomato/bin/tomato":             "/pods/x/volumes/bin/tomato",
		"--junit=/tomato/work/junit.xml": "--junit=/pods/x/volumes/work/junit.xml",
		"PATH=/usr/bin:/tomato/bin":      "PATH=/usr/bin:/pods/x/volumes/bin",
		"/tomato/binary":                 "/tomato/binary",
		"/elsewhere/tomato/bin":          "/elsewhere/tomato/bin",
		"/tomato/work":                   "/pods/x/volumes/work",
	}
	for in, want := range cases {
		if got := m.Map(in); got != want {
			t.Errorf("Map(%q) = %q, want %q", in, got, want)
		}
	}
}

func jobPod() *corev1.Pod {
	return &corev1.Pod{Spec: corev1.PodSpec{
		RestartPolicy:  corev1.RestartPolicyNever,
		InitContainers: []corev1.Container{{Name: "init", Image: "i"}},
		Containers:     []corev1.Container{{Name: "tests", Image: "t"}},
	}}
}

func cond(s corev1.PodStatus, t corev1.PodConditionType) corev1.ConditionStatus {
	for _, c := range s.Conditions {
		if c.Type == t {
			return c.Status
		}
	}
	return ""
}

func TestStatusGoesFromPendingThroughRunningToSucceeded(t *testing.T) {
	pod := jobPod()
	t0 := time.Unix(1_700_000_000, 0)
	st := &PodState{Started: t0, Init: map[string]*Run{}, Main: map[string]*Run{}, HostIP: "127.0.0.1", PodIP: "127.0.0.1"}

	s := ComputeStatus(pod, st, t0)
	if s.Phase != corev1.PodPending || cond(s, corev1.PodInitialized) != corev1.ConditionFalse || cond(s, corev1.PodScheduled) != corev1.ConditionTrue {
		t.Fatalf("pending: %+v", s)
	}
	if s.ContainerStatuses[0].State.Waiting == nil || s.PodIP != "127.0.0.1" || s.StartTime == nil {
		t.Fatalf("pending container: %+v", s)
	}

	st.Init["init"] = &Run{Started: t0, Finished: t0, Done: true}
	st.Main["tests"] = &Run{Started: t0.Add(time.Second), Running: true, PID: 42}
	s = ComputeStatus(pod, st, t0.Add(time.Second))
	if s.Phase != corev1.PodRunning || cond(s, corev1.PodReady) != corev1.ConditionTrue || cond(s, corev1.PodInitialized) != corev1.ConditionTrue {
		t.Fatalf("running: %+v", s)
	}
	if s.InitContainerStatuses[0].State.Terminated.Reason != "Completed" || s.ContainerStatuses[0].State.Running == nil {
		t.Fatalf("running containers: %+v", s)
	}

	st.Main["tests"] = &Run{Started: t0.Add(time.Second), Finished: t0.Add(3 * time.Second), Done: true, PID: 42}
	s = ComputeStatus(pod, st, t0.Add(3*time.Second))
	term := s.ContainerStatuses[0].State.Terminated
	if s.Phase != corev1.PodSucceeded || term == nil || term.ExitCode != 0 || term.FinishedAt.Time != t0.Add(3*time.Second) {
		t.Fatalf("succeeded: %+v", s)
	}
	if cond(s, corev1.PodReady) != corev1.ConditionFalse {
		t.Fatalf("a finished pod is not ready: %+v", s.Conditions)
	}
}

func TestAFailedContainerOfANeverRestartingPodFailsThePodWithItsExitCode(t *testing.T) {
	pod := jobPod()
	t0 := time.Unix(1_700_000_000, 0)
	st := &PodState{Started: t0, Final: corev1.PodFailed,
		Init: map[string]*Run{"init": {Started: t0, Finished: t0, Done: true}},
		Main: map[string]*Run{"tests": {Started: t0, Finished: t0, Done: true, ExitCode: 3}}}
	s := ComputeStatus(pod, st, t0)
	term := s.ContainerStatuses[0].State.Terminated
	if s.Phase != corev1.PodFailed || term.ExitCode != 3 || term.Reason != "Error" {
		t.Fatalf("failed: %+v", s)
	}
}

func TestTailLinesKeepsTheLastLines(t *testing.T) {
	for n, want := range map[int]string{0: "", 1: "c\n", 2: "b\nc\n", 5: "a\nb\nc\n"} {
		if got := string(tailLines([]byte("a\nb\nc\n"), n)); got != want {
			t.Errorf("tailLines(%d) = %q, want %q", n, got, want)
		}
	}
}

// An Indexed Job's pod learns its index the way the Job controller tells it: JOB_COMPLETION_INDEX
// is a fieldRef to the pod's completion-index annotation, and its shard list comes by envFrom.
func TestEnvGivesAnIndexedJobsPodItsCompletionIndexByAnnotationFieldRef(t *testing.T) {
	c := &corev1.Container{
		EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "conf"}}}},
		Env: []corev1.EnvVar{
			{Name: "JOB_COMPLETION_INDEX", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}},
		},
	}
	facts := PodFacts{Name: "run-1-2-abcde", Annotations: map[string]string{"batch.kubernetes.io/job-completion-index": "2"}}
	env, err := ResolveEnv(c, facts, lookupIn, objects)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"A=1", "B=2", "JOB_COMPLETION_INDEX=2"}
	if !reflect.DeepEqual(env, want) {
		t.Fatalf("env = %q, want %q", env, want)
	}
}
