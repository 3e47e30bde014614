//! The agent's handshake payloads (`ssm-data-channel.md` §8, §11): the HandshakeRequest it sends
//! (with `KMSEncryption` when encrypted), the challenge payloads, what it takes from the client's
//! HandshakeResponse, and HandshakeComplete.
//! Pure functions; JSON keys in the order Go's encoder writes the agent's structs.

use std::time::Duration;

use serde_json::Value;

use super::frame::field;

/// The HandshakeRequest payload: a `SessionType` action with the session type and the
/// properties the plugin's `GetPluginParameters` returns (the document's properties for `Port`,
/// `null` for the shell plugins: `standardstream.go` and `singlecommand.go` return nil), and
/// `KMSEncryption` {`KMSKeyId`, `Challenge`} when the session is encrypted (§8, §11).
pub(crate) fn request(
    agent_version: &str,
    session_type: &str,
    properties: &Value,
    kms: Option<(&str, &str)>,
) -> Vec<u8> {
    let mut actions = vec![format!(
        r#"{{"ActionType":"SessionType","ActionParameters":{{"SessionType":{},"Properties":{properties}}}}}"#,
        Value::from(session_type)
    )];
    if let Some((key_id, challenge)) = kms {
        actions.push(format!(
            r#"{{"ActionType":"KMSEncryption","ActionParameters":{{"KMSKeyId":{},"Challenge":{}}}}}"#,
            Value::from(key_id),
            Value::from(challenge)
        ));
    }
    format!(r#"{{"AgentVersion":{},"RequestedClientActions":[{}]}}"#, Value::from(agent_version), actions.join(","))
        .into_bytes()
}

/// What the agent takes from a HandshakeResponse.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Response {
    /// `ClientVersion`, if given.
    pub(crate) client_version: Option<String>,
    /// Why the session must end: an action with `ActionStatus` ≠ 1, or no JSON at all.
    pub(crate) failure: Option<String>,
    /// The `ActionResult` of a successful `KMSEncryption` action.
    pub(crate) kms: Option<KmsResult>,
}

/// What a client answered to `KMSEncryption` (`KMSEncryptionResponse`).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct KmsResult {
    /// `KMSCipherTextKey`, decoded (Go's `[]byte` is standard base64); `None` if it is not.
    pub(crate) ciphertext_key: Option<Vec<u8>>,
    /// `ChallengeAcknowledgement`: the client put `aws:ssm:RandomChallenge` in the context.
    pub(crate) challenge_acknowledged: bool,
}

/// Reads a HandshakeResponse like the agent: keys case-insensitive, every answered action must
/// have status 1, unanswered actions are not noticed (§8.3).
pub(crate) fn check_response(payload: &[u8]) -> Response {
    let Ok(response) = serde_json::from_slice::<Value>(payload) else {
        return Response {
            client_version: None,
            failure: Some("HandshakeResponse is not valid JSON".into()),
            kms: None,
        };
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
    let kms = actions.into_iter().flatten().find_map(|action| {
        let ty = field(action, "ActionType").and_then(Value::as_str)?;
        let ok = field(action, "ActionStatus").and_then(Value::as_i64) == Some(1);
        (ty == "KMSEncryption" && ok).then(|| {
            let result = field(action, "ActionResult");
            let key = result.and_then(|r| field(r, "KMSCipherTextKey")).and_then(Value::as_str);
            KmsResult {
                ciphertext_key: key.and_then(crate::base64::decode),
                challenge_acknowledged: result
                    .and_then(|r| field(r, "ChallengeAcknowledgement"))
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            }
        })
    });
    Response { client_version, failure, kms }
}

/// The `Challenge` of an EncChallengeRequest/Response payload (`{"Challenge": base64}`).
pub(crate) fn challenge(payload: &[u8]) -> Option<Vec<u8>> {
    let value: Value = serde_json::from_slice(payload).ok()?;
    field(&value, "Challenge").and_then(Value::as_str).and_then(crate::base64::decode)
}

/// The HandshakeComplete payload; Go marshals a `time.Duration` as integer nanoseconds.
pub(crate) fn complete(took: Duration, customer_message: &str) -> Vec<u8> {
    format!("{{\"HandshakeTimeToComplete\":{},\"CustomerMessage\":{}}}", took.as_nanos(), Value::from(customer_message))
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn request_for_port_forwarding_has_sorted_properties() {
        let props: BTreeMap<String, String> =
            [("type", "LocalPortForwarding"), ("portNumber", "22"), ("localPortNumber", "0")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        assert_eq!(
            String::from_utf8(request("3.3.1142.0", "Port", &serde_json::to_value(&props).unwrap(), None)).unwrap(),
            r#"{"AgentVersion":"3.3.1142.0","RequestedClientActions":[{"ActionType":"SessionType","ActionParameters":{"SessionType":"Port","Properties":{"localPortNumber":"0","portNumber":"22","type":"LocalPortForwarding"}}}]}"#
        );
    }

    #[test]
    fn response_statuses() {
        let ok = br#"{"ClientVersion":"1.2.677.0","ProcessedClientActions":[{"ActionType":"SessionType","ActionStatus":1,"ActionResult":null,"Error":""}],"Errors":null}"#;
        assert_eq!(check_response(ok), Response { client_version: Some("1.2.677.0".into()), failure: None, kms: None });
        let unsupported = br#"{"processedclientactions":[{"actiontype":"SessionType","actionstatus":3,"error":"no"}]}"#;
        assert_eq!(
            check_response(unsupported).failure.as_deref(),
            Some("SessionType failed on client with status 3 error: no")
        );
        assert_eq!(check_response(b"{}").failure, None, "no actions answered is not noticed");
        assert!(check_response(b"nope").failure.is_some());
        assert_eq!(
            complete(Duration::from_millis(2), ""),
            br#"{"HandshakeTimeToComplete":2000000,"CustomerMessage":""}"#
        );
    }

    #[test]
    fn shell_request_with_kms_and_its_answer() {
        let r = request("3.3.1142.0", "Standard_Stream", &Value::Null, Some(("alias/ssm", "Y2g=")));
        assert_eq!(
            String::from_utf8(r).unwrap(),
            r#"{"AgentVersion":"3.3.1142.0","RequestedClientActions":[{"ActionType":"SessionType","ActionParameters":{"SessionType":"Standard_Stream","Properties":null}},{"ActionType":"KMSEncryption","ActionParameters":{"KMSKeyId":"alias/ssm","Challenge":"Y2g="}}]}"#
        );
        let answer = br#"{"ProcessedClientActions":[{"ActionType":"SessionType","ActionStatus":1},{"ActionType":"KMSEncryption","ActionStatus":1,"ActionResult":{"KMSCipherTextKey":"AAEC","KMSCipherTextHash":null,"ChallengeAcknowledgement":true}}]}"#;
        let kms = check_response(answer).kms.unwrap();
        assert_eq!(kms, KmsResult { ciphertext_key: Some(vec![0, 1, 2]), challenge_acknowledged: true });
        assert_eq!(challenge(br#"{"Challenge":"AAEC"}"#), Some(vec![0, 1, 2]));
        assert_eq!(
            complete(Duration::ZERO, "This session is encrypted using AWS KMS."),
            br#"{"HandshakeTimeToComplete":0,"CustomerMessage":"This session is encrypted using AWS KMS."}"#
        );
    }
}
