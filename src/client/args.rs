//! The client commands' arguments (`tomato run/status/logs/cancel/queue`), parsed by clap as
//! part of the command line ([`crate::cli`] flattens [`ClientCommand`] into it).

use clap::{Args, Subcommand};

/// The client's subcommands (and `completions`), whose usage errors exit with
/// [`super::Exit::Refused`].
pub const CLIENT_COMMANDS: &[&str] = &["run", "status", "logs", "cancel", "queue", "rules", "completions"];

/// `tomato` as a client of a Tomato server's API.
#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Queue a run of SERVICE's tests on a stand; with --follow, show it until its verdict.
    ///
    /// With --follow the exit code says the verdict: 0 Succeeded, 1 Failed, 2 Error,
    /// 3 Cancelled; 4 when Tomato could not be reached, 5 when the request was refused.
    /// Ctrl-C stops following, not the run (unless --cancel-on-interrupt).
    Run(RunArgs),
    /// Show a run: phase, attempts, results, failures by category, its page.
    Status {
        /// Run id (as `tomato run` printed it).
        id: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Print a run's log (its latest attempt unless --attempt); --follow prints as it grows.
    Logs(LogsArgs),
    /// Cancel a run: a queued run ends at once, a running one is stopped.
    Cancel {
        /// Run id.
        id: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// What runs and what waits, in admission order: one service's queue, or every service's.
    Queue {
        /// Only this service.
        service: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// Categories rules: `tomato rules suggest --service S` proposes rules for its unclassified
    /// failures.
    #[command(subcommand)]
    Rules(RulesCommand),
}

/// `tomato rules ...`.
#[derive(Subcommand, Debug)]
pub enum RulesCommand {
    /// Propose categories rules for a service's unclassified failures: one per failure
    /// signature shared by at least --min failures of the last --days, each with its
    /// back-test (what it would match, and which categories it collides with).
    Suggest {
        /// The service.
        #[arg(long)]
        service: String,
        /// Days of failures looked at (1 to 90).
        #[arg(long, default_value_t = 30)]
        days: u32,
        /// Fewest failures a cluster needs (1 to 1000).
        #[arg(long, default_value_t = 3)]
        min: u32,
        #[command(flatten)]
        conn: Connection,
    },
}

/// Where the server is and how to print its answers; the token comes from `TOMATO_TOKEN`
/// (or `TOMATO_TOKEN_FILE`), never a flag, so it stays out of shell history and `ps`.
#[derive(Args, Debug, Clone)]
pub struct Connection {
    /// Tomato's base URL.
    #[arg(long, env = "TOMATO_URL", default_value = super::http::DEFAULT_SERVER)]
    pub server: String,
    /// `text` for people, `json` for scripts (the API's own objects).
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// A service of the server's packs_config.
    pub service: String,
    /// Host or URL of the stand to test (must match the service's stand pattern).
    #[arg(long)]
    pub stand: String,
    /// A preset of packs (e.g. `smoke`); without it and --packs, every pack runs.
    #[arg(long)]
    pub category: Option<String>,
    /// Explicit packs (space- or comma-separated); overrides --category.
    #[arg(long, num_args = 1.., value_delimiter = ',')]
    pub packs: Vec<String>,
    /// Queue priority 0–9; lower runs earlier (the server's default is 2).
    #[arg(long, value_parser = parse_priority)]
    pub priority: Option<crate::crd::Priority>,
    /// Split each attempt into this many shards, 1–64 (default: the service's `shards`).
    #[arg(long, value_parser = parse_shards)]
    pub shards: Option<u8>,
    /// Extra environment for the tests (repeatable). Visible in the run's spec: no secrets.
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_env)]
    pub env: Vec<crate::crd::EnvVar>,
    /// Report recipients (space- or comma-separated).
    #[arg(long, num_args = 1.., value_delimiter = ',')]
    pub emails: Vec<String>,
    /// Tracker ticket that receives the report (e.g. `QA-123`).
    #[arg(long = "issue-key")]
    pub issue_key: Option<String>,
    /// Show the queue position, each attempt and the verdict; exit with the verdict's code.
    #[arg(long, short)]
    pub follow: bool,
    /// With --follow: Ctrl-C cancels the run (exit 3) instead of only stopping to follow it.
    #[arg(long = "cancel-on-interrupt", requires = "follow")]
    pub cancel_on_interrupt: bool,
    #[command(flatten)]
    pub conn: Connection,
}

#[derive(Args, Debug, Clone)]
pub struct LogsArgs {
    /// Run id.
    pub id: String,
    /// The N-th launch of the run as `tomato status` lists it, from 1 (default: the latest).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub attempt: Option<u32>,
    /// Keep printing as the log grows, across the run's attempts, until the run ends (with
    /// --attempt: until that attempt ends).
    #[arg(long, short)]
    pub follow: bool,
    #[command(flatten)]
    pub conn: Connection,
}

fn parse_priority(s: &str) -> Result<crate::crd::Priority, String> {
    s.parse().map_err(|_| {
        format!(
            "must be a whole number {} (lower runs earlier), got {s:?}",
            crate::crd::Priority::range()
        )
    })
}

fn parse_shards(s: &str) -> Result<u8, String> {
    s.parse::<u8>()
        .ok()
        .filter(|n| (1..=crate::packs::MAX_SHARDS).contains(n))
        .ok_or_else(|| format!("must be a whole number 1–{}, got {s:?}", crate::packs::MAX_SHARDS))
}

fn parse_env(s: &str) -> Result<crate::crd::EnvVar, String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?} (no '=')"))?;
    let var = crate::crd::EnvVar {
        name: name.to_string(),
        value: Some(value.to_string()),
        value_from: None,
    };
    crate::secrets::check_env_var(&var)?;
    Ok(var)
}
