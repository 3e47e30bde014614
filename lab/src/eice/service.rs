//! The EICE websocket listener: TLS always (`wss://` only, like the real service), the upgrade
//! with `admission`'s checks, the request log, then `tunnel` for accepted requests.
//!
//! Every request is logged as `ApiCall { service: "ec2-instance-connect-endpoint", operation:
//! "OpenTunnel", status }`: 101 when the upgrade was accepted, else the refusal's status. Every
//! answer carries an `x-amzn-RequestId` header (the CLI logs it, spec §4.1).

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode, header};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::admission::{self, Admitted, Refusal};
use super::{EiceTunnelInfo, LOG_OPERATION, LOG_SERVICE, MAX_FRAME, tunnel};
use crate::state::State;

/// How long a client may take for the TLS handshake and the upgrade request (an inference; the
/// real value is not documented).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts tunnel connections until the lab stops.
pub(crate) async fn serve(listener: TcpListener, state: Arc<State>, tls: TlsAcceptor) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let (state, tls) = (state.clone(), tls.clone());
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let Ok(Ok(stream)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(tcp)).await else {
                return;
            };
            handle(stream, &state).await;
        });
    }
}

// The upgrade callback's `Result<Response, ErrorResponse>` is tungstenite's signature.
#[allow(clippy::result_large_err)]
async fn handle(stream: TlsStream<TcpStream>, state: &Arc<State>) {
    let delay = state.eice_faults().delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut accepted: Option<(usize, Admitted)> = None;
    let callback = |req: &Request, mut response: Response| -> Result<Response, ErrorResponse> {
        let headers: Vec<(String, String)> = req
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let mut info = EiceTunnelInfo::default();
        let query = req.uri().query().unwrap_or_default();
        let result = admission::admit(state, req.uri().path(), query, &headers, &mut info).and_then(|a| {
            let limit = state.eice_faults().max_connections.unwrap_or(a.max_connections);
            match state.eice.try_open(info.clone(), limit) {
                Ok(index) => Ok((index, a)),
                Err(_) => Err(Refusal::too_many(&a.endpoint_id, limit)),
            }
        });
        let request_id = HeaderValue::from_str(&state.next_id("")).expect("ids are ASCII");
        match result {
            Ok(ok) => {
                state.record(LOG_SERVICE, LOG_OPERATION, 101, &info.access_key);
                response.headers_mut().insert("x-amzn-requestid", request_id);
                accepted = Some(ok);
                Ok(response)
            }
            Err(refusal) => {
                state.record(LOG_SERVICE, LOG_OPERATION, refusal.status, &info.access_key);
                state.eice.refused(EiceTunnelInfo {
                    status: refusal.status,
                    refusal: Some(refusal.message.clone()),
                    ..info
                });
                let mut err = ErrorResponse::new(Some(refusal.body()));
                *err.status_mut() = StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::FORBIDDEN);
                err.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                err.headers_mut().insert("x-amzn-requestid", request_id);
                Err(err)
            }
        }
    };
    // tungstenite zero-fills its read buffer (128 KiB by default) before every read: 64 KiB, one
    // client frame, keeps the double's own cost out of the benchmarks.
    let config = WebSocketConfig::default()
        .max_frame_size(Some(MAX_FRAME))
        .max_message_size(Some(MAX_FRAME))
        .read_buffer_size(64 * 1024);
    let upgrade = tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config));
    let ws = tokio::time::timeout(HANDSHAKE_TIMEOUT, upgrade).await;
    let Some((index, admitted)) = accepted else { return };
    match ws {
        Ok(Ok(ws)) => tunnel::run(ws, state, index, admitted).await,
        Ok(Err(e)) => tunnel::finish(state, index, None, format!("the upgrade failed: {e}")),
        Err(_) => tunnel::finish(state, index, None, "the upgrade did not complete in time".into()),
    }
}
