//! Pieces shared by several resources: the run template (what a `TestRun` and a
//! `NightlySchedule` both describe), environment variables and conditions.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Pattern for names of services, packs and presets (a DNS label, as Kubernetes names are).
pub const NAME_PATTERN: &str = "^[a-z0-9]([-a-z0-9_]*[a-z0-9])?$";
/// Pattern for per-attempt timeouts: one or more `<number><unit>` with unit `s`, `m` or `h` (`90s`, `1h30m`).
pub const DURATION_PATTERN: &str = "^([0-9]+(s|m|h))+$";
/// Pattern for retention's age limits: like [`DURATION_PATTERN`], with days too (`30d`, `1d12h`).
pub const AGE_PATTERN: &str = "^([0-9]+(s|m|h|d))+$";
/// Pattern for environment variable names.
pub const ENV_NAME_PATTERN: &str = "^[A-Za-z_][A-Za-z0-9_]*$";

/// What to run and where: the part of a run that a person or a schedule chooses.
///
/// A `TestRun` spec is this template plus the run's type and timeout; a
/// `NightlySchedule` spec is this template plus the cron settings. Keeping it one type
/// means a schedule can never describe a run that a `TestRun` could not.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunTemplate {
    /// A service defined in packs_config (the old tool's `liza`, `touch`, `cal`).
    #[schemars(regex(pattern = NAME_PATTERN), length(max = 63))]
    pub service: String,
    /// Host or URL of the stand to test; must match the service's `stands.pattern`.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^\S+$"))]
    pub stand: String,
    /// A preset of packs (e.g. `smoke`); empty means every pack of the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = NAME_PATTERN))]
    pub category: Option<String>,
    /// Explicit pack names; overrides `category`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(regex(pattern = NAME_PATTERN)))]
    pub packs: Vec<String>,
    /// Queue priority 0–9; lower runs earlier.
    #[serde(default = "default_priority")]
    #[schemars(range(min = 0, max = 9))]
    pub priority: u8,
    /// Report recipients, in addition to the service's defaults.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 100),
        inner(regex(pattern = r"^[^@\s]+@[^@\s]+$"), length(max = 254))
    )]
    pub emails: Vec<String>,
    /// Tracker ticket that receives the report (e.g. `QA-123`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Z][A-Z0-9_]*-[0-9]+$"), length(max = 64))]
    pub issue_key: Option<String>,
    /// Version in the test-management system to link the run to (legacy parameter `testpalm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub version: Option<String>,
    /// How many times failed tests are re-run; default from packs_config (3).
    /// The run has at most `1 + retries` attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 9))]
    pub retries: Option<u8>,
    /// Parts attempt 1 (and a large rerun) is split into, balanced by recorded test
    /// durations; default from packs_config (1, unsharded). Each part takes a slot of the
    /// service's and the stand's concurrency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 64))]
    pub shards: Option<u8>,
    /// Extra environment for the tests; values may reference Secrets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
}

/// Priority of a run when none is given (as the old tool).
pub const DEFAULT_PRIORITY: u8 = 2;
/// Highest (least urgent) priority.
pub const MAX_PRIORITY: u8 = 9;

fn default_priority() -> u8 {
    DEFAULT_PRIORITY
}

/// One extra environment variable for the tests: a literal value or a Secret reference.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.value) != has(self.valueFrom)", "message": "give either value or valueFrom.secretKeyRef, not both"},
    {"rule": "!self.name.startsWith('TOMATO_')", "message": "TOMATO_* variables are set by Tomato itself"}
]))]
pub struct EnvVar {
    /// Variable name.
    #[schemars(regex(pattern = ENV_NAME_PATTERN))]
    pub name: String,
    /// Literal value. Do not put secrets here: a literal is visible in the run's spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Where the value comes from when it is a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<EnvVarSource>,
}

/// Source of a secret environment value.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvVarSource {
    /// A key of a Kubernetes Secret (operator mode) or of a secret directory
    /// `<secrets-dir>/<name>/<key>` (standalone mode, the same layout as a mounted Secret).
    pub secret_key_ref: SecretKeySelector,
}

/// A key in a named Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct SecretKeySelector {
    /// Secret name.
    #[schemars(regex(pattern = "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"))]
    pub name: String,
    /// Key inside the Secret.
    #[schemars(regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

/// Status of a condition, as Kubernetes spells it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

/// A Kubernetes-style condition (`type`, `status`, `reason`, `message`, `lastTransitionTime`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type in CamelCase (`Admitted`, `Complete`, `Reported`).
    #[serde(rename = "type")]
    pub type_: String,
    pub status: ConditionStatus,
    /// Machine-readable CamelCase reason.
    pub reason: String,
    /// Human-readable explanation.
    #[serde(default)]
    pub message: String,
    pub last_transition_time: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl Condition {
    /// Sets `type_` in `conditions` to the given state, keeping `lastTransitionTime` when the
    /// status does not change (as Kubernetes controllers do).
    pub fn set(
        conditions: &mut Vec<Condition>,
        type_: &str,
        status: ConditionStatus,
        reason: &str,
        message: impl Into<String>,
        now: DateTime<Utc>,
    ) {
        let message = message.into();
        match conditions.iter_mut().find(|c| c.type_ == type_) {
            Some(c) => {
                if c.status != status {
                    c.last_transition_time = now;
                }
                c.status = status;
                c.reason = reason.to_string();
                c.message = message;
            }
            None => conditions.push(Condition {
                type_: type_.to_string(),
                status,
                reason: reason.to_string(),
                message,
                last_transition_time: now,
                observed_generation: None,
            }),
        }
    }
}
