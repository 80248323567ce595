//! `TestRun`: one request to run a service's packs against a stand.

use chrono::{DateTime, Utc};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{AGE_PATTERN, Condition, DURATION_PATTERN, RunTemplate};

/// Spec of a TestRun: the run template plus the run's type and per-attempt timeout.
// kube's printcolumn(...) repeats keys by design; clippy reads them as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[kube(
    group = "tomato.dev",
    version = "v1alpha1",
    kind = "TestRun",
    namespaced,
    status = "TestRunStatus",
    shortname = "tr",
    category = "tomato",
    derive = "PartialEq",
    doc = "A run of a service's test packs against a stand: queued by priority, launched, failed tests re-run, failures classified, reported.",
    printcolumn(name = "Service", type_ = "string", json_path = ".spec.service"),
    printcolumn(name = "Stand", type_ = "string", json_path = ".spec.stand"),
    printcolumn(name = "Priority", type_ = "integer", json_path = ".spec.priority"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Passed", type_ = "integer", json_path = ".status.summary.passed"),
    printcolumn(name = "Failed", type_ = "integer", json_path = ".status.summary.failed"),
    printcolumn(name = "Flaky", type_ = "integer", json_path = ".status.summary.flaky"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    // What a run tests is fixed once it exists (its Jobs and results depend on it); priority
    // and cancel are what may change.
    validation = kube::core::Rule::new(
        "self.spec.service == oldSelf.spec.service && self.spec.stand == oldSelf.spec.stand"
    )
    .message("spec.service and spec.stand cannot change once a run exists"),
    validation = kube::core::Rule::new(
        "!has(oldSelf.spec.cancel) || !oldSelf.spec.cancel || (has(self.spec.cancel) && self.spec.cancel)"
    )
    .message("a cancelled run cannot be resumed")
)]
#[serde(rename_all = "camelCase")]
pub struct TestRunSpec {
    #[serde(flatten)]
    pub template: RunTemplate,
    /// `Regular` (default) or `Nightly` (set when a schedule creates the run).
    #[serde(default, rename = "type")]
    pub run_type: RunType,
    /// Per-attempt timeout (`90s`, `30m`, `1h30m`); default from packs_config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub timeout: Option<String>,
    /// Set to true to stop the run: it ends `Cancelled` and stays in history. (Deleting the
    /// object stops it too, and removes it.)
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cancel: bool,
    /// How long the run is kept once finished, instead of its service's `retention` in
    /// packs_config: `{keep: true}` pins it (a release run), `{maxAge: 365d}` gives it its own
    /// age limit, `{files: {maxAge: 7d}}` its own limit for logs and reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RunRetention>,
}

/// A run's own retention (`spec.retention`). Absent: the service's retention decides.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!(has(self.keep) && self.keep && (has(self.maxAge) || has(self.files)))",
     "message": "keep: true keeps the run and its files for good; leave out maxAge and files"}
]))]
pub struct RunRetention {
    /// Keep the run and its files whatever the service's retention says; it is not counted
    /// against the service's `runs` limits either.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep: bool,
    /// Delete the run this long after it finished (`30d`, `12h`, `1d12h`), instead of the
    /// service's limits (its age and its count limits both).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = AGE_PATTERN))]
    pub max_age: Option<String>,
    /// The run's own limit for its files (logs, JUnit, attachments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<FilesRetention>,
}

/// How long a run's files (logs, JUnit, attachments) are kept.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FilesRetention {
    /// Remove the files this long after the run finished (`7d`); the verdicts stay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = AGE_PATTERN))]
    pub max_age: Option<String>,
}

/// Whether a person or a schedule asked for the run.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum RunType {
    #[default]
    Regular,
    Nightly,
}

impl RunType {
    /// The type as the spec spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            RunType::Regular => "Regular",
            RunType::Nightly => "Nightly",
        }
    }
}

impl std::fmt::Display for RunType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Life cycle of a run:
/// `Queued` → `Running` → (`Retrying` → `Running`)* → `Reporting` → `Succeeded` | `Failed` | `Error` | `Cancelled`.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
pub enum Phase {
    #[default]
    Queued,
    Running,
    Retrying,
    Reporting,
    Succeeded,
    Failed,
    Error,
    Cancelled,
}

impl Phase {
    /// Every phase, in life-cycle order.
    pub const ALL: [Phase; 8] = [
        Phase::Queued,
        Phase::Running,
        Phase::Retrying,
        Phase::Reporting,
        Phase::Succeeded,
        Phase::Failed,
        Phase::Error,
        Phase::Cancelled,
    ];

