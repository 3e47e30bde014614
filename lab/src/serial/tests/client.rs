//! The in-test SSH client of the serial endpoint, and a screen that waits for text.

use std::sync::{Arc, Mutex};

use russh::client::{self, Handle};
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::{Channel, ChannelMsg};

use super::DEADLINE;
use crate::Lab;
use crate::serial::PASSWORD_PROMPT;

/// The client side: accepts the host key only if it has the lab's published fingerprint.
pub(super) struct Client {
    pub(super) expected: String,
    pub(super) seen: Arc<Mutex<Option<String>>>,
}

impl client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(&mut self, key: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = key else {
            return Ok(false);
        };
        *self.seen.lock().unwrap() = Some(key.to_openssh().unwrap());
        Ok(key.fingerprint(HashAlg::Sha256).to_string() == self.expected)
    }
}

pub(super) async fn connect_with(lab: &Lab, expected: &str) -> Result<Handle<Client>, russh::Error> {
    let config = Arc::new(client::Config::default());
    let handler = Client { expected: expected.into(), seen: Arc::default() };
    tokio::time::timeout(DEADLINE, client::connect(config, lab.serial_addr(), handler)).await.expect("connect in time")
}

/// Connects and authenticates; true when the key was accepted.
pub(super) async fn login_ssh(lab: &Lab, user: &str, key: &PrivateKey) -> (Handle<Client>, bool) {
    let mut ssh = connect_with(lab, &lab.serial_fingerprint()).await.expect("an SSH connection");
    let key = PrivateKeyWithHashAlg::new(Arc::new(key.clone()), None);
    let ok = tokio::time::timeout(DEADLINE, ssh.authenticate_publickey(user, key))
        .await
        .expect("authentication in time")
        .is_ok_and(|r| r.success());
    (ssh, ok)
}

/// Opens the console: a session channel with a pty of 100x30 and a shell.
pub(super) async fn console(ssh: &Handle<Client>) -> Channel<client::Msg> {
    let channel = ssh.channel_open_session().await.expect("a session channel");
    channel.request_pty(true, "xterm-256color", 100, 30, 0, 0, &[]).await.unwrap();
    channel.request_shell(true).await.unwrap();
    channel
}

/// The console's output, read as it comes.
pub(super) struct Screen {
    pub(super) channel: Channel<client::Msg>,
    text: String,
    at: usize,
}

impl Screen {
    pub(super) fn new(channel: Channel<client::Msg>) -> Self {
        Screen { channel, text: String::new(), at: 0 }
    }

    /// Waits for `want` after what was already matched; returns the text in between.
    pub(super) async fn expect(&mut self, want: &str) -> String {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            if let Some(i) = self.text[self.at..].find(want) {
                let between = self.text[self.at..self.at + i].to_string();
                self.at += i + want.len();
                return between;
            }
            match tokio::time::timeout_at(deadline, self.channel.wait()).await {
                Ok(Some(ChannelMsg::Data { data })) => self.text.push_str(&String::from_utf8_lossy(&data)),
                Ok(Some(_)) => {}
                Ok(None) => panic!("the channel ended waiting for {want:?}; screen:\n{:?}", self.text),
                Err(_) => panic!("no {want:?} in time; screen:\n{:?}", self.text),
            }
        }
    }

    pub(super) async fn type_text(&self, text: &str) {
        self.channel.data_bytes(text.as_bytes().to_vec()).await.unwrap();
    }

    /// Answers the login prompt (already shown) and the password prompt.
    pub(super) async fn login(&mut self, user: &str, password: &str) {
        self.type_text(&format!("{user}\r")).await;
        self.expect(PASSWORD_PROMPT).await;
        self.type_text(&format!("{password}\r")).await;
    }
}
