//! Nightly schedules with a Kubernetes CronJob's meaning, as pure functions of the schedule,
//! what it already did, its unfinished runs and the time — so both drivers (the standalone
//! scheduler task and the operator's NightlySchedule controller) decide alike, and every rule
//! is tested with a made-up clock.
//!
//! - Cron: 5 fields or a macro (`@daily`...), read in the schedule's IANA time zone. Across
//!   daylight-saving changes a fixed time fires once: a time that does not exist on a
//!   spring-forward day fires at the first instant after the gap, a time that happens twice on
//!   a fall-back day fires at its first occurrence (croner's rules, which follow OCPS).
//! - Missed times (downtime, suspension, `Forbid`): only the most recent one is considered,
//!   and only while it is at most `startingDeadlineSeconds` late; never a burst.
//! - `concurrencyPolicy`: `Allow` starts anyway; `Forbid` starts nothing while a run of the
//!   schedule is unfinished (the due time stays pending, as with a CronJob, so it starts when
//!   the previous run ends if still within the deadline); `Replace` cancels the unfinished runs
//!   and starts the new one.
//! - History: finished runs beyond `successfulRunsHistoryLimit` / `failedRunsHistoryLimit`
//!   are deleted, oldest first.

use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

use crate::crd::{ConcurrencyPolicy, Condition, ConditionStatus, NightlyScheduleSpec, NightlyScheduleStatus};

/// A parsed cron expression in a time zone.
#[derive(Clone, Debug)]
pub struct Schedule {
    cron: Cron,
    tz: Tz,
}

/// A problem with a schedule's fields, naming the field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl Schedule {
    /// Parses `expr` (5 fields or `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`,
    /// `@midnight`, `@hourly`) in the IANA zone `tz`.
    pub fn parse(expr: &str, tz: &str) -> Result<Schedule, FieldError> {
        let expr = expr.trim();
        let normalized = if expr.eq_ignore_ascii_case("@midnight") {
            "@daily"
        } else {
            expr
        };
        let err = |message: String| FieldError {
            field: "schedule",
            message,
        };
        if !normalized.starts_with('@') && normalized.split_whitespace().count() != 5 {
            return Err(err(format!(
                "{q_expr} is not a cron expression: give 5 fields (minute hour day-of-month month day-of-week) or a macro such as @daily",
                q_expr = crate::text::quote(expr)
            )));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(normalized)
            .map_err(|e| {
                err(format!(
                    "{q_expr} is not a valid cron expression: {e}",
                    q_expr = crate::text::quote(expr)
                ))
            })?;
        let tz = Tz::from_str(tz.trim()).map_err(|_| FieldError {
            field: "timeZone",
            message: format!(
                "{q_tz} is not an IANA time zone (such as UTC or Europe/Moscow)",
                q_tz = crate::text::quote(tz)
            ),
        })?;
        let schedule = Schedule { cron, tz };
        // A day that no month has (`0 0 30 2 *`) parses but would never fire, silently.
        if schedule.next_after(DateTime::UNIX_EPOCH).is_none() {
            return Err(err(format!(
                "{q_expr} never fires: no month has that day",
                q_expr = crate::text::quote(expr)
            )));
        }
        Ok(schedule)
    }

    /// The first fire time strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&t.with_timezone(&self.tz), false)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }

    /// The most recent fire time in `(after, until]`, if any.
    pub fn latest_between(&self, after: DateTime<Utc>, until: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let t = self
            .cron
            .find_previous_occurrence(&until.with_timezone(&self.tz), true)
            .ok()?
            .with_timezone(&Utc);
        (t > after).then_some(t)
    }

    /// The zone the schedule is read in.
    pub fn tz(&self) -> Tz {
        self.tz
    }

    /// A human description of the pattern ("At 02:00").
    pub fn describe(&self) -> String {
        self.cron.describe()
    }
}

/// What a schedule should do now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nothing is due; look again at `next`.
    Wait { next: Option<DateTime<Utc>> },
    /// Start a run for `scheduled` (after cancelling `cancel`), then look again at `next`.
    Fire {
        scheduled: DateTime<Utc>,
        cancel: Vec<String>,
        next: Option<DateTime<Utc>>,
    },
    /// `scheduled` is due but is not started now; `reason` says why.
    Skip {
        scheduled: DateTime<Utc>,
        reason: SkipReason,
        next: Option<DateTime<Utc>>,
    },
}

