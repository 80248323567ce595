//! An attempt's Allure extras on disk: the record (`allure.json`) kept in the attempt's
//! directory beside its results, and the attachment files it keeps in `allure-results/`.
//!
//! The limits are applied here, once, when the attempt's results are read: an attachment
//! over the per-test or per-run limit is deleted from disk and stays in the record with the
//! reason, so the run page says what was refused instead of silently showing less. Only files
//! the record keeps are ever served, and only by their checked `source` name (see
//! [`super::allure::safe_source`]): the name a test gave an attachment is never a path.

use std::path::{Path, PathBuf};

use super::allure::{self, AttemptExtras, Limits};

/// The record's file name in an attempt's directory.
pub const RECORD_FILE: &str = "allure.json";

/// The record of the attempt in `attempt_dir`, if it has one (a record that cannot be read
/// is none: the attempt's verdicts are in the results store, the extras are a view).
pub fn load(attempt_dir: &Path) -> Option<AttemptExtras> {
    let bytes = std::fs::read(attempt_dir.join(RECORD_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Applies `limits` to `extras` (sizes read from `files`, the results directory), deletes the
/// refused files, and writes the record into `attempt_dir`. `used` is what the run's other
/// attempts keep. Returns the bytes this attempt keeps.
pub fn keep(
    attempt_dir: &Path,
    files: &Path,
    extras: &mut AttemptExtras,
    limits: Limits,
    used: u64,
) -> std::io::Result<u64> {
    let mut tests: Vec<(String, allure::Extras)> = std::mem::take(&mut extras.tests).into_iter().collect();
    let size_of = |source: &str| {
        std::fs::symlink_metadata(files.join(source))
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len())
    };
    let total = allure::apply_limits(&mut tests, limits, used, size_of);
    for (id, e) in &tests {
        for a in e.attachments.iter().filter(|a| a.refused.is_some()) {
            if allure::safe_source(&a.source) && a.size.is_some() {
                let _ = std::fs::remove_file(files.join(&a.source));
            }
            extras.notes.push(format!(
                "{id}: attachment {:?} refused: {}",
                a.name,
                a.refused.as_deref().unwrap_or_default()
            ));
        }
    }
    extras.tests = tests.into_iter().collect();
    let json = serde_json::to_vec(extras).map_err(std::io::Error::other)?;
    std::fs::write(attempt_dir.join(RECORD_FILE), json)?;
    Ok(total - used)
}

/// Bytes of attachments the attempts of a run keep, except the one in `except`.
pub fn used_by_run(run_dir: &Path, except: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(run_dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p != except)
        .filter_map(|p| load(&p))
        .map(|r| r.kept_bytes())
        .sum()
}

/// The file of attachment `source` of the attempt in `attempt_dir`, when its record keeps it.
pub fn file_of(attempt_dir: &Path, source: &str) -> Option<(PathBuf, allure::Attachment)> {
    if !allure::safe_source(source) {
        return None;
    }
    let record = load(attempt_dir)?;
    let a = record.kept(source)?.clone();
    Some((attempt_dir.join("allure-results").join(source), a))
}

/// `/api/v1/runs/{run}/attempts/{seq}/attachments/{source}`, each part percent-encoded: where
/// the API serves a kept attachment (the run page, the tests API and the email link it).
pub fn attachment_url(run: &str, seq: usize, source: &str) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    format!(
        "/api/v1/runs/{}/attempts/{seq}/attachments/{}",
        enc(run),
        enc(source)
    )
}

/// The kept attachments of test `id` in `record` (the `seq`-th launch of `run`): names and
/// server-relative links, images first.
pub fn links(record: &AttemptExtras, run: &str, seq: usize, id: &str) -> Vec<(String, String)> {
    let Some(e) = record.tests.get(id) else {
        return Vec::new();
    };
    let mut kept: Vec<&allure::Attachment> = e.attachments.iter().filter(|a| a.refused.is_none()).collect();
    kept.sort_by_key(|a| !allure::is_image(a));
    kept.into_iter()
        .map(|a| (a.name.clone(), attachment_url(run, seq, &a.source)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::allure::{Attachment, Extras};

    fn att(name: &str, source: &str, kind: &str) -> Attachment {
        Attachment {
            name: name.into(),
            source: source.into(),
            content_type: kind.into(),
            ..Default::default()
        }
    }

    /// The limits are applied on disk: a refused file is deleted and its reason recorded; a
    /// kept one is served only by its checked name.
    #[test]
    fn refused_files_are_deleted_and_noted_and_only_kept_ones_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let attempt = dir.path().join("attempt-1");
        let files = attempt.join("allure-results");
        std::fs::create_dir_all(&files).unwrap();
        std::fs::write(files.join("a-attachment.txt"), "log").unwrap();
        std::fs::write(files.join("b-attachment.png"), vec![0u8; 2000]).unwrap();
        let mut record = AttemptExtras {
            tests: [(
                "t.py::test_x".to_string(),
                Extras {
                    attachments: vec![
                        att("log", "a-attachment.txt", "text/plain"),
                        att("shot", "b-attachment.png", "image/png"),
                    ],
                    ..Default::default()
                },
            )]
            .into(),
            notes: Vec::new(),
        };
        let limits = Limits {
            per_test: 1000,
            per_run: 10_000,
        };
        assert_eq!(keep(&attempt, &files, &mut record, limits, 0).unwrap(), 3);
        assert!(files.join("a-attachment.txt").exists());
        assert!(
            !files.join("b-attachment.png").exists(),
            "a refused file is not kept"
        );
        assert_eq!(record.notes.len(), 1);
        assert!(
            record.notes[0].starts_with("t.py::test_x: attachment \"shot\" refused: 2.0 KB is over"),
            "{:?}",
            record.notes
        );
        assert_eq!(load(&attempt), Some(record.clone()));
        assert!(file_of(&attempt, "a-attachment.txt").is_some());
        assert!(file_of(&attempt, "b-attachment.png").is_none());
        assert!(file_of(&attempt, "../attempt-1/allure-results/a-attachment.txt").is_none());
        assert_eq!(used_by_run(dir.path(), &dir.path().join("attempt-2")), 3);
        assert_eq!(used_by_run(dir.path(), &attempt), 0);
        assert_eq!(
            links(&record, "r 1", 1, "t.py::test_x"),
            [(
                "log".to_string(),
                "/api/v1/runs/r%201/attempts/1/attachments/a-attachment.txt".to_string()
            )]
        );
    }
}
