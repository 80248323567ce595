//! Operator-mode test harness over the real control plane of [`super::cluster`]: operator
//! replicas with the credentials of `deploy/rbac.yaml`'s ServiceAccount (a TokenRequest
//! token), each serving the HTTP app on a real socket (so that a real `tomato exec` in a
//! Job's pod can upload to it), and the demo service whose Job pods wait at a gate until
//! the test lets them run.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tomato::crd::{RunTemplate, RunType, TestRun, TestRunSpec};
use tomato::operator::lease::LeaseSettings;
use tomato::operator::{Operator, Scope, Settings, Timing};
use tomato::packs::PacksConfig;

use super::REPO;
use super::cluster::TestNs;

/// The image the operator names for a Job's init container; the process kubelet is told its
/// entrypoint is the `tomato` binary under test.
pub const EXEC_IMAGE: &str = "ghcr.io/example/tomato:test";

/// The shipped `demo` service, as operator mode runs it on the process kubelet: the image is
/// nominal, `workingDir` is the suite's real directory (so `{dir}` in the Job's argv names
/// real files), and the command first waits at a gate: a file named after the Job in `k`'s
/// gate directory ([`TestNs::open_gate`]), so that a test decides when each attempt runs.
pub fn demo_config(k: &TestNs, extra: &str) -> (tempfile::TempDir, Arc<PacksConfig>) {
    demo_config_text(demo_text(k) + extra)
}

/// [`demo_config`] whose reports also go to a webhook at `url`.
pub fn demo_config_with_webhook(k: &TestNs, url: &str) -> (tempfile::TempDir, Arc<PacksConfig>) {
    let text = demo_text(k).replace(
        "report:\n  emails: []\n",
        &format!("report:\n  emails: []\n  webhooks: [\"{url}\"]\n"),
    );
    demo_config_text(text)
}

/// The text of [`demo_config`]'s `demo.yaml`.
pub fn demo_text(k: &TestNs) -> String {
    let text = std::fs::read_to_string(format!("{REPO}/packs_config/demo.yaml")).unwrap();
    // The pod is `<job>-<suffix>` and its HOSTNAME is the pod's name (no braces: packs_config
    // reads them as placeholders). A non-empty gate file
    // is printed to the container's own output and tomato exec is killed (exit 137).
    let gate = format!(
        "g=\"{}/$(echo $HOSTNAME | sed s/-[a-z0-9]*$//)\"; while [ ! -e \"$g\" ]; do sleep 0.1; done; \
         if [ -s \"$g\" ]; then cat \"$g\" >> /proc/$PPID/fd/1; kill -9 $PPID; exit 137; fi; exec \"$@\"",
        k.gates.path().display()
    );
    let text = text.replace(
        "  command:\n    - node\n",
        &format!("  command:\n    - sh\n    - -c\n    - '{gate}'\n    - gate\n    - node\n"),
    );
    assert!(
        text.contains("- gate\n"),
        "packs_config/demo.yaml starts its command with node"
    );
    text.replace(
        "  timeout: 10m\n",
        &format!("  timeout: 10m\n  image: node:20-slim\n  workingDir: {REPO}/packs_config/demo\n"),
    )
}

/// A packs_config of one `demo.yaml` holding `text` (with the demo suite beside it).
pub fn demo_config_text(text: String) -> (tempfile::TempDir, Arc<PacksConfig>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("demo.yaml"), text).unwrap();
    std::os::unix::fs::symlink(format!("{REPO}/packs_config/demo"), dir.path().join("demo")).unwrap();
    let config = Arc::new(PacksConfig::load(dir.path()).unwrap());
    config.check_operator().unwrap();
    (dir, config)
}

/// A packs_config of one service file `file` holding `text`, checked for operator mode.
pub fn operator_config(file: &str, text: &str) -> (tempfile::TempDir, Arc<PacksConfig>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(file), text).unwrap();
    let config = Arc::new(PacksConfig::load(dir.path()).unwrap());
    config.check_operator().unwrap();
    (dir, config)
}

