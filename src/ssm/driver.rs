//! The only I/O in `ssm/`: a websocket, the local streams and the clock around a [`Session`].
//!
//! One loop for every front end: read local input only while the session's window is open (and
//! only where the remote side reads it), read the websocket, take window sizes from the terminal
//! side, sleep until the session's next timer, and after each branch drain `poll_transmit` into
//! the websocket writer and `poll_event` into the local outputs (stdout, stderr, the exit code).
//! The websocket's sending half lives in a writer task ([`crate::pipe::websocket`]), so a full
//! socket never stops the loop from reading (and acknowledging) what the agent sends.
//!
//! When the agent asks for KMS encryption during the handshake, the driver asks its
//! [`DataKeys`] for the data key and gives the answer to the session.
//!
//! When the websocket drops (an error, a close such as MGS's hourly `1000 Bye`, or no answer to
//! pings), the driver asks its [`Resume`] for a fresh token and URL and reconnects with back-off
//! until the service says the session is gone or the resume deadline passes; the session then
//! resends everything unacknowledged, and ssh or the shell above never notices.
//!
//! The stream URL must be `wss://`: the open frame carries the session's bearer token. A `ws://`
//! URL is dialled only when [`Options::allow_plaintext`] says so (a local test lab), with a
//! warning. Text from the service (`CustomerMessage`, `channel_closed` output, close reasons)
//! is made printable before it reaches a message or a log.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::FutureExt;
use futures_util::stream::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use uuid::Uuid;

pub(crate) use super::channel::{
    BoxError, Connection, DataKeys, DriverError, End, Input, NoDataKeys, Options, Outcome, Purpose, Resume,
};
use super::channel::{check_scheme, close_error, url_host};
use super::handshake::{CLIENT_VERSION, OpenDataChannel};
use super::session::{CloseReason, Config, Event, Session};
use crate::pipe::stdio::StopSignals;
use crate::pipe::websocket::{Link, MAX_WS_MESSAGE, jittered, sleep_until};
use crate::redact::Redacted;
use crate::text::printable;

/// Bytes the service may send before the handshake completes (a time bound alone would let a
/// hostile endpoint fill memory): the handshake's own messages are a few hundred bytes, and an
/// agent may start with some output, so 4 messages of the largest size is generous.
const MAX_HANDSHAKE_BYTES: usize = 4 * MAX_WS_MESSAGE;
/// After stdin ends, the channel stays open while our last bytes are acknowledged and the instance
/// still sends (spec §17.9), but at most the one drain of every pump ([`crate::pipe::DRAIN`]).
use crate::pipe::DRAIN as DRAIN_AFTER_STDIN_EOF;
/// ... and ends sooner once everything is acknowledged and the instance was quiet this long.
const DRAIN_IDLE: Duration = Duration::from_millis(100);
/// Websocket bytes taken in one wake-up before the loop writes and reads stdin again.
const BATCH_BYTES: usize = 256 * 1024;
/// First reconnect delay; doubled per attempt up to [`MAX_RESUME_DELAY`].
const FIRST_RESUME_DELAY: Duration = Duration::from_millis(100);
/// Longest pause between reconnect attempts.
const MAX_RESUME_DELAY: Duration = Duration::from_secs(5);
/// What a pty session gets when its input ends: EOT (^D), which a terminal sends for "end of
/// input" and a shell at its prompt takes as `exit`.
const EOT: u8 = 0x04;

/// The local ends of a session: input, outputs and window sizes.
pub(crate) struct Local<I, O, E, N> {
    /// Bytes for the instance.
    pub input: I,
    /// What the instance prints (a command's stdout, the pty's output, ssh's stream).
    pub output: O,
    /// A command's stderr (`StdErr`), byte for byte.
    pub errors: E,
    /// Where the driver's own notes for the user go (refused input), one line each.
    pub notes: N,
    /// Window sizes (columns, rows) from the terminal side; `None` when there is no terminal.
    pub sizes: Option<mpsc::Receiver<(u16, u16)>>,
    /// What the input is.
    pub mode: Input,
}

/// An open data channel whose handshake completed.
pub(crate) struct Channel {
    session: Session,
    link: Link,
    conn: Connection,
    options: Options,
    client_id: Uuid,
    early: Vec<Event>,
    encrypted: bool,
}

