//! Held stands come back (issue 17 item 7): while an outage holds a stand
//! ([`crate::outage`]), its services' probe (`stands.probe`) is asked every `every`; when it
//! answers the expected status, every record holding the stand is resolved (`probe`) and the
//! queued runs on it start. A person resumes a stand through the API instead
//! (`POST /api/v1/stands/{stand}/resume`). The same loop serves both modes, over
//! [`Backend`]; in operator mode only the leader asks.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::backend::Backend;
use crate::packs::PacksConfig;
use crate::store::StoreError;

/// How often the holds are looked at (each probe is asked at its own `every`).
const TICK: Duration = Duration::from_secs(2);
/// How long a probe may take to answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Asks the held stands' probes until `stop`; with `leader`, only while it says so.
pub async fn run(
    backend: Arc<dyn Backend>,
    config: Arc<PacksConfig>,
    leader: Option<watch::Receiver<bool>>,
    stop: CancellationToken,
) {
    let client = match crate::integrations::http::client() {
        Ok(c) => c,
        Err(e) => {
            warn!(error = e, "stand probes are off");
            return;
        }
    };
    let mut asked: HashMap<String, Instant> = HashMap::new();
    loop {
        if leader.as_ref().is_none_or(|l| *l.borrow())
            && let Err(e) = pass(backend.as_ref(), &config, &client, &mut asked).await
        {
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
    backend: &dyn Backend,
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
        let answer = client
            .get(url.clone())
            .timeout(PROBE_TIMEOUT)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .map_err(|e| crate::integrations::email::chain(&e.without_url()));
        if probe.is_up(answer.clone()) {
            let n = backend.resume_stand(&hold.stand, "probe").await?;
            info!(stand = hold.stand, %url, resolved = n, "the stand's probe answers: the stand is back, its runs start");
            back.push(hold.stand);
        } else {
            debug!(stand = hold.stand, %url, answer = ?answer, "the stand is still down");
        }
    }
    Ok(back)
}
