//! The direct route: TCP to the instance's address.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;

/// Why the direct route could not open.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DirectError {
    /// Nothing answered in time (a security group or network ACL drops the packets, or no route).
    #[error(
        "no answer from {addr} within {}s: the instance's security group or network may not let you in; try --address public|private, or another route",
        timeout.as_secs()
    )]
    Timeout {
        /// Address dialled.
        addr: SocketAddr,
        /// How long we waited.
        timeout: Duration,
    },
    /// The connection failed (refused, unreachable ...).
    #[error("cannot connect to {addr}: {source}: is sshd listening on that port? try another --address or route")]
    Connect {
        /// Address dialled.
        addr: SocketAddr,
        /// OS error.
        source: io::Error,
    },
}

/// Opens a TCP connection to `addr` within `timeout`.
pub(crate) async fn connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, DirectError> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Err(_) => return Err(DirectError::Timeout { addr, timeout }),
        Ok(Err(source)) => return Err(DirectError::Connect { addr, source }),
        Ok(Ok(s)) => s,
    };
    // ssh is interactive: do not let Nagle hold back keystrokes.
    let _ = stream.set_nodelay(true);
    tracing::info!(%addr, "connected");
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refused_names_the_address() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let err = connect(addr, Duration::from_secs(2)).await.unwrap_err();
        assert!(err.to_string().starts_with(&format!("cannot connect to {addr}: ")), "{err}");
    }
}
