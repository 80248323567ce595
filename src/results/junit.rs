//! Streaming parser for JUnit XML test reports.
//!
//! Test runners of every language can write their results as "JUnit XML", but each writes its own
//! dialect. This module turns any of the dialects Tomato meets (pytest xunit1/xunit2, Node's built-in
//! runner, Maven Surefire, Jest with jest-junit, Playwright) into a flat sequence of [`Case`]s, one
//! per `<testcase>`, with a normalized [`CaseStatus`], message, trace and captured output. It does not
//! interpret suite-level counters (`tests=`, `failures=`...): the cases themselves are the truth.
//!
//! # Streaming design
//!
//! Reports can be hundreds of megabytes, so the parser never builds a DOM and never reads the whole
//! file. It pulls events from a [`quick_xml::Reader`] built on the caller's [`BufRead`], reusing one
//! event buffer, and drives a small state machine:
//!
//! * a stack of `Frame`s (one small enum per open element) says what the current element means;
//! * the names of the open `<testsuite>`s are kept in a `Vec<String>`;
//! * one case is under construction at a time; text is copied only while inside that case's
//!   `<failure>`/`<error>`/`<skipped>`/`<system-out>`/`<system-err>`, and each such field is capped at
//!   [`MAX_FIELD_BYTES`] (the first and last halves are kept, see `CappedText`);
//! * the moment `</testcase>` (or a self-closing `<testcase/>`) is seen, the case is handed to the
//!   caller's callback and forgotten.
//!
//! Memory is therefore bounded by the open-element depth (capped at [`MAX_DEPTH`]), one case's capped
//! fields, and quick-xml's event buffer, which must hold the largest single XML token (e.g. one text
//! node). The buffer is shrunk back after an unusually large token so that one huge `<system-out>` does
//! not keep its memory for the rest of the file.
//!
//! # Status rules
//!
//! A case's status comes from its own direct children only: [`CaseStatus::Errored`] if it has any
//! `<error>`, else [`CaseStatus::Failed`] if it has any `<failure>` (or, with no such child, a Node-style
//! `failure="..."` attribute), else [`CaseStatus::Skipped`] if it has a `<skipped>`, else
//! [`CaseStatus::Passed`]. Message, kind and trace come from the first element of the winning kind.
//! Surefire's rerun elements (`<flakyFailure>`, `<flakyError>`, `<rerunFailure>`, `<rerunError>`) and
//! everything inside them are ignored, so a test that passed on a Surefire-internal rerun is `Passed`
//! and one that failed every rerun keeps the status and fields of its final `<failure>`/`<error>`.
//! Suite-level `<system-out>`/`<system-err>` and `<properties>` are ignored.
//!
//! # Leniency
//!
//! Structure errors are errors (mismatched or missing end tags, a root that is not
//! `<testsuites>`/`<testsuite>`, a file cut short, invalid UTF-8), each with a byte position where
//! one is known; cases completed before the error have already been delivered. Small sins that
//! writers commit are tolerated: unknown entities (`&nbsp;`) are kept verbatim, a lone `&` is text,
//! duplicate attributes are not checked (the last one wins), and several root elements in a row
//! (concatenated reports) are read one after the other. Element and attribute names are matched
//! literally, without namespace prefixes, as every known writer emits them.
//!
//! The hot path (three attributes per `<testcase>`) reads attributes with a small scanner and falls
//! back to quick-xml's attribute iterator for anything unusual; `time` values of the plain `1.234`
//! form are converted with integer arithmetic.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use quick_xml::XmlVersion;
use quick_xml::events::attributes::Attribute;
use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::name::QName;
use quick_xml::reader::Reader;

/// Largest text kept per field (trace, system_out, system_err, message). Longer text keeps its
/// first and last halves with a "\n… [N bytes truncated] …\n" marker in between.
pub const MAX_FIELD_BYTES: usize = 1 << 20;

/// Deepest element nesting accepted; deeper input is rejected with [`JunitError::TooDeep`] so that a
/// hostile file cannot grow the element stack without bound.
pub const MAX_DEPTH: usize = 1024;

/// Event buffers that grew beyond this after one large token are replaced by a fresh small one.
const BUF_SHRINK_ABOVE: usize = 4 << 20;
const BUF_INITIAL: usize = 64 << 10;

/// One test case as reported in a JUnit file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Case {
    /// Names of the enclosing `<testsuite>` elements, outermost first (the `<testsuites>` root is not
    /// included).
    pub suites: Vec<String>,
    /// `classname` attribute, `""` when absent.
    pub classname: String,
    /// `name` attribute, `""` when absent.
    pub name: String,
    /// `file` attribute when present (pytest xunit1, some others).
    pub file: Option<String>,
    /// `time` attribute (seconds, float) converted to milliseconds; `None` if absent or unparsable.
    pub time_ms: Option<u64>,
    pub status: CaseStatus,
    /// `message` attribute of the failure/error/skipped element; if none, Node's `failure="..."`
    /// attribute on `<testcase>`; if none, the first non-empty line of the element's text.
    pub message: String,
    /// `type` attribute of the failure/error/skipped element, `""` if none.
    pub kind: String,
    /// Text content (including CDATA) of the failure/error element, trimmed. Empty for other statuses.
    pub trace: String,
    /// `<system-out>` of the case (text + CDATA), without leading blank lines and trailing whitespace.
    pub system_out: String,
    /// `<system-err>` of the case, trimmed like `system_out`.
    pub system_err: String,
}

impl Case {
    /// A failed case known only by its names (no suites, time or output): what check-config's
    /// rerun examples and unit tests start from.
    pub fn failed(classname: &str, name: &str, file: Option<&str>) -> Case {
        Case {
            suites: vec![],
            classname: classname.into(),
            name: name.into(),
            file: file.map(Into::into),
            time_ms: None,
            status: CaseStatus::Failed,
            message: String::new(),
            kind: String::new(),
            trace: String::new(),
            system_out: String::new(),
            system_err: String::new(),
        }
    }
}

/// Outcome of one test case; see the module documentation for how it is derived.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CaseStatus {
    Passed,
    Failed,
    Errored,
    Skipped,
}

impl CaseStatus {
    /// Lower-case name, as used in logs and storage.
    pub fn as_str(self) -> &'static str {
        match self {
            CaseStatus::Passed => "passed",
            CaseStatus::Failed => "failed",
            CaseStatus::Errored => "errored",
            CaseStatus::Skipped => "skipped",
        }
    }

    /// Precedence when one case has several outcome elements: error > failure > skipped > none.
    fn rank(self) -> u8 {
        match self {
            CaseStatus::Passed => 0,
            CaseStatus::Skipped => 1,
            CaseStatus::Failed => 2,
            CaseStatus::Errored => 3,
        }
    }
}

/// What one parse did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Number of cases handed to the callback.
    pub cases: u64,
    /// Number of bytes of input consumed.
    pub bytes: u64,
}

