//! The Session Manager documents of the SSM double: the shell documents StartSession runs
//! (no `DocumentName` or `SSM-SessionManagerRunShell`: `Standard_Stream` with the account's
//! preferences; `AWS-StartInteractiveCommand`; `AWS-StartNonInteractiveCommand`), their
//! parameters, and `GetDocument` (`Name`, `DocumentVersion`, `DocumentFormat`), whose
//! `SSM-SessionManagerRunShell` content follows the Session document schema
//! (session-manager-schema.md) so a client can read `kmsKeyId` and Run As from it.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Protocol, error, json};
use crate::inventory::SessionPreferences;
use crate::ssm::shell::{ShellConfig, ShellKind};
use crate::state::State;

/// The preferences document (`keys-and-shell.md` §5).
pub(super) const RUN_SHELL: &str = "SSM-SessionManagerRunShell";

fn fail(code: &str, message: &str) -> Response {
    error(Protocol::Json, StatusCode::BAD_REQUEST, code, message)
}

/// What a shell document runs, or the API's refusal. `None`: not a shell document.
pub(super) fn shell_session(
    state: &State,
    name: &str,
    parameters: &BTreeMap<String, Vec<String>>,
) -> Option<Result<(ShellConfig, &'static str), Response>> {
    let prefs = state.inventory.session_preferences.clone().unwrap_or_default();
    let run_as = prefs.run_as_enabled.then(|| prefs.run_as_default_user.clone());
    let mut config = ShellConfig {
        kind: ShellKind::Standard,
        command: String::new(),
        run_as,
        shell_profile: prefs.shell_profile_linux.clone(),
        separate_output: false,
        stdout_prefix: String::new(),
        stderr_prefix: String::new(),
    };
    let (kind, allowed): (ShellKind, &[&str]) = match name {
        "" | RUN_SHELL => (ShellKind::Standard, &[]),
        "AWS-StartInteractiveCommand" => (ShellKind::Interactive, &["command"]),
        "AWS-StartNonInteractiveCommand" => (
            ShellKind::NonInteractive,
            &["command", "separateOutputStream", "stdoutSeparatorPrefix", "stderrSeparatorPrefix"],
        ),
        _ => return None,
    };
    config.kind = kind;
    let document: &'static str = match name {
        "" | RUN_SHELL => RUN_SHELL,
        "AWS-StartInteractiveCommand" => "AWS-StartInteractiveCommand",
        _ => "AWS-StartNonInteractiveCommand",
    };
    let mut single = BTreeMap::new();
    for (key, values) in parameters {
        if !allowed.contains(&key.as_str()) {
            return Some(Err(fail(
                "InvalidParameters",
                &format!("Parameter \"{key}\" is not defined in document {document}."),
            )));
        }
        let [value] = values.as_slice() else {
            return Some(Err(fail("InvalidParameters", &format!("Parameter \"{key}\" takes exactly one value."))));
        };
        single.insert(key.as_str(), value.clone());
    }
    if kind != ShellKind::Standard {
        let Some(command) = single.get("command") else {
            return Some(Err(fail(
                "InvalidParameters",
                &format!("Parameter \"command\" is required by document {document}."),
            )));
        };
        config.command = command.clone();
    }
    if let Some(v) = single.get("separateOutputStream") {
        config.separate_output = match v.as_str() {
            "true" => true,
            "false" => false,
            _ => {
                return Some(Err(fail(
                    "InvalidParameters",
                    &format!(
                        "Parameter \"separateOutputStream\" value \"{v}\" is not one of the allowed values [true, false]."
                    ),
                )));
            }
        };
    }
    config.stdout_prefix = single.get("stdoutSeparatorPrefix").cloned().unwrap_or_default();
    config.stderr_prefix = single.get("stderrSeparatorPrefix").cloned().unwrap_or_default();
    Some(Ok((config, document)))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct GetDocumentInput {
    name: Option<String>,
    document_version: Option<String>,
    version_name: Option<String>,
    document_format: Option<String>,
}

