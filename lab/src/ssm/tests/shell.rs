//! Shell-plugin sessions end to end (Standard_Stream on a real pty, NonInteractiveCommands with
//! separate streams and an exit code) and KMS-encrypted sessions with the challenge, driven by
//! the lab's own client and its own AES-GCM (`crate::ssm::crypto`).

use serde_json::{Value, json};

use super::client::{Client, Event, call, connect};
use crate::ssm::crypto::{open_with, seal_with};
use crate::ssm::frame::payload_type::{
    ENC_CHALLENGE_REQUEST, ENC_CHALLENGE_RESPONSE, EXIT_CODE, HANDSHAKE_COMPLETE, HANDSHAKE_RESPONSE, OUTPUT, SIZE,
    STDERR,
};
use crate::test_world::{World, json_as};
use crate::{Inventory, Lab};

const HOST: &str = "i-0ee0000000000000e";
const KEY: &str = "1234abcd-12ab-34cd-56ef-1234567890ab";

fn world(prefs: &str) -> World {
    let inventory = Inventory::from_toml(&format!(
        r#"
        [[instance]]
        id = "{HOST}"
        name = "shell-1"
        private_ip = "127.0.4.20"

        [[kms_key]]
        id = "{KEY}"
        aliases = ["alias/ssm"]

        {prefs}
        "#
    ))
    .unwrap();
    crate::test_world::start("ssm-shell", inventory)
}

fn start_doc(lab: &Lab, body: Value) -> (String, String, String) {
    let (status, body) = call(lab, "StartSession", body);
    assert_eq!(status, 200, "{body}");
    let s = |k: &str| body[k].as_str().unwrap().to_string();
    (s("SessionId"), s("StreamUrl"), s("TokenValue"))
}

/// Collects agent stream payloads (type, bytes) until `channel_closed`; returns them and its Output.
async fn until_closed<S>(c: &mut Client<S>) -> (Vec<(u32, Vec<u8>)>, String)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut got = Vec::new();
    loop {
        match c.next().await {
            Event::Stream(m) => got.push((m.payload_type, m.payload)),
            Event::ChannelClosed(m, _) => {
                let v: Value = serde_json::from_slice(&m.payload).unwrap();
                return (got, v["Output"].as_str().unwrap_or_default().to_string());
            }
            other => panic!("expected stream data or channel_closed, got {other:?}"),
        }
    }
}

#[test]
fn standard_stream_shell_prompt_size_and_exit() {
    let w = world("");
    let (sid, url, token) = start_doc(&w.lab, json!({"Target": HOST}));
    w.rt.block_on(async {
        let mut c = connect(&url).await.unwrap();
        c.open(&token).await;
        // No handshake without KMS (§8): the shell's prompt comes first.
        let first = c.stream().await;
        assert_eq!((first.sequence_number, first.payload_type), (0, OUTPUT), "{first:?}");
        c.send(SIZE, br#"{"cols":123,"rows":45}"#).await;
        c.send(OUTPUT, b"stty size; id -un; echo $TERM\n").await;
        let out = c.output_until(b"xterm-256color\r\n").await;
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("45 123\r\n"), "{text}");
        assert!(text.contains("ssm-user\r\n"), "{text}");
        c.send(OUTPUT, b"exit\n").await;
        let (rest, output) = until_closed(&mut c).await;
        assert!(rest.iter().all(|(t, _)| *t == OUTPUT), "no ExitCode for a shell: {rest:?}");
        assert_eq!(output, "");
    });
    let info = w.lab.ssm_sessions().into_iter().find(|s| s.id == sid).unwrap();
    assert_eq!(info.session_type, "Standard_Stream");
    assert_eq!(info.agent_states, ["Connected", "Terminating"], "{info:?}");
}

