//! One pass of a schedule, decided without I/O: what both drivers (the standalone scheduler
//! task and the operator's NightlySchedule controller) carry out, in this order —
//! cancel the runs `Replace` replaces, start the due run, delete finished runs beyond the
//! history limits, write the status, look again at `next`.
//!
//! The status is computed as if the start succeeds: a run whose name is already taken counts
//! as started (an earlier pass started it and died before recording it), and any other
//! failure to start stops the pass before the status is written, so the due time stays due.

use chrono::{DateTime, Utc};

use super::{Decision, check_spec, decide, newest_run, record, record_invalid, run_name, runs_view, since};
use crate::crd::{NightlySchedule, NightlyScheduleStatus, TestRun};
use crate::packs::PacksConfig;

/// What one pass of a schedule does.
#[derive(Debug)]
pub enum Tick {
    /// The stored schedule no longer fits packs_config (it was checked when stored; the config
    /// changed since): write `status` (`Ready` false, the reason) and wait for a change.
    Invalid {
        status: NightlyScheduleStatus,
    },
    Due(Box<Effects>),
}

/// The effects of a valid schedule's pass.
#[derive(Debug)]
pub struct Effects {
    /// Unfinished runs to cancel before starting (`concurrencyPolicy: Replace`).
    pub cancel: Vec<String>,
    /// The run to start, and the time it is for.
    pub start: Option<(DateTime<Utc>, TestRun)>,
    /// Why the due run could not be built from the template (logged; the time stays due).
    pub refused: Option<String>,
    /// Finished runs beyond the history limits, to delete.
    pub delete: Vec<String>,
    /// A due time not started, worth a log line: set only when the reason changed since the
    /// last pass, so a suspended schedule does not log on every pass.
    pub newly_skipped: Option<String>,
    /// The status to write (when it differs from the stored one).
    pub status: NightlyScheduleStatus,
    /// When to look again (`None`: only on a change).
    pub next: Option<DateTime<Utc>>,
}

impl Effects {
    /// Logs what the pass decided that the log should say, the same in both modes: a refused
    /// template, a due time newly not started, each run about to be deleted for the history
    /// limits.
    pub fn log(&self, schedule: &str) {
        if let Some(e) = &self.refused {
            tracing::warn!(schedule, error = %e, "the schedule's run template is refused");
        }
        if let Some(skipped) = &self.newly_skipped {
            tracing::info!(schedule, reason = %skipped, "due time not started");
        }
        for old in &self.delete {
            tracing::info!(schedule, run = old, "deleting a run beyond the history limit");
        }
    }
}

