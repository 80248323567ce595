//! Reading an Allure 2 *report* (what `allure generate` writes, and what Aqua serves at a
//! launch's `reportRequestUrl`): `data/suites.json` lists every test as a leaf of a tree of
//! suites, each leaf naming its `uid`; `data/test-cases/{uid}.json` holds one test's status,
//! `statusMessage`, `statusTrace` and time.
//!
//! Only the parsing lives here, apart from how the files are fetched (HTTP for Aqua): each
//! test becomes an ordinary [`Case`], so that the attempt merge (passed, flaky, failed,
//! broken, skipped), classification and failure signatures treat it exactly as a JUnit case.

use serde::Deserialize;

use super::{Case, CaseStatus};

/// Why a report file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{file} is not an Allure 2 report file: {source}")]
    Json {
        file: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{file}: {reason}")]
    Shape { file: String, reason: String },
}

/// The path of `suites.json` under a report's root.
pub const SUITES: &str = "data/suites.json";

/// The path of one test's file under a report's root. The uid comes from the report itself:
/// only ids Allure writes (letters and digits) are accepted, so it cannot climb out of
/// `data/test-cases/`.
pub fn test_case_path(uid: &str) -> Result<String, ReportError> {
    if uid.is_empty() || uid.len() > 128 || !uid.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ReportError::Shape {
            file: SUITES.into(),
            reason: format!("{uid:?} is not a test uid"),
        });
    }
    Ok(format!("data/test-cases/{uid}.json"))
}

#[derive(Deserialize)]
struct Node {
    #[serde(default)]
    name: String,
    #[serde(default)]
    uid: Option<String>,
    /// Present on suites (possibly empty), absent on tests.
    #[serde(default)]
    children: Option<Vec<Node>>,
}

/// The uids of every test in `suites.json`, in the report's order, with the names of the
/// suites around it (outermost first; the root `suites` is left out).
pub fn test_uids(json: &[u8]) -> Result<Vec<(String, Vec<String>)>, ReportError> {
    let root: Node = serde_json::from_slice(json).map_err(|source| ReportError::Json {
        file: SUITES.into(),
        source,
    })?;
    let Some(children) = root.children else {
        return Err(ReportError::Shape {
            file: SUITES.into(),
            reason: "has no \"children\": not the suites tree of an Allure 2 report".into(),
        });
    };
    let mut out = Vec::new();
    let mut path = Vec::new();
    walk(&children, &mut path, &mut out)?;
    Ok(out)
}

