//! `tomato grep --rules RULES.json [--json] LOG...`: count, per rule, the log lines its `logRegex` matches.
//!
//! It is the way to try a rules file on real logs before giving it to a service, and the benchmark
//! entry point of the engine. Output, for all files together:
//!
//! * `--json`: exactly `{"categories": [{"name": ..., "lines": N, "first": ["<line>", ...]}], "bytes": B,
//!   "seconds": S}`. `lines` counts lines matching that rule's `logRegex` (a line matching several rules
//!   counts for each); `first` holds the first 5 such lines (500 bytes at most each, invalid UTF-8
//!   replaced). Rules without `logRegex` are OMITTED: they cannot match a log, and listing them with 0
//!   would read as "searched, not found". Categories keep the rules file's order.
//! * otherwise a table (name, count, first matching line) and a summary line.
//!
//! `seconds` is the time spent searching (rule compilation excluded). Progress goes to stderr when the
//! inputs exceed 64 MiB, at most twice a second. A rules file with errors prints every error and fails.

use std::fs::File;
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::engine::{Counts, Engine, ScanOptions};
use super::rules::RuleSet;

/// Inputs larger than this get progress lines on stderr.
const PROGRESS_MIN_BYTES: u64 = 64 << 20;
/// Minimum time between two progress lines.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);
/// Table column cut for the sample line.
const TABLE_SAMPLE_CHARS: usize = 100;

/// Arguments of `tomato grep`.
#[derive(Debug, Clone, clap::Args)]
pub struct GrepArgs {
    /// Rules file: a JSON array in the shape of Allure's categories.json, with `logRegex` per rule.
    #[arg(long, value_name = "RULES.json")]
    pub rules: PathBuf,
    /// Print JSON: {"categories": [{"name", "lines", "first"}], "bytes", "seconds"}.
    #[arg(long)]
    pub json: bool,
    /// Worker threads (default: number of CPUs, at most 8).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Chunk size in MiB (default 8).
    #[arg(long, value_name = "MIB", hide = true)]
    pub chunk_mib: Option<usize>,
    /// Print how the rules were compiled (literal pass, lone passes, DFA) to stderr.
    #[arg(long, hide = true)]
    pub plan: bool,
    /// Log files to search; `-` reads standard input.
    #[arg(value_name = "LOG", required = true)]
    pub logs: Vec<PathBuf>,
}

/// Run `tomato grep`.
pub fn run(args: &GrepArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.rules)
        .with_context(|| format!("cannot read rules file {}", args.rules.display()))?;
    let set =
        RuleSet::from_json(&text).with_context(|| format!("invalid rules file {}", args.rules.display()))?;
    for w in set.warnings() {
        eprintln!("warning: {w}");
    }
    let engine = Engine::new(&set)?;
    if args.plan {
        eprintln!("{:?}", engine.plan());
    }
    let mut opts = ScanOptions::default();
    if let Some(t) = args.threads {
        opts.threads = t.max(1);
    }
    if let Some(m) = args.chunk_mib {
        opts.chunk_size = m.clamp(1, 1024) << 20;
    }

    let total: Option<u64> = args
        .logs
        .iter()
        .map(|p| {
            if is_stdin(p) {
                None
            } else {
                std::fs::metadata(p).ok().map(|m| m.len())
            }
        })
        .sum();
    let mut progress = Progress::new(total);
    let mut counts = engine.counts();
    let started = Instant::now();
    let mut bytes = 0u64;
    for path in &args.logs {
        let done_before = bytes;
        let mut report = |n: u64| progress.update(done_before + n, started);
        bytes += if is_stdin(path) {
            engine.scan_with(io::stdin().lock(), &mut counts, &opts, &mut report)
        } else {
            let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
            engine.scan_with(file, &mut counts, &opts, &mut report)
        }
        .with_context(|| format!("cannot read {}", path.display()))?;
    }
    let seconds = started.elapsed().as_secs_f64();
    progress.finish();
    if counts.truncated_lines() > 0 {
        eprintln!(
            "warning: {} line(s) longer than {} MiB were searched only in their first {} MiB",
            counts.truncated_lines(),
            opts.max_line_len >> 20,
            opts.max_line_len >> 20
        );
    }

    let mut out = io::stdout().lock();
    if args.json {
        let json = to_json(&set, &counts, bytes, seconds);
        writeln!(out, "{json}")?;
    } else {
        write_table(&mut out, &set, &counts, bytes, seconds)?;
    }
    out.flush()?;
    Ok(())
}

