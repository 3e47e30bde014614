//! JSON payloads of the data channel: the open frame (§4.1), acknowledgements (§7.1),
//! `channel_closed` (§7.2), the handshake (§8), the KMS action and challenge (§11) and `Size`. Field names are the wire's, so the
//! structs use `PascalCase` renames; key order matters for byte-exact acks and follows the spec.

use std::collections::BTreeMap;

use russh::keys::ssh_key::encoding::base64::{Base64, Encoding};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::session_kind::SessionKind;
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
    /// The KMS key blob for `KMSEncryption`, null otherwise.
    pub action_result: Option<KmsResult>,
    /// Empty on success.
    pub error: String,
}

/// `ActionResult` of a successful `KMSEncryption` action (§11.3), keys in the official order.
#[derive(Debug, Serialize)]
pub(crate) struct KmsResult {
    /// `CiphertextBlob` of the data key, standard padded base64 (Go's `[]byte` encoding).
    #[serde(rename = "KMSCipherTextKey")]
    pub cipher_text_key: String,
    /// Always null (the official plugin's value).
    #[serde(rename = "KMSCipherTextHash")]
    pub cipher_text_hash: Option<String>,
    /// True when the key was generated with `aws:ssm:RandomChallenge` in its context, so
    /// agents that require the challenge (`RequireKMSChallengeResponse`) accept us.
    #[serde(rename = "ChallengeAcknowledgement")]
    pub challenge_acknowledgement: bool,
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

/// `EncChallengeRequest` (8) and `EncChallengeResponse` (9): 64 bytes encrypted with the
/// sender's key, as base64 (§11.8).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Challenge {
    /// Base64 of `nonce ‖ ciphertext ‖ tag`.
    #[serde(rename = "Challenge")]
    pub challenge: String,
}

/// `Size` (3): the terminal's size, exactly `{"cols":..,"rows":..}` (§16.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Size {
    /// Columns.
    pub cols: u32,
    /// Rows.
    pub rows: u32,
}

/// What the session must ask KMS for before it can answer a `KMSEncryption` action (§11.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyRequest {
    /// `KMSKeyId` as the agent named it (id, ARN or alias).
    pub key_id: String,
    /// `EncryptionContext`: `aws:ssm:SessionId`, `aws:ssm:TargetId`, and
    /// `aws:ssm:RandomChallenge` (the `Challenge` string as received) when the agent sent one.
    pub context: BTreeMap<String, String>,
}

/// The session and target a KMS key is bound to (its encryption context, §11.2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SessionIds {
    /// `SessionId` from StartSession.
    pub session_id: String,
    /// The StartSession `Target` (the instance id).
    pub target_id: String,
}

/// The `KMSEncryption` action's parameters.
#[derive(Debug, Deserialize)]
struct KmsParameters {
    #[serde(rename = "KMSKeyId", default)]
    key_id: String,
    #[serde(rename = "Challenge", default)]
    challenge: Option<String>,
}

/// How the client answers a handshake request: every action but `KMSEncryption` is decided at
/// once; that one waits for the data key ([`Plan::finish`]).
#[derive(Debug)]
pub(crate) struct Plan {
    actions: Vec<ProcessedAction>,
    errors: Vec<String>,
    refusal: Option<String>,
    kms: Option<KmsAction>,
}

#[derive(Debug)]
struct KmsAction {
    index: usize,
    request: KeyRequest,
    challenge: bool,
}

/// The response to send, and whether the session can go on.
#[derive(Debug)]
pub(crate) struct Answer {
    /// The response payload (JSON).
    pub response: Vec<u8>,
    /// Why the session cannot work, if it cannot.
    pub refusal: Option<String>,
}

