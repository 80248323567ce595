//! Operator mode (`tomato operator`): TestRuns, NightlySchedules and Regressions as custom resources, each
//! attempt a Kubernetes Job, the same HTTP app as standalone mode.
//!
//! - [`testrun`]: the TestRun controller (kube-runtime `Controller`, owning Jobs and results
//!   ConfigMaps), the twin of the standalone driver over the same pure core;
//! - [`admission`]: the queue pass (the same pure admission as standalone mode);
//! - [`schedule`]: the NightlySchedule controller;
//! - [`regression`]: the Regression controller (the same reconcile as standalone mode's);
//! - [`lease`]: leader election, so that of several replicas exactly one reconciles;
//! - [`backend`]: the HTTP side's reads (a reflector store) and writes;
//! - [`results`]: attempt results kept as ConfigMaps owned by the run;
//! - [`retention`]: the leader's periodic deletion of expired finished runs;
//! - [`mutes`]: the leader's periodic pass over Mutes (expiry, closed tickets);
//! - [`shards`]: a sharded attempt's Indexed Job, its shards' progress and their merge.
//!
//! Every replica serves the API; only the lease holder runs the controllers. Losing the lease
//! stops them at once, and the replica keeps serving and waiting for its turn.

pub mod admission;
pub mod aqua;
pub mod backend;
pub mod context;
pub mod holds;
pub mod lease;
pub mod listing;
pub mod mixed;
pub mod mutes;
pub mod regression;
pub mod results;
pub mod retention;
pub mod schedule;
pub mod shards;
pub mod testrun;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::{Controller, watcher};
use kube::{Api, Client};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use backend::KubeBackend;
pub use context::{Context, Error, Integrations, Timing};

use crate::crd::{NightlySchedule, Regression, TestRun};
use crate::launch::job::JobSettings;
use crate::packs::{PacksConfig, PullPolicy};

/// Which namespaces the controllers reconcile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The operator's namespace only (a Role is enough).
    Namespace(String),
    /// Every namespace (needs a ClusterRole).
    All,
}

/// Everything the operator needs besides the client and packs_config.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Where API clients' runs are created and read.
    pub namespace: String,
    pub scope: Scope,
    pub jobs: JobSettings,
    pub timing: Timing,
    pub lease: lease::LeaseSettings,
}

/// A started operator: its backend for the HTTP app, and whether it leads.
pub struct Operator {
    pub backend: KubeBackend,
    leader: watch::Receiver<bool>,
    task: tokio::task::JoinHandle<()>,
    lease: tokio::task::JoinHandle<()>,
}

impl Operator {
    /// Starts the TestRun watch (for the API), the lease loop, and — while this replica holds
    /// the lease — the controllers, keeping results in ConfigMaps owned by each run.
    /// Everything stops when `stop` is cancelled.
    pub fn start(
        client: Client,
        config: Arc<PacksConfig>,
        settings: Settings,
        integrations: Integrations,
        stop: CancellationToken,
    ) -> Self {
        Self::start_with_database(client, config, settings, integrations, None, stop)
    }

    /// [`Operator::start`] keeping results in `database` (`--database-url`) when given.
    pub fn start_with_database(
        client: Client,
        config: Arc<PacksConfig>,
        settings: Settings,
        integrations: Integrations,
        database: Option<Arc<dyn crate::store::ResultsStore>>,
        stop: CancellationToken,
    ) -> Self {
        let results = Arc::new(results::Keeper::new(
            client.clone(),
            &settings.namespace,
            database,
        ));
        let backend = KubeBackend::start(
            client.clone(),
            &settings.namespace,
            config.clone(),
            results.clone(),
            stop.clone(),
        );
        let (leader_tx, leader) = watch::channel(false);
        let leader_rx = leader.clone();

        // The lease is released only once the controllers have stopped (see
        // `lead_when_elected`), so no other replica leads while this one still reconciles.
        let release = CancellationToken::new();
        let lease = tokio::spawn(lease::run(
            client.clone(),
            settings.lease.clone(),
            leader_tx,
            release.clone(),
        ));
        let ctx = Arc::new(Context::new(
            client,
            config,
            settings.jobs.clone(),
            settings.timing,
            &settings.lease.identity,
            results,
            integrations,
        ));
        let task = tokio::spawn(async move {
            lead_when_elected(ctx, settings.scope, leader_rx, stop).await;
            release.cancel();
        });
        Operator {
            backend,
            leader,
            task,
            lease,
        }
    }

    /// Whether this replica holds the lease now.
    pub fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }

    /// Waits until the operator has stopped (after `stop` was cancelled) and released the lease.
    pub async fn stopped(self) {
        let _ = self.task.await;
        let _ = self.lease.await;
    }
}

