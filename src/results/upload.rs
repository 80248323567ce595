//! What `tomato exec` sends from a Job for one attempt (or one shard of it): the wire format
//! between the launcher in the pod, the API that receives it, and the store that keeps it
//! (operator mode: ConfigMaps, [`crate::operator::results`]).

use std::io::Write;

/// The log is cut to its last this many bytes before compression.
pub const LOG_TAIL_BYTES: usize = 4 << 20;
/// Attachments operator mode keeps at most, per test and per attempt: results live in
/// ConfigMaps (at most `MAX_CONFIG_MAPS` of `PART_BYTES` per attempt) until they move to
/// a database (issue 14), so the service's limits are clamped to these. `tomato exec` sends
/// no more than this of an attempt's attachments.
pub const OPERATOR_ATTACHMENTS: super::allure::Limits = super::allure::Limits {
    per_test: 1 << 20,
    per_run: 8 << 20,
};

/// A service's attachment limits as operator mode applies them (clamped to
/// [`OPERATOR_ATTACHMENTS`]; the per-run limit counts per attempt there).
pub fn operator_limits(l: super::allure::Limits) -> super::allure::Limits {
    super::allure::Limits {
        per_test: l.per_test.min(OPERATOR_ATTACHMENTS.per_test),
        per_run: l.per_run.min(OPERATOR_ATTACHMENTS.per_run),
    }
}

/// Who reported the results.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// `tomato exec` uploaded them.
    Upload,
    /// No upload came; the log was read from the pod.
    PodLog,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Upload => "upload",
            Source::PodLog => "pod-log",
        }
    }
}

/// One attempt's results as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptResults {
    pub source: Source,
    pub exit_code: Option<i32>,
    /// The signal that ended the tests, when one did.
    pub signal: Option<i32>,
    /// JUnit files, gzip'd, in the order the runner wrote them.
    pub junit_gz: Vec<Vec<u8>>,
    /// The log (plain); only its tail is kept.
    pub log: Vec<u8>,
    /// Why the results look the way they do (the fallback's explanation).
    pub message: Option<String>,
    /// Tests a shard was given but did not report, each with why (a merged sharded attempt
    /// only): read back as broken results, exactly as standalone mode records them.
    pub owed: Vec<Owed>,
    /// Allure results files `tomato exec` sent (result and container files and the
    /// attachments it kept), by file name, gzip'd. Names are checked plain file names.
    pub allure_gz: Vec<(String, Vec<u8>)>,
    /// What `tomato exec` left out of the Allure results, and why.
    pub allure_notes: Vec<String>,
}

/// A test owed by a shard that crashed, timed out or never reported ([`crate::shard::unreported`]).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Owed {
    pub id: String,
    pub message: String,
    /// The failure kind ([`crate::shard::UNREPORTED_ITEM`] for an owed pack or file).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
}

/// Compresses bytes (JUnit as `tomato exec` sends it, or a log).
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}
