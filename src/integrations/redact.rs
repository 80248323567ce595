//! Keeping credentials out of every text that leaves a report channel.
//!
//! An error from an SMTP or HTTP library may quote what it was given: a URL with
//! `user:password@`, a webhook URL whose path is its secret, a server's answer echoing a
//! header. Every reason stored in `status.report`, logged or returned by the API passes
//! through [`Redactor::clean`] first, which blanks each known secret (and its URL-encoded
//! form) and the user-info part of any URL.

use std::sync::LazyLock;

use regex::Regex;

/// What stands in for a hidden value.
pub const MASK: &str = "***";

/// `scheme://user:password@` (or `scheme://token@`) in free text.
static USERINFO: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/@]+@").expect("the user-info pattern is valid")
});

/// Blanks known secrets in text.
#[derive(Clone, Default)]
pub struct Redactor {
    /// Longest first, so that a secret containing another is blanked whole.
    secrets: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} values)", self.secrets.len())
    }
}

impl Redactor {
    /// Adds a value to hide (empty values are ignored).
    pub fn add(&mut self, secret: &str) {
        for form in [secret.to_string(), percent_encode(secret)] {
            if !form.is_empty() && !self.secrets.contains(&form) {
                self.secrets.push(form);
            }
        }
        self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }

    /// `text` with every known secret and every URL's user-info replaced by `***`.
    pub fn clean(&self, text: &str) -> String {
        let mut out = USERINFO.replace_all(text, format!("${{1}}{MASK}@")).into_owned();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), MASK);
            }
        }
        out
    }
}

/// Standard base64 with padding: the form credentials take in `Authorization: Basic`, which
/// a server's error answer may echo.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 0x3f) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The form a value takes inside a URL (RFC 3986 unreserved characters kept).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_secrets_are_blanked_plain_and_url_encoded() {
        let mut r = Redactor::default();
        r.add("p@ss w0rd");
        r.add("");
        let text = "auth failed for p@ss w0rd (url smtp://h/?x=p%40ss%20w0rd)";
        assert_eq!(r.clean(text), "auth failed for *** (url smtp://h/?x=***)");
    }

    #[test]
    fn base64_matches_the_rfc_4648_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain:?}");
        }
    }

    #[test]
    fn user_info_of_any_url_is_blanked() {
        let r = Redactor::default();
        assert_eq!(
            r.clean("cannot reach smtps://tomato:hunter2@mail.example.com:465 (timeout)"),
            "cannot reach smtps://***@mail.example.com:465 (timeout)"
        );
        assert_eq!(
            r.clean("see https://example.com/a@b"),
            "see https://example.com/a@b"
        );
    }
}
