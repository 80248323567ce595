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
    #[serde(default)]
    pub priority: Priority,
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

/// A run's queue priority, 0–9; lower runs earlier.
///
/// The range is checked here only: [`Priority::new`] and deserialization refuse a value
/// outside it, so a `Priority` in hand is always valid. It serializes as the bare integer,
/// and its JSON Schema is the integer with its bounds.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(transparent)]
pub struct Priority(u8);

impl Priority {
    /// The most urgent priority.
    pub const MIN: Priority = Priority(0);
    /// Highest (least urgent) priority.
    pub const MAX: Priority = Priority(9);
    /// Priority of a run when none is given (as the old tool).
    pub const DEFAULT: Priority = Priority(2);

    /// `n` as a priority, or an error naming the allowed range.
    pub fn new(n: u8) -> Result<Priority, PriorityError> {
        Priority::try_from(i64::from(n))
    }

    pub const fn get(self) -> u8 {
        self.0
    }

    /// Every priority, most urgent first.
    pub fn all() -> impl Iterator<Item = Priority> {
        (Priority::MIN.0..=Priority::MAX.0).map(Priority)
    }

    /// The allowed range as messages spell it (`0–9`).
    pub fn range() -> String {
        format!("{}–{}", Priority::MIN.0, Priority::MAX.0)
    }
}

impl Default for Priority {
    fn default() -> Self {
        Priority::DEFAULT
    }
}

impl TryFrom<i64> for Priority {
    type Error = PriorityError;
    fn try_from(n: i64) -> Result<Self, Self::Error> {
        u8::try_from(n)
            .ok()
            .filter(|p| (Priority::MIN.0..=Priority::MAX.0).contains(p))
            .map(Priority)
            .ok_or_else(|| PriorityError::new(n))
    }
}

/// A whole number in range, as a person types it (`"4"`).
impl std::str::FromStr for Priority {
    type Err = PriorityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse::<i64>()
            .map_err(|_| PriorityError::new(s))
            .and_then(Priority::try_from)
    }
}

impl std::fmt::Display for Priority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl PartialEq<u8> for Priority {
    fn eq(&self, other: &u8) -> bool {
        self.0 == *other
    }
}

impl<'de> Deserialize<'de> for Priority {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Priority::try_from(i64::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Priority {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Priority".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let mut schema = u8::json_schema(generator);
        schema.insert("minimum".into(), Priority::MIN.0.into());
        schema.insert("maximum".into(), Priority::MAX.0.into());
        schema
    }
}

/// A priority out of range (or not a whole number): `must be 0–9, got 12`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be {range}, got {got}", range = Priority::range())]
pub struct PriorityError {
    got: String,
}

impl PriorityError {
    /// The error for `got`, the value as it was given.
    pub fn new(got: impl std::fmt::Display) -> Self {
        PriorityError { got: got.to_string() }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_priority_is_built_only_in_range() {
        assert_eq!(Priority::new(0), Ok(Priority::MIN));
        assert_eq!(Priority::new(9), Ok(Priority::MAX));
        assert_eq!(Priority::new(2).map(Priority::get), Ok(2));
        assert_eq!(Priority::default(), Priority::DEFAULT);
        assert_eq!(Priority::new(10).unwrap_err().to_string(), "must be 0–9, got 10");
        assert_eq!(
            Priority::try_from(-1).unwrap_err().to_string(),
            "must be 0–9, got -1"
        );
        assert_eq!("4".parse::<Priority>(), Ok(Priority::new(4).unwrap()));
        assert_eq!(
            "high".parse::<Priority>().unwrap_err().to_string(),
            "must be 0–9, got high"
        );
        assert_eq!(
            Priority::all().map(Priority::get).collect::<Vec<_>>(),
            (0..=9).collect::<Vec<u8>>()
        );
        assert!(Priority::MIN < Priority::DEFAULT, "lower runs earlier");
    }

    #[test]
    fn a_priority_is_a_bare_integer_in_json_and_out_of_range_is_refused() {
        let p = Priority::new(7).unwrap();
        assert_eq!(serde_json::to_value(p).unwrap(), serde_json::json!(7));
        assert_eq!(
            serde_json::from_value::<Priority>(serde_json::json!(7)).unwrap(),
            p
        );
        for bad in [
            serde_json::json!(10),
            serde_json::json!(-1),
            serde_json::json!(300),
        ] {
            let e = serde_json::from_value::<Priority>(bad.clone())
                .unwrap_err()
                .to_string();
            assert_eq!(e, format!("must be 0–9, got {bad}"));
        }
        assert!(serde_json::from_value::<Priority>(serde_json::json!("2")).is_err());
        // In a template: the default when absent, refused (naming the range) when out of range.
        let t: RunTemplate =
            serde_json::from_value(serde_json::json!({"service": "s", "stand": "h"})).unwrap();
        assert_eq!(t.priority, Priority::DEFAULT);
        let e = serde_json::from_value::<RunTemplate>(
            serde_json::json!({"service": "s", "stand": "h", "priority": 12}),
        )
        .unwrap_err();
        assert!(e.to_string().contains("must be 0–9, got 12"), "{e}");
    }

    #[test]
    fn a_priority_schema_is_the_integer_with_its_bounds() {
        let schema = serde_json::to_value(schemars::schema_for!(Priority)).unwrap();
        assert_eq!(
            (&schema["type"], &schema["minimum"], &schema["maximum"]),
            (
                &serde_json::json!("integer"),
                &serde_json::json!(0),
                &serde_json::json!(9)
            )
        );
    }
}
