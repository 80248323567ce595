//! `tomato` as a client of a Tomato server: `run [--follow]`, `status`, `logs [--follow]`,
//! `cancel`, `queue`, `completions`.
//!
//! Split by job: [`http`] talks to `/api/v1` and sorts failures into "unreachable" and
//! "refused"; [`follow`] is the pure state machine from successive run snapshots to events
//! and the verdict's exit code; [`render`] turns values into words, on a terminal with
//! progress bars and on a pipe as plain lines. This module only sequences them. Following
//! polls the run once a second: one small GET, the same in both modes, through any proxy.

pub mod args;
pub mod follow;
pub mod http;
pub mod render;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::signal::unix::{Signal, SignalKind, signal};

pub use follow::{Event, Exit, Follower};
use http::{Api, ClientError};
use render::{Progress, print_line};

use crate::crd::{AttemptState, RunTemplate, TestRun};
use args::{ClientCommand, Connection, LogsArgs, OutputFormat, RunArgs};

/// How often a followed run is fetched.
const POLL: Duration = Duration::from_secs(1);
/// How long following rides out a server that stopped answering (a restart) before giving up.
const UNREACHABLE_GRACE: Duration = Duration::from_secs(30);

/// Carries out a client command and answers the process exit code.
pub fn main(cmd: ClientCommand) -> u8 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a single-threaded tokio runtime starts");
    let exit = runtime.block_on(async {
        match execute(cmd).await {
            Ok(exit) => exit,
            Err(Failure::Client(e)) => {
                eprintln!("tomato: {e}");
                match e {
                    ClientError::Unreachable { .. } => {
                        eprintln!(
                            "tomato: is `tomato serve` running there? Point --server or TOMATO_URL at it."
                        );
                        Exit::Unreachable
                    }
                    ClientError::Refused { .. } | ClientError::Protocol { .. } => Exit::Refused,
                }
            }
            Err(Failure::Usage(m)) => {
                eprintln!("tomato: {m}");
                Exit::Refused
            }
        }
    });
    exit.code()
}

/// Why a command could not do what it was asked.
enum Failure {
    Client(ClientError),
    /// Refused before anything was sent.
    Usage(String),
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Failure::Client(e)
    }
}

fn connect(conn: &Connection) -> Result<Api, Failure> {
    let token = crate::secrets::from_env("TOMATO_TOKEN").map_err(Failure::Usage)?;
    Api::new(&conn.server, token).map_err(Failure::Usage)
}

async fn execute(cmd: ClientCommand) -> Result<Exit, Failure> {
    match cmd {
        ClientCommand::Run(args) => run(args).await,
        ClientCommand::Status { id, conn } => {
            let api = connect(&conn)?;
            let run = api.get_run(&id).await?;
            match conn.output {
                OutputFormat::Json => print_json(&run),
                OutputFormat::Text => print_line(&render::status_text(&run, &api.run_page(&id))),
            }
            Ok(Exit::Ok)
        }
        ClientCommand::Logs(args) => logs(args).await,
        ClientCommand::Cancel { id, conn } => {
            let api = connect(&conn)?;
            let run = api.cancel_run(&id).await?;
            match conn.output {
                OutputFormat::Json => print_json(&run),
                OutputFormat::Text => print_line(&format!(
                    "run {id}: cancel requested (it was {})",
                    run.status.unwrap_or_default().phase
                )),
            }
            Ok(Exit::Ok)
        }
        ClientCommand::Queue { service, conn } => queue(service, &conn).await,
        ClientCommand::Rules(args::RulesCommand::Suggest {
            service,
            days,
            min,
            conn,
        }) => {
            let api = connect(&conn)?;
            let answer = api.rule_suggestions(&service, days, min).await?;
            match conn.output {
                OutputFormat::Json => print_json(&answer),
                OutputFormat::Text => print_line(&render::suggestions_text(&answer)),
            }
            Ok(Exit::Ok)
        }
    }
}

fn print_json(v: &impl serde::Serialize) {
    print_line(&serde_json::to_string_pretty(v).expect("API objects serialize"));
}

/// The body of `POST /api/v1/runs` for the flags given (the run template, so the spec has
/// exactly the fields and names a TestRun has).
pub fn run_request(args: &RunArgs) -> Value {
    let template = RunTemplate {
        service: args.service.clone(),
        stand: args.stand.clone(),
        category: args.category.clone(),
        packs: args.packs.clone(),
        priority: args.priority.unwrap_or_default(),
        emails: args.emails.clone(),
        issue_key: args.issue_key.clone(),
        version: None,
        retries: None,
        shards: args.shards,
        env: args.env.clone(),
    };
    json!({
        "apiVersion": "tomato.dev/v1alpha1",
        "kind": "TestRun",
        "metadata": {},
        "spec": template,
    })
}

