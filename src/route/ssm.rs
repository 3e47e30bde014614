//! The `ssm` route: a Session Manager port session (`AWS-StartSSHSession`) to the instance's SSH
//! port, carried by the native data-channel client in [`crate::ssm`]. No inbound network needed.
//!
//! The same place opens the shell and command sessions of `ec2-broker shell` ([`open_shell`]):
//! the same data channel with another session kind, KMS data keys from [`Aws`], and the account's
//! preferences read for what the session will be (Run As, KMS).
//!
//! The data channel must be `wss://`. [`ALLOW_PLAINTEXT_WS`]`=1` lets a `ws://` stream URL through,
//! with a warning each time: it exists for local test labs (the lab's data channel speaks `ws://`)
//! and must never be set against AWS.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

use super::run_as::RunAs;
use crate::aws::ssm::{SessionGrant, ShellDocument, StartError};
use crate::aws::{Aws, AwsError};
use crate::ssm::crypto::DataKey;
use crate::ssm::driver::{
    self, BoxError, Channel, Connection, DataKeys, DriverError, Local, NoDataKeys, Options, Outcome, Purpose, Resume,
};
use crate::ssm::handshake::{KeyRequest, SessionIds};
use crate::ssm::session_kind::SessionKind;
use crate::target::instance::Instance;
use crate::text::printable;

/// Environment variable that allows a `ws://` stream URL: for local test labs only.
pub(crate) const ALLOW_PLAINTEXT_WS: &str = "EC2_BROKER_ALLOW_PLAINTEXT_WS";

/// How long `TerminateSession` may take when ssh has exited: the broker promises to be gone
/// within 1 s of ssh.
const TERMINATE_BUDGET: Duration = Duration::from_millis(500);

/// Why the SSM route could not open.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SsmError {
    /// SSM cannot reach the instance's agent.
    #[error("instance {id} has no SSM agent online: {detail}; try --route direct")]
    AgentOffline {
        /// Instance id.
        id: String,
        /// What SSM knows of the agent.
        detail: String,
    },
    /// SSM cannot reach the instance's agent (for `ec2-broker shell`, where no other route helps).
    #[error("instance {id} has no SSM agent online: {detail}; run `ec2-broker doctor {id}` to see why")]
    NoAgent {
        /// Instance id.
        id: String,
        /// What SSM knows of the agent.
        detail: String,
    },
    /// `--user` asks for a user Session Manager will not use.
    #[error("--user {user}: {explanation}")]
    RunAs {
        /// The user asked for.
        user: String,
        /// How Session Manager picks the user, and what to do.
        explanation: String,
    },
    /// StartSession failed otherwise.
    #[error("starting a Session Manager session to {id}")]
    Start {
        /// Instance id.
        id: String,
        /// The cause.
        #[source]
        source: AwsError,
    },
    /// The data channel failed.
    #[error("Session Manager session {session} to {id}")]
    Channel {
        /// Instance id.
        id: String,
        /// Session id.
        session: String,
        /// The cause.
        #[source]
        source: DriverError,
    },
    /// TLS trust could not be set up.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

/// Settings of the route.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SsmOptions {
    /// Keep trying to resume a dropped connection this long.
    pub resume_timeout: Duration,
}

/// An open session, handshake done, ready to pipe.
pub(crate) struct SsmRoute {
    aws: Aws,
    instance_id: String,
    session_id: String,
    channel: Channel,
}

/// Starts the session and opens its data channel. On failure after StartSession the session is
/// terminated, so nothing is left running on the instance.
pub(crate) async fn open(aws: &Aws, instance: &Instance, port: u16, opts: SsmOptions) -> Result<SsmRoute, SsmError> {
    let tls = crate::tls::client_config()?;
    let grant = match aws.start_ssh_session(&instance.id, port).await {
        Ok(g) => g,
        Err(StartError::TargetNotConnected { id, message }) => {
            let detail = explain_offline(aws, &id, &message).await;
            return Err(SsmError::AgentOffline { id, detail });
        }
        Err(StartError::Api(source)) => return Err(SsmError::Start { id: instance.id.clone(), source }),
    };
    let options = channel_options(tls, opts);
    let SessionGrant { session_id, stream_url, token } = grant;
    match Channel::open(Connection { url: stream_url, token }, options, Purpose::default(), &mut NoDataKeys).await {
        Ok(channel) => Ok(SsmRoute { aws: aws.clone(), instance_id: instance.id.clone(), session_id, channel }),
        Err(source) => {
            terminate(aws, &session_id).await;
            Err(SsmError::Channel { id: instance.id.clone(), session: session_id, source })
        }
    }
}

