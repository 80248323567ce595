//! Following a run: from successive snapshots of a `TestRun` to what happened in between.
//!
//! Pure on purpose: [`Follower::observe`] takes one snapshot and answers the [`Event`]s it
//! implies since the previous one (queue position changes, attempts starting and finishing,
//! phase changes, the verdict), so every rendering — progress bars on a terminal, plain lines
//! on a pipe — is driven by the same, unit-tested decisions, whether the snapshots come from
//! polling or a stream, and however many changes one poll skipped over.

use std::collections::BTreeMap;

use crate::crd::{AttemptState, CategoryStat, Phase, SelectionKind, ShardState, Summary, TestRun, Verdict};

/// How `tomato` exits: the verdict of a followed run, or why it could not say one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// The run Succeeded, or a command that does not follow a run did what it was asked.
    Ok = 0,
    Failed = 1,
    Error = 2,
    Cancelled = 3,
    /// Tomato could not be reached (connection refused, DNS, timeout).
    Unreachable = 4,
    /// The request was refused: bad arguments, or Tomato answered an error.
    Refused = 5,
    /// Ctrl-C stopped following; the run goes on (128 + SIGINT, as shells report it).
    Interrupted = 130,
}

impl Exit {
    /// The exit code for a run that ended in `phase` (`None` while it has not ended).
    pub fn of(phase: Phase) -> Option<Exit> {
        match phase {
            Phase::Succeeded => Some(Exit::Ok),
            Phase::Failed => Some(Exit::Failed),
            Phase::Error => Some(Exit::Error),
            Phase::Cancelled => Some(Exit::Cancelled),
            Phase::Queued | Phase::Running | Phase::Retrying | Phase::Reporting => None,
        }
    }

    pub fn code(self) -> u8 {
        self as u8
    }
}

/// Something that happened to a followed run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Waiting in the queue: at `position` (1 = next), for the reason admission gave.
    Queued {
        position: Option<u32>,
        waiting_for: Option<String>,
    },
    /// A launch started: `position` in `status.attempts` (from 1, what `logs --attempt`
    /// takes), attempt `number`, what it runs, and how many tests when that is known up front
    /// (a rerun's selection).
    AttemptStarted {
        position: usize,
        number: u32,
        what: String,
        tests: Option<u32>,
    },
    /// A launch ended.
    AttemptFinished {
        position: usize,
        number: u32,
        state: AttemptState,
        summary: Option<Summary>,
        exit_code: Option<i32>,
        message: Option<String>,
        seconds: Option<i64>,
    },
    /// A shard of a sharded launch started: `index` from 0, with `tests` items of `unit`
    /// (tests, files or packs).
    ShardStarted {
        position: usize,
        number: u32,
        index: u32,
        tests: u32,
        unit: String,
    },
    /// A shard ended (finished, crashed, timed out, could not start, cancelled).
    ShardFinished {
        position: usize,
        number: u32,
        index: u32,
        state: ShardState,
        tests: u32,
        summary: Summary,
        message: Option<String>,
    },
    /// The failed tests are about to be run again.
    Retrying,
    /// The verdict is known; the report is being sent.
    Reporting,
    /// The run ended, or has its verdict and is only sending its report (`phase` is then the
    /// verdict's).
    Finished {
        phase: Phase,
        message: Option<String>,
        summary: Option<Summary>,
        categories: Vec<CategoryStat>,
    },
}

/// What has been told so far about one run.
#[derive(Debug, Default)]
pub struct Follower {
    phase: Option<Phase>,
    queue: Option<(Option<u32>, Option<String>)>,
    /// State of each launch when last seen, by position.
    attempts: Vec<AttemptState>,
    /// State of each shard when last seen, by launch position and shard index.
    shards: BTreeMap<(usize, u32), ShardState>,
    finished: bool,
}

impl Follower {
    pub fn new() -> Self {
        Self::default()
    }

