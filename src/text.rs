//! Checks on strings that come from outside and end up where a stray character does harm: in a
//! test command's argv, its environment, an email header or address, a tracker request.
//!
//! One function per kind of string, used by every way in (the legacy handles, `/api/v1`, the
//! web form, schedules), so the same value is refused the same way wherever it is sent:
//! - [`check_text`]: free text (an env value, a version): no control characters. A NUL cannot
//!   be passed to `execve` at all, so a run carrying one could only end in `Error`; a newline
//!   or escape in a header or a log line forges what follows it.
//! - [`check_name`]: names and addresses (stands, services, categories, packs, emails, issue
//!   keys, env names): no control characters and no bidirectional controls, which make a name
//!   read differently from what it is (`moc.elpmaxe@qa` shown as an innocent address).
//!
//! [`quote`] is how an error message shows a bad value: quoted, escaped, and cut to a bounded
//! prefix, so a 1 MiB parameter does not come back as a 1 MiB error.

/// The longest prefix of a bad value an error message quotes, in characters.
pub const QUOTE_MAX: usize = 80;

/// `s` as one URL path segment: every byte but letters, digits, `-`, `_` and `~`
/// percent-encoded, so `/`, `..` or `?` in a test id or a typo cannot turn into another path.
pub fn path_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `value` as an error message shows it: Rust-quoted (controls escaped), at most
/// [`QUOTE_MAX`] characters of it, with `…` after the quote when it was cut.
pub fn quote(value: &str) -> String {
    match value.char_indices().nth(QUOTE_MAX) {
        None => format!("{value:?}"),
        Some((cut, _)) => format!("{:?}…", &value[..cut]),
    }
}

/// The bidirectional controls: embeddings and overrides (U+202A–U+202E), isolates
/// (U+2066–U+2069) and marks (U+200E, U+200F, U+061C).
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// Free text: refused when it holds a control character (C0, DEL or C1).
pub fn check_text(value: &str) -> Result<(), String> {
    refuse(value, char::is_control, "a control character")
}

/// A name or an address: refused when it holds a control character or a bidirectional control.
pub fn check_name(value: &str) -> Result<(), String> {
    check_text(value)?;
    refuse(value, is_bidi_control, "a bidirectional control character")
}

fn refuse(value: &str, bad: impl Fn(char) -> bool, what: &str) -> Result<(), String> {
    match value.chars().enumerate().find(|(_, c)| bad(*c)) {
        None => Ok(()),
        Some((at, c)) => Err(format!(
            "{} holds {what} (U+{:04X} at character {})",
            quote(value),
            c as u32,
            at + 1
        )),
    }
}

/// Two optional remarks as one (`a; b`), or whichever there is.
pub fn joined(a: Option<String>, b: Option<String>) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) => Some(format!("{a}; {b}")),
        (a, b) => a.or(b),
    }
}

/// Whitespace runs (newlines included) as one space.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// At most `max` characters, with `…` when cut.
pub fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_value_is_quoted_whole_and_escaped() {
        assert_eq!(quote("qa1"), "\"qa1\"");
        assert_eq!(quote("a\0b"), "\"a\\0b\"");
    }

    #[test]
    fn a_long_value_is_quoted_up_to_a_bounded_prefix() {
        let long = "é".repeat(10_000);
        let q = quote(&long);
        assert!(q.ends_with('…'), "{q}");
        assert_eq!(q.chars().count(), QUOTE_MAX + 3, "two quotes, the prefix and …");
        assert_eq!(
            quote(&"x".repeat(QUOTE_MAX)),
            format!("\"{}\"", "x".repeat(QUOTE_MAX))
        );
    }

    #[test]
    fn text_refuses_nul_and_every_other_control_character() {
        assert!(check_text("plain text, with spaces and ünïcode").is_ok());
        for bad in [
            "a\0b",
            "line\nbreak",
            "tab\there",
            "esc\u{1b}[31m",
            "del\u{7f}",
            "c1\u{85}",
        ] {
            assert!(check_text(bad).is_err(), "{bad:?}");
        }
        let e = check_text("ab\0").unwrap_err();
        assert!(e.contains("U+0000 at character 3"), "{e}");
    }

    #[test]
    fn text_may_hold_bidirectional_controls_but_names_may_not() {
        assert!(check_text("שלום \u{202E}").is_ok());
        for c in [
            '\u{202A}', '\u{202E}', '\u{2066}', '\u{2069}', '\u{200E}', '\u{200F}', '\u{061C}',
        ] {
            let name = format!("qa{c}@example.com");
            let e = check_name(&name).unwrap_err();
            assert!(e.contains("bidirectional"), "{e}");
        }
        assert!(check_name("qa@example.com").is_ok());
        assert!(check_name("a\0").unwrap_err().contains("control character"));
    }

    #[test]
    fn an_error_quotes_a_bounded_prefix_of_the_value() {
        let e = check_name(&format!("{}\u{202E}", "x".repeat(5000))).unwrap_err();
        assert!(e.len() < 200, "{e}");
    }
}
