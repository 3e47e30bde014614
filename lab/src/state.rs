//! Shared lab state: pushed keys, the clock tests can advance, fault knobs, the request log, the
//! SSM double's sessions, agent statuses and fault knobs, the EICE double's tunnels and fault
//! knobs, the serial console's sessions, connections, access setting and fault knobs, and the
//! host keys each instance's console prints, the credentials the STS and IAM Identity Center
//! doubles issued, and the Identity Center sign-ins.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::console::{self, Console};
use crate::eice::{self, EiceFaults};
use crate::host_keys;
use crate::identity::{self, AssumedRole, BearerToken, Caller, Issuer, TokenCheck, TokenKind};
use crate::inventory::{InstanceSpec, Inventory, KeyPairSpec};
use crate::serial::{self, SerialFaults};
use crate::ssm::session::Registry;
use crate::ssm::{SsmFaults, SsmStatus};

/// How long before lab start an agent that the inventory declares offline last pinged.
const OFFLINE_SINCE: Duration = Duration::from_secs(600);

/// A key pushed with `SendSSHPublicKey`.
#[derive(Debug, Clone)]
pub struct PushedKey {
    /// Instance id.
    pub instance: String,
    /// OS user.
    pub user: String,
    /// The public key line.
    pub key: String,
    /// Lab-clock time (Unix seconds) after which it is no longer served.
    pub expires: u64,
    /// Request id the push returned.
    pub request_id: String,
}

/// One API call the lab answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiCall {
    /// `ec2`, `ec2-instance-connect`, `ssm`, `ssmmessages` (data-channel opens),
    /// `ec2-instance-connect-endpoint` (EICE tunnel opens, operation `OpenTunnel`), `imds`.
    pub service: String,
    /// Operation or path.
    pub operation: String,
    /// HTTP status returned.
    pub status: u16,
    /// The access key id that signed it (the SigV4 `Credential=` of the API endpoint, the
    /// presigned URL's for EICE tunnels); empty when the call carries none (IMDS, the SSM data
    /// channel).
    pub access_key: String,
}

/// Fault knobs for the API doubles.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Answer this many of the next calls with a throttling error.
    pub throttle_next: u32,
    /// Limit `throttle_next` to calls of this operation (e.g. `GetConsoleOutput`).
    pub throttle_only: Option<String>,
    /// Answer this many of the next calls with a 500 server error.
    pub fail_next: u32,
    /// Limit `fail_next` to calls of this operation (e.g. `SendSSHPublicKey`).
    pub fail_only: Option<String>,
    /// Answer every call with 503 (the API is down).
    pub down: bool,
    /// Delay every API answer by this much.
    pub latency: Duration,
    /// Delay the answers of one operation (`DescribeInstances`, `StartSession`, …) by this much
    /// more.
    pub latency_by_operation: BTreeMap<String, Duration>,
    /// Make DescribeInstances and DescribeInstanceConnectEndpoints return at most this many
    /// items per page (when the request gives no `MaxResults`).
    pub page_size: Option<usize>,
    /// IAM actions the caller is not allowed, as `<service prefix>:<operation>`:
    /// `ec2:DescribeInstances`, `ec2-instance-connect:SendSSHPublicKey`,
    /// `ec2-instance-connect:OpenTunnel` (EICE tunnels), `ssm:StartSession`, `sts:AssumeRole`, …
    /// A denied call is answered as IAM answers it: EC2 403 `UnauthorizedOperation`, SSM and
    /// Instance Connect 400 `AccessDeniedException`, STS 403 `AccessDenied`, an EICE tunnel 403
    /// `AccessDeniedException`.
    pub deny: BTreeSet<String>,
    /// Answer calls with an error whose body echoes the caller's credentials (a broken service,
    /// or a proxy that dumps the request): see [`Leak`].
    pub leak: Option<Leak>,
}

