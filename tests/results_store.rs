//! The results store's contract ([`tomato::store::ResultsStore`]), one suite run against both
//! implementations: the SQLite file of standalone mode (in a temporary data directory) and
//! PostgreSQL (a throwaway cluster started by the test, `tests/support/postgres.rs`, with a
//! fresh database per test). Each case is written once, as an async function over
//! `&dyn ResultsStore`; `suite!` makes one test per case per store.

mod support;

use std::sync::Arc;

use chrono::{DateTime, Duration as Span, Utc};
use tomato::classify::{ByTest, Classified};
use tomato::crd::Phase;
use tomato::results::{AttemptResult, Case, CaseStatus, Signature};
use tomato::store::database_url::DatabaseUrl;
use tomato::store::results::{ArtifactKind, HistoryQuery, Limits, ResultsStore, RunIdentity, RunPage};
use tomato::store::{PgStore, SqliteStore, StoreError};

use support::postgres::PgCluster;

/// Small enough for a test to reach.
const LIMITS: Limits = Limits {
    artifact_bytes_per_run: 64 * 1024,
};

/// A store under test and what must live as long as it.
struct Subject {
    store: Arc<dyn ResultsStore>,
    _dir: Option<tempfile::TempDir>,
    _cluster: Option<PgCluster>,
}

fn on_sqlite() -> Subject {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap().with_limits(LIMITS);
    Subject {
        store: Arc::new(store),
        _dir: Some(dir),
        _cluster: None,
    }
}

async fn on_postgres() -> Subject {
    let cluster = PgCluster::start();
    let url = DatabaseUrl::parse(&cluster.database().await).unwrap();
    let store = PgStore::connect(&url, 4, LIMITS).await.unwrap();
    Subject {
        store: Arc::new(store),
        _dir: None,
        _cluster: Some(cluster),
    }
}

macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    let s = super::on_sqlite();
                    super::$case(&*s.store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let s = super::on_postgres().await;
                    super::$case(&*s.store).await;
                }
            )*
        }
    };
}

suite!(
    results_read_back_as_they_were_put,
    an_attempt_of_thousands_of_tests_is_stored_whole_and_in_order,
    categories_keep_their_signatures,
    history_is_newest_first_limited_and_filtered_by_stand,
    failures_since_a_time_come_with_their_classification,
    durations_average_the_newest_runs_that_passed_or_failed,
    runs_are_recorded_finished_listed_and_replaced_by_a_new_uid,
    artifacts_are_kept_within_the_per_run_limit,
    an_added_artifact_is_kept_once_and_racing_adds_have_one_winner,
    deleting_a_run_removes_everything_of_it_and_nothing_else,
);

/// Now, at the microsecond (what both stores keep).
fn now() -> DateTime<Utc> {
    DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).unwrap()
}

fn identity(name: &str, service: &str, stand: &str, created: DateTime<Utc>) -> RunIdentity {
    RunIdentity {
        name: name.into(),
        uid: format!("uid-{name}"),
        service: service.into(),
        stand: stand.into(),
        created,
    }
}

fn result(attempt: u32, id: &str, status: CaseStatus, message: &str) -> AttemptResult {
    AttemptResult {
        attempt,
        id: id.into(),
        case: Case {
            suites: vec!["suite".into()],
            classname: "tests.test_x".into(),
            name: id.into(),
            file: Some("tests/test_x.py".into()),
            time_ms: Some(100),
            status,
            message: message.into(),
            kind: String::new(),
            trace: String::new(),
            system_out: String::new(),
            system_err: String::new(),
        },
    }
}

async fn record(store: &dyn ResultsStore, name: &str, service: &str, stand: &str, created: DateTime<Utc>) {
    store
        .record_run(&identity(name, service, stand, created))
        .await
        .unwrap();
}

