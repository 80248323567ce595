//! Test results: reading JUnit XML, and merging attempts into one verdict per test.

pub mod allure;
pub mod allure_report;
pub mod attachments;
pub mod junit;
mod merge;
mod novelty;
pub mod signature;
mod testid;
pub mod upload;

pub use junit::{Case, CaseStatus};
pub use merge::{MergedTest, TestVerdict, attempt_summary, merge, selection_filter, summarize, verdict_of};
pub use novelty::{Counts as NoveltyCounts, Novelty, Outcome, PastFailure, Tags, tag as tag_novelty};
pub use signature::Signature;
pub use testid::{TestIdStyle, case_var, strip_up};

/// One test's result in one attempt: the JUnit case plus the id it is known by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptResult {
    /// Attempt number (1 = the full run).
    pub attempt: u32,
    /// Test id (see `rerun.testId` in packs_config), unique within the attempt (cases that
    /// share one are merged by [`assign_ids`]).
    pub id: String,
    pub case: Case,
}

/// Gives each case of one attempt its test id (after the id style's clean-up of what the
/// framework wrote, e.g. Node's double-escaped quotes), one result per id.
///
/// A test id is what the rerun hands back to the framework, so cases that share one are one
/// test to Tomato: pytest reports a test whose fixture teardown also failed as a second case
/// of the same name, and a name filter reruns two same-named tests together. They become one
/// result with the worst outcome — errored, failed, passed, skipped — and both outputs. (An
/// invented `id #2` would be passed to the framework, which knows no such test.)
pub fn assign_ids(attempt: u32, cases: Vec<Case>, style: &TestIdStyle) -> Vec<AttemptResult> {
    let mut out: Vec<AttemptResult> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for mut case in cases {
        style.normalize(&mut case);
        let id = style.id_of(&case);
        match index.get(&id) {
            Some(&i) => merge_case(&mut out[i].case, case),
            None => {
                index.insert(id.clone(), out.len());
                out.push(AttemptResult { attempt, id, case });
            }
        }
    }
    out
}

/// Folds a second report of the same test into the first (see [`assign_ids`]).
fn merge_case(into: &mut Case, other: Case) {
    let rank = |s: CaseStatus| match s {
        CaseStatus::Errored => 3,
        CaseStatus::Failed => 2,
        CaseStatus::Passed => 1,
        CaseStatus::Skipped => 0,
    };
    let join = |a: &mut String, b: String| {
        if !b.is_empty() {
            if !a.is_empty() {
                a.push('\n');
            }
            a.push_str(&b);
        }
    };
    into.time_ms = match (into.time_ms, other.time_ms) {
        (Some(a), Some(b)) => Some(a + b),
        (a, b) => a.or(b),
    };
    join(&mut into.system_out, other.system_out);
    join(&mut into.system_err, other.system_err);
    if rank(other.status) > rank(into.status) {
        into.status = other.status;
        into.message = other.message;
        into.kind = other.kind;
        into.trace = other.trace;
    }
}
/// Where an attempt's Allure results are (`{allure}`): `allure-results/` beside its JUnit
/// report, so each attempt (and each Job) has its own, never an earlier attempt's files.
pub fn allure_dir(junit: &std::path::Path) -> std::path::PathBuf {
    junit
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .join("allure-results")
}

/// The JUnit files an attempt wrote: `junit` itself and every `*.xml` under `junit/` beside it.
pub fn junit_files(junit: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    if junit.is_file() {
        files.push(junit.to_path_buf());
    }
    let dir = junit.parent().unwrap_or(std::path::Path::new(".")).join("junit");
    if let Ok(entries) = std::fs::read_dir(dir) {
        let mut more: Vec<std::path::PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "xml"))
            .collect();
        more.sort();
        files.extend(more);
    }
    files
}

