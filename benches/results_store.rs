//! The results store at a team's scale (`cargo bench --bench results_store`): both
//! implementations — the SQLite file and PostgreSQL (a throwaway cluster started here, as the
//! tests start it) — filled with the same runs of the same tests, and the reads history needs,
//! each as a ratio to a single-row primary-key lookup (`run(name)`) in the same store and run:
//!
//! - history of one test over its last 200 runs (`test_history`, limit 200);
//! - failures of one service in the last 7 days (`failures_since`, first 1,000);
//! - the run list's first page (`list_runs`, 50 of one service);
//! - a run's test list (`results` of one run: every test of it);
//!
//! and the reads failure memory makes, each with the pure work that follows it, as the API does
//! it (`tomato::history`):
//! - a test's page: its last 50 runs (`test_history`) and their timeline (rates, durations,
//!   signatures);
//! - a run's novelty tags: the service's failures of the 90 days before the newest run
//!   (`failures_since`, at most 50,000), the run's and its previous comparable run's tests and
//!   classification, and the tagging;
//! - a comparison of the newest run with its previous comparable one: both runs' tests and
//!   classifications, merged and compared.
//!
//! Each is measured after the first size is filled and again after the second (same process,
//! same stores), and its growth between the two printed: index lookups stay flat, scans grow
//! with history. Runs are created 30 a day (the team), two services alternating, three
//! stands, 3 % of tests failing (with their classification stored), so "the last 7 days" holds
//! the same number of runs at both sizes. The database size per 1,000 test results is printed
//! too (SQLite: the file after a WAL checkpoint; PostgreSQL: `pg_database_size` less the empty
//! database's).
//!
//! Full mode fills 1,000 then 10,000 runs of 1,000 tests (10 million rows per store: minutes,
//! and several GB of disk); `RESULTS_BENCH_RUNS=1000,5000` and `RESULTS_BENCH_TESTS=500` choose
//! other sizes. Run without `--bench` (as `cargo test --bench results_store` does), it is a
//! smoke test, seconds long: 100 then 200 runs of 50 tests, every read checked for its answer.

#[path = "../tests/support/postgres.rs"]
#[allow(dead_code)]
mod pg;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tomato::classify::{ByTest, Classified};
use tomato::history::{compare, timeline};
use tomato::results::{AttemptResult, Case, CaseStatus, Signature};
use tomato::results::{MergedTest, Outcome, PastFailure};
use tomato::store::database_url::DatabaseUrl;
use tomato::store::results::{HistoryQuery, Limits, ResultsStore, RunIdentity, RunPage};
use tomato::store::{PgStore, SqliteStore};

const SERVICES: [&str; 2] = ["shop", "billing"];
const STANDS: [&str; 3] = ["stage-1", "stage-2", "preprod"];
const RUNS_PER_DAY: i64 = 30;
/// One test in this many fails.
const FAIL_EVERY: usize = 33;

struct Sizes {
    checkpoints: Vec<usize>,
    tests: usize,
    /// Repetitions of each read (the median is reported).
    reps: usize,
}

fn sizes(bench: bool) -> Sizes {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let checkpoints = env("RESULTS_BENCH_RUNS")
        .map(|v| {
            v.split(',')
                .map(|n| {
                    n.trim()
                        .parse()
                        .expect("RESULTS_BENCH_RUNS: comma-separated run counts")
                })
                .collect()
        })
        .unwrap_or(if bench {
            vec![1_000, 10_000]
        } else {
            vec![100, 200]
        });
    let tests = env("RESULTS_BENCH_TESTS")
        .map(|v| v.parse().expect("RESULTS_BENCH_TESTS: a number"))
        .unwrap_or(if bench { 1_000 } else { 50 });
    Sizes {
        checkpoints,
        tests,
        reps: if bench { 41 } else { 5 },
    }
}

/// A store under test and how to measure its size.
struct Subject {
    store: Arc<dyn ResultsStore>,
    sizer: Sizer,
    _keep: Box<dyn std::any::Any>,
}

/// How a store's size on disk is read.
enum Sizer {
    /// The database file.
    Sqlite(std::path::PathBuf),
    /// `pg_database_size`, less the empty database's.
    Postgres(PgStore, u64),
}