#[test]
fn non_interactive_command_separates_stderr_and_reports_the_exit_code() {
    let w = world("");
    let (_, url, token) = start_doc(
        &w.lab,
        json!({"Target": HOST, "DocumentName": "AWS-StartNonInteractiveCommand",
            "Parameters": {"command": ["sh -c 'echo out; echo err >&2; exit 3'"], "separateOutputStream": ["true"]}}),
    );
    w.rt.block_on(async {
        let mut c = connect(&url).await.unwrap();
        c.open(&token).await;
        let request = c.handshake().await;
        assert_eq!(
            request["RequestedClientActions"][0]["ActionParameters"],
            json!({"SessionType": "NonInteractiveCommands", "Properties": null})
        );
        let (got, _) = until_closed(&mut c).await;
        let of = |t: u32| -> Vec<u8> { got.iter().filter(|(p, _)| *p == t).flat_map(|(_, b)| b.clone()).collect() };
        assert_eq!(of(OUTPUT), b"out\n");
        assert_eq!(of(STDERR), b"err\n");
        assert_eq!(of(EXIT_CODE), b"EXIT_CODE: 3");
        assert_eq!(got.last().map(|(t, _)| *t), Some(EXIT_CODE), "ExitCode comes last");
    });
    let (status, body) =
        call(&w.lab, "StartSession", json!({"Target": HOST, "DocumentName": "AWS-StartInteractiveCommand"}));
    assert_eq!((status, body["__type"].as_str()), (400, Some("InvalidParameters")), "{body}");
}

/// GenerateDataKey through the KMS API as a client does; returns (blob base64, plaintext).
fn data_key(lab: &Lab, sid: &str, challenge: Option<&str>) -> (String, Vec<u8>) {
    let mut context = json!({"aws:ssm:SessionId": sid, "aws:ssm:TargetId": HOST});
    if let Some(ch) = challenge {
        context["aws:ssm:RandomChallenge"] = json!(ch);
    }
    let body = json!({"KeyId": "alias/ssm", "NumberOfBytes": 64, "EncryptionContext": context});
    let (status, body) = json_as(lab, crate::ACCESS_KEY_ID, "TrentService.GenerateDataKey", &body.to_string());
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["KeyId"].as_str().map(|k| k.ends_with(KEY)), Some(true), "KeyId is the key ARN: {v}");
    let plain = crate::base64::decode(v["Plaintext"].as_str().unwrap()).unwrap();
    (v["CiphertextBlob"].as_str().unwrap().to_string(), plain)
}

fn kms_response(blob: &str, acknowledge: bool) -> Vec<u8> {
    let mut result = json!({"KMSCipherTextKey": blob, "KMSCipherTextHash": null});
    if acknowledge {
        result["ChallengeAcknowledgement"] = json!(true);
    }
    json!({"ClientVersion": "1.2.677.0", "ProcessedClientActions": [
        {"ActionType": "SessionType", "ActionStatus": 1, "ActionResult": null, "Error": ""},
        {"ActionType": "KMSEncryption", "ActionStatus": 1, "ActionResult": result, "Error": ""}], "Errors": null})
    .to_string()
    .into_bytes()
}

const KMS_PREFS: &str = "[session_preferences]\nkms_key_id = \"alias/ssm\"\nrequire_kms_challenge = true\n";

#[test]
fn kms_session_with_the_challenge_encrypts_every_output() {
    let w = world(KMS_PREFS);
    let (sid, url, token) = start_doc(&w.lab, json!({"Target": HOST}));
    w.rt.block_on(async {
        let mut c = connect(&url).await.unwrap();
        c.open(&token).await;
        let request = c.stream().await;
        let request: Value = serde_json::from_slice(&request.payload).unwrap();
        let actions = &request["RequestedClientActions"];
        assert_eq!(actions[0]["ActionParameters"], json!({"SessionType": "Standard_Stream", "Properties": null}));
        assert_eq!(actions[1]["ActionType"], "KMSEncryption");
        assert_eq!(actions[1]["ActionParameters"]["KMSKeyId"], "alias/ssm");
        let challenge = actions[1]["ActionParameters"]["Challenge"].as_str().unwrap().to_string();
        let (blob, key) = data_key(&w.lab, &sid, Some(&challenge));
        let a2c: [u8; 32] = key[..32].try_into().unwrap();
        let c2a: [u8; 32] = key[32..].try_into().unwrap();
        c.send(HANDSHAKE_RESPONSE, &kms_response(&blob, true)).await;
        let req = c.stream().await;
        assert_eq!(req.payload_type, ENC_CHALLENGE_REQUEST);
        let v: Value = serde_json::from_slice(&req.payload).unwrap();
        let sealed = crate::base64::decode(v["Challenge"].as_str().unwrap()).unwrap();
        let bytes = open_with(&a2c, &sealed).expect("the challenge is sealed with bytes 0-31");
        assert_eq!(bytes.len(), 64);
        let answer = json!({"Challenge": crate::base64::encode(&seal_with(&c2a, rand::random(), &bytes))});
        c.send(ENC_CHALLENGE_RESPONSE, answer.to_string().as_bytes()).await;
        let complete = c.stream().await;
        assert_eq!(complete.payload_type, HANDSHAKE_COMPLETE);
        let v: Value = serde_json::from_slice(&complete.payload).unwrap();
        assert_eq!(v["CustomerMessage"], "This session is encrypted using AWS KMS.");
        c.send(OUTPUT, &seal_with(&c2a, rand::random(), b"echo sec''ret\n")).await;
        let mut screen = Vec::new();
        while !screen.windows(7).any(|w| w == b"secret\r") {
            let m = c.stream().await;
            assert_eq!(m.payload_type, OUTPUT);
            assert!(!m.payload.windows(6).any(|w| w == b"secret"), "plaintext on the wire");
            screen.extend(open_with(&a2c, &m.payload).expect("agent Output is sealed with bytes 0-31"));
        }
        c.send(OUTPUT, &seal_with(&c2a, rand::random(), b"exit\n")).await;
        until_closed(&mut c).await;
    });
    let info = w.lab.ssm_sessions().into_iter().find(|s| s.id == sid).unwrap();
    assert_eq!(info.kms_key.as_deref(), Some("alias/ssm"));
    assert_eq!(info.plaintext_outputs, 0, "{info:?}");
    assert!(info.encrypted_outputs >= 3, "{info:?}");
}

