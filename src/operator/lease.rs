//! Leader election over a `coordination.k8s.io/v1` Lease, so that several replicas can run
//! and exactly one reconciles (creates Jobs, writes status); the others serve the API's read
//! paths and take over when the leader's lease expires.
//!
//! The decision is a pure function ([`decide`]) of the Lease as read, this replica's identity
//! and the time; every write carries the Lease's resourceVersion, so of two replicas racing
//! for an expired lease exactly one wins (the other gets 409 and follows). A leader that
//! cannot renew for a whole lease duration steps down on its own before anyone else can
//! take over, and a replica stopping cleanly releases the lease so the next one need not
//! wait for it to expire.

use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::{Client, ResourceExt};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Lease timing and names.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    pub name: String,
    pub namespace: String,
    /// This replica (its pod name).
    pub identity: String,
    /// How long a lease holds without renewal.
    pub duration: Duration,
    /// How often the holder renews (and a follower looks).
    pub renew_every: Duration,
}

/// What to do with the Lease as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// It is ours: renew it.
    Renew,
    /// Nobody holds it, or its holder let it expire: take it.
    Acquire,
    /// Someone else holds it.
    Follow { holder: String },
}

/// Decides from the Lease's spec. Pure.
pub fn decide(spec: &LeaseSpec, me: &str, now: DateTime<Utc>) -> Decision {
    let holder = spec.holder_identity.as_deref().unwrap_or_default();
    if holder == me {
        return Decision::Renew;
    }
    let duration = chrono::Duration::seconds(i64::from(spec.lease_duration_seconds.unwrap_or(0)));
    let expired = match spec.renew_time.as_ref() {
        Some(t) => to_chrono(t) + duration <= now,
        None => true,
    };
    if holder.is_empty() || expired {
        Decision::Acquire
    } else {
        Decision::Follow {
            holder: holder.to_string(),
        }
    }
}

fn to_chrono(t: &MicroTime) -> DateTime<Utc> {
    DateTime::from_timestamp(t.0.as_second(), t.0.subsec_nanosecond().max(0) as u32).unwrap_or_default()
}

fn micro(t: DateTime<Utc>) -> MicroTime {
    MicroTime(
        k8s_openapi::jiff::Timestamp::new(t.timestamp(), t.timestamp_subsec_nanos() as i32)
            .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
    )
}

