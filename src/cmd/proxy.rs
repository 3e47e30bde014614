//! `ec2-broker proxy [USER@]HOST[:PORT]`: resolve the instance, push a short-lived key, open the
//! route, then pipe ssh's stdin/stdout to it. Nothing but the instance's bytes goes to stdout.

use std::time::{Duration, Instant};

use anyhow::Context;
use tracing::Instrument;

use crate::aws::Aws;
use crate::cache::lookup as lookup_cache;
use crate::cache::private_file::{read_hint, write_private};
use crate::cache::pushes;
use crate::cache::unix_now;
use crate::cli::{ProxyArgs, RouteArg};
use crate::pipe::lifeline::Lifeline;
use crate::route::connect::{ConnectError, KeyDelivery, KeySettings, connect};
use crate::route::key_reuse::KeyReuse;
use crate::route::open::{Ctx, RouteOptions, Target};
use crate::route::serial::SerialOptions;
use crate::route::ssm::SsmOptions;
use crate::route::{Route, memory, plan};
use crate::target::instance::Instance;
use crate::target::resolve;
use crate::target::spec::HostSpec;

/// How long ending the Session Manager sessions of an abandoned connection may take: the broker
/// promises to be gone within 1 s of ssh, and its watch notices ssh within 200 ms.
const ABANDON_BUDGET: Duration = Duration::from_millis(500);

/// Runs the proxy.
pub(crate) async fn run(args: ProxyArgs) -> anyhow::Result<()> {
    let span = tracing::info_span!("proxy", host = %args.host, pid = std::process::id());
    async {
        let lifeline = Lifeline::watch().context("watching ssh's pipes")?;
        let spec = HostSpec::parse_with_suffix(&args.host, args.strip_suffix.as_deref())
            .with_context(|| format!("reading host {:?}", args.host))?;
        let region = args.aws.region.as_deref().or(spec.region.as_deref());
        let aws = tokio::select! {
            aws = Aws::load(args.aws.profile.as_deref(), region) => aws?,
            departure = lifeline.departed() => {
                tracing::info!(%departure, "ssh left before the AWS configuration was loaded");
                return Ok(());
            }
        };
        tokio::select! {
            result = proxy(&args, spec, &aws, &lifeline) => result,
            departure = lifeline.departed() => {
                tracing::info!(%departure, "ssh left; abandoning the connection");
                let ended = aws.end_open_sessions(ABANDON_BUDGET).await;
                if ended > 0 {
                    tracing::info!(sessions = ended, "ended the Session Manager sessions of the abandoned connection");
                }
                Ok(())
            }
        }
    }
    .instrument(span)
    .await
}

async fn proxy(args: &ProxyArgs, spec: HostSpec, aws: &Aws, lifeline: &Lifeline) -> anyhow::Result<()> {
    let user = spec.user.clone().unwrap_or_else(|| args.user.clone());
    let started = Instant::now();

    let cache_file = dirs::cache_dir().map(|d| d.join("ec2-broker").join("instances.json"));
    let cache_key = lookup_cache::key(&aws.region, args.aws.profile.as_deref(), &spec.target.to_string());
    let mut cache = lookup_cache::LookupCache::parse(&read_cache(cache_file.as_deref()));
    let instance = match cache.get(&cache_key, unix_now()) {
        Some(i) => {
            tracing::debug!(instance = %i.id, "lookup from the cache");
            i.clone()
        }
        None => {
            let found =
                aws.find_instances(&spec.target).await.with_context(|| format!("looking up {}", spec.target))?;
            let instance = resolve::pick(&spec.target, &aws.region, found)?;
            cache.put(&cache_key, instance.clone(), unix_now());
            save(cache_file.as_deref(), &cache.to_json());
            instance
        }
    };
    tracing::info!(instance = %instance.id, name = instance.name.as_deref().unwrap_or("-"), "resolved");
    if instance.is_windows() {
        tracing::warn!(instance = %instance.id, "this is a Windows instance: it needs an SSH server, and Instance Connect does not push keys to Windows");
    }

    let result = connect_and_pipe(args, &user, &instance, spec.port, aws, lifeline, started).await;
    if result.is_err() {
        // The instance may have moved, stopped or gone: look it up afresh next time.
        let mut cache = lookup_cache::LookupCache::parse(&read_cache(cache_file.as_deref()));
        if cache.remove(&cache_key) {
            save(cache_file.as_deref(), &cache.to_json());
        }
    }
    result
}