/// Why a report could not be parsed. Cases completed before the error have already been delivered.
#[derive(Debug, thiserror::Error)]
pub enum JunitError {
    #[error("cannot open JUnit report {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("I/O error while reading JUnit report: {0}")]
    Io(#[source] io::Error),
    #[error("malformed XML in JUnit report at byte {position}: {source}")]
    Xml {
        position: u64,
        #[source]
        source: quick_xml::Error,
    },
    #[error("not a JUnit report: the input contains no XML element (empty file?)")]
    Empty,
    #[error("not a JUnit report: root element is <{root}>, expected <testsuites> or <testsuite>")]
    NotJunit { root: String },
    #[error("truncated JUnit report: input ends at byte {position} while <{open}> is still open")]
    Truncated { position: u64, open: String },
    #[error("JUnit report nests elements deeper than {MAX_DEPTH} levels (at byte {position})")]
    TooDeep { position: u64 },
}

/// Opens `path` and parses it with [`parse`].
pub fn parse_file(path: &Path, on_case: impl FnMut(Case)) -> Result<Stats, JunitError> {
    let file = File::open(path).map_err(|source| JunitError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    parse(BufReader::with_capacity(256 << 10, file), on_case)
}

/// Parses JUnit XML from a reader, calling `on_case` for each test case as soon as it is complete.
/// Memory use is bounded by the largest single case (capped, see [`MAX_FIELD_BYTES`]), never by the
/// file size.
///
/// Several root elements in a row (concatenated reports) are accepted as long as each is
/// `<testsuites>` or `<testsuite>`.
pub fn parse<R: BufRead>(reader: R, mut on_case: impl FnMut(Case)) -> Result<Stats, JunitError> {
    let mut xml = Reader::from_reader(reader);
    xml.config_mut().allow_dangling_amp = true;
    let mut buf = Vec::with_capacity(BUF_INITIAL);
    let mut state = State::default();
    loop {
        let token_start = xml.buffer_position();
        let event = match xml.read_event_into(&mut buf) {
            Ok(event) => event,
            // An error lies inside the token being read: never report a position before its start.
            Err(e) => return Err(xml_error(e, xml.error_position().max(token_start))),
        };
        let position = xml.buffer_position();
        match event {
            Event::Start(e) => state.start(&e, position)?,
            Event::Empty(e) => {
                state.start(&e, position)?;
                state.end(&mut on_case);
            }
            Event::End(_) => state.end(&mut on_case),
            Event::Text(t) => {
                if let Some(field) = state.text_field() {
                    field.push(&t.xml10_content());
                }
            }
            Event::CData(t) => {
                if let Some(field) = state.text_field() {
                    field.push(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                if let Some(field) = state.text_field() {
                    push_reference(field, &r);
                }
            }
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
        }
        if buf.capacity() > BUF_SHRINK_ABOVE {
            buf = Vec::with_capacity(BUF_INITIAL);
        } else {
            buf.clear();
        }
    }
    let position = xml.buffer_position();
    if let Some(open) = state.innermost_name() {
        return Err(JunitError::Truncated { position, open });
    }
    if !state.seen_root {
        return Err(JunitError::Empty);
    }
    Ok(Stats {
        cases: state.cases,
        bytes: position,
    })
}

fn xml_error(error: quick_xml::Error, position: u64) -> JunitError {
    match error {
        quick_xml::Error::Io(e) => JunitError::Io(
            Arc::try_unwrap(e).unwrap_or_else(|shared| io::Error::new(shared.kind(), shared.to_string())),
        ),
        source => JunitError::Xml { position, source },
    }
}

/// Appends the text an entity or character reference stands for; unknown entities are kept verbatim.
fn push_reference(field: &mut CappedText, reference: &BytesRef<'_>) {
    let name: &str = reference;
    if let Ok(Some(c)) = reference.resolve_char_ref() {
        let mut tmp = [0u8; 4];
        field.push(c.encode_utf8(&mut tmp));
    } else if let Some(text) = quick_xml::escape::resolve_predefined_entity(name) {
        field.push(text);
    } else {
        field.push("&");
        field.push(name);
        field.push(";");
    }
}

/// Meaning of one open element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Frame {
    /// `<testsuites>` root.
    Suites,
    /// `<testsuite>`; its name is on [`State::suites`].
    Suite,
    /// `<testcase>` directly under a suite (or the root).
    Case,
    /// `<failure>`, `<error>` or `<skipped>` of the current case; `capture` is false when an
    /// outcome of higher or equal precedence was seen before (its text is then ignored).
    Outcome {
        capture: bool,
        status: CaseStatus,
    },
    SystemOut,
    SystemErr,
    /// Anything else; its whole subtree is ignored.
    Ignored,
}

#[derive(Default)]
struct State {
    frames: Vec<Frame>,
    /// Names of the open [`Frame::Ignored`] elements (the other frames imply their name), kept only
    /// for the `Truncated` error message.
    ignored_names: Vec<String>,
    suites: Vec<String>,
    case: CaseBuilder,
    seen_root: bool,
    cases: u64,
}

impl State {
    fn start(&mut self, e: &BytesStart<'_>, position: u64) -> Result<(), JunitError> {
        if self.frames.len() >= MAX_DEPTH {
            return Err(JunitError::TooDeep { position });
        }
        let name = e.name();
        let name: &str = name.as_ref();
        let attr_err = |source| JunitError::Xml { position, source };
        let frame = match (self.frames.last(), name) {
            (None, "testsuites") => Frame::Suites,
            (None, "testsuite") => {
                self.suites
                    .push(attr(e, "name").map_err(attr_err)?.unwrap_or_default());
                Frame::Suite
            }
            (None, _) => {
                return Err(JunitError::NotJunit {
                    root: name.to_string(),
                });
            }
            (Some(Frame::Suites | Frame::Suite), "testsuite") => {
                self.suites
                    .push(attr(e, "name").map_err(attr_err)?.unwrap_or_default());
                Frame::Suite
            }
            (Some(Frame::Suites | Frame::Suite), "testcase") => {
                self.case.begin(e).map_err(attr_err)?;
                Frame::Case
            }
            (Some(Frame::Case), "failure") => self.case.outcome(CaseStatus::Failed, e).map_err(attr_err)?,
            (Some(Frame::Case), "error") => self.case.outcome(CaseStatus::Errored, e).map_err(attr_err)?,
            (Some(Frame::Case), "skipped") => self.case.outcome(CaseStatus::Skipped, e).map_err(attr_err)?,
            (Some(Frame::Case), "system-out") => Frame::SystemOut,
            (Some(Frame::Case), "system-err") => Frame::SystemErr,
            _ => Frame::Ignored,
        };
        if frame == Frame::Ignored {
            self.ignored_names.push(name.to_string());
        }
        self.seen_root = true;
        self.frames.push(frame);
        Ok(())
    }

    fn end(&mut self, on_case: &mut impl FnMut(Case)) {
        match self.frames.pop() {
            Some(Frame::Ignored) => {
                self.ignored_names.pop();
            }
            Some(Frame::Suite) => {
                self.suites.pop();
            }
            Some(Frame::Case) => {
                let builder = std::mem::take(&mut self.case);
                on_case(builder.finish(&self.suites));
                self.cases += 1;
            }
            _ => {}
        }
    }

    /// The field that text at the current position belongs to, if it is kept at all.
    fn text_field(&mut self) -> Option<&mut CappedText> {
        match self.frames.last()? {
            Frame::Outcome { capture: true, .. } => Some(&mut self.case.body),
            Frame::SystemOut => Some(&mut self.case.system_out),
            Frame::SystemErr => Some(&mut self.case.system_err),
            _ => None,
        }
    }
}

impl State {
    /// Name of the innermost open element, if any.
    fn innermost_name(&self) -> Option<String> {
        let name = match self.frames.last()? {
            Frame::Suites => "testsuites",
            Frame::Suite => "testsuite",
            Frame::Case => "testcase",
            Frame::Outcome {
                status: CaseStatus::Errored,
                ..
            } => "error",
            Frame::Outcome {
                status: CaseStatus::Skipped,
                ..
            } => "skipped",
            Frame::Outcome { .. } => "failure",
            Frame::SystemOut => "system-out",
            Frame::SystemErr => "system-err",
            Frame::Ignored => return self.ignored_names.last().cloned(),
        };
        Some(name.to_string())
    }
}

/// Returns the normalized value of attribute `key`.
fn attr(e: &BytesStart<'_>, key: &str) -> Result<Option<String>, quick_xml::Error> {
    let mut found = None;
    for_each_attr(e, |k, v| {
        if k == key {
            found = Some(attr_value(v));
        }
    })?;
    Ok(found)
}

/// Calls `f(key, raw_value)` for each attribute of `e`.
///
/// Well-formed attribute lists, i.e. nearly all, take a small hand-written scanner (this is the hot
/// path: three attributes per `<testcase>`); anything it does not accept goes through quick-xml's
/// attribute iterator, which then reports the syntax error. `f` may see some attributes twice in that
/// case, so it must be idempotent.
fn for_each_attr<'a>(
    e: &'a BytesStart<'_>,
    mut f: impl FnMut(&'a str, &'a str),
) -> Result<(), quick_xml::Error> {
    if scan_attrs(e.attributes_raw(), &mut f) {
        return Ok(());
    }
    for a in e.attributes().with_checks(false) {
        let a = a?;
        // Values borrowed from `e` stay valid for 'a; an owned (never produced by the reader) value
        // cannot be lent out and is skipped.
        if let (QName(key), Cow::Borrowed(value)) = (a.key, a.value) {
            f(key, value);
        }
    }
    Ok(())
}

/// Scans `name="value"` / `name='value'` pairs separated by XML whitespace. Returns false on
/// anything else (the caller then falls back to quick-xml).
fn scan_attrs<'a>(raw: &'a str, f: &mut impl FnMut(&'a str, &'a str)) -> bool {
    let bytes = raw.as_bytes();
    let is_ws = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    let mut i = 0;
    loop {
        // At least one whitespace before each attribute (the raw string starts after the tag name).
        let ws_start = i;
        while i < bytes.len() && is_ws(bytes[i]) {
            i += 1;
        }
        if i == bytes.len() {
            return true;
        }
        if i == ws_start {
            return false;
        }
        let key_start = i;
        while i < bytes.len() && !is_ws(bytes[i]) && bytes[i] != b'=' {
            i += 1;
        }
        let key_end = i;
        while i < bytes.len() && is_ws(bytes[i]) {
            i += 1;
        }
        if key_end == key_start || bytes.get(i) != Some(&b'=') {
            return false;
        }
        i += 1;
        while i < bytes.len() && is_ws(bytes[i]) {
            i += 1;
        }
        let Some(&quote @ (b'"' | b'\'')) = bytes.get(i) else {
            return false;
        };
        let value_start = i + 1;
        let Some(len) = bytes[value_start..].iter().position(|&b| b == quote) else {
            return false;
        };
        let value_end = value_start + len;
        // All cut points are at ASCII bytes, hence on char boundaries; `get` keeps this panic-free.
        let (Some(key), Some(value)) = (raw.get(key_start..key_end), raw.get(value_start..value_end)) else {
            return false;
        };
        if key.contains(['<', '"', '\'']) || value.contains('<') {
            return false;
        }
        f(key, value);
        i = value_end + 1;
    }
}

/// Unescapes and normalizes a raw attribute value.
fn attr_value(raw: &str) -> String {
    // Fast path: nothing to unescape or normalize.
    // (A non-short-circuiting fold: attribute values are short and this form vectorizes.)
    if !raw.bytes().fold(false, |found, b| {
        found | matches!(b, b'&' | b'\t' | b'\n' | b'\r')
    }) {
        return raw.to_string();
    }
    let a = Attribute {
        key: QName(""),
        value: Cow::Borrowed(raw),
    };
    // An unknown entity in an attribute is not worth failing a whole report over: keep it verbatim.
    match a.normalized_value(XmlVersion::Implicit1_0) {
        Ok(v) => v.into_owned(),
        Err(_) => raw.to_string(),
    }
}

/// Parses a `time` attribute in seconds into milliseconds. Accepts `1.5`, `1,234.5` (thousands
/// separators, as some Surefire versions wrote) and `0,5` (decimal comma).
fn parse_time_ms(raw: &str) -> Option<u64> {
    let raw = raw.trim();
    if let Some(ms) = parse_plain_decimal_ms(raw) {
        return Some(ms);
    }
    let secs: f64 = match raw.parse() {
        Ok(v) => v,
        Err(_) if raw.contains('.') => raw.replace(',', "").parse().ok()?,
        Err(_) => raw.replace(',', ".").parse().ok()?,
    };
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    // `as` saturates for values beyond u64::MAX.
    Some((secs * 1000.0).round() as u64)
}

/// Fast, exact path for the common `123` / `1.234` forms (the float parser costs a few percent of
/// the whole parse); `None` for anything else.
fn parse_plain_decimal_ms(raw: &str) -> Option<u64> {
    let (int, frac) = raw.split_once('.').unwrap_or((raw, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || int.len() > 12 || frac.len() > 12 || !all_digits(int) || !all_digits(frac) {
        return None;
    }
    let int: u64 = int.parse().ok()?;
    let mut ms = int * 1000;
    if !frac.is_empty() {
        let digits: u64 = frac.parse().ok()?;
        let scale = 10u64.pow(frac.len() as u32); // <= 10^12
        // Round half up: frac seconds * 1000, in units of 1/scale.
        ms += (digits * 1000 + scale / 2) / scale;
    }
    Some(ms)
}

#[derive(Default)]
struct CaseBuilder {
    classname: String,
    name: String,
    file: Option<String>,
    time_ms: Option<u64>,
    failure_attr: Option<String>,
    status: Option<CaseStatus>,
    message: String,
    kind: String,
    body: CappedText,
    system_out: CappedText,
    system_err: CappedText,
}

impl CaseBuilder {
    /// Reads a `<testcase>`'s attributes into this builder, which is always a fresh default one: the
    /// previous case was taken by [`State::end`].
    fn begin(&mut self, e: &BytesStart<'_>) -> Result<(), quick_xml::Error> {
        for_each_attr(e, |key, value| match key {
            "name" => self.name = attr_value(value),
            "classname" => self.classname = attr_value(value),
            "file" => self.file = Some(attr_value(value)),
            "time" => self.time_ms = parse_time_ms(value),
            "failure" => self.failure_attr = Some(cap(attr_value(value))),
            _ => {}
        })
    }

    /// Registers an outcome element; returns its frame (capturing text only if it now decides the case).
    fn outcome(&mut self, status: CaseStatus, e: &BytesStart<'_>) -> Result<Frame, quick_xml::Error> {
        if self.status.is_some_and(|s| s.rank() >= status.rank()) {
            return Ok(Frame::Outcome {
                capture: false,
                status,
            });
        }
        self.status = Some(status);
        self.message.clear();
        self.kind.clear();
        self.body = CappedText::default();
        for_each_attr(e, |key, value| match key {
            "message" => self.message = cap(attr_value(value)),
            "type" => self.kind = attr_value(value),
            _ => {}
        })?;
        Ok(Frame::Outcome {
            capture: true,
            status,
        })
    }

    fn finish(self, suites: &[String]) -> Case {
        let status = match (self.status, &self.failure_attr) {
            (Some(status), _) => status,
            (None, Some(_)) => CaseStatus::Failed,
            (None, None) => CaseStatus::Passed,
        };
        let body = self.body.finish();
        let mut message = self.message;
        if message.trim().is_empty() {
            message = match self.failure_attr {
                Some(m) if !m.trim().is_empty() => m,
                _ => body
                    .lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty())
                    .unwrap_or("")
                    .to_string(),
            };
        }
        let trace = match status {
            CaseStatus::Failed | CaseStatus::Errored => trim_owned(body, str::trim),
            CaseStatus::Passed | CaseStatus::Skipped => String::new(),
        };
        Case {
            suites: suites.to_vec(),
            classname: self.classname,
            name: self.name,
            file: self.file,
            time_ms: self.time_ms,
            status,
            message,
            kind: self.kind,
            trace,
            system_out: trim_output(self.system_out.finish()),
            system_err: trim_output(self.system_err.finish()),
        }
    }
}

fn trim_owned(s: String, trim: impl Fn(&str) -> &str) -> String {
    let trimmed = trim(&s);
    if trimmed.len() == s.len() {
        s
    } else {
        trimmed.to_string()
    }
}

/// Drops leading blank lines (but not the first line's indentation) and trailing whitespace: the
/// formatting newlines writers put around `<![CDATA[...]]>` are not part of the output.
fn trim_output(s: String) -> String {
    if s.is_empty() {
        return s;
    }
    trim_owned(s, |s| {
        let s = s.trim_end();
        let blank = s.len() - s.trim_start().len();
        match s[..blank].rfind('\n') {
            Some(nl) => &s[nl + 1..],
            None => s,
        }
    })
}

/// Caps one already complete string to [`MAX_FIELD_BYTES`].
fn cap(s: String) -> String {
    if s.len() <= MAX_FIELD_BYTES {
        return s;
    }
    let mut capped = CappedText::default();
    capped.push(&s);
    capped.finish()
}

const HALF: usize = MAX_FIELD_BYTES / 2;

/// Text accumulator that keeps at most the first and the last [`MAX_FIELD_BYTES`]` / 2` bytes (cut on
/// character boundaries) and counts what it dropped in between, so a multi-gigabyte `<system-out>`
/// costs at most ~1.5 × [`MAX_FIELD_BYTES`] while it is being read.
#[derive(Default)]
struct CappedText {
    head: String,
    /// Only used once the text is longer than [`MAX_FIELD_BYTES`]; may hold up to twice [`HALF`]
    /// bytes between compactions.
    tail: String,
    total: u64,
    overflowed: bool,
}

impl CappedText {
    fn push(&mut self, s: &str) {
        self.total += s.len() as u64;
        if self.overflowed {
            self.push_tail(s);
            return;
        }
        if self.head.len() + s.len() <= MAX_FIELD_BYTES {
            self.head.push_str(s);
            return;
        }
        self.overflowed = true;
        let rest = self.head.split_off(self.head.floor_char_boundary(HALF));
        if rest.is_empty() {
            // The head is still short: fill it from `s`, the remainder goes to the tail.
            let take = s.floor_char_boundary(HALF - self.head.len());
            self.head.push_str(&s[..take]);
            self.push_tail(&s[take..]);
        } else {
            self.tail = rest;
            self.push_tail(s);
        }
    }

    fn push_tail(&mut self, s: &str) {
        if s.len() >= HALF {
            self.tail.clear();
            self.tail.push_str(&s[s.ceil_char_boundary(s.len() - HALF)..]);
        } else {
            self.tail.push_str(s);
            if self.tail.len() > 2 * HALF {
                self.compact_tail();
            }
        }
    }

    fn compact_tail(&mut self) {
        if self.tail.len() > HALF {
            let cut = self.tail.ceil_char_boundary(self.tail.len() - HALF);
            self.tail.drain(..cut);
        }
    }

    fn finish(mut self) -> String {
        if !self.overflowed {
            return self.head;
        }
        self.compact_tail();
        let dropped = self.total - (self.head.len() + self.tail.len()) as u64;
        let mut out = self.head;
        out.push_str(&format!("\n… [{dropped} bytes truncated] …\n"));
        out.push_str(&self.tail);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn parse_str(xml: &str) -> Result<Vec<Case>, JunitError> {
        let mut cases = Vec::new();
        parse(xml.as_bytes(), |c| cases.push(c))?;
        Ok(cases)
    }

    fn ok(xml: &str) -> Vec<Case> {
        match parse_str(xml) {
            Ok(cases) => cases,
            Err(e) => panic!("parse failed: {e}\n{xml}"),
        }
    }

    fn sample(name: &str) -> Vec<Case> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/junit_samples")
            .join(name);
        let mut cases = Vec::new();
        let stats = parse_file(&path, |c| cases.push(c)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(stats.cases, cases.len() as u64);
        assert_eq!(
            stats.bytes,
            std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0)
        );
        cases
    }

    fn counts(cases: &[Case]) -> [usize; 4] {
        let n = |s| cases.iter().filter(|c| c.status == s).count();
        [
            n(CaseStatus::Passed),
            n(CaseStatus::Failed),
            n(CaseStatus::Errored),
            n(CaseStatus::Skipped),
        ]
    }

    fn by_name<'a>(cases: &'a [Case], name: &str) -> &'a Case {
        cases
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no case named {name:?}"))
    }

