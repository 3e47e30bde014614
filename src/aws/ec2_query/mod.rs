//! A client for the EC2 calls the broker makes, in EC2's Query protocol: a form-encoded POST
//! signed with SigV4 (`aws-sigv4`), XML answers read with `quick-xml`'s serde support, over the
//! hyper stack the other SDK clients already bring. It replaces `aws-sdk-ec2`, which was 38 % of
//! a cold `cargo install` (docs/benchmarks.md, "Install cost").
//!
//! What the SDK did and this keeps: the endpoint from `AWS_ENDPOINT_URL_EC2`,
//! `AWS_ENDPOINT_URL` or the profile, else the Region's; the standard retry mode (throttling and
//! passing faults, three attempts unless `AWS_MAX_ATTEMPTS` says otherwise, jittered
//! exponential back-off); 5 s per attempt and 20 s per call; errors as code, message and request
//! id ([`AwsError::Service`]); pagination by `NextToken`. Sans-IO parts ([`request`],
//! [`response`], [`retry`], [`endpoint`]) are pure; [`transport`] does the I/O.

mod endpoint;
mod request;
mod response;
mod retry;
pub(crate) mod shapes;
mod transport;

use std::time::Instant;

use aws_types::SdkConfig;
use aws_types::service_config::ServiceConfigKey;
use serde::de::DeserializeOwned;

pub(crate) use self::request::Params;
use self::retry::Verdict;
use self::shapes::Paged;
use super::credential_cache::CredentialCache;
use super::{
    ATTEMPT_TIMEOUT, AwsError, MAX_MESSAGE_CHARS, OPERATION_TIMEOUT, RAW_ERROR_TARGET, chain_text, clean, clean_lines,
    request_id_text,
};

/// The service's name in messages.
const SERVICE: &str = "EC2";
/// The SigV4 signing name.
const SIGNING_NAME: &str = "ec2";
/// More pages than this is a service that never stops paging.
const MAX_PAGES: usize = 10_000;

/// The EC2 client of one Region.
#[derive(Debug)]
pub(crate) struct Ec2 {
    region: String,
    endpoint: String,
    credentials: CredentialCache,
    max_attempts: u32,
}

impl Ec2 {
    /// The client for `config`'s Region, signing with `credentials`.
    pub(crate) fn new(config: &SdkConfig, credentials: CredentialCache) -> Ec2 {
        let region = config.region().map(|r| r.to_string()).unwrap_or_default();
        let configured = if config.get_origin("endpoint_url").is_client_config() {
            config.endpoint_url().map(str::to_string)
        } else {
            let key =
                ServiceConfigKey::builder().service_id("EC2").env("AWS_ENDPOINT_URL").profile("endpoint_url").build();
            key.ok()
                .and_then(|key| config.service_config().and_then(|c| c.load_config(key)))
                .or_else(|| config.endpoint_url().map(str::to_string))
        };
        let endpoint = configured.unwrap_or_else(|| {
            endpoint::default_endpoint(
                &region,
                config.use_fips().unwrap_or(false),
                config.use_dual_stack().unwrap_or(false),
            )
        });
        let max_attempts =
            config.retry_config().map(|r| r.max_attempts()).unwrap_or(retry::DEFAULT_MAX_ATTEMPTS).max(1);
        tracing::debug!(%endpoint, %region, max_attempts, "EC2 client");
        Ec2 { region, endpoint, credentials, max_attempts }
    }

    /// One call, one answer.
    pub(crate) async fn call<T: DeserializeOwned>(&self, params: &Params) -> Result<T, AwsError> {
        let answer = self.fetch(params, None).await?;
        decode(params.action(), &answer)
    }