impl Channel {
    /// Dials the StreamUrl, sends the open frame and runs the handshake (with a data key from
    /// `keys` if the agent asks for KMS encryption). Returns once stream data may flow, so a
    /// caller can still fall back to another route before reading stdin.
    pub(crate) async fn open<K: DataKeys>(
        conn: Connection,
        options: Options,
        purpose: Purpose,
        keys: &mut K,
    ) -> Result<Channel, DriverError> {
        let client_id = random_uuid();
        let link = dial(&conn, &options, client_id).await?;
        let config = Config {
            unix_ms: unix_ms(),
            seed: rand::random(),
            kind: purpose.kind,
            ids: purpose.ids,
            ..Config::default()
        };
        let mut channel = Channel {
            session: Session::new(config, Instant::now()),
            link,
            conn,
            options,
            client_id,
            early: Vec::new(),
            encrypted: false,
        };
        channel.handshake(keys).await?;
        Ok(channel)
    }

    /// Whether the agent encrypts the session with KMS.
    pub(crate) fn is_encrypted(&self) -> bool {
        self.encrypted
    }

    async fn handshake<K: DataKeys>(&mut self, keys: &mut K) -> Result<(), DriverError> {
        let mut received = 0usize;
        loop {
            self.flush_transmit();
            while let Some(event) = self.session.poll_event() {
                match event {
                    Event::Ready { agent_version, customer_message, encrypted } => {
                        let (agent_version, customer_message) =
                            (printable(&agent_version), printable(&customer_message));
                        tracing::debug!(%agent_version, %customer_message, encrypted, "SSM handshake complete");
                        self.encrypted = encrypted;
                        return Ok(());
                    }
                    Event::DataKeyNeeded(request) => {
                        tracing::debug!(key = %printable(&request.key_id), "the agent asks for KMS encryption");
                        match keys.data_key(&request).await {
                            Ok(key) => self.session.handle_data_key(Instant::now(), Ok(key)),
                            Err(e) => {
                                self.session.handle_data_key(Instant::now(), Err(printable(&e.to_string()).into()));
                                // The agent hears why before we leave.
                                self.flush_transmit();
                                return Err(DriverError::Kms(e));
                            }
                        }
                        self.flush_transmit();
                    }
                    Event::Closed(reason) => return Err(close_error(&reason)),
                    other => self.early.push(other),
                }
            }
            let timeout = self.session.poll_timeout();
            tokio::select! {
                frame = self.link.stream.next() => match frame {
                    Some(Ok(m)) => {
                        received += m.len();
                        if received > MAX_HANDSHAKE_BYTES {
                            return Err(DriverError::Handshake(format!(
                                "the service sent more than {} KiB without completing the handshake",
                                MAX_HANDSHAKE_BYTES / 1024
                            )));
                        }
                        self.handle_ws(m)
                    }
                    Some(Err(e)) => return Err(self.dial_error(printable(&e.to_string()).into_owned())),
                    None => return Err(self.dial_error("the service closed the websocket during the handshake".into())),
                },
                () = sleep_until(timeout) => self.session.handle_timeout(Instant::now()),
            }
        }
    }

    /// Pipes `stdin`/`stdout` (a port session's stream) through the channel until one side ends.
    pub(crate) async fn run<R, I, O>(self, resume: &mut R, stdin: I, stdout: O) -> Result<Outcome, DriverError>
    where
        R: Resume,
        I: AsyncRead + Unpin,
        O: AsyncWrite + Unpin,
    {
        let local = Local {
            input: stdin,
            output: stdout,
            errors: tokio::io::sink(),
            notes: tokio::io::sink(),
            sizes: None,
            mode: Input::Stream,
        };
        self.run_local(resume, local).await
    }

