//! The command line: `tomato serve` (the default), `tomato operator`, `tomato exec`,
//! `tomato crds`, `tomato check-config`, and the client of a server's API (`tomato run`,
//! `status`, `logs`, `cancel`, `queue`, `completions`; carried out by [`crate::client`]).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::client::args::CLIENT_COMMANDS;
pub use crate::client::args::ClientCommand;

#[derive(Parser, Debug)]
#[command(
    name = "tomato",
    version,
    about = "Runs a QA team's autotests: queue, launch, rerun failed tests, classify failures, report."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Standalone mode: SQLite store, local processes, HTTP API (the default).
    Serve(ServeArgs),
    /// Operator mode: TestRun/NightlySchedule custom resources, one Kubernetes Job per attempt.
    Operator(OperatorArgs),
    /// Inside an attempt's Job: run the tests' command, then upload its JUnit and log.
    Exec(ExecArgs),
    /// Print the CustomResourceDefinitions as YAML (or write one file per CRD into a directory).
    Crds {
        /// Write `<plural>.<group>.yaml` files here instead of printing.
        #[arg(long = "out-dir")]
        out_dir: Option<PathBuf>,
    },

    /// Run the log-grep engine on files: per-rule matching line counts for a categories.json.
    Grep(crate::grep::GrepArgs),
    /// Load and validate packs_config, print every problem, and exit.
    CheckConfig {
        /// packs_config directory.
        #[arg(long = "config", env = "TOMATO_CONFIG", default_value = "./packs_config")]
        config: PathBuf,
        /// Also print, for this service, the exact argv of attempt 1 and of a rerun of two
        /// sample failed tests.
        #[arg(long = "explain", value_name = "SERVICE")]
        explain: Option<String>,
    },

    /// Print a completion script for a shell (e.g. `tomato completions bash > /etc/bash_completion.d/tomato`).
    Completions {
        /// bash, zsh or fish (elvish and powershell work too).
        shell: clap_complete::Shell,
    },

    #[command(flatten)]
    Client(ClientCommand),
}

/// Prints a completion script of the whole command line for `shell`.
pub fn completions(shell: clap_complete::Shell) {
    clap_complete::generate(shell, &mut Cli::command(), "tomato", &mut std::io::stdout());
}

