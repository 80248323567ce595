//! The log scanner: counts, per rule, the log lines its `logRegex` matches, reading the input once.
//!
//! # Design
//!
//! Real rule sets are dozens of patterns that each name some rare string (`Connection refused`,
//! `OutOfMemoryError`, `HTTP/1\.1" 5\d\d`) and almost never match. Running every regex on every line, or
//! one big alternation through a DFA (what `rg -f` does), pays for the regexes on every byte. Instead each
//! rule goes to the cheapest pass that can serve it:
//!
//! 1. **Shared literal pass** (most rules). Each pattern's required literals are extracted
//!    (module `grep::literals`), cut to their most selective piece, and all of them go into ONE packed SIMD
//!    multi-literal searcher (Teddy, via aho-corasick; a full Aho-Corasick DFA if Teddy is unavailable or
//!    there are more than 64 needles). It runs over the whole chunk; each hit names a candidate line,
//!    which is enumerated once with an overlapping Aho-Corasick search to learn every rule with a needle
//!    on it, and only those rules' regexes ([`regex_automata::meta::Regex`], linear time) run on that
//!    line alone; the scan resumes after the line. Rules that are plain literals skip the regex. When
//!    some rule is case-insensitive, needles are lowercase and are searched in an ASCII-lowercased copy
//!    of the chunk: one needle instead of 2^n case variants.
//! 2. **Lone passes** for rules whose only literals are 2–3 bytes (`\d{5,}ms`): too weak to share the
//!    SIMD pass (Teddy fingerprints the shortest needle's length for all), but meta's single-pattern
//!    strategies (memchr prefilter, reverse suffix/inner literal search) still skip most bytes.
//! 3. **Class-window passes** for rules without literals but with a run of narrow classes
//!    (`[0-9]{3}\.[0-9]{3}`, `^[A-Z][A-Z_]{24,}$`): a skip-ahead BNDM scan (module `grep::window`) names
//!    candidate lines for the regex.
//! 4. **One DFA pass** for everything else (`\w+ \w+$`, `^\s*$`): a multi-pattern DFA — fully compiled
//!    with accelerated states when small enough, else lazy — over the chunk with line semantics (`^`/`$`
//!    at line ends, `\n` removed from every class, so no match crosses a line); on a hit, those rules are
//!    checked on that line. If the lazy DFA must give up on a line (a Unicode `\b` meeting non-ASCII
//!    bytes), that line is checked with the regexes and the DFA resumes after it.
//!
//! Every pass reports lines in order and each rule belongs to exactly one pass, so counts never double.
//!
//! # Lines
//!
//! Lines end at `\n`. A `\r` before it stays in the line, as in ripgrep's default mode (no `--crlf`),
//! so counts equal `rg -c -e REGEX`; a last line without `\n` counts; an empty input has no line. NUL
//! bytes are ordinary bytes (ripgrep would treat the file as binary). Sample lines handed back in
//! [`Counts`] lose a trailing `\r` (they are for display).
//!
//! # Memory and threads
//!
//! [`Engine::scan`] reads in chunks of [`ScanOptions::chunk_size`] (default 8 MiB) cut at the last
//! `\n`; the partial last line is carried into the next chunk. Chunks are searched by
//! [`ScanOptions::threads`] workers (default: the number of CPUs, at most 8) and merged in input order,
//! with `threads + 1` buffers in flight, so memory stays around `(threads + 1) * chunk_size` whatever
//! the input size: about 30 MiB peak RSS for a 1 GiB log with two threads. Threads pay off when the machine has idle cores; on one
//! core `threads: 1` avoids the hand-off. A single line longer than a chunk grows its buffer up to
//! [`ScanOptions::max_line_len`] (default 64 MiB); a line longer than that is searched in its first
//! `max_line_len` bytes only, the rest of it is skipped, and it is counted in
//! [`Counts::truncated_lines`].

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::sync::{Mutex, mpsc};

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind, packed};
use regex_automata::dfa::{Automaton, dense};
use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::nfa::thompson::{self, WhichCaptures};
use regex_automata::{HalfMatch, Input, MatchErrorKind, PatternID, meta};
use regex_syntax::hir::Hir;

use super::literals::{MIN_LITERAL_LEN, fingerprints, required_literals};
use super::rules::{RuleMatches, RuleSet};
use super::window::ClassWindow;

/// Matching lines kept per rule in [`Counts`].
pub const SAMPLE_LINES: usize = 5;
/// Bytes kept of each sample line (cut at a UTF-8 character boundary).
pub const SAMPLE_BYTES: usize = 500;
/// Default chunk size for [`Engine::scan`].
pub const DEFAULT_CHUNK_SIZE: usize = 8 << 20;
/// Default longest line searched whole by [`Engine::scan`].
pub const DEFAULT_MAX_LINE_LEN: usize = 64 << 20;
/// Bytes lowercased at a time for case-folded literal search (whole lines; fits in L2).
const FOLD_BLOCK: usize = 128 << 10;
/// Largest chunk accepted from [`ScanOptions`] (bigger values are lowered to it).
pub const MAX_CHUNK_SIZE: usize = 1 << 30;
/// Lazy DFA cache per worker; large enough that realistic rule sets never thrash it.
const DFA_CACHE_BYTES: usize = 8 << 20;

/// How [`Engine::scan_with`] reads its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanOptions {
    /// Bytes read per chunk (1 to [`MAX_CHUNK_SIZE`]; tiny values only make sense in tests).
    pub chunk_size: usize,
    /// Longest line searched in full (at least `chunk_size`); longer lines are searched in this many
    /// leading bytes.
    pub max_line_len: usize,
    /// Worker threads searching chunks (1 = search on the calling thread).
    pub threads: usize,
}

impl Default for ScanOptions {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            chunk_size: DEFAULT_CHUNK_SIZE,
            max_line_len: DEFAULT_MAX_LINE_LEN,
            threads: cpus.min(8),
        }
    }
}

/// Per rule (indexed like the [`RuleSet`]): matching line count and the first matching lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    lines: Vec<u64>,
    first: Vec<Vec<Vec<u8>>>,
    truncated_lines: u64,
}

impl Counts {
    /// Empty counts for `rules` rules.
    pub fn new(rules: usize) -> Self {
        Self {
            lines: vec![0; rules],
            first: vec![Vec::new(); rules],
            truncated_lines: 0,
        }
    }

