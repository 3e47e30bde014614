//! The record of one SSM session that the API, the MGS service and the agent share, and the
//! registry of all sessions and agent targets. Frames are plain byte vectors here; nothing in this
//! file parses them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use super::SsmSessionInfo;
use crate::state::lock;

/// How many agent frames wait for the first client; a session nobody opens only resends its
/// HandshakeRequest, so this is never reached in practice.
const EARLY_FRAMES: usize = 256;

/// What the service or API tells a session's agent.
#[derive(Debug)]
pub(crate) enum AgentInput {
    /// A frame from the client, verbatim.
    Frame(Vec<u8>),
    /// `pause_publication`: no client is attached (§7.3).
    Pause,
    /// `start_publication`: a client is attached again.
    Start,
    /// The session is over (TerminateSession or the service ended it): close TCP and stop.
    Terminate,
}

/// What a session sends to its attached client connection.
#[derive(Debug)]
pub(crate) enum ToClient {
    /// A frame from the agent, verbatim.
    Frame(Vec<u8>),
    /// The session ended: send `channel_closed` with this `Output`, then close the websocket.
    ChannelClosed { output: String },
    /// Another connection took over the session: drop this one.
    Replaced,
}

/// Where the agent of an instance dials sshd.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target {
    /// sshd's listener the agent uses (the hidden one when the instance has no inbound network).
    pub(crate) sshd: SocketAddr,
    /// The port the instance's sshd nominally listens on (besides 22, `portNumber` may name it).
    pub(crate) ssh_port: u16,
}

/// Every session and agent target of the lab.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    sessions: Mutex<Vec<Arc<Session>>>,
    endpoint: Mutex<String>,
    targets: Mutex<BTreeMap<String, Target>>,
}

impl Registry {
    /// Sets the websocket base URL (`ws://127.0.0.1:PORT` or `wss://…`).
    pub(crate) fn set_endpoint(&self, url: String) {
        *lock(&self.endpoint) = url;
    }

    /// The websocket base URL.
    pub(crate) fn endpoint(&self) -> String {
        lock(&self.endpoint).clone()
    }

    /// Records where an instance's agent reaches sshd.
    pub(crate) fn add_target(&self, id: &str, target: Target) {
        lock(&self.targets).insert(id.into(), target);
    }

    /// Where an instance's agent reaches sshd, if the lab runs one for it.
    pub(crate) fn target(&self, id: &str) -> Option<Target> {
        lock(&self.targets).get(id).copied()
    }

    /// Adds a new session; returns it and the receiver its agent reads.
    pub(crate) fn create(
        &self,
        id: String,
        target: String,
        document: String,
    ) -> (Arc<Session>, mpsc::UnboundedReceiver<AgentInput>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let stream_url = format!("{}/v1/data-channel/{id}?role=publish_subscribe", self.endpoint());
        let info =
            SsmSessionInfo { id: id.clone(), target: target.clone(), document: document.clone(), ..Default::default() };
        let session = Arc::new(Session {
            id,
            stream_url,
            inner: Mutex::new(Inner { info, tokens: Vec::new(), client: None, early: Vec::new(), data_key: None }),
            to_agent: tx,
            client_backlog: Arc::default(),
        });
        lock(&self.sessions).push(session.clone());
        (session, rx)
    }

    /// A session by id, ended or not.
    pub(crate) fn get(&self, id: &str) -> Option<Arc<Session>> {
        lock(&self.sessions).iter().find(|s| s.id == id).cloned()
    }

    /// Every session's info, oldest first.
    pub(crate) fn infos(&self) -> Vec<SsmSessionInfo> {
        lock(&self.sessions).iter().map(|s| s.info()).collect()
    }
}

/// One session.
#[derive(Debug)]
pub(crate) struct Session {
    /// `SessionId`.
    pub(crate) id: String,
    /// The `StreamUrl` StartSession and ResumeSession return.
    pub(crate) stream_url: String,
    inner: Mutex<Inner>,
    to_agent: mpsc::UnboundedSender<AgentInput>,
    /// Bytes of agent frames queued for the attached client and not yet written to its socket.
    /// The agent stops reading its sources above [`CLIENT_BACKLOG`], as the real one is held
    /// back by its websocket's TCP flow control (MGS does not buffer without bound).
    client_backlog: Arc<AtomicUsize>,
}

/// What may wait between the agent and the client's socket before the agent's readers pause:
/// about what the real path's socket buffers hold.
pub(crate) const CLIENT_BACKLOG: usize = 1 << 20;

#[derive(Debug)]
struct Inner {
    info: SsmSessionInfo,
    tokens: Vec<Token>,
    /// The attached client connection (its number and its outbound queue).
    client: Option<(u64, mpsc::UnboundedSender<ToClient>)>,
    /// Agent frames sent before any client ever attached, delivered when the first one does.
    early: Vec<Vec<u8>>,
    /// KMS sessions: the data key once the agent decrypted it (for the plaintext recorder).
    data_key: Option<Vec<u8>>,
}

#[derive(Debug)]
struct Token {
    value: String,
    issued_ms: u64,
    used: bool,
}

impl Session {
    /// A fresh single-use token, unless the session is over.
    pub(crate) fn issue_token(&self, now_ms: u64) -> Option<String> {
        let mut inner = lock(&self.inner);
        if inner.info.ended {
            return None;
        }
        let bytes: [u8; 48] = rand::random();
        let value: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        inner.tokens.push(Token { value: value.clone(), issued_ms: now_ms, used: false });
        Some(value)
    }

