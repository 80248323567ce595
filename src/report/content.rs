//! What a report says, built once from the finished run: [`RunReport`].
//!
//! Every channel (email subject, text and HTML, tracker comment, webhook) renders this one
//! value, so they never disagree about a count or a name. It is a pure function of the run,
//! its merged tests and the public URL, and carries plain strings and numbers only, ready for
//! templates. Lists are bounded (a run with thousands of failures still makes a readable
//! email): each category shows its first [`MAX_TESTS_PER_GROUP`] tests and says how many more.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::model::{self, AttemptFacts};
pub use super::model::{MutedLine, UNCLASSIFIED};
use crate::crd::{Priority, RunType, SelectionKind, Summary, TestRun, TestRunStatus, Verdict};
use crate::results::{MergedTest, NoveltyCounts, TestVerdict};
use crate::text::{one_line, shorten};

/// Tests listed per failure category (and flaky tests listed) before "and N more".
pub const MAX_TESTS_PER_GROUP: usize = 50;
/// Characters of a failure message kept in the report.
pub const MAX_MESSAGE_CHARS: usize = 500;
/// Characters of an Error run's message kept in the headline (and so the subject).
const MAX_HEADLINE_MESSAGE_CHARS: usize = 100;

/// One finished run, as every report channel tells it.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct RunReport {
    /// The run id.
    pub id: String,
    pub service: String,
    pub stand: String,
    pub category: Option<String>,
    /// Packs the run covered.
    pub packs: Vec<String>,
    /// What was run, for titles: the category, else the explicit packs (`basic+api`), else empty
    /// (every pack of the service).
    pub selection: String,
    pub version: Option<String>,
    #[serde(rename = "issueKey")]
    pub issue_key: Option<String>,
    pub priority: Priority,
    /// `Regular` or `Nightly`.
    #[serde(rename = "type")]
    pub run_type: RunType,
    /// `Succeeded`, `Failed` or `Error`.
    pub verdict: Verdict,
    /// The outcome in a few words: `3 failed, 1 flaky`, `all 5 passed`, `error: <why>`.
    pub headline: String,
    /// The run's message (why it errored, how many tests still fail).
    pub message: Option<String>,
    /// `2024-05-01 12:00:03 UTC`.
    pub started: Option<String>,
    pub finished: Option<String>,
    /// `1m5s`.
    pub duration: Option<String>,
    pub attempts: Vec<AttemptLine>,
    pub summary: Summary,
    /// Failed and broken tests grouped by failure category, in the one order of
    /// [`model::failure_groups`] (largest first, `Unclassified` last).
    pub failures: Vec<FailureGroup>,
    /// Failed and broken tests in all.
    pub failing: usize,
    pub flaky: Vec<FlakyTest>,
    /// Flaky tests not listed in `flaky`.
    pub flaky_more: usize,
    /// Failing tests a Mute covered (not in `failures`: they do not fail the run), and muted
    /// tests that passed, as the run recorded them.
    pub muted: Vec<MutedLine>,
    /// Of `muted`: the failing tests (they did not fail the run) and those that passed.
    pub muted_failing: usize,
    pub muted_passed: usize,
    /// How the failures compare with the service's history, which reports lead with; `None`
    /// where no history is kept (operator mode without a results database).
    pub novelty: Option<NoveltyReport>,
    /// The run page.
    pub link: String,
    /// Every test's final verdict, for the test-management record (not for templates).
    #[serde(skip)]
    pub outcomes: Vec<crate::integrations::tms::automated::TestOutcome>,
}

/// One attempt of the run.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct AttemptLine {
    /// Its number, state, summary, message and Aqua launches, as every surface tells them.
    #[serde(flatten)]
    pub facts: AttemptFacts,
    /// `all tests of basic, api` or `2 failed tests of attempt 1`.
    pub ran: String,
    pub duration: Option<String>,
}

/// Failed and broken tests of one failure category.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct FailureGroup {
    pub category: String,
    /// Tests in the category (listed or not).
    pub count: usize,
    pub tests: Vec<FailedTest>,
    /// Tests of the category not listed.
    pub more: usize,
}