/// The `Faults::leak` knob: answers whose bodies hold the caller's access key id, the secret the
/// lab knows for it (the static key's or the one AssumeRole issued) and the request's
/// `X-Amz-Security-Token`, with an `x-amzn-RequestId` header `lab-leak-<n>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leak {
    /// How many calls to answer so (the SDK retries 5xx answers: 3 attempts a call).
    pub answers: u32,
    /// Only calls of this operation (e.g. `GetCallerIdentity`); all when `None`.
    pub operation: Option<String>,
    /// The shape of the answer.
    pub kind: LeakKind,
}

/// What a [`Leak`] answer looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeakKind {
    /// A well-formed error in the protocol's shape (HTTP 400: EC2 `AuthFailure`, awsJson
    /// `UnrecognizedClientException`, STS `InvalidClientTokenId`) whose `Message` quotes the
    /// session token and whose extra fields hold the credentials.
    ServiceError,
    /// HTTP 500 with an HTML page (no error code) that dumps the credentials.
    NoErrorCode,
    /// HTTP 200 with a truncated body that holds credentials (the answer does not parse).
    Truncated,
}

/// Everything the doubles share.
#[derive(Debug)]
pub struct State {
    /// The instances.
    pub inventory: Inventory,
    /// Instance id → index in `inventory.instances` (inventories can hold thousands).
    index: HashMap<String, usize>,
    pub(crate) keys: Mutex<Vec<PushedKey>>,
    pub(crate) clock_offset: Mutex<Duration>,
    pub(crate) faults: Mutex<Faults>,
    pub(crate) log: Mutex<Vec<ApiCall>>,
    pub(crate) counter: Mutex<u64>,
    pub(crate) ssm: Registry,
    /// Run Command: the commands sent and where they run.
    pub run_command: crate::run_command::Registry,
    ssm_faults: Mutex<SsmFaults>,
    /// Agent statuses changed at run time, with the lab-clock second of the change.
    ssm_status: Mutex<BTreeMap<String, (SsmStatus, u64)>>,
    pub(crate) eice: eice::Registry,
    eice_faults: Mutex<EiceFaults>,
    pub(crate) serial: serial::session::Registry,
    serial_faults: Mutex<SerialFaults>,
    /// `set_serial_access`, overriding the inventory's `serial_console_access`.
    serial_access: Mutex<Option<bool>>,
    pub(crate) host_keys: host_keys::Registry,
    /// The KMS double's master key.
    pub(crate) kms: crate::kms::Kms,
    identity: identity::Registry,
    /// The Region's key pairs: the inventory's, then what ImportKeyPair and DeleteKeyPair changed.
    pub(crate) key_pairs: Mutex<Vec<KeyPairSpec>>,
    started: u64,
}

impl State {
    pub(crate) fn new(inventory: Inventory) -> Self {
        let started = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let index = inventory.instances.iter().enumerate().map(|(n, i)| (i.id.clone(), n)).collect();
        let key_pairs = Mutex::new(inventory.key_pairs.clone());
        State {
            inventory,
            index,
            keys: Mutex::default(),
            clock_offset: Mutex::default(),
            faults: Mutex::default(),
            log: Mutex::default(),
            counter: Mutex::default(),
            ssm: Registry::default(),
            run_command: crate::run_command::Registry::default(),
            ssm_faults: Mutex::default(),
            ssm_status: Mutex::default(),
            eice: eice::Registry::default(),
            eice_faults: Mutex::default(),
            serial: serial::session::Registry::default(),
            serial_faults: Mutex::default(),
            serial_access: Mutex::default(),
            host_keys: host_keys::Registry::default(),
            kms: crate::kms::Kms::default(),
            identity: identity::Registry::default(),
            key_pairs,
            started,
        }
    }

    /// Looks an instance up by id (as `Inventory::get`, in constant time).
    pub fn instance(&self, id: &str) -> Option<&InstanceSpec> {
        self.index.get(id).map(|&n| &self.inventory.instances[n])
    }

