//! Retention in standalone mode with an explicit clock: the real store, real files in a data
//! directory, the real HTTP app, and [`tomato::standalone::Retention`] passes at chosen times
//! (years of history are set up as finish times, not waited for). The real binary's periodic
//! pass is tested at the end, in real time with limits of seconds.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};
use tomato::crd::{NightlySchedule, TestRun};
use tomato::packs::PacksConfig;
use tomato::results::{AttemptResult, Case};
use tomato::retention::{ANNOTATION_FILES_EXPIRED, Action};
use tomato::standalone::Retention;
use tomato::standalone::retention::remove_files;
use tomato::store::files::{JUNIT_FILE, attempt_dir, run_dir};
use tomato::store::{ChangeOp, SqliteStore};
use tower::ServiceExt;

/// A service with every kind of limit, and one without retention (keeps everything).
const SVC: &str = r#"
stands: {pattern: 'localhost'}
launch: {command: [runner, "{tests}"]}
packs:
  smoke: {tests: [smoke/]}
retention:
  successful: {maxAge: 10d}
  failed: {maxAge: 30d, runs: 2}
  files: {maxAge: 3d}
"#;
const FOREVER: &str = r#"
stands: {pattern: 'localhost'}
launch: {command: [runner, "{tests}"]}
packs:
  smoke: {tests: [smoke/]}
"#;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

fn day(d: i64) -> DateTime<Utc> {
    t0() + chrono::Duration::days(d)
}

struct Fixture {
    _tmp: tempfile::TempDir,
    data: std::path::PathBuf,
    config: Arc<PacksConfig>,
    store: SqliteStore,
}

/// A run of `service` in `phase` that finished on `finished` (unfinished when `None`), with
/// one attempt, its files, a test result and a category.
fn run(name: &str, service: &str, phase: &str, finished: Option<i64>, retention: Value) -> TestRun {
    let mut status = json!({
        "phase": phase,
        "attempts": [{"number": 1, "selection": {"kind": "All"}, "state": "Finished"}],
    });
    if let Some(d) = finished {
        status["finishedAt"] = json!(day(d));
    }
    let mut spec = json!({"service": service, "stand": "localhost"});
    if !retention.is_null() {
        spec["retention"] = retention;
    }
    serde_json::from_value(json!({
        "apiVersion": "tomato.dev/v1alpha1", "kind": "TestRun",
        "metadata": {"name": name, "annotations": {"tomato.dev/created": "2025-01-01T00:00:00Z"}},
        "spec": spec,
        "status": status,
    }))
    .unwrap()
}

/// The runs of the fixture: (name, what a pass at day 10 leaves of it).
fn runs() -> Vec<TestRun> {
    vec![
        // Successful: 10 days; files 3 days.
        run("s-old", "svc", "Succeeded", Some(0), Value::Null),
        run("s-new", "svc", "Succeeded", Some(5), Value::Null),
        // Failed (Cancelled counts with failed): only the newest 2 stay.
        run("f1", "svc", "Failed", Some(0), Value::Null),
        run("f2", "svc", "Cancelled", Some(1), Value::Null),
        run("f3", "svc", "Error", Some(2), Value::Null),
        // Pinned, its own age limit, unfinished, another service: kept.
        run("pinned", "svc", "Succeeded", Some(0), json!({"keep": true})),
        run("own", "svc", "Succeeded", Some(0), json!({"maxAge": "400d"})),
        run("running", "svc", "Running", None, Value::Null),
        run("forever", "forever", "Succeeded", Some(-1000), Value::Null),
        // A schedule's last run: kept (its files may go).
        run("last", "svc", "Succeeded", Some(0), Value::Null),
    ]
}

