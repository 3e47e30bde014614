//! `ec2-broker proxy [USER@]HOST[:PORT]`: resolve the instance, push a short-lived key, open the
//! route, then pipe ssh's stdin/stdout to it. Nothing but the instance's bytes goes to stdout.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tracing::Instrument;

use crate::aws::Aws;
use crate::cache::lookup as lookup_cache;
use crate::cache::private_file::write_private;
use crate::cli::{KeyDelivery, ProxyArgs, RouteArg};
use crate::keys::EphemeralKey;
use crate::keys::agent as key_agent;
use crate::keys::file::KeySlot;
use crate::pipe::lifeline::Lifeline;
use crate::pipe::{splice, stdio};
use crate::probe::auth as auth_probe;
use crate::route::{Route, auto, direct, eice, memory, plan, serial, ssm};
use crate::target::instance::Instance;
use crate::target::resolve;
use crate::target::spec::HostSpec;

/// How long ending the Session Manager sessions of an abandoned connection may take: the broker
/// promises to be gone within 1 s of ssh, and its watch notices ssh within 200 ms.
const ABANDON_BUDGET: Duration = Duration::from_millis(500);

/// Runs the proxy.
pub async fn run(args: ProxyArgs) -> anyhow::Result<()> {
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

    let key_holder =
        if args.no_push { None } else { Some(KeyHolder::prepare(args, &user, host_for_key_name(&args.host))?) };
    let conn = Conn { args, aws, instance: &instance, user: &user, port: spec.port, started, lifeline };
    let result = match args.route {
        RouteArg::Direct => direct_route(&conn, key_holder).await,
        RouteArg::Ssm => ssm_route(&conn, key_holder).await,
        RouteArg::Eice => eice_route(&conn, key_holder).await,
        RouteArg::Serial => serial_route(&conn, key_holder).await,
        RouteArg::Auto => auto_route(&conn, key_holder).await,
    };
    if result.is_err() {
        // The instance may have moved, stopped or gone: look it up afresh next time.
        let mut cache = lookup_cache::LookupCache::parse(&read_cache(cache_file.as_deref()));
        if cache.remove(&cache_key) {
            save(cache_file.as_deref(), &cache.to_json());
        }
    }
    result
}

/// A cache file's text; empty when there is none (a cache is only a hint).
pub(crate) fn read_cache(file: Option<&std::path::Path>) -> String {
    file.map(crate::cache::private_file::read_hint).unwrap_or_default()
}

/// Stores a cache file; a cache that cannot be written only costs speed.
pub(crate) fn save(file: Option<&std::path::Path>, text: &str) {
    if let Some(file) = file
        && let Err(e) = write_private(file, text)
    {
        tracing::debug!(error = %e, file = %file.display(), "could not write a cache file");
    }
}

/// What every route needs to know about this connection.
struct Conn<'a> {
    args: &'a ProxyArgs,
    aws: &'a Aws,
    instance: &'a Instance,
    user: &'a str,
    port: u16,
    started: Instant,
    /// Told when piping starts (from then on a closed stdin is a half-close, not ssh leaving).
    lifeline: &'a Lifeline,
}

/// Pushes the key (if any) while `open` runs, then hands the key to ssh.
async fn push_while<T, E>(
    aws: &Aws,
    instance: &Instance,
    user: &str,
    holder: Option<&KeyHolder>,
    open: impl Future<Output = Result<T, E>>,
) -> anyhow::Result<T>
where
    E: std::error::Error + Send + Sync + 'static,
{
    let Some(holder) = holder else { return Ok(open.await?) };
    let public_key = holder.key().public_openssh();
    // The key push and the route do not depend on each other: run them together.
    let (pushed, opened) = tokio::join!(aws.push_key(instance, user, &public_key), open);
    pushed.with_context(|| format!("pushing a key for {user} to {}", instance.id))?;
    let opened = opened?;
    holder.deliver().await?;
    Ok(opened)
}

