//! Which OS user a Session Manager shell or command runs as, from the account's preferences
//! (`keys-and-shell.md` §5): pure, table-tested.
//!
//! Session Manager does not let the client choose: with Run As off every session is `ssm-user`;
//! with it on, the IAM principal's `SSMSessionRunAs` tag names the user, else the preferences'
//! `runAsDefaultUser`. The broker cannot read the principal's tags for every kind of identity, so
//! a tag is mentioned, not predicted.

use crate::aws::session_preferences::{DEFAULT_RUN_AS_USER, ShellPreferences};

/// Who the session will be, as far as the preferences tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RunAs {
    /// Run As is off: `ssm-user`.
    Default,
    /// Run As is on: this user, unless the principal's `SSMSessionRunAs` tag names another.
    Configured(String),
    /// Run As is on without a default user: only a `SSMSessionRunAs` tag can name one (the agent
    /// refuses the session otherwise).
    TagOnly,
    /// The preferences could not be read (why).
    Unknown(String),
}

impl RunAs {
    /// From the preferences, or why they are unknown.
    pub(crate) fn from_preferences(prefs: Result<&ShellPreferences, &str>) -> RunAs {
        match prefs {
            Err(why) => RunAs::Unknown(why.to_string()),
            Ok(p) if !p.run_as_enabled => RunAs::Default,
            Ok(p) => match &p.run_as_default_user {
                Some(user) => RunAs::Configured(user.clone()),
                None => RunAs::TagOnly,
            },
        }
    }

    /// One phrase for the user: "as ssm-user", "as ec2-user (unless ...)".
    pub(crate) fn describe(&self) -> String {
        match self {
            RunAs::Default => format!("as {DEFAULT_RUN_AS_USER} (Run As is off in the Session Manager preferences)"),
            RunAs::Configured(user) => {
                format!(
                    "as {user} (the preferences' Run As user, unless your IAM principal's SSMSessionRunAs tag names another)"
                )
            }
            RunAs::TagOnly => {
                "as the user your IAM principal's SSMSessionRunAs tag names (Run As is on without a default user)"
                    .into()
            }
            RunAs::Unknown(why) => format!("as an OS user the broker cannot tell ({why})"),
        }
    }

    /// Whether `--user requested` can hold: `Err` explains how Session Manager picks the user.
    pub(crate) fn check(&self, requested: &str) -> Result<(), String> {
        let fits = match self {
            RunAs::Default => requested == DEFAULT_RUN_AS_USER,
            RunAs::Configured(user) => requested == user,
            // A tag may name it: the agent refuses the session if the user does not exist.
            RunAs::TagOnly | RunAs::Unknown(_) => true,
        };
        if fits {
            return Ok(());
        }
        Err(format!(
            "Session Manager does not let a client choose the OS user: a session runs as the IAM principal's \
             SSMSessionRunAs tag, else the Run As default user of the account's Session Manager preferences \
             (SSM-SessionManagerRunShell) when Run As is on, else {DEFAULT_RUN_AS_USER}; here the session would run {}. \
             To log in as {requested}, use ssh {requested}@HOST with --route ssm, or change the tag or the preferences",
            self.describe()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefs(enabled: bool, user: Option<&str>) -> ShellPreferences {
        ShellPreferences { kms_key_id: None, run_as_enabled: enabled, run_as_default_user: user.map(str::to_string) }
    }

    #[test]
    fn who_the_session_is() {
        assert_eq!(RunAs::from_preferences(Ok(&prefs(false, Some("ec2-user")))), RunAs::Default);
        assert_eq!(RunAs::from_preferences(Ok(&prefs(true, Some("ec2-user")))), RunAs::Configured("ec2-user".into()));
        assert_eq!(RunAs::from_preferences(Ok(&prefs(true, None))), RunAs::TagOnly);
        assert_eq!(
            RunAs::from_preferences(Err("AccessDeniedException")),
            RunAs::Unknown("AccessDeniedException".into())
        );
        assert!(RunAs::Configured("ec2-user".into()).describe().contains("SSMSessionRunAs"));
    }

    #[test]
    fn user_is_accepted_only_where_the_preferences_allow_it() {
        let table = [
            (RunAs::Default, "ssm-user", true),
            (RunAs::Default, "ec2-user", false),
            (RunAs::Configured("ec2-user".into()), "ec2-user", true),
            (RunAs::Configured("ec2-user".into()), "root", false),
            (RunAs::TagOnly, "alice", true),
            (RunAs::Unknown("denied".into()), "alice", true),
        ];
        for (run_as, user, ok) in table {
            assert_eq!(run_as.check(user).is_ok(), ok, "{run_as:?} {user}");
        }
        let why = RunAs::Default.check("ec2-user").unwrap_err();
        assert!(why.contains("as ssm-user") && why.contains("ssh ec2-user@HOST with --route ssm"), "{why}");
    }
}
