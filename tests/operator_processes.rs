//! `tomato operator` as real processes against a real Kubernetes control plane
//! (`tests/cluster/up`; every test here needs it), with the token of `deploy/rbac.yaml`'s
//! ServiceAccount in a kubeconfig: two replicas sharing the Lease when the leader is killed
//! with SIGKILL mid-run, and a Role missing one verb, whose 403 shows in the operator's log.

mod support;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use support::REPO;
use support::cluster::TestNs;
use support::operator::*;

/// A `tomato operator` process with its log in a file; killed when dropped.
struct OperatorProcess {
    child: Child,
    url: String,
    log: PathBuf,
}

impl OperatorProcess {
    fn start(k: &TestNs, config_dir: &Path, identity: &str, workdir: &Path) -> OperatorProcess {
        let kubeconfig = workdir.join(format!("{identity}.kubeconfig"));
        std::fs::write(&kubeconfig, k.cluster.token_kubeconfig(&k.token)).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = workdir.join(format!("{identity}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tomato"));
        cmd.args(["operator", "--namespace", &k.ns, "--identity", identity])
            .arg(format!("--listen=127.0.0.1:{port}"))
            .arg(format!("--in-cluster-url={}", k.proxy.url))
            .arg(format!("--exec-image={EXEC_IMAGE}"))
            .arg("--upload-grace=2s")
            .arg("--config")
            .arg(config_dir)
            .env("KUBECONFIG", &kubeconfig)
            .env("TOMATO_LOG", "info,tomato=debug")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        // SAFETY: only prctl runs between fork and exec. The operator dies with this test's thread.
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                    .map_err(std::io::Error::from)
            });
        }
        let child = cmd.spawn().expect("tomato operator starts");
        let url = format!("http://127.0.0.1:{port}");
        k.proxy.route_to_first(&url);
        OperatorProcess { child, url, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn kill_9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Who holds the Lease now.
async fn holder(k: &TestNs) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(k.client(), &k.ns);
    leases
        .get_opt("tomato-operator")
        .await
        .unwrap()?
        .spec?
        .holder_identity
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_leader_is_killed_mid_run_the_other_replica_takes_over_and_the_run_reaches_its_verdict() {
    let k = TestNs::new("ha").await;
    let (config_dir, _config) = demo_config(&k, "");
    let work = tempfile::tempdir().unwrap();
    let mut a = OperatorProcess::start(&k, config_dir.path(), "tomato-a", work.path());
    eventually("tomato-a leads", WAIT, || async {
        (holder(&k).await.as_deref() == Some("tomato-a")).then_some(())
    })
    .await;
    let b = OperatorProcess::start(&k, config_dir.path(), "tomato-b", work.path());
    create_run(&k, "ha", template("demo")).await;
    let job = wait_job(&k, "ha-1").await;
    eventually("attempt 1 recorded", WAIT, || async {
        let r = runs(&k).get("ha").await.unwrap();
        r.status.is_some_and(|s| s.attempts.len() == 1).then_some(())
    })
    .await;
    assert_eq!(holder(&k).await.as_deref(), Some("tomato-a"));

    a.kill_9();
    let killed = Instant::now();
    eventually("tomato-b takes the Lease", Duration::from_secs(40), || async {
        (holder(&k).await.as_deref() == Some("tomato-b")).then_some(())
    })
    .await;
    // `tomato operator`'s Lease lasts 15 s; b renews every 5 s and takes it once it expired.
    assert!(
        killed.elapsed() < Duration::from_secs(15 + 5 + 5),
        "took over after {:?}\n{}",
        killed.elapsed(),
        b.log()
    );
    assert_eq!(run_job_via(&k, &job, Some(&b.url)).await, 1);
    let rerun = eventually("the rerun's Job", RUN_WAIT, || async {
        jobs(&k).get_opt("ha-2").await.unwrap()
    })
    .await;
    run_job(&k, &rerun).await;
    eventually("the verdict", RUN_WAIT, || async {
        let r = runs(&k).get("ha").await.unwrap();
        (r.status.as_ref().map(|s| s.phase.to_string()).as_deref() == Some("Failed")).then_some(())
    })
    .await;
    assert_eq!(job_names(&k).await, ["ha-1", "ha-2"], "no duplicate Job");
    assert!(!b.log().contains(" 403"), "no 403:\n{}", b.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_missing_the_verb_to_create_jobs_fails_the_launch_with_a_403_in_the_operators_log() {
    let rbac = std::fs::read_to_string(format!("{REPO}/deploy/rbac.yaml")).unwrap();
    let rule = "  - apiGroups: [batch]\n    resources: [jobs]\n    verbs: [get, list, watch, create, patch, delete]\n";
    assert!(
        rbac.contains(rule),
        "deploy/rbac.yaml lets the operator create Jobs"
    );
    let k = TestNs::with_rbac("rbac", &rbac.replace(rule, &rule.replace("create, ", ""))).await;
    let (config_dir, _config) = demo_config(&k, "");
    let work = tempfile::tempdir().unwrap();
    let op = OperatorProcess::start(&k, config_dir.path(), "tomato-0", work.path());
    create_run(&k, "denied", template("demo")).await;
    let log = eventually("a 403 in the operator's log", RUN_WAIT, || async {
        let log = op.log();
        log.lines()
            .any(|l| l.contains("forbidden") && l.contains("cannot create resource \\\"jobs\\\""))
            .then_some(log)
    })
    .await;
    assert!(job_names(&k).await.is_empty(), "{log}");
}
