//! The shell and command front ends of the session against `ShellAgent`, a fake agent that does
//! what the real one does for `Standard_Stream`, `InteractiveCommands` and
//! `NonInteractiveCommands` sessions (spec §8, §10.1, §10.5, §11): no handshake for a shell
//! without KMS, the KMS handshake and challenge with its own half of the key, `Size` on the pty,
//! `StdErr` and `ExitCode`. The fake agent decrypts with its own code path (`AgentCipher`), and
//! records every `Output` payload that crossed the wire so a test can prove none was plaintext.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use russh::keys::ssh_key::encoding::base64::{Base64, Encoding};
use serde_json::Value;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::ssm::crypto::{AgentCipher, DataKey};
use crate::ssm::handshake::{Acknowledge, SessionIds, Size};
use crate::ssm::message::{FLAGS_ACK, Message, kind, payload};
use crate::ssm::session::{CloseReason, Config, Event, Session};
use crate::ssm::session_kind::SessionKind;

const KEY_ARN: &str = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
const CHALLENGE: &str = "MTIzNDU2Nzg5MDEyMzQ1Ng==";
/// What "KMS" returns as the ciphertext blob in these tests; the fake agent "decrypts" it by
/// comparing.
const BLOB: &[u8] = b"kms-ciphertext-blob";

fn data_key() -> Vec<u8> {
    (0u8..64).map(|b| b.wrapping_mul(7).wrapping_add(3)).collect()
}

struct ShellAgent {
    next_seq: i64,
    expected: i64,
    out: VecDeque<Vec<u8>>,
    key: Vec<u8>,
    cipher: Option<AgentCipher>,
    challenge: Vec<u8>,
    /// Encrypt the challenge with this key instead (a man in the middle).
    challenge_key: Option<Vec<u8>>,
    /// What the client's `Output` said, decrypted.
    received: Vec<u8>,
    /// `Output` payloads as they crossed the wire.
    wire_outputs: Vec<Vec<u8>>,
    /// `Output` payloads that did not decrypt although encryption was on.
    undecryptable: usize,
    sizes: Vec<Size>,
    responses: Vec<Value>,
    complete: bool,
}

impl ShellAgent {
    fn new() -> Self {
        ShellAgent {
            next_seq: 0,
            expected: 0,
            out: VecDeque::new(),
            key: data_key(),
            cipher: None,
            challenge: (0u8..64).rev().collect(),
            challenge_key: None,
            received: Vec::new(),
            wire_outputs: Vec::new(),
            undecryptable: 0,
            sizes: Vec::new(),
            responses: Vec::new(),
            complete: false,
        }
    }

    fn request(&mut self, session_type: &str, kms: bool) {
        let mut actions = vec![serde_json::json!({"ActionType":"SessionType",
            "ActionParameters":{"SessionType":session_type,"Properties":null}})];
        if kms {
            actions.push(serde_json::json!({"ActionType":"KMSEncryption",
                "ActionParameters":{"KMSKeyId":KEY_ARN,"Challenge":CHALLENGE}}));
        }
        let body = serde_json::json!({"AgentVersion":"3.3.1142.0","RequestedClientActions":actions});
        self.send(payload::HANDSHAKE_REQUEST, serde_json::to_vec(&body).unwrap());
    }

    /// Sends a stream payload, encrypted when KMS is on (as the agent does for 1, 11, 12).
    fn send_stream(&mut self, payload_type: u32, plain: &[u8]) {
        let body = match &self.cipher {
            Some(c) => c.encrypt(plain),
            None => plain.to_vec(),
        };
        self.send(payload_type, body);
    }

    fn send(&mut self, payload_type: u32, payload: Vec<u8>) {
        let m = Message {
            kind: kind::OUTPUT_STREAM_DATA.into(),
            schema_version: 1,
            created_ms: 1_700_000_000_000,
            sequence: self.next_seq,
            flags: u64::from(self.next_seq == 0),
            id: Uuid::from_u128(0xc000 + self.next_seq as u128),
            payload_type,
            payload,
        };
        self.next_seq += 1;
        self.out.push_back(m.encode());
    }