    /// The lab clock: real time plus what tests advanced it by (Unix seconds).
    pub fn now(&self) -> u64 {
        let real = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        (real + *lock(&self.clock_offset)).as_secs()
    }

    /// The lab clock in milliseconds (SSM tokens expire by it).
    pub fn now_millis(&self) -> u64 {
        let real = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        u64::try_from((real + *lock(&self.clock_offset)).as_millis()).unwrap_or(u64::MAX)
    }

    /// Moves the lab clock forward (pushed keys expire by it).
    pub fn advance(&self, by: Duration) {
        *lock(&self.clock_offset) += by;
    }

    /// A fresh id-like string (`prefix` + counter).
    pub fn next_id(&self, prefix: &str) -> String {
        let mut c = lock(&self.counter);
        *c += 1;
        format!("{prefix}{:08x}-1ab0-4000-8000-{:012x}", *c, *c)
    }

    /// Stores a key as `SendSSHPublicKey` does: served by the instance's IMDS for 60 lab seconds.
    /// Returns the request id.
    pub fn push_key(&self, instance: &str, user: &str, key: &str) -> String {
        let request_id = self.next_id("");
        lock(&self.keys).push(PushedKey {
            instance: instance.into(),
            user: user.into(),
            key: key.into(),
            expires: self.now() + crate::keys_blob::KEY_VALIDITY_SECS,
            request_id: request_id.clone(),
        });
        request_id
    }

    /// Keys currently served for `instance`/`user`.
    pub fn active_keys(&self, instance: &str, user: &str) -> Vec<PushedKey> {
        let now = self.now();
        lock(&self.keys)
            .iter()
            .filter(|k| k.instance == instance && k.user == user && k.expires > now)
            .cloned()
            .collect()
    }

    /// Every key ever pushed.
    pub fn pushed_keys(&self) -> Vec<PushedKey> {
        lock(&self.keys).clone()
    }

    pub(crate) fn record(&self, service: &str, operation: &str, status: u16, access_key: &str) {
        let call =
            ApiCall { service: service.into(), operation: operation.into(), status, access_key: access_key.into() };
        lock(&self.log).push(call);
    }

    /// The Region's key pairs as DescribeKeyPairs lists them now (imports and deletions included).
    pub fn key_pairs(&self) -> Vec<KeyPairSpec> {
        lock(&self.key_pairs).clone()
    }

    /// The request log so far.
    pub fn calls(&self) -> Vec<ApiCall> {
        lock(&self.log).clone()
    }

    /// Changes the fault knobs.
    pub fn set_faults(&self, f: impl FnOnce(&mut Faults)) {
        f(&mut lock(&self.faults));
    }

    pub(crate) fn faults(&self) -> std::sync::MutexGuard<'_, Faults> {
        lock(&self.faults)
    }
}

impl State {
    /// Changes the SSM fault knobs, e.g.
    /// `state.set_ssm_faults(|f| f.disconnects.push_back(Disconnect::after_bytes(4096, DisconnectKind::Bye)))`.
    pub fn set_ssm_faults(&self, f: impl FnOnce(&mut SsmFaults)) {
        f(&mut lock(&self.ssm_faults));
    }

    /// The SSM fault knobs now (counters show what has not fired yet).
    pub fn ssm_faults(&self) -> SsmFaults {
        lock(&self.ssm_faults).clone()
    }

    /// Reads or changes the SSM knobs under one lock (for knobs that count down).
    pub(crate) fn with_ssm_faults<R>(&self, f: impl FnOnce(&mut SsmFaults) -> R) -> R {
        f(&mut lock(&self.ssm_faults))
    }

    /// Changes an instance's SSM agent status from now on (StartSession of a not-`Online` agent
    /// fails with `TargetNotConnected`; sessions already running are not touched).
    pub fn set_ssm_status(&self, instance: &str, status: SsmStatus) {
        let now = self.now();
        lock(&self.ssm_status).insert(instance.into(), (status, now));
    }

