//! The one per-run view model: what every surface that tells a run — the run page
//! (`crate::ui::view::run_page`), the email, the tracker comment and the webhook
//! ([`super::content::RunReport`]) — says about it, computed here once so that they cannot
//! disagree about a group, an order, a count or a time.
//!
//! Each surface adds only its presentation on top: the reports bound their lists and shorten
//! messages; the page adds links, anchors, signatures and per-test details. The pieces are
//! generic over the surface's own test type (`MergedTest` for the reports, `TestView` for the
//! page), which each surface maps to the few facts asked for here (a verdict, a category, a
//! mute, a novelty tag). Pure functions, no I/O; this module knows nothing of the UI.

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use crate::classify::UNCLASSIFIED;
use crate::crd::{Attempt, CategoryStat, MutedTest, Summary, TestRun};
use crate::results::{NoveltyCounts, TestVerdict};

/// An instant as every surface writes it, in UTC to the second: `2024-05-01 12:00:03 UTC`.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// The packs a run runs: those its first attempt selected, else those its template names
/// (empty: every pack of the service).
pub fn run_packs(run: &TestRun) -> Vec<String> {
    run.status
        .as_ref()
        .and_then(|s| s.attempts.first())
        .map(|a| a.selection.packs.clone())
        .unwrap_or_else(|| run.spec.template.packs.clone())
}

/// What a run selects, as its template says: the packs it names, else its category, else
/// every pack of the service. Each surface words it its own way (`basic+api` in a report's
/// title, `basic, api` or `all packs` on the page).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Covers<'a> {
    Packs(&'a [String]),
    Category(&'a str),
    Everything,
}

impl<'a> Covers<'a> {
    pub fn of(run: &'a TestRun) -> Covers<'a> {
        let t = &run.spec.template;
        match t.category.as_deref().filter(|c| !c.is_empty()) {
            _ if !t.packs.is_empty() => Covers::Packs(&t.packs),
            Some(c) => Covers::Category(c),
            None => Covers::Everything,
        }
    }
}

/// A run's category (preset), when it names one.
pub fn category_of(run: &TestRun) -> Option<String> {
    run.spec.template.category.clone().filter(|c| !c.is_empty())
}

/// What every surface says of one attempt; the email's attempt line and the page's attempt
/// row carry it flattened (same field names as before), each adding its own wording of what
/// the attempt ran and of how long it took.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct AttemptFacts {
    pub number: u32,
    /// `Finished`, `TimedOut`, `LaunchFailed`, `Interrupted`, `Cancelled`, `Running`.
    pub state: crate::crd::AttemptState,
    pub summary: Option<Summary>,
    pub message: Option<String>,
    /// Its launches in Aqua (Aqua services only).
    pub aqua: Vec<crate::launch::aqua::LaunchLink>,
}

impl AttemptFacts {
    pub fn of(a: &Attempt) -> AttemptFacts {
        AttemptFacts {
            number: a.number,
            state: a.state,
            summary: a.summary,
            message: a.message.clone(),
            aqua: crate::launch::aqua::links(&a.aqua),
        }
    }
}

/// A test a Mute covered, as reports and the run page show it (every field present, for
/// templates).
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct MutedLine {
    pub test: String,
    /// The Mute's name.
    pub mute: String,
    pub reason: String,
    pub ticket: Option<String>,
    /// It passed although muted: the mute may no longer be needed.
    pub passed: bool,
}

impl MutedLine {
    pub fn of(m: &MutedTest) -> MutedLine {
        MutedLine {
            test: m.test.clone(),
            mute: m.mute.clone(),
            reason: m.reason.clone(),
            ticket: m.ticket.clone(),
            passed: m.passed,
        }
    }
}

/// Whether a test (its verdict, and the Mute that covered
/// it, if any) is one of the run's failures: failed or broken, and not a failure a Mute covers
/// (that one does not fail the run; surfaces list it apart). Flaky tests are no failures: they
/// have a list of their own.
pub fn is_run_failure(verdict: TestVerdict, muted: Option<&MutedTest>) -> bool {
    verdict.is_failing() && muted.is_none_or(|m| m.passed)
}

/// The failures of one category, in the order they were given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group<T> {
    pub category: String,
    pub tests: Vec<T>,
}

/// The run's failures (each with its category, `None`: no rule matched) grouped by category,
/// in the one order every surface shows them:
///
/// 1. the largest group first (what broke most leads);
/// 2. [`UNCLASSIFIED`] last whatever its size (a named cause says more than its absence);
/// 3. groups of equal size in rule order (`rule_order`: `status.categories`, the order the
///    classification gave), then by name.
///
/// Tests keep their given order within a group. Give only the failures ([`is_run_failure`]).
pub fn failure_groups<'a, T>(
    failures: impl IntoIterator<Item = (T, Option<&'a str>)>,
    rule_order: &[CategoryStat],
) -> Vec<Group<T>> {
    let mut groups: Vec<Group<T>> = Vec::new();
    for (t, category) in failures {
        let category = category.unwrap_or(UNCLASSIFIED);
        match groups.iter_mut().find(|g| g.category == category) {
            Some(g) => g.tests.push(t),
            None => groups.push(Group {
                category: category.to_string(),
                tests: vec![t],
            }),
        }
    }
    let rank = |name: &str| {
        rule_order
            .iter()
            .position(|c| c.name == name)
            .unwrap_or(usize::MAX)
    };
    groups.sort_by(|a, b| {
        (a.category == UNCLASSIFIED)
            .cmp(&(b.category == UNCLASSIFIED))
            .then_with(|| b.tests.len().cmp(&a.tests.len()))
            .then_with(|| rank(&a.category).cmp(&rank(&b.category)))
            .then_with(|| a.category.cmp(&b.category))
    });
    groups
}

