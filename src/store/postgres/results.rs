//! [`PgStore`] as a [`ResultsStore`]. An attempt's test rows go in with one `INSERT ... SELECT
//! FROM UNNEST(...)` per [`ROWS_PER_INSERT`] rows (one array bind per column), so thousands of
//! tests are a handful of round trips, not thousands.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::PgStore;
use crate::classify::{ByTest, Classified};
use crate::crd::Phase;
use crate::results::{AttemptResult, Case, Signature};
use crate::store::StoreError;
use crate::store::results::{
    ArtifactKind, Failure, HistoryEntry, HistoryQuery, ResultsStore, RunIdentity, RunPage, RunRecord,
    check_artifact_limit, check_finished, micros_of, parse_phase, parse_status,
};

/// Rows per bulk insert: bounds one statement's size when an attempt has tens of thousands
/// of tests with long traces.
const ROWS_PER_INSERT: usize = 5_000;

const RUN_COLUMNS: &str = "name, uid, service, stand, created, phase, finished";

/// Text as PostgreSQL can keep it (no NUL; see the module comment of [`super`]).
fn pg_text(s: &str) -> String {
    if s.contains('\0') {
        s.replace('\0', "\u{FFFD}")
    } else {
        s.to_string()
    }
}

fn not_found(run: &str) -> StoreError {
    StoreError::NotFound {
        kind: "run".into(),
        name: run.to_string(),
    }
}

fn run_record(row: &PgRow) -> Result<RunRecord, StoreError> {
    let phase: Option<String> = row.try_get("phase")?;
    Ok(RunRecord {
        identity: RunIdentity {
            name: row.try_get("name")?,
            uid: row.try_get("uid")?,
            service: row.try_get("service")?,
            stand: row.try_get("stand")?,
            created: row.try_get("created")?,
        },
        phase: phase.as_deref().map(parse_phase).transpose()?,
        finished: row.try_get("finished")?,
    })
}

/// A run's id, locking its row for the transaction; `None` when it is not recorded.
async fn run_id_for_update(tx: &mut sqlx::PgConnection, run: &str) -> Result<Option<i64>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT id FROM runs WHERE name = $1 FOR UPDATE")
            .bind(run)
            .fetch_optional(tx)
            .await?,
    )
}

/// Inserts one chunk of an attempt's rows.
async fn insert_chunk(
    tx: &mut sqlx::PgConnection,
    run_id: i64,
    attempt: i32,
    first: usize,
    chunk: &[AttemptResult],
) -> Result<(), StoreError> {
    let n = chunk.len();
    let (mut ordinal, mut test_id, mut status, mut suites) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut classname, mut name, mut file, mut time_ms) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut message, mut kind, mut trace, mut out, mut err) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for (i, r) in chunk.iter().enumerate() {
        let c = &r.case;
        ordinal.push(
            i32::try_from(first + i).map_err(|_| StoreError::Invalid("results: too many tests".into()))?,
        );
        test_id.push(pg_text(&r.id));
        status.push(c.status.as_str());
        suites.push(pg_text(&serde_json::to_string(&c.suites)?));
        classname.push(pg_text(&c.classname));
        name.push(pg_text(&c.name));
        file.push(c.file.as_deref().map(pg_text));
        time_ms.push(c.time_ms.map(|t| i64::try_from(t).unwrap_or(i64::MAX)));
        message.push(pg_text(&c.message));
        kind.push(pg_text(&c.kind));
        trace.push(pg_text(&c.trace));
        out.push(pg_text(&c.system_out));
        err.push(pg_text(&c.system_err));
    }
    sqlx::query(
        "INSERT INTO test_results (run_id, attempt, service, stand, created, ordinal, test_id, status, suites,
             classname, name, file, time_ms, message, kind, trace, system_out, system_err)
         SELECT r.id, $2, r.service, r.stand, r.created, u.*
         FROM runs r, UNNEST($3::int4[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
                             $10::int8[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[]) AS u
         WHERE r.id = $1",
    )
    .bind(run_id)
    .bind(attempt)
    .bind(ordinal)
    .bind(test_id)
    .bind(status)
    .bind(suites)
    .bind(classname)
    .bind(name)
    .bind(file)
    .bind(time_ms)
    .bind(message)
    .bind(kind)
    .bind(trace)
    .bind(out)
    .bind(err)
    .execute(tx)
    .await?;
    Ok(())
}

