//! Email delivery: who gets a message (each mailbox once) and sending it over SMTP (lettre,
//! tokio, rustls), for run reports and regressions alike. Composing a run's report email is
//! [`crate::report::email`]'s.
//!
//! Sending opens a fresh connection each time (no pool: a report is one message, and a
//! pooled connection would only go stale between runs).

use std::time::Duration;

use async_trait::async_trait;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::delivery::{Delivery, DeliveryError};
use super::redact::Redactor;
use super::settings::SmtpSettings;

/// How long one SMTP conversation may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Recipients of a run's report: the run's `emails`, then the service's defaults, each
/// address once (compared without case) and only if it is a mailbox address. Returns the
/// valid addresses and the entries dropped.
pub fn recipients<'a>(
    run_emails: impl IntoIterator<Item = &'a String>,
    service_emails: impl IntoIterator<Item = &'a String>,
) -> (Vec<Address>, Vec<String>) {
    let mut valid: Vec<Address> = Vec::new();
    let mut dropped = Vec::new();
    for e in run_emails.into_iter().chain(service_emails) {
        let e = e.trim();
        if e.is_empty() {
            continue;
        }
        match e.parse::<Address>() {
            Ok(a) if valid.iter().any(|v| same_mailbox(v, &a)) => {}
            Ok(a) => valid.push(a),
            Err(_) => dropped.push(e.to_string()),
        }
    }
    (valid, dropped)
}

/// Addresses are compared without case: mail systems treat the domain so, and in practice
/// the local part too.
fn same_mailbox(a: &Address, b: &Address) -> bool {
    let (a, b): (&str, &str) = (a.as_ref(), b.as_ref());
    a.eq_ignore_ascii_case(b)
}

/// Sends a composed message to some of its recipients (its headers keep naming all of them).
#[async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, message: &Message, to: &[Address]) -> Result<(), DeliveryError>;
}

/// Sends `message` to every recipient in `to` not in `sent_to` (reached by an earlier try),
/// in one envelope. When the server refuses that for good (typically one mailbox that no
/// longer exists), each recipient gets the same message in an envelope of their own, so one
/// bad address stops nobody else's email, and the reason names the address refused.
pub async fn deliver(mailer: &dyn Mailer, message: &Message, to: &[Address], sent_to: &[String]) -> Delivery {
    let remaining: Vec<Address> = to
        .iter()
        .filter(|a| !sent_to.contains(&a.to_string()))
        .cloned()
        .collect();
    let all = mailer.send(message, &remaining).await;
    if !(matches!(all, Err(DeliveryError::Permanent(_))) && remaining.len() > 1) {
        return Delivery {
            sent_to: match all {
                Ok(()) => remaining.iter().map(ToString::to_string).collect(),
                Err(_) => Vec::new(),
            },
            result: all,
        };
    }
    let mut sent = Vec::new();
    let mut refused = Vec::new();
    let mut transient = false;
    for a in &remaining {
        match mailer.send(message, std::slice::from_ref(a)).await {
            Ok(()) => sent.push(a.to_string()),
            Err(e) => {
                transient |= matches!(e, DeliveryError::Transient(_));
                refused.push(format!("{a}: {}", e.reason()));
            }
        }
    }
    let result = match (refused.is_empty(), transient) {
        (true, _) => Ok(()),
        (false, true) => Err(DeliveryError::Transient(refused.join("; "))),
        (false, false) => Err(DeliveryError::Permanent(refused.join("; "))),
    };
    Delivery {
        sent_to: sent,
        result,
    }
}

/// The SMTP server of the settings.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    /// The server without credentials, for reasons.
    server: String,
    redactor: Redactor,
}

impl SmtpMailer {
    pub fn new(settings: &SmtpSettings, redactor: Redactor) -> Result<SmtpMailer, String> {
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(settings.url.expose())
            .map_err(|e| redactor.clean(&format!("{}: {e}", settings.server)))?
            .timeout(Some(SMTP_TIMEOUT));
        if let Some((user, password)) = &settings.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.expose().to_string()));
        }
        Ok(SmtpMailer {
            transport: builder.build(),
            server: settings.server.clone(),
            redactor,
        })
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, message: &Message, to: &[Address]) -> Result<(), DeliveryError> {
        let envelope = lettre::address::Envelope::new(message.envelope().from().cloned(), to.to_vec())
            .map_err(|e| DeliveryError::Permanent(format!("cannot address the message: {e}")))?;
        match self.transport.send_raw(&envelope, &message.formatted()).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let reason = self
                    .redactor
                    .clean(&format!("SMTP {}: {}", self.server, chain(&e)));
                // A 5xx answer (unknown mailbox, authentication refused) will not change by waiting.
                Err(if e.is_permanent() {
                    DeliveryError::Permanent(reason)
                } else {
                    DeliveryError::Transient(reason)
                })
            }
        }
    }
}

/// An error and its causes, on one line.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn recipients_are_the_runs_then_the_services_each_once() {
        let run = strings(&["qa@example.com", " Lead@Example.com ", "qa@example.com"]);
        let svc = strings(&["team@example.com", "lead@example.com", ""]);
        let (to, dropped) = recipients(&run, &svc);
        let to: Vec<String> = to.iter().map(ToString::to_string).collect();
        assert_eq!(to, vec!["qa@example.com", "Lead@Example.com", "team@example.com"]);
        assert!(dropped.is_empty());
    }

    #[test]
    fn invalid_recipients_are_dropped_and_named() {
        let (to, dropped) = recipients(&strings(&["not-an-address", "ok@example.com"]), &[]);
        assert_eq!(to.len(), 1);
        assert_eq!(dropped, vec!["not-an-address"]);
    }
}
