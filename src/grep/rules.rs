//! Failure-classification rules in the shape of Allure's `categories.json`, validated and compiled.
//!
//! A rules file is a JSON array of objects. Every key Allure 2 knows is accepted (`name`, `description`,
//! `descriptionHtml`, `matchedStatuses`, `messageRegex`, `traceRegex`, `flaky`), so a user can paste an
//! existing Allure file unchanged; Tomato adds `logRegex` and `flags`. Keys nobody knows are tolerated (as
//! Allure's Jackson reader does) but reported by [`RuleSet::warnings`], because a typo such as
//! `messageRegexp` silently widens a rule and, with first-match-wins, would swallow every later rule.
//!
//! # Matching semantics (checked against Allure 2's `CategoriesPlugin`)
//!
//! * `matchedStatuses`: the test's status must be one of them; an empty or missing list means any status.
//! * `messageRegex` / `traceRegex`: Allure calls `Pattern.compile(regex, Pattern.DOTALL).matcher(text)
//!   .matches()`, i.e. the regex must match the WHOLE text and `.` also matches line terminators. We
//!   compile `\A(?:regex)\z` with `(?s)` on, which is the same full-match rule. Allure treats a test
//!   without a message (Java `null`) as not matching any `messageRegex`; our API passes `&str`, and an
//!   empty message or trace stands for "none" (that is what a result without a message carries), so a rule
//!   with `messageRegex` never matches an empty message — not even `.*`. The same holds for the trace.
//! * `logRegex` (Tomato's extension): searched in each line of the test's log, like `rg -e`; the rule
//!   needs at least one matching line. Lines are `\n`-terminated and a `\r` before the `\n` stays part of
//!   the line (ripgrep's default), so `foo$` does not match `foo\r\n`. See [`super::engine`].
//! * `flags`: an array of flag names applying to every regex of the rule. Only `"caseInsensitive"` exists
//!   (Unicode simple case folding, the same as an inline `(?i)`). Unknown flags are refused.
//! * A rule matches when every condition it gives holds. Unlike Allure, which files a test under every
//!   matching category, [`RuleSet::classify`] returns the FIRST matching rule: Tomato needs one verdict per
//!   failure. Allure's fallback categories ("Product defects"/"Test defects") are not invented here;
//!   `None` is returned and the caller decides.
//! * `flaky`: accepted for compatibility but not evaluated (Allure 2 matches it against the result's
//!   flaky mark, which this API does not receive); `flaky: true` produces a warning.
//!
//! Regexes use Rust `regex` syntax, not Java's: no look-around or back-references (these are refused
//! with the parser's error), which is what keeps every match linear in the input size. Java's `$` also
//! matches before a final line terminator; ours (`\z` in full-match mode) does not.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use regex_automata::meta;
use regex_syntax::hir::{Class, ClassBytes, ClassBytesRange, ClassUnicode, ClassUnicodeRange, Hir, HirKind};
use regex_syntax::hir::{Look, Repetition};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The one flag name currently understood in a rule's `flags` array.
pub const FLAG_CASE_INSENSITIVE: &str = "caseInsensitive";

/// A test result status, spelled as Allure spells it in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TestStatus {
    Failed,
    Broken,
    Passed,
    Skipped,
    Unknown,
}

impl TestStatus {
    /// Every status, in Allure's order.
    pub const ALL: [TestStatus; 5] = [
        TestStatus::Failed,
        TestStatus::Broken,
        TestStatus::Passed,
        TestStatus::Skipped,
        TestStatus::Unknown,
    ];

    /// The JSON spelling (`"failed"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            TestStatus::Failed => "failed",
            TestStatus::Broken => "broken",
            TestStatus::Passed => "passed",
            TestStatus::Skipped => "skipped",
            TestStatus::Unknown => "unknown",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for TestStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TestStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TestStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                format!("unknown status `{s}` (expected one of: failed, broken, passed, skipped, unknown)")
            })
    }
}

