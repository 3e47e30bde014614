//! `ec2-broker doctor` against the lab: the exact report (table and JSON) for each kind of
//! instance, IAM denials, and the ssh settings that hide the broker's errors.

use std::time::Duration;

use crate::harness::{Output, World, broker};
use crate::proxy_auto::auto_world;

fn doctor(world: &World, args: &[&str]) -> Output {
    let mut cmd = world.command(broker());
    cmd.arg("doctor").arg("--ssh-config").arg(&world.ssh_config).args(args);
    world.run(cmd, Duration::from_secs(90))
}

/// The report, with the lab's ephemeral ssh port of `id` (if it runs) written as PORT.
fn report(world: &World, id: Option<&str>, args: &[&str]) -> (Option<i32>, String) {
    let out = doctor(world, args);
    assert_eq!(out.stderr, "", "{}", out.describe());
    let text = match id {
        Some(id) => without_port(&out.stdout, world.lab.ssh_port(id)),
        None => out.stdout.clone(),
    };
    (out.code(), without_times(&without_request_ids(&text)))
}

/// `text` with every time of day (`2026-11-30T00:53:20Z`) written as TIME: the lab's agents
/// stop pinging when the lab starts.
fn without_times(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("since 20") {
        let start = at + "since ".len();
        out += &rest[..start];
        let stamp = &rest[start..];
        let len = stamp.find('Z').map_or(0, |z| z + 1);
        if len == "2026-11-30T00:53:20Z".len() {
            out += "TIME";
            rest = &stamp[len..];
        } else {
            rest = stamp;
        }
    }
    out + rest
}

/// `text` with every `(request id UUID)` written as `(request id ID)`: AWS's ids are random.
fn without_request_ids(text: &str) -> String {
    without_ids(&without_ids(text, "(request id "), "(command id ")
}

/// `text` with what follows each `marker` up to `)` written as ID.
fn without_ids(text: &str, marker: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(marker) {
        let start = at + marker.len();
        out += &rest[..start];
        let len = rest[start..].find(')').unwrap_or(0);
        out += "ID";
        rest = &rest[start + len..];
    }
    out + rest
}

/// `text` with `port` written as PORT wherever it stands as a number of its own after ':' or ' '.
fn without_port(text: &str, port: u16) -> String {
    let port = port.to_string();
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(&port) {
        let before = rest[..at].chars().last().or_else(|| out.chars().last());
        let after = rest[at + port.len()..].chars().next();
        out += &rest[..at];
        if matches!(before, Some(':' | ' ')) && !after.is_some_and(|c| c.is_ascii_digit()) {
            out += "PORT";
        } else {
            out += &port;
        }
        rest = &rest[at + port.len()..];
    }
    out + rest
}