    /// Lines matched by rule `rule`'s `logRegex` (0 for rules without one).
    pub fn lines(&self, rule: usize) -> u64 {
        self.lines.get(rule).copied().unwrap_or(0)
    }

    /// The first [`SAMPLE_LINES`] matching lines, each cut to [`SAMPLE_BYTES`], without `\n`/`\r\n`.
    pub fn first_lines(&self, rule: usize) -> &[Vec<u8>] {
        self.first.get(rule).map_or(&[], Vec::as_slice)
    }

    /// Whether rule `rule` matched any line.
    pub fn matched(&self, rule: usize) -> bool {
        self.lines(rule) > 0
    }

    /// Lines longer than [`ScanOptions::max_line_len`] that were searched only in part.
    pub fn truncated_lines(&self) -> u64 {
        self.truncated_lines
    }

    /// Which rules matched, in the form [`RuleSet::classify`] takes.
    pub fn rule_matches(&self) -> RuleMatches {
        self.lines.iter().map(|&n| n > 0).collect()
    }

    /// Add `later` (counts of input that comes after this one's) into `self`.
    pub fn merge(&mut self, later: &Counts) {
        self.grow(later.lines.len());
        for (i, &n) in later.lines.iter().enumerate() {
            self.lines[i] += n;
            let room = SAMPLE_LINES.saturating_sub(self.first[i].len());
            self.first[i].extend(later.first[i].iter().take(room).cloned());
        }
        self.truncated_lines += later.truncated_lines;
    }

    fn grow(&mut self, rules: usize) {
        if self.lines.len() < rules {
            self.lines.resize(rules, 0);
            self.first.resize(rules, Vec::new());
        }
    }

    fn record(&mut self, rule: usize, line: &[u8]) {
        self.lines[rule] += 1;
        let first = &mut self.first[rule];
        if first.len() < SAMPLE_LINES {
            first.push(sample(line));
        }
    }
}

/// A display copy of a line: no trailing `\r`, at most [`SAMPLE_BYTES`], not ending inside a UTF-8
/// character when the line is UTF-8 there.
fn sample(line: &[u8]) -> Vec<u8> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() <= SAMPLE_BYTES {
        return line.to_vec();
    }
    let mut end = SAMPLE_BYTES;
    // Back off over continuation bytes (10xxxxxx), at most 3, to a character start.
    while end > SAMPLE_BYTES - 3 && line[end] & 0xC0 == 0x80 {
        end -= 1;
    }
    line[..end].to_vec()
}

/// Could not build an engine (only on resource limits: the rules themselves were validated).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("rule #{rule}: cannot compile logRegex: {source}")]
    Regex {
        rule: usize,
        #[source]
        source: Box<meta::BuildError>,
    },
    #[error("cannot build the literal searcher: {0}")]
    Literals(#[from] aho_corasick::BuildError),
}

/// One rule that has a `logRegex`.
#[derive(Debug, Clone)]
struct LogRule {
    /// Index in the rule set.
    rule: usize,
    /// The full regex (meta picks its own prefilter when the rule is searched alone).
    regex: meta::Regex,
    /// Whether a needle hit on a line is itself a match (the regex is a plain literal alternation and
    /// the needles are those literals, unfolded and uncut).
    hit_is_match: bool,
}

/// The chunk-wide literal searcher.
#[derive(Debug, Clone)]
enum Scanner {
    Teddy(packed::Searcher),
    Automaton(AhoCorasick),
}

/// The literal pass: needle id -> the slots (indexes in `Engine::log_rules`) that require it.
#[derive(Debug, Clone)]
struct LiteralPass {
    scanner: Scanner,
    /// Same needles with standard semantics, to list every needle on a candidate line.
    on_line: AhoCorasick,
    slots_of: Vec<Vec<u32>>,
    /// Needles are ASCII-lowercase and are searched in an ASCII-lowercased copy of the chunk.
    fold: bool,
}

/// A DFA for the rules that have no literal at all.
#[derive(Debug, Clone)]
enum Dfa {
    /// Fully compiled, with "accelerated" states: a pattern anchored with `^` skips to the next `\n`
    /// with memchr instead of stepping through every byte.
    Dense(dense::DFA<Vec<u32>>),
    /// Lazily built, when the dense DFA would be too big (or uses Unicode `\b`).
    Lazy(DFA),
}

/// The rules searched one pass each, and the rules sharing one DFA pass.
#[derive(Debug, Clone, Default)]
struct BarePass {
    /// Rules with only short literals: meta's single-pattern strategies (memchr/memmem prefilter,
    /// reverse suffix or inner literal search) beat a DFA over every byte.
    alone: Vec<u32>,
    /// Rules without literals but with a narrow class window: one skip-ahead pass each.
    windows: Vec<(u32, ClassWindow)>,
    /// Rules without any literal, in one multi-pattern DFA.
    shared: Vec<u32>,
    /// `None` if no DFA could be built: then every line is checked rule by rule (slow but right).
    dfa: Option<Dfa>,
}

/// Compiled multi-rule line matcher for a [`RuleSet`]'s `logRegex` patterns.
#[derive(Debug, Clone)]
pub struct Engine {
    rules: usize,
    log_rules: Vec<LogRule>,
    literal: Option<LiteralPass>,
    bare: BarePass,
}

/// Per-thread mutable search state.
struct Scratch {
    cache: Option<Cache>,
    /// Generation stamps per slot, to collect a line's candidates without clearing.
    stamp: Vec<u32>,
    generation: u32,
    candidates: Vec<u32>,
    /// ASCII-lowercased copy of the current block, in folding mode.
    lower: Vec<u8>,
}

/// Shortest literal that still makes a rule worth its own memchr/memmem-driven pass.
const MIN_ALONE_LITERAL_LEN: usize = 2;
/// A dense DFA bigger than this is not built (the lazy DFA is used instead).
const DENSE_DFA_LIMIT: usize = 4 << 20;

impl Engine {
    /// Build the engine for all rules of `set` that have a `logRegex` (rule indexes are preserved).
    pub fn new(set: &RuleSet) -> Result<Engine, EngineError> {
        Self::from_hirs(set.len(), set.log_hirs())
    }