    /// Every page of a call that pages (`NextToken`), in order. The next page is asked for while
    /// the last one is read (on a blocking thread): its token is found by a quick scan first, so
    /// a listing of N pages costs about N round trips, not N round trips plus N decodings (a
    /// page of 1,000 instances takes tens of milliseconds to read).
    pub(crate) async fn pages<T>(&self, params: &Params) -> Result<Vec<T>, AwsError>
    where
        T: DeserializeOwned + Paged + Send + 'static,
    {
        let operation = params.action();
        let mut out: Vec<T> = Vec::new();
        let mut token: Option<String> = None;
        let mut answer = self.fetch(params, None).await?;
        loop {
            let scanned = response::next_token(&answer.body);
            // A token that repeats would page forever (the SDK's paginators stop there too).
            let next =
                (scanned.clone()).filter(|next| token.as_deref() != Some(next.as_str()) && out.len() + 1 < MAX_PAGES);
            let read = tokio::task::spawn_blocking(move || decode::<T>(operation, &answer));
            let (page, following) = match &next {
                Some(next) => {
                    let (page, following) = tokio::join!(read, self.fetch(params, Some(next)));
                    (page, Some(following))
                }
                None => (read.await, None),
            };
            let page = page.map_err(|e| AwsError::Transport {
                service: SERVICE,
                operation,
                detail: format!("reading the answer failed: {e}"),
            })??;
            // The scan and the parser must agree on where the listing goes on.
            if page.next_token().map(str::trim) != scanned.as_deref() {
                return Err(AwsError::Transport {
                    service: SERVICE,
                    operation,
                    detail: "the answer's nextToken could not be read consistently".into(),
                });
            }
            out.push(page);
            match following {
                Some(following) => {
                    answer = following?;
                    token = next;
                }
                None => return Ok(out),
            }
        }
    }

    /// One page's answer: attempts until one is final, within [`OPERATION_TIMEOUT`].
    async fn fetch(&self, params: &Params, token: Option<&str>) -> Result<transport::Answer, AwsError> {
        let operation = params.action();
        let body = params.body(token);
        let attempts = async {
            let mut attempt = 1;
            loop {
                let started = Instant::now();
                let outcome = self.attempt(operation, &body).await;
                let (verdict, result) = match outcome {
                    Ok(answer) => judge(operation, answer),
                    Err(failure) => (failure.verdict, Err(failure.error)),
                };
                tracing::debug!(
                    operation,
                    attempt,
                    ms = started.elapsed().as_millis() as u64,
                    ok = result.is_ok(),
                    "EC2 call"
                );
                if verdict == Verdict::Final || attempt >= self.max_attempts {
                    return result;
                }
                let wait = retry::backoff(attempt, rand::random::<f64>());
                if let Err(e) = &result {
                    tracing::debug!(operation, attempt, error = %e, wait_ms = wait.as_millis() as u64, "EC2 call retried");
                }
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
        };
        match tokio::time::timeout(OPERATION_TIMEOUT, attempts).await {
            Ok(result) => result,
            Err(_) => Err(AwsError::Transport {
                service: SERVICE,
                operation,
                detail: format!("no answer within {}s", OPERATION_TIMEOUT.as_secs()),
            }),
        }
    }

    /// Sends one attempt: credentials, signature, the POST, the whole answer.
    async fn attempt(&self, operation: &'static str, body: &str) -> Result<transport::Answer, Failure> {
        let credentials = self.credentials.get().await.map_err(|e| Failure {
            verdict: Verdict::Final,
            error: AwsError::NoCredentials { service: SERVICE, operation, detail: chain_text(&e) },
        })?;
        let request =
            transport::Signed { endpoint: &self.endpoint, region: &self.region, signing_name: SIGNING_NAME, body };
        match tokio::time::timeout(ATTEMPT_TIMEOUT, transport::send(request, credentials)).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(transport::SendError::Setup(detail))) => Err(Failure {
                verdict: Verdict::Final,
                error: AwsError::Transport { service: SERVICE, operation, detail },
            }),
            Ok(Err(transport::SendError::Connect { detail, name_lookup })) => Err(Failure {
                verdict: Verdict::Retry,
                error: AwsError::Unreachable { service: SERVICE, operation, detail, name_lookup },
            }),
            Ok(Err(transport::SendError::Exchange(detail))) => Err(Failure {
                verdict: Verdict::Retry,
                error: AwsError::Transport { service: SERVICE, operation, detail },
            }),
            Err(_) => Err(Failure {
                verdict: Verdict::Retry,
                error: AwsError::Transport {
                    service: SERVICE,
                    operation,
                    detail: format!("no answer within {}s", ATTEMPT_TIMEOUT.as_secs()),
                },
            }),
        }
    }
}

