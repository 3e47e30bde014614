//! The serial endpoint's listener: a russh server on `127.0.0.1` that offers only publickey
//! authentication, with an Ed25519 host key generated at lab start (its `SHA256:` fingerprint is
//! what `EC2_BROKER_SERIAL_FINGERPRINT` carries, as AWS publishes one per Region, spec §5.2).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use russh::keys::{Algorithm, HashAlg, PrivateKey};
use russh::server::Config;
use russh::{MethodKind, MethodSet, SshId};
use tokio::net::TcpListener;

use super::handler::Conn;
use crate::state::State;

/// The identification string the double sends (AWS's is not documented).
const SERVER_ID: &str = "SSH-2.0-ec2-lab-serial-console";
/// How long a refused authentication takes: quick, so tests that expect refusals stay fast.
const AUTH_REJECTION_TIME: Duration = Duration::from_millis(50);

/// A fresh Ed25519 host key.
pub(crate) fn host_key() -> anyhow::Result<PrivateKey> {
    PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).context("generating the serial console's host key")
}

/// `SHA256:<base64 without padding>`, as `ssh-keygen -l` prints it.
pub(crate) fn fingerprint(key: &PrivateKey) -> String {
    key.public_key().fingerprint(HashAlg::Sha256).to_string()
}

/// Serves SSH connections on `listener` until the lab stops.
pub(crate) async fn serve(listener: TcpListener, state: Arc<State>, host_key: PrivateKey) {
    let config = Arc::new(Config {
        server_id: SshId::Standard(Cow::Borrowed(SERVER_ID)),
        methods: MethodSet::from(&[MethodKind::PublicKey][..]),
        auth_rejection_time: AUTH_REJECTION_TIME,
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: vec![host_key],
        // A console session has no idle timeout of its own (AWS cuts it after about an hour).
        inactivity_timeout: None,
        nodelay: true,
        ..Config::default()
    });
    loop {
        let Ok((tcp, peer)) = listener.accept().await else {
            continue;
        };
        let (state, config) = (state.clone(), config.clone());
        tokio::spawn(async move {
            let index = state.serial.connected();
            let _ = tcp.set_nodelay(true);
            match russh::server::run_stream(config, tcp, Conn::new(state.clone(), index)).await {
                Ok(session) => {
                    if let Err(err) = session.await {
                        tracing::debug!(conn = index, %peer, %err, "serial console: connection ended with an error");
                    }
                }
                Err(err) => tracing::debug!(conn = index, %peer, %err, "serial console: no SSH session"),
            }
            state.serial.release(index, Instant::now());
        });
    }
}
