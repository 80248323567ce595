// Command cluster-up starts a real Kubernetes control plane on 127.0.0.1 and supervises it:
// etcd, kube-apiserver, kube-controller-manager, kube-scheduler and the process kubelet, each
// with its own free port, certificates and log file in one directory. tests/cluster/up builds
// the binaries (tests/cluster/build) and runs this; see the README's "Real Kubernetes control
// plane" section.
//
// When everything is ready it prints `export KUBECONFIG=...` and `export PATH=...:$PATH`, each
// on its own line, and writes the same plus the API server's URL to <dir>/cluster.env. It
// then waits for SIGINT or SIGTERM (or for a component to die), stops everything it started,
// and removes its directory unless --keep or --dir was given.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

type component struct {
	name, binary string
	args         []string
	cmd          *exec.Cmd
	log          string
	done         chan struct{}
	err          error
	intentional  atomic.Bool // killed on purpose (a restart): not a failure
}

type cluster struct {
	dir, bin   string
	components []*component
	died       chan *component
	// For restarts: the API server's URL and an admin client.
	server string
	admin  *http.Client
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	var (
		dirFlag = flag.String("dir", "", "directory for data, certificates, kubeconfigs and logs (kept); default: a new temporary directory (removed on exit)")
		keep    = flag.Bool("keep", false, "keep the temporary directory on exit")
		bin     = flag.String("bin", "", "directory holding the binaries (default: this program's)")
		node    = flag.String("node-name", "tomato-node", "name of the process kubelet's Node")
		timeout = flag.Duration("timeout", 3*time.Minute, "how long to wait for the cluster to become ready")
	)
	var entrypoints multiFlag
	flag.Var(&entrypoints, "image-entrypoint", "IMAGE=PATH given to the process kubelet (repeatable): the entrypoint of an image for containers without a command")
	flag.Parse()
	if *bin == "" {
		exe, err := os.Executable()
		if err != nil {
			fatal(err)
		}
		*bin = filepath.Dir(exe)
	}
	dir := *dirFlag
	remove := false
	if dir == "" {
		d, err := os.MkdirTemp("", "tomato-cluster-")
		if err != nil {
			fatal(err)
		}
		dir, remove = d, !*keep
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		fatal(err)
	}
	dir, _ = filepath.Abs(dir)
	c := &cluster{dir: dir, bin: *bin, died: make(chan *component, 8)}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	// SIGUSR1 kills the API server (SIGKILL) and starts it again on the same port and etcd data:
	// what a test of the operator's watches surviving an API server restart needs.
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	err := c.start(ctx, *node, entrypoints, *timeout)
wait:
	for err == nil {
		select {
		case <-ctx.Done():
			break wait
		case <-usr1:
			err = c.restartAPIServer(ctx, *timeout)
		case comp := <-c.died:
			err = fmt.Errorf("%s exited: %v\n%s", comp.name, comp.err, tail(comp.log, 30))
		}
	}
	stop()
	c.stopAll()
	if remove {
		_ = os.RemoveAll(dir)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintf(os.Stderr, "cluster-up: %v\n", err)
	os.Exit(1)
}

func (c *cluster) start(ctx context.Context, node string, entrypoints []string, timeout time.Duration) error {
	deadline, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	pkiDir := filepath.Join(c.dir, "pki")
	if err := os.MkdirAll(pkiDir, 0o755); err != nil {
		return err
	}
	ports, err := freePorts(7)
	if err != nil {
		return err
	}
	etcdPort, peerPort, apiPort, kcmPort, schedPort, kubeletPort := ports[0], ports[1], ports[2], ports[3], ports[4], ports[5]
	server := fmt.Sprintf("https://127.0.0.1:%d", apiPort)

	p, err := newPKI(pkiDir)
	if err != nil {
		return err
	}
	steps := []func() error{
		p.serviceAccountKeys,
		func() error {
			return p.issue("apiserver", "kube-apiserver", nil, []string{"127.0.0.1", "10.0.0.1", "localhost",
				"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"})
		},
		func() error {
			return p.issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client", []string{"system:masters"}, nil)
		},
		func() error { return p.issue("admin", "tomato-admin", []string{"system:masters"}, nil) },
		func() error { return p.issue("controller-manager", "system:kube-controller-manager", nil, nil) },
		func() error { return p.issue("scheduler", "system:kube-scheduler", nil, nil) },
		// The kubelet's identity: Node authorization and NodeRestriction apply to it.
		func() error { return p.issue("node", "system:node:"+node, []string{"system:nodes"}, nil) },
		func() error { return p.issue("kubelet-serving", "system:node:"+node, nil, []string{"127.0.0.1", node}) },
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return err
		}
	}
	kc := func(name string) string { return filepath.Join(c.dir, name+".kubeconfig") }
	for _, n := range []string{"admin", "controller-manager", "scheduler", "node"} {
		if err := p.kubeconfig(kc(n), n, server); err != nil {
			return err
		}
	}
	pk := p.path

	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	if err := c.run("etcd", "etcd",
		"--name=default", "--data-dir="+filepath.Join(c.dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=default="+peerURL, "--unsafe-no-fsync=true", "--log-level=warn"); err != nil {
		return err
	}
	if err := c.wait(deadline, "etcd", func() error { return httpOK(etcdURL+"/health", nil) }); err != nil {
		return err
	}

	if err := c.run("kube-apiserver", "kube-apiserver",
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", apiPort),
		"--cert-dir="+filepath.Join(c.dir, "apiserver"),
		"--tls-cert-file="+pk("apiserver.crt"), "--tls-private-key-file="+pk("apiserver.key"),
		"--client-ca-file="+pk("ca.crt"),
		// Published for the controller-manager's and scheduler's delegated authentication
		// (no front proxy uses it: the allowed name matches no certificate issued here).
		"--requestheader-client-ca-file="+pk("ca.crt"), "--requestheader-allowed-names=front-proxy-client",
		"--requestheader-username-headers=X-Remote-User", "--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--authorization-mode=Node,RBAC",
		// The default admission plugins, plus NodeRestriction for the kubelet's identity.
		"--enable-admission-plugins=NodeRestriction",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+pk("sa.pub"), "--service-account-signing-key-file="+pk("sa.key"),
		"--service-cluster-ip-range=10.0.0.0/24", "--allow-privileged=true",
		// The `kubernetes` Service's endpoints may not be a loopback address: none are kept.
		"--endpoint-reconciler-type=none",
		"--kubelet-client-certificate="+pk("apiserver-kubelet-client.crt"),
		"--kubelet-client-key="+pk("apiserver-kubelet-client.key"),
		"--kubelet-certificate-authority="+pk("ca.crt"),
		"--kubelet-preferred-address-types=InternalIP",
		"--profiling=false"); err != nil {
		return err
	}
	admin, err := tlsClient(pk("ca.crt"), pk("admin.crt"), pk("admin.key"))
	if err != nil {
		return err
	}
	if err := c.wait(deadline, "kube-apiserver", func() error { return httpOK(server+"/readyz", admin) }); err != nil {
		return err
	}
	c.server, c.admin = server, admin

	authFlags := func(name string) []string {
		return []string{"--kubeconfig=" + kc(name), "--authentication-kubeconfig=" + kc(name),
			"--authorization-kubeconfig=" + kc(name), "--bind-address=127.0.0.1", "--leader-elect=false",
			"--cert-dir=" + filepath.Join(c.dir, name)}
	}
	if err := c.run("kube-controller-manager", "kube-controller-manager", append(authFlags("controller-manager"),
		fmt.Sprintf("--secure-port=%d", kcmPort),
		"--controllers=*", "--use-service-account-credentials=true",
		"--root-ca-file="+pk("ca.crt"), "--service-account-private-key-file="+pk("sa.key"),
		"--cluster-signing-cert-file="+pk("ca.crt"), "--cluster-signing-key-file="+pk("ca.key"),
		"--concurrent-gc-syncs=5", "--profiling=false")...); err != nil {
		return err
	}
	if err := c.run("kube-scheduler", "kube-scheduler", append(authFlags("scheduler"),
		fmt.Sprintf("--secure-port=%d", schedPort), "--profiling=false")...); err != nil {
		return err
	}
	insecure := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for name, port := range map[string]int{"kube-controller-manager": kcmPort, "kube-scheduler": schedPort} {
		url := fmt.Sprintf("https://127.0.0.1:%d/healthz", port)
		if err := c.wait(deadline, name, func() error { return httpOK(url, insecure) }); err != nil {
			return err
		}
	}

	kubeletArgs := []string{"--kubeconfig=" + kc("node"), "--node-name=" + node,
		"--root-dir=" + filepath.Join(c.dir, "kubelet"), fmt.Sprintf("--port=%d", kubeletPort),
		"--tls-cert-file=" + pk("kubelet-serving.crt"), "--tls-private-key-file=" + pk("kubelet-serving.key"),
		"--client-ca-file=" + pk("ca.crt"),
		"--kubernetes-service-host=127.0.0.1", fmt.Sprintf("--kubernetes-service-port=%d", apiPort)}
	for _, e := range entrypoints {
		kubeletArgs = append(kubeletArgs, "--image-entrypoint="+e)
	}
	if err := c.run("process-kubelet", "process-kubelet", kubeletArgs...); err != nil {
		return err
	}
	kubectl := func(args ...string) error {
		cmd := exec.CommandContext(deadline, filepath.Join(c.bin, "kubectl"), append([]string{"--kubeconfig=" + kc("admin")}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("kubectl %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	if err := c.wait(deadline, "process-kubelet", func() error {
		return kubectl("wait", "--for=condition=Ready", "node/"+node, "--timeout=1s")
	}); err != nil {
		return err
	}
	if err := c.wait(deadline, "kube-controller-manager", func() error {
		return kubectl("get", "serviceaccount", "default", "--namespace=default")
	}); err != nil {
		return err
	}

	env := fmt.Sprintf("export KUBECONFIG=%s\nexport PATH=%s:$PATH\n", kc("admin"), c.bin)
	extra := fmt.Sprintf("export TOMATO_CLUSTER_DIR=%s\nexport TOMATO_CLUSTER_SERVER=%s\nexport TOMATO_CLUSTER_NODE=%s\n", c.dir, server, node)
	if err := os.WriteFile(filepath.Join(c.dir, "cluster.env"), []byte(env+extra), 0o644); err != nil {
		return err
	}
	fmt.Print(env)
	fmt.Printf("# ready: API server %s, logs and %s in %s\n", server, "cluster.env", c.dir)
	return nil
}

// restartAPIServer kills the API server and starts it again with the same flags.
func (c *cluster) restartAPIServer(ctx context.Context, timeout time.Duration) error {
	for i, comp := range c.components {
		if comp.name != "kube-apiserver" {
			continue
		}
		comp.intentional.Store(true)
		_ = syscall.Kill(-comp.cmd.Process.Pid, syscall.SIGKILL)
		<-comp.done
		fmt.Println("# kube-apiserver killed; starting it again")
		fresh, err := c.spawn(comp.name, comp.binary, comp.args, true)
		if err != nil {
			return err
		}
		c.components[i] = fresh
		deadline, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		if err := c.wait(deadline, comp.name, func() error { return httpOK(c.server+"/readyz", c.admin) }); err != nil {
			return err
		}
		fmt.Println("# kube-apiserver ready again")
		return nil
	}
	return fmt.Errorf("no kube-apiserver to restart")
}

// run starts a component in its own process group with its log in <dir>/<name>.log.
func (c *cluster) run(name, binary string, args ...string) error {
	comp, err := c.spawn(name, binary, args, false)
	if err == nil {
		c.components = append(c.components, comp)
	}
	return err
}

func (c *cluster) spawn(name, binary string, args []string, appendLog bool) (*component, error) {
	logPath := filepath.Join(c.dir, name+".log")
	mode := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if appendLog {
		mode = os.O_CREATE | os.O_WRONLY | os.O_APPEND
	}
	logFile, err := os.OpenFile(logPath, mode, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(filepath.Join(c.bin, binary), args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Dir = c.dir
	// Own process group (stopped as a whole); killed if this supervisor dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	comp := &component{name: name, binary: binary, args: args, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		comp.err = cmd.Wait()
		logFile.Close()
		close(comp.done)
		if !comp.intentional.Load() {
			c.died <- comp
		}
	}()
	return comp, nil
}

// wait polls check until it passes; on timeout, or if the component died, it fails with the
// tail of the component's log.
func (c *cluster) wait(ctx context.Context, name string, check func() error) error {
	var comp *component
	for _, x := range c.components {
		if x.name == name {
			comp = x
		}
	}
	var last error
	for {
		if last = check(); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not become ready: %v\n--- last lines of %s ---\n%s", name, last, comp.log, tail(comp.log, 40))
		case <-comp.done:
			return fmt.Errorf("%s exited before it was ready: %v\n--- last lines of %s ---\n%s", name, comp.err, comp.log, tail(comp.log, 40))
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// stopAll stops the components in reverse order: SIGTERM to the process group, SIGKILL after 10 s.
func (c *cluster) stopAll() {
	for i := len(c.components) - 1; i >= 0; i-- {
		comp := c.components[i]
		pid := comp.cmd.Process.Pid
		_ = syscall.Kill(-pid, syscall.SIGTERM)
		select {
		case <-comp.done:
		case <-time.After(10 * time.Second):
			fmt.Fprintf(os.Stderr, "cluster-up: %s did not stop in 10 s: killing it\n", comp.name)
		}
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-comp.done
	}
}

func freePorts(n int) ([]int, error) {
	var ports []int
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func tlsClient(ca, cert, key string) (*http.Client, error) {
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, err
	}
	pool, err := certPool(ca)
	if err != nil {
		return nil, err
	}
	return &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: pool, Certificates: []tls.Certificate{pair},
	}}}, nil
}

func httpOK(url string, client *http.Client) error {
	if client == nil {
		client = &http.Client{Timeout: 2 * time.Second}
	}
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}
