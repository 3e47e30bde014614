//! Key drift (issue 17, seed 000): the instance was launched with a key pair whose public key its
//! `authorized_keys` does not hold, as when an AMI shared by another account carries that
//! account's key. The facts: the launch key pair (`DescribeKeyPairs` with `IncludePublicKey`) and
//! the key lines Run Command read with the placement script's read-only `list` mode. Pure.

use crate::doctor::report::{Check, Verdict};
use crate::keys::pair::authorized::{self, Offered};
use crate::keys::placement::Listing;

/// What the doctor learnt about the launch key pair and the instance's keys.
pub(crate) struct KeyPairFacts<'a> {
    /// The host as the user wrote it.
    pub host: &'a str,
    /// The OS user whose file was read.
    pub user: &'a str,
    /// The launch key pair's name (`KeyName`).
    pub name: &'a str,
    /// Its public key line (`PublicKey`), when DescribeKeyPairs returned one.
    pub public_key: Option<&'a str>,
    /// What Run Command read: the command id and the listing, or why it could not read.
    pub read: Result<(&'a str, &'a Listing), ReadProblem>,
}

/// Why the keys on the instance could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReadProblem {
    /// The SSM agent is not online (Run Command needs it).
    AgentOffline,
    /// The identity may not call ssm:SendCommand.
    Denied,
    /// Run Command failed otherwise (the error in words).
    Failed(String),
}

/// The `key-pair` row: `None` when the file holds the key pair's key (nothing to say), a
/// failing row for drift, an unknown one when the comparison could not be made.
pub(crate) fn key_pair(f: &KeyPairFacts<'_>) -> Option<Check> {
    let (host, user, name) = (f.host, f.user, f.name);
    let unknown = |why: String| {
        Check::new(
            "key-pair",
            Verdict::Unknown,
            format!(
                "could not compare the launch key pair {name} with the keys in {host}'s authorized_keys for {user}: {why}"
            ),
        )
    };
    let Some(pair_line) = f.public_key else {
        return Some(unknown("DescribeKeyPairs returned no public key for it".into()));
    };
    let pair = authorized::offered(&[(String::new(), pair_line.to_string())]);
    let Some(pair) = pair.first() else {
        return Some(unknown("its public key is not an OpenSSH key line".into()));
    };
    let (command_id, listing) = match &f.read {
        Ok(read) => *read,
        Err(ReadProblem::AgentOffline) => {
            return Some(unknown("the SSM agent is not online (the file is read with SSM Run Command)".into()));
        }
        Err(ReadProblem::Denied) => {
            return Some(
                unknown("the identity lacks ssm:SendCommand (the file is read with SSM Run Command)".into())
                    .fix("allow ssm:SendCommand on the instance and on the document AWS-RunShellScript"),
            );
        }
        Err(ReadProblem::Failed(e)) => return Some(unknown(format!("SSM Run Command failed: {e}"))),
    };
    let held = authorized::offered(&listing.lines);
    if held.iter().any(|k| k.ssh_fingerprint == pair.ssh_fingerprint) {
        return None;
    }
    let keys = match held.as_slice() {
        [] => "no key".to_string(),
        [one] => format!("key {}", one_key(one)),
        many => format!("keys {}", many.iter().map(one_key).collect::<Vec<_>>().join(", ")),
    };
    let mut check = Check::new(
        "key-pair",
        Verdict::Fails,
        format!(
            "the AMI carries another account's key: {host}'s authorized_keys for {user} holds {keys}, not the key pair {name} ({})",
            pair.ssh_fingerprint
        ),
    )
    .and(format!(
        "read with SSM Run Command, writing nothing on the instance (command id {command_id})"
    ));
    if listing.truncated > 0 {
        check = check
            .and(format!("{} more line(s) not read: Run Command returns at most 24,000 characters", listing.truncated));
    }
    let user_flag = if user == "ec2-user" { String::new() } else { format!(" --user {user}") };
    let acceptable: Vec<&Offered> = held.iter().filter(|k| k.verdict.is_ok()).collect();
    let import = match acceptable.as_slice() {
        [] => None,
        [_] => Some(format!("ec2-broker key import {host}-ami --from {host}{user_flag}")),
        [first, ..] => Some(format!(
            "ec2-broker key import {host}-ami --from {host}{user_flag} --fingerprint {}",
            first.ssh_fingerprint
        )),
    };
    let mut fix = format!(
        "choose one: (1) use the original key, the private half of what the file holds: ssh -i ORIGINAL_KEY {user}@{host}; "
    );
    match import {
        Some(cmd) => fix += &format!("(2) import it as a key pair for new instances: {cmd}; "),
        None => fix += "(2) import it as a key pair: none of its keys can be imported safely; ",
    }
    fix += &format!(
        "(3) install this account's key ({name}'s public half in FILE): ec2-broker key install {host} --public-key FILE{user_flag}"
    );
    Some(check.fix(fix))
}

