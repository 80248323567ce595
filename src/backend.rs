//! What the HTTP side sees of a mode: reading runs and their results, and the few writes an
//! API client can make (create a run, cancel it, change its priority).
//!
//! Standalone mode implements it over the SQLite store; operator mode over the Kubernetes API
//! (reads from a reflector cache). Handlers never see the drivers' internals.

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::crd::{
    Mute, NightlySchedule, NightlyScheduleSpec, Phase, Priority, Regression, RegressionSpec, TestRun,
};
use crate::results::AttemptResult;
use crate::results::upload::AttemptResults;
use crate::store::{Change, ListFilter, SqliteStore, StoreError};

#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// `standalone` or `operator`.
    fn mode(&self) -> &'static str;
    /// Stores a new run (name set by the caller); durable when this returns.
    async fn create_run(&self, run: TestRun) -> Result<TestRun, StoreError>;
    async fn get_run(&self, name: &str) -> Result<Option<TestRun>, StoreError>;
    async fn list_runs(&self, filter: &ListFilter) -> Result<Vec<TestRun>, StoreError>;
    /// Asks a run to stop (`spec.cancel = true`).
    async fn cancel_run(&self, name: &str) -> Result<TestRun, StoreError>;
    /// Changes a run's priority (`spec.priority`).
    async fn set_priority(&self, name: &str, priority: Priority) -> Result<TestRun, StoreError>;
    /// Every stored per-attempt test result of a run.
    async fn results(&self, name: &str) -> Result<Vec<AttemptResult>, StoreError>;
    /// A run's stored classification (test id → failure category and signature), empty when
    /// none is stored; read it through [`crate::classify::recorded`].
    async fn categories(&self, name: &str) -> Result<crate::classify::ByTest, StoreError>;
    /// The results store that keeps this mode's history (standalone: the SQLite file), read
    /// by [`crate::history`]; `None` where results are not in one yet (operator mode keeps
    /// them in ConfigMaps until issue 14 moves them to the database).
    fn history(&self) -> Option<&dyn crate::store::ResultsStore> {
        None
    }
    /// Run counts per `(service, phase)`, for metrics.
    async fn run_counts(&self) -> Result<Vec<(String, Phase, u64)>, StoreError>;
    /// Committed changes, for live views.
    fn subscribe(&self) -> broadcast::Receiver<Change>;
    /// Whether the mode is ready to serve (store open, driver running).
    async fn ready(&self) -> Result<(), String>;

    /// Stores a new schedule (name set by the caller).
    async fn create_schedule(&self, schedule: NightlySchedule) -> Result<NightlySchedule, StoreError>;
    async fn get_schedule(&self, name: &str) -> Result<Option<NightlySchedule>, StoreError>;
    /// Schedules, optionally of one service, by name.
    async fn list_schedules(&self, service: Option<&str>) -> Result<Vec<NightlySchedule>, StoreError>;
    /// Replaces a schedule's spec (its status and history stay).
    async fn replace_schedule(
        &self,
        name: &str,
        spec: NightlyScheduleSpec,
    ) -> Result<NightlySchedule, StoreError>;
    /// Deletes a schedule: it starts nothing more and its unfinished runs are cancelled.
    async fn delete_schedule(&self, name: &str) -> Result<bool, StoreError>;

    /// Stores a new regression (name set by the caller).
    async fn create_regression(&self, regression: Regression) -> Result<Regression, StoreError>;
    async fn get_regression(&self, name: &str) -> Result<Option<Regression>, StoreError>;
    /// Regressions, optionally of one service, newest first.
    async fn list_regressions(&self, service: Option<&str>) -> Result<Vec<Regression>, StoreError>;
    /// Replaces a regression's spec (its status stays); the caller has checked the change.
    async fn replace_regression(&self, name: &str, spec: RegressionSpec) -> Result<Regression, StoreError>;
    /// Asks for a regression's deletion: its test run in test management is stopped, then it
    /// goes (as a Kubernetes object with a finalizer). False when there is none.
    async fn delete_regression(&self, name: &str) -> Result<bool, StoreError>;

    /// Stores a new mute (name set by the caller, spec checked).
    async fn create_mute(&self, mute: Mute) -> Result<Mute, StoreError>;
    async fn get_mute(&self, name: &str) -> Result<Option<Mute>, StoreError>;
    /// Mutes, optionally of one service, by name.
    async fn list_mutes(&self, service: Option<&str>) -> Result<Vec<Mute>, StoreError>;
    /// Deletes a mute (unmutes). False when there is none.
    async fn delete_mute(&self, name: &str) -> Result<bool, StoreError>;

    /// The stands held by an outage now ([`crate::outage::holds`]).
    async fn stand_holds(&self) -> Result<Vec<crate::outage::Hold>, StoreError>;
    /// Resolves every record holding `stand` (a [`crate::queue::stand_key`]) as resumed by
    /// `by` (`probe`, or who resumed it); how many were resolved.
    async fn resume_stand(&self, stand: &str, by: &str) -> Result<usize, StoreError>;

    /// An attempt's log or JUnit XML, wherever the mode keeps them (standalone: files in the
    /// data directory; operator: in the Kubernetes API). `seq` is the launch's position in
    /// `status.attempts`, from 1. `Ok(None)` when that attempt has none (yet).
    async fn attempt_artifact(
        &self,
        run: &str,
        seq: usize,
        artifact: Artifact,
    ) -> Result<Option<Vec<u8>>, StoreError>;

    /// The Allure record (steps, parameters, attachments by test id) of a run's `seq`-th
    /// launch, wherever the mode keeps it (standalone: beside the attempt's files; operator: in
    /// the results ConfigMaps). `Ok(None)` when that launch wrote none.
    async fn allure_extras(
        &self,
        run: &str,
        seq: usize,
    ) -> Result<Option<crate::results::allure::AttemptExtras>, StoreError>;

    /// An attachment `source` the record of a run's `seq`-th launch keeps, with its entry
    /// (see [`Backend::allure_extras`]); `Ok(None)` when it keeps none by that name.
    async fn attachment(
        &self,
        run: &str,
        seq: usize,
        source: &str,
    ) -> Result<Option<(Vec<u8>, crate::results::allure::Attachment)>, StoreError>;

    /// Receives the results `tomato exec` uploads for a run's `seq`-th launch, authenticated
    /// by the run's token. Only operator mode launches Jobs that upload. `namespace` is the
    /// run's (default: the backend's own). `shard` is the completion index of a sharded
    /// attempt's Job that sent them.
    async fn receive_results(
        &self,
        _namespace: Option<&str>,
        _run: &str,
        _seq: usize,
        _shard: Option<u32>,
        _token: &str,
        _results: AttemptResults,
    ) -> Result<(), UploadError> {
        Err(UploadError::NotSupported)
    }

    /// What index `shard` (none: the whole launch) of a run's `seq`-th launch runs, for
    /// `tomato exec --fetch`, authenticated by the run's token as an upload is: a launch too
    /// large for its Job object is kept in the results database. Operator mode only.
    async fn launch_of(
        &self,
        _namespace: Option<&str>,
        _run: &str,
        _seq: usize,
        _shard: Option<u32>,
        _token: &str,
    ) -> Result<crate::launch::job::ShardLaunch, UploadError> {
        Err(UploadError::NotSupported)
    }
}