impl Sizer {
    async fn bytes(&self) -> u64 {
        match self {
            Sizer::Sqlite(db) => {
                // Fold the WAL into the file first, so the file is the whole database.
                let conn = rusqlite::Connection::open(db).expect("open the file");
                conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                    .expect("checkpoint");
                std::fs::metadata(db).map(|m| m.len()).unwrap_or(0)
            }
            Sizer::Postgres(store, empty) => store
                .database_bytes()
                .await
                .expect("pg_database_size")
                .saturating_sub(*empty),
        }
    }
}

fn sqlite() -> Subject {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = SqliteStore::open(dir.path()).expect("open the SQLite store");
    Subject {
        store: Arc::new(store),
        sizer: Sizer::Sqlite(dir.path().join("tomato.db")),
        _keep: Box::new(dir),
    }
}

async fn postgres() -> Subject {
    // Extra server settings for an experiment (`RESULTS_BENCH_PG=shared_buffers=1GB,...`);
    // the figures in the README are with PostgreSQL's defaults.
    let extra = std::env::var("RESULTS_BENCH_PG").unwrap_or_default();
    let settings: Vec<&str> = extra.split(',').filter(|s| !s.is_empty()).collect();
    let cluster = pg::PgCluster::start_with(&settings);
    let url = DatabaseUrl::parse(&cluster.database().await).expect("the test URL");
    let store = PgStore::connect(&url, 4, Limits::default())
        .await
        .expect("connect to the test cluster");
    let empty = store.database_bytes().await.expect("the database size");
    Subject {
        store: Arc::new(store.clone()),
        sizer: Sizer::Postgres(store, empty),
        _keep: Box::new(cluster),
    }
}

fn run_name(i: usize) -> String {
    format!("run-{i:06}")
}

fn test_id(j: usize) -> String {
    format!("tests/test_area_{:02}.py::TestFlow::test_case_{j:05}", j % 40)
}

/// Run `i`: its identity, its results and its classification.
fn run(i: usize, tests: usize, t0: DateTime<Utc>) -> (RunIdentity, Vec<AttemptResult>, ByTest) {
    let identity = RunIdentity {
        name: run_name(i),
        uid: format!("uid-{i}"),
        service: SERVICES[i % SERVICES.len()].into(),
        stand: STANDS[i % STANDS.len()].into(),
        created: t0 + chrono::Duration::seconds(i as i64 * 86_400 / RUNS_PER_DAY),
    };
    let mut results = Vec::with_capacity(tests);
    let mut categories = ByTest::new();
    for j in 0..tests {
        // A different few tests fail in each run.
        let failed = (i * 7 + j).is_multiple_of(FAIL_EVERY);
        let (status, message, trace) = if failed {
            let message = format!(
                "AssertionError: expected status 200 but was 500 (order {})",
                i * 31 + j
            );
            let trace = format!(
                "Traceback (most recent call last):\n  File \"tests/test_area_{:02}.py\", line {}, in test_case_{j:05}\n    assert r.status == 200\nAssertionError",
                j % 40,
                40 + j % 200
            );
            categories.insert(
                test_id(j),
                Classified {
                    category: "Product defects".into(),
                    signature: Some(Signature::of(&message, &trace)),
                },
            );
            (CaseStatus::Failed, message, trace)
        } else {
            (CaseStatus::Passed, String::new(), String::new())
        };
        results.push(AttemptResult {
            attempt: 1,
            id: test_id(j),
            case: Case {
                suites: vec![format!("area {:02}", j % 40)],
                classname: format!("tests.test_area_{:02}.TestFlow", j % 40),
                name: format!("test_case_{j:05}"),
                file: Some(format!("tests/test_area_{:02}.py", j % 40)),
                time_ms: Some(((i * 13 + j * 7) % 900 + 50) as u64),
                status,
                message,
                kind: if failed {
                    "AssertionError".into()
                } else {
                    String::new()
                },
                trace,
                system_out: String::new(),
                system_err: String::new(),
            },
        });
    }
    (identity, results, categories)
}

/// Fills runs `from..to`.
async fn fill(store: &dyn ResultsStore, from: usize, to: usize, tests: usize, t0: DateTime<Utc>) -> Duration {
    let started = Instant::now();
    for i in from..to {
        let (identity, results, categories) = run(i, tests, t0);
        store.record_run(&identity).await.expect("record a run");
        store
            .put_results(&identity.name, 1, results)
            .await
            .expect("put results");
        store
            .put_categories(&identity.name, categories)
            .await
            .expect("put categories");
    }
    started.elapsed()
}