    fn from_hirs(rules: usize, hirs: &[Option<Hir>]) -> Result<Engine, EngineError> {
        let with_log: Vec<(usize, &Hir)> = hirs
            .iter()
            .enumerate()
            .filter_map(|(i, h)| Some((i, h.as_ref()?)))
            .collect();
        let plain: Vec<_> = with_log
            .iter()
            .map(|(_, h)| required_literals(h, false, MIN_LITERAL_LEN))
            .collect();
        let folded: Vec<_> = with_log
            .iter()
            .map(|(_, h)| required_literals(h, true, MIN_LITERAL_LEN))
            .collect();
        // Fold (search a lowercased chunk) only when case-insensitive rules need it: it costs a copy
        // of every chunk, and lowercase needles are a little less selective.
        let fold = plain.iter().zip(&folded).any(|(p, f)| match (p, f) {
            (None, Some(_)) => true,
            (Some(p), Some(f)) => p.lits.len() >= 4 && f.lits.len() * 2 <= p.lits.len(),
            _ => false,
        });
        let chosen = if fold { folded } else { plain };

        let mut log_rules = Vec::new();
        let mut needles: Vec<Vec<u8>> = Vec::new();
        let mut slots_of: Vec<Vec<u32>> = Vec::new();
        let mut bare = BarePass::default();
        let mut shared_hirs = Vec::new();
        for (&(rule, hir), req) in with_log.iter().zip(chosen) {
            let slot = u32::try_from(log_rules.len()).unwrap_or(u32::MAX);
            let regex = meta::Builder::new()
                .build_from_hir(hir)
                .map_err(|e| EngineError::Regex {
                    rule,
                    source: Box::new(e),
                })?;
            let mut hit_is_match = false;
            match req {
                Some(req) => {
                    let mine = fingerprints(&req.lits);
                    hit_is_match = req.exact && mine == req.lits;
                    for needle in mine {
                        let id = match needles.iter().position(|n| *n == needle) {
                            Some(id) => id,
                            None => {
                                needles.push(needle);
                                slots_of.push(Vec::new());
                                needles.len() - 1
                            }
                        };
                        slots_of[id].push(slot);
                    }
                }
                None if required_literals(hir, false, MIN_ALONE_LITERAL_LEN).is_some() => {
                    bare.alone.push(slot)
                }
                None if let Some(w) = ClassWindow::for_regex(hir) => bare.windows.push((slot, w)),
                None => {
                    bare.shared.push(slot);
                    shared_hirs.push(hir.clone());
                }
            }
            log_rules.push(LogRule {
                rule,
                regex,
                hit_is_match,
            });
        }
        let literal = if needles.is_empty() {
            None
        } else {
            let teddy = packed::Config::new()
                .match_kind(packed::MatchKind::LeftmostFirst)
                .builder()
                .extend(&needles)
                .build();
            let scanner = match teddy {
                Some(t) => Scanner::Teddy(t),
                None => Scanner::Automaton(
                    AhoCorasick::builder()
                        .match_kind(MatchKind::LeftmostFirst)
                        .kind(Some(AhoCorasickKind::DFA))
                        .build(&needles)?,
                ),
            };
            let on_line = AhoCorasick::builder()
                .match_kind(MatchKind::Standard)
                .build(&needles)?;
            Some(LiteralPass {
                scanner,
                on_line,
                slots_of,
                fold,
            })
        };
        if !shared_hirs.is_empty() {
            bare.dfa = build_dfa(&shared_hirs);
        }
        Ok(Engine {
            rules,
            log_rules,
            literal,
            bare,
        })
    }

    /// Number of rules of the rule set (not only those with a `logRegex`).
    pub fn rules(&self) -> usize {
        self.rules
    }

    /// Empty [`Counts`] sized for this engine.
    pub fn counts(&self) -> Counts {
        Counts::new(self.rules)
    }

    /// Whether any rule has a `logRegex` (if not, scanning only counts bytes).
    pub fn has_patterns(&self) -> bool {
        !self.log_rules.is_empty()
    }

    /// How the rules were split, for diagnostics and tests.
    pub fn plan(&self) -> Plan {
        let lit = self.literal.as_ref();
        Plan {
            literal_rules: self.log_rules.len()
                - self.bare.alone.len()
                - self.bare.windows.len()
                - self.bare.shared.len(),
            needles: lit.map_or(0, |l| l.slots_of.len()),
            simd: lit.is_some_and(|l| matches!(l.scanner, Scanner::Teddy(_))),
            folded: lit.is_some_and(|l| l.fold),
            alone_rules: self.bare.alone.len(),
            window_rules: self.bare.windows.len(),
            dfa_rules: self.bare.shared.len(),
            dense_dfa: matches!(self.bare.dfa, Some(Dfa::Dense(_))),
        }
    }
    /// Search an in-memory log (e.g. one test's system-out) on the calling thread, adding to `sink`.
    ///
    /// Lines have no length cap here.
    pub fn scan_bytes(&self, bytes: &[u8], sink: &mut Counts) {
        sink.grow(self.rules);
        let mut scratch = self.scratch();
        self.scan_chunk(bytes, &mut scratch, sink);
    }

    /// Read and search `reader` with default [`ScanOptions`], adding to `sink`; returns the bytes read.
    pub fn scan<R: Read>(&self, reader: R, sink: &mut Counts) -> io::Result<u64> {
        self.scan_with(reader, sink, &ScanOptions::default(), &mut |_| {})
    }

    /// Read and search `reader`, adding to `sink`; returns the bytes read.
    ///
    /// `progress` is called on the calling thread with the total bytes read so far, once per chunk; it
    /// is the hook for progress display (throttling is up to the caller).
    pub fn scan_with<R: Read>(
        &self,
        reader: R,
        sink: &mut Counts,
        opts: &ScanOptions,
        progress: &mut dyn FnMut(u64),
    ) -> io::Result<u64> {
        sink.grow(self.rules);
        let mut chunker = Chunker::new(reader, opts);
        let mut first = Vec::with_capacity(chunker.chunk_size);
        if !chunker.next(&mut first)? {
            progress(chunker.bytes);
            return Ok(chunker.bytes);
        }
        progress(chunker.bytes);
        // A small input, or a single thread wanted: no thread is worth starting.
        if chunker.eof || opts.threads <= 1 {
            let mut scratch = self.scratch();
            let mut buf = first;
            loop {
                let mut counts = self.counts();
                self.scan_chunk(&buf, &mut scratch, &mut counts);
                sink.merge(&counts);
                if !chunker.next(&mut buf)? {
                    break;
                }
                progress(chunker.bytes);
            }
            sink.truncated_lines += chunker.truncated;
            return Ok(chunker.bytes);
        }
        self.scan_parallel(&mut chunker, first, sink, opts.threads, progress)?;
        sink.truncated_lines += chunker.truncated;
        Ok(chunker.bytes)
    }

