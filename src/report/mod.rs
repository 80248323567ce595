//! Reporting: once a run's verdict is final, tell people — an email, a comment on the
//! tracker ticket, a chat webhook — and record, per channel, whether it got there.
//!
//! The pure parts decide and say; the I/O parts only carry a message somewhere:
//! - [`model`] is the one per-run view model: the groups, orders, counts and times every
//!   surface (these channels and the run page) computes from a run, computed once;
//! - [`content`] builds one [`RunReport`] from the finished run — what every channel says;
//! - [`templates`] renders it (minijinja, built-in templates, per-service overrides);
//! - [`targets`] decides where each channel goes for a run, or why it is skipped;
//! - [`compose`] reads what a report needs beyond the run (categories, novelty, attachment
//!   links) through each mode's [`compose::RunRecords`];
//! - [`delivery`] plans a run's channels and records their outcomes, pure (each one's state machine, `Pending` → `Sent` |
//!   `Failed`, or `Skipped`, with its backoff, is [`crate::integrations::delivery`]'s);
//! - [`email`], [`tracker`] (Jira, Yandex Tracker) and [`webhook`] (Slack JSON) turn a report
//!   into a message; [`crate::integrations`] carries it (SMTP, HTTP, the tracker client) and
//!   keeps credentials out of every reason;
//! - the `tms` channel records a run that names a `version` in test management
//!   ([`crate::integrations::tms::automated`]).
//!
//! [`Reporter`] ties them together for a driver, which keeps the state: it asks for the
//! targets, records them in `status.report`, hands each due channel to [`Reporter::deliver`]
//! off its loop, and records what came back. Only [`compose`] reads anything, through the
//! mode's records; nothing here writes.

pub mod compose;
pub mod content;
pub mod delivery;
pub mod email;
pub mod model;
pub mod targets;
pub mod templates;
pub mod tracker;
pub mod webhook;

pub use content::RunReport;
pub use targets::Target;
pub use templates::Templates;

pub use crate::crd::Channel;
use crate::crd::TestRun;
use crate::integrations::delivery::{Delivery, DeliveryError, RetryPolicy};
use crate::integrations::email::{self as mail, Mailer, SmtpMailer};
use crate::integrations::redact::Redactor;
use crate::integrations::settings::{ReportSettings, Webhook};
use crate::integrations::{http, tracker as tracker_client};
use crate::packs::{PacksConfig, Service};
use crate::results::MergedTest;

/// Everything a driver needs to report runs: settings, templates, transports.
pub struct Reporter {
    settings: ReportSettings,
    templates: Templates,
    mailer: Option<Box<dyn Mailer>>,
    http: reqwest::Client,
    redactor: Redactor,
    public_url: String,
    tms: Option<std::sync::Arc<dyn crate::integrations::tms::TestManagement>>,
}

impl Reporter {
    /// `public_url` is where people reach the web UI (run pages are `<public_url>/runs/<id>`).
    pub fn new(
        settings: ReportSettings,
        templates: Templates,
        config: &PacksConfig,
        public_url: String,
    ) -> Result<Reporter, String> {
        let mut redactor = settings.redactor.clone();
        for svc in config.services() {
            for hook in &svc.report.webhooks {
                hook.hide_in(&mut redactor);
            }
        }
        let mailer = match &settings.smtp {
            Some(s) => Some(Box::new(SmtpMailer::new(s, redactor.clone())?) as Box<dyn Mailer>),
            None => None,
        };
        let tms = match &settings.tms {
            Some(t) => Some(
                std::sync::Arc::new(crate::integrations::tms::Kiwi::new(t, redactor.clone())?)
                    as std::sync::Arc<dyn crate::integrations::tms::TestManagement>,
            ),
            None => None,
        };
        Ok(Reporter {
            tms,
            http: http::client()?,
            settings,
            templates,
            mailer,
            redactor,
            public_url,
        })
    }

    /// The test-management system, when one is configured.
    pub fn tms(&self) -> Option<std::sync::Arc<dyn crate::integrations::tms::TestManagement>> {
        self.tms.clone()
    }

    pub fn retry(&self) -> &RetryPolicy {
        &self.settings.retry
    }

    /// What is configured, for the start-up log.
    pub fn describe(&self) -> String {
        self.settings.describe()
    }

    /// `text` without any secret this reporter knows.
    pub fn redact(&self, text: &str) -> String {
        self.redactor.clean(text)
    }

    /// Each channel's target for `run`, or why it is skipped.
    pub fn targets(&self, run: &TestRun, svc: Option<&Service>) -> Vec<(Channel, Result<Target, String>)> {
        targets::targets(run, svc, &self.settings)
    }

    /// Where people reach the web UI (the base of every link in a report).
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// The report of a finished run; `categories` maps test ids to their failure category.
    pub fn content(
        &self,
        run: &TestRun,
        tests: &[MergedTest],
        categories: &crate::classify::ByTest,
    ) -> RunReport {
        RunReport::build(run, tests, categories, &self.public_url)
    }

    /// One delivery attempt of a channel. `sent_to` are the targets that already have the
    /// report (from earlier attempts); they are not sent to again.
    pub async fn deliver(&self, target: &Target, report: &RunReport, sent_to: &[String]) -> Delivery {
        let delivery = match target {
            Target::Email { to } => self.email(to, report, sent_to).await,
            Target::Tracker { issue_key } if sent_to.contains(issue_key) => Delivery {
                sent_to: Vec::new(),
                result: Ok(()),
            },
            Target::Tracker { issue_key } => self.tracker(issue_key, report).await,
            Target::Webhook { hooks } => self.webhooks(hooks, report, sent_to).await,
            Target::Tms { version } => self.tms_record(version, report).await,
        };
        crate::metrics::global().delivered(
            target.channel(),
            match &delivery.result {
                Ok(()) => "sent",
                Err(DeliveryError::Transient(_)) => "transient_error",
                Err(DeliveryError::Permanent(_)) => "permanent_error",
            },
        );
        Delivery {
            result: delivery.result.map_err(|e| match e {
                DeliveryError::Transient(r) => DeliveryError::Transient(self.redact(&r)),
                DeliveryError::Permanent(r) => DeliveryError::Permanent(self.redact(&r)),
            }),
            ..delivery
        }
    }

