//! JSON payloads of the data channel: the open frame (§4.1), acknowledgements (§7.1),
//! `channel_closed` (§7.2) and the handshake (§8). Field names are the wire's, so the
//! structs use `PascalCase` renames; key order matters for byte-exact acks and follows the spec.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::redact::Redacted;

/// The `ClientVersion` we announce, chosen deliberately (§8, §10.4): above `1.2.331.0`, so an
/// agent never enables smux keepalives that would cut idle sessions after 30 s, and equal to the
/// official plugin release the spec was read from, so agent-side version checks behave as they do
/// for that plugin. `AWS-StartSSHSession` never uses smux, whatever the version.
pub(crate) const CLIENT_VERSION: &str = "1.2.677.0";

/// `ActionStatus` values (§8).
pub(crate) mod status {
    /// The action was carried out.
    pub(crate) const SUCCESS: i32 = 1;
    /// The action failed.
    pub(crate) const FAILED: i32 = 2;
    /// The action is not supported by this client.
    pub(crate) const UNSUPPORTED: i32 = 3;
}

/// The first websocket frame, as text (§4.1).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct OpenDataChannel<'a> {
    /// Always `"1.0"`.
    pub message_schema_version: &'a str,
    /// Fresh per open.
    pub request_id: String,
    /// The bearer token from StartSession or ResumeSession (the one place it is sent).
    #[serde(serialize_with = "crate::redact::serialize_exposed")]
    pub token_value: Redacted<&'a str>,
    /// Fixed for the process, reused on reconnects.
    pub client_id: String,
    /// [`CLIENT_VERSION`].
    pub client_version: &'a str,
}

/// Payload of an `acknowledge` message (§7.1), keys in the official order.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Acknowledge {
    /// Type of the acknowledged message.
    #[serde(rename = "AcknowledgedMessageType", default)]
    pub message_type: String,
    /// Id of the acknowledged message (the receivers ignore it).
    #[serde(rename = "AcknowledgedMessageId", default)]
    pub message_id: String,
    /// The sequence number acknowledged: the only field receivers match on.
    #[serde(rename = "AcknowledgedMessageSequenceNumber")]
    pub sequence: i64,
    /// Always true.
    #[serde(rename = "IsSequentialMessage", default)]
    pub sequential: bool,
}

/// Payload of `channel_closed` (§7.2): only the fields we show.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct ChannelClosed {
    /// The session that ended.
    pub session_id: String,
    /// Human-readable reason (idle timeout, terminated ...), often empty.
    pub output: String,
}

/// Agent → client, payload type 5 (§8 step 1).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct HandshakeRequest {
    /// The agent's version string.
    #[serde(default)]
    pub agent_version: String,
    /// What the agent asks the client to do.
    #[serde(default)]
    pub requested_client_actions: Vec<RequestedAction>,
}

/// One requested action.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct RequestedAction {
    /// `SessionType`, `KMSEncryption`, or something newer.
    pub action_type: String,
    /// Parameters, shape depending on the type.
    #[serde(default)]
    pub action_parameters: Value,
}

/// Client → agent, payload type 6 (§8 step 2).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct HandshakeResponse {
    /// [`CLIENT_VERSION`].
    pub client_version: &'static str,
    /// One entry per requested action, in order.
    pub processed_client_actions: Vec<ProcessedAction>,
    /// Texts of the failures, or null.
    pub errors: Option<Vec<String>>,
}

/// The answer to one requested action.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ProcessedAction {
    /// Echo of the requested type.
    pub action_type: String,
    /// One of [`status`].
    pub action_status: i32,
    /// Always null for the actions we carry out.
    pub action_result: Value,
    /// Empty on success.
    pub error: String,
}

/// Agent → client, payload type 7 (§8 step 5).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct HandshakeComplete {
    /// Nanoseconds the handshake took, by the agent's clock.
    #[serde(default)]
    // Read by serde, kept as the agent sends it (spec §7.3); nothing acts on it yet.
    #[allow(dead_code)]
    pub handshake_time_to_complete: i64,
    /// Text the official plugin prints on stdout; we log it instead.
    #[serde(default)]
    pub customer_message: String,
}

/// How the client answered a handshake request, and whether it can go on.
#[derive(Debug)]
pub(crate) struct Answer {
    /// The response payload (JSON).
    pub response: Vec<u8>,
    /// Why the session cannot work, if it cannot.
    pub refusal: Option<String>,
}