/// A running operator replica with its API on a local port.
pub struct Replica {
    pub url: String,
    pub operator: Option<Operator>,
    stop: CancellationToken,
    pub identity: String,
}

impl Replica {
    pub fn is_leader(&self) -> bool {
        self.operator.as_ref().is_some_and(Operator::is_leader)
    }

    /// Stops the replica (it releases the lease) and waits until it has.
    pub async fn stop(&mut self) {
        self.stop.cancel();
        if let Some(op) = self.operator.take() {
            op.stopped().await;
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Fast timing for tests: short polls, a short upload grace, a one-second lease.
pub fn settings(ns: &str, identity: &str, api_url: &str) -> Settings {
    Settings {
        namespace: ns.into(),
        scope: Scope::Namespace(ns.into()),
        jobs: tomato::launch::job::JobSettings {
            exec_image: EXEC_IMAGE.into(),
            exec_image_pull_policy: None,
            api_url: api_url.into(),
        },
        timing: Timing {
            poll: Duration::from_millis(300),
            upload_grace: Duration::from_millis(800),
            retry: Duration::from_millis(300),
            retention: Duration::from_secs(600),
            mutes: Duration::from_secs(1),
        },
        lease: LeaseSettings {
            name: "tomato-operator".into(),
            namespace: ns.into(),
            identity: identity.into(),
            duration: Duration::from_secs(1),
            renew_every: Duration::from_millis(200),
        },
    }
}

/// Logs of the operator go to the test's output (shown when a test fails).
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TOMATO_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tomato=debug,kube_runtime=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// Starts a replica in `k`'s namespace with the ServiceAccount's token, serving the HTTP app
/// on a free local port (the proxy Jobs upload to routes to the first replica started).
pub async fn start_replica(k: &TestNs, config: Arc<PacksConfig>, identity: &str) -> Replica {
    start_replica_with(k, config, identity, &[]).await
}

/// [`start_replica`] with report settings (SMTP, tracker, test management...) given as the
/// environment variables `tomato operator` reads.
pub async fn start_replica_with(
    k: &TestNs,
    config: Arc<PacksConfig>,
    identity: &str,
    vars: &[(String, String)],
) -> Replica {
    start_replica_scoped(k, config, identity, vars, Scope::Namespace(k.ns.clone())).await
}

/// [`start_replica_with`] watching `scope` (`Scope::All` is `--all-namespaces`).
pub async fn start_replica_scoped(
    k: &TestNs,
    config: Arc<PacksConfig>,
    identity: &str,
    vars: &[(String, String)],
    scope: Scope,
) -> Replica {
    start_replica_authorized(k, config, identity, vars, scope, tomato::api::Auth::open()).await
}

/// [`start_replica_scoped`] whose HTTP side authenticates and authorises with `auth` (and
/// knows each request's peer address, for the audit log).
pub async fn start_replica_authorized(
    k: &TestNs,
    config: Arc<PacksConfig>,
    identity: &str,
    vars: &[(String, String)],
    scope: Scope,
    auth: tomato::api::Auth,
) -> Replica {
    start_replica_full(k, config, identity, vars, scope, auth, None).await
}

/// [`start_replica`] keeping results in `database` (as `--database-url` makes it).
pub async fn start_replica_with_database(
    k: &TestNs,
    config: Arc<PacksConfig>,
    identity: &str,
    database: Arc<dyn tomato::store::ResultsStore>,
) -> Replica {
    let scope = Scope::Namespace(k.ns.clone());
    start_replica_full(
        k,
        config,
        identity,
        &[],
        scope,
        tomato::api::Auth::open(),
        Some(database),
    )
    .await
}

/// Every way of starting a replica, in one.
async fn start_replica_full(
    k: &TestNs,
    config: Arc<PacksConfig>,
    identity: &str,
    vars: &[(String, String)],
    scope: Scope,
    auth: tomato::api::Auth,
    database: Option<Arc<dyn tomato::store::ResultsStore>>,
) -> Replica {
    init_tracing();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    k.proxy.route_to_first(&url);
    let stop = CancellationToken::new();
    let lookup = |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let report_settings = tomato::integrations::settings::ReportSettings::load_with(None, &lookup).unwrap();
    let integrations = tomato::report::Integrations::new(report_settings, &config, &url).unwrap();
    let tms_configured = integrations.regressions.tms.is_some();
    let integrations_tracker = integrations.regressions.tracker.is_some();
    let operator = Operator::start_with_database(
        k.operator_client.clone(),
        config.clone(),
        Settings {
            scope,
            ..settings(&k.ns, identity, &k.proxy.url)
        },
        integrations,
        database,
        stop.clone(),
    );
    let state = tomato::api::AppState {
        backend: Arc::new(operator.backend.clone()),
        config,
        auth,
        public_url: url.clone(),
        tms_configured,
        tracker_configured: integrations_tracker,
    };
    let app = tomato::app::app(state);
    let until = stop.clone();
    tokio::spawn(async move {
        let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { until.cancelled().await })
            .await;
    });
    Replica {
        url,
        operator: Some(operator),
        stop,
        identity: identity.into(),
    }
}

/// The demo's smoke preset with one rerun (two attempts at most).
pub fn template(service: &str) -> RunTemplate {
    RunTemplate {
        service: service.into(),
        stand: "localhost".into(),
        category: Some("smoke".into()),
        packs: vec![],
        priority: tomato::crd::Priority::DEFAULT,
        emails: vec![],
        issue_key: None,
        version: None,
        retries: Some(1),
        shards: None,
        env: vec![],
    }
}

/// Creates a TestRun the way `kubectl apply` would (no status).
pub async fn create_run(k: &TestNs, name: &str, template: RunTemplate) -> TestRun {
    let mut run = TestRun::new(
        name,
        TestRunSpec {
            template,
            run_type: RunType::Regular,
            timeout: None,
            cancel: false,
            retention: None,
        },
    );
    run.metadata.namespace = Some(k.ns.clone());
    runs(k).create(&PostParams::default(), &run).await.unwrap()
}

pub fn runs(k: &TestNs) -> Api<TestRun> {
    Api::namespaced(k.client(), &k.ns)
}

pub fn jobs(k: &TestNs) -> Api<Job> {
    Api::namespaced(k.client(), &k.ns)
}

/// Polls `f` until it gives a value, or panics after `timeout` naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub const WAIT: Duration = Duration::from_secs(30);
/// How long a demo suite may take in a pod (Node starting on two busy cores).
pub const RUN_WAIT: Duration = Duration::from_secs(90);

pub async fn wait_job(k: &TestNs, name: &str) -> Job {
    eventually(&format!("Job {name}"), WAIT, || async {
        jobs(k).get_opt(name).await.unwrap()
    })
    .await
}

pub async fn wait_phase(k: &TestNs, run: &str, phase: &str) -> TestRun {
    eventually(&format!("{run} in phase {phase}"), WAIT, || async {
        let r = runs(k).get_opt(run).await.unwrap()?;
        (r.status.as_ref().map(|s| s.phase.to_string()).as_deref() == Some(phase)).then_some(r)
    })
    .await
}

/// The test container of a Job.
pub fn container(job: &Job) -> &k8s_openapi::api::core::v1::Container {
    &job.spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
}

pub fn env(job: &Job) -> BTreeMap<String, Value> {
    container(job)
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.clone(), serde_json::to_value(e).unwrap()))
        .collect()
}

