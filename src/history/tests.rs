//! [`tags`] over a real SQLite store: runs created one after another (the store's clock),
//! results and classifications put as the standalone driver puts them.

use super::*;
use crate::classify::{ByTest, Classified};
use crate::crd::{RunTemplate, TestRun};
use crate::results::{AttemptResult, Case, CaseStatus, Novelty, Signature};
use crate::store::SqliteStore;

/// One test's outcome in a run: passed, or failed with this message.
type Given<'a> = (&'a str, Option<&'a str>);

async fn finished_run(
    store: &SqliteStore,
    name: &str,
    stand: &str,
    packs: &[&str],
    phase: Phase,
    tests: &[Given<'_>],
) {
    let mut template = RunTemplate::test("demo");
    template.stand = stand.into();
    template.packs = packs.iter().map(|p| p.to_string()).collect();
    store.create(TestRun::test(name, template)).await.unwrap();
    let results = tests
        .iter()
        .map(|(id, failure)| {
            let mut case = Case::failed("demo", id, None);
            match failure {
                Some(message) => case.message = message.to_string(),
                None => case.status = CaseStatus::Passed,
            }
            AttemptResult {
                attempt: 1,
                id: id.to_string(),
                case,
            }
        })
        .collect();
    store.put_results(name, 1, results).await.unwrap();
    let classified: ByTest = tests
        .iter()
        .filter_map(|(id, failure)| {
            failure.map(|m| {
                let c = Classified {
                    category: "Product defects".into(),
                    signature: Some(Signature::of(m, "")),
                };
                (id.to_string(), c)
            })
        })
        .collect();
    store.put_categories(name, classified).await.unwrap();
    store
        .update::<TestRun, _>(name, move |r| {
            r.status.get_or_insert_default().phase = phase;
            Ok((true, ()))
        })
        .await
        .unwrap();
}

async fn tags_of(store: &SqliteStore, name: &str) -> Tags {
    let run: TestRun = store.get(name).await.unwrap().unwrap();
    let merged = crate::core::merge_run(run.status.as_ref().unwrap(), store.results(name).await.unwrap());
    tags(store, &run, &merged)
        .await
        .unwrap()
        .expect("standalone keeps history")
}

#[tokio::test]
async fn failures_are_new_then_known_or_changed_and_passes_after_a_comparable_failure_are_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let timeout = Some("timed out after 30 s waiting for http://stand-1:8080/health");
    let timeout_again = Some("timed out after 45 s waiting for http://stand-2:8081/health");
    let status = "expected 200, got 500";

    finished_run(
        &store,
        "n1",
        "s1",
        &["api"],
        Phase::Failed,
        &[("login", timeout), ("cart", None)],
    )
    .await;
    let first = tags_of(&store, "n1").await;
    assert_eq!(first.failures["login"], Novelty::New, "no history yet");
    assert!(first.fixed.is_empty());

    // The same failure (numbers, hosts and ports differ: one signature), a changed one, a
    // fix, and a failure on another stand.
    finished_run(
        &store,
        "n2",
        "s1",
        &["api"],
        Phase::Failed,
        &[("login", timeout_again), ("cart", Some(status))],
    )
    .await;
    finished_run(
        &store,
        "n3",
        "s2",
        &["api"],
        Phase::Failed,
        &[("login", timeout), ("cart", None)],
    )
    .await;
    finished_run(
        &store,
        "n4",
        "s1",
        &["api"],
        Phase::Failed,
        &[("login", timeout), ("cart", timeout)],
    )
    .await;
    let tags4 = tags_of(&store, "n4").await;
    match &tags4.failures["login"] {
        Novelty::Known {
            since_run,
            times,
            stands,
            ..
        } => {
            assert_eq!((since_run.as_str(), times), ("n1", &3));
            assert_eq!(stands, &["s1".to_string(), "s2".to_string()]);
        }
        other => panic!("login is known, not {other:?}"),
    }
    match &tags4.failures["cart"] {
        Novelty::Changed {
            previous, last_run, ..
        } => {
            assert_eq!(last_run, "n2");
            assert_eq!(previous, &Some(Signature::of(status, "")));
        }
        other => panic!("cart failed before, differently: {other:?}"),
    }

    // n5 passes both. Its comparable predecessor is n4 (same stand and packs), not n3: cart
    // and login are fixed. A run over other packs, or a cancelled one, is no comparison.
    finished_run(
        &store,
        "other-packs",
        "s1",
        &["ui"],
        Phase::Failed,
        &[("login", timeout)],
    )
    .await;
    finished_run(&store, "cancelled", "s1", &["api"], Phase::Cancelled, &[]).await;
    finished_run(
        &store,
        "n5",
        "s1",
        &["api"],
        Phase::Succeeded,
        &[("login", None), ("cart", None)],
    )
    .await;
    let tags5 = tags_of(&store, "n5").await;
    assert!(tags5.failures.is_empty());
    assert_eq!(tags5.fixed, ["cart", "login"]);

    // Read again later, an earlier run's tags do not change: only runs before it count.
    assert_eq!(tags_of(&store, "n1").await, first);
    assert_eq!(tags_of(&store, "n4").await, tags4);
}
