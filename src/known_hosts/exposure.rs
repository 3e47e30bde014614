//! `--key`: the blast radius of one user key (sans-IO). known_hosts lists where *you* went, not
//! where a key is accepted; what EC2 can tell is which instances were launched with a key pair
//! holding that key. Keys added to `authorized_keys` later, or pushed with Instance Connect, are
//! invisible to the API: the report says so.

use russh::keys::{Algorithm, HashAlg, PublicKey};
use serde::Serialize;

use crate::aws::known_hosts::KeyPair;

/// The key asked about: a public key, or only its `SHA256:` fingerprint.
#[derive(Debug, Clone)]
pub enum UserKey {
    /// A public key (from a `.pub` file).
    Key(PublicKey),
    /// `SHA256:…`.
    Fingerprint(String),
}

impl UserKey {
    /// Reads `--key`: a `SHA256:…` fingerprint, or the text of a `.pub` file.
    pub fn parse(arg: &str, file_text: Option<&str>) -> Result<UserKey, String> {
        if let Some(body) = arg.strip_prefix("SHA256:") {
            return Ok(UserKey::Fingerprint(format!("SHA256:{}", body.trim_end_matches('='))));
        }
        let text = file_text.ok_or_else(|| format!("{arg} is neither a SHA256: fingerprint nor a readable file"))?;
        let line = text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#')).unwrap_or_default();
        PublicKey::from_openssh(line)
            .map(UserKey::Key)
            .map_err(|e| format!("{arg} does not hold an OpenSSH public key ({e}): pass the .pub file or SHA256:…"))
    }

    /// What to do about an RSA or DSA key (`None` for Ed25519, ECDSA or a bare fingerprint):
    /// suggest an Ed25519 key from `ec2-broker key new` (issue 17).
    pub fn advice(&self) -> Option<String> {
        let UserKey::Key(k) = self else { return None };
        let why = match k.algorithm() {
            Algorithm::Dsa => "a DSA key: OpenSSH disabled DSA in 7.0 and EC2 does not import it",
            Algorithm::Rsa { .. } => {
                "an RSA key: OpenSSH 8.8+ and AL2023 refuse its SHA-1 signatures from older clients, and EC2 Instance Connect needs at least 2048 bits"
            }
            _ => return None,
        };
        Some(format!(
            "{} is {why}; make an Ed25519 key with `ec2-broker key new` and import it with `ec2-broker key import`",
            self.fingerprint()
        ))
    }

    /// `SHA256:…` without padding.
    pub fn fingerprint(&self) -> String {
        match self {
            UserKey::Key(k) => k.fingerprint(HashAlg::Sha256).to_string(),
            UserKey::Fingerprint(f) => f.clone(),
        }
    }
}

/// Whether a key pair holds the key: `None` when the API's answer does not say (an RSA pair
/// listed without its public key: its fingerprint is MD5 or SHA-1 of forms we cannot rebuild
/// from a fingerprint).
pub fn pair_holds(pair: &KeyPair, user: &UserKey) -> Option<bool> {
    if let Some(public) = pair.public_key.as_deref().and_then(|p| PublicKey::from_openssh(p.trim()).ok()) {
        return Some(match user {
            UserKey::Key(k) => public.key_data() == k.key_data(),
            UserKey::Fingerprint(f) => public.fingerprint(HashAlg::Sha256).to_string() == *f,
        });
    }
    // Ed25519 pairs: KeyFingerprint is the base64 SHA-256 of the key, padded (EC2 User Guide,
    // "Verify the fingerprint of your key pair").
    let listed = pair.fingerprint.as_deref()?.trim_end_matches('=');
    let ours = user.fingerprint();
    let ours = ours.trim_start_matches("SHA256:");
    let looks_sha256 = listed.len() == 43 && !listed.contains(':');
    looks_sha256.then(|| listed == ours)
}

/// What `--key` adds to the report.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Exposure {
    /// The key's fingerprint.
    pub key: String,
    /// Key pairs that hold the key.
    pub key_pairs: Vec<String>,
    /// Key pairs the API cannot tell about.
    pub undetermined_key_pairs: Vec<String>,
    /// Every instance launched with one of `key_pairs`, whether or not known_hosts names it.
    pub instances: Vec<ExposedInstance>,
    /// The (not terminated) instances the audited known_hosts entries lead to.
    pub audited: Vec<AuditedInstance>,
    /// What this cannot see.
    pub note: String,
    /// For an RSA or DSA key: make an Ed25519 one instead ([`UserKey::advice`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advice: Option<String>,
}

/// An instance launched with a key pair holding the key.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ExposedInstance {
    /// `i-…`.
    pub id: String,
    /// Name tag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// State.
    pub state: String,
    /// The key pair.
    pub key_name: String,
    /// The known_hosts names that lead to it (`file:line host`), if any.
    pub known_as: Vec<String>,
}

/// An instance the audited files lead to, and whether its launch key pair holds the key.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AuditedInstance {
    /// `i-…`.
    pub id: String,
    /// Its launch key pair, if any.
    pub key_name: Option<String>,
    /// `true`/`false`, or `null` when the API cannot tell for its key pair.
    pub launched_with_key: Option<bool>,
    /// The known_hosts lines that lead to it.
    pub known_as: Vec<String>,
}

/// The note every report carries.
pub const NOTE: &str = "EC2 knows only launch key pairs: a key added to authorized_keys later, or in an AMI, \
                        is not visible here; rotate the key pair and remove the key from authorized_keys";

/// Splits key pairs into those holding the key and those the API cannot tell about.
pub fn classify(pairs: &[KeyPair], user: &UserKey) -> (Vec<String>, Vec<String>) {
    let mut holding = Vec::new();
    let mut unknown = Vec::new();
    for p in pairs {
        match pair_holds(p, user) {
            Some(true) => holding.push(p.name.clone()),
            Some(false) => {}
            None => unknown.push(p.name.clone()),
        }
    }
    (holding, unknown)
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::{Algorithm, PrivateKey};

    fn pair(name: &str, public: Option<&PublicKey>, fp: Option<&str>) -> KeyPair {
        KeyPair {
            name: name.into(),
            public_key: public.map(|k| k.to_openssh().unwrap()),
            fingerprint: fp.map(str::to_string),
        }
    }

    #[test]
    fn pairs_by_public_key_or_fingerprint() {
        let mine = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).unwrap().public_key().clone();
        let other = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).unwrap().public_key().clone();
        let fp = mine.fingerprint(HashAlg::Sha256).to_string();
        let aws_form = format!("{}=", fp.trim_start_matches("SHA256:"));
        let pairs = [
            pair("mine", Some(&mine), None),
            pair("other", Some(&other), None),
            pair("mine-by-fingerprint", None, Some(&aws_form)),
            pair("rsa-md5", None, Some("1f:51:ae:28:bf:89:e9:d8:1f:25:5d:37:2d:7d:b8:ca:9f:f5:f1:6f")),
        ];
        for user in [UserKey::Key(mine.clone()), UserKey::parse(&fp, None).unwrap()] {
            let (holding, unknown) = classify(&pairs, &user);
            assert_eq!(holding, ["mine", "mine-by-fingerprint"]);
            assert_eq!(unknown, ["rsa-md5"]);
        }
        assert!(UserKey::parse("nope", None).is_err());
        assert!(UserKey::parse("x.pub", Some("garbage")).unwrap_err().contains("does not hold"));
        let text = format!("# comment\n{}\n", mine.to_openssh().unwrap());
        assert!(matches!(UserKey::parse("x.pub", Some(&text)), Ok(UserKey::Key(_))));
    }
}
