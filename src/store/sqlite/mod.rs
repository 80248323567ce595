//! The embedded store: Kubernetes-shaped objects and test results in one SQLite file (the
//! results side, a [`super::ResultsStore`], is in `results.rs`).
//!
//! Objects are kept whole, as JSON (`body`), with the fields that queries filter on
//! (`spec.service`, `status.phase`, creation time) exposed as generated, indexed columns.
//! One connection behind a mutex serializes writes; each call runs on tokio's blocking pool
//! so an `fsync` never stalls the async runtime.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use kube::Resource;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::broadcast;
use tracing::{error, info};

use super::{Change, ChangeOp, ListFilter, StoreError, random_uid};
use crate::crd::TestRun;

mod results;

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    // 1: objects and per-attempt test results.
    r#"
    CREATE TABLE objects (
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        resource_version INTEGER NOT NULL,
        body TEXT NOT NULL,
        service TEXT GENERATED ALWAYS AS (json_extract(body, '$.spec.service')) VIRTUAL,
        phase TEXT GENERATED ALWAYS AS (json_extract(body, '$.status.phase')) VIRTUAL,
        created TEXT GENERATED ALWAYS AS (coalesce(
            json_extract(body, '$.metadata.annotations."tomato.dev/created"'),
            json_extract(body, '$.metadata.creationTimestamp'))) VIRTUAL,
        PRIMARY KEY (kind, name)
    );
    CREATE INDEX objects_phase ON objects (kind, phase);
    CREATE INDEX objects_service ON objects (kind, service, created);
    CREATE TABLE test_results (
        run TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        ordinal INTEGER NOT NULL,
        test_id TEXT NOT NULL,
        status TEXT NOT NULL,
        suites TEXT NOT NULL,
        classname TEXT NOT NULL,
        name TEXT NOT NULL,
        file TEXT,
        time_ms INTEGER,
        message TEXT NOT NULL,
        kind TEXT NOT NULL,
        trace TEXT NOT NULL,
        system_out TEXT NOT NULL,
        system_err TEXT NOT NULL,
        PRIMARY KEY (run, attempt, ordinal)
    );
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    INSERT INTO meta (key, value) VALUES ('revision', '0');
    "#,
    // 2: each failing test's category, as classified when the run's last attempt ended.
    r#"
    CREATE TABLE test_categories (
        run TEXT NOT NULL,
        test_id TEXT NOT NULL,
        category TEXT NOT NULL,
        PRIMARY KEY (run, test_id)
    );
    "#,
    // 3: each failing test's failure signature (crate::results::signature), beside its
    // category; NULL for tests classified before signatures were stored.
    r#"
    ALTER TABLE test_categories ADD COLUMN signature TEXT;
    "#,
    // 4: reads that do not grow with history. Every list the API, the UI and the driver make
    // is answered from an index: newest first over all runs, of one service, in some phases,
    // of one schedule, and the unfinished runs of a service. The generated columns are
    // VIRTUAL, so without these indexes SQLite parsed every stored body to filter and sort.
    r#"
    ALTER TABLE objects ADD COLUMN schedule TEXT GENERATED ALWAYS AS
        (json_extract(body, '$.metadata.labels."tomato.dev/schedule"')) VIRTUAL;
    DROP INDEX objects_phase;
    DROP INDEX objects_service;
    CREATE INDEX objects_created ON objects (kind, created, name);
    CREATE INDEX objects_service_created ON objects (kind, service, created, name);
    CREATE INDEX objects_phase_created ON objects (kind, phase, created, name);
    CREATE INDEX objects_service_phase ON objects (kind, service, phase, created, name);
    CREATE INDEX objects_schedule_created ON objects (kind, schedule, created, name);
    "#,
    // 5: runs as rows and test results indexed for history and failures (results.rs).
    results::MIGRATION_HISTORY,
];

/// Read-only connections beside the writer: readers never wait behind a write's `fsync` or
/// behind each other (WAL lets them read the last committed state while a write goes on).
const READERS: usize = 4;

/// Namespace given to objects in standalone mode (there is only one).
pub const NAMESPACE: &str = "default";