async fn results_read_back_as_they_were_put(store: &dyn ResultsStore) {
    record(store, "r1", "demo", "stand-a", now()).await;
    let mut first = vec![
        result(1, "t::passed", CaseStatus::Passed, ""),
        result(
            1,
            "t::failed",
            CaseStatus::Failed,
            "expected: <200> but was: <500>",
        ),
        result(1, "t::errored", CaseStatus::Errored, "fixture 'db' not found"),
        result(1, "t::skipped", CaseStatus::Skipped, "not on this stand"),
        result(
            1,
            "t::юникод[Ünïcødé-✓]",
            CaseStatus::Failed,
            "ошибка: «кавычки» 🍅",
        ),
    ];
    first[1].case.trace = "Traceback (most recent call last):\n".to_string() + &"  frame\n".repeat(40_000);
    first[1].case.kind = "AssertionError".into();
    first[2].case.system_out = "stdout ✓\n".into();
    first[2].case.system_err = "stderr\n".into();
    first[3].case.file = None;
    first[3].case.time_ms = None;
    first[3].case.suites = vec![];
    first[4].case.suites = vec!["outer".into(), "inner «suite»".into()];
    store.put_results("r1", 1, first.clone()).await.unwrap();
    let second = vec![
        result(2, "t::failed", CaseStatus::Passed, ""),
        result(2, "t::errored", CaseStatus::Failed, "still"),
    ];
    store.put_results("r1", 2, second.clone()).await.unwrap();
    let all: Vec<AttemptResult> = first.iter().chain(&second).cloned().collect();
    assert_eq!(store.results("r1").await.unwrap(), all);

    // Putting an attempt again replaces it, and only it.
    let again = vec![result(2, "t::errored", CaseStatus::Passed, "")];
    store.put_results("r1", 2, again.clone()).await.unwrap();
    let all: Vec<AttemptResult> = first.iter().chain(&again).cloned().collect();
    assert_eq!(store.results("r1").await.unwrap(), all);

    assert!(store.results("unknown").await.unwrap().is_empty());
    let err = store.put_results("unknown", 1, first).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
}

async fn an_attempt_of_thousands_of_tests_is_stored_whole_and_in_order(store: &dyn ResultsStore) {
    record(store, "big", "demo", "a", now()).await;
    // More than one bulk insert's worth of rows in PostgreSQL.
    let many: Vec<AttemptResult> = (0..12_000)
        .map(|i| {
            let status = if i % 7 == 0 {
                CaseStatus::Failed
            } else {
                CaseStatus::Passed
            };
            result(1, &format!("t::test_{i:05}"), status, "m")
        })
        .rev()
        .collect();
    store.put_results("big", 1, many.clone()).await.unwrap();
    assert_eq!(store.results("big").await.unwrap(), many);
}

async fn categories_keep_their_signatures(store: &dyn ResultsStore) {
    record(store, "r1", "demo", "a", now()).await;
    let first = ByTest::from([
        (
            "t::failed".to_string(),
            Classified {
                category: "Product defects".into(),
                signature: Some(Signature::of("expected: <200> but was: <500>", "")),
            },
        ),
        ("t::юникод".to_string(), Classified::category("Unclassified")),
    ]);
    store.put_categories("r1", first.clone()).await.unwrap();
    assert_eq!(store.categories("r1").await.unwrap(), first);
    let second = ByTest::from([("t::other".to_string(), Classified::category("Timeouts"))]);
    store.put_categories("r1", second.clone()).await.unwrap();
    assert_eq!(
        store.categories("r1").await.unwrap(),
        second,
        "replaced, not added"
    );
    assert!(store.categories("unknown").await.unwrap().is_empty());
    let err = store.put_categories("unknown", second).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
}

