//! A connection for ssh: the plan opened ([`super::open`]) with the short-lived key pushed
//! alongside, the key handed to ssh once a route is open, then ssh's bytes piped to it. Commands
//! never touch keys: they describe the key here ([`KeySettings`]) and this module does the rest.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::Route;
use super::error::RouteError;
use super::key_reuse::KeyReuse;
use super::open::{self, Attempt, Ctx, DIRECT_DEADLINE, Opened, Stream, Target};
use crate::aws::instance_connect::PushError;
use crate::cache::pushes::Decision;
use crate::cache::unix_now;
use crate::keys::EphemeralKey;
use crate::keys::holder::{HolderError, KeyHolder};
use crate::keys::placement::Placement;
use crate::pipe::{splice, stdio};
use crate::probe::auth as auth_probe;
use crate::target::instance::Instance;

pub(crate) use crate::keys::holder::KeyDelivery;

/// How long the relay task may take to finish (a Session Manager session ends with
/// TerminateSession) once ssh's side closed: the broker promises to exit within 1 s of ssh.
const RELAY_FINISH: Duration = Duration::from_secs(1);
/// The check of a pushed key before ssh gets the route: one SSH login, well under a second on a
/// LAN; 10 s allows a slow sshd (DNS lookups, a busy host) behind a Session Manager session.
const CHECK_DEADLINE: Duration = Duration::from_secs(10);
/// How long a relayed route used only for a check may take to close (a Session Manager session
/// is terminated).
const CHECK_CLOSE: Duration = Duration::from_secs(2);

/// The key a connection pushes, and how ssh gets it.
#[derive(Debug, Clone)]
pub(crate) struct KeySettings {
    /// File or agent.
    pub delivery: KeyDelivery,
    /// The key directory (`--key-dir`; default `~/.cache/ec2-broker/keys`).
    pub dir: Option<PathBuf>,
    /// The host as ssh names the key file (`%h` of `IdentityFile DIR/%r@%h`).
    pub host: String,
    /// How the key may reach the instance, in the order to try (`--key-placement`).
    pub placements: Vec<Placement>,
    /// Whether to check, before ssh gets the route, that the instance accepts a key pushed with
    /// Instance Connect, and place it with Run Command when it does not (`--route auto` over
    /// the direct route: one extra SSH login).
    pub check_before_handover: bool,
    /// How the key got in last time (route memory): Instance Connect skips the check, Run
    /// Command is used again at once (with the check on).
    pub remembered: Option<Placement>,
    /// Reuse a key pushed moments ago for the same instance, user and route (file delivery;
    /// `None`: `--no-key-reuse`, agent delivery).
    pub reuse: Option<KeyReuse>,
}

/// Why a connection could not be made or ended badly.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    /// The plan is empty.
    #[error("no route to try for {label} (it has no address or VPC for the routes allowed)")]
    NoPlan {
        /// The instance.
        label: String,
    },
    /// One route was asked for and it did not open: its own words.
    #[error(transparent)]
    Route(Attempt),
    /// No route of the plan opened.
    #[error("no route reached {label}. {}", list(attempts))]
    NoRoute {
        /// The instance.
        label: String,
        /// Each route's failure, in the order tried.
        attempts: Vec<Attempt>,
    },
    /// The key push failed.
    #[error("pushing a key for {user} to {id}")]
    Push {
        /// The OS user.
        user: String,
        /// The instance.
        id: String,
        /// Why.
        #[source]
        source: PushError,
    },
    /// The key could not be placed with Run Command.
    #[error("placing a key for {user} on {id} with Run Command")]
    Place {
        /// The OS user.
        user: String,
        /// The instance.
        id: String,
        /// Why.
        #[source]
        source: super::place::PlaceError,
    },
    /// The key could not be prepared or handed to ssh.
    #[error(transparent)]
    Key(#[from] HolderError),
    /// Piping failed.
    #[error("piping between ssh and the {route} route")]
    Pipe {
        /// The route.
        route: Route,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The route's relay (a tunnel, a session) ended with an error after ssh's bytes flowed.
    #[error(transparent)]
    Relay(RouteError),
    /// The instance refused the pushed key.
    #[error(
        "{label} refused the key pushed with EC2 Instance Connect for user {user}. Likely causes: the \
         ec2-instance-connect package is not installed (RHEL, Debian, SUSE and AL2023-minimal images lack it), \
         sshd already has another AuthorizedKeysCommand, instance metadata is disabled, or there is no user {user}. \
         Try another user, --no-push with a key the instance already trusts, a route that does not need the key \
         (--route ssm), or --route auto, which places the key with SSM Run Command when the instance refuses it \
         (--key-placement instance-connect,run-command, the default)"
    )]
    KeyRefused {
        /// The instance.
        label: String,
        /// The OS user.
        user: String,
    },
    /// The instance refused a key pushed moments ago and reused for this connection.
    #[error(
        "{label} refused, for user {user}, the key pushed with EC2 Instance Connect {age} s ago and reused for \
         this connection. The key is forgotten: run the command again and the broker pushes a fresh one. If that \
         is refused too, `ec2-broker doctor` on the host says why; --no-key-reuse turns reuse off"
    )]
    ReusedKeyRefused {
        /// The instance.
        label: String,
        /// The OS user.
        user: String,
        /// Seconds since the push.
        age: u64,
    },
}