    /// The producer/worker pipeline: this thread reads, `threads` workers search, results are merged in
    /// input order. Buffers circulate (at most `threads + 1` exist), which bounds memory.
    fn scan_parallel<R: Read>(
        &self,
        chunker: &mut Chunker<R>,
        first: Vec<u8>,
        sink: &mut Counts,
        threads: usize,
        progress: &mut dyn FnMut(u64),
    ) -> io::Result<()> {
        let max_buffers = threads + 1;
        let (job_tx, job_rx) = mpsc::sync_channel::<(u64, Vec<u8>)>(max_buffers);
        let job_rx = Mutex::new(job_rx);
        let (done_tx, done_rx) = mpsc::channel::<(u64, Vec<u8>, Counts)>();
        std::thread::scope(|scope| {
            for _ in 0..threads {
                let done_tx = done_tx.clone();
                let job_rx = &job_rx;
                scope.spawn(move || {
                    let mut scratch = self.scratch();
                    loop {
                        // The lock is held only while taking a job; a poisoned lock means another
                        // worker died, so this one stops too (the scope then reports the panic).
                        let job = match job_rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        let Ok((seq, buf)) = job else { return };
                        let mut counts = self.counts();
                        self.scan_chunk(&buf, &mut scratch, &mut counts);
                        if done_tx.send((seq, buf, counts)).is_err() {
                            return;
                        }
                    }
                });
            }
            drop(done_tx);

            let mut merger = Merger::default();
            let mut free: Vec<Vec<u8>> = Vec::new();
            let mut allocated = 1;
            let mut seq = 0u64;
            let mut next = Some(first);
            let mut result = Ok(());
            while let Some(buf) = next.take() {
                if job_tx.send((seq, buf)).is_err() {
                    break;
                }
                seq += 1;
                let mut buf = if let Some(b) = free.pop() {
                    b
                } else if allocated < max_buffers {
                    allocated += 1;
                    Vec::with_capacity(chunker.chunk_size)
                } else {
                    // Wait for a worker to hand a buffer back.
                    let Ok((s, mut b, counts)) = done_rx.recv() else {
                        break;
                    };
                    merger.push(s, counts, sink);
                    shrink(&mut b, chunker.chunk_size);
                    b
                };
                match chunker.next(&mut buf) {
                    Ok(true) => {
                        progress(chunker.bytes);
                        next = Some(buf);
                    }
                    Ok(false) => {}
                    Err(e) => result = Err(e),
                }
            }
            drop(job_tx);
            for (s, _, counts) in done_rx {
                merger.push(s, counts, sink);
            }
            result
        })
    }

    fn scratch(&self) -> Scratch {
        let cache = match &self.bare.dfa {
            Some(Dfa::Lazy(dfa)) => Some(Cache::new(dfa)),
            _ => None,
        };
        Scratch {
            cache,
            stamp: vec![0; self.log_rules.len()],
            generation: 0,
            candidates: Vec::new(),
            lower: Vec::new(),
        }
    }

    /// Search one run of whole lines (the last may lack its `\n`).
    fn scan_chunk(&self, chunk: &[u8], scratch: &mut Scratch, out: &mut Counts) {
        if let Some(lit) = &self.literal {
            self.literal_pass(lit, chunk, scratch, out);
        }
        for &slot in &self.bare.alone {
            self.alone_pass(&self.log_rules[slot as usize], chunk, out);
        }
        for (slot, window) in &self.bare.windows {
            self.window_pass(&self.log_rules[*slot as usize], window, chunk, out);
        }
        if !self.bare.shared.is_empty() {
            self.dfa_pass(chunk, scratch, out);
        }
    }

    fn literal_pass(&self, lit: &LiteralPass, chunk: &[u8], scratch: &mut Scratch, out: &mut Counts) {
        if !lit.fold {
            self.literal_scan(lit, chunk, chunk, scratch, out);
            return;
        }
        // Lowercase a cache-sized block of whole lines at a time: the copy stays in L2 for the search
        // and no chunk-sized second buffer is needed.
        let mut lower = std::mem::take(&mut scratch.lower);
        let mut from = 0;
        while from < chunk.len() {
            let mut to = (from + FOLD_BLOCK).min(chunk.len());
            if to < chunk.len() {
                to = match memchr::memrchr(b'\n', &chunk[from..to]) {
                    Some(i) => from + i + 1,
                    // One line longer than a block: the block is that line.
                    None => memchr::memchr(b'\n', &chunk[to..]).map_or(chunk.len(), |i| to + i + 1),
                };
            }
            let block = &chunk[from..to];
            lower.clear();
            lower.extend(block.iter().map(u8::to_ascii_lowercase));
            self.literal_scan(lit, &lower, block, scratch, out);
            from = to;
        }
        if lower.capacity() > 4 * FOLD_BLOCK {
            lower = Vec::new();
        }
        scratch.lower = lower;
    }

    /// The literal search proper: `hay` is `lines` itself or its lowercased copy (same offsets).
    fn literal_scan(
        &self,
        lit: &LiteralPass,
        hay: &[u8],
        lines: &[u8],
        scratch: &mut Scratch,
        out: &mut Counts,
    ) {
        let mut at = 0;
        while at < hay.len() {
            let hit = match &lit.scanner {
                Scanner::Teddy(s) => s.find_in(hay, aho_corasick::Span::from(at..hay.len())),
                Scanner::Automaton(ac) => ac.find(aho_corasick::Input::new(hay).range(at..)),
            };
            let Some(hit) = hit else { break };
            let (start, end) = line_around(hay, at, hit.start());
            scratch.generation = scratch.generation.wrapping_add(1);
            if scratch.generation == 0 {
                scratch.stamp.fill(0);
                scratch.generation = 1;
            }
            scratch.candidates.clear();
            for m in lit.on_line.find_overlapping_iter(&hay[start..end]) {
                for &slot in &lit.slots_of[m.pattern().as_usize()] {
                    let stamp = &mut scratch.stamp[slot as usize];
                    if *stamp != scratch.generation {
                        *stamp = scratch.generation;
                        scratch.candidates.push(slot);
                    }
                }
            }
            let line = &lines[start..end];
            for &slot in &scratch.candidates {
                let rule = &self.log_rules[slot as usize];
                if rule.hit_is_match || rule.regex.is_match(line) {
                    out.record(rule.rule, line);
                }
            }
            at = end + 1;
        }
    }