/// `GetDocument` of a Session Manager document.
pub(super) fn get_document(state: &State, req: GetDocumentInput) -> Response {
    let Some(name) = req.name.filter(|n| !n.is_empty()) else {
        return json(
            StatusCode::BAD_REQUEST,
            json!({"__type": "ValidationException", "message": "1 validation error detected: Value null at 'name' failed to satisfy constraint: Member must not be null"}),
        );
    };
    let Some(content) = content(state, &name) else {
        return fail("InvalidDocument", &format!("Document with name {name} does not exist."));
    };
    if req.document_version.as_deref().is_some_and(|v| v != "1" && v != "$LATEST" && v != "$DEFAULT")
        || req.version_name.is_some()
    {
        return fail("InvalidDocumentVersion", "The document version is not valid or does not exist.");
    }
    let format = req.document_format.unwrap_or_else(|| "JSON".into());
    let text = match format.as_str() {
        "JSON" => serde_json::to_string_pretty(&content).unwrap_or_default(),
        "YAML" => yaml(&content, 0),
        _ => {
            return fail(
                "InvalidDocumentOperation",
                &format!("DocumentFormat {format} is not supported for Session documents."),
            );
        }
    };
    json(
        StatusCode::OK,
        json!({
            "Name": name, "DocumentVersion": "1", "Status": "Active", "Content": text,
            "DocumentType": "Session", "DocumentFormat": format, "CreatedDate": state.now() as f64,
        }),
    )
}

fn content(state: &State, name: &str) -> Option<Value> {
    let shell = |cmd: &str| json!({"linux": {"commands": cmd, "runAsElevated": false}, "windows": {"commands": cmd, "runAsElevated": false}, "macos": {"commands": cmd, "runAsElevated": false}});
    let command = json!({"type": "String", "description": "The command to run on the instance"});
    Some(match name {
        RUN_SHELL => preferences(state.inventory.session_preferences.as_ref()?),
        "AWS-StartSSHSession" => json!({"schemaVersion": "1.0", "description": "Document to start SSH session",
            "sessionType": "Port", "parameters": {"portNumber": {"type": "String", "description": "(Optional) Port number of SSH server on the instance", "allowedPattern": "^([1-9]|[1-9][0-9]{1,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$", "default": "22"}},
            "properties": {"portNumber": "{{ portNumber }}"}}),
        "AWS-StartInteractiveCommand" => {
            json!({"schemaVersion": "1.0", "description": "Document to run single interactive command on an instance",
            "sessionType": "InteractiveCommands", "parameters": {"command": command}, "properties": shell("{{command}}")})
        }
        "AWS-StartNonInteractiveCommand" => {
            json!({"schemaVersion": "1.0", "description": "Document to run single non-interactive command on an instance",
            "sessionType": "NonInteractiveCommands", "parameters": {"command": command,
                "separateOutputStream": {"type": "String", "allowedValues": ["true", "false"], "default": "false"},
                "stdoutSeparatorPrefix": {"type": "String", "default": ""}, "stderrSeparatorPrefix": {"type": "String", "default": ""}},
            "properties": shell("{{command}}")})
        }
        _ => return None,
    })
}

/// The preferences as the console saves them (session-manager-schema.md `inputs`).
fn preferences(p: &SessionPreferences) -> Value {
    json!({
        "schemaVersion": "1.0",
        "description": "Document to hold regional settings for Session Manager",
        "sessionType": "Standard_Stream",
        "inputs": {
            "s3BucketName": "", "s3KeyPrefix": "", "s3EncryptionEnabled": true,
            "cloudWatchLogGroupName": "", "cloudWatchEncryptionEnabled": true, "cloudWatchStreamingEnabled": false,
            "kmsKeyId": p.kms_key_id, "runAsEnabled": p.run_as_enabled, "runAsDefaultUser": p.run_as_default_user,
            "idleSessionTimeout": p.idle_session_timeout.to_string(), "maxSessionDuration": "",
            "shellProfile": {"windows": "", "linux": p.shell_profile_linux},
        }
    })
}

/// A small YAML writer for document content (objects, arrays, strings, booleans, numbers).
fn yaml(v: &Value, indent: usize) -> String {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| match v {
                Value::Object(m) if !m.is_empty() => format!("{pad}{k}:\n{}", yaml(v, indent + 2)),
                Value::Array(a) if !a.is_empty() => format!("{pad}{k}:\n{}", yaml(v, indent + 2)),
                _ => format!("{pad}{k}: {}\n", scalar(v)),
            })
            .collect(),
        Value::Array(items) => items.iter().map(|i| format!("{pad}- {}\n", scalar(i))).collect(),
        other => format!("{pad}{}\n", scalar(other)),
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => Value::from(s.as_str()).to_string(),
        Value::Object(m) if m.is_empty() => "{}".into(),
        Value::Array(a) if a.is_empty() => "[]".into(),
        other => other.to_string(),
    }
}
