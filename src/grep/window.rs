//! Class windows: a skip-ahead prefilter for patterns that have no literal but a run of narrow classes.
//!
//! `[0-9]{3}\.[0-9]{3}\.[0-9]{3}\.[0-9]{3}` or `^[A-Z][A-Z_]{24,}$` contain no string to search for, and
//! a DFA over every byte costs about as much as ripgrep's whole alternation. But every match contains a
//! fixed-length run of positions each drawn from a small byte set (digits, dots, capitals), and log text
//! is mostly lowercase letters and spaces. Backward Nondeterministic DAWG Matching (BNDM, Navarro &
//! Raffinot) with byte classes reads a window from its right end and, on a byte no position accepts,
//! jumps the whole window ahead: one table lookup per ~15 bytes on ordinary text. Windows it cannot
//! rule out name candidate lines, which the real regex then checks.

use regex_syntax::hir::{Class, Hir, HirKind};

/// Longest window (one bit per position in a `u64`).
const MAX_WINDOW: usize = 64;
/// Shortest window worth a pass of its own.
const MIN_WINDOW: usize = 4;
/// A window is used only if a typical log byte fits its positions this rarely on average.
const MAX_MEAN_HIT_RATE: f64 = 0.25;

/// Set of bytes (one bit per byte value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ByteSet([u64; 4]);

impl ByteSet {
    const EMPTY: ByteSet = ByteSet([0; 4]);

    fn single(b: u8) -> ByteSet {
        let mut s = ByteSet::EMPTY;
        s.insert(b);
        s
    }

    fn insert(&mut self, b: u8) {
        self.0[usize::from(b >> 6)] |= 1 << (b & 63);
    }

    fn contains(&self, b: u8) -> bool {
        self.0[usize::from(b >> 6)] & (1 << (b & 63)) != 0
    }

    fn union(&self, o: &ByteSet) -> ByteSet {
        ByteSet([
            self.0[0] | o.0[0],
            self.0[1] | o.0[1],
            self.0[2] | o.0[2],
            self.0[3] | o.0[3],
        ])
    }

    /// Share of typical log text (mostly lowercase words, spaces, some digits and capitals) that falls
    /// in this set; a rough model, only used to rank windows.
    fn hit_rate(&self) -> f64 {
        (0..=255u8)
            .filter(|&b| self.contains(b))
            .map(byte_weight)
            .sum::<f64>()
    }
}

/// Approximate frequency of a byte in log text (sums to about 1 over all bytes).
fn byte_weight(b: u8) -> f64 {
    match b {
        b'a'..=b'z' => 0.55 / 26.0,
        b' ' => 0.14,
        b'0'..=b'9' => 0.10 / 10.0,
        b'A'..=b'Z' => 0.08 / 26.0,
        b'.' | b':' | b'/' | b'-' | b'=' | b'"' | b'[' | b']' | b'(' | b')' | b',' | b'_' => 0.10 / 12.0,
        b'\t' => 0.01,
        _ => 0.02 / 200.0,
    }
}

/// A compiled class window and its BNDM table.
#[derive(Debug, Clone)]
pub(crate) struct ClassWindow {
    len: usize,
    /// `masks[b]` has bit `len - 1 - j` set when byte `b` may stand at position `j` of the window.
    masks: Box<[u64; 256]>,
}

impl ClassWindow {
    /// The best window every match of `hir` must contain, if it is selective enough to pay off.
    pub(crate) fn for_regex(hir: &Hir) -> Option<ClassWindow> {
        let seq = required(hir)?;
        if seq.len() < MIN_WINDOW {
            return None;
        }
        let mean = seq.iter().map(ByteSet::hit_rate).sum::<f64>() / seq.len() as f64;
        if mean > MAX_MEAN_HIT_RATE {
            return None;
        }
        let len = seq.len();
        let mut masks = Box::new([0u64; 256]);
        for (j, set) in seq.iter().enumerate() {
            for b in 0..=255u8 {
                if set.contains(b) {
                    masks[usize::from(b)] |= 1 << (len - 1 - j);
                }
            }
        }
        Some(ClassWindow { len, masks })
    }

