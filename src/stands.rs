//! Held stands come back (issue 17 item 7): while an outage holds a stand
//! ([`crate::outage`]), its services' probe (`stands.probe`) is asked every `every`; when it
//! answers the expected status, every record holding the stand is resolved (`probe`) and the
//! queued runs on it start. A person resumes a stand through the API instead
//! (`POST /api/v1/stands/{stand}/resume`). The same loop serves both modes, over [`Holds`]:
//! standalone mode's store, and in operator mode the leader's view of every run it
//! reconciles (all namespaces with `--all-namespaces`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::backend::Backend;
use crate::outage::Hold;
use crate::packs::PacksConfig;
use crate::store::{SqliteStore, StoreError};

/// Where the holds are read and resolved.
#[async_trait]
pub trait Holds: Send + Sync {
    async fn stand_holds(&self) -> Result<Vec<Hold>, StoreError>;
    /// Resolves every record holding `stand` as resumed by `by`; how many.
    async fn resume_stand(&self, stand: &str, by: &str) -> Result<usize, StoreError>;
}

#[async_trait]
impl Holds for SqliteStore {
    async fn stand_holds(&self) -> Result<Vec<Hold>, StoreError> {
        Backend::stand_holds(self).await
    }

    async fn resume_stand(&self, stand: &str, by: &str) -> Result<usize, StoreError> {
        Backend::resume_stand(self, stand, by).await
    }
}

/// How often the holds are looked at (each probe is asked at its own `every`).
const TICK: Duration = Duration::from_secs(2);
/// How long a probe may take to answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Asks the held stands' probes until `stop`.
pub async fn run(holds: Arc<dyn Holds>, config: Arc<PacksConfig>, stop: CancellationToken) {
    let client = match crate::integrations::http::client() {
        Ok(c) => c,
        Err(e) => {
            warn!(error = e, "stand probes are off");
            return;
        }
    };
    let mut asked: HashMap<String, Instant> = HashMap::new();
    loop {
        if let Err(e) = pass(holds.as_ref(), &config, &client, &mut asked).await {
            warn!(error = %e, "stand probe pass failed; the next pass tries again");
        }
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// One look at the holds: asks each due probe (`asked` keeps when each stand was asked);
/// returns the stands found back.
pub async fn pass(
    backend: &dyn Holds,
    config: &PacksConfig,
    client: &reqwest::Client,
    asked: &mut HashMap<String, Instant>,
) -> Result<Vec<String>, StoreError> {
    let holds = backend.stand_holds().await?;
    asked.retain(|stand, _| holds.iter().any(|h| &h.stand == stand));
    let mut back = Vec::new();
    for hold in holds {
        let Some(probe) = hold
            .services
            .iter()
            .find_map(|s| config.service(s).and_then(|svc| svc.stand_probe.clone()))
        else {
            continue;
        };
        if asked
            .get(&hold.stand)
            .is_some_and(|at| at.elapsed() < probe.every)
        {
            continue;
        }
        asked.insert(hold.stand.clone(), Instant::now());
        let url = match crate::outage::Probe::url_for(&probe.url, &hold.stand) {
            Ok(u) => u,
            Err(e) => {
                warn!(stand = hold.stand, error = e, "the stand's probe has no URL");
                continue;
            }
        };
        // Logged without user info or query (a template may carry a token there).
        let shown = {
            let mut u = url.clone();
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u
        };
        let answer = client
            .get(url)
            .timeout(PROBE_TIMEOUT)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .map_err(|e| crate::integrations::email::chain(&e.without_url()));
        if probe.is_up(answer.clone()) {
            let n = backend.resume_stand(&hold.stand, "probe").await?;
            info!(stand = hold.stand, url = %shown, resolved = n, "the stand's probe answers: the stand is back, its runs start");
            back.push(hold.stand);
        } else {
            debug!(stand = hold.stand, url = %shown, answer = ?answer, "the stand is still down");
        }
    }
    Ok(back)
}