#[test]
fn kms_refuses_a_client_without_the_challenge_and_records_plaintext() {
    let w = world(KMS_PREFS);
    let (sid, url, token) = start_doc(&w.lab, json!({"Target": HOST}));
    w.rt.block_on(async {
        let mut c = connect(&url).await.unwrap();
        c.open(&token).await;
        c.stream().await;
        // An old client: no RandomChallenge in the context, no acknowledgement.
        let (blob, _) = data_key(&w.lab, &sid, None);
        c.send(OUTPUT, b"plaintext too early").await;
        c.send(HANDSHAKE_RESPONSE, &kms_response(&blob, false)).await;
        let (_, output) = until_closed(&mut c).await;
        assert_eq!(
            output,
            "Encountered error while initiating handshake. client does not support required encryption context random challenge"
        );
    });
    let info = w.lab.ssm_sessions().into_iter().find(|s| s.id == sid).unwrap();
    assert_eq!(info.plaintext_outputs, 1, "the recorder saw the plaintext Output: {info:?}");
}

#[test]
fn kms_api_context_mismatch_and_access_denied() {
    let w = world("");
    let (blob, _) = data_key(&w.lab, "s-1", None);
    let decrypt = |context: Value| {
        let body = json!({"CiphertextBlob": blob, "EncryptionContext": context});
        let (status, body) = json_as(&w.lab, crate::ACCESS_KEY_ID, "TrentService.Decrypt", &body.to_string());
        (status, serde_json::from_str::<Value>(&body).unwrap())
    };
    let (status, ok) = decrypt(json!({"aws:ssm:SessionId": "s-1", "aws:ssm:TargetId": HOST}));
    assert_eq!((status, ok["Plaintext"].as_str().map(|p| crate::base64::decode(p).unwrap().len())), (200, Some(64)));
    let (status, bad) = decrypt(json!({"aws:ssm:SessionId": "s-2", "aws:ssm:TargetId": HOST}));
    assert_eq!((status, bad["__type"].as_str()), (400, Some("InvalidCiphertextException")), "{bad}");
    w.lab.state().set_faults(|f| {
        f.deny.insert("kms:GenerateDataKey".into());
    });
    let body = json!({"KeyId": "alias/ssm", "NumberOfBytes": 64});
    let (status, body) = json_as(&w.lab, crate::ACCESS_KEY_ID, "TrentService.GenerateDataKey", &body.to_string());
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((status, v["__type"].as_str()), (400, Some("AccessDeniedException")), "{v}");
    let message = v["Message"].as_str().unwrap();
    assert!(
        message.contains("is not authorized to perform: kms:GenerateDataKey on resource: arn:aws:kms:"),
        "{message}"
    );
    assert!(message.contains(&format!(":key/{KEY} because no identity-based policy allows")), "{message}");
}

