//! The command line: `tomato serve` (the default), `tomato crds`, `tomato check-config`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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
    },
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
        }
    }
}
