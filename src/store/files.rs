//! Standalone mode's files beside the database: one directory per launch of a run, holding
//! what the process left (its log, its JUnit report), and how the API reads them back.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::launch::process::LOG_FILE;

/// The JUnit report a launch wrote, as the API serves it.
pub const JUNIT_FILE: &str = "junit.xml";

/// `<data>/runs/<run>`: every file of a run (what retention removes).
pub fn run_dir(data_dir: &Path, run: &str) -> PathBuf {
    data_dir.join("runs").join(run)
}

/// [`run_dir`] of a name that can only be one directory (not empty, `.` or `..`, no path
/// separator or NUL, at most 253 bytes, as every stored run's name is): the name becomes a
/// path, so it is checked again where it does.
pub fn checked_run_dir(data_dir: &Path, run: &str) -> Result<PathBuf, super::StoreError> {
    let bad =
        run.is_empty() || run == "." || run == ".." || run.contains(['/', '\\', '\0']) || run.len() > 253;
    if bad {
        return Err(super::StoreError::Invalid(format!(
            "run: {run:?} cannot name a directory (empty, `.`/`..`, a path separator or over 253 bytes)"
        )));
    }
    Ok(run_dir(data_dir, run))
}

/// Removes a run's files (`<data>/runs/<run>`: every launch's log, JUnit and Allure results);
/// whether there were any.
pub async fn remove_run_dir(data_dir: &Path, run: &str) -> Result<bool, super::StoreError> {
    let dir = checked_run_dir(data_dir, run)?;
    match tokio::fs::remove_dir_all(&dir).await {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(super::StoreError::Task(format!(
            "cannot remove the files of run {run} ({}): {e}",
            dir.display()
        ))),
    }
}

/// `<data>/runs/<run>/attempt-<seq>`: one directory per launch (a relaunch after an
/// interruption gets its own).
pub fn attempt_dir(data_dir: &Path, run: &str, seq: usize) -> PathBuf {
    run_dir(data_dir, run).join(format!("attempt-{seq}"))
}

/// The last `tail` bytes of a log, from the first line that starts in them (a line cut in
/// half would read as a different line); the whole log when `tail` is `None`.
pub fn log_tail(log: &[u8], tail: Option<u64>) -> &[u8] {
    let start = tail.map_or(0, |t| {
        log.len().saturating_sub(usize::try_from(t).unwrap_or(usize::MAX))
    });
    from_line_start(&log[start..], start > 0)
}

/// A launch's log, or its last `tail` bytes as [`log_tail`] cuts them, read without loading
/// the rest of the file. Empty when the launch wrote none (yet).
pub fn read_log_tail(attempt_dir: &Path, tail: Option<u64>) -> std::io::Result<Vec<u8>> {
    let mut file = match std::fs::File::open(attempt_dir.join(LOG_FILE)) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    let start = tail.map_or(0, |t| len.saturating_sub(t));
    file.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::new();
    file.take(len - start).read_to_end(&mut buf)?;
    let keep = from_line_start(&buf, start > 0).len();
    buf.drain(..buf.len() - keep);
    Ok(buf)
}

/// `bytes` from just after its first newline when it was `cut` out of a longer text.
fn from_line_start(bytes: &[u8], cut: bool) -> &[u8] {
    match bytes.iter().position(|&b| b == b'\n') {
        Some(nl) if cut => &bytes[nl + 1..],
        _ => bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tail_starts_at_a_whole_line() {
        let log = b"first line\nsecond line\nthird\n";
        assert_eq!(log_tail(log, None), log);
        assert_eq!(log_tail(log, Some(8)), b"third\n");
        assert_eq!(log_tail(log, Some(1000)), log);
        // With no line start in the tail, the cut text is shown as it is.
        assert_eq!(
            log_tail(b"one long line without end", Some(5)),
            b"one long line without end"[20..].as_ref()
        );
    }

    #[test]
    fn the_file_tail_matches_the_in_memory_tail() {
        let dir = tempfile::tempdir().unwrap();
        let log = b"alpha\nbeta\ngamma\ndelta\n".repeat(50);
        std::fs::write(dir.path().join(LOG_FILE), &log).unwrap();
        for tail in [None, Some(0), Some(7), Some(100), Some(10_000)] {
            assert_eq!(
                read_log_tail(dir.path(), tail).unwrap(),
                log_tail(&log, tail),
                "tail {tail:?}"
            );
        }
        let empty = tempfile::tempdir().unwrap();
        assert!(read_log_tail(empty.path(), Some(10)).unwrap().is_empty());
    }
}
