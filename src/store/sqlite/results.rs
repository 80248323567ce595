//! The SQLite file as a [`ResultsStore`]: runs, test results and classifications in tables of
//! the same database as the objects; artifacts as the files beside it.
//!
//! **Artifacts stay files** (`<data>/runs/<run>/attempt-<launch>/`, [`crate::store::files`]):
//! the standalone launcher writes each launch's log there as the tests run (the UI tails it
//! live) and the runner writes its JUnit there, so [`ResultsStore::artifact`] reads exactly
//! what the API's `/log` and `/junit` serve, and nothing is copied into the database twice.
//! [`ResultsStore::put_artifact`] writes the same files (atomically, through a rename) and
//! checks the per-run limit against every launch's log and JUnit already there.
//!
//! **A run is recorded from its TestRun.** Standalone mode keeps each run as an object in the
//! same file, so [`ResultsStore::put_results`] records a run it does not know yet from that
//! object (uid, service, stand, precise creation time) in the same transaction; the driver
//! needs no separate call. Files written before this table existed are recorded by migration 5.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::SqliteStore;
use crate::classify::{ByTest, Classified};
use crate::crd::Phase;
use crate::launch::process::LOG_FILE;
use crate::results::{AttemptResult, Case, CaseStatus, Signature};
use crate::store::StoreError;
use crate::store::files::{self, JUNIT_FILE, attempt_dir};
use crate::store::results::{
    ArtifactKind, Failure, HistoryEntry, HistoryQuery, Limits, ResultsStore, RunIdentity, RunPage, RunRecord,
    check_artifact_limit, check_finished, parse_phase, parse_status,
};

/// The columns of `runs`, from a stored TestRun object (`objects` row): what migration 5
/// records for every run already kept and [`ResultsStore::put_results`] for a run not yet
/// recorded. Times are microseconds since the Unix epoch (sortable integers); the creation
/// time's fraction is read from its text, as SQLite's own `subsec` keeps only milliseconds.
macro_rules! run_from_object {
    () => {
        "SELECT name,
                coalesce(json_extract(body, '$.metadata.uid'), ''),
                coalesce(service, ''),
                coalesce(json_extract(body, '$.spec.stand'), ''),
                coalesce(unixepoch(created) * 1000000 + CASE WHEN instr(created, '.') > 0
                    THEN CAST(substr(replace(substr(created, instr(created, '.') + 1), 'Z', '') || '000000', 1, 6) AS INTEGER)
                    ELSE 0 END, 0),
                CASE WHEN phase IN ('Succeeded', 'Failed', 'Error', 'Cancelled') THEN phase END,
                CASE WHEN phase IN ('Succeeded', 'Failed', 'Error', 'Cancelled')
                     THEN CAST(round(unixepoch(json_extract(body, '$.status.finishedAt'), 'subsec') * 1000000) AS INTEGER)
                END
         FROM objects WHERE kind = 'TestRun'"
    };
}

/// Migration 5: runs as rows, and each test result carrying its run's service, stand and
/// creation time, indexed for history ("the last N results of test T (on stand S)") and for
/// failures ("every failure of service X since t": a partial index over failures only).
pub(super) const MIGRATION_HISTORY: &str = concat!(
    "CREATE TABLE runs (
        name TEXT PRIMARY KEY,
        uid TEXT NOT NULL,
        service TEXT NOT NULL,
        stand TEXT NOT NULL,
        created INTEGER NOT NULL,
        phase TEXT,
        finished INTEGER
    );
    CREATE INDEX runs_service_created ON runs (service, created, name);
    CREATE INDEX runs_created ON runs (created, name);
    INSERT INTO runs (name, uid, service, stand, created, phase, finished) ",
    run_from_object!(),
    ";
    ALTER TABLE test_results ADD COLUMN service TEXT;
    ALTER TABLE test_results ADD COLUMN stand TEXT;
    ALTER TABLE test_results ADD COLUMN created INTEGER;
    UPDATE test_results SET (service, stand, created) =
        (SELECT service, stand, created FROM runs WHERE runs.name = test_results.run);
    CREATE INDEX test_results_history ON test_results (service, test_id, created, attempt);
    CREATE INDEX test_results_history_stand ON test_results (service, test_id, stand, created, attempt);
    CREATE INDEX test_results_failures ON test_results (service, created) WHERE status IN ('failed', 'errored');
    "
);