/// Copies the `*.xml` files a runner wrote into its own report directory (`launch.reports`:
/// Surefire, Gradle) since `since` — this attempt's, not an earlier attempt's left behind —
/// into the `junit/` directory beside `junit`, where [`junit_files`] finds them. Returns how
/// many were copied; a missing directory is none.
pub fn collect_reports(
    from: &std::path::Path,
    junit: &std::path::Path,
    since: std::time::SystemTime,
) -> std::io::Result<usize> {
    let Ok(entries) = std::fs::read_dir(from) else {
        return Ok(0);
    };
    let to = junit.parent().unwrap_or(std::path::Path::new(".")).join("junit");
    let mut copied = 0;
    for e in entries.flatten() {
        let path = e.path();
        let fresh = e.metadata().and_then(|m| m.modified()).is_ok_and(|t| t >= since);
        if fresh && path.extension().is_some_and(|x| x == "xml") {
            std::fs::create_dir_all(&to)?;
            std::fs::copy(&path, to.join(e.file_name()))?;
            copied += 1;
        }
    }
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(file: &str, name: &str, status: CaseStatus, message: &str, out: &str) -> Case {
        Case {
            suites: vec![],
            classname: file.trim_end_matches(".py").replace('/', "."),
            name: name.into(),
            file: Some(file.into()),
            time_ms: Some(10),
            status,
            message: message.into(),
            kind: String::new(),
            trace: String::new(),
            system_out: out.into(),
            system_err: String::new(),
        }
    }

    /// pytest reports a test whose fixture teardown also failed as two cases of one node id:
    /// one result, never an invented `id #2` for the rerun to hand the framework.
    #[test]
    fn cases_sharing_a_test_id_are_one_result_with_the_worst_outcome() {
        let cases = vec![
            case(
                "t.py",
                "test_x",
                CaseStatus::Failed,
                "assert 1 == 2",
                "call output",
            ),
            case("t.py", "test_ok", CaseStatus::Passed, "", ""),
            case(
                "t.py",
                "test_x",
                CaseStatus::Errored,
                "teardown boom",
                "teardown output",
            ),
        ];
        let results = assign_ids(1, cases, &TestIdStyle::Pytest);
        let ids: Vec<&str> = results.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["t.py::test_x", "t.py::test_ok"]);
        let x = &results[0].case;
        assert_eq!(
            (x.status, x.message.as_str()),
            (CaseStatus::Errored, "teardown boom")
        );
        assert_eq!(x.system_out, "call output\nteardown output");
        assert_eq!(x.time_ms, Some(20));

        let twice_passing = vec![
            case("t.py", "test_y", CaseStatus::Skipped, "later", ""),
            case("t.py", "test_y", CaseStatus::Passed, "", ""),
        ];
        let r = assign_ids(2, twice_passing, &TestIdStyle::Pytest);
        assert_eq!((r.len(), r[0].case.status), (1, CaseStatus::Passed));
    }

    #[test]
    fn only_reports_written_during_the_attempt_are_collected() {
        let dir = tempfile::tempdir().unwrap();
        let reports = dir.path().join("surefire-reports");
        std::fs::create_dir(&reports).unwrap();
        std::fs::write(reports.join("TEST-Old.xml"), "<testsuite/>").unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        std::fs::File::options()
            .write(true)
            .open(reports.join("TEST-Old.xml"))
            .unwrap()
            .set_modified(old)
            .unwrap();
        let since = std::time::SystemTime::now() - std::time::Duration::from_secs(1);
        std::fs::write(reports.join("TEST-New.xml"), "<testsuite/>").unwrap();
        std::fs::write(reports.join("TEST-New.txt"), "").unwrap();
        let attempt = dir.path().join("attempt");
        std::fs::create_dir(&attempt).unwrap();
        let junit = attempt.join("junit.xml");
        assert_eq!(collect_reports(&reports, &junit, since).unwrap(), 1);
        let names: Vec<String> = junit_files(&junit)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["TEST-New.xml"]);
        assert_eq!(
            collect_reports(&dir.path().join("none"), &junit, since).unwrap(),
            0
        );
    }

    /// The id style's clean-up happens here, for both modes: Node's doubly escaped quotes.
    #[test]
    fn ids_are_made_after_the_styles_clean_up() {
        let mut c = case("", "say &quot;hi&quot;", CaseStatus::Failed, "", "");
        c.file = None;
        let r = assign_ids(1, vec![c], &TestIdStyle::Node);
        assert_eq!(r[0].id, "say \"hi\"");
    }
}