    /// One rule over the whole chunk with its own regex; after a match, resume at the next line.
    fn alone_pass(&self, rule: &LogRule, chunk: &[u8], out: &mut Counts) {
        let mut at = 0;
        while at < chunk.len() {
            let Some(half) = rule
                .regex
                .search_half(&Input::new(chunk).range(at..).earliest(true))
            else {
                break;
            };
            let (start, end) = line_around(chunk, at, half.offset());
            if start >= chunk.len() {
                // An empty match after the final `\n`: that is not a line.
                break;
            }
            out.record(rule.rule, &chunk[start..end]);
            at = end + 1;
        }
    }

    /// One rule: class-window candidates, each line checked with the regex.
    fn window_pass(&self, rule: &LogRule, window: &ClassWindow, chunk: &[u8], out: &mut Counts) {
        let mut at = 0;
        while let Some(pos) = window.find(chunk, at) {
            let (start, end) = line_around(chunk, at, pos);
            let line = &chunk[start..end];
            if rule.regex.is_match(line) {
                out.record(rule.rule, line);
            }
            at = end + 1;
        }
    }

    fn dfa_pass(&self, chunk: &[u8], scratch: &mut Scratch, out: &mut Counts) {
        let mut at = 0;
        while at < chunk.len() {
            let input = Input::new(chunk).range(at..).earliest(true);
            let found = match (&self.bare.dfa, scratch.cache.as_mut()) {
                (Some(Dfa::Dense(dfa)), _) => dfa.try_search_fwd(&input),
                (Some(Dfa::Lazy(dfa)), Some(cache)) => dfa.try_search_fwd(cache, &input),
                // No DFA: every line is a candidate.
                _ => Ok(Some(HalfMatch::new(PatternID::ZERO, at))),
            };
            // Where a match (or a give-up) was seen; any match ending there lies on that position's line.
            let pos = match found {
                Ok(None) => break,
                Ok(Some(half)) => half.offset(),
                Err(e) => match *e.kind() {
                    MatchErrorKind::Quit { offset, .. } | MatchErrorKind::GaveUp { offset } => offset,
                    // Unreachable for an unanchored forward search; stop rather than spin.
                    _ => break,
                },
            };
            let (start, end) = line_around(chunk, at, pos);
            if start >= chunk.len() {
                // An empty match after the final `\n`: that is not a line.
                break;
            }
            let line = &chunk[start..end];
            for &slot in &self.bare.shared {
                let rule = &self.log_rules[slot as usize];
                if rule.regex.is_match(line) {
                    out.record(rule.rule, line);
                }
            }
            at = end + 1;
        }
    }
}

/// How an [`Engine`] split its rules (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Rules prefiltered by the shared literal pass.
    pub literal_rules: usize,
    /// Distinct needles in that pass.
    pub needles: usize,
    /// Whether the SIMD searcher (Teddy) runs it; otherwise an Aho-Corasick DFA does.
    pub simd: bool,
    /// Whether needles are searched case-folded (some rule is case-insensitive).
    pub folded: bool,
    /// Rules with only short literals, searched one pass each.
    pub alone_rules: usize,
    /// Rules without literals but with a class window, searched one skip-ahead pass each.
    pub window_rules: usize,
    /// Rules without literals, sharing one DFA pass.
    pub dfa_rules: usize,
    /// Whether that DFA is fully compiled (else lazy).
    pub dense_dfa: bool,
}

/// `[start, end)` of the line holding position `pos` (`end` is the `\n` or the chunk end); `from` is a
/// known line start at or before `pos`, which bounds the backward search.
fn line_around(chunk: &[u8], from: usize, pos: usize) -> (usize, usize) {
    let pos = pos.min(chunk.len());
    let start = memchr::memrchr(b'\n', &chunk[from..pos]).map_or(from, |i| from + i + 1);
    let end = memchr::memchr(b'\n', &chunk[pos..]).map_or(chunk.len(), |i| pos + i);
    (start, end)
}

/// One DFA for all literal-less patterns: dense if small enough, else lazy; `None` if neither builds.
fn build_dfa(hirs: &[Hir]) -> Option<Dfa> {
    let nfa = thompson::Compiler::new()
        .configure(thompson::Config::new().which_captures(WhichCaptures::None))
        .build_many_from_hir(hirs)
        .ok()?;
    let dense = dense::Builder::new()
        .configure(
            dense::Config::new()
                .accelerate(true)
                .dfa_size_limit(Some(DENSE_DFA_LIMIT))
                .determinize_size_limit(Some(DENSE_DFA_LIMIT)),
        )
        .build_from_nfa(&nfa);
    if let Ok(dfa) = dense {
        return Some(Dfa::Dense(dfa));
    }
    DFA::builder()
        .configure(
            DFA::config()
                // Never give up for cache thrashing (that would make the search quadratic-ish).
                .minimum_cache_clear_count(None)
                .cache_capacity(DFA_CACHE_BYTES)
                // Unicode `\b` is handled on ASCII and quits on other bytes; see `dfa_pass`.
                .unicode_word_boundary(true),
        )
        .build_from_nfa(nfa)
        .ok()
        .map(Dfa::Lazy)
}

fn shrink(buf: &mut Vec<u8>, chunk_size: usize) {
    // A buffer that grew for a huge line goes back to normal size so memory stays bounded.
    if buf.capacity() > chunk_size.saturating_mul(2) {
        buf.clear();
        buf.shrink_to(chunk_size);
    }
}

/// Applies per-chunk counts to the sink strictly in input order (workers finish out of order).
#[derive(Default)]
struct Merger {
    next: u64,
    waiting: BTreeMap<u64, Counts>,
}

impl Merger {
    fn push(&mut self, seq: u64, counts: Counts, sink: &mut Counts) {
        self.waiting.insert(seq, counts);
        while let Some(c) = self.waiting.remove(&self.next) {
            sink.merge(&c);
            self.next += 1;
        }
    }
}

/// Cuts a byte stream into runs of whole lines.
struct Chunker<R> {
    reader: R,
    /// The partial line after the last `\n` of the previous chunk.
    carry: Vec<u8>,
    chunk_size: usize,
    max_line_len: usize,
    eof: bool,
    /// Discarding the rest of an over-long line up to its `\n`.
    skipping: bool,
    bytes: u64,
    truncated: u64,
}

