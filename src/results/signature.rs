//! Failure signatures: what a failure *is*, apart from the values it happened to print.
//!
//! Each failed or broken result (and a flaky test's failing attempt) gets a [`Signature`]: the
//! first 16 hex digits of the SHA-256 of `"v1\n"` + [`normalise`]`(message, trace)`. Two runs
//! that fail the same way — the same assertion shape from the same test code — get the same
//! signature although the numbers, ids, times, hosts and temp paths they printed differ; the
//! failure history (new / known / changed / fixed) keys on it.
//!
//! Why it is shaped so:
//! - **Pure and one function.** [`normalise`] is the whole definition: no configuration, no
//!   I/O, so a signature computed today and one computed by another replica or mode agree.
//! - **Versioned.** The hashed text starts with [`VERSION`]. Changing what is masked changes
//!   every signature, so a change to [`normalise`] must bump it (and history then starts anew
//!   rather than silently mixing two definitions). Signatures are stored when a run is
//!   classified, never recomputed for old runs.
//! - **The shape, not the values.** Numbers are masked, so `expected: <200> but was: <500>`
//!   and `... <404>` are one signature: "the status check failed". What separates one test's
//!   failure from another's is the *frame*: the first frame of the trace in the test's own
//!   code (file name and function, without line numbers, so an edit above it keeps it).
//! - **Conservative masking.** Only what is volatile by nature is masked; words stay. A
//!   host name outside a URL stays (it cannot be told from a file name such as `main_test.go`).

use std::fmt;
use std::sync::LazyLock;

use regex::{Captures, Regex};
use serde::{Deserialize, Serialize};

/// Prefix of the hashed text; bump it whenever [`normalise`] changes what it produces.
pub const VERSION: &str = "v1";
/// Hex digits kept of the SHA-256 (64 bits: no accidental collisions among a team's failures).
const HEX_DIGITS: usize = 16;
/// Longest normalised message kept (characters); longer ones are cut at a word boundary.
const MAX_CHARS: usize = 1000;
/// Characters of a message read at most: enough for [`MAX_CHARS`] after masking, and a bound
/// on the work a runaway message (a whole response body) can cause.
const MAX_INPUT_CHARS: usize = 16 * MAX_CHARS;
/// Lines of a trace searched for the test's own frame.
const MAX_TRACE_LINES: usize = 500;
/// Longest quoted value masked as a value; a longer quoted text is prose (a nested error
/// message) and is masked piece by piece instead.
const MAX_QUOTED: usize = 80;

/// A failure's signature: 16 lowercase hex digits. Serialised as that string.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Signature(String);

impl Signature {
    /// The signature of an already normalised text.
    pub fn of_normalised(normalised: &str) -> Signature {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(VERSION.as_bytes());
        ctx.update(b"\n");
        ctx.update(normalised.as_bytes());
        let digest = ctx.finish();
        let mut hex = String::with_capacity(HEX_DIGITS);
        for b in digest.as_ref().iter().take(HEX_DIGITS / 2) {
            hex.push_str(&format!("{b:02x}"));
        }
        Signature(hex)
    }

    /// The signature of a failure: its message and trace, normalised.
    pub fn of(message: &str, trace: &str) -> Signature {
        Signature::of_normalised(&normalise(message, trace))
    }

    /// The 16 hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a stored string is not a signature.
#[derive(Debug, thiserror::Error)]
#[error("not a failure signature (16 lowercase hex digits): {0:?}")]
pub struct NotASignature(String);

impl TryFrom<String> for Signature {
    type Error = NotASignature;

    fn try_from(s: String) -> Result<Signature, NotASignature> {
        if s.len() == HEX_DIGITS
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(Signature(s))
        } else {
            Err(NotASignature(s))
        }
    }
}

impl From<Signature> for String {
    fn from(s: Signature) -> String {
        s.0
    }
}