async fn history_is_newest_first_limited_and_filtered_by_stand(store: &dyn ResultsStore) {
    let t0 = now() - Span::hours(10);
    for i in 0..6 {
        let name = format!("run-{i}");
        let stand = if i % 2 == 0 { "even" } else { "odd" };
        record(store, &name, "demo", stand, t0 + Span::hours(i)).await;
        let status = if i == 4 {
            CaseStatus::Failed
        } else {
            CaseStatus::Passed
        };
        store
            .put_results(
                &name,
                1,
                vec![
                    result(1, "t::x", status, &format!("m{i}")),
                    result(1, "t::y", status, ""),
                ],
            )
            .await
            .unwrap();
    }
    // The failing run's rerun: its attempt 2 is newer than its attempt 1.
    store
        .put_results("run-4", 2, vec![result(2, "t::x", CaseStatus::Passed, "")])
        .await
        .unwrap();
    // The same test id of another service is another test.
    record(store, "other", "other-service", "even", t0 + Span::hours(20)).await;
    store
        .put_results("other", 1, vec![result(1, "t::x", CaseStatus::Failed, "")])
        .await
        .unwrap();

    let query = |stand: Option<&str>, limit| HistoryQuery {
        service: "demo".into(),
        test_id: "t::x".into(),
        stand: stand.map(str::to_string),
        limit,
    };
    let h = store.test_history(&query(None, 4)).await.unwrap();
    let seen: Vec<(&str, u32)> = h.iter().map(|e| (e.run.as_str(), e.attempt)).collect();
    assert_eq!(seen, [("run-5", 1), ("run-4", 2), ("run-4", 1), ("run-3", 1)]);
    assert_eq!(h[2].status, CaseStatus::Failed);
    assert_eq!(h[2].message, "m4");
    assert_eq!(h[0].created, t0 + Span::hours(5));
    assert_eq!(h[0].stand, "odd");
    assert_eq!(h[0].time_ms, Some(100));

    let even = store.test_history(&query(Some("even"), 10)).await.unwrap();
    let runs: Vec<&str> = even.iter().map(|e| e.run.as_str()).collect();
    assert_eq!(runs, ["run-4", "run-4", "run-2", "run-0"]);
    assert!(
        store
            .test_history(&query(Some("nowhere"), 10))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.test_history(&query(None, 100)).await.unwrap().len(), 7);
}

