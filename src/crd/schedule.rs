//! `NightlySchedule`: a run template repeated on a cron schedule until the object is deleted.

use chrono::{DateTime, Utc};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Condition, RunTemplate};

/// Spec of a NightlySchedule: what to run plus when, with a Kubernetes CronJob's meaning
/// for every scheduling field.
// kube's printcolumn(...) repeats keys by design; clippy reads them as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[kube(
    group = "tomato.dev",
    version = "v1alpha1",
    kind = "NightlySchedule",
    namespaced,
    status = "NightlyScheduleStatus",
    shortname = "nsch",
    category = "tomato",
    derive = "PartialEq",
    doc = "Repeats a TestRun on a cron schedule until deleted (CronJob semantics).",
    printcolumn(name = "Service", type_ = "string", json_path = ".spec.service"),
    printcolumn(name = "Schedule", type_ = "string", json_path = ".spec.schedule"),
    printcolumn(name = "TimeZone", type_ = "string", json_path = ".spec.timeZone"),
    printcolumn(name = "Suspend", type_ = "boolean", json_path = ".spec.suspend"),
    printcolumn(name = "Last", type_ = "date", json_path = ".status.lastScheduleTime"),
    printcolumn(name = "Next", type_ = "date", json_path = ".status.nextScheduleTime"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    // Its runs carry its name as a label value (at most 63 characters) and are named after it.
    validation = kube::core::Rule::new("self.metadata.name.size() <= 63")
        .message("a NightlySchedule's name is at most 63 characters (its runs carry it as a label)")
)]
#[serde(rename_all = "camelCase")]
pub struct NightlyScheduleSpec {
    #[serde(flatten)]
    pub template: RunTemplate,
    /// Per-attempt timeout of the runs it creates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = super::common::DURATION_PATTERN))]
    pub timeout: Option<String>,
    /// Cron expression (5 fields or a macro such as `@daily`).
    #[serde(default = "default_schedule")]
    #[schemars(length(min = 1))]
    pub schedule: String,
    /// IANA time zone the schedule is read in.
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
    /// A suspended schedule creates no runs (neither by time nor by `/api/nightly`).
    #[serde(default)]
    pub suspend: bool,
    #[serde(default)]
    pub concurrency_policy: ConcurrencyPolicy,
    /// After downtime, a missed time is still fired if it is at most this many seconds late.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub starting_deadline_seconds: Option<i64>,
    #[serde(default = "default_successful_history")]
    #[schemars(range(min = 0, max = 1000))]
    pub successful_runs_history_limit: u32,
    #[serde(default = "default_failed_history")]
    #[schemars(range(min = 0, max = 1000))]
    pub failed_runs_history_limit: u32,
}

fn default_schedule() -> String {
    "0 2 * * *".to_string()
}
fn default_time_zone() -> String {
    "UTC".to_string()
}
fn default_successful_history() -> u32 {
    7
}
fn default_failed_history() -> u32 {
    14
}

/// What to do when a run is due while the previous one is unfinished (as a CronJob).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ConcurrencyPolicy {
    /// Start the new run anyway.
    Allow,
    /// Skip the new run.
    #[default]
    Forbid,
    /// Cancel the unfinished run and start the new one.
    Replace,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NightlyScheduleStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_schedule_time: Option<DateTime<Utc>>,
    /// Name of the last run it created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<String>,
    /// Names of its unfinished runs.
    #[serde(default)]
    pub active: Vec<String>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
}