/// One rule of a rules file, as written (Allure `categories.json` keys plus `logRegex` and `flags`).
///
/// Fields that could be wrong are kept loosely typed (`matchedStatuses` as strings) so that
/// [`RuleSet::from_rules`] can report every mistake of every rule at once instead of serde stopping at
/// the first one; the JSON schema still advertises the strict shape.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CategoryRule {
    /// The category's name; required and non-empty.
    #[serde(default)]
    pub name: String,
    /// Free text shown with the category (Allure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// HTML description (Allure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description_html: Option<String>,
    /// Statuses the test must have; empty means any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<TestStatus>")]
    pub matched_statuses: Vec<String>,
    /// Must match the whole failure message (DOTALL, full match, as Allure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_regex: Option<String>,
    /// Must match the whole stack trace (DOTALL, full match, as Allure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_regex: Option<String>,
    /// Tomato extension: must match somewhere in at least one line of the test's log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_regex: Option<String>,
    /// Tomato extension: flags for all of this rule's regexes; only `"caseInsensitive"` exists.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
    /// Allure's flaky marker; accepted, not evaluated (see the module docs).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub flaky: bool,
    /// Tomato extension: failures of this category mean the stand (or a backend it needs) is
    /// down, not the product: when they dominate an attempt, the run ends and the stand is
    /// held ([`crate::outage`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub infrastructure: bool,
    /// Any other key: kept (so a file round-trips) and reported as a warning.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// What is wrong with one rule (or, with `index: None`, with the file as a whole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// Position of the rule in the array, from 0.
    pub index: Option<usize>,
    /// The rule's name when it has one.
    pub name: Option<String>,
    /// The offending key (`messageRegex`, ...), or empty when the whole rule or file is at fault.
    pub field: String,
    /// Human-readable reason; for a regex, the parser's own message (which points at the error).
    pub reason: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.index, &self.name) {
            (Some(i), Some(n)) => write!(f, "rule #{i} `{n}`")?,
            (Some(i), None) => write!(f, "rule #{i}")?,
            (None, _) => f.write_str("rules file")?,
        }
        if !self.field.is_empty() {
            write!(f, ", {}", self.field)?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// Every error found in a rules file (never empty).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct RuleSetError {
    pub errors: Vec<RuleError>,
}

impl fmt::Display for RuleSetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} error(s) in rules", self.errors.len())?;
        for e in &self.errors {
            // Regex errors span several lines (pattern, caret, message): keep them under their rule.
            write!(f, "\n  {}", e.to_string().replace('\n', "\n      "))?;
        }
        Ok(())
    }
}

/// For each rule (by index), whether its `logRegex` matched at least one line of a test's log.
///
/// Built by hand or from an engine's [`super::Counts`]; indexes past the end read as "no match".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleMatches {
    matched: Vec<bool>,
}

impl RuleMatches {
    /// No rule matched (e.g. the test has no log).
    pub fn none() -> Self {
        Self::default()
    }

    /// Record whether rule `rule` matched.
    pub fn set(&mut self, rule: usize, matched: bool) {
        if rule >= self.matched.len() {
            if !matched {
                return;
            }
            self.matched.resize(rule + 1, false);
        }
        self.matched[rule] = matched;
    }

    /// Whether rule `rule` matched.
    pub fn get(&self, rule: usize) -> bool {
        self.matched.get(rule).copied().unwrap_or(false)
    }
}

impl FromIterator<bool> for RuleMatches {
    fn from_iter<T: IntoIterator<Item = bool>>(iter: T) -> Self {
        Self {
            matched: iter.into_iter().collect(),
        }
    }
}

/// A rule's compiled conditions.
#[derive(Debug, Clone)]
struct Compiled {
    /// Bit set of [`TestStatus::bit`]; 0 = any status.
    statuses: u8,
    message: Option<meta::Regex>,
    trace: Option<meta::Regex>,
    has_log: bool,
}

/// A validated, compiled list of rules.
#[derive(Debug, Clone)]
pub struct RuleSet {
    rules: Vec<CategoryRule>,
    compiled: Vec<Compiled>,
    /// Per rule: the `logRegex` as a line-search HIR (`\n` removed from classes), for the engine.
    log_hirs: Vec<Option<Hir>>,
    warnings: Vec<String>,
}

