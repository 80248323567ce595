//! Operator mode with a results database (issue 14 item 2), on a real Kubernetes control
//! plane (`tests/cluster/up`; every test here needs it) and a real PostgreSQL (Debian's
//! package, a throwaway cluster per test): `tomato exec` uploads to whichever replica the
//! proxy routes it to, that replica writes the results to the database, and every replica
//! serves logs, JUnit and tests from it. Nothing but the TestRun's bounded status stays in
//! etcd; results an earlier version kept in ConfigMaps are still served after the upgrade;
//! history, novelty and comparisons work in operator mode as in standalone mode.

mod support;

use std::sync::Arc;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use serde_json::Value;
use support::REPO;
use support::cluster::TestNs;
use support::operator::*;
use support::postgres::PgCluster;

async fn get_json(url: &str) -> (u16, Value) {
    let r = reqwest::get(url).await.unwrap();
    let code = r.status().as_u16();
    (code, r.json().await.unwrap_or(Value::Null))
}

async fn get_text(url: &str) -> (u16, String) {
    let r = reqwest::get(url).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The results ConfigMaps in `k`'s namespace (labelled `tomato.dev/results`) and the
/// classification ConfigMaps (`<run>-categories-<n>`).
async fn results_config_maps(k: &TestNs) -> Vec<String> {
    let cms: Api<ConfigMap> = Api::namespaced(k.client(), &k.ns);
    cms.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|cm| cm.labels().contains_key("tomato.dev/results") || cm.name_any().contains("-categories-"))
        .map(|cm| cm.name_any())
        .collect()
}

