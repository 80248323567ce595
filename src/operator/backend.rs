//! The HTTP side's view of operator mode: [`crate::backend::Backend`] over the Kubernetes API.
//!
//! Reads come from a reflector store of the namespace's TestRuns, kept by a watch, not from
//! an API call per request; a name the store does not (yet) know is looked up once in the API,
//! so a run is readable right after the API created it. Writes (create, cancel, priority) go to
//! the API server, which every replica can do, leader or not. Uploaded results are stored as
//! ConfigMaps owned by the run ([`super::results`]), after the run's token is checked.

use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use subtle::ConstantTimeEq;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::results::{self, Keeper, Stored};
use crate::backend::{Artifact, Backend, UploadError};
use crate::crd::{ANNOTATION_CREATED, created, precise_time};
use crate::crd::{
    AttemptState, Mute, NightlySchedule, NightlyScheduleSpec, Phase, Regression, RegressionSpec, TestRun,
};
use crate::launch::job::{TOKEN_KEY, job_name, token_secret_name};
use crate::packs::PacksConfig;
use crate::results::AttemptResult;
use crate::results::upload::AttemptResults;
use crate::store::{Change, ChangeOp, ListFilter, StoreError};

/// Operator mode's backend. Create with [`KubeBackend::start`].
#[derive(Clone)]
pub struct KubeBackend {
    client: Client,
    /// Where API clients' runs live.
    namespace: String,
    config: Arc<PacksConfig>,
    runs: Store<TestRun>,
    schedules: Store<NightlySchedule>,
    regressions: Store<Regression>,
    changes: broadcast::Sender<Change>,
    results: Arc<Keeper>,
}

impl KubeBackend {
    /// Starts watching the namespace's TestRuns (until `stop`) and returns the backend.
    pub fn start(
        client: Client,
        namespace: &str,
        config: Arc<PacksConfig>,
        results: Arc<Keeper>,
        stop: CancellationToken,
    ) -> Self {
        let (changes, _) = broadcast::channel(1024);
        let runs = reflect(
            Api::namespaced(client.clone(), namespace),
            "TestRun",
            changes.clone(),
            stop.clone(),
        );
        let schedules = reflect(
            Api::namespaced(client.clone(), namespace),
            "NightlySchedule",
            changes.clone(),
            stop.clone(),
        );
        let regressions = reflect(
            Api::namespaced(client.clone(), namespace),
            "Regression",
            changes.clone(),
            stop,
        );
        KubeBackend {
            client,
            namespace: namespace.to_string(),
            config,
            runs,
            schedules,
            regressions,
            changes,
            results,
        }
    }

    fn regressions_api(&self) -> Api<Regression> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// The stands held in this backend's namespace ([`super::holds::ScopedHolds`] over its
    /// reflector).
    fn holds(&self) -> super::holds::ScopedHolds {
        super::holds::ScopedHolds::new(self.runs.clone(), self.client.clone())
    }

    fn mutes_api(&self) -> Api<Mute> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn schedules_api(&self) -> Api<NightlySchedule> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn api(&self) -> Api<TestRun> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// The run: from the store, else (not seen yet) from the API; with each rerun's tests
    /// filled in, also those kept in the results database. (A listing leaves them out:
    /// `selection.storedTests` counts them.)
    async fn find(&self, name: &str) -> Result<Option<TestRun>, StoreError> {
        let Some(run) = self.cached(&self.runs, self.api(), name).await? else {
            return Ok(None);
        };
        match self.results.hydrate(&run).await {
            Ok(full) => Ok(Some(full)),
            // The run still shows (its rerun counts say how many were re-run); only the
            // lists are missing while the database cannot give them.
            Err(e) => {
                tracing::warn!(run = name, error = %e, "serving the run without its rerun lists");
                Ok(Some(run))
            }
        }
    }

