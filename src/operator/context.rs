//! What the operator's controllers share: the client, packs_config, settings, the event
//! recorder, the admission queue's wake-up, and the results cache; plus the one error type
//! of reconciliation.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource, ResourceExt};
use tracing::warn;

use super::admission::Queue;
use super::results::{Keeper, ResultsError};
use crate::crd::{TestRun, TestRunStatus};
use crate::launch::job::JobSettings;
use crate::packs::PacksConfig;

/// The field manager of everything the operator applies.
pub const MANAGER: &str = "tomato-operator";

/// Reconciliation failed; the controller retries (see `error_policy`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the Kubernetes API failed: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Results(#[from] ResultsError),
    #[error("cannot serialize an object: {0}")]
    Json(#[from] serde_json::Error),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    /// Something is under way (a Job stopping); try again shortly.
    #[error("{0}")]
    Waiting(String),
}

impl Error {
    /// A short label for logs and metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(e)) if e.code == 409 => "conflict",
            Error::Kube(_) => "kube",
            Error::Results(_) => "results",
            Error::Json(_) => "json",
            Error::Finalizer(_) => "finalizer",
            Error::Waiting(_) => "waiting",
        }
    }

    /// A write lost a race with another writer (stale resourceVersion).
    pub fn is_conflict(&self) -> bool {
        match self {
            Error::Kube(kube::Error::Api(e)) => e.code == 409,
            Error::Finalizer(f) => matches!(
                f.as_ref(),
                kube::runtime::finalizer::Error::ApplyFailed(e) | kube::runtime::finalizer::Error::CleanupFailed(e)
                    if e.is_conflict()
            ),
            _ => false,
        }
    }
}

/// Timing of the controllers (shorter in tests).
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// How often a running attempt is looked at (pod stuck on its image, upload overdue).
    pub poll: Duration,
    /// How long after its Job finished an attempt's upload may still come before the pod
    /// log is read instead.
    pub upload_grace: Duration,
    /// Retry delay after a failed reconcile.
    pub retry: Duration,
    /// How often the leader's retention pass runs (`TOMATO_RETENTION_INTERVAL`).
    pub retention: Duration,
    /// How often the leader's mute pass runs (`TOMATO_MUTE_INTERVAL`).
    pub mutes: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            poll: Duration::from_secs(15),
            upload_grace: Duration::from_secs(60),
            retry: Duration::from_secs(5),
            retention: crate::retention::DEFAULT_INTERVAL,
            mutes: crate::mute::DEFAULT_INTERVAL,
        }
    }
}

/// Shared by every reconcile call.
pub struct Context {
    pub client: Client,
    pub config: Arc<PacksConfig>,
    pub jobs: JobSettings,
    pub timing: Timing,
    pub recorder: Recorder,
    pub queue: Arc<Queue>,
    pub results: Arc<Keeper>,
    /// Delivers reports (the same code as standalone mode's).
    pub reporter: Arc<crate::report::Reporter>,
    /// Test management, tracker and email for regressions (the same as standalone mode's).
    pub regressions: crate::regression::Context,
}

pub use crate::report::Integrations;

impl Context {
    pub fn new(
        client: Client,
        config: Arc<PacksConfig>,
        jobs: JobSettings,
        timing: Timing,
        identity: &str,
        results: Arc<Keeper>,
        integrations: Integrations,
    ) -> Self {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: MANAGER.into(),
                instance: Some(identity.to_string()),
            },
        );
        Context {
            client,
            config,
            jobs,
            timing,
            recorder,
            queue: Arc::new(Queue::default()),
            results,
            reporter: integrations.reporter,
            regressions: integrations.regressions,
        }
    }

    pub fn api<K>(&self, ns: &str) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), ns)
    }

    pub fn config_maps(&self, ns: &str) -> Api<ConfigMap> {
        self.api(ns)
    }

    /// Publishes a Kubernetes Event about `obj` (a run or a schedule). A failure is logged:
    /// events are a courtesy, never a reason to fail a reconcile.
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        warning: bool,
        reason: &str,
        note: String,
    ) {
        let ev = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.into(),
            note: Some(note),
            action: reason.into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &obj.object_ref(&())).await {
            warn!(object = obj.meta().name.as_deref().unwrap_or_default(), reason, error = %e, "cannot publish an event");
        }
    }
}

/// Writes a run's status through the status subresource ([`replace_status`]).
/// `observedGeneration` is set on every write. Returns the stored run.
pub async fn write_status(
    client: &Client,
    run: &TestRun,
    change: impl FnOnce(&mut TestRunStatus),
) -> Result<TestRun, Error> {
    replace_status(client, run, |obj| {
        let st = obj.status.get_or_insert_default();
        change(st);
        // A rerun's long list kept in the results database stays out of the object.
        for a in &mut st.attempts {
            a.selection.compact();
        }
        st.observed_generation = run.metadata.generation;
    })
    .await
}

/// Replaces an object's status through the status subresource, as `set` writes it into a
/// copy, with the object's resourceVersion: a concurrent change makes it fail with 409, and
/// the reconcile is retried on fresh state. The run, schedule and regression controllers
/// write their status so (the mute pass and the stand holds patch single fields).
pub async fn replace_status<K>(client: &Client, obj: &K, set: impl FnOnce(&mut K)) -> Result<K, Error>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let mut copy = obj.clone();
    copy.meta_mut().managed_fields = None;
    set(&mut copy);
    let api: Api<K> = Api::namespaced(client.clone(), &obj.namespace().unwrap_or_default());
    Ok(api
        .replace_status(&obj.name_any(), &PostParams::default(), &copy)
        .await?)
}
