//! Where operator mode keeps an attempt's results: ConfigMaps owned by the TestRun.
//!
//! `tomato exec` uploads an attempt's JUnit XML and log to whichever replica the Service
//! picks; that replica stores them in the Kubernetes API, so that every replica can read them
//! (the API's `/tests`, `/log`, `/junit`) and the leader can ingest them, and so that
//! owner-reference garbage collection removes them with the run. Everything is stored gzip'd
//! in `binaryData`; the log is cut to its tail. A ConfigMap holds at most 1 MiB, so large
//! reports are split: each file becomes parts of at most [`PART_BYTES`], packed into the
//! primary ConfigMap `<run>-results-<n>` and, when they do not fit, into
//! `<run>-results-<n>-<k>`. The primary is written last and names every part, so its presence
//! means the whole set is there. Every one is `immutable`, so a reader may cache them.
//!
//! The same shape records the pod-log fallback (no upload came): no JUnit, the log read from
//! the pod, and a message saying so.

use std::collections::BTreeMap;
use std::io::{BufReader, Read};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};

use crate::classify::{ByTest, Classified};
use crate::core::ReportRead;
use crate::crd::{LABEL_RUN, Selection, TestRun};
use crate::launch::job::ShardLaunch;
use crate::launch::job::{LABEL_LAUNCH, bounded, label_value, launch_object_meta};
use crate::results::TestIdStyle;
use crate::results::upload::{AttemptResults, LOG_TAIL_BYTES, Owed, Source, gzip};
use crate::results::{self, AttemptResult, Signature};
use crate::store::results::{ArtifactKind, ResultsStore, RunIdentity};

/// Largest part of a file in one ConfigMap key, and the most one ConfigMap carries: well
/// under the API server's 1 MiB, with room for metadata.
pub const PART_BYTES: usize = 700 * 1024;
/// At most this many ConfigMaps per attempt (~20 MiB of compressed JUnit).
pub const MAX_CONFIG_MAPS: usize = 32;

/// Label marking results ConfigMaps (`primary` or `part`).
pub const LABEL_RESULTS: &str = "tomato.dev/results";
const ANNOTATION_PARTS: &str = "tomato.dev/parts";
const ANNOTATION_EXIT_CODE: &str = "tomato.dev/exit-code";
const ANNOTATION_SIGNAL: &str = "tomato.dev/signal";
const ANNOTATION_SOURCE: &str = "tomato.dev/source";
const ANNOTATION_MESSAGE: &str = "tomato.dev/message";
const ANNOTATION_LOG_CUT: &str = "tomato.dev/log-cut-bytes";
const LOG_FILE: &str = "output.log.gz";
/// The tests a merged sharded attempt owes (given to a shard that did not report them).
const OWED_FILE: &str = "owed.json.gz";
/// Files of the uploaded Allure results are stored as `allure.<file name>.gz`.
const ALLURE_PREFIX: &str = "allure.";
/// What `tomato exec` left out of the Allure results.
const ALLURE_NOTES_FILE: &str = "allure-notes.json.gz";
/// Label giving the completion index of a shard's own results (absent on an attempt's).
pub const LABEL_SHARD: &str = "tomato.dev/shard";

/// Stored results, read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredResults {
    pub source: Source,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub message: Option<String>,
    junit_gz: Vec<Vec<u8>>,
    log_gz: Vec<u8>,
    /// Bytes cut from the start of the log.
    pub log_cut: u64,
    pub owed: Vec<Owed>,
    allure_gz: Vec<(String, Vec<u8>)>,
    allure_notes: Vec<String>,
}

/// Why results could not be stored or read.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    #[error("the results are too large: {0}")]
    TooLarge(String),
    #[error("stored results are damaged: {0}")]
    Damaged(String),
    #[error("the Kubernetes API failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("the results database failed: {0}")]
    Store(#[from] crate::store::StoreError),
}

/// The primary results ConfigMap of a run's `seq`-th launch.
pub fn results_name(run: &str, seq: usize) -> String {
    bounded(run, &format!("-results-{seq}"), 253)
}

/// The primary results ConfigMap of shard `index` of a run's `seq`-th launch (what its pod
/// uploaded); the attempt's own ([`results_name`]) is their merge.
pub fn shard_results_name(run: &str, seq: usize, index: u32) -> String {
    bounded(run, &format!("-results-{seq}-shard-{index}"), 253)
}

fn gunzip(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_end(&mut out)
        .map_err(|e| format!("not gzip data: {e}"))?;
    Ok(out)
}

/// The ConfigMaps that store `results` of `run`'s `seq`-th launch; the primary comes last
/// (write them in order). Pure.
pub fn pack(run: &TestRun, seq: usize, results: &AttemptResults) -> Result<Vec<ConfigMap>, ResultsError> {
    pack_for(run, seq, None, results)
}

/// [`pack`] for the launch's own results (`shard` none) or one shard's. Pure.
pub fn pack_for(
    run: &TestRun,
    seq: usize,
    shard: Option<u32>,
    results: &AttemptResults,
) -> Result<Vec<ConfigMap>, ResultsError> {
    let stored = StoredResults::of(results);
    let files = stored.files()?;
    let run_name = run.name_any();

    // Split files into parts and pack parts into ConfigMaps (first fit, in order).
    let mut maps: Vec<BTreeMap<String, ByteString>> = vec![BTreeMap::new()];
    let mut sizes = vec![0usize];
    let mut manifest = Vec::new();
    for (name, bytes) in &files {
        let parts: Vec<&[u8]> = if bytes.is_empty() {
            vec![&[][..]]
        } else {
            bytes.chunks(PART_BYTES).collect()
        };
        manifest.push(format!("{name}:{}", parts.len()));
        for (i, part) in parts.into_iter().enumerate() {
            let slot = match sizes.iter().position(|s| s + part.len() <= PART_BYTES) {
                Some(slot) => slot,
                None => {
                    maps.push(BTreeMap::new());
                    sizes.push(0);
                    maps.len() - 1
                }
            };
            sizes[slot] += part.len();
            maps[slot].insert(format!("{name}.{i}"), ByteString(part.to_vec()));
        }
    }
    if maps.len() > MAX_CONFIG_MAPS {
        return Err(ResultsError::TooLarge(format!(
            "{} MiB of compressed JUnit needs more than {MAX_CONFIG_MAPS} ConfigMaps",
            files.iter().map(|(_, b)| b.len()).sum::<usize>() >> 20
        )));
    }

    let primary = match shard {
        Some(i) => shard_results_name(&run_name, seq, i),
        None => results_name(&run_name, seq),
    };
    let extra = maps.len() - 1;
    let meta = |name: String, kind: &str, annotations: BTreeMap<String, String>| {
        let mut meta = launch_object_meta(run, name, seq);
        let labels = meta.labels.get_or_insert_default();
        labels.insert(LABEL_RESULTS.to_string(), kind.to_string());
        if let Some(i) = shard {
            labels.insert(LABEL_SHARD.to_string(), i.to_string());
        }
        meta.annotations = (!annotations.is_empty()).then_some(annotations);
        meta
    };
    let mut annotations = BTreeMap::from([
        (
            ANNOTATION_PARTS.to_string(),
            format!("{extra};{}", manifest.join(",")),
        ),
        (ANNOTATION_SOURCE.to_string(), stored.source.as_str().to_string()),
    ]);
    if let Some(code) = stored.exit_code {
        annotations.insert(ANNOTATION_EXIT_CODE.into(), code.to_string());
    }
    if let Some(signal) = stored.signal {
        annotations.insert(ANNOTATION_SIGNAL.into(), signal.to_string());
    }
    if let Some(m) = &stored.message {
        annotations.insert(ANNOTATION_MESSAGE.into(), m.clone());
    }
    if stored.log_cut > 0 {
        annotations.insert(ANNOTATION_LOG_CUT.into(), stored.log_cut.to_string());
    }

    let mut out: Vec<ConfigMap> = maps
        .iter()
        .enumerate()
        .skip(1)
        .map(|(k, data)| ConfigMap {
            metadata: meta(format!("{primary}-{k}"), "part", BTreeMap::new()),
            binary_data: Some(data.clone()),
            immutable: Some(true),
            ..Default::default()
        })
        .collect();
    out.push(ConfigMap {
        metadata: meta(primary, "primary", annotations),
        binary_data: Some(maps[0].clone()),
        immutable: Some(true),
        ..Default::default()
    });
    Ok(out)
}