fn attempt_number(attempt: u32) -> Result<i32, StoreError> {
    i32::try_from(attempt).map_err(|_| StoreError::Invalid(format!("attempt: {attempt} is out of range")))
}

fn time_ms(ms: Option<i64>) -> Option<u64> {
    ms.map(|t| t.max(0) as u64)
}

#[async_trait]
impl ResultsStore for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn record_run(&self, run: &RunIdentity) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let inserted: Option<i64> = sqlx::query_scalar(
            "INSERT INTO runs (name, uid, service, stand, created) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (name) DO NOTHING RETURNING id",
        )
        .bind(&run.name)
        .bind(&run.uid)
        .bind(&run.service)
        .bind(&run.stand)
        .bind(micros_of(run.created))
        .fetch_optional(&mut *tx)
        .await?;
        if inserted.is_none() {
            let uid: String = sqlx::query_scalar("SELECT uid FROM runs WHERE name = $1 FOR UPDATE")
                .bind(&run.name)
                .fetch_one(&mut *tx)
                .await?;
            if uid != run.uid {
                // Another run of the same name: it and everything kept of it go (cascade).
                sqlx::query("DELETE FROM runs WHERE name = $1")
                    .bind(&run.name)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO runs (name, uid, service, stand, created) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&run.name)
                .bind(&run.uid)
                .bind(&run.service)
                .bind(&run.stand)
                .bind(micros_of(run.created))
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn finish_run(&self, run: &str, phase: Phase, finished: DateTime<Utc>) -> Result<(), StoreError> {
        check_finished(phase)?;
        let done = sqlx::query("UPDATE runs SET phase = $2, finished = $3 WHERE name = $1")
            .bind(run)
            .bind(phase.as_str())
            .bind(micros_of(finished))
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(not_found(run));
        }
        Ok(())
    }

    async fn run(&self, run: &str) -> Result<Option<RunRecord>, StoreError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE name = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(run)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(run_record).transpose()
    }

    async fn list_runs(&self, page: &RunPage) -> Result<Vec<RunRecord>, StoreError> {
        // The statement names only the filters in use: `$1 IS NULL OR ...` would leave a
        // generic plan unable to pick the (service, created) index.
        let mut sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE true");
        let mut n = 0;
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        if page.service.is_some() {
            sql.push_str(&format!(" AND service = {}", next()));
        }
        if page.before.is_some() {
            sql.push_str(&format!(" AND (created, name) < ({}, {})", next(), next()));
        }
        sql.push_str(&format!(" ORDER BY created DESC, name DESC LIMIT {}", next()));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(service) = &page.service {
            query = query.bind(service.clone());
        }
        if let Some((created, name)) = &page.before {
            query = query.bind(micros_of(*created)).bind(name.clone());
        }
        let rows = query.bind(i64::from(page.limit)).fetch_all(&self.pool).await?;
        rows.iter().map(run_record).collect()
    }

    async fn put_results(
        &self,
        run: &str,
        attempt: u32,
        results: Vec<AttemptResult>,
    ) -> Result<(), StoreError> {
        let attempt = attempt_number(attempt)?;
        let mut tx = self.pool.begin().await?;
        let run_id = run_id_for_update(&mut tx, run)
            .await?
            .ok_or_else(|| not_found(run))?;
        sqlx::query("DELETE FROM test_results WHERE run_id = $1 AND attempt = $2")
            .bind(run_id)
            .bind(attempt)
            .execute(&mut *tx)
            .await?;
        for (i, chunk) in results.chunks(ROWS_PER_INSERT).enumerate() {
            insert_chunk(&mut tx, run_id, attempt, i * ROWS_PER_INSERT, chunk).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn results(&self, run: &str) -> Result<Vec<AttemptResult>, StoreError> {
        let rows = sqlx::query(
            "SELECT t.attempt, t.test_id, t.status, t.suites, t.classname, t.name, t.file, t.time_ms, t.message,
                    t.kind, t.trace, t.system_out, t.system_err
             FROM test_results t JOIN runs r ON r.id = t.run_id
             WHERE r.name = $1 ORDER BY t.attempt, t.ordinal",
        )
        .bind(run)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let status: String = row.try_get("status")?;
                let suites: String = row.try_get("suites")?;
                Ok(AttemptResult {
                    attempt: u32::try_from(row.try_get::<i32, _>("attempt")?).unwrap_or(0),
                    id: row.try_get("test_id")?,
                    case: Case {
                        suites: serde_json::from_str(&suites)?,
                        classname: row.try_get("classname")?,
                        name: row.try_get("name")?,
                        file: row.try_get("file")?,
                        time_ms: time_ms(row.try_get("time_ms")?),
                        status: parse_status(&status)?,
                        message: row.try_get("message")?,
                        kind: row.try_get("kind")?,
                        trace: row.try_get("trace")?,
                        system_out: row.try_get("system_out")?,
                        system_err: row.try_get("system_err")?,
                    },
                })
            })
            .collect()
    }

    async fn put_categories(&self, run: &str, categories: ByTest) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let run_id = run_id_for_update(&mut tx, run)
            .await?
            .ok_or_else(|| not_found(run))?;
        sqlx::query("DELETE FROM test_categories WHERE run_id = $1")
            .bind(run_id)
            .execute(&mut *tx)
            .await?;
        let mut tests = Vec::with_capacity(categories.len());
        let mut names = Vec::with_capacity(categories.len());
        let mut signatures = Vec::with_capacity(categories.len());
        for (test, c) in &categories {
            tests.push(pg_text(test));
            names.push(pg_text(&c.category));
            signatures.push(c.signature.as_ref().map(|s| s.as_str().to_string()));
        }
        sqlx::query(
            "INSERT INTO test_categories (run_id, test_id, category, signature)
             SELECT $1, u.* FROM UNNEST($2::text[], $3::text[], $4::text[]) AS u",
        )
        .bind(run_id)
        .bind(tests)
        .bind(names)
        .bind(signatures)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn categories(&self, run: &str) -> Result<ByTest, StoreError> {
        let rows = sqlx::query(
            "SELECT c.test_id, c.category, c.signature FROM test_categories c JOIN runs r ON r.id = c.run_id
             WHERE r.name = $1",
        )
        .bind(run)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let signature: Option<String> = row.try_get("signature")?;
                Ok((
                    row.try_get("test_id")?,
                    Classified {
                        category: row.try_get("category")?,
                        signature: signature.and_then(|s| Signature::try_from(s).ok()),
                    },
                ))
            })
            .collect()
    }

    async fn test_durations(
        &self,
        service: &str,
        runs: u32,
    ) -> Result<HashMap<String, Duration>, StoreError> {
        let rows = sqlx::query(
            "SELECT t.test_id, avg(t.time_ms)::float8 AS ms FROM test_results t
             JOIN (SELECT id FROM runs WHERE service = $1 ORDER BY created DESC LIMIT $2) o ON t.run_id = o.id
             WHERE t.time_ms IS NOT NULL AND t.status IN ('passed', 'failed')
             GROUP BY t.test_id",
        )
        .bind(service)
        .bind(i64::from(runs))
        .fetch_all(&self.pool)
        .await?;
        let mut out = HashMap::new();
        for row in &rows {
            let ms: f64 = row.try_get("ms")?;
            out.insert(row.try_get("test_id")?, Duration::from_millis(ms.max(0.0) as u64));
        }
        Ok(out)
    }

    async fn test_history(&self, query: &HistoryQuery) -> Result<Vec<HistoryEntry>, StoreError> {
        // Two statements rather than an optional filter, so each uses its own index.
        let select =
            "SELECT r.name, t.stand, t.created, t.attempt, t.status, t.time_ms, t.message, c.signature
                      FROM test_results t JOIN runs r ON r.id = t.run_id
                      LEFT JOIN test_categories c ON c.run_id = t.run_id AND c.test_id = t.test_id";
        let order = "ORDER BY t.created DESC, t.attempt DESC LIMIT $3";
        let rows = match &query.stand {
            Some(stand) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "{select} WHERE t.service = $1 AND t.test_id = $2 AND t.stand = $4 {order}"
                )))
                .bind(&query.service)
                .bind(&query.test_id)
                .bind(i64::from(query.limit))
                .bind(stand)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "{select} WHERE t.service = $1 AND t.test_id = $2 {order}"
                )))
                .bind(&query.service)
                .bind(&query.test_id)
                .bind(i64::from(query.limit))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter()
            .map(|row| {
                let status: String = row.try_get("status")?;
                Ok(HistoryEntry {
                    run: row.try_get("name")?,
                    stand: row.try_get("stand")?,
                    created: row.try_get("created")?,
                    attempt: u32::try_from(row.try_get::<i32, _>("attempt")?).unwrap_or(0),
                    status: parse_status(&status)?,
                    time_ms: time_ms(row.try_get("time_ms")?),
                    message: row.try_get("message")?,
                    signature: row
                        .try_get::<Option<String>, _>("signature")?
                        .and_then(|s| Signature::try_from(s).ok()),
                })
            })
            .collect()
    }

    async fn failures_since(
        &self,
        service: &str,
        since: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Vec<Failure>, StoreError> {
        let rows = sqlx::query(
            "SELECT t.test_id, r.name, t.stand, t.created, t.attempt, t.status, t.message, c.category, c.signature
             FROM test_results t JOIN runs r ON r.id = t.run_id
             LEFT JOIN test_categories c ON c.run_id = t.run_id AND c.test_id = t.test_id
             WHERE t.service = $1 AND t.status IN ('failed', 'errored') AND t.created >= $2
               AND t.created < COALESCE($4, 'infinity'::timestamptz)
             ORDER BY t.created DESC, t.attempt DESC LIMIT $3",
        )
        .bind(service)
        .bind(micros_of(since))
        .bind(i64::from(limit))
        .bind(until.map(micros_of))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let status: String = row.try_get("status")?;
                let signature: Option<String> = row.try_get("signature")?;
                Ok(Failure {
                    test_id: row.try_get("test_id")?,
                    run: row.try_get("name")?,
                    stand: row.try_get("stand")?,
                    created: row.try_get("created")?,
                    attempt: u32::try_from(row.try_get::<i32, _>("attempt")?).unwrap_or(0),
                    status: parse_status(&status)?,
                    message: row.try_get("message")?,
                    category: row.try_get("category")?,
                    signature: signature.and_then(|s| Signature::try_from(s).ok()),
                })
            })
            .collect()
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
        let Ok(launch) = i32::try_from(launch) else {
            return Ok(None);
        };
        Ok(sqlx::query_scalar(
            "SELECT a.bytes FROM artifacts a JOIN runs r ON r.id = a.run_id
             WHERE r.name = $1 AND a.launch = $2 AND a.kind = $3",
        )
        .bind(run)
        .bind(launch)
        .bind(kind.name().as_ref())
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn delete_run(&self, run: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM runs WHERE name = $1")
            .bind(run)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

impl PgStore {
    /// Writes an artifact, replacing one already kept (`replace`) or keeping it (then
    /// answering `false`). The run's row lock serialises artifact writes of one run, so two
    /// cannot both pass its limit, and two adds of one artifact cannot both win.
    async fn write_artifact(
        &self,
        run: &str,
        launch: u32,
        kind: ArtifactKind,
        bytes: Vec<u8>,
        replace: bool,
    ) -> Result<bool, StoreError> {
        let launch = i32::try_from(launch)
            .map_err(|_| StoreError::Invalid(format!("launch: {launch} is out of range")))?;
        let kind = kind.name();
        let mut tx = self.pool.begin().await?;
        let run_id = run_id_for_update(&mut tx, run)
            .await?
            .ok_or_else(|| not_found(run))?;
        let (current, existing): (i64, Option<i64>) = sqlx::query_as(
            "SELECT coalesce(sum(size), 0)::int8,
                    max(size) FILTER (WHERE launch = $2 AND kind = $3)
             FROM artifacts WHERE run_id = $1",
        )
        .bind(run_id)
        .bind(launch)
        .bind(kind.as_ref())
        .fetch_one(&mut *tx)
        .await?;
        if existing.is_some() && !replace {
            return Ok(false);
        }
        let size = bytes.len() as u64;
        check_artifact_limit(
            run,
            self.limits.artifact_bytes_per_run,
            current.max(0) as u64,
            existing.unwrap_or(0).max(0) as u64,
            size,
        )?;
        sqlx::query(
            "INSERT INTO artifacts (run_id, launch, kind, size, bytes) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (run_id, launch, kind) DO UPDATE SET size = excluded.size, bytes = excluded.bytes",
        )
        .bind(run_id)
        .bind(launch)
        .bind(kind.as_ref())
        .bind(i64::try_from(size).unwrap_or(i64::MAX))
        .bind(bytes)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }
}
