//! `/metrics` in the Prometheus text format 0.0.4: every family of [`crate::metrics`], with the
//! run counts (`tomato_runs`, `tomato_queue_length`) counted from the store when scraped.

use std::collections::BTreeMap;

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
        *by.entry((service, phase)).or_default() += n;
    }
    let text = crate::metrics::global().scrape(by.into_iter().map(|((s, p), n)| (s, p, n)));
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text))
}