    /// Checks an open frame's token and attaches connection `conn`; a client attached before is
    /// told it was replaced, and the agent gets `start_publication`. Returns why it refused.
    pub(crate) fn open(
        &self,
        token: &str,
        now_ms: u64,
        ttl: Duration,
        conn: u64,
        tx: mpsc::UnboundedSender<ToClient>,
    ) -> Result<(), &'static str> {
        let mut inner = lock(&self.inner);
        if inner.info.ended {
            return Err("session has ended");
        }
        let Some(t) = inner.tokens.iter_mut().find(|t| t.value == token) else {
            return Err("unknown token");
        };
        if t.used {
            return Err("token already used");
        }
        if u128::from(now_ms) >= u128::from(t.issued_ms) + ttl.as_millis() {
            return Err("token expired");
        }
        t.used = true;
        inner.info.client_connects += 1;
        self.client_backlog.store(0, Ordering::Relaxed);
        for frame in std::mem::take(&mut inner.early) {
            let _ = tx.send(ToClient::Frame(frame));
        }
        if let Some((_, old)) = inner.client.replace((conn, tx)) {
            let _ = old.send(ToClient::Replaced);
        }
        let _ = self.to_agent.send(AgentInput::Start);
        Ok(())
    }

    /// Connection `conn` went away; if it was the attached one the agent gets `pause_publication`.
    pub(crate) fn detach(&self, conn: u64) {
        let mut inner = lock(&self.inner);
        if inner.client.as_ref().is_some_and(|(c, _)| *c == conn) {
            inner.client = None;
            self.client_backlog.store(0, Ordering::Relaxed);
            if !inner.info.ended {
                let _ = self.to_agent.send(AgentInput::Pause);
            }
        }
    }

    /// A frame from the agent: to the attached client. Before the first client attaches frames
    /// wait for it (the agent's HandshakeRequest usually comes first); after a client left they
    /// are dropped (both ends retransmit, §12).
    pub(crate) fn to_client(&self, frame: Vec<u8>) {
        let mut inner = lock(&self.inner);
        match &inner.client {
            Some((_, tx)) => {
                self.client_backlog.fetch_add(frame.len(), Ordering::Relaxed);
                let _ = tx.send(ToClient::Frame(frame));
            }
            None if inner.info.client_connects == 0 && inner.early.len() < EARLY_FRAMES => inner.early.push(frame),
            None => {}
        }
    }

    /// The gauge of bytes queued for the client (the websocket writer takes off what it wrote).
    pub(crate) fn client_backlog(&self) -> Arc<AtomicUsize> {
        self.client_backlog.clone()
    }

    /// Waits while more than [`CLIENT_BACKLOG`] bytes wait for the client's socket.
    pub(crate) async fn wait_client_room(&self) {
        while self.client_backlog.load(Ordering::Relaxed) > CLIENT_BACKLOG {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// A frame from the client (or a control input) for the agent.
    pub(crate) fn to_agent(&self, input: AgentInput) {
        let _ = self.to_agent.send(input);
    }

    /// Ends the session once: `channel_closed` to an attached client, tokens void, agent stopped.
    pub(crate) fn end(&self, reason: &str, by_api: bool) {
        self.end_with_output(reason, by_api, "");
    }

    /// As [`Session::end`], with `output` as the `channel_closed` message's `Output`.
    pub(crate) fn end_with_output(&self, reason: &str, by_api: bool, output: &str) {
        let mut inner = lock(&self.inner);
        if inner.info.ended {
            return;
        }
        inner.info.ended = true;
        inner.info.terminated_by_api = by_api;
        inner.info.end_reason = Some(reason.into());
        inner.tokens.clear();
        if let Some((_, tx)) = inner.client.take() {
            let _ = tx.send(ToClient::ChannelClosed { output: output.into() });
        }
        let _ = self.to_agent.send(AgentInput::Terminate);
    }

    /// KMS sessions: the data key the agent decrypted.
    pub(crate) fn set_data_key(&self, key: Vec<u8>) {
        lock(&self.inner).data_key = Some(key);
    }

    /// The service saw `frame` cross the websocket (`to_client`: agent → client). In a KMS
    /// session every `Output`, `StdErr` and `ExitCode` payload is counted as sealed under the
    /// session's data key or not (the service sees every frame, §11).
    pub(crate) fn observe(&self, frame: &[u8], to_client: bool) {
        use super::frame::payload_type::{EXIT_CODE, OUTPUT, STDERR};
        let mut inner = lock(&self.inner);
        if inner.info.kms_key.is_none() {
            return;
        }
        let Ok(msg) = super::frame::Message::decode(frame) else {
            return;
        };
        let stream =
            [super::frame::INPUT_STREAM_DATA, super::frame::OUTPUT_STREAM_DATA].contains(&msg.message_type.as_str());
        if !stream || ![OUTPUT, STDERR, EXIT_CODE].contains(&msg.payload_type) {
            return;
        }
        let sealed =
            (inner.data_key.as_deref()).is_some_and(|k| super::crypto::sealed_under(k, to_client, &msg.payload));
        match sealed {
            true => inner.info.encrypted_outputs += 1,
            false => inner.info.plaintext_outputs += 1,
        }
    }

    /// Updates the counters.
    pub(crate) fn update(&self, f: impl FnOnce(&mut SsmSessionInfo)) {
        f(&mut lock(&self.inner).info);
    }

    /// A snapshot of the counters.
    pub(crate) fn info(&self) -> SsmSessionInfo {
        lock(&self.inner).info.clone()
    }
}
