//! Checking a resource `spec` sent by a client, field by field, so every error names its field.
//!
//! Specs flatten the shared run template into themselves, and serde's `flatten` can neither
//! refuse unknown fields nor say which field had the wrong type. So each field is first checked
//! against a table (unknown field, wrong type, out of range), then the whole spec is
//! deserialized; only missing fields are left for serde to report.

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::de::{DeError, JsonValue};
use super::{ApiError, FieldError};

/// What a spec field must hold.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Str,
    Bool,
    /// An integer in `min..=max`.
    Int(i64, i64),
    StrList,
    /// `env`: a list of environment variables.
    Env,
    OneOf(&'static [&'static str]),
    /// An id (a non-negative integer) or a name (a string).
    IdOrName,
    /// A run's `retention`: `{keep, maxAge, files: {maxAge}}`, unknown keys refused.
    Retention,
}

/// The run template's fields, shared by TestRun and NightlySchedule specs.
macro_rules! template_fields {
    () => {
        [
            ("service", Kind::Str),
            ("stand", Kind::Str),
            ("category", Kind::Str),
            ("packs", Kind::StrList),
            (
                "priority",
                Kind::Int(
                    crate::crd::Priority::MIN.get() as i64,
                    crate::crd::Priority::MAX.get() as i64,
                ),
            ),
            ("emails", Kind::StrList),
            ("issueKey", Kind::Str),
            ("version", Kind::Str),
            ("retries", Kind::Int(0, 9)),
            ("shards", Kind::Int(1, 64)),
            ("env", Kind::Env),
            ("timeout", Kind::Str),
        ]
    };
}

const TEMPLATE: [(&str, Kind); 12] = template_fields!();

/// Fields of a TestRun spec.
pub const RUN_FIELDS: &[(&str, Kind)] = &concat_fields::<15>(
    &TEMPLATE,
    &[
        ("type", Kind::OneOf(&["Regular", "Nightly"])),
        ("cancel", Kind::Bool),
        ("retention", Kind::Retention),
    ],
);

/// Fields of a NightlySchedule spec.
pub const SCHEDULE_FIELDS: &[(&str, Kind)] = &concat_fields::<19>(
    &TEMPLATE,
    &[
        ("schedule", Kind::Str),
        ("timeZone", Kind::Str),
        ("suspend", Kind::Bool),
        ("concurrencyPolicy", Kind::OneOf(&["Allow", "Forbid", "Replace"])),
        ("startingDeadlineSeconds", Kind::Int(0, i64::MAX)),
        ("successfulRunsHistoryLimit", Kind::Int(0, 1000)),
        ("failedRunsHistoryLimit", Kind::Int(0, 1000)),
    ],
);

/// Fields of a Regression spec.
pub const REGRESSION_FIELDS: &[(&str, Kind)] = &[
    ("service", Kind::Str),
    ("version", Kind::Str),
    ("plan", Kind::IdOrName),
    ("stand", Kind::Str),
    ("assessors", Kind::StrList),
    ("deadline", Kind::Str),
    ("queue", Kind::Str),
    ("issueKey", Kind::Str),
    ("emails", Kind::StrList),
];

