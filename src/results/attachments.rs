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
