//! The HTTP side: the old tool's four handles, the versioned REST API, health and metrics.
//!
//! [`app`] builds the whole router over an [`AppState`], so tests drive it with `oneshot`
//! and no socket. Handlers are thin: extract and check parameters, call the backend, map the
//! result. Both modes serve the same app; only the [`Backend`] differs.

mod allure;
mod auth;
mod error;
mod extract;
mod head_guard;
mod legacy;
mod metrics;
mod openapi;
mod regressions;
mod runs;
mod schedules;
mod spec;
mod uploads;
mod v1;

#[cfg(test)]
mod app_tests;
#[cfg(test)]
mod auth_tests;

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use tower_http::trace::TraceLayer;

pub use allure::{AllureView, AttachmentView, StepView, attempt_extras};
pub use auth::{AuditLog, Auth, KubeAuth, Role, Tokens};
pub use error::{ApiError, ErrorBody, FieldError};
/// The legacy handles' parameters (query string plus form or JSON body); public for the fuzzer.
pub use legacy::Params;
pub use regressions::NO_TMS;
pub use runs::{
    LegacyStatus, QueueEntry, QueueView, TestView, merged_tests, new_run, queue_view, test_views,
};

use crate::backend::Backend;
use crate::packs::PacksConfig;

/// What handlers can reach: read-mostly, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub backend: Arc<dyn Backend>,
    pub config: Arc<PacksConfig>,
    /// Who may read and write, and the audit log of writes ([`auth`]).
    pub auth: Auth,
    /// Base URL of the web UI for links in reports (`TOMATO_PUBLIC_URL`).
    pub public_url: String,
    /// Where attempt logs and JUnit files live (standalone mode).
    pub data_dir: Option<std::path::PathBuf>,
    /// Whether test management (Kiwi TCMS) is configured. Without it a regression can only
    /// fail, so none is accepted, and the regressions page says why.
    pub tms_configured: bool,
}

/// The whole application router.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(legacy::routes())
        .merge(v1::routes())
        .merge(schedules::routes())
        .merge(regressions::routes())
        .merge(crate::ui::routes())
        .route("/metrics", get(metrics::metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authorize,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::ui::refuse_cross_site_writes,
        ))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(1 << 20))
        // Uploads from Jobs carry the run's own token, not an API token, and are larger.
        .merge(uploads::routes())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::audit_writes,
        ))
        .layer(axum::middleware::from_fn(error::json_errors))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Where people reach the server when `TOMATO_PUBLIC_URL` does not say: the listen address,
/// or, when that is every interface (`0.0.0.0`, `::`), this machine's host name — a link to
/// `http://0.0.0.0:8080` in a report email would lead nowhere.
pub fn default_public_url(addr: std::net::SocketAddr, hostname: Option<&str>) -> String {
    match hostname.map(str::trim).filter(|h| !h.is_empty()) {
        Some(host) if addr.ip().is_unspecified() => format!("http://{host}:{}", addr.port()),
        _ => format!("http://{addr}"),
    }
}

/// This machine's host name (Linux), for [`default_public_url`].
pub fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname").ok()
}

/// Serves the app on `listener` until SIGINT or SIGTERM, then cancels `stop` (so the mode's
/// tasks wind down) and finishes the requests in flight.
///
/// hyper is driven here rather than through `axum::serve` so that each connection's bytes pass
/// through [`head_guard::HeadGuard`]: a request line too long for hyper is answered with the
/// API's JSON error instead of hyper's empty 414 or 431.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    stop: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    let app = app(state);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new());
    let terminated = crate::signals::terminated();
    tokio::pin!(terminated);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut terminated => {
                stop.cancel();
                break;
            }
            _ = stop.cancelled() => break,
        };
        let io = TokioIo::new(head_guard::HeadGuard::new(stream));
        // No route upgrades a connection (live pages use server-sent events), so none is kept.
        // The peer's address, for the audit log (as `into_make_service_with_connect_info` gives it).
        let service = tower::Layer::layer(&axum::Extension(axum::extract::ConnectInfo(peer)), app.clone());
        let conn = http.serve_connection(io, TowerToHyperService::new(service));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

async fn readyz(axum::extract::State(state): axum::extract::State<AppState>) -> impl IntoResponse {
    match state.backend.ready().await {
        Ok(()) => (StatusCode::OK, "ready".to_string()),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_public_url_never_points_at_every_interface() {
        let local = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(
            default_public_url(local, Some("qa-box\n")),
            "http://127.0.0.1:8080"
        );
        let any = "0.0.0.0:8080".parse().unwrap();
        assert_eq!(default_public_url(any, Some("qa-box\n")), "http://qa-box:8080");
        assert_eq!(default_public_url(any, None), "http://0.0.0.0:8080");
        let any6 = "[::]:9000".parse().unwrap();
        assert_eq!(default_public_url(any6, Some("qa-box")), "http://qa-box:9000");
    }
}