    /// A finished run never changes phase again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Phase::Succeeded | Phase::Failed | Phase::Error | Phase::Cancelled
        )
    }

    /// Cancelling still changes something: the run has no verdict yet. (In `Reporting` the
    /// verdict is final and only the report is being sent.)
    pub fn can_cancel(self) -> bool {
        matches!(self, Phase::Queued | Phase::Running | Phase::Retrying)
    }

    /// Occupies a slot of its service and stand (admitted and not finished).
    pub fn is_active(self) -> bool {
        matches!(self, Phase::Running | Phase::Retrying | Phase::Reporting)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Queued => "Queued",
            Phase::Running => "Running",
            Phase::Retrying => "Retrying",
            Phase::Reporting => "Reporting",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
            Phase::Error => "Error",
            Phase::Cancelled => "Cancelled",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Phase {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Phase::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                let names: Vec<&str> = Phase::ALL.iter().map(|p| p.as_str()).collect();
                format!(
                    "unknown phase {}; expected one of {}",
                    crate::text::quote(s),
                    names.join(", ")
                )
            })
    }
}

/// The run's outcome, fixed before reporting starts so that no report failure can change it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum Verdict {
    /// Nothing failed or broke (flaky tests are allowed).
    Succeeded,
    /// Some test still failed or broke after the last attempt.
    Failed,
    /// The tests could not run (launch failure, no report); `message` says why.
    Error,
}

impl Verdict {
    pub fn phase(self) -> Phase {
        match self {
            Verdict::Succeeded => Phase::Succeeded,
            Verdict::Failed => Phase::Failed,
            Verdict::Error => Phase::Error,
        }
    }

    /// The verdict as status spells it: the name of the phase it ends the run in.
    pub fn as_str(self) -> &'static str {
        self.phase().as_str()
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Observed state of a TestRun; written only by Tomato.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestRunStatus {
    pub phase: Phase,
    /// 1-based position in the service's queue while `Queued`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_position: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// Human-readable explanation of the current phase (why it errored, what it waits for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The outcome, set when the last attempt is done and before reporting starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    /// Every attempt, in launch order (an interrupted attempt stays listed beside its relaunch).
    #[serde(default)]
    pub attempts: Vec<Attempt>,
    /// Verdict counts over the merged attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<Summary>,
    /// Failure categories: count and the first few tests of each.
    #[serde(default)]
    pub categories: Vec<CategoryStat>,
    /// The failing tests a Mute covered when the last attempt ended (they do not fail the
    /// verdict; at most [`MAX_MUTED_RECORDS`]), and muted tests that passed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub muted: Vec<MutedTest>,
    /// Set when this run found its stand down ([`crate::outage`]): further runs on the stand
    /// wait until the record is resolved (the stand's probe answers, or a person resumes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stand_down: Option<StandDown>,
    /// Delivery of the report, per channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<ReportStatus>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Counts of tests by verdict. For a run: the merged verdicts. For an attempt: that attempt's
/// own results (`flaky` is then always 0).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct Summary {
    pub total: u32,
    pub passed: u32,
    /// Still failing after the last attempt.
    pub failed: u32,
    /// Failed, then passed on a rerun.
    pub flaky: u32,
    pub skipped: u32,
    /// Errored or could not run.
    pub broken: u32,
    /// Still failing or broken, but covered by a Mute: not counted in `failed` or `broken`,
    /// and not failing the verdict.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub muted: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// How many failing tests one run mutes at most (beyond, they count as failing, so the
/// verdict, a later rerun selection and the reports, which all read `status.muted`, agree),
/// and how many records of muted tests that passed `status.muted` keeps.
pub const MAX_MUTED_RECORDS: usize = 500;

/// A stand a run found down, and whether it is back.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StandDown {
    /// The stand, normalised (host and port: `qa1.example.com`).
    pub stand: String,
    /// `stand <s> looks down: <category>, <n> of <m> failures`.
    pub reason: String,
    pub since: DateTime<Utc>,
    /// When the stand was found back (its probe answered) or resumed by a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<DateTime<Utc>>,
    /// `probe`, or who resumed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_by: Option<String>,
}

/// A test a Mute covered in a run.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MutedTest {
    /// The test's id.
    pub test: String,
    /// The Mute's name.
    pub mute: String,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    /// The test passed (or was flaky) although muted: the mute may no longer be needed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub passed: bool,
}

