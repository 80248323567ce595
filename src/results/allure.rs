//! Reader of an Allure results directory (`allure-results/`): what allure-pytest, allure-junit,
//! allure-js and the other Allure adapters write while tests run.
//!
//! Each test is one `*-result.json` (status, `statusDetails`, nested steps, parameters, labels,
//! attachment references); each fixture scope is one `*-container.json` whose `befores` and
//! `afters` apply to the results it lists as `children`; attachments are files beside them,
//! named by the `source` of their reference.
//!
//! A test becomes two things here:
//! - an ordinary [`Case`] (status, message, trace, time, names), so that merging across
//!   attempts, rerun selection, classification and signatures treat it exactly like a JUnit
//!   case. Names are taken so that the test id is the one the runner's JUnit would give
//!   (pytest: `classname` from `fullName`, `file` from `titlePath`);
//! - its [`Extras`]: what JUnit cannot say (steps, parameters, labels, attachments), kept in a
//!   record of its own beside the attempt's results and keyed by the same test id.
//!
//! The reader is defensive: a file over [`MAX_FILE_BYTES`], not JSON, or not an Allure result
//! is skipped with a note naming it; nothing else of the directory is lost. Unknown fields are
//! ignored. Text fields are capped at [`MAX_TEXT_BYTES`] and steps at [`MAX_STEPS`] per test,
//! so a hostile file cannot make one test's record unbounded.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::junit::{Case, CaseStatus};

/// Largest result or container file read; a bigger one is skipped with a note.
pub const MAX_FILE_BYTES: u64 = 16 << 20;
/// Most result and container files read from one directory; the rest are skipped with a note.
pub const MAX_FILES: usize = 100_000;
/// Largest message, trace or step name kept (longer text keeps its start and says so).
pub const MAX_TEXT_BYTES: usize = 64 << 10;
/// Most steps (at any depth) kept per test; the rest are counted in a note.
pub const MAX_STEPS: usize = 2_000;
/// Deepest step nesting kept; deeper steps are left out (their parents stay).
pub const MAX_STEP_DEPTH: usize = 32;

/// One test read from Allure results: its case and its extras.
#[derive(Clone, Debug, PartialEq)]
pub struct AllureTest {
    pub case: Case,
    pub extras: Extras,
}

/// What Allure says of a test beyond JUnit's case.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Extras {
    /// The test's title, when the code gave it one that is not its name (`@allure.title`):
    /// the test is named as its runner names it, so it is one test with its JUnit twin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Step>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<Parameter>,
    #[serde(default)]
    pub labels: Labels,
    /// The test's own attachments, then its steps' (depth first): every file it referenced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
}

/// One step (or failed fixture) with its outcome; nested as the test nested them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    pub name: String,
    /// `passed`, `failed`, `broken`, `skipped` or `unknown`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Step>,
    /// Indexes into [`Extras::attachments`] of the files this step attached.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<usize>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Parameter {
    pub name: String,
    pub value: String,
}

/// The labels Tomato shows (Allure's suite, feature, story, severity and owner).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Labels {
    #[serde(default)]
    pub suite: Option<String>,
    #[serde(default)]
    pub feature: Option<String>,
    #[serde(default)]
    pub story: Option<String>,
    #[serde(default)]
    pub severity: Option<String>,
    #[serde(default)]
    pub owner: Option<String>,
}

/// A file a test attached.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    /// The name the test gave it (`screenshot`); shown, never used as a path.
    pub name: String,
    /// The file's name in the results directory, as the adapter wrote it. Only a plain file
    /// name passes [`safe_source`]; anything else is refused.
    pub source: String,
    /// The MIME type the adapter declared (served only through [`served_type`]).
    #[serde(default)]
    pub content_type: String,
    /// Its size in bytes, once stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Why it was not kept (over a limit, missing, an unsafe name): shown where the file would be.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

/// What reading a directory gave: its tests, and a note per file that could not be used.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Read {
    pub tests: Vec<AllureTest>,
    pub notes: Vec<String>,
}