#[test]
fn a_dropped_websocket_keeps_the_shell_for_resume() {
    use crate::ssm::{Disconnect, DisconnectKind};
    let w = world("");
    // The first connection is reset (ssm-drop) 2 s after it was accepted.
    let drop = Disconnect::after_time(std::time::Duration::from_secs(2), DisconnectKind::Drop);
    w.lab.state().set_ssm_faults(|f| f.disconnects.push_back(drop));
    let (sid, url, token) = start_doc(&w.lab, json!({"Target": HOST}));
    w.rt.block_on(async {
        let mut c = connect(&url).await.unwrap();
        c.open(&token).await;
        c.stream().await; // The prompt.
        c.send(OUTPUT, b"MARK=kept-$$; echo set\n").await;
        c.output_until(b"set\r\n").await;
        loop {
            match c.next().await {
                Event::Gone => break,
                Event::Stream(_) => continue,
                other => panic!("expected the reset, got {other:?}"),
            }
        }
        let mut fresh = connect(&url).await.unwrap();
        let (status, body) = call(&w.lab, "ResumeSession", json!({"SessionId": sid}));
        assert_eq!(status, 200, "{body}");
        fresh.open(body["TokenValue"].as_str().unwrap()).await;
        let mut c = c.resume_on(fresh);
        c.send(OUTPUT, b"echo still-$MARK\n").await;
        let out = c.output_until(b"still-kept-").await;
        assert!(!String::from_utf8_lossy(&out).is_empty());
    });
    let info = w.lab.ssm_sessions().into_iter().find(|s| s.id == sid).unwrap();
    assert!(!info.ended && info.client_connects == 2, "{info:?}");
}

#[test]
fn interactive_command_gets_no_exit_code_and_run_as_user_must_exist() {
    let w = world("[session_preferences]\nrun_as_enabled = true\nrun_as_default_user = \"ec2-user\"\n");
    let (_, url, token) = start_doc(
        &w.lab,
        json!({"Target": HOST, "DocumentName": "AWS-StartInteractiveCommand", "Parameters": {"command": ["id -un; exit 3"]}}),
    );
    w.rt.block_on(async {
        let mut c = connect(&url).await.unwrap();
        c.open(&token).await;
        let (got, output) = until_closed(&mut c).await;
        let text: Vec<u8> = got.iter().flat_map(|(_, b)| b.clone()).collect();
        assert!(String::from_utf8_lossy(&text).contains("ec2-user\r\n"), "Run As: {got:?}");
        assert!(got.iter().all(|(t, _)| *t == OUTPUT), "InteractiveCommands send no ExitCode: {got:?}");
        assert_eq!(output, "");
    });
    let w = world("[session_preferences]\nrun_as_enabled = true\nrun_as_default_user = \"no-such-lab-user\"\n");
    let (_, url, token) = start_doc(&w.lab, json!({"Target": HOST}));
    w.rt.block_on(async {
        let mut c = connect(&url).await.unwrap();
        c.open(&token).await;
        let (_, output) = until_closed(&mut c).await;
        assert_eq!(
            output,
            "Unable to start command: failed to start pty since RunAs user no-such-lab-user does not exist\n"
        );
    });
}

#[test]
fn get_document_serves_the_preferences() {
    let w = world(KMS_PREFS);
    let (status, body) = call(&w.lab, "GetDocument", json!({"Name": "SSM-SessionManagerRunShell"}));
    assert_eq!(
        (status, body["DocumentType"].as_str(), body["DocumentFormat"].as_str()),
        (200, Some("Session"), Some("JSON"))
    );
    let content: Value = serde_json::from_str(body["Content"].as_str().unwrap()).unwrap();
    assert_eq!(content["sessionType"], "Standard_Stream");
    assert_eq!(content["inputs"]["kmsKeyId"], "alias/ssm");
    assert_eq!(content["inputs"]["runAsEnabled"], false);
    let (status, body) =
        call(&w.lab, "GetDocument", json!({"Name": "SSM-SessionManagerRunShell", "DocumentFormat": "YAML"}));
    assert!(status == 200 && body["Content"].as_str().unwrap().contains("  kmsKeyId: \"alias/ssm\"\n"), "{body}");
    let (status, body) = call(&w.lab, "GetDocument", json!({"Name": "Nope"}));
    assert_eq!((status, body["__type"].as_str()), (400, Some("InvalidDocument")), "{body}");
    let (status, body) =
        call(&w.lab, "GetDocument", json!({"Name": "SSM-SessionManagerRunShell", "DocumentVersion": "7"}));
    assert_eq!((status, body["__type"].as_str()), (400, Some("InvalidDocumentVersion")), "{body}");
    // An account that never saved preferences has no such document.
    let w = world("");
    let (status, body) = call(&w.lab, "GetDocument", json!({"Name": "SSM-SessionManagerRunShell"}));
    assert_eq!((status, body["__type"].as_str()), (400, Some("InvalidDocument")), "{body}");
}
