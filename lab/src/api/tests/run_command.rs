//! The Run Command double (`keys-and-shell.md` §1.1–§1.4): validation, the consistency window,
//! statuses and exit codes, output limits, an offline agent.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::test_world::{World, json_as};
use crate::{ACCESS_KEY_ID, Inventory, SsmStatus};

const WEB_1: &str = "i-0a1b2c3d4e5f60718";

fn call(w: &World, op: &str, body: Value) -> (u16, Value) {
    let (status, text) = json_as(&w.lab, ACCESS_KEY_ID, &format!("AmazonSSM.{op}"), &body.to_string());
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn send(w: &World, commands: &[&str], extra: Value) -> (u16, Value) {
    let mut body = json!({
        "DocumentName": "AWS-RunShellScript",
        "InstanceIds": [WEB_1],
        "Parameters": { "commands": commands, "executionTimeout": ["30"] },
        "TimeoutSeconds": 30,
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    call(w, "SendCommand", body)
}

/// Polls until the invocation is terminal.
fn wait(w: &World, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = call(w, "GetCommandInvocation", json!({ "CommandId": id, "InstanceId": WEB_1 }));
        if status == 200 && !["Pending", "InProgress"].contains(&body["Status"].as_str().unwrap_or("")) {
            return body;
        }
        assert!(Instant::now() < deadline, "{body}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn run_shell_script_runs_as_root_and_reports_like_aws() {
    let w = crate::test_world::start("run-command", Inventory::demo());
    w.lab.state().run_command.set_not_yet(Duration::from_millis(300));
    let (status, body) =
        send(&w, &["cd /tmp", "echo $(id -u) $(pwd) $AWS_SSM_INSTANCE_ID", "echo oops >&2"], json!({}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["Command"]["Status"], "Pending");
    assert_eq!(body["Command"]["Parameters"]["commands"][0], "cd /tmp");
    let id = body["Command"]["CommandId"].as_str().unwrap().to_string();
    // Eventual consistency: not there at once (and an empty list meanwhile).
    let (status, early) = call(&w, "GetCommandInvocation", json!({ "CommandId": id, "InstanceId": WEB_1 }));
    assert_eq!((status, early["__type"].as_str()), (400, Some("InvocationDoesNotExist")));
    let (_, list) = call(&w, "ListCommandInvocations", json!({ "CommandId": id }));
    assert_eq!(list["CommandInvocations"], json!([]));
    let done = wait(&w, &id);
    assert_eq!(done["Status"], "Success", "{done}");
    assert_eq!(done["ResponseCode"], 0);
    assert_eq!(done["StandardOutputContent"], format!("0 /tmp {WEB_1}\n"));
    assert_eq!(done["StandardErrorContent"], "oops\n");
    let (_, list) = call(&w, "ListCommandInvocations", json!({ "CommandId": id, "Details": true }));
    assert_eq!(list["CommandInvocations"][0]["CommandPlugins"][0]["Name"], "aws:runShellScript");

    // Failed with the exit status; 194 is recorded as a reboot request; the agent's cwd is /usr/bin.
    let (_, body) = send(&w, &["pwd", "exit 7"], json!({}));
    let done = wait(&w, body["Command"]["CommandId"].as_str().unwrap());
    assert_eq!((done["Status"].as_str(), done["ResponseCode"].as_i64()), (Some("Failed"), Some(7)));
    assert_eq!(done["StandardOutputContent"], "/usr/bin\n");
    // Output is cut at 24,000 characters.
    let (_, body) = send(&w, &["head -c 30000 /dev/zero | tr '\\0' x"], json!({}));
    let done = wait(&w, body["Command"]["CommandId"].as_str().unwrap());
    assert_eq!(done["StandardOutputContent"].as_str().unwrap().len(), 24_000);

    // Validation.
    let (status, body) = send(&w, &["true"], json!({ "DocumentName": "AWS-Nope" }));
    assert_eq!((status, body["__type"].as_str()), (400, Some("InvalidDocument")));
    let (_, body) = send(&w, &[], json!({}));
    assert_eq!(body["__type"], "InvalidParameters");
    let (_, body) = send(&w, &["true"], json!({ "TimeoutSeconds": 5 }));
    assert_eq!(body["__type"], "ValidationException");
    let big = "x".repeat(70 * 1024);
    let (_, body) = send(&w, &[big.as_str()], json!({}));
    assert_eq!(body["__type"], "MaxDocumentSizeExceeded");
    let (_, body) = call(&w, "GetCommandInvocation", json!({ "CommandId": "nope", "InstanceId": WEB_1 }));
    assert_eq!(body["__type"], "InvalidCommandId");

    // An offline agent: InvalidInstanceId in AWS's words.
    w.lab.state().set_ssm_status(WEB_1, SsmStatus::ConnectionLost);
    let (_, body) = send(&w, &["true"], json!({}));
    assert_eq!(body["__type"], "InvalidInstanceId");
    assert!(body["Message"].as_str().unwrap().contains("not in a valid state for account 123456789012"), "{body}");
}
