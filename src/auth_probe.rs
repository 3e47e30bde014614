//! Telling "the instance refused the pushed key" apart from other ways a session ends.
//!
//! The broker cannot read ssh's encrypted stream, but the pattern of a refused login is plain:
//! ssh gives up and exits (SIGHUP to us) a few seconds after connecting, while the instance
//! still holds the connection open and has sent only the handshake (a few KB). When a session
//! ends like that, one SSH login attempt with the same (still valid) key settles it: refused
//! means Instance Connect is not wired up on the instance, and we say so.

use std::sync::Arc;
use std::time::Duration;

use russh::client;
use russh::keys::PrivateKeyWithHashAlg;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::keys::EphemeralKey;
use crate::stdio::{End, PipeStats};

/// Sessions shorter than this may be failed logins.
pub const SUSPECT_DURATION: Duration = Duration::from_secs(10);
/// A failed login shows at most the handshake from the instance: 16 KiB leaves room for large host keys.
pub const SUSPECT_DOWN_BYTES: u64 = 16 * 1024;
/// The probe must finish within the broker's promise to exit within 1 s of ssh.
pub const PROBE_DEADLINE: Duration = Duration::from_millis(700);

/// Whether a session's end looks like ssh gave up on authentication.
pub fn looks_like_refused_login(stats: &PipeStats, duration: Duration) -> bool {
    matches!(stats.end, End::Signal | End::LocalClosed | End::StdoutClosed)
        && duration < SUSPECT_DURATION
        && stats.down > 0
        && stats.down < SUSPECT_DOWN_BYTES
}

/// Tries to log in as `user` with `key` over `stream`: `Some(true)` accepted, `Some(false)`
/// refused, `None` when the probe itself failed or ran out of time.
pub async fn key_accepted<S>(stream: S, user: &str, key: &EphemeralKey) -> Option<bool>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let probe = async {
        let config = Arc::new(client::Config::default());
        let mut session = client::connect_stream(config, stream, AnyHostKey).await.ok()?;
        let key = PrivateKeyWithHashAlg::new(Arc::new(key.private_key().clone()), None);
        let result = session.authenticate_publickey(user, key).await.ok()?;
        let _ = session.disconnect(russh::Disconnect::ByApplication, "ec2-broker key check", "").await;
        Some(result.success())
    };
    tokio::time::timeout(PROBE_DEADLINE, probe).await.ok().flatten()
}

/// The probe only asks whether the key is accepted; it opens no channel and sends no data, so
/// the host key does not need checking here (ssh itself checked it, or refused, a moment ago).
struct AnyHostKey;

impl client::Handler for AnyHostKey {
    type Error = russh::Error;

    async fn check_server_key(&mut self, _key: &russh::keys::PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(end: End, down: u64) -> PipeStats {
        PipeStats { up: 100, down, end }
    }

    #[test]
    fn suspects() {
        let short = Duration::from_secs(1);
        assert!(looks_like_refused_login(&stats(End::Signal, 2_500), short));
        assert!(
            !looks_like_refused_login(&stats(End::RemoteClosed, 2_500), short),
            "server closed: a finished session"
        );
        assert!(!looks_like_refused_login(&stats(End::Signal, 2_500), Duration::from_secs(30)));
        assert!(!looks_like_refused_login(&stats(End::Signal, 1 << 20), short), "data flowed");
        assert!(!looks_like_refused_login(&stats(End::Signal, 0), short), "never reached sshd");
    }
}
