//! The I/O of one EC2 attempt: sign the POST (SigV4, over the body's SHA-256), send it with
//! hyper (rustls for `https://`, trusting the system roots and `AWS_CA_BUNDLE`), read the whole
//! answer. One connection pool per process.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// The form body's type.
const CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";
/// The SDK's connect timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(3100);
/// A bigger answer is not EC2's (a page of 1,000 instances is a few MiB).
const MAX_ANSWER_BYTES: usize = 64 << 20;

type Pool = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// What to send.
pub(super) struct Signed<'a> {
    pub(super) endpoint: &'a str,
    pub(super) region: &'a str,
    pub(super) signing_name: &'a str,
    pub(super) body: &'a str,
}

/// The whole answer.
pub(super) struct Answer {
    pub(super) status: u16,
    /// `x-amzn-RequestId` (or `x-amz-request-id`), when the answer has one.
    pub(super) request_id: Option<String>,
    pub(super) body: String,
}

/// Why nothing was answered.
#[derive(Debug)]
pub(super) enum SendError {
    /// The request could not be made (endpoint URL, signature, TLS roots): no retry helps.
    Setup(String),
    /// No connection (refused, name lookup, TLS handshake, connect timeout).
    Connect {
        /// What failed.
        detail: String,
        /// The host name did not resolve.
        name_lookup: bool,
    },
    /// The connection broke before the answer was whole.
    Exchange(String),
}

/// Signs and sends `request`; the answer, whatever its status.
pub(super) async fn send(request: Signed<'_>, credentials: Credentials) -> Result<Answer, SendError> {
    let url = format!("{}/", request.endpoint.trim_end_matches('/'));
    let uri: http::Uri =
        url.parse().map_err(|e| SendError::Setup(format!("the endpoint URL {url} is not usable: {e}")))?;
    let host = uri
        .authority()
        .map(|a| a.as_str().to_string())
        .ok_or_else(|| SendError::Setup(format!("the endpoint URL {url} names no host")))?;
    let tls = uri.scheme_str() == Some("https");
    let pool = pool(tls)?;

    let identity = credentials.into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(request.region)
        .name(request.signing_name)
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| SendError::Setup(format!("cannot sign the request: {e}")))?
        .into();
    let headers = [("content-type", CONTENT_TYPE), ("host", host.as_str())];
    let signable =
        SignableRequest::new("POST", &url, headers.into_iter(), SignableBody::Bytes(request.body.as_bytes()))
            .map_err(|e| SendError::Setup(format!("cannot sign the request: {e}")))?;
    let (instructions, _) =
        sign(signable, &params).map_err(|e| SendError::Setup(format!("cannot sign the request: {e}")))?.into_parts();
    let mut req = http::Request::post(uri)
        .header("content-type", CONTENT_TYPE)
        .header("host", &host)
        .header("user-agent", concat!("ec2-broker/", env!("CARGO_PKG_VERSION")))
        .body(Full::new(Bytes::copy_from_slice(request.body.as_bytes())))
        .map_err(|e| SendError::Setup(format!("cannot make the request: {e}")))?;
    instructions.apply_to_request_http1x(&mut req);

    let answer = pool.request(req).await.map_err(|e| {
        let detail = super::chain_text(&e);
        if e.is_connect() {
            // hyper-util's connector names a failed lookup so; it only picks the hint.
            let name_lookup = detail.contains("dns error");
            SendError::Connect { detail, name_lookup }
        } else {
            SendError::Exchange(detail)
        }
    })?;
    let status = answer.status().as_u16();
    let request_id = ["x-amzn-requestid", "x-amz-request-id"]
        .iter()
        .find_map(|h| answer.headers().get(*h))
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = Limited::new(answer.into_body(), MAX_ANSWER_BYTES)
        .collect()
        .await
        .map_err(|e| SendError::Exchange(format!("the answer broke off: {e}")))?
        .to_bytes();
    Ok(Answer { status, request_id, body: String::from_utf8_lossy(&body).into_owned() })
}

/// The process's connection pool for plain or TLS endpoints. The TLS one loads the trust roots
/// once, on first use: a broker that only talks to a local `http://` endpoint never does.
fn pool(tls: bool) -> Result<&'static Pool, SendError> {
    static PLAIN: OnceLock<Result<Pool, String>> = OnceLock::new();
    static TLS: OnceLock<Result<Pool, String>> = OnceLock::new();
    let made = if tls {
        TLS.get_or_init(|| crate::tls::client_config().map(|c| build((*c).clone())).map_err(|e| e.to_string()))
    } else {
        // Never used for a handshake: the connector only wraps plain TCP for `http://`.
        PLAIN.get_or_init(|| {
            let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map(|b| build(b.with_root_certificates(rustls::RootCertStore::empty()).with_no_client_auth()))
                .map_err(|e| e.to_string())
        })
    };
    made.as_ref().map_err(|e| SendError::Setup(e.clone()))
}

fn build(config: rustls::ClientConfig) -> Pool {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new()).build(connector)
}
