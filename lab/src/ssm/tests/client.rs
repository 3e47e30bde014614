//! A tiny SSM client for the lab's own tests: raw HTTP for the API, a websocket that speaks the
//! lab codec, and just enough sequencing to ack and de-duplicate.

use std::collections::BTreeSet;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use crate::Lab;
use crate::ssm::frame::{self, Message, payload_type};

/// Every wait in these tests is bounded by this.
pub(super) const DEADLINE: Duration = Duration::from_secs(20);

/// Calls `AmazonSSM.<op>` on the lab's API endpoint; returns the status and the JSON body.
pub(super) fn call(lab: &Lab, op: &str, body: Value) -> (u16, Value) {
    let headers = format!("Content-Type: application/x-amz-json-1.1\r\nX-Amz-Target: AmazonSSM.{op}\r\n");
    let (status, body) = crate::test_world::post(lab, &headers, &body.to_string());
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// StartSession with AWS-StartSSHSession; panics unless it succeeds.
pub(super) fn start(lab: &Lab, target: &str) -> (String, String, String) {
    let (status, body) = call(
        lab,
        "StartSession",
        json!({"Target": target, "DocumentName": "AWS-StartSSHSession", "Parameters": {"portNumber": ["22"]}}),
    );
    assert_eq!(status, 200, "{body}");
    let s = |k: &str| body[k].as_str().unwrap_or_else(|| panic!("{k} in {body}")).to_string();
    (s("SessionId"), s("StreamUrl"), s("TokenValue"))
}

/// A data-channel client over any stream.
pub(super) struct Client<S> {
    pub(super) ws: WebSocketStream<S>,
    next_seq: i64,
    expected: i64,
    /// Sequence numbers of our messages the agent acknowledged.
    pub(super) acked: BTreeSet<i64>,
    /// Every `acknowledge` payload, for duplicate-ack checks.
    pub(super) acks: Vec<i64>,
    /// Frames dropped (not acked) for a bad digest, as the plugin does.
    pub(super) bad_digests: u32,
    last_sent: Vec<u8>,
}

/// Opens a plain websocket to `url` (no open frame yet).
pub(super) async fn connect(url: &str) -> Result<Client<TcpStream>, tokio_tungstenite::tungstenite::Error> {
    let addr = url.trim_start_matches("ws://").split('/').next().unwrap_or_default().to_string();
    let tcp = TcpStream::connect(addr).await.expect("connecting to the data channel");
    let (ws, _) = tokio_tungstenite::client_async(url, tcp).await?;
    Ok(Client::new(ws))
}

/// What came in.
#[derive(Debug)]
pub(super) enum Event {
    /// The next in-order `output_stream_data` (already acked).
    Stream(Message),
    /// `channel_closed`, with the raw frame.
    ChannelClosed(Message, Vec<u8>),
    /// A close frame.
    Closed(Option<CloseFrame>),
    /// The connection failed or ended without a close frame.
    Gone,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    pub(super) fn new(ws: WebSocketStream<S>) -> Self {
        Client {
            ws,
            next_seq: 0,
            expected: 0,
            acked: BTreeSet::new(),
            acks: Vec::new(),
            bad_digests: 0,
            last_sent: Vec::new(),
        }
    }

    /// Keeps the sequence counters across a reconnect to `fresh`.
    pub(super) fn resume_on(self, fresh: Client<S>) -> Self {
        Client { ws: fresh.ws, ..self }
    }

    pub(super) async fn open(&mut self, token: &str) {
        let open = json!({"MessageSchemaVersion": "1.0", "RequestId": "00000000-0000-4000-8000-000000000001",
            "TokenValue": token, "ClientId": "00000000-0000-4000-8000-000000000002", "ClientVersion": "1.2.677.0"});
        self.ws.send(Ws::text(open.to_string())).await.expect("sending the open frame");
    }

    /// Sends one `input_stream_data`; returns its sequence number.
    pub(super) async fn send(&mut self, payload_type: u32, payload: &[u8]) -> i64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        let m = Message::new(frame::INPUT_STREAM_DATA, seq, 0, payload_type, payload.to_vec());
        self.last_sent = m.encode();
        self.ws.send(Ws::binary(self.last_sent.clone())).await.expect("sending");
        seq
    }

    /// Sends the last frame again, byte for byte (a retransmission).
    pub(super) async fn resend_last(&mut self) {
        self.ws.send(Ws::binary(self.last_sent.clone())).await.expect("sending");
    }

    /// The HandshakeResponse for an SSH session (§16.6).
    pub(super) async fn respond(&mut self, status: u32) -> i64 {
        let r = json!({"ClientVersion": "1.2.677.0", "ProcessedClientActions":
            [{"ActionType": "SessionType", "ActionStatus": status, "ActionResult": null, "Error": ""}], "Errors": null});
        self.send(payload_type::HANDSHAKE_RESPONSE, r.to_string().as_bytes()).await
    }

    /// Waits for the next event, acking and de-duplicating agent stream data.
    pub(super) async fn next(&mut self) -> Event {
        loop {
            let msg = match tokio::time::timeout(DEADLINE, self.ws.next()).await.expect("nothing came in time") {
                Some(Ok(Ws::Binary(b))) => b.to_vec(),
                Some(Ok(Ws::Close(c))) => return Event::Closed(c),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Event::Gone,
            };
            let m = Message::decode(&msg).expect("a valid frame from the lab");
            match m.message_type.as_str() {
                frame::ACKNOWLEDGE => {
                    let seq = frame::acked_sequence(&m.payload).expect("an ack payload");
                    self.acks.push(seq);
                    self.acked.insert(seq);
                }
                frame::CHANNEL_CLOSED => return Event::ChannelClosed(m, msg),
                frame::OUTPUT_STREAM_DATA => {
                    if !m.digest_ok() {
                        self.bad_digests += 1;
                        continue;
                    }
                    let ack = frame::ack(&m).encode();
                    if self.ws.send(Ws::binary(ack)).await.is_err() {
                        return Event::Gone;
                    }
                    if m.sequence_number == self.expected {
                        self.expected += 1;
                        return Event::Stream(m);
                    }
                }
                other => panic!("unexpected message type {other}"),
            }
        }
    }

    /// The next in-order stream message; panics on anything else.
    pub(super) async fn stream(&mut self) -> Message {
        match self.next().await {
            Event::Stream(m) => m,
            other => panic!("expected stream data, got {other:?}"),
        }
    }

    /// Collects `Output` until `needle` shows up; returns everything collected.
    pub(super) async fn output_until(&mut self, needle: &[u8]) -> Vec<u8> {
        let mut got = Vec::new();
        while !got.windows(needle.len()).any(|w| w == needle) {
            let m = self.stream().await;
            assert_eq!(m.payload_type, payload_type::OUTPUT, "{m:?}");
            assert!(m.payload.len() <= 1024, "the agent sends at most 1024 bytes per message");
            got.extend_from_slice(&m.payload);
        }
        got
    }

    /// Handshake from the agent's request to its HandshakeComplete; returns the request JSON.
    pub(super) async fn handshake(&mut self) -> Value {
        let request = self.stream().await;
        assert_eq!((request.sequence_number, request.flags, request.payload_type), (0, 1, 5), "{request:?}");
        self.respond(1).await;
        let complete = self.stream().await;
        assert_eq!(complete.payload_type, payload_type::HANDSHAKE_COMPLETE, "{complete:?}");
        serde_json::from_slice(&request.payload).expect("HandshakeRequest JSON")
    }
}
