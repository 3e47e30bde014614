//! ec2-lab: local doubles of the AWS endpoints ec2-broker talks to, on 127.0.0.1 with ephemeral
//! ports, for the tests and the README demo. Never a dependency of the shipped binary.
//!
//! - `api`: the EC2 query API (with DescribeInstanceConnectEndpoints, DescribeKeyPairs and
//!   DescribeSecurityGroups), EC2 Instance Connect, the SSM API and STS on one endpoint
//!   (`AWS_ENDPOINT_URL`), with IAM denials (`Faults::deny`) and answers that echo the caller's
//!   credentials (`Faults::leak`);
//! - `kms`: the KMS double's keys (`[[kms_key]]`), GenerateDataKey and Decrypt, used by the API
//!   (`TrentService.*` on the same endpoint, `AWS_ENDPOINT_URL_KMS`) and by the SSM agent double
//!   for encrypted shell sessions;
//! - `identity`: who signs requests: the lab's IAM user and the session credentials STS's
//!   AssumeRole or the IAM Identity Center portal's GetRoleCredentials issued, the MFA code, and
//!   the Identity Center sign-ins (`sso`: the AWS CLI's token cache files for them; the portal
//!   answers on the API endpoint, `AWS_ENDPOINT_URL_SSO`);
//! - `console`: what GetConsoleOutput returns: boot text with cloud-init's SSH host key block
//!   (current, legacy, absent, tampered, mismatching or cut), from `host_keys`: each instance's
//!   real sshd host keys, or stand-ins derived from the inventory's seed;
//! - `imds`: each instance's metadata service with the `managed-ssh-keys` paths;
//! - `sshd`: each running instance's real OpenSSH server, whose AuthorizedKeysCommand reads
//!   that instance's IMDS double (none with the inventory's `serve_ssh = false`);
//! - `ssm`: SSM Session Manager: the data-channel websocket service (MGS, `ws://` or `wss://`)
//!   and an agent per session that dials the instance's sshd, with its own frame codec;
//! - `eice`: EC2 Instance Connect Endpoints: one `wss://` service for every endpoint of the
//!   inventory, which checks the presigned URL with its own SigV4 code and relays to the
//!   instance's sshd;
//! - `serial`: the EC2 serial console's SSH endpoint (a russh server): publickey login as
//!   `<instance-id>.port0` with the key SendSerialConsoleSSHPublicKey pushed, one session per
//!   instance with its teardown, and a getty whose login runs a real shell on a real pty;
//! - `tls`: the lab CA (always written to `<lab dir>/lab-ca.pem`) and the `wss://` certificates;
//! - `state`: pushed keys, a clock tests can advance, fault knobs (API, SSM, EICE, serial), SSM
//!   agent statuses, EICE tunnels, serial sessions and connections, and the request log.
//!
//! The broker reaches the lab only through user-facing settings ([`Lab::env`]): the standard
//! `AWS_ENDPOINT_URL` and `AWS_CA_BUNDLE`; `EC2_BROKER_EICE_CONNECT_TO=127.0.0.1:PORT`, which
//! opens the TCP connection of an EICE tunnel there while the URL, the signature, `Host` and the
//! TLS name stay the endpoint's real `dnsName` (no AWS variable redirects that host, spec §1.4);
//! and `EC2_BROKER_SERIAL_ENDPOINT=127.0.0.1:PORT` with `EC2_BROKER_SERIAL_FINGERPRINT`, the serial
//! endpoint and its host key's fingerprint in place of the Region's published pair (spec §5.2).
//! While the SSM data channel is `ws://` (no `ssm_tls`), the environment also holds
//! `EC2_BROKER_ALLOW_PLAINTEXT_WS=1`: the broker refuses a stream URL that is not `wss://`
//! otherwise, and that setting exists for local test labs only.

