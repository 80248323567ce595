//! New versus known failures: what a QA engineer asks first of a finished run.
//!
//! Every failed or broken test of a run is tagged against the service's history — the final
//! verdicts of its earlier runs, within a window the caller chose — by its failure
//! [`Signature`]:
//! - **new**: the test never failed with this signature before;
//! - **known**: it did: since which run and when, how many times, on which stands;
//! - **changed**: it failed before, but never this way (its newest earlier signature is given).
//!
//! And every test that failed or broke in the previous *comparable* run (same service, stand
//! and packs: the caller picks it) but passed now is **fixed**. A test that is flaky now is not
//! fixed: it failed again in this run, only not at the end.
//!
//! The decision is pure: the caller reads the history from the results store (excluding the run
//! itself) and stores or shows the tags. A failure without a signature (no message, no trace)
//! is matched by "no signature", so a test that always fails silently is known, not new.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Signature, TestVerdict};

/// One failing test of an earlier run, as the history gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PastFailure {
    pub run: String,
    /// When the run was created (runs are ordered by it).
    pub at: DateTime<Utc>,
    pub stand: String,
    pub test: String,
    pub signature: Option<Signature>,
}

/// One test of the run being tagged: its final verdict and, when it failed, its signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub test: String,
    pub verdict: TestVerdict,
    pub signature: Option<Signature>,
}

/// What a failure of this run is, against the history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Novelty {
    /// Never failed this way before.
    New,
    /// Failed this way before.
    #[serde(rename_all = "camelCase")]
    Known {
        /// The first earlier run with this failure, and when it was created.
        since_run: String,
        since: DateTime<Utc>,
        /// How many earlier runs had it.
        times: u32,
        /// The stands it happened on, sorted.
        stands: Vec<String>,
    },
    /// Failed before, but differently: the signature of its newest earlier failure.
    #[serde(rename_all = "camelCase")]
    Changed {
        previous: Option<Signature>,
        last_run: String,
        last: DateTime<Utc>,
    },
}

impl Novelty {
    pub fn as_str(&self) -> &'static str {
        match self {
            Novelty::New => "new",
            Novelty::Known { .. } => "known",
            Novelty::Changed { .. } => "changed",
        }
    }
}

/// The tags of one run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tags {
    /// Each failed or broken test of the run, by test id.
    pub failures: BTreeMap<String, Novelty>,
    /// Tests that failed or broke in the previous comparable run and passed in this one.
    pub fixed: Vec<String>,
}

/// The counts a report leads with: "3 new, 12 known, 2 fixed".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub new: u32,
    pub known: u32,
    pub changed: u32,
    pub fixed: u32,
}

impl Tags {
    pub fn counts(&self) -> Counts {
        let mut c = Counts {
            fixed: self.fixed.len() as u32,
            ..Counts::default()
        };
        for n in self.failures.values() {
            match n {
                Novelty::New => c.new += 1,
                Novelty::Known { .. } => c.known += 1,
                Novelty::Changed { .. } => c.changed += 1,
            }
        }
        c
    }

    /// One test's tag as the API shows it: its failure's [`Novelty`], `{"kind": "fixed"}`, or
    /// `None` for a test that is neither.
    pub fn of(&self, test: &str) -> Option<serde_json::Value> {
        match self.failures.get(test) {
            Some(n) => serde_json::to_value(n).ok(),
            None => self
                .fixed
                .binary_search_by(|f| f.as_str().cmp(test))
                .is_ok()
                .then(|| serde_json::json!({"kind": "fixed"})),
        }
    }

    /// Whether anything calls for attention: a new or changed failure (what
    /// `report.notify: newFailures` sends for).
    pub fn has_news(&self) -> bool {
        self.failures
            .values()
            .any(|n| !matches!(n, Novelty::Known { .. }))
    }
}

