//! Operator-mode test harness: operator instances over one [`FakeKube`], the HTTP app on a
//! real socket (so that a real `tomato exec` can upload to it), and a stand-in for the
//! kubelet that runs a Job's test container as a real local process.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tomato::crd::{RunTemplate, RunType, TestRun, TestRunSpec};
use tomato::launch::job::{EXEC_PATH, LABEL_JOB_NAME, WORK_DIR};
use tomato::operator::lease::LeaseSettings;
use tomato::operator::{Operator, Scope, Settings, Timing};
use tomato::packs::PacksConfig;

use super::REPO;
use super::fake_kube::FakeKube;

pub const NS: &str = "qa";

/// The shipped `demo` service, as operator mode runs it: the image is nominal (the stand-in
/// kubelet runs the command here) and `workingDir` is the suite's real directory, so `{dir}`
/// in the Job's argv names real files.
pub fn demo_config(extra: &str) -> (tempfile::TempDir, Arc<PacksConfig>) {
    let text = std::fs::read_to_string(format!("{REPO}/packs_config/demo.yaml")).unwrap();
    let text = text.replace(
        "  timeout: 10m\n",
        &format!("  timeout: 10m\n  image: node:20-slim\n  workingDir: {REPO}/packs_config/demo\n"),
    ) + extra;
    demo_config_text(text)
}

/// [`demo_config`] whose reports also go to a webhook at `url`.
pub fn demo_config_with_webhook(url: &str) -> (tempfile::TempDir, Arc<PacksConfig>) {
    let text = std::fs::read_to_string(format!("{REPO}/packs_config/demo.yaml")).unwrap();
    let text = text
        .replace(
            "  timeout: 10m\n",
            &format!("  timeout: 10m\n  image: node:20-slim\n  workingDir: {REPO}/packs_config/demo\n"),
        )
        .replace(
            "report:\n  emails: []\n",
            &format!("report:\n  emails: []\n  webhooks: [\"{url}\"]\n"),
        );
    demo_config_text(text)
}