async fn failures_since_a_time_come_with_their_classification(store: &dyn ResultsStore) {
    let now = now();
    for (name, days_ago, stand) in [("old", 10, "a"), ("week", 6, "b"), ("day", 1, "a")] {
        record(store, name, "demo", stand, now - Span::days(days_ago)).await;
        store
            .put_results(
                name,
                1,
                vec![
                    result(1, "t::fails", CaseStatus::Failed, &format!("boom in {name}")),
                    result(1, "t::breaks", CaseStatus::Errored, "no db"),
                    result(1, "t::passes", CaseStatus::Passed, ""),
                    result(1, "t::skips", CaseStatus::Skipped, "later"),
                ],
            )
            .await
            .unwrap();
    }
    let signature = Signature::of("boom in day", "");
    store
        .put_categories(
            "day",
            ByTest::from([(
                "t::fails".to_string(),
                Classified {
                    category: "Product defects".into(),
                    signature: Some(signature.clone()),
                },
            )]),
        )
        .await
        .unwrap();
    record(store, "elsewhere", "other", "a", now).await;
    store
        .put_results(
            "elsewhere",
            1,
            vec![result(1, "t::fails", CaseStatus::Failed, "x")],
        )
        .await
        .unwrap();

    let week = store
        .failures_since("demo", now - Span::days(7), None, 100)
        .await
        .unwrap();
    let seen: Vec<(&str, &str)> = week
        .iter()
        .map(|f| (f.run.as_str(), f.test_id.as_str()))
        .collect();
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert!(
        seen.iter().all(|(run, _)| *run == "day" || *run == "week"),
        "{seen:?}"
    );
    assert_eq!(
        &seen[..2].iter().map(|s| s.0).collect::<Vec<_>>(),
        &["day", "day"],
        "newest first"
    );
    let fails = week
        .iter()
        .find(|f| f.run == "day" && f.test_id == "t::fails")
        .unwrap();
    assert_eq!(fails.category.as_deref(), Some("Product defects"));
    assert_eq!(fails.signature.as_ref(), Some(&signature));
    assert_eq!(
        (fails.status, fails.message.as_str(), fails.stand.as_str()),
        (CaseStatus::Failed, "boom in day", "a")
    );
    let breaks = week
        .iter()
        .find(|f| f.run == "week" && f.test_id == "t::breaks")
        .unwrap();
    assert_eq!(
        (breaks.status, breaks.category.as_ref()),
        (CaseStatus::Errored, None)
    );
    assert_eq!(
        store
            .failures_since("demo", now - Span::days(7), None, 3)
            .await
            .unwrap()
            .len(),
        3
    );
    // `until` is exclusive: the run created at it is not before it.
    let before_day = store
        .failures_since("demo", now - Span::days(30), Some(now - Span::days(1)), 100)
        .await
        .unwrap();
    let runs: std::collections::BTreeSet<&str> = before_day.iter().map(|f| f.run.as_str()).collect();
    assert_eq!(runs, ["old", "week"].into(), "{before_day:?}");
    assert_eq!(before_day.len(), 4, "two failing results each: {before_day:?}");
    assert_eq!(
        store
            .failures_since("demo", now - Span::days(30), None, 100)
            .await
            .unwrap()
            .len(),
        6
    );
    assert!(
        store
            .failures_since("demo", now + Span::days(1), None, 100)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn durations_average_the_newest_runs_that_passed_or_failed(store: &dyn ResultsStore) {
    let t0 = now() - Span::hours(5);
    for (i, ms) in [(0, 10_000u64), (1, 100), (2, 300)] {
        let name = format!("d{i}");
        record(store, &name, "demo", "a", t0 + Span::hours(i)).await;
        let mut passed = result(1, "t::a", CaseStatus::Passed, "");
        passed.case.time_ms = Some(ms);
        let mut skipped = result(1, "t::skipped", CaseStatus::Skipped, "");
        skipped.case.time_ms = Some(5);
        let mut broken = result(1, "t::broken", CaseStatus::Errored, "");
        broken.case.time_ms = Some(7);
        store
            .put_results(&name, 1, vec![passed, skipped, broken])
            .await
            .unwrap();
    }
    let d = store.test_durations("demo", 2).await.unwrap();
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(
        d["t::a"],
        std::time::Duration::from_millis(200),
        "the two newest runs"
    );
    assert_eq!(
        store.test_durations("demo", 3).await.unwrap()["t::a"],
        std::time::Duration::from_millis(3_466)
    );
    assert!(store.test_durations("nothing", 3).await.unwrap().is_empty());
}

async fn runs_are_recorded_finished_listed_and_replaced_by_a_new_uid(store: &dyn ResultsStore) {
    let t0 = now() - Span::hours(10);
    for i in 0..5 {
        let service = if i == 2 { "other" } else { "demo" };
        record(store, &format!("run-{i}"), service, "a", t0 + Span::hours(i)).await;
    }
    // Recording the same run again changes nothing.
    store
        .put_results("run-1", 1, vec![result(1, "t", CaseStatus::Passed, "")])
        .await
        .unwrap();
    record(store, "run-1", "demo", "a", t0 + Span::hours(1)).await;
    assert_eq!(store.results("run-1").await.unwrap().len(), 1);

    let finished = t0 + Span::hours(6);
    store.finish_run("run-1", Phase::Failed, finished).await.unwrap();
    let got = store.run("run-1").await.unwrap().unwrap();
    assert_eq!(got.identity, identity("run-1", "demo", "a", t0 + Span::hours(1)));
    assert_eq!((got.phase, got.finished), (Some(Phase::Failed), Some(finished)));
    assert_eq!(store.run("run-0").await.unwrap().unwrap().phase, None);
    assert!(store.run("nope").await.unwrap().is_none());
    let err = store
        .finish_run("run-1", Phase::Running, finished)
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("phase:"), "{err}");
    let err = store
        .finish_run("nope", Phase::Succeeded, finished)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");

    let names = |runs: Vec<tomato::store::results::RunRecord>| {
        runs.into_iter().map(|r| r.identity.name).collect::<Vec<_>>()
    };
    let page = |service: Option<&str>, before, limit| RunPage {
        service: service.map(str::to_string),
        before,
        limit,
    };
    let first = store.list_runs(&page(None, None, 2)).await.unwrap();
    assert_eq!(names(first.clone()), ["run-4", "run-3"]);
    let last = first.last().unwrap().identity.clone();
    let next = store
        .list_runs(&page(None, Some((last.created, last.name)), 2))
        .await
        .unwrap();
    assert_eq!(names(next), ["run-2", "run-1"]);
    let demo = store.list_runs(&page(Some("demo"), None, 10)).await.unwrap();
    assert_eq!(names(demo), ["run-4", "run-3", "run-1", "run-0"]);

    // A new run under an old name (deleted and created again) replaces it.
    let mut newer = identity("run-1", "demo", "b", t0 + Span::hours(9));
    newer.uid = "another-uid".into();
    store.record_run(&newer).await.unwrap();
    assert!(
        store.results("run-1").await.unwrap().is_empty(),
        "the earlier run's results went"
    );
    let got = store.run("run-1").await.unwrap().unwrap();
    assert_eq!((got.identity, got.phase), (newer, None));
}

async fn artifacts_are_kept_within_the_per_run_limit(store: &dyn ResultsStore) {
    record(store, "r1", "demo", "a", now()).await;
    record(store, "r2", "demo", "a", now()).await;
    let log = b"line one\nline two \xe2\x9c\x93\n".repeat(1000); // 22 KB
    let junit = b"<testsuite tests=\"1\"><testcase name=\"x\"/></testsuite>".to_vec();
    store
        .put_artifact("r1", 1, ArtifactKind::Log, log.clone())
        .await
        .unwrap();
    store
        .put_artifact("r1", 1, ArtifactKind::Junit, junit.clone())
        .await
        .unwrap();
    assert_eq!(
        store.artifact("r1", 1, ArtifactKind::Log).await.unwrap(),
        Some(log.clone())
    );
    assert_eq!(
        store.artifact("r1", 1, ArtifactKind::Junit).await.unwrap(),
        Some(junit.clone())
    );
    assert_eq!(store.artifact("r1", 2, ArtifactKind::Log).await.unwrap(), None);
    assert_eq!(store.artifact("r2", 1, ArtifactKind::Log).await.unwrap(), None);

    // A second launch's log: together over the 64 KiB limit.
    let big = vec![b'x'; 48 * 1024];
    let err = store
        .put_artifact("r1", 2, ArtifactKind::Log, big.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::TooLarge(_)), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("\"r1\"") && text.contains("limit of 65536 bytes"),
        "{text}"
    );
    assert_eq!(
        store.artifact("r1", 2, ArtifactKind::Log).await.unwrap(),
        None,
        "nothing was kept"
    );
    // Replacing the first log with a smaller one makes room; the limit is per run.
    store
        .put_artifact("r1", 1, ArtifactKind::Log, b"short\n".to_vec())
        .await
        .unwrap();
    store
        .put_artifact("r1", 2, ArtifactKind::Log, big.clone())
        .await
        .unwrap();
    store
        .put_artifact("r2", 1, ArtifactKind::Log, big.clone())
        .await
        .unwrap();
    assert_eq!(
        store.artifact("r1", 2, ArtifactKind::Log).await.unwrap(),
        Some(big)
    );
    assert_eq!(
        store.artifact("r1", 1, ArtifactKind::Log).await.unwrap(),
        Some(b"short\n".to_vec())
    );
    assert_eq!(
        store.artifact("r1", 1, ArtifactKind::Junit).await.unwrap(),
        Some(junit)
    );
}