    fn render(&self, name: &str, report: &RunReport) -> Result<String, DeliveryError> {
        self.templates
            .render(&report.service, name, report)
            .map_err(|e| DeliveryError::Permanent(format!("template {name}: {e}")))
    }

    /// The run's report email to `to`, delivered by [`email::deliver`].
    async fn email(&self, to: &[lettre::Address], report: &RunReport, sent_to: &[String]) -> Delivery {
        let (Some(smtp), Some(mailer)) = (&self.settings.smtp, &self.mailer) else {
            return Delivery {
                sent_to: Vec::new(),
                result: Err(DeliveryError::Permanent("email is not configured".into())),
            };
        };
        let message = match email::compose(report, &self.templates, &report.service, &smtp.from, to) {
            Ok(m) => m,
            Err(e) => {
                return Delivery {
                    sent_to: Vec::new(),
                    result: Err(DeliveryError::Permanent(e)),
                };
            }
        };
        mail::deliver(mailer.as_ref(), &message, to, sent_to).await
    }

    async fn tracker(&self, issue_key: &str, report: &RunReport) -> Delivery {
        let result = async {
            let Some(settings) = &self.settings.tracker else {
                return Err(DeliveryError::Permanent("no tracker is configured".into()));
            };
            let text = self.render(tracker::template(settings.kind), report)?;
            let post = tracker_client::comment(settings, issue_key, text);
            http::send(&self.http, &post, &self.redactor).await
        }
        .await;
        Delivery {
            sent_to: if result.is_ok() {
                vec![issue_key.to_string()]
            } else {
                Vec::new()
            },
            result,
        }
    }

    async fn tms_record(&self, version: &str, report: &RunReport) -> Delivery {
        let Some(tms) = &self.tms else {
            return Delivery {
                sent_to: Vec::new(),
                result: Err(DeliveryError::Permanent(
                    "test management is not configured".into(),
                )),
            };
        };
        let run = crate::integrations::tms::automated::AutomatedRun {
            run: report.id.clone(),
            service: report.service.clone(),
            stand: report.stand.clone(),
            version: version.to_string(),
            link: report.link.clone(),
            tests: report.outcomes.clone(),
        };
        match crate::integrations::tms::automated::record(tms.as_ref(), &run).await {
            Ok(recorded) => Delivery {
                sent_to: vec![recorded.run_url],
                result: Ok(()),
            },
            Err(e) => Delivery {
                sent_to: Vec::new(),
                result: Err(if e.is_transient() {
                    DeliveryError::Transient(e.reason().to_string())
                } else {
                    DeliveryError::Permanent(e.reason().to_string())
                }),
            },
        }
    }

    async fn webhooks(&self, hooks: &[Webhook], report: &RunReport, sent_to: &[String]) -> Delivery {
        let payload = match self.render(templates::WEBHOOK_TEXT, report) {
            Ok(text) => webhook::payload(report, &text),
            Err(e) => {
                return Delivery {
                    sent_to: Vec::new(),
                    result: Err(e),
                };
            }
        };
        let mut sent = Vec::new();
        let mut errors = Vec::new();
        for hook in hooks.iter().filter(|h| !sent_to.iter().any(|s| s == h.label())) {
            match http::send(&self.http, &webhook::post(hook, payload.clone()), &self.redactor).await {
                Ok(()) => sent.push(hook.label().to_string()),
                Err(e) => errors.push(e),
            }
        }
        let result = if errors.is_empty() {
            Ok(())
        } else {
            let reason = errors
                .iter()
                .map(DeliveryError::reason)
                .collect::<Vec<_>>()
                .join("; ");
            // Retry while any webhook may still take it; give up when every one refused.
            if errors.iter().all(|e| matches!(e, DeliveryError::Permanent(_))) {
                Err(DeliveryError::Permanent(reason))
            } else {
                Err(DeliveryError::Transient(reason))
            }
        };
        Delivery {
            sent_to: sent,
            result,
        }
    }
}

/// The outside systems Tomato reports to, built once from the report settings: the report
/// channels and what regressions use (they share one test-management session). Both modes
/// build them the same way.
pub struct Integrations {
    pub reporter: std::sync::Arc<Reporter>,
    pub regressions: crate::regression::Context,
}

impl Integrations {
    /// From report settings (environment over the optional settings file), packs_config and
    /// the public URL of the web UI.
    pub fn new(
        settings: ReportSettings,
        config: &std::sync::Arc<crate::packs::PacksConfig>,
        public_url: &str,
    ) -> anyhow::Result<Integrations> {
        use anyhow::Context as _;
        let templates = Templates::load(config)?;
        let reporter = Reporter::new(settings.clone(), templates, config, public_url.to_string())
            .map_err(anyhow::Error::msg)
            .context("cannot set up reporting")?;
        let regressions = crate::regression::Context::from_settings(
            &settings,
            reporter.tms(),
            config.clone(),
            public_url.to_string(),
        )
        .map_err(anyhow::Error::msg)
        .context("cannot set up regressions")?;
        tracing::info!(settings = %reporter.describe(), "reporting");
        Ok(Integrations {
            reporter: std::sync::Arc::new(reporter),
            regressions,
        })
    }
}
