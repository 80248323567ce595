//! Two runs side by side (issue 17, item 4): what started failing, what passes again, what
//! still fails (the same way or not), what was flaky in one only, which tests came or went,
//! and which got slower beyond a threshold. Pure: the caller merges both runs' results and
//! reads their recorded signatures.

use std::collections::HashMap;

use serde::Serialize;

use crate::classify::ByTest;
use crate::results::{MergedTest, Signature, TestVerdict};

/// A test is slower when it took this much more than before (as a fraction)...
pub const DEFAULT_SLOWER_BY: f64 = 0.5;
/// ...and at least this many milliseconds more (a 2 ms test taking 4 ms is noise).
pub const SLOWER_MIN_MS: u64 = 100;

/// One run's side: its merged tests and the signatures its classification recorded.
pub struct Side<'a> {
    pub tests: &'a [MergedTest],
    pub signatures: &'a ByTest,
}

/// One test in a comparison: its verdict in each run (`None` where it did not run).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    pub test: String,
    #[schema(value_type = Option<String>)]
    pub before: Option<TestVerdict>,
    #[schema(value_type = Option<String>)]
    pub after: Option<TestVerdict>,
    /// The failure message now (or, for a test that passes again, before).
    pub message: String,
}

/// A test failing in both runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StillFailing {
    pub test: String,
    /// Whether it fails the same way (one signature); `false` when either has none.
    pub same_signature: bool,
    pub message: String,
    pub previous_message: String,
}

/// A test that passed in both and got slower.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Slower {
    pub test: String,
    pub before_ms: u64,
    pub after_ms: u64,
}

/// The comparison of a run (`after`) with an earlier one (`before`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Comparison {
    /// Failing now, not before (it passed, was flaky or skipped).
    pub newly_failing: Vec<Change>,
    /// Failing before, passing now.
    pub newly_passing: Vec<Change>,
    pub still_failing: Vec<StillFailing>,
    /// Flaky in exactly one of the two runs.
    pub flaky_in_one: Vec<Change>,
    /// Ran now, not before.
    pub added: Vec<Change>,
    /// Ran before, not now.
    pub removed: Vec<Change>,
    /// Passed in both, slower now beyond the threshold; the biggest slow-down first.
    pub slower: Vec<Slower>,
}

fn ran(v: TestVerdict) -> bool {
    v != TestVerdict::Skipped
}

