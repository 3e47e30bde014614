//! `ec2-broker`: parse arguments, set up logging, run the command, turn errors into words.

use std::process::ExitCode;

use clap::Parser;
use ec2_broker::cli::Cli;
use ec2_broker::{cmd, error, logging};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(err) = logging::init(cli.verbose, cli.log_file.as_deref()) {
        return error::report(&err);
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