const fn concat_fields<const N: usize>(
    a: &[(&'static str, Kind)],
    b: &[(&'static str, Kind)],
) -> [(&'static str, Kind); N] {
    let mut out = [("", Kind::Str); N];
    let mut i = 0;
    while i < a.len() {
        out[i] = a[i];
        i += 1;
    }
    let mut j = 0;
    while j < b.len() {
        out[i + j] = b[j];
        j += 1;
    }
    out
}

/// Checks `spec` against `fields`, then deserializes it. Every field at fault is named at
/// once (`errors`), so a form shows them all together.
pub fn parse_spec<T: DeserializeOwned>(spec: Value, fields: &[(&str, Kind)]) -> Result<T, ApiError> {
    let Value::Object(map) = &spec else {
        return Err(ApiError::bad_request("spec", "spec must be an object"));
    };
    let mut errors = Vec::new();
    for (k, v) in map {
        let Some((_, kind)) = fields.iter().find(|(name, _)| name == k) else {
            let known: Vec<&str> = fields.iter().map(|(n, _)| *n).collect();
            errors.push(FieldError {
                parameter: format!("spec.{k}"),
                error: format!(
                    "unknown field {q_k}; known: {}",
                    known.join(", "),
                    q_k = crate::text::quote(k)
                ),
            });
            continue;
        };
        if v.is_null() {
            continue;
        }
        if let Kind::Env = kind {
            // Deserialized alone, so that a nested error keeps its path (`spec.env[0].name`).
            if let Err(e) = deserialize::<Vec<crate::crd::EnvVar>>(v.clone()) {
                errors.extend(error_at("spec.env", e).into_fields());
            }
            continue;
        }
        if let Kind::Retention = kind {
            errors.extend(check_retention(v));
            continue;
        }
        if let Err(what) = check(v, *kind) {
            errors.push(FieldError {
                parameter: format!("spec.{k}"),
                error: format!("must be {what}"),
            });
        }
    }
    if let Some(e) = ApiError::fields(errors) {
        return Err(e);
    }
    deserialize::<T>(spec)
        .map_err(|e| ApiError::fields(error_at("spec", e).into_fields()).expect("one error"))
}

/// A serde error as a 400 naming the field: `prefix` plus the error's path, plus the field
/// itself when it is missing (serde reports that at the enclosing object).
fn error_at(prefix: &str, e: serde_path_to_error::Error<DeError>) -> ApiError {
    let path = e.path().to_string();
    let error = e.into_inner();
    let mut field = prefix.to_string();
    if path != "." && path != "?" {
        if !path.starts_with('[') {
            field.push('.');
        }
        field.push_str(&path);
    }
    if let DeError::Missing(missing) = error {
        field = format!("{field}.{missing}");
    }
    ApiError::bad_request(field, error.to_string())
}

/// `v` as `T`, an error at its path, a missing field by name ([`DeError`]).
fn deserialize<T: DeserializeOwned>(v: Value) -> Result<T, serde_path_to_error::Error<DeError>> {
    serde_path_to_error::deserialize(JsonValue(v))
}

/// A run's `retention`: an object of known keys at each level (serde's `flatten` of the spec
/// would let unknown ones through silently), then its types, each error at its path
/// (`spec.retention.files.maxAge`). Its values are checked by [`crate::retention::check_override`].
fn check_retention(v: &Value) -> Vec<FieldError> {
    fn keys(v: &Value, at: &str, known: &[&str], errors: &mut Vec<FieldError>) {
        let Some(map) = v.as_object() else {
            errors.push(FieldError {
                parameter: at.to_string(),
                error: format!("must be an object with {}", known.join(", ")),
            });
            return;
        };
        for k in map.keys().filter(|k| !known.contains(&k.as_str())) {
            errors.push(FieldError {
                parameter: format!("{at}.{k}"),
                error: format!(
                    "unknown field {}; known: {}",
                    crate::text::quote(k),
                    known.join(", ")
                ),
            });
        }
    }
    let mut errors = Vec::new();
    keys(v, "spec.retention", &["keep", "maxAge", "files"], &mut errors);
    if let Some(files) = v.get("files").filter(|f| !f.is_null()) {
        keys(files, "spec.retention.files", &["maxAge"], &mut errors);
    }
    if errors.is_empty()
        && let Err(e) = deserialize::<crate::crd::RunRetention>(v.clone())
    {
        errors.extend(error_at("spec.retention", e).into_fields());
    }
    errors
}

fn check(v: &Value, kind: Kind) -> Result<(), String> {
    let ok = match kind {
        Kind::Str => v.is_string(),
        Kind::Bool => v.is_boolean(),
        Kind::Int(min, max) => v.as_i64().is_some_and(|n| (min..=max).contains(&n)),
        Kind::StrList => v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
        Kind::Env | Kind::Retention => true,
        Kind::OneOf(options) => v.as_str().is_some_and(|s| options.contains(&s)),
        Kind::IdOrName => v.is_string() || v.as_u64().is_some(),
    };
    if ok {
        return Ok(());
    }
    Err(match kind {
        Kind::Str => "a string".into(),
        Kind::Bool => "true or false".into(),
        Kind::Int(min, i64::MAX) => format!("an integer of at least {min}"),
        Kind::Int(min, max) => format!("an integer {min}–{max}"),
        Kind::StrList => "a list of strings".into(),
        Kind::Env => "a list of {name, value | valueFrom}".into(),
        Kind::Retention => "an object {keep, maxAge, files: {maxAge}}".into(),
        Kind::OneOf(options) => format!("one of {}", options.join(", ")),
        Kind::IdOrName => "an id (an integer) or a name (a string)".into(),
    })
}

/// A request body that must be a JSON object: anything else (not JSON, an array, a string) is a
/// 400 naming `body`. Bodies are read through this before any typed deserialization, since
/// serde reads a struct from an array of its fields as readily as from an object.
pub fn json_object(body: &[u8]) -> Result<serde_json::Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(ApiError::bad_request(
            "body",
            format!("the body must be a JSON object, not {}", json_kind(&other)),
        )),
        Err(e) => Err(ApiError::bad_request(
            "body",
            format!("the body is not JSON: {e}"),
        )),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Applies a `PATCH` body — `{"spec": {...}}`, an RFC 7396 JSON merge patch of the spec — to
/// `current`; returns the patched spec for the caller to check like a new one.
pub fn patched_spec(current: &impl serde::Serialize, body: &[u8]) -> Result<Value, ApiError> {
    let patch = json_object(body)?;
    let Some(spec_patch) = patch.get("spec").filter(|_| patch.len() == 1) else {
        return Err(ApiError::bad_request(
            "body",
            "send {\"spec\": {...}}: only the spec can be patched",
        ));
    };
    let mut spec =
        serde_json::to_value(current).map_err(|e| ApiError::internal("cannot encode the spec", e))?;
    merge_patch(&mut spec, spec_patch);
    Ok(spec)
}

/// RFC 7396 JSON merge patch: objects merge, `null` removes, anything else replaces.
fn merge_patch(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{NightlyScheduleSpec, TestRunSpec};
    use serde_json::json;

    fn field_of<T: DeserializeOwned + std::fmt::Debug>(spec: Value, fields: &[(&str, Kind)]) -> String {
        parse_spec::<T>(spec, fields).unwrap_err().parameter.unwrap()
    }

    #[test]
    fn every_error_names_its_field() {
        let base = json!({"service": "demo", "stand": "localhost"});
        let with = |k: &str, v: Value| {
            let mut s = base.clone();
            s[k] = v;
            s
        };
        assert_eq!(
            field_of::<TestRunSpec>(json!({"service": "demo"}), RUN_FIELDS),
            "spec.stand"
        );
        assert_eq!(
            field_of::<TestRunSpec>(with("prority", json!(1)), RUN_FIELDS),
            "spec.prority"
        );
        assert_eq!(
            field_of::<TestRunSpec>(with("priority", json!(10)), RUN_FIELDS),
            "spec.priority"
        );
        assert_eq!(
            field_of::<TestRunSpec>(with("type", json!("Weekly")), RUN_FIELDS),
            "spec.type"
        );
        assert_eq!(
            field_of::<TestRunSpec>(with("env", json!([{"value": "x"}])), RUN_FIELDS),
            "spec.env[0].name"
        );
        assert_eq!(
            field_of::<NightlyScheduleSpec>(with("concurrencyPolicy", json!("Sometimes")), SCHEDULE_FIELDS),
            "spec.concurrencyPolicy"
        );
        assert_eq!(
            field_of::<NightlyScheduleSpec>(with("startingDeadlineSeconds", json!(-5)), SCHEDULE_FIELDS),
            "spec.startingDeadlineSeconds"
        );
        assert!(parse_spec::<NightlyScheduleSpec>(base, SCHEDULE_FIELDS).is_ok());
    }

    #[test]
    fn a_runs_retention_is_read_and_its_errors_name_the_nested_field() {
        let with = |r: Value| json!({"service": "demo", "stand": "localhost", "retention": r});
        let spec: TestRunSpec = parse_spec(with(json!({"keep": true})), RUN_FIELDS).unwrap();
        assert!(spec.retention.unwrap().keep);
        let spec: TestRunSpec = parse_spec(
            with(json!({"maxAge": "400d", "files": {"maxAge": "30d"}})),
            RUN_FIELDS,
        )
        .unwrap();
        assert_eq!(spec.retention.unwrap().max_age.as_deref(), Some("400d"));
        for (bad, field) in [
            (json!({"days": 30}), "spec.retention.days"),
            (json!({"files": {"days": 3}}), "spec.retention.files.days"),
            (json!({"keep": "yes"}), "spec.retention.keep"),
            (json!({"files": {"maxAge": 7}}), "spec.retention.files.maxAge"),
            (json!("forever"), "spec.retention"),
        ] {
            assert_eq!(
                field_of::<TestRunSpec>(with(bad.clone()), RUN_FIELDS),
                field,
                "{bad}"
            );
        }
    }

    #[test]
    fn every_wrong_field_is_named_at_once_the_first_also_as_the_error() {
        let spec =
            json!({"service": "demo", "stand": "localhost", "prority": 1, "priority": 12, "emails": "qa"});
        let e = parse_spec::<TestRunSpec>(spec, RUN_FIELDS).unwrap_err();
        let named: Vec<&str> = e.errors.iter().map(|f| f.parameter.as_str()).collect();
        assert_eq!(named, ["spec.emails", "spec.priority", "spec.prority"]);
        assert_eq!(e.parameter.as_deref(), Some("spec.emails"));
        assert_eq!(e.message, e.errors[0].error);
    }
}
