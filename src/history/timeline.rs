//! One test's history across runs (issue 17, item 3): its verdict in each of its last runs,
//! how often it failed or was flaky overall and per stand, its durations, and its failure
//! signatures with when each was first and last seen. Pure: built from the results store's
//! per-attempt history ([`crate::store::ResultsStore::test_history`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::results::{CaseStatus, Signature, TestVerdict, verdict_of};
use crate::store::results::HistoryEntry;

/// The test in one run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunOutcome {
    pub run: String,
    pub stand: String,
    pub created: DateTime<Utc>,
    /// Its verdict over the run's attempts: `passed`, `flaky`, `failed`, `broken`, `skipped`.
    #[schema(value_type = String)]
    pub verdict: TestVerdict,
    /// How many attempts ran it.
    pub attempts: u32,
    /// Its time on the last attempt that reported one.
    pub duration_ms: Option<u64>,
    /// The failure's message (of the last failing attempt), empty when it did not fail.
    pub message: String,
    #[schema(value_type = Option<String>)]
    pub signature: Option<Signature>,
}

/// Rates over a set of runs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rates {
    /// Runs that ran the test (skips excluded).
    pub runs: u32,
    pub failed: u32,
    pub flaky: u32,
    /// flaky / runs (0 without runs).
    pub flake_rate: f64,
    /// (failed + broken) / runs.
    pub failure_rate: f64,
}

/// One failure signature of the test and when it was seen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignatureSeen {
    #[schema(value_type = String)]
    pub signature: Signature,
    pub runs: u32,
    pub first_run: String,
    pub first_seen: DateTime<Utc>,
    pub last_run: String,
    pub last_seen: DateTime<Utc>,
    /// The message it had last.
    pub message: String,
}

/// A test's history.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Timeline {
    /// Newest first.
    pub runs: Vec<RunOutcome>,
    pub overall: Rates,
    /// Per stand, by name.
    pub stands: BTreeMap<String, Rates>,
    /// Newest last seen first.
    pub signatures: Vec<SignatureSeen>,
    /// Median and slowest time of the runs it passed in, when any reported one.
    pub median_ms: Option<u64>,
    pub max_ms: Option<u64>,
}

/// Builds the timeline of at most `runs` runs from per-attempt `entries` (newest first, as
/// the store gives them).
pub fn timeline(entries: &[HistoryEntry], runs: usize) -> Timeline {
    // Group by run, keeping the store's newest-first order of runs.
    let mut order: Vec<&str> = Vec::new();
    let mut by_run: BTreeMap<&str, Vec<&HistoryEntry>> = BTreeMap::new();
    for e in entries {
        let attempts = by_run.entry(e.run.as_str()).or_default();
        if attempts.is_empty() {
            order.push(e.run.as_str());
        }
        attempts.push(e);
    }
    let outcomes: Vec<RunOutcome> = order
        .iter()
        .take(runs)
        .map(|run| {
            let mut attempts = by_run[run].clone();
            attempts.sort_by_key(|e| e.attempt);
            let history: Vec<(u32, CaseStatus)> = attempts.iter().map(|e| (e.attempt, e.status)).collect();
            let verdict = verdict_of(&history);
            let failing = attempts
                .iter()
                .rev()
                .find(|e| matches!(e.status, CaseStatus::Failed | CaseStatus::Errored));
            let last = attempts.last().expect("a run in the history has an attempt");
            RunOutcome {
                run: run.to_string(),
                stand: last.stand.clone(),
                created: last.created,
                verdict,
                attempts: attempts
                    .iter()
                    .filter(|e| e.status != CaseStatus::Skipped)
                    .count() as u32,
                duration_ms: attempts.iter().rev().find_map(|e| e.time_ms),
                message: failing.map(|e| e.message.clone()).unwrap_or_default(),
                signature: failing.and_then(|e| e.signature.clone()),
            }
        })
        .collect();

    let mut overall = Counter::default();
    let mut stands: BTreeMap<String, Counter> = BTreeMap::new();
    let mut signatures: BTreeMap<&Signature, SignatureSeen> = BTreeMap::new();
    let mut passing_ms: Vec<u64> = Vec::new();
    // Oldest first, so the first sighting is met first.
    for o in outcomes.iter().rev() {
        overall.add(o.verdict);
        stands.entry(o.stand.clone()).or_default().add(o.verdict);
        if o.verdict == TestVerdict::Passed {
            passing_ms.extend(o.duration_ms);
        }
        if let Some(sig) = &o.signature {
            let seen = signatures.entry(sig).or_insert_with(|| SignatureSeen {
                signature: sig.clone(),
                runs: 0,
                first_run: o.run.clone(),
                first_seen: o.created,
                last_run: o.run.clone(),
                last_seen: o.created,
                message: String::new(),
            });
            seen.runs += 1;
            seen.last_run = o.run.clone();
            seen.last_seen = o.created;
            seen.message = o.message.clone();
        }
    }
    let mut signatures: Vec<SignatureSeen> = signatures.into_values().collect();
    signatures.sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then(b.runs.cmp(&a.runs)));
    passing_ms.sort_unstable();
    Timeline {
        overall: overall.rates(),
        stands: stands.into_iter().map(|(s, c)| (s, c.rates())).collect(),
        signatures,
        median_ms: passing_ms.get(passing_ms.len() / 2).copied(),
        max_ms: passing_ms.last().copied(),
        runs: outcomes,
    }
}

