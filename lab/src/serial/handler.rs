//! One SSH connection to the serial endpoint: publickey authentication as `<instance-id>.port0`
//! with the key of that instance's open session (spec §5.1), then one `session` channel whose
//! `shell` is the console (`getty`). `pty-req` sets the console's size and `window-change`
//! changes it; `exec`, `subsystem`, `x11-req`, `env`, agent and port forwarding are refused.

use std::sync::Arc;

use russh::keys::PublicKey;
use russh::server::{Auth, ChannelOpenHandle, Handler, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, ChannelOpenFailure, Disconnect, Pty};
use tokio::sync::mpsc::{self, UnboundedSender};

use super::SERIAL_PORT;
use super::getty::{Getty, Input};
use super::session::{Claim, ClaimCheck};
use super::shell::{DEFAULT_SIZE, Sink};
use crate::state::State;

/// The russh handler of one connection (`index` in the connection log).
pub(super) struct Conn {
    state: Arc<State>,
    index: usize,
    /// The instance whose console this connection reached (authenticated, not spurious).
    instance: Option<String>,
    /// Close right after authentication (`spurious_first_close`).
    spurious: bool,
    /// The one session channel.
    channel: Option<ChannelId>,
    /// Console size (columns, rows) until the shell starts.
    size: (u16, u16),
    /// The running console's input; dropping it ends the console (and kills its shell).
    getty: Option<UnboundedSender<Input>>,
}

impl Conn {
    /// A handler for connection `index` of the log.
    pub(super) fn new(state: Arc<State>, index: usize) -> Self {
        Conn { state, index, instance: None, spurious: false, channel: None, size: DEFAULT_SIZE, getty: None }
    }

    /// Checks a key for `user`; with `commit` (signature verified) a success takes the session.
    fn check(&mut self, user: &str, key: &PublicKey, commit: bool) -> Auth {
        let target = parse_user(user);
        self.state.serial.update(self.index, |c| {
            c.user = Some(user.to_string());
            if let Some((id, _)) = &target {
                c.instance = Some(id.to_string());
            }
        });
        let Some((instance, port)) = target else {
            tracing::debug!(user, "serial console: user is not <instance-id>.port<N>");
            return Auth::reject();
        };
        if port != SERIAL_PORT {
            tracing::debug!(user, "serial console: no such serial port");
            return Auth::reject();
        }
        let faults = self.state.serial_faults();
        let check = ClaimCheck {
            now_ms: self.state.now_millis(),
            key_age: faults.key_age,
            spurious_first_close: faults.spurious_first_close,
            commit,
        };
        match self.state.serial.claim(instance, key, self.index, check) {
            Ok(claim) => {
                if commit {
                    let spurious = claim == Claim::Spurious;
                    self.spurious = spurious;
                    self.instance = (!spurious).then(|| instance.to_string());
                    self.state.serial.update(self.index, |c| {
                        c.authenticated = true;
                        c.spurious_close = spurious;
                    });
                }
                Auth::Accept
            }
            Err(refusal) => {
                tracing::debug!(user, ?refusal, "serial console: key refused");
                Auth::reject()
            }
        }
    }
}

/// `<instance-id>.port<N>` → (instance id, N).
fn parse_user(user: &str) -> Option<(&str, u32)> {
    let (id, port) = user.rsplit_once(".port")?;
    let hex = id.strip_prefix("i-")?;
    let valid_id = !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit());
    let valid_port = !port.is_empty() && port.len() <= 9 && port.bytes().all(|b| b.is_ascii_digit());
    if !(valid_id && valid_port) {
        return None;
    }
    Some((id, port.parse().ok()?))
}

/// A terminal dimension from the wire: 1..=65535.
fn dimension(n: u32) -> Option<u16> {
    u16::try_from(n).ok().filter(|&n| n > 0)
}

impl Handler for Conn {
    type Error = russh::Error;

    async fn auth_publickey_offered(&mut self, user: &str, offer: PublicKeyOffer<'_>) -> Result<Auth, Self::Error> {
        Ok(self.check(user, offer.public_key, false))
    }

    async fn auth_publickey(&mut self, user: &str, key: VerifiedPublicKey<'_>) -> Result<Auth, Self::Error> {
        Ok(self.check(user, key.public_key, true))
    }

