//! Who may do what through the HTTP side, and the record of every write.
//!
//! - [`routes`]: what a request is — open (probes, `/metrics`, static files), a read, a write
//!   (the role it needs; the Kubernetes verb and resource it amounts to), or a Job's upload.
//!   The one place that maps routes to rights.
//! - [`roles`]: standalone tokens. Bare tokens from `TOMATO_API_TOKENS` /
//!   `TOMATO_API_TOKENS_FILE` keep full rights (`admin`); the roles file
//!   (`TOMATO_API_ROLES_FILE`) names tokens with a role `read` < `run` < `admin` and says whether
//!   reads are open; it is reloaded when it changes. No token configured: writes are open,
//!   as in the old tool.
//! - [`kube`]: operator mode. Kubernetes is the authority: a bearer token is authenticated
//!   with a TokenReview and each write authorised with a SubjectAccessReview. Static tokens,
//!   if configured, are still accepted with their role (for compatibility; they bypass RBAC,
//!   which the operator logs at start).
//! - [`audit`]: one JSON line per write, allowed or refused.
//!
//! A token is sent as `Authorization: Bearer <token>`, or as the password of `Basic` (what a
//! browser sends after its own prompt: a page refused for want of a token, with reads closed,
//! answers `WWW-Authenticate: Basic`, so the web UI stays usable).
//!
//! Answers: 401 (`WWW-Authenticate: Bearer`) for a missing or unknown token, 403 naming the
//! role needed (or what Kubernetes refused) for a known one without the right, 503 when the
//! API server cannot be asked. Uploads from Jobs carry their run's own token, checked by
//! their handler, and are audited as `run-token`.

pub mod audit;
pub mod kube;
pub mod roles;
pub mod routes;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

pub use audit::{AuditLog, Who};
pub use kube::KubeAuth;
pub use roles::Tokens;
pub use routes::{Access, Role};

use super::{ApiError, AppState};
use routes::Write;

/// The HTTP side's authentication, authorisation and audit settings; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Auth {
    tokens: Tokens,
    kube: Option<Arc<KubeAuth>>,
    audit: Arc<AuditLog>,
}

/// Marks a response refused by authorisation (for the audit record).
#[derive(Clone, Copy, Debug)]
struct Refused;

impl Auth {
    /// Everything open, audit lines to the log only (tests, and a server with no tokens).
    pub fn open() -> Auth {
        Auth::default()
    }

    pub fn new(tokens: Tokens, audit: AuditLog) -> Auth {
        Auth {
            tokens,
            kube: None,
            audit: Arc::new(audit),
        }
    }

    /// Kubernetes authenticates and authorises (operator mode).
    pub fn with_kubernetes(mut self, kube: KubeAuth) -> Auth {
        self.kube = Some(Arc::new(kube));
        self
    }

    /// Operator mode: Kubernetes is the authority; static `tokens`, if configured, are still
    /// accepted with their role, which bypasses RBAC, so that is said at start, as is a
    /// ServiceAccount that may not create the reviews (checked in the background). The audit
    /// log goes to the log, and to `TOMATO_AUDIT_LOG` when set. Needs a Tokio runtime.
    pub fn for_operator(tokens: Tokens, client: &::kube::Client, namespace: &str) -> Result<Auth, String> {
        if tokens.is_enabled() {
            tracing::warn!(
                "static API tokens (TOMATO_API_TOKENS / TOMATO_API_ROLES_FILE) are accepted beside \
                 Kubernetes tokens; their holders are not checked against RBAC"
            );
        }
        let audit = AuditLog::from_env(None)?;
        let kube = KubeAuth::new(client.clone(), namespace);
        let check = kube.clone();
        tokio::spawn(async move {
            if let Err(e) = check.check_permissions().await {
                tracing::error!("{e}");
            }
        });
        Ok(Auth::new(tokens, audit).with_kubernetes(kube))
    }

    pub fn tokens(&self) -> &Tokens {
        &self.tokens
    }

    pub fn audit_log(&self) -> &AuditLog {
        &self.audit
    }

    /// Whether a write needs a token (static tokens configured, or operator mode).
    pub fn writes_need_token(&self) -> bool {
        self.tokens.is_enabled() || self.kube.is_some()
    }

    /// Whether reads need a token: the roles file says `readsOpen: false`.
    pub fn reads_need_token(&self) -> bool {
        !self.tokens.reads_open()
    }