/// Reads results back from the primary ConfigMap and its parts (in any order). Pure.
pub fn unpack(primary: &ConfigMap, parts: &[ConfigMap]) -> Result<StoredResults, ResultsError> {
    let damaged = |m: String| ResultsError::Damaged(format!("{}: {m}", primary.name_any()));
    let annotations = primary.metadata.annotations.clone().unwrap_or_default();
    let get = |k: &str| annotations.get(k).map(String::as_str);
    let manifest = get(ANNOTATION_PARTS).ok_or_else(|| damaged("no parts list".into()))?;
    let (extra, files_list) = manifest
        .split_once(';')
        .ok_or_else(|| damaged("malformed parts list".into()))?;
    let extra: usize = extra
        .parse()
        .map_err(|_| damaged("malformed parts count".into()))?;
    if parts.len() < extra {
        return Err(damaged(format!(
            "{} of {extra} part ConfigMaps found",
            parts.len()
        )));
    }
    let mut data: BTreeMap<&str, &[u8]> = BTreeMap::new();
    for cm in std::iter::once(primary).chain(parts) {
        for (k, v) in cm.binary_data.iter().flatten() {
            data.insert(k.as_str(), &v.0);
        }
    }
    let mut files = Vec::new();
    for entry in files_list.split(',').filter(|e| !e.is_empty()) {
        let (name, count) = entry
            .rsplit_once(':')
            .ok_or_else(|| damaged(format!("malformed entry {entry:?}")))?;
        let count: usize = count
            .parse()
            .map_err(|_| damaged(format!("malformed entry {entry:?}")))?;
        let mut bytes = Vec::new();
        for i in 0..count {
            let part = data
                .get(format!("{name}.{i}").as_str())
                .ok_or_else(|| damaged(format!("part {i} of {name} is missing")))?;
            bytes.extend_from_slice(part);
        }
        files.push((name.to_string(), bytes));
    }
    let number = |k: &str| get(k).and_then(|v| v.parse::<i32>().ok());
    let meta = Meta {
        source: if get(ANNOTATION_SOURCE) == Some("pod-log") {
            Source::PodLog
        } else {
            Source::Upload
        },
        exit_code: number(ANNOTATION_EXIT_CODE),
        signal: number(ANNOTATION_SIGNAL),
        message: get(ANNOTATION_MESSAGE).map(str::to_string),
        log_cut: get(ANNOTATION_LOG_CUT).and_then(|v| v.parse().ok()).unwrap_or(0),
    };
    StoredResults::from_files(meta, files).map_err(damaged)
}

/// What stored results say besides their files.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Meta {
    #[serde(with = "source_name")]
    source: Source,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signal: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(default)]
    log_cut: u64,
}

/// [`Source`] by its stored name (`upload`, `pod-log`).
mod source_name {
    use crate::results::upload::Source;

    pub fn serialize<S: serde::Serializer>(source: &Source, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(source.as_str())
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Source, D::Error> {
        let name = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
        Ok(if name == "pod-log" {
            Source::PodLog
        } else {
            Source::Upload
        })
    }
}

/// First line of results kept in the results database ([`StoredResults::encode`]).
const ENCODING: &[u8] = b"tomato-results/1\n";

/// The header line of the database encoding: the metadata and each file's name and length.
#[derive(serde::Serialize, serde::Deserialize)]
struct Header {
    #[serde(flatten)]
    meta: Meta,
    files: Vec<(String, usize)>,
}

impl StoredResults {
    /// What is kept of an upload (or of the pod-log fallback): everything but the log's
    /// start, cut to its last [`LOG_TAIL_BYTES`]. Pure.
    pub fn of(results: &AttemptResults) -> StoredResults {
        let cut = results.log.len().saturating_sub(LOG_TAIL_BYTES);
        StoredResults {
            source: results.source,
            exit_code: results.exit_code,
            signal: results.signal,
            message: results.message.clone(),
            junit_gz: results.junit_gz.clone(),
            log_gz: gzip(&results.log[cut..]),
            log_cut: cut as u64,
            owed: results.owed.clone(),
            // The upload checked them; a name that could break a key or a manifest is never
            // stored.
            allure_gz: results
                .allure_gz
                .iter()
                .filter(|(name, _)| results::allure::safe_source(name))
                .cloned()
                .collect(),
            allure_notes: results.allure_notes.clone(),
        }
    }

    /// The files both encodings keep, by name, in order: the JUnit reports, the log, what a
    /// shard owed, the Allure files and exec's notes.
    fn files(&self) -> Result<Vec<(String, Vec<u8>)>, ResultsError> {
        let mut files: Vec<(String, Vec<u8>)> = self
            .junit_gz
            .iter()
            .enumerate()
            .map(|(i, j)| (format!("junit-{i}.xml.gz"), j.clone()))
            .collect();
        files.push((LOG_FILE.into(), self.log_gz.clone()));
        if !self.owed.is_empty() {
            files.push((OWED_FILE.into(), json_gz(&self.owed)?));
        }
        for (name, gz) in &self.allure_gz {
            files.push((format!("{ALLURE_PREFIX}{name}.gz"), gz.clone()));
        }
        if !self.allure_notes.is_empty() {
            files.push((ALLURE_NOTES_FILE.into(), json_gz(&self.allure_notes)?));
        }
        Ok(files)
    }

    /// Reads back what [`StoredResults::files`] gave, with the metadata beside them.
    fn from_files(meta: Meta, files: Vec<(String, Vec<u8>)>) -> Result<StoredResults, String> {
        let mut stored = StoredResults {
            source: meta.source,
            exit_code: meta.exit_code,
            signal: meta.signal,
            message: meta.message,
            junit_gz: Vec::new(),
            log_gz: Vec::new(),
            log_cut: meta.log_cut,
            owed: Vec::new(),
            allure_gz: Vec::new(),
            allure_notes: Vec::new(),
        };
        for (name, bytes) in files {
            if name == LOG_FILE {
                stored.log_gz = bytes;
            } else if name == OWED_FILE {
                let json = gunzip(&bytes)?;
                stored.owed = serde_json::from_slice(&json).map_err(|e| format!("{OWED_FILE}: {e}"))?;
            } else if name == ALLURE_NOTES_FILE {
                let json = gunzip(&bytes)?;
                stored.allure_notes =
                    serde_json::from_slice(&json).map_err(|e| format!("{ALLURE_NOTES_FILE}: {e}"))?;
            } else if let Some(file) = name
                .strip_prefix(ALLURE_PREFIX)
                .and_then(|n| n.strip_suffix(".gz"))
            {
                stored.allure_gz.push((file.to_string(), bytes));
            } else {
                stored.junit_gz.push(bytes);
            }
        }
        Ok(stored)
    }

