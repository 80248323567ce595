//! The reconcile core: what happens next to a run, decided from what is known of it.
//!
//! Both drivers (the SQLite event loop of standalone mode and the kube-runtime controller of
//! operator mode) call these functions and only carry out the answer. Nothing here does I/O,
//! so every rule is unit-tested directly: admission lives in [`crate::queue`], the verdict
//! merge in [`crate::results`]; this module decides between rerun and verdict after each
//! attempt and applies the resulting transitions to a run's status.

use chrono::{DateTime, Utc};

use crate::crd::{
    Attempt, AttemptState, Condition, ConditionStatus, Phase, Selection, Summary, TestRunStatus, Verdict,
};
use std::collections::{HashMap, HashSet};

use crate::crd::SelectionKind;
use crate::results::{self, AttemptResult, MergedTest};

/// What became of an attempt's JUnit report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReportRead {
    /// Read; this many test cases.
    Found(usize),
    /// The attempt wrote no report.
    Missing,
    /// A report exists but could not be parsed (the reason).
    Invalid(String),
}

/// How an attempt ended, as the launcher saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptEnd {
    pub number: u32,
    /// `Finished`, `TimedOut` or `LaunchFailed`.
    pub state: AttemptState,
    pub exit_code: Option<i32>,
    pub report: ReportRead,
    /// The launcher's explanation (launch error, timeout).
    pub message: Option<String>,
    /// The runner's own complaint from its log, if it made one (usage error, no tests
    /// matched: see [`crate::launch::runner_error`]).
    pub runner_error: Option<String>,
}

/// The decision after an attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// Launch attempt `number` with only these (still failing) tests.
    Rerun { number: u32, tests: Vec<String> },
    /// No more attempts: this is the run's outcome.
    Finish {
        verdict: Verdict,
        message: Option<String>,
    },
}

/// Decides what follows an attempt, given the merged verdicts so far and the run's attempt
/// budget (`1 + retries`).
/// Failing tests in `muted` (a Mute covers them: [`crate::mute`]) neither fail the verdict nor
/// are rerun.
pub fn after_attempt(
    end: &AttemptEnd,
    merged: &[MergedTest],
    muted: &HashSet<&str>,
    max_attempts: u32,
) -> Next {
    let counts = |t: &&MergedTest| t.verdict.is_failing() && !muted.contains(t.id.as_str());
    let failing: Vec<String> = merged.iter().filter(counts).map(|t| t.id.clone()).collect();
    // A pack or file a crashed shard owed is no test a rerun can select: it stays broken.
    let unselectable: Vec<&str> = merged
        .iter()
        .filter(counts)
        .filter(|t| t.case.kind == crate::shard::UNREPORTED_ITEM)
        .map(|t| t.id.as_str())
        .collect();
    let rerun: Vec<String> = failing
        .iter()
        .filter(|id| !unselectable.contains(&id.as_str()))
        .cloned()
        .collect();
    let more = end.number < max_attempts;
    let why_no_report = || match (&end.report, end.state, end.exit_code) {
        (ReportRead::Invalid(e), _, _) => format!("its results could not be read: {e}"),
        (_, AttemptState::TimedOut, _) => end.message.clone().unwrap_or_else(|| "it timed out".into()),
        (_, _, Some(code)) => format!("it wrote no JUnit report (exit code {code}); see its log"),
        _ => "it wrote no JUnit report; see its log".to_string(),
    };

    if end.state == AttemptState::SelectionFailed {
        // The same selection would fail the same way: the verdict stands on the last real results.
        return Next::Finish {
            verdict: if failing.is_empty() {
                Verdict::Succeeded
            } else {
                Verdict::Failed
            },
            message: end.message.clone(),
        };
    }
    if end.state == AttemptState::LaunchFailed {
        let why = end.message.clone().unwrap_or_else(|| "the launch failed".into());
        return Next::Finish {
            verdict: Verdict::Error,
            message: Some(format!("attempt {} could not start: {why}", end.number)),
        };
    }
    match &end.report {
        ReportRead::Found(_) => {}
        _ if end.number == 1 => {
            return Next::Finish {
                verdict: Verdict::Error,
                message: Some(format!("attempt 1 produced no results: {}", why_no_report())),
            };
        }
        // A rerun without a report leaves its tests failing: try again while attempts remain.
        _ if more && !rerun.is_empty() => {
            return Next::Rerun {
                number: end.number + 1,
                tests: rerun,
            };
        }
        _ => {
            return Next::Finish {
                verdict: if failing.is_empty() {
                    Verdict::Succeeded
                } else {
                    Verdict::Failed
                },
                message: Some(format!(
                    "attempt {} produced no results: {}",
                    end.number,
                    why_no_report()
                )),
            };
        }
    }
    if end.number == 1 && merged.is_empty() {
        return Next::Finish {
            verdict: Verdict::Error,
            message: Some("attempt 1 ran no tests: the report is empty (check the packs' selectors)".into()),
        };
    }
    if failing.is_empty() {
        let n = merged
            .iter()
            .filter(|t| t.verdict.is_failing() && muted.contains(t.id.as_str()))
            .count();
        return Next::Finish {
            verdict: Verdict::Succeeded,
            message: (n > 0).then(|| {
                format!(
                    "{n} failing test{} muted (known failures)",
                    if n == 1 { " is" } else { "s are" }
                )
            }),
        };
    }
    if more && !rerun.is_empty() {
        return Next::Rerun {
            number: end.number + 1,
            tests: rerun,
        };
    }
    let n = failing.len();
    let mut message = format!(
        "{n} test{} still failing after {} attempt{}",
        if n == 1 { "" } else { "s" },
        end.number,
        if end.number == 1 { "" } else { "s" }
    );
    if !unselectable.is_empty() {
        message.push_str(&format!(
            "; not rerun: {}, of a shard that crashed before it reported (a rerun selects tests, not packs or files)",
            unselectable.join(", ")
        ));
    }
    Next::Finish {
        verdict: Verdict::Failed,
        message: Some(message),
    }
}