impl Decision {
    /// When to look again.
    pub fn next(&self) -> Option<DateTime<Utc>> {
        match self {
            Decision::Wait { next } | Decision::Fire { next, .. } | Decision::Skip { next, .. } => *next,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// The schedule is suspended.
    Suspended,
    /// `Forbid` and this run is still unfinished.
    PreviousRunActive(String),
    /// Later than `startingDeadlineSeconds` (`deadline`) by `late`.
    MissedDeadline { late: Duration, deadline: i64 },
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipReason::Suspended => write!(f, "the schedule is suspended"),
            SkipReason::PreviousRunActive(r) => {
                write!(f, "concurrencyPolicy is Forbid and run {r} is unfinished")
            }
            // Not the lateness itself: the message lands in the status, which would then
            // change (and be written) on every pass until the next time.
            SkipReason::MissedDeadline { deadline, .. } => {
                write!(
                    f,
                    "missed: it could only start more than startingDeadlineSeconds ({deadline}s) late"
                )
            }
        }
    }
}

/// Decides what schedule `name` does at `now`.
///
/// `since` is when it last started a run (`status.lastScheduleTime`) or, if it never did,
/// when it was created: only fire times after it are due. `active` are its unfinished runs.
/// The run of the due time itself may be among them — started by a pass that did not get to
/// record it (a crash, or a status write that lost to a stale cache): then that time has
/// fired already, and its run is neither cancelled (`Replace`) nor waited for (`Forbid`).
pub fn decide(
    name: &str,
    spec: &NightlyScheduleSpec,
    schedule: &Schedule,
    since: DateTime<Utc>,
    active: &[String],
    now: DateTime<Utc>,
) -> Decision {
    let next = schedule.next_after(now);
    let Some(scheduled) = schedule.latest_between(since, now) else {
        return Decision::Wait { next };
    };
    if spec.suspend {
        return Decision::Skip {
            scheduled,
            reason: SkipReason::Suspended,
            next,
        };
    }
    if let Some(deadline) = spec.starting_deadline_seconds {
        let late = now - scheduled;
        if late > Duration::seconds(deadline) {
            return Decision::Skip {
                scheduled,
                reason: SkipReason::MissedDeadline { late, deadline },
                next,
            };
        }
    }
    let own = run_name(name, scheduled);
    let previous: Vec<String> = active.iter().filter(|r| **r != own).cloned().collect();
    let started = previous.len() < active.len();
    match (spec.concurrency_policy, previous.first()) {
        (ConcurrencyPolicy::Forbid, Some(run)) if !started => Decision::Skip {
            scheduled,
            reason: SkipReason::PreviousRunActive(run.clone()),
            next,
        },
        (ConcurrencyPolicy::Replace, _) => Decision::Fire {
            scheduled,
            cancel: previous,
            next,
        },
        _ => Decision::Fire {
            scheduled,
            cancel: Vec::new(),
            next,
        },
    }
}

/// Name of the run a schedule starts for `scheduled`: the schedule's name and the scheduled
/// minute (as a CronJob names its Jobs), so starting the same time twice is impossible — a
/// second attempt finds the name taken.
pub fn run_name(schedule: &str, scheduled: DateTime<Utc>) -> String {
    let suffix = format!("-{}", scheduled.timestamp() / 60);
    let keep = 63 - suffix.len();
    let base: String = schedule.chars().take(keep).collect();
    format!("{}{suffix}", base.trim_end_matches(['-', '.']))
}

/// A finished run of a schedule, for history pruning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FinishedRun {
    pub name: String,
    pub succeeded: bool,
    pub finished: DateTime<Utc>,
}

/// The finished runs to delete so that at most `successful` succeeded and `failed` unsuccessful
/// runs remain (the newest are kept).
pub fn history_to_delete(runs: &[FinishedRun], successful: u32, failed: u32) -> Vec<String> {
    let mut sorted: Vec<&FinishedRun> = runs.iter().collect();
    sorted.sort_by(|a, b| b.finished.cmp(&a.finished).then_with(|| b.name.cmp(&a.name)));
    let (mut ok, mut bad) = (0u32, 0u32);
    let mut out = Vec::new();
    for r in sorted {
        let (count, limit) = if r.succeeded {
            (&mut ok, successful)
        } else {
            (&mut bad, failed)
        };
        *count += 1;
        if *count > limit {
            out.push(r.name.clone());
        }
    }
    out
}

