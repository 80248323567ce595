//! Required-literal extraction: for a line regex, a small set of strings such that every match contains
//! at least one of them.
//!
//! regex-syntax's own extractor finds prefixes and suffixes, but log rules are typically shaped like
//! `.*TimeoutException.*waiting for` or `HTTP/1\.1" 5\d\d`: the useful literal sits in the middle, after
//! an unbounded or large class. So we walk the HIR ourselves, computing for each node
//!
//! * `exact`: the node's complete (finite, small) language, when it has one — this is what lets
//!   `(?i)dead` (four two-letter classes) become 16 concrete strings, and `(foo|bar)baz` become
//!   `foobaz`/`barbaz`;
//! * `required`: the best set such that every string the node matches contains one of them.
//!
//! A concatenation requires any one of its parts, so it picks the best part or the best window of
//! adjacent exact parts; an alternation requires the union of its branches' sets; a repetition with
//! `min >= 1` requires what its body requires. "Best" prefers long literals made of rare bytes, and few
//! of them. Look-around assertions (`^`, `$`, `\b`) consume nothing and never contribute.
//!
//! With `fold`, every string is ASCII-lowercased: the sets then describe an ASCII-lowercased copy of the
//! haystack, which turns `(?i)deadlock` into the single needle `deadloc` (+`k` or the Kelvin sign) instead
//! of 2^8 case variants that no multi-literal searcher could take.
//!
//! The result is only a prefilter: lines containing a literal are then checked with the full regex,
//! unless the regex is exactly an alternation of plain literals (then the literal hit is the match).
//! [`fingerprints`] finally cuts each literal down to the piece the SIMD searcher should look for.

use regex_syntax::hir::{Class, Hir, HirKind};

/// Most strings a set may hold (Teddy, the fast multi-literal searcher, takes 64 in all).
const MAX_SET: usize = 32;
/// Most strings a window of adjacent small classes may expand to (`(?i)` letters double each time).
const MAX_WINDOW: usize = 16;
/// Longest literal kept in an exact language (longer ones are cut off as inexact).
const MAX_LEN: usize = 256;
/// Largest class expanded into single-character literals (`[Kk\u{212A}]` under `(?i)` has three).
const MAX_CLASS: usize = 4;
/// Most parts of a concatenation joined into one window.
const MAX_WINDOW_PARTS: usize = 24;
/// Shortest literal for the shared multi-literal pass. Teddy fingerprints the first `min(4, shortest)`
/// bytes of every needle, so one 3-byte needle would weaken the filter for all rules.
pub(crate) const MIN_LITERAL_LEN: usize = 4;
/// Longest needle handed to the searcher; a long literal is cut to its most selective piece.
const MAX_NEEDLE: usize = 16;

/// The literals chosen for a regex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Required {
    /// Every match contains one of these (as a substring).
    pub lits: Vec<Vec<u8>>,
    /// The regex matches exactly these strings, anywhere in a line: a literal hit is a match.
    pub exact: bool,
}

/// Pick the prefilter literals for `hir` (ASCII-lowercased with `fold`), or `None` when no set of
/// literals of at least `min_len` bytes exists (the regex then has to be run over every line).
pub(crate) fn required_literals(hir: &Hir, fold: bool, min_len: usize) -> Option<Required> {
    let info = analyze(hir, fold, min_len);
    let usable = |s: &Vec<Vec<u8>>| usable(s, min_len);
    let exact = info.exact.filter(usable);
    let required = info.required.filter(usable);
    match (exact, required) {
        (Some(e), Some(r)) if score(&r) > score(&e) => Some(Required {
            lits: r,
            exact: false,
        }),
        (Some(e), _) => Some(Required {
            lits: e,
            exact: !fold,
        }),
        (None, Some(r)) => Some(Required {
            lits: r,
            exact: false,
        }),
        (None, None) => None,
    }
}

fn usable(set: &[Vec<u8>], min_len: usize) -> bool {
    !set.is_empty() && set.len() <= MAX_SET && set.iter().all(|l| l.len() >= min_len.max(1))
}

