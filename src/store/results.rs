//! The results store: per run, per attempt and per test, behind one interface
//! ([`ResultsStore`]) with two implementations — the embedded SQLite file of standalone mode
//! ([`super::SqliteStore`]) and PostgreSQL ([`super::postgres::PgStore`]).
//!
//! **Shape.** A run is recorded once with its identity ([`RunIdentity`]: name, uid, service,
//! stand, creation time) and later its finished phase. Each test result of each attempt is a
//! row carrying the run's service, stand and creation time beside its own verdict, so that the
//! questions history asks — "the last N results of test T of service X on stand S", "every
//! failure of service X since t" — are range scans of an index, whose cost depends on the
//! answer's size and not on how much history is stored. Test results are never one JSON blob
//! per run.
//!
//! **Keys.** A run is known by its name, unique in one store (standalone: the TestRun's name;
//! a caller keeping runs of several namespaces in one store qualifies it, e.g.
//! `namespace/name`). Its uid tells a run apart from an earlier one of the same name: recording
//! a run under a name already held by another uid replaces the old run and drops its results.
//!
//! **Artifacts** (an attempt's log and JUnit XML) are bytes kept per launch (`launch` is the
//! launch's position in `status.attempts`, from 1, as the API's `/log` and `/junit` count
//! them). Each run may keep at most [`Limits::artifact_bytes_per_run`] of them; a write that
//! would pass the limit is refused with [`StoreError::TooLarge`] naming the run and the limit,
//! and changes nothing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::classify::ByTest;
use crate::crd::Phase;
use crate::results::{AttemptResult, CaseStatus};

/// Default for [`Limits::artifact_bytes_per_run`]: 256 MiB, logs and JUnit of every attempt.
pub const DEFAULT_ARTIFACT_BYTES_PER_RUN: u64 = 256 << 20;

/// Configurable limits of a results store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes of artifacts (logs, JUnit) one run may keep, over all its launches.
    pub artifact_bytes_per_run: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            artifact_bytes_per_run: DEFAULT_ARTIFACT_BYTES_PER_RUN,
        }
    }
}

/// Who a run is, as history needs it: recorded once, when its results start to arrive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunIdentity {
    /// The run's key in this store (see the module comment).
    pub name: String,
    /// `metadata.uid`: a new run under an old name has a new one.
    pub uid: String,
    pub service: String,
    pub stand: String,
    /// When the run was created (history is ordered by it); kept to the microsecond
    /// ([`micros_of`]).
    pub created: DateTime<Utc>,
}

/// A recorded run: its identity and, once it finished, how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunRecord {
    pub identity: RunIdentity,
    /// The run's final phase (`None` while it has not finished).
    pub phase: Option<Phase>,
    pub finished: Option<DateTime<Utc>>,
}

/// One page of the run list, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunPage {
    /// Only runs of this service.
    pub service: Option<String>,
    /// Only runs created strictly before this one in list order (`created`, then `name`):
    /// the last run of the previous page, for the next.
    pub before: Option<(DateTime<Utc>, String)>,
    /// At most this many.
    pub limit: u32,
}

/// "The last `limit` results of test `test_id` of `service` (on `stand`)".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryQuery {
    pub service: String,
    pub test_id: String,
    /// Only runs on this stand.
    pub stand: Option<String>,
    /// At most this many results (one per attempt the test ran in).
    pub limit: u32,
}

/// One result of a test in its history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryEntry {
    pub run: String,
    pub stand: String,
    /// The run's creation time.
    pub created: DateTime<Utc>,
    pub attempt: u32,
    pub status: CaseStatus,
    pub time_ms: Option<u64>,
    pub message: String,
    /// The failure signature its run classified the test with (failed, broken and flaky
    /// tests; the same on each of the run's attempts).
    pub signature: Option<crate::results::Signature>,
}

/// One failed or broken (errored) test result of a service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub test_id: String,
    pub run: String,
    pub stand: String,
    /// The run's creation time.
    pub created: DateTime<Utc>,
    pub attempt: u32,
    pub status: CaseStatus,
    pub message: String,
    /// The category and signature the run was classified with (none before its
    /// classification is stored, or when the test passed on a rerun and was never classified).
    pub category: Option<String>,
    pub signature: Option<crate::results::Signature>,
}

/// What an attempt left behind, kept as bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ArtifactKind {
    /// stdout and stderr interleaved.
    Log,
    /// The JUnit XML the runner wrote.
    Junit,
    /// Everything `tomato exec` uploaded for a launch (its reports, log tail, exit code and
    /// notes) in operator mode's own encoding (`operator::results::StoredResults`), or one
    /// shard's upload (`shard`).
    Results { shard: Option<u32> },
    /// The test ids a rerun selects, when too many for the TestRun object (operator mode).
    Selection,
    /// What each index of a launch's Job runs (argv and its own environment), which
    /// `tomato exec` fetches when it is too large for the Job object (operator mode).
    Launches,
}