/// What an attempt left behind, as the API serves it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Artifact {
    /// stdout and stderr interleaved; with `tail`, only its last `tail` bytes from the first
    /// whole line in them ([`crate::store::files::log_tail`]).
    Log { tail: Option<u64> },
    /// The JUnit XML the runner wrote.
    Junit,
}

/// Why an upload of results was refused.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("this server launches no Jobs and takes no uploads (standalone mode)")]
    NotSupported,
    #[error("the upload token is not valid for this run")]
    Unauthorized,
    #[error("{0}")]
    NotFound(String),
    /// The attempt is not waiting for results (already recorded, or not running).
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Store(String),
}

#[async_trait]
impl Backend for SqliteStore {
    fn mode(&self) -> &'static str {
        "standalone"
    }

    fn history(&self) -> Option<&dyn crate::store::ResultsStore> {
        Some(self)
    }

    async fn create_run(&self, run: TestRun) -> Result<TestRun, StoreError> {
        self.create(run).await
    }

    async fn get_run(&self, name: &str) -> Result<Option<TestRun>, StoreError> {
        self.get(name).await
    }

    async fn list_runs(&self, filter: &ListFilter) -> Result<Vec<TestRun>, StoreError> {
        let runs = self.list_runs_cached(filter).await?;
        Ok(runs.iter().map(|r| TestRun::clone(r)).collect())
    }

    async fn cancel_run(&self, name: &str) -> Result<TestRun, StoreError> {
        let (run, _) = self
            .update::<TestRun, _>(name, |r| {
                let changed = !r.spec.cancel && !r.status.as_ref().is_some_and(|s| s.phase.is_terminal());
                r.spec.cancel |= changed;
                Ok((changed, ()))
            })
            .await?;
        Ok(run)
    }

    async fn set_priority(&self, name: &str, priority: Priority) -> Result<TestRun, StoreError> {
        let (run, _) = self
            .update::<TestRun, _>(name, move |r| {
                let changed = r.spec.template.priority != priority;
                r.spec.template.priority = priority;
                Ok((changed, ()))
            })
            .await?;
        Ok(run)
    }

    async fn results(&self, name: &str) -> Result<Vec<AttemptResult>, StoreError> {
        SqliteStore::results(self, name).await
    }

    async fn attempt_artifact(
        &self,
        run: &str,
        seq: usize,
        artifact: Artifact,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let dir = crate::store::files::attempt_dir(self.data_dir(), run, seq);
        let read = tokio::task::spawn_blocking(move || match artifact {
            Artifact::Log { tail } => crate::store::files::read_log_tail(&dir, tail).map(Some),
            Artifact::Junit => match std::fs::read(dir.join(crate::store::files::JUNIT_FILE)) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                other => other.map(Some),
            },
        });
        let io = |e: std::io::Error| StoreError::Task(format!("cannot read attempt {seq} of {run}: {e}"));
        read.await
            .map_err(|e| StoreError::Task(e.to_string()))?
            .map_err(io)
    }

    async fn allure_extras(
        &self,
        run: &str,
        seq: usize,
    ) -> Result<Option<crate::results::allure::AttemptExtras>, StoreError> {
        let dir = crate::store::files::attempt_dir(self.data_dir(), run, seq);
        tokio::task::spawn_blocking(move || crate::results::attachments::load(&dir))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))
    }

    async fn attachment(
        &self,
        run: &str,
        seq: usize,
        source: &str,
    ) -> Result<Option<(Vec<u8>, crate::results::allure::Attachment)>, StoreError> {
        let dir = crate::store::files::attempt_dir(self.data_dir(), run, seq);
        let source = source.to_string();
        let found = tokio::task::spawn_blocking(move || crate::results::attachments::file_of(&dir, &source))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?;
        let Some((path, kept)) = found else {
            return Ok(None);
        };
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Some((bytes, kept))),
            // Refused or removed since the record was written: not kept.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::Task(format!("cannot read {}: {e}", path.display()))),
        }
    }

    async fn categories(&self, name: &str) -> Result<crate::classify::ByTest, StoreError> {
        SqliteStore::categories(self, name).await
    }

    async fn run_counts(&self) -> Result<Vec<(String, Phase, u64)>, StoreError> {
        // The store keeps the phase as its name; an unknown one counts as the default.
        let counts = self.count_by_service_and_phase("TestRun").await?;
        Ok(counts
            .into_iter()
            .map(|(service, phase, n)| (service, phase.parse().unwrap_or_default(), n))
            .collect())
    }

    fn subscribe(&self) -> broadcast::Receiver<Change> {
        SqliteStore::subscribe(self)
    }

    async fn ready(&self) -> Result<(), String> {
        // Not ready while the disk refuses writes: runs cannot advance. Probing with a small
        // write finds out that space came back even when nothing else is writing.
        if self.write_refused().is_some() {
            self.probe_write().await.map_err(|e| e.to_string())?;
        }
        self.list::<TestRun>(&ListFilter {
            newest: Some(1),
            ..Default::default()
        })
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
    }

    async fn create_schedule(&self, schedule: NightlySchedule) -> Result<NightlySchedule, StoreError> {
        self.create(schedule).await
    }

    async fn get_schedule(&self, name: &str) -> Result<Option<NightlySchedule>, StoreError> {
        self.get(name).await
    }

    async fn list_schedules(&self, service: Option<&str>) -> Result<Vec<NightlySchedule>, StoreError> {
        by_name(self, service).await
    }

    async fn replace_schedule(
        &self,
        name: &str,
        spec: NightlyScheduleSpec,
    ) -> Result<NightlySchedule, StoreError> {
        let (s, _) = self
            .update::<NightlySchedule, _>(name, move |s| {
                let changed = s.spec != spec;
                s.spec = spec;
                label_service(s);
                Ok((changed, ()))
            })
            .await?;
        Ok(s)
    }

    async fn delete_schedule(&self, name: &str) -> Result<bool, StoreError> {
        // The standalone scheduler cancels the runs it leaves unfinished.
        self.delete::<NightlySchedule>(name).await
    }

    async fn stand_holds(&self) -> Result<Vec<crate::outage::Hold>, StoreError> {
        let runs = self.outage_runs().await?;
        Ok(crate::outage::holds(runs.iter().map(|r| r.as_ref())))
    }

    async fn resume_stand(&self, stand: &str, by: &str) -> Result<usize, StoreError> {
        let stand = crate::queue::stand_key(stand);
        let Some(hold) = self.stand_holds().await?.into_iter().find(|h| h.stand == stand) else {
            return Ok(0);
        };
        let mut resolved = 0;
        for name in hold.runs {
            let by = by.to_string();
            let (_, done) = self
                .update::<TestRun, _>(&name, move |r| {
                    let now = chrono::Utc::now();
                    let done = r
                        .status
                        .as_mut()
                        .and_then(|s| s.stand_down.as_mut())
                        .is_some_and(|d| crate::outage::resolve(d, &by, now));
                    Ok((done, done))
                })
                .await?;
            resolved += usize::from(done);
        }
        Ok(resolved)
    }

    async fn create_mute(&self, mute: Mute) -> Result<Mute, StoreError> {
        self.create(mute).await
    }

    async fn get_mute(&self, name: &str) -> Result<Option<Mute>, StoreError> {
        self.get(name).await
    }

    async fn list_mutes(&self, service: Option<&str>) -> Result<Vec<Mute>, StoreError> {
        by_name(self, service).await
    }

    async fn delete_mute(&self, name: &str) -> Result<bool, StoreError> {
        self.delete::<Mute>(name).await
    }

    async fn create_regression(&self, regression: Regression) -> Result<Regression, StoreError> {
        self.create(regression).await
    }

    async fn get_regression(&self, name: &str) -> Result<Option<Regression>, StoreError> {
        self.get(name).await
    }

    async fn list_regressions(&self, service: Option<&str>) -> Result<Vec<Regression>, StoreError> {
        self.list(&ListFilter {
            service: service.map(str::to_string),
            newest: Some(usize::MAX >> 1),
            ..Default::default()
        })
        .await
    }

    async fn replace_regression(&self, name: &str, spec: RegressionSpec) -> Result<Regression, StoreError> {
        let (r, _) = self
            .update::<Regression, _>(name, move |r| {
                let changed = r.spec != spec;
                r.spec = spec;
                Ok((changed, ()))
            })
            .await?;
        Ok(r)
    }

    async fn delete_regression(&self, name: &str) -> Result<bool, StoreError> {
        // The standalone regressions task stops the test run and then deletes the object.
        let res = self
            .update::<Regression, _>(name, |r| {
                let changed = r.metadata.deletion_timestamp.is_none();
                if changed {
                    r.metadata.deletion_timestamp =
                        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                            k8s_openapi::jiff::Timestamp::now(),
                        ));
                }
                Ok((changed, ()))
            })
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(StoreError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// The objects of kind `K` (of one service, when given), by name.
async fn by_name<K>(store: &SqliteStore, service: Option<&str>) -> Result<Vec<K>, StoreError>
where
    K: kube::Resource<DynamicType = ()> + serde::de::DeserializeOwned + Send + 'static,
{
    let mut all: Vec<K> = store
        .list(&ListFilter {
            service: service.map(str::to_string),
            ..Default::default()
        })
        .await?;
    all.sort_by(|a, b| a.meta().name.cmp(&b.meta().name));
    Ok(all)
}

/// Keeps a schedule's service label in step with its spec (a replaced spec may name another
/// service; label selectors and `?service=` must follow).
pub fn label_service(s: &mut NightlySchedule) {
    s.metadata
        .labels
        .get_or_insert_default()
        .insert(crate::crd::LABEL_SERVICE.into(), s.spec.template.service.clone());
}