    /// Decides a read (`write` is `None`) or a write presented with `token`: who it is, or the
    /// answer refusing it (with who, as far as known).
    pub async fn decide(&self, write: Option<&Write>, token: Option<&str>) -> Result<Who, (Who, ApiError)> {
        let needed = match write {
            Some(_) => self.writes_need_token(),
            None => self.reads_need_token(),
        };
        if !needed {
            return Ok(Who::Anonymous);
        }
        let what = if write.is_some() { "changes" } else { "reads" };
        let Some(token) = token else {
            return Err((
                Who::Unauthenticated,
                ApiError::unauthorized(format!(
                    "this server requires an API token for {what}: send Authorization: Bearer <token>"
                )),
            ));
        };
        if let Some(named) = self.tokens.identify(token) {
            let needs = write.map_or(Role::Read, |w| w.role);
            let who = Who::Token(named.name.clone());
            return if named.role >= needs {
                Ok(who)
            } else {
                let message = format!(
                    "this needs the {needs} role; the token {} has the {} role",
                    crate::text::quote(&named.name),
                    named.role
                );
                Err((who, forbidden(message)))
            };
        }
        let invalid = || ApiError::unauthorized("the API token is not valid");
        let Some(kube) = &self.kube else {
            return Err((Who::Unauthenticated, invalid()));
        };
        let user = match kube.authenticate(token).await {
            Ok(Some(user)) => user,
            Ok(None) => return Err((Who::Unauthenticated, invalid())),
            Err(e) => return Err((Who::Unauthenticated, unavailable(e))),
        };
        let who = Who::Kubernetes(user.username.clone());
        // Reads, when closed, need an authenticated user and no more.
        let Some(write) = write else { return Ok(who) };
        match kube.authorize(&user, write).await {
            Ok(kube::Verdict::Allowed) => Ok(who),
            Ok(kube::Verdict::Denied(reason)) => {
                let resource = write.resource.map_or("this", |r| r.plural());
                let mut message = format!(
                    "Kubernetes does not allow {} to {} {resource} in namespace {}",
                    crate::text::quote(&user.username),
                    write.verb.as_str(),
                    kube.namespace()
                );
                if let Some(reason) = reason {
                    message.push_str(&format!(": {reason}"));
                }
                Err((who, forbidden(message)))
            }
            Err(e) => Err((who, unavailable(e))),
        }
    }
}

fn forbidden(message: String) -> ApiError {
    ApiError {
        status: StatusCode::FORBIDDEN,
        message,
        parameter: Some("Authorization".into()),
        errors: Vec::new(),
    }
}

fn unavailable(e: kube::ReviewError) -> ApiError {
    tracing::error!(error = %e, "cannot check an API token with Kubernetes");
    ApiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        message: "cannot check the API token with Kubernetes now; see the server log".into(),
        parameter: None,
        errors: Vec::new(),
    }
}

/// The token a request presents: `Authorization: Bearer <token>`, or `Basic` with the token
/// as the password (the user name is ignored) — what a browser sends after its own prompt,
/// so the web UI works when reads are closed.
fn presented(headers: &HeaderMap) -> Option<String> {
    use base64::Engine as _;
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    let token = if scheme.eq_ignore_ascii_case("bearer") {
        rest.trim().to_string()
    } else if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        decoded.split_once(':')?.1.trim().to_string()
    } else {
        return None;
    };
    (!token.is_empty()).then_some(token)
}

/// Middleware: authenticates and authorises each read and write (see the module's doc); the
/// response carries [`Who`] for [`audit_writes`].
pub async fn authorize(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let write = match routes::access(req.method(), req.uri().path()) {
        Access::Open | Access::Upload { .. } => return next.run(req).await,
        Access::Read => None,
        Access::Write(w) => Some(w),
    };
    // A page (not /api) refused for want of a token asks the browser to prompt for one.
    let page_read = write.is_none() && !req.uri().path().starts_with("/api");
    match state
        .auth
        .decide(write.as_ref(), presented(req.headers()).as_deref())
        .await
    {
        Ok(who) => {
            let mut res = next.run(req).await;
            res.extensions_mut().insert(who);
            res
        }
        Err((who, err)) => {
            let mut res = err.into_response();
            if page_read && res.status() == StatusCode::UNAUTHORIZED {
                res.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    axum::http::HeaderValue::from_static(r#"Basic realm="Tomato", charset="UTF-8""#),
                );
            }
            res.extensions_mut().insert(who);
            res.extensions_mut().insert(Refused);
            res
        }
    }
}

/// Middleware (outermost): records every write and upload in the audit log with its answer.
pub async fn audit_writes(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let (write, upload) = match routes::access(req.method(), req.uri().path()) {
        Access::Write(w) => (Some(w), None),
        Access::Upload { run } => (None, Some(run)),
        Access::Open | Access::Read => return next.run(req).await,
    };
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    let client = state.auth.audit.client(peer, req.headers());
    let res = next.run(req).await;
    let who = res.extensions().get::<Who>().cloned();
    // No `Who`: refused before authentication (a cross-site write), or an upload.
    let refused = res.extensions().get::<Refused>().is_some() || (who.is_none() && upload.is_none());
    let who = who.unwrap_or(if upload.is_some() {
        Who::RunToken
    } else {
        Who::Unauthenticated
    });
    state.auth.audit.record(
        &who,
        &method,
        &path,
        write.as_ref(),
        upload.as_deref(),
        res.status(),
        refused,
        client,
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, value.parse().unwrap());
        h
    }

    #[test]
    fn a_token_comes_as_bearer_or_as_basics_password_and_an_empty_one_is_none() {
        assert_eq!(presented(&with("Bearer abc")).as_deref(), Some("abc"));
        assert_eq!(presented(&with("bearer  abc ")).as_deref(), Some("abc"));
        // base64("me:t:ok")
        assert_eq!(presented(&with("Basic bWU6dDpvaw==")).as_deref(), Some("t:ok"));
        assert_eq!(presented(&with("Bearer ")), None);
        assert_eq!(presented(&with("Basic bWU6")), None, "base64(\"me:\")");
        assert_eq!(presented(&with("Basic !!!")), None);
        assert_eq!(presented(&with("Digest abc")), None);
        assert_eq!(presented(&HeaderMap::new()), None);
    }
}
