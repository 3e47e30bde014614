//! The `eice` route: a websocket to an EC2 Instance Connect Endpoint that carries the raw TCP
//! bytes of the instance's port in binary frames (`../shared/spec/aws-apis.md` §4).
//!
//! The endpoint's host name comes from the API and no standard AWS variable redirects it, so
//! `--eice-connect-to HOST:PORT` (`EC2_BROKER_EICE_CONNECT_TO`) opens the TCP connection elsewhere
//! (a proxy, a private DNS answer, the local lab) while the URL, its signature, the `Host` header
//! and the TLS name stay the endpoint's own.
//!
//! The presigned URL carries the session token and a live signature: it stays
//! [`Redacted`](crate::redact::Redacted) and no error names it. What the endpoint says (refusal
//! bodies, text frames, close reasons) is scrubbed and made printable before it is shown.

use std::time::{Duration, Instant, SystemTime};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::aws::eice::{self, Endpoint, TunnelTarget};
use crate::aws::{Aws, AwsError};
use crate::pipe::stdio::StopSignals;
use crate::target::instance::Instance;
use crate::text::printable;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Largest binary frame we send (the CLI's own choice is 65,000 bytes, §4.2).
const FRAME: usize = 64 * 1024;
/// Largest websocket message accepted from the endpoint.
const MAX_MESSAGE: usize = 1 << 20;
/// How long the TCP connect and websocket upgrade may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest refusal text, text frame or close reason from the endpoint that we show: its own are
/// a sentence; a close reason is at most 123 bytes anyway (RFC 6455 §5.5).
const MAX_REFUSAL_CHARS: usize = 400;
/// After stdin ends (ssh exited), how long the instance may still send before we close.
use crate::pipe::DRAIN as DRAIN_AFTER_STDIN_EOF;

/// Settings of the route.
#[derive(Debug, Clone, Default)]
pub(crate) struct EiceOptions {
    /// Use this endpoint instead of looking one up in the instance's VPC.
    pub endpoint_id: Option<String>,
    /// Connect to this `HOST:PORT` instead of the endpoint's DNS name.
    pub connect_to: Option<String>,
    /// `maxTunnelDuration` to request (1–3600 s); needed when an IAM policy caps it.
    pub max_duration: Option<u32>,
}

/// Why the EICE route failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EiceError {
    /// No usable endpoint in the instance's VPC.
    #[error(
        "no usable EC2 Instance Connect Endpoint in {vpc} (instance {id}): create one in that VPC, pass --eice-id, or try --route ssm"
    )]
    NoEndpoint {
        /// Instance id.
        id: String,
        /// Its VPC.
        vpc: String,
    },
    /// The named endpoint does not exist (or is not usable).
    #[error(
        "EC2 Instance Connect Endpoint {0} does not exist in this Region or is not in a usable state: check --eice-id and --region"
    )]
    EndpointNotFound(String),
    /// The tunnel needs the instance's private IPv4 address.
    #[error("instance {0} has no private IPv4 address, which an Instance Connect Endpoint needs")]
    NoPrivateIp(String),
    /// Looking up the endpoint failed.
    #[error("looking up the Instance Connect Endpoint")]
    Api(#[source] AwsError),
    /// The URL could not be presigned.
    #[error(transparent)]
    Presign(#[from] eice::PresignError),
    /// TLS trust could not be set up.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The TCP connection or TLS handshake failed.
    #[error("cannot reach the Instance Connect Endpoint at {addr}: {detail}")]
    Connect {
        /// Where we dialled.
        addr: String,
        /// What failed.
        detail: String,
    },
    /// The endpoint refused the tunnel (HTTP status and its text).
    #[error("the Instance Connect Endpoint {endpoint} refused the tunnel (HTTP {status}): {body}{hint}")]
    Refused {
        /// Endpoint id.
        endpoint: String,
        /// HTTP status.
        status: u16,
        /// The response body.
        body: String,
        /// What to do next, when the cause is recognised.
        hint: String,
    },
    /// The endpoint ended the tunnel with an error.
    #[error("the Instance Connect Endpoint closed the tunnel: {reason} (close code {code}){hint}")]
    Closed {
        /// Close code.
        code: u16,
        /// Close reason.
        reason: String,
        /// What to do next.
        hint: String,
    },
    /// The endpoint sent a text frame, which is not tunnel data.
    #[error("the Instance Connect Endpoint sent text instead of tunnel data: {0}")]
    TextFrame(String),
    /// The websocket failed mid-tunnel.
    #[error("the Instance Connect Endpoint tunnel broke: {0}")]
    Broken(String),
    /// Local i/o failed.
    #[error("local i/o: {0}")]
    Local(#[from] std::io::Error),
}

/// Finds the endpoint, presigns the URL and opens the tunnel. Returns once the websocket is up.
pub(crate) async fn open(aws: &Aws, instance: &Instance, port: u16, opts: &EiceOptions) -> Result<Tunnel, EiceError> {
    let private_ip = instance.private_ip.ok_or_else(|| EiceError::NoPrivateIp(instance.id.clone()))?.to_string();
    let endpoint = find_endpoint(aws, instance, opts).await?;
    tracing::info!(endpoint = %endpoint.id, dns = %endpoint.dns_name, "using Instance Connect Endpoint");
    let credentials = aws.credentials().await.map_err(EiceError::Api)?;
    let target = TunnelTarget { endpoint: &endpoint, private_ip: &private_ip, port, max_duration: opts.max_duration };
    let url = eice::presign(&target, &credentials, &aws.region, SystemTime::now())?;
    let tls = crate::tls::client_config()?;
    let addr = opts.connect_to.clone().unwrap_or_else(|| format!("{}:443", endpoint.dns_name));
    let connect_err = |detail: String| EiceError::Connect { addr: addr.clone(), detail };
    // The one place the presigned URL (token, signature) is used; errors name `addr`, never it.
    let mut request = url.expose().as_str().into_client_request().map_err(|e| connect_err(e.to_string()))?;
    let agent = concat!("ec2-broker/", env!("CARGO_PKG_VERSION"));
    request.headers_mut().insert("user-agent", agent.parse().expect("a static header value"));
    // One read per frame of the endpoint's (≤ 64 KiB); the default 128 KiB is zero-filled
    // before every read (`crate::pipe::websocket::READ_BUFFER`).
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE))
        .read_buffer_size(FRAME);
    let opening = async {
        let tcp = TcpStream::connect(&addr).await.map_err(|e| connect_err(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        tokio_tungstenite::client_async_tls_with_config(request, tcp, Some(config), Some(Connector::Rustls(tls)))
            .await
            .map_err(|e| match e {
                WsError::Http(response) => {
                    let status = response.status().as_u16();
                    let raw = response.body().as_deref().map(String::from_utf8_lossy).unwrap_or_default();
                    let body = crate::aws::clean(&service_message(raw.trim()), MAX_REFUSAL_CHARS);
                    let hint = refusal_hint(status, &body, opts);
                    EiceError::Refused { endpoint: endpoint.id.clone(), status, body, hint }
                }
                other => connect_err(printable(&other.to_string()).into_owned()),
            })
    };
    let (ws, response) = tokio::time::timeout(OPEN_TIMEOUT, opening)
        .await
        .map_err(|_| connect_err(format!("no answer within {}s", OPEN_TIMEOUT.as_secs())))??;
    let request_id = response.headers().get("x-amzn-requestid").and_then(|v| v.to_str().ok()).unwrap_or("-");
    tracing::debug!(request_id, "tunnel open");
    Ok(Tunnel { ws })
}

async fn find_endpoint(aws: &Aws, instance: &Instance, opts: &EiceOptions) -> Result<Endpoint, EiceError> {
    if let Some(id) = &opts.endpoint_id {
        return match aws.find_endpoints(Some(id), None).await {
            Ok(found) => found.into_iter().next().ok_or_else(|| EiceError::EndpointNotFound(id.clone())),
            Err(e) if e.code().is_some_and(|c| c.starts_with("InvalidInstanceConnectEndpointId")) => {
                Err(EiceError::EndpointNotFound(id.clone()))
            }
            Err(e) => Err(EiceError::Api(e)),
        };
    }
    let vpc = instance.vpc_id.as_deref();
    let found = aws.find_endpoints(None, vpc).await.map_err(EiceError::Api)?;
    eice::choose(&found, vpc, instance.subnet_id.as_deref())
        .cloned()
        .ok_or_else(|| EiceError::NoEndpoint { id: instance.id.clone(), vpc: vpc.unwrap_or("its VPC").to_string() })
}

/// `ErrorCode: Message` from the service's JSON error body, or the body as it is.
fn service_message(body: &str) -> String {
    #[derive(serde::Deserialize)]
    struct ServiceError {
        #[serde(rename = "ErrorCode", alias = "__type", default)]
        code: String,
        #[serde(rename = "Message", alias = "message", default)]
        message: String,
    }
    match serde_json::from_str::<ServiceError>(body) {
        Ok(e) if !e.message.is_empty() && !e.code.is_empty() => format!("{}: {}", e.code, e.message),
        Ok(e) if !e.message.is_empty() => e.message,
        _ => body.to_string(),
    }
}

/// A next step for a refused upgrade, from the status and the service's text.
fn refusal_hint(status: u16, body: &str, opts: &EiceOptions) -> String {
    let b = body.to_ascii_lowercase();
    if b.contains("maxtunnelduration") || b.contains("tunnel duration") {
        if opts.max_duration.is_none() {
            return "; an IAM policy caps the tunnel duration: pass --eice-max-duration with a value it allows".into();
        }
        return "; lower --eice-max-duration to what the IAM policy allows".into();
    }
    if b.contains("expired") {
        return "; the presigned URL expired: check this machine's clock".into();
    }
    if b.contains("signature") {
        return "; the request signature was not accepted: check the credentials and the machine's clock".into();
    }
    match status {
        403 if opts.max_duration.is_none() => "; the IAM identity needs ec2-instance-connect:OpenTunnel on this endpoint; if a policy caps \
                 ec2-instance-connect:maxTunnelDuration, pass --eice-max-duration (its remotePort and privateIpAddress \
                 conditions must allow this connection too)"
            .into(),
        403 => "; the IAM identity needs ec2-instance-connect:OpenTunnel on this endpoint, with remotePort, privateIpAddress \
                and maxTunnelDuration conditions that allow this connection"
            .into(),
        429 => "; the endpoint has reached its limit of concurrent connections (20): wait or close other tunnels".into(),
        _ => String::new(),
    }
}

/// An open tunnel.
pub(crate) struct Tunnel {
    ws: Ws,
}

/// Bytes moved by [`Tunnel::pipe_with`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TunnelStats {
    /// ssh → instance.
    pub up: u64,
    /// instance → ssh.
    pub down: u64,
}

impl Tunnel {
    /// Pipes `stdin`/`stdout` (the relay pipe of `route::open`) through the tunnel until one side ends.
    pub(crate) async fn pipe_with<R, W>(self, mut stdin: R, mut stdout: W) -> Result<TunnelStats, EiceError>
    where
        R: tokio::io::AsyncRead + Unpin,
        W: tokio::io::AsyncWrite + Unpin,
    {
        let mut stop = StopSignals::new()?;
        let (mut sink, mut stream) = self.ws.split();
        let mut stats = TunnelStats::default();
        let mut buf = vec![0u8; FRAME];
        let mut stdin_done: Option<Instant> = None;
        let result = loop {
            let drain = async {
                match stdin_done {
                    Some(t) => tokio::time::sleep_until((t + DRAIN_AFTER_STDIN_EOF).into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = stop.recv() => break Ok(()),
                () = drain => break Ok(()),
                read = stdin.read(&mut buf), if stdin_done.is_none() => match read {
                    Ok(0) | Err(_) => stdin_done = Some(Instant::now()),
                    Ok(n) => {
                        stats.up += n as u64;
                        if let Err(e) = sink.send(Message::binary(buf[..n].to_vec())).await {
                            break Err(EiceError::Broken(printable(&e.to_string()).into_owned()));
                        }
                    }
                },
                frame = stream.next() => match frame {
                    Some(Ok(Message::Binary(data))) => {
                        stats.down += data.len() as u64;
                        if stdout.write_all(&data).await.is_err() || stdout.flush().await.is_err() {
                            break Ok(());
                        }
                    }
                    Some(Ok(Message::Text(t))) => {
                        break Err(EiceError::TextFrame(crate::aws::clean(t.as_str(), MAX_REFUSAL_CHARS)));
                    }
                    Some(Ok(Message::Close(close))) => break closed(close),
                    Some(Ok(_)) => {}
                    Some(Err(WsError::ConnectionClosed)) | None => break Ok(()),
                    Some(Err(e)) => break Err(EiceError::Broken(printable(&e.to_string()).into_owned())),
                },
            }
        };
        // Polite, bounded close: the broker must be gone promptly after ssh.
        let _ = tokio::time::timeout(Duration::from_millis(200), sink.close()).await;
        result.map(|()| stats)
    }
}

/// Close code 1000 is a normal end; anything else is an error with the endpoint's reason (§4.2).
fn closed(close: Option<tokio_tungstenite::tungstenite::protocol::CloseFrame>) -> Result<(), EiceError> {
    let Some(frame) = close else { return Ok(()) };
    if frame.code == CloseCode::Normal {
        return Ok(());
    }
    let reason = crate::aws::clean(&frame.reason, MAX_REFUSAL_CHARS);
    let r = reason.to_ascii_lowercase();
    let hint = if r.contains("duration") {
        "; the tunnel reached its maximum duration (at most 1 h, or what --eice-max-duration and IAM allow): reconnect"
    } else if r.contains("refused") || r.contains("connect") {
        "; the endpoint could not reach the instance's port: check that the instance's security group allows the endpoint on that port"
    } else {
        ""
    };
    Err(EiceError::Closed { code: u16::from(frame.code), reason, hint: hint.into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_get_hints() {
        let none = EiceOptions::default();
        assert!(refusal_hint(403, "maxTunnelDuration is required", &none).contains("--eice-max-duration"));
        assert!(refusal_hint(403, "Signature expired", &none).contains("clock"));
        assert!(refusal_hint(403, "The request signature we calculated does not match", &none).contains("signature"));
        assert!(refusal_hint(403, "denied", &none).contains("--eice-max-duration"));
        let capped = EiceOptions { max_duration: Some(600), ..EiceOptions::default() };
        assert!(refusal_hint(403, "denied", &capped).contains("ec2-instance-connect:OpenTunnel"));
        assert_eq!(
            service_message(r#"{"ErrorCode":"RequestExpired","Message":"Request has expired"}"#),
            "RequestExpired: Request has expired"
        );
        assert_eq!(service_message("plain text"), "plain text");
        assert_eq!(refusal_hint(404, "nope", &none), "");
    }

    // See: issue 14 (§5, untrusted text).
    #[test]
    fn close_reasons_are_printable() {
        use tokio_tungstenite::tungstenite::protocol::CloseFrame;
        let frame = CloseFrame { code: CloseCode::Error, reason: "connection\r\nrefused\x1b]0;owned\x07".into() };
        let e = closed(Some(frame)).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "the Instance Connect Endpoint closed the tunnel: connection\\x0d\\x0arefused\\x1b]0;owned\\x07 (close code 1011)"
            ),
            "{e}"
        );
        assert!(!e.contains('\x1b') && !e.contains('\n'), "{e}");
    }
}
