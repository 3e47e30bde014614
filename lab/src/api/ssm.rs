//! SSM API double (`AmazonSSM.*`, awsJson1_1): the session operations of
//! `../shared/spec/ssm-data-channel.md` §2 and DescribeInstanceInformation of
//! `../shared/spec/aws-apis.md` §2.2. Sessions themselves live in `crate::ssm`; Run Command in
//! [`super::run_command`].

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use super::{Protocol, error, json};
use crate::ssm::{self, SsmStatus};
use crate::state::State;

pub(super) fn handle(state: &Arc<State>, operation: &str, body: &[u8]) -> Response {
    let body: &[u8] = if body.is_empty() { b"{}" } else { body };
    let answer = match operation {
        "StartSession" => parse(body).map(|req| start_session(state, req)),
        "ResumeSession" => parse(body).map(|req| resume_session(state, req)),
        "TerminateSession" => parse(body).map(|req| terminate_session(state, req)),
        "DescribeInstanceInformation" => parse(body).map(|req| describe(state, req)),
        "GetServiceSetting" => parse(body).map(|req| super::ssm_agent::get_service_setting(state, req)),
        "GetConnectionStatus" => parse(body).map(|req| super::ssm_agent::get_connection_status(state, req)),
        "GetDocument" => parse(body).map(|req| super::ssm_documents::get_document(state, req)),
        "SendCommand" => parse(body).map(|req| super::run_command::send_command(state, req)),
        "GetCommandInvocation" => parse(body).map(|req| super::run_command::get_command_invocation(state, req)),
        "ListCommandInvocations" => parse(body).map(|req| super::run_command::list_command_invocations(state, req)),
        _ => {
            return error(
                Protocol::Json,
                StatusCode::BAD_REQUEST,
                "UnknownOperationException",
                &format!("{operation} is not supported by the lab"),
            );
        }
    };
    answer.unwrap_or_else(|e| {
        error(Protocol::Json, StatusCode::BAD_REQUEST, "SerializationException", &format!("invalid request: {e}"))
    })
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> serde_json::Result<T> {
    serde_json::from_slice(body)
}

pub(super) fn fail(code: &str, message: &str) -> Response {
    error(Protocol::Json, StatusCode::BAD_REQUEST, code, message)
}

/// Errors whose model member is the lower-case `message` (ValidationException, and
/// InvalidInstanceInformationFilterValue per aws-apis.md §2.2).
pub(super) fn fail_lower(code: &str, message: &str) -> Response {
    json(StatusCode::BAD_REQUEST, json!({ "__type": code, "message": message }))
}

/// A required member is missing or empty.
pub(super) fn missing(member: &str) -> Response {
    fail_lower(
        "ValidationException",
        &format!(
            "1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
        ),
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StartSessionInput {
    target: Option<String>,
    document_name: Option<String>,
    #[serde(default)]
    parameters: BTreeMap<String, Vec<String>>,
    reason: Option<String>,
}

/// The documents the double runs, with their parameters and defaults (§3).
fn document(name: &str) -> Option<(&'static [(&'static str, &'static str)], bool)> {
    match name {
        "AWS-StartSSHSession" => Some((&[("portNumber", "22")], false)),
        "AWS-StartPortForwardingSession" => Some((&[("portNumber", "80"), ("localPortNumber", "0")], true)),
        _ => None,
    }
}

fn start_session(state: &Arc<State>, req: StartSessionInput) -> Response {
    let Some(target) = req.target.filter(|t| !t.is_empty()) else {
        return missing("target");
    };
    if req.reason.as_ref().is_some_and(|r| !(1..=256).contains(&r.len())) || target.len() > 400 {
        return fail_lower(
            "ValidationException",
            "1 validation error detected: Value at 'reason' or 'target' has an invalid length",
        );
    }
    let name = req.document_name.unwrap_or_default();
    if let Some(shell) = super::ssm_documents::shell_session(state, &name, &req.parameters) {
        return match shell {
            Ok((config, document)) => start_shell(state, &target, document, config),
            Err(refusal) => refusal,
        };
    }
    let Some((params, local_port_forwarding)) = document(&name) else {
        let what = if name.is_empty() { "the default shell document".to_string() } else { name };
        return fail(
            "InvalidDocument",
            &format!(
                "{what} is not available in the lab: it runs AWS-StartSSHSession and AWS-StartPortForwardingSession"
            ),
        );
    };
    let mut properties = BTreeMap::new();
    for (key, default) in params {
        properties.insert((*key).to_string(), (*default).to_string());
    }
    for (key, values) in &req.parameters {
        if !properties.contains_key(key) {
            return fail("InvalidParameters", &format!("Parameter \"{key}\" is not defined in document {name}."));
        }
        let [value] = values.as_slice() else {
            return fail("InvalidParameters", &format!("Parameter \"{key}\" takes exactly one value."));
        };
        let range = if key == "localPortNumber" { 0..=65535 } else { 1..=65535 };
        if !value.parse::<u32>().is_ok_and(|p| range.contains(&p)) {
            return fail("InvalidParameters", &format!("Parameter \"{key}\" value \"{value}\" is not a valid port."));
        }
        properties.insert(key.clone(), value.clone());
    }
    if local_port_forwarding {
        properties.insert("type".into(), "LocalPortForwarding".into());
    }

    let spec = state.inventory.get(&target);
    let agent_target = state.ssm.target(&target);
    let (Some(spec), Some(agent_target)) = (spec, agent_target) else {
        return fail("TargetNotConnected", &format!("{target} is not connected."));
    };
    // `ssm_connected = false`: the agent pings, but its session channel is down.
    if spec.state != "running" || state.ssm_status(&target) != SsmStatus::Online || !spec.ssm_connected {
        return fail("TargetNotConnected", &format!("{target} is not connected."));
    }
    // The agent dials localhost:<portNumber> on the instance (§10.2). The lab's instances share
    // the lab machine's localhost, except that their sshd answers on 22 and its nominal port.
    let port = &properties["portNumber"];
    let destination = if port == "22" || *port == agent_target.ssh_port.to_string() {
        Some(agent_target.sshd)
    } else {
        port.parse::<u16>().ok().map(|p| SocketAddr::from((Ipv4Addr::LOCALHOST, p)))
    };
    let config = ssm::AgentConfig {
        version: spec.ssm_agent_version.clone(),
        properties,
        local_port_forwarding,
        destination,
        shell: None,
        // Port sessions never use KMS, even when the preferences name a key (§3).
        kms_key_id: None,
        require_kms_challenge: false,
    };
    let session = ssm::start_session(state, &target, &name, config);
    let token = session.issue_token(state.now_millis()).unwrap_or_default();
    json(StatusCode::OK, json!({ "SessionId": session.id, "TokenValue": token, "StreamUrl": session.stream_url }))
}

/// A shell-plugin session (`Standard_Stream`, `InteractiveCommands`, `NonInteractiveCommands`)
/// with the account's preferences: KMS key, Run As, shell profile.
fn start_shell(state: &Arc<State>, target: &str, document: &str, shell: ssm::shell::ShellConfig) -> Response {
    let connected = state.inventory.get(target).is_some_and(|s| s.state == "running")
        && state.ssm.target(target).is_some()
        && state.ssm_status(target) == SsmStatus::Online;
    let Some(spec) = state.inventory.get(target).filter(|_| connected) else {
        return fail("TargetNotConnected", &format!("{target} is not connected."));
    };
    let prefs = state.inventory.session_preferences.clone().unwrap_or_default();
    let config = ssm::AgentConfig {
        version: spec.ssm_agent_version.clone(),
        properties: BTreeMap::new(),
        local_port_forwarding: false,
        destination: None,
        shell: Some(shell),
        kms_key_id: Some(prefs.kms_key_id).filter(|k| !k.is_empty()),
        require_kms_challenge: prefs.require_kms_challenge,
    };
    let session = ssm::start_session(state, target, document, config);
    let token = session.issue_token(state.now_millis()).unwrap_or_default();
    json(StatusCode::OK, json!({ "SessionId": session.id, "TokenValue": token, "StreamUrl": session.stream_url }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SessionIdInput {
    session_id: Option<String>,
}

fn resume_session(state: &State, req: SessionIdInput) -> Response {
    let Some(sid) = req.session_id.filter(|s| !s.is_empty()) else {
        return missing("sessionId");
    };
    let Some(session) = state.ssm.get(&sid) else {
        return fail("DoesNotExistException", &format!("Session {sid} does not exist."));
    };
    match session.issue_token(state.now_millis()) {
        Some(token) => {
            json(StatusCode::OK, json!({ "SessionId": sid, "TokenValue": token, "StreamUrl": session.stream_url }))
        }
        None if state.ssm_faults().resume_ended_empty_token => {
            json(StatusCode::OK, json!({ "SessionId": sid, "TokenValue": "" }))
        }
        None => fail("DoesNotExistException", &format!("Session {sid} does not exist or has ended.")),
    }
}

fn terminate_session(state: &State, req: SessionIdInput) -> Response {
    let Some(sid) = req.session_id.filter(|s| !s.is_empty()) else {
        return missing("sessionId");
    };
    // Terminating an unknown or ended session succeeds, as the API is idempotent.
    if let Some(session) = state.ssm.get(&sid) {
        session.end("TerminateSession API", true);
    }
    json(StatusCode::OK, json!({ "SessionId": sid }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DescribeInput {
    filters: Option<Vec<Filter>>,
    instance_information_filter_list: Option<Vec<LegacyFilter>>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Filter {
    key: String,
    #[serde(default)]
    values: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegacyFilter {
    key: String,
    #[serde(default)]
    value_set: Vec<String>,
}

/// The keys of the legacy `InstanceInformationFilterList` (`InstanceInformationFilterKey`).
const LEGACY_FILTER_KEYS: &[&str] = &[
    "ActivationIds",
    "AgentVersion",
    "AssociationStatus",
    "IamRole",
    "InstanceIds",
    "PingStatus",
    "PlatformTypes",
    "ResourceType",
];

/// The keys `Filters` accepts beyond those (`InstanceInformationStringFilter.Key`), and
/// `tag:<key>`.
const FILTER_KEYS: &[&str] = &["SourceIds", "SourceTypes", "tag-key"];

/// `SourceType` of an EC2 instance.
const SOURCE_TYPE: &str = "AWS::EC2::Instance";

/// An EC2 instance id or a hybrid managed node id (`mi-`), lower-case hex.
fn managed_node_id(id: &str) -> bool {
    let hex = id.strip_prefix("i-").or_else(|| id.strip_prefix("mi-")).unwrap_or_default();
    !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `DescribeInstanceInformation` (spec §2.2): `Filters` (every documented key, `tag:<key>`)
/// or the legacy `InstanceInformationFilterList` (its own keys only), not both;
/// `InvalidFilterKey` for any other key.
fn describe(state: &State, req: DescribeInput) -> Response {
    let max = req.max_results.unwrap_or(10);
    if !(5..=50).contains(&max) {
        return fail_lower(
            "ValidationException",
            &format!(
                "1 validation error detected: Value '{max}' at 'maxResults' failed to satisfy constraint: Member must have value {} 5 and {} 50",
                "greater than or equal to", "less than or equal to"
            ),
        );
    }
    if req.filters.is_some() && req.instance_information_filter_list.is_some() {
        return fail_lower(
            "ValidationException",
            "InstanceInformationFilterList and Filters cannot be used together: use Filters",
        );
    }
    let legacy = req.instance_information_filter_list.is_some();
    let filters: Vec<(String, Vec<String>)> = req
        .filters
        .into_iter()
        .flatten()
        .map(|f| (f.key, f.values))
        .chain(req.instance_information_filter_list.into_iter().flatten().map(|f| (f.key, f.value_set)))
        .collect();
    for (key, values) in &filters {
        let known = LEGACY_FILTER_KEYS.contains(&key.as_str())
            || (!legacy
                && (FILTER_KEYS.contains(&key.as_str()) || key.strip_prefix("tag:").is_some_and(|k| !k.is_empty())));
        if !known {
            return json(StatusCode::BAD_REQUEST, json!({ "__type": "InvalidFilterKey" }));
        }
        if !(1..=100).contains(&values.len()) {
            return fail_lower("InvalidInstanceInformationFilterValue", &format!("{key} needs 1 to 100 values"));
        }
        if key == "InstanceIds"
            && let Some(bad) = values.iter().find(|v| !managed_node_id(v))
        {
            return fail_lower("InvalidInstanceInformationFilterValue", &format!("{bad} is not a valid instance id"));
        }
    }
    let mut list = Vec::new();
    for inst in state.inventory.instances.iter().filter(|i| i.state == "running") {
        let status = state.ssm_status(&inst.id);
        let Some(ping) = status.ping_status() else { continue };
        let platform = if inst.platform.as_deref() == Some("windows") { "Windows" } else { "Linux" };
        let tags: Vec<(String, String)> =
            inst.name.iter().map(|n| ("Name".to_string(), n.clone())).chain(inst.tags.clone()).collect();
        let facts = |key: &str| -> Vec<String> {
            match key {
                "InstanceIds" | "SourceIds" => vec![inst.id.clone()],
                "PingStatus" => vec![ping.to_string()],
                "PlatformTypes" => vec![platform.to_string()],
                "ResourceType" => vec!["EC2Instance".to_string()],
                "SourceTypes" => vec![SOURCE_TYPE.to_string()],
                "AgentVersion" => vec![inst.ssm_agent_version.clone()],
                "tag-key" => tags.iter().map(|(k, _)| k.clone()).collect(),
                // ActivationIds (hybrid nodes only), AssociationStatus (the lab runs no State
                // Manager association) and IamRole (not reported for EC2 instances) match none.
                _ => match key.strip_prefix("tag:") {
                    Some(k) => tags.iter().filter(|(t, _)| t == k).map(|(_, v)| v.clone()).collect(),
                    None => Vec::new(),
                },
            }
        };
        let keep = filters.iter().all(|(key, values)| facts(key).iter().any(|fact| values.contains(fact)));
        if !keep {
            continue;
        }
        let ip = inst.private_ip.map(|ip| ip.to_string());
        list.push(json!({
            "InstanceId": inst.id,
            "PingStatus": ping,
            "LastPingDateTime": state.ssm_last_ping(&inst.id),
            "AgentVersion": inst.ssm_agent_version,
            "IsLatestVersion": false,
            "PlatformType": platform,
            "PlatformName": if platform == "Linux" { "Amazon Linux" } else { "Microsoft Windows Server 2022 Datacenter" },
            "PlatformVersion": if platform == "Linux" { "2023" } else { "10.0.20348" },
            "ResourceType": "EC2Instance",
            "IPAddress": ip,
            "SourceId": inst.id,
            "SourceType": SOURCE_TYPE,
            "ComputerName": format!("ip-{}.{}.compute.internal", ip.unwrap_or_default().replace('.', "-"), state.inventory.region),
        }));
    }
    let start =
        match req.next_token.as_deref().map(|t| t.strip_prefix("lab-next-").and_then(|n| n.parse::<usize>().ok())) {
            None => 0,
            Some(Some(n)) if n <= list.len() => n,
            Some(_) => return fail("InvalidNextToken", "The specified token is not valid."),
        };
    let end = (start + max as usize).min(list.len());
    let mut out = json!({ "InstanceInformationList": list[start..end] });
    if end < list.len() {
        out["NextToken"] = json!(format!("lab-next-{end}"));
    }
    json(StatusCode::OK, out)
}
