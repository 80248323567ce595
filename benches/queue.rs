//! Admission at scale (`cargo bench --bench queue`): 10,000 queued runs over 20 services and
//! 50 stands, 40 of them running.
//!
//! Times `tomato::queue::admit` (best of many passes) and, as the named peer, the same
//! admission written the way the old Tornado tool's Python would (sort by priority, creation,
//! name; dict counters), timed inside the Python process on the same input. Prints both and
//! the ratio. Run without `--bench` it only checks one small pass.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Instant;

use chrono::{TimeZone, Utc};
use tomato::queue::{Entry, Limits, admit};

struct Table(BTreeMap<String, (u32, u32)>);

impl Limits for Table {
    fn service_concurrency(&self, s: &str) -> u32 {
        self.0.get(s).map_or(1, |l| l.0)
    }
    fn stand_concurrency(&self, s: &str) -> u32 {
        self.0.get(s).map_or(1, |l| l.1)
    }
    fn slots(&self, _run: &tomato::crd::TestRun) -> u32 {
        1
    }
}

fn entries(n: usize) -> Vec<Entry> {
    // A deterministic pseudo-random mix (xorshift), so Rust and Python see the same queue.
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..n)
        .map(|i| Entry {
            name: format!("run-{i:05}"),
            service: format!("svc{}", next() % 20),
            stand: format!("stand{}", next() % 50),
            priority: tomato::crd::Priority::new((next() % 10) as u8).unwrap(),
            created: Utc
                .timestamp_opt(1_700_000_000 + (next() % 86_400) as i64, 0)
                .unwrap(),
            active: i < 40,
            slots: 1,
        })
        .collect()
}

const PYTHON: &str = r#"
import json, sys, time
data = json.load(open(sys.argv[1]))
entries, limits = data["entries"], data["limits"]

def admit(entries, limits):
    svc_load, stand_load = {}, {}
    for e in entries:
        if e["active"]:
            svc_load[e["service"]] = svc_load.get(e["service"], 0) + 1
            stand_load[e["stand"]] = stand_load.get(e["stand"], 0) + 1
    queued = sorted((e for e in entries if not e["active"]), key=lambda e: (e["priority"], e["created"], e["name"]))
    admitted, waiting, positions = [], [], {}
    for e in queued:
        svc_limit, stand_limit = limits.get(e["service"], (1, 1))
        if svc_load.get(e["service"], 0) < svc_limit and stand_load.get(e["stand"], 0) < stand_limit:
            svc_load[e["service"]] = svc_load.get(e["service"], 0) + 1
            stand_load[e["stand"]] = stand_load.get(e["stand"], 0) + 1
            admitted.append(e["name"])
        else:
            positions[e["service"]] = positions.get(e["service"], 0) + 1
            waiting.append((e["name"], positions[e["service"]]))
    return admitted, waiting

best = float("inf")
for _ in range(int(sys.argv[2])):
    t = time.perf_counter()
    admitted, waiting = admit(entries, limits)
    best = min(best, time.perf_counter() - t)
print(best, len(admitted), len(waiting))
"#;

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let n = if bench { 10_000 } else { 200 };
    let runs = if bench { 50 } else { 2 };
    let entries = entries(n);
    let limits = Table((0..20).map(|i| (format!("svc{i}"), (1 + i % 3, 1))).collect());

    let mut best = f64::INFINITY;
    let mut result = admit(&entries, &limits, &std::collections::BTreeMap::new());
    for _ in 0..runs {
        let t = Instant::now();
        result = admit(&entries, &limits, &std::collections::BTreeMap::new());
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "tomato::queue::admit: {n} runs, {} admitted, {} waiting: {:.3} ms",
        result.admitted.len(),
        result.waiting.len(),
        best * 1e3
    );
    assert_eq!(result.admitted.len() + result.waiting.len(), n - 40);
    if !bench {
        return;
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("queue.json");
    let json = serde_json::json!({
        "entries": entries.iter().map(|e| serde_json::json!({
            "name": e.name, "service": e.service, "stand": e.stand, "priority": e.priority,
            "created": e.created.timestamp(), "active": e.active,
        })).collect::<Vec<_>>(),
        "limits": limits.0,
    });
    std::fs::write(&input, json.to_string()).expect("write input");
    let out = Command::new("python3")
        .arg("-c")
        .arg(PYTHON)
        .arg(&input)
        .arg(runs.to_string())
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            let mut parts = text.split_whitespace();
            let py: f64 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(f64::NAN);
            let py_admitted: usize = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
            assert_eq!(
                py_admitted,
                result.admitted.len(),
                "Python and Rust must admit the same runs"
            );
            println!(
                "python (the old tool's language), same algorithm: {:.3} ms",
                py * 1e3
            );
            println!("ratio python / tomato: {:.1}x", py / best);
        }
        Ok(o) => eprintln!("python peer failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => eprintln!("python peer not run: {e}"),
    }
}
