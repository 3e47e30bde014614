//! The MGS double: the data-channel websocket (`ssm-data-channel.md` §4, §7, §12, §13).
//!
//! Per connection: the path must be `/v1/data-channel/<SessionId>`; the first data frame must be
//! a text frame holding the `OpenDataChannelInput` JSON whose `TokenValue` is one the API issued
//! for that session, unused and not expired; otherwise the service closes with 1008 (policy
//! violation). Then binary frames pass verbatim between this client and the session's agent,
//! through the fault knobs. One writer task per connection sends to the client, so a client that
//! stops reading never stops the service from reading it (MGS buffers both ways).
//!
//! Reconnects: a new connection with a fresh token (ResumeSession) replaces the attached one.
//! Frames the agent sends before the first client attaches wait for it; frames it sends while
//! no client is attached later are dropped, and both ends retransmit. Detach sends the agent
//! `pause_publication`, attach `start_publication` (§7.3).
//!
//! Every open is logged in the request log as `ssmmessages`/`OpenDataChannel` with status 200
//! (accepted) or 403 (closed with 1008).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};

use super::frame::{self, CHANNEL_CLOSED, FLAG_SYN_FIN, Message};
use super::session::{AgentInput, Session, ToClient};
use super::{Disconnect, DisconnectKind};
use crate::state::State;
use crate::tls::Conn;

/// How long a connection may take to send its open frame (an inference; MGS's value is unknown).
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the writer may take to flush a final close frame before the socket goes.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// The path prefix of a data channel.
const PATH_PREFIX: &str = "/v1/data-channel/";

/// Accepts data-channel connections until the lab stops.
pub(crate) async fn serve(listener: TcpListener, state: Arc<State>, tls: Option<TlsAcceptor>) {
    let mut next_conn = 0u64;
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        next_conn += 1;
        let (state, tls, conn) = (state.clone(), tls.clone(), next_conn);
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            // A handle on the same socket, to abort it with RST for `DisconnectKind::Drop`.
            let Ok(raw) = tcp.into_std().and_then(|s| Ok((s.try_clone()?, s))) else {
                return;
            };
            let (Ok(abort_handle), Ok(tcp)) = (TcpStream::from_std(raw.0), TcpStream::from_std(raw.1)) else {
                return;
            };
            let stream = match tls {
                None => Conn::Plain(tcp),
                Some(acceptor) => match acceptor.accept(tcp).await {
                    Ok(s) => Conn::Tls(Box::new(s)),
                    Err(_) => return,
                },
            };
            handle(stream, abort_handle, &state, conn).await;
        });
    }
}

// The upgrade callback's `Result<Response, ErrorResponse>` is tungstenite's signature.
#[allow(clippy::result_large_err)]
async fn handle(stream: Conn, abort_handle: TcpStream, state: &Arc<State>, conn: u64) {
    let mut path = String::new();
    let callback = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        path = req.uri().path().to_string();
        if path.strip_prefix(PATH_PREFIX).is_some_and(|sid| !sid.is_empty() && !sid.contains('/')) {
            return Ok(resp);
        }
        let mut err = ErrorResponse::new(Some("not a data-channel path".into()));
        *err.status_mut() = StatusCode::NOT_FOUND;
        Err(err)
    };
    // tungstenite zero-fills its read buffer (128 KiB by default) before every read; SSM frames
    // are about 1 KiB, so 16 KiB keeps the double's own cost out of the benchmarks.
    let config = WebSocketConfig::default().read_buffer_size(16 * 1024);
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)).await else {
        return;
    };
    let sid = path.trim_start_matches(PATH_PREFIX).to_string();
    let (tx, rx) = mpsc::unbounded_channel();
    let opened = match tokio::time::timeout(OPEN_TIMEOUT, read_open_frame(&mut ws)).await {
        Err(_) => Err("no open frame in time".to_string()),
        Ok(Err(e)) => Err(e),
        Ok(Ok(token)) => match state.ssm.get(&sid) {
            None => Err("unknown session".into()),
            Some(session) => {
                let ttl = state.ssm_faults().token_ttl;
                session.open(&token, state.now_millis(), ttl, conn, tx).map(|()| session).map_err(str::to_string)
            }
        },
    };
    let session = match opened {
        Ok(session) => session,
        Err(reason) => {
            state.record("ssmmessages", "OpenDataChannel", 403, "");
            let close = CloseFrame { code: CloseCode::Policy, reason: reason.into() };
            let _ = tokio::time::timeout(CLOSE_GRACE, ws.close(Some(close))).await;
            return;
        }
    };
    state.record("ssmmessages", "OpenDataChannel", 200, "");
    let disconnect = state.with_ssm_faults(|f| f.disconnects.pop_front());
    let (sink, stream) = ws.split();
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let writer = tokio::spawn(write_loop(sink, out_rx, session.client_backlog()));
    let mut relay = Relay { state, session: &session, out: out_tx, relayed: 0, queue: VecDeque::new() };
    let exit = relay.run(stream, rx, disconnect).await;
    drop(relay);
    match exit {
        Exit::Closing => {
            let _ = tokio::time::timeout(CLOSE_GRACE, writer).await;
        }
        Exit::Reset => {
            // Let the writer hand over what was relayed, then abort the connection with RST.
            let abort = writer.abort_handle();
            if tokio::time::timeout(CLOSE_GRACE, writer).await.is_err() {
                abort.abort();
            }
            let _ = abort_handle.set_zero_linger();
        }
        Exit::Gone => writer.abort(),
    }
    session.detach(conn);
}

