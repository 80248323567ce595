//! Attempt merge: many attempts, one verdict per test (DESIGN.md "Results").
//!
//! - passed: passed on its first attempt (and never failed);
//! - flaky: failed or errored on some attempt, then passed on a later one;
//! - failed / broken: still failing (failure / error) on the last attempt that ran it;
//! - skipped: never did anything but skip.
//!
//! A rerun runs only some tests; whatever it says about tests it did not select (Node, for
//! one, reports them as skipped) is ignored. A skip on a rerun does not erase an earlier
//! failure: the verdict follows the last attempt that really ran the test.

use std::collections::{HashMap, HashSet};

use super::{AttemptResult, Case, CaseStatus};
use crate::crd::Summary;

/// A test's verdict over all attempts of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TestVerdict {
    Failed,
    Broken,
    Flaky,
    Passed,
    Skipped,
}

impl TestVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            TestVerdict::Failed => "failed",
            TestVerdict::Broken => "broken",
            TestVerdict::Flaky => "flaky",
            TestVerdict::Passed => "passed",
            TestVerdict::Skipped => "skipped",
        }
    }

    /// Still failing: the tests a rerun selects.
    pub fn is_failing(self) -> bool {
        matches!(self, TestVerdict::Failed | TestVerdict::Broken)
    }
}

/// One test after merging.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MergedTest {
    pub id: String,
    pub verdict: TestVerdict,
    /// `(attempt, status)` for every attempt that ran the test, in order.
    pub history: Vec<(u32, CaseStatus)>,
    /// The case that explains the verdict: the last failing one for failed, broken and flaky
    /// tests (a flaky test is classified by its failing attempt), else the last one.
    pub case: Case,
    /// The attempt of `case`.
    pub attempt: u32,
}

/// Merges results (in attempt order). `selected(attempt, id)` says whether that attempt
/// selected the test; results of unselected tests are ignored.
pub fn merge(
    results: impl IntoIterator<Item = AttemptResult>,
    selected: impl Fn(u32, &str) -> bool,
) -> Vec<MergedTest> {
    let mut order: Vec<MergedTest> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for r in results {
        if !selected(r.attempt, &r.id) {
            continue;
        }
        match index.get(&r.id) {
            Some(&i) => {
                let t = &mut order[i];
                t.history.push((r.attempt, r.case.status));
                let ran = r.case.status != CaseStatus::Skipped;
                let failing = matches!(r.case.status, CaseStatus::Failed | CaseStatus::Errored);
                // Keep the failing case of a flaky test; otherwise the latest case that really ran.
                if failing || (ran && !t.history_had_failure_before_last()) {
                    t.case = r.case;
                    t.attempt = r.attempt;
                }
            }
            None => {
                index.insert(r.id.clone(), order.len());
                order.push(MergedTest {
                    id: r.id,
                    verdict: TestVerdict::Skipped,
                    history: vec![(r.attempt, r.case.status)],
                    case: r.case,
                    attempt: r.attempt,
                });
            }
        }
    }
    for t in &mut order {
        t.verdict = verdict_of(&t.history);
    }
    order
}

impl MergedTest {
    fn history_had_failure_before_last(&self) -> bool {
        let n = self.history.len().saturating_sub(1);
        self.history[..n]
            .iter()
            .any(|(_, s)| matches!(s, CaseStatus::Failed | CaseStatus::Errored))
    }
}

/// The verdict of one test's `(attempt, status)` history in a run, in attempt order.
pub fn verdict_of(history: &[(u32, CaseStatus)]) -> TestVerdict {
    let ran: Vec<CaseStatus> = history
        .iter()
        .map(|(_, s)| *s)
        .filter(|s| *s != CaseStatus::Skipped)
        .collect();
    match ran.last() {
        None => TestVerdict::Skipped,
        Some(CaseStatus::Failed) => TestVerdict::Failed,
        Some(CaseStatus::Errored) => TestVerdict::Broken,
        Some(_)
            if ran
                .iter()
                .any(|s| matches!(s, CaseStatus::Failed | CaseStatus::Errored)) =>
        {
            TestVerdict::Flaky
        }
        Some(_) => TestVerdict::Passed,
    }
}

/// Counts merged verdicts.
pub fn summarize<'a>(tests: impl IntoIterator<Item = &'a MergedTest>) -> Summary {
    let mut s = Summary::default();
    for t in tests {
        s.total += 1;
        match t.verdict {
            TestVerdict::Passed => s.passed += 1,
            TestVerdict::Failed => s.failed += 1,
            TestVerdict::Flaky => s.flaky += 1,
            TestVerdict::Skipped => s.skipped += 1,
            TestVerdict::Broken => s.broken += 1,
        }
    }
    s
}

/// Counts one attempt's own results (no flaky in a single attempt).
pub fn attempt_summary<'a>(cases: impl IntoIterator<Item = &'a Case>) -> Summary {
    let mut s = Summary::default();
    for c in cases {
        s.total += 1;
        match c.status {
            CaseStatus::Passed => s.passed += 1,
            CaseStatus::Failed => s.failed += 1,
            CaseStatus::Errored => s.broken += 1,
            CaseStatus::Skipped => s.skipped += 1,
        }
    }
    s
}