impl Fixture {
    async fn new() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let config_dir = tmp.path().join("config");
        std::fs::create_dir(&config_dir).unwrap();
        std::fs::write(config_dir.join("svc.yaml"), SVC).unwrap();
        std::fs::write(config_dir.join("forever.yaml"), FOREVER).unwrap();
        let config = Arc::new(PacksConfig::load(&config_dir).unwrap());
        let data = tmp.path().join("data");
        let store = SqliteStore::open(&data).unwrap();
        for r in runs() {
            let name = r.metadata.name.clone().unwrap();
            store.create(r).await.unwrap();
            let dir = attempt_dir(&data, &name, 1);
            std::fs::create_dir_all(dir.join("allure-results")).unwrap();
            std::fs::write(dir.join("output.log"), format!("log of {name}\n")).unwrap();
            std::fs::write(dir.join(JUNIT_FILE), "<testsuite/>").unwrap();
            std::fs::write(dir.join("allure-results/shot.png"), b"png").unwrap();
            let result = AttemptResult {
                attempt: 1,
                id: "t::a".into(),
                case: Case::failed("t", "a", None),
            };
            store.put_results(&name, 1, vec![result]).await.unwrap();
            let categories = [(
                "t::a".to_string(),
                tomato::classify::Classified::category("Product defects"),
            )];
            store
                .put_categories(&name, categories.into_iter().collect())
                .await
                .unwrap();
        }
        let schedule: NightlySchedule = serde_json::from_value(json!({
            "apiVersion": "tomato.dev/v1alpha1", "kind": "NightlySchedule",
            "metadata": {"name": "nightly"},
            "spec": {"service": "svc", "stand": "localhost"},
            "status": {"lastRun": "last"},
        }))
        .unwrap();
        store.create(schedule).await.unwrap();
        Fixture {
            _tmp: tmp,
            data,
            config,
            store,
        }
    }

    fn retention(&self) -> Retention {
        Retention::new(self.store.clone(), self.config.clone())
    }

    async fn reopen(&mut self) {
        self.store = SqliteStore::open(&self.data).unwrap();
    }

    /// What is stored of every run: its files, its expiry mark, its results and categories.
    async fn snapshot(&self) -> BTreeMap<String, (bool, bool, usize, usize)> {
        let mut out = BTreeMap::new();
        for r in runs() {
            let name = r.metadata.name.unwrap();
            let stored: Option<TestRun> = self.store.get(&name).await.unwrap();
            let files = run_dir(&self.data, &name).exists();
            let results = self.store.results(&name).await.unwrap().len();
            let categories = self.store.categories(&name).await.unwrap().len();
            match stored {
                None => {
                    assert!(!files, "{name} is deleted but its files stayed");
                    assert_eq!((results, categories), (0, 0), "{name}'s rows stayed");
                }
                Some(r) => {
                    let marked = tomato::retention::files_expired_at(&r).is_some();
                    assert_eq!(
                        marked, !files,
                        "{name}: files present {files}, marked expired {marked}"
                    );
                    out.insert(name, (files, marked, results, categories));
                }
            }
        }
        out
    }
}

fn names(snapshot: &BTreeMap<String, (bool, bool, usize, usize)>, files: bool) -> Vec<&str> {
    snapshot
        .iter()
        .filter(|(_, s)| s.0 == files)
        .map(|(n, _)| n.as_str())
        .collect()
}

#[tokio::test]
async fn runs_and_their_files_are_removed_on_time_and_nothing_else() {
    let f = Fixture::new().await;
    let retention = f.retention();
    let mut changes = f.store.subscribe();
    let all: Vec<String> = runs().into_iter().map(|r| r.metadata.name.unwrap()).collect();

    // Day 2: only the count limit of failed runs bites (f1 is the third newest).
    let removed = retention.pass(day(2)).await.unwrap();
    assert_eq!((removed.runs, removed.files), (1, 0));
    let s = f.snapshot().await;
    assert!(!s.contains_key("f1"));
    assert_eq!(s.len(), all.len() - 1);
    assert!(
        s.values().all(|v| v.0 && v.2 == 1 && v.3 == 1),
        "the others are whole: {s:?}"
    );
    let change = changes.try_recv().unwrap();
    assert_eq!(
        (change.kind.as_str(), change.name.as_str(), change.op),
        ("TestRun", "f1", ChangeOp::Deleted)
    );

    // A second before day 3 nothing more; at day 3 the files of runs finished on day 0 go
    // (the pinned run's stay), their verdicts stay.
    let removed = retention
        .pass(day(3) - chrono::Duration::seconds(1))
        .await
        .unwrap();
    assert!(removed.is_empty(), "{removed:?}");
    let removed = retention.pass(day(3)).await.unwrap();
    assert_eq!((removed.runs, removed.files), (0, 3));
    let s = f.snapshot().await;
    assert_eq!(names(&s, false), ["last", "own", "s-old"]);
    assert!(s.values().all(|v| v.2 == 1 && v.3 == 1), "verdicts stay: {s:?}");
    let marked: TestRun = f.store.get("s-old").await.unwrap().unwrap();
    assert_eq!(
        marked.metadata.annotations.unwrap()[ANNOTATION_FILES_EXPIRED],
        tomato::crd::precise_time(day(3))
    );

    // Day 10: the successful run of day 0 goes; the schedule's last run, the pinned run, the
    // run with its own 400 days, the unfinished run and the other service's run stay.
    let removed = retention.pass(day(10)).await.unwrap();
    assert_eq!(removed.runs, 1, "{removed:?}");
    let s = f.snapshot().await;
    let kept: Vec<&str> = s.keys().map(String::as_str).collect();
    assert_eq!(
        kept,
        ["f2", "f3", "forever", "last", "own", "pinned", "running", "s-new"]
    );
    assert_eq!(names(&s, true), ["forever", "pinned", "running"]);

    // Nothing is left to do at the same time; a year later only the limits' runs go.
    assert!(retention.pass(day(10)).await.unwrap().is_empty());
    retention.pass(day(365)).await.unwrap();
    let s = f.snapshot().await;
    let kept: Vec<&str> = s.keys().map(String::as_str).collect();
    assert_eq!(kept, ["forever", "last", "own", "pinned", "running"]);
}