    // ---- real samples -------------------------------------------------------------------------

    #[test]
    fn pytest_xunit2_sample() {
        let cases = sample("pytest.xml");
        assert_eq!(counts(&cases), [5, 3, 1, 2]);
        assert!(cases.iter().all(|c| c.suites == ["pytest"] && c.file.is_none()));
        let fail = by_name(&cases, "test_fails_with_message");
        assert_eq!(fail.status, CaseStatus::Failed);
        assert_eq!(fail.classname, "test_sample");
        assert_eq!(
            fail.message,
            "AssertionError: arithmetic is broken: 1 + 1 != 3\nassert (1 + 1) == 3"
        );
        assert!(
            fail.trace.starts_with("def test_fails_with_message():"),
            "{}",
            fail.trace
        );
        assert!(fail.trace.ends_with("test_sample.py:10: AssertionError"));
        assert!(fail.trace.contains(">       assert 1 + 1 == expected"));
        let setup = by_name(&cases, "test_setup_error");
        assert_eq!(setup.status, CaseStatus::Errored);
        assert_eq!(
            setup.message,
            "failed on setup with \"RuntimeError: database unavailable\""
        );
        let skip = by_name(&cases, "test_skipped");
        assert_eq!(
            (skip.status, skip.kind.as_str()),
            (CaseStatus::Skipped, "pytest.skip")
        );
        assert_eq!(skip.message, "not implemented yet");
        assert_eq!(skip.trace, "");
        let xfail = by_name(&cases, "test_xfail");
        assert_eq!(
            (xfail.status, xfail.kind.as_str()),
            (CaseStatus::Skipped, "pytest.xfail")
        );
        assert_eq!(xfail.message, "known bug #42");
        let out = by_name(&cases, "test_prints_output");
        assert_eq!(out.status, CaseStatus::Passed);
        assert!(
            out.system_out
                .ends_with("Captured Out ---------------------------------\nhello from stdout <&>")
        );
        assert!(out.system_err.ends_with("\nwarning on stderr"));
        assert_eq!(by_name(&cases, "test_double[3-7]").message, "assert (3 * 2) == 7");
        assert_eq!(by_name(&cases, "test_double[1-2]").status, CaseStatus::Passed);
        let in_class = by_name(&cases, "test_in_class_fails");
        assert_eq!(in_class.classname, "test_sample.TestGroup");
        assert!(in_class.message.starts_with("assert [1, 2, 3] == [1, 2, 4]\n"));
        assert!(cases.iter().all(|c| c.time_ms.is_some()));
    }

