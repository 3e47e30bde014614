//! Placing the connection's public key with SSM Run Command: for instances whose sshd does not
//! read Instance Connect's keys (shared or custom AMIs without the ec2-instance-connect package)
//! but whose SSM agent is online. The script (`src/keys/place_key.sh`) appends the key to the
//! user's `authorized_keys` with an expiry and removes it again (`keys-and-shell.md` §1, §2).

use std::io::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::aws::Aws;
use crate::aws::run_command::RunCommandError;
use crate::keys::placement::{self, PLACED_KEY_VALIDITY, ScriptError, ScriptExit};

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
    let script = placement::script(user, public_key, now + PLACED_KEY_VALIDITY.as_secs(), PLACED_KEY_VALIDITY)?;
    let comment = "ec2-broker: short-lived ssh key";
    let run = match aws.run_shell_script(id, &script, comment, PLACE_BUDGET).await {
        Ok(run) => run,
        Err(RunCommandError::Failed { command_id, code, .. }) if ScriptExit::of(code) == ScriptExit::NoSuchUser => {
            return Err(PlaceError::NoSuchUser { user: user.to_string(), id: id.to_string(), command_id });
        }
        Err(e) => return Err(PlaceError::Run(e)),
    };
    tracing::info!(instance = %id, user, command = %run.command_id, output = %run.stdout, "key placed with Run Command");
    Ok(Placed { command_id: run.command_id })
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
