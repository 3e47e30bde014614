//! Placing the connection's public key with SSM Run Command: for instances whose sshd does not
//! read Instance Connect's keys (shared or custom AMIs without the ec2-instance-connect package)
//! but whose SSM agent is online. The script (`src/keys/place_key.sh`) appends the key to the
//! user's `authorized_keys` with an expiry and removes it again (`keys-and-shell.md` §1, §2).

use std::io::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::aws::Aws;
use crate::aws::run_command::CommandRun;
use crate::aws::run_command::RunCommandError;
use crate::keys::placement::{self, Edit, Listing, PLACED_KEY_VALIDITY, ScriptError, ScriptExit};

/// How long placing may take, all polls included: Run Command usually finishes in 2–5 s; the
/// command itself expires after 60 s (30 s delivery + 30 s execution).
const PLACE_BUDGET: Duration = Duration::from_secs(65);

/// Why the key could not be placed with Run Command.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PlaceError {
    /// The script could not be made from these values.
    #[error(transparent)]
    Script(#[from] ScriptError),
    /// The OS user does not exist on the instance (the script's status 3).
    #[error(
        "there is no user {user} on {id} (Run Command {command_id}): connect as a user that exists (ssh USER@HOST)"
    )]
    NoSuchUser {
        /// The OS user.
        user: String,
        /// The instance.
        id: String,
        /// The command id.
        command_id: String,
    },
    /// Revoking would remove the user's last key line (the script's status 6).
    #[error(
        "{fingerprint} is the last key in the authorized_keys of {user} on {id} (Run Command {command_id}): removing it would lock everyone out; install another key first, or give --force"
    )]
    LastKey {
        /// The fingerprint.
        fingerprint: String,
        /// The OS user.
        user: String,
        /// The instance.
        id: String,
        /// The command id.
        command_id: String,
    },
    /// Run Command refused, failed or did not finish.
    #[error(transparent)]
    Run(RunCommandError),
}

/// The key is in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Placed {
    /// The Run Command command id.
    pub command_id: String,
}

/// Places `public_key` for `user` on instance `id` with Run Command (callers say so: [`announce`]
/// on stderr, or in a report).
pub(crate) async fn with_run_command(aws: &Aws, id: &str, user: &str, public_key: &str) -> Result<Placed, PlaceError> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let edit = Edit::Place { public_key, expires: now + PLACED_KEY_VALIDITY.as_secs(), validity: PLACED_KEY_VALIDITY };
    let run = edit_keys(aws, id, user, edit, "ec2-broker: short-lived ssh key").await?;
    tracing::info!(instance = %id, user, command = %run.command_id, output = %run.stdout, "key placed with Run Command");
    Ok(Placed { command_id: run.command_id })
}

/// A permanent key is in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Installed {
    /// The Run Command command id.
    pub command_id: String,
    /// `false` when the key was there already (nothing was written).
    pub added: bool,
}

/// Installs `public_key` for `user` on `id` for good (marked `ec2-broker:installed`, no expiry).
pub(crate) async fn install(aws: &Aws, id: &str, user: &str, public_key: &str) -> Result<Installed, PlaceError> {
    let run = edit_keys(aws, id, user, Edit::Install { public_key }, "ec2-broker: install an ssh key").await?;
    tracing::info!(instance = %id, user, command = %run.command_id, output = %run.stdout, "key installed");
    Ok(Installed { added: !run.stdout.contains("is already in"), command_id: run.command_id })
}

/// Key lines were removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Revoked {
    /// The Run Command command id.
    pub command_id: String,
    /// How many lines went.
    pub removed: u32,
}

/// Removes every line of `user`'s `authorized_keys` on `id` whose key has `fingerprint`; the
/// last key line only with `force`.
pub(crate) async fn revoke(
    aws: &Aws,
    id: &str,
    user: &str,
    fingerprint: &str,
    force: bool,
) -> Result<Revoked, PlaceError> {
    let edit = Edit::Revoke { fingerprint, force };
    let run = match edit_keys(aws, id, user, edit, "ec2-broker: revoke an ssh key").await {
        Err(PlaceError::Run(RunCommandError::Failed { command_id, code, .. }))
            if ScriptExit::of(code) == ScriptExit::LastKey =>
        {
            let (fingerprint, user, id) = (fingerprint.to_string(), user.to_string(), id.to_string());
            return Err(PlaceError::LastKey { fingerprint, user, id, command_id });
        }
        other => other?,
    };
    tracing::info!(instance = %id, user, command = %run.command_id, output = %run.stdout, "key revoked");
    // The script says `removed N of M key lines from FILE`.
    let removed = run.stdout.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0);
    Ok(Revoked { command_id: run.command_id, removed })
}

/// What `user`'s authorized_keys files on `id` hold, read with Run Command (the script's `list`
/// mode writes nothing on the instance).
pub(crate) async fn list(aws: &Aws, id: &str, user: &str) -> Result<(String, Listing), PlaceError> {
    let run = edit_keys(aws, id, user, Edit::List, "ec2-broker: list authorized keys (read-only)").await?;
    tracing::info!(instance = %id, user, command = %run.command_id, "authorized keys listed");
    Ok((run.command_id, Listing::parse(&run.stdout)))
}

/// Runs the script for `edit` on `id` as root.
async fn edit_keys(aws: &Aws, id: &str, user: &str, edit: Edit<'_>, comment: &str) -> Result<CommandRun, PlaceError> {
    let script = placement::render(user, edit)?;
    match aws.run_shell_script(id, &script, comment, PLACE_BUDGET).await {
        Ok(run) => Ok(run),
        Err(RunCommandError::Failed { command_id, code, .. }) if ScriptExit::of(code) == ScriptExit::NoSuchUser => {
            Err(PlaceError::NoSuchUser { user: user.to_string(), id: id.to_string(), command_id })
        }
        Err(e) => Err(PlaceError::Run(e)),
    }
}

/// Says on stderr that the key was placed (this wrote to the instance as root: the user must
/// see it happened, whatever the log level).
pub(crate) fn announce(placed: &Placed, id: &str, user: &str) {
    let _ = writeln!(
        std::io::stderr(),
        "ec2-broker: placed the key for {} on {id} with Run Command {}",
        crate::text::printable(user),
        placed.command_id
    );
}