    /// The events `run` implies since the previous snapshot, in the order they happened.
    pub fn observe(&mut self, run: &TestRun) -> Vec<Event> {
        let mut out = Vec::new();
        if self.finished {
            return out;
        }
        let st = run.status.clone().unwrap_or_default();
        if st.phase == Phase::Queued && st.attempts.is_empty() {
            let now = (st.queue_position, st.message.clone().filter(|m| !m.is_empty()));
            if self.queue.as_ref() != Some(&now) {
                out.push(Event::Queued {
                    position: now.0,
                    waiting_for: now.1.clone(),
                });
                self.queue = Some(now);
            }
        }
        for (i, a) in st.attempts.iter().enumerate() {
            let position = i + 1;
            if i == self.attempts.len() {
                out.push(Event::AttemptStarted {
                    position,
                    number: a.number,
                    what: crate::ui::view::attempt_label(a),
                    tests: match a.selection.kind {
                        SelectionKind::Failed => u32::try_from(a.selection.count()).ok(),
                        SelectionKind::All => None,
                    },
                });
                self.attempts.push(AttemptState::Running);
            }
            for sh in &a.shards {
                let key = (position, sh.index);
                let before = self.shards.get(&key).copied();
                if before.is_none() {
                    out.push(Event::ShardStarted {
                        position,
                        number: a.number,
                        index: sh.index,
                        tests: sh.tests,
                        unit: sh.unit.clone().unwrap_or_else(|| "tests".into()),
                    });
                }
                if before.is_none_or(|b| b == ShardState::Running) && sh.state != ShardState::Running {
                    out.push(Event::ShardFinished {
                        position,
                        number: a.number,
                        index: sh.index,
                        state: sh.state,
                        tests: sh.tests,
                        summary: Summary {
                            total: sh.passed + sh.failed + sh.skipped + sh.broken,
                            passed: sh.passed,
                            failed: sh.failed,
                            flaky: 0,
                            skipped: sh.skipped,
                            broken: sh.broken,
                            muted: 0,
                        },
                        message: sh.message.clone(),
                    });
                }
                self.shards.insert(key, sh.state);
            }
            if self.attempts[i] == AttemptState::Running && a.state != AttemptState::Running {
                out.push(Event::AttemptFinished {
                    position,
                    number: a.number,
                    state: a.state,
                    summary: a.summary,
                    exit_code: a.exit_code,
                    message: a.message.clone(),
                    seconds: a
                        .started_at
                        .zip(a.finished_at)
                        .map(|(s, f)| (f - s).num_seconds()),
                });
            }
            self.attempts[i] = a.state;
        }
        if self.phase != Some(st.phase) {
            match st.phase {
                Phase::Retrying => out.push(Event::Retrying),
                Phase::Reporting => out.push(Event::Reporting),
                _ => {}
            }
        }
        // The verdict is fixed before reporting starts and no report failure changes it, so a
        // run whose email is still being retried has ended as far as a follower is concerned.
        let ended = match st.phase {
            Phase::Reporting => st.verdict.map(Verdict::phase),
            p => Some(p).filter(|p| p.is_terminal()),
        };
        self.phase = Some(st.phase);
        if let Some(phase) = ended {
            self.phase = Some(phase);
            self.finished = true;
            out.push(Event::Finished {
                phase,
                message: st.message,
                summary: st.summary,
                categories: st.categories,
            });
        }
        out
    }