/// Merges a run's stored results, honouring each rerun's selection (an interrupted attempt's
/// relaunch carries the same selection, so only finished attempts count).
pub fn merge_run(status: &TestRunStatus, results: Vec<AttemptResult>) -> Vec<MergedTest> {
    let reruns: HashMap<u32, HashSet<String>> = status
        .attempts
        .iter()
        .filter(|a| a.selection.kind == SelectionKind::Failed && a.state != AttemptState::Interrupted)
        .map(|a| (a.number, a.selection.tests.iter().cloned().collect()))
        .collect();
    results::merge(results, results::selection_filter(reruns))
}

/// What an active run with no attempt in flight needs next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Launch attempt `number` with this selection (a relaunch after an interruption keeps
    /// the interrupted attempt's number and selection).
    Launch { number: u32, selection: Selection },
    /// No more attempts: conclude with this outcome.
    Finish {
        verdict: Verdict,
        message: Option<String>,
    },
}

/// Decides the next step of an admitted run whose last attempt (if any) is not running:
/// attempt 1 over `packs` (resolved lazily: an unknown preset is an error outcome), the
/// relaunch of an interrupted attempt, or — when an attempt ended but its decision was not
/// acted on (a crash between the two writes, or phase `Retrying`) — [`after_attempt`] again.
/// `None` while an attempt is still running: its end decides.
pub fn next_step(
    status: &TestRunStatus,
    merged: &[MergedTest],
    max_attempts: u32,
    packs: impl FnOnce() -> Result<Vec<String>, String>,
) -> Option<Step> {
    let step = match status.attempts.last() {
        None => match packs() {
            Ok(packs) => Step::Launch {
                number: 1,
                selection: Selection::all(packs),
            },
            Err(message) => Step::Finish {
                verdict: Verdict::Error,
                message: Some(message),
            },
        },
        Some(a) if a.state == AttemptState::Running => return None,
        Some(a) if a.state == AttemptState::Interrupted => Step::Launch {
            number: a.number,
            selection: a.selection.clone(),
        },
        Some(a) => {
            let end = AttemptEnd {
                number: a.number,
                state: a.state,
                exit_code: a.exit_code,
                report: if a.summary.is_some() {
                    ReportRead::Found(0)
                } else {
                    ReportRead::Missing
                },
                message: a.message.clone(),
                runner_error: None,
            };
            let muted = status.muted_failing();
            match after_attempt(&end, merged, &muted, max_attempts) {
                Next::Rerun { number, tests } => Step::Launch {
                    number,
                    selection: Selection::failed(a.selection.packs.clone(), a.number, tests),
                },
                Next::Finish { verdict, message } => Step::Finish { verdict, message },
            }
        }
    };
    Some(step)
}

/// Records how the running attempt ended and what follows, in `status`: the attempt's own
/// counts (over what it selected: a runner may list the rest as skipped), the run's merged
/// summary, and the decision ([`after_attempt`]) as phase `Retrying` or `Reporting`.
/// `results` are every stored result of the run, this attempt's included; `mutes` the
/// service's mutes in force now (recorded in `status.muted`: a later [`next_step`] decides
/// from that record). Returns the decision (for the driver to log and announce) and the
/// merged verdicts (for classification).
pub fn record_end(
    status: &mut TestRunStatus,
    end: &AttemptEnd,
    results: Vec<AttemptResult>,
    max_attempts: u32,
    mutes: &crate::mute::Active,
    now: DateTime<Utc>,
) -> (Next, Vec<MergedTest>) {
    let mut end = end.clone();
    if let Some(why) = selection_failure(status, &end, &results) {
        end.state = AttemptState::SelectionFailed;
        end.message = Some(why);
    }
    let end = &end;
    let summary = matches!(end.report, ReportRead::Found(_)).then(|| {
        let selected: Option<HashSet<&str>> = status
            .running_attempt()
            .filter(|a| a.selection.kind == SelectionKind::Failed)
            .map(|a| a.selection.tests.iter().map(String::as_str).collect());
        results::attempt_summary(
            results
                .iter()
                .filter(|r| r.attempt == end.number)
                .filter(|r| selected.as_ref().is_none_or(|ids| ids.contains(r.id.as_str())))
                .map(|r| &r.case),
        )
    });
    status.end_attempt(end, summary, now);
    let merged = merge_run(status, results);
    let applied = crate::mute::apply(&merged, mutes);
    let muted = applied.muted_failures();
    let next = after_attempt(end, &merged, &muted, max_attempts);
    let mut summary = results::summarize(&merged);
    for t in merged.iter().filter(|t| muted.contains(t.id.as_str())) {
        match t.verdict {
            results::TestVerdict::Failed => summary.failed -= 1,
            _ => summary.broken -= 1,
        }
        summary.muted += 1;
    }
    status.summary = Some(summary);
    status.muted = applied.bounded();
    match &next {
        Next::Rerun { number, tests } => status.retry(*number, tests.len()),
        Next::Finish { verdict, message } => status.conclude(*verdict, message.clone(), now),
    }
    (next, merged)
}

/// After an attempt's failures are classified: when they mean the stand is down
/// ([`crate::outage::detect`] over the failing tests no mute covers, by category), the run
/// ends `Error` at once (a rerun would fail the same way) and records the outage, which holds
/// the stand. Returns the new decision then; `None` leaves `next` as it was. A run that
/// succeeded or errored already is left alone.
pub fn stand_down(
    status: &mut TestRunStatus,
    next: &Next,
    merged: &[MergedTest],
    categories: &crate::classify::ByTest,
    policy: &crate::outage::Policy<'_>,
    stand: &str,
    now: DateTime<Utc>,
) -> Option<Next> {
    let failing_run = match next {
        Next::Rerun { .. } => true,
        Next::Finish { verdict, .. } => *verdict == Verdict::Failed,
    };
    if !failing_run || policy.infrastructure.is_empty() {
        return None;
    }
    let muted = status.muted_failing();
    let outage = crate::outage::detect(
        merged
            .iter()
            .filter(|t| t.verdict.is_failing() && !muted.contains(t.id.as_str()))
            .map(|t| categories.get(&t.id).map(|c| c.category.as_str())),
        &policy.infrastructure,
        policy.settings,
    )?;
    let stand = crate::queue::stand_key(stand);
    let message = outage.message(&stand);
    status.conclude(Verdict::Error, Some(message.clone()), now);
    status.stand_down = Some(crate::crd::StandDown {
        stand,
        reason: message.clone(),
        since: now,
        resolved_at: None,
        resolved_by: None,
    });
    Some(Next::Finish {
        verdict: Verdict::Error,
        message: Some(message),
    })
}