async fn call(app: &axum::Router, uri: &str) -> (StatusCode, String) {
    let req = Request::builder().uri(uri).body(Body::empty()).unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let body = axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn expired_files_are_answered_gone_with_the_date_while_the_run_and_its_verdicts_stay() {
    let f = Fixture::new().await;
    f.retention().pass(day(3)).await.unwrap();
    let app = tomato::app::app(tomato::api::AppState {
        backend: Arc::new(f.store.clone()),
        config: f.config.clone(),
        auth: tomato::api::Auth::open(),
        public_url: "http://localhost".into(),
        tms_configured: false,
        tracker_configured: false,
    });
    for artifact in ["log", "junit", "attachments/shot.png"] {
        let (status, body) = call(&app, &format!("/api/v1/runs/s-old/attempts/1/{artifact}")).await;
        assert_eq!(status, StatusCode::GONE, "{artifact}: {body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            body["error"],
            "the files of run s-old (logs, JUnit, attachments) expired by retention on 2026-01-04 00:00 UTC; \
             its verdicts are kept"
        );
    }
    // An attempt that never was is still not found.
    assert_eq!(
        call(&app, "/api/v1/runs/s-old/attempts/2/log").await.0,
        StatusCode::NOT_FOUND
    );
    let (status, run) = call(&app, "/api/v1/runs/s-old").await;
    assert_eq!(status, StatusCode::OK, "{run}");
    let (status, tests) = call(&app, "/api/v1/runs/s-old/tests").await;
    assert_eq!(status, StatusCode::OK);
    assert!(tests.contains("t::a"), "the verdicts stay: {tests}");
    // The run page says so instead of linking files.
    let (status, page) = call(&app, "/runs/s-old").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("Logs, JUnit and attachments expired by retention on 2026-01-04 00:00 UTC"),
        "{page}"
    );
    assert!(!page.contains("/api/v1/runs/s-old/attempts/1/log"), "{page}");
    // A run whose files are kept serves them.
    let (status, log) = call(&app, "/api/v1/runs/s-new/attempts/1/log").await;
    assert_eq!((status, log.as_str()), (StatusCode::OK, "log of s-new\n"));
}

#[tokio::test]
async fn a_restart_in_the_middle_of_a_pass_loses_nothing_that_should_stay() {
    // What an uninterrupted pass at day 10 leaves.
    let whole = Fixture::new().await;
    let expected_steps = whole.retention().plan(day(10)).await.unwrap();
    assert!(expected_steps.len() >= 4, "{expected_steps:?}");
    whole.retention().pass(day(10)).await.unwrap();
    let expected = whole.snapshot().await;

    // Cut short after every step, and inside every deletion (files gone, object not yet).
    for done in 0..expected_steps.len() {
        for inside in [false, true] {
            let mut f = Fixture::new().await;
            let retention = f.retention();
            let steps = retention.plan(day(10)).await.unwrap();
            assert_eq!(steps, expected_steps);
            for step in &steps[..done] {
                retention.apply(step, day(10)).await.unwrap();
            }
            let next = &steps[done];
            if inside {
                remove_files(&f.data, &next.run).await.unwrap();
            }
            drop(retention);
            f.reopen().await;
            // The restarted server's first pass finishes the job.
            f.retention().pass(day(10)).await.unwrap();
            assert_eq!(
                f.snapshot().await,
                expected,
                "cut after {done} step(s){}",
                if inside { " and inside the next" } else { "" }
            );
            if inside && next.action == Action::ExpireFiles {
                let r: TestRun = f.store.get(&next.run).await.unwrap().unwrap();
                assert!(tomato::retention::files_expired_at(&r).is_some());
            }
        }
    }
}