/// One launch of the tests.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    /// 1 for the first run of everything, 2.. for reruns. A relaunch after an interruption
    /// keeps the number of the attempt it replaces.
    pub number: u32,
    /// What the attempt ran.
    pub selection: Selection,
    pub state: AttemptState,
    /// Launch reference: `pid <n>` (process launcher) or the Job name (job launcher).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Results of this attempt alone (absent until it finished and its report was read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<Summary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The parts of a sharded attempt and how far each got (empty when it ran unsplit).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<ShardStatus>,
    /// The Aqua launches of the attempt's packs that run in Aqua (`launch.launcher: aqua`, or
    /// the pack's own `launcher: aqua`), one per pack: each intent is recorded before Aqua is
    /// asked and its id as soon as Aqua answers, so a restart of Tomato polls them (or looks
    /// them up) again rather than launching twice.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aqua: Vec<AquaLaunch>,
    /// Its Aqua packs run in Aqua beside its Job (operator mode: a service whose packs run in
    /// two places). Each part's results are kept apart until both are in, then merged into the
    /// attempt's one set.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mixed: bool,
}

/// One launch in Aqua: what Tomato polls, and the page people open.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AquaLaunch {
    /// The packs_config pack it runs.
    pub pack: String,
    /// Aqua's launch id.
    pub id: String,
    /// Aqua's page of the launch (`launchUrl`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The launch this one restarted the failed suites of (a rerun).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_of: Option<String>,
    /// Aqua's last `launchStatus` seen (`REPORT_READY`, `REPORT_FAILED`, or still going).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Failed or broken tests read from its report (what a rerun restarts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing: Option<u32>,
    /// Polls of it that failed in a row (operator mode counts them here, across reconciles).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failures: Option<u32>,
    /// Why the last of those failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The value of the `tomato.launch` property the launch was made with
    /// (`<run>/<attempt>/<pack>`; a restart keeps its chain's). Recorded, with an empty `id`,
    /// before Tomato asks Aqua to launch: a Tomato that finds such an intent looks the launch
    /// up in Aqua by it before launching again, so a crash never launches a pack twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marker: Option<String>,
}

/// One part of a sharded attempt: what it runs and how far it got.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShardStatus {
    /// 0-based, as `JOB_COMPLETION_INDEX` counts the completions of an Indexed Job.
    pub index: u32,
    pub state: ShardState,
    /// Tests (or packs and files, when the runner cannot list tests) the shard was given.
    pub tests: u32,
    /// How the shard's items were chosen: `tests`, `files` or `packs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// The sum of its tests' recorded durations, in seconds, when any has history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_seconds: Option<u64>,
    /// Results read so far (all of them once it ended).
    #[serde(default)]
    pub passed: u32,
    #[serde(default)]
    pub failed: u32,
    #[serde(default)]
    pub skipped: u32,
    /// Errored, or given but not reported (the shard crashed or timed out before them).
    #[serde(default)]
    pub broken: u32,
    /// Launch reference: `pid <n>`, or the Job and its completion index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// Why it crashed, timed out or could not start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Where a shard is in its life.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum ShardState {
    Running,
    /// Exited and reported every test it was given.
    Finished,
    /// Exited (or was killed) without reporting some of its tests: those are broken.
    Crashed,
    TimedOut,
    LaunchFailed,
    Cancelled,
}

impl ShardState {
    pub fn as_str(self) -> &'static str {
        match self {
            ShardState::Running => "Running",
            ShardState::Finished => "Finished",
            ShardState::Crashed => "Crashed",
            ShardState::TimedOut => "TimedOut",
            ShardState::LaunchFailed => "LaunchFailed",
            ShardState::Cancelled => "Cancelled",
        }
    }
}

/// What an attempt ran: everything in the chosen packs, or the failed tests of an earlier attempt.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Selection {
    pub kind: SelectionKind,
    /// Packs the attempt covers.
    #[serde(default)]
    pub packs: Vec<String>,
    /// For `Failed`: the attempt whose failures are re-run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub of_attempt: Option<u32>,
    /// For `Failed`: the test ids re-run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tests: Vec<String>,
    /// For `Failed`, when the list is kept in the results database instead of here (operator
    /// mode with a database, more than [`Selection::STATUS_TESTS_MAX`] tests; `tests` is then
    /// empty in the stored object): how many tests are re-run. Keeps a rerun of thousands of
    /// tests from growing the TestRun object; the API fills `tests` back in when it serves
    /// one run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_tests: Option<u32>,
}

impl Selection {
    /// Most test ids a rerun's selection keeps in the TestRun itself when a results database
    /// can keep the list (a few KiB of ids).
    pub const STATUS_TESTS_MAX: usize = 100;

    pub fn all(packs: Vec<String>) -> Self {
        Selection {
            kind: SelectionKind::All,
            packs,
            of_attempt: None,
            tests: Vec::new(),
            stored_tests: None,
        }
    }

