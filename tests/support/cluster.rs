//! The real Kubernetes control plane for the operator tests, the envtest way: one
//! `tests/cluster/up` (etcd, kube-apiserver, kube-controller-manager, kube-scheduler and the
//! process kubelet, built from their Go modules by `tests/cluster/build`) per test process, and
//! one namespace per test ([`TestNs`]) with the CRDs applied and `deploy/rbac.yaml` bound in it.
//!
//! The cluster stops with the test process: `up` is started from a thread that lives as long
//! as the process, with SIGTERM as its parent-death signal (`prctl(PR_SET_PDEATHSIG)`), and
//! on SIGTERM `up` stops everything it started and removes its directory. Pods run as local
//! processes on this machine and share its network, so a Job's upload reaches a test's
//! operator on `127.0.0.1` through the namespace's [`Proxy`] (what the operator's Service is in
//! a cluster: it routes to a live replica).

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};

use super::REPO;

/// The one control plane of this test process.
pub struct Cluster {
    /// `https://127.0.0.1:<port>` of the API server.
    pub server: String,
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// Where `up` keeps its data, certificates (`pki/ca.crt`) and logs.
    pub dir: PathBuf,
    /// The directory of `kubectl` and `helm` built with the cluster.
    pub bin: PathBuf,
    pid: u32,
    output: Output,
}

/// What `up` printed (stdout and stderr), read as it grows.
struct Output {
    /// The file and what was read of it so far.
    reader: Mutex<(std::fs::File, String)>,
    /// Says how `up` ended, if it has.
    exited: Mutex<mpsc::Receiver<String>>,
}

impl Output {
    /// Waits until `up` has printed a line containing `needle` after what was read so far;
    /// answers everything read by then. Panics with `up`'s output if it ends or times out.
    fn wait_for(&self, needle: &str, timeout: Duration) -> String {
        use std::io::Read;
        let deadline = std::time::Instant::now() + timeout;
        let mut guard = self.reader.lock().expect("one reader at a time");
        let (file, text) = &mut *guard;
        let from = text.len();
        loop {
            let mut more = String::new();
            file.read_to_string(&mut more).expect("reading up's output");
            text.push_str(&more);
            if text[from..].contains(needle) {
                return text.clone();
            }
            if let Ok(status) = self.exited.lock().expect("exit channel").try_recv() {
                panic!("tests/cluster/up ended ({status}) before printing {needle:?}:\n{text}");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "tests/cluster/up printed no {needle:?} in {timeout:?}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();

/// The cluster of this test process, started (and the CRDs applied) on first use.
pub fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(start)
}

fn start() -> Cluster {
    // `up` writes to an unlinked file, never to a pipe: at the end of this process nobody
    // would read a pipe, and a write to it would kill `up` before it has cleaned up.
    let named = tempfile::NamedTempFile::new().expect("a file for up's output");
    let output = std::fs::OpenOptions::new()
        .append(true)
        .open(named.path())
        .expect("up's output file opens for appending");
    let reader = std::fs::File::open(named.path()).expect("up's output file opens for reading");
    drop(named);
    let (tx, rx) = mpsc::channel();
    let (exit_tx, exit_rx) = mpsc::channel();
    // The spawning thread stays alive as long as `up` (PR_SET_PDEATHSIG fires when the thread
    // that forked the child exits, not only the process), so `up` gets its SIGTERM exactly when
    // this test process ends.
    std::thread::spawn(move || {
        let mut cmd = Command::new(format!("{REPO}/tests/cluster/up"));
        cmd.arg(format!(
            "--image-entrypoint={}={}",
            super::operator::EXEC_IMAGE,
            env!("CARGO_BIN_EXE_tomato")
        ))
        .stdin(Stdio::null())
        .stdout(output.try_clone().expect("a second handle on up's output"))
        .stderr(output);
        // SAFETY: only an async-signal-safe system call (prctl) runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)
                    .map_err(std::io::Error::from)
            });
        }
        match cmd.spawn() {
            Ok(mut child) => {
                let _ = tx.send(Ok(child.id()));
                let status = child.wait();
                let _ = exit_tx.send(format!("{status:?}"));
            }
            Err(e) => {
                let _ = tx.send(Err(format!("tests/cluster/up could not start: {e}")));
            }
        }
    });
    let pid = rx
        .recv()
        .expect("the thread starting the cluster answers")
        .unwrap_or_else(|e| panic!("{e}"));
    let output = Output {
        reader: Mutex::new((reader, String::new())),
        exited: Mutex::new(exit_rx),
    };
    let text = output.wait_for("export PATH=", Duration::from_secs(300));
    let value = |prefix: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("up printed no {prefix}"))
            .to_string()
    };
    let kubeconfig = PathBuf::from(value("export KUBECONFIG="));
    let bin = PathBuf::from(value("export PATH=").trim_end_matches(":$PATH"));
    let dir = kubeconfig
        .parent()
        .expect("the kubeconfig is in the cluster's directory")
        .to_path_buf();
    let env = std::fs::read_to_string(dir.join("cluster.env")).expect("cluster.env is written when ready");
    let server = env
        .lines()
        .find_map(|l| l.strip_prefix("export TOMATO_CLUSTER_SERVER="))
        .expect("cluster.env names the server")
        .to_string();
    let cluster = Cluster {
        server,
        kubeconfig,
        dir,
        bin,
        pid,
        output,
    };
    cluster.kubectl_ok(&["apply", "--server-side", "-f", &format!("{REPO}/crds")], None);
    cluster.kubectl_ok(
        &[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd",
            "--all",
        ],
        None,
    );
    cluster
}

