//! Failure classification: every failed, broken or flaky test of a run gets the first matching
//! category of its service's rules, else `Unclassified`.
//!
//! The rules and the line-scanning engine live in [`crate::grep`]; this module only decides
//! which text each test is judged on and counts the result:
//! - a flaky test is classified by its failing attempt (the merge keeps that case);
//! - `messageRegex` / `traceRegex` see the JUnit failure message and trace;
//! - `logRegex` sees the test's own output (its JUnit `system-out` and `system-err`) or, when the
//!   case has none (Node's runner writes none), the log of the attempt it failed in. Each
//!   attempt log is scanned once per classification, however many tests point at it.
//!
//! **A run is classified once per attempt end, and keeps what it got.** The drivers classify
//! when they record an attempt's end (with the rules loaded then) and store each test's
//! category with the run's results, beside the summary in `status.categories`. Every surface
//! (`/api/status`, `/api/v1/runs/{id}/tests`, the run page, email, tracker comment, webhook)
//! reads that stored classification; none classifies again. So a finished run keeps the
//! categories it finished with after the rules change, as a test report would; changed rules
//! apply to the attempts that end after the change. Runs recorded before classifications were
//! stored (none stored, `status.categories` set) are read from `status.categories`
//! ([`recorded`]), so their surfaces agree too.
//!
//! Beside its category, each classified test records its failure [`Signature`]
//! ([`crate::results::signature`]) — computed here, once, for both modes, from the same
//! message and trace the rules see. Runs recorded before signatures were stored have none.

use std::collections::{HashMap, HashSet};
use std::io::Read;

use crate::crd::{CategoryStat, CategoryTest};
use crate::grep::{CategoryRule, Engine, RuleMatches, RuleSet, RuleSetError, TestStatus};
use crate::results::{CaseStatus, MergedTest, Signature, TestVerdict};

/// Category of failures no rule matched.
pub const UNCLASSIFIED: &str = "Unclassified";
/// How many tests each category lists in `status.categories`.
pub const FIRST_TESTS: usize = 5;
/// Longest message kept per listed test.
const MESSAGE_CHARS: usize = 300;

/// A service's compiled rules.
#[derive(Debug)]
pub struct Classifier {
    rules: RuleSet,
    engine: Engine,
}

impl Classifier {
    /// Validates and compiles rules (Allure `categories.json` shape plus `logRegex`).
    pub fn new(rules: Vec<CategoryRule>) -> Result<Classifier, RuleSetError> {
        let rules = RuleSet::from_rules(rules)?;
        let engine = Engine::new(&rules).map_err(|e| RuleSetError {
            errors: vec![crate::grep::RuleError {
                index: None,
                name: None,
                field: "logRegex".into(),
                reason: e.to_string(),
            }],
        })?;
        Ok(Classifier { rules, engine })
    }

    /// The names of the categories whose rules say `infrastructure: true`.
    pub fn infrastructure(&self) -> std::collections::HashSet<&str> {
        self.rules()
            .iter()
            .filter(|r| r.infrastructure)
            .map(|r| r.name.as_str())
            .collect()
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[CategoryRule] {
        self.rules.rules()
    }

    /// Which rules' `logRegex` match a line of `text`.
    fn scan(&self, text: &[u8]) -> RuleMatches {
        if !self.engine.has_patterns() {
            return RuleMatches::none();
        }
        let mut counts = self.engine.counts();
        self.engine.scan_bytes(text, &mut counts);
        counts.rule_matches()
    }

    /// Which rules' `logRegex` match a line of a log read from `reader` (streamed, bounded memory).
    fn scan_reader(&self, reader: impl Read) -> RuleMatches {
        if !self.engine.has_patterns() {
            return RuleMatches::none();
        }
        let mut counts = self.engine.counts();
        match self.engine.scan(reader, &mut counts) {
            Ok(_) => counts.rule_matches(),
            Err(_) => RuleMatches::none(),
        }
    }
}

/// One failing test's record: what the rules made of it, and what its failure is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Classified {
    /// Category name (a rule's, or [`UNCLASSIFIED`]).
    pub category: String,
    /// The failure's signature; `None` for runs recorded before signatures were.
    pub signature: Option<Signature>,
}