/// Runs the controllers during each term as leader.
async fn lead_when_elected(
    ctx: Arc<Context>,
    scope: Scope,
    mut leader: watch::Receiver<bool>,
    stop: CancellationToken,
) {
    loop {
        // `biased`: once stopping, never start another term, even if the lease still says so.
        tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            r = leader.wait_for(|l| *l) => if r.is_err() { return },
        }
        info!("leading: starting the controllers");
        let term = stop.child_token();
        let controllers = tokio::spawn(run_controllers(ctx.clone(), scope.clone(), term.clone()));
        let lost = tokio::select! {
            _ = leader.wait_for(|l| !*l) => true,
            _ = stop.cancelled() => false,
        };
        term.cancel();
        let mut controllers = controllers;
        if lost {
            // Another replica may lead as soon as the lease expires: stop now. Reconciles are
            // level-triggered, so one cut short is simply done again by the next leader.
            warn!("lost the lease: stopping the controllers");
            controllers.abort();
            let _ = controllers.await;
        } else if tokio::time::timeout(Duration::from_secs(10), &mut controllers)
            .await
            .is_err()
        {
            // Shutting down (the lease is still held): reconciles in flight get a moment to
            // finish; a controller still waiting for its first list is dropped.
            warn!("the controllers did not stop in time; dropping them");
            controllers.abort();
        }
    }
}

pub(crate) fn scoped<K>(client: &Client, scope: &Scope) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match scope {
        Scope::Namespace(ns) => Api::namespaced(client.clone(), ns),
        Scope::All => Api::all(client.clone()),
    }
}

/// A reconcile, counted and timed in [`crate::metrics`] under `controller`.
async fn measured(
    controller: &'static str,
    reconcile: impl std::future::Future<Output = Result<kube::runtime::controller::Action, Error>>,
) -> Result<kube::runtime::controller::Action, Error> {
    let started = std::time::Instant::now();
    let res = reconcile.await;
    crate::metrics::global().reconciled(
        controller,
        started.elapsed(),
        res.as_ref().err().map(Error::metric_label),
    );
    res
}

/// The TestRun and NightlySchedule controllers and the admission loop, until `stop`.
async fn run_controllers(ctx: Arc<Context>, scope: Scope, stop: CancellationToken) {
    let client = ctx.client.clone();
    let runs = Controller::new(scoped::<TestRun>(&client, &scope), watcher::Config::default())
        .owns(
            scoped::<Job>(&client, &scope),
            watcher::Config::default().labels("app.kubernetes.io/managed-by=tomato"),
        )
        .owns(
            scoped::<ConfigMap>(&client, &scope),
            watcher::Config::default().labels(&format!("{}=primary", results::LABEL_RESULTS)),
        )
        .graceful_shutdown_on(stop.clone().cancelled_owned());
    // Aborted with the controllers (a lost lease drops this future mid-way).
    let mut admission = AbortOnDrop(tokio::spawn(admission::run(
        runs.store(),
        ctx.clone(),
        stop.clone(),
    )));
    // Leader-only like the controllers: it runs, and stops, with them.
    let mut retention = AbortOnDrop(tokio::spawn(retention::run(
        ctx.clone(),
        scope.clone(),
        stop.clone(),
    )));
    let mut mutes = AbortOnDrop(tokio::spawn(mutes::run(ctx.clone(), scope.clone(), stop.clone())));
    // Held stands' probes, over every run the controller sees (all namespaces it reconciles).
    let mut probes = AbortOnDrop(tokio::spawn(crate::stands::run(
        Arc::new(holds::ScopedHolds::new(runs.store(), client.clone())),
        ctx.config.clone(),
        stop.clone(),
    )));
    let runs = runs
        .run(
            |run, ctx| measured("testrun", testrun::reconcile(run, ctx)),
            testrun::error_policy,
            ctx.clone(),
        )
        .for_each(|_| std::future::ready(()));
    let schedules = Controller::new(
        scoped::<NightlySchedule>(&client, &scope),
        watcher::Config::default(),
    )
    .owns(scoped::<TestRun>(&client, &scope), watcher::Config::default())
    .graceful_shutdown_on(stop.clone().cancelled_owned())
    .run(
        |s, ctx| measured("schedule", schedule::reconcile(s, ctx)),
        schedule::error_policy,
        ctx.clone(),
    )
    .for_each(|_| std::future::ready(()));
    let regressions = Controller::new(scoped::<Regression>(&client, &scope), watcher::Config::default())
        .graceful_shutdown_on(stop.clone().cancelled_owned())
        .run(
            |r, ctx| measured("regression", regression::reconcile(r, ctx)),
            regression::error_policy,
            ctx.clone(),
        )
        .for_each(|_| std::future::ready(()));
    tokio::join!(runs, schedules, regressions);
    let _ = (&mut admission.0).await;
    let _ = (&mut retention.0).await;
    let _ = (&mut mutes.0).await;
    let _ = (&mut probes.0).await;
    info!("controllers stopped");
}

