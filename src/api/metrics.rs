//! `/metrics` in the Prometheus text format: runs by service and phase, queue lengths.

use std::collections::BTreeMap;
use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::{ApiError, AppState};
use crate::crd::Phase;

pub async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let mut by: BTreeMap<(String, Phase), u64> = BTreeMap::new();
    for s in state.config.services() {
        for p in Phase::ALL {
            by.insert((s.name.clone(), p), 0);
        }
    }
    for (service, phase, n) in state.backend.run_counts().await? {
        let phase = phase.parse::<Phase>().unwrap_or_default();
        *by.entry((service, phase)).or_default() += n;
    }
    let mut out = String::new();
    let _ = writeln!(out, "# HELP tomato_runs Test runs by service and phase.");
    let _ = writeln!(out, "# TYPE tomato_runs gauge");
    for ((service, phase), n) in &by {
        let _ = writeln!(
            out,
            "tomato_runs{{service=\"{}\",phase=\"{phase}\"}} {n}",
            escape(service)
        );
    }
    let _ = writeln!(
        out,
        "# HELP tomato_queue_length Runs waiting in each service's queue."
    );
    let _ = writeln!(out, "# TYPE tomato_queue_length gauge");
    for ((service, phase), n) in &by {
        if *phase == Phase::Queued {
            let _ = writeln!(out, "tomato_queue_length{{service=\"{}\"}} {n}", escape(service));
        }
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out))
}

fn escape(s: &str) -> String {
    s.replace('\\', r"\\").replace('"', "\\\"").replace('\n', r"\n")
}