/// The SQLite-backed store. Cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    readers: Arc<Readers>,
    run_cache: Arc<RunCache>,
    changes: broadcast::Sender<Change>,
    instance: String,
    writes: Arc<WriteHealth>,
    results: Arc<results::ResultsSettings>,
}

/// Runs parsed by [`SqliteStore::list_runs_cached`], by name, with the resource version they
/// were parsed at: an entry is used only while its version is the stored one.
type RunCache = Mutex<HashMap<String, (i64, Arc<TestRun>)>>;

/// At most this many parsed runs are kept (a few thousand unfinished runs and the newest pages
/// of finished ones; the cache starts over when full).
const RUN_CACHE_LIMIT: usize = 5_000;

/// The pool of read-only connections; a reader takes the first free one and waits for one
/// only when all are busy.
struct Readers {
    free: Mutex<Vec<Connection>>,
    returned: std::sync::Condvar,
}

impl Readers {
    fn open(path: &Path) -> Result<Readers, StoreError> {
        use rusqlite::OpenFlags;
        let mut free = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let conn = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX
                    | OpenFlags::SQLITE_OPEN_URI,
            )?;
            conn.busy_timeout(std::time::Duration::from_secs(5))?;
            free.push(conn);
        }
        Ok(Readers {
            free: Mutex::new(free),
            returned: std::sync::Condvar::new(),
        })
    }

    /// Runs `f` on a free reader (blocking: call it on the blocking pool). The connection goes
    /// back to the pool even when `f` panics, so a panicking read cannot shrink the pool.
    fn with<R>(&self, f: impl FnOnce(&mut Connection) -> Result<R, StoreError>) -> Result<R, StoreError> {
        struct Lent<'a> {
            readers: &'a Readers,
            conn: Option<Connection>,
        }
        impl Drop for Lent<'_> {
            fn drop(&mut self) {
                if let Some(conn) = self.conn.take() {
                    self.readers
                        .free
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(conn);
                    self.readers.returned.notify_one();
                }
            }
        }
        let conn = {
            let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                match free.pop() {
                    Some(c) => break c,
                    None => free = self.returned.wait(free).unwrap_or_else(|p| p.into_inner()),
                }
            }
        };
        let mut lent = Lent {
            readers: self,
            conn: Some(conn),
        };
        f(lent.conn.as_mut().expect("lent until dropped"))
    }
}

/// Whether the data directory takes writes: set by the first write the disk refuses, cleared
/// by the next one it takes. An episode is logged once when it starts and once when it ends,
/// never per request.
struct WriteHealth {
    dir: PathBuf,
    refused: Mutex<Option<String>>,
}

