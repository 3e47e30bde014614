//! One file per subcommand.

pub mod console;
pub mod proxy;

use crate::cli::{Cli, Command};

/// Runs the chosen subcommand.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Proxy(args) => proxy::run(args).await,
        Command::Console(args) => console::run(args).await,
    }
}
