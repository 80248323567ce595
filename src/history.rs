//! Failure memory: reads what [`crate::results::novelty::tag`] needs from a backend's results
//! store and tags a run's failures as new, known or changed, and the tests it fixed.
//!
//! Read, not stored: the tags of a run are a function of the history *before* it (runs
//! created earlier), so they read the same every time, and every surface (the API's test
//! list, the run page, the report) asks here. The history is the service's failures of the
//! last [`WINDOW_DAYS`] days before the run (at most [`MAX_FAILURES`] failing results, the
//! newest before the run first: later runs never crowd an old run's history out); retention
//! that removed older runs shortens it.
//!
//! The previous *comparable* run — the one whose failures that now pass are "fixed" — is the
//! newest earlier run of the same service on the same stand over the same packs that ended
//! with a verdict (`Succeeded` or `Failed`; a cancelled or errored run ran too little to
//! compare with). At most [`COMPARABLE_SCAN`] earlier runs are looked at for it.
//!
//! A backend without a results store of its own (operator mode until its results move to
//! the database, issue 14) has no history: [`tags`] answers `None` and surfaces show none.

use std::collections::{HashMap, HashSet};

use chrono::Duration;

use crate::backend::Backend;
use crate::crd::{Phase, TestRun};
use crate::results::{MergedTest, Outcome, PastFailure, Tags, tag_novelty};
use crate::store::StoreError;
use crate::store::results::{HistoryQuery, RunPage, micros_of};

/// How far back a failure counts as known.
pub const WINDOW_DAYS: i64 = 90;
/// At most this many earlier failing results are read per run tagged.
pub const MAX_FAILURES: u32 = 50_000;
/// At most this many earlier runs of the service are looked at for the previous comparable one.
pub const COMPARABLE_SCAN: u32 = 50;
/// Attempts a run can have (1 + at most 9 retries): a test's last N runs are at most this
/// many results per run.
const MAX_ATTEMPTS: u32 = 10;

pub mod compare;
pub mod rules;
pub mod timeline;

/// Said where a mode keeps no history (operator mode without a results database).
pub const NO_HISTORY: &str =
    "this Tomato keeps no history: operator mode keeps it only with a results database (--database-url)";

