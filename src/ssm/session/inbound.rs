//! What an in-order agent message does to the session: the handshake (§8), the KMS challenge
//! (§11.8), stream payloads (decrypted when KMS is on), stderr and the exit code (§10.5).

use std::time::{Duration, Instant};

use russh::keys::ssh_key::encoding::base64::{Base64, Encoding};

use super::{CloseReason, Event, Phase, Session};
use crate::ssm::handshake::{self, Challenge, HandshakeComplete, HandshakeRequest};
use crate::ssm::message::{Message, flag, payload};

/// After we refused an action, the agent ends the session; if MGS does not say so this soon,
/// stop waiting (the agent's own handshake limit is 15 s, but it acts on a refusal at once).
const REFUSAL_GRACE: Duration = Duration::from_secs(3);

impl Session {
    /// Handles one agent message in sequence order, after it was acknowledged.
    pub(super) fn deliver(&mut self, now: Instant, m: Message) {
        match m.payload_type {
            payload::OUTPUT | payload::STDERR | payload::EXIT_CODE => self.deliver_stream(now, m),
            payload::HANDSHAKE_REQUEST => self.handle_handshake_request(now, &m.payload),
            payload::ENC_CHALLENGE_REQUEST if self.phase != Phase::Closed => self.handle_challenge(now, &m.payload),
            payload::HANDSHAKE_COMPLETE if self.phase == Phase::Handshake && self.refusal.is_none() => {
                let done: Option<HandshakeComplete> = serde_json::from_slice(&m.payload).ok();
                self.open(now, done.map(|d| d.customer_message).unwrap_or_default());
            }
            payload::FLAG if m.payload == flag::CONNECT_TO_PORT_ERROR.to_be_bytes() => {
                self.close(CloseReason::ConnectToPortError);
            }
            // Payload types a client has no use for (`Error`, `Parameter`, and anything newer).
            _ => {}
        }
    }

    /// The handshake is over (or skipped): stream data may flow.
    pub(super) fn open(&mut self, now: Instant, customer_message: String) {
        if self.phase != Phase::Handshake {
            return;
        }
        self.phase = Phase::Open;
        self.handshake_deadline = None;
        self.events.push_back(Event::Ready {
            agent_version: std::mem::take(&mut self.agent_version),
            customer_message,
            encrypted: self.cipher.is_some(),
        });
        if let Some(size) = self.pending_size.take() {
            self.send_size(now, size.cols.try_into().unwrap_or(u16::MAX), size.rows.try_into().unwrap_or(u16::MAX));
        }
    }

    fn deliver_stream(&mut self, now: Instant, m: Message) {
        if self.phase == Phase::Handshake && !self.saw_handshake && self.config.kind.handshake_optional() {
            // A shell without KMS: no handshake, the pty's output comes first (§8).
            self.open(now, String::new());
        }
        let body = match &self.cipher {
            None => m.payload,
            Some(cipher) => match cipher.decrypt(&m.payload) {
                Ok(plain) => plain.to_vec(),
                Err(e) => {
                    self.close(CloseReason::Protocol(format!(
                        "{e}; the session was ended rather than show bytes that may not be the instance's"
                    )));
                    return;
                }
            },
        };
        match m.payload_type {
            payload::OUTPUT => {
                self.stats.bytes_in += body.len() as u64;
                if !body.is_empty() {
                    self.events.push_back(Event::Data(body));
                }
            }
            payload::STDERR => {
                self.stats.bytes_in += body.len() as u64;
                if !body.is_empty() {
                    self.events.push_back(Event::StdErr(body));
                }
            }
            _ => match parse_exit_code(&body) {
                Some(code) => self.events.push_back(Event::ExitCode(code)),
                None => self.close(CloseReason::Protocol(format!(
                    "the agent sent an unreadable exit code ({} bytes, not \"EXIT_CODE: <n>\")",
                    body.len()
                ))),
            },
        }
    }

