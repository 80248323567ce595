//! Retention: which finished runs have been kept long enough, and which runs only lose their
//! files (logs, JUnit, attachments) while their verdicts and history stay.
//!
//! Pure: [`decide`] looks at the finished runs of one service, the service's [`Policy`] and the
//! time, and answers what to delete; [`plan`] does it for every service from the stored
//! `TestRun`s. Both drivers (the standalone retention task and the operator's) call [`plan`]
//! and only carry out its [`Step`]s, so the two modes cannot disagree on what goes.
//!
//! What is decided, and why:
//! - Nothing unfinished is ever touched: a run without a terminal phase is not a candidate.
//! - Limits are upper bounds, each on its own: a finished run goes once it is older than its
//!   outcome's `maxAge` *or* beyond the newest `runs` of its outcome (Jenkins' "days to keep"
//!   and "max builds to keep" work the same way). With only `runs` set, the newest runs stay
//!   however old they are.
//! - Outcomes: `Succeeded` counts as successful; `Failed`, `Error` and `Cancelled` count as
//!   failed (none of them is a run anyone relies on as "green", and each is worth keeping
//!   longer to investigate).
//! - A pinned run (`spec.retention.keep`) is neither counted nor deleted, nor are its files. A
//!   run with its own `maxAge` is governed by that alone: the service's count limits neither
//!   count it nor delete it. A run whose own retention cannot be read is kept, as pinned:
//!   a typo must never delete anything.
//! - A referenced run (a schedule's `status.lastRun`) is counted but not deleted while the
//!   reference stands; its files may still expire.
//! - No policy (a service without `retention`, or a service no longer in packs_config) keeps
//!   everything but what a run asked for itself (its own `maxAge`): upgrading never deletes
//!   anyone's data by surprise.
//! - A run "expires" at `finished + maxAge` exactly: at that instant it goes, a moment before
//!   it stays.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::crd::{Phase, RunRetention, TestRun};

/// Annotation set on a run whose files were removed by retention; its value is when
/// (RFC 3339). The API answers the run's log, JUnit and attachments with `410 Gone` naming
/// that date instead of a bare 404.
pub const ANNOTATION_FILES_EXPIRED: &str = "tomato.dev/files-expired";

/// How often a retention pass runs when `TOMATO_RETENTION_INTERVAL` does not say.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10 * 60);

/// The pass interval from the value of `TOMATO_RETENTION_INTERVAL` (`10m`, `1h`, `30s`), else
/// [`DEFAULT_INTERVAL`]. Both modes read it.
pub fn interval(value: Option<&str>) -> Result<Duration, String> {
    match value.filter(|v| !v.is_empty()) {
        Some(v) => crate::duration::parse(v).map_err(|e| format!("TOMATO_RETENTION_INTERVAL: {e}")),
        None => Ok(DEFAULT_INTERVAL),
    }
}

/// The pass interval from the environment's `TOMATO_RETENTION_INTERVAL` ([`interval`]); both
/// modes read it the same way.
pub fn interval_from_env() -> Result<Duration, String> {
    interval(std::env::var("TOMATO_RETENTION_INTERVAL").ok().as_deref())
}

/// The runs schedules point at (`status.lastRun`), by namespace and name: kept while they do.
pub fn referenced(schedules: &[crate::crd::NightlySchedule]) -> std::collections::HashSet<(String, String)> {
    schedules
        .iter()
        .filter_map(|s| {
            let run = s.status.as_ref()?.last_run.clone()?;
            Some((s.metadata.namespace.clone().unwrap_or_default(), run))
        })
        .collect()
}

/// A service's retention (`retention` in packs_config). The default keeps everything.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    pub successful: Limits,
    pub failed: Limits,
    /// Files (logs, JUnit, attachments) are removed this long after the run finished.
    pub files: Option<Duration>,
}

impl Policy {
    /// Whether this policy never deletes anything (no limit at all).
    pub fn keeps_everything(&self) -> bool {
        *self == Policy::default()
    }

    fn limits(&self, outcome: Outcome) -> Limits {
        match outcome {
            Outcome::Successful => self.successful,
            Outcome::Failed => self.failed,
        }
    }
}

/// Limits on the finished runs of one outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Delete a run this long after it finished.
    pub max_age: Option<Duration>,
    /// Keep at most this many (the newest).
    pub runs: Option<u32>,
}

/// Which limits a finished run falls under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    Successful,
    /// `Failed`, `Error` and `Cancelled`.
    Failed,
}