/// The pod the Job controller created for Job `job` in `ns`, once there is one.
async fn job_pod(k: &TestNs, ns: &str, job: &str) -> Pod {
    let pods: Api<Pod> = Api::namespaced(k.client(), ns);
    eventually(&format!("the pod of Job {job}"), WAIT, || async {
        pods.list(&ListParams::default().labels(&format!("job-name={job}")))
            .await
            .unwrap()
            .items
            .into_iter()
            .next()
    })
    .await
}

/// Waits until the test container of `job`'s pod has ended; answers its exit code.
async fn wait_container_exit(k: &TestNs, job: &Job) -> i32 {
    let ns = job.namespace().unwrap_or_else(|| k.ns.clone());
    let job = job.name_any();
    let pod = job_pod(k, &ns, &job).await;
    wait_pod_exit(k, &ns, &pod.name_any()).await
}

/// Waits until the test container of the pod `name` has ended; answers its exit code.
pub async fn wait_pod_exit(k: &TestNs, ns: &str, name: &str) -> i32 {
    let pods: Api<Pod> = Api::namespaced(k.client(), ns);
    eventually(&format!("the tests of pod {name} to end"), RUN_WAIT, || async {
        tomato::launch::job::pod_exit_code(&pods.get(name).await.unwrap())
    })
    .await
}