#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct FailedTest {
    /// The test id (what a rerun selects; readable: `cart > applies the discount`,
    /// `tests/test_core.py::test_applies_coupon`).
    pub name: String,
    /// `failed` or `broken`.
    pub verdict: TestVerdict,
    pub message: String,
    /// The last attempt that ran it.
    pub attempt: u32,
    /// The files it attached on that attempt (Allure results), as absolute links.
    pub attachments: Vec<AttachmentLink>,
}

/// A link to a file a test attached.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct AttachmentLink {
    pub name: String,
    pub url: String,
}

#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct FlakyTest {
    pub name: String,
    /// The attempt it failed on.
    pub failed_on: u32,
    /// The attempt it then passed on.
    pub passed_on: Option<u32>,
    /// Why it failed then.
    pub message: String,
}

/// A run's failures against the service's history ([`crate::history`]): "3 new, 12 known, 2
/// fixed", and the failures that are new (then those that changed) listed first.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NoveltyReport {
    /// `new`, `known`, `changed` and `fixed`.
    #[serde(flatten)]
    pub counts: NoveltyCounts,
    /// The counts in words, those that are not zero: `3 new, 12 known, 2 fixed`, or
    /// `nothing new` when there is nothing to count.
    pub line: String,
    /// New failures, then changed ones (at most [`MAX_NEWS`]).
    pub news: Vec<NewFailure>,
    /// New and changed failures not listed.
    pub news_more: usize,
}

/// One failure the history had never seen (`new`), or never this way (`changed`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NewFailure {
    pub name: String,
    /// `new` or `changed`.
    pub kind: &'static str,
    pub verdict: TestVerdict,
    pub message: String,
}

/// New and changed failures a report lists.
pub const MAX_NEWS: usize = 10;

impl NoveltyReport {
    /// From a run's tags and its merged tests (for the failures' verdicts and messages).
    pub fn of(tags: &crate::results::Tags, tests: &[MergedTest]) -> NoveltyReport {
        let tagged: Vec<(&str, &str)> = tags
            .failures
            .iter()
            .map(|(id, n)| (n.as_str(), id.as_str()))
            .chain(tags.fixed.iter().map(|id| ("fixed", id.as_str())))
            .collect();
        let model::Novelty { counts: c, news } = model::novelty(&tagged);
        let words: Vec<String> = [
            (c.new, "new"),
            (c.known, "known"),
            (c.changed, "changed"),
            (c.fixed, "fixed"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, w)| format!("{n} {w}"))
        .collect();
        let by_id: HashMap<&str, &MergedTest> = tests.iter().map(|t| (t.id.as_str(), t)).collect();
        let news: Vec<NewFailure> = news
            .into_iter()
            .map(|(kind, id)| NewFailure {
                name: id.to_string(),
                kind,
                verdict: by_id.get(id).map_or(TestVerdict::Failed, |t| t.verdict),
                message: by_id
                    .get(id)
                    .map(|t| shorten(t.case.message.trim(), MAX_MESSAGE_CHARS))
                    .unwrap_or_default(),
            })
            .collect();
        NoveltyReport {
            counts: c,
            line: if words.is_empty() {
                "nothing new".into()
            } else {
                words.join(", ")
            },
            news_more: news.len().saturating_sub(MAX_NEWS),
            news: news.into_iter().take(MAX_NEWS).collect(),
        }
    }
}