    fn handle_frame(&mut self, frame: &[u8]) {
        let m = Message::decode(frame).unwrap();
        if m.kind != kind::INPUT_STREAM_DATA {
            return;
        }
        if m.sequence > self.expected {
            return;
        }
        self.ack(&m);
        if m.sequence < self.expected {
            return;
        }
        self.expected += 1;
        match m.payload_type {
            payload::HANDSHAKE_RESPONSE => self.handle_response(&m.payload),
            payload::ENC_CHALLENGE_RESPONSE => {
                let v: Value = serde_json::from_slice(&m.payload).unwrap();
                let sealed = Base64::decode_vec(v["Challenge"].as_str().unwrap()).unwrap();
                let plain = self.cipher.as_ref().unwrap().decrypt(&sealed).unwrap();
                assert_eq!(*plain, self.challenge, "the challenge came back changed");
                self.complete(
                    r#"{"HandshakeTimeToComplete":1000,"CustomerMessage":"This session is encrypted using AWS KMS."}"#,
                );
            }
            payload::OUTPUT => {
                self.wire_outputs.push(m.payload.clone());
                match &self.cipher {
                    Some(c) => match c.decrypt(&m.payload) {
                        Ok(plain) => self.received.extend_from_slice(&plain),
                        Err(_) => self.undecryptable += 1,
                    },
                    None => self.received.extend_from_slice(&m.payload),
                }
            }
            payload::SIZE => self.sizes.push(serde_json::from_slice(&m.payload).unwrap()),
            _ => {}
        }
    }

    fn handle_response(&mut self, body: &[u8]) {
        let v: Value = serde_json::from_slice(body).unwrap();
        self.responses.push(v.clone());
        let actions = v["ProcessedClientActions"].as_array().unwrap();
        if actions.iter().any(|a| a["ActionStatus"] != 1) {
            return;
        }
        match actions.iter().find(|a| a["ActionType"] == "KMSEncryption") {
            Some(kms) => {
                let blob = Base64::decode_vec(kms["ActionResult"]["KMSCipherTextKey"].as_str().unwrap()).unwrap();
                assert_eq!(blob, BLOB, "the agent got another key blob");
                assert_eq!(kms["ActionResult"]["ChallengeAcknowledgement"], true);
                self.cipher = Some(AgentCipher::new(&self.key));
                let sealer = AgentCipher::new(self.challenge_key.as_deref().unwrap_or(&self.key));
                let challenge = sealer.encrypt(&self.challenge);
                let body = serde_json::json!({"Challenge": Base64::encode_string(&challenge)});
                self.send(payload::ENC_CHALLENGE_REQUEST, serde_json::to_vec(&body).unwrap());
            }
            None => self.complete(r#"{"HandshakeTimeToComplete":1000,"CustomerMessage":""}"#),
        }
    }

    fn complete(&mut self, body: &str) {
        self.send(payload::HANDSHAKE_COMPLETE, body.as_bytes().to_vec());
        self.complete = true;
    }

    fn ack(&mut self, m: &Message) {
        let body = Acknowledge {
            message_type: m.kind.clone(),
            message_id: m.id.to_string(),
            sequence: m.sequence,
            sequential: true,
        };
        let ack = Message {
            kind: kind::ACKNOWLEDGE.into(),
            schema_version: 1,
            created_ms: 1_700_000_000_000,
            sequence: 0,
            flags: FLAGS_ACK,
            id: Uuid::from_u128(0xd000),
            payload_type: 0,
            payload: serde_json::to_vec(&body).unwrap(),
        };
        self.out.push_back(ack.encode());
    }
}

/// Client and fake agent over a perfect link; `key` answers the client's data-key requests.
struct Harness {
    now: Instant,
    client: Session,
    agent: ShellAgent,
    events: Vec<Event>,
    key: Option<Result<DataKey, String>>,
    key_requests: Vec<crate::ssm::handshake::KeyRequest>,
}

impl Harness {
    fn new(kind: SessionKind) -> Self {
        let now = crate::ssm::driver::test_epoch();
        let ids = SessionIds { session_id: "alice-0a1b2c3d4e5f".into(), target_id: "i-0123456789abcdef0".into() };
        let config = Config { kind, ids, ..Config::default() };
        Harness {
            now,
            client: Session::new(config, now),
            agent: ShellAgent::new(),
            events: Vec::new(),
            key: Some(Ok(DataKey { ciphertext: BLOB.to_vec(), plaintext: Zeroizing::new(data_key()) })),
            key_requests: Vec::new(),
        }
    }