#[derive(Default)]
struct Counter {
    runs: u32,
    failed: u32,
    flaky: u32,
}

impl Counter {
    fn add(&mut self, verdict: TestVerdict) {
        match verdict {
            TestVerdict::Skipped => return,
            TestVerdict::Failed | TestVerdict::Broken => self.failed += 1,
            TestVerdict::Flaky => self.flaky += 1,
            TestVerdict::Passed => {}
        }
        self.runs += 1;
    }

    fn rates(&self) -> Rates {
        let rate = |n: u32| {
            if self.runs == 0 {
                0.0
            } else {
                f64::from(n) / f64::from(self.runs)
            }
        };
        Rates {
            runs: self.runs,
            failed: self.failed,
            flaky: self.flaky,
            flake_rate: rate(self.flaky),
            failure_rate: rate(self.failed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, day, 3, 0, 0).unwrap()
    }

    fn entry(
        run: &str,
        day: u32,
        stand: &str,
        attempt: u32,
        status: CaseStatus,
        sig: Option<&str>,
    ) -> HistoryEntry {
        HistoryEntry {
            run: run.into(),
            stand: stand.into(),
            created: at(day),
            attempt,
            status,
            time_ms: Some(u64::from(day) * 100),
            message: sig.map(|s| format!("boom {s}")).unwrap_or_default(),
            signature: sig.map(Signature::of_normalised),
        }
    }

    #[test]
    fn runs_get_their_merged_verdict_rates_per_stand_and_signatures_their_first_and_last_sighting() {
        use CaseStatus::*;
        // Newest first, as the store answers; a run's attempts newest first too.
        let entries = vec![
            entry("r5", 5, "b", 1, Passed, None),
            entry("r4", 4, "a", 2, Passed, None),
            entry("r4", 4, "a", 1, Failed, Some("x")),
            entry("r3", 3, "a", 1, Errored, Some("y")),
            entry("r2", 2, "b", 2, Failed, Some("x")),
            entry("r2", 2, "b", 1, Failed, Some("x")),
            entry("r1", 1, "a", 1, Skipped, None),
        ];
        let t = timeline(&entries, 10);
        let verdicts: Vec<(&str, TestVerdict, u32)> = t
            .runs
            .iter()
            .map(|o| (o.run.as_str(), o.verdict, o.attempts))
            .collect();
        assert_eq!(
            verdicts,
            [
                ("r5", TestVerdict::Passed, 1),
                ("r4", TestVerdict::Flaky, 2),
                ("r3", TestVerdict::Broken, 1),
                ("r2", TestVerdict::Failed, 2),
                ("r1", TestVerdict::Skipped, 0),
            ]
        );
        assert_eq!(t.runs[1].message, "boom x", "a flaky run shows its failure");
        assert_eq!(
            (t.overall.runs, t.overall.failed, t.overall.flaky),
            (4, 2, 1),
            "the skip is no run"
        );
        assert_eq!(t.overall.flake_rate, 0.25);
        assert_eq!(t.stands["a"].failure_rate, 0.5);
        assert_eq!(t.stands["b"].failure_rate, 0.5);
        let seen: Vec<(&str, u32, &str, &str)> = t
            .signatures
            .iter()
            .map(|s| {
                (
                    s.message.as_str(),
                    s.runs,
                    s.first_run.as_str(),
                    s.last_run.as_str(),
                )
            })
            .collect();
        assert_eq!(seen, [("boom x", 2, "r2", "r4"), ("boom y", 1, "r3", "r3")]);
        assert_eq!(
            (t.median_ms, t.max_ms),
            (Some(500), Some(500)),
            "passed runs only"
        );

        let newest = timeline(&entries, 2);
        assert_eq!(newest.runs.len(), 2);
        assert_eq!(newest.overall.runs, 2);
    }
}