impl RunReport {
    /// Builds the report of a run whose verdict is final. `tests` are its merged tests
    /// (`crate::core::merge_run`); `public_url` is where people reach Tomato's web UI.
    pub fn build(
        run: &TestRun,
        tests: &[MergedTest],
        categories: &crate::classify::ByTest,
        public_url: &str,
    ) -> RunReport {
        let id = run.metadata.name.clone().unwrap_or_default();
        let t = &run.spec.template;
        let st = run.status.clone().unwrap_or_default();
        let summary = st.summary.unwrap_or_default();
        let verdict = st.verdict.unwrap_or(Verdict::Error);
        let packs = model::run_packs(run);
        let selection = match model::Covers::of(run) {
            model::Covers::Packs(packs) => packs.join("+"),
            model::Covers::Category(c) => c.to_string(),
            model::Covers::Everything => String::new(),
        };
        let finished = finished_at(&st);
        let (failures, failing) = failure_groups(tests, &st, categories);
        let (flaky, flaky_more) = flaky_tests(tests);
        RunReport {
            link: format!("{}/runs/{id}", public_url.trim_end_matches('/')),
            id,
            service: t.service.clone(),
            stand: t.stand.clone(),
            category: model::category_of(run),
            packs,
            selection,
            version: t.version.clone(),
            issue_key: t.issue_key.clone(),
            priority: t.priority,
            run_type: run.spec.run_type,
            verdict,
            headline: headline(verdict, &summary, st.message.as_deref()),
            message: st.message.clone(),
            started: st.started_at.map(model::timestamp),
            finished: finished.map(model::timestamp),
            duration: st.started_at.zip(finished).map(|(s, f)| span(s, f)),
            attempts: st.attempts.iter().map(attempt_line).collect(),
            summary,
            failures,
            failing,
            flaky,
            flaky_more,
            muted: st.muted.iter().map(MutedLine::of).collect(),
            muted_failing: st.muted.iter().filter(|m| !m.passed).count(),
            muted_passed: st.muted.iter().filter(|m| m.passed).count(),
            novelty: None,
            outcomes: tests
                .iter()
                .map(crate::integrations::tms::automated::TestOutcome::of)
                .collect(),
        }
    }

    /// Links each listed failed test to the files it attached on its last attempt:
    /// `links(test id, attempt number)` gives their names and server-relative URLs, made
    /// absolute here with the public URL as the run's own link is.
    pub fn link_attachments(&mut self, public_url: &str, links: impl Fn(&str, u32) -> Vec<(String, String)>) {
        let base = public_url.trim_end_matches('/');
        for t in self.failures.iter_mut().flat_map(|g| g.tests.iter_mut()) {
            t.attachments = links(&t.name, t.attempt)
                .into_iter()
                .map(|(name, url)| AttachmentLink {
                    name,
                    url: format!("{base}{url}"),
                })
                .collect();
        }
    }

    /// [`Self::link_attachments`] from the Allure records of run `run`'s launches (`records` by
    /// launch position in `attempts`, from 1): a test's links come from the last launch with its
    /// attempt number (an interrupted launch is followed by its relaunch). Both drivers gather
    /// the records their own way and link them here.
    pub fn link_recorded_attachments(
        &mut self,
        public_url: &str,
        run: &str,
        attempts: &[crate::crd::Attempt],
        records: &HashMap<usize, crate::results::allure::AttemptExtras>,
    ) {
        self.link_attachments(public_url, |id, number| {
            let seq = attempts.iter().rposition(|a| a.number == number).map(|i| i + 1);
            seq.and_then(|seq| {
                records
                    .get(&seq)
                    .map(|r| crate::results::attachments::links(r, run, seq, id))
            })
            .unwrap_or_default()
        });
    }

