//! Telling "the instance refused the pushed key" apart from other ways a session ends.
//!
//! The broker cannot read ssh's encrypted stream, but the pattern of a refused login is plain:
//! ssh gives up and exits (SIGHUP to us) seconds after connecting, having sent nothing after the
//! instance's last message (its authentication failure), while the instance still holds the
//! connection open after sending only the handshake (a few KB). A session that ends normally
//! differs: ssh's last act is to send `SSH_MSG_DISCONNECT` (sshd logs "disconnected by user";
//! after a refused login it logs "Connection closed by authenticating user … \[preauth\]").
//! When a session ends like a refused login, one SSH login with the same (still valid) key
//! settles it: refused means Instance Connect is not wired up on the instance, and we say so.

use std::sync::Arc;
use std::time::Duration;

use russh::client;
use russh::keys::PrivateKeyWithHashAlg;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::keys::EphemeralKey;
use crate::pipe::stdio::{End, PipeStats};

/// Sessions shorter than this may be failed logins.
pub(crate) const SUSPECT_DURATION: Duration = Duration::from_secs(10);
/// A failed login shows at most the handshake from the instance: 16 KiB leaves room for large host keys.
pub(crate) const SUSPECT_DOWN_BYTES: u64 = 16 * 1024;
/// Connect and login of the probe together; the broker promises to exit within 1 s of ssh.
pub(crate) const PROBE_DEADLINE: Duration = Duration::from_millis(700);

/// Whether a session's end looks like ssh gave up on authentication.
pub(crate) fn looks_like_refused_login(stats: &PipeStats, duration: Duration) -> bool {
    matches!(stats.end, End::Signal | End::LocalClosed | End::StdoutClosed)
        && stats.instance_spoke_last
        && duration < SUSPECT_DURATION
        && stats.down > 0
        && stats.down < SUSPECT_DOWN_BYTES
}

/// Tries to log in as `user` with `key` over `stream`: `Some(true)` accepted, `Some(false)`
/// refused, `None` when the probe itself failed. The caller bounds it in time.
pub(crate) async fn key_accepted<S>(stream: S, user: &str, key: &EphemeralKey) -> Option<bool>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let config = Arc::new(client::Config::default());
    let mut session = client::connect_stream(config, stream, AnyHostKey).await.ok()?;
    let key = PrivateKeyWithHashAlg::new(Arc::new(key.private_key().clone()), None);
    let result = session.authenticate_publickey(user, key).await.ok()?;
    let _ = session.disconnect(russh::Disconnect::ByApplication, "ec2-broker key check", "").await;
    Some(result.success())
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
        PipeStats { up: 100, down, instance_spoke_last: true, end }
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
        let disconnected = PipeStats { instance_spoke_last: false, ..stats(End::Signal, 2_500) };
        assert!(!looks_like_refused_login(&disconnected, short), "ssh sent the last message: a clean exit");
    }
}