/// Waits until the test container of `job`'s pod runs (waiting at its gate).
pub async fn wait_container_running(k: &TestNs, job: &Job) {
    let ns = job.namespace().unwrap_or_else(|| k.ns.clone());
    let pod = job_pod(k, &ns, &job.name_any()).await;
    let pods: Api<Pod> = Api::namespaced(k.client(), &ns);
    eventually(
        &format!("the tests of Job {} to run", job.name_any()),
        RUN_WAIT,
        || async {
            let pod = pods.get(&pod.name_any()).await.unwrap();
            pod.status?
                .container_statuses?
                .into_iter()
                .find(|c| c.name == "tests")?
                .state?
                .running
                .map(|_| ())
        },
    )
    .await
}

/// Lets the Job's pod run its test container, which the real Job controller, scheduler and
/// process kubelet run: the real `tomato exec` runs the real demo suite and uploads to the
/// namespace's proxy (which routes to the first replica started). Returns the exit code.
pub async fn run_job(k: &TestNs, job: &Job) -> i32 {
    k.open_gate(&job.name_any());
    wait_container_exit(k, job).await
}

/// [`run_job`], with the upload routed to the replica at `api`: what the operator's Service
/// does in a cluster when the replica that launched the Job is gone.
pub async fn run_job_via(k: &TestNs, job: &Job, api: Option<&str>) -> i32 {
    if let Some(url) = api {
        k.proxy.route_to(url);
    }
    run_job(k, job).await
}

/// A Job whose pod printed `log` and was killed (exit 137) before `tomato exec` could upload
/// anything.
pub async fn fail_job_silently(k: &TestNs, job: &Job, log: &str, exit_code: i32) {
    assert_eq!(exit_code, 137, "the gate kills tomato exec with SIGKILL");
    k.kill_at_gate(&job.name_any(), log);
    assert_eq!(wait_container_exit(k, job).await, exit_code);
}

/// Names of Jobs in the namespace.
pub async fn job_names(k: &TestNs) -> Vec<String> {
    let mut names: Vec<String> = jobs(k)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    names.sort();
    names
}

/// The Events recorded about an object, oldest first.
pub async fn events_about(k: &TestNs, name: &str) -> Vec<k8s_openapi::api::events::v1::Event> {
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(k.client(), &k.ns);
    let mut items: Vec<_> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .collect();
    items.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
    items
}

/// Reasons of the Events recorded about an object, oldest first.
pub async fn event_reasons(k: &TestNs, name: &str) -> Vec<String> {
    events_about(k, name)
        .await
        .into_iter()
        .filter_map(|e| e.reason)
        .collect()
}

/// Notes of the Events of reason `reason` recorded about an object, oldest first.
pub async fn event_notes(k: &TestNs, name: &str, reason: &str) -> Vec<String> {
    events_about(k, name)
        .await
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .filter_map(|e| e.note)
        .collect()
}

/// The status of run `name` once it has finished (a terminal phase), within `timeout`.
pub async fn wait_finished(k: &TestNs, name: &str, timeout: Duration) -> tomato::crd::TestRunStatus {
    eventually(&format!("{name} finished"), timeout, || async {
        let r = runs(k).get(name).await.unwrap();
        r.status.filter(|s| s.phase.is_terminal())
    })
    .await
}

/// A local webhook endpoint collecting the bodies posted to it.
pub async fn webhook_receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let posted = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let store = posted.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let store = store.clone();
            async move {
                store.lock().unwrap().push(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, posted)
}
