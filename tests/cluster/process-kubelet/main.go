// Command kubelet is Tomato's process kubelet: a small stand-in for the real kubelet that
// lets a real control plane (tests/cluster/up) run pods on this machine without a container
// runtime. It registers a Node (Ready, with capacity and a Lease heartbeat in kube-node-lease),
// watches the pods bound to it, and runs each as local processes: init containers in order,
// then the containers in parallel, with their command/args, env (values, Secret/ConfigMap keys,
// envFrom, fieldRefs), workingDir, restartPolicy and activeDeadlineSeconds. Status goes through
// the pod's status subresource; logs are files served to `kubectl logs` on the kubelet port.
//
// What it does not do, on purpose:
//   - The image is ignored: commands run on this machine with its PATH. A container without a
//     `command` needs the image's entrypoint from `--image-entrypoint IMAGE=PATH`, else it fails
//     to start (StartError).
//   - No isolation: no namespaces, cgroups, users or security contexts (runAsNonRoot etc. are
//     not checked). Every volume is a per-pod directory; a container's mountPath is rewritten to
//     that directory in its command, args, env values and workingDir (emptyDir semantics only:
//     secret/configMap/projected volumes are empty directories, no service-account token file).
//   - Probes, resources, ports and hostNetwork are ignored; podIP is the host's (127.0.0.1).
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	coordv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"
	"k8s.io/klog/v2"
)

type imageFlag map[string]string

func (f imageFlag) String() string { return fmt.Sprint(map[string]string(f)) }
func (f imageFlag) Set(v string) error {
	image, path, ok := strings.Cut(v, "=")
	if !ok || image == "" || path == "" {
		return fmt.Errorf("want IMAGE=PATH, got %q", v)
	}
	f[image] = path
	return nil
}

// Kubelet holds what every pod worker needs.
type Kubelet struct {
	client      kubernetes.Interface
	node        string
	root        string
	address     string
	entrypoints map[string]string
	baseEnv     []string

	mu      sync.Mutex
	workers map[types.UID]*worker
	byName  map[string]*worker // "ns/name" -> the latest worker, for logs
}

func main() {
	var (
		kubeconfig = flag.String("kubeconfig", "", "kubeconfig of the node's identity (system:node:<name>)")
		node       = flag.String("node-name", "process-node", "name of the Node to register")
		root       = flag.String("root-dir", "", "directory for pod directories and logs (required)")
		port       = flag.Int("port", 10250, "HTTPS port serving /containerLogs to the API server")
		cert       = flag.String("tls-cert-file", "", "serving certificate (signed by the cluster CA)")
		key        = flag.String("tls-private-key-file", "", "serving key")
		clientCA   = flag.String("client-ca-file", "", "CA that signs the API server's client certificate; when set, clients must present one")
		apiHost    = flag.String("kubernetes-service-host", "", "KUBERNETES_SERVICE_HOST given to containers")
		apiPort    = flag.String("kubernetes-service-port", "", "KUBERNETES_SERVICE_PORT given to containers")
	)
	entrypoints := imageFlag{}
	flag.Var(entrypoints, "image-entrypoint", "IMAGE=PATH: the entrypoint of IMAGE, for containers without a command (repeatable)")
	klog.InitFlags(nil)
	flag.Parse()
	if *root == "" || *kubeconfig == "" {
		fmt.Fprintln(os.Stderr, "kubelet: --root-dir and --kubeconfig are required")
		os.Exit(2)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		klog.Fatalf("kubeconfig: %v", err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	client := kubernetes.NewForConfigOrDie(cfg)

	base := []string{"PATH=" + os.Getenv("PATH")}
	if h := os.Getenv("HOME"); h != "" {
		base = append(base, "HOME="+h)
	}
	if *apiHost != "" {
		base = append(base, "KUBERNETES_SERVICE_HOST="+*apiHost, "KUBERNETES_SERVICE_PORT="+*apiPort)
	}
	k := &Kubelet{
		client: client, node: *node, root: *root, address: "127.0.0.1",
		entrypoints: entrypoints, baseEnv: base,
		workers: map[types.UID]*worker{}, byName: map[string]*worker{},
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	if err := k.serveLogs(*port, *cert, *key, *clientCA); err != nil {
		klog.Fatalf("logs server: %v", err)
	}
	if err := k.registerNode(ctx, *port); err != nil {
		klog.Fatalf("registering node %s: %v", *node, err)
	}
	go k.heartbeat(ctx)

	factory := informers.NewSharedInformerFactoryWithOptions(client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", *node).String()
		}))
	pods := factory.Core().V1().Pods().Informer()
	_, _ = pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { k.sync(ctx, o.(*corev1.Pod)) },
		UpdateFunc: func(_, o any) { k.sync(ctx, o.(*corev1.Pod)) },
		DeleteFunc: func(o any) {
			if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = t.Obj
			}
			if p, ok := o.(*corev1.Pod); ok {
				k.forget(p)
			}
		},
	})
	factory.Start(ctx.Done())
	klog.Infof("node %s: running pods under %s", *node, *root)
	<-ctx.Done()
	klog.Info("stopping: killing every pod's processes")
	k.mu.Lock()
	var all []*worker
	for _, w := range k.workers {
		all = append(all, w)
	}
	k.mu.Unlock()
	var wg sync.WaitGroup
	for _, w := range all {
		wg.Add(1)
		go func() { defer wg.Done(); w.killAll(2 * time.Second) }()
	}
	wg.Wait()
}

