//! `ec2-broker doctor [USER@]HOST[:PORT]`: runs `ssh -G HOST` for the user, port and the settings
//! that hide errors, examines the instance ([`crate::doctor`]) and prints the report.

use std::process::Command;

use anyhow::Context;

use crate::aws::Aws;
use crate::cli::DoctorArgs;
use crate::doctor::examine::{self, Options};
use crate::doctor::ssh_config::{self, SshSettings};
use crate::target::spec::HostSpec;

/// Runs the doctor; the exit code is the report's (0: some route works).
pub(crate) async fn run(args: DoctorArgs) -> anyhow::Result<u8> {
    let spec = HostSpec::parse_with_suffix(&args.host, args.strip_suffix.as_deref())
        .with_context(|| format!("reading host {:?}", args.host))?;
    let alias = super::proxy::host_for_key_name(&args.host);
    let (settings, ssh_problem) = match ssh_g(alias, args.ssh_config.as_deref()) {
        Ok(text) => (ssh_config::parse(&text), None),
        Err(e) => (SshSettings::default(), Some(format!("could not read ssh's settings for {alias}: {e:#}"))),
    };
    let user = spec.user.clone().or(settings.user.clone()).unwrap_or_else(|| "ec2-user".into());
    let port = match explicit_port(&args.host) {
        Some(p) => p,
        None => settings.port.unwrap_or(spec.port),
    };
    let region = args.aws.region.as_deref().or(spec.region.as_deref());
    let aws = Aws::load(args.aws.profile.as_deref(), region).await?;
    let opts = Options {
        user,
        port,
        address: args.address,
        eice: super::eice_options(&args.eice),
        push: !args.no_push,
        key_file: settings.key_dir(dirs::home_dir().as_deref()).map(|dir| (dir, alias.to_string())),
        pushes: dirs::cache_dir()
            .map(|d| (d.join("ec2-broker"), crate::cache::pushes::account(&aws.region, args.aws.profile.as_deref()))),
    };
    let mut report = examine::examine(alias, &aws, &spec.target, &opts).await;
    match ssh_problem {
        Some(p) => report.warnings.push(p),
        None => report.warnings.extend(ssh_config::warnings(&settings, alias)),
    }
    // Evidence and fixes continue under the third column (22 characters in).
    let text = match args.json {
        true => report.to_json(),
        false => crate::output::width::wrap(&report.to_text(), crate::output::width::stdout_width(), 22),
    };
    crate::output::print(&text).context("writing the report")?;
    Ok(report.exit_code())
}

/// The port written in the argument, if any.
pub(super) fn explicit_port(arg: &str) -> Option<u16> {
    let host = arg.rsplit_once('@').map_or(arg, |(_, h)| h);
    host.rsplit_once(':').and_then(|(_, p)| p.parse().ok())
}

/// `ssh -G [-F FILE] HOST`'s output.
pub(super) fn ssh_g(host: &str, config: Option<&std::path::Path>) -> anyhow::Result<String> {
    let mut cmd = Command::new("ssh");
    if let Some(file) = config {
        cmd.arg("-F").arg(file);
    }
    let out = cmd.arg("-G").arg("--").arg(host).output().context("running ssh -G")?;
    if !out.status.success() {
        anyhow::bail!("ssh -G failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_written_in_the_argument() {
        assert_eq!(explicit_port("ec2-user@web-1:2222"), Some(2222));
        assert_eq!(explicit_port("tag:Role=db"), None);
        assert_eq!(explicit_port("web-1"), None);
    }
}