    #[test]
    fn pytest_xunit1_sample() {
        let cases = sample("pytest_xunit1.xml");
        assert_eq!(counts(&cases), [5, 3, 1, 2]);
        assert!(cases.iter().all(|c| c.file.as_deref() == Some("test_sample.py")));
        assert_eq!(by_name(&cases, "test_setup_error").status, CaseStatus::Errored);
        let out = by_name(&cases, "test_prints_output");
        assert!(out.system_out.ends_with("hello from stdout <&>"));
        assert_eq!(out.system_err, "");
    }

    #[test]
    fn node_sample() {
        let cases = sample("node.xml");
        assert_eq!(counts(&cases), [3, 2, 0, 2]);
        let top = by_name(&cases, "top-level fails");
        assert!(top.suites.is_empty());
        assert_eq!(top.classname, "test");
        assert_eq!(top.message, "one plus one should be three2 !== 3");
        assert_eq!(top.kind, "testCodeFailure");
        assert!(
            top.trace
                .starts_with("[Error [ERR_TEST_FAILURE]: one plus one should be three")
        );
        assert!(top.trace.contains("at TestContext.<anonymous> (file:///"));
        assert_eq!(top.time_ms, Some(1));
        let deep = by_name(&cases, "deep fails");
        assert_eq!(deep.suites, ["outer suite", "inner suite"]);
        assert_eq!(deep.message, "boom in deep test");
        assert_eq!(by_name(&cases, "inner passes").suites, ["outer suite"]);
        let skip = by_name(&cases, "skipped test");
        assert_eq!(
            (skip.status, skip.message.as_str(), skip.kind.as_str()),
            (CaseStatus::Skipped, "not ready", "skipped")
        );
        assert_eq!(by_name(&cases, "deep todo").kind, "todo");
    }

