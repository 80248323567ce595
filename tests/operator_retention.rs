//! Retention in operator mode on a real Kubernetes control plane (`tests/cluster/up`; every test
//! here needs it): expired TestRuns are deleted, with what they own going by the API server's
//! garbage collection, and every other run is kept — first with an explicit clock (the pass
//! itself, with the operator's own ServiceAccount, and a real PostgreSQL results database),
//! then by a leading replica's pass at start.

mod support;

use chrono::{DateTime, TimeZone, Utc};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Resource;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use support::cluster::TestNs;
use support::operator::*;
use tomato::crd::{RunRetention, TestRun};
use tomato::operator::Scope;
use tomato::operator::results::Keeper;
use tomato::store::results::RunIdentity;

/// The demo service with retention limits of days (the explicit clock jumps them).
fn config(k: &TestNs) -> (tempfile::TempDir, std::sync::Arc<tomato::packs::PacksConfig>) {
    let text = demo_text(k);
    let (head, _) = text
        .split_once("\nretention:")
        .expect("demo.yaml has a retention block");
    demo_config_text(format!(
        "{head}\nretention:\n  successful: {{maxAge: 10d}}\n  failed: {{maxAge: 30d, runs: 2}}\n"
    ))
}

fn day(d: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::days(d)
}

/// Creates a run as `kubectl apply` would, then gives it a finished status (phase, finishedAt).
async fn finished_run(
    k: &TestNs,
    name: &str,
    phase: &str,
    finished: DateTime<Utc>,
    retention: Option<RunRetention>,
) -> TestRun {
    let mut run = TestRun::new(
        name,
        tomato::crd::TestRunSpec {
            template: template("demo"),
            run_type: tomato::crd::RunType::Regular,
            timeout: None,
            cancel: false,
            retention,
        },
    );
    run.metadata.namespace = Some(k.ns.clone());
    runs(k).create(&PostParams::default(), &run).await.unwrap();
    let status = json!({"status": {"phase": phase, "finishedAt": finished}});
    runs(k)
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap()
}

/// A ConfigMap and a suspended Job owned by `run` the way the operator owns its results and
/// attempts (a controller owner reference).
async fn owned_by(k: &TestNs, run: &TestRun) {
    let owner = run.controller_owner_ref(&()).unwrap();
    let name = run.metadata.name.clone().unwrap();
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": format!("{name}-results"), "ownerReferences": [owner]},
        "data": {"x": "y"},
    }))
    .unwrap();
    Api::<ConfigMap>::namespaced(k.client(), &k.ns)
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    let job: Job = serde_json::from_value(json!({
        "metadata": {"name": format!("{name}-1"), "ownerReferences": [owner]},
        "spec": {"suspend": true, "template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "t", "image": "node:20-slim", "command": ["true"]}]}}},
    }))
    .unwrap();
    jobs(k).create(&PostParams::default(), &job).await.unwrap();
}

