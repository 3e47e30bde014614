//! `ec2-lab up` and `ec2-lab scenarios`: the lab kept running for use by hand, by scripts
//! (`--env-file`) and by other clients, with a scenario and faults set from outside.

use std::fmt::Write as _;
use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};

use crate::Lab;
use crate::cli::UpArgs;
use crate::demo::{find_broker, tempdir, write_ssh_config};
use crate::fault_spec::FaultSpec;
use crate::scenario::{AGENT_OFFLINE, BUILT_IN, Scenario};

/// Starts the lab for the scenario (the demo inventory by default), sets its faults and the
/// command line's, writes the env file, prints what to use by hand, then waits for SIGTERM or
/// SIGINT and stops everything (removing the env file and the lab directory).
pub fn run_up(args: UpArgs) -> anyhow::Result<()> {
    let scenario = Scenario::load(args.scenario.as_deref().unwrap_or("demo"))?;
    let broker = find_broker()?;
    let dir = tempdir()?;
    let lab = Lab::start(scenario.inventory.clone(), &dir)?;
    let no_pacing = args.no_pacing.then_some(FaultSpec::NoPacing);
    for fault in scenario.faults.iter().chain(&no_pacing).chain(&args.faults) {
        fault.apply(lab.state());
    }
    let config = write_ssh_config(&lab, &broker, &dir, "")?;
    let mut env = lab.env();
    env.push(("LAB_SSH_CONFIG".into(), config.display().to_string()));
    env.push(("LAB_DIR".into(), dir.display().to_string()));
    env.extend(scenario.host.clone().map(|h| ("LAB_HOST".to_string(), h)));
    // A shared AMI's key (seed-000): the one key the instance trusts before the broker places one.
    let host = scenario.host.as_deref().and_then(|h| {
        lab.instance_ids()
            .into_iter()
            .find(|id| id == h || lab.state().instance(id).and_then(|i| i.name.as_deref()) == Some(h))
    });
    if let Some(key) = host.and_then(|id| lab.instance(&id).sshd.ami_key.clone()) {
        env.push(("LAB_AMI_KEY".into(), key.display().to_string()));
    }

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    // Listen before announcing readiness, so a SIGTERM right after the env file appears is
    // handled like any other.
    let (mut term, mut int) =
        runtime.block_on(async { anyhow::Ok((signal(SignalKind::terminate())?, signal(SignalKind::interrupt())?)) })?;
    if let Some(path) = &args.env_file {
        write_atomically(path, &env_file(&env)).with_context(|| format!("writing {}", path.display()))?;
    }
    print_summary(&lab, &scenario, &env);
    runtime.block_on(async {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    });
    if let Some(path) = &args.env_file {
        let _ = fs::remove_file(path);
    }
    drop(lab);
    let _ = fs::remove_dir_all(&dir);
    Ok(())
}

/// Prints the built-in scenarios, one a line.
pub fn print_scenarios() -> anyhow::Result<()> {
    let mut out = String::new();
    for (name, description, ..) in BUILT_IN {
        let _ = writeln!(out, "{name:<21} {description}");
    }
    for (name, description, _) in AGENT_OFFLINE {
        let _ = writeln!(out, "{name:<21} {description}");
    }
    out.push_str("(or --scenario FILE: a TOML file with description, host, faults and inventory)\n");
    std::io::stdout().write_all(out.as_bytes()).context("writing to stdout")
}

/// `KEY=VALUE` lines, values single-quoted for the shell when they hold anything but
/// `[A-Za-z0-9_./:,@=+-]`.
pub fn env_file(env: &[(String, String)]) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_./:,@=+-".contains(c);
    env.iter()
        .map(|(k, v)| match v.chars().all(safe) && !v.is_empty() {
            true => format!("{k}={v}\n"),
            false => format!("{k}='{}'\n", v.replace('\'', r"'\''")),
        })
        .collect()
}

/// Writes `text` to `path` through a fresh temporary file in the same directory (random name,
/// `O_EXCL`, so never through a symlink; 0600; fsync) renamed over `path`.
pub fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path.file_name().context("the path names no file")?.to_string_lossy();
    let tmp = dir.join(format!(".{name}.{:016x}.tmp", rand::random::<u64>()));
    let written = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    Ok(written?)
}

fn print_summary(lab: &Lab, scenario: &Scenario, env: &[(String, String)]) {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# ec2-lab is up (scenario {}: {}); paste these into a shell:",
        scenario.name, scenario.description
    );
    for (k, v) in env {
        let _ = writeln!(out, "export {}", env_file(&[(k.clone(), v.clone())]).trim_end());
    }
    let host = scenario.host.as_deref().unwrap_or("web-1");
    let _ = writeln!(out, "# then: ssh -F \"$LAB_SSH_CONFIG\" {host}");
    let _ = writeln!(out, "# instances: {}", lab.instance_ids().join(", "));
    let _ = writeln!(out, "# SSM data channel (StreamUrl base): {}", lab.ssm_url());
    let inventory = &lab.state().inventory;
    for e in &inventory.endpoints {
        let _ = writeln!(
            out,
            "# Instance Connect Endpoint {} ({}, {}): wss://{} served at {} (EC2_BROKER_EICE_CONNECT_TO), \
             certificate from the lab CA ({})",
            e.id,
            e.vpc_id,
            e.state,
            e.dns_name(&inventory.region),
            lab.eice_addr(),
            lab.ca_bundle().display()
        );
    }
    let _ = writeln!(
        out,
        "# serial console: {} (EC2_BROKER_SERIAL_ENDPOINT, host key {}); after SendSerialConsoleSSHPublicKey, \
         log in as <instance-id>.port0",
        lab.serial_addr(),
        lab.serial_fingerprint()
    );
    let _ = writeln!(out, "# SIGTERM or Ctrl-C stops the lab");
    // A closed stdout (the lab run in the background) must not stop the lab.
    let _ = std::io::stdout().write_all(out.as_bytes());
    let _ = std::io::stdout().flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_quote_only_what_the_shell_would_split() {
        let env = [("A".to_string(), "/tmp/x:1".to_string()), ("B".to_string(), "it's here".to_string())];
        assert_eq!(env_file(&env), "A=/tmp/x:1\nB='it'\\''s here'\n");
    }

    #[test]
    fn env_files_are_replaced_whole() {
        let dir = std::env::temp_dir().join(format!("ec2-lab-envfile-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("lab.env");
        write_atomically(&path, "A=1\n").unwrap();
        write_atomically(&path, "A=2\n").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "A=2\n");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1, "no temporary file is left");
        let _ = fs::remove_dir_all(&dir);
    }
}
