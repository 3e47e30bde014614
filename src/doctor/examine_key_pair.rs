//! Gathering the facts of key drift (issue 17): the launch key pair's public key, and the keys
//! the user's `authorized_keys` holds, read with Run Command in the placement script's read-only
//! `list` mode (nothing is written on the instance). [`super::explain::key_pair`] judges them.

use super::explain::key_pair::{self, KeyPairFacts, ReadProblem};
use super::explain::{allow, denied_action};
use super::report::{Check, Verdict};
use crate::aws::Aws;
use crate::aws::run_command::RunCommandError;
use crate::route::place::{self, PlaceError};
use crate::target::instance::Instance;

/// The `key-pair` row, if there is something to say: `None` without a launch key pair, when it
/// no longer exists, or when the file holds its key.
pub(crate) async fn examine(
    host: &str,
    aws: &Aws,
    instance: &Instance,
    user: &str,
    agent_online: bool,
) -> Option<Check> {
    let name = instance.key_name.as_deref()?;
    let pair = match aws.key_pair_named(name).await {
        Ok(Some(pair)) => pair,
        Ok(None) => return None,
        Err(e) => {
            let mut c = Check::new("key-pair", Verdict::Unknown, format!("reading the launch key pair {name}: {e}"));
            if let Some(action) = denied_action(&e) {
                c = c.fix(allow(&action));
            }
            return Some(c);
        }
    };
    let read = match agent_online {
        false => Err(ReadProblem::AgentOffline),
        true => match place::list(aws, &instance.id, user).await {
            Ok(read) => Ok(read),
            Err(PlaceError::Run(RunCommandError::Denied { .. })) => Err(ReadProblem::Denied),
            Err(e) => Err(ReadProblem::Failed(crate::text::printable(&e.to_string()).into_owned())),
        },
    };
    key_pair::key_pair(&KeyPairFacts {
        host,
        user,
        name,
        public_key: pair.public_key.as_deref(),
        read: read.as_ref().map(|(id, listing)| (id.as_str(), listing)).map_err(Clone::clone),
    })
}
