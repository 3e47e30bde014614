//! One file per subcommand.

pub(crate) mod completions;
pub(crate) mod console;
mod console_reads;
pub(crate) mod cp;
pub(crate) mod doctor;
pub(crate) mod key;
pub(crate) mod known_hosts;
pub(crate) mod login;
pub(crate) mod ls;
pub(crate) mod man;
pub(crate) mod pin;
pub(crate) mod proxy;
pub(crate) mod shell;
pub(crate) mod ssh_config;

use anyhow::Context;

use crate::aws::Aws;
use crate::cli::{AwsArgs, Cli, Command, KeyCommand, KnownHostsCommand};
use crate::target::instance::Instance;
use crate::target::spec::HostSpec;

/// Runs the chosen subcommand; `Ok` carries the exit code (0, or a command's own such as the
/// audit's 1 for findings).
pub async fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Proxy(args) => proxy::run(args).await.map(|()| 0),
        Command::Console(args) => console::run(args).await.map(|()| 0),
        Command::Shell(args) => shell::run(args).await,
        Command::Cp(args) => cp::run(args).await.map(|()| 0),
        Command::Doctor(args) => doctor::run(args).await,
        Command::KnownHosts(KnownHostsCommand::Audit(args)) => Ok(known_hosts::audit(args).await),
        Command::KnownHosts(KnownHostsCommand::Pin(args)) => pin::run(args).await.map(|()| 0),
        Command::Key(KeyCommand::Import(args)) => key::import(args).await,
        Command::Key(KeyCommand::New(args)) => key::new(args).await.map(|()| 0),
        Command::Key(KeyCommand::Install(args)) => key::install(args).await.map(|()| 0),
        Command::Key(KeyCommand::Revoke(args)) => key::revoke(args).await.map(|()| 0),
        Command::Key(KeyCommand::Rotate(args)) => key::rotate(args).await,
        Command::Login(args) => login::run(args).await.map(|()| 0),
        Command::Ls(args) => ls::run(args).await,
        Command::SshConfig(args) => ssh_config::run(args).await,
        Command::Completions(args) => completions::run(args.shell).map(|()| 0),
        Command::Man => man::run().map(|()| 0),
        Command::CompleteHosts => completions::hosts().map(|()| 0),
    }
}

/// The AWS clients and the one running instance `host` names (an id, a Name tag, a tag or an
/// address, with an optional `.REGION` suffix), for commands that take a single HOST.
pub(crate) async fn aws_and_instance(host: &str, aws: &AwsArgs) -> anyhow::Result<(Aws, Instance)> {
    let spec = HostSpec::parse_with_suffix(host, None).with_context(|| format!("reading host {host:?}"))?;
    let region = aws.region.as_deref().or(spec.region.as_deref());
    let clients = Aws::load(aws.profile.as_deref(), region).await?;
    let found = clients.find_instances(&spec.target).await.with_context(|| format!("looking up {}", spec.target))?;
    let instance = crate::target::resolve::pick(&spec.target, &clients.region, found)?;
    Ok((clients, instance))
}

/// The eice route's options from its flags: the one place they are built.
pub(crate) fn eice_options(args: &crate::cli::EiceArgs) -> crate::route::eice::EiceOptions {
    crate::route::eice::EiceOptions {
        endpoint_id: args.eice_id.clone(),
        connect_to: args.eice_connect_to.clone(),
        max_duration: args.eice_max_duration,
    }
}
