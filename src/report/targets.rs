//! Where each channel of a run's report goes, or why it goes nowhere. Pure: a function of
//! the run, its service's packs_config and the settings.
//!
//! A channel is skipped, with the reason stored in its status, when the run gives it
//! nothing to do (no recipients, no `issueKey`) or when Tomato is not set up for it (no
//! SMTP server, no tracker, no webhook). A skip is a normal outcome, not an error.

use lettre::Address;

use super::Channel;
use crate::crd::TestRun;
use crate::integrations::email::recipients;
use crate::integrations::settings::{ReportSettings, Webhook};
use crate::packs::Service;

/// Where one channel delivers.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    /// One message to all of them.
    Email { to: Vec<Address> },
    /// A comment on this ticket.
    Tracker { issue_key: String },
    /// One POST to each.
    Webhook { hooks: Vec<Webhook> },
    /// A test run of this version in test management.
    Tms { version: String },
}

impl Target {
    /// The channel it delivers on.
    pub fn channel(&self) -> Channel {
        match self {
            Target::Email { .. } => Channel::Email,
            Target::Tracker { .. } => Channel::Tracker,
            Target::Webhook { .. } => Channel::Webhook,
            Target::Tms { .. } => Channel::Tms,
        }
    }

    /// Every target name, as `sentTo` records them once delivered.
    pub fn names(&self) -> Vec<String> {
        match self {
            Target::Email { to } => to.iter().map(ToString::to_string).collect(),
            Target::Tracker { issue_key } => vec![issue_key.clone()],
            Target::Webhook { hooks } => hooks.iter().map(|h| h.label().to_string()).collect(),
            Target::Tms { version } => vec![version.clone()],
        }
    }
}

/// Each channel's target, or the reason it is skipped, in [`Channel::ALL`] order. `svc` is
/// `None` when the run's service is no longer in packs_config (its defaults are then gone,
/// the run's own settings still count).
pub fn targets(
    run: &TestRun,
    svc: Option<&Service>,
    settings: &ReportSettings,
) -> Vec<(Channel, Result<Target, String>)> {
    let t = &run.spec.template;
    let no_defaults = crate::packs::ReportDefaults::default();
    let defaults = svc.map_or(&no_defaults, |s| &s.report);

    let (to, dropped) = recipients(&t.emails, &defaults.emails);
    let email = if to.is_empty() && dropped.is_empty() {
        Err("no recipients: the run has no emails and its service no report.emails".to_string())
    } else if to.is_empty() {
        Err(format!(
            "no valid recipients ({} not an email address)",
            dropped.join(", ")
        ))
    } else if settings.smtp.is_none() {
        Err("email is not configured (set TOMATO_SMTP_URL and TOMATO_SMTP_FROM)".to_string())
    } else {
        Ok(Target::Email { to })
    };

    let tracker = match (&t.issue_key, &settings.tracker) {
        (None, _) => Err("the run has no issueKey".to_string()),
        (Some(_), None) => Err("no tracker is configured (set TOMATO_TRACKER)".to_string()),
        (Some(key), Some(_)) => Ok(Target::Tracker {
            issue_key: key.clone(),
        }),
    };

    let mut hooks: Vec<Webhook> = settings.webhooks.clone();
    for h in &defaults.webhooks {
        if !hooks.contains(h) {
            hooks.push(h.clone());
        }
    }
    let webhook = if hooks.is_empty() {
        Err("no webhook is configured (TOMATO_WEBHOOK_URLS or the service's report.webhooks)".to_string())
    } else {
        Ok(Target::Webhook { hooks })
    };

    let tms = match (&t.version, &settings.tms) {
        (None, _) => Err("the run has no version".to_string()),
        (Some(_), None) => Err("test management is not configured (set TOMATO_TMS_URL)".to_string()),
        (Some(v), Some(_)) => Ok(Target::Tms { version: v.clone() }),
    };

    vec![
        (Channel::Email, email),
        (Channel::Tracker, tracker),
        (Channel::Webhook, webhook),
        (Channel::Tms, tms),
    ]
}

