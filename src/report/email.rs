//! The report email of a run: one message per finished run, `multipart/alternative` with a
//! plain-text and an HTML part rendered from the service's templates, to every recipient at
//! once (each sees who else got it). The `Message-ID` is derived from the run, so if a crash
//! between the server's acceptance and the recording of `Sent` makes Tomato send it again,
//! mail clients see the same message twice, not two reports. Pure: delivery is
//! [`crate::integrations::email`]'s.

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::{Address, Message};

use super::content::RunReport;
use super::templates::{EMAIL_HTML, EMAIL_SUBJECT, EMAIL_TEXT, Templates};
use crate::text::{one_line, shorten};

/// Longest subject kept (longer ones are cut with `…`).
const MAX_SUBJECT_CHARS: usize = 250;

/// The report email of `report` for `service`'s templates.
pub fn compose(
    report: &RunReport,
    templates: &Templates,
    service: &str,
    from: &Mailbox,
    to: &[Address],
) -> Result<Message, String> {
    let render = |name: &str| {
        templates
            .render(service, name, report)
            .map_err(|e| format!("template {name}: {e}"))
    };
    let subject = shorten(&one_line(&render(EMAIL_SUBJECT)?), MAX_SUBJECT_CHARS);
    let text = render(EMAIL_TEXT)?;
    let html = render(EMAIL_HTML)?;
    let mut builder = Message::builder()
        .from(from.clone())
        .subject(subject)
        .message_id(Some(format!("<{}.report@{}>", report.id, from.email.domain())));
    for a in to {
        builder = builder.to(Mailbox::new(None, a.clone()));
    }
    builder
        .multipart(
            MultiPart::alternative()
                .singlepart(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(text))
                .singlepart(SinglePart::builder().header(ContentType::TEXT_HTML).body(html)),
        )
        .map_err(|e| format!("cannot build the message: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_is_multipart_alternative_with_the_subject_and_every_recipient() {
        let report = RunReport::sample();
        let from: Mailbox = "Tomato <tomato@example.com>".parse().unwrap();
        let to: Vec<Address> = ["a@example.com", "b@example.com"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let msg = compose(&report, &Templates::built_in(), "demo", &from, &to).unwrap();
        let text = String::from_utf8(msg.formatted()).unwrap();
        assert!(
            text.contains("Subject: =?utf-8?") || text.contains("Subject: [Tomato] demo smoke on localhost"),
            "{text}"
        );
        assert!(text.contains("To: a@example.com, b@example.com"), "{text}");
        assert!(
            text.contains("Message-ID: <demo-sample.report@example.com>"),
            "{text}"
        );
        assert!(text.contains("multipart/alternative"), "{text}");
        assert!(
            text.contains("text/plain") && text.contains("text/html"),
            "{text}"
        );
        let envelope: Vec<String> = msg.envelope().to().iter().map(ToString::to_string).collect();
        assert_eq!(envelope, vec!["a@example.com", "b@example.com"]);
    }

    #[test]
    fn the_subject_reads_as_the_issue_asks() {
        let t = Templates::built_in();
        let mut r = RunReport::sample();
        r.id = "demo-x7k2q9bd".into();
        r.headline = "3 failed, 1 flaky".into();
        let subject = t.render("demo", EMAIL_SUBJECT, &r).unwrap();
        assert_eq!(
            one_line(&subject),
            "[Tomato] demo smoke on localhost: 3 failed, 1 flaky — run demo-x7k2q9bd"
        );
        r.selection = String::new();
        r.headline = "all 5 passed".into();
        assert_eq!(
            one_line(&t.render("demo", EMAIL_SUBJECT, &r).unwrap()),
            "[Tomato] demo on localhost: all 5 passed — run demo-x7k2q9bd"
        );
    }
}
