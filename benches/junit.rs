//! Throughput and memory benchmark of the streaming JUnit parser (`cargo bench --bench junit`).
//!
//! Generates a ~100 MB JUnit report (200,000 cases: ~10 % failures with multi-line traces, some with
//! `<system-out>`, some skipped) and a ~20 MB one in a temp dir, then:
//! 1. times `tomato::results::junit::parse_file` counting cases by status (best of 3);
//! 2. times Python's `xml.etree.ElementTree.iterparse` doing the same counting, clearing elements as
//!    it goes (best of 3, timed inside the Python process so interpreter start-up is not counted);
//! 3. measures the parser's peak RSS (VmHWM) in a fresh child process — this binary re-executed with
//!    `TOMATO_JUNIT_BENCH_CHILD=<file>` — for both file sizes, to show memory does not grow with size.
//!
//! Run without `--bench` (as `cargo test --all-targets` does), it only parses a small generated report.
//!
//! Environment: `TOMATO_JUNIT_BENCH_CASES` overrides the number of cases of the large file;
//! `TOMATO_JUNIT_BENCH_DIR` writes the generated reports there (and keeps them) instead of a temp dir.

use std::collections::hash_map::DefaultHasher;
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use tomato::results::junit::{self, CaseStatus};

const CHILD_ENV: &str = "TOMATO_JUNIT_BENCH_CHILD";
const RUNS: usize = 3;

type Counts = [u64; 4]; // passed, failed, errored, skipped

const PYTHON: &str = r#"
import sys, time, resource
import xml.etree.ElementTree as ET

def count(path):
    counts = {"passed": 0, "failed": 0, "errored": 0, "skipped": 0}
    for _event, elem in ET.iterparse(path):  # "end" events only
        tag = elem.tag
        if tag == "testcase":
            status = "passed"
            for child in elem:
                if child.tag == "error":
                    status = "errored"
                elif child.tag == "failure" and status != "errored":
                    status = "failed"
                elif child.tag == "skipped" and status == "passed":
                    status = "skipped"
            counts[status] += 1
            elem.clear()
        elif tag == "testsuite":
            elem.clear()  # drop the (already cleared) cases so memory stays flat
    return counts

start = time.perf_counter()
counts = count(sys.argv[1])
elapsed = time.perf_counter() - start
rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(elapsed, counts["passed"], counts["failed"], counts["errored"], counts["skipped"], rss_mib)
"#;

