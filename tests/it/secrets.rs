//! Secrets never reach stderr, stdout or the log file, whatever the verbosity: not when a
//! service's answer dumps the caller's credentials, not during a normal ssm or eice connection.
//! SDK errors are one line, never the SDK's dump (a bad Region). A `ws://` data channel is
//! refused unless the lab's setting allows it. See: issue 14 (§3, §5).

use std::process::Stdio;
use std::time::Duration;

use ec2_lab::{Inventory, Leak, LeakKind};

use crate::harness::{World, broker};

/// A session token of the usual shape: long, with `/`, `+` and `=` that percent-encoding changes.
const SESSION_TOKEN: &str =
    "IQoJb3JpZ2luX2VjEJr//////////wEaCWV1LXdlc3QtMSJHMEUCIQD+secretsTestToken/Zm9vYmFy+YmF6cXV4==";

/// Every form in which the test's credentials must not appear.
fn secrets() -> Vec<String> {
    let encoded: String = SESSION_TOKEN
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    vec![
        ec2_lab::SECRET_ACCESS_KEY.to_string(),
        ec2_lab::ACCESS_KEY_ID.to_string(),
        SESSION_TOKEN.to_string(),
        encoded,
        // A piece of the token, in case something cut or wrapped it.
        "secretsTestToken".to_string(),
    ]
}

/// Panics if any secret shows in `what`.
fn assert_clean(label: &str, what: &str, context: &str) {
    for secret in secrets() {
        assert!(!what.contains(&secret), "{label} shows the secret {secret}:\n{what}\n{context}");
    }
}

/// `ec2-broker -v…` with the test's session token, logging to `log`.
fn broker_command(world: &World, verbosity: usize, log: &std::path::Path, args: &[&str]) -> std::process::Command {
    let mut cmd = world.command(broker());
    cmd.env("AWS_SESSION_TOKEN", SESSION_TOKEN).env_remove("EC2_BROKER_LOG").env("EC2_BROKER_LOG_FILE", log);
    cmd.arg(format!("-{}", "v".repeat(verbosity))).args(args).stdin(Stdio::null());
    cmd
}

#[test]
fn issue_14_credentials_in_error_answers_never_reach_stderr_or_the_log() {
    let world = World::new();
    for kind in [LeakKind::ServiceError, LeakKind::NoErrorCode, LeakKind::Truncated] {
        for verbosity in 1..=3 {
            world.lab.state().set_faults(|f| {
                f.leak = Some(Leak { answers: u32::MAX, operation: Some("DescribeInstances".into()), kind });
            });
            let log = world.path(&format!("leak-{kind:?}-{verbosity}.log"));
            let cmd = broker_command(&world, verbosity, &log, &["proxy", "web-1"]);
            let out = world.run(cmd, Duration::from_secs(60));
            let log_text = std::fs::read_to_string(&log).unwrap_or_default();
            let context = format!("{}\n--- log\n{log_text}", out.describe());
            assert_eq!(out.code(), Some(1), "{context}");
            assert_clean("stderr", &out.stderr, &context);
            assert_clean("stdout", &out.stdout, &context);
            assert_clean("the log", &log_text, &context);
            assert_eq!(out.stderr.lines().count(), 2, "one error line and one hint, no dump: {context}");
            let last_call = world.lab.state().calls().last().map(|c| c.operation.clone());
            assert_eq!(last_call.as_deref(), Some("DescribeInstances"), "{context}");
            match kind {
                LeakKind::ServiceError => assert!(
                    out.stderr.starts_with(
                        "ec2-broker: error: looking up Name=web-1: EC2 DescribeInstances: AuthFailure: The security token included in the request is invalid: <redacted> (request id lab-leak-"
                    ),
                    "{context}"
                ),
                LeakKind::NoErrorCode => assert!(
                    out.stderr.starts_with(
                        "ec2-broker: error: looking up Name=web-1: EC2 DescribeInstances: the endpoint answered HTTP 500 without a readable AWS error (request id lab-leak-"
                    ),
                    "{context}"
                ),
                LeakKind::Truncated => assert!(
                    out.stderr.starts_with(
                        "ec2-broker: error: looking up Name=web-1: EC2 DescribeInstances: the endpoint answered HTTP 200 without a readable AWS error (request id lab-leak-"
                    ),
                    "{context}"
                ),
            }
            if verbosity == 3 {
                // The SDK's own context is there for debugging, with the secrets taken out.
                assert!(log_text.contains("ec2_broker::aws::sdk_error"), "{context}");
                assert!(log_text.contains("<redacted>"), "{context}");
            }
        }
    }
}