fn demo_config_text(text: String) -> (tempfile::TempDir, Arc<PacksConfig>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("demo.yaml"), text).unwrap();
    std::os::unix::fs::symlink(format!("{REPO}/packs_config/demo"), dir.path().join("demo")).unwrap();
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
pub fn settings(identity: &str, api_url: &str) -> Settings {
    Settings {
        namespace: NS.into(),
        scope: Scope::Namespace(NS.into()),
        jobs: tomato::launch::job::JobSettings {
            exec_image: "ghcr.io/example/tomato:test".into(),
            exec_image_pull_policy: None,
            api_url: api_url.into(),
        },
        timing: Timing {
            poll: Duration::from_millis(300),
            upload_grace: Duration::from_millis(800),
            retry: Duration::from_millis(300),
        },
        lease: LeaseSettings {
            name: "tomato-operator".into(),
            namespace: NS.into(),
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

/// Starts a replica over `fake`, serving the HTTP app on a free local port.
pub async fn start_replica(fake: &FakeKube, config: Arc<PacksConfig>, identity: &str) -> Replica {
    start_replica_with(fake, config, identity, &[]).await
}

/// [`start_replica`] with report settings (SMTP, tracker, test management...) given as the
/// environment variables `tomato operator` reads.
pub async fn start_replica_with(
    fake: &FakeKube,
    config: Arc<PacksConfig>,
    identity: &str,
    vars: &[(String, String)],
) -> Replica {
    start_replica_scoped(fake, config, identity, vars, Scope::Namespace(NS.into())).await
}

/// [`start_replica_with`] watching `scope` (`Scope::All` is `--all-namespaces`).
pub async fn start_replica_scoped(
    fake: &FakeKube,
    config: Arc<PacksConfig>,
    identity: &str,
    vars: &[(String, String)],
    scope: Scope,
) -> Replica {
    init_tracing();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let lookup = |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let report_settings = tomato::report::ReportSettings::load_with(None, &lookup).unwrap();
    let integrations = tomato::report::Integrations::new(report_settings, &config, &url).unwrap();
    let tms_configured = integrations.regressions.tms.is_some();
    let operator = Operator::start(
        fake.client(),
        config.clone(),
        Settings {
            scope,
            ..settings(identity, &url)
        },
        integrations,
        stop.clone(),
    );
    let state = tomato::api::AppState {
        backend: Arc::new(operator.backend.clone()),
        config,
        tokens: tomato::api::Tokens::default(),
        public_url: url.clone(),
        data_dir: None,
        tms_configured,
    };
    let app = tomato::api::app(state);
    let until = stop.clone();
    tokio::spawn(async move {
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
        priority: 2,
        emails: vec![],
        issue_key: None,
        version: None,
        retries: Some(1),
        env: vec![],
    }
}

/// Creates a TestRun the way `kubectl apply` would (no status).
pub async fn create_run(fake: &FakeKube, name: &str, template: RunTemplate) -> TestRun {
    let mut run = TestRun::new(
        name,
        TestRunSpec {
            template,
            run_type: RunType::Regular,
            timeout: None,
            cancel: false,
        },
    );
    run.metadata.namespace = Some(NS.into());
    runs(fake).create(&PostParams::default(), &run).await.unwrap()
}

pub fn runs(fake: &FakeKube) -> Api<TestRun> {
    Api::namespaced(fake.client(), NS)
}

pub fn jobs(fake: &FakeKube) -> Api<Job> {
    Api::namespaced(fake.client(), NS)
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

pub const WAIT: Duration = Duration::from_secs(20);

pub async fn wait_job(fake: &FakeKube, name: &str) -> Job {
    eventually(&format!("Job {name}"), WAIT, || async {
        jobs(fake).get_opt(name).await.unwrap()
    })
    .await
}

pub async fn wait_phase(fake: &FakeKube, run: &str, phase: &str) -> TestRun {
    eventually(&format!("{run} in phase {phase}"), WAIT, || async {
        let r = runs(fake).get_opt(run).await.unwrap()?;
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

/// Creates the Job's pod, as the Job controller would.
async fn create_pod(fake: &FakeKube, job: &Job) -> String {
    let ns = job.namespace().unwrap_or_else(|| NS.into());
    let name = format!("{}-{}", job.name_any(), tomato::store::random_suffix(5));
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns, "labels": {LABEL_JOB_NAME: job.name_any(), "job-name": job.name_any()}},
        "spec": job.spec.as_ref().unwrap().template.spec,
        "status": {"phase": "Running"}
    }))
    .unwrap();
    Api::<Pod>::namespaced(fake.client(), &ns)
        .create(&PostParams::default(), &pod)
        .await
        .unwrap();
    name
}

/// Marks a Job finished, as the Job controller would (and its pod terminated).
pub async fn finish_job(fake: &FakeKube, job: &str, pod: &str, exit_code: i32, reason: Option<&str>) {
    finish_job_in(fake, NS, job, pod, exit_code, reason).await;
}

/// [`finish_job`] in namespace `ns`.
async fn finish_job_in(
    fake: &FakeKube,
    ns: &str,
    job: &str,
    pod: &str,
    exit_code: i32,
    reason: Option<&str>,
) {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (condition, counts) = if exit_code == 0 && reason.is_none() {
        ("Complete", json!({"succeeded": 1}))
    } else {
        ("Failed", json!({"failed": 1}))
    };
    let mut status = json!({
        "conditions": [{"type": condition, "status": "True", "reason": reason.unwrap_or("BackoffLimitExceeded"),
                        "lastTransitionTime": now}],
    });
    status
        .as_object_mut()
        .unwrap()
        .extend(counts.as_object().unwrap().clone());
    Api::<Job>::namespaced(fake.client(), ns)
        .patch_status(
            job,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await
        .unwrap();
    Api::<Pod>::namespaced(fake.client(), ns)
        .patch_status(
            pod,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": if exit_code == 0 { "Succeeded" } else { "Failed" },
                "containerStatuses": [{"name": "tests", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                    "state": {"terminated": {"exitCode": exit_code}}}]}})),
        )
        .await
        .unwrap();
}

/// Stands in for the kubelet: runs the Job's test container as a real process here — its
/// command (which starts with `tomato exec --`, run with the real binary), environment
/// (Secret references resolved from the fake's Secrets) and working directory, with the pod's
/// scratch volume mapped to a temporary directory — then records its log on the pod and
/// marks the Job finished. Returns the exit code.
pub async fn run_job(fake: &FakeKube, job: &Job) -> i32 {
    run_job_via(fake, job, None).await
}

/// [`run_job`], with the upload sent to `api` instead of the Job's URL: what the operator's
/// Service does in a cluster when the replica that launched the Job is gone (each test
/// replica has its own address; a Service would route to a live one).
pub async fn run_job_via(fake: &FakeKube, job: &Job, api: Option<&str>) -> i32 {
    let work = tempfile::tempdir().unwrap();
    let map = |s: &str| s.replace(WORK_DIR, &work.path().display().to_string());
    let c = container(job);
    let mut argv: Vec<String> = c.command.clone().unwrap().iter().map(|a| map(a)).collect();
    assert_eq!(argv[0], EXEC_PATH, "the entrypoint is tomato exec");
    argv[0] = env!("CARGO_BIN_EXE_tomato").to_string();
    let ns = job.namespace().unwrap_or_else(|| NS.into());
    let secrets: Api<Secret> = Api::namespaced(fake.client(), &ns);
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(PathBuf::from(c.working_dir.clone().unwrap()));
    for e in c.env.iter().flatten() {
        let value = match (&e.value, &e.value_from) {
            (Some(v), _) if e.name == tomato::launch::job::ENV_UPLOAD_URL && api.is_some() => {
                let path = v.splitn(4, '/').nth(3).unwrap_or_default();
                format!("{}/{path}", api.unwrap_or_default())
            }
            (Some(v), _) => map(v),
            (None, Some(src)) => {
                let key = src.secret_key_ref.as_ref().unwrap();
                let secret = secrets.get(&key.name).await.unwrap();
                let bytes = &secret.data.as_ref().unwrap()[&key.key].0;
                String::from_utf8(bytes.clone()).unwrap()
            }
            (None, None) => String::new(),
        };
        cmd.env(&e.name, value);
    }
    let pod = create_pod(fake, job).await;
    let out = cmd.output().await.expect("tomato exec runs");
    let mut log = String::from_utf8_lossy(&out.stdout).into_owned();
    log.push_str(&String::from_utf8_lossy(&out.stderr));
    fake.set_pod_log(&ns, &pod, &log);
    let code = out.status.code().unwrap_or(1);
    finish_job_in(fake, &ns, &job.name_any(), &pod, code, None).await;
    code
}

/// A Job whose pod printed `log` and exited, without `tomato exec` uploading anything.
pub async fn fail_job_silently(fake: &FakeKube, job: &Job, log: &str, exit_code: i32) {
    let pod = create_pod(fake, job).await;
    fake.set_pod_log(NS, &pod, log);
    finish_job(fake, &job.name_any(), &pod, exit_code, None).await;
}

/// Names of Jobs in the namespace.
pub async fn job_names(fake: &FakeKube) -> Vec<String> {
    let mut names: Vec<String> = jobs(fake)
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

/// Reasons of the Events recorded about an object, oldest first.
pub async fn event_reasons(fake: &FakeKube, name: &str) -> Vec<String> {
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(fake.client(), NS);
    let mut items: Vec<_> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .collect();
    items.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
    items.into_iter().filter_map(|e| e.reason).collect()
}