impl<R: Read> Chunker<R> {
    fn new(reader: R, opts: &ScanOptions) -> Self {
        let chunk_size = opts.chunk_size.clamp(1, MAX_CHUNK_SIZE);
        Self {
            reader,
            carry: Vec::new(),
            chunk_size,
            max_line_len: opts.max_line_len.max(chunk_size),
            eof: false,
            skipping: false,
            bytes: 0,
            truncated: 0,
        }
    }

    /// Fill `buf` with the next whole lines (the input's last line may lack `\n`); `false` at the end.
    fn next(&mut self, buf: &mut Vec<u8>) -> io::Result<bool> {
        buf.clear();
        buf.append(&mut self.carry);
        let mut target = self.chunk_size.max(buf.len() + 1);
        loop {
            if self.eof {
                return Ok(!buf.is_empty());
            }
            let start = buf.len();
            let want = target.saturating_sub(start);
            let n = (&mut self.reader).take(want as u64).read_to_end(buf)?;
            self.bytes += n as u64;
            if n < want {
                self.eof = true;
            }
            if self.skipping {
                match memchr::memchr(b'\n', &buf[start..]) {
                    Some(i) => {
                        buf.drain(start..=start + i);
                        self.skipping = false;
                    }
                    None => {
                        buf.truncate(start);
                        continue;
                    }
                }
            }
            if self.eof {
                return Ok(!buf.is_empty());
            }
            if let Some(i) = memchr::memrchr(b'\n', buf) {
                self.carry.extend_from_slice(&buf[i + 1..]);
                buf.truncate(i + 1);
                return Ok(true);
            }
            if buf.len() >= self.max_line_len {
                // One line longer than the cap: search its head, drop the rest up to its `\n`.
                buf.truncate(self.max_line_len);
                self.skipping = true;
                self.truncated += 1;
                return Ok(true);
            }
            // One line longer than a chunk: grow (up to the cap) and keep reading.
            target = buf
                .len()
                .saturating_mul(2)
                .clamp(buf.len() + 1, self.max_line_len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine(patterns: &[&str]) -> Engine {
        let rules: Vec<serde_json::Value> = patterns
            .iter()
            .enumerate()
            .map(|(i, p)| serde_json::json!({"name": format!("r{i}"), "logRegex": p}))
            .collect();
        let set = match RuleSet::from_json(&serde_json::Value::Array(rules).to_string()) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        };
        match Engine::new(&set) {
            Ok(e) => e,
            Err(e) => panic!("{e}"),
        }
    }

    fn counts_of(e: &Engine, log: &[u8], opts: &ScanOptions) -> Counts {
        let mut c = e.counts();
        match e.scan_with(log, &mut c, opts, &mut |_| {}) {
            Ok(n) => assert_eq!(n, log.len() as u64),
            Err(err) => panic!("{err}"),
        }
        c
    }

    fn lines(e: &Engine, log: &[u8], opts: &ScanOptions) -> Vec<u64> {
        let c = counts_of(e, log, opts);
        (0..e.rules()).map(|i| c.lines(i)).collect()
    }

    fn opts(chunk_size: usize, threads: usize) -> ScanOptions {
        ScanOptions {
            chunk_size,
            threads,
            ..ScanOptions::default()
        }
    }

    /// Every pattern family through every chunk size and thread count gives the same counts.
    fn all_ways(e: &Engine, log: &[u8]) -> Vec<u64> {
        let mut bytes = e.counts();
        e.scan_bytes(log, &mut bytes);
        let expected: Vec<u64> = (0..e.rules()).map(|i| bytes.lines(i)).collect();
        for chunk in [1, 2, 3, 5, 7, 16, 64, 1 << 20] {
            for threads in [1, 2, 3] {
                assert_eq!(
                    lines(e, log, &opts(chunk, threads)),
                    expected,
                    "chunk {chunk} threads {threads}"
                );
            }
        }
        expected
    }

    #[test]
    fn literal_and_bare_rules_count_lines() {
        let e = engine(&[
            "Connection refused",
            r"Timeout\w*: .*waiting for",
            r"^\d{3}$",
            r"(?i)deadlock",
            "x",
        ]);
        let plan = e.plan();
        assert_eq!(
            (plan.literal_rules, plan.alone_rules, plan.dfa_rules),
            (3, 0, 2),
            "{plan:?}"
        );
        assert!(plan.simd && plan.folded && plan.dense_dfa, "{plan:?}");
        let log = b"ok\nConnection refused twice Connection refused\nTimeoutException: still waiting for x\n\
                    123\n1234\nDEADLOCK\nDeadLock found, connection refused\n";
        assert_eq!(all_ways(&e, log), [1, 1, 1, 2, 1]);
    }

    #[test]
    fn short_literal_rules_run_alone_and_unicode_boundaries_fall_back_to_the_lazy_dfa() {
        let e = engine(&[r"[0-9]{5,}ms", r"ab", r"\b\d+\b", "^$"]);
        let plan = e.plan();
        assert_eq!(
            (
                plan.literal_rules,
                plan.alone_rules,
                plan.dfa_rules,
                plan.dense_dfa
            ),
            (0, 2, 2, false)
        );
        let log = "took 123456ms\nab 12\n\né 7\nx\n".as_bytes();
        assert_eq!(all_ways(&e, log), [1, 1, 2, 1]);
    }

    #[test]
    fn class_window_rules() {
        let e = engine(&[r"[0-9]{3}\.[0-9]{3}\.[0-9]{3}\.[0-9]{3}", r"^[A-Z][A-Z_]{6,}$"]);
        let plan = e.plan();
        assert_eq!((plan.window_rules, plan.dfa_rules), (2, 0), "{plan:?}");
        let log =
            b"at 10.0.0.1\nto 192.168.100.200:80\nSHOUTING_LOUD\nSHOUT\n SHOUTING_LOUD\n100.100.100.10\n";
        assert_eq!(all_ways(&e, log), [1, 1]);
    }

    #[test]
    fn match_spanning_the_chunk_boundary_is_counted_once() {
        let e = engine(&["refused", r"\d{4}"]);
        // Chunk size 8 cuts inside `refused` and inside `2024`.
        let log = b"xxxx re\nabcdrefused\n2024 refused\n";
        for threads in [1, 2] {
            assert_eq!(lines(&e, log, &opts(8, threads)), [2, 1]);
            assert_eq!(lines(&e, log, &opts(12, threads)), [2, 1]);
        }
        assert_eq!(all_ways(&e, log), [2, 1]);
    }

    #[test]
    fn last_line_without_newline_empty_input_and_empty_lines() {
        let e = engine(&["end", "^$", "^", r"a*"]);
        assert_eq!(all_ways(&e, b"start\nthe end"), [1, 0, 2, 2]);
        assert_eq!(all_ways(&e, b""), [0, 0, 0, 0]);
        assert_eq!(all_ways(&e, b"\n"), [0, 1, 1, 1]);
        assert_eq!(all_ways(&e, b"a\n\nb\n"), [0, 1, 3, 3]);
    }

    #[test]
    fn crlf_lines_keep_their_carriage_return() {
        let e = engine(&["foo$", r"foo\r$", r"foo\s$", "bar"]);
        let log = b"foo\r\nfoo\nbar\r\n";
        assert_eq!(all_ways(&e, log), [1, 1, 1, 1]);
        let c = counts_of(&e, log, &opts(4, 2));
        assert_eq!(c.first_lines(3), [b"bar".to_vec()], "sample lines drop the \\r");
    }

    #[test]
    fn line_longer_than_the_chunk() {
        let e = engine(&["needle", r"^a+b$"]);
        let mut log = vec![b'a'; 100_000];
        log.extend_from_slice(b"b needle\n");
        log.extend_from_slice(&[b'a'; 50_000]);
        log.extend_from_slice(b"b\nneedle");
        for threads in [1, 2] {
            assert_eq!(lines(&e, &log, &opts(1024, threads)), [2, 1]);
        }
        // Over the cap: only the head of the line is searched, and that is reported.
        let capped = ScanOptions {
            chunk_size: 1024,
            max_line_len: 4096,
            threads: 2,
        };
        let c = counts_of(&e, &log, &capped);
        assert_eq!((c.lines(0), c.lines(1), c.truncated_lines()), (1, 0, 2));
    }

    #[test]
    fn pathological_regex_on_a_long_line_is_linear() {
        let e = engine(&[r"(a+)+$", r"(x+x+)+y"]);
        let mut log = vec![b'a'; 100_000];
        log.push(b'b');
        log.push(b'\n');
        log.extend(std::iter::repeat_n(b'x', 100_000));
        assert_eq!(lines(&e, &log, &opts(1 << 20, 2)), [0, 0]);
        log.extend_from_slice(b"\naaa\n");
        assert_eq!(lines(&e, &log, &opts(4096, 2)), [1, 0]);
    }

    #[test]
    fn samples_keep_order_and_are_cut() {
        let e = engine(&["hit"]);
        let mut log = Vec::new();
        for i in 0..20 {
            log.extend_from_slice(format!("hit {i}\n").as_bytes());
        }
        log.extend_from_slice(b"hit x");
        log.extend(std::iter::repeat_n("é", 400).flat_map(|s| s.bytes()));
        let c = counts_of(&e, &log, &opts(16, 3));
        assert_eq!(c.lines(0), 21);
        let want: Vec<Vec<u8>> = (0..5).map(|i| format!("hit {i}").into_bytes()).collect();
        assert_eq!(c.first_lines(0), want.as_slice());
        let mut tail = e.counts();
        e.scan_bytes(&log[log.len() - 805..], &mut tail);
        let cut = &tail.first_lines(0)[0];
        assert_eq!(
            cut.len(),
            499,
            "cut before the 2-byte character that straddles 500"
        );
        assert!(std::str::from_utf8(cut).is_ok());
    }

    #[test]
    fn unicode_word_boundary_with_non_ascii_text() {
        let e = engine(&[r"\b\d{3}\b", r"\bfoo\b"]);
        let log = "é 123 é\nфу123\nfoo é\néfoo\n".as_bytes();
        assert_eq!(all_ways(&e, log), [1, 1]);
    }

    #[test]
    fn counts_feed_classification() {
        let set = match RuleSet::from_json(
            r#"[{"name": "db", "logRegex": "Connection refused"}, {"name": "any", "matchedStatuses": ["failed"]}]"#,
        ) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        };
        let Ok(e) = Engine::new(&set) else {
            panic!("engine")
        };
        let mut c = e.counts();
        e.scan_bytes(b"GET /\nConnection refused\n", &mut c);
        let st = super::super::rules::TestStatus::Failed;
        assert_eq!(set.classify(st, "m", "", &c.rule_matches()), Some(0));
        assert_eq!(set.classify(st, "m", "", &RuleMatches::none()), Some(1));
    }

    #[test]
    fn folded_search_across_blocks_and_huge_lines() {
        let e = engine(&["(?i)deadlock", "Connection refused"]);
        assert!(e.plan().folded);
        let mut log = Vec::new();
        let mut want = [0u64; 2];
        for i in 0..40_000u32 {
            let line = match i % 997 {
                0 => "DeadLock detected in tx",
                1 => "connection refused (lowercase: not counted)",
                2 => "Connection refused",
                _ => "INFO nothing to see here, just padding the log",
            };
            want[0] += u64::from(i % 997 == 0);
            want[1] += u64::from(i % 997 == 2);
            log.extend_from_slice(line.as_bytes());
            log.push(b'\n');
        }
        log.extend(std::iter::repeat_n(b'x', 300_000));
        log.extend_from_slice(b"deadLOCK\n");
        want[0] += 1;
        for threads in [1, 2] {
            assert_eq!(lines(&e, &log, &opts(1 << 20, threads)), want);
        }
        let mut c = e.counts();
        e.scan_bytes(&log, &mut c);
        assert_eq!([c.lines(0), c.lines(1)], want);
    }

    #[test]
    fn many_needles_use_the_automaton() {
        let words: Vec<String> = (0..80).map(|i| format!("Word{i:02}x")).collect();
        let patterns: Vec<&str> = words.iter().map(String::as_str).collect();
        let e = engine(&patterns);
        let plan = e.plan();
        assert_eq!((plan.literal_rules, plan.simd), (80, false), "{plan:?}");
        let log = b"Word00x Word79x\nWord7x Word15xx\nword15x\n";
        let counts = all_ways(&e, log);
        let want: Vec<u64> = (0..80).map(|i| u64::from(i == 0 || i == 79 || i == 15)).collect();
        assert_eq!(counts, want);
    }

    #[test]
    fn engine_and_rules_are_shareable_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Engine>();
        assert_send_sync::<RuleSet>();
        assert_send_sync::<Counts>();
    }