    #[test]
    fn node_name_pattern_sample() {
        let cases = sample("node_name_pattern.xml");
        assert_eq!(counts(&cases), [2, 0, 0, 5]);
        let filtered: Vec<_> = cases.iter().filter(|c| c.status == CaseStatus::Skipped).collect();
        assert!(
            filtered
                .iter()
                .all(|c| c.message == "test name does not match pattern")
        );
    }

    #[test]
    fn jest_sample() {
        let cases = sample("jest.xml");
        // jest-junit reports test.todo as a case without <skipped/>, i.e. passed.
        assert_eq!(counts(&cases), [4, 2, 0, 1]);
        let fail = by_name(&cases, "calculator subtracts numbers");
        assert_eq!(fail.suites, ["calculator"]);
        assert_eq!(
            fail.message,
            "Error: expect(received).toBe(expected) // Object.is equality"
        );
        assert_eq!(fail.kind, "");
        assert!(fail.trace.contains("Expected: 1\nReceived: 2"));
        let thrown = by_name(&cases, "logging throws an error");
        assert_eq!(thrown.message, "Error: unexpected <tag> & \"quote\"");
        // The console output jest-junit writes is suite-level: it belongs to no case.
        assert!(cases.iter().all(|c| c.system_out.is_empty()));
        let top = by_name(&cases, " top-level test without describe");
        assert_eq!(top.suites, ["undefined"]);
        assert_eq!(
            by_name(&cases, "calculator divides by zero").status,
            CaseStatus::Skipped
        );
    }

    #[test]
    fn playwright_sample() {
        let cases = sample("playwright.xml");
        assert_eq!(counts(&cases), [4, 1, 1, 2]);
        let fail = by_name(&cases, "math › wrong sum");
        assert_eq!(fail.suites, ["math.spec.ts"]);
        assert_eq!(fail.classname, "math.spec.ts");
        assert_eq!(
            fail.message,
            "expect(received).toBe(expected) // Object.is equality"
        );
        assert_eq!(fail.kind, "expect.toBe");
        assert!(fail.trace.starts_with("math.spec.ts:8:3 › math › wrong sum"));
        assert!(fail.trace.contains("Expected: 3\n    Received: 2"));
        assert_eq!(
            fail.system_out,
            "[[ATTACHMENT|test-results/math-math-wrong-sum/error-context.md]]"
        );
        assert_eq!(fail.time_ms, Some(7));
        let out = by_name(&cases, "math › prints output");
        assert_eq!(out.system_out, "hello from console.log <&>");
        assert_eq!(out.system_err, "warning on stderr");
        let thrown = by_name(&cases, "throws");
        assert_eq!(thrown.status, CaseStatus::Errored);
        assert_eq!(thrown.message, "bad <input> & \"stuff\"");
        assert_eq!(thrown.kind, "Error");
        let skipped = by_name(&cases, "math › skipped with reason");
        assert_eq!((skipped.status, skipped.time_ms), (CaseStatus::Skipped, None));
        assert_eq!(by_name(&cases, "annotated").status, CaseStatus::Passed);
    }