    /// Runs the session with its local ends until the service closes the channel (the shell or
    /// command exited), a signal arrives, or the output's reader goes away.
    pub(crate) async fn run_local<R, I, O, E, N>(
        mut self,
        resume: &mut R,
        mut local: Local<I, O, E, N>,
    ) -> Result<Outcome, DriverError>
    where
        R: Resume,
        I: AsyncRead + Unpin,
        O: AsyncWrite + Unpin,
        E: AsyncWrite + Unpin,
        N: AsyncWrite + Unpin,
    {
        let mut stop = StopSignals::new()?;
        let mut reconnects = 0;
        let mut exit_code = None;
        let early = std::mem::take(&mut self.early);
        if let Delivered::End(end) = self.deliver_events(early, &mut local, &mut exit_code).await? {
            return self.finish(end, exit_code, reconnects).await;
        }
        let mut buf = vec![0u8; 64 * 1024];
        let mut stdin_done: Option<Instant> = None;
        let mut last_data = Instant::now();
        let mut ping = tokio::time::interval(self.options.ping_interval);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_heard = Instant::now();
        let end = loop {
            self.flush_transmit();
            let events = std::iter::from_fn(|| self.session.poll_event()).collect::<Vec<_>>();
            match self.deliver_events(events, &mut local, &mut exit_code).await? {
                Delivered::End(end) => break end,
                Delivered::Data => last_data = Instant::now(),
                Delivered::Nothing => {}
            }
            // Only a port session's stream drains and ends on EOF; a pty session and a command
            // end when the remote side does.
            let drain_deadline = stdin_done.filter(|_| local.mode == Input::Stream).map(|eof| {
                let quiet = eof.max(last_data) + DRAIN_IDLE;
                if self.session.is_flushed() {
                    quiet.min(eof + DRAIN_AFTER_STDIN_EOF)
                } else {
                    eof + DRAIN_AFTER_STDIN_EOF
                }
            });
            if drain_deadline.is_some_and(|d| d <= Instant::now()) {
                break End::LocalClosed;
            }
            let timeout = self.session.poll_timeout();
            let room = match local.mode {
                Input::Refused => buf.len(),
                _ => self.session.send_capacity().min(buf.len()),
            };
            let mut dropped = None;
            tokio::select! {
                () = stop.recv() => break End::Signal,
                frame = self.link.stream.next() => {
                    last_heard = Instant::now();
                    dropped = self.take_frame(frame);
                    // Frames that already arrived go through the session now, so their acks
                    // leave in one socket write and their bytes reach the output in one write
                    // (one of each per 1 KiB message cost the unpaced download a third of its
                    // rate), within a byte budget that keeps memory bounded.
                    let mut budget = BATCH_BYTES;
                    while dropped.is_none() && budget > 0 {
                        let Some(frame) = self.link.stream.next().now_or_never() else { break };
                        budget = budget.saturating_sub(frame.as_ref().and_then(|f| f.as_ref().ok()).map_or(0, WsMessage::len).max(1));
                        dropped = self.take_frame(frame);
                    }
                }
                read = local.input.read(&mut buf[..room.max(1)]), if stdin_done.is_none() && room > 0 => {
                    match (read, local.mode) {
                        (Ok(0) | Err(_), mode) => {
                            tracing::debug!("input closed");
                            stdin_done = Some(Instant::now());
                            if mode == Input::Keyboard {
                                self.session.send(Instant::now(), &[EOT]);
                            }
                        }
                        (Ok(n), Input::Refused) => {
                            let note = format!(
                                "[ec2-broker] not sent: {n} bytes of input (and whatever follows). A non-interactive command \
                                 gets no stdin from Session Manager; for bulk data use ssh or scp with --route ssm\n"
                            );
                            let _ = local.notes.write_all(note.as_bytes()).await;
                            let _ = local.notes.flush().await;
                            stdin_done = Some(Instant::now());
                        }
                        (Ok(n), _) => {
                            let accepted = self.session.send(Instant::now(), &buf[..n]);
                            // `room` was the capacity: the session takes everything.
                            debug_assert_eq!(accepted, n);
                        }
                    }
                }
                size = next_size(&mut local.sizes) => match size {
                    Some((cols, rows)) => self.session.send_size(Instant::now(), cols, rows),
                    None => local.sizes = None,
                },
                () = sleep_until(timeout) => self.session.handle_timeout(Instant::now()),
                () = sleep_until(drain_deadline) => {}
                _ = ping.tick() => {
                    if last_heard.elapsed() >= self.options.silence_timeout {
                        dropped = Some(format!("no answer from the service for {}s", last_heard.elapsed().as_secs()));
                    } else {
                        self.link.send(WsMessage::Ping(b"keepalive".to_vec().into()));
                    }
                }
            }
            if let Some(why) = dropped {
                // The service ended the channel (`channel_closed`, taken in the same batch as the
                // close that followed it): the loop delivers that end, nothing to resume.
                if self.session.is_closed() {
                    continue;
                }
                if stdin_done.is_some() && local.mode == Input::Stream {
                    break End::LocalClosed;
                }
                tracing::warn!(reason = %why, "Session Manager connection lost; resuming the session");
                self.session.handle_disconnect();
                tokio::select! {
                    () = stop.recv() => break End::Signal,
                    link = self.reconnect(resume) => self.link = link?,
                }
                reconnects += 1;
                last_heard = Instant::now();
                self.session.handle_reconnect(Instant::now());
                tracing::info!(reconnects, "Session Manager connection resumed");
            }
        };
        self.finish(end, exit_code, reconnects).await
    }