impl WriteHealth {
    fn refused(&self) -> Option<String> {
        self.refused.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Notes a write's outcome; turns a disk refusal into [`StoreError::Unwritable`].
    fn note<R>(&self, res: Result<R, StoreError>) -> Result<R, StoreError> {
        let mut refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        match res {
            Ok(v) => {
                if let Some(was) = refused.take() {
                    info!(reason = was, "the data directory takes writes again");
                }
                Ok(v)
            }
            Err(e) => match e.refused_by_disk() {
                Some(why) => {
                    let message = if why.contains("full") {
                        format!("the data directory is full ({}: {why})", self.dir.display())
                    } else {
                        format!(
                            "the data directory refuses writes ({}: {why})",
                            self.dir.display()
                        )
                    };
                    if refused.is_none() {
                        error!(reason = message, "the store cannot write; runs wait until it can");
                    }
                    *refused = Some(message.clone());
                    Err(StoreError::Unwritable(message))
                }
                None => Err(e),
            },
        }
    }
}

impl SqliteStore {
    /// Opens (creating and migrating as needed) `<dir>/tomato.db`.
    pub fn open(dir: &Path) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Invalid(format!("cannot create data directory {}: {e}", dir.display()))
        })?;
        let mut conn = Connection::open(dir.join("tomato.db"))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // WAL + FULL: a committed transaction is on disk before the call returns.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        let version: usize = conn.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))? as usize;
        if version > MIGRATIONS.len() {
            return Err(StoreError::Invalid(format!(
                "the database has schema version {version}, newer than this Tomato knows ({}); upgrade Tomato",
                MIGRATIONS.len()
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        let instance: String = {
            let existing: Option<String> = conn
                .query_row("SELECT value FROM meta WHERE key = 'instance'", [], |r| r.get(0))
                .optional()?;
            match existing {
                Some(v) => v,
                None => {
                    let v = random_uid();
                    conn.execute("INSERT INTO meta (key, value) VALUES ('instance', ?1)", [&v])?;
                    v
                }
            }
        };
        let (changes, _) = broadcast::channel(1024);
        let readers = Readers::open(&dir.join("tomato.db"))?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            readers: Arc::new(readers),
            run_cache: Arc::new(Mutex::new(HashMap::new())),
            changes,
            instance,
            writes: Arc::new(WriteHealth {
                dir: dir.to_path_buf(),
                refused: Mutex::new(None),
            }),
            results: Arc::default(),
        })
    }

    /// The data directory: the database and, beside it, each launch's files ([`super::files`]).
    pub fn data_dir(&self) -> &Path {
        &self.writes.dir
    }

    /// A stable id of this data directory (marks the processes it starts).
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Subscribes to committed writes.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    fn announce(&self, kind: &str, name: &str, op: ChangeOp) {
        // No subscriber is fine: nothing listens during start-up.
        let _ = self.changes.send(Change {
            kind: kind.to_string(),
            name: name.to_string(),
            op,
        });
    }

    /// Why the store cannot write right now, if it cannot (as of the last write tried).
    pub fn write_refused(&self) -> Option<String> {
        self.writes.refused()
    }

    /// Tries one small write (a heartbeat in `meta`) and answers whether the store takes
    /// writes: how readiness finds out that space came back when nothing else writes.
    pub async fn probe_write(&self) -> Result<(), StoreError> {
        self.with_write(|conn| {
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('probe', ?1)",
                [chrono::Utc::now().to_rfc3339()],
            )?;
            Ok(())
        })
        .await
    }

    /// Runs a write with the connection on the blocking pool, noting whether the disk took it.
    async fn with_write<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let started = std::time::Instant::now();
        let res = self.run_blocking(f).await;
        crate::metrics::global().store_op("write", started.elapsed());
        self.writes.note(res)
    }

    /// Runs a read with one of the read-only connections on the blocking pool.
    async fn with_conn<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let started = std::time::Instant::now();
        let readers = self.readers.clone();
        let res = tokio::task::spawn_blocking(move || readers.with(f))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))
            .and_then(|r| r);
        crate::metrics::global().store_op("read", started.elapsed());
        res
    }

    /// Runs `f` with the connection on the blocking pool.
    async fn run_blocking<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// Stores a new object: fills `uid`, `namespace`, `creationTimestamp`, `generation` and
    /// `resourceVersion`. The name must be set and free.
    pub async fn create<K>(&self, mut obj: K) -> Result<K, StoreError>
    where
        K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Send + 'static,
    {
        let kind = K::kind(&()).to_string();
        let name = obj
            .meta()
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| StoreError::Invalid(format!("a {kind} needs metadata.name")))?;
        let k2 = kind.clone();
        let n2 = name.clone();
        let obj = self
            .with_write(move |conn| {
                let tx = conn.transaction()?;
                let exists: bool = tx
                    .query_row(
                        "SELECT 1 FROM objects WHERE kind = ?1 AND name = ?2",
                        params![k2, n2],
                        |_| Ok(()),
                    )
                    .optional()?
                    .is_some();
                if exists {
                    return Err(StoreError::AlreadyExists { kind: k2, name: n2 });
                }
                let rv = next_revision(&tx)?;
                let meta = obj.meta_mut();
                meta.uid = Some(random_uid());
                meta.namespace.get_or_insert_with(|| NAMESPACE.to_string());
                let now = chrono::Utc::now();
                meta.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    k8s_openapi::jiff::Timestamp::from_second(now.timestamp())
                        .map_err(|e| StoreError::Invalid(e.to_string()))?,
                ));
                // creationTimestamp has whole seconds; queue order needs the exact instant.
                meta.annotations.get_or_insert_default().insert(
                    crate::crd::ANNOTATION_CREATED.to_string(),
                    crate::crd::precise_time(now),
                );
                meta.generation = Some(1);
                meta.resource_version = Some(rv.to_string());
                tx.execute(
                    "INSERT INTO objects (kind, name, resource_version, body) VALUES (?1, ?2, ?3, ?4)",
                    params![k2, n2, rv, serde_json::to_string(&obj)?],
                )?;
                tx.commit()?;
                Ok(obj)
            })
            .await?;
        self.announce(&kind, &name, ChangeOp::Created);
        Ok(obj)
    }

    pub async fn get<K>(&self, name: &str) -> Result<Option<K>, StoreError>
    where
        K: Resource<DynamicType = ()> + DeserializeOwned + Send + 'static,
    {
        let kind = K::kind(&()).to_string();
        let name = name.to_string();
        self.with_conn(move |conn| {
            let body: Option<String> = conn
                .query_row(
                    "SELECT body FROM objects WHERE kind = ?1 AND name = ?2",
                    params![kind, name],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(body.map(|b| serde_json::from_str(&b)).transpose()?)
        })
        .await
    }

    pub async fn list<K>(&self, filter: &ListFilter) -> Result<Vec<K>, StoreError>
    where
        K: Resource<DynamicType = ()> + DeserializeOwned + Send + 'static,
    {
        let kind = K::kind(&()).to_string();
        let filter = filter.clone();
        self.with_conn(move |conn| {
            let (sql, args) = list_sql(&kind, &filter);
            let mut stmt = conn.prepare(&sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), |r| {
                Ok((
                    r.get::<_, Option<String>>(0)?.unwrap_or_default(),
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?;
            let mut keyed = Vec::new();
            for row in rows {
                keyed.push(row?);
            }
            sort_unlimited(&filter, &mut keyed);
            let mut out = Vec::with_capacity(keyed.len());
            for (_, _, body) in keyed {
                out.push(serde_json::from_str(&body)?);
            }
            Ok(out)
        })
        .await
    }

    /// The runs `filter` selects, as [`SqliteStore::list`] gives them, but parsing only those
    /// that changed since any list last parsed them: the store keeps the runs it parsed, by
    /// name with their resource versions ([`RunCache`]). A driver pass over a long queue, or a
    /// read of a service's queue, then costs an index read plus what changed, not a parse of
    /// every queued run.
    /// The runs that may hold a stand ([`ListFilter::outage_holds`]), each read from an index.
    pub async fn outage_runs(&self) -> Result<Vec<Arc<TestRun>>, StoreError> {
        let [reporting, errored] = ListFilter::outage_holds();
        let mut runs = self.list_runs_cached(&reporting).await?;
        runs.extend(self.list_runs_cached(&errored).await?);
        Ok(runs)
    }

    pub async fn list_runs_cached(&self, filter: &ListFilter) -> Result<Vec<Arc<TestRun>>, StoreError> {
        let filter = filter.clone();
        let cache = self.run_cache.clone();
        self.with_conn(move |conn| {
            // One read of the list: each row's version, and its body parsed only when the cache
            // has no run at that version (a hit copies nothing but the name).
            let (sql, args) = list_sql_of("resource_version, body", "TestRun", &filter);
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(rusqlite::params_from_iter(args.iter()))?;
            let mut keyed = Vec::new();
            let mut parsed = Vec::new();
            {
                let cached = cache.lock().unwrap_or_else(|p| p.into_inner());
                while let Some(row) = rows.next()? {
                    let created = row.get::<_, Option<String>>(0)?.unwrap_or_default();
                    let name = row.get::<_, String>(1)?;
                    let rv = row.get::<_, i64>(2)?;
                    let run = match cached.get(&name).filter(|(v, _)| *v == rv) {
                        Some((_, run)) => run.clone(),
                        None => {
                            let body = row.get_ref(3)?.as_str().map_err(rusqlite::Error::from)?;
                            let run: Arc<TestRun> = Arc::new(serde_json::from_str(body)?);
                            parsed.push((name.clone(), rv, run.clone()));
                            run
                        }
                    };
                    keyed.push((created, name, run));
                }
            }
            sort_unlimited(&filter, &mut keyed);
            if !parsed.is_empty() {
                let mut cached = cache.lock().unwrap_or_else(|p| p.into_inner());
                if cached.len() + parsed.len() > RUN_CACHE_LIMIT {
                    cached.clear();
                }
                for (name, rv, run) in parsed {
                    cached.insert(name, (rv, run));
                }
            }
            Ok(keyed.into_iter().map(|(_, _, run)| run).collect())
        })
        .await
    }

    /// Read-modify-write of one object in a transaction. `f` returns whether it changed
    /// anything; an unchanged object is not written (and no change is announced). A change
    /// of `spec` bumps `metadata.generation`, as the API server does.
    pub async fn update<K, R>(
        &self,
        name: &str,
        f: impl FnOnce(&mut K) -> Result<(bool, R), StoreError> + Send + 'static,
    ) -> Result<(K, R), StoreError>
    where
        K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Send + 'static,
        R: Send + 'static,
    {
        let kind = K::kind(&()).to_string();
        let (k2, n2) = (kind.clone(), name.to_string());
        let (obj, r, changed) = self
            .with_write(move |conn| {
                let tx = conn.transaction()?;
                let out = update_in(&tx, &k2, &n2, f)?;
                tx.commit()?;
                Ok(out)
            })
            .await?;
        if changed {
            self.announce(&kind, name, ChangeOp::Updated);
        }
        Ok((obj, r))
    }

    /// [`update`](Self::update) of many objects in one transaction (one `fsync`), for batch
    /// changes such as renumbering a long queue. Missing objects are skipped. Returns how many
    /// changed.
    pub async fn update_many<K, V>(
        &self,
        items: Vec<(String, V)>,
        f: impl Fn(&mut K, V) -> bool + Send + 'static,
    ) -> Result<usize, StoreError>
    where
        K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Send + 'static,
        V: Send + 'static,
    {
        let kind = K::kind(&()).to_string();
        let k2 = kind.clone();
        let changed: Vec<String> = self
            .with_write(move |conn| {
                let tx = conn.transaction()?;
                let mut changed = Vec::new();
                for (name, v) in items {
                    match update_in::<K, ()>(&tx, &k2, &name, |obj| Ok((f(obj, v), ()))) {
                        Ok((_, _, true)) => changed.push(name),
                        Ok(_) | Err(StoreError::NotFound { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
                tx.commit()?;
                Ok(changed)
            })
            .await?;
        for name in &changed {
            self.announce(&kind, name, ChangeOp::Updated);
        }
        Ok(changed.len())
    }

    /// Deletes an object (and, for a run, its test results). Returns whether it existed.
    pub async fn delete<K>(&self, name: &str) -> Result<bool, StoreError>
    where
        K: Resource<DynamicType = ()> + Send + 'static,
    {
        let kind = K::kind(&()).to_string();
        let (k2, n2) = (kind.clone(), name.to_string());
        let existed = self
            .with_write(move |conn| {
                let tx = conn.transaction()?;
                let n = tx.execute(
                    "DELETE FROM objects WHERE kind = ?1 AND name = ?2",
                    params![k2, n2],
                )?;
                if k2 == "TestRun" {
                    results::delete_rows(&tx, &n2)?;
                }
                if n > 0 {
                    next_revision(&tx)?;
                }
                tx.commit()?;
                Ok(n > 0)
            })
            .await?;
        if existed {
            self.announce(&kind, name, ChangeOp::Deleted);
        }
        Ok(existed)
    }

    /// How many objects of `kind` there are per `(spec.service, status.phase)`.
    pub async fn count_by_service_and_phase(
        &self,
        kind: &str,
    ) -> Result<Vec<(String, String, u64)>, StoreError> {
        let kind = kind.to_string();
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT coalesce(service, ''), coalesce(phase, ''), count(*) FROM objects WHERE kind = ?1 GROUP BY 1, 2",
            )?;
            let rows = stmt.query_map(params![kind], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64)))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}

/// Read-modify-write of one object inside a transaction: `(object, result, changed)`.
fn update_in<K, R>(
    tx: &rusqlite::Transaction<'_>,
    kind: &str,
    name: &str,
    f: impl FnOnce(&mut K) -> Result<(bool, R), StoreError>,
) -> Result<(K, R, bool), StoreError>
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned,
{
    let body: String = tx
        .query_row(
            "SELECT body FROM objects WHERE kind = ?1 AND name = ?2",
            params![kind, name],
            |r| r.get(0),
        )
        .optional()?
        .ok_or_else(|| StoreError::NotFound {
            kind: kind.to_string(),
            name: name.to_string(),
        })?;
    let before: serde_json::Value = serde_json::from_str(&body)?;
    let mut obj: K = serde_json::from_value(before.clone())?;
    let (changed, r) = f(&mut obj)?;
    if !changed {
        return Ok((obj, r, false));
    }
    let rv = next_revision(tx)?;
    let after = serde_json::to_value(&obj)?;
    let meta = obj.meta_mut();
    if before.get("spec") != after.get("spec") {
        meta.generation = Some(meta.generation.unwrap_or(1) + 1);
    }
    meta.resource_version = Some(rv.to_string());
    tx.execute(
        "UPDATE objects SET body = ?3, resource_version = ?4 WHERE kind = ?1 AND name = ?2",
        params![kind, name, serde_json::to_string(&obj)?, rv],
    )?;
    results::follow_phase(tx, kind, name, &after)?;
    Ok((obj, r, true))
}

fn next_revision(tx: &rusqlite::Transaction<'_>) -> Result<i64, StoreError> {
    Ok(tx.query_row(
        "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'revision' RETURNING CAST(value AS INTEGER)",
        [],
        |r| r.get(0),
    )?)
}

/// Puts an unlimited list's rows (`created, name, ...`) oldest first: its query has no
/// `ORDER BY` (see [`list_sql_of`]); a page comes ordered from its index.
fn sort_unlimited<T>(filter: &ListFilter, keyed: &mut [(String, String, T)]) {
    if filter.newest.is_none() {
        keyed.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    }
}

/// The query [`SqliteStore::list`] makes for `filter`, and its arguments. Every filter it
/// builds is answered from one of migration 4's indexes (a unit test checks the plans).
fn list_sql(kind: &str, filter: &ListFilter) -> (String, Vec<String>) {
    list_sql_of("body", kind, filter)
}

/// [`list_sql`] selecting `created, name` and `column`.
fn list_sql_of(column: &str, kind: &str, filter: &ListFilter) -> (String, Vec<String>) {
    let mut sql = format!("SELECT created, name, {column} FROM objects WHERE kind = ?");
    let mut args: Vec<String> = vec![kind.to_string()];
    if let Some(s) = &filter.service {
        sql.push_str(" AND service = ?");
        args.push(s.clone());
    }
    if !filter.phases.is_empty() {
        sql.push_str(" AND phase IN (");
        sql.push_str(&vec!["?"; filter.phases.len()].join(", "));
        sql.push(')');
        args.extend(filter.phases.iter().map(|p| p.as_str().to_string()));
    }
    match &filter.label {
        // The schedule label has its own indexed column.
        Some((k, v)) if k == crate::crd::LABEL_SCHEDULE => {
            sql.push_str(" AND schedule = ?");
            args.push(v.clone());
        }
        Some((k, v)) => {
            sql.push_str(" AND json_extract(body, '$.metadata.labels.' || json_quote(?)) = ?");
            args.push(k.clone());
            args.push(v.clone());
        }
        None => {}
    }
    if let Some(c) = &filter.before {
        sql.push_str(" AND (created, name) < (?, ?)");
        args.push(c.created.clone());
        args.push(c.name.clone());
    }
    // A page, newest first, walks an index backwards and stops after `n` rows; a whole
    // list (the unfinished runs, a schedule's runs) is found by its index and sorted
    // here, so SQLite is never tempted to walk every run in creation order instead.
    if let Some(n) = filter.newest {
        sql.push_str(&format!(" ORDER BY created DESC, name DESC LIMIT {n}"));
    }
    (sql, args)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::{ByTest, Classified};
    use crate::crd::{Phase, RunTemplate, TestRun};
    use crate::results::Signature;

    fn run(name: &str, service: &str) -> TestRun {
        TestRun::test(name, RunTemplate::test(service))
    }

    #[tokio::test]
    async fn objects_survive_reopening_and_keep_their_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let mut changes = store.subscribe();
        let created = store.create(run("demo-1", "demo")).await.unwrap();
        assert_eq!(changes.recv().await.unwrap().op, ChangeOp::Created);
        assert!(created.metadata.uid.is_some() && created.metadata.creation_timestamp.is_some());
        assert!(matches!(
            store.create(run("demo-1", "demo")).await,
            Err(StoreError::AlreadyExists { .. })
        ));
        let instance = store.instance().to_string();
        drop(store);

        let store = SqliteStore::open(dir.path()).unwrap();
        assert_eq!(store.instance(), instance, "the instance id is kept");
        let got: TestRun = store.get("demo-1").await.unwrap().unwrap();
        assert_eq!(got, created);
    }

    #[tokio::test]
    async fn categories_classified_before_signatures_still_read_and_new_ones_keep_theirs() {
        let dir = tempfile::tempdir().unwrap();
        {
            // A data file as it was before migration 3: categories without signatures.
            let conn = Connection::open(dir.path().join("tomato.db")).unwrap();
            for sql in &MIGRATIONS[..2] {
                conn.execute_batch(sql).unwrap();
            }
            conn.pragma_update(None, "user_version", 2).unwrap();
            conn.execute(
                "INSERT INTO test_categories (run, test_id, category) VALUES ('old', 't', 'Timeouts')",
                [],
            )
            .unwrap();
        }
        let store = SqliteStore::open(dir.path()).unwrap();
        store.create(run("new", "demo")).await.unwrap();
        assert_eq!(
            store.categories("old").await.unwrap(),
            ByTest::from([("t".to_string(), Classified::category("Timeouts"))])
        );
        let new = ByTest::from([(
            "t".to_string(),
            Classified {
                category: "Product defects".into(),
                signature: Some(Signature::of("expected: <200> but was: <500>", "")),
            },
        )]);
        store.put_categories("new", new.clone()).await.unwrap();
        assert_eq!(store.categories("new").await.unwrap(), new);
    }

    #[tokio::test]
    async fn list_filters_by_service_phase_and_label() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let mut labelled = run("b", "demo");
        labelled.metadata.labels = Some([("tomato.dev/schedule".to_string(), "n1".to_string())].into());
        store.create(run("a", "demo")).await.unwrap();
        store.create(labelled).await.unwrap();
        store.create(run("c", "other")).await.unwrap();
        store
            .update::<TestRun, _>("a", |r| {
                r.status.get_or_insert_default().phase = Phase::Running;
                Ok((true, ()))
            })
            .await
            .unwrap();
        let names = |v: Vec<TestRun>| {
            v.into_iter()
                .map(|r| r.metadata.name.unwrap())
                .collect::<Vec<_>>()
        };
        let f = ListFilter {
            service: Some("demo".into()),
            ..Default::default()
        };
        assert_eq!(names(store.list(&f).await.unwrap()), vec!["a", "b"]);
        let f = ListFilter {
            phases: vec![Phase::Running],
            ..Default::default()
        };
        assert_eq!(names(store.list(&f).await.unwrap()), vec!["a"]);
        let f = ListFilter {
            label: Some(("tomato.dev/schedule".into(), "n1".into())),
            ..Default::default()
        };
        assert_eq!(names(store.list(&f).await.unwrap()), vec!["b"]);
        let f = ListFilter {
            newest: Some(2),
            ..Default::default()
        };
        assert_eq!(names(store.list(&f).await.unwrap()).len(), 2);
    }

    #[tokio::test]
    async fn pages_newest_first_cover_every_run_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        for i in 0..23 {
            store.create(run(&format!("r{i:02}"), "demo")).await.unwrap();
        }
        let all: Vec<TestRun> = store.list(&ListFilter::default()).await.unwrap();
        let mut expected: Vec<String> = all.iter().map(|r| r.metadata.name.clone().unwrap()).collect();
        expected.reverse();
        assert_eq!(expected.len(), 23);
        let mut seen = Vec::new();
        let mut before = None;
        loop {
            let page: Vec<TestRun> = store
                .list(&ListFilter {
                    newest: Some(5),
                    before: before.clone(),
                    ..Default::default()
                })
                .await
                .unwrap();
            if page.is_empty() {
                break;
            }
            before = page.last().map(super::super::Cursor::after);
            seen.extend(page.into_iter().map(|r| r.metadata.name.unwrap()));
        }
        assert_eq!(seen, expected);
    }

    /// The plan SQLite picks for each kind of list: none may read the whole table or sort it,
    /// so a list costs the same at 50,000 runs as at 500. The store is empty: without `ANALYZE`
    /// (Tomato never runs it) SQLite's plans do not depend on the data.
    #[tokio::test]
    async fn every_list_is_answered_from_an_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let unfinished = vec![Phase::Queued, Phase::Running, Phase::Retrying, Phase::Reporting];
        let finished = vec![Phase::Succeeded, Phase::Failed, Phase::Error, Phase::Cancelled];
        let cursor = Some(super::super::Cursor {
            created: "2026-01-01T00:00:00.000000000Z".into(),
            name: "r".into(),
        });
        let filters = [
            ListFilter {
                newest: Some(50),
                ..Default::default()
            },
            ListFilter {
                newest: Some(50),
                before: cursor.clone(),
                ..Default::default()
            },
            ListFilter {
                service: Some("demo".into()),
                newest: Some(30),
                ..Default::default()
            },
            ListFilter {
                phases: finished.clone(),
                newest: Some(200),
                ..Default::default()
            },
            ListFilter {
                service: Some("demo".into()),
                phases: finished,
                newest: Some(50),
                before: cursor,
                ..Default::default()
            },
            ListFilter {
                service: Some("demo".into()),
                phases: vec![Phase::Failed],
                newest: Some(51),
                ..Default::default()
            },
            ListFilter {
                phases: vec![Phase::Failed],
                newest: Some(51),
                ..Default::default()
            },
            ListFilter {
                phases: unfinished.clone(),
                ..Default::default()
            },
            ListFilter {
                service: Some("demo".into()),
                phases: unfinished,
                ..Default::default()
            },
            ListFilter {
                label: Some((crate::crd::LABEL_SCHEDULE.into(), "nightly".into())),
                ..Default::default()
            },
        ];
        // The reads that find stands held by an outage, on every driver pass.
        let filters: Vec<ListFilter> = filters.into_iter().chain(ListFilter::outage_holds()).collect();
        let plans = store
            .with_conn(move |conn| {
                let mut plans = Vec::new();
                for f in &filters {
                    let (sql, args) = list_sql("TestRun", f);
                    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                    let rows =
                        stmt.query_map(rusqlite::params_from_iter(args.iter()), |r| r.get::<_, String>(3))?;
                    let plan = rows.collect::<Result<Vec<_>, _>>()?.join(" | ");
                    plans.push((format!("{f:?}"), plan));
                }
                Ok(plans)
            })
            .await
            .unwrap();
        for (filter, plan) in plans {
            assert!(
                plan.contains("USING INDEX") && !plan.contains("SCAN") && !plan.contains("TEMP B-TREE"),
                "{filter}: {plan}"
            );
        }
    }

    #[tokio::test]
    async fn update_bumps_generation_only_for_spec_changes() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        store.create(run("a", "demo")).await.unwrap();
        let (r, _) = store
            .update::<TestRun, _>("a", |r| {
                r.status.get_or_insert_default().phase = Phase::Running;
                Ok((true, ()))
            })
            .await
            .unwrap();
        assert_eq!(r.metadata.generation, Some(1));
        let (r, _) = store
            .update::<TestRun, _>("a", |r| {
                r.spec.template.priority = crate::crd::Priority::MIN;
                Ok((true, ()))
            })
            .await
            .unwrap();
        assert_eq!(r.metadata.generation, Some(2));
        assert!(matches!(
            store.update::<TestRun, ()>("nope", |_| Ok((true, ()))).await,
            Err(StoreError::NotFound { .. })
        ));
    }
}