/// What the results side of the store is configured with; shared by clones.
#[derive(Debug, Default)]
pub(super) struct ResultsSettings {
    pub(super) limits: Limits,
    /// Serialises artifact writes, so two writes to one run cannot both pass its limit.
    pub(super) artifacts: std::sync::Mutex<()>,
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn time(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

/// The file an artifact is kept in, in its launch's attempt directory: where the standalone
/// driver writes the log and JUnit itself.
fn artifact_file(kind: ArtifactKind) -> String {
    match kind {
        ArtifactKind::Log => LOG_FILE.into(),
        ArtifactKind::Junit => JUNIT_FILE.into(),
        _ => format!("{}{RESULTS_SUFFIX}", kind.name()),
    }
}

/// Ends the file name of an artifact only operator mode keeps (results, selections, launches).
const RESULTS_SUFFIX: &str = ".tomato-results";

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Bytes of artifacts (every launch's log and JUnit) a run keeps.
fn artifact_bytes(run_dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(run_dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("attempt-"))
        .map(|e| {
            let results: u64 = std::fs::read_dir(e.path())
                .into_iter()
                .flatten()
                .flatten()
                .filter(|f| f.file_name().to_string_lossy().ends_with(RESULTS_SUFFIX))
                .map(|f| file_len(&f.path()))
                .sum();
            file_len(&e.path().join(LOG_FILE)) + file_len(&e.path().join(JUNIT_FILE)) + results
        })
        .sum()
}

/// The run's `(service, stand, created)`, recording it from its TestRun object when it is
/// not recorded yet; `None` when it is neither.
fn recorded_run(tx: &Transaction<'_>, run: &str) -> Result<Option<(String, String, i64)>, StoreError> {
    let get = |tx: &Transaction<'_>| {
        tx.query_row(
            "SELECT service, stand, created FROM runs WHERE name = ?1",
            params![run],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
    };
    if let Some(found) = get(tx)? {
        return Ok(Some(found));
    }
    tx.execute(
        concat!(
            "INSERT INTO runs (name, uid, service, stand, created, phase, finished) ",
            run_from_object!(),
            " AND name = ?1"
        ),
        params![run],
    )?;
    Ok(get(tx)?)
}

/// Keeps a recorded run's finished phase in step with its TestRun, in the transaction that
/// writes the object: standalone's driver finishes a run by writing `status.phase` (and
/// `finishedAt`) on it, and history reads the phase from `runs`. A run not recorded yet gets
/// its phase when it is (`run_from_object!` reads it).
pub(super) fn follow_phase(
    tx: &Transaction<'_>,
    kind: &str,
    name: &str,
    body: &serde_json::Value,
) -> Result<(), StoreError> {
    if kind != "TestRun" {
        return Ok(());
    }
    let phase = body
        .pointer("/status/phase")
        .and_then(|v| v.as_str())
        .and_then(|p| p.parse::<Phase>().ok())
        .filter(|p| p.is_terminal());
    let Some(phase) = phase else {
        return Ok(());
    };
    let finished = body
        .pointer("/status/finishedAt")
        .and_then(|v| v.as_str())
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| micros(t.with_timezone(&Utc)));
    tx.execute(
        "UPDATE runs SET phase = ?2, finished = ?3 WHERE name = ?1 AND (phase IS NOT ?2 OR finished IS NOT ?3)",
        params![name, phase.as_str(), finished],
    )?;
    Ok(())
}

/// Deletes a run's rows; returns how many there were.
pub(super) fn delete_rows(tx: &Transaction<'_>, run: &str) -> Result<usize, StoreError> {
    let mut n = 0;
    for sql in [
        "DELETE FROM test_results WHERE run = ?1",
        "DELETE FROM test_categories WHERE run = ?1",
        "DELETE FROM runs WHERE name = ?1",
    ] {
        n += tx.execute(sql, params![run])?;
    }
    Ok(n)
}

fn run_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<(RunIdentity, Option<String>, Option<i64>)> {
    Ok((
        RunIdentity {
            name: r.get(0)?,
            uid: r.get(1)?,
            service: r.get(2)?,
            stand: r.get(3)?,
            created: time(r.get(4)?),
        },
        r.get(5)?,
        r.get(6)?,
    ))
}

fn to_record(
    (identity, phase, finished): (RunIdentity, Option<String>, Option<i64>),
) -> Result<RunRecord, StoreError> {
    Ok(RunRecord {
        identity,
        phase: phase.as_deref().map(parse_phase).transpose()?,
        finished: finished.map(time),
    })
}

const RUN_COLUMNS: &str = "name, uid, service, stand, created, phase, finished";

fn insert_results(
    tx: &Transaction<'_>,
    run: &str,
    attempt: u32,
    results: &[AttemptResult],
) -> Result<(), StoreError> {
    let (service, stand, created) = recorded_run(tx, run)?.ok_or_else(|| StoreError::NotFound {
        kind: "run".into(),
        name: run.to_string(),
    })?;
    tx.execute(
        "DELETE FROM test_results WHERE run = ?1 AND attempt = ?2",
        params![run, attempt],
    )?;
    let mut stmt = tx.prepare(
        "INSERT INTO test_results (run, attempt, ordinal, test_id, status, suites, classname, name, file,
         time_ms, message, kind, trace, system_out, system_err, service, stand, created)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
    )?;
    for (i, r) in results.iter().enumerate() {
        let c = &r.case;
        stmt.execute(params![
            run,
            attempt,
            i as i64,
            r.id,
            c.status.as_str(),
            serde_json::to_string(&c.suites)?,
            c.classname,
            c.name,
            c.file,
            c.time_ms.map(|t| t as i64),
            c.message,
            c.kind,
            c.trace,
            c.system_out,
            c.system_err,
            service,
            stand,
            created,
        ])?;
    }
    Ok(())
}

fn read_results(conn: &Connection, run: &str) -> Result<Vec<AttemptResult>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT attempt, test_id, status, suites, classname, name, file, time_ms, message, kind, trace,
         system_out, system_err FROM test_results WHERE run = ?1 ORDER BY attempt, ordinal",
    )?;
    let rows = stmt.query_map(params![run], |r| {
        Ok((
            r.get::<_, u32>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            Case {
                suites: Vec::new(),
                classname: r.get(4)?,
                name: r.get(5)?,
                file: r.get(6)?,
                time_ms: r.get::<_, Option<i64>>(7)?.map(|t| t.max(0) as u64),
                status: CaseStatus::Passed,
                message: r.get(8)?,
                kind: r.get(9)?,
                trace: r.get(10)?,
                system_out: r.get(11)?,
                system_err: r.get(12)?,
            },
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (attempt, id, status, suites, mut case) = row?;
        case.status = parse_status(&status)?;
        case.suites = serde_json::from_str(&suites)?;
        out.push(AttemptResult { attempt, id, case });
    }
    Ok(out)
}

impl SqliteStore {
    /// Writes an artifact, replacing one already kept (`replace`) or keeping it (then
    /// answering `false`), through a temporary file: a rename replaces, a hard link adds
    /// only when the name is free. One writer at a time, so two writes to one run cannot
    /// both pass its limit.
    async fn write_artifact(
        &self,
        run: &str,
        launch: u32,
        kind: ArtifactKind,
        bytes: Vec<u8>,
        replace: bool,
    ) -> Result<bool, StoreError> {
        let run_dir = files::checked_run_dir(self.data_dir(), run)?;
        let dir = attempt_dir(self.data_dir(), run, launch as usize);
        let (run, settings) = (run.to_string(), self.results.clone());
        let write = tokio::task::spawn_blocking(move || {
            let _one_writer = settings.artifacts.lock().unwrap_or_else(|p| p.into_inner());
            let path = dir.join(artifact_file(kind));
            if !replace && path.exists() {
                return Ok(false);
            }
            let limit = settings.limits.artifact_bytes_per_run;
            check_artifact_limit(
                &run,
                limit,
                artifact_bytes(&run_dir),
                file_len(&path),
                bytes.len() as u64,
            )?;
            let io = |e: std::io::Error| {
                StoreError::Task(format!(
                    "cannot write the {} of {run:?} launch {launch}: {e}",
                    kind.name()
                ))
            };
            std::fs::create_dir_all(&dir).map_err(io)?;
            let tmp = dir.join(format!(".{}.tmp", artifact_file(kind)));
            std::fs::write(&tmp, &bytes).map_err(io)?;
            if replace {
                std::fs::rename(&tmp, &path).map_err(io)?;
            } else {
                let linked = std::fs::hard_link(&tmp, &path);
                let _ = std::fs::remove_file(&tmp);
                match linked {
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
                    other => other.map_err(io)?,
                }
            }
            Ok(true)
        });
        write.await.map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// The same store with these limits.
    pub fn with_limits(mut self, limits: Limits) -> SqliteStore {
        self.results = std::sync::Arc::new(ResultsSettings {
            limits,
            ..Default::default()
        });
        self
    }

    // The trait's methods the drivers call, callable without importing the trait.

    /// See [`ResultsStore::put_results`].
    pub async fn put_results(
        &self,
        run: &str,
        attempt: u32,
        results: Vec<AttemptResult>,
    ) -> Result<(), StoreError> {
        <Self as ResultsStore>::put_results(self, run, attempt, results).await
    }

    /// See [`ResultsStore::results`].
    pub async fn results(&self, run: &str) -> Result<Vec<AttemptResult>, StoreError> {
        <Self as ResultsStore>::results(self, run).await
    }

    /// See [`ResultsStore::put_categories`].
    pub async fn put_categories(&self, run: &str, categories: ByTest) -> Result<(), StoreError> {
        <Self as ResultsStore>::put_categories(self, run, categories).await
    }

    /// See [`ResultsStore::categories`].
    pub async fn categories(&self, run: &str) -> Result<ByTest, StoreError> {
        <Self as ResultsStore>::categories(self, run).await
    }

    /// See [`ResultsStore::test_durations`].
    pub async fn test_durations(
        &self,
        service: &str,
        runs: u32,
    ) -> Result<HashMap<String, Duration>, StoreError> {
        <Self as ResultsStore>::test_durations(self, service, runs).await
    }
}

#[async_trait]
impl ResultsStore for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn record_run(&self, run: &RunIdentity) -> Result<(), StoreError> {
        let run = run.clone();
        let replaced = self
            .with_write(move |conn| {
                let tx = conn.transaction()?;
                let uid: Option<String> = tx
                    .query_row("SELECT uid FROM runs WHERE name = ?1", params![run.name], |r| {
                        r.get(0)
                    })
                    .optional()?;
                if uid.as_deref() == Some(run.uid.as_str()) {
                    return Ok(None);
                }
                let replaced = uid.is_some();
                if replaced {
                    delete_rows(&tx, &run.name)?;
                }
                tx.execute(
                    "INSERT INTO runs (name, uid, service, stand, created) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![run.name, run.uid, run.service, run.stand, micros(run.created)],
                )?;
                tx.commit()?;
                Ok(replaced.then_some(run.name))
            })
            .await?;
        if let Some(name) = replaced {
            // The earlier run's files go with it (after the rows: a crash between leaves files
            // no row points at, never rows without their files).
            files::remove_run_dir(self.data_dir(), &name).await?;
        }
        Ok(())
    }

    async fn finish_run(&self, run: &str, phase: Phase, finished: DateTime<Utc>) -> Result<(), StoreError> {
        check_finished(phase)?;
        let run = run.to_string();
        self.with_write(move |conn| {
            let n = conn.execute(
                "UPDATE runs SET phase = ?2, finished = ?3 WHERE name = ?1",
                params![run, phase.as_str(), micros(finished)],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound {
                    kind: "run".into(),
                    name: run,
                });
            }
            Ok(())
        })
        .await
    }

    async fn run(&self, run: &str) -> Result<Option<RunRecord>, StoreError> {
        let run = run.to_string();
        self.with_conn(move |conn| {
            let row = conn
                .prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE name = ?1"))?
                .query_row(params![run], run_record)
                .optional()?;
            row.map(to_record).transpose()
        })
        .await
    }

    async fn list_runs(&self, page: &RunPage) -> Result<Vec<RunRecord>, StoreError> {
        let page = page.clone();
        self.with_conn(move |conn| {
            let mut sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE 1 = 1");
            let mut args: Vec<rusqlite::types::Value> = Vec::new();
            if let Some(s) = &page.service {
                sql.push_str(" AND service = ?");
                args.push(s.clone().into());
            }
            if let Some((created, name)) = &page.before {
                sql.push_str(" AND (created, name) < (?, ?)");
                args.push(micros(*created).into());
                args.push(name.clone().into());
            }
            sql.push_str(" ORDER BY created DESC, name DESC LIMIT ?");
            args.push(i64::from(page.limit).into());
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(args), run_record)?;
            rows.map(|r| to_record(r?)).collect()
        })
        .await
    }

    async fn put_results(
        &self,
        run: &str,
        attempt: u32,
        results: Vec<AttemptResult>,
    ) -> Result<(), StoreError> {
        let run = run.to_string();
        self.with_write(move |conn| {
            let tx = conn.transaction()?;
            insert_results(&tx, &run, attempt, &results)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn results(&self, run: &str) -> Result<Vec<AttemptResult>, StoreError> {
        let run = run.to_string();
        self.with_conn(move |conn| read_results(conn, &run)).await
    }

    async fn put_categories(&self, run: &str, categories: ByTest) -> Result<(), StoreError> {
        let run = run.to_string();
        self.with_write(move |conn| {
            let tx = conn.transaction()?;
            if recorded_run(&tx, &run)?.is_none() {
                return Err(StoreError::NotFound {
                    kind: "run".into(),
                    name: run,
                });
            }
            tx.execute("DELETE FROM test_categories WHERE run = ?1", params![run])?;
            {
                let mut stmt = tx.prepare(
                    "INSERT INTO test_categories (run, test_id, category, signature) VALUES (?1, ?2, ?3, ?4)",
                )?;
                for (test, c) in &categories {
                    stmt.execute(params![
                        run,
                        test,
                        c.category,
                        c.signature.as_ref().map(|s| s.as_str())
                    ])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn categories(&self, run: &str) -> Result<ByTest, StoreError> {
        let run = run.to_string();
        self.with_conn(move |conn| {
            let mut stmt =
                conn.prepare("SELECT test_id, category, signature FROM test_categories WHERE run = ?1")?;
            let rows = stmt.query_map(params![run], |r| {
                let signature: Option<String> = r.get(2)?;
                Ok((
                    r.get::<_, String>(0)?,
                    Classified {
                        category: r.get(1)?,
                        signature: signature.and_then(|s| Signature::try_from(s).ok()),
                    },
                ))
            })?;
            Ok(rows.collect::<Result<ByTest, _>>()?)
        })
        .await
    }

    async fn test_durations(
        &self,
        service: &str,
        runs: u32,
    ) -> Result<HashMap<String, Duration>, StoreError> {
        let service = service.to_string();
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT r.test_id, avg(r.time_ms) FROM test_results r
                 JOIN (SELECT name FROM runs WHERE service = ?1 ORDER BY created DESC LIMIT ?2) o ON r.run = o.name
                 WHERE r.time_ms IS NOT NULL AND r.status IN ('passed', 'failed')
                 GROUP BY r.test_id",
            )?;
            let rows = stmt.query_map(params![service, runs], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, f64>(1)?))
            })?;
            let mut out = HashMap::new();
            for row in rows {
                let (id, ms) = row?;
                out.insert(id, Duration::from_millis(ms.max(0.0) as u64));
            }
            Ok(out)
        })
        .await
    }

    async fn test_history(&self, query: &HistoryQuery) -> Result<Vec<HistoryEntry>, StoreError> {
        let q = query.clone();
        self.with_conn(move |conn| {
            let select =
                "SELECT r.run, r.stand, r.created, r.attempt, r.status, r.time_ms, r.message, c.signature
                 FROM test_results r LEFT JOIN test_categories c ON c.run = r.run AND c.test_id = r.test_id";
            let order = "ORDER BY r.created DESC, r.attempt DESC LIMIT ?";
            let map = |r: &rusqlite::Row<'_>| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, u32>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, Option<i64>>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, Option<String>>(7)?,
                ))
            };
            let rows: Vec<_> = match &q.stand {
                Some(stand) => conn
                    .prepare_cached(&format!(
                        "{select} WHERE r.service = ? AND r.test_id = ? AND r.stand = ? {order}"
                    ))?
                    .query_map(params![q.service, q.test_id, stand, q.limit], map)?
                    .collect::<Result<_, _>>()?,
                None => conn
                    .prepare_cached(&format!("{select} WHERE r.service = ? AND r.test_id = ? {order}"))?
                    .query_map(params![q.service, q.test_id, q.limit], map)?
                    .collect::<Result<_, _>>()?,
            };
            rows.into_iter()
                .map(
                    |(run, stand, created, attempt, status, time_ms, message, signature)| {
                        Ok(HistoryEntry {
                            run,
                            stand,
                            created: time(created),
                            attempt,
                            status: parse_status(&status)?,
                            time_ms: time_ms.map(|t| t.max(0) as u64),
                            message,
                            signature: signature.and_then(|s| Signature::try_from(s).ok()),
                        })
                    },
                )
                .collect()
        })
        .await
    }

    async fn failures_since(
        &self,
        service: &str,
        since: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Vec<Failure>, StoreError> {
        let service = service.to_string();
        // Both bounds on the indexed column, so the index gives the range.
        let until = until.map_or(i64::MAX, micros);
        self.with_conn(move |conn| {
            // `status IN ('failed', 'errored')` exactly as the partial index says, so it is used.
            let mut stmt = conn.prepare_cached(
                "SELECT r.test_id, r.run, r.stand, r.created, r.attempt, r.status, r.message, c.category, c.signature
                 FROM test_results r LEFT JOIN test_categories c ON c.run = r.run AND c.test_id = r.test_id
                 WHERE r.service = ?1 AND r.status IN ('failed', 'errored') AND r.created >= ?2 AND r.created < ?3
                 ORDER BY r.created DESC, r.attempt DESC LIMIT ?4",
            )?;
            let rows = stmt.query_map(params![service, micros(since), until, limit], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, u32>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, Option<String>>(7)?,
                    r.get::<_, Option<String>>(8)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (test_id, run, stand, created, attempt, status, message, category, signature) = row?;
                out.push(Failure {
                    test_id,
                    run,
                    stand,
                    created: time(created),
                    attempt,
                    status: parse_status(&status)?,
                    message,
                    category,
                    signature: signature.and_then(|s| Signature::try_from(s).ok()),
                });
            }
            Ok(out)
        })
        .await
    }

    async fn put_artifact(
        &self,
        run: &str,
        launch: u32,
        kind: ArtifactKind,
        bytes: Vec<u8>,
    ) -> Result<(), StoreError> {
        self.write_artifact(run, launch, kind, bytes, true)
            .await
            .map(|_| ())
    }

    async fn add_artifact(
        &self,
        run: &str,
        launch: u32,
        kind: ArtifactKind,
        bytes: Vec<u8>,
    ) -> Result<bool, StoreError> {
        self.write_artifact(run, launch, kind, bytes, false).await
    }

    async fn artifact(
        &self,
        run: &str,
        launch: u32,
        kind: ArtifactKind,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        files::checked_run_dir(self.data_dir(), run)?;
        let path = attempt_dir(self.data_dir(), run, launch as usize).join(artifact_file(kind));
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::Task(format!("cannot read {}: {e}", path.display()))),
        }
    }

    async fn delete_run(&self, run: &str) -> Result<bool, StoreError> {
        files::checked_run_dir(self.data_dir(), run)?;
        let name = run.to_string();
        let rows = self
            .with_write(move |conn| {
                let tx = conn.transaction()?;
                let n = delete_rows(&tx, &name)?;
                tx.commit()?;
                Ok(n)
            })
            .await?;
        let had_files = files::remove_run_dir(self.data_dir(), run).await?;
        Ok(rows > 0 || had_files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{RunTemplate, TestRun};
    use crate::store::results::{HistoryQuery, micros_of};

    /// A data file as the version before migrations 4 and 5 wrote it (migrations 1–3 only): a finished
    /// run with results and a classification, kept as rows without service, stand or creation
    /// time, reads after the upgrade and joins history.
    #[tokio::test]
    async fn a_data_file_from_before_the_results_tables_reads_and_joins_history() {
        let dir = tempfile::tempdir().unwrap();
        let old = {
            // Only the migrations the previous Tomato had, and a TestRun as it stored one.
            let conn = Connection::open(dir.path().join("tomato.db")).unwrap();
            for sql in &super::super::MIGRATIONS[..3] {
                conn.execute_batch(sql).unwrap();
            }
            conn.pragma_update(None, "user_version", 3).unwrap();
            let created = DateTime::parse_from_rfc3339("2026-11-30T10:20:30.123456789Z")
                .unwrap()
                .with_timezone(&Utc);
            let mut run = TestRun::test("old-run", RunTemplate::test("demo"));
            run.spec.template.stand = "stand-a".into();
            run.metadata.uid = Some("old-uid".into());
            run.metadata.annotations = Some(
                [(
                    crate::crd::ANNOTATION_CREATED.to_string(),
                    crate::crd::precise_time(created),
                )]
                .into(),
            );
            let st = run.status.get_or_insert_default();
            st.phase = Phase::Failed;
            st.finished_at = DateTime::from_timestamp(1_800_000_000, 0);
            conn.execute(
                "INSERT INTO objects (kind, name, resource_version, body) VALUES ('TestRun', 'old-run', 1, ?1)",
                params![serde_json::to_string(&run).unwrap()],
            )
            .unwrap();
            for (i, (id, status)) in [("t::a", "passed"), ("t::b", "failed")].iter().enumerate() {
                conn.execute(
                    "INSERT INTO test_results (run, attempt, ordinal, test_id, status, suites, classname, name, file,
                     time_ms, message, kind, trace, system_out, system_err)
                     VALUES ('old-run', 1, ?1, ?2, ?3, '[]', 'c', ?2, NULL, 5, 'msg', '', '', '', '')",
                    params![i as i64, id, status],
                )
                .unwrap();
            }
            conn.execute(
                "INSERT INTO test_categories (run, test_id, category) VALUES ('old-run', 't::b', 'Timeouts')",
                [],
            )
            .unwrap();
            created
        };
        let store = SqliteStore::open(dir.path()).unwrap();
        let results = store.results("old-run").await.unwrap();
        assert_eq!(results.len(), 2);
        assert_eq!(results[1].case.status, CaseStatus::Failed);
        let record = store
            .run("old-run")
            .await
            .unwrap()
            .expect("recorded by the migration");
        assert_eq!(record.identity.service, "demo");
        assert_eq!(record.identity.stand, "stand-a");
        assert_eq!(record.identity.uid, "old-uid");
        assert_eq!(
            record.identity.created,
            micros_of(old),
            "the precise creation time, to the microsecond"
        );
        assert_eq!(record.phase, Some(Phase::Failed));
        assert_eq!(record.finished, DateTime::from_timestamp(1_800_000_000, 0));
        let history = store
            .test_history(&HistoryQuery {
                service: "demo".into(),
                test_id: "t::b".into(),
                stand: Some("stand-a".into()),
                limit: 10,
            })
            .await
            .unwrap();
        assert_eq!(history.len(), 1);
        let failures = store
            .failures_since("demo", old - chrono::Duration::microseconds(1), None, 10)
            .await
            .unwrap();
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].category.as_deref(), Some("Timeouts"));
    }

    /// Standalone's driver puts results without recording the run first: the store records it
    /// from the TestRun it keeps.
    #[tokio::test]
    async fn a_run_kept_as_a_testrun_is_recorded_when_its_results_arrive() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let run = store
            .create(TestRun::test("r", RunTemplate::test("demo")))
            .await
            .unwrap();
        assert!(store.run("r").await.unwrap().is_none());
        store.put_results("r", 1, Vec::new()).await.unwrap();
        let record = store.run("r").await.unwrap().unwrap();
        assert_eq!(Some(record.identity.uid), run.metadata.uid.clone());
        assert_eq!(record.identity.created, micros_of(crate::crd::created(&run)));
        // Finishing the TestRun finishes its record, in the same write.
        let finished = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        store
            .update::<TestRun, _>("r", move |r| {
                let st = r.status.get_or_insert_default();
                st.phase = Phase::Succeeded;
                st.finished_at = Some(finished);
                Ok((true, ()))
            })
            .await
            .unwrap();
        let record = store.run("r").await.unwrap().unwrap();
        assert_eq!(
            (record.phase, record.finished),
            (Some(Phase::Succeeded), Some(finished))
        );
        // Deleting the TestRun deletes its record and results too.
        store.delete::<TestRun>("r").await.unwrap();
        assert!(store.run("r").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn artifacts_of_a_run_name_that_is_not_a_directory_name_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        for bad in ["", "..", "a/b", "."] {
            let err = store
                .put_artifact(bad, 1, ArtifactKind::Log, b"x".to_vec())
                .await
                .unwrap_err();
            assert!(err.to_string().starts_with("run:"), "{bad:?}: {err}");
        }
        assert!(!dir.path().join("runs").exists(), "nothing was written");
    }
}