/// The rules an attempt's end is decided by: the run's attempt budget, the service's mutes in
/// force and outage policy, and the stand the run tests.
pub struct EndRules<'a> {
    pub max_attempts: u32,
    pub mutes: &'a crate::mute::Active,
    pub outage: crate::outage::Policy<'a>,
    pub stand: &'a str,
}

/// What an attempt's end comes to: everything a driver writes for it.
#[derive(Clone, Debug)]
pub struct Decided {
    /// The status to write in one go: the attempt ended, the merged summary, the mutes, the
    /// decision (or the stand-down that overrode it), the categories without muted failures.
    pub status: TestRunStatus,
    /// What follows, for the driver to log and announce.
    pub next: Next,
    /// Each classified test's category and signature, to store before `status`: once the
    /// status says the attempt ended, every surface reads them ([`crate::classify`]).
    pub by_test: crate::classify::ByTest,
}

/// Decides an attempt's end, the one sequence both drivers carry out: [`record_end`] (attempt
/// counts, mutes, rerun or verdict), then `classify` over the merged tests (the only step that
/// reads anything: each attempt's log, which the driver supplies), then [`stand_down`] (an
/// outage overrides the decision), then the categories without the muted failures.
pub fn decide_end(
    status: &TestRunStatus,
    end: &AttemptEnd,
    results: Vec<AttemptResult>,
    rules: &EndRules<'_>,
    classify: impl FnOnce(&TestRunStatus, &[MergedTest]) -> crate::classify::Classification,
    now: DateTime<Utc>,
) -> Decided {
    let mut decided = status.clone();
    let (next, merged) = record_end(&mut decided, end, results, rules.max_attempts, rules.mutes, now);
    let classification = classify(&decided, &merged);
    let next = stand_down(
        &mut decided,
        &next,
        &merged,
        &classification.by_test,
        &rules.outage,
        rules.stand,
        now,
    )
    .unwrap_or(next);
    decided.categories = crate::classify::stats_without(&classification, &merged, &decided.muted_failing());
    Decided {
        status: decided,
        next,
        by_test: classification.by_test,
    }
}

/// Checks a rerun against what it selected: every selected test must have really run
/// (passed, failed or errored) in the rerun's report. A runner that refused the selection
/// (pytest's exit 4 or 5, Jest's "No tests found", Maven's "No tests matching pattern"),
/// or reported the selected tests as skipped or not at all, did not rerun them: the answer is
/// the message naming how many ran and quoting the runner, else `None`. Attempt 1, and an
/// attempt that timed out or could not start, are judged elsewhere; a rerun that wrote no
/// report is a selection failure only when the runner said why.
pub fn selection_failure(
    status: &TestRunStatus,
    end: &AttemptEnd,
    results: &[AttemptResult],
) -> Option<String> {
    let attempt = status
        .running_attempt()
        .filter(|a| a.number == end.number && a.selection.kind == SelectionKind::Failed)?;
    if end.state != AttemptState::Finished {
        return None;
    }
    match end.report {
        ReportRead::Found(_) => {}
        ReportRead::Missing if end.runner_error.is_some() => {}
        _ => return None,
    }
    let selected: HashSet<&str> = attempt.selection.tests.iter().map(String::as_str).collect();
    let ran: HashSet<&str> = results
        .iter()
        .filter(|r| r.attempt == end.number && r.case.status != results::CaseStatus::Skipped)
        .map(|r| r.id.as_str())
        .filter(|id| selected.contains(id))
        .collect();
    if ran.len() == selected.len() {
        return None;
    }
    let n = selected.len();
    let mut why = format!(
        "attempt {} was a selection failure: {} of the {n} selected test{} ran",
        end.number,
        ran.len(),
        if n == 1 { "" } else { "s" },
    );
    match (end.exit_code, &end.runner_error) {
        (Some(code), Some(line)) => why.push_str(&format!(" (the runner exited with {code}: {line:?})")),
        (None, Some(line)) => why.push_str(&format!(" (the runner said: {line:?})")),
        (Some(code), None) => why.push_str(&format!(" (the runner exited with {code})")),
        (None, None) => {}
    }
    why.push_str(
        "; the tests it did not run keep their earlier results and were not rerun \
         (check how packs_config passes failed tests: rerun.testId, rerun.args or launch.runner)",
    );
    Some(why)
}

/// Status transitions. Each takes the time explicitly so that tests and both drivers agree.
impl TestRunStatus {
    /// The failing tests a Mute covered, as the run recorded them (`status.muted`, not those
    /// that passed): they neither fail the verdict nor are rerun nor count as failures.
    pub fn muted_failing(&self) -> HashSet<&str> {
        self.muted
            .iter()
            .filter(|m| !m.passed)
            .map(|m| m.test.as_str())
            .collect()
    }

    /// Whether [`TestRunStatus::wait_at`] would change anything (what to write, without a copy).
    pub fn wait_at_changes(&self, position: Option<u32>, reason: &crate::queue::WaitReason) -> bool {
        self.phase == Phase::Queued
            && (self.queue_position != position
                || self.message.as_deref() != Some(reason.to_string().as_str()))
    }

