//! What a shell-plugin session does with client messages once the handshake is over
//! (`InputStreamMessageHandler`, shell_unix.go).

use super::Agent;
use crate::ssm::frame::{Message, payload_type};
use crate::ssm::shell::ShellKind;
use crate::state::lock;

impl Agent {
    /// One in-order client message of a shell-plugin session (`InputStreamMessageHandler`).
    pub(super) fn process_shell(&mut self, msg: &Message) {
        let Some(process) = self.process.as_ref() else {
            return;
        };
        let non_interactive = self.config.shell.as_ref().is_some_and(|s| s.kind == ShellKind::NonInteractive);
        match msg.payload_type {
            payload_type::OUTPUT => {
                let data = match lock(&self.sender.cipher).as_ref() {
                    Some(cipher) => match cipher.decrypt(&msg.payload) {
                        Ok(plain) => plain,
                        // The agent logs "Error decrypting stream data message" and drops it.
                        Err(_) => return,
                    },
                    None => msg.payload.clone(),
                };
                match non_interactive {
                    true => process.signal_from(&data),
                    false => process.write(data),
                }
            }
            payload_type::SIZE if !non_interactive => {
                let size: serde_json::Value = serde_json::from_slice(&msg.payload).unwrap_or_default();
                let dim = |k: &str| {
                    size.get(k).and_then(serde_json::Value::as_u64).map(|v| v.min(u64::from(u16::MAX)) as u16)
                };
                if let (Some(cols), Some(rows)) = (dim("cols"), dim("rows")) {
                    let _ = process.resize(cols, rows);
                }
            }
            _ => {} // Flags and the rest: the shell plugin ignores them.
        }
    }
}