/// The text a failure's signature is the hash of: the message with its volatile parts masked
/// and whitespace collapsed, then, on a line of its own, `at ` and the first frame of the
/// test's own code found in `trace` (see [`own_frame`]), when there is one. A message that is
/// empty is replaced by the trace's first non-empty line.
///
/// Masked, in this order (each step says why it comes where it does):
/// 1. ANSI colour codes (Jest, Playwright) are removed: their digits are not values.
/// 2. Whitespace runs become one space.
/// 3. Temp paths (`/tmp/…`, pytest's `tmp_path`, `/var/folders/…`, `C:\Users\…\Temp\…`) →
///    `<tmp>`: first, as their random names hold letters that number masking would leave.
/// 4. The host and port of URLs → `scheme://<host>` (before IPs and numbers, for the same reason).
/// 5. UUIDs → `<uuid>`: before hex, which would mask only their 8- and 12-digit groups.
/// 6. Timestamps, dates and clock times (ISO 8601, RFC 2822) → `<time>`: before durations,
///    IPs and numbers, which would split them into pieces of varying shape.
/// 7. IPv4 addresses with their port → `<ip>`: before numbers (`<n>.<n>.<n>.<n>` would do, but
///    an address is one value).
/// 8. Durations (`1.23s`, `250ms`, `in 3.2 seconds`, Selenium's `10 second(s)`) → `<duration>`:
///    before numbers, because the unit changes with the size (`950ms`, then `1.2s`).
/// 9. Memory addresses and hex (`0x7f…`, runs of 6+ hex digits with both a digit and a letter
///    among them: ids, hashes, session ids) → `<hex>`: before numbers, which would leave their
///    letters. A run of decimal digits only is left to step 10, so a number's signature does not
///    depend on how many digits it has (a hash that happens to be all digits becomes `<n>`).
/// 10. Numbers (integers, decimals, versions such as `120.0.6099.109`; ports too) → `<n>`; digits
///     in a word (`urllib3`, `sha256`, `v1`, `10px`) are part of the word and stay. Every rule
///     from 5 on masks whole words only, so masking never makes a new word boundary that a
///     second pass would see differently.
/// 11. Quoted values (`'…'`, `"…"`, `` `…` ``, up to 80 characters, the opening quote not
///     inside a word, so `don't` stays) → `'<s>'`: last, so that a quoted value's length is
///     judged after the steps above (which makes [`normalise`] idempotent).
///
/// Only the first 16,000 characters of a message are read, and the result is cut to 1000
/// characters at a word boundary; the frame is looked for in the first 500 lines of the trace.
/// Pure; never panics.
pub fn normalise(message: &str, trace: &str) -> String {
    let message = if message.trim().is_empty() {
        trace
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or_default()
    } else {
        message
    };
    let mut out = mask(message);
    if let Some(frame) = own_frame(trace) {
        out.push_str("\nat ");
        out.push_str(&frame);
    }
    out
}

struct Rules {
    ansi: Regex,
    space: Regex,
    temp: Regex,
    url: Regex,
    uuid: Regex,
    time: Regex,
    ip: Regex,
    duration: Regex,
    hex: Regex,
    number: Regex,
    quoted: Regex,
}