/// Tags `run`'s failures against `history` (earlier runs' failures; any order, the run itself
/// excluded) and finds what `previous` (the previous comparable run's outcomes, if there is
/// one) had failing that passes now.
pub fn tag(run: &[Outcome], history: &[PastFailure], previous: Option<&[Outcome]>) -> Tags {
    // Per test: its earlier failures, oldest first.
    let mut by_test: HashMap<&str, Vec<&PastFailure>> = HashMap::new();
    for f in history {
        by_test.entry(f.test.as_str()).or_default().push(f);
    }
    for v in by_test.values_mut() {
        v.sort_by(|a, b| (a.at, &a.run).cmp(&(b.at, &b.run)));
    }
    let mut failures = BTreeMap::new();
    for o in run.iter().filter(|o| o.verdict.is_failing()) {
        let past = by_test
            .get(o.test.as_str())
            .map(Vec::as_slice)
            .unwrap_or_default();
        let same: Vec<&&PastFailure> = past.iter().filter(|f| f.signature == o.signature).collect();
        let novelty = match (same.first(), past.last()) {
            (Some(first), _) => {
                let runs: BTreeSet<&str> = same.iter().map(|f| f.run.as_str()).collect();
                let stands: BTreeSet<&str> = same.iter().map(|f| f.stand.as_str()).collect();
                Novelty::Known {
                    since_run: first.run.clone(),
                    since: first.at,
                    times: runs.len() as u32,
                    stands: stands.into_iter().map(str::to_string).collect(),
                }
            }
            (None, Some(last)) => Novelty::Changed {
                previous: last.signature.clone(),
                last_run: last.run.clone(),
                last: last.at,
            },
            (None, None) => Novelty::New,
        };
        failures.insert(o.test.clone(), novelty);
    }
    let passed_now: BTreeSet<&str> = run
        .iter()
        .filter(|o| o.verdict == TestVerdict::Passed)
        .map(|o| o.test.as_str())
        .collect();
    let fixed: BTreeSet<String> = previous
        .unwrap_or_default()
        .iter()
        .filter(|o| o.verdict.is_failing() && passed_now.contains(o.test.as_str()))
        .map(|o| o.test.clone())
        .collect();
    Tags {
        failures,
        fixed: fixed.into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn sig(n: u8) -> Option<Signature> {
        Some(Signature::of_normalised(&format!("failure {n}")))
    }

    fn day(d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, 3, 0, 0).unwrap()
    }

    fn past(run: &str, d: u32, stand: &str, test: &str, s: Option<Signature>) -> PastFailure {
        PastFailure {
            run: run.into(),
            at: day(d),
            stand: stand.into(),
            test: test.into(),
            signature: s,
        }
    }

    fn out(test: &str, verdict: TestVerdict, s: Option<Signature>) -> Outcome {
        Outcome {
            test: test.into(),
            verdict,
            signature: s,
        }
    }

    #[test]
    fn a_failure_is_new_known_or_changed_by_its_signature() {
        let history = vec![
            // Out of order on purpose: the function orders by creation.
            past("n3", 3, "staging", "t::known", sig(1)),
            past("n1", 1, "prod", "t::known", sig(1)),
            past("n2", 2, "staging", "t::known", sig(1)),
            past("n2", 2, "staging", "t::changed", sig(7)),
            past("n3", 3, "staging", "t::changed", sig(8)),
            past("n1", 1, "staging", "t::other", sig(1)),
        ];
        let run = vec![
            out("t::known", TestVerdict::Failed, sig(1)),
            out("t::changed", TestVerdict::Broken, sig(9)),
            out("t::new", TestVerdict::Failed, sig(1)),
            out("t::passing", TestVerdict::Passed, None),
            out("t::flaky", TestVerdict::Flaky, sig(2)),
        ];
        let tags = tag(&run, &history, None);
        assert_eq!(
            tags.failures["t::known"],
            Novelty::Known {
                since_run: "n1".into(),
                since: day(1),
                times: 3,
                stands: vec!["prod".into(), "staging".into()],
            }
        );
        assert_eq!(
            tags.failures["t::changed"],
            Novelty::Changed {
                previous: sig(8),
                last_run: "n3".into(),
                last: day(3),
            },
            "the newest earlier signature"
        );
        assert_eq!(
            tags.failures["t::new"],
            Novelty::New,
            "another test's failure with the same signature does not make it known"
        );
        assert_eq!(tags.failures.len(), 3, "only failed and broken tests are tagged");
        assert_eq!(
            tags.counts(),
            Counts {
                new: 1,
                known: 1,
                changed: 1,
                fixed: 0
            }
        );
        assert!(tags.has_news());
    }

    #[test]
    fn a_silent_failure_is_known_by_having_no_signature() {
        let history = vec![past("n1", 1, "s", "t::silent", None)];
        let tags = tag(&[out("t::silent", TestVerdict::Broken, None)], &history, None);
        assert_eq!(tags.failures["t::silent"].as_str(), "known");
        let tags = tag(&[out("t::silent", TestVerdict::Broken, sig(1))], &history, None);
        assert_eq!(tags.failures["t::silent"].as_str(), "changed");
        assert!(!tag(&[out("t::silent", TestVerdict::Broken, None)], &history, None).has_news());
    }

    #[test]
    fn a_test_counts_once_per_run_that_had_it() {
        let history = vec![
            past("n1", 1, "s", "t", sig(1)),
            past("n1", 1, "s", "t", sig(1)),
            past("n2", 2, "s", "t", sig(1)),
        ];
        match &tag(&[out("t", TestVerdict::Failed, sig(1))], &history, None).failures["t"] {
            Novelty::Known { times, .. } => assert_eq!(*times, 2),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn fixed_are_the_previous_runs_failures_that_pass_now() {
        let previous = vec![
            out("a", TestVerdict::Failed, sig(1)),
            out("b", TestVerdict::Broken, sig(2)),
            out("c", TestVerdict::Failed, sig(3)),
            out("d", TestVerdict::Passed, None),
            out("e", TestVerdict::Failed, sig(4)),
        ];
        let run = vec![
            out("a", TestVerdict::Passed, None),
            out("b", TestVerdict::Passed, None),
            // Flaky now: it failed again in this run, so not fixed.
            out("c", TestVerdict::Flaky, sig(3)),
            out("d", TestVerdict::Passed, None),
            // Not run this time: nothing is known about it.
        ];
        let tags = tag(&run, &[], Some(&previous));
        assert_eq!(tags.fixed, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(tags.counts().fixed, 2);
        assert!(!tags.has_news(), "fixed tests alone are no news to notify about");
        assert!(
            tag(&run, &[], None).fixed.is_empty(),
            "no comparable run, nothing fixed"
        );
    }

    proptest::proptest! {
        /// Whatever the history: every failing test is tagged and nothing else; a failure is new
        /// exactly when the test never failed before, and known exactly when it failed before
        /// with the same signature.
        #[test]
        fn tags_agree_with_a_direct_reading_of_the_history(
            past_runs in proptest::collection::vec((0u8..6, 0u8..3, 1u32..28), 0..40),
            now in proptest::collection::vec((0u8..6, 0u8..4), 0..6),
        ) {
            let history: Vec<PastFailure> = past_runs
                .iter()
                .enumerate()
                .map(|(i, (t, s, d))| past(&format!("r{i}"), *d, "s", &format!("t{t}"), sig(*s)))
                .collect();
            let run: Vec<Outcome> = now
                .iter()
                .map(|(t, v)| {
                    let verdict = [TestVerdict::Failed, TestVerdict::Broken, TestVerdict::Passed, TestVerdict::Flaky][*v as usize];
                    out(&format!("t{t}"), verdict, sig(*t % 3))
                })
                .collect();
            let tags = tag(&run, &history, None);
            for o in &run {
                let tagged = tags.failures.get(&o.test);
                if !o.verdict.is_failing() {
                    // A test may appear twice in generated input; only check the unique ones.
                    if run.iter().filter(|x| x.test == o.test).count() == 1 {
                        proptest::prop_assert!(tagged.is_none());
                    }
                    continue;
                }
                let tagged = tagged.expect("every failure is tagged");
                let before: Vec<&PastFailure> = history.iter().filter(|f| f.test == o.test).collect();
                if run.iter().filter(|x| x.test == o.test).count() > 1 {
                    continue;
                }
                match tagged {
                    Novelty::New => proptest::prop_assert!(before.is_empty()),
                    Novelty::Known { times, .. } => {
                        proptest::prop_assert!(before.iter().any(|f| f.signature == o.signature));
                        proptest::prop_assert!(*times >= 1);
                    }
                    Novelty::Changed { .. } => {
                        proptest::prop_assert!(!before.is_empty());
                        proptest::prop_assert!(before.iter().all(|f| f.signature != o.signature));
                    }
                }
            }
        }
    }
}