mod api;
mod api_tls;
mod base64;
pub mod bench;
pub mod bench_cp;
pub mod bench_cpu;
pub mod bench_known_hosts;
pub mod bench_ls;
pub mod bench_placement;
pub mod bench_routes;
pub mod bench_shell;
pub mod bench_warm;
mod civil_time;
pub mod cli;
pub mod console;
pub mod demo;
pub mod eice;
pub mod fault_spec;
mod host_keys;
pub mod identity;
mod imds;
pub mod inventory;
pub mod keys_blob;
mod kms;
pub mod pty;
pub mod regions;
pub mod run_command;
pub mod scenario;
pub mod serial;
pub mod sigv4_header;
pub mod sshd;
pub mod ssm;
pub mod sso;
pub mod state;
#[cfg(test)]
mod test_world;
mod tls;
pub mod up;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context;
use tokio::net::TcpListener;

pub use console::ConsoleKeys;
pub use eice::{EiceFaults, EiceTunnelInfo};
pub use identity::{AssumedRole, BearerToken, Issuer};
pub use inventory::{EndpointSpec, IngressRule, InstanceSpec, Inventory, KeyPairSpec, RoleSpec, SecurityGroupSpec};
pub use serial::{SerialConnInfo, SerialFaults};
pub use ssm::{Disconnect, DisconnectKind, SsmFaults, SsmSessionInfo, SsmStatus};
pub use state::{ApiCall, Faults, Leak, LeakKind, PushedKey, State};

/// The lab's static credentials (the IAM user `lab-user`). The API doubles only check that
/// requests are signed; the EICE double verifies its presigned URLs against these (or the
/// session credentials AssumeRole issued).
pub const ACCESS_KEY_ID: &str = "AKIALABEXAMPLE000001";
/// Secret for [`ACCESS_KEY_ID`].
pub const SECRET_ACCESS_KEY: &str = "labSecretKeyEXAMPLEEXAMPLEEXAMPLEEXAMPLE";

/// A running lab. Dropping it stops every double and sshd.
pub struct Lab {
    runtime: Option<tokio::runtime::Runtime>,
    state: Arc<State>,
    api: SocketAddr,
    api_tls: SocketAddr,
    instances: BTreeMap<String, LabInstance>,
    dir: PathBuf,
    ssm_url: String,
    eice: SocketAddr,
    ca_bundle: PathBuf,
    serial: SocketAddr,
    serial_fingerprint: String,
}

/// What the lab runs for one instance.
#[derive(Debug, Clone)]
pub struct LabInstance {
    /// sshd's port on the instance's addresses (with `inbound = false` nothing listens there:
    /// it is only the port ssh_config names and `portNumber` may name).
    pub ssh_port: u16,
    /// Where the instance's SSM agent reaches sshd: the instance's address, or for
    /// `inbound = false` a hidden `127.0.0.1` listener that only the agent uses.
    pub agent_sshd: SocketAddr,
    /// The IMDS double's base URL.
    pub imds_url: String,
    /// sshd's files.
    pub sshd: sshd::SshdFiles,
    accepted: Arc<AtomicUsize>,
}