    #[test]
    fn read_errors_are_reported() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk on fire"))
            }
        }
        let e = engine(&["x"]);
        let mut c = e.counts();
        assert!(e.scan(Failing, &mut c).is_err());
    }
}

/// Property tests: the engine's per-rule line counts equal a naive reference (every regex on every line)
/// and ripgrep's `rg -c -e REGEX` on random logs and rule sets.
#[cfg(test)]
mod prop_tests {
    use std::process::Command;
    use std::sync::OnceLock;

    use proptest::prelude::*;

    use super::*;

    /// Small alphabet so that patterns match often; includes `\r`, tabs, a two-byte character and the
    /// non-ASCII case partners of `s` and `k` (long s, Kelvin sign) that `(?i)` must still match.
    const ALPHABET: &[&str] = &[
        "a", "b", "c", "E", "R", "r", "o", " ", " ", "0", "1", "9", "\n", "\n", "\r", "\t", "é", "x", "y",
        ":", "s", "k", "K", "ſ", "\u{212A}",
    ];

    /// Realistic shapes: plain literals, alternations, classes, anchors, repetitions, word boundaries.
    const POOL: &[&str] = &[
        "ab",
        "abc",
        "ERR",
        "ERROR",
        "a b",
        "^ab",
        "b$",
        "^$",
        "^a.*c$",
        "(ab|ba)c",
        "(abc|cab|Rror)",
        "[ab]{3}",
        "a[^b]c",
        "[0-9]+",
        r"\d{2,}",
        r"c\d",
        "(?i)err",
        "(?i)abc",
        r"\bab\b",
        r"\bé",
        r"a\s+b",
        "x?y",
        "E.*R",
        "R$",
        "(?i)^e",
        "[a-c]+ [0-9]",
        r"\w+:",
        "[[:upper:]]{2}",
        "a|b|c",
        "a{2}b",
        r"c\r?$",
        r"\r$",
        r"\S+ \S+ \S+",
        "é+",
        r"^\s*$",
        "(?i)É",
        r"[^a-z0-9 ]{3}",
        "y+x",
        "o:1",
        r"aa(b|c)+\t",
        "[0-9]{2}[:.][0-9]{2}",
        "^[A-Z][A-Z:]{3,}$",
        r"[0-9]{3,}\ta",
        "(19|90)[0-9]{2}",
        "(?i)error",
        "(?i)sack",
        "(?i)rock|(?i)ask ",
        "o:1 sk",
    ];