fn list(attempts: &[Attempt]) -> String {
    attempts.iter().map(|a| format!("{}: {}", a.route, a.error.chain())).collect::<Vec<_>>().join(". ")
}

impl std::fmt::Display for Attempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.error, f)
    }
}

impl std::error::Error for Attempt {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.error)
    }
}

/// An open route for ssh, with the key it was given.
pub(crate) struct Connection<'a> {
    /// The open route.
    pub opened: Opened,
    /// How the key reached the instance (`None`: no key, `--no-push`).
    pub placement: Option<Placement>,
    key: Option<KeyHolder>,
    instance: &'a Instance,
    user: String,
    /// The push records, when this connection's key is kept for reuse.
    reuse: Option<KeyReuse>,
    /// How many seconds ago the reused key was pushed, when this connection reused one.
    reused_age: Option<u64>,
}

/// Opens the first route of `plan` that works, pushing a key for `user` meanwhile (unless
/// `key` is `None`: `--no-push`), and hands the key to ssh once a route is open.
pub(crate) async fn connect<'a>(
    plan: &[Route],
    target: &Target<'a>,
    ctx: &Ctx<'_>,
    user: &str,
    key: Option<&KeySettings>,
) -> Result<Connection<'a>, ConnectError> {
    let instance = target.instance;
    if plan.is_empty() {
        return Err(ConnectError::NoPlan { label: instance.label() });
    }
    // Reuse only a key Instance Connect pushed (not one placed with Run Command, not the serial
    // console's), for the route the plan opens first.
    let first = plan[0];
    let placements = key.map(|k| k.placements.as_slice()).unwrap_or_default();
    let run_command = placements.contains(&Placement::RunCommand);
    let checking = key.is_some_and(|k| k.check_before_handover);
    let remembered = key.and_then(|k| k.remembered).filter(|_| checking);
    let instance_connect = placements.first() == Some(&Placement::InstanceConnect)
        && !(run_command && remembered == Some(Placement::RunCommand));
    let reuse = key.and_then(|k| k.reuse.as_ref()).filter(|_| instance_connect && first != Route::Serial);
    let now = unix_now();
    let records = reuse.map(KeyReuse::read);
    let reusable = |k: &EphemeralKey| match (reuse, &records) {
        (Some(r), Some(records)) => r.decide(records, &instance.id, user, first, k, now),
        _ => Decision::Push(crate::cache::pushes::Why::Unknown),
    };
    let mut holder = match key {
        Some(k) => Some(KeyHolder::prepare(k.delivery, k.dir.clone(), user, &k.host, &|k| {
            matches!(reusable(k), Decision::Reuse { .. })
        })?),
        None => None,
    };
    let mut reusing = match holder.as_ref().map(|h| reusable(h.key())) {
        Some(Decision::Reuse { age }) => {
            tracing::info!("reusing the key pushed {age} s ago to {} for {user} (route {first})", instance.id);
            Some(age)
        }
        Some(Decision::Push(why)) if reuse.is_some() => {
            tracing::debug!(?why, "pushing the key");
            None
        }
        _ => None,
    };
    let mut placement = None;
    let opened = if plan == [Route::Serial] {
        // The serial push opens the serial session: it waits until the endpoint proved to be AWS's.
        if let Some(holder) = &holder {
            holder.deliver().await?;
            placement = Some(Placement::InstanceConnect);
            let (aws, id, public_key) = (ctx.aws.clone(), instance.id.clone(), holder.key().public_openssh());
            let push: super::serial::Gate = Box::pin(async move {
                aws.push_serial_key(&id, &public_key).await.map_err(|e| io::Error::other(format!("{e:#}")))
            });
            *ctx.serial_gate.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(push);
        }
        open::open_first(plan, target, ctx).await
    } else {
        let push = async {
            match &holder {
                Some(h) if instance_connect && reusing.is_none() => {
                    ctx.aws.push_key(instance, user, &h.key().public_openssh()).await
                }
                _ => Ok(()),
            }
        };
        // The push and the route do not depend on each other.
        let (mut pushed, opened) = tokio::join!(push, open::open_first(plan, target, ctx));
        // The key was reused for the first route, but another one opened: push it after all.
        if let (Some(_), Ok(o), Some(h)) = (reusing, &opened, &holder)
            && o.route != first
        {
            tracing::info!(route = %o.route, "the {first} route did not open: pushing the key for the {} route", o.route);
            reusing = None;
            pushed = ctx.aws.push_key(instance, user, &h.key().public_openssh()).await;
        }
        let mut need_placing = holder.is_some() && !instance_connect && run_command;
        match pushed {
            Ok(()) => {}
            // Instance Connect is not for this caller or user (IAM, the ec2:osuser condition, a
            // request it refuses); a server error or a stopped instance is no reason to run a
            // command as root.
            Err(e @ (PushError::Denied { .. } | PushError::InvalidArgs { .. })) if run_command => {
                tracing::info!(error = %format!("{e:#}"), "Instance Connect refused the push; placing the key with Run Command");
                need_placing = true;
            }
            Err(source) => return Err(ConnectError::Push { user: user.to_string(), id: instance.id.clone(), source }),
        }
        if let (Ok(o), Some(h), Some(k)) = (&opened, &holder, key)
            && instance_connect
            && run_command
            && !need_placing
            && k.check_before_handover
            && remembered != Some(Placement::InstanceConnect)
        {
            need_placing = match &o.stream {
                Stream::Direct(stream) => match stream.peer_addr() {
                    Ok(addr) => refused_within(h.key(), user, addr, CHECK_DEADLINE).await,
                    Err(_) => false,
                },
                // A second tunnel or session for the check: the open one is ssh's.
                Stream::Relayed { .. } => match open::open(o.route, target, ctx).await {
                    Ok(second) => login_over(second, user, h.key(), CHECK_DEADLINE).await == Some(false),
                    Err(_) => false,
                },
                Stream::Serial(_) => false,
            };
            tracing::info!(refused = need_placing, "checked the pushed key before handing the route to ssh");
        }
        if opened.is_ok()
            && let Some(holder) = &holder
        {
            if need_placing {
                let placed =
                    super::place::with_run_command(ctx.aws, &instance.id, user, &holder.key().public_openssh())
                        .await
                        .map_err(|source| ConnectError::Place {
                        user: user.to_string(),
                        id: instance.id.clone(),
                        source,
                    })?;
                super::place::announce(&placed, &instance.id, user);
                placement = Some(Placement::RunCommand);
            } else if instance_connect {
                placement = Some(Placement::InstanceConnect);
            }
            holder.deliver().await?;
        }
        opened
    };
    let opened = opened.map_err(|mut attempts| match attempts.len() {
        1 => ConnectError::Route(attempts.remove(0)),
        _ => ConnectError::NoRoute { label: instance.label(), attempts },
    })?;
    // Keep a key Instance Connect pushed (or one reused) for the next connections of a burst.
    let reuse = match (reuse, holder.as_mut()) {
        (Some(r), Some(h)) if placement == Some(Placement::InstanceConnect) => {
            match reusing {
                Some(_) => r.reused(h.key()),
                None => r.pushed(&instance.id, user, opened.route, h.key(), now),
            }
            h.keep_for_reuse(true);
            Some(r.clone())
        }
        _ => None,
    };
    let reused_age = reusing.filter(|_| reuse.is_some());
    Ok(Connection { opened, placement, key: holder, instance, user: user.to_string(), reuse, reused_age })
}