    /// A queued run stays queued, waiting for `reason` (in `message`) at `position`. Operator
    /// mode stores the place; standalone mode stores none (`None`) and computes a queued run's
    /// place when it is read, since the place of every run behind changes at each admission.
    /// Returns whether that changed anything (nothing to write otherwise).
    pub fn wait_at(&mut self, position: Option<u32>, reason: &crate::queue::WaitReason) -> bool {
        let changed = self.wait_at_changes(position, reason);
        if changed {
            self.queue_position = position;
            self.message = Some(reason.to_string());
        }
        changed
    }

    /// A queued run was admitted.
    pub fn admit(&mut self, now: DateTime<Utc>) {
        self.phase = Phase::Running;
        self.queue_position = None;
        self.started_at.get_or_insert(now);
        self.message = None;
        Condition::set(
            &mut self.conditions,
            "Admitted",
            ConditionStatus::True,
            "Admitted",
            "",
            now,
        );
    }

    /// An attempt was launched.
    pub fn begin_attempt(&mut self, number: u32, selection: Selection, launch: String, now: DateTime<Utc>) {
        self.phase = Phase::Running;
        // A relaunch after an interruption adopts the Aqua launches its predecessor made (or
        // meant to make): they go on in Aqua, so they are polled (or looked up), never made
        // twice.
        let aqua = match self.attempts.last_mut() {
            Some(a) if a.number == number && a.state == AttemptState::Interrupted => {
                std::mem::take(&mut a.aqua)
            }
            _ => Vec::new(),
        };
        self.attempts.push(Attempt {
            number,
            selection,
            state: AttemptState::Running,
            launch: Some(launch),
            started_at: Some(now),
            finished_at: None,
            exit_code: None,
            summary: None,
            message: None,
            shards: Vec::new(),
            aqua,
            mixed: false,
        });
    }

    /// The running attempt (the last one, if it is still running).
    pub fn running_attempt(&self) -> Option<&Attempt> {
        self.attempts.last().filter(|a| a.state == AttemptState::Running)
    }

    /// Records how the last attempt ended.
    pub fn end_attempt(&mut self, end: &AttemptEnd, summary: Option<Summary>, now: DateTime<Utc>) {
        if let Some(a) = self.attempts.iter_mut().rev().find(|a| a.number == end.number) {
            a.state = end.state;
            a.finished_at = Some(now);
            a.exit_code = end.exit_code;
            a.summary = summary;
            a.message = end.message.clone();
        }
    }

    /// Marks the running attempt, if any, as ended in `state` (interrupted, cancelled).
    pub fn stop_attempt(
        &mut self,
        state: AttemptState,
        message: &str,
        now: DateTime<Utc>,
    ) -> Option<Attempt> {
        let a = self
            .attempts
            .last_mut()
            .filter(|a| a.state == AttemptState::Running)?;
        a.state = state;
        a.finished_at = Some(now);
        a.message = Some(message.to_string());
        // Its shards stopped with it (their processes or pods went with the attempt's).
        for s in a
            .shards
            .iter_mut()
            .filter(|s| s.state == crate::crd::ShardState::Running)
        {
            s.state = crate::crd::ShardState::Cancelled;
            s.finished_at = Some(now);
            s.message = Some(message.to_string());
        }
        Some(a.clone())
    }

    /// Failed tests remain and another attempt follows.
    pub fn retry(&mut self, number: u32, failing: usize) {
        self.phase = Phase::Retrying;
        self.message = Some(format!("re-running {failing} failed test(s) as attempt {number}"));
    }

    /// The verdict is final; reporting starts.
    pub fn conclude(&mut self, verdict: Verdict, message: Option<String>, now: DateTime<Utc>) {
        self.phase = Phase::Reporting;
        self.verdict = Some(verdict);
        self.message = message;
        Condition::set(
            &mut self.conditions,
            "Complete",
            ConditionStatus::True,
            verdict.phase().as_str(),
            self.message.clone().unwrap_or_default(),
            now,
        );
    }

    /// Reporting is done; the run ends in its verdict's phase.
    pub fn finish(&mut self, now: DateTime<Utc>) {
        self.phase = self.verdict.map_or(Phase::Error, Verdict::phase);
        self.finished_at = Some(now);
    }

    /// The run was cancelled; it ends at once.
    pub fn cancel(&mut self, now: DateTime<Utc>) {
        self.stop_attempt(AttemptState::Cancelled, "the run was cancelled", now);
        self.phase = Phase::Cancelled;
        self.queue_position = None;
        self.finished_at = Some(now);
        self.message = Some("cancelled".into());
    }
}