    pub fn failed(packs: Vec<String>, of_attempt: u32, tests: Vec<String>) -> Self {
        Selection {
            kind: SelectionKind::Failed,
            packs,
            of_attempt: Some(of_attempt),
            tests,
            stored_tests: None,
        }
    }

    /// How many tests a rerun selects, whether their list is here or kept elsewhere.
    pub fn count(&self) -> usize {
        match self.stored_tests {
            Some(n) if self.tests.is_empty() => n as usize,
            _ => self.tests.len(),
        }
    }

    /// The selection as the TestRun object keeps it: a list kept elsewhere (`stored_tests`)
    /// is left out.
    pub fn compact(&mut self) {
        if self.stored_tests.is_some() {
            self.tests.clear();
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum SelectionKind {
    /// Every test of the selected packs.
    All,
    /// Only the listed tests (those still failing).
    Failed,
}

/// Where an attempt is in its life.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum AttemptState {
    /// Launched, not finished.
    Running,
    /// Exited and its report was read.
    Finished,
    /// Killed because it ran past its timeout.
    TimedOut,
    /// Could not be started at all (command not found, image pull failure); see `message`.
    LaunchFailed,
    /// Tomato restarted while it ran; it was cleaned up and launched again.
    Interrupted,
    /// Stopped because the run was cancelled.
    Cancelled,
    /// A rerun that did not run the tests it selected (the runner refused the selection, or
    /// reported some selected tests as not run); see `message`.
    SelectionFailed,
}

impl AttemptState {
    /// The state as status and every surface spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptState::Running => "Running",
            AttemptState::Finished => "Finished",
            AttemptState::TimedOut => "TimedOut",
            AttemptState::LaunchFailed => "LaunchFailed",
            AttemptState::Interrupted => "Interrupted",
            AttemptState::Cancelled => "Cancelled",
            AttemptState::SelectionFailed => "SelectionFailed",
        }
    }
}

/// A failure category with its count and the first few tests that fell in it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct CategoryStat {
    pub name: String,
    pub count: u32,
    /// The first tests of the category (at most a handful), with their messages.
    #[serde(default)]
    pub tests: Vec<CategoryTest>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct CategoryTest {
    pub name: String,
    #[serde(default)]
    pub message: String,
}

/// A report channel: one field of `status.report`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    Email,
    Tracker,
    Webhook,
    /// The record of the run in test management.
    Tms,
}

impl Channel {
    /// Every channel, in the order they are planned.
    pub const ALL: [Channel; 4] = [Channel::Email, Channel::Tracker, Channel::Webhook, Channel::Tms];

    /// The field of `status.report`.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Tracker => "tracker",
            Channel::Webhook => "webhook",
            Channel::Tms => "tms",
        }
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ReportStatus {
    pub fn channel(&self, c: Channel) -> Option<&ChannelReport> {
        self.slot(c).as_ref()
    }

    pub fn channel_mut(&mut self, c: Channel) -> &mut Option<ChannelReport> {
        match c {
            Channel::Email => &mut self.email,
            Channel::Tracker => &mut self.tracker,
            Channel::Webhook => &mut self.webhook,
            Channel::Tms => &mut self.tms,
        }
    }

    fn slot(&self, c: Channel) -> &Option<ChannelReport> {
        match c {
            Channel::Email => &self.email,
            Channel::Tracker => &self.tracker,
            Channel::Webhook => &self.webhook,
            Channel::Tms => &self.tms,
        }
    }
}

/// Delivery of the report, per channel.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct ReportStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<ChannelReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracker: Option<ChannelReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<ChannelReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tms: Option<ChannelReport>,
}

/// State of one report channel.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChannelReport {
    pub state: DeliveryState,
    /// Delivery attempts made so far.
    pub attempts: u32,
    /// When the state last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
    /// Why it failed or was skipped (for `Pending`: why the last attempt failed). Never contains
    /// credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// While `Pending`: when the next delivery attempt is due (backoff after a failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_at: Option<DateTime<Utc>>,
    /// Targets that already received the report (recipients, the issue key, webhook labels),
    /// so that a retry or a restart never delivers to them twice.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sent_to: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum DeliveryState {
    /// Not delivered yet; being tried (see `attempts`, `reason`, `nextAt`).
    Pending,
    /// Delivered.
    Sent,
    /// Given up on; `reason` says why. The run's verdict is unaffected.
    Failed,
    /// Not applicable to this run; `reason` says why (no recipients, no issueKey, not configured).
    Skipped,
}

impl DeliveryState {
    /// Nothing more will be done for the channel.
    pub fn is_final(self) -> bool {
        !matches!(self, DeliveryState::Pending)
    }
}