    async fn finish(mut self, end: End, exit_code: Option<i32>, reconnects: u32) -> Result<Outcome, DriverError> {
        if !self.session.is_closed() {
            // Tell the agent to end the session now (agents > 2.3.722.0); the caller also calls
            // the TerminateSession API.
            self.session.terminate(Instant::now());
            self.flush_transmit();
        }
        self.link.close().await;
        Ok(Outcome { end, exit_code, stats: self.session.stats(), reconnects })
    }

    /// Writes the session's events to the local outputs.
    async fn deliver_events<I, O, E, N>(
        &mut self,
        events: Vec<Event>,
        local: &mut Local<I, O, E, N>,
        exit_code: &mut Option<i32>,
    ) -> Result<Delivered, DriverError>
    where
        O: AsyncWrite + Unpin,
        E: AsyncWrite + Unpin,
    {
        let (mut wrote_out, mut wrote_err) = (false, false);
        let mut end = None;
        // Consecutive stream bytes go out in one write.
        let mut data: Vec<u8> = Vec::new();
        for event in events {
            if !matches!(event, Event::Data(_)) && !data.is_empty() {
                if local.output.write_all(&data).await.is_err() {
                    return Ok(Delivered::End(End::LocalClosed));
                }
                data.clear();
            }
            match event {
                Event::Data(d) => {
                    if data.is_empty() {
                        data = d;
                    } else {
                        data.extend_from_slice(&d);
                    }
                    wrote_out = true;
                }
                Event::StdErr(d) => {
                    // A closed stderr loses the remote stderr, not the session.
                    wrote_err |= local.errors.write_all(&d).await.is_ok();
                }
                Event::ExitCode(code) => *exit_code = Some(code),
                Event::Closed(CloseReason::ChannelClosed { output }) => {
                    end = Some(End::ChannelClosed(printable(&output).into_owned()));
                }
                Event::Closed(reason) => return Err(close_error(&reason)),
                // A second handshake after the session opened is answered inside the session;
                // a key request then has no one to serve it and times out in the session.
                Event::Ready { .. } | Event::DataKeyNeeded(_) => {}
            }
        }
        if !data.is_empty() && local.output.write_all(&data).await.is_err() {
            return Ok(Delivered::End(End::LocalClosed));
        }
        if wrote_err {
            let _ = local.errors.flush().await;
        }
        if wrote_out && local.output.flush().await.is_err() {
            return Ok(Delivered::End(End::LocalClosed));
        }
        Ok(match (end, wrote_out || wrote_err) {
            (Some(end), _) => Delivered::End(end),
            (None, true) => Delivered::Data,
            (None, false) => Delivered::Nothing,
        })
    }

    /// One websocket read: the frame goes to the session; `Some(why)` when the link dropped.
    fn take_frame(&mut self, frame: Option<Result<WsMessage, WsError>>) -> Option<String> {
        match frame {
            Some(Ok(m)) => {
                let closed = match &m {
                    WsMessage::Close(close) => Some(format!(
                        "closed by the service ({})",
                        close.as_ref().map_or("no reason".into(), |c| format!("{} {}", c.code, printable(&c.reason)))
                    )),
                    _ => None,
                };
                self.handle_ws(m);
                closed
            }
            Some(Err(e)) => Some(printable(&e.to_string()).into_owned()),
            None => Some("connection closed".into()),
        }
    }

    fn handle_ws(&mut self, m: WsMessage) {
        let now = Instant::now();
        let frame: &[u8] = match &m {
            WsMessage::Binary(b) => b,
            WsMessage::Text(t) => t.as_bytes(),
            _ => return,
        };
        if let Err(e) = self.session.handle_frame(now, frame) {
            tracing::debug!(error = %e, len = frame.len(), "dropped a bad frame from the service");
        }
    }

