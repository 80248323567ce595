//! `Regression`: a manual regression campaign for a release, handed to assessors.
//!
//! The spec says what to test (a service's release `version`, the regression `plan` in the
//! test-management system, the `stand`) and by whom (`assessors`, by `deadline`); the status
//! records everything Tomato created for it (so nothing half-made is left unexplained), the
//! progress of the assessors' verdicts, and the notifications sent.

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Condition, NAME_PATTERN};
use super::testrun::ChannelReport;

/// Spec of a Regression.
// kube's printcolumn(...) repeats keys by design; clippy reads them as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "tomato.dev",
    version = "v1alpha1",
    kind = "Regression",
    namespaced,
    status = "RegressionStatus",
    shortname = "rg",
    category = "tomato",
    derive = "PartialEq",
    doc = "A manual regression of a release: a test run of the regression plan in test management, its cases assigned to assessors, a tracker ticket, and progress until every case has a verdict.",
    printcolumn(name = "Service", type_ = "string", json_path = ".spec.service"),
    printcolumn(name = "Version", type_ = "string", json_path = ".spec.version"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Total", type_ = "integer", json_path = ".status.progress.total"),
    printcolumn(name = "Idle", type_ = "integer", json_path = ".status.progress.idle"),
    printcolumn(name = "Ticket", type_ = "string", json_path = ".status.ticket.key"),
    printcolumn(name = "Deadline", type_ = "date", json_path = ".spec.deadline"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    // What was handed out (the test run, the shares) follows from these, so they are fixed.
    // Only bounded fields are compared, which keeps the rule's estimated cost within the API
    // server's budget; `PATCH` in Tomato's API also fixes plan, queue and issueKey.
    validation = kube::core::Rule::new(
        "self.spec.service == oldSelf.spec.service && self.spec.version == oldSelf.spec.version && self.spec.stand == oldSelf.spec.stand && self.spec.assessors == oldSelf.spec.assessors"
    )
    .message("spec.service, spec.version, spec.stand and spec.assessors cannot change once a regression exists")
)]
#[serde(rename_all = "camelCase")]
pub struct RegressionSpec {
    /// A service defined in packs_config.
    #[schemars(regex(pattern = NAME_PATTERN), length(max = 63))]
    pub service: String,
    /// The release under test: a version of the plan's product in test management (and of
    /// the tracker project, where the tracker has versions).
    #[schemars(length(min = 1, max = 255))]
    pub version: String,
    /// The regression TestPlan: its id (an integer) or its name. Default: the service's
    /// `regression.plan` in packs_config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<IntOrString>,
    /// Host or URL of the stand the assessors test; must match the service's `stands.pattern`.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^\S+$"))]
    pub stand: String,
    /// User names in test management; the cases are shared among them evenly.
    #[schemars(length(min = 1, max = 100), inner(length(min = 1, max = 150)))]
    pub assessors: Vec<String>,
    /// When every case should have a verdict; past it the regression is `Overdue`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<DateTime<Utc>>,
    /// Tracker project (Jira) or queue (Yandex Tracker) where the ticket is created when
    /// there is no `issueKey`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Z][A-Z0-9_]*$"))]
    pub queue: Option<String>,
    /// An existing ticket for the regression (else one is created in `queue`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Z][A-Z0-9_]*-[0-9]+$"))]
    pub issue_key: Option<String>,
    /// Who gets the final report, besides the assessors and the service's `report.emails`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(regex(pattern = r"^[^@\s]+@[^@\s]+$")))]
    pub emails: Vec<String>,
}

/// Life cycle of a regression:
/// `Pending` → `Preparing` → `InProgress` (→ `Overdue`) → `Reporting` → `Completed`; or `Failed`.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
pub enum RegressionPhase {
    /// Created; nothing done yet.
    #[default]
    Pending,
    /// Setting up the test run, the ticket and the assessors' emails.
    Preparing,
    /// The assessors are testing; progress is followed.
    InProgress,
    /// Past the deadline with cases still open (followed until they are done).
    Overdue,
    /// Every case has a verdict; the summary and the report are being sent.
    Reporting,
    /// Every case has a verdict and the summary and report went out.
    Completed,
    /// Bad input or test management out of reach for good; `message` says why.
    Failed,
}

