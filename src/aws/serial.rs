//! The serial console's control plane (`../shared/spec/aws-apis.md` §2.1, §2.3, §5):
//! `GetSerialConsoleAccessStatus`, `DescribeInstanceTypes` and `SendSerialConsoleSSHPublicKey`.

use aws_sdk_ec2instanceconnect::operation::send_serial_console_ssh_public_key::SendSerialConsoleSSHPublicKeyError as E;

use super::ec2_query::{Params, shapes};
use super::{Aws, AwsError, clean};

/// Whether the account allows serial console access in this Region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AccessStatus {
    /// `serialConsoleAccessEnabled`.
    pub enabled: bool,
    /// `account` or `declarative-policy` (who decides).
    pub managed_by: Option<String>,
}

/// Why `SendSerialConsoleSSHPublicKey` failed, in terms a user can act on.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SerialPushError {
    /// Another serial session is open on the instance, or the last one is still being torn down.
    #[error("{id} already has a serial console session (or the last one is still closing, which takes 30 s)")]
    SessionLimit {
        /// Instance id.
        id: String,
    },
    /// The account has serial console access turned off in this Region.
    #[error(
        "serial console access is disabled for this account in {region}: enable it with `aws ec2 enable-serial-console-access --region {region}` (needs ec2:EnableSerialConsoleAccess), or ask whoever manages the account's declarative policies"
    )]
    AccessDisabled {
        /// Region.
        region: String,
    },
    /// The instance type has no serial console.
    #[error("{id} cannot use the serial console: {message} (only Nitro-based types and most bare-metal types can)")]
    TypeInvalid {
        /// Instance id.
        id: String,
        /// The service's text.
        message: String,
    },
    /// Not running.
    #[error("{id} is not running, and the serial console needs a running instance: start it first ({message})")]
    State {
        /// Instance id.
        id: String,
        /// The service's text.
        message: String,
    },
    /// The instance's firmware is too old.
    #[error("{id} does not support serial console sessions yet: reboot it to update its BIOS ({message})")]
    Unsupported {
        /// Instance id.
        id: String,
        /// The service's text.
        message: String,
    },
    /// The service could not start a session right now.
    #[error("AWS could not start a serial console session on {id} right now: try again in a minute ({message})")]
    Unavailable {
        /// Instance id.
        id: String,
        /// The service's text.
        message: String,
    },
    /// IAM does not allow it.
    #[error(
        "not allowed to open the serial console of {id}: the IAM identity needs ec2-instance-connect:SendSerialConsoleSSHPublicKey on this instance ({message})"
    )]
    Denied {
        /// Instance id.
        id: String,
        /// The service's text.
        message: String,
    },
    /// Any other failure.
    #[error(transparent)]
    Api(#[from] AwsError),
}

/// What `DescribeInstanceTypes` says about one type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TypeInfo {
    /// `t3.micro`.
    pub name: String,
    /// `nitro`, `xen`, or none (bare metal).
    pub hypervisor: Option<String>,
    /// Whether it is a bare-metal type.
    pub bare_metal: bool,
}

impl Aws {
    /// `GetSerialConsoleAccessStatus` for the Region.
    pub(crate) async fn serial_access_status(&self) -> Result<AccessStatus, AwsError> {
        let out: shapes::GetSerialConsoleAccessStatus =
            self.ec2().call(&Params::new("GetSerialConsoleAccessStatus")).await?;
        Ok(AccessStatus { enabled: out.serial_console_access_enabled.unwrap_or(false), managed_by: out.managed_by })
    }

    /// `DescribeInstanceTypes` for one type; `None` when the API does not know it.
    pub(crate) async fn instance_type_info(&self, name: &str) -> Result<Option<TypeInfo>, AwsError> {
        let params = Params::new("DescribeInstanceTypes").list("InstanceType", &[name]);
        let out: shapes::DescribeInstanceTypes = match self.ec2().call(&params).await {
            Ok(out) => out,
            Err(e) if e.code() == Some("InvalidInstanceType") => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(out.instance_type_set.item.into_iter().find(|t| t.instance_type.as_deref() == Some(name)).map(|t| {
            TypeInfo { name: name.to_string(), hypervisor: t.hypervisor, bare_metal: t.bare_metal.unwrap_or(false) }
        }))
    }

    /// Pushes `public_key` for the serial console (port 0): valid 60 s, and it opens the session.
    pub(crate) async fn push_serial_key(&self, id: &str, public_key: &str) -> Result<(), SerialPushError> {
        let req = self.instance_connect().send_serial_console_ssh_public_key().instance_id(id).serial_port(0);
        let out = match req.ssh_public_key(public_key).send().await {
            Ok(out) => out,
            Err(err) => {
                let message = || {
                    clean(
                        (err.as_service_error())
                            .and_then(|e| aws_sdk_ec2instanceconnect::error::ProvideErrorMetadata::message(e))
                            .unwrap_or(""),
                        super::MAX_MESSAGE_CHARS,
                    )
                };
                let id = id.to_string();
                return Err(match err.as_service_error() {
                    Some(E::SerialConsoleSessionLimitExceededException(_)) => SerialPushError::SessionLimit { id },
                    Some(E::SerialConsoleAccessDisabledException(_)) => {
                        SerialPushError::AccessDisabled { region: self.region.clone() }
                    }
                    Some(E::Ec2InstanceTypeInvalidException(_)) => {
                        SerialPushError::TypeInvalid { id, message: message() }
                    }
                    Some(E::Ec2InstanceStateInvalidException(_)) => SerialPushError::State { id, message: message() },
                    Some(E::SerialConsoleSessionUnsupportedException(_)) => {
                        SerialPushError::Unsupported { id, message: message() }
                    }
                    Some(E::SerialConsoleSessionUnavailableException(_) | E::Ec2InstanceUnavailableException(_)) => {
                        SerialPushError::Unavailable { id, message: message() }
                    }
                    Some(E::AuthException(_)) => SerialPushError::Denied { id, message: message() },
                    _ => SerialPushError::Api(AwsError::from_sdk(
                        "EC2 Instance Connect",
                        "SendSerialConsoleSSHPublicKey",
                        err,
                    )),
                });
            }
        };
        tracing::info!(instance = id, request_id = out.request_id().unwrap_or("-"), "serial console key pushed");
        Ok(())
    }
}