async fn read_open_frame<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> Result<String, String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        match ws.next().await {
            Some(Ok(Ws::Text(text))) => {
                let open: Value = serde_json::from_str(&text).map_err(|_| "open frame is not JSON".to_string())?;
                return frame::field(&open, "TokenValue")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| "open frame has no TokenValue".into());
            }
            Some(Ok(Ws::Ping(_) | Ws::Pong(_))) => continue,
            Some(Ok(_)) => return Err("first frame must be the OpenDataChannelInput text frame".into()),
            Some(Err(_)) | None => return Err("closed before the open frame".into()),
        }
    }
}

/// How a connection's relay loop ended.
enum Exit {
    /// The writer is sending a close frame: give it a moment.
    Closing,
    /// The writer stops after what is queued; then the TCP connection is aborted (RST).
    Reset,
    /// The client closed, the socket failed, or another connection replaced this one.
    Gone,
}

/// What the writer task sends to the client.
enum Out {
    Frame(Vec<u8>),
    Close(CloseFrame),
    /// Stop without a close frame.
    Stop,
}

/// A frame waiting for its (delayed) delivery.
enum Pending {
    ToAgent(Vec<u8>),
    ToClient(Vec<u8>),
    ChannelClosed(Vec<u8>),
}

struct Relay<'a> {
    state: &'a State,
    session: &'a Arc<Session>,
    out: mpsc::UnboundedSender<Out>,
    relayed: u64,
    queue: VecDeque<(Instant, Pending)>,
}