/// Answers a handshake request for a stdin/stdout port session (`AWS-StartSSHSession`).
///
/// `SessionType` `Port` without `type` is the only session this client runs; KMS encryption is
/// never used for port sessions by the agent (§3), so a request for it means something unexpected
/// and is answered as unsupported (the agent then ends the session, and the refusal says why).
pub(crate) fn answer(request: &HandshakeRequest) -> Answer {
    let mut refusal = None;
    let mut errors = Vec::new();
    let processed = request
        .requested_client_actions
        .iter()
        .map(|action| {
            let (status, error) = match action.action_type.as_str() {
                "SessionType" => session_type_status(&action.action_parameters),
                "KMSEncryption" => (
                    status::UNSUPPORTED,
                    "KMS session encryption is not supported by ec2-broker for port sessions".to_string(),
                ),
                other => (status::UNSUPPORTED, format!("unsupported action {other}")),
            };
            if status != status::SUCCESS {
                errors.push(error.clone());
                refusal.get_or_insert_with(|| error.clone());
            }
            ProcessedAction {
                action_type: action.action_type.clone(),
                action_status: status,
                action_result: Value::Null,
                error,
            }
        })
        .collect();
    let response = HandshakeResponse {
        client_version: CLIENT_VERSION,
        processed_client_actions: processed,
        errors: if errors.is_empty() { None } else { Some(errors) },
    };
    // Serialising plain structs of strings and numbers cannot fail.
    let response = serde_json::to_vec(&response).expect("handshake response serialises");
    Answer { response, refusal }
}

fn session_type_status(params: &Value) -> (i32, String) {
    let session_type = params.get("SessionType").and_then(Value::as_str).unwrap_or("");
    let kind = params.get("Properties").and_then(|p| p.get("type")).and_then(Value::as_str);
    match (session_type, kind) {
        ("Port", None) => (status::SUCCESS, String::new()),
        ("Port", Some(kind)) => (
            status::FAILED,
            format!("the session document asks for {kind} port forwarding; ec2-broker needs AWS-StartSSHSession"),
        ),
        (other, _) => (
            status::FAILED,
            format!(
                "the session document starts a {other:?} session; ec2-broker needs a Port session (AWS-StartSSHSession)"
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_session_is_accepted_like_the_spec_example() {
        let req: HandshakeRequest = serde_json::from_str(
            r#"{"AgentVersion":"3.3.1142.0","RequestedClientActions":[{"ActionType":"SessionType",
               "ActionParameters":{"SessionType":"Port","Properties":{"portNumber":"22"}}}]}"#,
        )
        .unwrap();
        let a = answer(&req);
        assert!(a.refusal.is_none());
        // §16.6, byte for byte.
        assert_eq!(
            String::from_utf8(a.response).unwrap(),
            r#"{"ClientVersion":"1.2.677.0","ProcessedClientActions":[{"ActionType":"SessionType","ActionStatus":1,"ActionResult":null,"Error":""}],"Errors":null}"#
        );
    }

    #[test]
    fn kms_and_other_session_types_are_refused_with_reasons() {
        let req: HandshakeRequest = serde_json::from_str(
            r#"{"AgentVersion":"3.3.1142.0","RequestedClientActions":[
                {"ActionType":"SessionType","ActionParameters":{"SessionType":"Standard_Stream","Properties":null}},
                {"ActionType":"KMSEncryption","ActionParameters":{"KMSKeyId":"k"}}]}"#,
        )
        .unwrap();
        let a = answer(&req);
        assert!(a.refusal.unwrap().contains("Standard_Stream"));
        let v: Value = serde_json::from_slice(&a.response).unwrap();
        assert_eq!(v["ProcessedClientActions"][0]["ActionStatus"], 2);
        assert_eq!(v["ProcessedClientActions"][1]["ActionStatus"], 3);
        assert_eq!(v["Errors"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn ack_json_is_byte_exact() {
        let ack = Acknowledge {
            message_type: "output_stream_data".into(),
            message_id: "11111111-2222-3333-4444-555555555555".into(),
            sequence: 7,
            sequential: true,
        };
        assert_eq!(
            serde_json::to_string(&ack).unwrap(),
            r#"{"AcknowledgedMessageType":"output_stream_data","AcknowledgedMessageId":"11111111-2222-3333-4444-555555555555","AcknowledgedMessageSequenceNumber":7,"IsSequentialMessage":true}"#
        );
    }
}
