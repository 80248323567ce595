//! The queue on Kubernetes: which queued TestRuns start now, and every waiting run's
//! `status.queuePosition`.
//!
//! Admission is one decision over all runs of a namespace (a slot freed by one run goes to
//! another), so it is not part of the per-object reconcile: a pass runs [`crate::queue::admit`]
//! — the same pure function as standalone mode — over the controller's reflector store, per
//! namespace, and writes the outcome through the status subresource. The TestRun reconciler
//! wakes it after every change it sees (the store already holds that change by then), and it
//! also runs every half minute.
//!
//! A run admitted here shows as `Running` in the store only once the watch delivers the write;
//! until then it is remembered as admitted, so that the next pass does not hand its slot out
//! twice.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::context::{Context, write_status};
use crate::crd::{Phase, TestRun};
use crate::queue::{self, Entry};

/// How often a pass runs with nothing to wake it.
const IDLE_PASS: Duration = Duration::from_secs(30);

/// The admission loop's shared state.
#[derive(Default)]
pub struct Queue {
    wake: Notify,
    /// Runs this instance admitted that the store still shows queued.
    admitted: Mutex<HashSet<ObjectRef<TestRun>>>,
}

impl Queue {
    /// Asks for a pass (cheap; many calls before the pass runs make one pass).
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

/// Runs admission passes until `stop`.
pub async fn run(store: Store<TestRun>, ctx: Arc<Context>, stop: CancellationToken) {
    // `wait_until_ready` wakes only its last waiter (the controller also waits on this
    // store), so it is polled again every so often rather than awaited once.
    loop {
        tokio::select! {
            r = tokio::time::timeout(Duration::from_millis(100), store.wait_until_ready()) => match r {
                Ok(Ok(())) => break,
                Ok(Err(_)) => return,
                Err(_) => {}
            },
            _ = stop.cancelled() => return,
        }
    }
    loop {
        pass(&store, &ctx).await;
        tokio::select! {
            _ = ctx.queue.wake.notified() => {}
            _ = tokio::time::sleep(IDLE_PASS) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// One pass over every namespace.
async fn pass(store: &Store<TestRun>, ctx: &Context) {
    let runs = store.state();
    let admitted = ctx
        .queue
        .admitted
        .lock()
        .expect("the admission lock is never held across a panic")
        .clone();
    let mut by_namespace: BTreeMap<String, Vec<Arc<TestRun>>> = BTreeMap::new();
    for run in runs {
        by_namespace
            .entry(run.namespace().unwrap_or_default())
            .or_default()
            .push(run);
    }
    let mut still_pending = HashSet::new();
    for (ns, runs) in by_namespace {
        let mut entries = Vec::new();
        for run in &runs {
            let phase = run.status.as_ref().map_or(Phase::Queued, |s| s.phase);
            let key = ObjectRef::from_obj(run.as_ref());
            // A run that packs_config refuses (applied with kubectl, past the API's checks) is
            // never admitted; its reconcile ends it `Error` with the reason.
            let queued = phase == Phase::Queued
                && !run.spec.cancel
                && run.metadata.deletion_timestamp.is_none()
                && ctx.config.check_run(&run.spec.template).is_ok();
            if queued && admitted.contains(&key) {
                still_pending.insert(key);
                entries.push(Entry::of(run, true, &*ctx.config));
            } else if queued {
                entries.push(Entry::of(run, false, &*ctx.config));
            } else if phase.is_active() {
                entries.push(Entry::of(run, true, &*ctx.config));
            }
        }
        let held = crate::outage::held(runs.iter().map(|r| r.as_ref()));
        let decision = queue::admit(&entries, ctx.config.as_ref(), &held);
        tracing::debug!(namespace = ns, entries = entries.len(), admitted = ?decision.admitted, waiting = ?decision.waiting, "admission pass");
        let by_name: HashMap<String, &Arc<TestRun>> = runs.iter().map(|r| (r.name_any(), r)).collect();
        for name in &decision.admitted {
            let Some(run) = by_name.get(name) else { continue };
            match write_status(&ctx.client, run, |st| st.admit(Utc::now())).await {
                Ok(_) => {
                    info!(namespace = ns, run = name, "admitted");
                    crate::metrics::global().dequeued(
                        &run.spec.template.service,
                        (Utc::now() - crate::crd::created(run.as_ref()))
                            .to_std()
                            .unwrap_or_default(),
                    );
                    let key = ObjectRef::from_obj(run.as_ref());
                    still_pending.insert(key.clone());
                    ctx.queue
                        .admitted
                        .lock()
                        .expect("the admission lock is never held across a panic")
                        .insert(key);
                    ctx.event(run.as_ref(), false, "Admitted", "admitted from the queue".into())
                        .await;
                }
                // Changed meanwhile (cancelled, deleted, re-prioritised): the change wakes a new pass.
                Err(e) => {
                    warn!(namespace = ns, run = name, error = %e, "cannot admit; trying again on the next pass")
                }
            }
        }
        for w in &decision.waiting {
            let Some(run) = by_name.get(&w.name) else { continue };
            if !run
                .status
                .as_ref()
                .is_none_or(|st| st.wait_at_changes(Some(w.position), &w.reason))
            {
                continue;
            }
            if let Err(e) = write_status(&ctx.client, run, |st| {
                st.wait_at(Some(w.position), &w.reason);
            })
            .await
            {
                warn!(namespace = ns, run = w.name, error = %e, "cannot update the queue position");
            }
        }
    }
    // Forget admissions the store now shows (or whose runs are gone).
    ctx.queue
        .admitted
        .lock()
        .expect("the admission lock is never held across a panic")
        .retain(|k| still_pending.contains(k));
}
