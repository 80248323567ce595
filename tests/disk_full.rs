//! A full disk, for real: the data directory is a small tmpfs that the test mounts (this
//! needs root, as CI runs) and fills while a run is going. Nothing may be stranded: the run
//! waits while the store refuses writes and reaches its verdict once there is room again,
//! without a restart; writes are answered 507 and `/readyz` 503 meanwhile.

mod support;

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use support::Server;

/// A tmpfs of a fixed size, unmounted on drop.
struct SmallDisk {
    path: PathBuf,
    _tmp: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("disk");
        std::fs::create_dir(&path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .output()
            .expect("mount runs");
        assert!(
            out.status.success(),
            "this test mounts a tmpfs and needs root (CI runs as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk { path, _tmp: tmp }
    }

    /// Writes a file until the disk refuses more; answers its path.
    fn fill(&self) -> PathBuf {
        let filler = self.path.join("filler");
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 16 * 1024];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// A server whose data directory is on a fresh 4 MiB disk, with attempt directories (logs,
/// JUnit) on the big disk: only the store is starved, as when the database's disk fills up
/// while the tests' output goes elsewhere. Answers the disk, the big directory (kept while the
/// server runs), the server and its data directory.
async fn serve_on_small_disk(
    config: Option<&std::path::Path>,
) -> (SmallDisk, tempfile::TempDir, Server, String) {
    let disk = SmallDisk::mount("4m");
    let data = disk.path.join("data");
    std::fs::create_dir(&data).unwrap();
    let big = tempfile::tempdir().unwrap();
    std::fs::create_dir(big.path().join("runs")).unwrap();
    std::os::unix::fs::symlink(big.path().join("runs"), data.join("runs")).unwrap();
    let data_env = data.to_string_lossy().to_string();
    let server = Server::start_with(config, &[("TOMATO_DATA_DIR", data_env.as_str())]).await;
    (disk, big, server, data_env)
}

async fn readyz(server: &Server) -> (u16, String) {
    server.get_text("/readyz").await
}

async fn wait_for<F, Fut>(what: &str, timeout: Duration, server: &Server, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !f().await {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen in {timeout:?}:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_run_whose_end_cannot_be_stored_reaches_its_verdict_once_the_disk_has_room() {
    let (disk, _big, mut server, data_env) = serve_on_small_disk(None).await;

    let id = server.run_now("service=demo&stand=localhost&category=slow").await;
    wait_for(
        "the attempt's start recorded",
        Duration::from_secs(30),
        &server,
        || async {
            server.status(&id).await["attempts"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
        },
    )
    .await;
    let filler = disk.fill();

    // The attempt (one 5-second test) ends; its results cannot be stored.
    wait_for(
        "/readyz turning 503",
        Duration::from_secs(60),
        &server,
        || async { readyz(&server).await.0 == 503 },
    )
    .await;
    let (_, why) = readyz(&server).await;
    assert!(why.contains("the data directory is full"), "{why}");
    assert!(why.contains(&data_env), "{why}");

    // A write is refused with 507, and nothing is queued.
    let (code, body) = server
        .post("/api/run_now?service=demo&stand=localhost&category=slow")
        .await;
    assert_eq!(code, 507, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .starts_with("the data directory is full ("),
        "{body}"
    );
    let (_, runs) = server.get("/api/v1/runs?service=demo").await;
    assert_eq!(runs["items"].as_array().map(Vec::len), Some(1), "{runs}");
    // The run is not lost: it still holds its slot, waiting to be recorded.
    assert_eq!(server.status(&id).await["phase"], "Running");

    // Room again: the run reaches its verdict without a restart, and the server is ready.
    std::fs::remove_file(&filler).unwrap();
    let done = server.wait_finished(&id, Duration::from_secs(60)).await;
    assert_eq!(done["phase"], "Succeeded", "{done}\n{}", server.log());
    wait_for(
        "/readyz turning 200",
        Duration::from_secs(10),
        &server,
        || async { readyz(&server).await.0 == 200 },
    )
    .await;

    // One episode, said once in the log however many requests and retries it saw.
    let log = server.log();
    assert_eq!(
        log.matches("the store cannot write").count(),
        1,
        "the episode is logged once:\n{log}"
    );
    assert!(log.contains("the data directory takes writes again"), "{log}");
    server.terminate().await;
}

/// A service whose attempt writes no report: its end goes straight to the run's record,
/// with no results to store first.
const NAP_SERVICE: &str = r#"
description: Sleeps three seconds and writes no report
stands: {pattern: 'localhost'}
launch:
  command: [sleep, "{tests}"]
packs:
  nap: {tests: ["3"]}
"#;

#[tokio::test]
async fn an_attempt_end_the_store_refused_is_recorded_once_there_is_room() {
    let config = support::config_with(&[("nap.yaml", NAP_SERVICE)]);
    let (disk, _big, mut server, _) = serve_on_small_disk(Some(config.path())).await;

    let id = server.run_now("service=nap&stand=localhost").await;
    // Filled once the attempt is recorded as started (admission writes Running a moment
    // before the launch is recorded).
    wait_for(
        "the attempt's start recorded",
        Duration::from_secs(30),
        &server,
        || async {
            server.status(&id).await["attempts"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
        },
    )
    .await;
    let filler = disk.fill();
    wait_for(
        "the attempt's end refused",
        Duration::from_secs(30),
        &server,
        || async { server.log().contains("recording an attempt's end failed") },
    )
    .await;
    assert_eq!(readyz(&server).await.0, 503);
    // Several tries later, the run is still there and Running: kept, not forgotten.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(server.status(&id).await["phase"], "Running");

    std::fs::remove_file(&filler).unwrap();
    let done = server.wait_finished(&id, Duration::from_secs(30)).await;
    // No report: the core's verdict for it, recorded late but recorded.
    assert_eq!(done["phase"], "Error", "{done}");
    let log = server.log();
    assert_eq!(
        log.matches("recording an attempt's end failed").count(),
        1,
        "{log}"
    );
    assert!(log.contains("stored what the store had refused"), "{log}");
    server.terminate().await;
}
