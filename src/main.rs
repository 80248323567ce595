//! The `tomato` binary: wiring only. Everything it runs lives in the library.

use std::process::ExitCode;

use tomato::cli::{Cli, Command, ServeArgs};

fn main() -> ExitCode {
    let cli = Cli::parse_or_exit();
    if let Err(e) = tomato::logging::init() {
        eprintln!("tomato: {e}");
        return ExitCode::FAILURE;
    }
    let result = match cli
        .command
        .unwrap_or_else(|| Command::Serve(ServeArgs::default()))
    {
        Command::Serve(args) => runtime().block_on(tomato::standalone::serve(args.options())),
        Command::Operator(args) => runtime().block_on(tomato::operator::serve(args.options())),
        Command::Exec(args) => match runtime().block_on(args.run()) {
            Ok(code) => return ExitCode::from(u8::try_from(code).unwrap_or(1)),
            Err(e) => Err(e),
        },
        Command::Grep(args) => tomato::grep::run(&args),
        Command::Completions { shell } => {
            tomato::cli::completions(shell);
            return ExitCode::SUCCESS;
        }
        Command::Client(cmd) => return ExitCode::from(tomato::client::main(cmd)),
        Command::Crds { out_dir: None } => {
            print!("{}", tomato::crd::crds_yaml());
            Ok(())
        }
        Command::Crds { out_dir: Some(dir) } => tomato::crd::write_crds(&dir).map_err(Into::into),

        Command::CheckConfig { config, explain } => tomato::packs::PacksConfig::load(&config)
            .and_then(|c| tomato::report::Templates::load(&c).map(|_| c))
            .map_err(anyhow::Error::from)
            .and_then(|c| {
                for s in c.services() {
                    println!(
                        "{}: {} pack(s), {} preset(s)",
                        s.name,
                        s.packs.len(),
                        s.presets.len()
                    );
                }
                match explain {
                    Some(name) => tomato::launch::explain(&c, &name)
                        .map(|text| print!("{text}"))
                        .map_err(anyhow::Error::msg),
                    None => Ok(()),
                }
            }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tomato: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts")
}