impl Cli {
    /// Parses the arguments, or prints clap's message and exits: 0 for `--help` and
    /// `--version`; for a client command's bad arguments [`crate::client::Exit::Refused`]
    /// (5), so that a refused `tomato run --follow` can never read as a run's `Error` verdict
    /// (2, which clap uses for usage errors and the other commands keep).
    pub fn parse_or_exit() -> Cli {
        match Cli::try_parse() {
            Ok(cli) => cli,
            Err(e) => {
                let _ = e.print();
                let client = std::env::args()
                    .nth(1)
                    .is_some_and(|a| CLIENT_COMMANDS.contains(&a.as_str()));
                let code = match (e.use_stderr(), client) {
                    (false, _) => 0,
                    (true, true) => i32::from(crate::client::Exit::Refused.code()),
                    (true, false) => e.exit_code(),
                };
                std::process::exit(code)
            }
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to serve the API and UI on.
    #[arg(long, env = "TOMATO_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Where the SQLite store, logs and JUnit files live.
    #[arg(long = "data-dir", env = "TOMATO_DATA_DIR", default_value = "./tomato-data")]
    pub data_dir: PathBuf,
    /// packs_config directory.
    #[arg(long = "config", env = "TOMATO_CONFIG", default_value = "./packs_config")]
    pub config: PathBuf,
    /// Directory of secrets for `valueFrom.secretKeyRef` (`<dir>/<name>/<key>`); default `<data-dir>/secrets`.
    #[arg(long = "secrets-dir", env = "TOMATO_SECRETS_DIR")]
    pub secrets_dir: Option<PathBuf>,
    /// Base URL of this server as people reach it, for links in reports.
    #[arg(long = "public-url", env = "TOMATO_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Report settings file (YAML: smtp, tracker, webhooks, retry); environment variables win over it.
    #[arg(long = "settings", env = "TOMATO_SETTINGS")]
    pub settings: Option<PathBuf>,
    #[command(flatten)]
    pub results: ResultsArgs,
}

/// Where test results are kept: the results store's flags, the same for both modes.
#[derive(Args, Debug, Clone)]
pub struct ResultsArgs {
    /// PostgreSQL results store, e.g. postgres://tomato:PASSWORD@db:5432/tomato?sslmode=verify-full
    /// (TLS as `sslmode` says). Checked at start: connected to and migrated. Operator mode's
    /// results store; wired into the upload path next (issue 14): until then results stay in
    /// ConfigMaps (operator) or the SQLite file (standalone). The password is never shown.
    #[arg(
        long = "database-url",
        env = "TOMATO_DATABASE_URL",
        hide_env_values = true,
        value_name = "URL",
        value_parser = DatabaseUrlParser
    )]
    pub database_url: Option<crate::store::database_url::DatabaseUrl>,
    /// Most connections to the results database.
    #[arg(
        long = "database-pool-size",
        env = "TOMATO_DATABASE_POOL_SIZE",
        default_value_t = crate::store::postgres::DEFAULT_POOL_SIZE,
        value_parser = clap::value_parser!(u32).range(1..=1000)
    )]
    pub database_pool_size: u32,
    /// Most MiB of artifacts (attempt logs and JUnit) the results store keeps per run; a write
    /// through the store over it is refused with an error naming the run and the limit (the
    /// launchers still write their own files directly: enforced once uploads go through the
    /// results store, issue 14).
    #[arg(
        long = "artifact-limit-mib",
        env = "TOMATO_ARTIFACT_LIMIT_MIB",
        default_value_t = crate::store::results::DEFAULT_ARTIFACT_BYTES_PER_RUN >> 20,
        value_parser = clap::value_parser!(u64).range(1..=1 << 20)
    )]
    pub artifact_limit_mib: u64,
}

impl ResultsArgs {
    pub fn config(self) -> crate::store::results::ResultsConfig {
        crate::store::results::ResultsConfig {
            database_url: self.database_url,
            pool_size: self.database_pool_size,
            limits: crate::store::results::Limits {
                artifact_bytes_per_run: self.artifact_limit_mib << 20,
            },
        }
    }
}

/// Reads `--database-url`. Its own parser, because clap's message for a refused value
/// repeats the value — the password with it; this one says only what is wrong.
#[derive(Clone)]
struct DatabaseUrlParser;

impl clap::builder::TypedValueParser for DatabaseUrlParser {
    type Value = crate::store::database_url::DatabaseUrl;