    /// An object from its reflector store, or from the API for a name the store has not seen
    /// yet (just created by another replica).
    async fn cached<K>(&self, store: &Store<K>, api: Api<K>, name: &str) -> Result<Option<K>, StoreError>
    where
        K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let key = ObjectRef::new(name).within(&self.namespace);
        if let Some(obj) = store.get(&key) {
            return Ok(Some((*obj).clone()));
        }
        api.get_opt(name).await.map_err(store_error)
    }

    /// Replaces an object's spec with `set`: read, change, `PUT` with the read
    /// resourceVersion, again on a conflict. (A merge patch could not remove a field that
    /// the new spec leaves out; a `PUT` of the main resource leaves the status alone.)
    async fn replace_spec<K: Object>(
        &self,
        api: Api<K>,
        name: &str,
        set: impl Fn(&mut K),
    ) -> Result<K, StoreError> {
        const ATTEMPTS: usize = 5;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut obj =
                api.get_opt(name)
                    .await
                    .map_err(store_error)?
                    .ok_or_else(|| StoreError::NotFound {
                        kind: K::kind(&()).into_owned(),
                        name: name.into(),
                    })?;
            set(&mut obj);
            match api.replace(name, &PostParams::default(), &obj).await {
                Ok(obj) => return Ok(obj),
                Err(kube::Error::Api(a)) if a.code == 409 && attempt < ATTEMPTS => continue,
                Err(kube::Error::Api(a)) if a.code == 404 => {
                    return Err(StoreError::NotFound {
                        kind: K::kind(&()).into_owned(),
                        name: name.into(),
                    });
                }
                Err(e) => return Err(store_error(e)),
            }
        }
    }

    /// Creates `obj` (its status already cleared: that belongs to the controllers) in the
    /// backend's namespace; a taken name is `AlreadyExists`.
    async fn create<K: Object>(&self, api: Api<K>, mut obj: K) -> Result<K, StoreError> {
        let name = obj.name_any();
        obj.meta_mut().namespace = Some(self.namespace.clone());
        api.create(&PostParams::default(), &obj)
            .await
            .map_err(|e| match e {
                kube::Error::Api(a) if a.code == 409 => StoreError::AlreadyExists {
                    kind: K::kind(&()).to_string(),
                    name,
                },
                e => store_error(e),
            })
    }

    async fn patch_spec(&self, name: &str, spec: serde_json::Value) -> Result<TestRun, StoreError> {
        self.api()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({ "spec": spec })),
            )
            .await
            .map_err(|e| match e {
                kube::Error::Api(a) if a.code == 404 => not_found(name),
                e => store_error(e),
            })
    }
}

/// Keeps a store of `api`'s objects (until `stop`), announcing each change on `changes`.
fn reflect<K>(
    api: Api<K>,
    kind: &'static str,
    changes: broadcast::Sender<Change>,
    stop: CancellationToken,
) -> Store<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, watcher::Config::default())).default_backoff();
    tokio::spawn(async move {
        use futures::StreamExt;
        let mut stream = std::pin::pin!(stream);
        let change = |obj: &K, op| Change {
            kind: kind.into(),
            name: obj.name_any(),
            op,
        };
        loop {
            let event = tokio::select! {
                e = stream.next() => e,
                _ = stop.cancelled() => break,
            };
            match event {
                None => break,
                Some(Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o))) => {
                    let _ = changes.send(change(&o, ChangeOp::Updated));
                }
                Some(Ok(watcher::Event::Delete(o))) => {
                    let _ = changes.send(change(&o, ChangeOp::Deleted));
                }
                Some(Ok(watcher::Event::Init | watcher::Event::InitDone)) => {}
                Some(Err(e)) => warn!(kind, error = %e, "watching failed; retrying"),
            }
        }
    });
    reader
}

fn not_found(name: &str) -> StoreError {
    StoreError::NotFound {
        kind: "TestRun".into(),
        name: name.into(),
    }
}

/// API errors as the HTTP side knows them; the API server's message (never a secret) is kept.
/// What the backend writes: one of Tomato's resources, read and written as JSON.
trait Object:
    kube::Resource<DynamicType = ()> + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug
{
}

impl<K> Object for K where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug
{
}

