//! One websocket as a link a protocol driver can use: the receiving half for the driver's loop,
//! the sending half in a writer task (so a full socket never stops the loop from reading), a
//! bounded dial, and the first text frame sent before anything else. Used by the Session Manager
//! data channel (`crate::ssm::driver`); nothing in it knows that protocol.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::SinkExt;
use futures_util::stream::{SplitSink, SplitStream, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::text::printable;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long we wait for the websocket upgrade (the official SSM plugin allows 45 s).
const DIAL_TIMEOUT: Duration = Duration::from_secs(15);
/// Largest websocket message we accept: SSM frames are a 1 KiB payload plus header; anything
/// near this is a broken peer, and the bound keeps memory bounded.
pub(crate) const MAX_WS_MESSAGE: usize = 1 << 20;
/// Bytes asked for per socket read. tungstenite zero-fills this much before every read, the
/// last one (which finds the socket empty) included: at its default of 128 KiB that memset was a
/// fifth of the broker's CPU for 1 KiB Session Manager messages (perf, unpaced scp through the
/// lab). 16 KiB still takes a dozen messages per read.
pub(crate) const READ_BUFFER: usize = 16 * 1024;
/// How long a closing link may take to send what is queued and its close frame.
const CLOSE_BUDGET: Duration = Duration::from_millis(200);

/// One websocket: the receiving half here, the sending half in a writer task.
pub(crate) struct Link {
    /// Frames from the peer.
    pub stream: SplitStream<Ws>,
    tx: mpsc::UnboundedSender<WsMessage>,
    writer: AbortOnDrop,
}

/// The writer task of a link; a replaced link's writer must not linger on a dead socket.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Link {
    /// Dials `url` (already checked by the caller), sends `first_text` as a text frame, starts
    /// the writer. `Err` is what failed, made printable.
    pub(crate) async fn dial(url: &str, tls: Arc<rustls::ClientConfig>, first_text: String) -> Result<Link, String> {
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_WS_MESSAGE))
            .max_frame_size(Some(MAX_WS_MESSAGE))
            .read_buffer_size(READ_BUFFER);
        let connector = Connector::Rustls(tls);
        let dial = tokio_tungstenite::connect_async_tls_with_config(url, Some(config), true, Some(connector));
        let (ws, _) = tokio::time::timeout(DIAL_TIMEOUT, dial)
            .await
            .map_err(|_| format!("no answer within {}s", DIAL_TIMEOUT.as_secs()))?
            .map_err(|e| printable(&e.to_string()).into_owned())?;
        let (mut sink, stream) = ws.split();
        sink.send(WsMessage::Text(first_text.into())).await.map_err(|e| printable(&e.to_string()).into_owned())?;
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = AbortOnDrop(tokio::spawn(write_frames(sink, rx)));
        Ok(Link { stream, tx, writer })
    }

    /// Queues a message for the writer.
    pub(crate) fn send(&self, m: WsMessage) {
        // If the writer is gone, the reader sees the connection end and the driver resumes.
        let _ = self.tx.send(m);
    }

    /// Sends what is queued, then a close frame; bounded so the broker exits promptly.
    pub(crate) async fn close(mut self) {
        let _ = self.tx.send(WsMessage::Close(None));
        drop(self.tx);
        let _ = tokio::time::timeout(CLOSE_BUDGET, &mut self.writer.0).await;
    }
}

/// The writer task: one websocket message per queued frame, flushed when the queue is empty.
async fn write_frames(mut sink: SplitSink<Ws, WsMessage>, mut rx: mpsc::UnboundedReceiver<WsMessage>) {
    while let Some(m) = rx.recv().await {
        if sink.feed(m).await.is_err() {
            return;
        }
        while let Ok(m) = rx.try_recv() {
            if sink.feed(m).await.is_err() {
                return;
            }
        }
        if sink.flush().await.is_err() {
            return;
        }
    }
}

/// Sleeps until `t`, or forever when there is no deadline (a `select!` branch that never fires).
pub(crate) async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

/// Up to +50 % jitter, so many clients dropped at once do not reconnect in lockstep.
pub(crate) fn jittered(d: Duration) -> Duration {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |t| t.subsec_nanos());
    d + d.mul_f64(f64::from(nanos % 500) / 1000.0)
}