/// The real binary: a pass at start and every `TOMATO_RETENTION_INTERVAL`, with limits of
/// seconds, over a real run of the demo suite; a pinned run stays.
#[tokio::test]
async fn the_server_expires_files_then_runs_of_a_real_suite_and_keeps_a_pinned_one() {
    let demo = std::fs::read_to_string(format!("{}/packs_config/demo.yaml", support::REPO)).unwrap();
    let (head, _) = demo
        .split_once("\nretention:")
        .expect("demo.yaml has a retention block");
    let text = format!(
        "{head}\nretention:\n  successful: {{maxAge: 25s}}\n  failed: {{maxAge: 25s}}\n  files: {{maxAge: 1s}}\n"
    );
    let config = support::config_with(&[("demo.yaml", &text)]);
    let server =
        support::Server::start_with(Some(config.path()), &[("TOMATO_RETENTION_INTERVAL", "1s")]).await;
    let body = |retention: Value| {
        json!({"spec": {"service": "demo", "stand": "localhost", "category": "smoke", "retries": 0,
                        "retention": retention}})
    };
    let (code, plain) = server.post_json("/api/v1/runs", &body(Value::Null)).await;
    assert_eq!(code, 201, "{plain}");
    let (code, pinned) = server
        .post_json("/api/v1/runs", &body(json!({"keep": true})))
        .await;
    assert_eq!(code, 201, "{pinned}");
    let (code, bad) = server
        .post_json("/api/v1/runs", &body(json!({"maxAge": "0d"})))
        .await;
    assert_eq!(
        (code, bad["parameter"].as_str()),
        (400, Some("spec.retention.maxAge")),
        "{bad}"
    );
    let plain = plain["metadata"]["name"].as_str().unwrap().to_string();
    let pinned = pinned["metadata"]["name"].as_str().unwrap().to_string();
    for id in [&plain, &pinned] {
        server.wait_finished(id, Duration::from_secs(120)).await;
    }
    let log = |id: &str| format!("/api/v1/runs/{id}/attempts/1/log");
    // The files go about a second after the run finished: 410, naming retention.
    let plain_log = log(&plain);
    poll(
        &server,
        "the files to expire",
        Duration::from_secs(20),
        || server.get_text(&plain_log),
        410,
    )
    .await;
    let (_, gone) = server.get(&log(&plain)).await;
    assert!(
        gone["error"]
            .as_str()
            .unwrap()
            .contains("expired by retention on"),
        "{gone}"
    );
    assert!(!run_dir(&server.data_dir, &plain).exists());
    assert_eq!(
        server.get(&format!("/api/v1/runs/{plain}")).await.0,
        200,
        "the run stays"
    );
    // Then the run itself goes.
    let run_url = format!("/api/v1/runs/{plain}");
    poll(
        &server,
        "the run to be deleted",
        Duration::from_secs(60),
        || server.get_text(&run_url),
        404,
    )
    .await;
    assert!(server.log().contains("retention removed expired runs and files"));
    // The pinned run and its files stay.
    assert_eq!(server.get(&format!("/api/v1/runs/{pinned}")).await.0, 200);
    assert_eq!(server.get_text(&log(&pinned)).await.0, 200);
    assert!(Path::new(&run_dir(&server.data_dir, &pinned)).exists());
}

/// Polls `get` until it answers `code`.
async fn poll<F, Fut>(server: &support::Server, what: &str, timeout: Duration, get: F, code: u16)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = (u16, String)>,
{
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let (got, body) = get().await;
        if got == code {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "waited {timeout:?} for {what}: last answer {got} {body}\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_run_that_cannot_be_removed_is_left_for_the_next_pass_and_the_others_still_go() {
    let f = Fixture::new().await;
    // f1's files are in the way: a plain file where its directory should be.
    let dir = run_dir(&f.data, "f1");
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::write(&dir, "not a directory").unwrap();
    let removed = f.retention().pass(day(10)).await.unwrap();
    assert_eq!((removed.runs, removed.failed), (1, 1), "{removed:?}");
    let f1: Option<TestRun> = f.store.get("f1").await.unwrap();
    assert!(f1.is_some(), "a run whose files could not go stays");
    let s_old: Option<TestRun> = f.store.get("s-old").await.unwrap();
    assert!(s_old.is_none(), "the other expired run went");
    std::fs::remove_file(&dir).unwrap();
    let removed = f.retention().pass(day(10)).await.unwrap();
    assert_eq!((removed.runs, removed.failed), (1, 0), "{removed:?}");
    f.snapshot().await;
}