    /// An instance's SSM agent status: the last `set_ssm_status`, else the inventory's.
    pub fn ssm_status(&self, instance: &str) -> SsmStatus {
        if let Some((status, _)) = lock(&self.ssm_status).get(instance) {
            return *status;
        }
        self.inventory.get(instance).map_or(SsmStatus::None, |i| i.ssm_status())
    }

    /// `LastPingDateTime` (Unix seconds): now while online, else when the agent went quiet.
    pub(crate) fn ssm_last_ping(&self, instance: &str) -> u64 {
        if self.ssm_status(instance) == SsmStatus::Online {
            return self.now();
        }
        let changed = lock(&self.ssm_status).get(instance).map(|(_, since)| *since);
        changed.unwrap_or_else(|| self.started.saturating_sub(OFFLINE_SINCE.as_secs()))
    }
}

impl State {
    /// Changes the EICE fault knobs, e.g. `state.set_eice_faults(|f| f.tunnel_cap = Some(Duration::from_secs(2)))`.
    pub fn set_eice_faults(&self, f: impl FnOnce(&mut EiceFaults)) {
        f(&mut lock(&self.eice_faults));
    }

    /// The EICE fault knobs now.
    pub fn eice_faults(&self) -> EiceFaults {
        lock(&self.eice_faults).clone()
    }
}

impl State {
    /// Turns the account's serial console access on or off from now on (overrides the
    /// inventory's `serial_console_access`); pushes are refused with
    /// `SerialConsoleAccessDisabledException` while it is off.
    pub fn set_serial_access(&self, enabled: bool) {
        *lock(&self.serial_access) = Some(enabled);
    }

    /// Whether serial console access is enabled (what GetSerialConsoleAccessStatus reports).
    pub fn serial_access(&self) -> bool {
        lock(&self.serial_access).unwrap_or(self.inventory.serial_console_access)
    }

    /// Changes the serial console's fault knobs, e.g.
    /// `state.set_serial_faults(|f| f.teardown = Duration::from_secs(2))`.
    pub fn set_serial_faults(&self, f: impl FnOnce(&mut SerialFaults)) {
        f(&mut lock(&self.serial_faults));
    }

    /// The serial console's fault knobs now.
    pub fn serial_faults(&self) -> SerialFaults {
        lock(&self.serial_faults).clone()
    }
}

impl State {
    /// The decoded text GetConsoleOutput returns for `id` (with or without `Latest`): the
    /// inventory's `console_output` when set, else the boot text its `console_keys` asks for
    /// (`console::text`). `None` for an unknown instance.
    pub fn console_output(&self, id: &str) -> Option<String> {
        let inst = self.instance(id)?;
        if !inst.console_output.is_empty() {
            return Some(inst.console_output.clone());
        }
        let host_keys = self.host_keys.own(&self.inventory, inst);
        let kind = inst.console_keys();
        let needs_foreign = matches!(kind, console::ConsoleKeys::Tampered | console::ConsoleKeys::Mismatch);
        let foreign_keys = if needs_foreign { self.host_keys.foreign(&self.inventory, inst) } else { Vec::new() };
        let key_pair = inst.key_name.as_deref().and_then(|name| self.inventory.key_pair(name));
        Some(console::text(&Console {
            instance: inst,
            region: &self.inventory.region,
            host_keys: &host_keys,
            foreign_keys: &foreign_keys,
            authorized_key: key_pair.map(|k| k.public_key.as_str()),
        }))
    }

    /// The host keys (`.pub` lines) `id`'s console prints as its own: its sshd's real keys
    /// (ECDSA then Ed25519, as `ssh-keygen -l -f <SshdFiles::host_key_files>.pub` shows them)
    /// when it runs one, else stand-in keys derived from the inventory's `seed`.
    pub fn host_keys(&self, id: &str) -> Vec<String> {
        self.instance(id).map(|inst| self.host_keys.own(&self.inventory, inst)).unwrap_or_default()
    }

