//! `ec2-broker`: parse arguments, set up logging, run the command, turn errors into words.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use ec2_broker::cli::Cli;
use ec2_broker::{cli, cmd, config, error, logging};

fn main() -> ExitCode {
    let matches = cli::ignoring_empty_env(Cli::command(), &|name| std::env::var_os(name)).get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Err(err) = logging::init(cli.verbose, cli.log_file.as_deref()) {
        return error::report(&err);
    }
    match config::path().map(|p| config::load(&p)).transpose() {
        Ok(settings) => config::apply(&mut cli, &matches, &settings.unwrap_or_default()),
        Err(err) => return error::report(&anyhow::Error::new(err).context("reading the settings file")),
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(err) => {
            return error::report(&anyhow::Error::new(err).context("starting the async runtime"));
        }
    };
    let result = runtime.block_on(cmd::run(cli));
    // A blocking stdin read may still be parked in a worker thread: do not wait for it.
    runtime.shutdown_background();
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => error::report(&err),
    }
}