impl SsmRoute {
    /// The session id.
    pub(crate) fn session_id(&self) -> &str {
        &self.session_id
    }

    /// Pipes `stdin`/`stdout` (the relay pipe of `route::open`) through the session, then ends it.
    pub(crate) async fn pipe_with<R, W>(self, stdin: R, stdout: W) -> Result<Outcome, SsmError>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let SsmRoute { aws, instance_id, session_id, channel } = self;
        let mut resume = AwsResume { aws: &aws, session_id: &session_id };
        let result = channel.run(&mut resume, stdin, stdout).await;
        let closed_by_service = matches!(&result, Ok(o) if matches!(o.end, driver::End::ChannelClosed(_)));
        if !closed_by_service && !matches!(result, Err(DriverError::SessionGone)) {
            terminate(&aws, &session_id).await;
        }
        result.map_err(|source| SsmError::Channel { id: instance_id, session: session_id, source })
    }
}

/// What `ec2-broker shell` asks for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ShellRequest<'a> {
    /// The document and its command.
    pub document: ShellDocument<'a>,
    /// `--user`: checked against the preferences, never sent (Session Manager picks the user).
    pub user: Option<&'a str>,
}

/// What the shell session is, for the user.
#[derive(Debug, Clone)]
pub(crate) struct ShellFacts {
    /// What was started.
    pub kind: SessionKind,
    /// The session id.
    pub session_id: String,
    /// Who the session runs as.
    pub run_as: RunAs,
    /// Whether the agent encrypts the session with KMS.
    pub encrypted: bool,
    /// The KMS key the preferences name, if they could be read.
    pub kms_key_id: Option<String>,
}

/// An open shell or command session, handshake done.
pub(crate) struct ShellRoute {
    aws: Aws,
    instance_id: String,
    channel: Channel,
    /// What it is.
    pub facts: ShellFacts,
}

/// Reads the preferences, starts a shell or command session and opens its data channel (with a
/// KMS data key when the agent asks for one). On failure after StartSession the session is
/// terminated.
pub(crate) async fn open_shell(
    aws: &Aws,
    instance: &Instance,
    request: ShellRequest<'_>,
    opts: SsmOptions,
) -> Result<ShellRoute, SsmError> {
    let tls = crate::tls::client_config()?;
    // Denied or missing preferences are not fatal: only what they would tell is unknown.
    let prefs = aws.shell_preferences().await.map_err(|e| {
        tracing::debug!(error = %e, "cannot read the Session Manager preferences");
        printable(&e.to_string()).into_owned()
    });
    let run_as = RunAs::from_preferences(prefs.as_ref().map_err(String::as_str));
    if let Some(user) = request.user {
        run_as.check(user).map_err(|explanation| SsmError::RunAs { user: user.to_string(), explanation })?;
    }
    let kind = match request.document {
        ShellDocument::Shell => SessionKind::Shell,
        ShellDocument::Interactive(_) => SessionKind::InteractiveCommands,
        ShellDocument::NonInteractive(_) => SessionKind::NonInteractiveCommands,
    };
    let grant = match aws.start_shell_session(&instance.id, request.document).await {
        Ok(g) => g,
        Err(StartError::TargetNotConnected { id, message }) => {
            let detail = explain_offline(aws, &id, &message).await;
            return Err(SsmError::NoAgent { id, detail });
        }
        Err(StartError::Api(source)) => return Err(SsmError::Start { id: instance.id.clone(), source }),
    };
    let SessionGrant { session_id, stream_url, token } = grant;
    let purpose = Purpose { kind, ids: SessionIds { session_id: session_id.clone(), target_id: instance.id.clone() } };
    let mut keys = AwsDataKeys { aws };
    match Channel::open(Connection { url: stream_url, token }, channel_options(tls, opts), purpose, &mut keys).await {
        Ok(channel) => {
            let facts = ShellFacts {
                kind,
                session_id,
                run_as,
                encrypted: channel.is_encrypted(),
                kms_key_id: prefs.ok().and_then(|p| p.kms_key_id),
            };
            Ok(ShellRoute { aws: aws.clone(), instance_id: instance.id.clone(), channel, facts })
        }
        Err(source) => {
            terminate(aws, &session_id).await;
            Err(SsmError::Channel { id: instance.id.clone(), session: session_id, source })
        }
    }
}