impl ArtifactKind {
    /// The kind's stored name: `log`, `junit`, `results`, `results-shard-<i>`.
    pub fn name(self) -> std::borrow::Cow<'static, str> {
        match self {
            ArtifactKind::Log => "log".into(),
            ArtifactKind::Junit => "junit".into(),
            ArtifactKind::Results { shard: None } => "results".into(),
            ArtifactKind::Results { shard: Some(i) } => format!("results-shard-{i}").into(),
            ArtifactKind::Selection => "selection".into(),
            ArtifactKind::Launches => "launches".into(),
        }
    }
}

/// The results store's interface. Every write is committed before it returns; a write that
/// fails changes nothing.
#[async_trait]
pub trait ResultsStore: Send + Sync + 'static {
    /// `sqlite` or `postgres` (for logs and benchmarks).
    fn backend(&self) -> &'static str;

    /// Records a run's identity. Idempotent for the same uid (nothing changes); under a name
    /// held by another uid the earlier run and everything kept of it are replaced.
    async fn record_run(&self, run: &RunIdentity) -> Result<(), StoreError>;

    /// Records how a recorded run finished. `NotFound` when the run was never recorded;
    /// `Invalid` for a phase that is not terminal.
    async fn finish_run(&self, run: &str, phase: Phase, finished: DateTime<Utc>) -> Result<(), StoreError>;

    /// One recorded run, by its key (a primary-key lookup).
    async fn run(&self, run: &str) -> Result<Option<RunRecord>, StoreError>;

    /// A page of recorded runs, newest first (creation time, then name).
    async fn list_runs(&self, page: &RunPage) -> Result<Vec<RunRecord>, StoreError>;

    /// Replaces the results of one attempt of a run, in the order given (a test id appears at
    /// most once per attempt: [`crate::results::assign_ids`]). `NotFound` when the run was
    /// never recorded (the SQLite store records a run it keeps as a TestRun object itself).
    async fn put_results(
        &self,
        run: &str,
        attempt: u32,
        results: Vec<AttemptResult>,
    ) -> Result<(), StoreError>;

    /// Every stored result of a run — its test list — in attempt order, each attempt in the
    /// order it was put. Empty for an unknown run.
    async fn results(&self, run: &str) -> Result<Vec<AttemptResult>, StoreError>;

    /// Replaces a run's classification (test id → category and failure signature).
    /// `NotFound` when the run was never recorded (as for [`ResultsStore::put_results`]).
    async fn put_categories(&self, run: &str, categories: ByTest) -> Result<(), StoreError>;

    /// A run's stored classification (empty when none is stored). A signature that does not
    /// read as one (a damaged row) is dropped, not an error: the category still stands.
    async fn categories(&self, run: &str) -> Result<ByTest, StoreError>;

    /// Each test's recorded duration on `service`: the mean over its results in the service's
    /// last `runs` recorded runs that passed or failed (a skipped or broken case says nothing
    /// of how long the test takes). What shards are balanced by.
    async fn test_durations(&self, service: &str, runs: u32)
    -> Result<HashMap<String, Duration>, StoreError>;

    /// The last `limit` results of a test, newest first (run creation time, then attempt).
    async fn test_history(&self, query: &HistoryQuery) -> Result<Vec<HistoryEntry>, StoreError>;

    /// Failed and errored results of `service` in runs created at or after `since` (and,
    /// with `until`, strictly before it), newest first, at most `limit`, with the category and
    /// signature each run was classified with. `until` keeps the history of an old run from
    /// being crowded out by the failures of the runs after it.
    async fn failures_since(
        &self,
        service: &str,
        since: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Vec<Failure>, StoreError>;

    /// Keeps (replacing) an artifact of a run's `launch`-th launch. `TooLarge`, naming the run
    /// and the limit, when the run's artifacts would pass [`Limits::artifact_bytes_per_run`].
    async fn put_artifact(
        &self,
        run: &str,
        launch: u32,
        kind: ArtifactKind,
        bytes: Vec<u8>,
    ) -> Result<(), StoreError>;

    /// Keeps an artifact of a run's `launch`-th launch unless one of that kind is already
    /// kept, atomically: of two racing writers exactly one wins. Returns whether this write
    /// kept it (`false`: the earlier one stays and nothing changed). `TooLarge` as for
    /// [`ResultsStore::put_artifact`].
    async fn add_artifact(
        &self,
        run: &str,
        launch: u32,
        kind: ArtifactKind,
        bytes: Vec<u8>,
    ) -> Result<bool, StoreError>;

    /// An artifact of a run's `launch`-th launch; `None` when none is kept.
    async fn artifact(
        &self,
        run: &str,
        launch: u32,
        kind: ArtifactKind,
    ) -> Result<Option<Vec<u8>>, StoreError>;

    /// Deletes everything kept of a run (identity, results, classification, artifacts), for
    /// retention. Returns whether there was anything.
    async fn delete_run(&self, run: &str) -> Result<bool, StoreError>;
}

