//! What Tomato counts and times for Prometheus, served at `/metrics` (text format 0.0.4).
//!
//! One process-wide set of families ([`global`]), so that the drivers, the controllers, the
//! store and the HTTP side record where the work happens without threading a handle through
//! every layer. Families and label names follow Prometheus' conventions and kube-rs's
//! controller-rs (`*_total` counters, `*_seconds` histograms, one `controller` label):
//! - reconciles, their errors by reason and their durations, per controller (`testrun`,
//!   `schedule`, `regression`; the standalone driver's passes count as `testrun`);
//! - attempts by service and outcome (the attempt's end state) and their durations;
//! - time spent queued, from a run's creation to its first launch, per service;
//! - report deliveries by channel and outcome;
//! - store operation latency (standalone mode's SQLite, by `read` / `write`);
//! - live-view (SSE) clients connected;
//! - runs by service and phase and queue lengths (`tomato_runs`, `tomato_queue_length`),
//!   counted from the store when scraped.
//!
//! `deploy/grafana-dashboard.json` charts these; a test checks that every series it queries is
//! one this module exports.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::crd::{AttemptState, Channel, Phase};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    pub controller: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub controller: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AttemptLabels {
    pub service: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServiceLabels {
    pub service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    pub channel: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StoreLabels {
    pub operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabels {
    pub service: String,
    pub phase: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every family Tomato exports.
pub struct Metrics {
    registry: Registry,
    /// Serializes scrapes: each replaces the run counts, then encodes.
    scrape_lock: std::sync::Mutex<()>,
    pub reconciles: Family<ControllerLabels, Counter>,
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    pub reconcile_duration: Histograms<ControllerLabels>,
    pub attempts: Family<AttemptLabels, Counter>,
    pub attempt_duration: Histograms<AttemptLabels>,
    pub queue_wait: Histograms<ServiceLabels>,
    pub deliveries: Family<DeliveryLabels, Counter>,
    pub store_duration: Histograms<StoreLabels>,
    pub sse_clients: Gauge,
    pub runs: Family<RunLabels, Gauge>,
    pub queue_length: Family<ServiceLabels, Gauge>,
}

/// Reconciles and store calls: 1 ms to ~16 s.
fn fast() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 4.0, 8))
}

/// Attempts and queue waits: 1 s to ~4.5 h.
fn slow() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 3.0, 10))
}

impl Metrics {
    fn new() -> Metrics {
        let m = Metrics {
            registry: Registry::with_prefix("tomato"),
            scrape_lock: std::sync::Mutex::new(()),
            reconciles: Family::default(),
            reconcile_errors: Family::default(),
            reconcile_duration: Family::new_with_constructor(fast),
            attempts: Family::default(),
            attempt_duration: Family::new_with_constructor(slow),
            queue_wait: Family::new_with_constructor(slow),
            deliveries: Family::default(),
            store_duration: Family::new_with_constructor(fast),
            sse_clients: Gauge::default(),
            runs: Family::default(),
            queue_length: Family::default(),
        };
        let mut registry = m.registry;
        registry.register("reconciles", "Reconciles by controller", m.reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Reconciles that failed, by controller and reason",
            m.reconcile_errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time a reconcile took, by controller",
            m.reconcile_duration.clone(),
        );
        registry.register(
            "attempts",
            "Attempts ended, by service and outcome (the attempt's end state)",
            m.attempts.clone(),
        );
        registry.register(
            "attempt_duration_seconds",
            "Time from an attempt's launch to its end, by service and outcome",
            m.attempt_duration.clone(),
        );
        registry.register(
            "queue_wait_seconds",
            "Time a run waited from its creation to its first launch, by service",
            m.queue_wait.clone(),
        );
        registry.register(
            "report_deliveries",
            "Report delivery attempts, by channel and outcome",
            m.deliveries.clone(),
        );
        registry.register(
            "store_operation_duration_seconds",
            "Latency of the embedded store's operations, by read or write",
            m.store_duration.clone(),
        );
        registry.register(
            "sse_clients",
            "Live-view (SSE) clients connected",
            m.sse_clients.clone(),
        );
        registry.register("runs", "Test runs by service and phase", m.runs.clone());
        registry.register(
            "queue_length",
            "Runs waiting in each service's queue",
            m.queue_length.clone(),
        );
        Metrics { registry, ..m }
    }

    /// One reconcile of `controller` took `took`; `error` is its failure's reason, if it failed.
    pub fn reconciled(&self, controller: &str, took: Duration, error: Option<&str>) {
        let c = ControllerLabels {
            controller: controller.to_string(),
        };
        self.reconciles.get_or_create(&c).inc();
        self.reconcile_duration
            .get_or_create(&c)
            .observe(took.as_secs_f64());
        if let Some(reason) = error {
            self.reconcile_errors
                .get_or_create(&ErrorLabels {
                    controller: controller.to_string(),
                    reason: reason.to_string(),
                })
                .inc();
        }
    }

    /// An attempt of `service` ended in state `outcome` after `took` (when its start is known).
    pub fn attempt_ended(&self, service: &str, outcome: AttemptState, took: Option<Duration>) {
        let l = AttemptLabels {
            service: service.to_string(),
            outcome: outcome.as_str().to_string(),
        };
        self.attempts.get_or_create(&l).inc();
        if let Some(took) = took {
            self.attempt_duration
                .get_or_create(&l)
                .observe(took.as_secs_f64());
        }
    }