/// Decides the answer to a handshake request for a session of `kind`.
///
/// `SessionType` must match `kind` ([`SessionKind::check`]). `KMSEncryption` is carried out for
/// shell and command sessions; a `Port` session never uses KMS (the agent does not encrypt them,
/// §3), so a request for it there means something unexpected and is answered as unsupported.
/// Unknown actions are answered unsupported, which makes the agent end the session.
pub(crate) fn plan(request: &HandshakeRequest, kind: SessionKind, ids: &SessionIds) -> Plan {
    let mut plan = Plan { actions: Vec::new(), errors: Vec::new(), refusal: None, kms: None };
    for action in &request.requested_client_actions {
        let (status, error) = match action.action_type.as_str() {
            "SessionType" => match kind.check(&action.action_parameters) {
                Ok(()) => (status::SUCCESS, String::new()),
                Err(why) => (status::FAILED, why),
            },
            "KMSEncryption" if !kind.may_encrypt() => (
                status::UNSUPPORTED,
                "KMS session encryption is not supported by ec2-broker for port sessions".to_string(),
            ),
            "KMSEncryption" if plan.kms.is_some() => {
                (status::FAILED, "the agent asked for KMS encryption twice".to_string())
            }
            "KMSEncryption" => match serde_json::from_value::<KmsParameters>(action.action_parameters.clone()) {
                Ok(p) if !p.key_id.is_empty() => {
                    let mut context = BTreeMap::new();
                    context.insert("aws:ssm:SessionId".to_string(), ids.session_id.clone());
                    context.insert("aws:ssm:TargetId".to_string(), ids.target_id.clone());
                    let challenge = p.challenge.filter(|c| !c.is_empty());
                    if let Some(c) = &challenge {
                        context.insert("aws:ssm:RandomChallenge".to_string(), c.clone());
                    }
                    let request = KeyRequest { key_id: p.key_id, context };
                    plan.kms = Some(KmsAction { index: plan.actions.len(), request, challenge: challenge.is_some() });
                    // Decided by `finish`.
                    (status::SUCCESS, String::new())
                }
                _ => (status::FAILED, "the agent's KMSEncryption action names no key".to_string()),
            },
            other => (status::UNSUPPORTED, format!("unsupported action {other}")),
        };
        if status != status::SUCCESS {
            plan.errors.push(error.clone());
            plan.refusal.get_or_insert_with(|| error.clone());
        }
        plan.actions.push(ProcessedAction {
            action_type: action.action_type.clone(),
            action_status: status,
            action_result: None,
            error,
        });
    }
    plan
}

impl Plan {
    /// The data key to ask KMS for, when the answer waits for one. `None` when another action
    /// was already refused: the session cannot work, so KMS is not called.
    pub(crate) fn key_request(&self) -> Option<&KeyRequest> {
        self.kms.as_ref().filter(|_| self.refusal.is_none()).map(|k| &k.request)
    }

    /// The response, given KMS's answer (`Ok(CiphertextBlob)` or why it failed) when
    /// [`Plan::key_request`] asked for one.
    pub(crate) fn finish(mut self, key: Option<Result<&[u8], String>>) -> Answer {
        if let Some(kms) = self.kms.take() {
            let action = &mut self.actions[kms.index];
            match key {
                Some(Ok(blob)) if self.refusal.is_none() => {
                    action.action_result = Some(KmsResult {
                        cipher_text_key: Base64::encode_string(blob),
                        cipher_text_hash: None,
                        challenge_acknowledgement: kms.challenge,
                    });
                }
                other => {
                    let why = match other {
                        Some(Err(why)) => why,
                        _ => "not attempted: the session cannot start".to_string(),
                    };
                    action.action_status = status::FAILED;
                    action.error = format!("Failed to process action KMSEncryption: {why}");
                    self.errors.push(action.error.clone());
                    self.refusal.get_or_insert(action.error.clone());
                }
            }
        }
        let response = HandshakeResponse {
            client_version: CLIENT_VERSION,
            processed_client_actions: self.actions,
            errors: if self.errors.is_empty() { None } else { Some(self.errors) },
        };
        // Serialising plain structs of strings and numbers cannot fail.
        let response = serde_json::to_vec(&response).expect("handshake response serialises");
        Answer { response, refusal: self.refusal }
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
        let a = plan(&req, SessionKind::Port, &SessionIds::default()).finish(None);
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
        let p = plan(&req, SessionKind::Port, &SessionIds::default());
        assert_eq!(p.key_request(), None, "no KMS call for a port session");
        let a = p.finish(None);
        assert!(a.refusal.unwrap().contains("Standard_Stream"));
        let v: Value = serde_json::from_slice(&a.response).unwrap();
        assert_eq!(v["ProcessedClientActions"][0]["ActionStatus"], 2);
        assert_eq!(v["ProcessedClientActions"][1]["ActionStatus"], 3);
        assert_eq!(v["Errors"].as_array().unwrap().len(), 2);
    }

    fn ids() -> SessionIds {
        SessionIds { session_id: "alice-0123456789abcdef0".into(), target_id: "i-0123456789abcdef0".into() }
    }