    /// The keys a `tampered` or `mismatch` console of `id` shows instead of its own: never the
    /// instance's, the same on every call.
    pub fn foreign_host_keys(&self, id: &str) -> Vec<String> {
        self.instance(id).map(|inst| self.host_keys.foreign(&self.inventory, inst)).unwrap_or_default()
    }

    /// Whether `id` runs an sshd (running, and the inventory's `serve_ssh` is on).
    pub fn serves_ssh(&self, id: &str) -> bool {
        self.host_keys.has_sshd(id)
    }
}

impl State {
    /// Changes the MFA device's current one-time code ([`identity::DEFAULT_MFA_CODE`] until
    /// then): the only `TokenCode` AssumeRole accepts.
    pub fn set_mfa_code(&self, code: &str) {
        self.identity.set_mfa_code(code);
    }

    /// The MFA one-time code AssumeRole accepts now.
    pub fn mfa_code(&self) -> String {
        self.identity.mfa_code()
    }

    /// Every set of credentials AssumeRole issued, oldest first (expired ones too).
    pub fn assumed_roles(&self) -> Vec<AssumedRole> {
        self.identity.issued_by(Issuer::AssumeRole)
    }

    /// Every set of credentials `issuer` issued, oldest first (expired ones too).
    pub fn issued_credentials(&self, issuer: Issuer) -> Vec<AssumedRole> {
        self.identity.issued_by(issuer)
    }

    /// Signs a user in to IAM Identity Center, as `aws sso login` does: an access token the
    /// portal double accepts for `valid_for` of lab time (`Duration::ZERO`: already expired).
    /// Write it where the SDKs look with [`crate::sso::write_token_cache`].
    pub fn sso_sign_in(&self, valid_for: Duration) -> BearerToken {
        self.identity.issue_token(TokenKind::Sso, self.now() + valid_for.as_secs())
    }

    /// An OIDC token that STS's AssumeRoleWithWebIdentity accepts for `valid_for` of lab time
    /// (what a Kubernetes service account or a CI system writes to `web_identity_token_file`).
    pub fn web_identity_token(&self, valid_for: Duration) -> BearerToken {
        self.identity.issue_token(TokenKind::WebIdentity, self.now() + valid_for.as_secs())
    }

    /// What the lab makes of a presented token of `kind` now.
    pub(crate) fn check_token(&self, kind: TokenKind, token: &str) -> TokenCheck {
        self.identity.check_token(kind, token, self.now())
    }

    /// The ARN of whoever signs with `access_key`: the assumed-role ARN of a key AssumeRole
    /// issued (expired or not), else the lab user's (`arn:aws:iam::<account>:user/lab-user`).
    pub fn caller_arn(&self, access_key: &str) -> String {
        match self.caller(access_key) {
            Caller::Role(r) | Caller::Expired(r) => r.arn,
            Caller::User | Caller::Unknown => identity::user_arn(&self.inventory.account),
        }
    }

    pub(crate) fn caller(&self, access_key: &str) -> Caller {
        self.identity.caller(access_key, self.now())
    }

    pub(crate) fn issue_credentials(&self, make: impl FnOnce(String) -> AssumedRole) -> AssumedRole {
        self.identity.issue(make)
    }

    /// Issues the session credentials `grant` describes, now.
    pub(crate) fn grant(&self, grant: identity::Grant<'_>) -> AssumedRole {
        let now = self.now();
        self.issue_credentials(|key| grant.credentials(key, &self.inventory.account, now))
    }

    /// Whether IAM denies `action` (`Faults::deny`).
    pub(crate) fn denied(&self, action: &str) -> bool {
        lock(&self.faults).deny.contains(action)
    }
}

/// Locks a mutex, ignoring poisoning (a panicking test thread must not hide the lab's state).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
