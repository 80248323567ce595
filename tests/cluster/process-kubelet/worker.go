package main

// One worker per pod: runs its containers as process groups, keeps its PodState, writes the
// status, and carries out its deletion (SIGTERM, grace period, SIGKILL, delete with grace 0).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/klog/v2"
)

type worker struct {
	k   *Kubelet
	dir string

	mu       sync.Mutex
	pod      *corev1.Pod
	st       PodState
	procs    map[string]*exec.Cmd // running containers by name
	started  bool
	deleting chan struct{} // closed when the pod is being deleted or hit its deadline
	stopOnce sync.Once
	done     chan struct{} // closed when run has returned
	wake     chan struct{}
}

func newWorker(k *Kubelet, pod *corev1.Pod) *worker {
	return &worker{
		k: k, pod: pod.DeepCopy(),
		dir:      filepath.Join(k.root, "pods", fmt.Sprintf("%s_%s_%s", pod.Namespace, pod.Name, pod.UID)),
		st:       PodState{Init: map[string]*Run{}, Main: map[string]*Run{}, HostIP: k.address, PodIP: k.address},
		procs:    map[string]*exec.Cmd{},
		deleting: make(chan struct{}),
		done:     make(chan struct{}),
		wake:     make(chan struct{}, 1),
	}
}

func (w *worker) neverStarted() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return !w.started
}

func (w *worker) update(ctx context.Context, pod *corev1.Pod) {
	w.mu.Lock()
	w.pod = pod.DeepCopy()
	w.mu.Unlock()
	if pod.DeletionTimestamp != nil {
		w.stop("")
		go w.finishDeletion(ctx)
	}
}

// stop ends the pod's processes (reason set: the pod failed with it, e.g. DeadlineExceeded).
func (w *worker) stop(reason string) {
	w.stopOnce.Do(func() {
		w.mu.Lock()
		if reason != "" && w.st.Final == "" {
			w.st.Final, w.st.Reason = corev1.PodFailed, reason
			w.st.Message = "Pod was active on the node longer than the specified deadline"
		}
		w.mu.Unlock()
		close(w.deleting)
	})
}

func (w *worker) gracePeriod() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.pod.DeletionGracePeriodSeconds != nil:
		return time.Duration(*w.pod.DeletionGracePeriodSeconds) * time.Second
	case w.pod.Spec.TerminationGracePeriodSeconds != nil:
		return time.Duration(*w.pod.Spec.TerminationGracePeriodSeconds) * time.Second
	}
	return 30 * time.Second
}

// killAll sends SIGTERM to every running container's process group, then SIGKILL after grace.
func (w *worker) killAll(grace time.Duration) {
	w.signalAll(syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) && w.anyRunning() {
		time.Sleep(100 * time.Millisecond)
	}
	w.signalAll(syscall.SIGKILL)
}

func (w *worker) signalAll(sig syscall.Signal) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range w.procs {
		if c.Process != nil {
			_ = syscall.Kill(-c.Process.Pid, sig)
		}
	}
}

func (w *worker) anyRunning() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.procs) > 0
}

var deletionOnce sync.Map

// finishDeletion kills the processes within the grace period, posts the final status and
// deletes the pod object with grace 0, which is what completes a graceful deletion.
func (w *worker) finishDeletion(ctx context.Context) {
	if _, dup := deletionOnce.LoadOrStore(w, true); dup {
		return
	}
	w.stop("")
	w.killAll(w.gracePeriod())
	if !w.neverStarted() {
		select {
		case <-w.done:
		case <-time.After(5 * time.Second):
		}
	}
	w.mu.Lock()
	pod := w.pod
	w.mu.Unlock()
	zero := int64(0)
	err := w.k.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: &zero,
		Preconditions:      &metav1.Preconditions{UID: &pod.UID},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) && ctx.Err() == nil {
		klog.Errorf("deleting pod %s/%s: %v", pod.Namespace, pod.Name, err)
	}
}