/// What operator mode's upload relies on: the first upload of a launch's (or a shard's)
/// results stays, a retried or racing one is told so and changes nothing, and uploads count
/// against the run's artifact limit like logs do.
async fn an_added_artifact_is_kept_once_and_racing_adds_have_one_winner(store: &dyn ResultsStore) {
    record(store, "r1", "demo", "a", now()).await;
    let whole = ArtifactKind::Results { shard: None };
    let shard = |i| ArtifactKind::Results { shard: Some(i) };
    assert!(
        store
            .add_artifact("r1", 1, whole, b"first".to_vec())
            .await
            .unwrap()
    );
    assert!(
        !store
            .add_artifact("r1", 1, whole, b"second".to_vec())
            .await
            .unwrap()
    );
    assert_eq!(
        store.artifact("r1", 1, whole).await.unwrap(),
        Some(b"first".to_vec())
    );
    // A shard's upload and the next launch's are apart from it.
    assert_eq!(store.artifact("r1", 1, shard(0)).await.unwrap(), None);
    assert!(
        store
            .add_artifact("r1", 1, shard(0), b"s0".to_vec())
            .await
            .unwrap()
    );
    assert!(
        store
            .add_artifact("r1", 1, shard(1), b"s1".to_vec())
            .await
            .unwrap()
    );
    assert!(
        store
            .add_artifact("r1", 2, whole, b"next".to_vec())
            .await
            .unwrap()
    );
    assert_eq!(
        store.artifact("r1", 1, shard(1)).await.unwrap(),
        Some(b"s1".to_vec())
    );
    assert_eq!(
        store.artifact("r1", 2, whole).await.unwrap(),
        Some(b"next".to_vec())
    );

    // Eight racing adds of one artifact: exactly one wins, and its bytes are kept.
    let adds = (0..8u8).map(|i| store.add_artifact("r1", 3, whole, vec![i; 64]));
    let won: Vec<bool> = futures::future::join_all(adds)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
    let winner = won.iter().position(|w| *w).unwrap() as u8;
    assert_eq!(
        store.artifact("r1", 3, whole).await.unwrap(),
        Some(vec![winner; 64])
    );
}