async fn direct_route(c: &Conn<'_>, key_holder: Option<KeyHolder>) -> anyhow::Result<()> {
    let Conn { args, aws, instance, user, port, started, .. } = *c;
    let addr = SocketAddr::new(IpAddr::V4(instance.address(args.address)?), port);
    let timeout = Duration::from_secs(args.connect_timeout);
    tracing::info!(route = %Route::Direct, %addr, "opening route");
    let stream = push_while(aws, instance, user, key_holder.as_ref(), direct::connect(addr, timeout)).await?;
    tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "route open, piping");
    c.lifeline.piping();

    let piping = Instant::now();
    let stats = if splice::stdio_are_pipes() { splice::pipe(stream).await } else { stdio::pipe(stream).await }
        .context("piping between ssh and the instance")?;
    tracing::info!(up = stats.up, down = stats.down, end = ?stats.end, "done");
    if let Some(holder) = key_holder.as_ref().filter(|_| auth_probe::looks_like_refused_login(&stats, piping.elapsed()))
    {
        check_key_refused(instance, user, holder.key(), addr, timeout).await?;
    }
    drop(key_holder);
    Ok(())
}

async fn ssm_route(c: &Conn<'_>, key_holder: Option<KeyHolder>) -> anyhow::Result<()> {
    let Conn { args, aws, instance, user, port, started, .. } = *c;
    tracing::info!(route = %Route::Ssm, port, "opening route");
    let opts = ssm::SsmOptions { resume_timeout: Duration::from_secs(args.ssm_resume_timeout) };
    let route = push_while(aws, instance, user, key_holder.as_ref(), ssm::open(aws, instance, port, opts)).await?;
    tracing::info!(
        session = route.session_id(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "route open, piping"
    );
    c.lifeline.piping();
    let outcome = route.pipe().await?;
    let s = outcome.stats;
    tracing::info!(
        end = ?outcome.end, up = s.bytes_out, down = s.bytes_in, retransmits = s.retransmits,
        duplicates = s.duplicates, reconnects = outcome.reconnects, "done"
    );
    drop(key_holder);
    Ok(())
}

async fn eice_route(c: &Conn<'_>, key_holder: Option<KeyHolder>) -> anyhow::Result<()> {
    let Conn { args, aws, instance, user, port, started, .. } = *c;
    tracing::info!(route = %Route::Eice, port, "opening route");
    let opts = eice::EiceOptions {
        endpoint_id: args.eice_id.clone(),
        connect_to: args.eice_connect_to.clone(),
        max_duration: args.eice_max_duration,
    };
    let tunnel = push_while(aws, instance, user, key_holder.as_ref(), eice::open(aws, instance, port, &opts)).await?;
    tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "route open, piping");
    c.lifeline.piping();
    let stats = tunnel.pipe().await?;
    tracing::info!(up = stats.up, down = stats.down, "done");
    drop(key_holder);
    Ok(())
}