impl Outcome {
    /// The outcome of a finished run; `None` while it is not finished.
    pub fn of(phase: Phase) -> Option<Outcome> {
        match phase {
            Phase::Succeeded => Some(Outcome::Successful),
            Phase::Failed | Phase::Error | Phase::Cancelled => Some(Outcome::Failed),
            Phase::Queued | Phase::Running | Phase::Retrying | Phase::Reporting => None,
        }
    }
}

/// A run's own retention, checked (`spec.retention`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunOverride {
    /// Pinned: never deleted, never counted, files kept.
    pub keep: bool,
    /// Its own age limit, instead of the service's limits.
    pub max_age: Option<Duration>,
    /// Its own age limit for its files.
    pub files_max_age: Option<Duration>,
}

/// A problem with a run's `spec.retention`, naming the field under `spec`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OverrideError {
    /// `retention.maxAge`, `retention.files.maxAge` or `retention`.
    pub field: &'static str,
    pub message: String,
}

/// Checks a run's `spec.retention`. Used by the API (to refuse a bad run) and by [`facts`]
/// (where a value that slipped past, e.g. `0d` through `kubectl`, pins the run instead).
pub fn check_override(r: &RunRetention) -> Result<RunOverride, OverrideError> {
    let age = |field: &'static str, v: &Option<String>| {
        v.as_deref()
            .map(crate::duration::parse_age)
            .transpose()
            .map_err(|message| OverrideError { field, message })
    };
    let max_age = age("retention.maxAge", &r.max_age)?;
    let files_max_age = age(
        "retention.files.maxAge",
        &r.files.as_ref().and_then(|f| f.max_age.clone()),
    )?;
    if r.keep && (max_age.is_some() || r.files.is_some()) {
        return Err(OverrideError {
            field: "retention",
            message: "keep: true keeps the run and its files for good; leave out maxAge and files".into(),
        });
    }
    Ok(RunOverride {
        keep: r.keep,
        max_age,
        files_max_age,
    })
}

/// What retention needs to know of one run of a service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunFacts {
    pub name: String,
    /// When it finished; `None` while it is not finished (never touched).
    pub finished: Option<DateTime<Utc>>,
    pub outcome: Outcome,
    pub over: RunOverride,
    /// Its files were already removed.
    pub files_expired: bool,
    /// Something still points at it (a schedule's `status.lastRun`): not deleted.
    pub referenced: bool,
}

/// What to do with a service's runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// Runs to delete whole (object, results, files).
    pub delete: Vec<String>,
    /// Runs that only lose their files.
    pub expire_files: Vec<String>,
}

/// Whether a run finished at `finished` is past `limit` at `now` (at `finished + limit`
/// exactly it is). A limit too large to add never passes.
fn past(finished: DateTime<Utc>, limit: Duration, now: DateTime<Utc>) -> bool {
    chrono::Duration::from_std(limit)
        .ok()
        .and_then(|d| finished.checked_add_signed(d))
        .is_some_and(|until| until <= now)
}

/// Decides for the runs of one service (see the module's documentation for the rules).
pub fn decide(policy: &Policy, runs: &[RunFacts], now: DateTime<Utc>) -> Decision {
    let mut delete: HashSet<&str> = HashSet::new();
    // Count limits: the newest first, per outcome, over the runs the service's limits govern.
    for outcome in [Outcome::Successful, Outcome::Failed] {
        let Some(keep) = policy.limits(outcome).runs else {
            continue;
        };
        let mut counted: Vec<(&RunFacts, DateTime<Utc>)> = runs
            .iter()
            .filter(|r| r.outcome == outcome && !r.over.keep && r.over.max_age.is_none())
            .filter_map(|r| r.finished.map(|f| (r, f)))
            .collect();
        counted.sort_by(|(a, fa), (b, fb)| fb.cmp(fa).then_with(|| b.name.cmp(&a.name)));
        for (r, _) in counted.iter().skip(keep as usize) {
            if !r.referenced {
                delete.insert(&r.name);
            }
        }
    }
    // Age limits: the run's own, else its outcome's.
    for r in runs {
        let Some(finished) = r.finished else { continue };
        if r.over.keep || r.referenced {
            continue;
        }
        let limit = r.over.max_age.or(policy.limits(r.outcome).max_age);
        if limit.is_some_and(|l| past(finished, l, now)) {
            delete.insert(&r.name);
        }
    }
    let expire_files = runs
        .iter()
        .filter(|r| !r.over.keep && !r.files_expired && !delete.contains(r.name.as_str()))
        .filter(|r| {
            let limit = r.over.files_max_age.or(policy.files);
            matches!((r.finished, limit), (Some(f), Some(l)) if past(f, l, now))
        })
        .map(|r| r.name.clone())
        .collect();
    let mut delete: Vec<String> = delete.into_iter().map(str::to_string).collect();
    delete.sort();
    Decision { delete, expire_files }
}