async fn deleting_a_run_removes_everything_of_it_and_nothing_else(store: &dyn ResultsStore) {
    for name in ["gone", "kept"] {
        record(store, name, "demo", "a", now()).await;
        store
            .put_results(name, 1, vec![result(1, "t::x", CaseStatus::Failed, "boom")])
            .await
            .unwrap();
        store
            .put_categories(
                name,
                ByTest::from([("t::x".to_string(), Classified::category("Timeouts"))]),
            )
            .await
            .unwrap();
        store
            .put_artifact(name, 1, ArtifactKind::Log, b"log\n".to_vec())
            .await
            .unwrap();
    }
    assert!(store.delete_run("gone").await.unwrap());
    assert!(store.run("gone").await.unwrap().is_none());
    assert!(store.results("gone").await.unwrap().is_empty());
    assert!(store.categories("gone").await.unwrap().is_empty());
    assert_eq!(store.artifact("gone", 1, ArtifactKind::Log).await.unwrap(), None);
    let history = HistoryQuery {
        service: "demo".into(),
        test_id: "t::x".into(),
        stand: None,
        limit: 10,
    };
    let h = store.test_history(&history).await.unwrap();
    assert_eq!(h.iter().map(|e| e.run.as_str()).collect::<Vec<_>>(), ["kept"]);
    assert!(!store.delete_run("gone").await.unwrap(), "nothing left to delete");

    assert_eq!(store.results("kept").await.unwrap().len(), 1);
    assert_eq!(store.categories("kept").await.unwrap().len(), 1);
    assert_eq!(
        store.artifact("kept", 1, ArtifactKind::Log).await.unwrap(),
        Some(b"log\n".to_vec())
    );
}

// Migrations, per store.

