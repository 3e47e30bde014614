//! The account's Session Manager preferences: `ssm:GetDocument` of `SSM-SessionManagerRunShell`
//! (`keys-and-shell.md` §5), read for what a shell session will be: KMS-encrypted or not, and as
//! which OS user (Run As). The reading is pure and table-tested; a denied or missing document is
//! the caller's "unknown", not a failure.

use serde::Deserialize;

use super::{Aws, AwsError, clean};

const SERVICE: &str = "SSM";
/// The document StartSession without `DocumentName` uses (§5).
pub(crate) const SHELL_PREFERENCES_DOCUMENT: &str = "SSM-SessionManagerRunShell";
/// The user Session Manager runs sessions as when Run As is off (created by the agent).
pub(crate) const DEFAULT_RUN_AS_USER: &str = "ssm-user";

/// What the preferences say about a shell session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ShellPreferences {
    /// `kmsKeyId`: sessions are KMS-encrypted with this key (empty: not encrypted).
    pub kms_key_id: Option<String>,
    /// `runAsEnabled`.
    pub run_as_enabled: bool,
    /// `runAsDefaultUser`.
    pub run_as_default_user: Option<String>,
}

impl ShellPreferences {
    /// Reads the document's `Content` (JSON; `inputs` per the session document schema).
    pub(crate) fn parse(content: &str) -> Result<ShellPreferences, String> {
        #[derive(Deserialize)]
        struct Document {
            #[serde(default)]
            inputs: Inputs,
        }
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "camelCase", default)]
        struct Inputs {
            kms_key_id: Option<String>,
            run_as_enabled: Option<serde_json::Value>,
            run_as_default_user: Option<String>,
        }
        let doc: Document =
            serde_json::from_str(content).map_err(|e| format!("the document is not the JSON expected: {e}"))?;
        let inputs = doc.inputs;
        // The console writes booleans; documents written by hand sometimes hold "true".
        let run_as_enabled = match inputs.run_as_enabled {
            Some(serde_json::Value::Bool(b)) => b,
            Some(serde_json::Value::String(s)) => s.eq_ignore_ascii_case("true"),
            _ => false,
        };
        let non_empty = |s: Option<String>| s.map(|s| clean(&s, 2048)).filter(|s| !s.is_empty());
        Ok(ShellPreferences {
            kms_key_id: non_empty(inputs.kms_key_id),
            run_as_enabled,
            run_as_default_user: non_empty(inputs.run_as_default_user),
        })
    }
}

/// Why the preferences are unknown.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PreferencesError {
    /// GetDocument failed (denied, missing: the account never saved preferences ...).
    #[error(transparent)]
    Api(#[from] AwsError),
    /// The document does not read as session preferences.
    #[error("{SHELL_PREFERENCES_DOCUMENT}: {0}")]
    Unreadable(String),
}

impl Aws {
    /// The account's shell preferences in this Region.
    pub(crate) async fn shell_preferences(&self) -> Result<ShellPreferences, PreferencesError> {
        let out = self
            .ssm()
            .get_document()
            .name(SHELL_PREFERENCES_DOCUMENT)
            .send()
            .await
            .map_err(|err| AwsError::from_sdk(SERVICE, "GetDocument", err))?;
        ShellPreferences::parse(out.content().unwrap_or_default()).map_err(PreferencesError::Unreadable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preferences_from_the_documents_content() {
        let content = r#"{"schemaVersion":"1.0","description":"Document to hold regional settings for Session Manager",
            "sessionType":"Standard_Stream","inputs":{"s3BucketName":"","kmsKeyId":"alias/ssm-sessions",
            "runAsEnabled":true,"runAsDefaultUser":"ec2-user","idleSessionTimeout":"20",
            "shellProfile":{"linux":"exec bash -l","windows":""}}}"#;
        assert_eq!(
            ShellPreferences::parse(content).unwrap(),
            ShellPreferences {
                kms_key_id: Some("alias/ssm-sessions".into()),
                run_as_enabled: true,
                run_as_default_user: Some("ec2-user".into()),
            }
        );
        let off = r#"{"schemaVersion":"1.0","sessionType":"Standard_Stream","inputs":{"kmsKeyId":"","runAsEnabled":false,"runAsDefaultUser":""}}"#;
        assert_eq!(ShellPreferences::parse(off).unwrap(), ShellPreferences::default());
        let text_bool = r#"{"inputs":{"runAsEnabled":"true","runAsDefaultUser":"admin"}}"#;
        assert!(ShellPreferences::parse(text_bool).unwrap().run_as_enabled);
        assert_eq!(ShellPreferences::parse("{}").unwrap(), ShellPreferences::default());
        assert!(ShellPreferences::parse("not json").is_err());
    }
}