/// Decides schedule `s`'s pass at `now`, given its runs (found by their schedule label).
pub fn tick(s: &NightlySchedule, runs: &[TestRun], config: &PacksConfig, now: DateTime<Utc>) -> Tick {
    let name = s.metadata.name.clone().unwrap_or_default();
    let mut status = s.status.clone().unwrap_or_default();
    let checked = check_spec(&s.spec)
        .map_err(|e| format!("spec.{}: {}", e.field, e.message))
        .and_then(|schedule| {
            config
                .check_run(&s.spec.template)
                .map(|_| schedule)
                .map_err(|e| format!("spec.{}: {}", e.field, e.message))
        });
    let schedule = match checked {
        Ok(schedule) => schedule,
        Err(message) => {
            record_invalid(&mut status, message, now);
            return Tick::Invalid { status };
        }
    };
    let (mut active, delete) = runs_view(runs, &s.spec);
    let newest = newest_run(runs);
    let decision = decide(&name, &s.spec, &schedule, since(s), &active, now);

    let (mut cancel, mut start, mut refused, mut newly_skipped) = (Vec::new(), None, None, None);
    match &decision {
        Decision::Fire {
            scheduled,
            cancel: replaced,
            ..
        } => {
            cancel.clone_from(replaced);
            match crate::runs::scheduled_run(config, s, run_name(&name, *scheduled)) {
                Ok(run) => start = Some((*scheduled, run)),
                Err(e) => refused = Some(e.to_string()),
            }
        }
        Decision::Skip {
            scheduled, reason, ..
        } => {
            let message = format!("{scheduled}: {reason}");
            let last = status.conditions.iter().find(|c| c.type_ == "Skipped");
            if last.is_none_or(|c| c.message != message) {
                newly_skipped = Some(message);
            }
        }
        Decision::Wait { .. } => {}
    }

    let fired = start
        .as_ref()
        .map(|(at, run)| (*at, run.metadata.name.clone().unwrap_or_default()));
    if let Some((_, run)) = &fired
        && !active.contains(run)
    {
        active.push(run.clone());
    }
    record(&mut status, &decision, fired, newest, active, s.spec.suspend, now);
    Tick::Due(Box::new(Effects {
        cancel,
        start,
        refused,
        delete,
        newly_skipped,
        status,
        next: decision.next(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{
        ConcurrencyPolicy, LABEL_SCHEDULE, NightlyScheduleSpec, Phase, RunTemplate, TestRunStatus,
    };

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// The shipped example config: service `demo` takes stands `localhost[:port]`.
    fn config() -> PacksConfig {
        PacksConfig::load(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/packs_config"
        )))
        .unwrap()
    }

    fn schedule(policy: ConcurrencyPolicy, created: &str) -> NightlySchedule {
        let template = RunTemplate::test("demo");
        let mut s = NightlySchedule::new(
            "nightly",
            NightlyScheduleSpec {
                template,
                timeout: None,
                schedule: "0 3 * * *".into(),
                time_zone: "UTC".into(),
                suspend: false,
                concurrency_policy: policy,
                starting_deadline_seconds: None,
                successful_runs_history_limit: 1,
                failed_runs_history_limit: 1,
            },
        );
        created_at(&mut s.metadata, created);
        s
    }

    fn run(name: &str, phase: Phase, created: &str) -> TestRun {
        let mut r = TestRun::test(name, RunTemplate::test("demo")).nightly();
        r.metadata.labels = Some([(LABEL_SCHEDULE.to_string(), "nightly".to_string())].into());
        created_at(&mut r.metadata, created);
        r.status = Some(TestRunStatus {
            phase,
            finished_at: phase.is_terminal().then(|| at(created)),
            ..Default::default()
        });
        r
    }

    /// Sets when an object was created, as both stores record it.
    fn created_at(meta: &mut kube::api::ObjectMeta, when: &str) {
        meta.annotations = Some([(crate::crd::ANNOTATION_CREATED.to_string(), when.to_string())].into());
    }

    fn due(t: Tick) -> Effects {
        match t {
            Tick::Due(e) => *e,
            Tick::Invalid { status } => panic!("invalid: {status:?}"),
        }
    }

    #[test]
    fn a_due_time_starts_its_run_and_records_it_as_started() {
        let s = schedule(ConcurrencyPolicy::Allow, "2026-12-01T00:00:00Z");
        let e = due(tick(&s, &[], &config(), at("2026-12-01T03:00:10Z")));
        let (scheduled, run) = e.start.expect("the 03:00 run is due");
        assert_eq!(scheduled, at("2026-12-01T03:00:00Z"));
        let name = run.metadata.name.clone().unwrap();
        assert_eq!(name, run_name("nightly", scheduled));
        assert_eq!(e.status.last_run.as_deref(), Some(name.as_str()));
        assert_eq!(e.status.last_schedule_time, Some(scheduled));
        assert_eq!(e.status.active, vec![name]);
        assert_eq!(e.next, Some(at("2026-12-02T03:00:00Z")));
        assert!(e.cancel.is_empty() && e.delete.is_empty() && e.refused.is_none());
    }

    #[test]
    fn replace_cancels_the_unfinished_run_and_history_beyond_the_limits_is_deleted() {
        let s = schedule(ConcurrencyPolicy::Replace, "2026-11-28T00:00:00Z");
        let runs = [
            run("old-ok-1", Phase::Succeeded, "2026-11-28T03:00:00Z"),
            run("old-ok-2", Phase::Succeeded, "2026-11-29T03:00:00Z"),
            run("still-running", Phase::Running, "2026-11-30T03:00:00Z"),
        ];
        let e = due(tick(&s, &runs, &config(), at("2026-12-01T03:00:05Z")));
        assert_eq!(e.cancel, vec!["still-running".to_string()]);
        assert!(e.start.is_some());
        assert_eq!(
            e.delete,
            vec!["old-ok-1".to_string()],
            "one successful run is kept"
        );
    }

    #[test]
    fn forbid_skips_while_a_run_is_unfinished_and_says_so_once() {
        let s = schedule(ConcurrencyPolicy::Forbid, "2026-11-30T00:00:00Z");
        let runs = [run("still-running", Phase::Running, "2026-11-30T03:00:00Z")];
        let now = at("2026-12-01T03:00:05Z");
        let e = due(tick(&s, &runs, &config(), now));
        assert!(e.start.is_none() && e.cancel.is_empty());
        let said = e.newly_skipped.clone().expect("the first skip is logged");
        assert!(said.contains("still-running"), "{said}");
        // The next pass, with that status stored, has nothing new to say.
        let mut again = s.clone();
        again.status = Some(e.status);
        let e = due(tick(&again, &runs, &config(), now));
        assert!(e.newly_skipped.is_none());
    }

    #[test]
    fn a_schedule_that_no_longer_fits_the_config_is_invalid_and_names_the_field() {
        let mut s = schedule(ConcurrencyPolicy::Allow, "2026-12-01T00:00:00Z");
        s.spec.template.stand = "prod.example.com".into();
        let Tick::Invalid { status } = tick(&s, &[], &config(), at("2026-12-01T03:00:10Z")) else {
            panic!("a stand the service does not have is invalid");
        };
        let ready = status.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.reason, "InvalidSpec");
        assert!(ready.message.starts_with("spec.stand: "), "{}", ready.message);
        assert_eq!(status.next_schedule_time, None);
    }
}