fn is_stdin(p: &std::path::Path) -> bool {
    p.as_os_str() == "-"
}

/// The `--json` document.
fn to_json(set: &RuleSet, counts: &Counts, bytes: u64, seconds: f64) -> serde_json::Value {
    let categories: Vec<serde_json::Value> = set
        .rules()
        .iter()
        .enumerate()
        .filter(|(_, r)| r.log_regex.is_some())
        .map(|(i, r)| {
            let first: Vec<String> = counts
                .first_lines(i)
                .iter()
                .map(|l| String::from_utf8_lossy(l).into_owned())
                .collect();
            serde_json::json!({"name": r.name, "lines": counts.lines(i), "first": first})
        })
        .collect();
    serde_json::json!({"categories": categories, "bytes": bytes, "seconds": seconds})
}

fn write_table(
    out: &mut impl Write,
    set: &RuleSet,
    counts: &Counts,
    bytes: u64,
    seconds: f64,
) -> io::Result<()> {
    let rows: Vec<(&str, u64, String)> = set
        .rules()
        .iter()
        .enumerate()
        .filter(|(_, r)| r.log_regex.is_some())
        .map(|(i, r)| {
            let first = counts
                .first_lines(i)
                .first()
                .map(|l| String::from_utf8_lossy(l))
                .unwrap_or_default();
            let mut first: String = first
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            if first.chars().count() > TABLE_SAMPLE_CHARS {
                first = first.chars().take(TABLE_SAMPLE_CHARS - 1).chain(['…']).collect();
            }
            (r.name.as_str(), counts.lines(i), first)
        })
        .collect();
    let name_w = rows
        .iter()
        .map(|r| r.0.chars().count())
        .chain(["CATEGORY".len()])
        .max()
        .unwrap_or(8);
    let count_w = rows
        .iter()
        .map(|r| r.1.to_string().len())
        .chain(["LINES".len()])
        .max()
        .unwrap_or(5);
    writeln!(out, "{:<name_w$}  {:>count_w$}  FIRST MATCH", "CATEGORY", "LINES")?;
    for (name, n, first) in &rows {
        writeln!(out, "{name:<name_w$}  {n:>count_w$}  {first}")?;
    }
    let skipped = set.len() - rows.len();
    if skipped > 0 {
        writeln!(out, "({skipped} rule(s) without logRegex not shown)")?;
    }
    writeln!(
        out,
        "searched {} in {seconds:.2} s ({})",
        human_bytes(bytes),
        rate(bytes, seconds)
    )?;
    Ok(())
}

fn human_bytes(b: u64) -> String {
    let b = b as f64;
    if b >= (1u64 << 30) as f64 {
        format!("{:.2} GiB", b / (1u64 << 30) as f64)
    } else if b >= (1u64 << 20) as f64 {
        format!("{:.1} MiB", b / (1u64 << 20) as f64)
    } else {
        format!("{b} bytes")
    }
}

fn rate(bytes: u64, seconds: f64) -> String {
    if seconds <= 0.0 {
        return "-".to_owned();
    }
    format!("{:.0} MB/s", bytes as f64 / seconds / 1e6)
}

/// Throttled progress lines on stderr (rewritten in place on a terminal).
struct Progress {
    total: Option<u64>,
    shown: bool,
    last: Option<Instant>,
    tty: bool,
}

