//! Systems Manager: Session Manager sessions and agent status (`../shared/spec/ssm-data-channel.md`
//! §2, `aws-apis.md` §2.2).

use aws_sdk_ssm::types::InstanceInformationStringFilter;

use super::{Aws, AwsError, clean};
use crate::redact::{self, Redacted};

const SERVICE: &str = "SSM";
/// The session document for ssh over a port session (§3): no local listener, stdin/stdout.
pub(crate) const SSH_DOCUMENT: &str = "AWS-StartSSHSession";

/// `AWS-StartInteractiveCommand`: one command on a pty (`keys-and-shell.md` §5).
pub(crate) const INTERACTIVE_COMMAND_DOCUMENT: &str = "AWS-StartInteractiveCommand";
/// `AWS-StartNonInteractiveCommand`: one command without pty or stdin.
pub(crate) const NON_INTERACTIVE_COMMAND_DOCUMENT: &str = "AWS-StartNonInteractiveCommand";

/// The document of a shell or command session, with its command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ShellDocument<'a> {
    /// No document: the account's `SSM-SessionManagerRunShell` preferences apply.
    Shell,
    /// [`INTERACTIVE_COMMAND_DOCUMENT`] running this command line (`sh -c` on the agent).
    Interactive(&'a str),
    /// [`NON_INTERACTIVE_COMMAND_DOCUMENT`] running this command line, stdout and stderr apart.
    NonInteractive(&'a str),
}

/// A session that StartSession or ResumeSession handed out.
#[derive(Debug, Clone)]
pub(crate) struct SessionGrant {
    /// The session id (needed to resume and terminate).
    pub session_id: String,
    /// The websocket URL, used as given (its query names the session: never logged whole).
    pub stream_url: Redacted<String>,
    /// The bearer token for the websocket's open frame (never logged).
    pub token: Redacted<String>,
}

/// What SSM knows of an instance's agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AgentStatus {
    /// `Online`, `ConnectionLost` or `Inactive`.
    pub ping_status: String,
    /// The agent's version.
    pub agent_version: Option<String>,
    /// Unix seconds of the agent's last check-in.
    pub last_ping: Option<i64>,
}

/// Why a session could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError {
    /// SSM cannot reach the instance's agent.
    #[error("{id}: the SSM agent is not connected ({message})")]
    TargetNotConnected {
        /// Instance id.
        id: String,
        /// The service's text.
        message: String,
    },
    /// Any other failure.
    #[error(transparent)]
    Api(#[from] AwsError),
}

impl Aws {
    /// Starts an `AWS-StartSSHSession` session to `port` on `instance_id`.
    pub(crate) async fn start_ssh_session(&self, instance_id: &str, port: u16) -> Result<SessionGrant, StartError> {
        let request = self
            .ssm()
            .start_session()
            .target(instance_id)
            .document_name(SSH_DOCUMENT)
            .parameters("portNumber", vec![port.to_string()])
            .reason("ec2-broker ssh");
        self.start(instance_id, request).await
    }

    /// Starts a shell (no document) or a command session on `instance_id`.
    pub(crate) async fn start_shell_session(
        &self,
        instance_id: &str,
        document: ShellDocument<'_>,
    ) -> Result<SessionGrant, StartError> {
        let request = self.ssm().start_session().target(instance_id).reason("ec2-broker shell");
        let request = match document {
            ShellDocument::Shell => request,
            ShellDocument::Interactive(command) => {
                request.document_name(INTERACTIVE_COMMAND_DOCUMENT).parameters("command", vec![command.to_string()])
            }
            // Separate streams: stdout as Output, stderr as StdErr, then ExitCode (§10.5).
            ShellDocument::NonInteractive(command) => request
                .document_name(NON_INTERACTIVE_COMMAND_DOCUMENT)
                .parameters("command", vec![command.to_string()])
                .parameters("separateOutputStream", vec!["true".to_string()]),
        };
        self.start(instance_id, request).await
    }

