//! Test support for reports: a real SMTP server (aiosmtpd, from PyPI) in a Python
//! subprocess, an in-process HTTP server that stands in for Jira, Yandex Tracker and webhook
//! receivers, and headless Chromium for screenshots.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const REPO: &str = env!("CARGO_MANIFEST_DIR");

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// aiosmtpd on 127.0.0.1, writing each received message (raw and parsed) into a directory.
pub struct SmtpSink {
    pub port: u16,
    pub dir: PathBuf,
    child: Child,
    _tmp: tempfile::TempDir,
}

impl SmtpSink {
    /// Starts it on `port`; with `auth`, it requires that user and password.
    pub fn start(port: u16, auth: Option<(&str, &str)>) -> SmtpSink {
        Self::start_refusing(port, auth, &[])
    }

    /// [`SmtpSink::start`], refusing the recipients `reject` with 550 (unknown mailbox).
    pub fn start_refusing(port: u16, auth: Option<(&str, &str)>, reject: &[&str]) -> SmtpSink {
        use std::io::{BufRead, BufReader};
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("mail");
        let mut cmd = Command::new("python3");
        cmd.arg(format!("{REPO}/tests/support/smtp_sink.py"))
            .arg("--port")
            .arg(port.to_string())
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some((user, password)) = auth {
            cmd.arg("--user").arg(user).env("SINK_PASSWORD", password);
        }
        for r in reject {
            cmd.arg("--reject").arg(r);
        }
        let mut child = cmd
            .spawn()
            .expect("python3 runs (pip install -r tests/requirements.txt for aiosmtpd)");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        assert!(
            line.starts_with("READY"),
            "the SMTP sink did not start (is aiosmtpd installed? pip install -r tests/requirements.txt): {line:?}"
        );
        SmtpSink {
            port,
            dir,
            child,
            _tmp: tmp,
        }
    }

    /// Every message received so far, in order (the sink's parsed JSON).
    pub fn messages(&self) -> Vec<Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|e| e == "json"));
        files.sort();
        files
            .iter()
            .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
            .collect()
    }

    /// Waits until `n` messages arrived, then a little longer to be sure no more follow.
    pub async fn wait_messages(&self, n: usize, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        while self.messages().len() < n {
            assert!(
                Instant::now() < deadline,
                "{n} message(s) did not arrive in {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.messages()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The text of a message's part of the given content type.
pub fn part<'a>(message: &'a Value, content_type: &str) -> &'a str {
    message["parts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["content_type"] == content_type)
        .and_then(|p| p["body"].as_str())
        .unwrap_or_else(|| panic!("no {content_type} part in {message:#}"))
}

/// One request the fake HTTP server received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Header names in lower case.
    pub headers: HashMap<String, String>,
    pub body: Value,
    /// The status it was answered with.
    pub status: u16,
}

#[derive(Default)]
struct FakeState {
    requests: Mutex<Vec<Recorded>>,
    /// Statuses to answer a path with, in order, before the default.
    scripted: Mutex<HashMap<String, VecDeque<u16>>>,
    status: AtomicU16,
    /// Answer bodies quote the request's `Authorization` header, as a careless server might.
    echo_auth: std::sync::atomic::AtomicBool,
    /// Milliseconds to wait before answering (the request is recorded at once).
    delay_ms: std::sync::atomic::AtomicU64,
}

/// An in-process HTTP server that records every request and answers with a chosen status.
/// It stands in for Jira, Yandex Tracker and webhook receivers, which cannot run here.
pub struct FakeHttp {
    pub url: String,
    state: Arc<FakeState>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeHttp {
    /// Starts it, answering every request with `status`.
    pub async fn start(status: u16) -> FakeHttp {
        use axum::extract::{Request, State};
        let state = Arc::new(FakeState::default());
        state.status.store(status, Ordering::SeqCst);
        async fn record(
            State(state): State<Arc<FakeState>>,
            req: Request,
        ) -> (axum::http::StatusCode, String) {
            let method = req.method().to_string();
            let path = req.uri().path().to_string();
            let headers: HashMap<String, String> = req
                .headers()
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or_default().to_string()))
                .collect();
            let bytes = axum::body::to_bytes(req.into_body(), 1 << 20)
                .await
                .unwrap_or_default();
            let body = serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
            let status = state
                .scripted
                .lock()
                .unwrap()
                .get_mut(&path)
                .and_then(VecDeque::pop_front)
                .unwrap_or_else(|| state.status.load(Ordering::SeqCst));
            let answer = if state.echo_auth.load(Ordering::SeqCst) {
                format!(
                    "{{\"errorMessages\": [\"credentials {} are not valid\"]}}",
                    headers.get("authorization").cloned().unwrap_or_default()
                )
            } else {
                "{}".to_string()
            };
            state.requests.lock().unwrap().push(Recorded {
                method,
                path,
                headers,
                body,
                status,
            });
            let delay = state.delay_ms.load(Ordering::SeqCst);
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            (axum::http::StatusCode::from_u16(status).unwrap(), answer)
        }
        let app = axum::Router::new().fallback(record).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeHttp { url, state, task }
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Requests to `path`.
    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| r.path == path).collect()
    }

    /// From now on, answer with `status`.
    pub fn set_status(&self, status: u16) {
        self.state.status.store(status, Ordering::SeqCst);
    }

    /// Answer the next requests to `path` with these statuses, then the default.
    pub fn script(&self, path: &str, statuses: &[u16]) {
        self.state
            .scripted
            .lock()
            .unwrap()
            .insert(path.to_string(), statuses.iter().copied().collect());
    }

    /// Answer every request `delay` after receiving it.
    pub fn set_delay(&self, delay: Duration) {
        self.state
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Quote the request's `Authorization` header in every answer.
    pub fn echo_authorization(&self) {
        self.state.echo_auth.store(true, Ordering::SeqCst);
    }
}

impl Drop for FakeHttp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Where tests leave files for people to look at (gitignored).
pub fn artifacts() -> PathBuf {
    let dir = PathBuf::from(format!("{REPO}/tests/artifacts"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Screenshots `html` with headless Chromium (Debian's `chromium`) into `png`.
pub fn screenshot(html: &Path, png: &Path, width: u32, height: u32) {
    let profile = tempfile::tempdir().unwrap();
    let _ = std::fs::remove_file(png);
    let mut child = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("--window-size={width},{height}"))
        .arg(format!("file://{}", html.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium runs (apt-get install -y chromium; .ci/run installs it)");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "chromium exited with {status}");
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish the screenshot in 120s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