    fn parse_ref(
        &self,
        _cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<Self::Value, clap::Error> {
        use clap::error::ErrorKind;
        let field = crate::store::database_url::FIELD;
        let text = value
            .to_str()
            .ok_or_else(|| clap::Error::raw(ErrorKind::InvalidUtf8, format!("{field}: not valid UTF-8\n")))?;
        crate::store::database_url::DatabaseUrl::parse(text)
            .map_err(|e| clap::Error::raw(ErrorKind::ValueValidation, format!("{e}\n")))
    }
}

impl Default for ServeArgs {
    fn default() -> Self {
        // Parsing no arguments applies the environment and the defaults above.
        #[derive(Parser)]
        struct Only {
            #[command(flatten)]
            serve: ServeArgs,
        }
        Only::parse_from(["tomato"]).serve
    }
}

impl ServeArgs {
    pub fn options(self) -> crate::standalone::ServeOptions {
        crate::standalone::ServeOptions {
            listen: self.listen,
            data_dir: self.data_dir,
            config_dir: self.config,
            secrets_dir: self.secrets_dir,
            public_url: self.public_url,
            settings: self.settings,
            results: self.results.config(),
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct OperatorArgs {
    /// Address to serve the API and UI on.
    #[arg(long, env = "TOMATO_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// packs_config directory (every service needs `launch.image`).
    #[arg(long = "config", env = "TOMATO_CONFIG", default_value = "./packs_config")]
    pub config: PathBuf,
    /// Namespace of runs created through the API, and of the leader Lease (default: the
    /// operator's own namespace).
    #[arg(long, env = "TOMATO_NAMESPACE")]
    pub namespace: Option<String>,
    /// Reconcile TestRuns and NightlySchedules in every namespace (needs the ClusterRole).
    #[arg(long = "all-namespaces", env = "TOMATO_ALL_NAMESPACES")]
    pub all_namespaces: bool,
    /// Base URL of the API as people reach it, for links in reports.
    #[arg(long = "public-url", env = "TOMATO_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Base URL of the API as Job pods reach it (default `http://tomato.<namespace>.svc:<port>`).
    #[arg(long = "in-cluster-url", env = "TOMATO_IN_CLUSTER_URL")]
    pub in_cluster_url: Option<String>,
    /// Image with the `tomato` binary as entrypoint, copied into every Job (the operator's own image).
    #[arg(long = "exec-image", env = "TOMATO_EXEC_IMAGE")]
    pub exec_image: String,
    /// imagePullPolicy of the exec image (Always, IfNotPresent, Never).
    #[arg(long = "exec-image-pull-policy", env = "TOMATO_EXEC_IMAGE_PULL_POLICY")]
    pub exec_image_pull_policy: Option<String>,
    /// This replica's name in the leader Lease (default: the pod's hostname).
    #[arg(long, env = "TOMATO_IDENTITY")]
    pub identity: Option<String>,
    /// Name of the leader Lease.
    #[arg(
        long = "lease-name",
        env = "TOMATO_LEASE_NAME",
        default_value = "tomato-operator"
    )]
    pub lease_name: String,
    /// How long after a Job ends its upload may still come before the pod log is read instead.
    #[arg(long = "upload-grace", env = "TOMATO_UPLOAD_GRACE", default_value = "60s", value_parser = parse_duration)]
    pub upload_grace: std::time::Duration,
    /// Report settings file (YAML: smtp, tracker, webhooks, retry); environment variables win over it.
    #[arg(long = "settings", env = "TOMATO_SETTINGS")]
    pub settings: Option<PathBuf>,
    #[command(flatten)]
    pub results: ResultsArgs,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    crate::duration::parse(s)
}

impl OperatorArgs {
    pub fn options(self) -> crate::operator::OperatorOptions {
        crate::operator::OperatorOptions {
            listen: self.listen,
            config_dir: self.config,
            namespace: self.namespace,
            all_namespaces: self.all_namespaces,
            public_url: self.public_url,
            in_cluster_url: self.in_cluster_url,
            exec_image: self.exec_image,
            exec_image_pull_policy: self.exec_image_pull_policy,
            identity: self.identity,
            lease_name: self.lease_name,
            upload_grace: self.upload_grace,
            settings: self.settings,
            results: self.results.config(),
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct ExecArgs {
    /// Where the tests write JUnit XML (`*.xml` under `junit/` beside it are read too).
    #[arg(long, env = "TOMATO_JUNIT", default_value = crate::launch::job::JUNIT_PATH)]
    pub junit: PathBuf,
    /// Where the combined log is kept.
    #[arg(long, env = crate::launch::job::ENV_EXEC_LOG, default_value = crate::launch::job::LOG_PATH)]
    pub log: PathBuf,
    /// Where to upload the results (the token comes from TOMATO_UPLOAD_TOKEN, never a flag).
    #[arg(long = "upload-url", env = crate::launch::job::ENV_UPLOAD_URL)]
    pub upload_url: Option<String>,
    /// Copy this binary to PATH and exit (a Job's init container).
    #[arg(long = "copy-self-to", conflicts_with = "command")]
    pub copy_self_to: Option<PathBuf>,
    /// Run one shard of an Indexed Job: the command is `TOMATO_SHARD_<JOB_COMPLETION_INDEX>`'s
    /// (or, with --fetch, the API's for that index).
    #[arg(long, conflicts_with_all = ["command", "copy_self_to"])]
    pub sharded: bool,
    /// Read the command (and its tests' variables) from --launch-url with the run's token:
    /// the operator's way for a launch too large for its Job object.
    #[arg(long, conflicts_with_all = ["command", "copy_self_to"], requires = "launch_url")]
    pub fetch: bool,
    /// Run the command as a listing of the tests (operator mode's listing Job): its output
    /// is passed through, its error output shown only when it fails; nothing is uploaded.
    #[arg(long, conflicts_with_all = ["copy_self_to", "sharded", "fetch"], requires = "command")]
    pub list: bool,
    /// Where --fetch reads the launch.
    #[arg(long = "launch-url", env = crate::launch::job::ENV_LAUNCH_URL)]
    pub launch_url: Option<String>,
    /// The tests' command and arguments, after `--`.
    #[arg(last = true, required_unless_present_any = ["copy_self_to", "sharded", "fetch"])]
    pub command: Vec<String>,
}

impl ExecArgs {
    /// `tomato exec` as the command line asked: copy itself (init container), or run the tests
    /// and upload their results. Returns the status to exit with.
    pub async fn run(self) -> anyhow::Result<i32> {
        if let Some(to) = &self.copy_self_to {
            crate::launch::exec::copy_self_to(to)?;
            return Ok(0);
        }
        if self.list {
            return crate::launch::exec::list(&self.command).await;
        }
        let fetched = match (&self.launch_url, self.fetch) {
            (Some(url), true) => {
                let token = crate::secrets::from_env(crate::launch::job::ENV_UPLOAD_TOKEN)
                    .map_err(anyhow::Error::msg)?;
                let shard = if self.sharded {
                    Some(
                        crate::launch::exec::completion_index(|k| std::env::var(k).ok())
                            .map_err(anyhow::Error::msg)?,
                    )
                } else {
                    None
                };
                let mut launch = crate::launch::exec::fetch_launch(url, token.as_ref(), shard)
                    .await
                    .map_err(anyhow::Error::msg)?;
                if let Some(work) = self.junit.parent() {
                    launch.relocate(crate::launch::job::WORK_DIR, &work.display().to_string());
                }
                Some((shard, launch))
            }
            _ => None,
        };
        crate::launch::exec::run(self.options(fetched).map_err(anyhow::Error::msg)?).await
    }

    /// The options of the run; `fetched` is what --fetch read (and for which index).
    pub fn options(
        self,
        fetched: Option<(Option<u32>, crate::launch::job::ShardLaunch)>,
    ) -> Result<crate::launch::exec::ExecOptions, String> {
        let mut opts = crate::launch::exec::ExecOptions {
            command: self.command,
            junit: self.junit,
            log: self.log,
            upload_url: self.upload_url.filter(|u| !u.is_empty()),
            token: crate::secrets::from_env(crate::launch::job::ENV_UPLOAD_TOKEN)?,
            env: Vec::new(),
        };
        let own = match fetched {
            Some((index, launch)) => Some((index, launch)),
            None if self.sharded => {
                let (index, launch) = crate::launch::exec::resolve_shard(|k| std::env::var(k).ok())?;
                Some((Some(index), launch))
            }
            None => None,
        };
        if let Some((index, launch)) = own {
            if launch.argv.is_empty() {
                return Err("the launch read has no command".into());
            }
            opts.command = launch.argv;
            opts.env = launch.env;
            if let Some(index) = index {
                opts.env.push(("TOMATO_SHARD".into(), index.to_string()));
                opts.upload_url = opts
                    .upload_url
                    .map(|u| crate::launch::exec::shard_upload_url(&u, index));
            }
        }
        Ok(opts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::args::OutputFormat;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("tomato").chain(args.iter().copied()))
    }

    #[test]
    fn exec_fetch_needs_a_launch_url_and_no_command() {
        let exec = |args: &[&str]| parse(&[&["exec"][..], args].concat());
        assert!(
            exec(&[
                "--fetch",
                "--launch-url",
                "http://tomato/api/v1/runs/r/attempts/2/launch"
            ])
            .is_ok()
        );
        assert!(
            exec(&["--fetch", "--sharded", "--launch-url", "http://x/launch"]).is_ok(),
            "a shard of a fetched launch"
        );
        let err = exec(&["--fetch", "--launch-url", "http://x/launch", "--", "pytest"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot be used with"), "{err}");
    }

    #[test]
    fn exec_list_needs_a_command_and_goes_alone() {
        let exec = |args: &[&str]| parse(&[&["exec"][..], args].concat());
        assert!(exec(&["--list", "--", "pytest", "--collect-only"]).is_ok());
        assert!(exec(&["--list"]).is_err(), "no command");
        assert!(exec(&["--list", "--sharded", "--", "x"]).is_err());
    }

    #[test]
    fn run_takes_every_documented_flag() {
        let cli = parse(&[
            "run",
            "demo",
            "--stand",
            "localhost",
            "--category",
            "smoke",
            "--packs",
            "basic",
            "api",
            "--priority",
            "0",
            "--env",
            "A=1",
            "--env",
            "B=x=y",
            "--emails",
            "a@x,b@y",
            "--issue-key",
            "QA-1",
            "--follow",
            "--cancel-on-interrupt",
            "--output",
            "json",
            "--server",
            "http://t:1",
        ])
        .unwrap();
        let Some(Command::Client(ClientCommand::Run(r))) = cli.command else {
            panic!("not a run")
        };
        assert_eq!(r.packs, ["basic", "api"]);
        assert_eq!(r.emails, ["a@x", "b@y"]);
        assert_eq!(r.priority.map(crate::crd::Priority::get), Some(0));
        assert_eq!(r.env[1].name, "B");
        assert_eq!(r.env[1].value.as_deref(), Some("x=y"));
        assert!(r.follow && r.cancel_on_interrupt);
        assert_eq!(r.conn.output, OutputFormat::Json);
        assert_eq!(r.conn.server, "http://t:1");
    }

    #[test]
    fn the_database_url_is_checked_and_its_password_never_echoed() {
        let cli = parse(&[
            "serve",
            "--database-url",
            "postgresql://tomato:s3cret@db:5432/tomato?sslmode=require",
            "--database-pool-size",
            "4",
            "--artifact-limit-mib",
            "8",
        ])
        .unwrap();
        let Some(Command::Serve(serve)) = cli.command else {
            panic!("not serve")
        };
        assert!(!format!("{serve:?}").contains("s3cret"));
        let config = serve.results.config();
        assert_eq!(config.pool_size, 4);
        assert_eq!(config.limits.artifact_bytes_per_run, 8 << 20);
        assert_eq!(
            config.database_url.unwrap().redacted(),
            "postgresql://***@db:5432/tomato?sslmode=require"
        );

        for bad in [
            "mysql://tomato:s3cret@db/tomato",
            "postgres://tomato:s3cret@db:port/tomato",
            "tomato:s3cret@db",
        ] {
            for cmd in [&["serve"][..], &["operator", "--exec-image", "x"]] {
                let err = parse(&[cmd, &["--database-url", bad]].concat())
                    .unwrap_err()
                    .to_string();
                assert!(
                    err.contains("--database-url (TOMATO_DATABASE_URL)"),
                    "{bad}: {err}"
                );
                assert!(!err.contains("s3cret"), "{bad}: {err}");
            }
        }
        let err = parse(&["serve", "--database-pool-size", "0"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--database-pool-size"), "{err}");
    }

    #[test]
    fn bad_run_input_is_refused_before_anything_is_sent() {
        let err = |args: &[&str]| parse(args).unwrap_err().to_string();
        let base = ["run", "demo", "--stand", "localhost"];
        let with = |extra: &[&'static str]| [&base[..], extra].concat();
        assert!(err(&with(&["--priority", "12"])).contains("must be a whole number 0–9"));
        assert!(err(&with(&["--shards", "0"])).contains("must be a whole number 1–64"));
        assert!(err(&with(&["--env", "FOO"])).contains("expected KEY=VALUE"));
        assert!(err(&with(&["--env", "TOMATO_RUN=1"])).contains("set by Tomato itself"));
        assert!(err(&with(&["--env", "1X=1"])).contains("not a valid environment variable name"));
        assert!(err(&with(&["--cancel-on-interrupt"])).contains("--follow"));
        assert!(err(&["run", "demo"]).contains("--stand"));
    }
}
