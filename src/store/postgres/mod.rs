//! The PostgreSQL results store ([`PgStore`]): a connection pool over the URL of
//! `--database-url`, TLS as its `sslmode` says, and the schema migrated at start.
//!
//! **Migrations** are applied in one transaction that first takes a transaction-scoped
//! advisory lock ([`MIGRATION_LOCK`]), so replicas starting together apply them once, one
//! after the other; `tomato_schema` records each applied version. A database migrated by a
//! newer Tomato (a version this one does not know) is refused rather than guessed at.
//!
//! **Errors** become [`StoreError::Postgres`] built from sqlx's error, with any URL user-info
//! masked: the password never reaches a log, an error or the API.
//!
//! PostgreSQL's `text` cannot hold a NUL character; test output sometimes does, so NULs in
//! stored text are written as U+FFFD (the replacement character) — the only way results read
//! back differently from the SQLite store.

use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};

use super::StoreError;
use super::database_url::DatabaseUrl;
use super::results::Limits;

mod results;

/// `pg_advisory_xact_lock` key serialising migrations ("tomato" in ASCII).
const MIGRATION_LOCK: i64 = 0x746f_6d61_746f;

/// Default size of the connection pool.
pub const DEFAULT_POOL_SIZE: u32 = 10;

/// Schema migrations, applied in order; never edit one that shipped, append.
const MIGRATIONS: &[&str] = &[
    // 1: runs, per-attempt test results (with their run's service, stand and creation time,
    // indexed for history and failures), classifications and artifacts. Everything of a run
    // goes with it (ON DELETE CASCADE).
    r#"
    CREATE TABLE runs (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name text NOT NULL UNIQUE,
        uid text NOT NULL,
        service text NOT NULL,
        stand text NOT NULL,
        created timestamptz NOT NULL,
        phase text,
        finished timestamptz
    );
    CREATE INDEX runs_service_created ON runs (service, created, name);
    CREATE INDEX runs_created ON runs (created, name);
    CREATE TABLE test_results (
        run_id bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        attempt integer NOT NULL,
        ordinal integer NOT NULL,
        test_id text NOT NULL,
        status text NOT NULL CHECK (status IN ('passed', 'failed', 'errored', 'skipped')),
        suites text NOT NULL,
        classname text NOT NULL,
        name text NOT NULL,
        file text,
        time_ms bigint,
        message text NOT NULL,
        kind text NOT NULL,
        trace text NOT NULL,
        system_out text NOT NULL,
        system_err text NOT NULL,
        service text NOT NULL,
        stand text NOT NULL,
        created timestamptz NOT NULL,
        PRIMARY KEY (run_id, attempt, ordinal)
    );
    CREATE INDEX test_results_history ON test_results (service, test_id, created, attempt);
    CREATE INDEX test_results_history_stand ON test_results (service, test_id, stand, created, attempt);
    CREATE INDEX test_results_failures ON test_results (service, created) WHERE status IN ('failed', 'errored');
    CREATE TABLE test_categories (
        run_id bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        test_id text NOT NULL,
        category text NOT NULL,
        signature text,
        PRIMARY KEY (run_id, test_id)
    );
    CREATE TABLE artifacts (
        run_id bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        launch integer NOT NULL,
        kind text NOT NULL,
        size bigint NOT NULL,
        bytes bytea NOT NULL,
        PRIMARY KEY (run_id, launch, kind)
    );
    "#,
];

/// The PostgreSQL results store. Cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    limits: Limits,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects (a pool of at most `pool_size` connections), applies the migrations this
    /// database lacks, and answers a store ready to use.
    pub async fn connect(url: &DatabaseUrl, pool_size: u32, limits: Limits) -> Result<PgStore, StoreError> {
        if pool_size == 0 {
            return Err(StoreError::Invalid("pool size: must be at least 1".into()));
        }
        let options = url
            .options()
            .map_err(|e| StoreError::Invalid(format!("{}: {e}", super::database_url::FIELD)))?;
        let pool = PgPoolOptions::new()
            .max_connections(pool_size)
            .acquire_timeout(Duration::from_secs(15))
            .connect_with(options)
            .await
            .map_err(|e| {
                StoreError::Postgres(format!(
                    "cannot connect to {}: {}",
                    url.redacted(),
                    super::database_url::redact(&e.to_string())
                ))
            })?;
        migrate(&pool).await?;
        Ok(PgStore { pool, limits })
    }

    /// The schema version this database is at.
    pub async fn schema_version(&self) -> Result<i32, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT coalesce(max(version), 0) FROM tomato_schema")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// The database's size on disk, in bytes (`pg_database_size`), for benchmarks and metrics.
    pub async fn database_bytes(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
            .fetch_one(&self.pool)
            .await?;
        Ok(n.max(0) as u64)
    }

    /// Closes the pool's connections.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Applies the migrations the database lacks, under the advisory lock, in one transaction.
async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *tx)
        .await?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS tomato_schema (
            version integer PRIMARY KEY,
            applied timestamptz NOT NULL DEFAULT now()
        )",
    )
    .execute(&mut *tx)
    .await?;
    let version: i32 = sqlx::query_scalar("SELECT coalesce(max(version), 0) FROM tomato_schema")
        .fetch_one(&mut *tx)
        .await?;
    let version = usize::try_from(version).unwrap_or(0);
    if version > MIGRATIONS.len() {
        return Err(StoreError::Invalid(format!(
            "the results database has schema version {version}, newer than this Tomato knows ({}); upgrade Tomato",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        sqlx::raw_sql(*sql).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO tomato_schema (version) VALUES ($1)")
            .bind(i32::try_from(i + 1).expect("fewer than 2^31 migrations"))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}