/// Applies a service's `report.notify: newFailures`: when the run's failures hold nothing new
/// (`news` is `Some(false)`), email and webhooks are skipped with the reason; tracker and
/// test management are the run's record and go regardless. `news` is `None` where no history
/// is kept: nothing says the failures are old, so everything goes.
pub fn quiet(
    targets: Vec<(Channel, Result<Target, String>)>,
    notify: crate::packs::Notify,
    news: Option<bool>,
) -> Vec<(Channel, Result<Target, String>)> {
    if notify != crate::packs::Notify::NewFailures || news != Some(false) {
        return targets;
    }
    targets
        .into_iter()
        .map(|(channel, target)| match (channel, target) {
            (Channel::Email | Channel::Webhook, Ok(_)) => (
                channel,
                Err("nothing new: no new or changed failure against the service's history (report.notify: newFailures)"
                    .to_string()),
            ),
            other => other,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::RunTemplate;
    use crate::integrations::settings::{SmtpSettings, TrackerAuth, TrackerKind, TrackerSettings};
    use crate::secrets::Secret;

    #[test]
    fn new_failures_only_quiets_email_and_webhooks_when_nothing_is_new() {
        use crate::packs::Notify;
        let mut versioned = run(&["qa@example.com"], Some("QA-1"));
        versioned.spec.template.version = Some("2.0".into());
        let mut settings = configured();
        settings.webhooks = vec![Webhook::parse("https://hooks.example.com/x").unwrap()];
        settings.tms = Some(crate::integrations::settings::TmsSettings {
            url: "https://kiwi.example.com".parse().unwrap(),
            user: "tomato".into(),
            password: Secret::new("x"),
            poll: crate::integrations::settings::DEFAULT_TMS_POLL,
        });
        let all = targets(&versioned, None, &settings);
        assert!(all.iter().all(|(_, t)| t.is_ok()), "{all:?}");
        for (notify, news) in [
            (Notify::Always, Some(false)),
            (Notify::NewFailures, Some(true)),
            (Notify::NewFailures, None),
        ] {
            assert_eq!(quiet(all.clone(), notify, news), all, "{notify:?} {news:?}");
        }
        let quieted = quiet(all.clone(), Notify::NewFailures, Some(false));
        let r = reasons(quieted.clone());
        assert!(r[0].starts_with("nothing new"), "email: {r:?}");
        assert!(r[2].starts_with("nothing new"), "webhook: {r:?}");
        assert_eq!(quieted[1], all[1], "the tracker comment still goes");
        assert_eq!(quieted[3], all[3], "the test-management record still goes");
    }

    fn run(emails: &[&str], issue_key: Option<&str>) -> TestRun {
        let template = RunTemplate::test("demo").emails(emails);
        TestRun::test(
            "demo-1",
            match issue_key {
                Some(k) => template.issue_key(k),
                None => template,
            },
        )
    }

    fn configured() -> ReportSettings {
        ReportSettings {
            smtp: Some(SmtpSettings {
                server: "smtp://localhost:25".into(),
                url: Secret::new("smtp://localhost:25"),
                from: "t@example.com".parse().unwrap(),
                credentials: None,
            }),
            tracker: Some(TrackerSettings {
                kind: TrackerKind::Jira,
                url: "https://jira.example.com".parse().unwrap(),
                auth: TrackerAuth::Bearer(Secret::new("x")),
                org: None,
            }),
            webhooks: vec![Webhook::parse("https://hooks.example.com/a").unwrap()],
            ..ReportSettings::default()
        }
    }

    fn reasons(v: Vec<(Channel, Result<Target, String>)>) -> Vec<String> {
        v.into_iter().map(|(_, t)| t.err().unwrap_or_default()).collect()
    }

    #[test]
    fn a_run_without_recipients_or_issue_key_skips_those_channels_saying_why() {
        let r = reasons(targets(&run(&[], None), None, &configured()));
        assert_eq!(
            r[0],
            "no recipients: the run has no emails and its service no report.emails"
        );
        assert_eq!(r[1], "the run has no issueKey");
        assert_eq!(r[2], "", "the webhook is configured");
        assert_eq!(r[3], "the run has no version");
    }

    #[test]
    fn channels_tomato_is_not_set_up_for_are_skipped_saying_what_to_set() {
        let r = reasons(targets(
            &run(&["a@example.com"], Some("QA-1")),
            None,
            &ReportSettings::default(),
        ));
        assert_eq!(
            r[0],
            "email is not configured (set TOMATO_SMTP_URL and TOMATO_SMTP_FROM)"
        );
        assert_eq!(r[1], "no tracker is configured (set TOMATO_TRACKER)");
        assert!(r[2].starts_with("no webhook is configured"), "{}", r[2]);
        let mut versioned = run(&[], None);
        versioned.spec.template.version = Some("2.0".into());
        let r = reasons(targets(&versioned, None, &ReportSettings::default()));
        assert_eq!(r[3], "test management is not configured (set TOMATO_TMS_URL)");
    }

    #[test]
    fn a_configured_run_gets_every_target() {
        let t = targets(
            &run(&["a@example.com", "A@example.com"], Some("QA-1")),
            None,
            &configured(),
        );
        assert_eq!(t[0].1.as_ref().unwrap().names(), vec!["a@example.com"]);
        assert_eq!(
            t[1].1,
            Ok(Target::Tracker {
                issue_key: "QA-1".into()
            })
        );
        assert_eq!(t[2].1.as_ref().unwrap().names().len(), 1);
    }

    #[test]
    fn only_invalid_recipients_skip_the_email_naming_them() {
        let r = reasons(targets(&run(&["nope"], None), None, &configured()));
        assert_eq!(r[0], "no valid recipients (nope not an email address)");
    }
}
