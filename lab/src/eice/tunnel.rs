//! One accepted tunnel: dial the target, relay raw TCP bytes in binary frames both ways, and
//! close (spec §4.2). Close codes and reasons (the real ones are not documented except "Unable to
//! connect to target", seen in the wild; the codes are the lab's choice):
//!
//! | event | close code | reason |
//! |---|---|---|
//! | the target closed its TCP connection | 1000 | (empty) |
//! | the target could not be reached | 1011 | `Unable to connect to target` |
//! | reading from the target failed | 1011 | `Lost connection to target` |
//! | `maxTunnelDuration` (or 3600 s, or the `tunnel_cap` fault) elapsed | 1001 | `Maximum tunnel duration (N s) reached` |
//! | the client sent a text frame | 1003 | `Text frames are not supported: send tunnel data in binary frames` |
//! | the client sent a frame over 64 KiB | 1009 | `Frame too large: at most 65536 bytes` |
//! | the `close_code` fault | its code | its reason |
//!
//! When the client closes first, the service answers its close frame and drops the TCP
//! connection. If writing to the target fails, frames from the client are dropped until the
//! target's side ends, so the target's last bytes still reach the client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as Ws};

use super::MAX_FRAME;
use super::admission::Admitted;
use crate::state::State;

/// How long dialling the target may take (the agent double uses the same).
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a close frame and the client's answer to it may take.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// The reason when the target cannot be reached (as the real service says it).
const UNREACHABLE: &str = "Unable to connect to target";
/// The text of the `send_text_frame` fault.
const FAULT_TEXT: &str = "ec2-lab fault: a text frame instead of tunnel data";

/// How the relay ended.
enum End {
    TargetEof,
    TargetError(String),
    Duration(Duration),
    ClientText,
    ClientTooBig,
    /// The client sent a close frame (with this code).
    ClientClosed(Option<u16>),
    /// The websocket failed or ended without a close frame.
    ClientGone(String),
}

/// Runs the tunnel `index` of the registry until it ends.
pub(super) async fn run<S>(ws: WebSocketStream<S>, state: &Arc<State>, index: usize, admitted: Admitted)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let faults = state.eice_faults();
    let (mut sink, mut stream) = ws.split();
    if faults.send_text_frame {
        let _ = sink.send(Ws::text(FAULT_TEXT)).await;
    }
    if let Some((code, reason)) = faults.close_code {
        finish(state, index, Some(code), reason.clone());
        return close(&mut sink, &mut stream, code, &reason).await;
    }
    let tcp = match dial(state, &admitted).await {
        Ok(tcp) => tcp,
        Err(detail) => {
            finish(state, index, Some(1011), format!("{UNREACHABLE} ({detail})"));
            return close(&mut sink, &mut stream, 1011, UNREACHABLE).await;
        }
    };
    let limit = faults.tunnel_cap.unwrap_or(admitted.duration);
    let (tcp_read, tcp_write) = tcp.into_split();
    let end = tokio::select! {
        end = up(&mut stream, tcp_write, state, index) => end,
        end = down(tcp_read, &mut sink, state, index) => end,
        () = tokio::time::sleep(limit) => End::Duration(limit),
    };
    let (code, reason) = match end {
        End::TargetEof => (Some(1000), String::new()),
        End::TargetError(_) => (Some(1011), "Lost connection to target".to_string()),
        End::Duration(d) => (Some(1001), format!("Maximum tunnel duration ({}) reached", seconds(d))),
        End::ClientText => (Some(1003), "Text frames are not supported: send tunnel data in binary frames".into()),
        End::ClientTooBig => (Some(1009), format!("Frame too large: at most {MAX_FRAME} bytes")),
        End::ClientClosed(code) => {
            let code = code.map_or("no code".into(), |c| format!("code {c}"));
            finish(state, index, None, format!("the client closed the tunnel ({code})"));
            // Sends the answer tungstenite queued for the client's close frame.
            let _ = tokio::time::timeout(CLOSE_GRACE, sink.close()).await;
            return;
        }
        End::ClientGone(e) => return finish(state, index, None, format!("the client connection ended: {e}")),
    };
    let recorded = match &end {
        End::TargetEof => "the target closed the connection".to_string(),
        End::TargetError(e) => format!("{reason} ({e})"),
        _ => reason.clone(),
    };
    finish(state, index, code, recorded);
    close(&mut sink, &mut stream, code.unwrap_or(1000), &reason).await;
}