/// The median of `reps` timings of `f`, and its last answer's size.
async fn time<F, Fut>(reps: usize, mut f: F) -> (Duration, usize)
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = usize>,
{
    let mut times = Vec::with_capacity(reps);
    let mut n = 0;
    f(0).await; // warm the caches and the prepared statements
    for r in 0..reps {
        let started = Instant::now();
        n = f(r).await;
        times.push(started.elapsed());
    }
    times.sort();
    (times[times.len() / 2], n)
}

/// One checkpoint's figures for one store.
struct Figures {
    runs: usize,
    pk: Duration,
    /// (name, median, rows answered)
    reads: Vec<(&'static str, Duration, usize)>,
    bytes_per_1000: f64,
    fill: Duration,
}

async fn measure(s: &Subject, runs: usize, sizes: &Sizes, fill_time: Duration, t0: DateTime<Utc>) -> Figures {
    let store = &*s.store;
    let newest = t0 + chrono::Duration::seconds((runs as i64 - 1) * 86_400 / RUNS_PER_DAY);
    let (pk, found) = time(sizes.reps * 4, |r| {
        let name = run_name((r * 7_919) % runs);
        async move { store.run(&name).await.expect("run").map_or(0, |_| 1) }
    })
    .await;
    assert_eq!(found, 1, "the primary-key lookup finds its run");
    let mut reads = Vec::new();
    let history = time(sizes.reps, |r| {
        let query = HistoryQuery {
            service: SERVICES[0].into(),
            test_id: test_id((r * 37) % sizes.tests),
            stand: None,
            limit: 200,
        };
        async move { store.test_history(&query).await.expect("history").len() }
    })
    .await;
    assert_eq!(
        history.1,
        200.min(runs / SERVICES.len()),
        "history of the last 200 runs"
    );
    reads.push(("history 200", history.0, history.1));
    let since = newest - chrono::Duration::days(7);
    let failures = time(sizes.reps, |_| async move {
        store
            .failures_since(SERVICES[0], since, None, 1_000)
            .await
            .expect("failures")
            .len()
    })
    .await;
    assert!(failures.1 > 0, "a week of runs has failures");
    reads.push(("failures 7d", failures.0, failures.1));
    let page = time(sizes.reps, |_| async move {
        let page = RunPage {
            service: Some(SERVICES[0].into()),
            before: None,
            limit: 50,
        };
        store.list_runs(&page).await.expect("list runs").len()
    })
    .await;
    assert_eq!(page.1, 50.min(runs / SERVICES.len()), "a page of runs");
    reads.push(("run list page", page.0, page.1));
    let tests = time(sizes.reps, |r| {
        let name = run_name((r * 7_919) % runs);
        async move { store.results(&name).await.expect("results").len() }
    })
    .await;
    assert_eq!(tests.1, sizes.tests, "a run's test list");
    reads.push(("run's tests", tests.0, tests.1));

    // Failure memory. The newest run and its previous comparable one (same service: two back).
    let (newest_run, previous_run) = (run_name(runs - 1), run_name(runs - 3));
    let test_page = time(sizes.reps, |r| {
        let query = HistoryQuery {
            service: SERVICES[(runs - 1) % SERVICES.len()].into(),
            test_id: test_id((r * 37) % sizes.tests),
            stand: None,
            limit: 50 * 10,
        };
        async move {
            let entries = store.test_history(&query).await.expect("history");
            timeline::timeline(&entries, 50).runs.len()
        }
    })
    .await;
    assert_eq!(
        test_page.1,
        50.min(runs / SERVICES.len()),
        "a test page of 50 runs"
    );
    reads.push(("test page", test_page.0, test_page.1));
    let novelty = time(sizes.reps, |_| {
        let (newest_run, previous_run) = (newest_run.clone(), previous_run.clone());
        async move {
            let service = SERVICES[(runs - 1) % SERVICES.len()];
            let window = newest - chrono::Duration::days(tomato::history::WINDOW_DAYS);
            let history: Vec<PastFailure> = store
                .failures_since(service, window, Some(newest), tomato::history::MAX_FAILURES)
                .await
                .expect("failures")
                .into_iter()
                .map(|f| PastFailure {
                    run: f.run,
                    at: f.created,
                    stand: f.stand,
                    test: f.test_id,
                    signature: f.signature,
                })
                .collect();
            let (tests, classified) = side(store, &newest_run).await;
            let (before, _) = side(store, &previous_run).await;
            let outcomes = outcomes(&tests, Some(&classified));
            let previous = outcomes_of(&before);
            let tags = tomato::results::tag_novelty(&outcomes, &history, Some(&previous));
            tags.failures.len() + tags.fixed.len()
        }
    })
    .await;
    assert!(novelty.1 > 0, "the newest run has failures to tag");
    reads.push(("novelty tags", novelty.0, novelty.1));
    let comparison = time(sizes.reps, |_| {
        let (newest_run, previous_run) = (newest_run.clone(), previous_run.clone());
        async move {
            let (after, after_classified) = side(store, &newest_run).await;
            let (before, before_classified) = side(store, &previous_run).await;
            let c = compare::compare(
                &compare::Side {
                    tests: &before,
                    signatures: &before_classified,
                },
                &compare::Side {
                    tests: &after,
                    signatures: &after_classified,
                },
                50.0,
            );
            c.newly_failing.len() + c.newly_passing.len() + c.still_failing.len()
        }
    })
    .await;
    assert!(comparison.1 > 0, "two runs failing different tests differ");
    reads.push(("comparison", comparison.0, comparison.1));
    let bytes = s.sizer.bytes().await;
    Figures {
        runs,
        pk,
        reads,
        bytes_per_1000: bytes as f64 / (runs * sizes.tests) as f64 * 1_000.0,
        fill: fill_time,
    }
}

/// A run's merged tests and classification, as the API reads them for history.
async fn side(store: &dyn ResultsStore, run: &str) -> (Vec<MergedTest>, ByTest) {
    let results = store.results(run).await.expect("results");
    let tests = tomato::results::merge(results, |_, _| true);
    (tests, store.categories(run).await.expect("categories"))
}

fn outcomes(tests: &[MergedTest], classified: Option<&ByTest>) -> Vec<Outcome> {
    tests
        .iter()
        .map(|t| Outcome {
            test: t.id.clone(),
            verdict: t.verdict,
            signature: classified
                .and_then(|c| c.get(&t.id))
                .and_then(|c| c.signature.clone()),
        })
        .collect()
}

fn outcomes_of(tests: &[MergedTest]) -> Vec<Outcome> {
    outcomes(tests, None)
}

fn micros(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

fn ratio(d: Duration, pk: Duration) -> f64 {
    d.as_secs_f64() / pk.as_secs_f64().max(1e-9)
}

fn print(store: &str, figures: &[Figures], tests: usize) {
    println!("\n{store}");
    let Some(first) = figures.first() else { return };
    let mut header = format!("  {:>7} {:>10}", "runs", "pk lookup");
    for (name, _, _) in &first.reads {
        header.push_str(&format!(" {name:>26}"));
    }
    println!("{header} {:>14} {:>10}", "bytes/1k res.", "fill");
    for f in figures {
        let mut line = format!("  {:>7} {:>10}", f.runs, micros(f.pk));
        for (_, d, n) in &f.reads {
            line.push_str(&format!(
                " {:>26}",
                format!("{:.1}x ({}, {n})", ratio(*d, f.pk), micros(*d))
            ));
        }
        println!("{line} {:>14.0} {:>9.0}s", f.bytes_per_1000, f.fill.as_secs_f64());
    }
    if let [first, .., last] = figures {
        let growth: Vec<String> = (0..first.reads.len())
            .map(|i| {
                let g = ratio(last.reads[i].1, last.pk) / ratio(first.reads[i].1, first.pk);
                format!("{} {:.2}x", first.reads[i].0, g)
            })
            .collect();
        println!(
            "  growth of each ratio from {} to {} runs ({} test results per run): {}",
            first.runs,
            last.runs,
            tests,
            growth.join(", ")
        );
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let sizes = sizes(bench);
    let t0 = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .expect("a fixed start")
        .with_timezone(&Utc);
    println!(
        "results store: {} runs of {} tests ({} mode), reads as the ratio of their median to a primary-key lookup's",
        sizes
            .checkpoints
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(" then "),
        sizes.tests,
        if bench { "full" } else { "smoke" }
    );
    for subject in [sqlite(), postgres().await] {
        let mut figures = Vec::new();
        let mut filled = 0;
        for &runs in &sizes.checkpoints {
            let took = fill(&*subject.store, filled, runs, sizes.tests, t0).await;
            filled = runs;
            figures.push(measure(&subject, runs, &sizes, took, t0).await);
        }
        print(subject.store.backend(), &figures, sizes.tests);
    }
}
