//! SSM Run Command double: SendCommand, GetCommandInvocation and ListCommandInvocations
//! (`../shared/spec/keys-and-shell.md` §1.1–§1.3, "What the lab double must reproduce" 1–3).
//! `AWS-RunShellScript` really runs ([`crate::run_command`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::ssm::{fail, fail_lower, missing};
use crate::civil_time;
use crate::run_command::{Invocation, MAX_STDERR, MAX_STDOUT, Progress};
use crate::ssm::SsmStatus;
use crate::state::State;

/// The one document the double runs.
const RUN_SHELL_SCRIPT: &str = "AWS-RunShellScript";
/// Its one plugin (step) name.
const PLUGIN: &str = "aws:runShellScript";
/// `MaxDocumentSizeExceeded`: "the size limit of a document is 64 KB" (§1.1).
const MAX_DOCUMENT: usize = 64 * 1024;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct SendCommandInput {
    document_name: Option<String>,
    #[serde(default)]
    instance_ids: Vec<String>,
    #[serde(default)]
    targets: Vec<Value>,
    #[serde(default)]
    parameters: BTreeMap<String, Vec<String>>,
    timeout_seconds: Option<i64>,
    comment: Option<String>,
}

pub(super) fn send_command(state: &Arc<State>, req: SendCommandInput) -> Response {
    let Some(document) = req.document_name.filter(|d| !d.is_empty()) else {
        return missing("documentName");
    };
    let timeout = req.timeout_seconds.unwrap_or(3600);
    if !(30..=2_592_000).contains(&timeout) {
        return fail_lower(
            "ValidationException",
            &format!(
                "1 validation error detected: Value '{timeout}' at 'timeoutSeconds' failed to satisfy constraint: Member must have value between 30 and 2592000"
            ),
        );
    }
    if req.comment.as_ref().is_some_and(|c| c.chars().count() > 100) {
        return fail_lower(
            "ValidationException",
            "1 validation error detected: Value at 'comment' failed to satisfy constraint: Member must have length less than or equal to 100",
        );
    }
    if document != RUN_SHELL_SCRIPT {
        return fail(
            "InvalidDocument",
            &format!("Document {document} does not exist in the lab: it runs {RUN_SHELL_SCRIPT}"),
        );
    }
    if let Some(unknown) =
        req.parameters.keys().find(|k| !["commands", "workingDirectory", "executionTimeout"].contains(&k.as_str()))
    {
        return fail("InvalidParameters", &format!("Parameter \"{unknown}\" is not defined in document {document}."));
    }
    let commands = req.parameters.get("commands").cloned().unwrap_or_default();
    if commands.is_empty() {
        return fail(
            "InvalidParameters",
            "Parameters provided: [] do not match parameters defined in document: missing required parameter commands.",
        );
    }
    let execution = match req.parameters.get("executionTimeout").map(Vec::as_slice) {
        None => 3600,
        Some([v]) if v.parse::<u64>().is_ok_and(|n| (1..=172_800).contains(&n)) => v.parse::<u64>().unwrap_or(3600),
        Some(other) => {
            return fail(
                "InvalidParameters",
                &format!(
                    "Parameter \"executionTimeout\" value {other:?} does not match the pattern ([1-9][0-9]{{0,4}})|(1[0-6][0-9]{{4}})|(17[0-1][0-9]{{3}})|(172[0-7][0-9]{{2}})|(172800)."
                ),
            );
        }
    };
    let script = commands.join("\n");
    if script.len() > MAX_DOCUMENT {
        return fail("MaxDocumentSizeExceeded", "The size limit of a document is 64 KB.");
    }
    if !req.targets.is_empty() || req.instance_ids.len() != 1 {
        return fail("InvalidParameters", "The lab runs a command on exactly one instance, named in InstanceIds.");
    }
    let id = &req.instance_ids[0];
    let running = state.instance(id).is_some_and(|i| i.state == "running");
    if !running || state.ssm_status(id) != SsmStatus::Online || !state.run_command.knows(id) {
        return fail(
            "InvalidInstanceId",
            &format!("Instances [[{id}]] not in a valid state for account {}", state.inventory.account),
        );
    }
    let now = state.now();
    // The agent replaces an execution timeout below 5 s with 3600 (§1.4).
    let execution = if execution < 5 { 3600 } else { execution };
    let inv = Invocation {
        command_id: state.next_id(""),
        instance_id: id.clone(),
        comment: req.comment.unwrap_or_default(),
        parameters: req.parameters.clone(),
        requested: now,
        expires_after: now + timeout as u64 + execution,
        timeout_seconds: timeout as u64,
        script,
        sent_at: Instant::now(),
        progress: Arc::new(Mutex::new(Progress::pending())),
    };
    let answer = json!({ "Command": {
        "CommandId": inv.command_id,
        "DocumentName": RUN_SHELL_SCRIPT,
        "DocumentVersion": "$DEFAULT",
        "Comment": inv.comment,
        "ExpiresAfter": inv.expires_after,
        "Parameters": inv.parameters,
        "InstanceIds": [id],
        "Targets": [],
        "RequestedDateTime": now,
        "Status": "Pending",
        "StatusDetails": "Pending",
        "MaxConcurrency": "50",
        "MaxErrors": "0",
        "TargetCount": 1,
        "CompletedCount": 0,
        "ErrorCount": 0,
        "DeliveryTimedOutCount": 0,
        "TimeoutSeconds": inv.timeout_seconds,
    }});
    state.run_command.start(inv, &state.inventory.region, Duration::from_secs(execution));
    super::json(axum::http::StatusCode::OK, answer)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct GetInvocationInput {
    command_id: Option<String>,
    instance_id: Option<String>,
    plugin_name: Option<String>,
}

pub(super) fn get_command_invocation(state: &Arc<State>, req: GetInvocationInput) -> Response {
    let Some(command_id) = req.command_id.filter(|c| !c.is_empty()) else { return missing("commandId") };
    let Some(instance_id) = req.instance_id.filter(|c| !c.is_empty()) else { return missing("instanceId") };
    if req.plugin_name.as_deref().is_some_and(|p| p != PLUGIN) {
        return fail("InvalidPluginName", "The plugin name isn't valid.");
    }
    let Some(inv) = state.run_command.find(&command_id) else {
        return fail("InvalidCommandId", "");
    };
    if inv.instance_id != instance_id || inv.sent_at.elapsed() < state.run_command.not_yet() {
        return fail("InvocationDoesNotExist", "");
    }
    let p = progress(state, &inv);
    let time = |t: Option<u64>| t.map(iso).unwrap_or_default();
    let elapsed = match (p.started, p.ended) {
        (Some(s), Some(e)) => format!("PT{}S", e.saturating_sub(s)),
        _ => String::new(),
    };
    let done = p.ended.is_some();
    super::json(
        axum::http::StatusCode::OK,
        json!({
            "CommandId": inv.command_id,
            "InstanceId": inv.instance_id,
            "Comment": inv.comment,
            "DocumentName": RUN_SHELL_SCRIPT,
            "DocumentVersion": "$DEFAULT",
            "PluginName": PLUGIN,
            "ResponseCode": p.response_code,
            "ExecutionStartDateTime": time(p.started),
            "ExecutionElapsedTime": elapsed,
            "ExecutionEndDateTime": time(p.ended),
            "Status": p.status,
            "StatusDetails": p.details,
            // Both empty until the command is done (§1.2).
            "StandardOutputContent": if done { cut(&p.stdout, MAX_STDOUT) } else { String::new() },
            "StandardOutputUrl": "",
            "StandardErrorContent": if done { cut(&p.stderr, MAX_STDERR) } else { String::new() },
            "StandardErrorUrl": "",
            "CloudWatchOutputConfig": { "CloudWatchLogGroupName": "", "CloudWatchOutputEnabled": false },
        }),
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ListInvocationsInput {
    command_id: Option<String>,
    instance_id: Option<String>,
    #[serde(default)]
    details: bool,
}

pub(super) fn list_command_invocations(state: &Arc<State>, req: ListInvocationsInput) -> Response {
    if let Some(id) = req.command_id.as_deref()
        && state.run_command.find(id).is_none()
    {
        return fail("InvalidCommandId", "");
    }
    let not_yet = state.run_command.not_yet();
    let items: Vec<Value> = state
        .run_command
        .invocations()
        .iter()
        .filter(|i| req.command_id.as_deref().is_none_or(|c| c == i.command_id))
        .filter(|i| req.instance_id.as_deref().is_none_or(|c| c == i.instance_id))
        // Right after SendCommand: an empty list (§1.3).
        .filter(|i| i.sent_at.elapsed() >= not_yet)
        .map(|inv| {
            let p = progress(state, inv);
            let mut item = json!({
                "CommandId": inv.command_id,
                "InstanceId": inv.instance_id,
                "InstanceName": "",
                "Comment": inv.comment,
                "DocumentName": RUN_SHELL_SCRIPT,
                "DocumentVersion": "$DEFAULT",
                "RequestedDateTime": inv.requested,
                "Status": p.status,
                "StatusDetails": p.details,
                "TraceOutput": "",
                "CommandPlugins": [],
            });
            if req.details {
                item["CommandPlugins"] = json!([{
                    "Name": PLUGIN,
                    "Status": p.status,
                    "StatusDetails": p.details,
                    "ResponseCode": p.response_code,
                    "Output": cut(&format!("{}{}", p.stdout, p.stderr), 2500),
                }]);
            }
            item
        })
        .collect();
    super::json(axum::http::StatusCode::OK, json!({ "CommandInvocations": items }))
}

/// The invocation's progress, with a command never picked up timed out at `ExpiresAfter`.
fn progress(state: &State, inv: &Invocation) -> Progress {
    let mut p = crate::state::lock(&inv.progress).clone();
    if p.status == "Pending" && state.now() >= inv.expires_after {
        (p.status, p.details) = ("TimedOut", "Delivery Timed Out");
    }
    p
}

/// The first `max` characters.
fn cut(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// `2026-11-23T08:30:00.000Z`, as the API prints execution times.
fn iso(secs: u64) -> String {
    let c = civil_time::from_unix(secs);
    format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.000Z", c.year, c.month, c.day, c.hour, c.minute, c.second)
}