/// What a schedule's runs mean to it: the unfinished ones (by name, for `decide`) and the
/// finished ones beyond its history limits (to delete). Both drivers read their runs this way.
pub fn runs_view(runs: &[crate::crd::TestRun], spec: &NightlyScheduleSpec) -> (Vec<String>, Vec<String>) {
    let name = |r: &crate::crd::TestRun| r.metadata.name.clone().unwrap_or_default();
    let mut active = Vec::new();
    let mut finished = Vec::new();
    for r in runs {
        match r.status.as_ref().filter(|st| st.phase.is_terminal()) {
            None => active.push(name(r)),
            Some(st) => finished.push(FinishedRun {
                name: name(r),
                succeeded: st.phase == crate::crd::Phase::Succeeded,
                finished: st.finished_at.unwrap_or_else(|| crate::crd::created(r)),
            }),
        }
    }
    let expired = history_to_delete(
        &finished,
        spec.successful_runs_history_limit,
        spec.failed_runs_history_limit,
    );
    (active, expired)
}

/// The schedule's newest run (by creation, then name), whoever started it: the schedule at
/// its time, `POST /api/nightly`, or "Run now". It is the schedule's `status.lastRun`.
pub fn newest_run(runs: &[crate::crd::TestRun]) -> Option<String> {
    runs.iter()
        .max_by(|a, b| {
            (crate::crd::created(*a), &a.metadata.name).cmp(&(crate::crd::created(*b), &b.metadata.name))
        })
        .and_then(|r| r.metadata.name.clone())
}

/// Only fire times after this are due: when the schedule last started a run
/// (`status.lastScheduleTime`) or, if it never did, when it was created.
pub fn since(s: &crate::crd::NightlySchedule) -> DateTime<Utc> {
    s.status
        .as_ref()
        .and_then(|st| st.last_schedule_time)
        .unwrap_or_else(|| crate::crd::created(s))
}

/// Records a pass's outcome in a schedule's status: the time it fired (and the run), else the
/// newest run started by hand (see [`newest_run`]), the next due time (none while
/// suspended), the unfinished runs, and the `Skipped` / `Ready` conditions. Both drivers
/// write exactly this.
pub fn record(
    st: &mut NightlyScheduleStatus,
    decision: &Decision,
    fired: Option<(DateTime<Utc>, String)>,
    newest: Option<String>,
    active: Vec<String>,
    suspend: bool,
    now: DateTime<Utc>,
) {
    if let Some((scheduled, run)) = fired {
        st.last_schedule_time = Some(scheduled);
        st.last_run = Some(run);
    } else if newest.is_some() {
        st.last_run = newest;
    }
    st.next_schedule_time = if suspend { None } else { decision.next() };
    st.active = active;
    match decision {
        Decision::Skip {
            scheduled, reason, ..
        } => Condition::set(
            &mut st.conditions,
            "Skipped",
            ConditionStatus::True,
            "DueTimeNotStarted",
            format!("{scheduled}: {reason}"),
            now,
        ),
        Decision::Fire { .. } => Condition::set(
            &mut st.conditions,
            "Skipped",
            ConditionStatus::False,
            "Started",
            "",
            now,
        ),
        Decision::Wait { .. } => {}
    }
    Condition::set(
        &mut st.conditions,
        "Ready",
        ConditionStatus::True,
        "Valid",
        "",
        now,
    );
}

/// Records that a stored schedule no longer fits packs_config (it was checked when stored; the
/// config changed since): `Ready` false with the reason, and nothing due.
pub fn record_invalid(st: &mut NightlyScheduleStatus, message: String, now: DateTime<Utc>) {
    Condition::set(
        &mut st.conditions,
        "Ready",
        ConditionStatus::False,
        "InvalidSpec",
        message,
        now,
    );
    st.next_schedule_time = None;
}

/// Checks a schedule spec's own fields (the run template is checked against packs_config by
/// the caller). Returns the parsed schedule.
pub fn check_spec(spec: &NightlyScheduleSpec) -> Result<Schedule, FieldError> {
    let schedule = Schedule::parse(&spec.schedule, &spec.time_zone)?;
    if let Some(d) = spec.starting_deadline_seconds
        && d < 0
    {
        return Err(FieldError {
            field: "startingDeadlineSeconds",
            message: format!("must be 0 or more, got {d}"),
        });
    }
    if let Some(t) = &spec.timeout {
        crate::duration::parse(t).map_err(|message| FieldError {
            field: "timeout",
            message,
        })?;
    }
    Ok(schedule)
}

mod tick;

pub use tick::{Effects, Tick, tick};

#[cfg(test)]
mod tests;