/// Builds the `selected` predicate for [`merge`] from each rerun's test list
/// (attempts absent from `reruns` selected everything).
pub fn selection_filter(reruns: HashMap<u32, HashSet<String>>) -> impl Fn(u32, &str) -> bool {
    move |attempt, id| reruns.get(&attempt).is_none_or(|ids| ids.contains(id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn result(attempt: u32, id: &str, status: CaseStatus) -> AttemptResult {
        AttemptResult {
            attempt,
            id: id.into(),
            case: Case {
                suites: vec![],
                classname: "c".into(),
                name: id.into(),
                file: None,
                time_ms: Some(1),
                status,
                message: format!("{id} on attempt {attempt}"),
                kind: String::new(),
                trace: String::new(),
                system_out: String::new(),
                system_err: String::new(),
            },
        }
    }

    fn verdicts(tests: &[MergedTest]) -> Vec<(&str, TestVerdict)> {
        tests.iter().map(|t| (t.id.as_str(), t.verdict)).collect()
    }

    use CaseStatus::*;

    #[test]
    fn flaky_test_passes_on_rerun_and_is_reported_flaky_with_its_failing_case() {
        let merged = merge(
            vec![
                result(1, "ok", Passed),
                result(1, "flaky", Failed),
                result(1, "bad", Failed),
                result(2, "flaky", Passed),
                result(2, "bad", Failed),
            ],
            |_, _| true,
        );
        assert_eq!(
            verdicts(&merged),
            vec![
                ("ok", TestVerdict::Passed),
                ("flaky", TestVerdict::Flaky),
                ("bad", TestVerdict::Failed)
            ]
        );
        let flaky = &merged[1];
        assert_eq!(
            flaky.attempt, 1,
            "a flaky test is explained by its failing attempt"
        );
        assert_eq!(flaky.case.message, "flaky on attempt 1");
        assert_eq!(
            merged[2].attempt, 2,
            "a failed test is explained by its last failure"
        );
    }

    #[test]
    fn error_on_the_last_attempt_is_broken_and_skip_on_rerun_keeps_the_failure() {
        let merged = merge(
            vec![
                result(1, "a", Failed),
                result(1, "b", Failed),
                result(1, "s", Skipped),
                result(2, "a", Errored),
                result(2, "b", Skipped),
            ],
            |_, _| true,
        );
        assert_eq!(
            verdicts(&merged),
            vec![
                ("a", TestVerdict::Broken),
                ("b", TestVerdict::Failed),
                ("s", TestVerdict::Skipped)
            ]
        );
    }

    #[test]
    fn results_of_unselected_tests_in_a_rerun_are_ignored() {
        let filter = selection_filter([(2, HashSet::from(["bad".to_string()]))].into());
        let merged = merge(
            vec![
                result(1, "ok", Passed),
                result(1, "bad", Failed),
                // Node reports tests filtered out by --test-name-pattern as skipped:
                result(2, "ok", Skipped),
                result(2, "bad", Passed),
            ],
            filter,
        );
        assert_eq!(
            verdicts(&merged),
            vec![("ok", TestVerdict::Passed), ("bad", TestVerdict::Flaky)]
        );
        let s = summarize(&merged);
        assert_eq!((s.total, s.passed, s.flaky, s.skipped), (2, 1, 1, 0));
    }

    fn status() -> impl Strategy<Value = CaseStatus> {
        prop_oneof![Just(Passed), Just(Failed), Just(Errored), Just(Skipped)]
    }

    proptest! {
        /// The verdict depends only on the statuses, as the rules in the module docs say.
        #[test]
        fn verdict_follows_the_rules(history in proptest::collection::vec(status(), 1..5)) {
            let results: Vec<_> = history.iter().enumerate().map(|(i, s)| result(i as u32 + 1, "t", *s)).collect();
            let merged = merge(results, |_, _| true);
            prop_assert_eq!(merged.len(), 1);
            let v = merged[0].verdict;
            let ran: Vec<_> = history.iter().filter(|s| **s != Skipped).collect();
            let expected = match ran.last() {
                None => TestVerdict::Skipped,
                Some(Failed) => TestVerdict::Failed,
                Some(Errored) => TestVerdict::Broken,
                Some(_) if ran.iter().any(|s| matches!(s, Failed | Errored)) => TestVerdict::Flaky,
                Some(_) => TestVerdict::Passed,
            };
            prop_assert_eq!(v, expected);
            if v == TestVerdict::Flaky || v.is_failing() {
                prop_assert!(matches!(merged[0].case.status, Failed | Errored));
            }
        }

        /// Every distinct id yields exactly one merged test and the summary adds up.
        #[test]
        fn one_merged_test_per_id(ids in proptest::collection::vec((0u8..6, status(), 1u32..4), 0..40)) {
            let mut results: Vec<_> = ids.iter().map(|(id, s, a)| result(*a, &format!("t{id}"), *s)).collect();
            results.sort_by_key(|r| r.attempt);
            let distinct: HashSet<_> = results.iter().map(|r| r.id.clone()).collect();
            let merged = merge(results, |_, _| true);
            prop_assert_eq!(merged.len(), distinct.len());
            let s = summarize(&merged);
            prop_assert_eq!(s.total as usize, merged.len());
            prop_assert_eq!(s.passed + s.failed + s.flaky + s.skipped + s.broken, s.total);
        }
    }
}