impl Progress {
    fn new(total: Option<u64>) -> Self {
        Self {
            total,
            shown: false,
            last: None,
            tty: io::stderr().is_terminal(),
        }
    }

    fn update(&mut self, done: u64, started: Instant) {
        let big = self.total.unwrap_or(done) >= PROGRESS_MIN_BYTES && done >= PROGRESS_MIN_BYTES / 4;
        let due = self.last.is_none_or(|t| t.elapsed() >= PROGRESS_EVERY);
        if !big || !due {
            return;
        }
        self.last = Some(Instant::now());
        let secs = started.elapsed().as_secs_f64();
        let of = match self.total {
            Some(t) if t > 0 => format!(" / {} ({:.0}%)", human_bytes(t), done as f64 * 100.0 / t as f64),
            _ => String::new(),
        };
        let line = format!("grep: {}{of}, {}", human_bytes(done), rate(done, secs));
        let mut err = io::stderr().lock();
        // Progress is best effort: a closed stderr must not fail the search.
        let _ = if self.tty {
            write!(err, "\r{line}\x1b[K")
        } else {
            writeln!(err, "{line}")
        };
        self.shown = true;
    }

    fn finish(&mut self) {
        if self.shown && self.tty {
            let _ = writeln!(io::stderr());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape_omits_rules_without_log_regex() {
        let set = match RuleSet::from_json(
            r#"[{"name": "db", "logRegex": "refused"}, {"name": "st", "matchedStatuses": ["failed"]},
                {"name": "none", "logRegex": "nothing"}]"#,
        ) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        };
        let Ok(engine) = Engine::new(&set) else {
            panic!("engine")
        };
        let mut counts = engine.counts();
        engine.scan_bytes(b"a\nConnection refused\r\nrefused \xff\n", &mut counts);
        let json = to_json(&set, &counts, 42, 0.5);
        assert_eq!(
            json,
            serde_json::json!({
                "categories": [
                    {"name": "db", "lines": 2, "first": ["Connection refused", "refused \u{fffd}"]},
                    {"name": "none", "lines": 0, "first": []}
                ],
                "bytes": 42, "seconds": 0.5
            })
        );
        let mut table = Vec::new();
        assert!(write_table(&mut table, &set, &counts, 42, 0.5).is_ok());
        let table = String::from_utf8_lossy(&table);
        assert!(
            table.starts_with("CATEGORY  LINES  FIRST MATCH\ndb            2  Connection refused\n"),
            "{table}"
        );
        assert!(
            table.contains("(1 rule(s) without logRegex not shown)"),
            "{table}"
        );
    }

    #[test]
    fn run_reads_files_and_refuses_bad_rules() {
        let Ok(dir) = tempfile::tempdir() else {
            panic!("tempdir")
        };
        let rules = dir.path().join("rules.json");
        let log = dir.path().join("a.log");
        let write = |p: &PathBuf, s: &str| assert!(std::fs::write(p, s).is_ok());
        write(&rules, r#"[{"name": "x", "logRegex": "x"}]"#);
        write(&log, "x\ny\n");
        let args = GrepArgs {
            rules: rules.clone(),
            json: true,
            threads: Some(2),
            chunk_mib: None,
            plan: false,
            logs: vec![log],
        };
        assert!(run(&args).is_ok());
        write(
            &rules,
            r#"[{"name": "a", "logRegex": "("}, {"name": "b", "matchedStatuses": ["nope"]}]"#,
        );
        let err = match run(&args) {
            Ok(()) => panic!("bad rules accepted"),
            Err(e) => format!("{e:#}"),
        };
        assert!(
            err.contains("rule #0 `a`, logRegex") && err.contains("rule #1 `b`, matchedStatuses"),
            "{err}"
        );
        let missing = GrepArgs {
            logs: vec![dir.path().join("missing.log")],
            ..args
        };
        write(&rules, r#"[{"name": "x", "logRegex": "x"}]"#);
        assert!(run(&missing).is_err());
    }
}