fn store_error(e: kube::Error) -> StoreError {
    match e {
        kube::Error::Api(a) if a.code == 409 => StoreError::Invalid(a.message),
        kube::Error::Api(a) if a.code == 422 || a.code == 400 => StoreError::Invalid(a.message),
        e => StoreError::Task(format!("the Kubernetes API failed: {e}")),
    }
}

impl KubeBackend {
    /// The run `name` of namespace `ns`, fresh from the API (a Job's call may race the status
    /// write that recorded its attempt), when `token` is its upload token.
    async fn authenticated_run(&self, ns: &str, name: &str, token: &str) -> Result<TestRun, UploadError> {
        let store = |e: kube::Error| UploadError::Store(e.to_string());
        let run = Api::<TestRun>::namespaced(self.client.clone(), ns)
            .get_opt(name)
            .await
            .map_err(store)?
            .ok_or_else(|| UploadError::NotFound(format!("run {name:?} not found")))?;
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), ns);
        let expected = secrets
            .get_opt(&token_secret_name(name))
            .await
            .map_err(store)?
            .and_then(|s| s.data)
            .and_then(|d| d.get(TOKEN_KEY).cloned())
            .ok_or(UploadError::Unauthorized)?;
        if !bool::from(expected.0.as_slice().ct_eq(token.as_bytes())) {
            return Err(UploadError::Unauthorized);
        }
        Ok(run)
    }
}

#[async_trait]
impl Backend for KubeBackend {
    /// The results database, when one is configured: history, novelty and comparisons read
    /// it as standalone mode's read its SQLite file.
    fn history(&self) -> Option<&dyn crate::store::ResultsStore> {
        self.results.database()
    }