    /// Moves frames until nothing moves; then lets `advance` of time pass for the timers.
    fn run(&mut self, advance: Duration) {
        let end = self.now + advance;
        loop {
            let mut progress = false;
            let mut buf = Vec::new();
            while self.client.poll_transmit(self.now, &mut buf) {
                self.agent.handle_frame(&std::mem::take(&mut buf));
                progress = true;
            }
            while let Some(frame) = self.agent.out.pop_front() {
                let _ = self.client.handle_frame(self.now, &frame);
                progress = true;
            }
            while let Some(ev) = self.client.poll_event() {
                if let Event::DataKeyNeeded(request) = &ev {
                    self.key_requests.push(request.clone());
                    let key = self.key.take().expect("one key request");
                    self.client.handle_data_key(self.now, key);
                }
                self.events.push(ev);
                progress = true;
            }
            if progress {
                continue;
            }
            match self.client.poll_timeout() {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    self.client.handle_timeout(self.now);
                }
                _ => {
                    self.now = end;
                    return;
                }
            }
        }
    }

    fn data(&self) -> Vec<u8> {
        self.events
            .iter()
            .filter_map(|e| if let Event::Data(d) = e { Some(d.clone()) } else { None })
            .collect::<Vec<_>>()
            .concat()
    }

    fn closed(&self) -> Option<&CloseReason> {
        self.events.iter().find_map(|e| if let Event::Closed(r) = e { Some(r) } else { None })
    }

    fn ready(&self) -> Option<bool> {
        self.events.iter().find_map(|e| if let Event::Ready { encrypted, .. } = e { Some(*encrypted) } else { None })
    }

    /// A KMS-encrypted session of `kind`, handshake and challenge done.
    fn encrypted(kind: SessionKind, session_type: &str) -> Self {
        let mut h = Harness::new(kind);
        h.agent.request(session_type, true);
        h.run(Duration::from_secs(1));
        assert_eq!(h.ready(), Some(true), "{:?}", h.events);
        h
    }
}

#[test]
fn a_shell_without_kms_opens_on_its_first_output_and_takes_keys_and_sizes() {
    let mut h = Harness::new(SessionKind::Shell);
    // Sizes asked for before the session opened: only the last is sent, once it opens.
    h.client.send_size(h.now, 80, 24);
    h.client.send_size(h.now, 132, 43);
    assert_eq!(h.client.send(h.now, b"early"), 0, "nothing is sent before the session opens");
    h.agent.send_stream(payload::OUTPUT, b"sh-5.2$ ");
    h.run(Duration::from_millis(10));
    assert_eq!(h.ready(), Some(false));
    assert_eq!(h.data(), b"sh-5.2$ ");
    // Keys, a lone newline and Ctrl-C go as they are: no 0x0A→0x0D rewrite (§10.1).
    for keys in [&b"stty size"[..], b"\n", b"\x03", b"\r"] {
        assert_eq!(h.client.send(h.now, keys), keys.len());
        h.run(Duration::from_millis(10));
    }
    assert_eq!(h.agent.received, b"stty size\n\x03\r");
    h.client.send_size(h.now, 100, 30);
    h.run(Duration::from_millis(10));
    assert_eq!(h.agent.sizes, [Size { cols: 132, rows: 43 }, Size { cols: 100, rows: 30 }]);
    assert!(h.agent.responses.is_empty(), "no handshake for a shell without KMS");
}