/// Compares `after` with `before`. `slower_by` is the fraction a passing test's time must
/// grow by (and at least [`SLOWER_MIN_MS`]) to be listed as slower.
pub fn compare(before: &Side<'_>, after: &Side<'_>, slower_by: f64) -> Comparison {
    let old: HashMap<&str, &MergedTest> = before.tests.iter().map(|t| (t.id.as_str(), t)).collect();
    let signature = |side: &Side<'_>, id: &str| -> Option<Signature> {
        side.signatures.get(id).and_then(|c| c.signature.clone())
    };
    let change = |t: &MergedTest, before: Option<TestVerdict>, message: &str| Change {
        test: t.id.clone(),
        before,
        after: Some(t.verdict),
        message: message.to_string(),
    };
    let mut c = Comparison::default();
    for t in after.tests {
        let Some(b) = old.get(t.id.as_str()) else {
            if ran(t.verdict) {
                c.added.push(change(t, None, &t.case.message));
            }
            continue;
        };
        match (b.verdict.is_failing(), t.verdict.is_failing()) {
            (false, true) => c.newly_failing.push(change(t, Some(b.verdict), &t.case.message)),
            (true, false) if t.verdict == TestVerdict::Passed => {
                c.newly_passing.push(change(t, Some(b.verdict), &b.case.message))
            }
            (true, true) => {
                let (now, then) = (signature(after, &t.id), signature(before, &t.id));
                c.still_failing.push(StillFailing {
                    test: t.id.clone(),
                    same_signature: now.is_some() && now == then,
                    message: t.case.message.clone(),
                    previous_message: b.case.message.clone(),
                })
            }
            _ => {}
        }
        if (b.verdict == TestVerdict::Flaky) != (t.verdict == TestVerdict::Flaky) {
            let message = if t.verdict == TestVerdict::Flaky {
                &t.case.message
            } else {
                &b.case.message
            };
            c.flaky_in_one.push(change(t, Some(b.verdict), message));
        }
        if b.verdict == TestVerdict::Passed
            && t.verdict == TestVerdict::Passed
            && let (Some(was), Some(now)) = (b.case.time_ms, t.case.time_ms)
            && now >= was.saturating_add(SLOWER_MIN_MS)
            && now as f64 > was as f64 * (1.0 + slower_by)
        {
            c.slower.push(Slower {
                test: t.id.clone(),
                before_ms: was,
                after_ms: now,
            });
        }
    }
    let now: HashMap<&str, ()> = after.tests.iter().map(|t| (t.id.as_str(), ())).collect();
    c.removed = before
        .tests
        .iter()
        .filter(|t| ran(t.verdict) && !now.contains_key(t.id.as_str()))
        .map(|t| Change {
            test: t.id.clone(),
            before: Some(t.verdict),
            after: None,
            message: String::new(),
        })
        .collect();
    c.slower.sort_by(|a, b| {
        (b.after_ms - b.before_ms)
            .cmp(&(a.after_ms - a.before_ms))
            .then_with(|| a.test.cmp(&b.test))
    });
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::Classified;
    use crate::results::{AttemptResult, Case, CaseStatus, merge};

    /// A run's merged tests from `(id, attempt statuses, time)`.
    fn run(tests: &[(&str, &[CaseStatus], u64)]) -> Vec<MergedTest> {
        let mut results = Vec::new();
        for (id, statuses, ms) in tests {
            for (i, s) in statuses.iter().enumerate() {
                let mut case = Case::failed("c", id, None);
                case.status = *s;
                case.time_ms = Some(*ms);
                case.message = if *s == CaseStatus::Passed {
                    String::new()
                } else {
                    format!("{id} broke")
                };
                results.push(AttemptResult {
                    attempt: i as u32 + 1,
                    id: id.to_string(),
                    case,
                });
            }
        }
        results.sort_by_key(|r| r.attempt);
        merge(results, |_, _| true)
    }

    fn signed(pairs: &[(&str, &str)]) -> ByTest {
        pairs
            .iter()
            .map(|(id, sig)| {
                let c = Classified {
                    category: "x".into(),
                    signature: Some(Signature::of(sig, "")),
                };
                (id.to_string(), c)
            })
            .collect()
    }

    #[test]
    fn every_kind_of_difference_is_found_and_nothing_else() {
        use CaseStatus::*;
        let before = run(&[
            ("steady", &[Passed], 100),
            ("breaks", &[Passed], 100),
            ("heals", &[Failed, Failed], 100),
            ("same", &[Failed, Failed], 100),
            ("other", &[Failed, Failed], 100),
            ("was-flaky", &[Failed, Passed], 100),
            ("slows", &[Passed], 200),
            ("jitters", &[Passed], 10),
            ("gone", &[Passed], 100),
            ("was-skipped", &[Skipped], 0),
        ]);
        let after = run(&[
            ("steady", &[Passed], 120),
            ("breaks", &[Errored, Errored], 100),
            ("heals", &[Passed], 100),
            ("same", &[Failed, Failed], 100),
            ("other", &[Failed, Failed], 100),
            ("was-flaky", &[Passed], 100),
            ("slows", &[Passed], 900),
            ("jitters", &[Passed], 90),
            ("new", &[Failed, Failed], 100),
            ("was-skipped", &[Passed], 5),
        ]);
        let (sig_before, sig_after) = (
            signed(&[("same", "expected 1"), ("other", "expected 1")]),
            signed(&[("same", "expected 2"), ("other", "timed out")]),
        );
        let c = compare(
            &Side {
                tests: &before,
                signatures: &sig_before,
            },
            &Side {
                tests: &after,
                signatures: &sig_after,
            },
            DEFAULT_SLOWER_BY,
        );
        let ids = |v: &[Change]| v.iter().map(|c| c.test.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&c.newly_failing), ["breaks"]);
        assert_eq!(c.newly_failing[0].before, Some(TestVerdict::Passed));
        assert_eq!(c.newly_failing[0].after, Some(TestVerdict::Broken));
        assert_eq!(ids(&c.newly_passing), ["heals"]);
        assert_eq!(
            c.newly_passing[0].message, "heals broke",
            "what it failed with before"
        );
        let still: Vec<(&str, bool)> = c
            .still_failing
            .iter()
            .map(|s| (s.test.as_str(), s.same_signature))
            .collect();
        assert_eq!(
            still,
            [("same", true), ("other", false)],
            "numbers are masked: one signature"
        );
        assert_eq!(ids(&c.flaky_in_one), ["was-flaky"]);
        assert_eq!(ids(&c.added), ["new"]);
        assert_eq!(ids(&c.removed), ["gone"]);
        assert_eq!(
            c.slower,
            [Slower {
                test: "slows".into(),
                before_ms: 200,
                after_ms: 900
            }],
            "jitters grew 9x but by less than 100 ms; steady by 20 %"
        );
    }
}