/// A task that ends when its handle is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Settings of `tomato operator` as given on the command line.
#[derive(Clone, Debug)]
pub struct OperatorOptions {
    pub listen: SocketAddr,
    pub config_dir: PathBuf,
    pub namespace: Option<String>,
    pub all_namespaces: bool,
    pub public_url: Option<String>,
    pub in_cluster_url: Option<String>,
    pub exec_image: String,
    pub exec_image_pull_policy: Option<String>,
    pub identity: Option<String>,
    pub lease_name: String,
    pub upload_grace: Duration,
    /// Report settings file (SMTP, tracker, webhooks, retry); environment variables win.
    pub settings: Option<PathBuf>,
    /// The results store's settings: with a PostgreSQL URL, results are kept there (connected
    /// to and migrated at start) instead of in ConfigMaps.
    pub results: crate::store::results::ResultsConfig,
}

/// The namespace this pod runs in, as Kubernetes mounts it.
const NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// Runs operator mode until SIGINT or SIGTERM.
pub async fn serve(opts: OperatorOptions) -> anyhow::Result<()> {
    let config = Arc::new(PacksConfig::load(&opts.config_dir)?);
    config.check_operator()?;
    let database = match &opts.results.database_url {
        Some(url) => {
            let store = crate::store::results::open(url, opts.results.pool_size, opts.results.limits).await?;
            info!(database = %url, pool_size = opts.results.pool_size, "results are kept in the results database");
            Some(store)
        }
        None => {
            info!("results are kept in ConfigMaps owned by each TestRun (no --database-url)");
            None
        }
    };
    let tokens = crate::api::Tokens::from_env().map_err(anyhow::Error::msg)?;
    let client = Client::try_default()
        .await
        .context("cannot reach the Kubernetes API (in-cluster config or kubeconfig)")?;
    let namespace = match opts.namespace.clone() {
        Some(ns) => ns,
        None => std::fs::read_to_string(NAMESPACE_FILE)
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| client.default_namespace().to_string()),
    };
    let identity = opts
        .identity
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| format!("tomato-{}", crate::crd::random_suffix(6)));
    let pull = match opts.exec_image_pull_policy.as_deref() {
        None => None,
        Some("Always") => Some(PullPolicy::Always),
        Some("IfNotPresent") => Some(PullPolicy::IfNotPresent),
        Some("Never") => Some(PullPolicy::Never),
        Some(other) => {
            anyhow::bail!("--exec-image-pull-policy: {other:?} is not Always, IfNotPresent or Never")
        }
    };
    let in_cluster_url = opts
        .in_cluster_url
        .clone()
        .unwrap_or_else(|| format!("http://tomato.{namespace}.svc:{}", opts.listen.port()));
    let settings = Settings {
        namespace: namespace.clone(),
        scope: if opts.all_namespaces {
            Scope::All
        } else {
            Scope::Namespace(namespace.clone())
        },
        jobs: JobSettings {
            exec_image: opts.exec_image.clone(),
            exec_image_pull_policy: pull,
            api_url: in_cluster_url,
        },
        timing: Timing {
            upload_grace: opts.upload_grace,
            retention: crate::retention::interval_from_env().map_err(anyhow::Error::msg)?,
            mutes: crate::mute::interval_from_env().map_err(anyhow::Error::msg)?,
            ..Timing::default()
        },
        lease: lease::LeaseSettings {
            name: opts.lease_name.clone(),
            namespace: namespace.clone(),
            identity: identity.clone(),
            duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(5),
        },
    };
    let (listener, public_url) = crate::app::listen(opts.listen, opts.public_url.as_deref()).await?;
    let addr = listener.local_addr()?;
    let integrations = Integrations::new(
        crate::integrations::settings::ReportSettings::load(opts.settings.as_deref())?,
        &config,
        &public_url,
    )?;
    let stop = CancellationToken::new();
    let tms_configured = integrations.regressions.tms.is_some();
    let tracker_configured = integrations.regressions.tracker.is_some();
    let auth = crate::api::Auth::for_operator(tokens, &client, &namespace).map_err(anyhow::Error::msg)?;
    let operator = Operator::start_with_database(
        client,
        config.clone(),
        settings,
        integrations,
        database,
        stop.clone(),
    );
    let state = crate::api::AppState {
        backend: Arc::new(operator.backend.clone()),
        config,
        auth,
        public_url,
        tms_configured,
        tracker_configured,
    };
    info!(%addr, namespace, identity, all_namespaces = opts.all_namespaces, "operator serving");
    crate::app::serve(listener, state, stop.clone()).await?;
    stop.cancel();
    operator.stopped().await;
    info!("stopped");
    Ok(())
}