    const KMS_SHELL: &str = r#"{"AgentVersion":"3.3.1142.0","RequestedClientActions":[
        {"ActionType":"SessionType","ActionParameters":{"SessionType":"Standard_Stream","Properties":null}},
        {"ActionType":"KMSEncryption","ActionParameters":{"KMSKeyId":"arn:aws:kms:eu-west-1:111122223333:key/k1","Challenge":"c2l4dGVlbiBieXRlcyEh"}}]}"#;

    #[test]
    fn kms_for_a_shell_asks_for_a_key_bound_to_session_target_and_challenge() {
        let req: HandshakeRequest = serde_json::from_str(KMS_SHELL).unwrap();
        let p = plan(&req, SessionKind::Shell, &ids());
        let key = p.key_request().unwrap();
        assert_eq!(key.key_id, "arn:aws:kms:eu-west-1:111122223333:key/k1");
        let context: Vec<(&str, &str)> = key.context.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            context,
            [
                ("aws:ssm:RandomChallenge", "c2l4dGVlbiBieXRlcyEh"),
                ("aws:ssm:SessionId", "alice-0123456789abcdef0"),
                ("aws:ssm:TargetId", "i-0123456789abcdef0"),
            ]
        );
        let a = p.finish(Some(Ok(&[1, 2, 3, 250])));
        assert!(a.refusal.is_none());
        // §8 step 2 / §11.3, byte for byte, with the newer ChallengeAcknowledgement.
        assert_eq!(
            String::from_utf8(a.response).unwrap(),
            r#"{"ClientVersion":"1.2.677.0","ProcessedClientActions":[{"ActionType":"SessionType","ActionStatus":1,"ActionResult":null,"Error":""},{"ActionType":"KMSEncryption","ActionStatus":1,"ActionResult":{"KMSCipherTextKey":"AQID+g==","KMSCipherTextHash":null,"ChallengeAcknowledgement":true},"Error":""}],"Errors":null}"#
        );
    }

    #[test]
    fn an_agent_without_a_challenge_gets_no_challenge_context_nor_acknowledgement() {
        let req: HandshakeRequest = serde_json::from_str(
            r#"{"AgentVersion":"3.0.0.0","RequestedClientActions":[
                {"ActionType":"SessionType","ActionParameters":{"SessionType":"InteractiveCommands"}},
                {"ActionType":"KMSEncryption","ActionParameters":{"KMSKeyId":"alias/ssm"}}]}"#,
        )
        .unwrap();
        let p = plan(&req, SessionKind::InteractiveCommands, &ids());
        assert!(!p.key_request().unwrap().context.contains_key("aws:ssm:RandomChallenge"));
        let v: Value = serde_json::from_slice(&p.finish(Some(Ok(b"blob"))).response).unwrap();
        assert_eq!(v["ProcessedClientActions"][1]["ActionResult"]["ChallengeAcknowledgement"], false);
    }

    #[test]
    fn a_kms_failure_is_answered_failed_with_the_reason() {
        let req: HandshakeRequest = serde_json::from_str(KMS_SHELL).unwrap();
        let a = plan(&req, SessionKind::Shell, &ids()).finish(Some(Err("AccessDeniedException: no".into())));
        let refusal = a.refusal.unwrap();
        assert!(refusal.contains("KMSEncryption") && refusal.contains("AccessDeniedException"), "{refusal}");
        let v: Value = serde_json::from_slice(&a.response).unwrap();
        assert_eq!(v["ProcessedClientActions"][0]["ActionStatus"], 1);
        assert_eq!(v["ProcessedClientActions"][1]["ActionStatus"], 2);
        assert_eq!(v["ProcessedClientActions"][1]["ActionResult"], Value::Null);
        assert_eq!(v["Errors"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn a_refused_session_type_calls_no_kms() {
        let req: HandshakeRequest = serde_json::from_str(KMS_SHELL).unwrap();
        let p = plan(&req, SessionKind::NonInteractiveCommands, &ids());
        assert_eq!(p.key_request(), None);
        let v: Value = serde_json::from_slice(&p.finish(None).response).unwrap();
        assert_eq!(v["ProcessedClientActions"][0]["ActionStatus"], 2);
        assert_eq!(v["ProcessedClientActions"][1]["ActionStatus"], 2);
    }

    #[test]
    fn a_kms_action_without_a_key_is_refused() {
        let req: HandshakeRequest = serde_json::from_str(
            r#"{"RequestedClientActions":[{"ActionType":"KMSEncryption","ActionParameters":{"Challenge":"x"}}]}"#,
        )
        .unwrap();
        let p = plan(&req, SessionKind::Shell, &ids());
        assert_eq!(p.key_request(), None);
        assert!(p.finish(None).refusal.unwrap().contains("names no key"));
    }

    #[test]
    fn size_json_is_byte_exact() {
        // §16.6.
        assert_eq!(serde_json::to_string(&Size { cols: 120, rows: 40 }).unwrap(), r#"{"cols":120,"rows":40}"#);
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
