//! One file per subcommand.

pub mod console;
pub mod known_hosts;
pub mod proxy;

use crate::cli::{Cli, Command, KnownHostsCommand};

/// Runs the chosen subcommand; `Ok` carries the exit code (0, or a command's own such as the
/// audit's 1 for findings).
pub async fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Proxy(args) => proxy::run(args).await.map(|()| 0),
        Command::Console(args) => console::run(args).await.map(|()| 0),
        Command::KnownHosts(KnownHostsCommand::Audit(args)) => Ok(known_hosts::audit(args).await),
    }
}