#[test]
fn a_size_message_is_the_spec_json() {
    let mut h = Harness::new(SessionKind::InteractiveCommands);
    h.agent.send_stream(payload::OUTPUT, b"x");
    h.run(Duration::from_millis(10));
    h.client.send_size(h.now, 120, 40);
    let mut frame = Vec::new();
    assert!(h.client.poll_transmit(h.now, &mut frame));
    let m = Message::decode(&frame).unwrap();
    assert_eq!(m.payload_type, payload::SIZE);
    assert_eq!(m.payload, br#"{"cols":120,"rows":40}"#);
}

#[test]
fn a_silent_interactive_command_opens_for_input_after_the_grace() {
    let mut h = Harness::new(SessionKind::InteractiveCommands);
    h.run(Duration::from_secs(2));
    assert_eq!(h.ready(), None, "opened before the grace");
    h.run(Duration::from_secs(2));
    assert_eq!(h.ready(), Some(false));
    assert_eq!(h.client.send(h.now, b"input for cat\n"), 14);
    h.run(Duration::from_millis(10));
    assert_eq!(h.agent.received, b"input for cat\n");
}

#[test]
fn a_port_session_never_opens_without_its_handshake() {
    let mut h = Harness::new(SessionKind::Port);
    h.agent.send_stream(payload::OUTPUT, b"SSH-2.0-early\r\n");
    h.run(Duration::from_secs(10));
    assert_eq!(h.ready(), None, "a port session opened without its handshake");
    assert!(matches!(h.closed(), Some(CloseReason::HandshakeTimeout)) || h.closed().is_none());
    assert_eq!(h.client.send(h.now, b"x"), 0);
}

#[test]
fn kms_handshake_challenge_and_encrypted_streams_both_ways() {
    let mut h = Harness::encrypted(SessionKind::Shell, "Standard_Stream");
    // The key request carries the session, the target and the challenge as received.
    let request = &h.key_requests[0];
    assert_eq!(request.key_id, KEY_ARN);
    assert_eq!(request.context["aws:ssm:SessionId"], "alice-0a1b2c3d4e5f");
    assert_eq!(request.context["aws:ssm:TargetId"], "i-0123456789abcdef0");
    assert_eq!(request.context["aws:ssm:RandomChallenge"], CHALLENGE);
    assert!(h.agent.complete);
    let secret = b"echo the-secret-keystrokes\n";
    assert_eq!(h.client.send(h.now, secret), secret.len());
    h.client.send_size(h.now, 90, 20);
    h.run(Duration::from_millis(10));
    assert_eq!(h.agent.received, secret);
    assert_eq!(h.agent.undecryptable, 0);
    // No plaintext Output crossed the wire: each payload is the plaintext plus nonce and tag,
    // and does not contain it.
    for wire in &h.agent.wire_outputs {
        assert!(!wire.windows(10).any(|w| secret.windows(10).any(|s| s == w)), "plaintext on the wire");
    }
    assert_eq!(h.agent.wire_outputs.iter().map(Vec::len).sum::<usize>(), secret.len() + 28);
    // Size stays plaintext JSON (§11.7).
    assert_eq!(h.agent.sizes, [Size { cols: 90, rows: 20 }]);
    h.agent.send_stream(payload::OUTPUT, b"the-secret-keystrokes\r\n$ ");
    h.run(Duration::from_millis(10));
    assert_eq!(h.data(), b"the-secret-keystrokes\r\n$ ");
    assert_eq!(h.closed(), None);
}

#[test]
fn encrypted_command_streams_stderr_and_exit_code_are_decrypted() {
    let mut h = Harness::encrypted(SessionKind::NonInteractiveCommands, "NonInteractiveCommands");
    h.agent.send_stream(payload::OUTPUT, b"out\n");
    h.agent.send_stream(payload::STDERR, b"err\n");
    h.agent.send_stream(payload::EXIT_CODE, b"EXIT_CODE: 3");
    h.run(Duration::from_millis(10));
    let tail: Vec<&Event> = h.events.iter().skip_while(|e| !matches!(e, Event::Ready { .. })).skip(1).collect();
    assert_eq!(tail, [&Event::Data(b"out\n".to_vec()), &Event::StdErr(b"err\n".to_vec()), &Event::ExitCode(3)]);
}

#[test]
fn a_command_reports_stdout_stderr_and_exit_code_in_order() {
    let mut h = Harness::new(SessionKind::NonInteractiveCommands);
    h.agent.request("NonInteractiveCommands", false);
    h.run(Duration::from_millis(10));
    assert_eq!(h.ready(), Some(false));
    h.client.send_size(h.now, 80, 24);
    h.agent.send_stream(payload::OUTPUT, b"\x00\xffbinary");
    h.agent.send_stream(payload::STDERR, b"warning\n");
    h.agent.send_stream(payload::EXIT_CODE, b"EXIT_CODE: 0");
    h.run(Duration::from_millis(10));
    assert_eq!(h.data(), b"\x00\xffbinary");
    assert!(h.events.contains(&Event::StdErr(b"warning\n".to_vec())));
    assert_eq!(h.events.last(), Some(&Event::ExitCode(0)));
    assert!(h.agent.sizes.is_empty(), "no Size for a session without a pty");
}

#[test]
fn an_unreadable_exit_code_ends_the_session() {
    let mut h = Harness::new(SessionKind::NonInteractiveCommands);
    h.agent.request("NonInteractiveCommands", false);
    h.agent.send_stream(payload::EXIT_CODE, b"EXIT_CODE: three");
    h.run(Duration::from_millis(10));
    assert!(matches!(h.closed(), Some(CloseReason::Protocol(why)) if why.contains("exit code")), "{:?}", h.events);
    assert!(!h.events.iter().any(|e| matches!(e, Event::ExitCode(_))));
}

#[test]
fn a_payload_that_does_not_decrypt_ends_the_session_and_is_not_delivered() {
    let mut h = Harness::encrypted(SessionKind::Shell, "Standard_Stream");
    // Plaintext where ciphertext is due (a downgrade), then a payload sealed with another key.
    h.agent.send(payload::OUTPUT, b"plaintext that must not show".to_vec());
    h.run(Duration::from_millis(10));
    assert!(
        matches!(h.closed(), Some(CloseReason::Protocol(why)) if why.contains("does not decrypt")),
        "{:?}",
        h.events
    );
    assert!(h.data().is_empty());
    assert!(h.client.is_closed());

    let mut h = Harness::encrypted(SessionKind::NonInteractiveCommands, "NonInteractiveCommands");
    let other: Vec<u8> = (100u8..164).collect();
    let foreign = AgentCipher::new(&other).encrypt(b"err");
    h.agent.send(payload::STDERR, foreign);
    h.run(Duration::from_millis(10));
    assert!(matches!(h.closed(), Some(CloseReason::Protocol(_))));
    assert!(!h.events.iter().any(|e| matches!(e, Event::StdErr(_))));
}

#[test]
fn a_challenge_sealed_with_another_key_ends_the_session() {
    let mut h = Harness::new(SessionKind::Shell);
    h.agent.challenge_key = Some((9u8..73).collect());
    h.agent.request("Standard_Stream", true);
    h.run(Duration::from_secs(1));
    assert!(matches!(h.closed(), Some(CloseReason::Protocol(why)) if why.contains("challenge")), "{:?}", h.events);
    assert!(!h.agent.complete);
    assert_eq!(h.ready(), None);
}

#[test]
fn a_kms_failure_is_answered_failed_and_ends_the_session() {
    let mut h = Harness::new(SessionKind::Shell);
    h.key = Some(Err("AccessDeniedException: not authorized to perform kms:GenerateDataKey on the key".into()));
    h.agent.request("Standard_Stream", true);
    h.run(Duration::from_secs(1));
    // The agent heard why: the KMS action failed (status 2) with the reason.
    let response = &h.agent.responses[0];
    assert_eq!(response["ProcessedClientActions"][0]["ActionStatus"], 1);
    assert_eq!(response["ProcessedClientActions"][1]["ActionStatus"], 2);
    assert!(response["ProcessedClientActions"][1]["Error"].as_str().unwrap().contains("kms:GenerateDataKey"));
    match h.closed() {
        Some(CloseReason::KmsFailed { key_id, detail }) => {
            assert_eq!(key_id, KEY_ARN);
            assert!(detail.contains("AccessDeniedException"));
        }
        other => panic!("{other:?}"),
    }
    assert!(h.client.is_flushed());
}

#[test]
fn a_key_of_the_wrong_size_is_a_kms_failure() {
    let mut h = Harness::new(SessionKind::InteractiveCommands);
    h.key = Some(Ok(DataKey { ciphertext: BLOB.to_vec(), plaintext: Zeroizing::new(vec![1; 32]) }));
    h.agent.request("InteractiveCommands", true);
    h.run(Duration::from_secs(1));
    assert!(matches!(h.closed(), Some(CloseReason::KmsFailed { detail, .. }) if detail.contains("32 bytes")));
    assert_eq!(h.agent.responses[0]["ProcessedClientActions"][1]["ActionStatus"], 2);
}

#[test]
fn a_session_type_that_is_not_the_one_started_is_refused() {
    let mut h = Harness::new(SessionKind::Shell);
    h.agent.request("Port", true);
    h.run(Duration::from_secs(10));
    assert!(h.key_requests.is_empty(), "no KMS call for a session that cannot work");
    assert_eq!(h.agent.responses[0]["ProcessedClientActions"][0]["ActionStatus"], 2);
    match h.closed() {
        Some(CloseReason::HandshakeRefused(why)) => assert!(why.contains("\"Port\""), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn port_sessions_keep_refusing_kms() {
    let mut h = Harness::new(SessionKind::Port);
    let body = format!(
        r#"{{"AgentVersion":"3.3.1142.0","RequestedClientActions":[{{"ActionType":"SessionType","ActionParameters":{{"SessionType":"Port","Properties":{{"portNumber":"22"}}}}}},{{"ActionType":"KMSEncryption","ActionParameters":{{"KMSKeyId":"{KEY_ARN}"}}}}]}}"#
    );
    h.agent.send(payload::HANDSHAKE_REQUEST, body.into_bytes());
    h.run(Duration::from_secs(10));
    assert!(h.key_requests.is_empty());
    assert_eq!(h.agent.responses[0]["ProcessedClientActions"][1]["ActionStatus"], 3);
    assert!(matches!(h.closed(), Some(CloseReason::HandshakeRefused(why)) if why.contains("port sessions")));
}

#[test]
fn an_encrypted_shell_survives_a_dropped_connection() {
    let mut h = Harness::encrypted(SessionKind::Shell, "Standard_Stream");
    assert_eq!(h.client.send(h.now, b"after-resume\n"), 13);
    // The websocket drops with our frame on the wire: it is lost.
    let mut lost = Vec::new();
    assert!(h.client.poll_transmit(h.now, &mut lost));
    h.client.handle_disconnect();
    h.run(Duration::from_secs(3));
    assert!(h.agent.received.is_empty());
    h.client.handle_reconnect(h.now);
    h.run(Duration::from_millis(10));
    assert_eq!(h.agent.received, b"after-resume\n");
    assert_eq!(h.agent.undecryptable, 0);
    h.agent.send_stream(payload::OUTPUT, b"still here");
    h.run(Duration::from_millis(10));
    assert_eq!(h.data(), b"still here");
}
