//! `ec2-broker cp [-r] [--streams N] SRC DST`: the flags into [`copy::Options`], then
//! [`copy::run`].

use anyhow::Context;

use crate::cli::CpArgs;
use crate::copy::{self, Options, Ssh, plan};

/// Runs the copy.
pub(crate) async fn run(args: CpArgs) -> anyhow::Result<()> {
    let range_size = args.range_size.as_deref().map(plan::parse_size).transpose()?;
    let options = Options {
        ssh: Ssh { program: args.ssh, config: args.ssh_config, login: args.login, identity: args.identity },
        streams: args.streams,
        range_size,
        recursive: args.recursive,
    };
    copy::run(&args.source, &args.destination, &options)
        .await
        .with_context(|| format!("copying {} to {}", args.source, args.destination))
}
