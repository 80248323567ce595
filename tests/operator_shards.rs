//! Sharded runs in operator mode against a real Kubernetes control plane (`tests/cluster/up`;
//! every test here needs it): an attempt of a run with `shards: 3` is one Indexed Job of three
//! completions, whose three pods the real Job controller creates (each with its
//! `JOB_COMPLETION_INDEX`), the real scheduler binds and the process kubelet runs with the
//! real `tomato exec --sharded` and the demo suite (Node's test runner). Each pod waits at its
//! own gate (`<job>-<index>`), so the test decides when each shard runs, or kills it before
//! it can report.
//!
//! The same run goes twice: with results in ConfigMaps (each index's launch in the shards
//! ConfigMap, given by `envFrom`), and with a real PostgreSQL results database (each index's
//! launch kept there and read by `tomato exec --sharded --fetch` through the API).

mod support;

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use serde_json::Value;
use support::cluster::TestNs;
use support::operator::*;

/// The demo service with room for three shards (service and stand limits of 3).
fn sharded_config(k: &TestNs) -> (tempfile::TempDir, std::sync::Arc<tomato::packs::PacksConfig>) {
    let (dir, _) = demo_config(k, "");
    let path = dir.path().join("demo.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text.replace(
        "  concurrency: 1\nconcurrency: 1\n",
        "  concurrency: 3\nconcurrency: 3\n",
    );
    assert!(
        text.contains("concurrency: 3\nconcurrency: 3\n"),
        "demo.yaml's limits moved"
    );
    std::fs::write(&path, text).unwrap();
    let config = std::sync::Arc::new(tomato::packs::PacksConfig::load(dir.path()).unwrap());
    config.check_operator().unwrap();
    (dir, config)
}

/// The pods of Job `job`, by completion index, once there are `n`.
async fn indexed_pods(k: &TestNs, job: &str, n: usize) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(k.client(), &k.ns);
    eventually(&format!("{n} pods of Job {job}"), RUN_WAIT, || async {
        let mut items = pods
            .list(&ListParams::default().labels(&format!("job-name={job}")))
            .await
            .unwrap()
            .items;
        items.sort_by_key(index_of);
        (items.len() == n).then_some(items)
    })
    .await
}

fn index_of(p: &Pod) -> Option<u32> {
    p.metadata
        .annotations
        .as_ref()?
        .get("batch.kubernetes.io/job-completion-index")?
        .parse()
        .ok()
}

/// Waits until the test container of `pod` ended; answers its exit code.
async fn container_exit(k: &TestNs, pod: &Pod) -> i32 {
    support::operator::wait_pod_exit(k, &k.ns, &pod.metadata.name.clone().unwrap()).await
}