/// Proposed categories rules for `service`'s unclassified failures of the last `days` days
/// ([`rules::suggest`], clusters of at least `min_failures`), or `None` when the backend keeps
/// no history.
pub async fn rule_suggestions(
    backend: &dyn Backend,
    service: &str,
    days: u32,
    min_failures: usize,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<Vec<rules::Suggestion>>, StoreError> {
    let Some(store) = backend.history() else {
        return Ok(None);
    };
    let since = now - Duration::days(i64::from(days));
    let failures = store.failures_since(service, since, None, MAX_FAILURES).await?;
    Ok(Some(rules::suggest(&failures, min_failures)))
}

/// Compares `run` with `before` (by default its previous comparable run): `None` when there is
/// no run to compare with. Works wherever results are kept (an explicit `before` needs no
/// history store).
pub async fn compare_runs(
    backend: &dyn Backend,
    run: &TestRun,
    before: Option<TestRun>,
    slower_by: f64,
) -> Result<Option<(TestRun, compare::Comparison)>, StoreError> {
    let before = match before {
        Some(b) => b,
        None => match previous_comparable(backend, run, micros_of(crate::crd::created(run))).await? {
            Some(b) => b,
            None => return Ok(None),
        },
    };
    let side = |r: &TestRun| {
        let name = r.metadata.name.clone().unwrap_or_default();
        let status = r.status.clone().unwrap_or_default();
        async move {
            let tests = crate::core::merge_run(&status, backend.results(&name).await?);
            let signatures = backend.categories(&name).await?;
            Ok::<_, StoreError>((tests, signatures))
        }
    };
    let (old_tests, old_signatures) = side(&before).await?;
    let (new_tests, new_signatures) = side(run).await?;
    let comparison = compare::compare(
        &compare::Side {
            tests: &old_tests,
            signatures: &old_signatures,
        },
        &compare::Side {
            tests: &new_tests,
            signatures: &new_signatures,
        },
        slower_by,
    );
    Ok(Some((before, comparison)))
}

/// The last `runs` runs of one test of `service` (on `stand`), or `None` when the backend
/// keeps no history.
pub async fn test_timeline(
    backend: &dyn Backend,
    service: &str,
    test_id: &str,
    stand: Option<&str>,
    runs: u32,
) -> Result<Option<timeline::Timeline>, StoreError> {
    let Some(store) = backend.history() else {
        return Ok(None);
    };
    let entries = store
        .test_history(&HistoryQuery {
            service: service.to_string(),
            test_id: test_id.to_string(),
            stand: stand.map(str::to_string),
            limit: runs.saturating_mul(MAX_ATTEMPTS),
        })
        .await?;
    Ok(Some(timeline::timeline(&entries, runs as usize)))
}

/// The tags of `run`'s failures (its merged `tests`, with the signatures its classification
/// recorded), or `None` when the backend keeps no history.
pub async fn tags(
    backend: &dyn Backend,
    run: &TestRun,
    tests: &[MergedTest],
) -> Result<Option<Tags>, StoreError> {
    let Some(store) = backend.history() else {
        return Ok(None);
    };
    let Some(name) = run.metadata.name.as_deref() else {
        return Ok(None);
    };
    // As the store keeps it (to the microsecond), so "earlier" means the same here and there.
    let created = micros_of(crate::crd::created(run));
    let service = &run.spec.template.service;
    let signatures = backend.categories(name).await?;
    let outcomes = outcomes(tests, &signatures);

    // Earlier failures: one per (run, test), the signature its run recorded.
    let since = created - Duration::days(WINDOW_DAYS);
    let mut seen = HashSet::new();
    let history: Vec<PastFailure> = store
        .failures_since(service, since, Some(created), MAX_FAILURES)
        .await?
        .into_iter()
        .filter(|f| f.created < created && f.run != name)
        .filter(|f| seen.insert((f.run.clone(), f.test_id.clone())))
        .map(|f| PastFailure {
            run: f.run,
            at: f.created,
            stand: f.stand,
            test: f.test_id,
            signature: f.signature,
        })
        .collect();

    let previous = match previous_comparable(backend, run, created).await? {
        Some(prev) => {
            let status = prev.status.clone().unwrap_or_default();
            let prev_name = prev.metadata.name.clone().unwrap_or_default();
            let merged = crate::core::merge_run(&status, backend.results(&prev_name).await?);
            Some(outcomes_of(&merged))
        }
        None => None,
    };
    Ok(Some(tag_novelty(&outcomes, &history, previous.as_deref())))
}

/// The newest earlier run of `run`'s service, on its stand, over its packs, that ended with a
/// verdict.
async fn previous_comparable(
    backend: &dyn Backend,
    run: &TestRun,
    created: chrono::DateTime<chrono::Utc>,
) -> Result<Option<TestRun>, StoreError> {
    let Some(store) = backend.history() else {
        return Ok(None);
    };
    let name = run.metadata.name.clone().unwrap_or_default();
    let page = RunPage {
        service: Some(run.spec.template.service.clone()),
        before: Some((created, name)),
        limit: COMPARABLE_SCAN,
    };
    let packs = sorted(&run.spec.template.packs);
    for record in store.list_runs(&page).await? {
        let ended_with_verdict = matches!(record.phase, Some(Phase::Succeeded | Phase::Failed));
        if record.identity.stand != run.spec.template.stand || !ended_with_verdict {
            continue;
        }
        let Some(candidate) = backend.get_run(&record.identity.name).await? else {
            continue;
        };
        if sorted(&candidate.spec.template.packs) == packs
            && candidate.spec.template.category == run.spec.template.category
        {
            return Ok(Some(candidate));
        }
    }
    Ok(None)
}

fn sorted(packs: &[String]) -> Vec<&str> {
    let mut v: Vec<&str> = packs.iter().map(String::as_str).collect();
    v.sort_unstable();
    v.dedup();
    v
}

fn outcomes(tests: &[MergedTest], signatures: &crate::classify::ByTest) -> Vec<Outcome> {
    tests
        .iter()
        .map(|t| Outcome {
            test: t.id.clone(),
            verdict: t.verdict,
            signature: signatures.get(&t.id).and_then(|c| c.signature.clone()),
        })
        .collect()
}

/// A previous run's outcomes: only its verdicts matter ("failed then, passes now").
fn outcomes_of(tests: &[MergedTest]) -> Vec<Outcome> {
    outcomes(tests, &HashMap::new())
}

#[cfg(test)]
mod tests;