/// How the results store is configured (`--database-url`, `--database-pool-size`,
/// `--artifact-limit-mib`; see [`crate::cli::ResultsArgs`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResultsConfig {
    /// PostgreSQL, when set; else the mode's own store.
    pub database_url: Option<super::database_url::DatabaseUrl>,
    /// Most connections the pool opens.
    pub pool_size: u32,
    pub limits: Limits,
}

/// At start: checks that the configured results database takes connections and has the
/// schema this version needs (applying migrations), so a wrong URL, password or TLS setting
/// stops the start with a clear error; and says where results are kept meanwhile (`kept_in`,
/// the mode's own place until the database is wired into it).
pub async fn announce_database(config: &ResultsConfig, kept_in: &str) -> Result<(), StoreError> {
    let Some(url) = &config.database_url else {
        return Ok(());
    };
    let store = open(url, config.pool_size, config.limits).await?;
    tracing::info!(database = %url, pool_size = config.pool_size, "the results database is reachable and migrated");
    tracing::warn!(
        "results are not written to the results database yet (issue 14: wired next); they stay in {kept_in}"
    );
    drop(store);
    Ok(())
}

/// Opens the results store a URL names: `postgres://` or `postgresql://` (see
/// [`super::database_url`]), migrated and ready. Standalone mode without a URL uses its
/// [`super::SqliteStore`], which is a [`ResultsStore`] itself.
pub async fn open(
    url: &super::database_url::DatabaseUrl,
    pool_size: u32,
    limits: Limits,
) -> Result<Arc<dyn ResultsStore>, StoreError> {
    let store = super::postgres::PgStore::connect(url, pool_size, limits).await?;
    Ok(Arc::new(store))
}

/// `t` to the microsecond, truncated: how both stores keep times (PostgreSQL itself would
/// round).
pub fn micros_of(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

/// Whether a write of `new` bytes, replacing `replaced` bytes, keeps a run holding `current`
/// bytes of artifacts within `limit`. Pure: both stores decide with it.
pub fn check_artifact_limit(
    run: &str,
    limit: u64,
    current: u64,
    replaced: u64,
    new: u64,
) -> Result<(), StoreError> {
    let after = current.saturating_sub(replaced).saturating_add(new);
    if after > limit {
        return Err(StoreError::TooLarge(format!(
            "run {run:?}: its artifacts would take {after} bytes, over the per-run artifact limit of {limit} bytes"
        )));
    }
    Ok(())
}

/// Checks a phase given to [`ResultsStore::finish_run`].
pub fn check_finished(phase: Phase) -> Result<(), StoreError> {
    if phase.is_terminal() {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "phase: {phase} is not a finished phase (Succeeded, Failed, Error or Cancelled)"
        )))
    }
}

/// A stored test status ([`CaseStatus::as_str`]) read back.
pub fn parse_status(s: &str) -> Result<CaseStatus, StoreError> {
    Ok(match s {
        "passed" => CaseStatus::Passed,
        "failed" => CaseStatus::Failed,
        "errored" => CaseStatus::Errored,
        "skipped" => CaseStatus::Skipped,
        _ => return Err(StoreError::Invalid(format!("unknown stored test status {s:?}"))),
    })
}

/// A stored phase read back.
pub fn parse_phase(s: &str) -> Result<Phase, StoreError> {
    s.parse()
        .map_err(|e| StoreError::Invalid(format!("unknown stored run phase {s:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_artifact_limit_counts_what_a_write_replaces() {
        assert!(check_artifact_limit("r", 100, 60, 0, 40).is_ok());
        let err = check_artifact_limit("r", 100, 60, 0, 41).unwrap_err();
        assert!(matches!(err, StoreError::TooLarge(_)));
        assert!(err.to_string().contains("\"r\"") && err.to_string().contains("limit of 100 bytes"));
        // Replacing a 30-byte log with a 70-byte one: 60 - 30 + 70 = 100, still within.
        assert!(check_artifact_limit("r", 100, 60, 30, 70).is_ok());
    }

    #[test]
    fn only_finished_phases_finish_a_run() {
        assert!(check_finished(Phase::Failed).is_ok());
        let err = check_finished(Phase::Running).unwrap_err().to_string();
        assert!(err.starts_with("phase: Running"), "{err}");
    }

    #[test]
    fn statuses_read_back_as_they_were_stored() {
        for s in [
            CaseStatus::Passed,
            CaseStatus::Failed,
            CaseStatus::Errored,
            CaseStatus::Skipped,
        ] {
            assert_eq!(parse_status(s.as_str()).unwrap(), s);
        }
        assert!(parse_status("weird").is_err());
    }
}