impl Connection<'_> {
    /// Pipes ssh's stdin/stdout to the route until one side is done; then, when the session
    /// looks like a refused login over the direct route, checks the pushed key once.
    pub(crate) async fn pipe(self) -> Result<(), ConnectError> {
        let Connection { opened, mut key, instance, user, placement, reuse, reused_age } = self;
        let route = opened.route;
        let pipe_err = |source| ConnectError::Pipe { route, source };
        match opened.stream {
            Stream::Direct(stream) => {
                let addr = stream.peer_addr().map_err(pipe_err)?;
                let piping = Instant::now();
                let stats =
                    if splice::stdio_are_pipes() { splice::pipe(stream).await } else { stdio::pipe(stream).await }
                        .map_err(pipe_err)?;
                tracing::info!(up = stats.up, down = stats.down, end = ?stats.end, "done");
                // The explanation is about Instance Connect's push, not a key placed with Run Command.
                let pushed = placement == Some(Placement::InstanceConnect);
                if let Some(holder) =
                    key.as_mut().filter(|_| pushed && auth_probe::looks_like_refused_login(&stats, piping.elapsed()))
                {
                    // A session that looks like a refused login is common (a short `ssh host
                    // true` often does); the check with the same key decides. Unless the check
                    // says the key is accepted, it is not reused: refused, or not settled in
                    // time (a loaded machine), the next connection pushes a fresh one.
                    let verdict = login_verdict(holder.key(), &user, addr, auth_probe::PROBE_DEADLINE).await;
                    if verdict != Some(true) {
                        if let Some(r) = &reuse {
                            r.forget(holder.key());
                        }
                        holder.discard();
                    }
                    match (verdict, reused_age) {
                        (Some(false), Some(age)) => {
                            return Err(ConnectError::ReusedKeyRefused { label: instance.label(), user, age });
                        }
                        (Some(false), None) => return Err(ConnectError::KeyRefused { label: instance.label(), user }),
                        _ => {}
                    }
                }
            }
            Stream::Relayed { local, task } => {
                let stats = stdio::pipe(local).await.map_err(pipe_err)?;
                tracing::info!(up = stats.up, down = stats.down, end = ?stats.end, "done");
                match tokio::time::timeout(RELAY_FINISH, task).await {
                    Ok(Ok(Err(e))) => return Err(ConnectError::Relay(e)),
                    Ok(_) => {}
                    Err(_) => tracing::warn!("the {route} route did not finish within {RELAY_FINISH:?}"),
                }
            }
            Stream::Serial(guard) => {
                let stats = stdio::pipe(guard).await.map_err(pipe_err)?;
                tracing::info!(up = stats.up, down = stats.down, end = ?stats.end, "done");
            }
        }
        drop(key);
        Ok(())
    }
}

