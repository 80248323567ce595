//! Standalone mode (`tomato serve`): the embedded SQLite store, local processes, and the
//! same HTTP app as operator mode, on one machine.

mod driver;
pub mod mutes;
mod regressions;
pub mod retention;
mod scheduler;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tracing::info;

pub use driver::Driver;
pub use regressions::Regressions;
pub use retention::Retention;
pub use scheduler::Scheduler;

use crate::api::{AppState, AuditLog, Auth, Tokens};
use crate::integrations::settings::ReportSettings;
use crate::packs::PacksConfig;
use crate::secrets::SecretsDir;
use crate::store::SqliteStore;

/// Settings of `tomato serve`.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub config_dir: PathBuf,
    pub secrets_dir: Option<PathBuf>,
    pub public_url: Option<String>,
    /// Report settings file (SMTP, tracker, webhooks, retries); the environment wins over it.
    pub settings: Option<PathBuf>,
    /// The results store's settings (the SQLite file's artifact limit; a PostgreSQL URL,
    /// checked at start and not used by standalone mode yet).
    pub results: crate::store::results::ResultsConfig,
}

/// Runs standalone mode until SIGINT or SIGTERM.
pub async fn serve(opts: ServeOptions) -> anyhow::Result<()> {
    let config = Arc::new(PacksConfig::load(&opts.config_dir)?);
    let retention_every = crate::retention::interval_from_env().map_err(anyhow::Error::msg)?;
    let mute_every = crate::mute::interval_from_env().map_err(anyhow::Error::msg)?;
    let names: Vec<&str> = config.services().map(|s| s.name.as_str()).collect();
    info!(config = %config.dir.display(), services = ?names, "packs_config loaded");
    let tokens = Tokens::from_env().map_err(anyhow::Error::msg)?;
    let report_settings = ReportSettings::load(opts.settings.as_deref())?;
    let store = SqliteStore::open(&opts.data_dir)
        .with_context(|| format!("cannot open the store in {}", opts.data_dir.display()))?
        .with_limits(opts.results.limits);
    crate::store::results::announce_database(&opts.results, "the SQLite file in the data directory").await?;
    let data_dir = opts.data_dir.canonicalize().unwrap_or(opts.data_dir.clone());
    let audit = AuditLog::from_env(Some(&data_dir.join("audit.jsonl"))).map_err(anyhow::Error::msg)?;
    let auth = Auth::new(tokens, audit);
    let secrets = SecretsDir::new(
        opts.secrets_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("secrets")),
    );

    let (listener, public_url) = crate::app::listen(opts.listen, opts.public_url.as_deref()).await?;
    let addr = listener.local_addr()?;
    let integrations = crate::report::Integrations::new(report_settings, &config, &public_url)?;
    let state = AppState {
        backend: Arc::new(store.clone()),
        config: config.clone(),
        auth,
        public_url,
        tms_configured: integrations.regressions.tms.is_some(),
        tracker_configured: integrations.regressions.tracker.is_some(),
    };

    let shutdown = CancellationToken::new();
    let scheduler_task = tokio::spawn(Scheduler::new(store.clone(), config.clone()).run(shutdown.clone()));
    let tracker = integrations.regressions.tracker.clone();
    let regressions_task =
        tokio::spawn(Regressions::new(store.clone(), integrations.regressions).run(shutdown.clone()));
    let retention_task =
        tokio::spawn(Retention::new(store.clone(), config.clone()).run(retention_every, shutdown.clone()));
    let stands_task = tokio::spawn(crate::stands::run(
        Arc::new(store.clone()),
        config.clone(),
        shutdown.clone(),
    ));
    let mutes_task =
        tokio::spawn(mutes::Mutes::new(store.clone(), tracker).run(mute_every, shutdown.clone()));
    let driver = Driver::new(store, config, &data_dir, secrets, integrations.reporter);
    let driver_task = tokio::spawn(driver.run(shutdown.clone()));

    info!(
        %addr,
        data_dir = %data_dir.display(),
        api_tokens = state.auth.writes_need_token(),
        reads_open = !state.auth.reads_need_token(),
        audit_log = ?state.auth.audit_log().path(),
        "serving"
    );
    crate::app::serve(listener, state, shutdown.clone()).await?;
    shutdown.cancel();
    let _ = driver_task.await;
    let _ = scheduler_task.await;
    let _ = regressions_task.await;
    let _ = retention_task.await;
    let _ = mutes_task.await;
    let _ = stands_task.await;
    info!("stopped");
    Ok(())
}