// sync starts a worker for a new pod, or passes a deletion to its worker.
func (k *Kubelet) sync(ctx context.Context, pod *corev1.Pod) {
	k.mu.Lock()
	w := k.workers[pod.UID]
	if w == nil {
		terminal := pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
		if terminal && pod.DeletionTimestamp == nil {
			k.mu.Unlock()
			return // finished before this kubelet started: nothing to run
		}
		w = newWorker(k, pod)
		k.workers[pod.UID] = w
		k.byName[pod.Namespace+"/"+pod.Name] = w
		k.mu.Unlock()
		if terminal || pod.DeletionTimestamp != nil && w.neverStarted() {
			go w.finishDeletion(ctx)
			return
		}
		go w.run(ctx)
	} else {
		k.mu.Unlock()
	}
	w.update(ctx, pod)
}

func (k *Kubelet) forget(pod *corev1.Pod) {
	k.mu.Lock()
	w := k.workers[pod.UID]
	delete(k.workers, pod.UID)
	if k.byName[pod.Namespace+"/"+pod.Name] == w {
		delete(k.byName, pod.Namespace+"/"+pod.Name)
	}
	k.mu.Unlock()
	if w != nil {
		go func() {
			w.killAll(time.Second)
			_ = os.RemoveAll(w.dir)
		}()
	}
}

func (k *Kubelet) registerNode(ctx context.Context, port int) error {
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:              *resource.NewQuantity(int64(runtime.NumCPU()), resource.DecimalSI),
		corev1.ResourceMemory:           resource.MustParse("16Gi"),
		corev1.ResourcePods:             resource.MustParse("110"),
		corev1.ResourceEphemeralStorage: resource.MustParse("100Gi"),
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: k.node,
			Labels: map[string]string{
				"kubernetes.io/hostname": k.node, "kubernetes.io/os": runtime.GOOS,
				"kubernetes.io/arch": runtime.GOARCH, "tomato.dev/process-kubelet": "true",
			},
		},
	}
	created, err := k.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		created, err = k.client.CoreV1().Nodes().Get(ctx, k.node, metav1.GetOptions{})
	}
	if err != nil {
		return err
	}
	created.Status = corev1.NodeStatus{
		Capacity: capacity, Allocatable: capacity,
		Phase:           corev1.NodeRunning,
		Addresses:       []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: k.address}, {Type: corev1.NodeHostName, Address: k.node}},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(port)}},
		NodeInfo: corev1.NodeSystemInfo{
			KubeletVersion: "v0.0.0-process", OperatingSystem: runtime.GOOS, Architecture: runtime.GOARCH,
			ContainerRuntimeVersion: "process://", KernelVersion: "", OSImage: "process kubelet (images ignored)",
		},
		Conditions: nodeConditions(time.Now(), nil),
	}
	_, err = k.client.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{})
	return err
}

