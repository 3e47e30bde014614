//! EC2 Instance Connect: pushing a short-lived public key (`../shared/spec/aws-apis.md` §2.1).

use aws_sdk_ec2instanceconnect::operation::send_ssh_public_key::SendSSHPublicKeyError;

use super::{Aws, AwsError, clean};
use crate::target::instance::Instance;

const SERVICE: &str = "EC2 Instance Connect";

/// Why a key push failed, in terms a user can act on.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PushError {
    /// The caller may not push keys to this instance or user.
    #[error(
        "not allowed to push a key to {id} for user {user}: the IAM identity needs ec2-instance-connect:SendSSHPublicKey on this instance (the ec2:osuser condition may limit users); or use --no-push if your own key works ({message})"
    )]
    Denied {
        /// Instance id.
        id: String,
        /// OS user.
        user: String,
        /// The service's text.
        message: String,
    },
    /// The instance is not in a state that accepts keys.
    #[error("{id} does not accept keys in its current state: it must be running ({message})")]
    State {
        /// Instance id.
        id: String,
        /// The service's text.
        message: String,
    },
    /// The service says the instance is temporarily unavailable.
    #[error("EC2 Instance Connect cannot reach {id} right now: wait a few minutes and retry ({message})")]
    Unavailable {
        /// Instance id.
        id: String,
        /// The service's text.
        message: String,
    },
    /// The request itself was refused (bad OS user name, key too long ...).
    #[error("EC2 Instance Connect refused the request for user {user:?} on {id}: {message}")]
    InvalidArgs {
        /// Instance id.
        id: String,
        /// OS user.
        user: String,
        /// The service's text.
        message: String,
    },
    /// Any other failure.
    #[error(transparent)]
    Api(#[from] AwsError),
}

impl Aws {
    /// Pushes `public_key` for `os_user` on `instance`: valid for 60 s on the instance.
    pub(crate) async fn push_key(&self, instance: &Instance, os_user: &str, public_key: &str) -> Result<(), PushError> {
        let mut req = self
            .instance_connect()
            .send_ssh_public_key()
            .instance_id(&instance.id)
            .instance_os_user(os_user)
            .ssh_public_key(public_key);
        if let Some(az) = &instance.availability_zone {
            req = req.availability_zone(az);
        }
        let out = match req.send().await {
            Ok(out) => out,
            Err(err) => {
                let id = instance.id.clone();
                let user = os_user.to_string();
                let message = || {
                    clean(
                        err.as_service_error()
                            .and_then(|e| aws_sdk_ec2instanceconnect::error::ProvideErrorMetadata::message(e))
                            .unwrap_or(""),
                        super::MAX_MESSAGE_CHARS,
                    )
                };
                // The model's denial is AuthException; the generic AccessDeniedException is read the same way.
                let code =
                    err.as_service_error().and_then(aws_sdk_ec2instanceconnect::error::ProvideErrorMetadata::code);
                return Err(match err.as_service_error() {
                    Some(SendSSHPublicKeyError::AuthException(_)) => PushError::Denied { id, user, message: message() },
                    _ if code.map(super::kind_of_code) == Some(super::ErrorKind::Denied) => {
                        PushError::Denied { id, user, message: message() }
                    }
                    Some(SendSSHPublicKeyError::Ec2InstanceStateInvalidException(_)) => {
                        PushError::State { id, message: message() }
                    }
                    Some(SendSSHPublicKeyError::Ec2InstanceUnavailableException(_)) => {
                        PushError::Unavailable { id, message: message() }
                    }
                    Some(SendSSHPublicKeyError::InvalidArgsException(_)) => {
                        PushError::InvalidArgs { id, user, message: message() }
                    }
                    _ => PushError::Api(AwsError::from_sdk(SERVICE, "SendSSHPublicKey", err)),
                });
            }
        };
        tracing::info!(instance = %instance.id, user = os_user, request_id = out.request_id().unwrap_or("-"), "key pushed");
        Ok(())
    }
}