async fn auto_route(c: &Conn<'_>, key_holder: Option<KeyHolder>) -> anyhow::Result<()> {
    let Conn { args, aws, instance, user, port, started, .. } = *c;
    let address = instance.address(args.address).ok();
    let facts = plan::Facts {
        has_address: address.is_some(),
        in_vpc: instance.vpc_id.is_some() && instance.private_ip.is_some(),
    };
    let order: Vec<Route> = args.try_routes.iter().filter_map(|r| route_of(*r)).collect();
    let memory_file = dirs::cache_dir().map(|d| d.join("ec2-broker").join("routes.json"));
    let memory = memory::Memory::parse(&read_cache(memory_file.as_deref()));
    let remembered = memory.remembered(&instance.id, unix_now());
    let routes = memory::first_of(plan::plan(facts, &order, &[]), remembered);
    tracing::debug!(?routes, ?remembered, "auto route plan");
    if routes.is_empty() {
        bail!(
            "no route to try for {} (--try-routes {:?}, and it has no address or VPC for them)",
            instance.label(),
            order
        );
    }
    let target = auto::Target {
        aws,
        instance,
        address,
        port,
        eice: eice::EiceOptions {
            endpoint_id: args.eice_id.clone(),
            connect_to: args.eice_connect_to.clone(),
            max_duration: args.eice_max_duration,
        },
        ssm: ssm::SsmOptions { resume_timeout: Duration::from_secs(args.ssm_resume_timeout) },
    };
    let push = async {
        match &key_holder {
            Some(holder) => {
                aws.push_key(instance, user, &holder.key().public_openssh()).await.map_err(anyhow::Error::from)
            }
            None => Ok(()),
        }
    };
    // The push and the route attempts do not depend on each other.
    let (pushed, (opened, attempts)) = tokio::join!(push, auto::open(&target, &routes));
    pushed.with_context(|| format!("pushing a key for {user} to {}", instance.id))?;
    let Some((route, opened)) = opened else {
        let tried: Vec<String> =
            attempts.iter().map(|a| format!("{}: {}", a.route, a.failure.as_deref().unwrap_or("?"))).collect();
        bail!("no route reached {}. {}", instance.label(), tried.join(". "));
    };
    if let Some(holder) = &key_holder {
        holder.deliver().await?;
    }
    tracing::info!(%route, elapsed_ms = started.elapsed().as_millis() as u64, "route open, piping");
    c.lifeline.piping();
    if remembered != Some(route)
        && let Some(file) = &memory_file
    {
        let mut memory = memory;
        memory.record(&instance.id, route, unix_now());
        save(Some(file), &memory.to_json());
    }
    match opened {
        auto::Opened::Direct(stream) => {
            let addr = stream.peer_addr().context("reading the direct connection's address")?;
            let piping = Instant::now();
            let stats = if splice::stdio_are_pipes() { splice::pipe(stream).await } else { stdio::pipe(stream).await }
                .context("piping between ssh and the instance")?;
            tracing::info!(up = stats.up, down = stats.down, end = ?stats.end, "done");
            if let Some(holder) =
                key_holder.as_ref().filter(|_| auth_probe::looks_like_refused_login(&stats, piping.elapsed()))
            {
                check_key_refused(instance, user, holder.key(), addr, auto::DIRECT_DEADLINE).await?;
            }
        }
        auto::Opened::Relayed { local, task } => {
            let stats =
                stdio::pipe(local).await.with_context(|| format!("piping between ssh and the {route} route"))?;
            tracing::info!(up = stats.up, down = stats.down, end = ?stats.end, "done");
            // The route ends its session (SSM TerminateSession) once ssh's side closed.
            match tokio::time::timeout(Duration::from_secs(1), task).await {
                Ok(Ok(Err(e))) => tracing::warn!(error = %format!("{e:#}"), "the {route} route ended with an error"),
                Ok(_) => {}
                Err(_) => tracing::warn!("the {route} route did not finish within 1 s"),
            }
        }
    }
    drop(key_holder);
    Ok(())
}

pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn route_of(r: RouteArg) -> Option<Route> {
    match r {
        RouteArg::Direct => Some(Route::Direct),
        RouteArg::Eice => Some(Route::Eice),
        RouteArg::Ssm => Some(Route::Ssm),
        RouteArg::Serial | RouteArg::Auto => None,
    }
}