impl Cluster {
    /// Runs the cluster's `kubectl` as the admin with `stdin`, answering its output.
    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> std::process::Output {
        let mut child = Command::new(self.bin.join("kubectl"))
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the cluster's kubectl runs");
        if let Some(input) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin is piped")
                .write_all(input.as_bytes())
                .expect("kubectl reads its input");
        }
        child.wait_with_output().expect("kubectl ends")
    }

    /// [`Cluster::kubectl`] that must succeed; answers its stdout.
    pub fn kubectl_ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.kubectl(args, stdin);
        assert!(
            out.status.success(),
            "kubectl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The cluster's CA certificate (PEM).
    pub fn ca(&self) -> PathBuf {
        self.dir.join("pki/ca.crt")
    }

    /// A client with the admin's credentials.
    pub async fn admin(&self) -> kube::Client {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig).expect("the admin kubeconfig reads");
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .expect("the admin kubeconfig is valid");
        kube::Client::try_from(config).expect("a client from the admin kubeconfig")
    }

    /// A kubeconfig authenticating with a bearer `token`.
    pub fn token_kubeconfig(&self, token: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: sa\n  user:\n    token: {token}\ncontexts:\n- name: sa\n  context:\n    cluster: test\n    user: sa\ncurrent-context: sa\n",
            self.server,
            self.ca().display()
        )
    }

    /// A client authenticated by a bearer `token` (a ServiceAccount's, from the TokenRequest API).
    pub async fn client_with_token(&self, token: &str) -> kube::Client {
        let kubeconfig =
            Kubeconfig::from_yaml(&self.token_kubeconfig(token)).expect("a generated kubeconfig parses");
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .expect("a generated kubeconfig is valid");
        kube::Client::try_from(config).expect("a client from a token")
    }

    /// Kills the API server and waits until `up` has started it again (same port and data).
    pub fn restart_api_server(&self) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid as i32),
            nix::sys::signal::Signal::SIGUSR1,
        )
        .expect("up takes SIGUSR1");
        self.output
            .wait_for("kube-apiserver ready again", Duration::from_secs(120));
    }
}

/// A local TCP forwarder to one operator replica, switched by the test: the stable address
/// a Job's `tomato exec` uploads to, as a Service would be in a cluster.
#[derive(Clone)]
pub struct Proxy {
    pub url: String,
    target: Arc<Mutex<Option<String>>>,
}