/// Why a directory could not be read at all (a single bad file is a note, not an error).
#[derive(Debug, thiserror::Error)]
pub enum AllureError {
    #[error("cannot list Allure results in {}: {source}", dir.display())]
    List {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Reads every `*-result.json` and `*-container.json` of `dir`; `Ok(None)` when there is no
/// such directory. Files are read one at a time (each at most [`MAX_FILE_BYTES`]).
pub fn read_dir(dir: &Path) -> Result<Option<Read>, AllureError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(AllureError::List {
                dir: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| n.ends_with("-result.json") || n.ends_with("-container.json"))
        .collect();
    names.sort();
    let mut notes = Vec::new();
    if names.len() > MAX_FILES {
        notes.push(format!(
            "{} Allure result files; only the first {MAX_FILES} were read",
            names.len()
        ));
        names.truncate(MAX_FILES);
    }
    let files = names.into_iter().map(|name| {
        let bytes = read_capped(&dir.join(&name));
        (name, bytes)
    });
    let mut read = read_files(files);
    notes.append(&mut read.notes);
    read.notes = notes;
    Ok(Some(read))
}

/// Reads result and container files given as `(file name, its bytes or why they could not be
/// read)`, in the order given: what [`read_dir`] does over a directory, and what operator mode
/// does over the files `tomato exec` uploaded. Other names are ignored.
pub fn read_files(files: impl IntoIterator<Item = (String, Result<Vec<u8>, String>)>) -> Read {
    let mut notes = Vec::new();
    let mut results = Vec::new();
    let mut containers = Vec::new();
    for (name, bytes) in files {
        let bytes = match bytes {
            Ok(b) if b.len() as u64 <= MAX_FILE_BYTES => b,
            Ok(_) => {
                notes.push(format!(
                    "{name}: larger than {} MB; skipped",
                    MAX_FILE_BYTES >> 20
                ));
                continue;
            }
            Err(why) => {
                notes.push(format!("{name}: {why}; skipped"));
                continue;
            }
        };
        if name.ends_with("-result.json") {
            match parse_result(&bytes) {
                Ok(r) => results.push(r),
                Err(why) => notes.push(format!("{name}: {why}; skipped")),
            }
        } else if name.ends_with("-container.json") {
            match parse_container(&bytes) {
                Ok(c) => containers.push(c),
                Err(why) => notes.push(format!("{name}: {why}; skipped")),
            }
        }
    }
    let (tests, more) = assemble(results, &containers);
    notes.extend(more);
    Read { tests, notes }
}

fn read_capped(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open it ({e})"))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read it ({e})"))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!("larger than {} MB", MAX_FILE_BYTES >> 20));
    }
    Ok(bytes)
}

