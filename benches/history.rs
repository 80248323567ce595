//! Reads at a team's real scale (`cargo bench --bench history`): the real `tomato serve` over a
//! store holding 10,000 and then 50,000 finished runs.
//!
//! For each size it times, over loopback HTTP, the dashboard (`/`), `/api/runned`,
//! `/api/v1/runs?limit=50`, its next page (`continue`) and `/api/status`, and prints each one's
//! p50 and p99 as a ratio to `/healthz` in the same run (the baseline: the same server, socket
//! and HTTP stack, no store). Reads must not grow with history: the last column is the growth
//! of each p50 from the small store to the large one (about 1.0 when flat; issue 14 measured
//! 5x before the indexes). Then `/api/status` while two clients reload the dashboard
//! back-to-back, as a ratio to its idle latency (readers must not queue behind each other).
//! Last, end-to-end throughput: runs per minute when 200 and when 1,500 runs are queued at
//! once, each a real process writing a real JUnit report (a driver pass must cost what changed,
//! not the whole queue), and their ratio.
//!
//! The finished runs are written with Tomato's own store (the code every API write goes
//! through), not posted one by one: posting them would queue and run 50,000 processes first.
//! The data directory is on `/dev/shm` when there is one, so filling takes seconds, not an
//! `fsync` per run; the reads are the same either way (the database stays in the page cache).
//!
//! Run without `--bench` (as `.ci/run` does) it checks a small store of each kind once.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tomato::crd::{Phase, TestRun, Verdict};
use tomato::store::SqliteStore;

const SERVICES: [&str; 3] = ["bench-a", "bench-b", "bench-c"];

