//! Outbound JSON POSTs for the tracker comment and the webhook: the request as a value
//! (built by pure functions, so tests check path, headers and body without a network) and
//! the one function that sends it.
//!
//! Errors are sorted the way a delivery cares about: a network error, a timeout, 408, 429
//! or 5xx may pass (retry); any other 4xx will not (bad token, unknown issue). Their text
//! never holds the URL (a webhook's path is its secret) nor anything the redactor knows.

use std::time::Duration;

use reqwest::Url;
use reqwest::header::{AUTHORIZATION, HeaderValue};

use super::delivery::DeliveryError;
use super::email::chain;
use super::redact::Redactor;
use crate::secrets::Secret;

/// How long one request may take.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// Characters of an error answer's body quoted in the reason.
const MAX_BODY_CHARS: usize = 300;

/// How a request signs in.
#[derive(Clone, Debug)]
pub enum Auth {
    None,
    Basic {
        user: String,
        password: Secret,
    },
    /// `Authorization: <scheme> <token>` (`Bearer`, `OAuth`).
    Token {
        scheme: &'static str,
        token: Secret,
    },
}

/// A JSON POST, ready to send.
#[derive(Clone, Debug)]
pub struct JsonPost {
    pub url: Url,
    /// Names the destination in reasons without the URL's path (`jira.example.com`,
    /// `hooks.slack.com#1a2b3c4d`).
    pub label: String,
    pub auth: Auth,
    /// Extra headers (the tracker's organisation).
    pub headers: Vec<(&'static str, String)>,
    pub body: serde_json::Value,
}

/// The client every report request goes through (rustls, a timeout, no redirects to follow
/// with credentials).
pub fn client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("tomato/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {}", chain(&e.without_url())))
}

/// Sends `post`; a 2xx answer is success.
pub async fn send(
    client: &reqwest::Client,
    post: &JsonPost,
    redactor: &Redactor,
) -> Result<(), DeliveryError> {
    exchange(client, reqwest::Method::POST, post, redactor)
        .await
        .map(|_| ())
}

/// Sends `req` with `method` (a `GET` carries no body) and returns the answer's JSON (`null`
/// when it has none); a 2xx answer is success, other answers are sorted as [`send`] does.
pub async fn exchange(
    client: &reqwest::Client,
    method: reqwest::Method,
    post: &JsonPost,
    redactor: &Redactor,
) -> Result<serde_json::Value, DeliveryError> {
    let mut req = client.request(method.clone(), post.url.clone());
    if method != reqwest::Method::GET {
        req = req.json(&post.body);
    }
    match &post.auth {
        Auth::None => {}
        Auth::Basic { user, password } => req = req.basic_auth(user, Some(password.expose())),
        Auth::Token { scheme, token } => {
            let mut value = HeaderValue::from_str(&format!("{scheme} {}", token.expose())).map_err(|_| {
                DeliveryError::Permanent(format!("{}: the token is not a valid header value", post.label))
            })?;
            value.set_sensitive(true);
            req = req.header(AUTHORIZATION, value);
        }
    }
    for (name, value) in &post.headers {
        req = req.header(*name, value);
    }
    let clean = |text: String| redactor.clean(&format!("{}: {text}", post.label));
    let response = req
        .send()
        .await
        .map_err(|e| DeliveryError::Transient(clean(chain(&e.without_url()))))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if status.is_success() {
        return Ok(serde_json::from_str(&body).unwrap_or(serde_json::Value::Null));
    }
    let excerpt = crate::text::shorten(&crate::text::one_line(&body), MAX_BODY_CHARS);
    let reason = clean(format!(
        "HTTP {status}{}",
        if excerpt.is_empty() {
            String::new()
        } else {
            format!(": {excerpt}")
        }
    ));
    let retry = status.is_server_error()
        || status == reqwest::StatusCode::TOO_MANY_REQUESTS
        || status == reqwest::StatusCode::REQUEST_TIMEOUT;
    Err(if retry {
        DeliveryError::Transient(reason)
    } else {
        DeliveryError::Permanent(reason)
    })
}
