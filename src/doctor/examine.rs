//! Gathering the doctor's facts: the calls and attempts, as concurrent as their dependencies
//! allow. Each route is opened the way `--route auto` opens it (open only once sshd has spoken);
//! a key is pushed while they open, and one login over the first open route tells whether sshd
//! takes it.

use std::time::Duration;

use super::explain::agent::{self, AgentEvidence, AgentFacts};
use super::explain::{self, DirectFacts, EiceFacts, KeyFacts, RunCommandPlacement, SerialFacts, SsmFacts};
use super::report::{Check, Report, Verdict};
use super::{examine_agent, examine_key_pair};
use crate::aws::run_command::RunCommandError;
use crate::aws::{Aws, ErrorKind};
use crate::keys::EphemeralKey;
use crate::route::connect::login_over;
use crate::route::error::RouteError;
use crate::route::open::{
    self as route_open, Ctx, DIRECT_DEADLINE, Opened, RouteOptions, Stream, Target as RouteTarget,
};
use crate::route::place::{self, PlaceError};
use crate::route::serial::SerialOptions;
use crate::route::{Route, eice, ssm};
use crate::target::instance::AddressKind;
use crate::target::instance::Instance;
use crate::target::resolve::{self, ResolveError};
use crate::target::spec::Target;

/// How long the login probe may take over a route that is open.
const PROBE_DEADLINE: Duration = Duration::from_secs(10);
/// How long a relayed route may take to close after the doctor is done with it.
const CLOSE_DEADLINE: Duration = Duration::from_secs(2);

/// What the doctor tries.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// The OS user for the pushed key.
    pub user: String,
    /// The SSH port.
    pub port: u16,
    /// The address the direct route dials.
    pub address: AddressKind,
    /// The eice route's options.
    pub eice: eice::EiceOptions,
    /// Push a key and try a login with it.
    pub push: bool,
    /// The broker's key directory and the host as ssh names the key file (`%h`), when known.
    pub key_file: Option<(std::path::PathBuf, String)>,
    /// The cache directory holding the records of pushed keys, and the account (`REGION|PROFILE`).
    pub pushes: Option<(std::path::PathBuf, String)>,
}

/// Examines the instance `target` names; `host` is how the user wrote it.
pub(crate) async fn examine(host: &str, aws: &Aws, target: &Target, opts: &Options) -> Report {
    let mut report = Report { host: host.to_string(), checks: Vec::new(), warnings: Vec::new() };
    let (identity, found) = tokio::join!(aws.caller_identity(), aws.find_instances(target));
    report.checks.push(explain::credentials(&identity));
    let found = match found {
        Ok(found) => found,
        Err(e) => {
            let mut c = Check::new("instance", Verdict::Unknown, format!("looking up {target}: {e}"));
            if let Some(action) = explain::denied_action(&e) {
                c = c.fix(format!("allow {action} in the IAM policy of the identity you use"));
            }
            report.checks.push(c);
            report.checks.extend(explain::all_routes(Verdict::Unknown, "the instance could not be looked up"));
            return report;
        }
    };
    let instance = match resolve::pick(target, &aws.region, found) {
        Ok(i) => i,
        Err(e @ ResolveError::NotRunning { .. }) => {
            report.checks.push(explain::not_running(&e.to_string()));
            report.checks.extend(explain::all_routes(Verdict::Fails, "the instance is not running"));
            return report;
        }
        Err(e) => {
            report.checks.push(Check::new("instance", Verdict::Fails, e.to_string()));
            report.checks.extend(explain::all_routes(Verdict::Unknown, "no single running instance to examine"));
            return report;
        }
    };
    report.checks.push(explain::instance(&instance));
    report.checks.extend(routes(host, aws, &instance, opts).await);
    if let Some((dir, account)) = &opts.pushes {
        let text = crate::cache::private_file::read_hint(&dir.join(crate::cache::pushes::FILE_NAME));
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if let Some(push) = crate::cache::pushes::Pushes::parse(&text).latest(account, &instance.id, &opts.user)
            && let Some(key) = report.checks.iter_mut().find(|c| c.check == "key")
        {
            key.evidence.push(explain::key_reuse(push, now));
        }
    }
    if let Some((dir, key_host)) = &opts.key_file
        && let Some(left) = crate::keys::file::inspect(dir, &opts.user, key_host, std::time::SystemTime::now())
    {
        report.warnings.push(explain::left_over_key(&left));
    }
    report
}