/// `SHA256:… (comment)`.
fn one_key(k: &Offered) -> String {
    match k.comment.is_empty() {
        true => k.ssh_fingerprint.clone(),
        false => format!("{} ({})", k.ssh_fingerprint, k.comment),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAIR: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINYty6T5SkXeQOkFfXnrzMghT3hM1xSvDhM9xqLNTjhH lab-admin";
    const AMI: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG6zJq5QpQvM2r0v3Dq4b0pZlUQ0h1i1c3Lq8bqK0mZP ami-owner@other";

    fn facts<'a>(listing: &'a Listing, public_key: Option<&'a str>) -> KeyPairFacts<'a> {
        KeyPairFacts { host: "web-1", user: "ec2-user", name: "lab-admin", public_key, read: Ok(("c-1", listing)) }
    }

    fn listing(lines: &[&str]) -> Listing {
        Listing {
            files: vec![("/home/ec2-user/.ssh/authorized_keys".into(), true)],
            lines: lines.iter().map(|l| ("/home/ec2-user/.ssh/authorized_keys".into(), l.to_string())).collect(),
            truncated: 0,
        }
    }

    #[test]
    fn drift_is_explained_with_the_three_choices() {
        let l = listing(&[AMI]);
        let check = key_pair(&facts(&l, Some(PAIR))).expect("drift");
        assert_eq!(check.result, Verdict::Fails);
        let first = &check.evidence[0];
        assert!(
            first.starts_with(
                "the AMI carries another account's key: web-1's authorized_keys for ec2-user holds key SHA256:"
            ),
            "{first}"
        );
        assert!(first.contains("(ami-owner@other), not the key pair lab-admin (SHA256:"), "{first}");
        assert!(check.evidence[1].contains("writing nothing on the instance (command id c-1)"));
        let fix = check.fix.unwrap();
        assert!(fix.contains("ssh -i ORIGINAL_KEY ec2-user@web-1"), "{fix}");
        assert!(fix.contains("ec2-broker key import web-1-ami --from web-1;"), "{fix}");
        assert!(fix.contains("ec2-broker key install web-1 --public-key FILE"), "{fix}");
    }

    #[test]
    fn the_key_pair_s_key_present_says_nothing_and_a_missing_read_says_why() {
        let l = listing(&[AMI, &format!("from=\"10.0.0.0/8\" {PAIR}")]);
        assert_eq!(key_pair(&facts(&l, Some(PAIR))), None);
        let mut f = facts(&l, Some(PAIR));
        f.read = Err(ReadProblem::AgentOffline);
        let c = key_pair(&f).unwrap();
        assert_eq!(c.result, Verdict::Unknown);
        assert!(c.evidence[0].ends_with("the SSM agent is not online (the file is read with SSM Run Command)"));
        f.read = Err(ReadProblem::Denied);
        assert!(key_pair(&f).unwrap().evidence[0].contains("lacks ssm:SendCommand"));
        assert_eq!(key_pair(&facts(&l, None)).unwrap().result, Verdict::Unknown);
    }
}
