//! The standalone mute pass: at start and then every 5 minutes (or `TOMATO_MUTE_INTERVAL`),
//! writes what [`crate::mute::pass`] decides into each Mute's status: expired past its date,
//! lifted once its ticket is closed (the tracker of the report settings is read).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::crd::Mute;
use crate::integrations::tracker::IssueTracker;
use crate::store::{ListFilter, SqliteStore, StoreError};

pub struct Mutes {
    store: SqliteStore,
    tracker: Option<Arc<dyn IssueTracker>>,
}

impl Mutes {
    pub fn new(store: SqliteStore, tracker: Option<Arc<dyn IssueTracker>>) -> Self {
        Mutes { store, tracker }
    }

    /// Runs a pass now and then every `every`, until `shutdown`.
    pub async fn run(self, every: Duration, shutdown: CancellationToken) {
        loop {
            if let Err(e) = self.pass(Utc::now(), every).await {
                warn!(error = %e, "mute pass failed; the next pass tries again");
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    /// One pass at `now`; returns how many mutes changed.
    pub async fn pass(&self, now: DateTime<Utc>, every: Duration) -> Result<usize, StoreError> {
        let mutes: Vec<Mute> = self.store.list(&ListFilter::default()).await?;
        let changed = crate::mute::pass(&mutes, now, every, |key| {
            crate::integrations::tracker::read_ticket(self.tracker.clone(), key)
        })
        .await;
        let n = changed.len();
        for (i, status) in changed {
            let name = mutes[i].metadata.name.clone().unwrap_or_default();
            info!(mute = name, state = status.state.as_str(), message = ?status.message, "mute status");
            let res = self
                .store
                .update::<Mute, _>(&name, move |m| {
                    m.status = Some(status);
                    Ok((true, ()))
                })
                .await;
            match res {
                // Deleted meanwhile: nothing to record.
                Ok(_) | Err(StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }
}
