//! The HTTP side of the client: one [`Api`] over Tomato's `/api/v1`, and the three ways a
//! call can fail that the command line tells apart — Tomato could not be reached, Tomato
//! refused the request (its `{error, parameter}` body), or it answered something this client
//! cannot read.
//!
//! The token (`TOMATO_TOKEN`) is only ever put into the `Authorization` header; no error or
//! `Debug` output can contain it ([`Secret`] prints `***`), and URLs in messages are the
//! server's base URL and path, which hold no credentials.

use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::crd::TestRun;
use crate::secrets::Secret;

/// Where Tomato listens when neither `--server` nor `TOMATO_URL` says.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answered at `url` (connection refused, DNS failure, timeout).
    #[error("cannot reach Tomato at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// Tomato answered with an error status and (usually) `{error, parameter}`.
    #[error("{}", refused_message(.status, .message, .parameter))]
    Refused {
        status: u16,
        message: String,
        parameter: Option<String>,
    },
    /// Tomato answered, but not in a shape this client reads (a proxy's page, another version).
    #[error("unexpected answer from {url}: {reason}")]
    Protocol { url: String, reason: String },
}

fn refused_message(status: &u16, message: &str, parameter: &Option<String>) -> String {
    match parameter {
        Some(p) => format!("Tomato refused the request (HTTP {status}): {p}: {message}"),
        None => format!("Tomato refused the request (HTTP {status}): {message}"),
    }
}

/// The error body every `/api` handler answers with.
#[derive(Deserialize)]
struct ErrorBody {
    error: String,
    #[serde(default)]
    parameter: Option<String>,
}

/// A client of one Tomato server.
#[derive(Clone, Debug)]
pub struct Api {
    base: String,
    token: Option<Secret>,
    http: reqwest::Client,
}