    fn mode(&self) -> &'static str {
        "operator"
    }

    async fn create_run(&self, mut run: TestRun) -> Result<TestRun, StoreError> {
        // creationTimestamp has whole seconds; queue order needs the exact instant.
        run.metadata
            .annotations
            .get_or_insert_default()
            .insert(ANNOTATION_CREATED.into(), precise_time(chrono::Utc::now()));
        run.status = None;
        self.create(self.api(), run).await
    }

    async fn get_run(&self, name: &str) -> Result<Option<TestRun>, StoreError> {
        self.find(name).await
    }

    async fn list_runs(&self, filter: &ListFilter) -> Result<Vec<TestRun>, StoreError> {
        let mut runs: Vec<TestRun> = self
            .runs
            .state()
            .into_iter()
            .filter(|r| {
                filter
                    .service
                    .as_ref()
                    .is_none_or(|s| &r.spec.template.service == s)
            })
            .filter(|r| {
                let phase = r.status.as_ref().map_or(Phase::Queued, |s| s.phase);
                filter.phases.is_empty() || filter.phases.contains(&phase)
            })
            .filter(|r| {
                filter
                    .label
                    .as_ref()
                    .is_none_or(|(k, v)| r.labels().get(k) == Some(v))
            })
            .filter(|r| {
                filter.before.as_ref().is_none_or(|c| {
                    let at = crate::store::Cursor::after(r.as_ref());
                    (&at.created, &at.name) < (&c.created, &c.name)
                })
            })
            .map(|r| (*r).clone())
            .collect();
        runs.sort_by_key(|r| (created(r), r.name_any()));
        if let Some(n) = filter.newest {
            runs.reverse();
            runs.truncate(n);
        }
        Ok(runs)
    }

    async fn cancel_run(&self, name: &str) -> Result<TestRun, StoreError> {
        let run = self.find(name).await?.ok_or_else(|| not_found(name))?;
        if run.spec.cancel || run.status.as_ref().is_some_and(|s| s.phase.is_terminal()) {
            return Ok(run);
        }
        self.patch_spec(name, serde_json::json!({ "cancel": true })).await
    }

    async fn set_priority(&self, name: &str, priority: crate::crd::Priority) -> Result<TestRun, StoreError> {
        self.patch_spec(name, serde_json::json!({ "priority": priority }))
            .await
    }

    async fn results(&self, name: &str) -> Result<Vec<AttemptResult>, StoreError> {
        let run = self.find(name).await?.ok_or_else(|| not_found(name))?;
        let Some(svc) = self.config.service(&run.spec.template.service) else {
            return Ok(Vec::new());
        };
        self.results
            .run_results(&run, &svc.rerun.test_id)
            .await
            .map_err(|e| StoreError::Task(e.to_string()))
    }

    async fn categories(&self, name: &str) -> Result<crate::classify::ByTest, StoreError> {
        let run = self.find(name).await?.ok_or_else(|| not_found(name))?;
        self.results
            .load_categories(&run)
            .await
            .map_err(|e| StoreError::Task(e.to_string()))
    }

    async fn run_counts(&self) -> Result<Vec<(String, Phase, u64)>, StoreError> {
        let mut counts: std::collections::BTreeMap<(String, Phase), u64> = Default::default();
        for r in self.runs.state() {
            let phase = r.status.as_ref().map_or(Phase::Queued, |s| s.phase);
            *counts
                .entry((r.spec.template.service.clone(), phase))
                .or_default() += 1;
        }
        Ok(counts.into_iter().map(|((s, p), n)| (s, p, n)).collect())
    }

    async fn create_schedule(&self, mut schedule: NightlySchedule) -> Result<NightlySchedule, StoreError> {
        schedule.status = None;
        self.create(self.schedules_api(), schedule).await
    }

    async fn get_schedule(&self, name: &str) -> Result<Option<NightlySchedule>, StoreError> {
        self.cached(&self.schedules, self.schedules_api(), name).await
    }

    async fn list_schedules(&self, service: Option<&str>) -> Result<Vec<NightlySchedule>, StoreError> {
        let mut all: Vec<NightlySchedule> = self
            .schedules
            .state()
            .into_iter()
            .filter(|s| service.is_none_or(|svc| s.spec.template.service == svc))
            .map(|s| (*s).clone())
            .collect();
        all.sort_by_key(ResourceExt::name_any);
        Ok(all)
    }

    async fn replace_schedule(
        &self,
        name: &str,
        spec: NightlyScheduleSpec,
    ) -> Result<NightlySchedule, StoreError> {
        self.replace_spec(self.schedules_api(), name, |s| {
            s.spec = spec.clone();
            crate::backend::label_service(s);
        })
        .await
    }

    /// Deleting a schedule garbage-collects the runs it created (they carry its owner
    /// reference); the TestRun finalizer stops any still running.
    async fn delete_schedule(&self, name: &str) -> Result<bool, StoreError> {
        match self
            .schedules_api()
            .delete(name, &DeleteParams::background())
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(a)) if a.code == 404 => Ok(false),
            Err(e) => Err(store_error(e)),
        }
    }

    async fn stand_holds(&self) -> Result<Vec<crate::outage::Hold>, StoreError> {
        use crate::stands::Holds;
        self.holds().stand_holds().await
    }

    /// The leader's own way of resolving holds, over this backend's namespace (any replica
    /// may: resolving twice changes nothing).
    async fn resume_stand(&self, stand: &str, by: &str) -> Result<usize, StoreError> {
        use crate::stands::Holds;
        self.holds().resume_stand(stand, by).await
    }

    async fn create_mute(&self, mut mute: Mute) -> Result<Mute, StoreError> {
        mute.status = None;
        self.create(self.mutes_api(), mute).await
    }

    async fn get_mute(&self, name: &str) -> Result<Option<Mute>, StoreError> {
        self.mutes_api().get_opt(name).await.map_err(store_error)
    }

    /// Read from the API, not a cache: mutes are read rarely (a service's page, the API),
    /// and a mute just made must show at once.
    async fn list_mutes(&self, service: Option<&str>) -> Result<Vec<Mute>, StoreError> {
        let mut all: Vec<Mute> = self
            .mutes_api()
            .list(&kube::api::ListParams::default())
            .await
            .map_err(store_error)?
            .items
            .into_iter()
            .filter(|m| service.is_none_or(|s| m.spec.service == s))
            .collect();
        all.sort_by_key(ResourceExt::name_any);
        Ok(all)
    }

    async fn delete_mute(&self, name: &str) -> Result<bool, StoreError> {
        match self.mutes_api().delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(a)) if a.code == 404 => Ok(false),
            Err(e) => Err(store_error(e)),
        }
    }

    async fn create_regression(&self, mut regression: Regression) -> Result<Regression, StoreError> {
        regression.status = None;
        self.create(self.regressions_api(), regression).await
    }

    async fn get_regression(&self, name: &str) -> Result<Option<Regression>, StoreError> {
        self.cached(&self.regressions, self.regressions_api(), name).await
    }

    async fn list_regressions(&self, service: Option<&str>) -> Result<Vec<Regression>, StoreError> {
        let mut all: Vec<Regression> = self
            .regressions
            .state()
            .into_iter()
            .filter(|r| service.is_none_or(|s| r.spec.service == s))
            .map(|r| (*r).clone())
            .collect();
        all.sort_by_key(|r| std::cmp::Reverse((created(r), r.name_any())));
        Ok(all)
    }

    async fn replace_regression(&self, name: &str, spec: RegressionSpec) -> Result<Regression, StoreError> {
        self.replace_spec(self.regressions_api(), name, |r| r.spec = spec.clone())
            .await
    }

    /// The API server marks it (its finalizer stops the test run in test management first)
    /// or, without a finalizer, removes it at once.
    async fn delete_regression(&self, name: &str) -> Result<bool, StoreError> {
        match self
            .regressions_api()
            .delete(name, &DeleteParams::background())
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(a)) if a.code == 404 => Ok(false),
            Err(e) => Err(store_error(e)),
        }
    }

    fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    async fn ready(&self) -> Result<(), String> {
        match tokio::time::timeout(
            std::time::Duration::from_millis(100),
            self.runs.wait_until_ready(),
        )
        .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err("the TestRun watch stopped".into()),
            Err(_) => Err("the first list of TestRuns has not arrived yet".into()),
        }
    }

    async fn allure_extras(
        &self,
        run: &str,
        seq: usize,
    ) -> Result<Option<crate::results::allure::AttemptExtras>, StoreError> {
        let run = self.find(run).await?.ok_or_else(|| not_found(run))?;
        let Some(svc) = self.config.service(&run.spec.template.service) else {
            return Ok(None);
        };
        let task = |e: results::ResultsError| StoreError::Task(e.to_string());
        let Some(stored) = self.results.load(&run, seq).await.map_err(task)? else {
            return Ok(None);
        };
        Ok(stored.allure_extras(
            &svc.rerun.test_id,
            crate::results::upload::operator_limits(svc.attachments),
        ))
    }

    async fn attachment(
        &self,
        run: &str,
        seq: usize,
        source: &str,
    ) -> Result<Option<(Vec<u8>, crate::results::allure::Attachment)>, StoreError> {
        let Some(record) = self.allure_extras(run, seq).await? else {
            return Ok(None);
        };
        let Some(kept) = record.kept(source).cloned() else {
            return Ok(None);
        };
        let run = self.find(run).await?.ok_or_else(|| not_found(run))?;
        let task = |e: results::ResultsError| StoreError::Task(e.to_string());
        let stored = self.results.load(&run, seq).await.map_err(task)?;
        Ok(stored.and_then(|s| s.allure_file(source)).map(|b| (b, kept)))
    }

    async fn attempt_artifact(
        &self,
        run: &str,
        seq: usize,
        artifact: Artifact,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let run = self.find(run).await?.ok_or_else(|| not_found(run))?;
        let task = |e: results::ResultsError| StoreError::Task(e.to_string());
        let Some(stored) = self.results.load(&run, seq).await.map_err(task)? else {
            return Ok(None);
        };
        match artifact {
            Artifact::Log { tail } => {
                let log = stored.log().map_err(task)?;
                Ok(Some(crate::store::files::log_tail(log.as_bytes(), tail).to_vec()))
            }
            Artifact::Junit if !stored.has_junit() => Ok(None),
            Artifact::Junit => stored.junit_xml().map(Some).map_err(task),
        }
    }

    async fn launch_of(
        &self,
        namespace: Option<&str>,
        name: &str,
        seq: usize,
        shard: Option<u32>,
        token: &str,
    ) -> Result<crate::launch::job::ShardLaunch, UploadError> {
        let ns = namespace.unwrap_or(&self.namespace);
        if seq == 0 || u32::try_from(seq).is_err() {
            return Err(UploadError::NotFound(format!("run {name} has no attempt {seq}")));
        }
        let run = self.authenticated_run(ns, name, token).await?;
        let launches = self
            .results
            .launches(&run, seq)
            .await
            .map_err(|e| UploadError::Store(e.to_string()))?
            .ok_or_else(|| {
                UploadError::NotFound(format!(
                    "launch {seq} of {name} has nothing to fetch: its Job carries its command"
                ))
            })?;
        let count = launches.len();
        let index = match (shard, count) {
            (None, 1) => 0,
            (None, n) => {
                return Err(UploadError::Invalid(format!(
                    "launch {seq} of {name} runs as {n} shards: say which (?shard=<index>)"
                )));
            }
            (Some(i), _) => i as usize,
        };
        launches.into_iter().nth(index).ok_or_else(|| {
            UploadError::NotFound(format!(
                "launch {seq} of {name} has {count} shard(s); there is no shard {index}"
            ))
        })
    }

    async fn receive_results(
        &self,
        namespace: Option<&str>,
        name: &str,
        seq: usize,
        shard: Option<u32>,
        token: &str,
        results: AttemptResults,
    ) -> Result<(), UploadError> {
        let store = |e: kube::Error| UploadError::Store(e.to_string());
        let ns = namespace.unwrap_or(&self.namespace);
        let run = self.authenticated_run(ns, name, token).await?;
        let attempts = run
            .status
            .as_ref()
            .map(|s| s.attempts.clone())
            .unwrap_or_default();
        // How many shards the attempt has (1: unsharded), and whether its Job runs the local
        // part of a mixed attempt, from its status or, before that is written, from its Job.
        let (shards, mixed) = match attempts.get(seq.wrapping_sub(1)) {
            Some(a) if a.state == AttemptState::Running => (a.shards.len().max(1), a.mixed),
            Some(a) => {
                return Err(UploadError::Conflict(format!(
                    "attempt {seq} of {name} is {:?}: its results are no longer expected",
                    a.state
                )));
            }
            // Launched but not recorded yet (the Job was created, the status write is pending).
            None if seq == attempts.len() + 1 => {
                let jobs: Api<Job> = Api::namespaced(self.client.clone(), ns);
                let Some(job) = jobs.get_opt(&job_name(name, seq)).await.map_err(store)? else {
                    return Err(UploadError::NotFound(format!("run {name} has no attempt {seq}")));
                };
                let local_part = job
                    .labels()
                    .get(crate::launch::job::LABEL_PART)
                    .map(String::as_str)
                    == Some("local");
                (crate::launch::job::job_shards(&job), local_part)
            }
            None => return Err(UploadError::NotFound(format!("run {name} has no attempt {seq}"))),
        };
        crate::launch::job::check_shard_upload(shards, shard).map_err(UploadError::Invalid)?;
        let shard = if mixed {
            Some(super::mixed::LOCAL_PART)
        } else {
            shard.filter(|_| shards > 1)
        };
        match self.results.store(&run, seq, shard, &results).await {
            Ok(Stored::Created) => Ok(()),
            Ok(Stored::AlreadyThere) => Err(UploadError::Conflict(match shard {
                Some(i) if !mixed => {
                    format!("the results of shard {i} of attempt {seq} of {name} were already recorded")
                }
                _ => format!("the results of attempt {seq} of {name} were already recorded"),
            })),
            // Too large for the ConfigMaps, or over the database's per-run artifact limit.
            Err(
                e @ (results::ResultsError::TooLarge(_)
                | results::ResultsError::Store(crate::store::StoreError::TooLarge(_))),
            ) => Err(UploadError::Invalid(e.to_string())),
            Err(e) => Err(UploadError::Store(e.to_string())),
        }
    }
}