    /// The encoding kept in the results database: a version line, a JSON header line (the
    /// metadata, and each file's name and length), then the files' bytes one after the
    /// other. The files are gzip'd already, so the whole is not compressed again. Pure.
    pub fn encode(&self) -> Result<Vec<u8>, ResultsError> {
        let files = self.files()?;
        let header = Header {
            meta: Meta {
                source: self.source,
                exit_code: self.exit_code,
                signal: self.signal,
                message: self.message.clone(),
                log_cut: self.log_cut,
            },
            files: files.iter().map(|(n, b)| (n.clone(), b.len())).collect(),
        };
        let header = serde_json::to_vec(&header).map_err(|e| ResultsError::Damaged(e.to_string()))?;
        let mut out = Vec::with_capacity(
            ENCODING.len() + header.len() + 1 + files.iter().map(|(_, b)| b.len()).sum::<usize>(),
        );
        out.extend_from_slice(ENCODING);
        out.extend_from_slice(&header);
        out.push(b'\n');
        for (_, bytes) in files {
            out.extend_from_slice(&bytes);
        }
        Ok(out)
    }

    /// Reads [`StoredResults::encode`]'s bytes back; `what` names them in errors. Pure.
    pub fn decode(bytes: &[u8], what: &str) -> Result<StoredResults, ResultsError> {
        let damaged = |m: String| ResultsError::Damaged(format!("{what}: {m}"));
        let rest = bytes
            .strip_prefix(ENCODING)
            .ok_or_else(|| damaged("not results in a format this Tomato reads".into()))?;
        let end = rest
            .iter()
            .position(|b| *b == b'\n')
            .ok_or_else(|| damaged("no header line".into()))?;
        let header: Header =
            serde_json::from_slice(&rest[..end]).map_err(|e| damaged(format!("header: {e}")))?;
        let mut body = &rest[end + 1..];
        let mut files = Vec::with_capacity(header.files.len());
        for (name, len) in header.files {
            if body.len() < len {
                return Err(damaged(format!("{name} is cut short")));
            }
            let (file, tail) = body.split_at(len);
            files.push((name, file.to_vec()));
            body = tail;
        }
        if !body.is_empty() {
            return Err(damaged(format!("{} bytes after the last file", body.len())));
        }
        StoredResults::from_files(header.meta, files).map_err(damaged)
    }