/// Runs the demo's smoke preset as `name` to its end (two attempts: the flaky test passes on
/// the rerun, one test keeps failing), each attempt's upload routed to `upload_to`.
async fn demo_run(k: &TestNs, name: &str, upload_to: &str) {
    create_run(k, name, template("demo")).await;
    let first = wait_job(k, &format!("{name}-1")).await;
    assert_eq!(run_job_via(k, &first, Some(upload_to)).await, 1);
    let second = wait_job(k, &format!("{name}-2")).await;
    run_job_via(k, &second, Some(upload_to)).await;
    wait_phase(k, name, "Failed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_database_results_leave_etcd_and_every_replica_serves_them_with_history() {
    let k = TestNs::new("opdb").await;
    let pg = PgCluster::start();
    let db = pg.store(4).await;
    let (_dir, config) = demo_config(&k, "");
    let leader = start_replica_with_database(&k, config.clone(), "tomato-0", db.clone()).await;
    eventually("tomato-0 leads", WAIT, || async {
        leader.is_leader().then_some(())
    })
    .await;
    let other = start_replica_with_database(&k, config, "tomato-1", db.clone()).await;

    // The uploads go to the replica that does not lead: it writes them to the database, and
    // the leader reads them from there to end each attempt.
    demo_run(&k, "first", &other.url).await;
    let run = runs(&k).get("first").await.unwrap();
    let st = run.status.clone().unwrap();
    let s = st.summary.unwrap();
    assert_eq!((s.passed, s.failed, s.flaky, s.skipped), (3, 1, 1, 1), "{s:?}");
    assert!(!st.categories.is_empty(), "{:?}", st.categories);
    assert_eq!(
        results_config_maps(&k).await,
        Vec::<String>::new(),
        "no results or classification ConfigMap is written with a database"
    );

    // In the database: each attempt's tests as rows, the classification, how the run ended.
    let rows = db.results("first").await.unwrap();
    assert_eq!(rows.iter().filter(|r| r.attempt == 1).count(), 6, "{rows:?}");
    // Node's runner reports the tests a rerun's name patterns leave out as skipped.
    let rerun: Vec<_> = rows.iter().filter(|r| r.attempt == 2).collect();
    assert!(
        rerun.iter().any(|r| r.id == "submits the order form"
            && r.case.status == tomato::results::CaseStatus::Passed),
        "{rerun:?}"
    );
    let categories = db.categories("first").await.unwrap();
    for c in &st.categories {
        for t in &c.tests {
            assert_eq!(
                categories.get(&t.name).map(|x| x.category.as_str()),
                Some(c.name.as_str())
            );
        }
    }
    let recorded = db.run("first").await.unwrap().unwrap();
    assert_eq!(recorded.phase, Some(tomato::crd::Phase::Failed));
    assert_eq!(recorded.identity.uid, run.metadata.uid.clone().unwrap());

    // Both replicas serve the log, the JUnit and the tests from the database.
    for url in [&leader.url, &other.url] {
        let (code, log) = get_text(&format!("{url}/api/v1/runs/first/attempts/1/log")).await;
        assert_eq!(code, 200);
        assert!(log.contains("applies the discount"), "{log}");
        let (code, junit) = get_text(&format!("{url}/api/v1/runs/first/attempts/2/junit")).await;
        assert_eq!(code, 200);
        assert!(junit.contains("<testcase"), "{junit}");
        let (code, tests) = get_json(&format!("{url}/api/v1/runs/first/tests?verdict=flaky")).await;
        assert_eq!(code, 200);
        assert_eq!(tests[0]["name"], "submits the order form", "{tests:#}");
    }

    // History works in operator mode: the same failure in a second run is known, the test's
    // history lists both runs, and the second run compares with the first by default.
    demo_run(&k, "second", &other.url).await;
    let (_, tests) = get_json(&format!("{}/api/v1/runs/second/tests?verdict=failed", other.url)).await;
    let failed = &tests[0];
    assert_eq!(failed["novelty"]["kind"], "known", "{tests:#}");
    assert_eq!(failed["novelty"]["sinceRun"], "first", "{tests:#}");
    let id = failed["id"].as_str().unwrap();
    let (code, history) = get_json(&format!(
        "{}/api/v1/services/demo/tests/{}",
        leader.url,
        tomato::text::path_segment(id)
    ))
    .await;
    assert_eq!(code, 200, "{history:#}");
    let runs_seen: Vec<&str> = history["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["run"].as_str())
        .collect();
    assert_eq!(runs_seen, ["second", "first"], "{history:#}");
    let (code, compared) = get_json(&format!("{}/api/v1/runs/second/compare", leader.url)).await;
    assert_eq!(code, 200, "{compared:#}");
    assert_eq!(compared["with"], "first", "{compared:#}");
    assert_eq!(compared["stillFailing"][0]["sameSignature"], true, "{compared:#}");
    assert_eq!(results_config_maps(&k).await, Vec::<String>::new());

    // A run deleted and created again under its name is another run: what the database kept
    // of the first one never ends or shows as the new one's attempt 1.
    runs(&k)
        .delete("first", &kube::api::DeleteParams::default())
        .await
        .unwrap();
    eventually("the first run gone", WAIT, || async {
        runs(&k).get_opt("first").await.unwrap().is_none().then_some(())
    })
    .await;
    // The new run's pods wait at their gates (closed again), so its attempt 1 can only end
    // with what the database kept of the old one.
    for gate in ["first-1", "first-2"] {
        let _ = std::fs::remove_file(k.gates.path().join(gate));
    }
    create_run(&k, "first", template("demo")).await;
    wait_job(&k, "first-1").await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let again = runs(&k).get("first").await.unwrap();
    let attempts = &again.status.as_ref().unwrap().attempts;
    assert_eq!(attempts.len(), 1, "{attempts:#?}");
    assert_eq!(
        attempts[0].state,
        tomato::crd::AttemptState::Running,
        "{attempts:#?}"
    );
    let (code, tests) = get_json(&format!("{}/api/v1/runs/first/tests", leader.url)).await;
    assert_eq!(
        (code, tests),
        (200, serde_json::json!([])),
        "no tests of the deleted run"
    );
}

/// An upgrade: runs whose results a version without the database kept in ConfigMaps are
/// served unchanged by a replica that keeps results in the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_kept_in_config_maps_before_the_upgrade_are_still_served() {
    let k = TestNs::new("opdb-up").await;
    let (_dir, config) = demo_config(&k, "");
    let mut before = start_replica(&k, config.clone(), "tomato-old").await;
    demo_run(&k, "old", &before.url).await;
    assert!(
        results_config_maps(&k).await.len() >= 3,
        "results and classification ConfigMaps"
    );
    let read = |url: String| async move {
        let (_, tests) = get_json(&format!("{url}/api/v1/runs/old/tests")).await;
        let (_, log) = get_text(&format!("{url}/api/v1/runs/old/attempts/1/log")).await;
        let (_, junit) = get_text(&format!("{url}/api/v1/runs/old/attempts/2/junit")).await;
        (tests, log, junit)
    };
    let (tests, log, junit) = read(before.url.clone()).await;
    assert!(tests.as_array().is_some_and(|t| t.len() == 6), "{tests:#}");
    before.stop().await;

    let pg = PgCluster::start();
    let db = pg.store(4).await;
    let after = start_replica_with_database(&k, config, "tomato-new", db.clone()).await;
    eventually("the new replica leads", WAIT, || async {
        after.is_leader().then_some(())
    })
    .await;
    let (tests_after, log_after, junit_after) = read(after.url.clone()).await;
    // The same tests with the same categories; only the novelty differs, now that a history
    // is kept (it starts with the upgrade: the failure is new to it).
    let without_novelty = |mut t: Value| {
        for test in t.as_array_mut().unwrap() {
            test.as_object_mut().unwrap().remove("novelty");
        }
        t
    };
    assert_eq!(without_novelty(tests_after), without_novelty(tests));
    assert_eq!(log_after, log);
    assert_eq!(junit_after, junit);
    // And a run made after the upgrade keeps its results in the database.
    demo_run(&k, "new", &after.url).await;
    assert!(!db.results("new").await.unwrap().is_empty());
    assert!(
        results_config_maps(&k)
            .await
            .iter()
            .all(|n| n.starts_with("old-")),
        "{:?}",
        results_config_maps(&k).await
    );
}

/// A generated suite of 5,000 tests, written as JUnit by a real Python process in the Job's
/// pod: on attempt 1 all fail, each with a 2 KiB trace; on a rerun the odd ones pass.
const BIG_SUITE: &str = r#"
import os, sys
# No braces: packs_config reads them as placeholders.
attempt = int(os.environ.get("TOMATO_ATTEMPT", "1"))
step = '  File "suite/test_%05d.py", line %d, in step_%d\n    check(value_%d)\n'
cases = []
for i in range(5000):
    if attempt > 1 and i % 2 == 1:
        cases.append('<testcase classname="big.Suite" name="test_%05d" time="0.001"/>' % i)
        continue
    trace = "".join(step % (i, n, n, n) for n in range(40))
    cases.append('<testcase classname="big.Suite" name="test_%05d" time="0.001"><failure message="expected %d but was %d">%sAssertionError</failure></testcase>' % (i, i, i + 1, trace))
with open(sys.argv[1], "w") as f:
    f.write('<?xml version="1.0"?><testsuite name="big" tests="5000" failures="5000">' + "".join(cases) + "</testsuite>")
print("wrote 5000 failing tests")
sys.exit(1)
"#;

fn big_config(webhook: &str) -> (tempfile::TempDir, Arc<tomato::packs::PacksConfig>) {
    let dir = tempfile::tempdir().unwrap();
    let yaml = serde_json::json!({
        "description": "5,000 failing tests with long traces",
        "stands": {"pattern": "localhost"},
        "retries": 0,
        "launch": {
            "command": ["python3", "-c", BIG_SUITE, "{junit}", "{tests}"],
            "timeout": "10m",
            "image": "python:3.11-slim",
            "workingDir": REPO,
        },
        "rerun": {"testId": "pytest"},
        "packs": {"all": {"description": "everything", "tests": ["all"]}},
        "presets": {"smoke": ["all"]},
        "report": {"emails": [], "webhooks": [webhook]},
    });
    std::fs::write(
        dir.path().join("big.yaml"),
        serde_json::to_string_pretty(&yaml).unwrap(),
    )
    .unwrap();
    let config = Arc::new(tomato::packs::PacksConfig::load(dir.path()).unwrap());
    config.check_operator().unwrap();
    (dir, config)
}

/// Issue 14: "a run of 5,000 tests with long traces leaves no object in etcd larger than
/// 64 KiB". All 5,000 fail, so attempt 2 reruns all 5,000: its selection is kept in the
/// database (the TestRun says how many) and its Job's command is fetched by `tomato exec`.
/// Every object of the run's namespace is measured as the API server serves it (`kubectl get
/// --raw` for the TestRun); sizes are printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_of_5000_failing_tests_with_long_traces_leaves_no_object_over_64_kib_in_etcd() {
    const LIMIT: usize = 64 << 10;
    let k = TestNs::new("opdb-big").await;
    let pg = PgCluster::start();
    let db = pg.store(4).await;
    let (hook, hooks) = webhook_receiver().await;
    let (_dir, config) = big_config(&hook);
    let replica = start_replica_with_database(&k, config, "tomato-0", db.clone()).await;
    create_run(&k, "big", template("big")).await;
    wait_phase(&k, "big", "Failed").await;
    let run = runs(&k).get("big").await.unwrap();
    let summary = run.status.as_ref().unwrap().summary.unwrap();
    assert_eq!((summary.failed, summary.flaky), (2500, 2500), "{summary:?}");
    // Attempt 1 and the rerun of its 5,000 failures, each as rows.
    let attempts = &run.status.as_ref().unwrap().attempts;
    assert_eq!(attempts.len(), 2, "{attempts:#?}");
    assert_eq!(
        attempts[1].selection.stored_tests,
        Some(5000),
        "{:#?}",
        attempts[1]
    );
    assert!(
        attempts[1].selection.tests.is_empty(),
        "the list is kept in the database"
    );
    let (_, log) = get_text(&format!("{}/api/v1/runs/big/attempts/2/log", replica.url)).await;
    assert_eq!(
        attempts[1].summary.map(|s| (s.failed, s.passed)),
        Some((2500, 2500)),
        "{:#?}\n{}",
        attempts[1],
        &log[log.len().saturating_sub(3000)..]
    );
    let rows = db.results("big").await.unwrap();
    assert_eq!(rows.iter().filter(|r| r.attempt == 1).count(), 5000);
    assert_eq!(rows.iter().filter(|r| r.attempt == 2).count(), 5000);

    let raw = k.cluster.kubectl_ok(
        &[
            "get",
            "--raw",
            &format!("/apis/tomato.dev/v1alpha1/namespaces/{}/testruns/big", k.ns),
        ],
        None,
    );
    let mut sizes = vec![("TestRun/big".to_string(), raw.len())];
    let uid = run.metadata.uid.clone().unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(k.client(), &k.ns);
    for cm in cms.list(&ListParams::default()).await.unwrap().items {
        sizes.push((
            format!("ConfigMap/{}", cm.name_any()),
            serde_json::to_vec(&cm).unwrap().len(),
        ));
    }
    let secrets: Api<Secret> = Api::namespaced(k.client(), &k.ns);
    for s in secrets.list(&ListParams::default()).await.unwrap().items {
        sizes.push((
            format!("Secret/{}", s.name_any()),
            serde_json::to_vec(&s).unwrap().len(),
        ));
    }
    let jobs: Api<Job> = Api::namespaced(k.client(), &k.ns);
    for j in jobs.list(&ListParams::default()).await.unwrap().items {
        sizes.push((
            format!("Job/{}", j.name_any()),
            serde_json::to_vec(&j).unwrap().len(),
        ));
    }
    let pods: Api<Pod> = Api::namespaced(k.client(), &k.ns);
    for p in pods.list(&ListParams::default()).await.unwrap().items {
        sizes.push((
            format!("Pod/{}", p.name_any()),
            serde_json::to_vec(&p).unwrap().len(),
        ));
    }
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(k.client(), &k.ns);
    for e in events.list(&ListParams::default()).await.unwrap().items {
        sizes.push((
            format!("Event/{}", e.name_any()),
            serde_json::to_vec(&e).unwrap().len(),
        ));
    }
    for (name, size) in &sizes {
        println!("{name}: {size} bytes");
    }
    let over: Vec<_> = sizes.iter().filter(|(_, s)| *s > LIMIT).collect();
    assert!(over.is_empty(), "objects over 64 KiB: {over:?} (run uid {uid})");
    assert!(sizes.iter().any(|(n, _)| n.starts_with("Job/")), "{sizes:?}");

    // The API serves every test from the database, the rerun's passes merged in (which needs
    // the rerun's list of 5,000, kept in the database); so did the first report.
    for (verdict, n) in [("failed", 2500), ("flaky", 2500)] {
        let (code, tests) = get_json(&format!(
            "{}/api/v1/runs/big/tests?verdict={verdict}",
            replica.url
        ))
        .await;
        assert_eq!(code, 200);
        assert_eq!(tests.as_array().map(Vec::len), Some(n), "{verdict}");
    }
    let posted = eventually("the webhook report", WAIT, || async {
        hooks.lock().unwrap().first().cloned()
    })
    .await;
    assert!(posted.contains("*Flaky tests* (2500)"), "{posted}");
}
