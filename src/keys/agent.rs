//! Handing the private key to ssh through the running ssh-agent, with a lifetime constraint,
//! so it never touches the disk.

use crate::keys::{EphemeralKey, KEY_VALIDITY_SECS};

/// Why the agent did not take the key.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AgentError {
    /// `SSH_AUTH_SOCK` is unset or the agent does not answer.
    #[error("cannot reach ssh-agent ({0}): start one (eval $(ssh-agent)) or use --key-delivery file")]
    Connect(String),
    /// The agent refused the key.
    #[error("ssh-agent refused the key: {0}")]
    Add(String),
}

/// Adds `key` to the agent at `SSH_AUTH_SOCK` for as long as a pushed key is valid.
pub(crate) async fn add(key: &EphemeralKey) -> Result<(), AgentError> {
    use russh::keys::agent::Constraint;
    use russh::keys::agent::client::AgentClient;

    let mut agent = AgentClient::connect_env().await.map_err(|e| AgentError::Connect(e.to_string()))?;
    agent
        .add_identity(key.private_key(), &[Constraint::KeyLifetime { seconds: KEY_VALIDITY_SECS }])
        .await
        .map_err(|e| AgentError::Add(e.to_string()))?;
    tracing::debug!(fingerprint = %key.fingerprint(), lifetime_s = KEY_VALIDITY_SECS, "key added to ssh-agent");
    Ok(())
}

/// Adds a long-lived key (`key new --agent`) to the agent at `SSH_AUTH_SOCK` without a
/// lifetime, as `ssh-add` does.
pub(crate) async fn add_lasting(key: &russh::keys::PrivateKey) -> Result<(), AgentError> {
    use russh::keys::agent::client::AgentClient;

    let mut agent = AgentClient::connect_env().await.map_err(|e| AgentError::Connect(e.to_string()))?;
    agent.add_identity(key, &[]).await.map_err(|e| AgentError::Add(e.to_string()))
}