fn walk(
    nodes: &[Node],
    path: &mut Vec<String>,
    out: &mut Vec<(String, Vec<String>)>,
) -> Result<(), ReportError> {
    for n in nodes {
        match &n.children {
            Some(children) => {
                path.push(n.name.clone());
                walk(children, path, out)?;
                path.pop();
            }
            None => {
                let uid = n.uid.clone().ok_or_else(|| ReportError::Shape {
                    file: SUITES.into(),
                    reason: format!("the test {:?} has no uid", n.name),
                })?;
                out.push((uid, path.clone()));
            }
        }
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TestCase {
    name: String,
    #[serde(default)]
    full_name: Option<String>,
    status: String,
    #[serde(default)]
    status_message: Option<String>,
    #[serde(default)]
    status_trace: Option<String>,
    #[serde(default)]
    time: Option<Time>,
}

#[derive(Deserialize)]
struct Time {
    #[serde(default)]
    duration: Option<u64>,
}

/// One test's file (`data/test-cases/{uid}.json`) as a [`Case`]: `suites` are the suites
/// around it in `suites.json`; the class name is `fullName` without its last `#name` part
/// (`tests.test_cart#test_total` → `tests.test_cart`), so a test's id is stable across
/// launches. Allure's `broken` (and `unknown`) is JUnit's error.
pub fn case_of(json: &[u8], uid: &str, suites: Vec<String>) -> Result<Case, ReportError> {
    let file = || format!("data/test-cases/{uid}.json");
    let t: TestCase =
        serde_json::from_slice(json).map_err(|source| ReportError::Json { file: file(), source })?;
    let status = match t.status.as_str() {
        "passed" => CaseStatus::Passed,
        "failed" => CaseStatus::Failed,
        "skipped" => CaseStatus::Skipped,
        "broken" | "unknown" => CaseStatus::Errored,
        other => {
            return Err(ReportError::Shape {
                file: file(),
                reason: format!("unknown status {other:?}"),
            });
        }
    };
    let classname = t
        .full_name
        .as_deref()
        .map(|f| f.rsplit_once('#').map_or(f, |(class, _)| class))
        .unwrap_or_default()
        .to_string();
    let message = t.status_message.unwrap_or_default();
    let trace = match status {
        CaseStatus::Failed | CaseStatus::Errored => t.status_trace.unwrap_or_default().trim().to_string(),
        _ => String::new(),
    };
    Ok(Case {
        suites,
        classname,
        name: t.name,
        file: None,
        time_ms: t.time.and_then(|t| t.duration),
        status,
        message: message.lines().next().unwrap_or_default().to_string(),
        kind: String::new(),
        trace,
        system_out: String::new(),
        system_err: String::new(),
    })
}

/// Cases as a JUnit XML report that [`super::junit::parse`] reads back into the same cases:
/// how operator mode stores an Aqua attempt's tests, in the same results store and format as
/// an uploaded JUnit report. Each case sits in `<testsuite>` elements nested as its suites.
pub fn to_junit(cases: &[Case]) -> String {
    use quick_xml::escape::escape;
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n");
    for c in cases {
        for s in &c.suites {
            out.push_str(&format!("<testsuite name=\"{}\">", escape(s.as_str())));
        }
        out.push_str(&format!(
            "<testcase classname=\"{}\" name=\"{}\"",
            escape(c.classname.as_str()),
            escape(c.name.as_str())
        ));
        if let Some(ms) = c.time_ms {
            out.push_str(&format!(" time=\"{}.{:03}\"", ms / 1000, ms % 1000));
        }
        out.push('>');
        let element = match c.status {
            CaseStatus::Passed => None,
            CaseStatus::Failed => Some("failure"),
            CaseStatus::Errored => Some("error"),
            CaseStatus::Skipped => Some("skipped"),
        };
        if let Some(e) = element {
            out.push_str(&format!(
                "<{e} message=\"{}\">{}</{e}>",
                escape(c.message.as_str()),
                escape(c.trace.as_str())
            ));
        }
        out.push_str("</testcase>");
        for _ in &c.suites {
            out.push_str("</testsuite>");
        }
        out.push('\n');
    }
    out.push_str("</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUITES_JSON: &str = r#"{"uid":"98d3","name":"suites","children":[
        {"name":"test_mixed","uid":"a1","children":[
            {"name":"test_pass","uid":"96230838bf6b5078","status":"passed"},
            {"name":"Nested","uid":"b2","children":[{"name":"test_deep","uid":"cdc7bed4178aefd2","status":"failed"}]}
        ]}]}"#;

    #[test]
    fn every_leaf_of_the_suites_tree_is_a_test_with_its_suites() {
        let uids = test_uids(SUITES_JSON.as_bytes()).unwrap();
        assert_eq!(
            uids,
            vec![
                ("96230838bf6b5078".to_string(), vec!["test_mixed".to_string()]),
                (
                    "cdc7bed4178aefd2".to_string(),
                    vec!["test_mixed".to_string(), "Nested".to_string()]
                ),
            ]
        );
    }

    #[test]
    fn a_file_that_is_not_a_suites_tree_is_refused_by_name() {
        let e = test_uids(b"<html>").unwrap_err().to_string();
        assert!(
            e.starts_with("data/suites.json is not an Allure 2 report file"),
            "{e}"
        );
        let e = test_uids(br#"{"name":"x"}"#).unwrap_err().to_string();
        assert!(e.contains("has no \"children\""), "{e}");
        assert!(test_case_path("../../etc/passwd").is_err());
        assert_eq!(test_case_path("ab12").unwrap(), "data/test-cases/ab12.json");
    }

    #[test]
    fn cases_written_as_junit_read_back_the_same() {
        let cases = vec![
            case_of(
                br#"{"name":"test_b <x>","fullName":"t#test_b <x>","status":"broken","statusMessage":"E: \"q\" & <a>","statusTrace":"line 1\nline 2","time":{"duration":1234}}"#,
                "u1",
                vec!["mixed".into(), "test_x".into()],
            )
            .unwrap(),
            case_of(br#"{"name":"p","fullName":"t#p","status":"passed"}"#, "u2", vec!["mixed".into()]).unwrap(),
            case_of(br#"{"name":"s","fullName":"t#s","status":"skipped","statusMessage":"later"}"#, "u3", vec![]).unwrap(),
        ];
        let xml = to_junit(&cases);
        let mut back = Vec::new();
        super::super::junit::parse(xml.as_bytes(), |c| back.push(c)).unwrap();
        assert_eq!(back.len(), 3, "{xml}");
        for (a, b) in cases.iter().zip(&back) {
            assert_eq!(
                (
                    &a.suites,
                    &a.classname,
                    &a.name,
                    a.status,
                    &a.message,
                    &a.trace,
                    a.time_ms
                ),
                (
                    &b.suites,
                    &b.classname,
                    &b.name,
                    b.status,
                    &b.message,
                    &b.trace,
                    b.time_ms
                ),
                "{xml}"
            );
        }
    }

    #[test]
    fn broken_is_an_error_with_message_trace_and_time() {
        let json = br#"{"uid":"3cd2","name":"test_broken","fullName":"tests.test_x#test_broken",
            "status":"broken","statusMessage":"RuntimeError: oops\nmore","statusTrace":"  trace here \n",
            "time":{"start":1,"stop":5,"duration":4}}"#;
        let c = case_of(json, "3cd2", vec!["test_x".into()]).unwrap();
        assert_eq!(c.status, CaseStatus::Errored);
        assert_eq!(
            (c.classname.as_str(), c.name.as_str()),
            ("tests.test_x", "test_broken")
        );
        assert_eq!(c.message, "RuntimeError: oops");
        assert_eq!(c.trace, "trace here");
        assert_eq!(c.time_ms, Some(4));
        let skipped = br#"{"name":"s","status":"skipped","statusMessage":"not today"}"#;
        let c = case_of(skipped, "s", vec![]).unwrap();
        assert_eq!((c.status, c.trace.as_str()), (CaseStatus::Skipped, ""));
        let e = case_of(br#"{"name":"s","status":"weird"}"#, "s", vec![]).unwrap_err();
        assert!(e.to_string().contains("unknown status \"weird\""), "{e}");
    }
}
