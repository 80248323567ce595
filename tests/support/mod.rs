//! Test support: the real `tomato` binary on a free port with its own data directory; for
//! operator mode, the real Kubernetes control plane of `tests/cluster/up` ([`cluster`]) and a
//! harness over it ([`operator`]); a throwaway PostgreSQL cluster ([`postgres`]).
#![allow(dead_code)]

pub mod cluster;
pub mod operator;
pub mod postgres;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// A running `tomato serve`.
pub struct Server {
    pub url: String,
    pub data_dir: PathBuf,
    pub config_dir: PathBuf,
    pub log_path: PathBuf,
    env: Vec<(String, String)>,
    child: Option<Child>,
    port: u16,
    _tmp: tempfile::TempDir,
    pub client: reqwest::Client,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A packs_config directory: the shipped examples plus extra service files.
pub fn config_with(extra: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for svc in ["demo", "demo-py"] {
        std::fs::copy(
            format!("{REPO}/packs_config/{svc}.yaml"),
            dir.path().join(format!("{svc}.yaml")),
        )
        .unwrap();
        std::os::unix::fs::symlink(format!("{REPO}/packs_config/{svc}"), dir.path().join(svc)).unwrap();
    }
    for (name, text) in extra {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

/// A packs_config with the `allure-shop` service (tests/allure_shop: pytest writing Allure
/// results through allure-pytest) beside the shipped examples.
pub fn allure_shop_config() -> tempfile::TempDir {
    let config = config_with(&[("allure-shop.yaml", include_str!("../allure_shop/service.yaml"))]);
    std::os::unix::fs::symlink(
        format!("{REPO}/tests/allure_shop"),
        config.path().join("allure-shop"),
    )
    .unwrap();
    config
}

impl Server {
    /// Starts the server over the shipped packs_config.
    pub async fn start() -> Server {
        Self::start_with(None, &[]).await
    }

    /// Starts it over `config` (default: the shipped packs_config) with extra environment.
    pub async fn start_with(config: Option<&Path>, env: &[(&str, &str)]) -> Server {
        let tmp = tempfile::tempdir().unwrap();
        let data_dir = tmp.path().join("data");
        let mut s = Server {
            url: String::new(),
            log_path: tmp.path().join("server.log"),
            data_dir,
            config_dir: config.map_or_else(
                || PathBuf::from(format!("{REPO}/packs_config")),
                Path::to_path_buf,
            ),
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            child: None,
            port: free_port(),
            _tmp: tmp,
            client: reqwest::Client::new(),
        };
        s.url = format!("http://127.0.0.1:{}", s.port);
        s.spawn().await;
        s
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tomato"));
        cmd.arg("serve")
            .env("TOMATO_LISTEN", format!("127.0.0.1:{}", self.port))
            .env("TOMATO_DATA_DIR", &self.data_dir)
            .env("TOMATO_CONFIG", &self.config_dir)
            .env("TOMATO_LOG", "info,tomato=debug")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log));
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().expect("the tomato binary starts"));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = self.client.get(format!("{}/healthz", self.url)).send().await
                && r.status() == 200
            {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("tomato exited with {status} during start-up:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "tomato did not answer /healthz:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// `kill -9`: no chance to clean up.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM, as Kubernetes or systemd stops it, and waits (at most 60 s) until it exited.
    pub async fn terminate(&mut self) {
        let Some(mut c) = self.child.take() else { return };
        let pid = nix::unistd::Pid::from_raw(c.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while c.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "tomato did not stop on SIGTERM:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts it again over the same data directory after [`Server::terminate`].
    pub async fn start_again(&mut self) {
        self.spawn().await;
    }

    /// Starts the server again over the same data directory.
    pub async fn restart(&mut self) {
        self.kill9();
        self.spawn().await;
    }

    pub async fn post(&self, path_and_query: &str) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}{path_and_query}", self.url))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}{path}", self.url))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> (u16, Value) {
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path_and_query: &str) -> (u16, Value) {
        let r = self
            .client
            .get(format!("{}{path_and_query}", self.url))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn get_text(&self, path_and_query: &str) -> (u16, String) {
        let r = self
            .client
            .get(format!("{}{path_and_query}", self.url))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// Queues a run through the legacy handle and returns its id.
    pub async fn run_now(&self, query: &str) -> String {
        let (status, body) = self.post(&format!("/api/run_now?{query}")).await;
        assert_eq!(status, 200, "run_now?{query} answered {body}");
        body["run_id"].as_str().unwrap().to_string()
    }

    pub async fn status(&self, id: &str) -> Value {
        let (code, body) = self.get(&format!("/api/status?run_id={id}")).await;
        assert_eq!(code, 200, "{body}");
        body
    }

    /// Polls `/api/status` until `done(status)`.
    pub async fn wait_until(
        &self,
        id: &str,
        what: &str,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let st = self.status(id).await;
            if done(&st) {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "run {id} not {what} after {timeout:?}: {st:#}\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the run is in one of the terminal phases.
    pub async fn wait_finished(&self, id: &str, timeout: Duration) -> Value {
        self.wait_until(id, "finished", timeout, |st| {
            matches!(
                st["phase"].as_str(),
                Some("Succeeded" | "Failed" | "Error" | "Cancelled")
            )
        })
        .await
    }

    pub async fn wait_phase(&self, id: &str, phase: &str, timeout: Duration) -> Value {
        self.wait_until(id, phase, timeout, |st| st["phase"] == phase)
            .await
    }

    /// Merged tests of a run by id → verdict.
    pub async fn verdicts(&self, id: &str) -> HashMap<String, String> {
        self.per_test(id, "/verdict")
            .await
            .into_iter()
            .map(|(test, verdict)| (test, verdict.unwrap_or_default()))
            .collect()
    }

    /// Merged tests of a run by id → the string at `pointer` (a JSON pointer) in each test of
    /// `/api/v1/runs/{id}/tests`, `None` where there is none.
    pub async fn per_test(&self, id: &str, pointer: &str) -> HashMap<String, Option<String>> {
        let (code, tests) = self.get(&format!("/api/v1/runs/{id}/tests")).await;
        assert_eq!(code, 200, "{tests}");
        tests
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["id"].as_str().unwrap().to_string(),
                    t.pointer(pointer).and_then(Value::as_str).map(str::to_string),
                )
            })
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
        // Test processes of this server, if any survived it.
        for pid in processes_with_env("TOMATO_OWNER", None) {
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            let data = self.data_dir.to_string_lossy().to_string();
            if String::from_utf8_lossy(&environ).contains(&data) {
                let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            }
        }
    }
}

/// Pids of processes whose environment has `name` (with `value`, when given).
pub fn processes_with_env(name: &str, value: Option<&str>) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(environ) = std::fs::read(e.path().join("environ")) else {
            continue;
        };
        let found = environ.split(|b| *b == 0).any(|kv| match value {
            Some(v) => kv == format!("{name}={v}").as_bytes(),
            None => kv.starts_with(format!("{name}=").as_bytes()),
        });
        // Zombies have an empty environ; they are gone for our purposes.
        if found && !is_zombie(pid) {
            out.push(pid);
        }
    }
    out
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z"))
}
