//! The leader's mute pass: at start and then every 5 minutes (or `TOMATO_MUTE_INTERVAL`),
//! writes what [`crate::mute::pass`] decides into each Mute's status (expired past its date,
//! lifted once its ticket is closed), as standalone mode's pass does.

use std::sync::Arc;

use chrono::Utc;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::context::{Context, Error, MANAGER};
use super::{Scope, scoped};
use crate::crd::Mute;

/// Runs a pass now and then every `ctx.timing.mutes`, until `stop`.
pub async fn run(ctx: Arc<Context>, scope: Scope, stop: CancellationToken) {
    loop {
        if let Err(e) = pass(&ctx, &scope).await {
            warn!(error = %e, "mute pass failed; the next pass tries again");
        }
        tokio::select! {
            _ = tokio::time::sleep(ctx.timing.mutes) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// One pass now over the Mutes of `scope`; returns how many changed.
pub async fn pass(ctx: &Context, scope: &Scope) -> Result<usize, Error> {
    let mutes = match scoped::<Mute>(&ctx.client, scope)
        .list(&ListParams::default())
        .await
    {
        Ok(l) => l.items,
        // The Mute CRD is not installed (an upgrade that did not apply crds/): nothing to do.
        Err(kube::Error::Api(e)) if e.code == 404 => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    let tracker = ctx.regressions.tracker.clone();
    let changed = crate::mute::pass(&mutes, Utc::now(), ctx.timing.mutes, |key| {
        crate::integrations::tracker::read_ticket(tracker.clone(), key)
    })
    .await;
    let n = changed.len();
    for (i, status) in changed {
        let mute = &mutes[i];
        let name = mute.name_any();
        info!(mute = name, state = status.state.as_str(), message = ?status.message, "mute status");
        let api: Api<Mute> = Api::namespaced(ctx.client.clone(), &mute.namespace().unwrap_or_default());
        // A merge patch keeps what it does not name: a field now absent is sent as null.
        let mut body = serde_json::to_value(&status).unwrap_or_default();
        if let Some(map) = body.as_object_mut() {
            for field in ["message", "ticketStatus", "checkedAt", "endedAt"] {
                map.entry(field).or_insert(serde_json::Value::Null);
            }
        }
        let patch = Patch::Merge(serde_json::json!({ "status": body }));
        let params = PatchParams {
            field_manager: Some(MANAGER.to_string()),
            ..PatchParams::default()
        };
        match api.patch_status(&name, &params, &patch).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(n)
}
