//! A file's shape errors in the user's words.
//!
//! serde and the YAML parser describe a wrong field in their own terms ("invalid u8",
//! "unexpected event: expected mapping start", "invalid type: sequence, expected struct
//! RawPack"). These are the standard messages of `serde::de::Error` (`unknown_field`,
//! `invalid_type`, `invalid_value`, `missing_field`) and of serde-saphyr's scalar and
//! structure checks; their wording is matched here, in one place, and rephrased as what was
//! expected and what the file holds, with "did you mean" for a misspelt field. A message of
//! another form is passed on as it is.

use serde_json::Value;

use crate::suggest::did_you_mean;

/// `reason` (from serde or the YAML parser, about `field`) in the user's words; `tree` is the
/// document as read without a schema, for what the file holds at `field`.
pub fn plain(field: &str, reason: &str, tree: Option<&Value>) -> String {
    let (reason, at) = split_position(reason.trim());
    let written = tree.and_then(|t| value_at(t, field)).map(describe);
    let got = |fallback: Option<String>| {
        written
            .clone()
            .or(fallback)
            .map_or_else(String::new, |w| format!(", not {w}"))
    };
    let text = if let Some(rest) = reason.strip_prefix("unknown field `") {
        let (name, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let names = field_names(expected);
        if names.is_empty() {
            format!("unknown field {name:?}: nothing may be given here")
        } else {
            format!(
                "unknown field {name:?}{}; the fields here are {}",
                did_you_mean(name, names.iter().map(String::as_str)),
                names.join(", ")
            )
        }
    } else if let Some(rest) = reason.strip_prefix("missing field `") {
        let name = rest.split('`').next().unwrap_or(rest);
        format!("{name:?} is required here and missing")
    } else if let Some(rest) = reason
        .strip_prefix("invalid type: ")
        .or_else(|| reason.strip_prefix("invalid value: "))
    {
        match rest.rsplit_once(", expected ") {
            Some((found, expected)) => {
                format!("expected {}{}", kind(expected), got(Some(found_value(found))))
            }
            None => reason.to_string(),
        }
    } else if let Some((_, expected)) = reason
        .strip_prefix("invalid length ")
        .and_then(|r| r.split_once(", expected "))
        .filter(|(_, e)| e.starts_with("struct "))
    {
        // A list where a mapping belongs, read by serde as a struct's fields in order.
        format!("expected {}, not a list", kind(expected))
    } else if let Some(expected) = reason.strip_prefix("unexpected event: expected ") {
        format!("expected {}{}", kind(expected), got(None))
    } else if let Some(int) = reason
        .strip_prefix("invalid ")
        .filter(|t| number_range(t).is_some())
    {
        format!("expected {}{}", kind(int), got(None))
    } else {
        reason.to_string()
    };
    match at {
        Some(at) => format!("{text} ({at})"),
        None => text,
    }
}

/// Splits off the parser's ` at line L, column C`.
fn split_position(reason: &str) -> (&str, Option<&str>) {
    match reason.rfind(" at line ") {
        Some(i) if reason[i..].contains(", column ") => (&reason[..i], Some(reason[i + 4..].trim())),
        _ => (reason, None),
    }
}

/// The field names of serde's `expected one of `a`, `b``, `expected `a` or `b``,
/// `expected `a``, or (serde-saphyr) `expected one of a, b`.
fn field_names(expected: &str) -> Vec<String> {
    let list = expected
        .trim_start_matches(", ")
        .trim_start_matches("expected ")
        .trim_start_matches("one of ");
    if list.starts_with("there are no fields") || list.is_empty() {
        return Vec::new();
    }
    list.split(", ")
        .flat_map(|s| s.split(" or "))
        .map(|s| s.trim().trim_matches('`').to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// What serde or the parser expected, in words.
fn kind(expected: &str) -> String {
    let e = expected.trim();
    if let Some((lo, hi)) = number_range(e) {
        return format!("a whole number from {lo} to {hi}");
    }
    let words = match e {
        "mapping start" | "a map" | "map" => "a mapping (key: value)",
        "sequence start" | "a sequence" | "sequence" => "a list ([a, b] or lines starting with '- ')",
        "string scalar" | "a string" | "string" => "text",
        "a boolean" | "boolean" => "true or false",
        e if e.starts_with("struct ") => "a mapping (key: value)",
        e if e.starts_with("a borrowed string") => "text",
        _ => return e.to_string(),
    };
    words.to_string()
}

fn number_range(t: &str) -> Option<(i128, u128)> {
    Some(match t {
        "u8" => (0, u8::MAX.into()),
        "u16" => (0, u16::MAX.into()),
        "u32" => (0, u32::MAX.into()),
        "u64" => (0, u64::MAX.into()),
        "i32" => (i32::MIN.into(), i32::MAX as u128),
        "i64" => (i64::MIN.into(), i64::MAX as u128),
        _ => return None,
    })
}

/// serde's `Unexpected` (`string "x"`, `integer `-1``, `sequence`, `map`) as written in YAML.
fn found_value(found: &str) -> String {
    let f = found.trim();
    if let Some(s) = f.strip_prefix("string ") {
        return s.to_string();
    }
    for prefix in ["integer ", "floating point ", "boolean "] {
        if let Some(v) = f.strip_prefix(prefix) {
            return v.trim_matches('`').to_string();
        }
    }
    match f {
        "sequence" => "a list".into(),
        "map" => "a mapping".into(),
        "unit value" => "nothing (null)".into(),
        f => f.to_string(),
    }
}

/// A value as the user wrote it, briefly.
fn describe(v: &Value) -> String {
    match v {
        Value::Null => "nothing (null)".into(),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
        Value::String(s) => format!("{:?}", s.chars().take(60).collect::<String>()),
        v => v.to_string(),
    }
}

/// The node at a path as serde_path_to_error writes it (`packs.smoke.tests[1]`).
fn value_at<'a>(tree: &'a Value, path: &str) -> Option<&'a Value> {
    let mut node = tree;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let mut pieces = part.split('[');
        let key = pieces.next().unwrap_or_default();
        if !key.is_empty() {
            node = node.get(key)?;
        }
        for index in pieces {
            node = node.get(index.trim_end_matches(']').parse::<usize>().ok()?)?;
        }
    }
    Some(node)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> Value {
        serde_json::json!({"retries": "lots", "packs": {"two": ["a"]}, "launch": {"command": ["a", 7]}})
    }

    #[test]
    fn an_unknown_field_is_named_with_its_nearest_field_and_the_fields_there() {
        let m = plain(
            "launch.comand",
            "unknown field `comand`, expected one of `runner`, `command`, `args`",
            None,
        );
        assert_eq!(
            m,
            "unknown field \"comand\", did you mean \"command\"?; the fields here are runner, command, args"
        );
        let m = plain(
            "stands.concurency",
            "unknown field `concurency`, expected one of pattern, concurrency at line 1, column 30",
            None,
        );
        assert_eq!(
            m,
            "unknown field \"concurency\", did you mean \"concurrency\"?; the fields here are pattern, concurrency (line 1, column 30)"
        );
        let m = plain(
            "packs.a.tag",
            "unknown field `tag`, expected `description` or `tests`",
            None,
        );
        assert_eq!(m, "unknown field \"tag\"; the fields here are description, tests");
    }

    #[test]
    fn a_wrong_type_says_what_was_expected_and_what_the_file_holds() {
        let t = tree();
        assert_eq!(
            plain("retries", "invalid u8 at line 2, column 10", Some(&t)),
            "expected a whole number from 0 to 255, not \"lots\" (line 2, column 10)"
        );
        assert_eq!(
            plain(
                "packs.two",
                "unexpected event: expected mapping start at line 4, column 8",
                Some(&t)
            ),
            "expected a mapping (key: value), not a list (line 4, column 8)"
        );
        assert_eq!(
            plain("concurrency", "invalid value: integer `-1`, expected u32", None),
            "expected a whole number from 0 to 4294967295, not -1"
        );
        assert_eq!(
            plain(
                "packs.all.tests",
                "invalid type: string \"{dir}/tests\", expected a sequence",
                None
            ),
            "expected a list ([a, b] or lines starting with '- '), not \"{dir}/tests\""
        );
        assert_eq!(
            plain(
                "launch.command[1]",
                "invalid type: integer `7`, expected a string",
                Some(&t)
            ),
            "expected text, not 7"
        );
        assert_eq!(
            plain(
                "packs.x",
                "invalid length 1, expected struct RawPack with 2 elements",
                None
            ),
            "expected a mapping (key: value), not a list"
        );
        assert_eq!(
            plain("packs.x", "invalid type: sequence, expected struct RawPack", None),
            "expected a mapping (key: value), not a list"
        );
        for m in [
            plain("retries", "invalid u8", Some(&t)),
            plain("packs.two", "unexpected event: expected mapping start", Some(&t)),
        ] {
            assert!(
                !m.contains("u8") && !m.contains("event") && !m.contains("Raw"),
                "{m}"
            );
        }
    }

    #[test]
    fn a_missing_field_and_other_messages() {
        assert_eq!(
            plain("stands", "missing field `pattern`", None),
            "\"pattern\" is required here and missing"
        );
        assert_eq!(plain("", "something else", None), "something else");
    }
}