    /// A report with a bit of everything, for checking templates without a run.
    pub fn sample() -> RunReport {
        let test = |name: &str, message: &str| FailedTest {
            name: name.into(),
            verdict: TestVerdict::Failed,
            message: message.into(),
            attempt: 4,
            attachments: Vec::new(),
        };
        RunReport {
            id: "demo-sample".into(),
            service: "demo".into(),
            stand: "localhost".into(),
            category: Some("smoke".into()),
            packs: vec!["basic".into()],
            selection: "smoke".into(),
            version: Some("1.0".into()),
            issue_key: Some("QA-1".into()),
            priority: Priority::DEFAULT,
            run_type: RunType::Regular,
            verdict: Verdict::Failed,
            muted: vec![MutedLine {
                test: "tests/test_pay.py::test_refund".into(),
                mute: "demo-mute-x7k2q".into(),
                reason: "refunds are off on stands until 1.1".into(),
                ticket: Some("QA-7".into()),
                passed: false,
            }],
            muted_failing: 1,
            muted_passed: 0,
            headline: "1 failed, 1 flaky".into(),
            message: Some("1 test still failing after 4 attempts".into()),
            started: Some("2024-05-01 12:00:00 UTC".into()),
            finished: Some("2024-05-01 12:01:05 UTC".into()),
            duration: Some("1m5s".into()),
            attempts: vec![AttemptLine {
                facts: AttemptFacts {
                    number: 1,
                    state: crate::crd::AttemptState::Finished,
                    summary: Some(Summary {
                        total: 3,
                        passed: 1,
                        failed: 2,
                        ..Summary::default()
                    }),
                    message: None,
                    aqua: Vec::new(),
                },
                ran: "all tests of basic".into(),
                duration: Some("2s".into()),
            }],
            summary: Summary {
                total: 3,
                passed: 1,
                failed: 1,
                flaky: 1,
                ..Summary::default()
            },
            failures: vec![FailureGroup {
                category: UNCLASSIFIED.into(),
                count: 1,
                tests: vec![test("cart > applies the discount", "expected 85 but was 90")],
                more: 0,
            }],
            failing: 1,
            flaky: vec![FlakyTest {
                name: "submits the order form".into(),
                failed_on: 1,
                passed_on: Some(2),
                message: "TimeoutError".into(),
            }],
            flaky_more: 0,
            novelty: Some(NoveltyReport {
                counts: NoveltyCounts {
                    new: 1,
                    known: 0,
                    changed: 0,
                    fixed: 1,
                },
                line: "1 new, 1 fixed".into(),
                news: vec![NewFailure {
                    name: "cart > applies the discount".into(),
                    kind: "new",
                    verdict: TestVerdict::Failed,
                    message: "expected 85 but was 90".into(),
                }],
                news_more: 0,
            }),
            link: "http://localhost:8080/runs/demo-sample".into(),
            outcomes: Vec::new(),
        }
    }
}

/// The outcome in a few words, as the subject and every title show it.
///
/// - `Failed`: the counts that are not zero among failed, broken and flaky (`3 failed, 1 flaky`);
/// - `Succeeded`: `all N passed` (N counts flaky tests: they passed in the end), then the flaky
///   and skipped counts when not zero (`all 6 passed, 1 flaky, 1 skipped`);
/// - `Error`: `error: ` and the run's message, shortened.
pub fn headline(verdict: Verdict, s: &Summary, message: Option<&str>) -> String {
    let count = |n: u32, what: &str| (n > 0).then(|| format!("{n} {what}"));
    match verdict {
        Verdict::Failed => {
            let parts: Vec<String> = [
                count(s.failed, "failed"),
                count(s.broken, "broken"),
                count(s.flaky, "flaky"),
                count(s.muted, "muted"),
            ]
            .into_iter()
            .flatten()
            .collect();
            if s.failed + s.broken == 0 {
                // The verdict came from an attempt without results, not from a failing test.
                "failed".to_string()
            } else {
                parts.join(", ")
            }
        }
        Verdict::Succeeded => {
            let passed = s.passed + s.flaky;
            let mut parts = vec![match s.muted {
                0 => format!("all {passed} passed"),
                _ => format!("{passed} passed"),
            }];
            parts.extend(count(s.flaky, "flaky"));
            parts.extend(count(s.muted, "muted"));
            parts.extend(count(s.skipped, "skipped"));
            parts.join(", ")
        }
        Verdict::Error => match message.map(one_line).filter(|m| !m.is_empty()) {
            Some(m) => format!("error: {}", shorten(&m, MAX_HEADLINE_MESSAGE_CHARS)),
            None => "error".to_string(),
        },
    }
}

/// When the verdict was reached: the `Complete` condition's time, else the last attempt's end.
fn finished_at(st: &TestRunStatus) -> Option<DateTime<Utc>> {
    st.finished_at
        .or_else(|| {
            st.conditions
                .iter()
                .find(|c| c.type_ == "Complete")
                .map(|c| c.last_transition_time)
        })
        .or_else(|| st.attempts.iter().filter_map(|a| a.finished_at).max())
}

