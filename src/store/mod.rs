//! Where runs and schedules live.
//!
//! Standalone mode keeps the same objects the operator keeps in the Kubernetes API —
//! metadata, spec, status — in one SQLite file ([`sqlite::SqliteStore`]). Every write is
//! committed (WAL, `synchronous=FULL`) before the call returns, so whatever the API
//! acknowledged survives a `kill -9`. Every committed write is also announced on a broadcast
//! channel ([`Change`]), which wakes the standalone driver and feeds the UI's live updates.
//!
//! Test results, classifications and artifacts sit behind one interface,
//! [`results::ResultsStore`], kept by the same SQLite file or by PostgreSQL
//! ([`postgres::PgStore`], `--database-url`).

pub mod database_url;
pub mod files;
pub mod postgres;
pub mod results;
pub mod sqlite;

pub use postgres::PgStore;
pub use results::ResultsStore;
pub use sqlite::SqliteStore;

/// What a write did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeOp {
    Created,
    Updated,
    Deleted,
}

/// A committed write, announced to subscribers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// Resource kind (`TestRun`, `NightlySchedule`).
    pub kind: String,
    pub name: String,
    pub op: ChangeOp,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{kind} {name:?} not found")]
    NotFound { kind: String, name: String },
    #[error("{kind} {name:?} already exists")]
    AlreadyExists { kind: String, name: String },
    #[error("{0}")]
    Invalid(String),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("stored object is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the database task failed: {0}")]
    Task(String),
    /// The store cannot write at all right now (a full or read-only disk): nothing the
    /// caller did is wrong, and the same write succeeds once the disk has room again.
    #[error("{0}")]
    Unwritable(String),
    /// PostgreSQL refused or failed (the text never holds the URL's password).
    #[error("PostgreSQL error: {0}")]
    Postgres(String),
    /// A write would pass a configured size limit (the text names the limit and the run).
    #[error("{0}")]
    TooLarge(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        // A connection error may quote the address it was given: mask any user-info.
        StoreError::Postgres(database_url::redact(&e.to_string()))
    }
}

impl StoreError {
    /// Why the file system refuses every write, when that is what this error says (matched
    /// on SQLite's result codes, never on its message text).
    pub fn refused_by_disk(&self) -> Option<&'static str> {
        use rusqlite::ErrorCode;
        match self {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => match e.code {
                ErrorCode::DiskFull => Some("database or disk is full"),
                ErrorCode::ReadOnly => Some("the file system is read-only"),
                ErrorCode::SystemIoFailure => Some("disk I/O error"),
                _ => None,
            },
            _ => None,
        }
    }

    /// A short label for metrics (`tomato_reconcile_errors_total{reason}`).
    pub fn metric_label(&self) -> &'static str {
        match self {
            StoreError::NotFound { .. } => "not_found",
            StoreError::AlreadyExists { .. } => "already_exists",
            StoreError::Invalid(_) => "invalid",
            StoreError::Sqlite(_) => "sqlite",
            StoreError::Json(_) => "json",
            StoreError::Task(_) => "task",
            StoreError::Unwritable(_) => "unwritable",
            StoreError::Postgres(_) => "postgres",
            StoreError::TooLarge(_) => "too_large",
        }
    }

    /// Whether the same write may succeed later without anyone changing the request.
    pub fn is_unwritable(&self) -> bool {
        matches!(self, StoreError::Unwritable(_))
    }
}

/// Filters for listing objects.
#[derive(Clone, Debug, Default)]
pub struct ListFilter {
    /// Only objects whose `spec.service` is this.
    pub service: Option<String>,
    /// Only objects whose `status.phase` is one of these (an empty list means any).
    pub phases: Vec<crate::crd::Phase>,
    /// Only objects carrying this label with this value.
    pub label: Option<(String, String)>,
    /// Newest first and at most this many (oldest first and unlimited when `None`).
    pub newest: Option<usize>,
    /// Only objects older, in newest-first order, than this one: the next page of a list.
    pub before: Option<Cursor>,
}

impl ListFilter {
    /// The runs standalone mode reads for stands held by an outage ([`crate::outage`]), as
    /// two index reads: every run in `Reporting` (few: they are unfinished), and the newest
    /// [`OUTAGE_SCAN`] in `Error`. An outage ends its run `Error`, through `Reporting` while its
    /// report goes out: the stand is held from the moment the outage is recorded. (One filter
    /// of both phases would walk the creation index and read every run's body.)
    pub fn outage_holds() -> [ListFilter; 2] {
        [
            ListFilter {
                phases: vec![crate::crd::Phase::Reporting],
                ..Default::default()
            },
            ListFilter {
                phases: vec![crate::crd::Phase::Error],
                newest: Some(OUTAGE_SCAN),
                ..Default::default()
            },
        ]
    }
}

/// How many runs in `Error` [`ListFilter::outage_holds`] reads: a hold older than that many
/// errored runs is forgotten.
pub const OUTAGE_SCAN: usize = 500;

/// Where a newest-first page ended: the last object's creation time (as
/// [`crate::crd::precise_time`] writes it) and name. A client gets it as an opaque
/// `continue` token ([`Cursor::token`]) and hands it back for the next page, as with the
/// Kubernetes API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub created: String,
    pub name: String,
}

impl Cursor {
    /// The cursor after `obj`.
    pub fn after<K: kube::Resource>(obj: &K) -> Cursor {
        Cursor {
            created: crate::crd::precise_time(crate::crd::created(obj)),
            name: obj.meta().name.clone().unwrap_or_default(),
        }
    }

    /// The opaque token: URL-safe base64 of `created NUL name`.
    pub fn token(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{}\0{}", self.created, self.name))
    }

    /// Reads a token [`Cursor::token`] made; `None` for anything else.
    pub fn parse(token: &str) -> Option<Cursor> {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let (created, name) = text.split_once('\0')?;
        chrono::DateTime::parse_from_rfc3339(created).ok()?;
        if name.is_empty() {
            return None;
        }
        Some(Cursor {
            created: created.to_string(),
            name: name.to_string(),
        })
    }
}

/// A random RFC 4122 version-4 UUID, for `metadata.uid`.
pub fn random_uid() -> String {
    let b: [u8; 16] = rand::random();
    format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-4{:01x}{:02x}-{:01x}{:01x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        b[0],
        b[1],
        b[2],
        b[3],
        b[4],
        b[5],
        b[6] & 0x0f,
        b[7],
        8 | (b[8] & 0x03),
        b[8] >> 4,
        b[9],
        b[10],
        b[11],
        b[12],
        b[13],
        b[14],
        b[15]
    )
}
