//! EC2 Instance Connect Endpoint double: the `wss://` tunnel service every `[[endpoint]]` of the
//! inventory shares (`../shared/spec/aws-apis.md` §4; DescribeInstanceConnectEndpoints lives
//! with the EC2 API in `crate::api`).
//!
//! ```text
//!  client ══wss (TLS: lab CA, SAN = every endpoint's dnsName)══► service.rs ──TCP──► the instance's sshd
//!          GET /openTunnel?…&X-Amz-Signature=…   admission.rs decides, tunnel.rs relays
//! ```
//!
//! - `sigv4`: the lab's own SigV4 presigned-URL verifier and signer, pinned by the §9 vector;
//! - `admission`: every check of an upgrade request, in order, and the refusals (HTTP status and
//!   a JSON body `{"ErrorCode":…,"Message":…}`, the shape the real service answers with);
//! - `service`: the listener (TLS always), the upgrade, the request log;
//! - `tunnel`: after the upgrade: dial the target, relay raw bytes in binary frames (≤ 64 KiB
//!   each), enforce the tunnel's maximum duration, close with a code and reason.
//!
//! Reaching the service: the real `dnsName` resolves only inside AWS, so clients open the TCP
//! connection to the lab's address (`EC2_BROKER_EICE_CONNECT_TO=127.0.0.1:PORT`, see
//! `Lab::env`) while the URL, signature, `Host` header and TLS name stay the endpoint's own.
//! The service routes on the `Host` header and the `instanceConnectEndpointId` parameter.
//!
//! Where a tunnel goes: `privateIpAddress` must be the primary private IPv4 of an inventory
//! instance in the endpoint's VPC. Port 22 or the instance's lab ssh port reaches that instance's
//! sshd; an instance with `inbound = false` is reachable too (through its hidden listener): its
//! security group is taken to allow the endpoint, which sits inside the VPC. Other ports dial
//! `privateIpAddress:remotePort` itself. An instance that is not running has no sshd: the tunnel
//! opens and then closes with "Unable to connect to target".
//!
//! Credentials: the lab's static key (its `X-Amz-Security-Token`, if any, is signed and otherwise
//! ignored), or session credentials the STS double issued, valid until they expire and only with
//! their own session token. `ec2-instance-connect:OpenTunnel` in `Faults::deny` refuses every
//! tunnel as IAM would (403 `AccessDeniedException`).
//!
//! Not modelled: client IP preservation, IPv6 and dual-stack endpoints, throttling of high
//! volume transfers.

mod admission;
mod service;
pub mod sigv4;
mod tunnel;

#[cfg(test)]
mod tests;

use std::sync::Mutex;
use std::time::Duration;

pub(crate) use service::serve;

use crate::state::lock;

/// The signing name of the tunnel URL (spec §4.1).
pub const SIGNING_NAME: &str = "ec2-instance-connect";
/// The websocket path.
pub const PATH: &str = "/openTunnel";
/// The longest tunnel AWS allows, and the duration when the client sends no
/// `maxTunnelDuration` (spec §4.3).
pub const MAX_TUNNEL_DURATION: Duration = Duration::from_secs(3600);
/// Largest binary frame the service sends, and the largest it accepts (the broker sends at most
/// 64 KiB, the CLI 65,000 bytes; the real limit is not documented).
pub const MAX_FRAME: usize = 64 * 1024;
/// The service name in the request log.
pub const LOG_SERVICE: &str = "ec2-instance-connect-endpoint";
/// The operation name in the request log (status 101 when the upgrade was accepted).
pub const LOG_OPERATION: &str = "OpenTunnel";

/// Fault knobs of the EICE double (`State::set_eice_faults`); each applies to every tunnel
/// opened while it is set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EiceFaults {
    /// Send one text frame right after the upgrade (clients must treat it as a protocol error;
    /// the CLI says "Received invalid data from server"), then carry on normally.
    pub send_text_frame: bool,
    /// Close every tunnel right after the upgrade with this code and reason, without dialling.
    pub close_code: Option<(u16, String)>,
    /// Answer every upgrade request (accepted or refused) only after this long.
    pub delay: Duration,
    /// Overrides every endpoint's `max_connections`.
    pub max_connections: Option<usize>,
    /// Ends every tunnel after this long instead of its `maxTunnelDuration` (or 3600 s), with the
    /// same close code and reason, so tests can reach the cap quickly.
    pub tunnel_cap: Option<Duration>,
}

/// What the lab knows about one tunnel request (`Lab::eice_tunnels`), accepted or refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EiceTunnelInfo {
    /// `instanceConnectEndpointId` as sent (empty when missing).
    pub endpoint_id: String,
    /// `privateIpAddress` as sent (empty when missing).
    pub private_ip: String,
    /// `remotePort`, when it was a valid port number.
    pub port: Option<u16>,
    /// `maxTunnelDuration`, when sent and valid.
    pub max_tunnel_duration: Option<u64>,
    /// The access key id of `X-Amz-Credential` (empty when missing): the lab's, or session
    /// credentials AssumeRole issued.
    pub access_key: String,
    /// The HTTP status of the answer: 101 when accepted, else the refusal's.
    pub status: u16,
    /// The upgrade was accepted.
    pub accepted: bool,
    /// The refusal's `Message`, when refused.
    pub refusal: Option<String>,
    /// Bytes of binary-frame payload from the client to the instance.
    pub bytes_up: u64,
    /// Bytes of binary-frame payload from the instance to the client.
    pub bytes_down: u64,
    /// The tunnel is running now.
    pub open: bool,
    /// The close code the service sent, once closed (none when the client closed first or the
    /// connection broke).
    pub close_code: Option<u16>,
    /// Why it ended, once it has (the close reason sent, or what happened).
    pub closed_reason: Option<String>,
}

/// Every tunnel request of the lab.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    tunnels: Mutex<Vec<EiceTunnelInfo>>,
}

impl Registry {
    /// Records a refused request.
    pub(crate) fn refused(&self, info: EiceTunnelInfo) {
        lock(&self.tunnels).push(info);
    }

    /// Records an accepted tunnel as open if its endpoint has fewer than `limit` open; returns
    /// its index, or the number open.
    pub(crate) fn try_open(&self, info: EiceTunnelInfo, limit: usize) -> Result<usize, usize> {
        let mut tunnels = lock(&self.tunnels);
        let open = tunnels.iter().filter(|t| t.open && t.endpoint_id == info.endpoint_id).count();
        if open >= limit {
            return Err(open);
        }
        tunnels.push(EiceTunnelInfo { accepted: true, open: true, status: 101, ..info });
        Ok(tunnels.len() - 1)
    }

    /// Changes one tunnel's record.
    pub(crate) fn update(&self, index: usize, f: impl FnOnce(&mut EiceTunnelInfo)) {
        if let Some(t) = lock(&self.tunnels).get_mut(index) {
            f(t);
        }
    }

    /// Every request so far, oldest first.
    pub(crate) fn infos(&self) -> Vec<EiceTunnelInfo> {
        lock(&self.tunnels).clone()
    }
}