fn attempt_line(a: &crate::crd::Attempt) -> AttemptLine {
    let ran = match a.selection.kind {
        SelectionKind::All => format!("all tests of {}", a.selection.packs.join(", ")),
        SelectionKind::Failed => {
            let n = a.selection.count();
            format!(
                "{n} failed test{} of attempt {}",
                if n == 1 { "" } else { "s" },
                a.selection.of_attempt.unwrap_or(a.number.saturating_sub(1))
            )
        }
    };
    AttemptLine {
        facts: AttemptFacts::of(a),
        ran,
        duration: a.started_at.zip(a.finished_at).map(|(s, f)| span(s, f)),
    }
}

/// Failed and broken tests by category (`categories`: test id → category, from the
/// classification), in the order of [`model::failure_groups`]; a failure a Mute covers is
/// left out (the report lists it under `muted`).
fn failure_groups(
    tests: &[MergedTest],
    st: &TestRunStatus,
    categories: &crate::classify::ByTest,
) -> (Vec<FailureGroup>, usize) {
    let muted: HashMap<&str, &crate::crd::MutedTest> =
        st.muted.iter().map(|m| (m.test.as_str(), m)).collect();
    let failures = tests
        .iter()
        .filter(|t| model::is_run_failure(t.verdict, muted.get(t.id.as_str()).copied()))
        .map(|t| (t, categories.get(&t.id).map(|c| c.category.as_str())));
    let groups = model::failure_groups(failures, &st.categories);
    let failing = groups.iter().map(|g| g.tests.len()).sum();
    let out = groups
        .into_iter()
        .map(|g| FailureGroup {
            category: g.category,
            count: g.tests.len(),
            more: g.tests.len().saturating_sub(MAX_TESTS_PER_GROUP),
            tests: g
                .tests
                .into_iter()
                .take(MAX_TESTS_PER_GROUP)
                .map(|t| FailedTest {
                    name: t.id.clone(),
                    verdict: t.verdict,
                    message: shorten(t.case.message.trim(), MAX_MESSAGE_CHARS),
                    attempt: t.attempt,
                    attachments: Vec::new(),
                })
                .collect(),
        })
        .collect();
    (out, failing)
}

fn flaky_tests(tests: &[MergedTest]) -> (Vec<FlakyTest>, usize) {
    let flaky: Vec<&MergedTest> = tests.iter().filter(|t| t.verdict == TestVerdict::Flaky).collect();
    let listed = flaky
        .iter()
        .take(MAX_TESTS_PER_GROUP)
        .map(|t| FlakyTest {
            name: t.id.clone(),
            failed_on: t.attempt,
            passed_on: t
                .history
                .iter()
                .find(|(a, s)| *a > t.attempt && *s == crate::results::CaseStatus::Passed)
                .map(|(a, _)| *a),
            message: shorten(t.case.message.trim(), MAX_MESSAGE_CHARS),
        })
        .collect();
    (listed, flaky.len().saturating_sub(MAX_TESTS_PER_GROUP))
}