/// Keeps trying to hold the lease until `stop`; publishes whether this replica leads.
pub async fn run(
    client: Client,
    settings: LeaseSettings,
    leader: watch::Sender<bool>,
    stop: CancellationToken,
) {
    let api: Api<Lease> = Api::namespaced(client, &settings.namespace);
    let mut last_renewed: Option<tokio::time::Instant> = None;
    loop {
        // A request the API server never answers must not keep this replica leading: each
        // look at the lease gets until the next one, then counts as failed.
        let look = tokio::time::timeout(settings.renew_every, try_hold(&api, &settings)).await;
        match look.unwrap_or_else(|_| Err(kube::Error::Service("the lease request timed out".into()))) {
            Ok(true) => {
                if !*leader.borrow() {
                    info!(
                        identity = settings.identity,
                        lease = settings.name,
                        "became the leader"
                    );
                }
                last_renewed = Some(tokio::time::Instant::now());
                leader.send_replace(true);
            }
            Ok(false) => {
                if *leader.borrow() {
                    warn!(identity = settings.identity, "lost the lease; no longer leading");
                }
                last_renewed = None;
                leader.send_replace(false);
            }
            Err(e) => {
                warn!(error = %e, "cannot read or renew the lease");
                // Step down before anyone else may take over.
                if last_renewed.is_some_and(|t| t.elapsed() + settings.renew_every >= settings.duration) {
                    warn!(
                        identity = settings.identity,
                        "could not renew the lease in time; stepping down"
                    );
                    last_renewed = None;
                    leader.send_replace(false);
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(settings.renew_every) => {}
            _ = stop.cancelled() => break,
        }
    }
    if *leader.borrow() {
        leader.send_replace(false);
        let released = tokio::time::timeout(settings.renew_every, release(&api, &settings)).await;
        if let Err(e) =
            released.unwrap_or_else(|_| Err(kube::Error::Service("the lease request timed out".into())))
        {
            warn!(error = %e, "cannot release the lease; the next leader waits for it to expire");
        }
    }
}

/// One look at the lease: `Ok(true)` when this replica holds it afterwards.
async fn try_hold(api: &Api<Lease>, settings: &LeaseSettings) -> Result<bool, kube::Error> {
    let now = Utc::now();
    let duration_secs = i32::try_from(settings.duration.as_secs().max(1)).unwrap_or(i32::MAX);
    let Some(mut lease) = api.get_opt(&settings.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(settings.name.clone()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(settings.identity.clone()),
                lease_duration_seconds: Some(duration_secs),
                acquire_time: Some(micro(now)),
                renew_time: Some(micro(now)),
                lease_transitions: Some(0),
                ..Default::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let spec = lease.spec.get_or_insert_default();
    match decide(spec, &settings.identity, now) {
        Decision::Follow { .. } => return Ok(false),
        Decision::Renew => {
            spec.renew_time = Some(micro(now));
            spec.lease_duration_seconds = Some(duration_secs);
        }
        Decision::Acquire => {
            spec.holder_identity = Some(settings.identity.clone());
            spec.acquire_time = Some(micro(now));
            spec.renew_time = Some(micro(now));
            spec.lease_duration_seconds = Some(duration_secs);
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
    }
    lease.metadata.managed_fields = None;
    match api
        .replace(&lease.name_any(), &PostParams::default(), &lease)
        .await
    {
        Ok(_) => Ok(true),
        // Another replica wrote first: it leads.
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Gives the lease up (no holder), so another replica takes it at its next look.
async fn release(api: &Api<Lease>, settings: &LeaseSettings) -> Result<(), kube::Error> {
    let Some(mut lease) = api.get_opt(&settings.name).await? else {
        return Ok(());
    };
    let spec = lease.spec.get_or_insert_default();
    if spec.holder_identity.as_deref() != Some(settings.identity.as_str()) {
        return Ok(());
    }
    spec.holder_identity = None;
    lease.metadata.managed_fields = None;
    api.replace(&settings.name, &PostParams::default(), &lease)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: Option<&str>, renewed: DateTime<Utc>, secs: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(Into::into),
            renew_time: Some(micro(renewed)),
            lease_duration_seconds: Some(secs),
            ..Default::default()
        }
    }

    #[test]
    fn a_holder_renews_its_own_lease() {
        let now = Utc::now();
        assert_eq!(decide(&spec(Some("a"), now, 15), "a", now), Decision::Renew);
    }

    #[test]
    fn a_live_lease_of_another_replica_is_followed() {
        let now = Utc::now();
        assert_eq!(
            decide(&spec(Some("b"), now - chrono::Duration::seconds(5), 15), "a", now),
            Decision::Follow { holder: "b".into() }
        );
    }

    #[test]
    fn an_expired_or_released_lease_is_taken() {
        let now = Utc::now();
        assert_eq!(
            decide(
                &spec(Some("b"), now - chrono::Duration::seconds(16), 15),
                "a",
                now
            ),
            Decision::Acquire
        );
        assert_eq!(decide(&spec(None, now, 15), "a", now), Decision::Acquire);
        assert_eq!(decide(&LeaseSpec::default(), "a", now), Decision::Acquire);
    }

    #[test]
    fn times_survive_the_round_trip_to_microtime() {
        let now = DateTime::from_timestamp(1_700_000_000, 123_456_000).unwrap();
        assert_eq!(to_chrono(&micro(now)), now);
    }
}