// run is the pod's life: init containers in order, then the containers in parallel.
func (w *worker) run(ctx context.Context) {
	defer close(w.done)
	w.mu.Lock()
	w.started = true
	w.st.Started = time.Now()
	pod := w.pod.DeepCopy()
	w.mu.Unlock()
	go w.statusWriter(ctx)
	for _, sub := range []string{"volumes", "logs", "root"} {
		if err := os.MkdirAll(filepath.Join(w.dir, sub), 0o755); err != nil {
			klog.Errorf("pod %s/%s: %v", pod.Namespace, pod.Name, err)
		}
	}
	for _, v := range pod.Spec.Volumes {
		_ = os.MkdirAll(filepath.Join(w.dir, "volumes", v.Name), 0o777)
	}
	if d := pod.Spec.ActiveDeadlineSeconds; d != nil {
		t := time.AfterFunc(time.Duration(*d)*time.Second, func() {
			w.stop("DeadlineExceeded")
			w.killAll(w.gracePeriod())
			w.poke()
		})
		defer t.Stop()
	}
	w.poke()

	policy := pod.Spec.RestartPolicy
	for _, c := range pod.Spec.InitContainers {
		for attempt := 0; ; attempt++ {
			code := w.runContainer(ctx, pod, c, true)
			if w.stopping() {
				w.poke()
				return
			}
			if code == 0 {
				break
			}
			if policy == corev1.RestartPolicyNever {
				w.finish(corev1.PodFailed)
				return
			}
			w.backoff(attempt)
		}
	}
	var wg sync.WaitGroup
	for _, c := range pod.Spec.Containers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for attempt := 0; ; attempt++ {
				code := w.runContainer(ctx, pod, c, false)
				if w.stopping() || policy == corev1.RestartPolicyNever ||
					policy == corev1.RestartPolicyOnFailure && code == 0 {
					return
				}
				w.backoff(attempt)
			}
		}()
	}
	wg.Wait()
	if !w.stopping() && policy == corev1.RestartPolicyNever {
		w.mu.Lock()
		failed := false
		for _, r := range w.st.Main {
			failed = failed || r.ExitCode != 0
		}
		w.mu.Unlock()
		if failed {
			w.finish(corev1.PodFailed)
			return
		}
	}
	w.poke()
}

func (w *worker) finish(phase corev1.PodPhase) {
	w.mu.Lock()
	if w.st.Final == "" {
		w.st.Final = phase
	}
	w.mu.Unlock()
	w.poke()
}

func (w *worker) stopping() bool {
	select {
	case <-w.deleting:
		return true
	default:
		return false
	}
}

func (w *worker) backoff(attempt int) {
	d := time.Duration(1<<min(attempt, 5)) * time.Second
	select {
	case <-w.deleting:
	case <-time.After(d):
	}
}