struct Sizes {
    small: usize,
    large: usize,
    samples: usize,
    queues: [usize; 2],
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let sizes = if full {
        Sizes {
            small: 10_000,
            large: 50_000,
            samples: 200,
            queues: [200, 1_500],
        }
    } else {
        Sizes {
            small: 200,
            large: 1_000,
            samples: 10,
            queues: [20, 60],
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let scratch = scratch_dir();
    let config = packs_config(scratch.path());

    let mut rows: Vec<(String, Vec<(Duration, Duration)>)> = Vec::new();
    let mut idle_vs_busy = None;
    for (i, n) in [sizes.small, sizes.large].into_iter().enumerate() {
        let data = scratch.path().join(format!("data-{n}"));
        let started = Instant::now();
        let probe = rt.block_on(fill(&data, n));
        eprintln!(
            "filled {n} finished runs in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let server = Server::start(&data, &config);
        let reads = rt.block_on(measure_reads(&server.url, &probe, sizes.samples));
        for (name, p) in reads {
            match rows.iter_mut().find(|(n, _)| *n == name) {
                Some((_, v)) => v.push(p),
                None => rows.push((name, vec![p])),
            }
        }
        if i == 1 {
            idle_vs_busy = Some(rt.block_on(status_under_readers(&server.url, &probe, sizes.samples)));
        }
    }

    let healthz = rows
        .iter()
        .find(|(n, _)| n == "/healthz")
        .map(|(_, v)| v.clone())
        .expect("healthz timed");
    println!();
    println!(
        "{:<34} {:>22} {:>22} {:>8}",
        "request (ratio to /healthz)",
        format!("{} runs p50 / p99", sizes.small),
        format!("{} runs p50 / p99", sizes.large),
        "growth"
    );
    for (name, v) in &rows {
        let cell = |k: usize| {
            format!(
                "{:>8.1}x / {:>6.1}x",
                ratio(v[k].0, healthz[k].0),
                ratio(v[k].1, healthz[k].0)
            )
        };
        println!(
            "{:<34} {:>22} {:>22} {:>7.2}x",
            name,
            cell(0),
            cell(1),
            ratio(v[1].0, v[0].0)
        );
    }
    for (k, n) in [sizes.small, sizes.large].iter().enumerate() {
        println!(
            "  (/healthz p50 at {n} runs: {:.3} ms)",
            healthz[k].0.as_secs_f64() * 1e3
        );
    }
    if let Some((idle, busy)) = idle_vs_busy {
        println!(
            "/api/status p50 idle {:.3} ms, with two dashboard readers {:.3} ms: {:.2}x (target: within 2x)",
            idle.as_secs_f64() * 1e3,
            busy.as_secs_f64() * 1e3,
            ratio(busy, idle)
        );
    }

    let mut rates = Vec::new();
    for q in sizes.queues {
        let data = scratch.path().join(format!("queue-{q}"));
        let server = Server::start(&data, &config);
        let per_minute = rt.block_on(throughput(&server.url, q));
        println!("{q} runs queued at once: {per_minute:.0} runs/minute end to end");
        rates.push(per_minute);
    }
    println!(
        "throughput with {} queued / with {} queued: {:.2}x (target: within 1.5x)",
        sizes.queues[1],
        sizes.queues[0],
        rates[1] / rates[0]
    );
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-9)
}

/// A scratch directory on `/dev/shm` when there is one.
fn scratch_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(d) = tempfile::tempdir_in(shm)
    {
        return d;
    }
    tempfile::tempdir().expect("a temporary directory")
}

/// A packs_config with three services whose one pack is a real process copying a real JUnit
/// report (one passing test) into place: the cheapest honest run. Tomato requires `{tests}`
/// in a command; the pack's one selector goes to `env -u` (unset a variable of that name), so
/// the process stays a bare copy.
fn packs_config(dir: &Path) -> PathBuf {
    let config = dir.join("packs_config");
    std::fs::create_dir_all(&config).unwrap();
    let junit = dir.join("report.xml");
    std::fs::write(
        &junit,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites><testsuite name="bench" tests="1" failures="0"><testcase classname="bench" name="ok" time="0.001"/></testsuite></testsuites>
"#,
    )
    .unwrap();
    for svc in SERVICES {
        std::fs::write(
            config.join(format!("{svc}.yaml")),
            format!(
                "description: benchmark service\nstands:\n  pattern: 's[0-9]+'\n  concurrency: 8\nconcurrency: 8\nretries: 0\n\
                 launch:\n  command: [env, -u, '{{tests}}', cp, {junit}, '{{junit}}']\n  timeout: 1m\npacks:\n  all:\n    tests: [all]\n",
                junit = junit.display()
            ),
        )
        .unwrap();
    }
    config
}

/// What the reads ask for: a run id to look up.
struct Probe {
    run: String,
}

/// Writes `n` finished runs over the three services and ten stands, a third of them failed.
async fn fill(data: &Path, n: usize) -> Probe {
    let store = SqliteStore::open(data).expect("the store opens");
    let mut probe = None;
    for i in 0..n {
        let svc = SERVICES[i % SERVICES.len()];
        let name = format!("{svc}-{i:06}");
        let run: TestRun = serde_json::from_value(serde_json::json!({
            "apiVersion": "tomato.dev/v1alpha1",
            "kind": "TestRun",
            "metadata": {"name": name},
            "spec": {"service": svc, "stand": format!("s{}", i % 10), "priority": 2},
        }))
        .expect("a TestRun");
        store.create(run).await.expect("a run is stored");
        let failed = i % 3 == 0;
        store
            .update::<TestRun, _>(&name, move |r| {
                let st = r.status.get_or_insert_default();
                let now = chrono::Utc::now();
                st.phase = if failed { Phase::Failed } else { Phase::Succeeded };
                st.verdict = Some(if failed {
                    Verdict::Failed
                } else {
                    Verdict::Succeeded
                });
                st.started_at = Some(now);
                st.finished_at = Some(now);
                st.message = Some("benchmark run".into());
                Ok((true, ()))
            })
            .await
            .expect("a run's status is stored");
        if i == n / 2 {
            probe = Some(Probe { run: name });
        }
    }
    probe.expect("a run in the middle")
}

/// The real server, stopped on drop.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(data: &Path, config: &Path) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let url = format!("http://127.0.0.1:{port}");
        let mut child = Command::new(env!("CARGO_BIN_EXE_tomato"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(data)
            .arg("--config")
            .arg(config)
            .env("TOMATO_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("tomato starts");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("tomato exited at start-up: {status}");
            }
            assert!(Instant::now() < deadline, "tomato did not listen within 60 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        Server { child, url }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The JSON a GET answers, which must be a success.
async fn get_json(client: &reqwest::Client, url: &str) -> serde_json::Value {
    client
        .get(url)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: not JSON: {e}"))
}

/// p50 and p99 of `samples` sequential GETs of `path`.
async fn time_get(client: &reqwest::Client, url: &str, samples: usize) -> (Duration, Duration) {
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let t = Instant::now();
        let res = client.get(url).send().await.expect("the server answers");
        let status = res.status();
        let body = res.bytes().await.expect("a body");
        assert!(
            status.is_success(),
            "{url}: {status}: {}",
            String::from_utf8_lossy(&body)
        );
        times.push(t.elapsed());
    }
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

async fn measure_reads(base: &str, probe: &Probe, samples: usize) -> Vec<(String, (Duration, Duration))> {
    let client = reqwest::Client::new();
    let first = get_json(&client, &format!("{base}/api/v1/runs?limit=50")).await;
    assert_eq!(
        first["items"].as_array().map(Vec::len),
        Some(50),
        "a full first page"
    );
    let token = first["metadata"]["continue"]
        .as_str()
        .expect("a continue token")
        .to_string();
    let paths = [
        ("/healthz".to_string(), "/healthz".to_string()),
        ("dashboard /".to_string(), "/".to_string()),
        (
            "/api/runned?project=bench-a".to_string(),
            "/api/runned?project=bench-a".to_string(),
        ),
        (
            "/api/v1/runs?limit=50".to_string(),
            "/api/v1/runs?limit=50".to_string(),
        ),
        (
            "/api/v1/runs?limit=50&continue=…".to_string(),
            format!("/api/v1/runs?limit=50&continue={token}"),
        ),
        (
            "/api/v1/runs?service=…&phase=Failed".to_string(),
            "/api/v1/runs?service=bench-b&phase=Failed&limit=50".to_string(),
        ),
        (
            "/api/status?run_id=…".to_string(),
            format!("/api/status?run_id={}", probe.run),
        ),
    ];
    // Warm the connection and the page cache once.
    for (_, p) in &paths {
        time_get(&client, &format!("{base}{p}"), 1).await;
    }
    let mut out = Vec::new();
    for (name, p) in paths {
        out.push((name, time_get(&client, &format!("{base}{p}"), samples).await));
    }
    out
}

/// `/api/status` p50 idle, then while two clients reload the dashboard back-to-back.
async fn status_under_readers(base: &str, probe: &Probe, samples: usize) -> (Duration, Duration) {
    let client = reqwest::Client::new();
    let status = format!("{base}/api/status?run_id={}", probe.run);
    let idle = time_get(&client, &status, samples).await.0;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..2 {
        let stop = stop.clone();
        let url = format!("{base}/");
        readers.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = client.get(&url).send().await.and_then(|r| r.error_for_status());
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let busy = time_get(&client, &status, samples).await.0;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        let _ = r.await;
    }
    (idle, busy)
}

/// Queues `n` runs at once through the API and waits until every one has finished: runs per
/// minute from the first request to the last finish.
async fn throughput(base: &str, n: usize) -> f64 {
    let client = reqwest::Client::new();
    let started = Instant::now();
    for i in 0..n {
        let svc = SERVICES[i % SERVICES.len()];
        let res = client
            .post(format!("{base}/api/v1/runs"))
            .json(&serde_json::json!({
                "apiVersion": "tomato.dev/v1alpha1",
                "kind": "TestRun",
                "metadata": {"generateName": format!("{svc}-")},
                "spec": {"service": svc, "stand": format!("s{}", i % 10)},
            }))
            .send()
            .await
            .expect("the server answers");
        let status = res.status();
        assert!(
            status.is_success(),
            "queueing a run: {status}: {}",
            res.text().await.unwrap_or_default()
        );
    }
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let unfinished = get_json(
            &client,
            &format!("{base}/api/v1/runs?phase=Queued,Running,Retrying,Reporting&limit=1"),
        )
        .await;
        if unfinished["items"].as_array().is_some_and(Vec::is_empty) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{n} runs did not finish within 30 minutes"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = started.elapsed();
    // Every run must succeed: its process copies a passing report.
    let not_succeeded = get_json(
        &client,
        &format!("{base}/api/v1/runs?phase=Failed,Error,Cancelled&limit=5"),
    )
    .await;
    assert!(
        not_succeeded["items"].as_array().is_some_and(Vec::is_empty),
        "every queued run must succeed: {not_succeeded}"
    );
    n as f64 / elapsed.as_secs_f64() * 60.0
}