/// One `*-result.json` as written (only the fields Tomato uses; the rest are ignored).
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RawResult {
    uuid: Option<String>,
    name: Option<String>,
    full_name: Option<String>,
    status: Option<String>,
    status_details: Option<RawDetails>,
    start: Option<i64>,
    stop: Option<i64>,
    steps: Vec<RawStep>,
    attachments: Vec<RawAttachment>,
    parameters: Vec<RawParameter>,
    labels: Vec<RawLabel>,
    title_path: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawDetails {
    message: Option<String>,
    trace: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct RawStep {
    name: Option<String>,
    status: Option<String>,
    status_details: Option<RawDetails>,
    start: Option<i64>,
    stop: Option<i64>,
    steps: Vec<RawStep>,
    attachments: Vec<RawAttachment>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawAttachment {
    name: Option<String>,
    source: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawParameter {
    name: Option<String>,
    value: Option<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawLabel {
    name: Option<String>,
    value: Option<String>,
}

/// One `*-container.json`: fixtures around the results it lists.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawContainer {
    children: Vec<String>,
    befores: Vec<RawStep>,
    afters: Vec<RawStep>,
}

/// Parses one result file. An error says why it is not a usable Allure result.
pub fn parse_result(bytes: &[u8]) -> Result<RawResult, String> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON ({e})"))?;
    if !value.is_object() {
        return Err("not an Allure result (not a JSON object)".into());
    }
    let r: RawResult = serde_json::from_value(value).map_err(|e| format!("not an Allure result ({e})"))?;
    if r.name.is_none() && r.full_name.is_none() {
        return Err("not an Allure result (it has neither name nor fullName)".into());
    }
    Ok(r)
}

/// Parses one container file.
pub fn parse_container(bytes: &[u8]) -> Result<RawContainer, String> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON ({e})"))?;
    if !value.is_object() {
        return Err("not an Allure container (not a JSON object)".into());
    }
    serde_json::from_value(value).map_err(|e| format!("not an Allure container ({e})"))
}

/// Turns parsed results into tests, applying each container's fixtures to its children: a
/// failed or broken `before` or `after` makes a test that otherwise passed (or failed) broken,
/// as Allure's report shows it, with the fixture's message; the failed fixture is shown as a
/// step. Returns the tests (in the order given) and notes.
pub fn assemble(results: Vec<RawResult>, containers: &[RawContainer]) -> (Vec<AllureTest>, Vec<String>) {
    let mut notes = Vec::new();
    let mut fixtures: HashMap<&str, Vec<(&'static str, &RawStep)>> = HashMap::new();
    for c in containers {
        for child in &c.children {
            let list = fixtures.entry(child.as_str()).or_default();
            list.extend(c.befores.iter().map(|s| ("set up", s)));
            list.extend(c.afters.iter().map(|s| ("tear down", s)));
        }
    }
    let mut tests = Vec::with_capacity(results.len());
    for r in results {
        let failed_fixtures: Vec<(&'static str, &RawStep)> = r
            .uuid
            .as_deref()
            .and_then(|u| fixtures.get(u))
            .map(|l| {
                l.iter()
                    .filter(|(_, s)| matches!(s.status.as_deref(), Some("failed" | "broken")))
                    .copied()
                    .collect()
            })
            .unwrap_or_default();
        let (test, note) = test_of(r, &failed_fixtures);
        notes.extend(note);
        tests.push(test);
    }
    (tests, notes)
}

/// Maps an Allure status onto a case's. `broken` (and `unknown`, a test whose outcome the
/// adapter could not tell) is an error: the test could not run as written.
fn case_status(s: Option<&str>) -> CaseStatus {
    match s {
        Some("passed") => CaseStatus::Passed,
        Some("failed") => CaseStatus::Failed,
        Some("skipped") => CaseStatus::Skipped,
        _ => CaseStatus::Errored,
    }
}

fn cap(mut s: String) -> String {
    if s.len() > MAX_TEXT_BYTES {
        let mut end = MAX_TEXT_BYTES;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        let cut = s.len() - end;
        s.truncate(end);
        s.push_str(&format!("\n… [{cut} bytes truncated]"));
    }
    s
}

fn duration(start: Option<i64>, stop: Option<i64>) -> Option<u64> {
    match (start, stop) {
        (Some(a), Some(b)) if b >= a => u64::try_from(b - a).ok(),
        _ => None,
    }
}

/// Builds one test; the note, if any, says what of it was left out.
fn test_of(r: RawResult, failed_fixtures: &[(&'static str, &RawStep)]) -> (AllureTest, Option<String>) {
    let label = |n: &str| {
        r.labels
            .iter()
            .find(|l| l.name.as_deref() == Some(n))
            .and_then(|l| l.value.clone())
            .filter(|v| !v.is_empty())
    };
    let name = r.name.clone().or_else(|| {
        r.full_name
            .as_deref()
            .map(|f| f.rsplit(['#', '.']).next().unwrap_or(f).to_string())
    });
    let name = cap(name.unwrap_or_default());
    let pytest = label("framework").as_deref() == Some("pytest");
    // `@allure.title` renames a pytest result; pytest's JUnit names it by its function (and
    // its parameters' ids): named so, it is one test with its JUnit twin, its title kept apart.
    let (name, title) = match pytest.then(|| pytest_node_name(&name, r.full_name.as_deref(), &r.parameters)) {
        Some(Some(node)) => (node, Some(name)),
        _ => (name, None),
    };
    // The class as the runner's JUnit names it: Java adapters say it in `testClass`;
    // allure-pytest writes `fullName` as `package.Class#function`.
    let classname = label("testClass")
        .or_else(|| {
            r.full_name
                .as_deref()
                .and_then(|f| f.split_once('#'))
                .map(|(c, _)| c.to_string())
        })
        .or_else(|| label("package"))
        .unwrap_or_default();
    let file = if pytest {
        pytest_file(&r.title_path, label("package"))
    } else {
        None
    };
    // pytest's suites are its module and class, which `classname` already says (and its
    // JUnit names no suite of a test's own); other adapters' suites are their grouping.
    let suites: Vec<String> = if pytest {
        Vec::new()
    } else {
        ["parentSuite", "suite", "subSuite"]
            .iter()
            .filter_map(|n| label(n))
            .collect()
    };
    let mut status = case_status(r.status.as_deref());
    let details = r.status_details.unwrap_or_default();
    let mut message = cap(details.message.unwrap_or_default().trim_end().to_string());
    let mut trace = cap(details.trace.unwrap_or_default().trim_end().to_string());

    let mut attachments = Vec::new();
    let mut budget = MAX_STEPS;
    let mut steps = Vec::new();
    for (phase, f) in failed_fixtures {
        if let Some(mut s) = step_of(f, 0, &mut budget, &mut attachments) {
            s.name = format!("{phase}: {}", s.name);
            steps.push(s);
        }
    }
    steps.extend(steps_of(r.steps, 0, &mut budget, &mut attachments));
    let own: Vec<Attachment> = r.attachments.into_iter().map(attachment_of).collect();
    // The test's own files first: a failure screenshot is usually attached at the top level.
    let shift = own.len();
    for s in &mut steps {
        shift_indexes(s, shift);
    }
    let mut all = own;
    all.extend(attachments);

    // A failed fixture breaks a test that did not already break for a worse reason.
    if let Some((phase, f)) = failed_fixtures.first()
        && matches!(status, CaseStatus::Passed | CaseStatus::Failed)
    {
        status = CaseStatus::Errored;
        let d = f.status_details.as_ref();
        let why = d.and_then(|d| d.message.clone()).unwrap_or_default();
        let fname = f.name.clone().unwrap_or_default();
        let fixture_msg = format!("{phase} {fname} failed: {}", why.trim_end());
        if message.is_empty() {
            message = cap(fixture_msg);
            trace = cap(d
                .and_then(|d| d.trace.clone())
                .unwrap_or_default()
                .trim_end()
                .to_string());
        } else {
            message = cap(format!("{fixture_msg}\n{message}"));
        }
    }
    let note =
        (budget == 0).then(|| format!("test {name:?}: more than {MAX_STEPS} steps; the rest are not shown"));
    let parameters = r
        .parameters
        .into_iter()
        .map(|p| Parameter {
            name: cap(p.name.unwrap_or_default()),
            value: cap(match p.value {
                Some(serde_json::Value::String(s)) => s,
                Some(v) => v.to_string(),
                None => String::new(),
            }),
        })
        .collect();
    let labels = Labels {
        suite: label("suite"),
        feature: label("feature"),
        story: label("story"),
        severity: label("severity"),
        owner: label("owner"),
    };
    let case = Case {
        suites,
        classname,
        name,
        file,
        time_ms: duration(r.start, r.stop),
        status,
        message,
        kind: String::new(),
        trace,
        system_out: String::new(),
        system_err: String::new(),
    };
    let extras = Extras {
        title,
        steps,
        parameters,
        labels,
        attachments: all,
    };
    (AllureTest { case, extras }, note)
}

/// The name pytest gives a test that `@allure.title` renamed to `title`: its function (from
/// `fullName`, `package.Class#function`) with its parameters' ids (`test_pay[card]`: string
/// values without the quotes Allure's `repr` adds, joined by `-`, as pytest does for plain
/// values). `None` when `title` is the test's own name.
fn pytest_node_name(title: &str, full_name: Option<&str>, parameters: &[RawParameter]) -> Option<String> {
    let function = full_name?.rsplit_once('#')?.1;
    if function.is_empty() || title == function || title.starts_with(&format!("{function}[")) {
        return None;
    }
    if parameters.is_empty() {
        return Some(function.to_string());
    }
    let ids: Vec<String> = parameters
        .iter()
        .map(|p| {
            let v = match &p.value {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
                None => String::new(),
            };
            match v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
                Some(inner) => inner.to_string(),
                None => v,
            }
        })
        .collect();
    Some(format!("{function}[{}]", ids.join("-")))
}

/// pytest's file for a test: `titlePath` down to the module (`["tests", "test_x.py", "Cls"]`
/// is `tests/test_x.py`); older adapters without it give the module in the `package` label.
fn pytest_file(title_path: &[String], package: Option<String>) -> Option<String> {
    if let Some(i) = title_path.iter().position(|p| p.ends_with(".py")) {
        return Some(title_path[..=i].join("/"));
    }
    package.map(|p| format!("{}.py", p.replace('.', "/")))
}

fn shift_indexes(s: &mut Step, by: usize) {
    for a in &mut s.attachments {
        *a += by;
    }
    for c in &mut s.steps {
        shift_indexes(c, by);
    }
}

fn steps_of(raw: Vec<RawStep>, depth: usize, budget: &mut usize, files: &mut Vec<Attachment>) -> Vec<Step> {
    raw.iter()
        .filter_map(|s| step_of(s, depth, budget, files))
        .collect()
}

fn step_of(s: &RawStep, depth: usize, budget: &mut usize, files: &mut Vec<Attachment>) -> Option<Step> {
    if depth >= MAX_STEP_DEPTH || *budget == 0 {
        return None;
    }
    *budget -= 1;
    let mut attachments = Vec::new();
    for a in &s.attachments {
        attachments.push(files.len());
        files.push(attachment_of_ref(a));
    }
    let steps = s
        .steps
        .iter()
        .filter_map(|c| step_of(c, depth + 1, budget, files))
        .collect();
    Some(Step {
        name: cap(s.name.clone().unwrap_or_default()),
        status: s.status.clone().unwrap_or_else(|| "unknown".into()),
        duration_ms: duration(s.start, s.stop),
        message: cap(s
            .status_details
            .as_ref()
            .and_then(|d| d.message.clone())
            .unwrap_or_default()
            .trim_end()
            .to_string()),
        steps,
        attachments,
    })
}

fn attachment_of(a: RawAttachment) -> Attachment {
    attachment_of_ref(&a)
}

fn attachment_of_ref(a: &RawAttachment) -> Attachment {
    let source = a.source.clone().unwrap_or_default();
    let refused = (!safe_source(&source)).then(|| "its file name is not a plain file name".to_string());
    Attachment {
        name: cap(a.name.clone().unwrap_or_else(|| source.clone())),
        source,
        content_type: a.kind.clone().unwrap_or_default(),
        size: None,
        refused,
    }
}

/// Whether an attachment's `source` may name a file in the results directory: a plain file
/// name of letters, digits, `-`, `_` and `.`, not starting with a dot, at most 255 bytes. No
/// separators, no `..`, nothing a path could be made of.
pub fn safe_source(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The content type an attachment is served with: images as themselves (only these four,
/// which browsers never run), text as plain text, anything else as bytes to download.
pub fn served_type(declared: &str, source: &str) -> &'static str {
    let ext = source
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match (declared, ext.as_str()) {
        ("image/png", _) | (_, "png") => "image/png",
        ("image/jpeg", _) | (_, "jpg" | "jpeg") => "image/jpeg",
        ("image/gif", _) | (_, "gif") => "image/gif",
        ("image/webp", _) | (_, "webp") => "image/webp",
        (d, _) if d.starts_with("text/") || d == "application/json" => "text/plain; charset=utf-8",
        (_, "txt" | "log" | "json" | "csv") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Whether an attachment is shown inline as an image.
pub fn is_image(a: &Attachment) -> bool {
    served_type(&a.content_type, &a.source).starts_with("image/")
}

/// The attachment limits of a service (`attachments` in packs_config).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of attachments kept per test and attempt.
    pub per_test: u64,
    /// Bytes of attachments kept per run, over all its attempts.
    pub per_run: u64,
}

impl Default for Limits {
    /// Conservative: a few screenshots and logs per test, a run's worth within 100 MB. In
    /// operator mode the run's store is the Kubernetes API (owned objects) until results move
    /// to a database, so the operator clamps these further (see `crate::operator::results`).
    fn default() -> Self {
        Limits {
            per_test: 10 << 20,
            per_run: 100 << 20,
        }
    }
}

/// Decides which attachments are kept: each attachment's `size` (from `size_of`, `None` when
/// its file is missing) is checked against the test's and the run's remaining room, in
/// order; one that does not fit is refused with a note saying which limit, and the others go
/// on. `used` is what the run already keeps (earlier attempts); returns the new total. Pure.
pub fn apply_limits(
    tests: &mut [(String, Extras)],
    limits: Limits,
    used: u64,
    mut size_of: impl FnMut(&str) -> Option<u64>,
) -> u64 {
    let mut run_total = used;
    for (_, extras) in tests.iter_mut() {
        let mut test_total = 0u64;
        for a in &mut extras.attachments {
            if a.refused.is_some() {
                continue;
            }
            let Some(size) = size_of(&a.source) else {
                a.refused = Some("its file is not in the results directory".into());
                continue;
            };
            a.size = Some(size);
            if test_total + size > limits.per_test {
                a.refused = Some(format!(
                    "{} is over the limit of {} of attachments per test",
                    human_bytes(size),
                    human_bytes(limits.per_test)
                ));
            } else if run_total + size > limits.per_run {
                a.refused = Some(format!(
                    "{} is over the limit of {} of attachments per run",
                    human_bytes(size),
                    human_bytes(limits.per_run)
                ));
            } else {
                test_total += size;
                run_total += size;
            }
        }
    }
    run_total
}

/// `1.5 MB`, `300 KB`, `12 B`.
pub fn human_bytes(n: u64) -> String {
    const KB: u64 = 1 << 10;
    const MB: u64 = 1 << 20;
    if n >= MB {
        format!("{:.1} MB", n as f64 / MB as f64)
    } else if n >= KB {
        format!("{:.1} KB", n as f64 / KB as f64)
    } else {
        format!("{n} B")
    }
}

/// The Allure extras of one attempt, keyed by test id, with the notes of its reading: the
/// record kept beside the attempt's results (`allure.json`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttemptExtras {
    #[serde(default)]
    pub tests: BTreeMap<String, Extras>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl AttemptExtras {
    /// Bytes of attachments this attempt keeps.
    pub fn kept_bytes(&self) -> u64 {
        self.tests
            .values()
            .flat_map(|e| &e.attachments)
            .filter(|a| a.refused.is_none())
            .filter_map(|a| a.size)
            .sum()
    }

    /// The kept attachment `source` of this attempt, if any test references it.
    pub fn kept(&self, source: &str) -> Option<&Attachment> {
        self.tests
            .values()
            .flat_map(|e| &e.attachments)
            .find(|a| a.source == source && a.refused.is_none())
    }
}

/// One attempt's tests from JUnit and Allure together: **one set of tests**, de-duplicated by
/// test id.
///
/// The verdict of a test both report comes from JUnit: it is the runner's own report, which
/// the rerun check, shards and eager reruns were built on, it records what the Allure adapter
/// may never see (collection errors, a crash before the plugin loads), and it carries the
/// test's captured output, which classification greps. Allure adds its extras (steps,
/// parameters, labels, attachments) to the same id, and a test only Allure reports is added
/// with Allure's verdict. Returns the cases to store and the extras by id.
pub fn unite(
    junit: Vec<Case>,
    allure: Vec<AllureTest>,
    style: &crate::results::TestIdStyle,
) -> (Vec<Case>, BTreeMap<String, Extras>) {
    let mut ids: std::collections::HashSet<String> = junit
        .iter()
        .map(|c| {
            let mut c = c.clone();
            style.normalize(&mut c);
            style.id_of(&c)
        })
        .collect();
    let mut cases = junit;
    let mut extras: BTreeMap<String, Extras> = BTreeMap::new();
    for t in allure {
        let id = style.id_of(&t.case);
        if ids.insert(id.clone()) {
            cases.push(t.case);
        }
        // Two results of one id in one attempt (an adapter's own retry): the last read wins.
        extras.insert(id, t.extras);
    }
    (cases, extras)
}

#[cfg(test)]
mod tests;