async fn run(args: RunArgs) -> Result<Exit, Failure> {
    let api = connect(&args.conn)?;
    let run = api.create_run(&run_request(&args)).await?;
    let id = run.metadata.name.clone().unwrap_or_default();
    let page = api.run_page(&id);
    if !args.follow {
        match args.conn.output {
            OutputFormat::Json => print_json(&run),
            OutputFormat::Text => {
                print_line(&format!("queued run {id}"));
                print_line(&format!("run page: {page}"));
                print_line(&format!(
                    "follow it: tomato status {id}; tomato logs {id} --follow"
                ));
            }
        }
        return Ok(Exit::Ok);
    }
    if args.conn.output == OutputFormat::Text {
        print_line(&format!("queued run {id} ({page})"));
    }
    follow_run(&api, &id, args.conn.output, args.cancel_on_interrupt).await
}

/// SIGINT from now on: registered before following starts, so Ctrl-C never kills the
/// process with the default action midway.
fn interrupts() -> Result<Signal, Failure> {
    signal(SignalKind::interrupt()).map_err(|e| Failure::Usage(format!("cannot watch for Ctrl-C: {e}")))
}

/// Fetches a run, riding out a server that stopped answering for up to [`UNREACHABLE_GRACE`]
/// (it restarts without losing runs); `Ok(None)` means "try again later".
async fn fetch(
    api: &Api,
    id: &str,
    unreachable_since: &mut Option<Instant>,
) -> Result<Option<TestRun>, Failure> {
    match api.get_run(id).await {
        Ok(run) => {
            *unreachable_since = None;
            Ok(Some(run))
        }
        Err(e @ ClientError::Unreachable { .. }) => {
            let since = *unreachable_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= UNREACHABLE_GRACE {
                return Err(e.into());
            }
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

async fn follow_run(
    api: &Api,
    id: &str,
    output: OutputFormat,
    cancel_on_interrupt: bool,
) -> Result<Exit, Failure> {
    let mut sigint = interrupts()?;
    let page = api.run_page(id);
    let mut progress = (output == OutputFormat::Text).then(Progress::for_stdout);
    let mut follower = Follower::new();
    let mut unreachable_since = None;
    loop {
        let fetched = tokio::select! {
            _ = sigint.recv() => return interrupted(api, id, progress.as_mut(), cancel_on_interrupt).await,
            r = fetch(api, id, &mut unreachable_since) => r?,
        };
        if let Some(run) = fetched {
            for e in follower.observe(&run) {
                if let Some(p) = progress.as_mut() {
                    p.event(id, &page, &e);
                }
            }
            if let Some(exit) = follower.exit() {
                if output == OutputFormat::Json {
                    print_json(&run);
                }
                return Ok(exit);
            }
        }
        tokio::select! {
            _ = sigint.recv() => return interrupted(api, id, progress.as_mut(), cancel_on_interrupt).await,
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

/// Ctrl-C while following: stop following and say the run goes on, or cancel it.
async fn interrupted(
    api: &Api,
    id: &str,
    progress: Option<&mut Progress>,
    cancel: bool,
) -> Result<Exit, Failure> {
    if let Some(p) = progress {
        p.clear();
    }
    if !cancel {
        eprintln!("tomato: stopped following; run {id} continues; `tomato cancel {id}` stops it");
        return Ok(Exit::Interrupted);
    }
    match api.cancel_run(id).await {
        Ok(_) => {
            eprintln!("tomato: run {id} cancelled (--cancel-on-interrupt)");
            Ok(Exit::Cancelled)
        }
        // It got its verdict meanwhile: that is what to exit with.
        Err(ClientError::Refused { status: 409, .. }) => {
            let run = api.get_run(id).await?;
            let phase = run.status.unwrap_or_default().phase;
            eprintln!("tomato: run {id} already ended {phase}; nothing to cancel");
            Ok(Exit::of(phase).unwrap_or(Exit::Refused))
        }
        Err(e) => Err(e.into()),
    }
}

/// Which launch to show: the one asked for, or the latest.
fn log_position(run: &TestRun, asked: Option<u32>) -> Result<Option<usize>, Failure> {
    let id = run.metadata.name.as_deref().unwrap_or_default();
    let count = run.status.as_ref().map_or(0, |s| s.attempts.len());
    match asked {
        None => Ok((count > 0).then_some(count)),
        Some(n) => {
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            if n > count && run.status.as_ref().is_some_and(|s| s.phase.is_terminal()) {
                return Err(Failure::Usage(format!(
                    "run {id} ended with {count} attempt(s); there is no attempt {n}"
                )));
            }
            Ok((n <= count).then_some(n))
        }
    }
}

async fn logs(args: LogsArgs) -> Result<Exit, Failure> {
    let api = connect(&args.conn)?;
    let id = args.id.as_str();
    let json = args.conn.output == OutputFormat::Json;
    if !args.follow {
        let run = api.get_run(id).await?;
        let Some(n) = log_position(&run, args.attempt)? else {
            let phase = run.status.unwrap_or_default().phase;
            return Err(Failure::Usage(format!(
                "run {id} has no such attempt yet (it is {phase}); `tomato logs {id} --follow` waits for it"
            )));
        };
        let text = api.attempt_log(id, n).await?;
        if json {
            print_json(&json!({"run": id, "attempt": n, "log": text}));
        } else {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        }
        return Ok(Exit::Ok);
    }
    let mut sigint = interrupts()?;
    // The launch being printed and how many bytes of its log are out.
    let mut cursor: Option<(usize, usize)> = None;
    let mut unreachable_since = None;
    loop {
        let fetched = tokio::select! {
            _ = sigint.recv() => return interrupted(&api, id, None, false).await,
            r = fetch(&api, id, &mut unreachable_since) => r?,
        };
        if let Some(run) = fetched {
            let st = run.status.clone().unwrap_or_default();
            if let Some(n) = log_position(&run, args.attempt)? {
                let (mut p, mut offset) = cursor.unwrap_or((n, 0));
                if cursor.is_none() {
                    log_header(json, id, p);
                }
                // A later launch began: the rest of the earlier one first, then the new one.
                loop {
                    let text = api.attempt_log(id, p).await?;
                    let from = if text.len() < offset {
                        0
                    } else {
                        floor_char(&text, offset)
                    };
                    emit_log(json, p, &text[from..]);
                    offset = text.len();
                    if p >= n {
                        break;
                    }
                    (p, offset) = (p + 1, 0);
                    log_header(json, id, p);
                }
                cursor = Some((p, offset));
                let attempt_over = st
                    .attempts
                    .get(n - 1)
                    .is_some_and(|a| a.state != AttemptState::Running);
                if args.attempt.is_some() && attempt_over {
                    return Ok(Exit::Ok);
                }
            }
            if st.phase.is_terminal() {
                return Ok(Exit::of(st.phase).unwrap_or(Exit::Ok));
            }
        }
        tokio::select! {
            _ = sigint.recv() => return interrupted(&api, id, None, false).await,
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

/// The largest char boundary at or below `i` (a log re-read as lossy UTF-8 may shift).
fn floor_char(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Which launch's log follows, on standard error so that standard output is the log alone.
fn log_header(json: bool, id: &str, position: usize) {
    if !json {
        eprintln!("── run {id}, launch {position} ──");
    }
}

fn emit_log(json: bool, position: usize, chunk: &str) {
    if chunk.is_empty() {
        return;
    }
    if json {
        // JSON Lines: one object per new piece of the log.
        print_line(&json!({"attempt": position, "text": chunk}).to_string());
    } else {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(chunk.as_bytes());
        let _ = out.flush();
    }
}

async fn queue(service: Option<String>, conn: &Connection) -> Result<Exit, Failure> {
    let api = connect(conn)?;
    let names = match service {
        Some(s) => vec![s],
        None => api.service_names().await?,
    };
    let mut queues = Vec::new();
    for name in &names {
        queues.push(api.queue(name).await?);
    }
    match conn.output {
        OutputFormat::Json if queues.len() == 1 && names.len() == 1 => print_json(&queues[0]),
        OutputFormat::Json => print_json(&queues),
        OutputFormat::Text => {
            let mut texts = Vec::new();
            for q in queues {
                let list: render::QueueList =
                    serde_json::from_value(q).map_err(|e| ClientError::Protocol {
                        url: api.base().to_string(),
                        reason: format!("a queue this client cannot read: {e}"),
                    })?;
                texts.push(render::queue_text(&list));
            }
            print_line(&texts.join("\n\n"));
        }
    }
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::Phase;
    use clap::Parser;

    #[test]
    fn a_run_request_is_a_test_run_with_only_the_flags_given() {
        let cli = crate::cli::Cli::parse_from([
            "tomato",
            "run",
            "demo",
            "--stand",
            "localhost",
            "--category",
            "smoke",
            "--env",
            "A=1",
        ]);
        let Some(crate::cli::Command::Client(ClientCommand::Run(args))) = cli.command else {
            panic!("not a run")
        };
        assert_eq!(
            run_request(&args),
            json!({
                "apiVersion": "tomato.dev/v1alpha1", "kind": "TestRun", "metadata": {},
                "spec": {"service": "demo", "stand": "localhost", "category": "smoke", "priority": 2,
                         "env": [{"name": "A", "value": "1"}]}
            })
        );
    }

    #[test]
    fn the_latest_launch_is_shown_unless_one_is_asked_for() {
        let mut run = TestRun::test("demo-1", RunTemplate::test("demo"));
        assert_eq!(log_position(&run, None).ok(), Some(None));
        let attempt = crate::crd::Attempt {
            number: 1,
            selection: crate::crd::Selection::all(vec![]),
            state: AttemptState::Finished,
            launch: None,
            started_at: None,
            finished_at: None,
            exit_code: Some(0),
            summary: None,
            message: None,
            shards: Vec::new(),
            aqua: Vec::new(),
            mixed: false,
        };
        let st = run.status.as_mut().unwrap();
        st.attempts = vec![attempt.clone(), attempt];
        assert_eq!(log_position(&run, None).ok(), Some(Some(2)));
        assert_eq!(log_position(&run, Some(1)).ok(), Some(Some(1)));
        assert_eq!(log_position(&run, Some(3)).ok(), Some(None));
        run.status.as_mut().unwrap().phase = Phase::Failed;
        assert!(log_position(&run, Some(3)).is_err());
    }
}