impl Proxy {
    pub async fn start() -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a local port");
        let url = format!("http://{}", listener.local_addr().expect("a bound address"));
        let target: Arc<Mutex<Option<String>>> = Arc::default();
        let to = target.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let addr = to.lock().expect("proxy target").clone();
                tokio::spawn(async move {
                    let Some(addr) = addr else { return };
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&addr).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Proxy { url, target }
    }

    /// Routes to the replica at `url` (`http://127.0.0.1:<port>`).
    pub fn route_to(&self, url: &str) {
        *self.target.lock().expect("proxy target") = Some(url.trim_start_matches("http://").to_string());
    }

    /// Routes to `url` unless a route is set already.
    pub fn route_to_first(&self, url: &str) {
        let mut target = self.target.lock().expect("proxy target");
        if target.is_none() {
            *target = Some(url.trim_start_matches("http://").to_string());
        }
    }
}

/// One test's namespace on the cluster: the admin client, the ServiceAccount `tomato` of
/// `deploy/rbac.yaml` bound in it, and a client with its token (what the operator uses).
pub struct TestNs {
    pub cluster: &'static Cluster,
    pub ns: String,
    admin: kube::Client,
    pub operator_client: kube::Client,
    /// The ServiceAccount's token the operator uses.
    pub token: String,
    pub proxy: Proxy,
    /// Where a gated Job's pod waits for its file (see `support::operator::demo_config`).
    pub gates: tempfile::TempDir,
}

impl TestNs {
    /// A fresh namespace named after `prefix`, with `deploy/rbac.yaml` applied in it.
    pub async fn new(prefix: &str) -> TestNs {
        let rbac = std::fs::read_to_string(format!("{REPO}/deploy/rbac.yaml")).expect("deploy/rbac.yaml");
        Self::with_rbac(prefix, &rbac).await
    }

    /// A fresh namespace with `rbac` (manifests naming the namespace `tomato`, rewritten to
    /// this one) applied in it.
    pub async fn with_rbac(prefix: &str, rbac: &str) -> TestNs {
        let cluster = tokio::task::spawn_blocking(cluster)
            .await
            .expect("the cluster starts");
        let ns = format!("{prefix}-{}", tomato::crd::random_suffix(5));
        cluster.kubectl_ok(&["create", "namespace", &ns], None);
        cluster.kubectl_ok(&["apply", "-f", "-"], Some(&rbac_for(rbac, &ns)));
        let token = cluster.kubectl_ok(&["create", "token", "tomato", "-n", &ns, "--duration=2h"], None);
        TestNs {
            cluster,
            admin: cluster.admin().await,
            operator_client: cluster.client_with_token(token.trim()).await,
            token: token.trim().to_string(),
            ns,
            proxy: Proxy::start().await,
            gates: tempfile::tempdir().expect("a gate directory"),
        }
    }

    /// The admin client (what a person with `kubectl` does).
    pub fn client(&self) -> kube::Client {
        self.admin.clone()
    }

    /// Lets the pod of Job `job` (waiting on its gate) run its command.
    pub fn open_gate(&self, job: &str) {
        std::fs::write(self.gates.path().join(job), "").expect("a gate file");
    }

    /// Makes the pod of Job `job` print `log` to its container's output and die with
    /// SIGKILL (exit 137) before its command runs: nothing is uploaded.
    pub fn kill_at_gate(&self, job: &str, log: &str) {
        let path = self.gates.path().join(job);
        let tmp = self.gates.path().join(format!(".{job}"));
        std::fs::write(&tmp, log).expect("a gate file");
        std::fs::rename(tmp, path).expect("the gate file in place");
    }
}

/// `manifests` with every `namespace: tomato` made `namespace: <ns>`.
pub fn rbac_for(manifests: &str, ns: &str) -> String {
    manifests.replace("namespace: tomato\n", &format!("namespace: {ns}\n"))
}