/// Plans the routes, opens the first that works with the key pushed alongside, and pipes.
async fn connect_and_pipe(
    args: &ProxyArgs,
    user: &str,
    instance: &Instance,
    port: u16,
    aws: &Aws,
    lifeline: &Lifeline,
    started: Instant,
) -> anyhow::Result<()> {
    let memory_file = dirs::cache_dir().map(|d| d.join("ec2-broker").join("routes.json"));
    let memory = memory::Memory::parse(&read_cache(memory_file.as_deref()));
    let remembered = memory.remembered(&instance.id, unix_now());
    let remembered_placement = memory.placement(&instance.id, unix_now());
    let plan = match route_of(args.route) {
        // An explicit route is a plan of one: it opens exactly as `auto` opens it.
        Some(route) => vec![route],
        None => {
            let facts = plan::Facts {
                has_address: instance.address(args.address).is_ok(),
                in_vpc: instance.vpc_id.is_some() && instance.private_ip.is_some(),
            };
            let order: Vec<Route> = args.try_routes.iter().filter_map(|r| route_of(*r)).collect();
            memory::first_of(plan::plan(facts, &order, &[]), remembered)
        }
    };
    tracing::debug!(?plan, ?remembered, "route plan");
    let options = RouteOptions {
        eice: super::eice_options(&args.eice),
        ssm: SsmOptions { resume_timeout: Duration::from_secs(args.ssm_resume_timeout) },
        serial: SerialOptions {
            endpoint: args.serial.serial_endpoint.clone(),
            fingerprint: args.serial.serial_fingerprint.clone(),
            user: Some(user.to_string()),
        },
        connect_timeout: Duration::from_secs(args.connect_timeout),
    };
    let key = (!args.no_push).then(|| KeySettings {
        delivery: args.key_delivery,
        dir: args.key_dir.clone(),
        host: host_for_key_name(&args.host).to_string(),
        placements: args.key_placement.clone(),
        check_before_handover: args.route == RouteArg::Auto,
        remembered: remembered_placement,
        // Only a key file can be kept for the next connection (docs/keys.md).
        reuse: (args.key_reuse && !args.no_key_reuse && args.key_delivery == KeyDelivery::File)
            .then(|| dirs::cache_dir().map(|d| d.join("ec2-broker")))
            .flatten()
            .map(|dir| KeyReuse { dir, account: pushes::account(&aws.region, args.aws.profile.as_deref()) }),
    });
    let target = Target { instance, port, address: args.address };
    let ctx = Ctx::new(aws, &options);
    let conn = connect(&plan, &target, &ctx, user, key.as_ref()).await?;
    let route = conn.opened.route;
    let placement = conn.placement.map_or_else(|| "none".to_string(), |p| p.to_string());
    tracing::info!(%route, %placement, elapsed_ms = started.elapsed().as_millis() as u64, "route open, piping");
    lifeline.piping();
    if args.route == RouteArg::Auto
        && let Some(file) = &memory_file
    {
        let mut memory = memory;
        let mut changed = remembered != Some(route);
        if changed {
            memory.record(&instance.id, route, unix_now());
        }
        if let Some(placement) = conn.placement {
            changed |= remembered_placement != Some(placement);
            memory.record_placement(&instance.id, placement, unix_now());
        }
        if changed {
            save(Some(file), &memory.to_json());
        }
    }
    let piped = conn.pipe().await;
    if let Err(ConnectError::KeyRefused { .. } | ConnectError::ReusedKeyRefused { .. }) = &piped {
        // Refused after all: check again next time rather than trust the remembered placement.
        let mut memory = memory::Memory::parse(&read_cache(memory_file.as_deref()));
        if memory.forget_placement(&instance.id) {
            save(memory_file.as_deref(), &memory.to_json());
        }
    }
    piped?;
    Ok(())
}

/// A cache file's text; empty when there is none or it is not safe to read (a cache is only a hint).
pub(crate) fn read_cache(file: Option<&std::path::Path>) -> String {
    file.map(read_hint).unwrap_or_default()
}

/// Stores a cache file; a cache that cannot be written only costs speed.
pub(crate) fn save(file: Option<&std::path::Path>, text: &str) {
    if let Some(file) = file
        && let Err(e) = write_private(file, text)
    {
        tracing::debug!(error = %e, file = %file.display(), "could not write a cache file");
    }
}

/// The route an explicit `--route` names (`None`: auto).
fn route_of(r: RouteArg) -> Option<Route> {
    match r {
        RouteArg::Direct => Some(Route::Direct),
        RouteArg::Eice => Some(Route::Eice),
        RouteArg::Ssm => Some(Route::Ssm),
        RouteArg::Serial => Some(Route::Serial),
        RouteArg::Auto => None,
    }
}

/// The host part of the argument as ssh passed it (`%h`), which names the key file `%r@%h`.
pub(crate) fn host_for_key_name(arg: &str) -> &str {
    let host = arg.rsplit_once('@').map_or(arg, |(_, h)| h);
    match host.rsplit_once(':') {
        Some((h, port)) if port.parse::<u16>().is_ok() => h,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_name_is_percent_h() {
        assert_eq!(host_for_key_name("ec2-user@web-1:22"), "web-1");
        assert_eq!(host_for_key_name("web-1.ec2"), "web-1.ec2");
        assert_eq!(host_for_key_name("u@tag:Role=db:2222"), "tag:Role=db");
        assert_eq!(host_for_key_name("u@tag:Role=db"), "tag:Role=db");
    }
}