/// Marks tunnel `index` closed (before the close frame goes out, so a client that has seen it
/// finds the record final).
pub(super) fn finish(state: &State, index: usize, code: Option<u16>, reason: String) {
    state.eice.update(index, |t| {
        t.open = false;
        t.close_code = code;
        t.closed_reason = Some(reason);
    });
}

/// Port 22 or the instance's lab ssh port: its sshd (the hidden listener without inbound
/// network); any other port: `privateIpAddress:remotePort`.
async fn dial(state: &State, a: &Admitted) -> Result<TcpStream, String> {
    let instance = state.inventory.get(&a.instance_id).ok_or("no such instance")?;
    if instance.state != "running" {
        return Err(format!("instance {} is {}", instance.id, instance.state));
    }
    let addr = match state.ssm.target(&a.instance_id) {
        Some(t) if a.port == 22 || a.port == t.ssh_port => t.sshd,
        _ => SocketAddr::from((a.ip, a.port)),
    };
    let tcp = tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| format!("dial tcp {addr}: i/o timeout"))?
        .map_err(|e| format!("dial tcp {addr}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}

/// Client → target. After a failed write to the target, frames are read and dropped.
async fn up<St>(stream: &mut St, mut tcp: OwnedWriteHalf, state: &State, index: usize) -> End
where
    St: Stream<Item = Result<Ws, WsError>> + Unpin,
{
    let mut target_ok = true;
    loop {
        match stream.next().await {
            Some(Ok(Ws::Binary(data))) => {
                if target_ok && tcp.write_all(&data).await.is_err() {
                    target_ok = false;
                }
                let n = data.len() as u64;
                state.eice.update(index, |t| t.bytes_up += n);
            }
            Some(Ok(Ws::Text(_))) => return End::ClientText,
            Some(Ok(Ws::Close(frame))) => return End::ClientClosed(frame.map(|f| u16::from(f.code))),
            Some(Ok(_)) => {}
            Some(Err(WsError::Capacity(_))) => return End::ClientTooBig,
            Some(Err(e)) => return End::ClientGone(e.to_string()),
            None => return End::ClientGone("no close frame".into()),
        }
    }
}

/// Target → client, in binary frames of at most [`MAX_FRAME`] bytes.
async fn down<Si>(mut tcp: OwnedReadHalf, sink: &mut Si, state: &State, index: usize) -> End
where
    Si: Sink<Ws> + Unpin,
    Si::Error: std::fmt::Display,
{
    let mut buf = vec![0u8; MAX_FRAME];
    loop {
        match tcp.read(&mut buf).await {
            Ok(0) => return End::TargetEof,
            Ok(n) => {
                if let Err(e) = sink.send(Ws::binary(buf[..n].to_vec())).await {
                    return End::ClientGone(e.to_string());
                }
                state.eice.update(index, |t| t.bytes_down += n as u64);
            }
            Err(e) => return End::TargetError(e.to_string()),
        }
    }
}

/// Sends a close frame and waits (briefly) for the client's answer.
async fn close<Si, St>(sink: &mut Si, stream: &mut St, code: u16, reason: &str)
where
    Si: Sink<Ws> + Unpin,
    St: Stream<Item = Result<Ws, WsError>> + Unpin,
{
    let frame = CloseFrame { code: CloseCode::from(code), reason: truncate(reason, 123).into() };
    if tokio::time::timeout(CLOSE_GRACE, sink.send(Ws::Close(Some(frame)))).await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        while let Some(Ok(msg)) = stream.next().await {
            if msg.is_close() {
                break;
            }
        }
    })
    .await;
}

/// A close reason fits in 123 bytes (RFC 6455 §5.5).
fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `2 s`, or `1500 ms` when not whole seconds.
fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 { format!("{} s", d.as_secs()) } else { format!("{} ms", d.as_millis()) }
}
