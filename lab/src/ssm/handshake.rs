//! The agent's handshake payloads (`ssm-data-channel.md` §8): the HandshakeRequest it sends for
//! a Port session, what it takes from the client's HandshakeResponse, and HandshakeComplete.
//! Pure functions; JSON keys in the order Go's encoder writes the agent's structs.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::frame::field;

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct HandshakeRequest<'a> {
    agent_version: &'a str,
    requested_client_actions: [RequestedAction<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RequestedAction<'a> {
    action_type: &'static str,
    action_parameters: SessionTypeRequest<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct SessionTypeRequest<'a> {
    session_type: &'static str,
    /// A Go map: its keys come out sorted, as a `BTreeMap`'s do.
    properties: &'a BTreeMap<String, String>,
}

/// The HandshakeRequest payload: one `SessionType` action, `Port`, with the document's properties
/// (no `KMSEncryption`: Port sessions never use KMS, §3).
pub(crate) fn request(agent_version: &str, properties: &BTreeMap<String, String>) -> Vec<u8> {
    let request = HandshakeRequest {
        agent_version,
        requested_client_actions: [RequestedAction {
            action_type: "SessionType",
            action_parameters: SessionTypeRequest { session_type: "Port", properties },
        }],
    };
    serde_json::to_vec(&request).expect("serialising plain structs cannot fail")
}

/// What the agent takes from a HandshakeResponse.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Response {
    /// `ClientVersion`, if given.
    pub(crate) client_version: Option<String>,
    /// Why the session must end: an action with `ActionStatus` ≠ 1, or no JSON at all.
    pub(crate) failure: Option<String>,
}

/// Reads a HandshakeResponse like the agent: keys case-insensitive, every answered action must
/// have status 1, unanswered actions are not noticed (§8.3).
pub(crate) fn check_response(payload: &[u8]) -> Response {
    let Ok(response) = serde_json::from_slice::<Value>(payload) else {
        return Response { client_version: None, failure: Some("HandshakeResponse is not valid JSON".into()) };
    };
    let client_version = field(&response, "ClientVersion").and_then(Value::as_str).map(str::to_string);
    let actions = field(&response, "ProcessedClientActions").and_then(Value::as_array);
    let failure = actions.into_iter().flatten().find_map(|action| {
        let status = field(action, "ActionStatus").and_then(Value::as_i64).unwrap_or(0);
        (status != 1).then(|| {
            let ty = field(action, "ActionType").and_then(Value::as_str).unwrap_or("");
            let error = field(action, "Error").and_then(Value::as_str).unwrap_or("");
            format!("{ty} failed on client with status {status} error: {error}")
        })
    });
    Response { client_version, failure }
}

/// The HandshakeComplete payload; Go marshals a `time.Duration` as integer nanoseconds.
pub(crate) fn complete(took: Duration) -> Vec<u8> {
    format!("{{\"HandshakeTimeToComplete\":{},\"CustomerMessage\":\"\"}}", took.as_nanos()).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_for_port_forwarding_has_sorted_properties() {
        let props: BTreeMap<String, String> =
            [("type", "LocalPortForwarding"), ("portNumber", "22"), ("localPortNumber", "0")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        assert_eq!(
            String::from_utf8(request("3.3.1142.0", &props)).unwrap(),
            r#"{"AgentVersion":"3.3.1142.0","RequestedClientActions":[{"ActionType":"SessionType","ActionParameters":{"SessionType":"Port","Properties":{"localPortNumber":"0","portNumber":"22","type":"LocalPortForwarding"}}}]}"#
        );
    }

    #[test]
    fn response_statuses() {
        let ok = br#"{"ClientVersion":"1.2.677.0","ProcessedClientActions":[{"ActionType":"SessionType","ActionStatus":1,"ActionResult":null,"Error":""}],"Errors":null}"#;
        assert_eq!(check_response(ok), Response { client_version: Some("1.2.677.0".into()), failure: None });
        let unsupported = br#"{"processedclientactions":[{"actiontype":"SessionType","actionstatus":3,"error":"no"}]}"#;
        assert_eq!(
            check_response(unsupported).failure.as_deref(),
            Some("SessionType failed on client with status 3 error: no")
        );
        assert_eq!(check_response(b"{}").failure, None, "no actions answered is not noticed");
        assert!(check_response(b"nope").failure.is_some());
        assert_eq!(complete(Duration::from_millis(2)), br#"{"HandshakeTimeToComplete":2000000,"CustomerMessage":""}"#);
    }
}
