//! Issue 18: the lab's doubles answer as AWS documents, for any client. Each test drives a
//! double with the real AWS SDK crates (or, for a request the SDK would never send, a raw
//! request signed with `aws-sigv4`) and asserts the documented answer: HTTP status, error code,
//! message, request id. One module per API family; each test names the issue item it pins and
//! failed against the lab before the fix.
//!
//! - `sigv4`: signatures verified everywhere (item 9) and request ids on every answer (item 2);
//! - `ec2`: DryRun (3), DescribeInstances' filters (6), malformed ids (7), response fields (10);
//!   ImportKeyPair's forms and refusals, DeleteKeyPair (issue 17);
//! - `ssm`: DescribeInstanceInformation's filter keys (1) and fields (10);
//! - `instance_connect`: InstanceOSUser (4), trimmed keys (5), key validation (8);
//! - `imds`: the token PUT and directory listings (11), GetCallerIdentity's ARN (11);
//! - `up`: `ec2-lab up --env-file --fault` as a process, with ssh through the file it writes.

mod ec2;
mod imds;
mod instance_connect;
mod sigv4;
mod ssm;
mod up;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use aws_credential_types::Credentials;
use aws_sdk_ec2::config::http::HttpResponse;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use ec2_lab::Lab;

/// The demo inventory's web-1 (private 127.0.1.10, public 127.0.2.10, tags Role=web).
pub const WEB: &str = "i-0a1b2c3d4e5f60718";
/// The demo inventory's db-1 (no inbound network, SSM agent online).
pub const DB: &str = "i-0f1b2c3d4e5f6071d";

/// Runs `future` on a fresh current-thread runtime (a test's `Lab` owns a runtime of its own,
/// so it is started and dropped outside this one).
pub fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime").block_on(future)
}

/// SDK configuration for the lab's endpoint, signed with `access_key`/`secret`, no retries.
pub async fn sdk_as(lab: &Lab, access_key: &str, secret: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(lab.endpoint_url())
        .region(aws_config::Region::new("eu-west-1"))
        .credentials_provider(Credentials::new(access_key, secret, None, None, "conformance"))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await
}

/// SDK configuration signed with the lab user's real credentials.
pub async fn sdk(lab: &Lab) -> aws_config::SdkConfig {
    sdk_as(lab, ec2_lab::ACCESS_KEY_ID, ec2_lab::SECRET_ACCESS_KEY).await
}

/// What an API refused, as a client sees it.
#[derive(Debug)]
pub struct Refusal {
    /// HTTP status.
    pub status: u16,
    /// The error code (`__type`, `<Code>`).
    pub code: String,
    /// The message.
    pub message: String,
    /// The `x-amzn-RequestId` header.
    pub request_id: Option<String>,
}

/// The refusal of a call that must fail.
pub fn refusal<T: std::fmt::Debug, E: ProvideErrorMetadata + std::fmt::Debug>(
    result: Result<T, SdkError<E, HttpResponse>>,
) -> Refusal {
    let err = result.expect_err("the call must be refused");
    let raw = err.raw_response().unwrap_or_else(|| panic!("no response: {err:?}"));
    Refusal {
        status: raw.status().as_u16(),
        code: err.code().unwrap_or_default().to_string(),
        message: err.message().unwrap_or_default().to_string(),
        request_id: raw.headers().get("x-amzn-requestid").map(str::to_string),
    }
}

/// Whether `id` is shaped like AWS's request ids (a UUID: 8-4-4-4-12 hex digits).
pub fn uuid_shaped(id: &str) -> bool {
    let parts: Vec<&str> = id.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12]) && parts.iter().all(|p| p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A raw HTTP/1.1 exchange with `addr`: `head` is the request line and headers (each ending in
/// CRLF, without Content-Length and Connection). Returns the status, the lower-cased response
/// head and the body.
pub fn http(addr: &str, head: &str, body: &[u8]) -> (u16, String, String) {
    let mut tcp = TcpStream::connect(addr).expect("connecting to the lab");
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut request = format!("{head}Content-Length: {}\r\nConnection: close\r\n\r\n", body.len()).into_bytes();
    request.extend_from_slice(body);
    tcp.write_all(&request).unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).unwrap();
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status line");
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((response.as_str(), ""));
    (status, head.to_ascii_lowercase(), body.to_string())
}