    async fn auth_none(&mut self, user: &str) -> Result<Auth, Self::Error> {
        let target = parse_user(user);
        self.state.serial.update(self.index, |c| {
            c.user = Some(user.to_string());
            if let Some((id, _)) = target {
                c.instance = Some(id.to_string());
            }
        });
        Ok(Auth::reject())
    }

    async fn auth_succeeded(&mut self, session: &mut Session) -> Result<(), Self::Error> {
        if self.spurious {
            tracing::debug!(conn = self.index, "serial console: spurious close after authentication");
            session.disconnect(Disconnect::ByApplication, "connection closed", "")?;
        }
        Ok(())
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.instance.is_none() || self.channel.is_some() {
            reply.reject(ChannelOpenFailure::AdministrativelyProhibited).await;
            return Ok(());
        }
        // Requests and data arrive through the handler's methods; the channel object is not read.
        self.channel = Some(channel.id());
        reply.accept().await;
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        term: &str,
        col_width: u32,
        row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if Some(channel) != self.channel {
            return session.channel_failure(channel);
        }
        if let (Some(cols), Some(rows)) = (dimension(col_width), dimension(row_height)) {
            self.size = (cols, rows);
        }
        tracing::debug!(term, cols = col_width, rows = row_height, "serial console: pty-req");
        session.channel_success(channel)
    }

    async fn shell_request(&mut self, channel: ChannelId, session: &mut Session) -> Result<(), Self::Error> {
        let Some(instance) = self.instance.clone().filter(|_| Some(channel) == self.channel && self.getty.is_none())
        else {
            return session.channel_failure(channel);
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let getty = Getty {
            state: self.state.clone(),
            instance,
            conn: self.index,
            size: self.size,
            input: rx,
            sink: Sink { handle: session.handle(), channel },
        };
        tokio::spawn(getty.run());
        self.getty = Some(tx);
        session.channel_success(channel)
    }

    async fn window_change_request(
        &mut self,
        channel: ChannelId,
        col_width: u32,
        row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let (Some(cols), Some(rows)) = (dimension(col_width), dimension(row_height)) {
            self.size = (cols, rows);
            if let Some(getty) = &self.getty {
                let _ = getty.send(Input::Resize(cols, rows));
            }
        }
        session.channel_success(channel)
    }

    async fn data(&mut self, channel: ChannelId, data: &[u8], _session: &mut Session) -> Result<(), Self::Error> {
        if let Some(getty) = self.getty.as_ref().filter(|_| Some(channel) == self.channel) {
            let _ = getty.send(Input::Data(data.to_vec()));
        }
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        tracing::debug!("serial console: exec refused");
        session.channel_failure(channel)
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        tracing::debug!(name, "serial console: subsystem refused");
        session.channel_failure(channel)
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single_connection: bool,
        _x11_auth_protocol: &str,
        _x11_auth_cookie: &str,
        _x11_screen_number: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        _variable_name: &str,
        _variable_value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn channel_eof(&mut self, channel: ChannelId, _session: &mut Session) -> Result<(), Self::Error> {
        // A console has no end of input: the shell keeps running until logout or disconnect.
        tracing::debug!(?channel, "serial console: EOF from the client");
        Ok(())
    }

    async fn channel_close(&mut self, channel: ChannelId, session: &mut Session) -> Result<(), Self::Error> {
        if Some(channel) == self.channel {
            // Ending the console kills its shell; the endpoint serves one channel, so the
            // connection (and with it the serial session) ends too.
            self.getty = None;
            session.disconnect(Disconnect::ByApplication, "serial console session closed", "")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names() {
        assert_eq!(parse_user("i-0123456789abcdef0.port0"), Some(("i-0123456789abcdef0", 0)));
        assert_eq!(parse_user("i-0abc.port1"), Some(("i-0abc", 1)));
        for bad in
            ["ec2-user", "i-0abc", "i-0abc.port", "i-.port0", "i-xyz.port0", "i-0abc.port-1", "i-0abc.port99999999999"]
        {
            assert_eq!(parse_user(bad), None, "{bad}");
        }
    }
}