// runContainer runs one container to its end and returns its exit code.
func (w *worker) runContainer(ctx context.Context, pod *corev1.Pod, c corev1.Container, init bool) int32 {
	runs := w.st.Main
	if init {
		runs = w.st.Init
	}
	w.mu.Lock()
	r := runs[c.Name]
	if r == nil {
		r = &Run{}
		runs[c.Name] = r
	} else {
		restarts := r.Restarts + 1
		*r = Run{Restarts: restarts}
	}
	w.mu.Unlock()
	w.poke()

	setWaiting := func(reason, msg string) {
		w.mu.Lock()
		r.Reason, r.Message = reason, msg
		w.mu.Unlock()
		w.poke()
	}
	var env []string
	for {
		var err error
		env, err = ResolveEnv(&c, w.facts(pod), w.lookup(ctx, pod.Namespace), w.listData(ctx, pod.Namespace))
		if err == nil {
			break
		}
		setWaiting("CreateContainerConfigError", err.Error())
		select {
		case <-w.deleting:
			return 137
		case <-time.After(2 * time.Second):
		}
	}
	vars := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	mounts := MountsFor(&c, filepath.Join(w.dir, "volumes"))
	argv := append([]string{}, c.Command...)
	if len(argv) == 0 {
		if ep, ok := w.k.entrypoints[c.Image]; ok {
			argv = []string{ep}
		}
	}
	argv = append(argv, c.Args...)
	for i := range argv {
		argv[i] = mounts.Map(expand(argv[i], vars))
	}
	for i, kv := range env {
		env[i] = mounts.Map(kv)
	}
	wd := filepath.Join(w.dir, "root")
	if c.WorkingDir != "" {
		wd = mounts.Map(c.WorkingDir)
	}

	logPath := filepath.Join(w.dir, "logs", c.Name+".log")
	if r.Restarts > 0 {
		_ = os.Rename(logPath, filepath.Join(w.dir, "logs", c.Name+".previous.log"))
	}
	fail := func(reason string, err error) int32 {
		now := time.Now()
		w.mu.Lock()
		*r = Run{Started: now, Finished: now, Done: true, ExitCode: 128, Reason: reason, Message: err.Error(), Restarts: r.Restarts}
		w.mu.Unlock()
		w.poke()
		return 128
	}
	if len(argv) == 0 {
		return fail("StartError", fmt.Errorf("container %q has no command and image %q has no --image-entrypoint (the process kubelet ignores images)", c.Name, c.Image))
	}
	if err := os.MkdirAll(wd, 0o755); err != nil {
		return fail("StartError", err)
	}
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fail("StartError", err)
	}
	defer logFile.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(append(append([]string{}, w.k.baseEnv...), "HOSTNAME="+pod.Name), env...)
	cmd.Dir = wd
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	w.mu.Lock()
	if w.stopping() {
		w.mu.Unlock()
		return 137
	}
	err = cmd.Start()
	if err == nil {
		w.procs[c.Name] = cmd
		*r = Run{Started: time.Now(), Running: true, PID: cmd.Process.Pid, Restarts: r.Restarts}
	}
	w.mu.Unlock()
	if err != nil {
		fmt.Fprintf(logFile, "[process kubelet] cannot start %q: %v\n", argv[0], err)
		return fail("StartError", err)
	}
	w.poke()
	err = cmd.Wait()
	// A container's end ends everything it started, as a container runtime would.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	code := int32(0)
	reason := ""
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		ws := exitErr.Sys().(syscall.WaitStatus)
		switch {
		case ws.Signaled():
			code = 128 + int32(ws.Signal())
			if ws.Signal() == syscall.SIGKILL {
				reason = "Error"
			}
		default:
			code = int32(ws.ExitStatus())
		}
	} else if err != nil {
		code = 128
	}
	w.mu.Lock()
	delete(w.procs, c.Name)
	r.Running, r.Done, r.Finished, r.ExitCode, r.Reason = false, true, time.Now(), code, reason
	w.mu.Unlock()
	w.poke()
	return code
}

func (w *worker) facts(pod *corev1.Pod) PodFacts {
	return PodFacts{
		Name: pod.Name, Namespace: pod.Namespace, UID: string(pod.UID), NodeName: pod.Spec.NodeName,
		ServiceAccount: pod.Spec.ServiceAccountName, PodIP: w.k.address, HostIP: w.k.address,
		Labels: pod.Labels, Annotations: pod.Annotations,
	}
}

func (w *worker) lookup(ctx context.Context, ns string) Lookup {
	list := w.listData(ctx, ns)
	return func(kind, name, key string) (string, bool, error) {
		data, ok, err := list(kind, name)
		if err != nil || !ok {
			return "", false, err
		}
		v, ok := data[key]
		return v, ok, nil
	}
}