impl Api {
    /// A client of the server at `base` (`http://host:port`, with or without a trailing `/`).
    pub fn new(base: &str, token: Option<Secret>) -> Result<Self, String> {
        let base = base.trim().trim_end_matches('/').to_string();
        let parsed =
            reqwest::Url::parse(&base).map_err(|e| format!("--server {base:?} is not a URL: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!("--server {base:?} must be an http:// or https:// URL"));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {e}"))?;
        Ok(Api { base, token, http })
    }

    /// The server's base URL, as links are built from it.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The run's page in the web UI.
    pub fn run_page(&self, id: &str) -> String {
        format!("{}/runs/{id}", self.base)
    }

    /// Queues a run from a TestRun-shaped body.
    pub async fn create_run(&self, body: &Value) -> Result<TestRun, ClientError> {
        self.json(self.http.post(self.url("/api/v1/runs")).json(body))
            .await
    }

    pub async fn get_run(&self, id: &str) -> Result<TestRun, ClientError> {
        self.json(self.http.get(self.url(&format!("/api/v1/runs/{}", seg(id)))))
            .await
    }

    /// Asks the server to cancel a run; answers the run as stored after the request.
    pub async fn cancel_run(&self, id: &str) -> Result<TestRun, ClientError> {
        self.json(self.http.delete(self.url(&format!("/api/v1/runs/{}", seg(id)))))
            .await
    }

    /// The log of the `position`-th launch of a run (from 1), as text.
    pub async fn attempt_log(&self, id: &str, position: usize) -> Result<String, ClientError> {
        let url = self.url(&format!("/api/v1/runs/{}/attempts/{position}/log", seg(id)));
        let resp = self.send(self.http.get(&url)).await?;
        resp.text().await.map_err(|e| protocol(&url, e))
    }

    /// One service's queue, as the server answers it.
    pub async fn queue(&self, service: &str) -> Result<Value, ClientError> {
        self.json(
            self.http
                .get(self.url(&format!("/api/v1/services/{}/queue", seg(service)))),
        )
        .await
    }

    /// The rules proposed for a service's unclassified failures, as the server answers them.
    pub async fn rule_suggestions(&self, service: &str, days: u32, min: u32) -> Result<Value, ClientError> {
        self.json(self.http.get(self.url(&format!(
            "/api/v1/services/{}/rules/suggestions?days={days}&min={min}",
            seg(service)
        ))))
        .await
    }

    /// The names of every service in packs_config.
    pub async fn service_names(&self) -> Result<Vec<String>, ClientError> {
        #[derive(Deserialize)]
        struct Named {
            name: String,
        }
        let list: Vec<Named> = self.json(self.http.get(self.url("/api/v1/services"))).await?;
        Ok(list.into_iter().map(|s| s.name).collect())
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn json<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> Result<T, ClientError> {
        let resp = self.send(req).await?;
        let url = resp.url().to_string();
        let bytes = resp.bytes().await.map_err(|e| protocol(&url, e))?;
        serde_json::from_slice(&bytes).map_err(|e| protocol(&url, e))
    }

    /// Sends with the token, mapping transport failures and error statuses.
    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, ClientError> {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t.expose()),
            None => req,
        };
        let resp = req.send().await.map_err(|e| self.transport(e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let bytes = resp.bytes().await.unwrap_or_default();
        let (message, parameter) = match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(b) => (b.error, b.parameter),
            Err(_) => {
                let text = String::from_utf8_lossy(&bytes)
                    .trim()
                    .chars()
                    .take(300)
                    .collect::<String>();
                let reason = status.canonical_reason().unwrap_or("error");
                (if text.is_empty() { reason.to_string() } else { text }, None)
            }
        };
        Err(ClientError::Refused {
            status: status.as_u16(),
            message,
            parameter,
        })
    }

    /// A request that got no HTTP answer. reqwest's errors are matched by kind, never by text.
    fn transport(&self, e: reqwest::Error) -> ClientError {
        let reason = if e.is_timeout() {
            "no answer in time (timed out)".to_string()
        } else if e.is_connect() {
            format!("could not connect ({})", root_cause(&e))
        } else {
            root_cause(&e)
        };
        ClientError::Unreachable {
            url: self.base.clone(),
            reason,
        }
    }
}

/// The innermost cause of an error (`Connection refused (os error 111)`), which says more
/// than reqwest's own wrapper text.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

fn protocol(url: &str, e: impl std::fmt::Display) -> ClientError {
    ClientError::Protocol {
        url: url.to_string(),
        reason: e.to_string(),
    }
}

/// A path segment, percent-encoded: run ids and service names are DNS-style names, but a
/// typo (`..`, `a/b`) must not turn into another path.
fn seg(s: &str) -> String {
    crate::text::path_segment(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_names_the_parameter_and_the_status() {
        let e = ClientError::Refused {
            status: 400,
            message: "must be 0–9, got 12".into(),
            parameter: Some("spec.priority".into()),
        };
        assert_eq!(
            e.to_string(),
            "Tomato refused the request (HTTP 400): spec.priority: must be 0–9, got 12"
        );
    }

    #[test]
    fn path_segments_cannot_escape_their_place() {
        assert_eq!(seg("demo-abc12"), "demo-abc12");
        assert_eq!(seg("../x y"), "%2E%2E%2Fx%20y");
    }

    #[test]
    fn the_server_url_must_be_http_and_its_trailing_slash_is_dropped() {
        let api = Api::new("http://tomato:8080/", None).unwrap();
        assert_eq!(api.run_page("demo-1"), "http://tomato:8080/runs/demo-1");
        assert!(Api::new("tomato:8080", None).is_err());
        assert!(Api::new("ftp://tomato", None).is_err());
    }

    #[test]
    fn the_token_never_shows_in_debug_output() {
        let api = Api::new("http://tomato:8080", Some(Secret::new("s3cr3t-token"))).unwrap();
        assert!(!format!("{api:?}").contains("s3cr3t"));
    }
}
