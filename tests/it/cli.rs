use std::process::Command;
use std::time::Duration;

use crate::harness::{broker, run};

#[test]
fn contrib_ssh_config_parses_with_real_ssh() {
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/ssh_config");
    let mut cmd = Command::new("ssh");
    cmd.args(["-G", "-F", config, "web-1.ec2"]);
    let out = run(cmd, Duration::from_secs(10));
    assert!(out.success(), "{}", out.describe());
    assert!(out.stdout.contains("proxycommand ec2-broker proxy %r@%h:%p\n"), "{}", out.stdout);
    assert!(out.stdout.contains("user ec2-user\n"), "{}", out.stdout);
    assert!(out.stdout.contains("identityfile ~/.cache/ec2-broker/keys/%r@%h\n"), "{}", out.stdout);
    // The per-account pattern: another profile and Region through ProxyCommand flags.
    let mut cmd = Command::new("ssh");
    cmd.args(["-G", "-F", config, "i-0123456789abcdef0.prod"]);
    let out = run(cmd, Duration::from_secs(10));
    assert!(out.success(), "{}", out.describe());
    assert!(
        out.stdout.contains(
            "proxycommand ec2-broker proxy --profile prod --region us-east-1 --strip-suffix .prod %r@%h:%p\n"
        ),
        "{}",
        out.stdout
    );
    // The serial console block: the user comes from the command line, a terminal is forced.
    let mut cmd = Command::new("ssh");
    cmd.args(["-G", "-F", config, "i-0123456789abcdef0.port0@i-0123456789abcdef0.serial"]);
    let out = run(cmd, Duration::from_secs(10));
    assert!(out.success(), "{}", out.describe());
    for line in [
        "proxycommand ec2-broker proxy --route serial --strip-suffix .serial %r@%h:%p\n",
        "user i-0123456789abcdef0.port0\n",
        "requesttty force\n",
        "stricthostkeychecking accept-new\n",
    ] {
        assert!(out.stdout.contains(line), "{line}: {}", out.stdout);
    }
}

#[test]
fn help_and_usage_errors() {
    let out = run(
        {
            let mut c = Command::new(broker());
            c.args(["proxy", "--help"]);
            c
        },
        Duration::from_secs(10),
    );
    assert!(out.success());
    assert!(out.stdout.contains("--key-delivery"), "{}", out.stdout);
    let out = run(
        {
            let mut c = Command::new(broker());
            c.args(["proxy"]);
            c
        },
        Duration::from_secs(10),
    );
    assert_eq!(out.code(), Some(2), "clap's usage errors exit 2");
    assert!(out.stderr.contains("[USER@]HOST[:PORT]"), "{}", out.stderr);
    let mut c = Command::new(broker());
    c.args(["console", "--help"]);
    let out = run(c, Duration::from_secs(10));
    assert!(out.success());
    for needle in ["~. leaves", "password", "scp and rsync cannot run over it", "--log-session", "--serial-fingerprint"]
    {
        assert!(out.stdout.contains(needle), "{needle}: {}", out.stdout);
    }
}

// See: issue 14. An empty exported setting means "unset", as for ssh and the AWS CLI: before,
// `EC2_BROKER_LOG_FILE=` made every command fail with "a value is required".
#[test]
fn issue_14_empty_environment_values_are_unset() {
    let known_hosts = tempfile::NamedTempFile::new().unwrap();
    let mut cmd = Command::new(broker());
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs([("EC2_BROKER_LOG_FILE", ""), ("EC2_BROKER_ROUTE", ""), ("AWS_PROFILE", ""), ("EC2_BROKER_CONFIG", "")])
        .args(["known-hosts", "audit", "--offline"])
        .arg(known_hosts.path());
    let out = run(cmd, Duration::from_secs(30));
    assert!(!out.stderr.contains("a value is required"), "{}", out.describe());
    assert_eq!(out.code(), Some(0), "{}", out.describe());
}

// See: issue 16 (`ec2-broker shell`): the usage errors need no AWS.
#[test]
fn issue_16_shell_usage_errors() {
    let broker_with = |args: &[&str]| {
        let mut c = Command::new(broker());
        c.args(args);
        run(c, Duration::from_secs(10))
    };
    let out = broker_with(&["shell", "--help"]);
    assert!(out.success(), "{}", out.describe());
    for text in ["--user", "AWS-StartNonInteractiveCommand", "SSMSessionRunAs", "-- <COMMAND>..."] {
        assert!(out.stdout.contains(text), "{text}: {}", out.stdout);
    }
    // No host: clap's usage error, exit 2.
    let out = broker_with(&["shell"]);
    assert_eq!(out.code(), Some(2), "{}", out.describe());
    assert!(out.stderr.contains("<HOST>"), "{}", out.stderr);
    // A command without `--` is not taken for one.
    let out = broker_with(&["shell", "web-1", "uptime"]);
    assert_eq!(out.code(), Some(2), "{}", out.describe());
    assert!(out.stderr.contains("unexpected argument 'uptime'"), "{}", out.stderr);
}