    /// Window length in bytes.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Start of the first place at or after `at` where the window fits in `hay`.
    pub(crate) fn find(&self, hay: &[u8], at: usize) -> Option<usize> {
        let m = self.len;
        let high = 1u64 << (m - 1);
        let all = if m == 64 { u64::MAX } else { (1u64 << m) - 1 };
        let mut pos = at;
        while pos.checked_add(m).is_some_and(|end| end <= hay.len()) {
            // Read the window right to left; `state` holds the window suffixes that are still prefixes
            // of some string of the class sequence. `shift` is the longest such prefix seen.
            let mut j = m;
            let mut shift = m;
            let mut state = all;
            loop {
                state &= self.masks[usize::from(hay[pos + j - 1])];
                j -= 1;
                if state & high != 0 {
                    if j == 0 {
                        return Some(pos);
                    }
                    shift = j;
                }
                state = (state << 1) & all;
                if state == 0 || j == 0 {
                    break;
                }
            }
            pos += shift;
        }
        None
    }
}

/// Per node: the fixed-length class sequence of all its matches (if it has one), the best required
/// window inside it, and (for `x{n,}`-like nodes) the sequence of its first/last `n` mandatory copies.
#[derive(Debug, Clone, Default)]
struct Info {
    fixed: Option<Vec<ByteSet>>,
    required: Option<Vec<ByteSet>>,
    min_copies: Option<Vec<ByteSet>>,
}

fn required(hir: &Hir) -> Option<Vec<ByteSet>> {
    let info = analyze(hir);
    best([info.fixed, info.required, info.min_copies])
}

fn analyze(hir: &Hir) -> Info {
    match hir.kind() {
        // Zero-width: a fixed sequence of length 0 (assertions only narrow matches further).
        HirKind::Empty | HirKind::Look(_) => Info {
            fixed: Some(Vec::new()),
            ..Info::default()
        },
        HirKind::Literal(lit) => {
            let seq: Vec<ByteSet> = lit.0.iter().map(|&b| ByteSet::single(b)).collect();
            Info {
                fixed: Some(seq.clone()),
                required: Some(seq),
                min_copies: None,
            }
        }
        HirKind::Class(cls) => {
            let set = byte_class(cls);
            Info {
                fixed: set.map(|s| vec![s]),
                required: set.map(|s| vec![s]),
                min_copies: None,
            }
        }
        HirKind::Capture(cap) => analyze(&cap.sub),
        HirKind::Repetition(rep) => {
            let sub = analyze(&rep.sub);
            let min = usize::try_from(rep.min).unwrap_or(usize::MAX);
            let copies = sub.fixed.as_ref().and_then(|f| {
                if f.is_empty() || f.len().checked_mul(min)? > MAX_WINDOW {
                    return None;
                }
                Some(f.iter().copied().cycle().take(f.len() * min).collect::<Vec<_>>())
            });
            if rep.max == Some(rep.min) {
                Info {
                    fixed: copies.clone(),
                    required: best([copies, sub.required]),
                    min_copies: None,
                }
            } else if min == 0 {
                Info::default()
            } else {
                Info {
                    fixed: None,
                    required: best([copies.clone(), sub.required]),
                    min_copies: copies,
                }
            }
        }
        HirKind::Concat(subs) => {
            let infos: Vec<Info> = subs.iter().map(analyze).collect();
            let fixed = infos.iter().try_fold(Vec::new(), |mut acc, i| {
                acc.extend(i.fixed.as_ref()?);
                (acc.len() <= MAX_WINDOW).then_some(acc)
            });
            let mut candidates: Vec<Option<Vec<ByteSet>>> =
                infos.iter().map(|i| i.required.clone()).collect();
            // Runs of adjacent fixed parts; a variable part may open or close a run with its mandatory
            // copies (they touch the run on that side whatever the repetition count).
            for start in 0..infos.len() {
                let mut run: Vec<ByteSet> = match (&infos[start].fixed, &infos[start].min_copies) {
                    (Some(f), _) => f.clone(),
                    (None, Some(c)) => c.clone(),
                    (None, None) => continue,
                };
                let opened_by_variable = infos[start].fixed.is_none();
                for info in &infos[start + 1..] {
                    if let Some(f) = &info.fixed
                        && run.len() + f.len() <= MAX_WINDOW
                    {
                        run.extend(f);
                        continue;
                    }
                    if !opened_by_variable
                        && info.fixed.is_none()
                        && let Some(c) = &info.min_copies
                        && run.len() + c.len() <= MAX_WINDOW
                    {
                        let mut closed = run.clone();
                        closed.extend(c);
                        candidates.push(Some(closed));
                    }
                    break;
                }
                candidates.push(Some(run));
            }
            Info {
                fixed,
                required: best(candidates),
                min_copies: None,
            }
        }
        HirKind::Alternation(subs) => {
            // Branches of one fixed length merge position by position; anything else requires nothing
            // we can express as one window.
            let infos: Vec<Info> = subs.iter().map(analyze).collect();
            let fixed = infos.iter().try_fold(None::<Vec<ByteSet>>, |acc, i| {
                let f = i.fixed.as_ref()?;
                match acc {
                    None => Some(Some(f.clone())),
                    Some(a) if a.len() == f.len() => {
                        Some(Some(a.iter().zip(f).map(|(x, y)| x.union(y)).collect()))
                    }
                    Some(_) => None,
                }
            });
            let fixed = fixed.flatten();
            Info {
                required: fixed.clone(),
                fixed,
                min_copies: None,
            }
        }
    }
}