    #[test]
    fn surefire_sample() {
        let cases = sample("surefire.xml");
        assert_eq!(counts(&cases), [3, 2, 1, 1]);
        assert!(cases.iter().all(|c| c.suites == ["com.example.CalculatorTest"]));
        let flaky = by_name(&cases, "flakyTest");
        assert_eq!(flaky.status, CaseStatus::Passed);
        assert_eq!((flaky.message.as_str(), flaky.trace.as_str()), ("", ""));
        assert_eq!(flaky.system_out, "", "flakyFailure's system-out must not leak");
        let broken = by_name(&cases, "alwaysFailsWithReruns");
        assert_eq!(broken.status, CaseStatus::Failed);
        assert_eq!(broken.message, "still broken expected:<0> but was:<1>");
        assert_eq!(broken.kind, "java.lang.AssertionError");
        assert_eq!(
            broken.trace,
            "java.lang.AssertionError: still broken expected:<0> but was:<1>\n\
             \tat com.example.CalculatorTest.alwaysFailsWithReruns(CalculatorTest.java:53)"
        );
        assert_eq!(broken.system_out, "broken attempt 1");
        let error = by_name(&cases, "throwsUnexpectedly");
        assert_eq!(error.status, CaseStatus::Errored);
        assert_eq!(error.kind, "java.lang.IllegalStateException");
        assert_eq!(error.message, "connection refused: db:5432");
        let ignored = by_name(&cases, "ignoredTest");
        assert_eq!(
            (ignored.status, ignored.message.as_str()),
            (CaseStatus::Skipped, "waiting for TOMATO-7")
        );
        assert_eq!(
            by_name(&cases, "wrongSum").classname,
            "com.example.CalculatorTest"
        );
    }

    // ---- syntax and dialect rules -------------------------------------------------------------