/// The route rows and the key row for a running instance.
async fn routes(host: &str, aws: &Aws, instance: &Instance, opts: &Options) -> Vec<Check> {
    let address = instance.address(opts.address).ok();
    let vpc = instance.vpc_id.as_deref().filter(|_| instance.private_ip.is_some());
    // First the facts that decide what is worth trying.
    let groups = async {
        match instance.security_groups.is_empty() {
            true => None,
            false => Some(aws.security_groups(&instance.security_groups).await),
        }
    };
    let endpoints = async {
        match (vpc, opts.eice.endpoint_id.as_deref()) {
            (None, _) => Ok(Vec::new()),
            (Some(vpc), id) => {
                let found = aws.find_endpoints(id, Some(vpc)).await?;
                Ok(crate::aws::eice::choose(&found, Some(vpc), instance.subnet_id.as_deref())
                    .into_iter()
                    .cloned()
                    .collect())
            }
        }
    };
    let serial_type = async {
        match &instance.instance_type {
            None => Ok(Some("the instance type is unknown".to_string())),
            Some(t) => aws.instance_type_info(t).await.map(|info| match info {
                Some(info) => crate::serial::capable::unsupported_reason(&info),
                None => Some(format!("{t} is not a type EC2 knows")),
            }),
        }
    };
    let (groups, endpoints, status, access, serial_type) = tokio::join!(
        groups,
        endpoints,
        aws.agent_status(&instance.id),
        async { aws.serial_access_status().await.map(|s| s.enabled) },
        serial_type,
    );

    // Then every route at once, and the key push alongside.
    let options = RouteOptions {
        eice: opts.eice.clone(),
        ssm: ssm::SsmOptions { resume_timeout: Duration::from_secs(5) },
        serial: SerialOptions::default(),
        // Every route is tried at once, so the direct one need not leave room for the others;
        // the same deadline as when it leads a plan.
        connect_timeout: DIRECT_DEADLINE,
    };
    let ctx = Ctx::new(aws, &options);
    let target = RouteTarget { instance, port: opts.port, address: opts.address };
    let try_eice = matches!(&endpoints, Ok(e) if !e.is_empty());
    let try_ssm = (matches!(&status, Ok(Some(s)) if s.ping_status == "Online") && !agent::too_old_for_ssh(&status))
        || status.is_err();
    let key = match opts.push {
        true => EphemeralKey::generate().ok(),
        false => None,
    };
    let push = async {
        let key = key.as_ref()?;
        Some(aws.push_key(instance, &opts.user, &key.public_openssh()).await.map_err(|e| e.to_string()))
    };
    // Why the agent is offline, only when it is (no call for a healthy instance).
    let known_groups = groups.as_ref().and_then(|g| g.as_ref().ok());
    let evidence = async {
        match agent::offline(&status) {
            true => Some(examine_agent::gather(aws, instance, known_groups).await),
            false => None,
        }
    };
    let (direct, eice, ssm, pushed, evidence) = tokio::join!(
        attempt(&target, &ctx, Route::Direct, address.is_some()),
        attempt(&target, &ctx, Route::Eice, try_eice),
        attempt(&target, &ctx, Route::Ssm, try_ssm),
        push,
        evidence,
    );
    // An online agent that a session could not reach: is Session Manager's channel to it up?
    let unreached = matches!(&ssm, Some(Err(e)) if !e.aws().is_some_and(|e| e.kind() == ErrorKind::Denied));
    let evidence = match (evidence, unreached) {
        (Some(e), _) => Some(e),
        (None, false) => None,
        (None, true) => {
            let connected = aws.session_channel_connected(&instance.id).await;
            match connected {
                Ok(false) => {
                    let mut e = examine_agent::gather(aws, instance, known_groups).await;
                    e.connected = Some(connected);
                    Some(e)
                }
                other => Some(AgentEvidence { connected: Some(other), ..Default::default() }),
            }
        }
    };

    // One login with the pushed key, over the first route that opened; then close them all.
    let mut opened: Vec<(Route, Opened)> = Vec::new();
    let mut results: Vec<Option<Result<(), RouteError>>> = Vec::new();
    for (route, a) in [(Route::Direct, direct), (Route::Eice, eice), (Route::Ssm, ssm)] {
        results.push(a.map(|r| r.map(|o| opened.push((route, o)))));
    }
    let mut probe = None;
    let mut rest = opened.into_iter();
    if let (Some(key), Some(Ok(()))) = (&key, &pushed)
        && let Some((route, first)) = rest.next()
    {
        probe = Some((route, login(first, &opts.user, key).await));
    }
    for (_, o) in rest {
        close(o).await;
    }
    // Refused, with the agent online: what the proxy's fallback, Run Command, would do.
    let agent_online = matches!(&status, Ok(Some(s)) if s.ping_status == "Online");
    let run_command = match (&probe, &key) {
        (Some((route, Some(false))), Some(key)) if agent_online => {
            Some(place_and_login(aws, &target, &ctx, *route, &opts.user, key).await)
        }
        _ => None,
    };

    let [direct, eice, ssm] = [&results[0], &results[1], &results[2]];
    let mut rows = vec![
        explain::direct(&DirectFacts {
            kind: opts.address,
            address,
            port: opts.port,
            attempt: direct.as_ref(),
            groups: groups.as_ref(),
        }),
        explain::eice(&EiceFacts {
            vpc,
            subnet: instance.subnet_id.as_deref(),
            private_ip: instance.private_ip,
            port: opts.port,
            endpoints: &endpoints,
            attempt: eice.as_ref(),
            region: &aws.region,
        }),
        explain::ssm(&SsmFacts {
            status: &status,
            instance_profile: instance.instance_profile.as_deref(),
            port: opts.port,
            attempt: ssm.as_ref(),
        }),
    ];
    let evidence = evidence.unwrap_or_default();
    rows.extend(agent::findings(&AgentFacts {
        instance,
        status: &status,
        evidence: &evidence,
        host,
        region: &aws.region,
    }));
    rows.extend([
        explain::serial(&SerialFacts { access: &access, type_problem: &serial_type, region: &aws.region, host }),
        explain::key(&KeyFacts { user: &opts.user, push: pushed.as_ref(), probe, run_command: run_command.as_ref() }),
    ]);
    rows.extend(examine_key_pair::examine(host, aws, instance, &opts.user, agent_online).await);
    rows
}

