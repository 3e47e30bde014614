//! What the console shows before anyone is logged in: a serial getty on `ttyS0` (spec §5.1: a
//! shell over the serial console needs an OS user with a password). It prints the banner and
//! the login prompt, reads the user name with echo and the password without, checks them
//! against the inventory (`os_users`, `serial_password`), and runs a login shell; when the shell
//! exits it starts over, as a respawned getty does. Text uses `\r\n` line ends.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::mpsc::UnboundedReceiver;

use super::line::LineEditor;
use super::shell::{self, ShellEnd, Sink};
use crate::state::State;

/// The password prompt.
pub const PASSWORD_PROMPT: &str = "Password: ";
/// Printed after a wrong user name or password, before the login prompt again.
pub const LOGIN_INCORRECT: &str = "\r\nLogin incorrect\r\n";

/// The banner (`/etc/issue` as agetty prints it on a serial line), shown when the console
/// starts and after every logout; the login prompt follows it.
pub const BANNER: &str = "\r\n\r\nAmazon Linux 2023 (lab)\r\nKernel 6.1 on an x86_64 (ttyS0)\r\n\r\n";

/// The login prompt: the instance's `Name` tag, else its id, then ` login: `.
pub fn login_prompt(host: &str) -> String {
    format!("{host} login: ")
}

/// What the SSH side hands the console.
#[derive(Debug)]
pub(super) enum Input {
    /// Bytes the client typed.
    Data(Vec<u8>),
    /// A `window-change` (columns, rows).
    Resize(u16, u16),
}

/// One console, for the connection `conn` that holds `instance`'s session.
pub(super) struct Getty {
    pub(super) state: Arc<State>,
    pub(super) instance: String,
    pub(super) conn: usize,
    /// Columns and rows (from `pty-req`, then `window-change`).
    pub(super) size: (u16, u16),
    pub(super) input: UnboundedReceiver<Input>,
    pub(super) sink: Sink,
}

/// Where the getty is.
enum Stage {
    User,
    Password(String),
}

impl Getty {
    /// Runs the console until the client goes.
    pub(super) async fn run(mut self) {
        let host = self.state.inventory.get(&self.instance).map_or(self.instance.clone(), |i| match &i.name {
            Some(name) => name.clone(),
            None => i.id.clone(),
        });
        let mut editor = LineEditor::default();
        let mut typed = VecDeque::new();
        let mut stage = Stage::User;
        if !self.send(format!("{BANNER}{}", login_prompt(&host))).await {
            return;
        }
        loop {
            let (echo, line) = editor.feed(&mut typed, matches!(stage, Stage::User));
            if !echo.is_empty() && !self.send(echo).await {
                return;
            }
            let Some(line) = line else {
                match self.input.recv().await {
                    None => return,
                    Some(Input::Data(data)) => typed.extend(data),
                    Some(Input::Resize(cols, rows)) => self.size = (cols, rows),
                }
                continue;
            };
            let (reply, next) = match std::mem::replace(&mut stage, Stage::User) {
                Stage::User if line.is_empty() => (login_prompt(&host), Stage::User),
                Stage::User => (PASSWORD_PROMPT.to_string(), Stage::Password(line)),
                Stage::Password(user) if self.accepts(&user, &line) => {
                    editor.finish(&mut typed);
                    match self.shell(&user, std::mem::take(&mut typed)).await {
                        ShellEnd::ClientGone => return,
                        ShellEnd::Exited => (format!("{BANNER}{}", login_prompt(&host)), Stage::User),
                    }
                }
                Stage::Password(user) => {
                    tracing::debug!(instance = %self.instance, user, "serial console: login incorrect");
                    (format!("{LOGIN_INCORRECT}{}", login_prompt(&host)), Stage::User)
                }
            };
            stage = next;
            if !self.send(reply).await {
                return;
            }
        }
    }

    /// The user exists on the instance and the password is the instance's serial password.
    fn accepts(&self, user: &str, password: &str) -> bool {
        self.state
            .inventory
            .get(&self.instance)
            .is_some_and(|i| i.os_users.iter().any(|u| u == user) && i.serial_password.as_deref() == Some(password))
    }

    async fn shell(&mut self, user: &str, typed: VecDeque<u8>) -> ShellEnd {
        self.state.serial.update(self.conn, |c| c.logged_in = Some(user.to_string()));
        tracing::debug!(instance = %self.instance, user, "serial console: logged in");
        match shell::run(user, &mut self.size, typed, &mut self.input, &self.sink).await {
            Ok(end) => end,
            Err(err) => {
                tracing::warn!(instance = %self.instance, user, %err, "serial console: the login shell failed");
                let _ = self.send(format!("\r\nec2-lab: cannot start a login shell for {user}: {err}\r\n")).await;
                ShellEnd::Exited
            }
        }
    }

    /// Sends text to the client; false when the connection is gone.
    async fn send(&self, text: impl Into<Vec<u8>>) -> bool {
        self.sink.handle.data(self.sink.channel, text.into()).await.is_ok()
    }
}