/// A run's failures against the service's history: the counts, and the failures to lead
/// with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Novelty<T> {
    pub counts: NoveltyCounts,
    /// New failures, then changed ones, each in the order given.
    pub news: Vec<(&'static str, T)>,
}

/// Counts the tests' novelty tags (`new`, `known`, `changed`, `fixed`; see `crate::history`)
/// and picks the failures a surface leads with: the new ones, then the changed ones.
pub fn novelty<T: Copy>(tagged: &[(&str, T)]) -> Novelty<T> {
    let count = |kind: &str| tagged.iter().filter(|(k, _)| *k == kind).count() as u32;
    let news = ["new", "changed"]
        .into_iter()
        .flat_map(|kind| {
            tagged
                .iter()
                .filter(move |(k, _)| *k == kind)
                .map(move |(_, t)| (kind, *t))
        })
        .collect();
    Novelty {
        counts: NoveltyCounts {
            new: count("new"),
            known: count("known"),
            changed: count("changed"),
            fixed: count("fixed"),
        },
        news,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(name: &str) -> CategoryStat {
        CategoryStat {
            name: name.into(),
            count: 0,
            tests: Vec::new(),
        }
    }

    fn order<'a>(groups: &[Group<&'a str>]) -> Vec<(String, Vec<&'a str>)> {
        groups
            .iter()
            .map(|g| (g.category.clone(), g.tests.clone()))
            .collect()
    }

    #[test]
    fn groups_go_largest_first_with_unclassified_last_and_ties_in_rule_order() {
        let failures = [
            ("a", None),
            ("b", Some("Product")),
            ("c", None),
            ("d", Some("Infrastructure")),
            ("e", Some("Infrastructure")),
            ("f", None),
            ("g", Some("Timeouts")),
            ("h", Some("Product")),
            ("i", Some("Other")),
        ];
        let rules = [stat("Timeouts"), stat("Infrastructure"), stat("Product")];
        let groups = failure_groups(failures, &rules);
        assert_eq!(
            order(&groups),
            [
                ("Infrastructure".to_string(), vec!["d", "e"]),
                ("Product".to_string(), vec!["b", "h"]),
                ("Timeouts".to_string(), vec!["g"]),
                ("Other".to_string(), vec!["i"]),
                (UNCLASSIFIED.to_string(), vec!["a", "c", "f"]),
            ]
        );
        // Without a rule order, equal groups go by name.
        let groups = failure_groups([("x", Some("b")), ("y", Some("a"))], &[]);
        assert_eq!(
            order(&groups),
            [("a".to_string(), vec!["y"]), ("b".to_string(), vec!["x"])]
        );
        assert!(failure_groups(Vec::<(&str, Option<&str>)>::new(), &rules).is_empty());
    }

    #[test]
    fn a_failure_is_failed_or_broken_and_not_covered_by_a_mute() {
        let mute = |passed| MutedTest {
            test: "t".into(),
            mute: "m".into(),
            reason: "known".into(),
            ticket: None,
            passed,
        };
        assert!(is_run_failure(TestVerdict::Failed, None));
        assert!(is_run_failure(TestVerdict::Broken, None));
        assert!(!is_run_failure(TestVerdict::Flaky, None));
        assert!(!is_run_failure(TestVerdict::Passed, None));
        assert!(!is_run_failure(TestVerdict::Skipped, None));
        assert!(!is_run_failure(TestVerdict::Failed, Some(&mute(false))));
        assert!(
            is_run_failure(TestVerdict::Failed, Some(&mute(true))),
            "a mute that saw it pass covers no failure"
        );
    }

    #[test]
    fn novelty_counts_every_tag_and_leads_with_new_then_changed_failures() {
        let tagged = [
            ("changed", "c1"),
            ("new", "n1"),
            ("known", "k1"),
            ("fixed", "f1"),
            ("new", "n2"),
            ("fixed", "f2"),
        ];
        let n = novelty(&tagged);
        assert_eq!(
            n.counts,
            NoveltyCounts {
                new: 2,
                known: 1,
                changed: 1,
                fixed: 2
            }
        );
        assert_eq!(n.news, [("new", "n1"), ("new", "n2"), ("changed", "c1")]);
        assert_eq!(novelty::<&str>(&[]).news, []);
    }

    #[test]
    fn the_facts_of_an_attempt_and_a_run() {
        let run = TestRun::test("demo-1", crate::crd::RunTemplate::test("demo").category("smoke"));
        assert_eq!(category_of(&run).as_deref(), Some("smoke"));
        assert_eq!(Covers::of(&run), Covers::Category("smoke"));
        let packs = TestRun::test(
            "demo-2",
            crate::crd::RunTemplate::test("demo")
                .category("smoke")
                .packs(&["api"]),
        );
        assert_eq!(Covers::of(&packs), Covers::Packs(&["api".to_string()]));
        let every = TestRun::test("demo-3", crate::crd::RunTemplate::test("demo").category(""));
        assert_eq!(Covers::of(&every), Covers::Everything);
        assert!(
            run_packs(&run).is_empty(),
            "no attempt, no packs named: every pack"
        );
        let a = Attempt {
            state: crate::crd::AttemptState::TimedOut,
            message: Some("too slow".into()),
            ..Attempt::test(2, crate::crd::Selection::all(vec!["basic".into()]))
        };
        let f = AttemptFacts::of(&a);
        assert_eq!(
            (f.number, f.state, f.message.as_deref()),
            (2, crate::crd::AttemptState::TimedOut, Some("too slow"))
        );
        let t = DateTime::parse_from_rfc3339("2024-05-01T12:00:03.5Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(timestamp(t), "2024-05-01 12:00:03 UTC");
    }
}