/// An answer's verdict, and the answer itself when it is a success.
fn judge(operation: &'static str, answer: transport::Answer) -> (Verdict, Result<transport::Answer, AwsError>) {
    if (200..300).contains(&answer.status) {
        return (Verdict::Final, Ok(answer));
    }
    log_raw(operation, &answer);
    let found = response::parse_error(&answer.body);
    let verdict = retry::on_answer(answer.status, found.as_ref().map(|e| e.code.as_str()));
    let request_id =
        answer.request_id.or_else(|| found.as_ref().and_then(|e| e.request_id.clone())).map(|id| request_id_text(&id));
    let error = match found {
        Some(e) => AwsError::Service {
            service: SERVICE,
            operation,
            code: clean(&e.code, 100),
            message: clean(e.message.as_deref().unwrap_or("(no message)"), MAX_MESSAGE_CHARS),
            request_id,
        },
        None => AwsError::Unreadable { service: SERVICE, operation, status: answer.status, request_id },
    };
    (verdict, Err(error))
}

/// A failed attempt and whether another may succeed.
struct Failure {
    verdict: Verdict,
    error: AwsError,
}

/// A success's body as `T`; a body that is not one is [`AwsError::Unreadable`] (a proxy's page,
/// a truncated answer), its text only in the TRACE log, scrubbed.
fn decode<T: DeserializeOwned>(operation: &'static str, answer: &transport::Answer) -> Result<T, AwsError> {
    response::parse_answer(operation, &answer.body).map_err(|e| {
        log_raw(operation, answer);
        tracing::debug!(operation, error = %clean(&e, 300), "EC2 answer not readable");
        let request_id =
            (answer.request_id.clone()).or_else(|| response::request_id(&answer.body)).map(|id| request_id_text(&id));
        AwsError::Unreadable { service: SERVICE, operation, status: answer.status, request_id }
    })
}

/// The whole answer of a failed call, for debugging: at TRACE only (target
/// `ec2_broker::aws::sdk_error`, as the SDK's error context was), scrubbed of secrets.
fn log_raw(operation: &'static str, answer: &transport::Answer) {
    if tracing::enabled!(target: RAW_ERROR_TARGET, tracing::Level::TRACE) {
        let body = clean_lines(&answer.body, 4 * MAX_MESSAGE_CHARS);
        tracing::trace!(target: RAW_ERROR_TARGET, service = SERVICE, operation, status = answer.status, %body, "EC2 answer");
    }
}

/// Fuzz entry (`cargo fuzz run ec2_answer`): reading any answer never panics; an error read
/// from it has a real code; and an instance read from it has a Name a terminal can show (no
/// control characters: anyone who may tag an instance chooses its Name).
pub fn fuzz_answer(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Some(e) = response::parse_error(&text) {
        assert!(!e.code.is_empty() && e.code.trim() == e.code, "{e:?}");
    }
    if let Ok(page) = response::parse::<shapes::DescribeInstances>(&text) {
        for found in page.reservation_set.item.into_iter().flat_map(|r| r.instances_set.item) {
            if let Some(i) = super::ec2::convert(found) {
                assert!(i.name.as_deref().is_none_or(|n| !n.chars().any(char::is_control)), "{:?}", i.name);
            }
        }
    }
    let _ = response::parse::<shapes::DescribeSecurityGroups>(&text);
    let _ = response::parse::<shapes::DescribeRouteTables>(&text);
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_fuzz_entry_holds_on_seeds() {
        let named = "<R><reservationSet><item><instancesSet><item><instanceId>i-1</instanceId>\
            <tagSet><item><key>Name</key><value>web\u{1b}]0;owned\u{7}&#27;[2J</value></item></tagSet>\
            </item></instancesSet></item></reservationSet></R>";
        for seed in [
            named,
            "<Response><Errors><Error><Code> X </Code></Error></Errors></Response>",
            "<Response><Errors><Error><Code></Code></Error></Errors></Response>",
            "<a><b></a>",
            "",
            "\u{0}<<<&#xFFFFFF;",
        ] {
            super::fuzz_answer(seed.as_bytes());
        }
        // The oracle did run on the Name: the seed reads as an instance whose Name is cleaned.
        let page: super::shapes::DescribeInstances = super::response::parse(named).unwrap();
        let found = page.reservation_set.item.into_iter().flat_map(|r| r.instances_set.item).next().unwrap();
        let name = crate::aws::ec2::convert(found).and_then(|i| i.name).unwrap();
        assert!(name.starts_with("web") && !name.contains('\u{1b}'), "{name:?}");
    }
}