    fn handle_handshake_request(&mut self, now: Instant, body: &[u8]) {
        if self.phase == Phase::Closed || self.pending.is_some() {
            return;
        }
        let Ok(request) = serde_json::from_slice::<HandshakeRequest>(body) else {
            self.close(CloseReason::HandshakeRefused("the agent sent an unreadable handshake request".into()));
            return;
        };
        self.saw_handshake = true;
        self.agent_version = request.agent_version.clone();
        let plan = handshake::plan(&request, self.config.kind, &self.config.ids);
        if let Some(key) = plan.key_request() {
            self.events.push_back(Event::DataKeyNeeded(key.clone()));
            self.pending = Some(plan);
            return;
        }
        let answer = plan.finish(None);
        self.push_stream(now, payload::HANDSHAKE_RESPONSE, answer.response, 0);
        if let Some(refusal) = answer.refusal {
            self.refusal = Some(refusal);
            self.handshake_deadline = Some(now + REFUSAL_GRACE);
        }
    }

    /// §11.8: decrypt the agent's 64 random bytes with its key, encrypt them with ours.
    fn handle_challenge(&mut self, now: Instant, body: &[u8]) {
        let Some(cipher) = &self.cipher else {
            self.close(CloseReason::Protocol("the agent sent a KMS challenge before any key was agreed".into()));
            return;
        };
        let opened = serde_json::from_slice::<Challenge>(body)
            .map_err(|_| "the agent's KMS challenge is not readable JSON".to_string())
            .and_then(|c| {
                Base64::decode_vec(c.challenge.trim())
                    .map_err(|_| "the agent's KMS challenge is not base64".to_string())
            })
            .and_then(|sealed| {
                cipher
                    .decrypt(&sealed)
                    .map_err(|e| format!("the agent's KMS challenge does not decrypt ({e}): it holds another data key"))
            });
        let reply = opened.map(|plain| Challenge { challenge: Base64::encode_string(&cipher.encrypt(&plain)) });
        match reply {
            Ok(answer) => {
                // A struct of one string always serialises.
                let body = serde_json::to_vec(&answer).expect("challenge serialises");
                self.push_stream(now, payload::ENC_CHALLENGE_RESPONSE, body, 0);
            }
            Err(why) => self.close(CloseReason::Protocol(why)),
        }
    }
}

/// `EXIT_CODE: <n>`, exactly (agent `shell.go`, `sendExitCode`): `n` is a decimal `int`, -1 when
/// the command was killed by a signal (Go's `ExitCode()`).
fn parse_exit_code(body: &[u8]) -> Option<i32> {
    let digits = body.strip_prefix(b"EXIT_CODE: ")?;
    let (negative, digits) = match digits.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, digits),
    };
    if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let value: i64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    i32::try_from(if negative { -value } else { value }).ok()
}

#[cfg(test)]
mod tests {
    use super::parse_exit_code;

    #[test]
    fn exit_codes_are_parsed_strictly() {
        assert_eq!(parse_exit_code(b"EXIT_CODE: 0"), Some(0));
        assert_eq!(parse_exit_code(b"EXIT_CODE: 3"), Some(3));
        assert_eq!(parse_exit_code(b"EXIT_CODE: 255"), Some(255));
        assert_eq!(parse_exit_code(b"EXIT_CODE: -1"), Some(-1));
        assert_eq!(parse_exit_code(b"EXIT_CODE: 2147483647"), Some(i32::MAX));
        for bad in [
            &b"EXIT_CODE: "[..],
            b"EXIT_CODE: +3",
            b"EXIT_CODE: 3\n",
            b"EXIT_CODE:3",
            b"exit_code: 3",
            b"EXIT_CODE: 3x",
            b"EXIT_CODE:  3",
            b"EXIT_CODE: 2147483648",
            b"EXIT_CODE: 99999999999",
            b"EXIT_CODE: -",
            b"",
        ] {
            assert_eq!(parse_exit_code(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