#[test]
fn issue_14_an_sts_error_full_of_credentials_stays_out_of_the_doctor_report() {
    let world = World::new();
    world.lab.state().set_faults(|f| {
        f.leak =
            Some(Leak { answers: u32::MAX, operation: Some("GetCallerIdentity".into()), kind: LeakKind::ServiceError });
    });
    let log = world.path("doctor.log");
    let cmd = broker_command(&world, 3, &log, &["doctor", "web-1"]);
    let out = world.run(cmd, Duration::from_secs(120));
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    let context = format!("{}\n--- log\n{log_text}", out.describe());
    assert_clean("stdout", &out.stdout, &context);
    assert_clean("stderr", &out.stderr, &context);
    assert_clean("the log", &log_text, &context);
    let line = out.stdout.lines().find(|l| l.starts_with("credentials")).unwrap_or_default();
    assert!(
        line.contains(
            "STS GetCallerIdentity: InvalidClientTokenId: The security token included in the request is invalid: <redacted> (request id lab-leak-"
        ),
        "{context}"
    );
}

/// A normal connection at `-vvv` over `route`: the session token stays out of every output.
fn connect_at_trace(route: &str) {
    let world = World::with(Inventory::demo(), &format!("--route {route} -vvv"));
    let mut cmd = world.command("ssh");
    cmd.env("AWS_SESSION_TOKEN", SESSION_TOKEN).arg("-F").arg(&world.ssh_config).args(["db-1", "echo ok"]);
    let out = world.run(cmd, Duration::from_secs(60));
    let log_text = std::fs::read_to_string(&world.broker_log).unwrap_or_default();
    let context = format!("{}\n{}", out.describe(), out.context);
    assert!(out.success(), "{context}");
    assert_eq!(out.stdout, "ok\n");
    // -vvv: the SDK's own debug lines are there too.
    assert!(log_text.contains("aws_smithy_runtime"), "the log is at -vvv: {context}");
    assert_clean("stderr", &out.stderr, &context);
    assert_clean("the log", &log_text, &context);
}

#[test]
fn issue_14_no_session_token_in_the_trace_log_of_an_ssm_connection() {
    connect_at_trace("ssm");
}

#[test]
fn issue_14_no_session_token_in_the_trace_log_of_an_eice_connection() {
    connect_at_trace("eice");
}

#[test]
fn issue_14_a_ws_stream_url_is_refused_without_the_lab_setting() {
    let world = World::new();
    let mut cmd = world.command(broker());
    cmd.env_remove("EC2_BROKER_ALLOW_PLAINTEXT_WS").args(["proxy", "--route", "ssm", "db-1"]).stdin(Stdio::null());
    let out = world.run(cmd, Duration::from_secs(60));
    assert_eq!(out.code(), Some(1), "{}\n{}", out.describe(), out.context);
    let ssm = world.lab.ssm_url();
    assert!(
        out.stderr.contains(&format!(
            "refusing the Session Manager stream URL {ssm}/…<redacted>: it is not wss://, and the session token would cross the network unencrypted (EC2_BROKER_ALLOW_PLAINTEXT_WS=1 allows ws:// for local test labs only)"
        )),
        "{}",
        out.describe()
    );
    let sessions = world.lab.ssm_sessions();
    assert_eq!(sessions.len(), 1, "{sessions:#?}");
    assert_eq!(sessions[0].client_connects, 0, "the broker never dialled the ws:// URL");
    assert!(sessions[0].terminated_by_api, "the started session is terminated");
    // The lab's environment carries the setting (every other ssm test runs with it).
    assert!(world.lab.env().contains(&("EC2_BROKER_ALLOW_PLAINTEXT_WS".into(), "1".into())));
}

#[test]
fn issue_14_a_bad_region_is_one_clear_line() {
    let world = World::new();
    let mut cmd = world.command(broker());
    cmd.args(["proxy", "--region", "bad region!", "web-1"]).stdin(Stdio::null());
    let out = world.run(cmd, Duration::from_secs(60));
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert_eq!(
        out.stderr,
        "ec2-broker: error: the Region 'bad region!' is not a valid Region name: Region names are lower-case letters, digits and hyphens, like eu-west-1 (check --region, the host's .REGION suffix, AWS_REGION and the profile's region)\n"
    );
    assert!(world.lab.state().calls().is_empty(), "nothing was sent");
}
