//! STS GetCallerIdentity: whose credentials the broker is using (`doctor`).

use super::{Aws, AwsError};

impl Aws {
    /// The ARN of the identity the loaded credentials belong to.
    pub(crate) async fn caller_identity(&self) -> Result<String, AwsError> {
        let out = self
            .sts()
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("STS", "GetCallerIdentity", e))?;
        Ok(out.arn().unwrap_or("(no ARN)").to_string())
    }
}