    /// The log tail, as text.
    pub fn log(&self) -> Result<String, ResultsError> {
        if self.log_gz.is_empty() {
            return Ok(String::new());
        }
        let bytes = gunzip(&self.log_gz).map_err(ResultsError::Damaged)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The JUnit reports as stored (gzip'd), for merging shards' results.
    pub fn junit_parts(&self) -> &[Vec<u8>] {
        &self.junit_gz
    }

    /// The uploaded Allure files (gzip'd, by name) and exec's notes, for merging shards'.
    pub fn allure_parts(&self) -> (&[(String, Vec<u8>)], &[String]) {
        (&self.allure_gz, &self.allure_notes)
    }

    /// Whether any JUnit report came.
    pub fn has_junit(&self) -> bool {
        !self.junit_gz.is_empty()
    }

    /// The JUnit report(s) as the runner wrote them (several files one after the other).
    pub fn junit_xml(&self) -> Result<Vec<u8>, ResultsError> {
        let mut out = Vec::new();
        for j in &self.junit_gz {
            out.extend(gunzip(j).map_err(ResultsError::Damaged)?);
        }
        Ok(out)
    }

    /// Parses the JUnit report(s) of attempt `number` into results with test ids. Streams
    /// through the decompressor: a large report never sits in memory whole.
    pub fn parse(&self, number: u32, style: &TestIdStyle) -> (ReportRead, Vec<AttemptResult>) {
        let allure = self.allure_read();
        if self.junit_gz.is_empty() && self.owed.is_empty() && allure.is_none() {
            return (ReportRead::Missing, Vec::new());
        }
        let mut cases = Vec::new();
        for (i, j) in self.junit_gz.iter().enumerate() {
            let reader = BufReader::new(flate2::read::MultiGzDecoder::new(&j[..]));
            if let Err(e) = results::junit::parse(reader, |c| cases.push(c)) {
                let which = if self.junit_gz.len() > 1 {
                    format!("report {} of {}: ", i + 1, self.junit_gz.len())
                } else {
                    String::new()
                };
                return (ReportRead::Invalid(format!("{which}{e}")), Vec::new());
            }
        }
        let allure = allure.map(|r| r.tests).unwrap_or_default();
        let (cases, _) = results::allure::unite(cases, allure, style);
        let mut results = results::assign_ids(number, cases, style);
        results.extend(self.owed_results(number));
        (ReportRead::Found(results.len()), results)
    }

    /// The uploaded Allure result and container files, read; `None` when none came.
    fn allure_read(&self) -> Option<results::allure::Read> {
        let files: Vec<(String, Result<Vec<u8>, String>)> = self
            .allure_gz
            .iter()
            .filter(|(n, _)| n.ends_with("-result.json") || n.ends_with("-container.json"))
            .map(|(n, gz)| (n.clone(), gunzip(gz)))
            .collect();
        (!files.is_empty()).then(|| results::allure::read_files(files))
    }

    /// The attempt's Allure record (steps, parameters, labels, attachments by test id), with
    /// `limits` applied to the attachments `tomato exec` sent (one not sent is refused with
    /// the reason exec gave in the notes). `None` when no Allure results came.
    pub fn allure_extras(
        &self,
        style: &TestIdStyle,
        limits: results::allure::Limits,
    ) -> Option<results::allure::AttemptExtras> {
        let read = self.allure_read()?;
        let (_, tests) = results::allure::unite(Vec::new(), read.tests, style);
        let mut tests: Vec<(String, results::allure::Extras)> = tests.into_iter().collect();
        let size_of = |source: &str| {
            self.allure_gz
                .iter()
                .find(|(n, _)| n == source)
                .and_then(|(_, gz)| gunzip(gz).ok())
                .map(|b| b.len() as u64)
        };
        results::allure::apply_limits(&mut tests, limits, 0, size_of);
        let mut notes = self.allure_notes.clone();
        notes.extend(read.notes);
        Some(results::allure::AttemptExtras {
            tests: tests.into_iter().collect(),
            notes,
        })
    }

    /// An uploaded Allure file (an attachment) by its name.
    pub fn allure_file(&self, name: &str) -> Option<Vec<u8>> {
        let (_, gz) = self.allure_gz.iter().find(|(n, _)| n == name)?;
        gunzip(gz).ok()
    }

    /// The owed tests as broken results of attempt `number`.
    pub fn owed_results(&self, number: u32) -> Vec<AttemptResult> {
        self.owed
            .iter()
            .map(|o| {
                let mut case = results::Case::failed("", &o.id, None);
                case.status = results::CaseStatus::Errored;
                case.message = o.message.clone();
                case.kind = o.kind.clone();
                AttemptResult {
                    attempt: number,
                    id: o.id.clone(),
                    case,
                }
            })
            .collect()
    }
}

/// What storing found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    Created,
    /// Results for this launch were already stored (an upload retried, or the fallback won).
    AlreadyThere,
}

/// The ConfigMap holding a run's classification as it stood after its `seq`-th launch ended.
pub fn categories_name(run: &str, seq: usize) -> String {
    bounded(run, &format!("-categories-{seq}"), 253)
}

const CATEGORIES_FILE: &str = "categories.json.gz";
/// Beside [`CATEGORIES_FILE`] since failure signatures were recorded; records without it
/// (written before) still read, with no signatures.
const SIGNATURES_FILE: &str = "signatures.json.gz";

/// The immutable ConfigMap recording a run's classification after its `seq`-th launch ended,
/// owned by the run: `categories.json.gz`, gzip'd JSON `{category: [test ids]}` (grouped, so
/// that each category name is stored once), and `signatures.json.gz`, gzip'd JSON
/// `{test id: signature}` (a file of its own, so the first keeps the format older readers
/// know). Pure.
pub fn pack_categories(run: &TestRun, seq: usize, categories: &ByTest) -> Result<ConfigMap, ResultsError> {
    let mut grouped: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut signatures: BTreeMap<&str, &Signature> = BTreeMap::new();
    for (test, c) in categories {
        grouped.entry(&c.category).or_default().push(test);
        if let Some(s) = &c.signature {
            signatures.insert(test, s);
        }
    }
    for ids in grouped.values_mut() {
        ids.sort_unstable();
    }
    let gz = json_gz(&grouped)?;
    let signatures_gz = json_gz(&signatures)?;
    if gz.len() + signatures_gz.len() > PART_BYTES {
        return Err(ResultsError::TooLarge(format!(
            "the classification of {} tests takes {} KiB compressed, more than one ConfigMap holds",
            categories.len(),
            gz.len() >> 10
        )));
    }
    let run_name = run.name_any();
    Ok(ConfigMap {
        metadata: launch_object_meta(run, categories_name(&run_name, seq), seq),
        binary_data: Some(BTreeMap::from([
            (CATEGORIES_FILE.to_string(), ByteString(gz)),
            (SIGNATURES_FILE.to_string(), ByteString(signatures_gz)),
        ])),
        immutable: Some(true),
        ..Default::default()
    })
}

fn json_gz(value: &impl serde::Serialize) -> Result<Vec<u8>, ResultsError> {
    let json = serde_json::to_vec(value).map_err(|e| ResultsError::Damaged(e.to_string()))?;
    Ok(gzip(&json))
}

/// Reads a classification back from its ConfigMap (one without signatures, written before
/// they were recorded, reads with none). Pure.
pub fn unpack_categories(cm: &ConfigMap) -> Result<ByTest, ResultsError> {
    let damaged = |m: String| ResultsError::Damaged(format!("{}: {m}", cm.name_any()));
    let file = |name: &str| cm.binary_data.as_ref().and_then(|d| d.get(name));
    let gz = file(CATEGORIES_FILE).ok_or_else(|| damaged(format!("no {CATEGORIES_FILE}")))?;
    let json = gunzip(&gz.0).map_err(damaged)?;
    let grouped: BTreeMap<String, Vec<String>> =
        serde_json::from_slice(&json).map_err(|e| damaged(e.to_string()))?;
    let mut signatures: std::collections::HashMap<String, Signature> = match file(SIGNATURES_FILE) {
        Some(gz) => {
            let json = gunzip(&gz.0).map_err(damaged)?;
            serde_json::from_slice(&json).map_err(|e| damaged(format!("{SIGNATURES_FILE}: {e}")))?
        }
        None => Default::default(),
    };
    Ok(grouped
        .into_iter()
        .flat_map(|(category, ids)| ids.into_iter().map(move |id| (id, category.clone())))
        .map(|(id, category)| {
            let signature = signatures.remove(&id);
            (id, Classified { category, signature })
        })
        .collect())
}

/// Stores a classification; one already stored for that launch stays (it was made from the
/// same results).
pub async fn store_categories(api: &Api<ConfigMap>, cm: &ConfigMap) -> Result<(), ResultsError> {
    match api.create(&PostParams::default(), cm).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// A run's classification as recorded after its latest ended launch that recorded one; empty
/// when none did.
pub async fn load_categories(api: &Api<ConfigMap>, run: &TestRun) -> Result<ByTest, ResultsError> {
    let launches = run.status.as_ref().map_or(0, |s| s.attempts.len());
    for seq in (1..=launches).rev() {
        if let Some(cm) = api.get_opt(&categories_name(&run.name_any(), seq)).await?
            && owned_by(&cm, run.metadata.uid.as_deref())
        {
            return unpack_categories(&cm);
        }
    }
    Ok(Default::default())
}

/// Creates the ConfigMaps of [`pack`], primary last.
pub async fn store(api: &Api<ConfigMap>, maps: Vec<ConfigMap>) -> Result<Stored, ResultsError> {
    let primary = maps.last().map(ResourceExt::name_any).unwrap_or_default();
    if api.get_opt(&primary).await?.is_some() {
        return Ok(Stored::AlreadyThere);
    }
    for cm in &maps {
        match api.create(&PostParams::default(), cm).await {
            Ok(_) => {}
            // A part left by an earlier, interrupted store: parts are immutable and the
            // same launch always packs the same way, except for a different upload racing
            // this one, whose primary then decides.
            Err(kube::Error::Api(e)) if e.code == 409 => {
                if cm.name_any() == primary {
                    return Ok(Stored::AlreadyThere);
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Stored::Created)
}

/// Whether `obj`'s controller is the run of `uid` (or either is unknown).
pub(super) fn owned_by(obj: &impl kube::Resource, uid: Option<&str>) -> bool {
    let controller = obj
        .meta()
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true));
    match (controller, uid) {
        (Some(owner), Some(uid)) => owner.uid == uid,
        _ => true,
    }
}

/// Reads the stored results of a launch (`shard` none) or of one of its shards, if stored.
/// Results an earlier run of the same name left (deleted and created again, its ConfigMaps
/// not yet garbage-collected) are not this run's: `None`.
pub async fn load_for(
    api: &Api<ConfigMap>,
    run: &TestRun,
    seq: usize,
    shard: Option<u32>,
) -> Result<Option<StoredResults>, ResultsError> {
    let uid = run.metadata.uid.clone();
    let run_name = run.name_any();
    let run = run_name.as_str();
    let name = match shard {
        Some(i) => shard_results_name(run, seq, i),
        None => results_name(run, seq),
    };
    let Some(primary) = api.get_opt(&name).await? else {
        return Ok(None);
    };
    if !owned_by(&primary, uid.as_deref()) {
        return Ok(None);
    }
    // Most results fit the primary; only when they do not are parts looked up.
    if let Ok(stored) = unpack(&primary, &[]) {
        return Ok(Some(stored));
    }
    // The launch's parts and each shard's are told apart by the shard label.
    let shard_selector = match shard {
        Some(i) => format!("{LABEL_SHARD}={i}"),
        None => format!("!{LABEL_SHARD}"),
    };
    let selector = format!(
        "{LABEL_RUN}={},{LABEL_LAUNCH}={seq},{LABEL_RESULTS}=part,{shard_selector}",
        label_value(run)
    );
    let parts = api.list(&ListParams::default().labels(&selector)).await?.items;
    unpack(&primary, &parts).map(Some)
}

/// Where operator mode keeps results, and the one way the controllers and the API reach
/// them: the results database when one is configured (`--database-url`), else ConfigMaps
/// owned by the run ([`pack`]).
///
/// With a database, an upload is kept as one artifact per launch (or shard) in
/// [`StoredResults::encode`]'s form, each ended attempt's tests as rows (what history
/// queries), and the classification as rows; nothing but the bounded status stays in etcd.
/// Results an earlier version kept in ConfigMaps are still read when the database has none
/// for that launch (or run), so an upgrade loses nothing.
///
/// **Keys.** A run of the namespace the API serves is kept under its name, as standalone mode
/// keeps runs, so history's run names are the API's; a run of another namespace (with
/// `--all-namespaces`) under `namespace/name`.
///
/// Recently read results are cached by run uid, launch and shard: stored results never
/// change, so an entry never goes stale; the cache saves reads and decompression for the
/// API's `/tests`, `/log` and `/junit` and for the controller's merges.
pub struct Keeper {
    client: kube::Client,
    database: Option<std::sync::Arc<dyn ResultsStore>>,
    home: String,
    cache: Recent<CacheKey, StoredResults>,
    /// Selections read back from the database, by run uid and launch (they never change).
    selections: Recent<(String, usize), Vec<String>>,
}

/// The last [`CACHE_ENTRIES`] values read, by key: for values that never change once stored.
struct Recent<K, V>(std::sync::Mutex<std::collections::VecDeque<(K, std::sync::Arc<V>)>>);

impl<K, V> Default for Recent<K, V> {
    fn default() -> Self {
        Recent(Default::default())
    }
}

impl<K: PartialEq, V> Recent<K, V> {
    fn get(&self, key: &K) -> Option<std::sync::Arc<V>> {
        self.0
            .lock()
            .expect("the cache lock is never held across a panic")
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    /// Keeps `value` (the oldest entry goes when there are too many) and answers it shared.
    fn put(&self, key: K, value: V) -> std::sync::Arc<V> {
        let value = std::sync::Arc::new(value);
        let mut entries = self
            .0
            .lock()
            .expect("the cache lock is never held across a panic");
        entries.push_back((key, value.clone()));
        while entries.len() > CACHE_ENTRIES {
            entries.pop_front();
        }
        value
    }
}

/// The log's end kept when an attempt's results are too large to keep ([`Keeper::store_or_cut`]).
const CUT_LOG_BYTES: usize = 64 * 1024;

/// A launch's position as the database keys it.
fn launch_number(seq: usize) -> Result<u32, ResultsError> {
    u32::try_from(seq).map_err(|_| ResultsError::Damaged(format!("launch {seq} is out of range")))
}

/// Run uid, launch, shard.
type CacheKey = (String, usize, Option<u32>);

/// Entries kept (the oldest go first).
const CACHE_ENTRIES: usize = 64;

impl Keeper {
    /// Results kept in `database`, or in ConfigMaps without one; `home` is the namespace
    /// the API serves.
    pub fn new(client: kube::Client, home: &str, database: Option<std::sync::Arc<dyn ResultsStore>>) -> Self {
        Keeper {
            client,
            database,
            home: home.to_string(),
            cache: Default::default(),
            selections: Default::default(),
        }
    }

    /// The results database, when one is configured (history reads it).
    pub fn database(&self) -> Option<&dyn ResultsStore> {
        self.database.as_deref()
    }

    /// `run`'s key in the database (see the type's comment).
    pub fn key(&self, run: &TestRun) -> String {
        let ns = run.namespace().unwrap_or_default();
        if ns == self.home || ns.is_empty() {
            run.name_any()
        } else {
            format!("{ns}/{}", run.name_any())
        }
    }

    fn config_maps(&self, run: &TestRun) -> Api<ConfigMap> {
        Api::namespaced(self.client.clone(), &run.namespace().unwrap_or_default())
    }

    /// `run`'s key when the database's record under it is this run's (same uid): what a read
    /// may trust. A run deleted and created again under its name is another run, whose
    /// predecessor's results must not show until its own first write replaces them.
    async fn current_key(
        &self,
        db: &dyn ResultsStore,
        run: &TestRun,
    ) -> Result<Option<String>, ResultsError> {
        let key = self.key(run);
        let uid = run.metadata.uid.as_deref().unwrap_or_default();
        Ok(db
            .run(&key)
            .await?
            .filter(|r| uid.is_empty() || r.identity.uid == uid)
            .map(|_| key))
    }

    /// Records `run` in the database (idempotent; a new run under an old name replaces it).
    async fn record(&self, db: &dyn ResultsStore, run: &TestRun) -> Result<String, ResultsError> {
        let key = self.key(run);
        db.record_run(&RunIdentity {
            name: key.clone(),
            uid: run.metadata.uid.clone().unwrap_or_default(),
            service: run.spec.template.service.clone(),
            stand: run.spec.template.stand.clone(),
            created: crate::store::results::micros_of(crate::crd::created(run)),
        })
        .await?;
        Ok(key)
    }

    /// Keeps the results of `run`'s `seq`-th launch (`shard` none) or of one of its shards.
    /// The first to arrive stays: a retried upload, or the pod-log fallback racing one, finds
    /// [`Stored::AlreadyThere`].
    pub async fn store(
        &self,
        run: &TestRun,
        seq: usize,
        shard: Option<u32>,
        results: &AttemptResults,
    ) -> Result<Stored, ResultsError> {
        let Some(db) = self.database() else {
            return store(&self.config_maps(run), pack_for(run, seq, shard, results)?).await;
        };
        let bytes = StoredResults::of(results).encode()?;
        let key = self.record(db, run).await?;
        let launch = launch_number(seq)?;
        Ok(
            if db
                .add_artifact(&key, launch, ArtifactKind::Results { shard }, bytes)
                .await?
            {
                Stored::Created
            } else {
                Stored::AlreadyThere
            },
        )
    }

    /// [`Keeper::store`] for what the controller itself records (the pod-log fallback, a
    /// sharded attempt's merge, an Aqua report), which no one could send again smaller: when it
    /// is over a limit, a cut-down record is kept instead — no reports, the log's last 64 KiB,
    /// and a message saying why — so the attempt still ends rather than retrying forever.
    pub async fn store_or_cut(
        &self,
        run: &TestRun,
        seq: usize,
        shard: Option<u32>,
        results: &AttemptResults,
    ) -> Result<Stored, ResultsError> {
        match self.store(run, seq, shard, results).await {
            Err(
                e @ (ResultsError::TooLarge(_) | ResultsError::Store(crate::store::StoreError::TooLarge(_))),
            ) => {
                tracing::warn!(run = run.name_any(), launch = seq, error = %e, "results too large to keep; keeping the log's end");
                let cut = results.log.len().saturating_sub(CUT_LOG_BYTES);
                let reduced = AttemptResults {
                    source: results.source,
                    exit_code: results.exit_code,
                    signal: results.signal,
                    junit_gz: Vec::new(),
                    log: results.log[cut..].to_vec(),
                    message: Some(format!("the attempt's results were not kept: {e}")),
                    owed: Vec::new(),
                    allure_gz: Vec::new(),
                    allure_notes: Vec::new(),
                };
                self.store(run, seq, shard, &reduced).await
            }
            other => other,
        }
    }

    /// The stored results of `run`'s `seq`-th launch, if stored.
    pub async fn load(
        &self,
        run: &TestRun,
        seq: usize,
    ) -> Result<Option<std::sync::Arc<StoredResults>>, ResultsError> {
        self.load_for(run, seq, None).await
    }

    /// The stored results of `run`'s `seq`-th launch (`shard` none) or of one of its shards.
    pub async fn load_for(
        &self,
        run: &TestRun,
        seq: usize,
        shard: Option<u32>,
    ) -> Result<Option<std::sync::Arc<StoredResults>>, ResultsError> {
        let key: CacheKey = (run.metadata.uid.clone().unwrap_or_default(), seq, shard);
        if let Some(hit) = self.cache.get(&key) {
            return Ok(Some(hit));
        }
        let mut found = None;
        if let (Some(db), Ok(launch)) = (self.database(), u32::try_from(seq))
            && let Some(name) = self.current_key(db, run).await?
            && let Some(bytes) = db
                .artifact(&name, launch, ArtifactKind::Results { shard })
                .await?
        {
            let what = format!("the stored results of launch {seq} of {name}");
            found = Some(StoredResults::decode(&bytes, &what)?);
        }
        if found.is_none() {
            // Without a database, or kept by a version before it.
            found = load_for(&self.config_maps(run), run, seq, shard).await?;
        }
        Ok(found.map(|found| self.cache.put(key, found)))
    }

    /// Every stored result of `run` (each launch that stored some, except interrupted ones,
    /// whose relaunch carries their number), with test ids in the service's style.
    pub async fn run_results(
        &self,
        run: &TestRun,
        style: &TestIdStyle,
    ) -> Result<Vec<AttemptResult>, ResultsError> {
        // Its files expired: the uploads are gone, the verdicts are the database's rows.
        if crate::retention::files_expired_at(run).is_some()
            && let Some(db) = self.database()
            && let Some(key) = self.current_key(db, run).await?
        {
            return Ok(db.results(&key).await?);
        }
        let mut out = Vec::new();
        let attempts = run
            .status
            .as_ref()
            .map(|s| s.attempts.clone())
            .unwrap_or_default();
        for (i, a) in attempts.iter().enumerate() {
            if a.state == crate::crd::AttemptState::Interrupted {
                continue;
            }
            if let Some(stored) = self.load(run, i + 1).await? {
                out.extend(stored.parse(a.number, style).1);
            }
        }
        Ok(out)
    }

    /// Keeps an ended attempt's test results as rows, for history (with a database; without
    /// one the stored reports are all there is).
    pub async fn record_attempt(
        &self,
        run: &TestRun,
        attempt: u32,
        results: Vec<AttemptResult>,
    ) -> Result<(), ResultsError> {
        if let Some(db) = self.database() {
            let key = self.record(db, run).await?;
            db.put_results(&key, attempt, results).await?;
        }
        Ok(())
    }

    /// Records how `run` finished (with a database).
    pub async fn finish(&self, run: &TestRun, phase: crate::crd::Phase) -> Result<(), ResultsError> {
        if let Some(db) = self.database() {
            let key = self.record(db, run).await?;
            db.finish_run(&key, phase, chrono::Utc::now()).await?;
        }
        Ok(())
    }

    /// Removes what `run`'s launches uploaded (reports, logs, attachments) from the database,
    /// keeping each upload's exit code and message; the verdicts stay as rows
    /// ([`Keeper::run_results`] reads them once the run is marked expired). Idempotent.
    pub async fn expire_files(&self, run: &TestRun) -> Result<(), ResultsError> {
        let Some(db) = self.database() else {
            return Ok(());
        };
        let Some(key) = self.current_key(db, run).await? else {
            return Ok(());
        };
        let attempts = run
            .status
            .as_ref()
            .map(|s| s.attempts.clone())
            .unwrap_or_default();
        for (i, a) in attempts.iter().enumerate() {
            let launch = launch_number(i + 1)?;
            // A mixed attempt keeps its Job's and its Aqua launches' results as parts 0 and 1.
            let parts = if a.mixed { 2 } else { a.shards.len() };
            let parts = std::iter::once(None).chain((0..parts).map(|s| Some(s as u32)));
            for shard in parts {
                let kind = ArtifactKind::Results { shard };
                let Some(bytes) = db.artifact(&key, launch, kind).await? else {
                    continue;
                };
                let what = format!("the stored results of launch {} of {key}", i + 1);
                let mut stored = StoredResults::decode(&bytes, &what)?;
                stored.junit_gz.clear();
                stored.log_gz.clear();
                stored.allure_gz.clear();
                stored.allure_notes.clear();
                db.put_artifact(&key, launch, kind, stored.encode()?).await?;
            }
        }
        Ok(())
    }

    /// Forgets everything kept of `run` in the database (its ConfigMaps go with the run).
    pub async fn forget(&self, run: &TestRun) -> Result<bool, ResultsError> {
        match self.database() {
            Some(db) => Ok(db.delete_run(&self.key(run)).await?),
            None => Ok(false),
        }
    }

    /// Keeps `run`'s classification as it stands after its `seq`-th launch ended.
    pub async fn store_categories(
        &self,
        run: &TestRun,
        seq: usize,
        categories: &ByTest,
    ) -> Result<(), ResultsError> {
        match self.database() {
            Some(db) => {
                let key = self.record(db, run).await?;
                db.put_categories(&key, categories.clone()).await?;
                Ok(())
            }
            None => store_categories(&self.config_maps(run), &pack_categories(run, seq, categories)?).await,
        }
    }

    /// Keeps a rerun's long list of tests out of the TestRun: with a database, a selection of
    /// more than [`Selection::STATUS_TESTS_MAX`] tests is kept there (under launch `seq`) and
    /// marked `storedTests`, which the status write leaves the list out for
    /// ([`Selection::compact`]). Without one, or for a short list, nothing changes.
    pub async fn keep_selection(
        &self,
        run: &TestRun,
        seq: usize,
        selection: &mut Selection,
    ) -> Result<(), ResultsError> {
        selection.stored_tests = None;
        let Some(db) = self.database() else {
            return Ok(());
        };
        if selection.tests.len() <= Selection::STATUS_TESTS_MAX {
            return Ok(());
        }
        let key = self.record(db, run).await?;
        // Kept once per launch: a second writer (a reconcile retried) has the same list.
        db.add_artifact(
            &key,
            launch_number(seq)?,
            ArtifactKind::Selection,
            json_gz(&selection.tests)?,
        )
        .await?;
        selection.stored_tests = Some(u32::try_from(selection.tests.len()).unwrap_or(u32::MAX));
        Ok(())
    }

    /// `run` with each selection kept in the database ([`Keeper::keep_selection`]) filled back
    /// in, as every reader of a run's attempts expects it.
    pub async fn hydrate(&self, run: &TestRun) -> Result<TestRun, ResultsError> {
        let mut run = run.clone();
        let wanted: Vec<usize> = run
            .status
            .iter()
            .flat_map(|st| st.attempts.iter().enumerate())
            .filter(|(_, a)| a.selection.stored_tests.is_some() && a.selection.tests.is_empty())
            .map(|(i, _)| i)
            .collect();
        if wanted.is_empty() {
            return Ok(run);
        }
        let Some(db) = self.database() else {
            return Err(ResultsError::Damaged(format!(
                "{}: its reruns' tests are kept in a results database, and none is configured",
                run.name_any()
            )));
        };
        let key = self.key(&run);
        let uid = run.metadata.uid.clone().unwrap_or_default();
        for i in wanted {
            let seq = i + 1;
            let tests = match self.selections.get(&(uid.clone(), seq)) {
                Some(t) => t,
                None => {
                    let bytes = db
                        .artifact(&key, launch_number(seq)?, ArtifactKind::Selection)
                        .await?
                        .ok_or_else(|| {
                            ResultsError::Damaged(format!(
                                "the tests launch {seq} of {key} re-runs are not in the results database"
                            ))
                        })?;
                    let json = gunzip(&bytes).map_err(ResultsError::Damaged)?;
                    let tests: Vec<String> = serde_json::from_slice(&json).map_err(|e| {
                        ResultsError::Damaged(format!("the selection of launch {seq} of {key}: {e}"))
                    })?;
                    self.selections.put((uid.clone(), seq), tests)
                }
            };
            if let Some(a) = run.status.as_mut().and_then(|st| st.attempts.get_mut(i)) {
                a.selection.tests = (*tests).clone();
            }
        }
        Ok(run)
    }

    /// Keeps what each index of `run`'s `seq`-th launch runs: in the database (which
    /// `tomato exec --fetch` reads through the API), else in the immutable ConfigMap
    /// `<run>-shards-<seq>` the Job's pods read with `envFrom`. One already kept for that
    /// launch stays (a reconcile retried computes the same) and is answered.
    pub async fn keep_launches(
        &self,
        run: &TestRun,
        seq: usize,
        launches: Vec<ShardLaunch>,
    ) -> Result<Vec<ShardLaunch>, ResultsError> {
        let Some(db) = self.database() else {
            let cm = crate::launch::job::shards_config_map(run, seq, &launches);
            let api = self.config_maps(run);
            return match api.create(&PostParams::default(), &cm).await {
                Ok(_) => Ok(launches),
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    let existing = api.get(&cm.name_any()).await?;
                    if !owned_by(&existing, run.metadata.uid.as_deref()) {
                        // An earlier run's of this name, not yet garbage-collected.
                        api.delete(&cm.name_any(), &Default::default()).await?;
                        return Err(ResultsError::Damaged(format!(
                            "{} was an earlier run's; deleted, to be written again",
                            cm.name_any()
                        )));
                    }
                    crate::launch::job::read_shards(&existing).map_err(ResultsError::Damaged)
                }
                Err(e) => Err(e.into()),
            };
        };
        let key = self.record(db, run).await?;
        let launch = launch_number(seq)?;
        if db
            .add_artifact(&key, launch, ArtifactKind::Launches, json_gz(&launches)?)
            .await?
        {
            return Ok(launches);
        }
        self.launches(run, seq).await?.ok_or_else(|| {
            ResultsError::Damaged(format!("the launches of launch {seq} of {key} went missing"))
        })
    }

    /// What each index of `run`'s `seq`-th launch runs, as [`Keeper::keep_launches`] kept it;
    /// `None` when nothing was kept (an unsharded launch the Job carries itself).
    pub async fn launches(
        &self,
        run: &TestRun,
        seq: usize,
    ) -> Result<Option<Vec<ShardLaunch>>, ResultsError> {
        if let Some(db) = self.database()
            && let Some(key) = self.current_key(db, run).await?
            && let Some(bytes) = db
                .artifact(&key, launch_number(seq)?, ArtifactKind::Launches)
                .await?
        {
            let json = gunzip(&bytes).map_err(ResultsError::Damaged)?;
            return serde_json::from_slice(&json)
                .map(Some)
                .map_err(|e| ResultsError::Damaged(format!("the launches of launch {seq} of {key}: {e}")));
        }
        // Without a database, or kept by a version before it.
        let name = crate::launch::job::shards_name(&run.name_any(), seq);
        match self.config_maps(run).get_opt(&name).await? {
            Some(cm) => crate::launch::job::read_shards(&cm)
                .map(Some)
                .map_err(ResultsError::Damaged),
            None => Ok(None),
        }
    }

    /// `run`'s latest stored classification; empty when none is stored.
    pub async fn load_categories(&self, run: &TestRun) -> Result<ByTest, ResultsError> {
        if let Some(db) = self.database()
            && let Some(key) = self.current_key(db, run).await?
        {
            let found = db.categories(&key).await?;
            if !found.is_empty() {
                return Ok(found);
            }
        }
        // Without a database, or kept by a version before it.
        load_categories(&self.config_maps(run), run).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::RunTemplate;

    fn run() -> TestRun {
        let mut run = TestRun::test("demo-abc", RunTemplate::test("demo"));
        run.metadata.namespace = Some("qa".into());
        run.metadata.uid = Some("uid-1".into());
        run
    }

    fn sample() -> Vec<u8> {
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/junit_samples/node.xml"
        ))
        .unwrap()
    }

    #[test]
    fn a_classification_packs_into_one_owned_immutable_config_map_and_reads_back() {
        let categories: ByTest = [
            (
                "a::one",
                "Product defects",
                Some(Signature::of("expected 1 but was 2", "")),
            ),
            (
                "a::two",
                "Product defects",
                Some(Signature::of("assert 3 == 4", "")),
            ),
            ("b::three", "Unclassified", None),
        ]
        .into_iter()
        .map(|(t, category, signature)| {
            (
                t.to_string(),
                Classified {
                    category: category.to_string(),
                    signature,
                },
            )
        })
        .collect();
        let cm = pack_categories(&run(), 2, &categories).unwrap();
        assert_eq!(
            cm.metadata.name.as_deref(),
            Some(categories_name(&run().name_any(), 2).as_str())
        );
        assert_eq!(cm.immutable, Some(true));
        assert!(cm.metadata.owner_references.is_some());
        assert_eq!(unpack_categories(&cm).unwrap(), categories);
    }

    #[test]
    fn a_classification_recorded_before_signatures_still_reads() {
        let mut cm = pack_categories(
            &run(),
            1,
            &ByTest::from([("a::one".to_string(), Classified::category("Timeouts"))]),
        )
        .unwrap();
        // As written before signatures: the categories file alone.
        cm.binary_data.as_mut().unwrap().remove(SIGNATURES_FILE);
        assert_eq!(
            unpack_categories(&cm).unwrap(),
            ByTest::from([("a::one".to_string(), Classified::category("Timeouts"))])
        );
    }

    #[test]
    fn a_small_upload_fits_one_owned_immutable_config_map_and_reads_back() {
        let results = AttemptResults {
            source: Source::Upload,
            exit_code: Some(1),
            signal: None,
            junit_gz: vec![gzip(&sample())],
            log: b"line 1\nline 2\n".to_vec(),
            message: None,
            owed: vec![],
            allure_gz: Vec::new(),
            allure_notes: Vec::new(),
        };
        let maps = pack(&run(), 1, &results).unwrap();
        assert_eq!(maps.len(), 1);
        let cm = &maps[0];
        assert_eq!(cm.metadata.name.as_deref(), Some("demo-abc-results-1"));
        assert_eq!(cm.immutable, Some(true));
        assert_eq!(cm.metadata.owner_references.as_ref().unwrap()[0].kind, "TestRun");
        let back = unpack(cm, &[]).unwrap();
        assert_eq!(back.exit_code, Some(1));
        assert_eq!(back.log().unwrap(), "line 1\nline 2\n");
        assert_eq!(back.junit_xml().unwrap(), sample());
        let (read, parsed) = back.parse(1, &TestIdStyle::Node);
        assert_eq!(read, ReportRead::Found(7));
        assert_eq!(parsed.len(), 7);
    }

    #[test]
    fn a_large_report_is_split_across_config_maps_and_reassembled() {
        // Incompressible bytes stand in for a huge report: 2.5 MiB after "compression".
        let noise: Vec<u8> = (0..(5u32 << 19))
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let results = AttemptResults {
            source: Source::Upload,
            exit_code: Some(0),
            signal: None,
            junit_gz: vec![noise.clone(), gzip(&sample())],
            log: vec![b'x'; 10],
            message: None,
            owed: vec![],
            allure_gz: Vec::new(),
            allure_notes: Vec::new(),
        };
        let maps = pack(&run(), 3, &results).unwrap();
        assert!(maps.len() >= 4, "{} maps", maps.len());
        for cm in &maps {
            let size: usize = cm.binary_data.iter().flatten().map(|(_, v)| v.0.len()).sum();
            assert!(size <= PART_BYTES, "{size} bytes in {}", cm.name_any());
        }
        let (primary, parts) = maps.split_last().unwrap();
        assert_eq!(primary.metadata.name.as_deref(), Some("demo-abc-results-3"));
        let mut shuffled = parts.to_vec();
        shuffled.reverse();
        let back = unpack(primary, &shuffled).unwrap();
        assert_eq!(back.junit_gz[0], noise);
        assert!(matches!(
            unpack(primary, &parts[1..]),
            Err(ResultsError::Damaged(_))
        ));
    }

    /// Everything an upload can carry, for the encodings' round trips.
    fn full_upload() -> AttemptResults {
        let mut log = vec![b'a'; LOG_TAIL_BYTES];
        log.extend_from_slice(b"\nthe end\n");
        AttemptResults {
            source: Source::PodLog,
            exit_code: Some(137),
            signal: Some(9),
            junit_gz: vec![gzip(&sample()), gzip(b"<testsuite/>")],
            log,
            message: Some("killed; the log was read from the pod".into()),
            owed: vec![Owed {
                id: "a::owed".into(),
                message: "shard 1 crashed".into(),
                kind: String::new(),
            }],
            allure_gz: vec![
                ("x-result.json".into(), gzip(b"{}")),
                ("shot.png".into(), gzip(b"PNG")),
            ],
            allure_notes: vec!["big.mp4: left out, over the limit".into()],
        }
    }

    /// The results database keeps uploads in `encode`'s form: it reads back to exactly what
    /// the ConfigMaps read back to (so every reader sees one thing, whichever keeps it).
    #[test]
    fn the_database_encoding_reads_back_as_the_config_maps_do() {
        let upload = full_upload();
        let stored = StoredResults::of(&upload);
        let bytes = stored.encode().unwrap();
        let back = StoredResults::decode(&bytes, "launch 1").unwrap();
        assert_eq!(back, stored);
        let maps = pack(&run(), 1, &upload).unwrap();
        let from_maps = unpack(maps.last().unwrap(), &maps[..maps.len() - 1]).unwrap();
        assert_eq!(back, from_maps);
        assert_eq!(back.log_cut, 9);
        assert_eq!(back.owed_results(2).len(), 1);
        assert_eq!(back.allure_file("shot.png").unwrap(), b"PNG");
        // Nothing but the log's tail is kept, and nothing is compressed twice.
        assert!(bytes.len() < LOG_TAIL_BYTES / 100, "{} bytes", bytes.len());
    }

    #[test]
    fn damaged_database_bytes_are_refused_naming_what_is_wrong() {
        let bytes = StoredResults::of(&full_upload()).encode().unwrap();
        let err = |b: &[u8]| StoredResults::decode(b, "launch 1 of r").unwrap_err().to_string();
        assert!(err(b"PK\x03\x04").contains("launch 1 of r: not results in a format"));
        assert!(err(&bytes[..bytes.len() - 3]).contains("is cut short"));
        let mut longer = bytes.clone();
        longer.extend_from_slice(b"xyz");
        assert!(err(&longer).contains("3 bytes after the last file"));
        let header_end = bytes
            .iter()
            .skip(ENCODING.len())
            .position(|b| *b == b'\n')
            .unwrap();
        let mut bad_header = bytes.clone();
        bad_header[ENCODING.len() + header_end - 1] = b'!';
        assert!(err(&bad_header).contains("header:"));
    }

    #[test]
    fn only_the_log_tail_is_kept() {
        let mut log = vec![b'a'; LOG_TAIL_BYTES];
        log.extend_from_slice(b"\nthe end\n");
        let results = AttemptResults {
            source: Source::PodLog,
            exit_code: None,
            signal: None,
            junit_gz: vec![],
            log,
            message: Some("tomato exec uploaded nothing".into()),
            owed: vec![],
            allure_gz: Vec::new(),
            allure_notes: Vec::new(),
        };
        let maps = pack(&run(), 1, &results).unwrap();
        let back = unpack(maps.last().unwrap(), &maps[..maps.len() - 1]).unwrap();
        assert_eq!(back.source, Source::PodLog);
        assert_eq!(back.log_cut, 9);
        assert!(back.log().unwrap().ends_with("the end\n"));
        assert_eq!(back.parse(1, &TestIdStyle::Node).0, ReportRead::Missing);
    }

    /// Issue 16: uploaded Allure results are stored beside the JUnit, read back as the
    /// attempt's tests (one set with the JUnit), and give the extras and attachments the API
    /// serves in operator mode.
    #[test]
    fn uploaded_allure_results_are_stored_read_back_and_give_their_extras() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/allure_samples/pytest");
        let mut allure_gz = Vec::new();
        let mut png = String::new();
        for e in std::fs::read_dir(dir.join("allure-results")).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".png") {
                png = name.clone();
            }
            allure_gz.push((name, gzip(&std::fs::read(e.path()).unwrap())));
        }
        let results = AttemptResults {
            source: Source::Upload,
            exit_code: Some(1),
            signal: None,
            junit_gz: vec![gzip(&std::fs::read(dir.join("junit.xml")).unwrap())],
            log: b"log".to_vec(),
            message: None,
            owed: Vec::new(),
            allure_gz,
            allure_notes: vec!["x: attachment \"big\" refused: too big".into()],
        };
        let mut maps = pack(&run(), 1, &results).unwrap();
        let primary = maps.pop().unwrap();
        let stored = unpack(&primary, &maps).unwrap();
        let (read, tests) = stored.parse(1, &TestIdStyle::Pytest);
        assert_eq!(
            read,
            ReportRead::Found(6),
            "JUnit and Allure are one set of tests: {tests:?}"
        );
        let extras = stored
            .allure_extras(
                &TestIdStyle::Pytest,
                crate::results::upload::operator_limits(results::allure::Limits::default()),
            )
            .unwrap();
        let declined = &extras.tests["tests/test_shop.py::TestPay::test_card_declined"];
        assert_eq!(declined.steps[0].name, "pay with a card");
        assert!(extras.kept(&png).is_some());
        assert_eq!(extras.notes, ["x: attachment \"big\" refused: too big"]);
        assert!(stored.allure_file(&png).unwrap().starts_with(b"\x89PNG"));
        assert_eq!(stored.allure_file("../etc/passwd"), None);

        // Allure results alone are a report too.
        let only = AttemptResults {
            junit_gz: Vec::new(),
            ..results
        };
        let mut maps = pack(&run(), 2, &only).unwrap();
        let primary = maps.pop().unwrap();
        let (read, _) = unpack(&primary, &maps).unwrap().parse(2, &TestIdStyle::Pytest);
        assert_eq!(read, ReportRead::Found(6));
    }

    #[test]
    fn an_unreadable_report_is_invalid_with_the_parser_reason() {
        let results = AttemptResults {
            source: Source::Upload,
            exit_code: Some(2),
            signal: None,
            junit_gz: vec![gzip(b"<html>oops</html>")],
            log: vec![],
            message: None,
            owed: vec![],
            allure_gz: Vec::new(),
            allure_notes: Vec::new(),
        };
        let maps = pack(&run(), 1, &results).unwrap();
        let back = unpack(&maps[0], &[]).unwrap();
        match back.parse(1, &TestIdStyle::Node).0 {
            ReportRead::Invalid(why) => assert!(why.contains("<html>"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
}