    fn flush_transmit(&mut self) {
        let mut buf = Vec::new();
        while self.session.poll_transmit(Instant::now(), &mut buf) {
            self.link.send(WsMessage::Binary(std::mem::take(&mut buf).into()));
        }
    }

    async fn reconnect<R: Resume>(&mut self, resume: &mut R) -> Result<Link, DriverError> {
        let started = Instant::now();
        let mut delay = FIRST_RESUME_DELAY;
        loop {
            let last = match resume.resume().await {
                Ok(None) => return Err(DriverError::SessionGone),
                Ok(Some(conn)) => match dial(&conn, &self.options, self.client_id).await {
                    Ok(link) => {
                        self.conn = conn;
                        return Ok(link);
                    }
                    Err(e) => e.to_string(),
                },
                Err(e) => printable(&e.to_string()).into_owned(),
            };
            tracing::info!(error = %last, "resume attempt failed");
            if started.elapsed() + delay > self.options.resume_timeout {
                return Err(DriverError::ResumeTimedOut { secs: self.options.resume_timeout.as_secs(), last });
            }
            tokio::time::sleep(jittered(delay)).await;
            delay = (delay * 2).min(MAX_RESUME_DELAY);
        }
    }

    fn dial_error(&self, detail: String) -> DriverError {
        DriverError::Dial { host: url_host(self.conn.url.expose()), detail }
    }
}

/// What [`Channel::deliver_events`] did.
enum Delivered {
    /// Wrote bytes locally.
    Data,
    /// Nothing to write.
    Nothing,
    /// The channel ended.
    End(End),
}

/// The next window size, or never when there is no terminal side.
async fn next_size(sizes: &mut Option<mpsc::Receiver<(u16, u16)>>) -> Option<(u16, u16)> {
    match sizes {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Opens the websocket with the SSM open frame (§4.1).
async fn dial(conn: &Connection, options: &Options, client_id: Uuid) -> Result<Link, DriverError> {
    let url = conn.url.expose();
    check_scheme(url, options.allow_plaintext)?;
    let open = OpenDataChannel {
        message_schema_version: "1.0",
        request_id: random_uuid().to_string(),
        token_value: Redacted::new(conn.token.expose().as_str()),
        client_id: client_id.to_string(),
        client_version: CLIENT_VERSION,
    };
    // A struct of strings always serialises.
    let open = serde_json::to_string(&open).expect("open frame serialises");
    Link::dial(url, options.tls.clone(), open).await.map_err(|detail| DriverError::Dial { host: url_host(url), detail })
}

fn random_uuid() -> Uuid {
    uuid::Builder::from_random_bytes(rand::random()).into_uuid()
}

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_millis() as u64)
}

/// The origin of virtual time for the sans-IO tests: only this file may read the clock, so the
/// state-machine tests take their first `Instant` from here and move time by hand after that.
#[cfg(test)]
pub(crate) fn test_epoch() -> Instant {
    Instant::now()
}

#[cfg(test)]
mod tests {
    use futures_util::SinkExt;

    use super::*;