impl RegressionPhase {
    pub const ALL: [RegressionPhase; 7] = [
        RegressionPhase::Pending,
        RegressionPhase::Preparing,
        RegressionPhase::InProgress,
        RegressionPhase::Overdue,
        RegressionPhase::Reporting,
        RegressionPhase::Completed,
        RegressionPhase::Failed,
    ];

    /// Nothing more happens to a finished regression.
    pub fn is_terminal(self) -> bool {
        matches!(self, RegressionPhase::Completed | RegressionPhase::Failed)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RegressionPhase::Pending => "Pending",
            RegressionPhase::Preparing => "Preparing",
            RegressionPhase::InProgress => "InProgress",
            RegressionPhase::Overdue => "Overdue",
            RegressionPhase::Reporting => "Reporting",
            RegressionPhase::Completed => "Completed",
            RegressionPhase::Failed => "Failed",
        }
    }
}

impl std::fmt::Display for RegressionPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Observed state of a Regression; written only by Tomato.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegressionStatus {
    pub phase: RegressionPhase,
    /// What is happening or what went wrong, for a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<DateTime<Utc>>,
    /// The objects in test management the regression works with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tms: Option<TmsRecord>,
    /// The tracker ticket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<TicketRecord>,
    /// Everything Tomato created for this regression, in order (`Kiwi TCMS version 2.0 (id 3)`),
    /// so that nothing half-made is left unexplained when it fails.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub created: Vec<String>,
    /// The cases of each assessor (execution ids), in the assessors' order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assignments: Vec<Assignment>,
    /// Verdicts so far, overall and per assessor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
    /// The assessors' emails (`sentTo` lists who got theirs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assessor_emails: Option<ChannelReport>,
    /// The summary comment on the ticket once every case has a verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary_comment: Option<ChannelReport>,
    /// The final report email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_email: Option<ChannelReport>,
    /// Consecutive failed attempts to reach test management or the tracker, and when the next
    /// one is due; reset by a success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryState>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Test-management objects of a regression (ids are the system's own).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TmsRecord {
    /// The regression plan the cases come from.
    pub plan_id: u64,
    pub plan_name: String,
    pub product: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_id: Option<u64>,
    /// The plan the test run belongs to: the regression plan itself when it is already of
    /// the release's version, else its child plan for the release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_plan_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<u64>,
    /// The test run's page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_url: Option<String>,
    /// Whether the test run has been stopped (the regression was deleted).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stopped: bool,
}

/// The regression's ticket in the tracker.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TicketRecord {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Whether Tomato created it (else it was the spec's `issueKey`).
    #[serde(default)]
    pub created: bool,
    /// The release version in the tracker, where it has versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// One assessor's share of the cases.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Assignment {
    pub assessor: String,
    /// Test executions assigned to the assessor, by id.
    pub executions: Vec<u64>,
}

/// Verdict counts; `idle` are the cases without a verdict yet.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct Counts {
    pub total: u32,
    pub idle: u32,
    pub passed: u32,
    pub failed: u32,
    pub blocked: u32,
}

/// Progress overall and per assessor.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    #[serde(flatten)]
    pub counts: Counts,
    /// One entry per assessor, in the spec's order.
    #[serde(default)]
    pub assessors: Vec<AssessorProgress>,
    /// When the executions were last read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AssessorProgress {
    pub assessor: String,
    #[serde(flatten)]
    pub counts: Counts,
}

/// Backoff after failures to reach an outside system.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryState {
    /// Consecutive failures.
    pub failures: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_at: Option<DateTime<Utc>>,
    /// Why the last attempt failed (never holds credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