impl RuleSet {
    /// Parse and validate a rules file (a JSON array of [`CategoryRule`]).
    ///
    /// Each element is decoded on its own, so a wrongly typed key in one rule is reported next to the
    /// problems of the others instead of hiding them.
    pub fn from_json(json: &str) -> Result<RuleSet, RuleSetError> {
        let file_error = |reason: String| RuleSetError {
            errors: vec![RuleError {
                index: None,
                name: None,
                field: String::new(),
                reason,
            }],
        };
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| file_error(format!("not valid JSON: {e}")))?;
        let serde_json::Value::Array(items) = value else {
            return Err(file_error(
                "expected a JSON array of rules (the shape of Allure's categories.json)".to_owned(),
            ));
        };
        let mut rules = Vec::with_capacity(items.len());
        let mut errors = Vec::new();
        for (index, item) in items.into_iter().enumerate() {
            let name = item.get("name").and_then(|n| n.as_str()).map(str::to_owned);
            match serde_json::from_value::<CategoryRule>(item) {
                Ok(rule) => rules.push(rule),
                Err(e) => {
                    errors.push(RuleError {
                        index: Some(index),
                        name,
                        field: String::new(),
                        reason: e.to_string(),
                    });
                    // A valid stand-in keeps the indexes of the following rules right and adds no error.
                    let stand_in = vec![TestStatus::Failed.as_str().to_owned()];
                    rules.push(CategoryRule {
                        name: "?".to_owned(),
                        matched_statuses: stand_in,
                        ..Default::default()
                    });
                }
            }
        }
        match Self::from_rules(rules) {
            Ok(set) if errors.is_empty() => Ok(set),
            Ok(_) => Err(RuleSetError { errors }),
            Err(more) => {
                errors.extend(more.errors);
                errors.sort_by_key(|e| e.index);
                Err(RuleSetError { errors })
            }
        }
    }

    /// Validate and compile rules, collecting every error of every rule.
    pub fn from_rules(rules: Vec<CategoryRule>) -> Result<RuleSet, RuleSetError> {
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let mut compiled = Vec::with_capacity(rules.len());
        let mut log_hirs = Vec::with_capacity(rules.len());
        for (index, rule) in rules.iter().enumerate() {
            let name = (!rule.name.trim().is_empty()).then(|| rule.name.clone());
            let mut err = |field: &str, reason: String| {
                errors.push(RuleError {
                    index: Some(index),
                    name: name.clone(),
                    field: field.to_owned(),
                    reason,
                });
            };
            if name.is_none() {
                err("name", "the name is missing or empty".to_owned());
            }
            let mut statuses = 0u8;
            for s in &rule.matched_statuses {
                match s.parse::<TestStatus>() {
                    Ok(st) => statuses |= st.bit(),
                    Err(reason) => err("matchedStatuses", reason),
                }
            }
            let mut case_insensitive = false;
            for flag in &rule.flags {
                if flag == FLAG_CASE_INSENSITIVE {
                    case_insensitive = true;
                } else {
                    err(
                        "flags",
                        format!("unknown flag `{flag}` (supported: \"{FLAG_CASE_INSENSITIVE}\")"),
                    );
                }
            }
            if rule.matched_statuses.is_empty()
                && rule.message_regex.is_none()
                && rule.trace_regex.is_none()
                && rule.log_regex.is_none()
            {
                err(
                    "",
                    "the rule has no condition (no matchedStatuses, messageRegex, traceRegex or logRegex) \
                     and would match every test"
                        .to_owned(),
                );
            }
            let mut full = |field: &str, pattern: &Option<String>| -> Option<meta::Regex> {
                let pattern = pattern.as_deref()?;
                match compile_full_match(pattern, case_insensitive) {
                    Ok(re) => Some(re),
                    Err(reason) => {
                        err(field, reason);
                        None
                    }
                }
            };
            let message = full("messageRegex", &rule.message_regex);
            let trace = full("traceRegex", &rule.trace_regex);
            let log_hir = match rule.log_regex.as_deref() {
                None => None,
                Some(pattern) => match parse_line_regex(pattern, case_insensitive) {
                    Ok(hir) => Some(hir),
                    Err(reason) => {
                        err("logRegex", reason);
                        None
                    }
                },
            };
            let label = match &name {
                Some(n) => format!("rule #{index} `{n}`"),
                None => format!("rule #{index}"),
            };
            for key in rule.other.keys() {
                warnings.push(format!(
                    "{label}: unknown key `{key}` ignored (known: name, description, descriptionHtml, \
                     matchedStatuses, messageRegex, traceRegex, logRegex, flags, flaky, infrastructure)"
                ));
            }
            if rule.flaky {
                warnings.push(format!(
                    "{label}: `flaky: true` is accepted but not evaluated by Tomato"
                ));
            }
            compiled.push(Compiled {
                statuses,
                message,
                trace,
                has_log: rule.log_regex.is_some(),
            });
            log_hirs.push(log_hir);
        }
        if errors.is_empty() {
            Ok(RuleSet {
                rules,
                compiled,
                log_hirs,
                warnings,
            })
        } else {
            Err(RuleSetError { errors })
        }
    }

    /// The rules as given.
    pub fn rules(&self) -> &[CategoryRule] {
        &self.rules
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there is no rule at all.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Non-fatal remarks (unknown keys, `flaky: true`), one line each.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The line-search HIR of each rule's `logRegex` (None for rules without one).
    pub(crate) fn log_hirs(&self) -> &[Option<Hir>] {
        &self.log_hirs
    }

    /// Index of the first rule matching a test (first-match-wins), if any.
    ///
    /// `message`/`trace` empty means "the test has none" (see the module docs); `log_matches` tells for
    /// each rule whether its `logRegex` matched a line of the test's log and is ignored for rules without
    /// `logRegex`.
    pub fn classify(
        &self,
        status: TestStatus,
        message: &str,
        trace: &str,
        log_matches: &RuleMatches,
    ) -> Option<usize> {
        self.compiled.iter().enumerate().find_map(|(i, c)| {
            let ok = (c.statuses == 0 || c.statuses & status.bit() != 0)
                && c.message
                    .as_ref()
                    .is_none_or(|re| !message.is_empty() && re.is_match(message))
                && c.trace
                    .as_ref()
                    .is_none_or(|re| !trace.is_empty() && re.is_match(trace))
                && (!c.has_log || log_matches.get(i));
            ok.then_some(i)
        })
    }
}