impl Classified {
    /// A record with a category and no signature (runs recorded before signatures were).
    pub fn category(category: impl Into<String>) -> Classified {
        Classified {
            category: category.into(),
            signature: None,
        }
    }
}

/// Test id → its classification, as stored with a run.
pub type ByTest = HashMap<String, Classified>;

/// The outcome: each classified test's category and signature, and the per-category summary
/// for status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Classification {
    /// Test id → category and signature, for failed, broken and flaky tests (a flaky test's
    /// signature is that of its failing attempt).
    pub by_test: ByTest,
    /// Categories in rule order (`Unclassified` last), each with its count and first tests.
    pub stats: Vec<CategoryStat>,
}

/// Classifies the failing and flaky tests of a run. `attempt_log(n)` opens the log of attempt
/// `n` (for tests without their own output); `None` when there is none.
pub fn classify<R: Read>(
    classifier: Option<&Classifier>,
    tests: &[MergedTest],
    mut attempt_log: impl FnMut(u32) -> Option<R>,
) -> Classification {
    let mut log_matches: HashMap<u32, RuleMatches> = HashMap::new();
    let mut out = Classification::default();
    let mut counts: HashMap<usize, (u32, Vec<CategoryTest>)> = HashMap::new();
    let unclassified = usize::MAX;
    for t in tests {
        if !matches!(
            t.verdict,
            TestVerdict::Failed | TestVerdict::Broken | TestVerdict::Flaky
        ) {
            continue;
        }
        let index = classifier.and_then(|c| {
            let status = match t.case.status {
                CaseStatus::Errored => TestStatus::Broken,
                _ => TestStatus::Failed,
            };
            let own_output = !t.case.system_out.is_empty() || !t.case.system_err.is_empty();
            let matches = if own_output {
                let mut text = Vec::with_capacity(t.case.system_out.len() + t.case.system_err.len() + 1);
                text.extend_from_slice(t.case.system_out.as_bytes());
                text.push(b'\n');
                text.extend_from_slice(t.case.system_err.as_bytes());
                c.scan(&text)
            } else {
                log_matches
                    .entry(t.attempt)
                    .or_insert_with(|| {
                        attempt_log(t.attempt)
                            .map(|r| c.scan_reader(r))
                            .unwrap_or_default()
                    })
                    .clone()
            };
            c.rules.classify(status, &t.case.message, &t.case.trace, &matches)
        });
        let name = match (index, classifier) {
            (Some(i), Some(c)) => c.rules()[i].name.clone(),
            _ => UNCLASSIFIED.to_string(),
        };
        out.by_test.insert(
            t.id.clone(),
            Classified {
                category: name,
                signature: Some(Signature::of(&t.case.message, &t.case.trace)),
            },
        );
        let entry = counts.entry(index.unwrap_or(unclassified)).or_default();
        entry.0 += 1;
        if entry.1.len() < FIRST_TESTS {
            entry.1.push(CategoryTest {
                name: t.id.clone(),
                message: shorten(&t.case.message),
            });
        }
    }
    let mut keys: Vec<usize> = counts.keys().copied().collect();
    keys.sort_unstable();
    for k in keys {
        let (count, tests) = counts.remove(&k).unwrap_or_default();
        let name = match classifier {
            Some(c) if k != unclassified => c.rules()[k].name.clone(),
            _ => UNCLASSIFIED.to_string(),
        };
        out.stats.push(CategoryStat { name, count, tests });
    }
    out
}

/// The run's categories without the tests in `left_out`: the failing tests a Mute covers do not
/// fail the run, so its failures by category (`status.categories`, `/api/status`) leave them
/// out, as the run page and the email do. Categories keep their order and a category left
/// empty goes; each lists its first tests in the run's order, as [`classify`] does. Pure.
pub fn stats_without(
    classification: &Classification,
    tests: &[MergedTest],
    left_out: &HashSet<&str>,
) -> Vec<CategoryStat> {
    if left_out.is_empty() {
        return classification.stats.clone();
    }
    classification
        .stats
        .iter()
        .filter_map(|c| {
            let members: Vec<&MergedTest> = tests
                .iter()
                .filter(|t| !left_out.contains(t.id.as_str()))
                .filter(|t| {
                    classification
                        .by_test
                        .get(&t.id)
                        .is_some_and(|k| k.category == c.name)
                })
                .collect();
            (!members.is_empty()).then(|| CategoryStat {
                name: c.name.clone(),
                count: members.len() as u32,
                tests: members
                    .iter()
                    .take(FIRST_TESTS)
                    .map(|t| CategoryTest {
                        name: t.id.clone(),
                        message: shorten(&t.case.message),
                    })
                    .collect(),
            })
        })
        .collect()
}