impl ShellRoute {
    /// Runs the session with its local ends until it ends, then ends it on the service too
    /// unless the service did.
    pub(crate) async fn run<I, O, E, N>(self, local: Local<I, O, E, N>) -> Result<Outcome, SsmError>
    where
        I: AsyncRead + Unpin,
        O: AsyncWrite + Unpin,
        E: AsyncWrite + Unpin,
        N: AsyncWrite + Unpin,
    {
        let ShellRoute { aws, instance_id, channel, facts } = self;
        let session_id = facts.session_id;
        let mut resume = AwsResume { aws: &aws, session_id: &session_id };
        let result = channel.run_local(&mut resume, local).await;
        let closed_by_service = matches!(&result, Ok(o) if matches!(o.end, driver::End::ChannelClosed(_)));
        if !closed_by_service && !matches!(result, Err(DriverError::SessionGone)) {
            terminate(&aws, &session_id).await;
        }
        result.map_err(|source| SsmError::Channel { id: instance_id, session: session_id, source })
    }
}

/// Data keys from KMS for the driver (the driver never sees the SDK).
struct AwsDataKeys<'a> {
    aws: &'a Aws,
}

impl DataKeys for AwsDataKeys<'_> {
    async fn data_key(&mut self, request: &KeyRequest) -> Result<DataKey, BoxError> {
        Ok(self.aws.generate_data_key(&request.key_id, &request.context).await?)
    }
}

fn channel_options(tls: std::sync::Arc<rustls::ClientConfig>, opts: SsmOptions) -> Options {
    Options {
        tls,
        resume_timeout: opts.resume_timeout,
        // Every 10 s, and dead after 30 s of silence: found within half a minute, where the
        // official plugin pings every 5 min and never checks the answer (spec §4.1).
        ping_interval: Duration::from_secs(10),
        silence_timeout: Duration::from_secs(30),
        allow_plaintext: plaintext_allowed(),
    }
}

/// Whether [`ALLOW_PLAINTEXT_WS`] is set to `1` (or `true`).
fn plaintext_allowed() -> bool {
    std::env::var(ALLOW_PLAINTEXT_WS).is_ok_and(|v| matches!(v.trim(), "1" | "true"))
}

async fn terminate(aws: &Aws, session_id: &str) {
    match tokio::time::timeout(TERMINATE_BUDGET, aws.terminate_session(session_id)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(session = %session_id, error = %e, "could not terminate the SSM session"),
        Err(_) => {
            tracing::warn!(session = %session_id, "TerminateSession did not answer in time; the session times out on its own")
        }
    }
}

/// Turns `TargetNotConnected` into something a user can act on, using the agent's status.
async fn explain_offline(aws: &Aws, id: &str, message: &str) -> String {
    match aws.agent_status(id).await {
        Ok(None) => "SSM does not know it (no running SSM agent, no instance profile allowing SSM such as \
                     AmazonSSMManagedInstanceCore, or another account or Region)"
            .into(),
        Ok(Some(status)) => {
            let version = status.agent_version.map(|v| format!(", agent {v}")).unwrap_or_default();
            format!(
                "its agent's status is {}{version} (the agent stopped, or lost its network path to SSM)",
                status.ping_status
            )
        }
        Err(e) => {
            tracing::debug!(error = %e, "DescribeInstanceInformation failed");
            format!("StartSession said: {message}")
        }
    }
}

struct AwsResume<'a> {
    aws: &'a Aws,
    session_id: &'a str,
}

impl Resume for AwsResume<'_> {
    async fn resume(&mut self) -> Result<Option<Connection>, BoxError> {
        // The SDK's credential cache renews expiring credentials before signing, so a resume an
        // hour in does not fail with stale session credentials (spec §12, plugin issue 136).
        let grant = self.aws.resume_session(self.session_id).await?;
        Ok(grant.map(|g| Connection { url: g.stream_url, token: g.token }))
    }
}
