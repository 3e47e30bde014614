//! What kind of session the client started, and whether the agent's `SessionType` action
//! matches it (`../shared/spec/ssm-data-channel.md` §3, §8, §10; `keys-and-shell.md` §5).

use serde_json::Value;

/// The session the client asked StartSession for: it decides the answer to the agent's
/// `SessionType` action and what the session carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum SessionKind {
    /// `AWS-StartSSHSession`: a byte stream to the instance's port, `Port` without `type`.
    #[default]
    Port,
    /// No document: the account's `SSM-SessionManagerRunShell`, a `Standard_Stream` shell on a pty.
    Shell,
    /// `AWS-StartInteractiveCommand`: one command on a pty.
    InteractiveCommands,
    /// `AWS-StartNonInteractiveCommand`: one command without a pty or stdin; stdout as `Output`,
    /// stderr as `StdErr`, then `ExitCode`.
    NonInteractiveCommands,
}

impl SessionKind {
    /// The `SessionType` the agent names for this kind (§3).
    pub(crate) fn wire_name(self) -> &'static str {
        match self {
            SessionKind::Port => "Port",
            SessionKind::Shell => "Standard_Stream",
            SessionKind::InteractiveCommands => "InteractiveCommands",
            SessionKind::NonInteractiveCommands => "NonInteractiveCommands",
        }
    }

    /// Whether the remote side reads what we send as `Output`. The agent gives a
    /// `NonInteractiveCommands` command no stdin (its `exec.Cmd` has none) and only maps the
    /// bytes 0x03 and 0x1C in our `Output` to SIGINT and SIGQUIT (agent `shell_unix.go`,
    /// `InputStreamMessageHandler`; `appconfig.ByteControlSignalsLinux`).
    pub(crate) fn reads_input(self) -> bool {
        !matches!(self, SessionKind::NonInteractiveCommands)
    }

    /// Whether the remote side runs on a pty (and so takes `Size` messages, §10.1).
    pub(crate) fn has_pty(self) -> bool {
        matches!(self, SessionKind::Shell | SessionKind::InteractiveCommands)
    }

    /// Whether the agent may skip the handshake: a `Standard_Stream` or `InteractiveCommands`
    /// session without KMS starts with `Output` (agent `sessionplugin.go`, `SkipHandshake`).
    pub(crate) fn handshake_optional(self) -> bool {
        self.has_pty()
    }

    /// Whether KMS encryption can apply: the agent never encrypts `Port` sessions (§3, §11).
    pub(crate) fn may_encrypt(self) -> bool {
        !matches!(self, SessionKind::Port)
    }

    /// Checks the `SessionType` action's parameters: `Err` says why the session cannot work.
    pub(crate) fn check(self, params: &Value) -> Result<(), String> {
        let session_type = params.get("SessionType").and_then(Value::as_str).unwrap_or("");
        let port_type = params.get("Properties").and_then(|p| p.get("type")).and_then(Value::as_str);
        match (self, session_type, port_type) {
            (SessionKind::Port, "Port", None) => Ok(()),
            (SessionKind::Port, "Port", Some(kind)) => Err(format!(
                "the session document asks for {kind} port forwarding; ec2-broker needs AWS-StartSSHSession"
            )),
            (SessionKind::Port, other, _) => Err(format!(
                "the session document starts a {other:?} session; ec2-broker needs a Port session (AWS-StartSSHSession)"
            )),
            (kind, other, _) if other == kind.wire_name() => Ok(()),
            (kind, other, _) => Err(format!(
                "the agent starts a {other:?} session where ec2-broker asked for {:?}: the session document \
                 (or the account's Session Manager preferences) does not match the command; check the \
                 SSM-SessionManagerRunShell document's sessionType",
                kind.wire_name()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(json: &str) -> Value {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn each_kind_accepts_its_own_session_type_only() {
        let cases = [
            (SessionKind::Port, r#"{"SessionType":"Port","Properties":{"portNumber":"22"}}"#, true),
            (SessionKind::Port, r#"{"SessionType":"Port","Properties":{"type":"LocalPortForwarding"}}"#, false),
            (SessionKind::Port, r#"{"SessionType":"Standard_Stream","Properties":null}"#, false),
            (SessionKind::Shell, r#"{"SessionType":"Standard_Stream","Properties":null}"#, true),
            (SessionKind::Shell, r#"{"SessionType":"Port","Properties":{"portNumber":"22"}}"#, false),
            (SessionKind::Shell, r#"{"SessionType":"InteractiveCommands"}"#, false),
            (SessionKind::InteractiveCommands, r#"{"SessionType":"InteractiveCommands"}"#, true),
            (SessionKind::InteractiveCommands, r#"{"SessionType":"NonInteractiveCommands"}"#, false),
            (SessionKind::NonInteractiveCommands, r#"{"SessionType":"NonInteractiveCommands"}"#, true),
            (SessionKind::NonInteractiveCommands, r#"{}"#, false),
        ];
        for (kind, json, ok) in cases {
            assert_eq!(kind.check(&params(json)).is_ok(), ok, "{kind:?} {json}");
        }
        let why = SessionKind::Shell.check(&params(r#"{"SessionType":"Port"}"#)).unwrap_err();
        assert!(why.contains("\"Port\"") && why.contains("\"Standard_Stream\""), "{why}");
    }

    #[test]
    fn what_each_kind_carries() {
        assert!(!SessionKind::NonInteractiveCommands.reads_input());
        assert!(SessionKind::Shell.reads_input() && SessionKind::InteractiveCommands.reads_input());
        assert!(SessionKind::Shell.has_pty() && !SessionKind::NonInteractiveCommands.has_pty());
        assert!(!SessionKind::Port.may_encrypt() && SessionKind::Shell.may_encrypt());
        assert!(!SessionKind::Port.handshake_optional() && !SessionKind::NonInteractiveCommands.handshake_optional());
    }
}
