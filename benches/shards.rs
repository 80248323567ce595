//! Time to verdict of a sharded attempt (`cargo bench --bench shards`), against one worker and
//! against the peer users reach for, pytest-xdist (`pytest -n 2`), in the same run on the same
//! machine.
//!
//! Generates a pytest suite with skewed durations (`time.sleep`): a few slow tests and many fast
//! ones, 2 minutes and more on one worker. Starts the real `tomato serve` over two services on
//! that suite — one with `shards: 2`, one running `pytest -n 2` in a single process — and times
//! three runs from creation to verdict: the sharded service's run with `spec.shards: 1` first
//! (it is the earlier run whose recorded durations balance the next), then its run with two
//! shards, then the `pytest -n 2` one. Prints the times, the ratios, and the
//! balance of the two shards (slowest shard's wall time / mean; 1.0 is perfect), measured and
//! as planned from the recorded durations.
//!
//! Run without `--bench` (as `cargo test --bench shards` does), it is a smoke test, seconds
//! long: one `shards: 2` run of a tiny suite, checked to succeed split in two.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The suite: `(slow tests' seconds, fast tests, each fast test's seconds)`.
struct Suite {
    slow: &'static [f64],
    fast: usize,
    fast_secs: f64,
}

/// ~128 s on one worker: five slow tests (a third of the time) and 160 fast ones.
const FULL: Suite = Suite {
    slow: &[14.0, 10.0, 8.0, 6.0, 5.0],
    fast: 170,
    fast_secs: 0.5,
};
const SMOKE: Suite = Suite {
    slow: &[0.3],
    fast: 8,
    fast_secs: 0.05,
};

impl Suite {
    fn total(&self) -> f64 {
        self.slow.iter().sum::<f64>() + self.fast as f64 * self.fast_secs
    }

    /// Writes the suite into `dir/tests`, the fast tests over several files (so files are
    /// not the unit a split must use).
    fn write(&self, dir: &Path) {
        let tests = dir.join("tests");
        std::fs::create_dir_all(&tests).expect("create the suite directory");
        let mut slow = String::from("import time\n\n");
        for (i, s) in self.slow.iter().enumerate() {
            slow.push_str(&format!("def test_slow_{i}():\n    time.sleep({s})\n\n"));
        }
        std::fs::write(tests.join("test_slow.py"), slow).expect("write the slow tests");
        for f in 0..4 {
            let mut fast = String::from("import time\n\n");
            for i in (f..self.fast).step_by(4) {
                fast.push_str(&format!(
                    "def test_fast_{i}():\n    time.sleep({})\n\n",
                    self.fast_secs
                ));
            }
            std::fs::write(tests.join(format!("test_fast_{f}.py")), fast).expect("write the fast tests");
        }
    }
}

/// Two services over the same suite (a symlink each): `shards: 2` (whose runs ask for one shard
/// or two), and `pytest -n 2` in one process.
fn config(dir: &Path, suite: &Path) {
    let service = |shards: u32, args: &str| {
        format!(
            "stands: {{pattern: localhost, concurrency: 2}}\nconcurrency: 2\nretries: 0\nshards: {shards}\n\
             launch:\n  runner: pytest\n  args: [{args}]\n  timeout: 10m\n  env: {{PYTHONDONTWRITEBYTECODE: \"1\"}}\n\
             packs:\n  all: {{tests: [\"{{dir}}/tests\"]}}\n"
        )
    };
    for (name, shards, args) in [("sharded", 2, ""), ("xdist", 1, "\"-n\", \"2\"")] {
        std::fs::write(dir.join(format!("{name}.yaml")), service(shards, args)).expect("write a service");
        std::os::unix::fs::symlink(suite, dir.join(name)).expect("link the suite");
    }
}

