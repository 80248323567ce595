//! The server: the API and the web UI assembled into one router ([`app`]), served until a
//! signal ([`serve`]), with health and readiness, and the public URL reports link to.
//!
//! This is the one place that knows both [`crate::api`] and [`crate::ui`]: the UI builds on
//! the API, the API knows nothing of the UI, and neither knows which mode runs them — that is
//! the [`crate::backend::Backend`] in [`AppState`]. Tests drive [`app`] in process with
//! `oneshot` and no socket.

mod head_guard;

#[cfg(test)]
mod app_tests;
#[cfg(test)]
mod auth_tests;
#[cfg(test)]
mod error_paths_tests;

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use tower_http::trace::TraceLayer;

use crate::api::{self, AppState};
use crate::ui;

/// The whole application router: the API's routes and the UI's pages behind one authorization,
/// one cross-site check and one body limit; uploads from Jobs beside them; every write audited
/// and every error answered as the API's JSON.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(api::routes())
        .merge(ui::routes())
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            api::authorize,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ui::refuse_cross_site_writes,
        ))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(1 << 20))
        .merge(api::upload_routes())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            api::audit_writes,
        ))
        .layer(axum::middleware::from_fn(api::json_errors))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Binds the server's address and settles its public URL: `public_url` when given, else
/// this host at the bound port (which `:0` only knows once bound). Both modes start so.
pub async fn listen(
    addr: std::net::SocketAddr,
    public_url: Option<&str>,
) -> anyhow::Result<(tokio::net::TcpListener, String)> {
    use anyhow::Context as _;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let bound = listener.local_addr()?;
    let url = public_url.map_or_else(
        || default_public_url(bound, hostname().as_deref()),
        str::to_string,
    );
    Ok((listener, url))
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