/// Compile an Allure message/trace regex: DOTALL and anchored at both ends (Java `Matcher.matches`).
fn compile_full_match(pattern: &str, case_insensitive: bool) -> Result<meta::Regex, String> {
    let hir = regex_syntax::ParserBuilder::new()
        .case_insensitive(case_insensitive)
        .dot_matches_new_line(true)
        .build()
        .parse(pattern)
        .map_err(|e| e.to_string())?;
    let anchored = Hir::concat(vec![Hir::look(Look::Start), hir, Hir::look(Look::End)]);
    meta::Builder::new()
        .build_from_hir(&anchored)
        .map_err(|e| e.to_string())
}

/// Parse a `logRegex` for line-by-line search, the way ripgrep prepares its patterns.
///
/// `^`/`$` are line anchors (multi-line mode) so the engine may run one regex over a whole chunk of
/// lines; `\n` is removed from every class (`[^x]`, `\s`, ...) so no match can ever cross a line; a
/// pattern that needs a literal `\n` could never match one line and is refused, as ripgrep does.
pub(crate) fn parse_line_regex(pattern: &str, case_insensitive: bool) -> Result<Hir, String> {
    let hir = regex_syntax::ParserBuilder::new()
        .case_insensitive(case_insensitive)
        .multi_line(true)
        .build()
        .parse(pattern)
        .map_err(|e| e.to_string())?;
    let hir = strip_newline(&hir)?;
    // Compile once now so size-limit errors are reported with the rule, not later by the engine.
    meta::Builder::new()
        .build_from_hir(&hir)
        .map_err(|e| e.to_string())?;
    Ok(hir)
}