#[tokio::test]
async fn sqlite_reopens_without_migrating_again_and_keeps_results() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SqliteStore::open(dir.path()).unwrap();
        record(&store, "r", "demo", "a", now()).await;
        store
            .put_results("r", 1, vec![result(1, "t", CaseStatus::Passed, "")])
            .await
            .unwrap();
    }
    let store = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(store.results("r").await.unwrap().len(), 1);
}

#[tokio::test]
async fn postgres_migrates_once_even_when_two_replicas_start_together() {
    let cluster = PgCluster::start();
    let url = DatabaseUrl::parse(&cluster.database().await).unwrap();
    let (a, b) = tokio::join!(
        PgStore::connect(&url, 2, Limits::default()),
        PgStore::connect(&url, 2, Limits::default())
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.schema_version().await.unwrap(), 1);
    record(&a, "r", "demo", "a", now()).await;
    a.put_results("r", 1, vec![result(1, "t", CaseStatus::Passed, "")])
        .await
        .unwrap();
    drop((a, b));
    let again = PgStore::connect(&url, 2, Limits::default()).await.unwrap();
    assert_eq!(again.schema_version().await.unwrap(), 1, "nothing applied twice");
    assert_eq!(again.results("r").await.unwrap().len(), 1);
}

#[tokio::test]
async fn an_unreachable_database_is_an_error_without_the_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = DatabaseUrl::parse(&format!("postgres://tomato:s3cret-pass@127.0.0.1:{port}/x")).unwrap();
    let err = PgStore::connect(&url, 1, Limits::default()).await.unwrap_err();
    let text = err.to_string();
    assert_eq!(err.metric_label(), "postgres");
    assert!(
        text.contains("cannot connect to postgres://***@127.0.0.1"),
        "{text}"
    );
    assert!(!text.contains("s3cret"), "{text}");
}

#[tokio::test]
async fn postgres_keeps_a_nul_in_test_output_as_a_replacement_character() {
    let s = on_postgres().await;
    record(&*s.store, "r", "demo", "a", now()).await;
    let mut r = result(1, "t", CaseStatus::Failed, "a\0b");
    r.case.system_out = "\0".into();
    s.store.put_results("r", 1, vec![r]).await.unwrap();
    let back = s.store.results("r").await.unwrap();
    assert_eq!(back[0].case.message, "a\u{FFFD}b");
    assert_eq!(back[0].case.system_out, "\u{FFFD}");
}

// `tomato serve --database-url`: checked at start, for real.

#[tokio::test]
async fn serve_connects_to_and_migrates_the_configured_database_without_logging_its_password() {
    let cluster = PgCluster::start();
    let url = cluster.database().await.replace("tomato@", "tomato:s3cret-pass@");
    let server = support::Server::start_with(None, &[("TOMATO_DATABASE_URL", url.as_str())]).await;
    let log = server.log();
    assert!(
        log.contains("the results database is reachable and migrated"),
        "{log}"
    );
    assert!(log.contains("postgres://***@127.0.0.1"), "{log}");
    assert!(!log.contains("s3cret"), "{log}");
    let store = PgStore::connect(&DatabaseUrl::parse(&url).unwrap(), 1, Limits::default())
        .await
        .unwrap();
    assert_eq!(store.schema_version().await.unwrap(), 1);
}

#[tokio::test]
async fn serve_refuses_to_start_when_the_database_cannot_be_reached() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let data = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_tomato"))
        .arg("serve")
        .env("TOMATO_LISTEN", "127.0.0.1:0")
        .env("TOMATO_DATA_DIR", data.path())
        .env("TOMATO_CONFIG", format!("{}/packs_config", support::REPO))
        .env(
            "TOMATO_DATABASE_URL",
            format!("postgres://tomato:s3cret-pass@127.0.0.1:{port}/x"),
        )
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("cannot connect to postgres://***@127.0.0.1"),
        "{text}"
    );
    assert!(!text.contains("s3cret"), "{text}");
}