/// Logs in with `key` over an open route, then closes it: `Some(accepted)`, or `None` when the
/// probe failed or took longer than `deadline`.
pub(crate) async fn login_over(opened: Opened, user: &str, key: &EphemeralKey, deadline: Duration) -> Option<bool> {
    match opened.stream {
        Stream::Direct(stream) => {
            tokio::time::timeout(deadline, auth_probe::key_accepted(stream, user, key)).await.ok().flatten()
        }
        Stream::Serial(_) => None,
        Stream::Relayed { local, task } => {
            let verdict = tokio::time::timeout(deadline, auth_probe::key_accepted(local, user, key)).await;
            if tokio::time::timeout(CHECK_CLOSE, task).await.is_err() {
                tracing::debug!("a relayed route did not close within {CHECK_CLOSE:?}");
            }
            verdict.ok().flatten()
        }
    }
}

/// One probe login with the key that was pushed, connect and login within `deadline` (after a
/// session the broker promises to exit within 1 s: [`auth_probe::PROBE_DEADLINE`]):
/// `Some(accepted)`, or `None` when the probe failed or took too long.
async fn login_verdict(key: &EphemeralKey, user: &str, addr: SocketAddr, deadline: Duration) -> Option<bool> {
    let probe = async {
        let stream = super::direct::connect(addr, DIRECT_DEADLINE).await.ok()?;
        auth_probe::key_accepted(stream, user, key).await
    };
    let verdict = tokio::time::timeout(deadline, probe).await.ok().flatten();
    tracing::debug!(?verdict, "checked whether the instance accepts the pushed key");
    verdict
}

/// Whether the instance refuses the pushed key: `false` unless it said no (a probe that fails
/// for another reason proves nothing).
async fn refused_within(key: &EphemeralKey, user: &str, addr: SocketAddr, deadline: Duration) -> bool {
    login_verdict(key, user, addr, deadline).await == Some(false)
}