/// The bytes of a class whose members are all single bytes (ASCII, or a byte class); else `None`.
fn byte_class(cls: &Class) -> Option<ByteSet> {
    let mut set = ByteSet::EMPTY;
    match cls {
        Class::Unicode(u) => {
            for r in u.iter() {
                let (lo, hi) = (
                    u8::try_from(u32::from(r.start())).ok()?,
                    u8::try_from(u32::from(r.end())).ok()?,
                );
                if hi > 0x7f {
                    return None;
                }
                (lo..=hi).for_each(|b| set.insert(b));
            }
        }
        Class::Bytes(b) => b
            .iter()
            .for_each(|r| (r.start()..=r.end()).for_each(|b| set.insert(b))),
    }
    Some(set)
}

/// The most selective usable window: the one with the most "information" (rare positions count more).
fn best(candidates: impl IntoIterator<Item = Option<Vec<ByteSet>>>) -> Option<Vec<ByteSet>> {
    let value = |seq: &Vec<ByteSet>| -> i64 {
        let bits: f64 = seq
            .iter()
            .map(|s| -(s.hit_rate().max(1e-4)).log2().min(8.0))
            .sum();
        (bits * 16.0) as i64
    };
    candidates
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty() && s.len() <= MAX_WINDOW)
        .max_by_key(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(pattern: &str) -> Option<ClassWindow> {
        let hir = match super::super::rules::parse_line_regex(pattern, false) {
            Ok(h) => h,
            Err(e) => panic!("{pattern}: {e}"),
        };
        ClassWindow::for_regex(&hir)
    }

    fn naive(pattern: &str, hay: &[u8], at: usize) -> Option<usize> {
        let hir = match super::super::rules::parse_line_regex(pattern, false) {
            Ok(h) => h,
            Err(e) => panic!("{e}"),
        };
        let seq = required(&hir)?;
        (at..=hay.len().checked_sub(seq.len())?)
            .find(|&p| seq.iter().enumerate().all(|(j, s)| s.contains(hay[p + j])))
    }

    #[test]
    fn windows_of_literal_free_patterns() {
        assert_eq!(
            window(r"[0-9]{3}\.[0-9]{3}\.[0-9]{3}\.[0-9]{3}").map(|w| w.len()),
            Some(15)
        );
        assert_eq!(window(r"^[A-Z][A-Z_]{24,}$").map(|w| w.len()), Some(25));
        assert_eq!(window(r"[0-9]{5,}ms").map(|w| w.len()), Some(7));
        assert_eq!(
            window(r"\b\d{4}-\d{2}-\d{2}\b").map(|w| w.len()),
            None,
            "Unicode \\d is not a byte class"
        );
        assert_eq!(window(r"(?-u:\d){4}-(?-u:\d){2}").map(|w| w.len()), Some(7));
        assert!(
            window(r"[a-z]+ [a-z]+").is_none(),
            "lowercase words are everywhere"
        );
        assert!(window(r"\w+").is_none());
        assert!(window(r"[0-9]").is_none(), "too short");
    }

    #[test]
    fn bndm_finds_the_first_fit() {
        let pats = [
            r"[0-9]{3}\.[0-9]{3}",
            r"ab[xy]{2}c",
            r"[A-Z]{4}",
            r"(12|ab)[0-9]{3}",
        ];
        let hays: [&[u8]; 5] = [
            b"10.0.0.1 and 192.168.100.200",
            b"abxyc abyyc",
            b"no CAPS but ABCD",
            b"",
            b"12ab345",
        ];
        for p in pats {
            let Some(w) = window(p) else {
                panic!("{p}: no window")
            };
            for hay in hays {
                for at in 0..=hay.len() {
                    assert_eq!(
                        w.find(hay, at),
                        naive(p, hay, at),
                        "{p} in {:?} from {at}",
                        String::from_utf8_lossy(hay)
                    );
                }
            }
        }
    }
}