    /// The exit code once the run ended.
    pub fn exit(&self) -> Option<Exit> {
        self.phase.filter(|_| self.finished).and_then(Exit::of)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{Attempt, CategoryTest, RunTemplate, Selection, TestRunStatus};

    fn run(status: TestRunStatus) -> TestRun {
        let mut r = TestRun::test("demo-1", RunTemplate::test("demo"));
        r.status = Some(status);
        r
    }

    fn queued(position: u32, why: &str) -> TestRunStatus {
        TestRunStatus {
            phase: Phase::Queued,
            queue_position: Some(position),
            message: Some(why.into()),
            ..Default::default()
        }
    }

    fn attempt(number: u32, state: AttemptState, failed_of: Option<Vec<&str>>) -> Attempt {
        let selection = match failed_of {
            Some(tests) => Selection::failed(
                vec!["basic".into()],
                number - 1,
                tests.into_iter().map(String::from).collect(),
            ),
            None => Selection::all(vec!["basic".into()]),
        };
        Attempt {
            number,
            selection,
            state,
            launch: None,
            started_at: None,
            finished_at: None,
            exit_code: (state != AttemptState::Running).then_some(1),
            summary: (state == AttemptState::Finished).then_some(Summary {
                total: 3,
                passed: 1,
                failed: 2,
                ..Default::default()
            }),
            message: None,
            shards: Vec::new(),
            aqua: Vec::new(),
            mixed: false,
        }
    }

    fn running(attempts: Vec<Attempt>, phase: Phase) -> TestRunStatus {
        TestRunStatus {
            phase,
            attempts,
            ..Default::default()
        }
    }

    #[test]
    fn the_queue_position_is_told_once_per_change() {
        let mut f = Follower::new();
        let first = f.observe(&run(queued(2, "waiting for stand localhost")));
        assert_eq!(
            first,
            vec![Event::Queued {
                position: Some(2),
                waiting_for: Some("waiting for stand localhost".into())
            }]
        );
        assert!(
            f.observe(&run(queued(2, "waiting for stand localhost")))
                .is_empty()
        );
        let moved = f.observe(&run(queued(1, "waiting for stand localhost")));
        assert!(matches!(
            moved[..],
            [Event::Queued {
                position: Some(1),
                ..
            }]
        ));
        assert_eq!(f.exit(), None);
    }

    #[test]
    fn an_attempt_is_told_when_it_starts_and_when_it_finishes() {
        let mut f = Follower::new();
        let started = f.observe(&run(running(
            vec![attempt(1, AttemptState::Running, None)],
            Phase::Running,
        )));
        assert_eq!(
            started,
            vec![Event::AttemptStarted {
                position: 1,
                number: 1,
                what: "every test of basic".into(),
                tests: None
            }]
        );
        assert!(
            f.observe(&run(running(
                vec![attempt(1, AttemptState::Running, None)],
                Phase::Running
            )))
            .is_empty()
        );
        let done = f.observe(&run(running(
            vec![attempt(1, AttemptState::Finished, None)],
            Phase::Retrying,
        )));
        assert!(
            matches!(&done[..], [Event::AttemptFinished { position: 1, state: AttemptState::Finished, summary: Some(s), .. }, Event::Retrying] if s.failed == 2),
            "{done:?}"
        );
    }

    fn shard(index: u32, state: ShardState, passed: u32, broken: u32) -> crate::crd::ShardStatus {
        crate::crd::ShardStatus {
            index,
            state,
            tests: 3,
            unit: Some("tests".into()),
            expected_seconds: None,
            passed,
            failed: 0,
            skipped: 0,
            broken,
            launch: None,
            exit_code: None,
            started_at: None,
            finished_at: None,
            message: (state == ShardState::Crashed).then(|| "shard 1 crashed (exit code 3)".into()),
        }
    }

    #[test]
    fn each_shard_is_told_when_it_starts_and_when_it_ends_before_its_attempt() {
        let mut f = Follower::new();
        let mut a = attempt(1, AttemptState::Running, None);
        a.shards = vec![
            shard(0, ShardState::Running, 0, 0),
            shard(1, ShardState::Running, 0, 0),
        ];
        let started = f.observe(&run(running(vec![a.clone()], Phase::Running)));
        assert!(
            matches!(
                &started[..],
                [
                    Event::AttemptStarted { .. },
                    Event::ShardStarted {
                        index: 0,
                        tests: 3,
                        ..
                    },
                    Event::ShardStarted { index: 1, .. }
                ]
            ),
            "{started:?}"
        );
        a.shards[1] = shard(1, ShardState::Crashed, 1, 2);
        let crashed = f.observe(&run(running(vec![a.clone()], Phase::Running)));
        assert!(
            matches!(&crashed[..], [Event::ShardFinished { index: 1, state: ShardState::Crashed, summary, .. }] if summary.broken == 2),
            "{crashed:?}"
        );
        let line = crate::client::render::event_lines("r", "p", &crashed[0]).join("\n");
        assert_eq!(
            line,
            "attempt 1 shard 1 crashed: 1 passed, 2 broken of 3 — shard 1 crashed (exit code 3)"
        );
        a.shards[0] = shard(0, ShardState::Finished, 3, 0);
        a.state = AttemptState::Finished;
        let done = f.observe(&run(running(vec![a], Phase::Retrying)));
        assert!(
            matches!(
                &done[..],
                [
                    Event::ShardFinished {
                        index: 0,
                        state: ShardState::Finished,
                        ..
                    },
                    Event::AttemptFinished { .. },
                    Event::Retrying
                ]
            ),
            "{done:?}"
        );
    }

    #[test]
    fn a_poll_that_skipped_a_whole_attempt_still_tells_it_in_order() {
        let mut f = Follower::new();
        f.observe(&run(queued(1, "")));
        let events = f.observe(&run(running(
            vec![
                attempt(1, AttemptState::Finished, None),
                attempt(2, AttemptState::Running, Some(vec!["a", "b"])),
            ],
            Phase::Running,
        )));
        let kinds: Vec<String> = events
            .iter()
            .map(|e| match e {
                Event::AttemptStarted { number, tests, .. } => format!("start {number} {tests:?}"),
                Event::AttemptFinished { number, .. } => format!("end {number}"),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(kinds, ["start 1 None", "end 1", "start 2 Some(2)"]);
    }

    #[test]
    fn the_verdict_is_told_once_with_its_categories_and_sets_the_exit_code() {
        let mut f = Follower::new();
        let mut st = running(vec![attempt(1, AttemptState::Finished, None)], Phase::Failed);
        st.categories = vec![CategoryStat {
            name: "Product defects".into(),
            count: 2,
            tests: vec![CategoryTest {
                name: "basic > fails".into(),
                message: "expected 1".into(),
            }],
        }];
        let events = f.observe(&run(st.clone()));
        assert!(
            matches!(events.last(), Some(Event::Finished { phase: Phase::Failed, categories, .. }) if categories.len() == 1),
            "{events:?}"
        );
        assert_eq!(f.exit(), Some(Exit::Failed));
        assert!(f.observe(&run(st)).is_empty());
    }

    #[test]
    fn each_ending_phase_has_its_own_exit_code() {
        let codes: Vec<Option<u8>> = Phase::ALL
            .into_iter()
            .map(|p| Exit::of(p).map(Exit::code))
            .collect();
        assert_eq!(
            codes,
            [None, None, None, None, Some(0), Some(1), Some(2), Some(3)]
        );
        assert_eq!(Exit::Unreachable.code(), 4);
    }

    #[test]
    fn a_run_still_sending_its_report_has_ended_with_its_verdict() {
        let mut f = Follower::new();
        let mut st = running(vec![attempt(1, AttemptState::Finished, None)], Phase::Reporting);
        st.verdict = Some(Verdict::Succeeded);
        let events = f.observe(&run(st));
        assert!(
            matches!(
                &events[..],
                [
                    ..,
                    Event::Reporting,
                    Event::Finished {
                        phase: Phase::Succeeded,
                        ..
                    }
                ]
            ),
            "{events:?}"
        );
        assert_eq!(f.exit(), Some(Exit::Ok));
    }

    #[test]
    fn reporting_without_a_recorded_verdict_is_not_the_end() {
        let mut f = Follower::new();
        f.observe(&run(running(
            vec![attempt(1, AttemptState::Finished, None)],
            Phase::Reporting,
        )));
        assert_eq!(f.exit(), None);
    }

    #[test]
    fn a_run_cancelled_in_the_queue_ends_without_attempts() {
        let mut f = Follower::new();
        f.observe(&run(queued(3, "")));
        let events = f.observe(&run(TestRunStatus {
            phase: Phase::Cancelled,
            ..Default::default()
        }));
        assert!(matches!(
            events[..],
            [Event::Finished {
                phase: Phase::Cancelled,
                ..
            }]
        ));
        assert_eq!(f.exit(), Some(Exit::Cancelled));
    }
}