    #[test]
    fn testsuite_root_and_attribute_order() {
        let cases = ok(r#"<?xml version="1.0"?>
            <testsuite name="root" tests="2">
              <properties><property name="testcase" value="not a case"/></properties>
              <testcase time="0.25" name="a" classname="C"/>
              <testcase classname="C" name="b"></testcase>
              <system-out>suite output</system-out>
            </testsuite>"#);
        assert_eq!(cases.len(), 2);
        assert_eq!((cases[0].name.as_str(), cases[0].classname.as_str()), ("a", "C"));
        assert_eq!(cases[0].time_ms, Some(250));
        assert_eq!(cases[0].suites, ["root"]);
        assert_eq!(cases[1].time_ms, None);
        assert!(
            cases
                .iter()
                .all(|c| c.status == CaseStatus::Passed && c.system_out.is_empty())
        );
    }

    #[test]
    fn entities_and_cdata() {
        let cases = ok(
            r#"<testsuites><testsuite name="a &amp; b"><testcase name="x&lt;y&#10;z&#x41;">
            <failure message="m &quot;q&quot; &apos;s&apos;">line1 &lt;tag&gt; &amp; &#10;<![CDATA[raw <b> & ]]>&nbsp;end</failure>
            <system-out>out&#x2764;<![CDATA[<cdata>]]></system-out>
            </testcase></testsuite></testsuites>"#,
        );
        let c = &cases[0];
        assert_eq!(c.suites, ["a & b"]);
        assert_eq!(c.name, "x<y\nzA");
        assert_eq!(c.message, "m \"q\" 's'");
        assert_eq!(c.trace, "line1 <tag> & \nraw <b> & &nbsp;end");
        assert_eq!(c.system_out, "out❤<cdata>");
    }

    #[test]
    fn crlf_is_normalized_and_bom_is_accepted() {
        let xml =
            "\u{feff}<testsuite><testcase name=\"a\"><failure>l1\r\nl2\r\n</failure></testcase></testsuite>";
        let cases = ok(xml);
        assert_eq!(cases[0].trace, "l1\nl2");
    }

    #[test]
    fn status_precedence() {
        let xml = r#"<testsuite>
            <testcase name="fe"><failure message="f"/><error message="e" type="E">etrace</error></testcase>
            <testcase name="ef"><error message="e"/><failure message="f"/></testcase>
            <testcase name="sf"><skipped message="s"/><failure message="f">ftrace</failure></testcase>
            <testcase name="ff"><failure message="first">t1</failure><failure message="second">t2</failure></testcase>
            <testcase name="s"><skipped/></testcase>
            <testcase name="p"/>
        </testsuite>"#;
        let cases = ok(xml);
        let get = |n| by_name(&cases, n);
        assert_eq!(
            (get("fe").status, get("fe").message.as_str()),
            (CaseStatus::Errored, "e")
        );
        assert_eq!(
            (get("fe").kind.as_str(), get("fe").trace.as_str()),
            ("E", "etrace")
        );
        assert_eq!(
            (get("ef").status, get("ef").message.as_str()),
            (CaseStatus::Errored, "e")
        );
        assert_eq!(
            (get("sf").status, get("sf").trace.as_str()),
            (CaseStatus::Failed, "ftrace")
        );
        assert_eq!(
            (get("ff").message.as_str(), get("ff").trace.as_str()),
            ("first", "t1")
        );
        assert_eq!(
            (get("s").status, get("s").message.as_str()),
            (CaseStatus::Skipped, "")
        );
        assert_eq!(get("p").status, CaseStatus::Passed);
    }

    #[test]
    fn message_fallbacks() {
        let cases = ok(r#"<testsuites>
            <testcase name="body"><failure>

               first line
            second line</failure></testcase>
            <testcase name="attr" failure="from attribute"><failure>body line</failure></testcase>
            <testcase name="only-attr" failure="bare attribute"/>
            <testcase name="skip-body"><skipped>  reason in body  </skipped></testcase>
            <testcase name="empty-msg"><failure message="">x</failure></testcase>
        </testsuites>"#);
        assert_eq!(by_name(&cases, "body").message, "first line");
        assert_eq!(
            by_name(&cases, "body").trace,
            "first line\n            second line"
        );
        assert_eq!(by_name(&cases, "attr").message, "from attribute");
        let only = by_name(&cases, "only-attr");
        assert_eq!(
            (only.status, only.message.as_str()),
            (CaseStatus::Failed, "bare attribute")
        );
        let skip = by_name(&cases, "skip-body");
        assert_eq!(
            (skip.message.as_str(), skip.trace.as_str()),
            ("reason in body", "")
        );
        assert_eq!(by_name(&cases, "empty-msg").message, "x");
    }

    #[test]
    fn surefire_rerun_elements_do_not_leak() {
        let cases = ok(r#"<testsuite name="S">
            <testcase name="flaky"><flakyError message="boom" type="X"><stackTrace>st</stackTrace>
              <system-out>rerun out</system-out><system-err>rerun err</system-err></flakyError>
              <system-out>final out</system-out></testcase>
            <testcase name="failed"><rerunError message="r" type="R"><stackTrace>rst</stackTrace></rerunError>
              <error message="final" type="F">ftrace</error></testcase>
        </testsuite>"#);
        let flaky = by_name(&cases, "flaky");
        assert_eq!(flaky.status, CaseStatus::Passed);
        assert_eq!(
            (flaky.system_out.as_str(), flaky.system_err.as_str()),
            ("final out", "")
        );
        assert_eq!(
            (flaky.message.as_str(), flaky.trace.as_str(), flaky.kind.as_str()),
            ("", "", "")
        );
        let failed = by_name(&cases, "failed");
        assert_eq!(failed.status, CaseStatus::Errored);
        assert_eq!(
            (
                failed.message.as_str(),
                failed.kind.as_str(),
                failed.trace.as_str()
            ),
            ("final", "F", "ftrace")
        );
    }

    #[test]
    fn nested_suites_and_cases_under_root() {
        let cases = ok(r#"<testsuites name="all"><!-- tests 3 -->
            <testcase name="root-level"/>
            <testsuite name="a"><testsuite name="b"><testcase name="deep"/></testsuite>
              <testcase name="mid"/></testsuite>
            <testsuite><testcase name="anon"/></testsuite>
        </testsuites>"#);
        let names: Vec<_> = cases
            .iter()
            .map(|c| (c.name.as_str(), c.suites.join("/")))
            .collect();
        assert_eq!(
            names,
            [
                ("root-level", "".into()),
                ("deep", "a/b".into()),
                ("mid", "a".into()),
                ("anon", "".into())
            ]
        );
    }

    #[test]
    fn attribute_syntax_variants() {
        let cases =
            ok("<testsuite><testcase\n\tname = 'a \"b\"'\n classname=\"c&amp;d\"\ttime='1'  /></testsuite>");
        assert_eq!(
            (cases[0].name.as_str(), cases[0].classname.as_str()),
            ("a \"b\"", "c&d")
        );
        assert_eq!(cases[0].time_ms, Some(1000));
        // Attribute-value normalization: literal tabs/newlines become spaces, &#10; stays a newline.
        let cases = ok("<testsuite><testcase name='x' failure='l1\nl2&#10;l3'/></testsuite>");
        assert_eq!(cases[0].message, "l1 l2\nl3");
        for bad in ["<testcase name=a/>", "<testcase 'a'/>", "<testcase name='a/>"] {
            let xml = format!("<testsuite>{bad}</testsuite>");
            assert!(matches!(parse_str(&xml), Err(JunitError::Xml { .. })), "{bad}");
        }
    }

    #[test]
    fn time_parsing() {
        assert_eq!(parse_time_ms("1.5"), Some(1500));
        assert_eq!(parse_time_ms(" 0.0004 "), Some(0));
        assert_eq!(parse_time_ms("0.0006"), Some(1));
        assert_eq!(parse_time_ms("3"), Some(3000));
        assert_eq!(parse_time_ms("1,234.5"), Some(1_234_500));
        assert_eq!(parse_time_ms("0,5"), Some(500));
        assert_eq!(parse_time_ms("1e3"), Some(1_000_000));
        for bad in ["", "abc", "-1", "NaN", "inf", "1..2"] {
            assert_eq!(parse_time_ms(bad), None, "{bad}");
        }
        assert_eq!(parse_time_ms("1e300"), Some(u64::MAX));
        assert_eq!(parse_time_ms("0.0005"), Some(1));
        assert_eq!(parse_time_ms("12.3456789"), Some(12_346));
        assert_eq!(
            parse_time_ms("999999999999.999999999999"),
            Some(1_000_000_000_000_000)
        );
        assert_eq!(parse_time_ms("1."), Some(1000));
        assert_eq!(parse_time_ms(".5"), Some(500));
    }

    #[test]
    fn empty_and_non_junit_inputs_are_clear_errors() {
        assert!(matches!(parse_str(""), Err(JunitError::Empty)));
        assert!(matches!(
            parse_str("  \n <?xml version=\"1.0\"?><!-- c -->\n"),
            Err(JunitError::Empty)
        ));
        match parse_str("<html><testcase name=\"a\"/></html>") {
            Err(e @ JunitError::NotJunit { .. }) => assert!(e.to_string().contains("<html>"), "{e}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn truncated_input_reports_position_and_delivers_complete_cases() {
        let xml = r#"<testsuites><testsuite name="s"><testcase name="a"/><testcase name="b"><failure>tr"#;
        let mut seen = Vec::new();
        let err = parse(xml.as_bytes(), |c| seen.push(c.name)).err();
        assert_eq!(seen, ["a"]);
        match err {
            Some(JunitError::Truncated { position, open }) => {
                assert_eq!(position, xml.len() as u64);
                assert_eq!(open, "failure");
            }
            other => panic!("{other:?}"),
        }
        // Cut inside a tag: quick-xml's syntax error, with the position of the broken markup.
        let cut = r#"<testsuite><testcase name="a"/><testcase na"#;
        match parse_str(cut) {
            Err(e @ JunitError::Xml { position, .. }) => {
                assert_eq!(position, cut.rfind("<testcase").unwrap_or(0) as u64);
                assert!(e.to_string().contains("at byte"), "{e}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn mismatched_tags_are_errors() {
        assert!(matches!(
            parse_str("<testsuite><testcase></testsuite>"),
            Err(JunitError::Xml { .. })
        ));
        assert!(matches!(
            parse_str("<testsuite></testsuite></x>"),
            Err(JunitError::Xml { .. })
        ));
    }

    #[test]
    fn depth_is_limited() {
        let xml = format!("<testsuite>{}", "<a>".repeat(MAX_DEPTH + 5));
        assert!(matches!(parse_str(&xml), Err(JunitError::TooDeep { .. })));
    }

    #[test]
    fn concatenated_reports_are_accepted() {
        let cases = ok(
            "<testsuite name='a'><testcase name='1'/></testsuite>\n<testsuite name='b'><testcase name='2'/></testsuite>",
        );
        assert_eq!(
            cases.iter().map(|c| c.suites[0].as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
    }

    #[test]
    fn huge_fields_are_capped_keeping_both_ends() {
        let body: String = (0..300_000).map(|i| format!("line {i} é\n")).collect();
        assert!(body.len() > 2 * MAX_FIELD_BYTES);
        // Split into many text events (entities break text) and one huge CDATA.
        let xml = format!(
            "<testsuite><testcase name='big'><failure>{}&amp;</failure><system-out><![CDATA[{body}]]></system-out></testcase></testsuite>",
            body.replace('\n', "&#10;")
        );
        let case = &ok(&xml)[0];
        for field in [&case.trace, &case.system_out] {
            assert!(field.len() <= MAX_FIELD_BYTES + 64, "{}", field.len());
            assert!(field.starts_with("line 0 é\nline 1 é\n"));
            assert!(field.contains(" bytes truncated] …\n"));
        }
        assert!(case.trace.ends_with("line 299999 é\n&"));
        assert!(case.system_out.ends_with("line 299999 é"));
        // The marker's count is exact: head + dropped + tail (+ the trimmed final newline) == body.
        let out = &case.system_out;
        let head_len = out.find("\n… [").unwrap_or(0);
        let dropped: usize = out[head_len + "\n… [".len()..]
            .split(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let tail_len = out.len() - out.rfind("] …\n").map_or(0, |i| i + "] …\n".len());
        assert_eq!(head_len + dropped + tail_len + 1, body.len());
        assert!(head_len <= MAX_FIELD_BYTES / 2 && tail_len < MAX_FIELD_BYTES / 2);
        // Message attributes are capped too.
        let long = "m".repeat(3 * MAX_FIELD_BYTES);
        let case = &ok(&format!(
            "<testsuite><testcase name='a'><failure message='{long}'/></testcase></testsuite>"
        ))[0];
        assert!(case.message.len() <= MAX_FIELD_BYTES + 64);
    }

    #[test]
    fn capped_text_respects_char_boundaries() {
        for chunk in ["a", "é", "❤", "𝄞", "ab❤𝄞é"] {
            let mut t = CappedText::default();
            let mut total = 0;
            while total <= 3 * MAX_FIELD_BYTES {
                t.push(chunk);
                total += chunk.len();
            }
            let out = t.finish(); // a String: UTF-8 validity is guaranteed, check the shape.
            assert!(out.len() <= MAX_FIELD_BYTES + 64);
            assert!(out.starts_with(chunk) && out.ends_with(chunk));
        }
        let mut t = CappedText::default();
        t.push("short");
        assert_eq!(t.finish(), "short");
    }

    #[test]
    fn parse_file_errors_name_the_path() {
        let err = parse_file(Path::new("/nonexistent/report.xml"), |_| {}).err();
        match err {
            Some(e @ JunitError::Open { .. }) => assert!(e.to_string().contains("/nonexistent/report.xml")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parse_file_reads_a_temp_file() -> Result<(), Box<dyn std::error::Error>> {
        let mut file = tempfile::NamedTempFile::new()?;
        std::io::Write::write_all(
            &mut file,
            b"<testsuite><testcase name='t'><skipped/></testcase></testsuite>",
        )?;
        let mut statuses = Vec::new();
        let stats = parse_file(file.path(), |c| statuses.push(c.status))?;
        assert_eq!(statuses, [CaseStatus::Skipped]);
        assert_eq!(stats, Stats { cases: 1, bytes: 63 });
        Ok(())
    }

    #[test]
    fn io_errors_are_reported() {
        struct Failing;
        impl io::Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk on fire"))
            }
        }
        let err = parse(BufReader::new(Failing), |_| {}).err();
        assert!(
            matches!(&err, Some(JunitError::Io(e)) if e.to_string() == "disk on fire"),
            "{err:?}"
        );
    }

    // ---- property tests -----------------------------------------------------------------------

    fn report(cases: &[(u8, String, bool)], nested: bool) -> String {
        let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>");
        if nested {
            xml.push_str("<testsuite name=\"outer\"><testsuite name=\"inner\">");
        }
        for (i, (status, name, out)) in cases.iter().enumerate() {
            let name = quick_xml::escape::escape(name.as_str());
            xml.push_str(&format!(
                "<testcase classname=\"c{i}\" name=\"{name}\" time=\"0.{i}\">"
            ));
            match status {
                1 => xml.push_str(&format!(
                    "<failure message=\"{name}\">trace &amp; {name}</failure>"
                )),
                2 => xml.push_str("<error><![CDATA[err]]></error>"),
                3 => xml.push_str("<skipped/>"),
                _ => {}
            }
            if *out {
                xml.push_str(&format!("<system-out>{name}</system-out>"));
            }
            xml.push_str("</testcase>");
        }
        if nested {
            xml.push_str("</testsuite></testsuite>");
        }
        xml.push_str("</testsuites>");
        xml
    }

    proptest! {
        #[test]
        fn attribute_scanner_agrees_with_quick_xml(raw in "[ a-z=\"'<&;\t]{0,40}") {
            let xml = format!("<x{raw}/>");
            let mut reader = Reader::from_str(&xml);
            if let Ok(Event::Empty(e)) = reader.read_event() {
                let mut fast = Vec::new();
                if scan_attrs(e.attributes_raw(), &mut |k, v| fast.push((k.to_string(), v.to_string()))) {
                    let slow: Result<Vec<_>, _> = e
                        .attributes()
                        .with_checks(false)
                        .map(|a| a.map(|a| (a.key.0.to_string(), a.value.to_string())))
                        .collect();
                    prop_assert_eq!(Some(fast), slow.ok());
                }
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(bytes.as_slice(), |_| {});
        }

        #[test]
        fn mutated_reports_never_panic(
            cases in proptest::collection::vec((0u8..4, "[a-z<>&\"' ]{0,8}", any::<bool>()), 0..6),
            cut in any::<prop::sample::Index>(),
            junk in proptest::collection::vec(any::<u8>(), 0..8),
        ) {
            let mut bytes = report(&cases, true).into_bytes();
            let at = cut.index(bytes.len() + 1);
            bytes.splice(at..at, junk);
            let _ = parse(bytes.as_slice(), |_| {});
            bytes.truncate(at);
            let _ = parse(bytes.as_slice(), |_| {});
        }

        #[test]
        fn generated_reports_round_trip(
            cases in proptest::collection::vec((0u8..4, "[a-zA-Z0-9 <>&\"'é❤]{0,12}", any::<bool>()), 0..40),
            nested in any::<bool>(),
        ) {
            let xml = report(&cases, nested);
            let mut got = Vec::new();
            let stats = parse(xml.as_bytes(), |c| got.push(c));
            prop_assert!(stats.is_ok(), "{:?}", stats);
            prop_assert_eq!(got.len(), cases.len());
            let mut by_status: HashMap<CaseStatus, usize> = HashMap::new();
            for ((status, name, out), case) in cases.iter().zip(&got) {
                let expected = [CaseStatus::Passed, CaseStatus::Failed, CaseStatus::Errored, CaseStatus::Skipped]
                    [usize::from(*status)];
                prop_assert_eq!(case.status, expected);
                prop_assert_eq!(&case.name, name);
                *by_status.entry(case.status).or_default() += 1;
                if *status == 1 {
                    let message = if name.trim().is_empty() { "trace &" } else { name.as_str() };
                    prop_assert_eq!(case.message.as_str(), message);
                    prop_assert_eq!(case.trace.clone(), format!("trace & {name}").trim().to_string());
                }
                if *status == 2 {
                    prop_assert_eq!(case.trace.as_str(), "err");
                    prop_assert_eq!(case.message.as_str(), "err");
                }
                let expected_out = if *out { trim_output(name.clone()) } else { String::new() };
                prop_assert_eq!(&case.system_out, &expected_out);
                prop_assert_eq!(case.suites.len(), if nested { 2 } else { 0 });
            }
            prop_assert_eq!(by_status.values().sum::<usize>(), cases.len());
            prop_assert_eq!(stats.map(|s| s.bytes).unwrap_or(0), xml.len() as u64);
        }
    }
}