func nodeConditions(now time.Time, old []corev1.NodeCondition) []corev1.NodeCondition {
	t := metav1.NewTime(now)
	conds := []corev1.NodeCondition{
		{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", Message: "process kubelet is posting ready status"},
		{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientMemory"},
		{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasNoDiskPressure"},
		{Type: corev1.NodePIDPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientPID"},
	}
	for i := range conds {
		conds[i].LastHeartbeatTime = t
		conds[i].LastTransitionTime = t
		for _, o := range old {
			if o.Type == conds[i].Type && o.Status == conds[i].Status {
				conds[i].LastTransitionTime = o.LastTransitionTime
			}
		}
	}
	return conds
}

// heartbeat renews the node's Lease every 10 s and posts its status every 30 s.
func (k *Kubelet) heartbeat(ctx context.Context) {
	leases := k.client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for n := 0; ; n++ {
		now := metav1.NewMicroTime(time.Now())
		lease, err := leases.Get(ctx, k.node, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			dur := int32(40)
			holder := k.node
			l := &coordv1.Lease{
				ObjectMeta: metav1.ObjectMeta{Name: k.node, Namespace: corev1.NamespaceNodeLease},
				Spec:       coordv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &dur, RenewTime: &now},
			}
			if node, err := k.client.CoreV1().Nodes().Get(ctx, k.node, metav1.GetOptions{}); err == nil {
				l.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}}
			}
			_, err = leases.Create(ctx, l, metav1.CreateOptions{})
			if err != nil && ctx.Err() == nil {
				klog.Errorf("creating lease: %v", err)
			}
		case err == nil:
			lease.Spec.RenewTime = &now
			if _, err := leases.Update(ctx, lease, metav1.UpdateOptions{}); err != nil && ctx.Err() == nil {
				klog.Errorf("renewing lease: %v", err)
			}
		default:
			if ctx.Err() == nil {
				klog.Errorf("reading lease: %v", err)
			}
		}
		if n%3 == 2 {
			err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
				node, err := k.client.CoreV1().Nodes().Get(ctx, k.node, metav1.GetOptions{})
				if err != nil {
					return err
				}
				node.Status.Conditions = nodeConditions(time.Now(), node.Status.Conditions)
				_, err = k.client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
				return err
			})
			if err != nil && ctx.Err() == nil {
				klog.Errorf("posting node status: %v", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (k *Kubelet) serveLogs(port int, certFile, keyFile, clientCA string) error {
	if certFile == "" {
		return fmt.Errorf("--tls-cert-file is required")
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if clientCA != "" {
		pem, err := os.ReadFile(clientCA)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		tlsCfg.ClientCAs, tlsCfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/containerLogs/{ns}/{pod}/{container}", k.containerLogs)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	srv := &http.Server{Addr: fmt.Sprintf("%s:%d", k.address, port), Handler: mux, TLSConfig: tlsCfg, ReadHeaderTimeout: 10 * time.Second}
	ln, err := tls.Listen("tcp", srv.Addr, func() *tls.Config {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			klog.Fatalf("serving cert: %v", err)
		}
		c := tlsCfg.Clone()
		c.Certificates = []tls.Certificate{cert}
		return c
	}())
	if err != nil {
		return err
	}
	go func() { _ = srv.Serve(ln) }()
	return nil
}