    #[tokio::test]
    async fn a_ws_stream_url_is_refused_before_dialling() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/v1/data-channel/s-1?role=publish_subscribe", listener.local_addr().unwrap());
        let options = Options {
            tls: crate::tls::client_config_with(None).unwrap(),
            resume_timeout: Duration::from_secs(1),
            ping_interval: Duration::from_secs(10),
            silence_timeout: Duration::from_secs(30),
            allow_plaintext: false,
        };
        let conn = Connection { url: Redacted::new(url), token: Redacted::new("a-bearer-token-value".into()) };
        let opened = Channel::open(conn, options, Purpose::default(), &mut NoDataKeys).await;
        assert!(matches!(opened, Err(DriverError::Plaintext { .. })), "{:?}", opened.err());
        // Nothing reached the listener: the token never left.
        let accepted = tokio::time::timeout(Duration::from_millis(100), listener.accept()).await;
        assert!(accepted.is_err(), "the broker connected to a ws:// URL");
    }

    fn agent_message(sequence: i64, payload_type: u32, payload: &[u8]) -> WsMessage {
        let m = super::super::message::Message {
            kind: super::super::message::kind::OUTPUT_STREAM_DATA.into(),
            schema_version: 1,
            created_ms: 1_700_000_000_000,
            sequence,
            flags: u64::from(sequence == 0),
            id: Uuid::from_u128(0x5eed + sequence as u128),
            payload_type,
            payload: payload.to_vec(),
        };
        WsMessage::binary(m.encode())
    }

    /// The service's side of a Port session's start: the open frame, the handshake request, the
    /// client's response, HandshakeComplete (sequences 0 and 1).
    async fn port_handshake(ws: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>) {
        use super::super::message::{Message, payload};

        assert!(ws.next().await.unwrap().unwrap().is_text(), "the open frame comes first, as text");
        let request = br#"{"AgentVersion":"3.3.1142.0","RequestedClientActions":[{"ActionType":"SessionType","ActionParameters":{"SessionType":"Port","Properties":{"portNumber":"22"}}}]}"#;
        ws.send(agent_message(0, payload::HANDSHAKE_REQUEST, request)).await.unwrap();
        loop {
            if let Some(Ok(WsMessage::Binary(b))) = ws.next().await
                && Message::decode(&b).unwrap().payload_type == payload::HANDSHAKE_RESPONSE
            {
                break;
            }
        }
        let complete = br#"{"HandshakeTimeToComplete":1,"CustomerMessage":""}"#;
        ws.send(agent_message(1, payload::HANDSHAKE_COMPLETE, complete)).await.unwrap();
    }

    /// A Port session's channel to the test service at `url` (plain ws, resume within 5 s).
    async fn open_port_channel(url: String, ping_interval: Duration, silence_timeout: Duration) -> Channel {
        let options = Options {
            tls: crate::tls::client_config_with(None).unwrap(),
            resume_timeout: Duration::from_secs(5),
            ping_interval,
            silence_timeout,
            allow_plaintext: true,
        };
        let conn = Connection { url: Redacted::new(url), token: Redacted::new("token".into()) };
        Channel::open(conn, options, Purpose::default(), &mut NoDataKeys).await.unwrap()
    }

    /// A Resume that counts calls and says the session is gone.
    struct Gone(u32);

    impl Resume for Gone {
        async fn resume(&mut self) -> Result<Option<Connection>, BoxError> {
            self.0 += 1;
            Ok(None)
        }
    }

    #[tokio::test]
    async fn a_silent_service_is_declared_dead_and_resumption_is_tried() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/v1/data-channel/s-1?role=publish_subscribe", listener.local_addr().unwrap());
        // The service completes the handshake, then goes silent: it stops reading, so it answers
        // no ping, but keeps the TCP connection open (a dead path, not a closed one).
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
            port_handshake(&mut ws).await;
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(ws);
        });
        let channel = open_port_channel(url, Duration::from_millis(100), Duration::from_millis(400)).await;
        // stdin stays open (we hold its other end), so only the silence can end the session.
        let (_stdin_writer, stdin) = tokio::io::duplex(64);
        let (stdout, _stdout_reader) = tokio::io::duplex(1 << 16);
        let mut resume = Gone(0);
        let started = Instant::now();
        let ended = tokio::time::timeout(Duration::from_secs(10), channel.run(&mut resume, stdin, stdout))
            .await
            .expect("the silent service was never declared dead");
        assert!(matches!(ended, Err(DriverError::SessionGone)), "{ended:?}");
        assert_eq!(resume.0, 1, "one ResumeSession, which said the session is gone");
        assert!(started.elapsed() >= Duration::from_millis(400), "declared dead before the silence timeout");
        server.abort();
    }

    // Output, `channel_closed` and the websocket's close arrive in one burst, as MGS sends them
    // when a command ends: the driver takes them in one batch, writes every byte, and ends with
    // the channel's close, without taking the close of the websocket for a drop to resume.
    #[tokio::test]
    async fn output_channel_closed_and_the_close_in_one_burst_end_the_session_with_every_byte() {
        use super::super::message::{Message, kind, payload};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/v1/data-channel/s-1?role=publish_subscribe", listener.local_addr().unwrap());
        let body: Vec<u8> = (0..300 * 1024u32).map(|i| (i % 251) as u8).collect();
        let sent = body.clone();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
            port_handshake(&mut ws).await;
            for (i, chunk) in sent.chunks(1024).enumerate() {
                ws.feed(agent_message(2 + i as i64, payload::OUTPUT, chunk)).await.unwrap();
            }
            let closed = Message {
                kind: kind::CHANNEL_CLOSED.into(),
                sequence: 0,
                flags: 3,
                payload_type: 0,
                payload: br#"{"SessionId":"s-1","Output":"done"}"#.to_vec(),
                ..Message::decode(&agent_message(0, 0, b"").into_data()).unwrap()
            };
            ws.feed(WsMessage::binary(closed.encode())).await.unwrap();
            ws.feed(WsMessage::Close(None)).await.unwrap();
            ws.flush().await.unwrap();
            // Drain what the client still sends (acks) until it goes.
            while let Some(Ok(_)) = ws.next().await {}
        });
        let channel = open_port_channel(url, Duration::from_secs(10), Duration::from_secs(30)).await;
        let (_stdin_writer, stdin) = tokio::io::duplex(64);
        let (stdout, mut stdout_reader) = tokio::io::duplex(1 << 20);
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            stdout_reader.read_to_end(&mut got).await.unwrap();
            got
        });
        let mut resume = Gone(0);
        let outcome = tokio::time::timeout(Duration::from_secs(10), channel.run(&mut resume, stdin, stdout))
            .await
            .expect("the session ends")
            .expect("a closed channel is a normal end");
        assert_eq!(outcome.end, End::ChannelClosed("done".into()));
        assert_eq!(resume.0, 0, "the websocket's close after channel_closed is not a drop to resume");
        drop(outcome);
        assert_eq!(reader.await.unwrap(), body, "every byte, in order");
        server.abort();
    }

    /// Hands out one fixed data key and remembers what was asked.
    struct FixedKey(Vec<super::super::handshake::KeyRequest>);

    impl DataKeys for FixedKey {
        async fn data_key(
            &mut self,
            request: &super::super::handshake::KeyRequest,
        ) -> Result<super::super::crypto::DataKey, BoxError> {
            self.0.push(request.clone());
            Ok(super::super::crypto::DataKey {
                ciphertext: b"blob".to_vec(),
                plaintext: zeroize::Zeroizing::new((0u8..64).collect()),
            })
        }
    }

    // A KMS-encrypted non-interactive command through the real driver and a websocket: stdout and
    // stderr apart, the exit code kept, our stdin refused aloud and never sent.
    #[tokio::test]
    async fn an_encrypted_command_session_end_to_end_over_a_websocket() {
        use russh::keys::ssh_key::encoding::base64::{Base64, Encoding};

        use super::super::crypto::AgentCipher;
        use super::super::message::{Message, kind, payload};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/v1/data-channel/s-1?role=publish_subscribe", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
            assert!(ws.next().await.unwrap().unwrap().is_text());
            let request = br#"{"AgentVersion":"3.3.1142.0","RequestedClientActions":[{"ActionType":"SessionType","ActionParameters":{"SessionType":"NonInteractiveCommands","Properties":{"command":"x"}}},{"ActionType":"KMSEncryption","ActionParameters":{"KMSKeyId":"alias/ssm","Challenge":"Y2hhbGxlbmdl"}}]}"#;
            ws.send(agent_message(0, payload::HANDSHAKE_REQUEST, request)).await.unwrap();
            let cipher = AgentCipher::new(&(0u8..64).collect::<Vec<_>>());
            let challenge = [7u8; 64];
            let mut client_outputs = 0;
            let mut seq = 1;
            while let Some(Ok(frame)) = ws.next().await {
                let WsMessage::Binary(b) = frame else { continue };
                let m = Message::decode(&b).unwrap();
                if m.kind != kind::INPUT_STREAM_DATA {
                    continue;
                }
                let ack = format!(
                    r#"{{"AcknowledgedMessageType":"input_stream_data","AcknowledgedMessageId":"{}","AcknowledgedMessageSequenceNumber":{},"IsSequentialMessage":true}}"#,
                    m.id, m.sequence
                );
                let ack = Message {
                    kind: kind::ACKNOWLEDGE.into(),
                    sequence: 0,
                    flags: 3,
                    payload_type: 0,
                    payload: ack.into_bytes(),
                    ..Message::decode(&agent_message(0, 0, b"").into_data()).unwrap()
                };
                ws.send(WsMessage::binary(ack.encode())).await.unwrap();
                let mut send = |payload_type: u32, body: Vec<u8>| {
                    seq += 1;
                    agent_message(seq - 1, payload_type, &body)
                };
                match m.payload_type {
                    payload::HANDSHAKE_RESPONSE => {
                        let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
                        assert_eq!(v["ProcessedClientActions"][1]["ActionResult"]["KMSCipherTextKey"], "YmxvYg==");
                        let body =
                            format!(r#"{{"Challenge":"{}"}}"#, Base64::encode_string(&cipher.encrypt(&challenge)));
                        ws.send(send(payload::ENC_CHALLENGE_REQUEST, body.into_bytes())).await.unwrap();
                    }
                    payload::ENC_CHALLENGE_RESPONSE => {
                        let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
                        let sealed = Base64::decode_vec(v["Challenge"].as_str().unwrap()).unwrap();
                        assert_eq!(*cipher.decrypt(&sealed).unwrap(), challenge);
                        let done = br#"{"HandshakeTimeToComplete":1,"CustomerMessage":"This session is encrypted using AWS KMS."}"#;
                        ws.send(send(payload::HANDSHAKE_COMPLETE, done.to_vec())).await.unwrap();
                        // The command runs a while, so the client has read its stdin by then.
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        ws.send(send(payload::OUTPUT, cipher.encrypt(b"out\n"))).await.unwrap();
                        ws.send(send(payload::STDERR, cipher.encrypt(b"err\n"))).await.unwrap();
                        ws.send(send(payload::EXIT_CODE, cipher.encrypt(b"EXIT_CODE: 3"))).await.unwrap();
                        let closed = Message {
                            kind: kind::CHANNEL_CLOSED.into(),
                            sequence: 0,
                            flags: 3,
                            payload_type: 0,
                            payload: br#"{"SessionId":"s-1","Output":""}"#.to_vec(),
                            ..Message::decode(&agent_message(0, 0, b"").into_data()).unwrap()
                        };
                        ws.send(WsMessage::binary(closed.encode())).await.unwrap();
                    }
                    payload::OUTPUT => client_outputs += 1,
                    _ => {}
                }
            }
            client_outputs
        });
        let options = Options {
            tls: crate::tls::client_config_with(None).unwrap(),
            resume_timeout: Duration::from_secs(1),
            ping_interval: Duration::from_secs(10),
            silence_timeout: Duration::from_secs(30),
            allow_plaintext: true,
        };
        let conn = Connection { url: Redacted::new(url), token: Redacted::new("token".into()) };
        let purpose = Purpose {
            kind: super::super::session_kind::SessionKind::NonInteractiveCommands,
            ids: super::super::handshake::SessionIds { session_id: "s-1".into(), target_id: "i-0abc".into() },
        };
        let mut keys = FixedKey(Vec::new());
        let channel = tokio::time::timeout(Duration::from_secs(10), Channel::open(conn, options, purpose, &mut keys))
            .await
            .unwrap()
            .unwrap();
        assert!(channel.is_encrypted());
        assert_eq!(keys.0[0].context["aws:ssm:RandomChallenge"], "Y2hhbGxlbmdl");
        let (mut stdin_writer, stdin) = tokio::io::duplex(64);
        stdin_writer.write_all(b"input nobody reads").await.unwrap();
        let (mut out, mut err, mut notes) = (Vec::new(), Vec::new(), Vec::new());
        let local = Local {
            input: stdin,
            output: &mut out,
            errors: &mut err,
            notes: &mut notes,
            sizes: None,
            mode: Input::Refused,
        };
        let outcome = tokio::time::timeout(Duration::from_secs(10), channel.run_local(&mut Gone(0), local))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(outcome.exit_code, Some(3));
        assert_eq!(outcome.end, End::ChannelClosed(String::new()));
        assert_eq!(out, b"out\n");
        assert_eq!(err, b"err\n");
        let notes = String::from_utf8(notes).unwrap();
        assert!(notes.contains("not sent: 18 bytes") && notes.contains("--route ssm"), "{notes}");
        drop(stdin_writer);
        assert_eq!(server.await.unwrap(), 0, "input reached a command that reads none");
    }
}