/// The facts of a stored run. `referenced`: see [`RunFacts::referenced`].
pub fn facts(run: &TestRun, referenced: bool) -> RunFacts {
    let status = run.status.as_ref();
    let phase = status.map(|s| s.phase).unwrap_or_default();
    let finished = Outcome::of(phase).map(|_| {
        status
            .and_then(|s| s.finished_at)
            .unwrap_or_else(|| crate::crd::created(run))
    });
    let over = match &run.spec.retention {
        None => RunOverride::default(),
        Some(r) => check_override(r).unwrap_or(RunOverride {
            keep: true,
            ..RunOverride::default()
        }),
    };
    RunFacts {
        name: run.metadata.name.clone().unwrap_or_default(),
        finished,
        outcome: Outcome::of(phase).unwrap_or(Outcome::Failed),
        over,
        files_expired: files_expired_at(run).is_some(),
        referenced,
    }
}

/// When retention removed the run's files, if it did.
pub fn files_expired_at(run: &TestRun) -> Option<String> {
    run.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_FILES_EXPIRED))
        .cloned()
}

/// "expired by retention on <date>": what every surface says of a run whose files retention
/// removed at `at` (the annotation's RFC 3339 time, shown in UTC when it reads as one).
pub fn files_expired_note(at: &str) -> String {
    let when = DateTime::parse_from_rfc3339(at)
        .map(|t| t.with_timezone(&Utc).format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|_| at.to_string());
    format!("expired by retention on {when}")
}

/// One thing to carry out.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Step {
    pub namespace: String,
    pub run: String,
    pub action: Action,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    /// Only the run's files go (the object, its verdicts and history stay).
    ExpireFiles,
    /// The whole run goes: files first, the object last (so that an interrupted pass leaves a
    /// run the next pass finishes, never files without their run's record of them).
    Delete,
}

/// Every step of a retention pass over stored runs: runs are grouped by namespace and
/// service (a namespace is a team's own; standalone mode has one), each group decided by
/// [`decide`] under its service's policy (`policy_of`; `None` keeps everything but what a run
/// asks for itself). `referenced` names `(namespace, run)` pairs something still points at.
pub fn plan<'a>(
    runs: &[TestRun],
    policy_of: impl Fn(&str) -> Option<&'a Policy>,
    referenced: &HashSet<(String, String)>,
    now: DateTime<Utc>,
) -> Vec<Step> {
    let mut groups: BTreeMap<(String, &str), Vec<RunFacts>> = BTreeMap::new();
    for run in runs {
        let ns = run.metadata.namespace.clone().unwrap_or_default();
        let name = run.metadata.name.clone().unwrap_or_default();
        let is_ref = referenced.contains(&(ns.clone(), name));
        groups
            .entry((ns, run.spec.template.service.as_str()))
            .or_default()
            .push(facts(run, is_ref));
    }
    let mut steps = Vec::new();
    for ((ns, service), facts) in groups {
        // A run's own limits hold even where the service sets none.
        let policy = policy_of(service).copied().unwrap_or_default();
        if policy.keeps_everything()
            && facts
                .iter()
                .all(|f| f.over.max_age.is_none() && f.over.files_max_age.is_none())
        {
            continue;
        }
        let d = decide(&policy, &facts, now);
        let step = |run: String, action| Step {
            namespace: ns.clone(),
            run,
            action,
        };
        steps.extend(d.expire_files.into_iter().map(|r| step(r, Action::ExpireFiles)));
        steps.extend(d.delete.into_iter().map(|r| step(r, Action::Delete)));
    }
    steps.sort();
    steps
}

/// What a pass did, for its log line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Removed {
    pub runs: usize,
    pub files: usize,
    /// Steps that failed (each logged); the next pass decides them again.
    pub failed: usize,
}

impl Removed {
    pub fn count(&mut self, action: Action) {
        match action {
            Action::Delete => self.runs += 1,
            Action::ExpireFiles => self.files += 1,
        }
    }

    /// Nothing removed and nothing failed: a pass worth no log line.
    pub fn is_empty(&self) -> bool {
        self.runs == 0 && self.files == 0 && self.failed == 0
    }
}

#[cfg(test)]
mod tests;