/// The categories of a run as recorded: the stored per-test classification, or, for a run
/// recorded before classifications were stored, the tests `status.categories` lists (the only
/// ones `/api/status` ever showed). Tests not in it are unclassified.
pub fn recorded(stored: ByTest, stats: &[CategoryStat]) -> ByTest {
    if !stored.is_empty() {
        return stored;
    }
    stats
        .iter()
        .flat_map(|c| {
            c.tests
                .iter()
                .map(|t| (t.name.clone(), Classified::category(&c.name)))
        })
        .collect()
}

fn shorten(message: &str) -> String {
    let first = message.lines().next().unwrap_or_default().trim();
    match first.char_indices().nth(MESSAGE_CHARS) {
        Some((i, _)) => format!("{}…", &first[..i]),
        None => first.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{AttemptResult, Case, merge};

    fn rule(name: &str, json: serde_json::Value) -> CategoryRule {
        let mut v = json;
        v["name"] = serde_json::json!(name);
        serde_json::from_value(v).unwrap()
    }

    fn result(attempt: u32, id: &str, status: CaseStatus, message: &str, out: &str) -> AttemptResult {
        AttemptResult {
            attempt,
            id: id.into(),
            case: Case {
                suites: vec![],
                classname: String::new(),
                name: id.into(),
                file: None,
                time_ms: None,
                status,
                message: message.into(),
                kind: String::new(),
                trace: format!("Error: {message}\n    at test.js:1:1"),
                system_out: out.into(),
                system_err: String::new(),
            },
        }
    }

    fn classifier() -> Classifier {
        Classifier::new(vec![
            rule("Infrastructure", serde_json::json!({"matchedStatuses": ["failed", "broken"], "logRegex": "ECONNREFUSED|Connection refused"})),
            rule("Timeouts", serde_json::json!({"messageRegex": ".*(?i:timeout).*"})),
            rule("Product defects", serde_json::json!({"matchedStatuses": ["failed"], "messageRegex": ".*expected.*but was.*"})),
            rule("Test defects", serde_json::json!({"matchedStatuses": ["broken"]})),
        ])
        .unwrap()
    }

    #[test]
    fn muted_failures_leave_the_categories_which_keep_their_order() {
        let tests = merge(
            vec![
                result(1, "slow-a", CaseStatus::Failed, "TimeoutError: a", ""),
                result(1, "slow-b", CaseStatus::Failed, "TimeoutError: b", ""),
                result(1, "wrong", CaseStatus::Failed, "expected 85 but was 90", ""),
                result(1, "setup", CaseStatus::Errored, "fixture crashed", ""),
            ],
            |_, _| true,
        );
        let c = classify(Some(&classifier()), &tests, |_| None::<&[u8]>);
        assert_eq!(stats_without(&c, &tests, &HashSet::new()), c.stats);
        let muted = HashSet::from(["slow-a", "wrong"]);
        let left = stats_without(&c, &tests, &muted);
        let names: Vec<(&str, u32)> = left.iter().map(|s| (s.name.as_str(), s.count)).collect();
        assert_eq!(names, [("Timeouts", 1), ("Test defects", 1)], "{left:?}");
        assert_eq!(left[0].tests[0].name, "slow-b");
        assert_eq!(left[0].tests[0].message, "TimeoutError: b");
        assert_eq!(
            c.by_test.len(),
            4,
            "the muted tests keep their category and signature"
        );
    }

    #[test]
    fn failures_land_in_the_first_matching_category() {
        let tests = merge(
            vec![
                result(
                    1,
                    "refused",
                    CaseStatus::Failed,
                    "request failed",
                    "GET /api -> connect ECONNREFUSED 127.0.0.1:1",
                ),
                result(
                    1,
                    "slow",
                    CaseStatus::Failed,
                    "TimeoutError: waiting for #submit",
                    "",
                ),
                result(1, "wrong", CaseStatus::Failed, "expected 85 but was 90", ""),
                result(1, "setup", CaseStatus::Errored, "fixture crashed", ""),
                result(1, "odd", CaseStatus::Failed, "something else", ""),
                result(1, "ok", CaseStatus::Passed, "", ""),
            ],
            |_, _| true,
        );
        let c = classify(Some(&classifier()), &tests, |_| None::<&[u8]>);
        assert_eq!(c.by_test["refused"].category, "Infrastructure");
        assert_eq!(c.by_test["slow"].category, "Timeouts");
        assert_eq!(c.by_test["wrong"].category, "Product defects");
        assert_eq!(c.by_test["setup"].category, "Test defects");
        assert_eq!(c.by_test["odd"].category, UNCLASSIFIED);
        assert!(!c.by_test.contains_key("ok"));
        let names: Vec<&str> = c.stats.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "Infrastructure",
                "Timeouts",
                "Product defects",
                "Test defects",
                UNCLASSIFIED
            ]
        );
        assert!(c.stats.iter().all(|s| s.count == 1));
        assert_eq!(c.stats[2].tests[0].message, "expected 85 but was 90");
    }

    #[test]
    fn each_classified_test_records_its_failure_signature() {
        let tests = merge(
            vec![
                result(1, "a", CaseStatus::Failed, "expected 85 but was 90", ""),
                result(1, "b", CaseStatus::Failed, "expected 1 but was 2", ""),
                result(1, "c", CaseStatus::Errored, "fixture crashed", ""),
                result(1, "ok", CaseStatus::Passed, "", ""),
            ],
            |_, _| true,
        );
        let c = classify(None, &tests, |_| None::<&[u8]>);
        let sig = |id: &str| {
            c.by_test[id]
                .signature
                .clone()
                .expect("a failing test has a signature")
        };
        assert_eq!(sig("a"), sig("b"), "one assertion, other values");
        assert_ne!(sig("a"), sig("c"));
        assert_eq!(
            sig("a"),
            Signature::of("expected 1 but was 2", "Error: x\n    at test.js:1:1")
        );
        assert!(!c.by_test.contains_key("ok"));
    }

    #[test]
    fn a_flaky_test_is_classified_by_its_failing_attempt() {
        let tests = merge(
            vec![
                result(1, "flaky", CaseStatus::Failed, "TimeoutError: waiting", ""),
                result(2, "flaky", CaseStatus::Passed, "", ""),
            ],
            |_, _| true,
        );
        let c = classify(Some(&classifier()), &tests, |_| None::<&[u8]>);
        assert_eq!(c.by_test["flaky"].category, "Timeouts");
    }

    #[test]
    fn without_own_output_the_attempt_log_is_searched_once_per_attempt() {
        let tests = merge(
            vec![
                result(1, "a", CaseStatus::Failed, "request failed", ""),
                result(1, "b", CaseStatus::Failed, "request failed too", ""),
            ],
            |_, _| true,
        );
        let mut opened = 0;
        let log = b"starting\nError: connect ECONNREFUSED 127.0.0.1:1\n".to_vec();
        let c = classify(Some(&classifier()), &tests, |n| {
            assert_eq!(n, 1);
            opened += 1;
            Some(log.as_slice())
        });
        assert_eq!(opened, 1);
        assert_eq!(c.by_test["a"].category, "Infrastructure");
        assert_eq!(c.by_test["b"].category, "Infrastructure");
        assert_eq!(c.stats[0].count, 2);
    }

    #[test]
    fn without_rules_every_failure_is_unclassified() {
        let tests = merge(vec![result(1, "x", CaseStatus::Failed, "boom", "")], |_, _| true);
        let c = classify(None, &tests, |_| None::<&[u8]>);
        assert_eq!(
            c.stats,
            vec![CategoryStat {
                name: UNCLASSIFIED.into(),
                count: 1,
                tests: vec![CategoryTest {
                    name: "x".into(),
                    message: "boom".into()
                }]
            }]
        );
    }
}