/// Rebuild `hir` with `\n` removed from every class; a literal `\n` is an error.
fn strip_newline(hir: &Hir) -> Result<Hir, String> {
    Ok(match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => hir.clone(),
        HirKind::Literal(lit) => {
            if lit.0.contains(&b'\n') {
                return Err(
                    "the pattern contains a literal newline (\\n), which can never match within one \
                            log line (logs are searched line by line)"
                        .to_owned(),
                );
            }
            hir.clone()
        }
        HirKind::Class(Class::Unicode(cls)) => {
            let mut cls: ClassUnicode = cls.clone();
            cls.difference(&ClassUnicode::new([ClassUnicodeRange::new('\n', '\n')]));
            Hir::class(Class::Unicode(cls))
        }
        HirKind::Class(Class::Bytes(cls)) => {
            let mut cls: ClassBytes = cls.clone();
            cls.difference(&ClassBytes::new([ClassBytesRange::new(b'\n', b'\n')]));
            Hir::class(Class::Bytes(cls))
        }
        HirKind::Repetition(rep) => Hir::repetition(Repetition {
            sub: Box::new(strip_newline(&rep.sub)?),
            ..rep.clone()
        }),
        HirKind::Capture(cap) => Hir::capture(regex_syntax::hir::Capture {
            sub: Box::new(strip_newline(&cap.sub)?),
            ..cap.clone()
        }),
        HirKind::Concat(subs) => Hir::concat(subs.iter().map(strip_newline).collect::<Result<_, _>>()?),
        HirKind::Alternation(subs) => {
            Hir::alternation(subs.iter().map(strip_newline).collect::<Result<_, _>>()?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(json: &str) -> RuleSet {
        match RuleSet::from_json(json) {
            Ok(s) => s,
            Err(e) => panic!("rules refused: {e}"),
        }
    }

    fn errors(json: &str) -> Vec<RuleError> {
        match RuleSet::from_json(json) {
            Ok(_) => panic!("rules accepted: {json}"),
            Err(e) => e.errors,
        }
    }

    #[test]
    fn message_and_trace_are_full_match_with_dotall() {
        let rs =
            set(r#"[{"name": "npe", "messageRegex": "NullPointer.*", "traceRegex": ".*at com\\.x\\..*"}]"#);
        let none = RuleMatches::none();
        let trace = "java.lang.NullPointerException\n\tat com.x.Foo.bar(Foo.java:1)\n\tat org.junit.Runner";
        assert_eq!(
            rs.classify(TestStatus::Failed, "NullPointerException", trace, &none),
            Some(0)
        );
        // Full match: a prefix is not enough, a substring is not enough.
        assert_eq!(
            rs.classify(TestStatus::Failed, "java.lang.NullPointerException", trace, &none),
            None
        );
        // DOTALL: `.*` in the message crosses newlines.
        assert_eq!(
            rs.classify(TestStatus::Failed, "NullPointer\nsecond line", trace, &none),
            Some(0)
        );
        // Without DOTALL the trace regex could not span the three lines.
        assert_eq!(
            rs.classify(TestStatus::Failed, "NullPointer", "at com.y.Foo", &none),
            None
        );

        let exact = set(r#"[{"name": "x", "messageRegex": "abc"}]"#);
        assert_eq!(exact.classify(TestStatus::Failed, "abc", "", &none), Some(0));
        assert_eq!(
            exact.classify(TestStatus::Failed, "abc\n", "", &none),
            None,
            "no Java-like $ before \\n"
        );
        assert_eq!(exact.classify(TestStatus::Failed, "xabc", "", &none), None);
        // Alternation under full match: any branch that covers the whole text.
        let alt = set(r#"[{"name": "x", "messageRegex": "a|ab"}]"#);
        assert_eq!(alt.classify(TestStatus::Failed, "ab", "", &none), Some(0));
    }

    #[test]
    fn empty_message_never_matches_a_message_regex() {
        let rs = set(r#"[{"name": "any", "messageRegex": ".*"}, {"name": "t", "traceRegex": ".*"}]"#);
        let none = RuleMatches::none();
        assert_eq!(rs.classify(TestStatus::Failed, "", "", &none), None);
        assert_eq!(rs.classify(TestStatus::Failed, "", "x", &none), Some(1));
        assert_eq!(rs.classify(TestStatus::Failed, "boom", "", &none), Some(0));
    }

    #[test]
    fn first_match_wins_and_statuses_filter() {
        let rs = set(r#"[
              {"name": "broken timeouts", "matchedStatuses": ["broken"], "messageRegex": ".*Timeout.*"},
              {"name": "timeouts", "messageRegex": ".*Timeout.*"},
              {"name": "all failures", "matchedStatuses": ["failed", "broken"]},
              {"name": "ignored", "matchedStatuses": ["skipped"]}
            ]"#);
        let none = RuleMatches::none();
        assert_eq!(
            rs.classify(TestStatus::Broken, "TimeoutException", "", &none),
            Some(0)
        );
        assert_eq!(
            rs.classify(TestStatus::Failed, "TimeoutException", "", &none),
            Some(1)
        );
        assert_eq!(
            rs.classify(TestStatus::Passed, "TimeoutException", "", &none),
            Some(1)
        );
        assert_eq!(rs.classify(TestStatus::Failed, "assert", "", &none), Some(2));
        assert_eq!(rs.classify(TestStatus::Skipped, "", "", &none), Some(3));
        assert_eq!(rs.classify(TestStatus::Passed, "", "", &none), None);
    }

    #[test]
    fn log_condition_uses_rule_matches() {
        let rs = set(r#"[
              {"name": "db", "matchedStatuses": ["failed"], "logRegex": "Connection refused"},
              {"name": "other", "matchedStatuses": ["failed"]}
            ]"#);
        let mut m = RuleMatches::none();
        assert_eq!(rs.classify(TestStatus::Failed, "x", "", &m), Some(1));
        m.set(0, true);
        assert_eq!(rs.classify(TestStatus::Failed, "x", "", &m), Some(0));
        // A rule without logRegex ignores the log matches.
        m.set(1, true);
        m.set(0, false);
        assert_eq!(rs.classify(TestStatus::Failed, "x", "", &m), Some(1));
    }

    #[test]
    fn case_insensitive_flag() {
        let rs = set(
            r#"[{"name": "dl", "messageRegex": ".*deadlock.*", "logRegex": "deadlock", "flags": ["caseInsensitive"]}]"#,
        );
        let mut m = RuleMatches::none();
        m.set(0, true);
        assert_eq!(
            rs.classify(TestStatus::Failed, "DEADLOCK detected", "", &m),
            Some(0)
        );
        let strict = set(r#"[{"name": "dl", "messageRegex": ".*deadlock.*"}]"#);
        assert_eq!(
            strict.classify(TestStatus::Failed, "DEADLOCK detected", "", &m),
            None
        );
        let errs = errors(r#"[{"name": "x", "messageRegex": "a", "flags": ["ignoreCase"]}]"#);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "flags");
        assert!(errs[0].reason.contains("ignoreCase"), "{}", errs[0].reason);
    }

    #[test]
    fn bad_rules_are_refused_with_name_and_regex_error() {
        let errs = errors(
            r#"[
              {"name": "good", "messageRegex": "ok"},
              {"name": "bad regex", "messageRegex": "Timeout(", "logRegex": "a[b"},
              {"name": "bad status", "matchedStatuses": ["failed", "exploded"]},
              {"name": "", "messageRegex": "x"},
              {"name": "empty"},
              {"name": "lookahead", "traceRegex": "foo(?=bar)"},
              {"name": "typed", "messageRegex": 5}
            ]"#,
        );
        let find = |i: usize, field: &str| {
            errs.iter()
                .find(|e| e.index == Some(i) && e.field == field)
                .unwrap_or_else(|| panic!("no error for #{i} {field}: {errs:?}"))
        };
        let e = find(1, "messageRegex");
        assert_eq!(e.name.as_deref(), Some("bad regex"));
        assert!(e.reason.contains("unclosed group"), "{}", e.reason);
        assert!(find(1, "logRegex").reason.contains("unclosed character class"));
        assert!(find(2, "matchedStatuses").reason.contains("exploded"));
        assert!(find(3, "name").name.is_none());
        assert!(find(4, "").reason.contains("no condition"));
        assert!(find(5, "traceRegex").reason.contains("look-around"));
        assert_eq!(find(6, "").name.as_deref(), Some("typed"));
        assert!(!errs.iter().any(|e| e.index == Some(0)));
        let text = RuleSetError { errors: errs.clone() }.to_string();
        assert!(text.contains("rule #1 `bad regex`, messageRegex: "), "{text}");
    }

    #[test]
    fn allure_keys_are_tolerated_and_unknown_keys_warned() {
        let rs = set(
            r#"[{"name": "Ignored tests", "description": "d", "descriptionHtml": "<b>d</b>",
                 "matchedStatuses": ["skipped"], "flaky": false, "messageRegexp": ".*"}]"#,
        );
        assert_eq!(rs.warnings().len(), 1);
        assert!(rs.warnings()[0].contains("messageRegexp"));
        // The file round-trips through serde with Allure's camelCase keys.
        let json = serde_json::to_string(&rs.rules()[0]).unwrap_or_default();
        assert!(
            json.contains("\"matchedStatuses\":[\"skipped\"]") && json.contains("descriptionHtml"),
            "{json}"
        );
        assert!(errors("{}")[0].reason.contains("array"));
        assert!(errors("[1,")[0].reason.contains("JSON"));
    }

    #[test]
    fn log_regex_with_literal_newline_is_refused() {
        let errs = errors(r#"[{"name": "nl", "logRegex": "a\\nb"}]"#);
        assert!(errs[0].reason.contains("newline"), "{}", errs[0].reason);
    }

    #[test]
    fn pathological_regex_is_linear() {
        let rs = set(r#"[{"name": "redos", "messageRegex": "(a+)+$"}]"#);
        let mut text = "a".repeat(100_000);
        text.push('b');
        let none = RuleMatches::none();
        assert_eq!(rs.classify(TestStatus::Failed, &text, "", &none), None);
        text.pop();
        assert_eq!(rs.classify(TestStatus::Failed, &text, "", &none), Some(0));
    }

    #[test]
    fn json_schema_lists_statuses() {
        let schema = serde_json::to_string(&schemars::schema_for!(CategoryRule)).unwrap_or_default();
        assert!(
            schema.contains("matchedStatuses") && schema.contains("broken"),
            "{schema}"
        );
    }
}
