//! Cross-site request forgery: a state-changing request that a browser sends on behalf of
//! another site is refused, for the whole app (UI, `/api/v1` and the legacy handles).
//!
//! The legacy handles accept form bodies, so a hostile page could otherwise queue runs with a
//! plain auto-submitting `<form>`. Browsers say where a request comes from: `Sec-Fetch-Site`
//! (every current browser) and `Origin` (on every cross-origin POST). The rule, as Go's
//! `http.CrossOriginProtection` has it: a write whose `Sec-Fetch-Site` is not `same-origin`
//! (or `none`, typed by the user) is refused; without that header, a write whose `Origin`
//! names another host than the request's `Host` (or the configured public URL) is refused.
//! Requests carrying neither header are not from a browser — the old tool's clients (curl,
//! python `requests`) — and pass, as they always did. No token to embed in forms, no cookie:
//! the UI makes its changes with `fetch`, which sends these headers by itself.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::{ApiError, AppState};

/// Why a request was refused.
#[derive(Debug, PartialEq, Eq)]
pub struct CrossSite(pub String);

/// Decides whether a request may go on. `public_url` is the UI's advertised base URL, whose
/// origin is trusted even when a proxy rewrote `Host`.
pub fn check(method: &Method, headers: &HeaderMap, public_url: &str) -> Result<(), CrossSite> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let text = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or("").trim());
    if let Some(site) = text("sec-fetch-site") {
        return match site {
            "same-origin" | "none" => Ok(()),
            other => Err(CrossSite(format!(
                "a {other} request may not change anything here (Sec-Fetch-Site: {other})"
            ))),
        };
    }
    let Some(origin) = text(header::ORIGIN.as_str()) else {
        return Ok(());
    };
    let host = text(header::HOST.as_str()).unwrap_or("");
    let origin_host = origin.split_once("://").map_or("", |(_, rest)| rest);
    let public_host = public_url
        .split_once("://")
        .map_or("", |(_, rest)| rest.split('/').next().unwrap_or(""));
    let same = |a: &str, b: &str| !a.is_empty() && a.eq_ignore_ascii_case(b);
    if same(origin_host, host) || same(origin_host, public_host) {
        Ok(())
    } else {
        Err(CrossSite(format!(
            "a request from {origin} may not change anything here (Origin does not match {host})"
        )))
    }
}

/// Middleware refusing cross-site writes with 403 `{"error", "parameter": "Origin"}`.
pub async fn refuse_cross_site_writes(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match check(req.method(), req.headers(), &state.public_url) {
        Ok(()) => next.run(req).await,
        Err(CrossSite(why)) => {
            tracing::warn!(method = %req.method(), uri = %req.uri(), "{why}");
            ApiError {
                status: StatusCode::FORBIDDEN,
                message: format!("cross-site request refused: {why}"),
                parameter: Some("Origin".into()),
                errors: Vec::new(),
            }
            .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    const PUBLIC: &str = "https://tomato.example.com";

    #[test]
    fn old_clients_without_browser_headers_keep_working() {
        let h = headers(&[("host", "127.0.0.1:8080")]);
        assert_eq!(check(&Method::POST, &h, PUBLIC), Ok(()));
        assert_eq!(check(&Method::DELETE, &HeaderMap::new(), PUBLIC), Ok(()));
    }

    #[test]
    fn the_ui_posting_to_its_own_server_passes() {
        let fetch = headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
            ("sec-fetch-site", "same-origin"),
        ]);
        assert_eq!(check(&Method::POST, &fetch, PUBLIC), Ok(()));
        let old_browser = headers(&[("host", "127.0.0.1:8080"), ("origin", "http://127.0.0.1:8080")]);
        assert_eq!(check(&Method::PATCH, &old_browser, PUBLIC), Ok(()));
        let behind_proxy = headers(&[
            ("host", "10.0.0.5:8080"),
            ("origin", "https://tomato.example.com"),
        ]);
        assert_eq!(check(&Method::POST, &behind_proxy, PUBLIC), Ok(()));
    }

    #[test]
    fn a_form_posted_from_another_site_is_refused() {
        let cross = headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://evil.example"),
            ("sec-fetch-site", "cross-site"),
        ]);
        assert!(check(&Method::POST, &cross, PUBLIC).is_err());
        // Another port of the same host is the same site but not the same origin.
        let same_site = headers(&[("host", "127.0.0.1:8080"), ("sec-fetch-site", "same-site")]);
        assert!(check(&Method::POST, &same_site, PUBLIC).is_err());
        let old_browser = headers(&[("host", "127.0.0.1:8080"), ("origin", "http://127.0.0.1:9999")]);
        assert!(check(&Method::DELETE, &old_browser, PUBLIC).is_err());
        let sandboxed = headers(&[("host", "127.0.0.1:8080"), ("origin", "null")]);
        assert!(check(&Method::POST, &sandboxed, PUBLIC).is_err());
    }

    #[test]
    fn reads_are_never_refused() {
        let cross = headers(&[
            ("origin", "http://evil.example"),
            ("sec-fetch-site", "cross-site"),
        ]);
        assert_eq!(check(&Method::GET, &cross, PUBLIC), Ok(()));
    }
}