func (w *worker) listData(ctx context.Context, ns string) ListData {
	return func(kind, name string) (map[string]string, bool, error) {
		out := map[string]string{}
		switch kind {
		case "Secret":
			s, err := w.k.client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return nil, false, nil
			} else if err != nil {
				return nil, false, err
			}
			for k, v := range s.Data {
				out[k] = string(v)
			}
			for k, v := range s.StringData {
				out[k] = v
			}
		case "ConfigMap":
			m, err := w.k.client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return nil, false, nil
			} else if err != nil {
				return nil, false, err
			}
			for k, v := range m.Data {
				out[k] = v
			}
		}
		return out, true, nil
	}
}

func (w *worker) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// statusWriter posts the pod's status whenever the worker pokes it, until the pod is gone.
func (w *worker) statusWriter(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		}
		err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
			w.mu.Lock()
			ns, name, uid := w.pod.Namespace, w.pod.Name, w.pod.UID
			w.mu.Unlock()
			cur, err := w.k.client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if cur.UID != uid {
				return nil
			}
			w.mu.Lock()
			cur.Status = ComputeStatus(cur, &w.st, time.Now())
			w.mu.Unlock()
			_, err = w.k.client.CoreV1().Pods(ns).UpdateStatus(ctx, cur, metav1.UpdateOptions{})
			return err
		})
		if apierrors.IsNotFound(err) {
			return
		}
		if err != nil && ctx.Err() == nil {
			klog.Errorf("pod %s status: %v", w.dir, err)
			time.AfterFunc(time.Second, w.poke)
		}
	}
}

// containerLogs serves the API server's pods/log proxy: tailLines, limitBytes, follow, previous.
func (k *Kubelet) containerLogs(rw http.ResponseWriter, req *http.Request) {
	ns, podName, container := req.PathValue("ns"), req.PathValue("pod"), req.PathValue("container")
	k.mu.Lock()
	w := k.byName[ns+"/"+podName]
	k.mu.Unlock()
	if w == nil {
		http.Error(rw, fmt.Sprintf("pod %s/%s is not running on this node", ns, podName), http.StatusNotFound)
		return
	}
	q := req.URL.Query()
	file := filepath.Join(w.dir, "logs", container+".log")
	if q.Get("previous") == "true" {
		file = filepath.Join(w.dir, "logs", container+".previous.log")
	}
	f, err := os.Open(file)
	if err != nil {
		http.Error(rw, fmt.Sprintf("container %q in pod %s/%s has no log yet", container, ns, podName), http.StatusBadRequest)
		return
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		http.Error(rw, err.Error(), http.StatusInternalServerError)
		return
	}
	if n, err := strconv.Atoi(q.Get("tailLines")); err == nil && n >= 0 {
		data = tailLines(data, n)
	}
	if n, err := strconv.Atoi(q.Get("limitBytes")); err == nil && n >= 0 && len(data) > n {
		data = data[:n]
	}
	rw.Header().Set("Content-Type", "text/plain")
	_, _ = rw.Write(data)
	if q.Get("follow") != "true" {
		return
	}
	flusher, _ := rw.(http.Flusher)
	buf := make([]byte, 32*1024)
	for {
		if flusher != nil {
			flusher.Flush()
		}
		n, _ := f.Read(buf)
		if n > 0 {
			_, _ = rw.Write(buf[:n])
			continue
		}
		if !w.containerRunning(container) {
			return
		}
		select {
		case <-req.Context().Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (w *worker) containerRunning(name string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, runs := range []map[string]*Run{w.st.Init, w.st.Main} {
		if r := runs[name]; r != nil && !r.Done {
			return true
		}
	}
	return false
}

// tailLines keeps the last n lines of data.
func tailLines(data []byte, n int) []byte {
	if n == 0 {
		return data[:0]
	}
	end := len(data)
	if end > 0 && data[end-1] == '\n' {
		end--
	}
	for i := end - 1; i >= 0; i-- {
		if data[i] == '\n' {
			n--
			if n == 0 {
				return data[i+1:]
			}
		}
	}
	return data
}
