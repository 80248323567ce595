//! The audit log: one JSON line per write, allowed or refused — who (token name, Kubernetes
//! user, `anonymous` when writes are open), what (method, path, resource, name, answer), when
//! (RFC 3339, UTC) and from where (the peer's address; `X-Forwarded-For` only when the proxy
//! in front is trusted, `TOMATO_TRUST_FORWARDED_FOR=true`).
//!
//! Each line goes to the log under the target `tomato::audit` (both modes) and, when a file is
//! set, is appended to it: `<data dir>/audit.jsonl` in standalone mode unless
//! `TOMATO_AUDIT_LOG` names another, only `TOMATO_AUDIT_LOG` in operator mode. Never a token,
//! a request body, a query string or an environment value: the path and what the route says.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use axum::http::{HeaderMap, Method, StatusCode};
use serde::Serialize;

use super::routes::Write;

/// Who made a request, as authentication found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// Writes are open (no token configured).
    Anonymous,
    /// No token was presented, or it was not accepted.
    Unauthenticated,
    /// A configured token, by its name.
    Token(String),
    /// A Kubernetes user, by the TokenReview's username.
    Kubernetes(String),
    /// A Job uploading its results with its run's own token (checked by the handler).
    RunToken,
}

impl Who {
    fn parts(&self) -> (&str, &'static str) {
        match self {
            Who::Anonymous => ("anonymous", "open"),
            Who::Unauthenticated => ("unauthenticated", "none"),
            Who::Token(name) => (name, "token"),
            Who::Kubernetes(user) => (user, "kubernetes"),
            Who::RunToken => ("run-token", "run-token"),
        }
    }
}

/// One line of the audit log.
#[derive(Serialize, Debug)]
pub struct Record<'a> {
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    pub who: &'a str,
    /// How `who` was established: `token`, `kubernetes`, `open`, `none`, `run-token`.
    pub via: &'static str,
    pub method: &'a str,
    pub path: &'a str,
    /// `testruns`, `nightlyschedules`, `regressions`; absent for an unknown route.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<&'static str>,
    /// `create`, `update`, `patch`, `delete`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verb: Option<&'static str>,
    /// The object named by the path (not for a create: the path of a trigger names its
    /// schedule), or the run uploaded to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    pub status: u16,
    /// `allowed` (the handler answered, whatever its answer) or `refused` (401 or 403 before it).
    pub decision: &'static str,
    /// The client: the peer, or the first `X-Forwarded-For` address behind a trusted proxy.
    pub from: String,
    /// The TCP peer (the proxy, when there is one).
    pub peer: String,
}

/// Where audit lines go besides the log.
#[derive(Default)]
pub struct AuditLog {
    file: Option<(PathBuf, Mutex<std::fs::File>)>,
    /// Whether `X-Forwarded-For` is believed.
    trust_forwarded: bool,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuditLog({:?})", self.path())
    }
}

impl AuditLog {
    /// Lines to the log only.
    pub fn log_only() -> AuditLog {
        AuditLog::default()
    }

    /// Lines to the log and appended to `path` (created with its directory if missing).
    pub fn to_file(path: &Path) -> Result<AuditLog, String> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("cannot open the audit log {}: {e}", path.display()))?;
        Ok(AuditLog {
            file: Some((path.to_path_buf(), Mutex::new(file))),
            trust_forwarded: false,
        })
    }

    /// From `TOMATO_AUDIT_LOG` (a path), else `default` (standalone: `<data dir>/audit.jsonl`),
    /// and `TOMATO_TRUST_FORWARDED_FOR` (`true` to believe `X-Forwarded-For`).
    pub fn from_env(default: Option<&Path>) -> Result<AuditLog, String> {
        let configured = std::env::var_os("TOMATO_AUDIT_LOG").filter(|p| !p.is_empty());
        let mut log = match configured.as_deref().map(Path::new).or(default) {
            Some(path) => AuditLog::to_file(path).map_err(|e| format!("TOMATO_AUDIT_LOG: {e}"))?,
            None => AuditLog::log_only(),
        };
        log.trust_forwarded = match std::env::var("TOMATO_TRUST_FORWARDED_FOR").ok().as_deref() {
            None | Some("" | "false" | "0") => false,
            Some("true" | "1") => true,
            Some(other) => {
                return Err(format!(
                    "TOMATO_TRUST_FORWARDED_FOR={other:?} is not true or false"
                ));
            }
        };
        Ok(log)
    }

    /// Believes `X-Forwarded-For` (a proxy in front sets it).
    pub fn trusting_forwarded_for(mut self, trust: bool) -> AuditLog {
        self.trust_forwarded = trust;
        self
    }

    pub fn path(&self) -> Option<&Path> {
        self.file.as_ref().map(|(p, _)| p.as_path())
    }

    /// The client's address: the peer, or behind a trusted proxy the first address of
    /// `X-Forwarded-For`.
    pub fn client(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> (String, String) {
        let peer = peer.map_or_else(|| "unknown".to_string(), |p| p.to_string());
        let forwarded = self
            .trust_forwarded
            .then(|| headers.get("x-forwarded-for")?.to_str().ok())
            .flatten()
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty() && v.len() <= 64);
        (forwarded.map_or_else(|| peer.clone(), str::to_string), peer)
    }

    /// Records one write.
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &self,
        who: &Who,
        method: &Method,
        path: &str,
        write: Option<&Write>,
        upload_of: Option<&str>,
        status: StatusCode,
        refused: bool,
        (from, peer): (String, String),
    ) {
        let (who, via) = who.parts();
        let record = Record {
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            who,
            via,
            method: method.as_str(),
            path,
            resource: write.and_then(|w| w.resource).map(|r| r.plural()),
            verb: write.map(|w| w.verb.as_str()),
            name: write.and_then(|w| w.name.as_deref()).or(upload_of),
            status: status.as_u16(),
            decision: if refused { "refused" } else { "allowed" },
            from,
            peer,
        };
        let line = serde_json::to_string(&record).expect("an audit record is JSON");
        tracing::info!(target: "tomato::audit", "{line}");
        if let Some((path, file)) = &self.file {
            let mut file = file.lock().unwrap_or_else(|p| p.into_inner());
            if let Err(e) = file.write_all(format!("{line}\n").as_bytes()) {
                tracing::error!(file = %path.display(), error = %e, "cannot append to the audit log");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_believed_only_behind_a_trusted_proxy() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "203.0.113.7, 10.0.0.1".parse().unwrap());
        let peer = Some("10.0.0.1:5555".parse().unwrap());
        let log = AuditLog::log_only();
        assert_eq!(log.client(peer, &h).0, "10.0.0.1:5555");
        let log = log.trusting_forwarded_for(true);
        assert_eq!(
            log.client(peer, &h),
            ("203.0.113.7".to_string(), "10.0.0.1:5555".to_string())
        );
        assert_eq!(log.client(None, &HeaderMap::new()).0, "unknown");
    }
}