fn span(from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    crate::duration::human((to - from).to_std().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{Attempt, AttemptState, CategoryStat, CategoryTest, Phase, RunTemplate, Selection};
    use crate::results::{AttemptResult, Case, CaseStatus, merge};

    fn case(name: &str, status: CaseStatus, message: &str) -> Case {
        Case {
            suites: vec![],
            classname: String::new(),
            name: name.into(),
            file: None,
            time_ms: None,
            status,
            message: message.into(),
            kind: String::new(),
            trace: String::new(),
            system_out: String::new(),
            system_err: String::new(),
        }
    }

    fn merged(results: &[(u32, &str, CaseStatus, &str)]) -> Vec<MergedTest> {
        merge(
            results.iter().map(|(a, id, s, m)| AttemptResult {
                attempt: *a,
                id: id.to_string(),
                case: case(id, *s, m),
            }),
            |_, _| true,
        )
    }

    /// Test id → category, as the classification would give for the tests `status.categories` lists.
    fn categories_of(run: &TestRun) -> crate::classify::ByTest {
        let st = run.status.clone().unwrap_or_default();
        crate::classify::recorded(Default::default(), &st.categories)
    }

    fn finished_run(verdict: Verdict, summary: Summary, categories: Vec<CategoryStat>) -> TestRun {
        let t0 = DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut run = TestRun::test(
            "demo-abc",
            RunTemplate::test("demo")
                .category("smoke")
                .priority(1)
                .issue_key("QA-7")
                .version("2.4"),
        )
        .nightly();
        let mut st = TestRunStatus::default();
        st.admit(t0);
        st.begin_attempt(1, Selection::all(vec!["basic".into()]), "pid 1".into(), t0);
        st.attempts[0].state = AttemptState::Finished;
        st.attempts[0].finished_at = Some(t0 + chrono::Duration::seconds(3));
        st.attempts.push(Attempt {
            started_at: Some(t0 + chrono::Duration::seconds(4)),
            finished_at: Some(t0 + chrono::Duration::seconds(6)),
            exit_code: Some(1),
            ..Attempt::test(
                2,
                Selection::failed(vec!["basic".into()], 1, vec!["a".into(), "b".into()]),
            )
        });
        st.summary = Some(summary);
        st.categories = categories;
        st.conclude(verdict, None, t0 + chrono::Duration::seconds(65));
        assert_eq!(st.phase, Phase::Reporting);
        run.status = Some(st);
        run
    }

    fn counts(passed: u32, failed: u32, broken: u32, flaky: u32, skipped: u32) -> Summary {
        Summary {
            total: passed + failed + broken + flaky + skipped,
            passed,
            failed,
            flaky,
            skipped,
            broken,
            muted: 0,
        }
    }

    #[test]
    fn the_novelty_line_counts_what_is_not_zero_and_lists_new_failures_before_changed_ones() {
        use crate::results::{Novelty, Tags};
        let tests = merged(&[
            (1, "a", CaseStatus::Failed, "boom a"),
            (1, "b", CaseStatus::Errored, "boom b"),
            (1, "c", CaseStatus::Failed, "boom c"),
            (1, "d", CaseStatus::Passed, ""),
        ]);
        let known = Novelty::Known {
            since_run: "r1".into(),
            since: Utc::now(),
            times: 2,
            stands: vec!["s".into()],
        };
        let changed = Novelty::Changed {
            previous: None,
            last_run: "r1".into(),
            last: Utc::now(),
        };
        let tags = Tags {
            failures: [
                ("a".to_string(), changed),
                ("b".to_string(), Novelty::New),
                ("c".to_string(), known),
            ]
            .into(),
            fixed: vec!["d".into()],
        };
        let n = NoveltyReport::of(&tags, &tests);
        assert_eq!(n.line, "1 new, 1 known, 1 changed, 1 fixed");
        let news: Vec<(&str, &str, &str)> = n
            .news
            .iter()
            .map(|t| (t.name.as_str(), t.kind, t.verdict.as_str()))
            .collect();
        assert_eq!(news, [("b", "new", "broken"), ("a", "changed", "failed")]);
        assert_eq!(n.news[0].message, "boom b");
        assert_eq!(NoveltyReport::of(&Tags::default(), &tests).line, "nothing new");
    }

    #[test]
    fn headline_counts_muted_failures_without_saying_all_passed() {
        let mut s = counts(5, 1, 0, 0, 0);
        s.muted = 2;
        assert_eq!(headline(Verdict::Failed, &s, None), "1 failed, 2 muted");
        s.failed = 0;
        assert_eq!(headline(Verdict::Succeeded, &s, None), "5 passed, 2 muted");
        s.muted = 0;
        assert_eq!(headline(Verdict::Succeeded, &s, None), "all 5 passed");
    }

    #[test]
    fn headline_counts_what_failed_and_what_was_flaky() {
        assert_eq!(
            headline(Verdict::Failed, &counts(2, 3, 0, 1, 0), None),
            "3 failed, 1 flaky"
        );
        assert_eq!(
            headline(Verdict::Failed, &counts(2, 1, 2, 0, 1), None),
            "1 failed, 2 broken"
        );
        assert_eq!(headline(Verdict::Failed, &counts(2, 0, 0, 0, 0), None), "failed");
    }

    #[test]
    fn headline_of_a_passing_run_counts_flaky_tests_as_passed_and_names_them() {
        assert_eq!(
            headline(Verdict::Succeeded, &counts(5, 0, 0, 0, 0), None),
            "all 5 passed"
        );
        assert_eq!(
            headline(Verdict::Succeeded, &counts(5, 0, 0, 1, 1), None),
            "all 6 passed, 1 flaky, 1 skipped"
        );
    }

    #[test]
    fn headline_of_an_error_run_gives_the_reason_on_one_short_line() {
        let why = format!(
            "attempt 1 could not start:\ncommand not found: nope {}",
            "x".repeat(200)
        );
        let h = headline(Verdict::Error, &Summary::default(), Some(&why));
        assert!(
            h.starts_with("error: attempt 1 could not start: command not found: nope"),
            "{h}"
        );
        assert!(!h.contains('\n'));
        assert!(
            h.chars().count() <= "error: ".len() + MAX_HEADLINE_MESSAGE_CHARS,
            "{h}"
        );
        assert_eq!(headline(Verdict::Error, &Summary::default(), None), "error");
    }

    #[test]
    fn failures_are_grouped_by_category_with_unclassified_last() {
        let tests = merged(&[
            (1, "a", CaseStatus::Failed, "expected 85"),
            (1, "b", CaseStatus::Errored, "ECONNREFUSED"),
            (1, "c", CaseStatus::Failed, "odd"),
            (1, "d", CaseStatus::Failed, "timeout"),
            (2, "d", CaseStatus::Passed, ""),
            (1, "e", CaseStatus::Passed, ""),
        ]);
        let categories = vec![CategoryStat {
            name: "Infrastructure".into(),
            count: 1,
            tests: vec![CategoryTest {
                name: "b".into(),
                message: "ECONNREFUSED".into(),
            }],
        }];
        let run = finished_run(Verdict::Failed, counts(1, 2, 1, 1, 0), categories);
        let r = RunReport::build(&run, &tests, &categories_of(&run), "http://tomato.example.com/");
        let groups: Vec<(&str, Vec<&str>)> = r
            .failures
            .iter()
            .map(|g| {
                (
                    g.category.as_str(),
                    g.tests.iter().map(|t| t.name.as_str()).collect(),
                )
            })
            .collect();
        assert_eq!(
            groups,
            vec![("Infrastructure", vec!["b"]), (UNCLASSIFIED, vec!["a", "c"])]
        );
        assert_eq!(r.failures[0].tests[0].verdict.as_str(), "broken");
        assert_eq!(r.failing, 3);
        assert_eq!(r.flaky.len(), 1);
        assert_eq!(
            (
                r.flaky[0].name.as_str(),
                r.flaky[0].failed_on,
                r.flaky[0].passed_on
            ),
            ("d", 1, Some(2))
        );
        assert_eq!(r.flaky[0].message, "timeout");
    }

    #[test]
    fn report_carries_the_run_its_attempts_timing_and_link() {
        let run = finished_run(Verdict::Failed, counts(1, 1, 0, 0, 0), vec![]);
        let r = RunReport::build(&run, &[], &HashMap::new(), "http://tomato.example.com/");
        assert_eq!(r.link, "http://tomato.example.com/runs/demo-abc");
        assert_eq!(
            (r.service.as_str(), r.stand.as_str(), r.selection.as_str()),
            ("demo", "localhost", "smoke")
        );
        assert_eq!(
            (r.version.as_deref(), r.issue_key.as_deref(), r.priority.get()),
            (Some("2.4"), Some("QA-7"), 1)
        );
        assert_eq!((r.run_type.as_str(), r.verdict.as_str()), ("Nightly", "Failed"));
        assert_eq!(r.started.as_deref(), Some("2024-05-01 12:00:00 UTC"));
        assert_eq!(r.duration.as_deref(), Some("1m5s"));
        assert_eq!(r.attempts[0].ran, "all tests of basic");
        assert_eq!(r.attempts[0].duration.as_deref(), Some("3s"));
        assert_eq!(r.attempts[1].ran, "2 failed tests of attempt 1");
    }

    #[test]
    fn long_lists_and_messages_are_bounded() {
        let many: Vec<(u32, String, CaseStatus, String)> = (0..MAX_TESTS_PER_GROUP + 7)
            .map(|i| (1, format!("t{i}"), CaseStatus::Failed, "m".repeat(2000)))
            .collect();
        let refs: Vec<(u32, &str, CaseStatus, &str)> = many
            .iter()
            .map(|(a, id, s, m)| (*a, id.as_str(), *s, m.as_str()))
            .collect();
        let run = finished_run(Verdict::Failed, counts(0, 57, 0, 0, 0), vec![]);
        let r = RunReport::build(&run, &merged(&refs), &HashMap::new(), "http://x");
        assert_eq!(r.failures[0].tests.len(), MAX_TESTS_PER_GROUP);
        assert_eq!(
            (r.failures[0].count, r.failures[0].more),
            (MAX_TESTS_PER_GROUP + 7, 7)
        );
        assert_eq!(r.failures[0].tests[0].message.chars().count(), MAX_MESSAGE_CHARS);
    }

    #[test]
    fn selection_names_the_category_else_the_packs_else_nothing() {
        let mut run = finished_run(Verdict::Succeeded, counts(1, 0, 0, 0, 0), vec![]);
        assert_eq!(
            RunReport::build(&run, &[], &HashMap::new(), "").selection,
            "smoke"
        );
        run.spec.template.packs = vec!["basic".into(), "api".into()];
        assert_eq!(
            RunReport::build(&run, &[], &HashMap::new(), "").selection,
            "basic+api"
        );
        run.spec.template.packs.clear();
        run.spec.template.category = None;
        assert_eq!(RunReport::build(&run, &[], &HashMap::new(), "").selection, "");
    }

    /// A test's attachment links come from the last launch with its attempt number (the
    /// relaunch after an interruption), absolute on the public URL.
    #[test]
    fn recorded_attachments_are_linked_from_the_last_launch_of_the_tests_attempt() {
        let mut report = RunReport::sample();
        let failed = report.failures[0].tests[0].clone();
        let number = failed.attempt;
        let launch = |n: u32| Attempt::test(n, Selection::all(vec!["basic".into()]));
        // Launches 1..=number, then `number` again (a relaunch): positions number and number+1.
        let mut attempts: Vec<Attempt> = (1..=number).map(launch).collect();
        attempts.push(launch(number));
        let record = |source: &str| -> crate::results::allure::AttemptExtras {
            serde_json::from_value(serde_json::json!({
                "tests": {failed.name.clone(): {"attachments": [{"name": "shot", "source": source}]}}
            }))
            .unwrap()
        };
        let records = HashMap::from([
            (number as usize, record("old-attachment.png")),
            (number as usize + 1, record("new-attachment.png")),
        ]);
        report.link_recorded_attachments("https://tomato.example.com/", "demo-sample", &attempts, &records);
        let links = &report.failures[0].tests[0].attachments;
        assert_eq!(links.len(), 1, "{links:?}");
        assert_eq!(links[0].name, "shot");
        assert_eq!(
            links[0].url,
            format!(
                "https://tomato.example.com/api/v1/runs/demo-sample/attempts/{}/attachments/new-attachment.png",
                number + 1
            )
        );
        // A test no record names gets no link.
        assert!(
            report
                .failures
                .iter()
                .flat_map(|g| &g.tests)
                .skip(1)
                .all(|t| t.attachments.is_empty())
        );
    }
}