async fn api_run(replica: &Replica, name: &str) -> Value {
    let r = reqwest::get(format!("{}/api/v1/runs/{name}", replica.url))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sharded_run_is_one_indexed_job_and_a_crashed_shard_fails_only_its_tests() {
    let k = TestNs::new("shards").await;
    let (_dir, config) = sharded_config(&k);
    let replica = start_replica(&k, config, "tomato-0").await;
    sharded_run(&k, &replica).await;
    k.cluster
        .kubectl_ok(&["get", "configmap", "demo-sh-shards-1", "-n", &k.ns], None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_results_database_each_shard_fetches_its_launch_through_the_api() {
    let k = TestNs::new("shards-db").await;
    let (_dir, config) = sharded_config(&k);
    let pg = support::postgres::PgCluster::start();
    let db = pg.store(4).await;
    let replica = start_replica_with_database(&k, config, "tomato-0", db).await;
    sharded_run(&k, &replica).await;
    // Nothing of the launch is in a ConfigMap or the Job: each pod read its own from the API.
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(k.client(), &k.ns);
    assert!(cms.get_opt("demo-sh-shards-1").await.unwrap().is_none());
    let job = jobs(&k).get("demo-sh-1").await.unwrap();
    let command = container(&job).command.clone().unwrap();
    assert_eq!(command[1..], ["exec", "--fetch", "--sharded"], "{command:?}");
    assert!(container(&job).env_from.is_none());

    // The launch is read only with the run's token, naming a shard the launch has.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(k.client(), &k.ns);
    let secret = secrets.get("demo-sh-upload-token").await.unwrap();
    let token = String::from_utf8(secret.data.unwrap()["token"].0.clone()).unwrap();
    let read = |token: &str, query: &str| {
        let url = format!("{}/api/v1/runs/demo-sh/attempts/1/launch{query}", replica.url);
        let token = token.to_string();
        async move {
            let r = reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (code, body) = read(&token, "?shard=1").await;
    assert_eq!(code, 200, "{body}");
    let launch: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(launch["items"], serde_json::json!(["basic"]), "{launch:#}");
    assert!(
        launch["argv"].to_string().contains("basic.test.mjs"),
        "{launch:#}"
    );
    assert_eq!(read("not-the-token", "?shard=1").await.0, 401);
    let (code, body) = read(&token, "").await;
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("?shard="), "{body}");
    let (code, body) = read(&token, "?shard=7").await;
    assert_eq!(code, 404, "{body}");
    // Attempt 2 (three tests) is small: its Job carries its command itself.
    let second = jobs(&k).get("demo-sh-2").await.unwrap();
    assert!(
        !container(&second)
            .command
            .clone()
            .unwrap()
            .contains(&"--fetch".to_string()),
        "{second:?}"
    );
}

/// The sharded run both tests make, from its creation to its end.
async fn sharded_run(k: &TestNs, replica: &Replica) {
    let mut t = template("demo");
    t.category = None;
    t.packs = vec!["api".into(), "basic".into(), "slow".into()];
    t.shards = Some(3);
    create_run(k, "demo-sh", t).await;

    // Attempt 1 is one Indexed Job: three completions at once, one pod per index, none retried.
    let job = wait_job(k, "demo-sh-1").await;
    let spec = job.spec.clone().unwrap();
    assert_eq!(spec.completion_mode.as_deref(), Some("Indexed"));
    assert_eq!((spec.completions, spec.parallelism), (Some(3), Some(3)));
    assert_eq!(spec.backoff_limit_per_index, Some(0));
    let pods = indexed_pods(k, "demo-sh-1", 3).await;
    let indexes: BTreeSet<Option<u32>> = pods.iter().map(index_of).collect();
    assert_eq!(indexes, BTreeSet::from([Some(0), Some(1), Some(2)]));

    // The split (by pack: operator mode does not list tests) is in the run's status, each
    // shard running, with its Job index as its launch.
    let r = eventually("the shards in the API", WAIT, || async {
        let r = api_run(replica, "demo-sh").await;
        (r["status"]["attempts"][0]["shards"].as_array()?.len() == 3).then_some(r)
    })
    .await;
    let shards = r["status"]["attempts"][0]["shards"].as_array().unwrap().clone();
    assert!(
        shards
            .iter()
            .all(|s| s["unit"] == "packs" && s["state"] == "Running"),
        "{r:#}"
    );
    assert_eq!(shards[2]["launch"], "Job demo-sh-1, index 2");

    // Shard 1 (basic) runs and uploads; the API shows it ended, with its counts, while the
    // others still wait at their gates.
    k.open_gate("demo-sh-1-1");
    assert_eq!(container_exit(k, &pods[1]).await, 1, "basic has failing tests");
    let r = eventually("shard 1 ended in the API", WAIT, || async {
        let r = api_run(replica, "demo-sh").await;
        let s = r["status"]["attempts"][0]["shards"].as_array()?.clone();
        (s[1]["state"] == "Finished").then_some(r)
    })
    .await;
    let shards = r["status"]["attempts"][0]["shards"].as_array().unwrap();
    assert_eq!(
        (&shards[0]["state"], &shards[2]["state"]),
        (&Value::from("Running"), &Value::from("Running")),
        "{r:#}"
    );
    assert_eq!(
        (&shards[1]["passed"], &shards[1]["failed"], &shards[1]["skipped"]),
        (&Value::from(3), &Value::from(2), &Value::from(1)),
        "{r:#}"
    );
    assert_eq!(r["status"]["attempts"][0]["state"], "Running");

    // Each shard uploads once, with the run's token, naming an index the attempt has.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(k.client(), &k.ns);
    let secret = secrets.get("demo-sh-upload-token").await.unwrap();
    let token = String::from_utf8(secret.data.unwrap()["token"].0.clone()).unwrap();
    let upload = |token: String, query: &'static str| {
        let url = format!("{}/api/v1/runs/demo-sh/attempts/1/results{query}", replica.url);
        async move {
            let form = reqwest::multipart::Form::new().text("exitCode", "0");
            let r = reqwest::Client::new()
                .post(url)
                .bearer_auth(token)
                .multipart(form)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (code, body) = upload(token.clone(), "?shard=1").await;
    assert_eq!(code, 409, "shard 1 already reported: {body}");
    assert_eq!(upload("not-the-token".into(), "?shard=2").await.0, 401);
    let (code, body) = upload(token.clone(), "?shard=3").await;
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("0 to 2"), "{body}");
    let (code, body) = upload(token.clone(), "").await;
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("?shard="), "{body}");

    // Shard 2 (slow) dies before it can report: once no upload came, its pod tells, and the
    // API shows it crashed while shard 0 still runs.
    k.kill_at_gate("demo-sh-1-2", "the node went away\n");
    assert_eq!(container_exit(k, &pods[2]).await, 137);
    let r = eventually("shard 2 crashed in the API", WAIT, || async {
        let r = api_run(replica, "demo-sh").await;
        let s = r["status"]["attempts"][0]["shards"].as_array()?.clone();
        (s[2]["state"] == "Crashed").then_some(r)
    })
    .await;
    assert_eq!(
        r["status"]["attempts"][0]["shards"][0]["state"], "Running",
        "{r:#}"
    );
    assert_eq!(r["status"]["attempts"][0]["state"], "Running");
    // Shard 0 (api) runs last; then the Job is done.
    k.open_gate("demo-sh-1-0");
    assert_eq!(container_exit(k, &pods[0]).await, 1, "api has a failing test");

    // Attempt 2 reruns the failed tests (few: one ordinary Job) and the run ends.
    let second = wait_job(k, "demo-sh-2").await;
    assert_eq!(
        second.spec.as_ref().unwrap().completion_mode.as_deref(),
        Some("NonIndexed"),
        "the API server's default"
    );
    let run = runs(k).get("demo-sh").await.unwrap();
    let first = &run.status.as_ref().unwrap().attempts[0];
    let crashed = &first.shards[2];
    assert_eq!(crashed.state, tomato::crd::ShardState::Crashed, "{first:?}");
    assert_eq!((crashed.broken, crashed.exit_code), (1, Some(137)));
    assert!(
        crashed
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("crashed (exit code 137)"),
        "{crashed:?}"
    );
    let s = first.summary.unwrap();
    assert_eq!(
        (s.total, s.passed, s.failed, s.broken, s.skipped),
        (9, 4, 3, 1, 1),
        "{s:?}"
    );
    run_job(k, &second).await;

    let st = wait_finished(k, "demo-sh", RUN_WAIT).await;
    assert_eq!(st.phase.to_string(), "Failed", "{st:?}");
    // Split by pack, the crashed shard owed its pack ("slow"), which a rerun cannot select
    // (it selects tests): attempt 2 reran the three failed tests only, and the run says so.
    assert_eq!(st.attempts[1].summary.unwrap().total, 3, "{st:?}");
    assert_eq!(
        st.attempts[1].state,
        tomato::crd::AttemptState::Finished,
        "{st:?}"
    );
    assert_eq!(st.attempts[1].selection.tests.len(), 3, "{st:?}");
    let message = st.message.clone().unwrap_or_default();
    assert!(
        message.contains("3 tests still failing after 2 attempts; not rerun: slow, of a shard that crashed"),
        "{message}"
    );
    let (_, tests) = {
        let r = reqwest::get(format!("{}/api/v1/runs/demo-sh/tests", replica.url))
            .await
            .unwrap();
        (r.status(), r.json::<Value>().await.unwrap())
    };
    let verdicts: std::collections::BTreeMap<String, String> = tests
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["id"].as_str().unwrap().into(),
                t["verdict"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(verdicts["submits the order form"], "flaky", "{verdicts:#?}");
    assert_eq!(verdicts["cart > applies the discount"], "failed", "{verdicts:#?}");
    assert_eq!(
        verdicts["talks to the billing backend"], "failed",
        "{verdicts:#?}"
    );
    assert_eq!(
        verdicts["slow"], "broken",
        "the crashed shard's pack: {verdicts:#?}"
    );
    for passed in [
        "adds numbers",
        "formats prices",
        "cart > totals line items",
        "stand is named",
    ] {
        assert_eq!(verdicts[passed], "passed", "{verdicts:#?}");
    }
    assert_eq!(verdicts.len(), 9, "{verdicts:#?}");
    // One Job per attempt: the three shards were completions of the first.
    assert_eq!(job_names(k).await, ["demo-sh-1", "demo-sh-2"]);
    // The attempt's log holds every shard's, the crashed one's read from its pod.
    let log = reqwest::get(format!("{}/api/v1/runs/demo-sh/attempts/1/log", replica.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        log.contains("===== shard 2 of 3 =====") && log.contains("the node went away"),
        "{log}"
    );
}

/// The pytest example service sharded in two, as a Job of the suite's image would run it
/// (the process kubelet runs its pods as local processes in `workingDir`); `list` replaces
/// the runner preset's listing when given.
fn pytest_config(list: Option<&str>) -> (tempfile::TempDir, std::sync::Arc<tomato::packs::PacksConfig>) {
    let list = list.map(|l| format!("\n  list: {l}")).unwrap_or_default();
    let text = format!(
        "stands: {{pattern: 'localhost', concurrency: 2}}\nconcurrency: 2\nshards: 2\n\
         launch:\n  runner: pytest\n  image: python:3.11-slim\n  workingDir: {}/packs_config/demo-py\n  \
         timeout: 5m\n  env: {{PYTHONDONTWRITEBYTECODE: '1'}}{list}\n\
         packs:\n  core: {{tests: ['{{dir}}/tests/test_core.py']}}\n  accounts: {{tests: ['{{dir}}/tests/test_accounts.py']}}\n",
        support::REPO
    );
    operator_config("py.yaml", &text)
}

/// A run of the pytest service's two packs.
fn py_template() -> tomato::crd::RunTemplate {
    let mut t = template("py");
    t.category = None;
    t.packs = vec!["core".into(), "accounts".into()];
    t
}

/// Attempt 1 of a service that can list its tests (pytest's preset) is split test by test, as
/// in standalone mode: a listing Job of the suite's own image (`tomato exec --list`) collects
/// them, the operator reads them from its pod's log and splits them, then deletes it. A
/// listing that fails leaves the attempt split by pack, with a warning event saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempt_one_is_split_by_the_tests_a_listing_job_collects() {
    let k = TestNs::new("shards-list").await;
    let (_dir, config) = pytest_config(None);
    let replica = start_replica(&k, config, "tomato-0").await;
    create_run(&k, "py-list", py_template()).await;

    // The listing Job comes first: the attempt's own pod, listing instead of testing.
    let listing = wait_job(&k, "py-list-1-list").await;
    let command = container(&listing).command.clone().unwrap();
    assert_eq!(command[1..4], ["exec", "--list", "--"], "{command:?}");
    assert!(command.contains(&"--collect-only".to_string()), "{command:?}");
    assert_eq!(
        listing.metadata.labels.as_ref().unwrap()["tomato.dev/listing"],
        "true"
    );
    let env = env(&listing);
    assert!(
        !env.contains_key("TOMATO_UPLOAD_TOKEN") && !env.contains_key("TOMATO_UPLOAD_URL"),
        "a listing uploads nothing: {env:?}"
    );

    let st = wait_finished(&k, "py-list", RUN_WAIT).await;
    let first = &st.attempts[0];
    assert_eq!(first.shards.len(), 2, "{first:?}");
    let mut items: Vec<String> = Vec::new();
    for s in &first.shards {
        assert_eq!(s.unit.as_deref(), Some("tests"), "{s:?}");
        assert!(s.tests >= 3, "seven tests split evenly: {s:?}");
    }
    // Each shard ran only its own tests; together, exactly what pytest collects.
    let counted: u32 = first
        .shards
        .iter()
        .map(|s| s.passed + s.failed + s.skipped + s.broken)
        .sum();
    assert_eq!(counted, 7, "{first:?}");
    let launches = k.cluster.kubectl_ok(
        &["get", "configmap", "py-list-shards-1", "-n", &k.ns, "-o", "json"],
        None,
    );
    let cm: Value = serde_json::from_str(&launches).unwrap();
    for (_, launch) in cm["data"].as_object().unwrap() {
        let launch: Value = serde_json::from_str(launch.as_str().unwrap()).unwrap();
        assert_eq!(launch["unit"], "tests", "{launch:#}");
        items.extend(
            launch["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i.as_str().unwrap().to_string()),
        );
    }
    items.sort();
    assert_eq!(
        items,
        [
            "tests/test_accounts.py::TestProfile::test_changes_avatar",
            "tests/test_accounts.py::TestProfile::test_shows_name",
            "tests/test_core.py::test_adds_vat",
            "tests/test_core.py::test_applies_coupon",
            "tests/test_core.py::test_flaky_payment_gateway",
            "tests/test_core.py::test_gift_cards",
            "tests/test_core.py::test_rounds_prices",
        ]
    );
    let s = first.summary.unwrap();
    assert_eq!((s.total, s.passed, s.failed, s.skipped), (7, 3, 3, 1), "{s:?}");
    // The flaky test passed on the rerun; the run fails on its two real failures.
    assert_eq!(st.phase.to_string(), "Failed", "{st:?}");
    assert_eq!(st.attempts[1].summary.unwrap().total, 3, "{st:?}");
    assert_eq!(st.attempts[1].summary.unwrap().passed, 1, "{st:?}");
    assert!(
        event_notes(&k, "py-list", "ListingTests").await[0].contains("Job py-list-1-list"),
        "the listing is announced"
    );
    // Its listing served: the Job is gone once the split was recorded.
    eventually("the listing Job deleted", WAIT, || async {
        jobs(&k)
            .get_opt("py-list-1-list")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    drop(replica);

    // A listing that fails: the attempt is split by pack, and an event says why.
    let k = TestNs::new("shards-nolist").await;
    let (_dir, config) = pytest_config(Some("[python3, -c, \"import sys; sys.exit('no listing here')\"]"));
    let _replica = start_replica(&k, config, "tomato-0").await;
    create_run(&k, "py-nolist", py_template()).await;
    let st = wait_finished(&k, "py-nolist", RUN_WAIT).await;
    let first = &st.attempts[0];
    assert_eq!(first.shards.len(), 2, "{first:?}");
    for s in &first.shards {
        assert_eq!(s.unit.as_deref(), Some("packs"), "{s:?}");
    }
    assert_eq!(first.summary.unwrap().total, 7, "{first:?}");
    let notes = event_notes(&k, "py-nolist", "ListingFailed").await;
    assert!(
        notes
            .iter()
            .any(|n| n.contains("no listing here") && n.contains("split by pack")),
        "{notes:?}"
    );
}
