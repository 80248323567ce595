//! `/metrics` after real work: a demo run to its verdict (reruns, a report delivery), a live-view
//! client connected. The text is read by the Prometheus project's own parser (the Python
//! `prometheus_client` package, from PyPI), not by string matching. (That the Grafana dashboard
//! queries only exported series is checked in `src/metrics.rs`, where every family can be
//! given a sample.)

mod support;

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;
use support::{REPO, Server};

/// Parses Prometheus text with `prometheus_client.parser` and prints its families as JSON:
/// `[{name, type, samples: [{name, labels, value}]}]`.
const PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for f in text_string_to_metric_families(sys.stdin.read()):
    out.append({"name": f.name, "type": f.type,
                "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in f.samples]})
print(json.dumps(out))
"#;

fn parse(text: &str) -> Vec<Value> {
    use std::io::Write;
    let mut child = std::process::Command::new("python3")
        .args(["-c", PARSE])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Prometheus parser refused /metrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// The value of the sample `name` whose labels include `labels`, summed over the rest.
fn value(families: &[Value], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for s in families.iter().flat_map(|f| f["samples"].as_array().unwrap()) {
        if s["name"] == name && labels.iter().all(|(k, v)| s["labels"][*k] == *v) {
            *found.get_or_insert(0.0) += s["value"].as_f64().unwrap();
        }
    }
    found
}

#[tokio::test]
async fn metrics_parse_and_count_reconciles_attempts_queueing_deliveries_store_and_live_clients() {
    let hook = report_hook().await;
    let demo = std::fs::read_to_string(format!("{REPO}/packs_config/demo.yaml"))
        .unwrap()
        .replace(
            "report:\n  emails: []",
            &format!("report:\n  emails: []\n  webhooks: ['{hook}/hooks/metrics']"),
        );
    let config = support::config_with(&[("demo.yaml", &demo)]);
    let server = Server::start_with(Some(config.path()), &[]).await;
    let id = server
        .run_now("service=demo&stand=localhost&packs=basic,api")
        .await;
    let st = server.wait_finished(&id, Duration::from_secs(120)).await;
    let attempts = st["attempts"].as_array().map_or(0, Vec::len) as f64;
    assert!(attempts >= 2.0, "the demo reruns its failed tests: {st:#}");

    // A live-view client stays connected while the metrics are read.
    let sse = reqwest::Client::new()
        .get(format!("{}/ui/events", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 200);

    let (code, text) = server.get_text("/metrics").await;
    assert_eq!(code, 200);
    let families = parse(&text);
    let types: HashMap<String, String> = families
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_string(),
                f["type"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (family, kind) in [
        ("tomato_runs", "gauge"),
        ("tomato_queue_length", "gauge"),
        ("tomato_reconciles", "counter"),
        ("tomato_reconcile_duration_seconds", "histogram"),
        ("tomato_attempts", "counter"),
        ("tomato_attempt_duration_seconds", "histogram"),
        ("tomato_queue_wait_seconds", "histogram"),
        ("tomato_report_deliveries", "counter"),
        ("tomato_store_operation_duration_seconds", "histogram"),
        ("tomato_sse_clients", "gauge"),
    ] {
        assert_eq!(
            types.get(family).map(String::as_str),
            Some(kind),
            "{family}: {types:?}"
        );
    }

    let phase = st["phase"].as_str().unwrap();
    assert_eq!(
        value(&families, "tomato_runs", &[("service", "demo"), ("phase", phase)]),
        Some(1.0)
    );
    assert_eq!(
        value(&families, "tomato_queue_length", &[("service", "demo")]),
        Some(0.0)
    );
    assert!(value(&families, "tomato_reconciles_total", &[("controller", "testrun")]).unwrap() >= attempts);
    assert_eq!(
        value(&families, "tomato_attempts_total", &[("service", "demo")]),
        Some(attempts),
        "one count per attempt"
    );
    assert_eq!(
        value(
            &families,
            "tomato_attempt_duration_seconds_count",
            &[("service", "demo")]
        ),
        Some(attempts)
    );
    assert_eq!(
        value(
            &families,
            "tomato_queue_wait_seconds_count",
            &[("service", "demo")]
        ),
        Some(1.0),
        "one first launch"
    );
    assert_eq!(
        value(
            &families,
            "tomato_report_deliveries_total",
            &[("channel", "webhook"), ("outcome", "sent")]
        ),
        Some(1.0)
    );
    for op in ["read", "write"] {
        assert!(
            value(
                &families,
                "tomato_store_operation_duration_seconds_count",
                &[("operation", op)]
            )
            .unwrap()
                > 0.0,
            "{op}"
        );
    }
    assert_eq!(value(&families, "tomato_sse_clients", &[]), Some(1.0));
    drop(sse);
}

/// A webhook receiver that takes every message: an in-process stand-in for a chat service.
async fn report_hook() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(|| async { "ok" });
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}
