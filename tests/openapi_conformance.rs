//! The OpenAPI document is the truth: the real `tomato` binary, its document checked by
//! `openapi-spec-validator`, then `schemathesis` with every check against the live server.
//! Both tools are pinned in tests/requirements.txt (which `.ci/run` installs) and run as
//! subprocesses (argv, no shell); a failure shows their whole output.
//!
//! The server runs over `tests/conformance/probe.yaml` only: schemathesis queues runs, and a
//! run of `probe` runs `true`, which is harmless and over at once. The per-operation tuning
//! of two checks, and why, is in `tests/conformance/schemathesis.toml`.

mod support;

use std::path::Path;
use std::process::Command;

use support::{REPO, Server};

/// Examples per operation and phase: enough to find the disagreements of issue 19, small
/// enough that the whole run takes a few minutes on two slow cores.
const MAX_EXAMPLES: &str = "30";

/// Runs `program` with `args` and answers its combined output; fails the test, with that
/// output, when it cannot start or exits unsuccessfully.
fn run(program: &str, args: &[&str], dir: &Path) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot start {program} ({e}): install tests/requirements.txt (.ci/run does)")
        });
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{program} {} failed ({}):\n{text}",
        args.join(" "),
        out.status
    );
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn the_openapi_document_is_valid_and_the_live_server_does_what_it_says() {
    let config = tempfile::tempdir().unwrap();
    std::fs::copy(
        format!("{REPO}/tests/conformance/probe.yaml"),
        config.path().join("probe.yaml"),
    )
    .unwrap();
    std::fs::create_dir(config.path().join("probe")).unwrap();
    std::fs::write(config.path().join("probe/one"), "the pack `one` of probe.yaml\n").unwrap();
    let server = Server::start_with(Some(config.path()), &[]).await;
    let schema_url = format!("{}/api/v1/openapi.json", server.url);
    let doc = server
        .client
        .get(&schema_url)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .text()
        .await
        .unwrap();
    // hyper refuses a URI over 64 KiB itself, with an empty body: the guard in front of it
    // answers with the API's error shape instead. (Written by hand: no HTTP client here builds
    // a URI that long.)
    let answer = {
        use std::io::{Read, Write};
        let mut conn = std::net::TcpStream::connect(server.url.trim_start_matches("http://")).unwrap();
        let request = format!(
            "GET /api/v1/runs?service={} HTTP/1.1\r\nhost: tomato\r\n\r\n",
            "a".repeat(1 << 20)
        );
        conn.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).unwrap();
        answer
    };
    assert!(answer.starts_with("HTTP/1.1 414 "), "{answer}");
    let error: serde_json::Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(error["parameter"], "query", "{error}");

    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("openapi.json");
    std::fs::write(&file, &doc).unwrap();

    let validated = run(
        "python3",
        &["-m", "openapi_spec_validator", file.to_str().unwrap()],
        work.path(),
    );
    assert!(validated.contains("OK"), "{validated}");

    let settings = format!("{REPO}/tests/conformance/schemathesis.toml");
    let report = run(
        "schemathesis",
        &[
            "--no-color",
            "--config-file",
            &settings,
            "run",
            &schema_url,
            "--url",
            &server.url,
            // No `--checks`: every check is on by default, and a command-line `--checks` would
            // override the per-operation settings of the file above (it is applied last).
            "--max-examples",
            MAX_EXAMPLES,
            // The same cases every run, so a failure reproduces.
            "--seed",
            "19",
            "--workers",
            "1",
            "--request-timeout",
            "30",
            "--suppress-health-check",
            // The server is slow on a loaded machine of two cores; that is no finding.
            "too_slow",
        ],
        work.path(),
    );
    println!("{report}");
    assert!(
        !server.log().contains("panicked"),
        "the server panicked:\n{}",
        server.log()
    );
}
