//! The account's Session Manager preferences in the inventory's Region (`[session_preferences]`,
//! the `SSM-SessionManagerRunShell` document, `keys-and-shell.md` §5) and its KMS keys
//! (`[[kms_key]]`, §6).

use serde::Deserialize;

/// `[session_preferences]`: the inputs of `SSM-SessionManagerRunShell`. Absent: the account never
/// saved preferences, so GetDocument does not know the document and shell sessions use the
/// defaults (no KMS, Run As off, 20 minutes idle).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionPreferences {
    /// `kmsKeyId`: encrypt shell and command sessions with this key (id, ARN, `alias/…`).
    #[serde(default)]
    pub kms_key_id: String,
    /// `runAsEnabled`: start sessions as `run_as_default_user` instead of `ssm-user`.
    #[serde(default)]
    pub run_as_enabled: bool,
    /// `runAsDefaultUser`: the OS user of Run As (it must exist: no fallback).
    #[serde(default)]
    pub run_as_default_user: String,
    /// `shellProfile.linux`: typed into the shell at start, then a newline.
    #[serde(default)]
    pub shell_profile_linux: String,
    /// `idleSessionTimeout` in minutes (1–60, default 20). Reported only.
    #[serde(default = "default_idle")]
    pub idle_session_timeout: u32,
    /// Lab knob for the agent setting `Kms.RequireKMSChallengeResponse`: refuse a client whose
    /// KMSEncryption result lacks `ChallengeAcknowledgement` (`ssm-data-channel.md` §11).
    #[serde(default)]
    pub require_kms_challenge: bool,
}

fn default_idle() -> u32 {
    20
}

/// One KMS key (`[[kms_key]]`): symmetric, `ENCRYPT_DECRYPT`, in the inventory's account and Region.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KmsKeySpec {
    /// The key id (a UUID, e.g. `1234abcd-12ab-34cd-56ef-1234567890ab`).
    pub id: String,
    /// Its aliases, each `alias/<name>`.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// `Enabled` (default), `Disabled` or `PendingDeletion`.
    #[serde(default = "default_key_state")]
    pub state: String,
}

fn default_key_state() -> String {
    "Enabled".into()
}

impl KmsKeySpec {
    /// `arn:aws:kms:<region>:<account>:key/<id>`.
    pub fn arn(&self, region: &str, account: &str) -> String {
        format!("arn:aws:kms:{region}:{account}:key/{}", self.id)
    }
}
