//! Optional API tokens: when configured, every write needs `Authorization: Bearer <token>`;
//! reads stay open (the old tool had no auth, and dashboards must keep working).

use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::{ApiError, AppState};
use crate::secrets::Secret;

/// The accepted tokens. Empty means writes are open.
#[derive(Clone, Default)]
pub struct Tokens(Vec<Secret>);

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({} configured)", self.0.len())
    }
}

impl Tokens {
    pub fn new(tokens: impl IntoIterator<Item = String>) -> Self {
        Tokens(
            tokens
                .into_iter()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .map(Secret::new)
                .collect(),
        )
    }

    /// From `TOMATO_API_TOKENS` (comma-separated) or `TOMATO_API_TOKENS_FILE` (one per line).
    pub fn from_env() -> Result<Self, String> {
        Ok(match crate::secrets::from_env("TOMATO_API_TOKENS")? {
            Some(s) => Tokens::new(s.expose().split([',', '\n']).map(str::to_string)),
            None => Tokens::default(),
        })
    }

    pub fn is_enabled(&self) -> bool {
        !self.0.is_empty()
    }

    /// Compares in constant time against every token (no early exit on the first match, so
    /// timing tells nothing about which token or how much of it matched).
    pub fn accepts(&self, presented: &str) -> bool {
        let mut ok = subtle::Choice::from(0u8);
        for t in &self.0 {
            ok |= t.expose().as_bytes().ct_eq(presented.as_bytes());
        }
        ok.into()
    }
}

/// Middleware: writes need a valid bearer token when tokens are configured.
pub async fn require_token_for_writes(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let read = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if read || !state.tokens.is_enabled() {
        return next.run(req).await;
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
    match presented {
        None => ApiError::unauthorized(
            "this server requires an API token for changes: send Authorization: Bearer <token>",
        )
        .into_response(),
        Some(t) if state.tokens.accepts(t.trim()) => next.run(req).await,
        Some(_) => ApiError::unauthorized("the API token is not valid").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_configured_tokens_and_never_prints_them() {
        let t = Tokens::new(["alpha".to_string(), " beta ".to_string(), String::new()]);
        assert!(t.accepts("alpha") && t.accepts("beta"));
        assert!(!t.accepts("alph") && !t.accepts("") && !t.accepts("alphaa"));
        assert_eq!(format!("{t:?}"), "Tokens(2 configured)");
        assert!(!Tokens::default().is_enabled());
    }
}
