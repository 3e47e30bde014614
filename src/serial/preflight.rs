//! Before pushing a key: is the serial console possible for this instance at all? Each failure
//! says what to do. The account setting and the instance type are looked up together; when the
//! caller may not read them (IAM), the push itself will tell, so that is only logged.

use crate::aws::{Aws, AwsError};
use crate::target::instance::Instance;

use super::capable;

/// Why the serial console cannot work, found before any key was pushed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum PreflightError {
    /// The account has it turned off in this Region.
    #[error(
        "serial console access is disabled for this account in {region}{managed}: enable it with `aws ec2 enable-serial-console-access --region {region}` (needs ec2:EnableSerialConsoleAccess)"
    )]
    AccessDisabled {
        /// Region.
        region: String,
        /// ", by a declarative policy" when an organisation policy decides.
        managed: String,
    },
    /// The type has no serial console.
    #[error("{label} cannot use the serial console: {reason}")]
    Type {
        /// Instance id and Name.
        label: String,
        /// Why.
        reason: String,
    },
}

/// Checks the account setting and the instance type (the instance's state was checked when it
/// was resolved: only running instances are candidates).
pub(crate) async fn check(aws: &Aws, instance: &Instance, label: &str) -> Result<(), PreflightError> {
    let type_info = async {
        match &instance.instance_type {
            Some(t) => aws.instance_type_info(t).await.map(|info| info.map(|i| (t.clone(), i))),
            None => Ok(None),
        }
    };
    let (access, type_info) = tokio::join!(aws.serial_access_status(), type_info);
    match access {
        Ok(s) if !s.enabled => {
            let managed = match s.managed_by.as_deref() {
                Some("declarative-policy") => ", by a declarative policy of your organisation".to_string(),
                _ => String::new(),
            };
            return Err(PreflightError::AccessDisabled { region: aws.region.clone(), managed });
        }
        Ok(_) => {}
        Err(e) => skipped("whether serial console access is enabled", &e),
    }
    match type_info {
        Ok(Some((_, info))) => {
            if let Some(reason) = capable::unsupported_reason(&info) {
                return Err(PreflightError::Type { label: label.to_string(), reason });
            }
        }
        Ok(None) => tracing::info!("instance type unknown to DescribeInstanceTypes: the push will tell"),
        Err(e) => skipped("the instance type", &e),
    }
    Ok(())
}

fn skipped(what: &str, e: &AwsError) {
    tracing::warn!("could not check {what} ({e}); trying anyway");
}