fn main() {
    if let Ok(path) = std::env::var(CHILD_ENV) {
        child(Path::new(&path));
        return;
    }
    if !std::env::args().any(|a| a == "--bench") {
        // Not run by `cargo bench` (e.g. `cargo test --all-targets`): a quick smoke check only.
        smoke();
        return;
    }
    let cases: u64 = std::env::var("TOMATO_JUNIT_BENCH_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let tmp = tempfile::tempdir().expect("create temp dir");
    let dir = std::env::var_os("TOMATO_JUNIT_BENCH_DIR").map_or_else(|| tmp.path().to_path_buf(), Into::into);
    std::fs::create_dir_all(&dir).expect("create bench dir");
    let big = dir.join("big.xml");
    let small = dir.join("small.xml");

    let t = Instant::now();
    let big_bytes = generate(&big, cases).expect("write big report");
    let small_bytes = generate(&small, cases / 5).expect("write small report");
    println!(
        "generated {} cases / {:.1} MB and {} cases / {:.1} MB in {:.1}s",
        cases,
        mb(big_bytes),
        cases / 5,
        mb(small_bytes),
        t.elapsed().as_secs_f64()
    );

    // (a) tomato
    let mut best_tomato = f64::INFINITY;
    let mut tomato_counts = [0; 4];
    for _ in 0..RUNS {
        let t = Instant::now();
        tomato_counts = count_tomato(&big);
        best_tomato = best_tomato.min(t.elapsed().as_secs_f64());
    }
    let tomato_mbs = mb(big_bytes) / best_tomato;
    println!(
        "tomato  parse_file: best of {RUNS} {best_tomato:.3}s = {tomato_mbs:7.1} MB/s  counts {tomato_counts:?}"
    );

    // (b) Python iterparse
    let mut best_python = f64::INFINITY;
    let mut python_rss = 0.0;
    for _ in 0..RUNS {
        let Some((secs, counts, rss)) = run_python(&big) else {
            println!("python3 iterparse: not available, skipped");
            break;
        };
        assert_eq!(counts, tomato_counts, "python and tomato disagree on counts");
        best_python = best_python.min(secs);
        python_rss = rss;
    }
    if best_python.is_finite() {
        let python_mbs = mb(big_bytes) / best_python;
        println!(
            "python  iterparse : best of {RUNS} {best_python:.3}s = {python_mbs:7.1} MB/s  peak RSS {python_rss:.1} MiB"
        );
        println!("ratio tomato / python: {:.1}x", tomato_mbs / python_mbs);
    }

    // (c) peak memory of the parser in a fresh process, for both sizes.
    for (path, bytes) in [(&small, small_bytes), (&big, big_bytes)] {
        let (counts, baseline, peak) = run_child(path);
        let total: u64 = counts.iter().sum();
        println!(
            "tomato  peak RSS  : {peak:6.1} MiB parsing {:6.1} MB ({total} cases; process baseline {baseline:.1} MiB)",
            mb(bytes)
        );
    }
}

fn smoke() {
    let dir = tempfile::tempdir().expect("create temp dir");
    let path = dir.path().join("smoke.xml");
    generate(&path, 1_000).expect("write report");
    let counts = count_tomato(&path);
    assert_eq!(counts.iter().sum::<u64>(), 1_000);
    assert!(counts.iter().all(|&n| n > 0), "{counts:?}");
    println!("junit bench smoke test: ok {counts:?} (run `cargo bench --bench junit` for the benchmark)");
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn count_tomato(path: &Path) -> Counts {
    let mut counts = [0u64; 4];
    junit::parse_file(path, |case| {
        let i = match case.status {
            CaseStatus::Passed => 0,
            CaseStatus::Failed => 1,
            CaseStatus::Errored => 2,
            CaseStatus::Skipped => 3,
        };
        counts[i] += 1;
    })
    .expect("parse generated report");
    counts
}

/// Child mode: parse once and print the counts and VmHWM (peak RSS) before and after, in MiB.
fn child(path: &Path) {
    let baseline = vm_hwm_mib();
    let counts = count_tomato(path);
    let peak = vm_hwm_mib();
    println!(
        "{} {} {} {} {baseline} {peak}",
        counts[0], counts[1], counts[2], counts[3]
    );
}

fn run_child(path: &Path) -> (Counts, f64, f64) {
    let exe = std::env::current_exe().expect("current exe");
    let out = Command::new(exe)
        .env(CHILD_ENV, path)
        .output()
        .expect("run child");
    assert!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let f: Vec<f64> = text.split_whitespace().filter_map(|v| v.parse().ok()).collect();
    assert_eq!(f.len(), 6, "unexpected child output {text:?}");
    ([f[0] as u64, f[1] as u64, f[2] as u64, f[3] as u64], f[4], f[5])
}

fn vm_hwm_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn run_python(path: &Path) -> Option<(f64, Counts, f64)> {
    let out = Command::new("python3")
        .arg("-c")
        .arg(PYTHON)
        .arg(path)
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("python failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let f: Vec<f64> = text.split_whitespace().filter_map(|v| v.parse().ok()).collect();
    if f.len() != 6 {
        return None;
    }
    Some((f[0], [f[1] as u64, f[2] as u64, f[3] as u64, f[4] as u64], f[5]))
}

/// Deterministic pseudo-random number for case `i`, salt `salt`.
fn rnd(i: u64, salt: u64) -> u64 {
    let mut h = DefaultHasher::new();
    (i, salt).hash(&mut h);
    h.finish()
}

/// Writes a report with `cases` cases (in suites of 100) and returns its size in bytes.
fn generate(path: &Path, cases: u64) -> std::io::Result<u64> {
    let mut w = BufWriter::with_capacity(1 << 20, File::create(path)?);
    writeln!(w, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(w, r#"<testsuites name="bench" tests="{cases}">"#)?;
    for i in 0..cases {
        if i.is_multiple_of(100) {
            if i > 0 {
                writeln!(w, "  </testsuite>")?;
            }
            writeln!(
                w,
                r#"  <testsuite name="com.example.module{m}.ServiceTest" tests="100" timestamp="2025-01-01T00:00:00">"#,
                m = i / 100
            )?;
            writeln!(
                w,
                r#"    <properties><property name="java.version" value="17.0.15"/></properties>"#
            )?;
        }
        let roll = rnd(i, 0) % 100;
        let time = (rnd(i, 1) % 5000) as f64 / 1000.0;
        write!(
            w,
            r#"    <testcase name="test_case_{i}_handles_input[{p}]" classname="com.example.module{m}.ServiceTest" time="{time:.3}""#,
            p = rnd(i, 2) % 1000,
            m = i / 100
        )?;
        let with_output = rnd(i, 3).is_multiple_of(5);
        if roll >= 15 && !with_output {
            writeln!(w, "/>")?;
            continue;
        }
        writeln!(w, ">")?;
        if roll < 10 {
            let (tag, kind) = if roll < 8 {
                ("failure", "java.lang.AssertionError")
            } else {
                ("error", "java.lang.IllegalStateException")
            };
            writeln!(
                w,
                r#"      <{tag} message="expected:&lt;{a}&gt; but was:&lt;{b}&gt; in case {i}" type="{kind}">{kind}: expected:&lt;{a}&gt; but was:&lt;{b}&gt;"#,
                a = rnd(i, 4) % 100,
                b = rnd(i, 5) % 100
            )?;
            let frames = 25 + rnd(i, 6) % 30;
            for f in 0..frames {
                writeln!(
                    w,
                    "\tat com.example.module{m}.internal.Layer{f}.invoke(Layer{f}.java:{line})",
                    m = i / 100,
                    line = 10 + rnd(i, 7 + f) % 400
                )?;
            }
            writeln!(w, "</{tag}>")?;
        } else if roll < 15 {
            writeln!(
                w,
                r#"      <skipped message="disabled until TOMATO-{}"/>"#,
                rnd(i, 8) % 1000
            )?;
        }
        if with_output {
            writeln!(w, "      <system-out><![CDATA[")?;
            for l in 0..(3 + rnd(i, 9) % 8) {
                writeln!(
                    w,
                    "[INFO] step {l} of case {i}: connecting to <db> & warming cache"
                )?;
            }
            writeln!(w, "]]></system-out>")?;
        }
        writeln!(w, "    </testcase>")?;
    }
    if cases > 0 {
        writeln!(w, "  </testsuite>")?;
    }
    writeln!(w, "</testsuites>")?;
    w.flush()?;
    drop(w);
    Ok(std::fs::metadata(path)?.len())
}