/// Compares `actual` with `tests/it/doctor/NAME` (run with `EC2_BROKER_BLESS=1` to rewrite the
/// file after a deliberate change of wording, then review the diff).
fn expect(name: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/doctor").join(name);
    if std::env::var_os("EC2_BROKER_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(actual, expected, "doctor output differs from {}", path.display());
}

#[test]
fn exact_report_for_each_kind_of_instance() {
    let world = auto_world();
    // (host, instance id when it runs, expected exit code)
    let cases = [
        ("web-1", Some("i-0a1b2c3d4e5f60718"), 0),
        ("db-1", Some("i-0f1b2c3d4e5f6071d"), 0),
        ("legacy-1", Some("i-0e1b2c3d4e5f6071c"), 0),
        ("ssm-only", Some("i-0e3000000000000d1"), 0),
        ("eice-only", Some("i-0e3000000000000d2"), 0),
        ("unreachable", Some("i-0e3000000000000d3"), 1),
        ("batch-1", None, 1),
    ];
    for (host, id, code) in cases {
        let (got, text) = report(&world, id, &[host]);
        assert_eq!(got, Some(code), "{host}:\n{text}");
        expect(&format!("{host}.txt"), &text);
    }
    let (code, json) = report(&world, Some("i-0f1b2c3d4e5f6071d"), &["--json", "db-1"]);
    assert_eq!(code, Some(0));
    let parsed: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    assert_eq!(parsed["usable_routes"], serde_json::json!(["eice", "ssm"]));
    crate::output::check_documented(&parsed, "ec2-broker.doctor/1");
    expect("db-1.json", &json);

    // Nothing was left open: every session the doctor started was ended, every tunnel closed.
    let sessions = world.lab.ssm_sessions();
    assert!(!sessions.is_empty());
    assert!(sessions.iter().all(|s| s.ended), "{sessions:#?}");
    // The legacy instance's refusal was seen by its sshd, from the doctor's login probe.
    assert!(world.lab.sshd_log("i-0e1b2c3d4e5f6071c").contains("authenticating user ec2-user"), "{}", world.dump());
}

#[test]
fn iam_denials_name_the_action_to_allow() {
    let world = auto_world();
    world.lab.state().set_faults(|f| {
        f.deny.extend(
            ["ssm:StartSession", "ec2-instance-connect:SendSSHPublicKey", "ec2:DescribeSecurityGroups"]
                .map(String::from),
        )
    });
    let (code, text) = report(&world, Some("i-0f1b2c3d4e5f6071d"), &["db-1"]);
    assert_eq!(code, Some(0), "{text}");
    expect("db-1-denied.txt", &text);

    // Credentials the service does not know: the first row says so.
    let mut cmd = world.command(broker());
    cmd.env("AWS_ACCESS_KEY_ID", "AKIAUNKNOWNEXAMPLE00").args(["doctor", "--no-push", "--json", "web-1"]);
    let out = world.run(cmd, Duration::from_secs(90));
    let parsed: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_else(|_| panic!("{}", out.describe()));
    assert_eq!(parsed["checks"][0]["check"], "credentials");
    assert_eq!(parsed["checks"][0]["result"], "fails", "{}", out.stdout);
    assert!(parsed["checks"][0]["fix"].as_str().unwrap().starts_with("the access key is unknown"), "{}", out.stdout);
}

#[test]
fn warns_about_ssh_settings_that_hide_errors() {
    let world = auto_world();
    // A master connection kept alive: its ProxyCommand's stderr goes to /dev/null.
    let shared = world.path("ssh_config.shared");
    let base = std::fs::read_to_string(&world.ssh_config).unwrap();
    std::fs::write(
        &shared,
        format!(
            "Host *\n    ControlMaster auto\n    ControlPersist 10m\n    ControlPath {}/%C\n\n{base}",
            world.dir.path().display()
        ),
    )
    .unwrap();
    let mut cmd = world.command(broker());
    cmd.arg("doctor").arg("--ssh-config").arg(&shared).args(["--no-push", "web-1"]);
    let out = world.run(cmd, Duration::from_secs(90));
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let warnings: Vec<&str> = out.stdout.lines().filter(|l| l.starts_with("warning: ")).collect();
    assert_eq!(
        warnings,
        [
            "warning: ssh shares connections to web-1 through a master process (ControlMaster auto, ControlPersist 600 s), \
          which sends the ProxyCommand's stderr to /dev/null: the broker's errors will not show. Set EC2_BROKER_LOG_FILE \
          (or add --log-file PATH to the ProxyCommand) to keep them, or run `ssh -o ControlMaster=no web-1` to see them once"
        ],
        "{}",
        out.stdout
    );

    // A configuration without the broker: ssh would not use it at all.
    let mut cmd = world.command(broker());
    cmd.args(["doctor", "--ssh-config", "/dev/null", "--no-push", "--json", "web-1"]);
    let out = world.run(cmd, Duration::from_secs(90));
    let parsed: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_else(|_| panic!("{}", out.describe()));
    let warnings = parsed["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{}", out.stdout);
    assert!(warnings[0].as_str().unwrap().starts_with("ssh's configuration has no ProxyCommand for web-1"));
}

// See: issue 14. A reader that leaves early (`| head`) ends the report quietly, not with a panic.
#[test]
fn issue_14_a_closed_stdout_is_a_quiet_exit() {
    let world = auto_world();
    let mut cmd = world.command("bash");
    cmd.arg("-c")
        .arg(r#"set -o pipefail; "$0" doctor --ssh-config "$1" web-1 | true; echo "status=$?" >&2"#)
        .arg(broker())
        .arg(&world.ssh_config);
    let out = world.run(cmd, Duration::from_secs(90));
    assert!(!out.stderr.contains("panicked"), "{}", out.describe());
    assert!(out.stderr.contains("status=0"), "web-1 works, and the closed pipe is no error: {}", out.describe());
}

// See: issue 14. A broker killed with SIGKILL leaves its key file; doctor says so, and what the
// next connection does with it.
#[test]
fn issue_14_doctor_reports_a_key_file_left_by_a_killed_broker() {
    let world = auto_world();
    let (mut ssh, pid) = crate::harness::process::idle_session(&world, "web-1");
    let kill = std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap();
    assert!(kill.success());
    let _ = ssh.wait();
    let key_file = world.key_dir().join("ec2-user@web-1");
    assert!(key_file.exists(), "a killed broker cannot remove its key file");
    let out = doctor(&world, &["web-1"]);
    let expected =
        format!("a key file left by an ended connection (its broker was killed) is at {} (", key_file.display());
    assert!(out.stdout.contains(&expected), "{}", out.describe());
    assert!(
        out.stdout.contains("the next connection reuses it (pushed again; within the key's 60 s validity)"),
        "{}",
        out.describe()
    );
    assert!(key_file.exists(), "doctor only looks");
}

/// The instance of every agent-offline scenario (`ec2_lab::scenario::AGENT_HOST`).
const APP_1: &str = "i-0a9e000000000a001";

fn scenario_world(name: &str) -> World {
    let scenario = ec2_lab::scenario::Scenario::load(name).unwrap();
    World::with(scenario.inventory, "")
}

// See: issue 16. One lab scenario per reason an SSM agent is offline: each finding with its
// evidence and its fix, in the table and in the JSON, pinned word for word.
#[test]
fn issue_16_why_the_agent_is_offline_per_scenario() {
    for (name, ..) in ec2_lab::scenario::AGENT_OFFLINE {
        let world = scenario_world(name);
        let (code, text) = report(&world, Some(APP_1), &["app-1"]);
        assert_eq!(code, Some(1), "{name}: no route reaches app-1:\n{text}");
        expect(&format!("{name}.txt"), &text);
        let (_, json) = report(&world, Some(APP_1), &["--json", "app-1"]);
        let parsed: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
        let agent: Vec<&serde_json::Value> =
            parsed["checks"].as_array().unwrap().iter().filter(|c| c["check"] == "agent").collect();
        assert!(!agent.is_empty(), "{name}: {json}");
        assert!(agent.iter().all(|c| c["fix"].is_string()), "{name}: every finding names its fix: {json}");
        crate::output::check_documented(&parsed, "ec2-broker.doctor/1");
        expect(&format!("{name}.json"), &json);
    }
}

// See: issue 16. A look the identity may not take (iam:GetInstanceProfile) is named with the
// action to allow, and the other findings still come.
#[test]
fn issue_16_a_denied_look_names_the_action_and_the_rest_go_on() {
    let world = scenario_world("agent-no-route");
    world.lab.state().set_faults(|f| f.deny.extend(["iam:GetInstanceProfile".to_string()]));
    let (code, text) = report(&world, Some(APP_1), &["app-1"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("fix: allow iam:GetInstanceProfile in the IAM policy"), "{text}");
    assert!(text.contains("is private with no way to Systems Manager"), "{text}");
    expect("agent-no-route-denied.txt", &text);
}

// See: issue 16. A healthy online agent costs no call beyond the ones the routes need.
#[test]
fn issue_16_a_healthy_agent_costs_no_extra_call() {
    let world = auto_world();
    let out = doctor(&world, &["--no-push", "db-1"]);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let calls: Vec<String> = world.lab.state().calls().into_iter().map(|c| c.operation).collect();
    for op in [
        "GetInstanceProfile",
        "GetServiceSetting",
        "GetConnectionStatus",
        "DescribeVpcEndpoints",
        "DescribeRouteTables",
        "DescribeNatGateways",
    ] {
        assert!(!calls.iter().any(|c| c == op), "{op} for a healthy agent: {calls:?}");
    }
}

/// `SHA256:…` of a public key file.
fn fingerprint_of(public: &std::path::Path) -> String {
    let out = std::process::Command::new("ssh-keygen").arg("-lf").arg(public).output().unwrap();
    String::from_utf8(out.stdout).unwrap().split_whitespace().nth(1).expect("a fingerprint").to_string()
}

// See: issue 17. seed-000: web-1 was launched with key pair lab-admin, but its authorized_keys
// holds only the AMI owner's key: the doctor says so in words, with the three ways out (the AMI
// key is made afresh by every lab, so its fingerprint is written as SHA256:AMI-KEY).
#[test]
fn issue_17_doctor_explains_key_drift_on_seed_000() {
    let world = scenario_world("seed-000");
    let web_1 = "i-0a1b2c3d4e5f60718";
    let ami_key = world.lab.instance(web_1).sshd.ami_key.clone().expect("LAB_AMI_KEY");
    let ami_fp = fingerprint_of(&ami_key.with_extension("pub"));
    let (code, text) = report(&world, Some(web_1), &["web-1"]);
    let text = text.replace(&ami_fp, "SHA256:AMI-KEY");
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("the AMI carries another account's key: web-1's authorized_keys for ec2-user holds key SHA256:AMI-KEY (ami-owner@other-account), not the key pair lab-admin (SHA256:"), "{text}");
    expect("seed-000.txt", &text);
    let (_, json) = report(&world, Some(web_1), &["--json", "web-1"]);
    let json = json.replace(&ami_fp, "SHA256:AMI-KEY");
    let parsed: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    crate::output::check_documented(&parsed, "ec2-broker.doctor/1");
    expect("seed-000.json", &json);
    // Without an online agent the file cannot be read: the row says so and why.
    world.lab.state().set_ssm_status(web_1, ec2_lab::ssm::SsmStatus::ConnectionLost);
    let (_, text) = report(&world, Some(web_1), &["web-1"]);
    assert!(
        text.contains("key-pair     unknown  could not compare the launch key pair lab-admin with the keys in web-1's authorized_keys for ec2-user: the SSM agent is not online"),
        "{text}"
    );
}

// See: issue 17. Where authorized_keys holds the launch key pair's key, the doctor reads it
// (one read-only Run Command) and says nothing about key pairs.
#[test]
fn issue_17_doctor_says_nothing_about_key_drift_on_a_healthy_instance() {
    let world = World::new();
    let web_1 = "i-0a1b2c3d4e5f60718";
    let keys_file = world.lab.instance(web_1).sshd.authorized_keys.clone();
    let before = std::fs::read(&keys_file).unwrap();
    let (code, text) = report(&world, Some(web_1), &["web-1"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(!text.contains("key-pair") && !text.contains("another account"), "{text}");
    let sent = world.lab.state().run_command.invocations();
    assert_eq!(sent.len(), 1, "the key list was read");
    assert_eq!(std::fs::read(&keys_file).unwrap(), before, "reading writes nothing");
}