impl Relay<'_> {
    async fn run<S>(
        &mut self,
        mut stream: S,
        mut rx: mpsc::UnboundedReceiver<ToClient>,
        cut: Option<Disconnect>,
    ) -> Exit
    where
        S: futures_util::Stream<Item = Result<Ws, tokio_tungstenite::tungstenite::Error>> + Unpin,
    {
        let cut_at = cut.as_ref().and_then(|d| d.after).map(|after| Instant::now() + after);
        let cut_bytes = cut.as_ref().map_or(u64::MAX, |d| d.after_bytes);
        let cut_kind = cut.as_ref().map_or(DisconnectKind::Drop, |d| d.kind);
        loop {
            if self.relayed >= cut_bytes {
                return self.disconnect(cut_kind);
            }
            let due = self.queue.front().map(|(at, _)| *at);
            tokio::select! {
                msg = stream.next() => match msg {
                    Some(Ok(Ws::Binary(b))) => self.enqueue(Pending::ToAgent(b.to_vec())),
                    Some(Ok(Ws::Text(t))) => self.enqueue(Pending::ToAgent(t.as_bytes().to_vec())),
                    Some(Ok(Ws::Close(_))) | Some(Err(_)) | None => return Exit::Gone,
                    Some(Ok(_)) => {}
                },
                item = rx.recv() => match item {
                    Some(ToClient::Frame(f)) => self.relay_from_agent(f),
                    Some(ToClient::ChannelClosed { output }) => {
                        let frame = channel_closed(self.session, &output, self.state.ssm_faults().channel_closed_hl112);
                        self.enqueue(Pending::ChannelClosed(frame));
                    }
                    Some(ToClient::Replaced) | None => return Exit::Gone,
                },
                _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {}
                _ = tokio::time::sleep_until(cut_at.unwrap_or_else(Instant::now)), if cut_at.is_some() => {
                    return self.disconnect(cut_kind);
                }
            }
            if let Some(exit) = self.deliver_due(cut_bytes) {
                return exit;
            }
        }
    }

    fn enqueue(&mut self, item: Pending) {
        let delay = self.state.ssm_faults().delay;
        self.queue.push_back((Instant::now() + delay, item));
    }

    /// Applies the frame knobs to a frame from the agent.
    fn relay_from_agent(&mut self, mut f: Vec<u8>) {
        let ty = frame::message_type(&f);
        let copies = self.state.with_ssm_faults(|k| {
            let (drop, dup) = match ty.as_str() {
                frame::ACKNOWLEDGE => (&mut k.drop_acks, &mut k.duplicate_acks),
                frame::OUTPUT_STREAM_DATA => (&mut k.drop_frames, &mut k.duplicate_frames),
                _ => return 1,
            };
            let copies = if *drop > 0 {
                *drop -= 1;
                0
            } else if *dup > 0 {
                *dup -= 1;
                2
            } else {
                1
            };
            if copies > 0 && ty == frame::OUTPUT_STREAM_DATA && k.corrupt_digest > 0 && f.len() > frame::DIGEST_OFFSET {
                k.corrupt_digest -= 1;
                f[frame::DIGEST_OFFSET] ^= 0xff;
            }
            copies
        });
        for _ in 1..copies {
            self.enqueue(Pending::ToClient(f.clone()));
        }
        if copies > 0 {
            self.enqueue(Pending::ToClient(f));
        }
    }

    /// Delivers every frame whose time has come; stops at a disconnect mark or `channel_closed`.
    fn deliver_due(&mut self, cut_bytes: u64) -> Option<Exit> {
        let now = Instant::now();
        while self.queue.front().is_some_and(|(at, _)| *at <= now) {
            let Some((_, item)) = self.queue.pop_front() else { break };
            match item {
                Pending::ToAgent(f) => {
                    let n = f.len() as u64;
                    self.relayed += n;
                    self.session.update(|i| i.bytes_from_client += n);
                    self.session.observe(&f, false);
                    self.session.to_agent(AgentInput::Frame(f));
                }
                Pending::ToClient(f) => {
                    let n = f.len() as u64;
                    self.relayed += n;
                    self.session.update(|i| i.bytes_to_client += n);
                    self.session.observe(&f, true);
                    let _ = self.out.send(Out::Frame(f));
                }
                Pending::ChannelClosed(f) => {
                    let _ = self.out.send(Out::Frame(f));
                    let _ = self.out.send(Out::Close(CloseFrame { code: CloseCode::Normal, reason: "".into() }));
                    return Some(Exit::Closing);
                }
            }
            if self.relayed >= cut_bytes {
                return None; // The loop head performs the disconnect.
            }
        }
        None
    }

    fn disconnect(&mut self, kind: DisconnectKind) -> Exit {
        match kind {
            DisconnectKind::Drop => {
                let _ = self.out.send(Out::Stop);
                Exit::Reset
            }
            DisconnectKind::Bye => {
                let _ = self.out.send(Out::Close(CloseFrame { code: CloseCode::Normal, reason: "Bye".into() }));
                Exit::Closing
            }
            DisconnectKind::End => {
                self.session.end("ended by the lab's ssm-end fault", false);
                let frame = channel_closed(self.session, "", self.state.ssm_faults().channel_closed_hl112);
                let _ = self.out.send(Out::Frame(frame));
                let _ = self.out.send(Out::Close(CloseFrame { code: CloseCode::Normal, reason: "".into() }));
                Exit::Closing
            }
        }
    }
}

async fn write_loop<S>(mut sink: S, mut rx: mpsc::UnboundedReceiver<Out>, backlog: Arc<AtomicUsize>)
where
    S: futures_util::Sink<Ws> + Unpin,
{
    while let Some(out) = rx.recv().await {
        match out {
            Out::Frame(f) => {
                let n = f.len();
                if sink.send(Ws::Binary(f.into())).await.is_err() {
                    return;
                }
                let _ = backlog.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| Some(b.saturating_sub(n)));
            }
            Out::Close(close) => {
                let _ = sink.send(Ws::Close(Some(close))).await;
                return;
            }
            Out::Stop => return,
        }
    }
}

/// The `channel_closed` message MGS sends when a session ends (§7.2).
fn channel_closed(session: &Session, output: &str, short_header: bool) -> Vec<u8> {
    let info = session.info();
    let mut msg = Message::new(CHANNEL_CLOSED, 0, FLAG_SYN_FIN, 0, Vec::new());
    let payload = serde_json::json!({
        "MessageId": msg.id_string(),
        "CreatedDate": iso8601_millis(msg.created_date),
        "DestinationId": info.target,
        "SessionId": session.id,
        "MessageType": CHANNEL_CLOSED,
        "SchemaVersion": 1,
        "Output": output,
    });
    msg.set_payload(payload.to_string().into_bytes());
    if short_header { msg.encode_short() } else { msg.encode() }
}

/// `2026-11-23T08:26:32.123Z` from Unix milliseconds.
fn iso8601_millis(ms: u64) -> String {
    let c = crate::civil_time::from_unix(ms / 1000);
    format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", c.year, c.month, c.day, c.hour, c.minute, c.second, ms % 1000)
}

#[cfg(test)]
mod tests {
    #[test]
    fn iso8601() {
        assert_eq!(super::iso8601_millis(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(super::iso8601_millis(0), "1970-01-01T00:00:00.000Z");
    }
}