impl Lab {
    /// Starts every double for `inventory`, keeping configs and logs under `dir`. Checks the
    /// inventory first (`Inventory::check`: two running instances on one address are refused).
    /// With `serve_ssh = false` no instance gets an sshd or IMDS listener: then
    /// [`Lab::instance_ids`] is empty and [`Lab::instance`] knows no instance.
    pub fn start(inventory: Inventory, dir: &Path) -> anyhow::Result<Lab> {
        inventory.check().context("checking the lab inventory")?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("ec2-lab")
            .build()?;
        let state = Arc::new(State::new(inventory));
        let running: Vec<InstanceSpec> = match state.inventory.serve_ssh {
            true => state.inventory.instances.iter().filter(|i| i.state == "running").cloned().collect(),
            false => Vec::new(),
        };
        let users: Vec<String> = running.iter().flat_map(|i| i.os_users.clone()).collect();
        sshd::ensure_users(&users)?;
        let keys_command = match running.is_empty() {
            true => PathBuf::new(),
            false => sshd::install_keys_command()?,
        };

        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let ca = tls::LabCa::generate()?;
        let ca_bundle = dir.join("lab-ca.pem");
        std::fs::write(&ca_bundle, ca.pem()).with_context(|| format!("writing {}", ca_bundle.display()))?;
        let local_names = ["127.0.0.1".to_string(), "localhost".to_string()];
        let ssm_tls = match state.inventory.ssm_tls {
            true => Some(ca.acceptor(&local_names, "ec2-lab ssmmessages")?),
            false => None,
        };
        let region = &state.inventory.region;
        let eice_names: Vec<String> = (state.inventory.endpoints.iter())
            .flat_map(|e| [e.dns_name(region), e.fips_dns_name(region)])
            .chain(local_names.iter().cloned())
            .collect();
        let eice_tls = ca.acceptor(&eice_names, "ec2-lab ec2-instance-connect-endpoint")?;
        let serial_key = serial::service::host_key()?;
        let serial_fingerprint = serial::service::fingerprint(&serial_key);

        let api_tls_acceptor = ca.acceptor(&local_names, "ec2-lab api")?;
        let (api, api_tls, eice, serial, instances, ssm_url) = runtime.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.context("binding the API endpoint")?;
            let api = listener.local_addr()?;
            tokio::spawn(serve(listener, api::router(state.clone())));
            let tls_listener = TcpListener::bind("127.0.0.1:0").await.context("binding the API's TLS endpoint")?;
            let api_tls = tls_listener.local_addr()?;
            let tls_listener = api_tls::TlsListener::new(tls_listener, api_tls_acceptor);
            let router = api::router(state.clone());
            tokio::spawn(async move {
                let _ = axum::serve(tls_listener, router).await;
            });
            let mgs = TcpListener::bind("127.0.0.1:0").await.context("binding the SSM data-channel endpoint")?;
            let scheme = if ssm_tls.is_some() { "wss" } else { "ws" };
            let ssm_url = format!("{scheme}://{}", mgs.local_addr()?);
            state.ssm.set_endpoint(ssm_url.clone());
            tokio::spawn(ssm::service::serve(mgs, state.clone(), ssm_tls));
            let eice_listener = TcpListener::bind("127.0.0.1:0").await.context("binding the EICE endpoint")?;
            let eice = eice_listener.local_addr()?;
            tokio::spawn(eice::serve(eice_listener, state.clone(), eice_tls));
            let serial_listener =
                TcpListener::bind("127.0.0.1:0").await.context("binding the serial console endpoint")?;
            let serial = serial_listener.local_addr()?;
            tokio::spawn(serial::service::serve(serial_listener, state.clone(), serial_key));
            let mut instances = BTreeMap::new();
            let mut port = None;
            for inst in &running {
                let imds_listener = TcpListener::bind("127.0.0.1:0").await?;
                let imds_url = format!("http://{}", imds_listener.local_addr()?);
                tokio::spawn(serve(imds_listener, imds::router(state.clone(), inst.id.clone())));
                let key_pair = inst.key_name.as_deref().and_then(|n| state.inventory.key_pair(n));
                let launch = sshd::Launch {
                    instance: inst,
                    region: &state.inventory.region,
                    key_pair: key_pair.map(|k| k.public_key.as_str()),
                };
                let files = sshd::prepare(launch, &dir.join(&inst.id), &imds_url, &keys_command)?;
                state.run_command.add_instance(&inst.id, &dir.join(&inst.id).join("run-command"), &files.config)?;
                state.host_keys.set_sshd(&inst.id, files.host_public_keys.clone());
                let accepted = Arc::new(AtomicUsize::new(0));
                let (ssh_port, agent_sshd) = listen_ssh(inst, &files, &accepted, port).await?;
                port.get_or_insert(ssh_port);
                state.ssm.add_target(&inst.id, ssm::session::Target { sshd: agent_sshd, ssh_port });
                let lab_instance = LabInstance { ssh_port, agent_sshd, imds_url, sshd: files, accepted };
                instances.insert(inst.id.clone(), lab_instance);
            }
            anyhow::Ok((api, api_tls, eice, serial, instances, ssm_url))
        })?;
        let dir = dir.to_path_buf();
        Ok(Lab {
            runtime: Some(runtime),
            state,
            api,
            api_tls,
            instances,
            dir,
            ssm_url,
            eice,
            ca_bundle,
            serial,
            serial_fingerprint,
        })
    }

    /// The API endpoint URL (`AWS_ENDPOINT_URL`).
    pub fn endpoint_url(&self) -> String {
        format!("http://{}", self.api)
    }

    /// The same API over TLS, as AWS's own endpoints are (`https://127.0.0.1:PORT`, certified by
    /// the lab CA that `AWS_CA_BUNDLE` names).
    pub fn endpoint_url_tls(&self) -> String {
        format!("https://{}", self.api_tls)
    }

    /// The SSM data-channel service's base URL (`ws://127.0.0.1:PORT`, or `wss://` with
    /// `ssm_tls`); StartSession's `StreamUrl` is this plus `/v1/data-channel/<SessionId>?…`.
    pub fn ssm_url(&self) -> String {
        self.ssm_url.clone()
    }

    /// The lab CA's PEM file, `<lab dir>/lab-ca.pem` (`AWS_CA_BUNDLE` in [`Lab::env`]): it signed
    /// the EICE service's certificate and, with `ssm_tls`, the data channel's.
    pub fn ca_bundle(&self) -> &Path {
        &self.ca_bundle
    }

    /// Every SSM session so far, oldest first.
    pub fn ssm_sessions(&self) -> Vec<SsmSessionInfo> {
        self.state.ssm.infos()
    }

    /// The EICE service's address (`127.0.0.1:PORT`, TLS), which every endpoint's `dnsName`
    /// stands for (`EC2_BROKER_EICE_CONNECT_TO` in [`Lab::env`]).
    pub fn eice_addr(&self) -> SocketAddr {
        self.eice
    }

    /// Every EICE tunnel request so far (accepted or refused), oldest first.
    pub fn eice_tunnels(&self) -> Vec<EiceTunnelInfo> {
        self.state.eice.infos()
    }

    /// The serial console endpoint's address (`127.0.0.1:PORT`, SSH), which stands for the
    /// Region's `serial-console.ec2-instance-connect.<region>.aws:22` (`EC2_BROKER_SERIAL_ENDPOINT`
    /// in [`Lab::env`]).
    pub fn serial_addr(&self) -> SocketAddr {
        self.serial
    }

    /// The serial endpoint's host key fingerprint, `SHA256:<base64 without padding>` exactly as
    /// `ssh-keygen -l` prints it (`EC2_BROKER_SERIAL_FINGERPRINT` in [`Lab::env`]).
    pub fn serial_fingerprint(&self) -> String {
        self.serial_fingerprint.clone()
    }

    /// Every TCP connection to the serial endpoint so far, oldest first.
    pub fn serial_connections(&self) -> Vec<SerialConnInfo> {
        self.state.serial.infos()
    }

    /// Environment for the broker: endpoint (also as `AWS_ENDPOINT_URL_KMS` and `AWS_ENDPOINT_URL_SSO`;
    /// `AWS_ENDPOINT_URL_EC2` is the same API over TLS), Region, static credentials, no real IMDS probing,
    /// AWS config files inside the lab directory, `AWS_CA_BUNDLE` (the lab CA),
    /// `EC2_BROKER_EICE_CONNECT_TO` (the EICE service's address), `EC2_BROKER_SERIAL_ENDPOINT`
    /// (the serial console endpoint's `127.0.0.1:PORT`), `EC2_BROKER_SERIAL_FINGERPRINT` (its
    /// host key's `SHA256:` fingerprint) and, while the data channel is `ws://`,
    /// `EC2_BROKER_ALLOW_PLAINTEXT_WS=1` (for local test labs only).
    pub fn env(&self) -> Vec<(String, String)> {
        let config = self.dir.join("aws-config");
        let credentials = self.dir.join("aws-credentials");
        let _ = std::fs::write(&config, format!("[default]\nregion = {}\n", self.state.inventory.region));
        let _ = std::fs::write(&credentials, "");
        let plaintext_ssm =
            (!self.ssm_url.starts_with("wss://")).then(|| ("EC2_BROKER_ALLOW_PLAINTEXT_WS", "1".into()));
        [
            ("AWS_ENDPOINT_URL", self.endpoint_url()),
            // EC2 over TLS, as in AWS: the broker's own EC2 client verifies the lab's
            // certificate against `AWS_CA_BUNDLE`.
            ("AWS_ENDPOINT_URL_EC2", self.endpoint_url_tls()),
            // The KMS double answers on the same endpoint (`TrentService.*`); named on its own
            // so a profile's `endpoint_url` for another service cannot send KMS elsewhere.
            ("AWS_ENDPOINT_URL_KMS", self.endpoint_url()),
            // So does the IAM Identity Center portal (`GET /federation/credentials`), which
            // aws-config's SSO credentials provider calls.
            ("AWS_ENDPOINT_URL_SSO", self.endpoint_url()),
            ("AWS_REGION", self.state.inventory.region.clone()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ("AWS_CONFIG_FILE", config.display().to_string()),
            ("AWS_SHARED_CREDENTIALS_FILE", credentials.display().to_string()),
            ("AWS_USE_FIPS_ENDPOINT", "false".into()),
            ("AWS_USE_DUALSTACK_ENDPOINT", "false".into()),
            ("AWS_CA_BUNDLE", self.ca_bundle.display().to_string()),
            ("EC2_BROKER_EICE_CONNECT_TO", self.eice.to_string()),
            ("EC2_BROKER_SERIAL_ENDPOINT", self.serial.to_string()),
            ("EC2_BROKER_SERIAL_FINGERPRINT", self.serial_fingerprint.clone()),
        ]
        .into_iter()
        .chain(plaintext_ssm)
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Shared state: keys, clock, faults, request log.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// One running instance's lab parts.
    pub fn instance(&self, id: &str) -> &LabInstance {
        self.instances.get(id).unwrap_or_else(|| panic!("{id} is not a running lab instance"))
    }

    /// The SSH port an instance listens on (usually the same for all: see `listen_ssh`).
    pub fn ssh_port(&self, id: &str) -> u16 {
        self.instance(id).ssh_port
    }

    /// How many TCP connections an instance's sshd accepted.
    pub fn connections(&self, id: &str) -> usize {
        self.instance(id).accepted.load(Ordering::SeqCst)
    }

    /// The sshd log of one instance.
    pub fn sshd_log(&self, id: &str) -> String {
        std::fs::read_to_string(&self.instance(id).sshd.log).unwrap_or_default()
    }

    /// Every running instance's id.
    pub fn instance_ids(&self) -> Vec<String> {
        self.instances.keys().cloned().collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

async fn serve(listener: TcpListener, router: axum::Router) {
    let _ = axum::serve(listener, router).await;
}

/// Binds the instance's private and public addresses on one port and serves sshd on both.
/// Every instance has its own loopback addresses, so all try the first one's port (one `Port`
/// line in ssh_config), falling back to a fresh port if it is taken. An instance without inbound
/// network gets only a hidden `127.0.0.1` listener for its SSM agent. Returns the port and the
/// address the agent dials.
async fn listen_ssh(
    inst: &InstanceSpec,
    files: &sshd::SshdFiles,
    accepted: &Arc<AtomicUsize>,
    preferred: Option<u16>,
) -> anyhow::Result<(u16, SocketAddr)> {
    if !inst.inbound {
        let hidden = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.context("binding a hidden sshd listener")?;
        let addr = hidden.local_addr()?;
        tokio::spawn(sshd::serve(hidden, files.clone(), accepted.clone()));
        return Ok((preferred.unwrap_or(addr.port()), addr));
    }
    let addrs: Vec<Ipv4Addr> = [inst.private_ip, inst.public_ip].into_iter().flatten().collect();
    let first = *addrs.first().with_context(|| format!("{} has no address", inst.id))?;
    let listener = match preferred {
        Some(p) => match TcpListener::bind((first, p)).await {
            Ok(l) => l,
            Err(_) => TcpListener::bind((first, 0)).await?,
        },
        None => TcpListener::bind((first, 0)).await.with_context(|| format!("binding {first}"))?,
    };
    let port = listener.local_addr()?.port();
    tokio::spawn(sshd::serve(listener, files.clone(), accepted.clone()));
    for ip in &addrs[1..] {
        let l = TcpListener::bind((*ip, port)).await.with_context(|| format!("binding {ip}:{port}"))?;
        tokio::spawn(sshd::serve(l, files.clone(), accepted.clone()));
    }
    Ok((port, SocketAddr::V4(SocketAddrV4::new(first, port))))
}
