//! `ec2-lab up` as a process, as scripts use it: a scenario, faults from the command line, and
//! the env file it writes once ready, sourced by a shell that then runs plain ssh through the
//! broker; SIGTERM stops it and removes the file.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::refusal;
use crate::harness::run::wait_deadline;
use crate::harness::{broker, run};

/// The `ec2-lab` binary next to the broker's, built first: `cargo test --test it` builds only
/// the broker's package, and a stale binary would test old code (cargo's no-op build is quick).
fn ec2_lab() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "--locked", "-q", "-p", "ec2-lab", "--bin", "ec2-lab"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("running cargo build");
    assert!(out.status.success(), "cargo build -p ec2-lab: {}", String::from_utf8_lossy(&out.stderr));
    broker().with_file_name("ec2-lab")
}

/// Kills the lab process if the test fails before it sends SIGTERM itself.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// `KEY=VALUE` lines (values possibly single-quoted) of an env file.
fn read_env(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
        .collect()
}

// See: issue 18
#[test]
fn issue_18_up_writes_an_env_file_that_plain_ssh_uses() {
    let dir = tempfile::Builder::new().prefix("ec2-lab-up-").tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let env_file = dir.path().join("lab.env");
    let lab_log = fs::File::create(dir.path().join("ec2-lab.log")).unwrap();
    let lab = Command::new(ec2_lab())
        .args(["up", "--scenario", "web-1", "--no-pacing", "--fault", "throttle:1", "--env-file"])
        .arg(&env_file)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()))
        .env("TMPDIR", dir.path())
        .env("EC2_BROKER_BIN", broker())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(lab_log)
        .spawn()
        .unwrap();
    let mut lab = Running(lab);
    let deadline = Instant::now() + Duration::from_secs(90);
    while !env_file.exists() {
        let log = || fs::read_to_string(dir.path().join("ec2-lab.log")).unwrap_or_default();
        assert!(lab.0.try_wait().unwrap().is_none(), "ec2-lab up exited: {}", log());
        assert!(Instant::now() < deadline, "no env file after 90 s: {}", log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = fs::read_to_string(&env_file).unwrap();
    let env = read_env(&text);
    let get = |k: &str| env.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()).unwrap_or_default();
    assert_eq!(get("LAB_HOST"), "web-1", "{text}");
    for key in
        ["AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_CA_BUNDLE", "EC2_BROKER_SERIAL_ENDPOINT", "LAB_SSH_CONFIG"]
    {
        assert!(!get(key).is_empty(), "{key} in {text}");
    }

    // The fault from the command line is set: the first call is throttled (no retries here).
    let endpoint = get("AWS_ENDPOINT_URL");
    let throttled = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&endpoint)
            .region(aws_config::Region::new(get("AWS_REGION")))
            .credentials_provider(aws_credential_types::Credentials::new(
                get("AWS_ACCESS_KEY_ID"),
                get("AWS_SECRET_ACCESS_KEY"),
                None,
                None,
                "env-file",
            ))
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .load()
            .await;
        refusal(aws_sdk_ec2::Client::new(&config).describe_instances().send().await)
    });
    assert_eq!(throttled.code, "RequestLimitExceeded", "{throttled:?}");

    // A shell sources the file and runs plain ssh through the broker.
    let mut shell = Command::new("bash");
    shell
        .arg("-c")
        .arg(r#"set -a; . "$1"; set +a; ssh -F "$LAB_SSH_CONFIG" "$LAB_HOST" 'echo reached $(hostname -s 2>/dev/null || true)'"#)
        .arg("bash")
        .arg(&env_file)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()))
        .env("HOME", dir.path().join("home"));
    let out = run(shell, Duration::from_secs(90));
    assert!(out.success() && out.stdout.starts_with("reached"), "{}", out.describe());

    let pid = rustix::process::Pid::from_child(&lab.0);
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let status = wait_deadline(&mut lab.0, Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "ec2-lab up ends cleanly on SIGTERM: {status:?}");
    assert!(!env_file.exists(), "the env file is removed when the lab stops");
}