/// Opens `route` if `wanted`, the way every command opens it.
async fn attempt(t: &RouteTarget<'_>, ctx: &Ctx<'_>, route: Route, wanted: bool) -> Option<Result<Opened, RouteError>> {
    match wanted {
        true => Some(route_open::open(route, t, ctx).await),
        false => None,
    }
}

/// Places `key` with Run Command (the proxy's fallback), then logs in once more over `route`.
async fn place_and_login(
    aws: &Aws,
    target: &RouteTarget<'_>,
    ctx: &Ctx<'_>,
    route: Route,
    user: &str,
    key: &EphemeralKey,
) -> RunCommandPlacement {
    match place::with_run_command(aws, &target.instance.id, user, &key.public_openssh()).await {
        Ok(placed) => {
            let accepted = match route_open::open(route, target, ctx).await {
                Ok(opened) => login(opened, user, key).await,
                Err(_) => None,
            };
            RunCommandPlacement::Placed { command_id: placed.command_id, accepted }
        }
        Err(PlaceError::Run(RunCommandError::Denied { .. })) => RunCommandPlacement::Denied,
        Err(e) => RunCommandPlacement::Failed(crate::text::printable(&e.to_string()).into_owned()),
    }
}

/// Logs in with `key` over an open route: `Some(accepted)`, or `None` if the probe failed.
async fn login(opened: Opened, user: &str, key: &EphemeralKey) -> Option<bool> {
    login_over(opened, user, key, PROBE_DEADLINE).await
}

/// Closes a route the doctor only opened (a Session Manager session is terminated).
async fn close(opened: Opened) {
    if let Stream::Relayed { local, task } = opened.stream {
        drop(local);
        if tokio::time::timeout(CLOSE_DEADLINE, task).await.is_err() {
            tracing::debug!("a relayed route did not close within {CLOSE_DEADLINE:?}");
        }
    }
}