async fn serial_route(c: &Conn<'_>, key_holder: Option<KeyHolder>) -> anyhow::Result<()> {
    let Conn { args, aws, instance, user, started, .. } = *c;
    serial::check_user(user, &instance.id)?;
    let endpoint = crate::serial::endpoints::resolve(
        &aws.region,
        args.serial.serial_endpoint.as_deref(),
        args.serial.serial_fingerprint.as_deref(),
    )?;
    crate::serial::preflight::check(aws, instance, &instance.label()).await?;
    tracing::info!(route = %Route::Serial, %endpoint, "opening route");
    // The push opens the serial session: it waits until the endpoint proved to be AWS's.
    let gate = match &key_holder {
        None => None,
        Some(holder) => {
            holder.deliver().await?;
            let (aws, id, public_key) = (aws.clone(), instance.id.clone(), holder.key().public_openssh());
            let push: serial::Gate = Box::pin(async move {
                aws.push_serial_key(&id, &public_key).await.map_err(|e| std::io::Error::other(format!("{e:#}")))
            });
            Some(push)
        }
    };
    let stream = serial::open(&endpoint, Duration::from_secs(args.connect_timeout), gate).await?;
    tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "route open, piping");
    c.lifeline.piping();
    let stats = stdio::pipe(stream).await.context("piping between ssh and the serial console")?;
    tracing::info!(up = stats.up, down = stats.down, end = ?stats.end, "done");
    drop(key_holder);
    Ok(())
}

/// After a session that looks like a refused login, one probe login with the same key decides
/// whether to tell the user that Instance Connect is not working on the instance.
async fn check_key_refused(
    instance: &Instance,
    user: &str,
    key: &EphemeralKey,
    addr: SocketAddr,
    timeout: Duration,
) -> anyhow::Result<()> {
    // One deadline for connect and login together: the broker promises to exit within 1 s.
    let probe = async {
        let stream = direct::connect(addr, timeout).await.ok()?;
        auth_probe::key_accepted(stream, user, key).await
    };
    let verdict = tokio::time::timeout(auth_probe::PROBE_DEADLINE, probe).await.ok().flatten();
    tracing::debug!(?verdict, "checked whether the instance accepts the pushed key");
    if verdict == Some(false) {
        bail!(
            "{} refused the key pushed with EC2 Instance Connect for user {user}. Likely causes: the \
             ec2-instance-connect package is not installed (RHEL, Debian, SUSE and AL2023-minimal images lack it), \
             sshd already has another AuthorizedKeysCommand, instance metadata is disabled, or there is no user {user}. \
             Try another user, --no-push with a key the instance already trusts, or a route that does not need the key \
             (--route ssm)",
            instance.label()
        );
    }
    Ok(())
}

/// The host part of the argument as ssh passed it (`%h`), which names the key file `%r@%h`.
pub(crate) fn host_for_key_name(arg: &str) -> &str {
    let host = arg.rsplit_once('@').map_or(arg, |(_, h)| h);
    match host.rsplit_once(':') {
        Some((h, port)) if port.parse::<u16>().is_ok() => h,
        _ => host,
    }
}

/// The key for this connection and how ssh will get it.
enum KeyHolder {
    File(KeySlot),
    Agent(EphemeralKey),
}

impl KeyHolder {
    fn prepare(args: &ProxyArgs, user: &str, host: &str) -> anyhow::Result<KeyHolder> {
        Ok(match args.key_delivery {
            KeyDelivery::Agent => KeyHolder::Agent(EphemeralKey::generate()?),
            KeyDelivery::File => {
                let dir = match &args.key_dir {
                    Some(d) => d.clone(),
                    None => crate::keys::file::default_dir().context("no home directory: pass --key-dir")?,
                };
                let slot = KeySlot::claim(&dir, user, host).context("preparing the key file")?;
                if slot.reused() {
                    tracing::info!(path = %slot.path().display(), "reusing the key of a concurrent connection");
                }
                KeyHolder::File(slot)
            }
        })
    }

    fn key(&self) -> &EphemeralKey {
        match self {
            KeyHolder::File(slot) => slot.key(),
            KeyHolder::Agent(key) => key,
        }
    }

    /// Makes the (already pushed) key available to ssh.
    async fn deliver(&self) -> anyhow::Result<()> {
        match self {
            KeyHolder::File(slot) => slot.write().context("writing the key file")?,
            KeyHolder::Agent(key) => key_agent::add(key).await?,
        }
        Ok(())
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