/// How long the last launch numbered `number` ran, once it has started and ended.
pub fn attempt_took(status: &TestRunStatus, number: u32) -> Option<std::time::Duration> {
    let a = status.attempts.iter().rev().find(|a| a.number == number)?;
    (a.finished_at? - a.started_at?).to_std().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{AttemptResult, Case, CaseStatus, TestVerdict, merge};

    fn merged(statuses: &[(u32, &str, CaseStatus)]) -> Vec<MergedTest> {
        let results = statuses.iter().map(|(a, id, s)| AttemptResult {
            attempt: *a,
            id: id.to_string(),
            case: Case {
                suites: vec![],
                classname: String::new(),
                name: id.to_string(),
                file: None,
                time_ms: None,
                status: *s,
                message: String::new(),
                kind: String::new(),
                trace: String::new(),
                system_out: String::new(),
                system_err: String::new(),
            },
        });
        merge(results, |_, _| true)
    }

    fn end(number: u32, report: ReportRead) -> AttemptEnd {
        AttemptEnd {
            number,
            state: AttemptState::Finished,
            exit_code: Some(1),
            report,
            message: None,
            runner_error: None,
        }
    }

    use CaseStatus::*;

    #[test]
    fn failed_tests_are_rerun_while_attempts_remain() {
        let m = merged(&[(1, "a", Passed), (1, "b", Failed), (1, "c", Errored)]);
        assert_eq!(
            after_attempt(&end(1, ReportRead::Found(3)), &m, &HashSet::new(), 4),
            Next::Rerun {
                number: 2,
                tests: vec!["b".into(), "c".into()]
            }
        );
    }

    #[test]
    fn a_pack_a_crashed_shard_owed_stays_broken_and_is_not_rerun() {
        let crashed = crate::shard::unreported(
            1,
            crate::shard::Unit::Packs,
            &["slow".into()],
            &[],
            "shard 2 crashed (exit code 137)",
        );
        let mut results = vec![result(1, "a", Passed), result(1, "b", Failed)];
        results.extend(crashed.clone());
        let m = merge(results, |_, _| true);
        assert_eq!(
            after_attempt(&end(1, ReportRead::Found(3)), &m, &HashSet::new(), 4),
            Next::Rerun {
                number: 2,
                tests: vec!["b".into()]
            },
            "the failed test is rerun, the pack is not"
        );
        let only = merge(crashed, |_, _| true);
        match after_attempt(&end(1, ReportRead::Found(1)), &only, &HashSet::new(), 4) {
            Next::Finish {
                verdict: Verdict::Failed,
                message: Some(m),
            } => assert!(m.contains("not rerun: slow, of a shard that crashed"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_last_attempt_ends_the_run_failed() {
        let m = merged(&[
            (1, "b", Failed),
            (2, "b", Failed),
            (3, "b", Failed),
            (4, "b", Failed),
        ]);
        match after_attempt(&end(4, ReportRead::Found(1)), &m, &HashSet::new(), 4) {
            Next::Finish {
                verdict: Verdict::Failed,
                message: Some(msg),
            } => {
                assert!(msg.contains("1 test still failing after 4 attempts"), "{msg}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn zero_retries_means_one_attempt() {
        let m = merged(&[(1, "b", Failed)]);
        assert!(matches!(
            after_attempt(&end(1, ReportRead::Found(1)), &m, &HashSet::new(), 1),
            Next::Finish {
                verdict: Verdict::Failed,
                ..
            }
        ));
    }

    #[test]
    fn flaky_only_run_succeeds() {
        let m = merged(&[(1, "a", Failed), (2, "a", Passed)]);
        assert_eq!(
            after_attempt(&end(2, ReportRead::Found(1)), &m, &HashSet::new(), 4),
            Next::Finish {
                verdict: Verdict::Succeeded,
                message: None
            }
        );
    }

    #[test]
    fn launch_failure_is_an_error_with_the_reason() {
        let e = AttemptEnd {
            number: 1,
            state: AttemptState::LaunchFailed,
            exit_code: None,
            report: ReportRead::Missing,
            message: Some("command not found: nope".into()),
            runner_error: None,
        };
        match after_attempt(&e, &[], &HashSet::new(), 4) {
            Next::Finish {
                verdict: Verdict::Error,
                message: Some(m),
            } => assert!(m.contains("command not found: nope")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_first_attempt_without_report_is_an_error_naming_the_exit_code() {
        match after_attempt(&end(1, ReportRead::Missing), &[], &HashSet::new(), 4) {
            Next::Finish {
                verdict: Verdict::Error,
                message: Some(m),
            } => assert!(m.contains("exit code 1"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_rerun_without_report_is_retried_then_fails() {
        let m = merged(&[(1, "b", Failed)]);
        assert_eq!(
            after_attempt(&end(2, ReportRead::Missing), &m, &HashSet::new(), 4),
            Next::Rerun {
                number: 3,
                tests: vec!["b".into()]
            }
        );
        assert!(matches!(
            after_attempt(&end(4, ReportRead::Missing), &m, &HashSet::new(), 4),
            Next::Finish {
                verdict: Verdict::Failed,
                message: Some(_)
            }
        ));
    }

    #[test]
    fn an_empty_first_report_is_an_error() {
        assert!(matches!(
            after_attempt(&end(1, ReportRead::Found(0)), &[], &HashSet::new(), 4),
            Next::Finish {
                verdict: Verdict::Error,
                ..
            }
        ));
    }

    #[test]
    fn status_walks_the_phases() {
        let now = Utc::now();
        let mut st = TestRunStatus::default();
        assert_eq!(st.phase, Phase::Queued);
        st.admit(now);
        st.begin_attempt(1, Selection::all(vec!["basic".into()]), "pid 1".into(), now);
        assert_eq!(st.running_attempt().map(|a| a.number), Some(1));
        st.end_attempt(&end(1, ReportRead::Found(2)), Some(Summary::default()), now);
        assert!(st.running_attempt().is_none());
        st.retry(2, 1);
        assert_eq!(st.phase, Phase::Retrying);
        st.conclude(Verdict::Failed, Some("1 test still failing".into()), now);
        assert_eq!(st.phase, Phase::Reporting);
        st.finish(now);
        assert_eq!(st.phase, Phase::Failed);
        assert!(st.finished_at.is_some());
    }

    fn result(attempt: u32, id: &str, status: CaseStatus) -> AttemptResult {
        AttemptResult {
            attempt,
            id: id.to_string(),
            case: Case {
                suites: vec![],
                classname: String::new(),
                name: id.to_string(),
                file: None,
                time_ms: None,
                status,
                message: String::new(),
                kind: String::new(),
                trace: String::new(),
                system_out: String::new(),
                system_err: String::new(),
            },
        }
    }

    /// An admitted run whose attempt 1 (over pack `p`) is running.
    fn attempt_one_running(now: DateTime<Utc>) -> TestRunStatus {
        let mut st = TestRunStatus::default();
        st.admit(now);
        st.begin_attempt(1, Selection::all(vec!["p".into()]), "pid 1".into(), now);
        st
    }

    /// A run at its rerun: attempt 1 found `a` and `b` failing, attempt 2 selects them.
    fn rerunning(results: &[(u32, &str, CaseStatus)]) -> (TestRunStatus, Vec<AttemptResult>) {
        let now = Utc::now();
        let mut st = attempt_one_running(now);
        st.end_attempt(&end(1, ReportRead::Found(3)), Some(Summary::default()), now);
        let sel = Selection::failed(vec!["p".into()], 1, vec!["a".into(), "b".into()]);
        st.begin_attempt(2, sel, "pid 2".into(), now);
        let mut all = vec![
            result(1, "a", Failed),
            result(1, "b", Failed),
            result(1, "c", Passed),
        ];
        all.extend(results.iter().map(|(n, id, s)| result(*n, id, *s)));
        (st, all)
    }

    #[test]
    fn a_rerun_that_ran_none_of_its_selection_is_a_selection_failure_quoting_the_runner() {
        let (mut st, results) = rerunning(&[]);
        let mut e = end(2, ReportRead::Missing);
        e.exit_code = Some(4);
        e.runner_error = Some("ERROR: not found: /s/t.py::a".into());
        let (next, merged) = record_end(&mut st, &e, results, 4, &crate::mute::Active::none(), Utc::now());
        let Next::Finish {
            verdict: Verdict::Failed,
            message: Some(m),
        } = &next
        else {
            panic!("{next:?}")
        };
        assert!(m.contains("0 of the 2 selected tests ran"), "{m}");
        assert!(
            m.contains("exited with 4: \"ERROR: not found: /s/t.py::a\""),
            "{m}"
        );
        assert_eq!(st.attempts[1].state, AttemptState::SelectionFailed);
        assert_eq!(
            st.message.as_deref(),
            Some(m.as_str()),
            "the run's message says so"
        );
        let a = merged.iter().find(|t| t.id == "a").unwrap();
        assert_eq!(
            (a.verdict, a.attempt),
            (TestVerdict::Failed, 1),
            "keeps its last real result"
        );
        assert_eq!(
            next_step(&st, &merged, 4, || unreachable!()),
            Some(Step::Finish {
                verdict: Verdict::Failed,
                message: st.attempts[1].message.clone()
            }),
            "after a restart the same decision: no rerun of a broken selection"
        );
    }

    #[test]
    fn a_rerun_reporting_selected_tests_as_skipped_or_absent_is_a_selection_failure() {
        let (mut st, results) = rerunning(&[(2, "a", Passed), (2, "b", Skipped), (2, "c", Skipped)]);
        let (next, merged) = record_end(
            &mut st,
            &end(2, ReportRead::Found(3)),
            results,
            4,
            &crate::mute::Active::none(),
            Utc::now(),
        );
        assert!(
            matches!(&next, Next::Finish { verdict: Verdict::Failed, message: Some(m) } if m.contains("1 of the 2 selected tests ran")),
            "{next:?}"
        );
        let verdicts: Vec<(&str, TestVerdict)> = merged.iter().map(|t| (t.id.as_str(), t.verdict)).collect();
        assert_eq!(
            verdicts,
            [
                ("a", TestVerdict::Flaky),
                ("b", TestVerdict::Failed),
                ("c", TestVerdict::Passed)
            ],
            "what ran counts; what did not keeps its failure"
        );
    }

    #[test]
    fn a_rerun_that_ran_its_whole_selection_is_no_selection_failure() {
        let (mut st, results) = rerunning(&[(2, "a", Passed), (2, "b", Failed)]);
        let (next, _) = record_end(
            &mut st,
            &end(2, ReportRead::Found(2)),
            results,
            4,
            &crate::mute::Active::none(),
            Utc::now(),
        );
        assert_eq!(
            next,
            Next::Rerun {
                number: 3,
                tests: vec!["b".into()]
            }
        );
        assert_eq!(st.attempts[1].state, AttemptState::Finished);
    }

    #[test]
    fn next_step_starts_with_every_selected_pack_then_waits_for_the_running_attempt() {
        let mut st = TestRunStatus::default();
        let first = next_step(&st, &[], 4, || Ok(vec!["basic".into()]));
        assert_eq!(
            first,
            Some(Step::Launch {
                number: 1,
                selection: Selection::all(vec!["basic".into()])
            })
        );
        st.begin_attempt(1, Selection::all(vec!["basic".into()]), "job".into(), Utc::now());
        assert_eq!(next_step(&st, &[], 4, || unreachable!()), None);
    }

    #[test]
    fn next_step_with_an_unknown_preset_is_an_error_outcome() {
        let st = TestRunStatus::default();
        assert_eq!(
            next_step(&st, &[], 4, || Err("unknown category".into())),
            Some(Step::Finish {
                verdict: Verdict::Error,
                message: Some("unknown category".into())
            })
        );
    }

    #[test]
    fn next_step_relaunches_an_interrupted_attempt_as_it_was() {
        let mut st = TestRunStatus::default();
        let sel = Selection::failed(vec!["basic".into()], 1, vec!["b".into()]);
        st.begin_attempt(2, sel.clone(), "job".into(), Utc::now());
        st.stop_attempt(AttemptState::Interrupted, "gone", Utc::now());
        assert_eq!(
            next_step(&st, &[], 4, || unreachable!()),
            Some(Step::Launch {
                number: 2,
                selection: sel
            })
        );
    }

    #[test]
    fn a_relaunch_after_an_interruption_adopts_the_aqua_launches_of_its_predecessor() {
        let now = Utc::now();
        let mut st = TestRunStatus::default();
        let sel = Selection::all(vec!["web".into(), "farm".into()]);
        st.begin_attempt(1, sel.clone(), "pid 7".into(), now);
        let launch = crate::crd::AquaLaunch {
            pack: "farm".into(),
            id: "L1".into(),
            url: None,
            restart_of: None,
            status: None,
            failing: None,
            failures: None,
            error: None,
            marker: Some("r/1/farm".into()),
        };
        st.attempts[0].aqua.push(launch.clone());
        st.stop_attempt(AttemptState::Interrupted, "restarted", now);
        st.begin_attempt(1, sel.clone(), "pid 8".into(), now);
        assert_eq!(st.attempts[1].aqua, vec![launch.clone()], "moved, not made again");
        assert!(st.attempts[0].aqua.is_empty(), "listed once");
        // An attempt after a finished one starts with no launch of its own.
        st.attempts[1].state = AttemptState::Finished;
        st.begin_attempt(2, sel, "pid 9".into(), now);
        assert!(st.attempts[2].aqua.is_empty());
    }

    #[test]
    fn record_end_counts_only_what_a_rerun_selected_and_decides_the_rerun() {
        let now = Utc::now();
        let mut st = attempt_one_running(now);
        let first = vec![
            result(1, "a", Passed),
            result(1, "flaky", Failed),
            result(1, "bad", Failed),
        ];
        let (next, _) = record_end(
            &mut st,
            &end(1, ReportRead::Found(3)),
            first.clone(),
            4,
            &crate::mute::Active::none(),
            now,
        );
        assert_eq!(
            next,
            Next::Rerun {
                number: 2,
                tests: vec!["flaky".into(), "bad".into()]
            }
        );
        assert_eq!(st.phase, Phase::Retrying);
        assert_eq!(st.attempts[0].summary.map(|s| (s.passed, s.failed)), Some((1, 2)));

        let rerun = Selection::failed(vec!["p".into()], 1, vec!["flaky".into(), "bad".into()]);
        st.begin_attempt(2, rerun, "job-2".into(), now);
        let mut all = first;
        // The runner lists the unselected test as skipped; it must not count.
        all.extend([
            result(2, "a", Skipped),
            result(2, "flaky", Passed),
            result(2, "bad", Failed),
        ]);
        let (next, merged) = record_end(
            &mut st,
            &end(2, ReportRead::Found(3)),
            all,
            2,
            &crate::mute::Active::none(),
            now,
        );
        assert_eq!(merged.len(), 3);
        assert!(matches!(
            next,
            Next::Finish {
                verdict: Verdict::Failed,
                ..
            }
        ));
        assert_eq!(st.phase, Phase::Reporting);
        let attempt2 = st.attempts[1].summary.unwrap();
        assert_eq!((attempt2.total, attempt2.skipped), (2, 0));
        let run = st.summary.unwrap();
        assert_eq!((run.passed, run.flaky, run.failed), (1, 1, 1));
    }

    fn muting(tests: &[&str], now: DateTime<Utc>) -> crate::mute::Active {
        let mutes: Vec<crate::crd::Mute> = tests
            .iter()
            .map(|t| {
                let mut m = crate::crd::Mute::new(
                    &format!("mute-{t}"),
                    crate::crd::MuteSpec {
                        service: "demo".into(),
                        test: t.to_string(),
                        signature: None,
                        reason: "known".into(),
                        ticket: None,
                        expires: now + chrono::Duration::days(1),
                        lift_when_ticket_closed: false,
                        author: None,
                    },
                );
                m.metadata.name = Some(format!("mute-{t}"));
                m
            })
            .collect();
        crate::mute::Active::of(&mutes, "demo", now)
    }

    #[test]
    fn a_muted_failure_is_not_rerun_does_not_fail_the_verdict_and_counts_as_muted() {
        let now = Utc::now();
        let mut st = attempt_one_running(now);
        let first = vec![
            result(1, "ok", Passed),
            result(1, "known", Failed),
            result(1, "flaky", Failed),
            result(1, "fixed", Passed),
        ];
        let mutes = muting(&["known", "fixed"], now);
        let (next, merged) = record_end(
            &mut st,
            &end(1, ReportRead::Found(4)),
            first.clone(),
            4,
            &mutes,
            now,
        );
        assert_eq!(
            next,
            Next::Rerun {
                number: 2,
                tests: vec!["flaky".into()]
            },
            "the muted failure is not rerun"
        );
        let muted: Vec<(&str, bool)> = st.muted.iter().map(|m| (m.test.as_str(), m.passed)).collect();
        assert_eq!(muted, vec![("known", false), ("fixed", true)]);
        assert_eq!(
            next_step(&st, &merged, 4, || unreachable!()),
            Some(Step::Launch {
                number: 2,
                selection: Selection::failed(vec!["p".into()], 1, vec!["flaky".into()]),
            }),
            "after a restart the same decision, from the recorded mutes"
        );

        st.begin_attempt(
            2,
            Selection::failed(vec!["p".into()], 1, vec!["flaky".into()]),
            "pid 2".into(),
            now,
        );
        let mut all = first;
        all.push(result(2, "flaky", Passed));
        let (next, _) = record_end(
            &mut st,
            &end(2, ReportRead::Found(1)),
            all.clone(),
            4,
            &mutes,
            now,
        );
        assert_eq!(
            next,
            Next::Finish {
                verdict: Verdict::Succeeded,
                message: Some("1 failing test is muted (known failures)".into())
            }
        );
        let s = st.summary.unwrap();
        assert_eq!(
            (s.total, s.passed, s.flaky, s.failed, s.broken, s.muted),
            (4, 2, 1, 0, 0, 1)
        );

        // Without the mute the same results fail the run.
        let mut again = TestRunStatus::default();
        again.admit(now);
        again.begin_attempt(1, Selection::all(vec!["p".into()]), "pid 1".into(), now);
        let (next, _) = record_end(
            &mut again,
            &end(1, ReportRead::Found(4)),
            all.into_iter().filter(|r| r.attempt == 1).collect(),
            1,
            &crate::mute::Active::none(),
            now,
        );
        assert!(
            matches!(
                next,
                Next::Finish {
                    verdict: Verdict::Failed,
                    ..
                }
            ),
            "{next:?}"
        );
        assert!(again.muted.is_empty());
        assert_eq!(again.summary.unwrap().muted, 0);
    }

    #[test]
    fn infrastructure_failures_end_the_run_in_error_without_reruns_and_hold_the_stand() {
        let now = Utc::now();
        let mut st = attempt_one_running(now);
        let results = vec![
            result(1, "a", Failed),
            result(1, "b", Failed),
            result(1, "c", Errored),
            result(1, "d", Failed),
            result(1, "ok", Passed),
        ];
        let (next, merged) = record_end(
            &mut st,
            &end(1, ReportRead::Found(5)),
            results,
            4,
            &crate::mute::Active::none(),
            now,
        );
        assert!(matches!(next, Next::Rerun { .. }));
        let category = |c: &str| crate::classify::Classified {
            category: c.into(),
            signature: None,
        };
        let mut by_test: crate::classify::ByTest = ["a", "b", "c"]
            .into_iter()
            .map(|t| (t.to_string(), category("Infrastructure problems")))
            .collect();
        by_test.insert("d".into(), category("Product defects"));
        let settings = crate::outage::Settings { share: 0.75, min: 3 };
        let policy = crate::outage::Policy {
            infrastructure: HashSet::from(["Infrastructure problems"]),
            settings,
        };
        let none = crate::outage::Policy {
            infrastructure: HashSet::new(),
            settings,
        };
        let mut untouched = st.clone();
        assert_eq!(
            stand_down(&mut untouched, &next, &merged, &by_test, &none, "qa1", now),
            None,
            "no infrastructure categories, no outage"
        );
        assert_eq!(untouched, st);
        let decided = stand_down(&mut st, &next, &merged, &by_test, &policy, "https://QA1/app", now);
        let message = "stand qa1 looks down: Infrastructure problems, 3 of 4 failures";
        assert_eq!(
            decided,
            Some(Next::Finish {
                verdict: Verdict::Error,
                message: Some(message.into())
            })
        );
        assert_eq!((st.phase, st.verdict), (Phase::Reporting, Some(Verdict::Error)));
        let down = st.stand_down.clone().unwrap();
        assert_eq!((down.stand.as_str(), down.reason.as_str()), ("qa1", message));
    }

    /// A classification that puts every failing test in the category its id starts with
    /// (`infra-…`, `bug-…`), categories in that rule order.
    fn by_prefix(merged: &[MergedTest]) -> crate::classify::Classification {
        let mut out = crate::classify::Classification::default();
        for (prefix, name) in [("infra", "Infrastructure problems"), ("bug", "Product defects")] {
            let members: Vec<&MergedTest> = merged
                .iter()
                .filter(|t| t.verdict.is_failing() && t.id.starts_with(prefix))
                .collect();
            for t in &members {
                let c = crate::classify::Classified {
                    category: name.into(),
                    signature: None,
                };
                out.by_test.insert(t.id.clone(), c);
            }
            if !members.is_empty() {
                out.stats.push(crate::crd::CategoryStat {
                    name: name.into(),
                    count: members.len() as u32,
                    tests: Vec::new(),
                });
            }
        }
        out
    }

    /// The rules of a run on stand `qa1` whose `infrastructure` categories mean an outage
    /// (3 failures, three quarters of them, at least).
    fn end_rules<'a>(
        max_attempts: u32,
        mutes: &'a crate::mute::Active,
        infrastructure: &[&'a str],
    ) -> EndRules<'a> {
        EndRules {
            max_attempts,
            mutes,
            outage: crate::outage::Policy {
                infrastructure: infrastructure.iter().copied().collect(),
                settings: crate::outage::Settings { share: 0.75, min: 3 },
            },
            stand: "qa1",
        }
    }

    /// Each category of `status.categories` with its count.
    fn category_counts(status: &TestRunStatus) -> Vec<(&str, u32)> {
        status
            .categories
            .iter()
            .map(|c| (c.name.as_str(), c.count))
            .collect()
    }

    #[test]
    fn deciding_an_end_classifies_the_ended_attempt_and_leaves_muted_failures_out_of_the_categories() {
        let now = Utc::now();
        let st = attempt_one_running(now);
        let results = vec![
            result(1, "bug-a", Failed),
            result(1, "bug-b", Failed),
            result(1, "ok", Passed),
        ];
        let mutes = muting(&["bug-b"], now);
        let rules = end_rules(2, &mutes, &[]);
        let mut seen = None;
        let decided = decide_end(
            &st,
            &end(1, ReportRead::Found(3)),
            results,
            &rules,
            |status, merged| {
                seen = Some((status.attempts[0].state, merged.len()));
                by_prefix(merged)
            },
            now,
        );
        assert_eq!(
            seen,
            Some((AttemptState::Finished, 3)),
            "classified after the attempt ended"
        );
        assert_eq!(
            decided.next,
            Next::Rerun {
                number: 2,
                tests: vec!["bug-a".into()]
            }
        );
        assert_eq!(decided.status.phase, Phase::Retrying);
        assert_eq!(
            decided.by_test.len(),
            2,
            "a muted failure keeps its category on the test"
        );
        let counts = category_counts(&decided.status);
        assert_eq!(counts, vec![("Product defects", 1)]);
        assert_eq!(decided.status.summary.unwrap().muted, 1);
        assert_eq!(st.phase, Phase::Running, "the status passed in is left as it was");
    }

    #[test]
    fn deciding_an_end_lets_an_outage_override_the_rerun() {
        let now = Utc::now();
        let st = attempt_one_running(now);
        let results = vec![
            result(1, "infra-a", Failed),
            result(1, "infra-b", Errored),
            result(1, "infra-c", Failed),
            result(1, "bug-d", Failed),
        ];
        let mutes = crate::mute::Active::none();
        let rules = end_rules(4, &mutes, &["Infrastructure problems"]);
        let decided = decide_end(
            &st,
            &end(1, ReportRead::Found(4)),
            results,
            &rules,
            |_, m| by_prefix(m),
            now,
        );
        let message = "stand qa1 looks down: Infrastructure problems, 3 of 4 failures";
        assert_eq!(
            decided.next,
            Next::Finish {
                verdict: Verdict::Error,
                message: Some(message.into())
            }
        );
        assert_eq!(decided.status.verdict, Some(Verdict::Error));
        assert_eq!(decided.status.stand_down.as_ref().unwrap().stand, "qa1");
        let counts = category_counts(&decided.status);
        assert_eq!(
            counts,
            vec![("Infrastructure problems", 3), ("Product defects", 1)]
        );
    }
}
