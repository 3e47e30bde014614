//! Fetching an instance's host keys over any route, like `ssh-keyscan`: an SSH key exchange per
//! key type (russh), nothing more (no authentication, no channel). The stream comes from the
//! caller, so the scan goes wherever the route goes (direct TCP, an EICE tunnel, an SSM session).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client;
use russh::keys::{Algorithm, EcdsaCurve, HashAlg, PublicKey, PublicKeyOrCertificate};
use tokio::io::{AsyncRead, AsyncWrite};

/// The host key types asked for, one key exchange each (ssh-keyscan's default set).
pub(crate) const KEY_TYPES: [Algorithm; 3] = [
    Algorithm::Ed25519,
    Algorithm::Ecdsa { curve: EcdsaCurve::NistP256 },
    Algorithm::Rsa { hash: Some(HashAlg::Sha512) },
];

/// One key exchange over `stream` offering only `algorithm`: the server's key of that type, or
/// `None` when it has none (the negotiation fails) or does not answer within `timeout`.
pub(crate) async fn scan_one<S>(stream: S, algorithm: Algorithm, timeout: Duration) -> Option<PublicKey>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let seen = Arc::new(Mutex::new(None));
    let mut preferred = russh::Preferred::DEFAULT.clone();
    preferred.key = vec![algorithm.clone()].into();
    let config = Arc::new(client::Config { preferred, ..client::Config::default() });
    let handler = Recorder { seen: seen.clone() };
    let handshake = tokio::time::timeout(timeout, client::connect_stream(config, stream, handler)).await;
    if let Ok(Ok(handle)) = handshake {
        let _ = handle.disconnect(russh::Disconnect::ByApplication, "ec2-broker key scan", "").await;
    }
    let key = seen.lock().unwrap_or_else(|p| p.into_inner()).take();
    tracing::debug!(algorithm = %algorithm, found = key.is_some(), "key scan");
    key
}

/// Accepts the key exchange (nothing is sent after it) and keeps the presented key.
struct Recorder {
    seen: Arc<Mutex<Option<PublicKey>>>,
}

impl client::Handler for Recorder {
    type Error = russh::Error;

    async fn check_server_key(&mut self, key: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        if let PublicKeyOrCertificate::PublicKey { key, .. } = key {
            *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(key.clone());
        }
        // Stop right after the key: refusing ends the handshake without authenticating anything.
        Ok(false)
    }
}