    /// Count lines the slow, obvious way.
    fn reference(log: &[u8], pattern: &str, case_insensitive: bool) -> u64 {
        let re = match meta::Builder::new()
            .syntax(regex_automata::util::syntax::Config::new().case_insensitive(case_insensitive))
            .build(pattern)
        {
            Ok(re) => re,
            Err(e) => panic!("{pattern}: {e}"),
        };
        let body = log.strip_suffix(b"\n").unwrap_or(log);
        if log.is_empty() {
            return 0;
        }
        body.split(|&b| b == b'\n')
            .filter(|line| re.is_match(*line))
            .count() as u64
    }

    fn rg_available() -> bool {
        static AVAILABLE: OnceLock<bool> = OnceLock::new();
        *AVAILABLE.get_or_init(|| {
            let ok = Command::new("rg")
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success());
            if !ok {
                eprintln!(
                    "SKIPPED: ripgrep comparison — `rg` is not installed (apt-get install ripgrep); \
                     the reference comparison still runs"
                );
            }
            ok
        })
    }

    /// `rg -c -e PATTERN FILE`: prints the count, or nothing (exit 1) when no line matches.
    fn ripgrep(path: &std::path::Path, pattern: &str, case_insensitive: bool) -> u64 {
        let mut cmd = Command::new("rg");
        cmd.args(["--no-config", "--text", "-c"]);
        if case_insensitive {
            cmd.arg("-i");
        }
        let out = match cmd.arg("-e").arg(pattern).arg(path).output() {
            Ok(o) => o,
            Err(e) => panic!("rg: {e}"),
        };
        match out.status.code() {
            Some(0) => String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .unwrap_or(u64::MAX),
            Some(1) => 0,
            _ => panic!(
                "rg failed on {pattern:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }

    fn arb_log() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(prop::sample::select(ALPHABET), 0..600)
            .prop_map(|parts| parts.concat().into_bytes())
    }

    fn arb_rules() -> impl Strategy<Value = Vec<(&'static str, bool)>> {
        prop::collection::vec((prop::sample::select(POOL), prop::bool::weighted(0.2)), 1..8)
    }

    fn engine_for(rules: &[(&str, bool)]) -> Engine {
        let json: Vec<serde_json::Value> = rules
            .iter()
            .enumerate()
            .map(|(i, (p, ci))| {
                let flags: Vec<&str> = if *ci { vec!["caseInsensitive"] } else { vec![] };
                serde_json::json!({"name": format!("r{i}"), "logRegex": p, "flags": flags})
            })
            .collect();
        let set = match RuleSet::from_json(&serde_json::Value::Array(json).to_string()) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        };
        match Engine::new(&set) {
            Ok(e) => e,
            Err(e) => panic!("{e}"),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn counts_equal_reference_and_ripgrep(
            log in arb_log(),
            rules in arb_rules(),
            chunk in 1usize..80,
            threads in 1usize..4,
        ) {
            let engine = engine_for(&rules);
            let mut counts = engine.counts();
            let opts = ScanOptions { chunk_size: chunk, threads, ..ScanOptions::default() };
            let read = engine.scan_with(log.as_slice(), &mut counts, &opts, &mut |_| {});
            prop_assert_eq!(read.ok(), Some(log.len() as u64));
            let mut whole = engine.counts();
            engine.scan_bytes(&log, &mut whole);
            let got: Vec<u64> = (0..rules.len()).map(|i| counts.lines(i)).collect();
            let got_whole: Vec<u64> = (0..rules.len()).map(|i| whole.lines(i)).collect();
            let want: Vec<u64> = rules.iter().map(|(p, ci)| reference(&log, p, *ci)).collect();
            prop_assert_eq!(&got, &want, "engine (chunked) vs reference");
            prop_assert_eq!(&got_whole, &want, "engine (scan_bytes) vs reference");
            if rg_available() {
                let file = tempfile::NamedTempFile::new();
                prop_assert!(file.is_ok());
                let Ok(file) = file else { unreachable!() };
                prop_assert!(std::fs::write(file.path(), &log).is_ok());
                let rg: Vec<u64> = rules.iter().map(|(p, ci)| ripgrep(file.path(), p, *ci)).collect();
                prop_assert_eq!(&got, &rg, "engine vs rg -c -e");
            }
        }
    }
}