/// The needles to search for `lits`: of each literal, the `MAX_NEEDLE`-byte piece whose first four bytes
/// (Teddy's fingerprint) are rarest. Any piece of a required literal is itself required, so this only
/// trades a few more verified lines for far fewer false fingerprint hits: `org.apache.kafka...` would
/// otherwise fire on every `org.springframework` stack frame.
pub(crate) fn fingerprints(lits: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = lits
        .iter()
        .map(|lit| {
            if lit.len() <= 4 {
                return lit.clone();
            }
            let start = (0..=lit.len() - 4)
                .max_by_key(|&i| {
                    let head: i64 = lit[i..i + 4].iter().map(|&b| rarity(b)).sum();
                    // Prefer earlier starts on ties: the piece then keeps more of the literal.
                    (head, -(i as i64))
                })
                .unwrap_or(0);
            lit[start..lit.len().min(start + MAX_NEEDLE)].to_vec()
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

#[derive(Debug, Clone, Default)]
struct Info {
    exact: Option<Vec<Vec<u8>>>,
    required: Option<Vec<Vec<u8>>>,
}

fn analyze(hir: &Hir, fold: bool, min_len: usize) -> Info {
    let analyze = |h: &Hir| analyze(h, fold, min_len);
    match hir.kind() {
        HirKind::Empty => Info {
            exact: Some(vec![Vec::new()]),
            required: None,
        },
        HirKind::Look(_) => Info::default(),
        HirKind::Literal(lit) => {
            let bytes = if fold {
                lit.0.to_ascii_lowercase()
            } else {
                lit.0.to_vec()
            };
            Info {
                exact: (bytes.len() <= MAX_LEN).then(|| vec![bytes.clone()]),
                required: Some(vec![bytes]),
            }
        }
        HirKind::Class(cls) => {
            let exact = class_strings(cls, fold);
            Info {
                required: exact.clone(),
                exact,
            }
        }
        HirKind::Capture(cap) => analyze(&cap.sub),
        HirKind::Repetition(rep) => {
            let sub = analyze(&rep.sub);
            if rep.min == 0 {
                // `x?` has the exact language {"", x...}; `x*` has none. Neither requires anything.
                let exact = match (rep.max, sub.exact) {
                    (Some(1), Some(mut e)) if e.len() < MAX_SET => {
                        e.push(Vec::new());
                        dedup(e)
                    }
                    _ => None,
                };
                return Info {
                    exact,
                    required: None,
                };
            }
            // At least `min` copies follow each other, so their product is required.
            let repeated = sub.exact.as_ref().and_then(|e| {
                let min = usize::try_from(rep.min).ok()?.min(MAX_LEN);
                (0..min).try_fold(vec![Vec::new()], |acc, _| product(&acc, e, MAX_SET))
            });
            let exact = if rep.max == Some(rep.min) {
                repeated.clone()
            } else {
                None
            };
            Info {
                exact,
                required: best([sub.required, repeated], min_len),
            }
        }
        HirKind::Concat(subs) => {
            let infos: Vec<Info> = subs.iter().map(analyze).collect();
            let exact = infos.iter().try_fold(vec![Vec::new()], |acc, i| {
                i.exact.as_ref().and_then(|e| product(&acc, e, MAX_SET))
            });
            let mut candidates: Vec<Option<Vec<Vec<u8>>>> =
                infos.iter().map(|i| i.required.clone()).collect();
            // Windows of adjacent parts with exact languages: `(?i)dead`, `HTTP/1\.1" 5`, `a(b|c)d`.
            for start in 0..infos.len() {
                let mut acc = vec![Vec::new()];
                for info in infos.iter().skip(start).take(MAX_WINDOW_PARTS) {
                    let Some(next) = info.exact.as_ref().and_then(|e| product(&acc, e, MAX_WINDOW)) else {
                        break;
                    };
                    acc = next;
                    candidates.push(Some(acc.clone()));
                }
            }
            Info {
                exact,
                required: best(candidates, min_len),
            }
        }
        HirKind::Alternation(subs) => {
            let infos: Vec<Info> = subs.iter().map(analyze).collect();
            let exact = infos.iter().try_fold(Vec::new(), |mut acc, i| {
                acc.extend(i.exact.iter().flatten().cloned());
                (i.exact.is_some() && acc.len() <= MAX_SET).then_some(acc)
            });
            let required = infos.iter().try_fold(Vec::new(), |mut acc, i| {
                acc.extend(i.required.as_ref()?.iter().cloned());
                (acc.len() <= MAX_SET).then_some(acc)
            });
            Info {
                exact: exact.and_then(dedup),
                required: required.and_then(dedup),
            }
        }
    }
}

/// The strings of a small class (`[Kk]`, `[0-3]`), or `None` when it is larger than [`MAX_CLASS`].
fn class_strings(cls: &Class, fold: bool) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    match cls {
        Class::Unicode(u) => {
            for r in u.iter() {
                for c in r.start()..=r.end() {
                    if out.len() >= MAX_CLASS {
                        return None;
                    }
                    let mut buf = [0u8; 4];
                    out.push(c.encode_utf8(&mut buf).as_bytes().to_vec());
                }
            }
        }
        Class::Bytes(b) => {
            for r in b.iter() {
                for byte in r.start()..=r.end() {
                    if out.len() >= MAX_CLASS {
                        return None;
                    }
                    out.push(vec![byte]);
                }
            }
        }
    }
    if fold {
        out.iter_mut().for_each(|s| s.make_ascii_lowercase());
    }
    if out.is_empty() { None } else { dedup(out) }
}

/// All concatenations `a + b`, or `None` if there would be more than `limit` or one gets too long.
fn product(left: &[Vec<u8>], right: &[Vec<u8>], limit: usize) -> Option<Vec<Vec<u8>>> {
    if left.len().checked_mul(right.len())? > limit {
        return None;
    }
    let mut out = Vec::with_capacity(left.len() * right.len());
    for l in left {
        for r in right {
            if l.len() + r.len() > MAX_LEN {
                return None;
            }
            let mut s = l.clone();
            s.extend_from_slice(r);
            out.push(s);
        }
    }
    dedup(out)
}

fn dedup(mut set: Vec<Vec<u8>>) -> Option<Vec<Vec<u8>>> {
    set.sort();
    set.dedup();
    Some(set)
}

/// The best of several candidate sets (by [`score`]), ignoring unusable ones.
fn best(candidates: impl IntoIterator<Item = Option<Vec<Vec<u8>>>>, min_len: usize) -> Option<Vec<Vec<u8>>> {
    candidates
        .into_iter()
        .flatten()
        .filter(|s| usable(s, min_len))
        .max_by_key(|s| score(s))
}

/// How selective a set is likely to be: its weakest literal's rarity, minus a cost per doubling of size
/// (each literal costs Teddy bucket space and verification).
fn score(set: &[Vec<u8>]) -> i64 {
    let weakest = set
        .iter()
        .map(|l| l.iter().take(16).map(|&b| rarity(b)).sum::<i64>())
        .min()
        .unwrap_or(0);
    let doublings = i64::from(usize::BITS - set.len().saturating_sub(1).leading_zeros());
    weakest - 4 * doublings
}

/// A rough guess of how rare a byte is in log text (higher is rarer): English letter frequencies, digits
/// and the punctuation of timestamps, paths and key=value pairs are common.
fn rarity(b: u8) -> i64 {
    match b {
        b' ' | b'e' | b't' | b'a' | b'o' | b'i' | b'n' | b's' | b'r' | b'h' | b'l' | b'd' | b'c' | b'u' => 1,
        b'0'..=b'9' | b'.' | b':' | b'/' | b'-' | b'=' | b'm' | b'f' | b'g' | b'p' => 2,
        b'a'..=b'z' | b'[' | b']' | b'_' | b',' | b'(' | b')' | b'"' | b'\t' | b'A'..=b'Z' => 3,
        0x21..=0x7e => 4,
        _ => 5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(pattern: &str) -> Option<Required> {
        let hir = match super::super::rules::parse_line_regex(pattern, false) {
            Ok(h) => h,
            Err(e) => panic!("{pattern}: {e}"),
        };
        required_literals(&hir, false, MIN_LITERAL_LEN)
    }

    fn lits(pattern: &str) -> Vec<String> {
        req(pattern)
            .map(|r| {
                r.lits
                    .iter()
                    .map(|l| String::from_utf8_lossy(l).into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn picks_inner_literals() {
        assert_eq!(lits("Connection refused"), ["Connection refused"]);
        assert_eq!(req("Connection refused").map(|r| r.exact), Some(true));
        assert_eq!(lits(r"TimeoutException.*waiting for"), ["TimeoutException"]);
        assert_eq!(lits(r#"HTTP/1\.1" 5\d\d"#), ["HTTP/1.1\" 5"]);
        assert_eq!(lits(r"^\s+at .*\(Unknown Source\)$"), ["(Unknown Source)"]);
        assert_eq!(
            lits(r"OutOfMemoryError|StackOverflowError"),
            ["OutOfMemoryError", "StackOverflowError"]
        );
        assert_eq!(lits(r"\bERROR\b"), ["ERROR"]);
        assert_eq!(req(r"\bERROR\b").map(|r| r.exact), Some(false));
        assert_eq!(lits(r"(fooo|barr)baz"), ["barrbaz", "fooobaz"]);
        let ci = lits(r"(?i)deadlock");
        assert!((2..=16).contains(&ci.len()), "{ci:?}");
        assert!(
            ci.iter().all(|l| l.len() >= 4 && l.len() == ci[0].len()),
            "{ci:?}"
        );
        assert!(
            ci.iter().any(|l| l.chars().all(|c| c.is_ascii_uppercase())),
            "{ci:?}"
        );
    }

    #[test]
    fn folding_makes_case_insensitive_literals_single() {
        let Ok(hir) = super::super::rules::parse_line_regex("deadlock|Tab Crashed", true) else {
            panic!()
        };
        let Some(req) = required_literals(&hir, true, MIN_LITERAL_LEN) else {
            panic!("no literals")
        };
        assert!(!req.exact, "a folded hit must be verified");
        let lits: Vec<String> = req
            .lits
            .iter()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect();
        assert!(
            lits.len() <= 4
                && lits
                    .iter()
                    .all(|l| l.starts_with("deadloc") || l.starts_with("tab cra")),
            "{lits:?}"
        );
        let Ok(plain) = super::super::rules::parse_line_regex("Connection Refused", false) else {
            panic!()
        };
        let folded = required_literals(&plain, true, MIN_LITERAL_LEN).map(|r| r.lits);
        assert_eq!(folded, Some(vec![b"connection refused".to_vec()]));
    }

    #[test]
    fn fingerprints_pick_rare_pieces() {
        let fp = fingerprints(&[
            b"org.apache.kafka.common.errors.TimeoutException".to_vec(),
            b"abcd".to_vec(),
        ]);
        assert_eq!(fp.len(), 2);
        assert!(fp.iter().all(|f| f.len() <= MAX_NEEDLE && f.len() >= 4));
        assert!(!fp.iter().any(|f| f.starts_with(b"org.")), "{fp:?}");
    }

    #[test]
    fn no_literal_patterns() {
        assert_eq!(req(r"\d{5,}"), None);
        assert_eq!(req(r"^[A-Z]{20,}$"), None);
        assert_eq!(req(r"abc"), None, "too short for the shared pass");
        assert_eq!(req(r"foo|\d+"), None, "one branch requires nothing");
        assert_eq!(req(r"(abc)*"), None);
        assert_eq!(req(r"x?"), None);
    }
}