    /// A run of `service` was launched for the first time after waiting `waited`.
    pub fn dequeued(&self, service: &str, waited: Duration) {
        self.queue_wait
            .get_or_create(&ServiceLabels {
                service: service.to_string(),
            })
            .observe(waited.as_secs_f64());
    }

    /// A report delivery attempt on `channel` ended with `outcome` (`sent`, `retrying`, `failed`).
    pub fn delivered(&self, channel: Channel, outcome: &str) {
        self.deliveries
            .get_or_create(&DeliveryLabels {
                channel: channel.as_str().to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// A store operation (`read` or `write`) took `took`.
    pub fn store_op(&self, operation: &'static str, took: Duration) {
        self.store_duration
            .get_or_create(&StoreLabels {
                operation: operation.to_string(),
            })
            .observe(took.as_secs_f64());
    }

    /// Replaces the run counts with a fresh count from the store: `(service, phase, n)`, every
    /// known service and phase included (zeros too, so that a series never vanishes).
    pub fn set_runs(&self, counts: impl IntoIterator<Item = (String, Phase, u64)>) {
        self.runs.clear();
        self.queue_length.clear();
        for (service, phase, n) in counts {
            let n = i64::try_from(n).unwrap_or(i64::MAX);
            if phase == Phase::Queued {
                self.queue_length
                    .get_or_create(&ServiceLabels {
                        service: service.clone(),
                    })
                    .set(n);
            }
            self.runs
                .get_or_create(&RunLabels {
                    service,
                    phase: phase.as_str().to_string(),
                })
                .set(n);
        }
    }

    /// A scrape: the run counts replaced by `counts` ([`Metrics::set_runs`]), then every
    /// family encoded, with no other scrape in between (one scrape's clearing never shows in
    /// another's answer).
    pub fn scrape(&self, counts: impl IntoIterator<Item = (String, Phase, u64)>) -> String {
        let _one_at_a_time = self.scrape_lock.lock().unwrap_or_else(|p| p.into_inner());
        self.set_runs(counts);
        self.encode()
    }

    /// Every family, in the Prometheus text format 0.0.4.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// The process's metrics.
pub fn global() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

/// Counts a live-view client for as long as it is held.
pub struct SseClient(());

impl SseClient {
    pub fn connect() -> SseClient {
        global().sse_clients.inc();
        SseClient(())
    }
}

impl Drop for SseClient {
    fn drop(&mut self) {
        global().sse_clients.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_prefixed_typed_and_labelled() {
        let m = Metrics::new();
        m.reconciled("testrun", Duration::from_millis(3), None);
        m.reconciled("testrun", Duration::from_millis(5), Some("kube"));
        m.attempt_ended("demo", AttemptState::Finished, Some(Duration::from_secs(2)));
        m.delivered(Channel::Email, "sent");
        m.set_runs([("demo".to_string(), Phase::Queued, 3)]);
        let text = m.encode();
        assert!(text.contains("# TYPE tomato_reconciles_total counter"), "{text}");
        assert!(
            text.contains("tomato_reconciles_total{controller=\"testrun\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("tomato_reconcile_errors_total{controller=\"testrun\",reason=\"kube\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("tomato_attempt_duration_seconds_count{service=\"demo\",outcome=\"Finished\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("tomato_runs{service=\"demo\",phase=\"Queued\"} 3"),
            "{text}"
        );
        assert!(text.contains("tomato_queue_length{service=\"demo\"} 3"), "{text}");
        assert!(
            text.contains("tomato_report_deliveries_total{channel=\"email\",outcome=\"sent\"} 1"),
            "{text}"
        );
    }

    /// Every series `deploy/grafana-dashboard.json` queries is one these families export.
    #[test]
    fn the_grafana_dashboard_queries_only_exported_series() {
        let m = Metrics::new();
        m.reconciled("testrun", Duration::from_millis(3), Some("kube"));
        m.attempt_ended("demo", AttemptState::Finished, Some(Duration::from_secs(2)));
        m.dequeued("demo", Duration::from_secs(1));
        m.delivered(Channel::Email, "sent");
        m.store_op("read", Duration::from_millis(1));
        m.set_runs([("demo".to_string(), Phase::Queued, 3)]);
        let _client = SseClient::connect();
        let text = m.encode();
        let exported: std::collections::BTreeSet<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split(['{', ' ']).next())
            .collect();
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/grafana-dashboard.json");
        let dashboard: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let series = regex::Regex::new(r"tomato_[a-z_]+").unwrap();
        let mut queried = 0;
        for panel in dashboard["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                for name in series.find_iter(target["expr"].as_str().unwrap()) {
                    queried += 1;
                    assert!(
                        exported.contains(name.as_str()),
                        "panel {} queries {}, which is not exported: {exported:?}",
                        panel["title"],
                        name.as_str()
                    );
                }
            }
        }
        assert!(queried >= 11, "{queried}");
    }

    #[test]
    fn a_label_value_with_quotes_and_newlines_is_escaped() {
        let m = Metrics::new();
        let text = m.scrape([("a\"b\nc\\".to_string(), Phase::Queued, 1)]);
        assert!(
            text.contains(r#"tomato_runs{service="a\"b\nc\\",phase="Queued"} 1"#),
            "{text}"
        );
    }
}