static RULES: LazyLock<Rules> = LazyLock::new(|| {
    let re = |p: &str| Regex::new(p).expect("the signature patterns are valid (unit-tested)");
    Rules {
        ansi: re(r"\x1b\[[0-9;]*[A-Za-z]"),
        space: re(r"\s+"),
        temp: re(concat!(
            r#"(?:/private)?/var/folders/[^\s'"`]+"#,
            r#"|/(?:var/)?tmp/[^\s'"`]+"#,
            r#"|(?i:[a-z]:\\(?:Users\\[^\\\s'"`]+\\AppData\\Local\\Temp|Windows\\Temp)\\[^\s'"`]*)"#,
        )),
        url: re(r#"\b([A-Za-z][A-Za-z0-9+.-]*://)[^\s/'"`?#<>]+"#),
        uuid: re(r"\b[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\b"),
        time: re(concat!(
            r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?\b",
            r"|\b(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{1,2} (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2}(?: (?:GMT|UTC|[+-]\d{4}))?",
            r"|\b\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?\b",
        )),
        ip: re(r"\b\d{1,3}(?:\.\d{1,3}){3}\b(?::\d{1,5}\b)?"),
        duration: re(concat!(
            r"\b\d+(?:\.\d+)?\s?(?:second\(s\)|millisecond\(s\)",
            r"|(?:milliseconds?|ms|seconds?|secs?|s|minutes?|mins?|m|hours?|h|us|µs|ns)\b)",
        )),
        hex: re(r"\b0[xX][0-9A-Fa-f]+\b|\b[0-9A-Fa-f]{6,}\b"),
        number: re(r"\b\d+(?:\.\d+)*\b"),
        quoted: re(&format!(
            r#"(^|[^\w])(?:'[^'\n]{{0,{MAX_QUOTED}}}'|"[^"\n]{{0,{MAX_QUOTED}}}"|`[^`\n]{{0,{MAX_QUOTED}}}`)"#
        )),
    }
});

/// Masks a message (the steps of [`normalise`]).
fn mask(message: &str) -> String {
    let r = &*RULES;
    let message = match message.char_indices().nth(MAX_INPUT_CHARS) {
        Some((end, _)) => &message[..end],
        None => message,
    };
    let s = r.ansi.replace_all(message, "");
    let s = r.space.replace_all(s.trim(), " ");
    let s = r.temp.replace_all(&s, "<tmp>");
    let s = r.url.replace_all(&s, "${1}<host>");
    let s = r.uuid.replace_all(&s, "<uuid>");
    let s = r.time.replace_all(&s, "<time>");
    let s = r.ip.replace_all(&s, "<ip>");
    let s = r.duration.replace_all(&s, "<duration>");
    let s = r.hex.replace_all(&s, |c: &Captures| {
        let m = &c[0];
        // A word of hex letters only (`decade`, `facade`) is a word, not a value; a run of
        // decimal digits only is a number (step 10), whatever its length: `/users/99999` and
        // `/users/100000` are the same failure.
        let digits = m.bytes().filter(u8::is_ascii_digit).count();
        if m.starts_with("0x") || m.starts_with("0X") || (digits > 0 && digits < m.len()) {
            "<hex>".to_string()
        } else {
            m.to_string()
        }
    });
    let s = r.number.replace_all(&s, "<n>");
    // Until nothing changes: masking a quoted value inside a long quoted text can bring the
    // outer one under the length limit. Ends: each further change removes two quote marks.
    let mut s = s.into_owned();
    loop {
        let next = r.quoted.replace_all(&s, |c: &Captures| {
            let quote = c[0].chars().last().unwrap_or('\'');
            format!("{}{quote}<s>{quote}", &c[1])
        });
        if next == s {
            break;
        }
        s = next.into_owned();
    }
    cut(&s).to_string()
}

/// The first [`MAX_CHARS`] characters of `s`, back to the last space so no word is split.
fn cut(s: &str) -> &str {
    match s.char_indices().nth(MAX_CHARS) {
        None => s,
        Some((end, _)) => {
            let head = &s[..end];
            head.rfind(' ').map_or(head, |i| &head[..i]).trim_end()
        }
    }
}

/// Frame lines of the trace formats the runners write, each giving a file and maybe a function.
struct Frames {
    /// Python: `File "tests/test_api.py", line 12, in test_users`.
    python: Regex,
    /// pytest's own traceback: `tests/test_api.py:12: in test_users` or `tests/test_x.py:5: AssertionError`.
    pytest: Regex,
    /// Java and Kotlin: `at com.example.LoginTest.login(LoginTest.java:42)`.
    java: Regex,
    /// Node, Jest, Playwright: `at Context.<anonymous> (/app/test/login.test.js:12:5)`, `at /app/x.js:1:2`.
    node: Regex,
    /// Go: `    main_test.go:12: got 3, want 4`.
    go: Regex,
    /// A Python function's first line in the source pytest quotes: `def test_users(client):`.
    def: Regex,
}

static FRAMES: LazyLock<Frames> = LazyLock::new(|| {
    let re = |p: &str| Regex::new(p).expect("the frame patterns are valid (unit-tested)");
    Frames {
        python: re(r#"^\s*File "([^"]+)", line \d+, in (\S+)"#),
        pytest: re(r"^([^\s:]+\.py):\d+: (?:in (\S+)|\w)"),
        java: re(r"^\s*at (?:[\w.-]+/)*([\w$.]+)\.([\w$<>]+)\(([^():]*)(?::\d+)?\)"),
        node: re(r"^\s*at (?:async )?(?:(\S+) (?:\[as \S+\] )?\()?([^()\s]+?):\d+(?::\d+)?\)?\s*$"),
        go: re(r"^\s*([\w./-]+\.go):\d+"),
        def: re(r"^\s*(?:async\s+)?def (\w+)\("),
    }
});

/// Path parts that mark a frame as library code (not the test's own).
const LIBRARY_PATHS: &[&str] = &[
    "site-packages/",
    "dist-packages/",
    "node_modules/",
    "/usr/lib/",
    "/usr/local/lib/",
    "/usr/local/go/",
    "/go/pkg/mod/",
    "/opt/homebrew/",
];
/// Path prefixes of runtime-internal frames.
const LIBRARY_PREFIXES: &[&str] = &["node:", "internal/", "<"];
/// Java packages of the JDK, test frameworks, Selenium and build tools.
const LIBRARY_PACKAGES: &[&str] = &[
    "java.",
    "javax.",
    "jdk.",
    "sun.",
    "com.sun.",
    "kotlin.",
    "kotlinx.",
    "org.junit.",
    "junit.",
    "org.opentest4j.",
    "org.testng.",
    "org.assertj.",
    "org.hamcrest.",
    "org.openqa.selenium.",
    "org.apache.maven.",
    "org.gradle.",
    "worker.org.gradle.",
    "io.restassured.",
    "org.springframework.",
];

/// The first frame of `trace` in the test's own code, as `<file name> <function>` (or the file
/// name alone when the line names no function; for pytest's `file.py:5: AssertionError` the
/// function is the one whose `def` line pytest quotes above it). Line and column numbers and
/// the directories of the file are dropped: an edit above the failing line, or another
/// checkout path, keeps it.
///
/// Library frames are skipped: paths under `site-packages/`, `dist-packages/`, `node_modules/`,
/// `/usr/lib/`, `/usr/local/lib/`, the Go toolchain and module cache; `node:…` and `internal/…`
/// (Node's own), `<anonymous>`, `<frozen …>` and other `<…>` pseudo-files; Java frames of the
/// JDK (`java.`, `javax.`, `jdk.internal`, `sun.`), JUnit, TestNG, opentest4j, AssertJ,
/// Hamcrest, Selenium, Spring, REST Assured and the build tools.
pub fn own_frame(trace: &str) -> Option<String> {
    let f = &*FRAMES;
    let library_path = |p: &str| {
        LIBRARY_PATHS.iter().any(|l| p.contains(l)) || LIBRARY_PREFIXES.iter().any(|l| p.starts_with(l))
    };
    let base = |p: &str| p.rsplit(['/', '\\']).next().unwrap_or(p).to_string();
    let frame = |file: &str, function: Option<&str>| match function {
        Some(func) => format!("{} {func}", base(file)),
        None => base(file),
    };
    // pytest names no function on the line of the frame that raised (`tests/test_x.py:5:
    // AssertionError`), but quotes that function's source above it: its `def` line names it.
    let mut quoted_def: Option<&str> = None;
    for line in trace.lines().take(MAX_TRACE_LINES) {
        if let Some(c) = f.def.captures(line) {
            quoted_def = c.get(1).map(|m| m.as_str());
            continue;
        }
        if let Some(c) = f.java.captures(line) {
            let class = &c[1];
            if LIBRARY_PACKAGES.iter().any(|p| class.starts_with(p)) {
                continue;
            }
            let file = c.get(3).map_or("", |m| m.as_str());
            return Some(frame(file, Some(&format!("{class}.{}", &c[2]))));
        }
        if let Some(c) = f.node.captures(line) {
            let file = &c[2];
            if library_path(file) {
                continue;
            }
            return Some(frame(file, c.get(1).map(|m| m.as_str())));
        }
        if let Some(c) = f.python.captures(line).or_else(|| f.pytest.captures(line)) {
            let file = &c[1];
            if library_path(file) {
                continue;
            }
            return Some(frame(file, c.get(2).map(|m| m.as_str()).or(quoted_def)));
        }
        if let Some(c) = f.go.captures(line) {
            let file = &c[1];
            if library_path(file) {
                continue;
            }
            return Some(frame(file, None));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn same(a: (&str, &str), b: (&str, &str)) {
        assert_eq!(
            normalise(a.0, a.1),
            normalise(b.0, b.1),
            "these should be one failure"
        );
        assert_eq!(Signature::of(a.0, a.1), Signature::of(b.0, b.1));
    }

    fn differ(a: (&str, &str), b: (&str, &str)) {
        assert_ne!(Signature::of(a.0, a.1), Signature::of(b.0, b.1));
    }

    #[test]
    fn pytest_assertions_keep_their_shape_and_lose_their_values() {
        assert_eq!(normalise("assert 3 == 4", ""), "assert <n> == <n>");
        assert_eq!(
            normalise("AssertionError: assert {'a': 1} == {'a': 2}", ""),
            "AssertionError: assert {'<s>': <n>} == {'<s>': <n>}"
        );
        same(("assert 3 == 4", ""), ("assert 10 == 4", ""));
        differ(("assert 3 == 4", ""), ("assert 3 in [4]", ""));
    }

    #[test]
    fn a_requests_connection_error_loses_host_port_path_ids_and_address() {
        let a = "requests.exceptions.ConnectionError: HTTPConnectionPool(host='10.0.0.5', port=8080): Max retries exceeded with url: /api/v1/users/42 (Caused by NewConnectionError('<urllib3.connection.HTTPConnection object at 0x7f3a2c1d0e50>: Failed to establish a new connection: [Errno 111] Connection refused'))";
        let b = "requests.exceptions.ConnectionError: HTTPConnectionPool(host='stand-7.qa.local', port=18080): Max retries exceeded with url: /api/v1/users/1337 (Caused by NewConnectionError('<urllib3.connection.HTTPConnection object at 0x7f00aa11bb22>: Failed to establish a new connection: [Errno 111] Connection refused'))";
        assert_eq!(
            normalise(a, ""),
            "requests.exceptions.ConnectionError: HTTPConnectionPool(host='<s>', port=<n>): Max retries exceeded with url: /api/v1/users/<n> (Caused by NewConnectionError('<urllib3.connection.HTTPConnection object at <hex>>: Failed to establish a new connection: [Errno <n>] Connection refused'))"
        );
        same((a, ""), (b, ""));
        differ(
            (a, ""),
            (&a.replace("Connection refused", "Name or service not known"), ""),
        );
    }

    #[test]
    fn pytest_messages_as_its_junit_report_writes_them() {
        let a = "AssertionError: order 6f1c2d4e-9a7b-4c1d-8e2f-0a1b2c3d4e5f at 2026-12-06T11:27:01.123456 took 0.123s\nassert 5234 == 42";
        let b = "AssertionError: order 0b8e7f6a-1111-4222-8333-444455556666 at 2026-12-06T11:27:09.004211 took 1.5s\nassert 77 == 42";
        assert_eq!(
            normalise(a, "tests/test_sig.py:6: AssertionError"),
            "AssertionError: order <uuid> at <time> took <duration> assert <n> == <n>\nat test_sig.py"
        );
        same(
            (a, "tests/test_sig.py:6: AssertionError"),
            (b, "tests/test_sig.py:7: AssertionError"),
        );
    }

    #[test]
    fn two_pytest_tests_of_one_file_failing_alike_are_told_apart_by_their_function() {
        let trace = |name: &str| {
            format!(
                "def {name}():\n>       assert 3 == 4\nE       assert 3 == 4\n\ntests/test_x.py:5: AssertionError"
            )
        };
        differ(
            ("assert 3 == 4", &trace("test_total")),
            ("assert 3 == 4", &trace("test_discount")),
        );
        same(
            ("assert 3 == 4", &trace("test_total")),
            ("assert 7 == 4", &trace("test_total")),
        );
    }

    #[test]
    fn node_assert_and_jest_expectations() {
        let node = "AssertionError [ERR_ASSERTION]: Expected values to be strictly equal:\n\n1 !== 2\n";
        assert_eq!(
            normalise(node, ""),
            "AssertionError [ERR_ASSERTION]: Expected values to be strictly equal: <n> !== <n>"
        );
        let jest = "expect(received).toBe(expected) // Object.is equality\n\nExpected: 200\nReceived: 503";
        assert_eq!(
            normalise(jest, ""),
            "expect(received).toBe(expected) // Object.is equality Expected: <n> Received: <n>"
        );
        same((jest, ""), (&jest.replace("503", "502"), ""));
        let coloured = "expect(\u{1b}[31mreceived\u{1b}[39m).toBe(\u{1b}[32mexpected\u{1b}[39m) // Object.is equality\n\nExpected: \u{1b}[32m200\u{1b}[39m\nReceived: \u{1b}[31m503\u{1b}[39m";
        same((jest, ""), (coloured, ""));
    }

    #[test]
    fn junit5_messages_are_one_shape_whatever_the_status_codes() {
        let a = "org.opentest4j.AssertionFailedError: expected: <200> but was: <500>";
        assert_eq!(
            normalise(a, ""),
            "org.opentest4j.AssertionFailedError: expected: <<n>> but was: <<n>>"
        );
        // The values are masked: a 500 and a 404 from one check are one failure of that check.
        same((a, ""), (&a.replace("500", "404"), ""));
    }

    #[test]
    fn the_test_code_frame_separates_the_same_message_from_two_tests() {
        let msg = "org.opentest4j.AssertionFailedError: expected: <200> but was: <500>";
        let trace = |method: &str, line: u32| {
            format!(
                "{msg}\n\tat org.junit.jupiter.api.AssertionFailureBuilder.build(AssertionFailureBuilder.java:151)\n\tat org.junit.jupiter.api.Assertions.assertEquals(Assertions.java:145)\n\tat com.example.api.UsersTest.{method}(UsersTest.java:{line})\n\tat java.base/java.lang.reflect.Method.invoke(Method.java:580)"
            )
        };
        assert_eq!(
            normalise(msg, &trace("createsUser", 42)),
            "org.opentest4j.AssertionFailedError: expected: <<n>> but was: <<n>>\nat UsersTest.java com.example.api.UsersTest.createsUser"
        );
        same((msg, &trace("createsUser", 42)), (msg, &trace("createsUser", 57)));
        differ((msg, &trace("createsUser", 42)), (msg, &trace("deletesUser", 42)));
    }

    #[test]
    fn selenium_timeouts_and_missing_elements() {
        let wait = "org.openqa.selenium.TimeoutException: Expected condition failed: waiting for visibility of element located by By.cssSelector: #login (tried for 10 second(s) with 500 milliseconds interval)";
        assert_eq!(
            normalise(wait, ""),
            "org.openqa.selenium.TimeoutException: Expected condition failed: waiting for visibility of element located by By.cssSelector: #login (tried for <duration> with <duration> interval)"
        );
        same((wait, ""), (&wait.replace("10 second(s)", "30 second(s)"), ""));
        let missing = "NoSuchElementException: Message: no such element: Unable to locate element: {\"method\":\"css selector\",\"selector\":\"#submit\"}\n  (Session info: chrome=120.0.6099.109)";
        assert_eq!(
            normalise(missing, ""),
            "NoSuchElementException: Message: no such element: Unable to locate element: {\"<s>\":\"<s>\",\"<s>\":\"<s>\"} (Session info: chrome=<n>)"
        );
        same(
            (missing, ""),
            (&missing.replace("120.0.6099.109", "131.0.6778.85"), ""),
        );
    }

    #[test]
    fn go_and_playwright() {
        assert_eq!(
            normalise("main_test.go:12: got 3, want 4", ""),
            "main_test.go:<n>: got <n>, want <n>"
        );
        let pw = "TimeoutError: locator.click: Timeout 30000ms exceeded.\nCall log:\n  - waiting for getByRole('button', { name: 'Submit' })\n";
        assert_eq!(
            normalise(pw, ""),
            "TimeoutError: locator.click: Timeout <duration> exceeded. Call log: - waiting for getByRole('<s>', { name: '<s>' })"
        );
        let pw_nav = "page.goto: net::ERR_CONNECTION_REFUSED at http://localhost:3000/login\nCall log:\n  - navigating to \"http://localhost:3000/login\", waiting until \"load\"";
        same((pw_nav, ""), (&pw_nav.replace("3000", "5173"), ""));
        assert!(
            normalise(pw_nav, "")
                .starts_with("page.goto: net::ERR_CONNECTION_REFUSED at http://<host>/login")
        );
    }

    #[test]
    fn a_number_is_a_number_however_many_digits_it_has() {
        // Six decimal digits are also six hex digits: they must not become `<hex>` while five
        // become `<n>` (found by a real run: `/api/v1/users/{random id}`).
        same(
            ("GET /api/v1/users/99999 failed", ""),
            ("GET /api/v1/users/100000 failed", ""),
        );
        same(("total 12345 != 42", ""), ("total 1234567890 != 42", ""));
        assert_eq!(normalise("user 123456", ""), "user <n>");
        assert_eq!(normalise("trace 3fa9c0e1", ""), "trace <hex>");
    }

    #[test]
    fn ids_times_durations_and_temp_paths_are_masked() {
        let a = "request 6f1c2d4e-9a7b-4c1d-8e2f-0a1b2c3d4e5f failed at 2026-12-06T11:14:09.123Z after 1.23s (trace 3fa9c0e1b2d4) in /tmp/pytest-of-ci/pytest-42/test_upload0/data.csv";
        let b = "request 00000000-1111-4222-8333-444455556666 failed at 2025-01-31 23:59:59+03:00 after 250ms (trace 0deadbeef12) in /tmp/pytest-of-qa/pytest-7/test_upload1/data.csv";
        assert_eq!(
            normalise(a, ""),
            "request <uuid> failed at <time> after <duration> (trace <hex>) in <tmp>"
        );
        same((a, ""), (b, ""));
        same(
            ("took in 3.2 seconds on Sun, 06 Dec 2026 11:14:09 GMT", ""),
            ("took in 12 seconds on Mon, 07 Dec 2026 01:02:03 GMT", ""),
        );
        same(
            (
                r"cannot open C:\Users\qa\AppData\Local\Temp\tmp8x2k\report.json",
                "",
            ),
            (r"cannot open C:\Users\ci\AppData\Local\Temp\abc\report.json", ""),
        );
        same(
            ("no file /var/folders/x7/k2_abc/T/tmp1/a", ""),
            ("no file /var/folders/q1/zz/T/tmp9/a", ""),
        );
        same(
            ("connect ECONNREFUSED 127.0.0.1:8080", ""),
            ("connect ECONNREFUSED 10.2.3.4:5432", ""),
        );
        // Words of hex letters and apostrophes in prose stay.
        assert_eq!(
            normalise("a decade of facade: don't 'x'", ""),
            "a decade of facade: don't '<s>'"
        );
    }

    #[test]
    fn the_own_frame_skips_library_frames_of_each_runner() {
        let python = "Traceback (most recent call last):\n  File \"/usr/lib/python3/site-packages/_pytest/python.py\", line 194, in pytest_pyfunc_call\n  File \"/home/ci/work/tests/test_api.py\", line 12, in test_users\n  File \"/usr/lib/python3/site-packages/requests/api.py\", line 73, in get";
        assert_eq!(own_frame(python).as_deref(), Some("test_api.py test_users"));
        let pytest = "tests/test_api.py:12: in test_users\n    r = requests.get(url)\n/usr/lib/python3.12/site-packages/requests/api.py:73: in get\n    return request(\"get\", url)\nE   requests.exceptions.ConnectionError\n\n/usr/lib/python3.12/site-packages/requests/adapters.py:519: ConnectionError";
        assert_eq!(own_frame(pytest).as_deref(), Some("test_api.py test_users"));
        assert_eq!(
            own_frame("def test_x():\n>       assert 3 == 4\nE       assert 3 == 4\n\ntests/test_x.py:5: AssertionError").as_deref(),
            Some("test_x.py test_x")
        );
        assert_eq!(
            own_frame("tests/test_x.py:5: AssertionError").as_deref(),
            Some("test_x.py")
        );
        let node = "AssertionError [ERR_ASSERTION]: Expected values to be strictly equal:\n    at node:internal/test_runner/runner:1:1\n    at Object.<anonymous> (/app/node_modules/mocha/lib/runner.js:1:1)\n    at TestContext.<anonymous> (/app/test/cart.test.js:14:12)\n    at Test.runInAsyncScope (node:async_hooks:206:9)";
        assert_eq!(
            own_frame(node).as_deref(),
            Some("cart.test.js TestContext.<anonymous>")
        );
        assert_eq!(
            own_frame("Error: boom\n    at new Promise (<anonymous>)\n    at /work/e2e/login.spec.ts:20:5")
                .as_deref(),
            Some("login.spec.ts")
        );
        assert_eq!(
            own_frame("    main_test.go:12: got 3, want 4").as_deref(),
            Some("main_test.go")
        );
        assert_eq!(own_frame("no frames here\njust words"), None);
    }

    #[test]
    fn an_empty_message_is_read_from_the_trace() {
        assert_eq!(
            normalise(
                "",
                "\nTypeError: Cannot read properties of undefined (reading 'id')\n    at Object.<anonymous> (tests/u.test.js:3:9)"
            ),
            "TypeError: Cannot read properties of undefined (reading '<s>')\nat u.test.js Object.<anonymous>"
        );
    }

    #[test]
    fn long_messages_are_cut_at_a_word() {
        let long = "word ".repeat(500);
        let n = normalise(&long, "");
        assert!(n.chars().count() <= MAX_CHARS);
        assert!(n.ends_with("word"));
    }

    #[test]
    fn signatures_are_versioned_hex_and_serialise_as_strings() {
        let s = Signature::of("assert 3 == 4", "");
        assert_eq!(s.as_str().len(), 16);
        assert_eq!(s, Signature::of_normalised("assert <n> == <n>"));
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, format!("\"{s}\""));
        assert_eq!(serde_json::from_str::<Signature>(&json).unwrap(), s);
        assert!(serde_json::from_str::<Signature>("\"not hex\"").is_err());
        // Pinned: a change here means the definition changed, and VERSION must be bumped.
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(b"v1\nassert <n> == <n>");
        let hex: String = ctx.finish().as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(s.as_str(), hex);
    }

    proptest! {
        #[test]
        fn normalise_is_idempotent_and_never_panics(message in "\\PC{0,300}", trace in "\\PC{0,200}") {
            let once = normalise(&message, &trace);
            let msg_only = normalise(&message, "");
            prop_assert_eq!(normalise(&msg_only, ""), msg_only.clone());
            prop_assert!(once.starts_with(&msg_only) || message.trim().is_empty());
        }

        #[test]
        fn volatile_looking_messages_are_idempotent(
            message in "[a-f0-9 '\"`:./x-]{0,200}|(assert|at|in|host=|http://|/tmp/|0x|[0-9]{1,4}|ms|s| |'|\"|-|:|\\.){0,60}"
        ) {
            let once = normalise(&message, "");
            prop_assert_eq!(normalise(&once, ""), once);
        }
    }
}
