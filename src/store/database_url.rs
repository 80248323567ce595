//! `--database-url` / `TOMATO_DATABASE_URL`: the PostgreSQL results store's address, checked
//! once at start and carried as a value whose password cannot leak — its `Debug` and `Display`
//! show the URL with the user-info masked, and the full text is only handed to the driver.

use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;

use crate::integrations::redact::Redactor;

/// The flag and variable a bad URL is reported under.
pub const FIELD: &str = "--database-url (TOMATO_DATABASE_URL)";

/// A checked PostgreSQL URL.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    full: String,
    shown: String,
}

impl DatabaseUrl {
    /// Checks a URL: the scheme must be `postgres://` or `postgresql://` and the rest must read
    /// as libpq's URL form (host, port, database, `sslmode`, ...). The error names the flag
    /// and never repeats the password.
    pub fn parse(text: &str) -> Result<DatabaseUrl, String> {
        let text = text.trim();
        let shown = redact(text);
        let scheme = text.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("postgres" | "postgresql") => {}
            Some(other) => {
                return Err(format!(
                    "{FIELD}: the scheme must be postgres:// or postgresql://, not {other}:// ({shown})"
                ));
            }
            None => {
                return Err(format!(
                    // Without a scheme the user-info cannot be told apart: echo nothing.
                    "{FIELD}: expected a URL such as postgres://user:password@host:5432/tomato?sslmode=require (the value given has no scheme)"
                ));
            }
        }
        PgConnectOptions::from_str(text).map_err(|e| {
            format!(
                "{FIELD}: not a valid PostgreSQL URL ({shown}): {}",
                redact(&e.to_string())
            )
        })?;
        Ok(DatabaseUrl {
            full: text.to_string(),
            shown,
        })
    }

    /// The URL with its user-info masked: what logs and errors may show.
    pub fn redacted(&self) -> &str {
        &self.shown
    }

    /// The driver's connection options (the only place the password goes).
    pub(super) fn options(&self) -> Result<PgConnectOptions, String> {
        PgConnectOptions::from_str(&self.full).map_err(|e| redact(&e.to_string()))
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DatabaseUrl({})", self.shown)
    }
}

impl std::fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl FromStr for DatabaseUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DatabaseUrl::parse(s)
    }
}

/// `text` with every URL's user-info (`user:password@`) masked, and a `password=` query
/// parameter's value too (libpq accepts both).
pub fn redact(text: &str) -> String {
    let masked = Redactor::default().clean(text);
    mask_password_param(&masked)
}

fn mask_password_param(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("password=") {
        let (head, tail) = rest.split_at(i + "password=".len());
        out.push_str(head);
        let end = tail
            .find(|c: char| c == '&' || c.is_whitespace() || c == '"' || c == ')')
            .unwrap_or(tail.len());
        if end > 0 {
            out.push_str(crate::integrations::redact::MASK);
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_urls_are_taken_and_shown_without_their_password() {
        for ok in [
            "postgres://tomato:s3cret@db:5432/tomato?sslmode=require",
            "postgresql://tomato@localhost/tomato",
            "postgres://tomato:s3cret@localhost/tomato?host=/run/postgresql",
        ] {
            let url = DatabaseUrl::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert!(!url.redacted().contains("s3cret"), "{url}");
            assert!(!format!("{url:?}").contains("s3cret"));
        }
        let url = DatabaseUrl::parse("postgres://u:s3cret@h/db").unwrap();
        assert_eq!(url.redacted(), "postgres://***@h/db");
    }

    #[test]
    fn other_schemes_and_bad_urls_are_refused_naming_the_flag_without_the_password() {
        for (bad, says) in [
            (
                "mysql://u:s3cret@h/db",
                "scheme must be postgres:// or postgresql://",
            ),
            ("sqlite:///tmp/x.db", "not sqlite://"),
            ("u:s3cret@h/db", "expected a URL"),
            (
                "postgres://u:s3cret@h/db?sslmode=sometimes",
                "not a valid PostgreSQL URL",
            ),
            ("postgres://u:s3cret@h:notaport/db", "not a valid PostgreSQL URL"),
        ] {
            let err = DatabaseUrl::parse(bad).unwrap_err();
            assert!(err.starts_with(FIELD), "{bad}: {err}");
            assert!(err.contains(says), "{bad}: {err}");
            assert!(!err.contains("s3cret"), "{bad}: {err}");
        }
    }

    #[test]
    fn password_parameters_are_masked_too() {
        assert_eq!(
            redact("postgres://h/db?user=u&password=s3cret&sslmode=require"),
            "postgres://h/db?user=u&password=***&sslmode=require"
        );
    }
}
