//! `ec2-lab`'s command line (clap types only, no I/O).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::fault_spec::FaultSpec;

/// Local doubles of the AWS endpoints ec2-broker talks to (EC2, Instance Connect, SSM, STS,
/// IMDS, the EICE tunnel and the serial console), on 127.0.0.1, with real sshd.
#[derive(Debug, Parser)]
#[command(name = "ec2-lab", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run ssh, scp and rsync through ec2-broker against a fresh lab, then log in at a serial
    /// console.
    Demo,
    /// Start the lab and keep it running until SIGTERM or Ctrl-C.
    Up(UpArgs),
    /// List the built-in scenarios.
    Scenarios,
    /// Benchmark the direct route against plain ssh.
    Bench(BenchArgs),
    /// Benchmark the eice and ssm routes against the direct route.
    BenchRoutes(BenchArgs),
    /// Benchmark the known_hosts audit.
    BenchKnownHosts(BenchArgs),
    /// Benchmark cold and warm connections through --route auto.
    BenchWarm(BenchArgs),
    /// Benchmark a login with the key placed by Instance Connect vs by SSM Run Command.
    BenchPlacement(BenchArgs),
    /// Benchmark `ec2-broker ls` over 2,000 instances in three Regions.
    BenchLs(BenchArgs),
    /// Benchmark `ec2-broker shell`: keystroke round trip and throughput, KMS off and on.
    BenchShell(BenchArgs),
    /// Benchmark `ec2-broker cp` through the paced SSM agent: one stream against four.
    BenchCp(BenchArgs),
}

/// `ec2-lab up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// A built-in scenario (`ec2-lab scenarios`) or a scenario file (TOML: description, host,
    /// faults, inventory).
    #[arg(long, value_name = "NAME|FILE")]
    pub scenario: Option<String>,
    /// The SSM agent relays without its 1 KiB / 1 ms pacing (as `--fault no-pacing`).
    #[arg(long)]
    pub no_pacing: bool,
    /// A fault to set once the lab is up; repeatable. For example `throttle:2`,
    /// `ssm-bye:65536`, `ssm-drop-after:5`, `agent-offline:i-0f1b2c3d4e5f6071d`,
    /// `deny:ssm:StartSession`, `latency:200:DescribeInstances`, `fail:1:SendSSHPublicKey`,
    /// `down`, `eice-close:1011:gone`, `serial-access:off` (all of them: lab/README.md).
    #[arg(long = "fault", value_name = "SPEC", value_parser = parse_fault)]
    pub faults: Vec<FaultSpec>,
    /// Once the lab is ready, write `KEY=VALUE` lines here (atomically): the broker's
    /// environment, `LAB_SSH_CONFIG` and, for a scenario about one instance, `LAB_HOST`. Load it
    /// with `set -a; . FILE; set +a`. Removed when the lab stops.
    #[arg(long, value_name = "FILE")]
    pub env_file: Option<PathBuf>,
}

/// `--quick` of the benchmarks.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// A smaller, faster run.
    #[arg(long)]
    pub quick: bool,
}

fn parse_fault(spec: &str) -> Result<FaultSpec, String> {
    spec.parse()
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_cli_is_consistent_and_parses_up() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "ec2-lab",
            "up",
            "--scenario",
            "ssm-bye",
            "--no-pacing",
            "--fault",
            "throttle:2",
            "--fault",
            "down",
            "--env-file",
            "/tmp/f",
        ])
        .unwrap();
        let Command::Up(up) = cli.command else { panic!("up") };
        assert_eq!(up.faults, [FaultSpec::Throttle { count: 2, operation: None }, FaultSpec::Down]);
        assert!(up.no_pacing && up.scenario.as_deref() == Some("ssm-bye"));
        let err = Cli::try_parse_from(["ec2-lab", "up", "--fault", "explode"]).unwrap_err();
        assert!(err.to_string().contains("unknown fault"), "{err}");
        assert!(matches!(
            Cli::try_parse_from(["ec2-lab", "bench-routes", "--quick"]).unwrap().command,
            Command::BenchRoutes(BenchArgs { quick: true })
        ));
    }
}