struct Server {
    child: Child,
    url: String,
    client: reqwest::Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    async fn start(config: &Path, data: &Path) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_tomato"))
            .arg("serve")
            .env("TOMATO_LISTEN", format!("127.0.0.1:{port}"))
            .env("TOMATO_DATA_DIR", data)
            .env("TOMATO_CONFIG", config)
            .env("TOMATO_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tomato serve");
        let server = Server {
            child,
            url: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let up = server.client.get(format!("{}/healthz", server.url)).send().await;
            if up.is_ok_and(|r| r.status().is_success()) {
                return server;
            }
            assert!(Instant::now() < deadline, "tomato did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Creates a run of `service` and waits for its verdict: the run and the time it took.
    /// `shards`: the run's own `spec.shards` (none: the service's).
    async fn time_to_verdict(&self, service: &str, shards: Option<u32>) -> (Value, Duration) {
        let started = Instant::now();
        let created: Value = self
            .client
            .post(format!("{}/api/v1/runs", self.url))
            .json(&json!({"spec": {"service": service, "stand": "localhost", "shards": shards}}))
            .send()
            .await
            .expect("create a run")
            .json()
            .await
            .expect("the created run");
        let name = created["metadata"]["name"]
            .as_str()
            .expect("a run name")
            .to_string();
        loop {
            let run: Value = self
                .client
                .get(format!("{}/api/v1/runs/{name}", self.url))
                .send()
                .await
                .expect("read the run")
                .json()
                .await
                .expect("the run");
            if run["status"]["verdict"].is_string() {
                return (run, started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Wall time of each shard of the run's first attempt, in seconds.
fn shard_times(run: &Value) -> Vec<f64> {
    let at = |v: &Value| {
        v.as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .expect("a shard's start and end")
    };
    run["status"]["attempts"][0]["shards"]
        .as_array()
        .map(|shards| {
            shards
                .iter()
                .map(|s| (at(&s["finishedAt"]) - at(&s["startedAt"])).num_milliseconds() as f64 / 1000.0)
                .collect()
        })
        .unwrap_or_default()
}

fn balance(times: &[f64]) -> f64 {
    let mean = times.iter().sum::<f64>() / times.len().max(1) as f64;
    times.iter().copied().fold(0.0, f64::max) / mean
}

fn main() {
    tokio::runtime::Runtime::new()
        .expect("a tokio runtime")
        .block_on(bench());
}

async fn bench() {
    let full = std::env::args().any(|a| a == "--bench");
    let suite = if full { &FULL } else { &SMOKE };
    let tmp = tempfile::tempdir().expect("a temp dir");
    let suite_dir = tmp.path().join("suite");
    suite.write(&suite_dir);
    let config_dir = tmp.path().join("config");
    std::fs::create_dir_all(&config_dir).expect("create the config directory");
    config(&config_dir, &suite_dir);
    let server = Server::start(&config_dir, &tmp.path().join("data")).await;
    println!(
        "suite: {} slow + {} fast tests, {:.0} s of test time on one worker",
        suite.slow.len(),
        suite.fast,
        suite.total()
    );

    if !full {
        let (two, took) = server.time_to_verdict("sharded", None).await;
        assert_eq!(two["status"]["verdict"], "Succeeded", "{two:#}");
        let shards = two["status"]["attempts"][0]["shards"]
            .as_array()
            .map_or(0, Vec::len);
        assert_eq!(shards, 2, "split in two: {two:#}");
        println!("smoke: shards: 2 run Succeeded in {:.1} s", took.as_secs_f64());
        return;
    }
    // The same service: the first run (one shard, by its own spec) records the durations
    // the second (two shards, the service's) is balanced by.
    let (one, t1) = server.time_to_verdict("sharded", Some(1)).await;
    let (two, t2) = server.time_to_verdict("sharded", None).await;
    // The peer is the point of the comparison: without it the benchmark says nothing.
    let xdist_available = Command::new("python3")
        .args(["-c", "import xdist"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        xdist_available,
        "pytest-xdist is not installed: pip install -r tests/requirements.txt"
    );
    let (xdist_run, tx) = server.time_to_verdict("xdist", None).await;

    for (name, run) in [("shards: 1", &one), ("shards: 2", &two)] {
        assert_eq!(run["status"]["verdict"], "Succeeded", "{name}: {run:#}");
    }
    let shards = two["status"]["attempts"][0]["shards"]
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(shards, 2, "the shards: 2 run was split in two: {two:#}");
    let times = shard_times(&two);
    let planned: Vec<f64> = two["status"]["attempts"][0]["shards"]
        .as_array()
        .map(|s| s.iter().filter_map(|x| x["expectedSeconds"].as_f64()).collect())
        .unwrap_or_default();

    let secs = |d: Duration| d.as_secs_f64();
    println!("time to verdict, shards: 1            {:>7.1} s", secs(t1));
    println!("time to verdict, shards: 2            {:>7.1} s", secs(t2));
    assert_eq!(
        xdist_run["status"]["verdict"], "Succeeded",
        "pytest -n 2: {xdist_run:#}"
    );
    println!("time to verdict, shards: 1, pytest -n 2 {:>5.1} s", secs(tx));
    println!(
        "ratio shards: 2 / shards: 1           {:>7.2}",
        secs(t2) / secs(t1)
    );
    println!(
        "ratio shards: 2 / pytest -n 2         {:>7.2}",
        secs(t2) / secs(tx)
    );
    println!(
        "ratio pytest -n 2 / shards: 1         {:>7.2}",
        secs(tx) / secs(t1)
    );
    println!(
        "shard wall times {:?} s: balance (slowest / mean) {:.3}",
        times
            .iter()
            .map(|t| (t * 10.0).round() / 10.0)
            .collect::<Vec<_>>(),
        balance(&times)
    );
    if planned.len() == 2 {
        println!(
            "planned from recorded durations {planned:?} s: balance {:.3}",
            balance(&planned)
        );
    }
}