    async fn start(
        &self,
        instance_id: &str,
        request: aws_sdk_ssm::operation::start_session::builders::StartSessionFluentBuilder,
    ) -> Result<SessionGrant, StartError> {
        let out = request.send().await.map_err(|err| match AwsError::from_sdk(SERVICE, "StartSession", err) {
            AwsError::Service { code, message, .. } if code == "TargetNotConnected" => {
                StartError::TargetNotConnected { id: instance_id.to_string(), message }
            }
            other => StartError::Api(other),
        })?;
        let grant = SessionGrant {
            session_id: clean(&out.session_id.unwrap_or_default(), 200),
            stream_url: Redacted::new(out.stream_url.unwrap_or_default()),
            token: secret(out.token_value.unwrap_or_default()),
        };
        if grant.session_id.is_empty() || grant.stream_url.is_empty() || grant.token.is_empty() {
            return Err(StartError::Api(AwsError::Transport {
                service: SERVICE,
                operation: "StartSession",
                detail: "the answer lacks SessionId, StreamUrl or TokenValue".into(),
            }));
        }
        tracing::info!(session = %grant.session_id, "SSM session started");
        self.open_sessions.opened(&grant.session_id);
        Ok(grant)
    }

    /// A fresh token for a live session; `None` when the service says the session is over
    /// (no token, or `DoesNotExistException`).
    pub(crate) async fn resume_session(&self, session_id: &str) -> Result<Option<SessionGrant>, AwsError> {
        let out = match self.ssm().resume_session().session_id(session_id).send().await {
            Ok(out) => out,
            Err(err) => {
                return match AwsError::from_sdk(SERVICE, "ResumeSession", err) {
                    e if e.code() == Some("DoesNotExistException") => Ok(None),
                    e => Err(e),
                };
            }
        };
        let token = secret(out.token_value.unwrap_or_default());
        let stream_url = Redacted::new(out.stream_url.unwrap_or_default());
        if token.is_empty() || stream_url.is_empty() {
            return Ok(None);
        }
        Ok(Some(SessionGrant { session_id: session_id.to_string(), stream_url, token }))
    }

    /// Ends a session.
    pub(crate) async fn terminate_session(&self, session_id: &str) -> Result<(), AwsError> {
        self.open_sessions.ended(session_id);
        self.ssm()
            .terminate_session()
            .session_id(session_id)
            .send()
            .await
            .map_err(|err| AwsError::from_sdk(SERVICE, "TerminateSession", err))?;
        tracing::debug!(session = %session_id, "SSM session terminated");
        Ok(())
    }

    /// The agent's status, or `None` when SSM does not know the instance (no agent, no instance
    /// profile, or another account or Region).
    pub(crate) async fn agent_status(&self, instance_id: &str) -> Result<Option<AgentStatus>, AwsError> {
        let filter =
            InstanceInformationStringFilter::builder().key("InstanceIds").values(instance_id).build().map_err(|e| {
                AwsError::Transport {
                    service: SERVICE,
                    operation: "DescribeInstanceInformation",
                    detail: e.to_string(),
                }
            })?;
        let out = self
            .ssm()
            .describe_instance_information()
            .filters(filter)
            // 5..50 is the valid range (aws-apis.md §7.8).
            .max_results(5)
            .send()
            .await
            .map_err(|err| AwsError::from_sdk(SERVICE, "DescribeInstanceInformation", err))?;
        Ok(out.instance_information_list().iter().find(|i| i.instance_id() == Some(instance_id)).map(|i| AgentStatus {
            ping_status: i.ping_status().map(|s| clean(s.as_str(), 100)).unwrap_or_default(),
            agent_version: i.agent_version().map(|v| clean(v, 100)),
            last_ping: i.last_ping_date_time().map(|t| t.secs()),
        }))
    }
}

/// A `TokenValue`, registered so that no log line or message can show it.
fn secret(token: String) -> Redacted<String> {
    redact::register(&token);
    Redacted::new(token)
}