async fn names(k: &TestNs) -> Vec<String> {
    let mut out: Vec<String> = runs(k)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|r| r.metadata.name.unwrap())
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_testruns_are_deleted_on_time_with_what_they_own_and_the_others_kept() {
    let k = TestNs::new("ret").await;
    let (_dir, config) = config(&k);
    let pg = support::postgres::PgCluster::start();
    let db = pg.store(2).await;
    let keeper = Keeper::new(k.operator_client.clone(), &k.ns, Some(db.clone()));
    // What the database keeps of a run, as the operator records it (its key is its name).
    let record = |name: &str, uid: String, created: DateTime<Utc>| {
        let identity = RunIdentity {
            name: name.into(),
            uid,
            service: "demo".into(),
            stand: "localhost".into(),
            created: tomato::store::results::micros_of(created),
        };
        let db = db.clone();
        async move { db.record_run(&identity).await.unwrap() }
    };
    let kept = || async {
        let page = tomato::store::results::RunPage {
            limit: 100,
            ..Default::default()
        };
        let mut names: Vec<String> = db
            .list_runs(&page)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.identity.name)
            .collect();
        names.sort();
        names
    };
    let pinned = RunRetention {
        keep: true,
        ..RunRetention::default()
    };
    let own = RunRetention {
        max_age: Some("400d".into()),
        ..RunRetention::default()
    };
    let s_old = finished_run(&k, "s-old", "Succeeded", day(0), None).await;
    finished_run(&k, "s-new", "Succeeded", day(5), None).await;
    finished_run(&k, "f1", "Failed", day(0), None).await;
    finished_run(&k, "f2", "Cancelled", day(1), None).await;
    finished_run(&k, "f3", "Error", day(2), None).await;
    finished_run(&k, "pinned", "Succeeded", day(0), Some(pinned)).await;
    finished_run(&k, "own", "Succeeded", day(0), Some(own)).await;
    // Unfinished (no status: nothing reconciles it here) and very old.
    create_run(&k, "queued", template("demo")).await;
    owned_by(&k, &s_old).await;
    let scope = Scope::Namespace(k.ns.clone());
    // The operator's own credentials (deploy/rbac.yaml) are enough.
    let client = k.operator_client.clone();
    for r in runs(&k).list(&ListParams::default()).await.unwrap().items {
        let created = tomato::crd::created(&r);
        record(
            &r.metadata.name.clone().unwrap(),
            r.metadata.uid.clone().unwrap(),
            created,
        )
        .await;
    }
    // Deleted by hand an hour ago (no TestRun is left): forgotten by the first pass. Recorded
    // a moment ago with no TestRun in the listing yet: kept, it may be a run being created.
    record(
        "by-hand",
        "uid-by-hand".into(),
        Utc::now() - chrono::Duration::hours(1),
    )
    .await;
    record("just-created", "uid-new".into(), Utc::now()).await;

    // Day 2: only the count limit of failed runs bites (f1 is the third newest).
    let removed = tomato::operator::retention::pass(&client, &config, &scope, &keeper, day(2))
        .await
        .unwrap();
    assert_eq!(removed.runs, 1);
    assert_eq!(
        names(&k).await,
        ["f2", "f3", "own", "pinned", "queued", "s-new", "s-old"]
    );
    // The database forgot the deleted run and the one deleted by hand, nothing else.
    assert_eq!(
        kept().await,
        [
            "f2",
            "f3",
            "just-created",
            "own",
            "pinned",
            "queued",
            "s-new",
            "s-old"
        ]
    );
    // A second before day 10 the successful run of day 0 stays; at day 10 it goes.
    let just_before = day(10) - chrono::Duration::seconds(1);
    let removed = tomato::operator::retention::pass(&client, &config, &scope, &keeper, just_before)
        .await
        .unwrap();
    assert!(removed.is_empty(), "{removed:?}");
    let removed = tomato::operator::retention::pass(&client, &config, &scope, &keeper, day(10))
        .await
        .unwrap();
    assert_eq!(removed.runs, 1);
    assert_eq!(names(&k).await, ["f2", "f3", "own", "pinned", "queued", "s-new"]);
    // What it owned goes by garbage collection (which watches a kind only after its discovery
    // resync, 30 s, has seen the CRD: on a cluster started for this binary that can be later).
    let cms = Api::<ConfigMap>::namespaced(k.client(), &k.ns);
    eventually("s-old's ConfigMap collected", RUN_WAIT, || async {
        cms.get_opt("s-old-results")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    eventually("s-old's Job collected", RUN_WAIT, || async {
        jobs(&k).get_opt("s-old-1").await.unwrap().is_none().then_some(())
    })
    .await;
    // A year on, only the pinned run, the run with its own 400 days and the unfinished run stay.
    tomato::operator::retention::pass(&client, &config, &scope, &keeper, day(365))
        .await
        .unwrap();
    assert_eq!(names(&k).await, ["own", "pinned", "queued"]);
    tomato::operator::retention::pass(&client, &config, &scope, &keeper, day(400))
        .await
        .unwrap();
    assert_eq!(names(&k).await, ["pinned", "queued"]);
    assert_eq!(kept().await, ["just-created", "pinned", "queued"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_deletes_expired_runs_when_it_starts_leading() {
    let k = TestNs::new("ret-lead").await;
    let (_dir, config) = config(&k);
    let now = Utc::now();
    finished_run(
        &k,
        "old-failure",
        "Failed",
        now - chrono::Duration::days(31),
        None,
    )
    .await;
    finished_run(
        &k,
        "old-success",
        "Succeeded",
        now - chrono::Duration::days(11),
        None,
    )
    .await;
    finished_run(&k, "recent", "Succeeded", now - chrono::Duration::days(9), None).await;
    let replica = start_replica(&k, config, "tomato-0").await;
    eventually("the expired runs deleted", WAIT, || async {
        (names(&k).await == ["recent"]).then_some(())
    })
    .await;
    assert!(replica.is_leader());
    // Its controllers left the recent run as it was.
    let recent = runs(&k).get("recent").await.unwrap();
    assert_eq!(recent.status.unwrap().phase, tomato::crd::Phase::Succeeded);
}

/// Files-only expiry in operator mode needs the results database, where each attempt's
/// verdicts are rows of their own: when `retention.files.maxAge` passes, a finished run's
/// uploads lose their reports and log (keeping its exit code), the run is marked
/// `tomato.dev/files-expired` (the API then answers its files with 410, as in standalone
/// mode), and its tests are still read, from the rows. Real PostgreSQL, explicit clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_database_a_runs_files_expire_on_time_and_its_verdicts_stay() {
    use tomato::results::upload::{AttemptResults, Source, gzip};
    let k = TestNs::new("ret-files").await;
    let text = demo_text(&k);
    let (head, _) = text
        .split_once("\nretention:")
        .expect("demo.yaml has a retention block");
    let (_dir, config) = demo_config_text(format!("{head}\nretention:\n  files: {{maxAge: 2d}}\n"));
    let pg = support::postgres::PgCluster::start();
    let db = pg.store(2).await;
    let keeper = Keeper::new(k.operator_client.clone(), &k.ns, Some(db.clone()));

    // A finished run of one attempt, its upload and verdict rows kept as the operator keeps them.
    finished_run(&k, "done", "Failed", day(0), None).await;
    let attempts = json!({"status": {"attempts": [
        {"number": 1, "selection": {"kind": "All", "packs": ["basic"]}, "state": "Finished"}
    ]}});
    let run = runs(&k)
        .patch_status("done", &PatchParams::default(), &Patch::Merge(&attempts))
        .await
        .unwrap();
    let junit = std::fs::read(format!("{}/tests/junit_samples/node.xml", support::REPO)).unwrap();
    let upload = AttemptResults {
        source: Source::Upload,
        exit_code: Some(1),
        signal: None,
        junit_gz: vec![gzip(&junit)],
        log: b"the attempt's log\n".to_vec(),
        message: None,
        owed: Vec::new(),
        allure_gz: Vec::new(),
        allure_notes: Vec::new(),
    };
    keeper.store(&run, 1, None, &upload).await.unwrap();
    let style = tomato::results::TestIdStyle::Node;
    let before = keeper.run_results(&run, &style).await.unwrap();
    assert_eq!(before.len(), 7, "the sample's tests");
    keeper.record_attempt(&run, 1, before.clone()).await.unwrap();

    let client = k.operator_client.clone();
    let scope = Scope::Namespace(k.ns.clone());
    let pass = |at| tomato::operator::retention::pass(&client, &config, &scope, &keeper, at);
    let removed = pass(day(2) - chrono::Duration::seconds(1)).await.unwrap();
    assert_eq!(removed.files, 0, "not yet: {removed:?}");
    let removed = pass(day(2)).await.unwrap();
    assert_eq!((removed.files, removed.runs), (1, 0), "{removed:?}");

    let run = runs(&k).get("done").await.unwrap();
    assert!(tomato::retention::files_expired_at(&run).is_some(), "marked");
    let kept = db
        .artifact(
            "done",
            1,
            tomato::store::results::ArtifactKind::Results { shard: None },
        )
        .await
        .unwrap()
        .unwrap();
    let stored = tomato::operator::results::StoredResults::decode(&kept, "launch 1").unwrap();
    assert!(!stored.has_junit(), "the report went");
    assert_eq!(stored.log().unwrap(), "", "the log went");
    assert_eq!(stored.exit_code, Some(1), "how it ended stays");
    // The verdicts stay, read from the rows now that the reports are gone.
    let after = keeper.run_results(&run, &style).await.unwrap();
    let verdicts = |r: &[tomato::results::AttemptResult]| -> Vec<(String, tomato::results::CaseStatus)> {
        r.iter().map(|x| (x.id.clone(), x.case.status)).collect()
    };
    assert_eq!(verdicts(&after), verdicts(&before));
    // Marked, it is not looked at again.
    let removed = pass(day(30)).await.unwrap();
    assert_eq!(removed.files, 0, "{removed:?}");
}
