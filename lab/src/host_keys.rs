//! The SSH host keys each instance's console prints (`.pub` lines, in cloud-init's order:
//! ecdsa, ed25519, rsa): the real keys of its sshd (`sshd::prepare` generates them with
//! `ssh-keygen`), or, for an instance without an sshd (not running, or `serve_ssh = false`),
//! stand-in keys derived from the inventory's `seed` and the instance id, so its console is the
//! same on every call and every run; and the "foreign" keys a tampered or mismatching console
//! shows, derived the same way and never equal to the instance's own.

use std::collections::HashMap;
use std::sync::Mutex;

use rand::SeedableRng;
use rand::rngs::StdRng;
use russh::keys::ssh_key::private::Ed25519PrivateKey;
use russh::keys::ssh_key::public::{Ed25519PublicKey, KeyData};
use russh::keys::{Algorithm, EcdsaCurve, PrivateKey, PublicKey};
use sha2::Digest;

use crate::inventory::{InstanceSpec, Inventory};
use crate::state::lock;

/// Per-instance host keys, filled in at lab start (sshd keys) or on first use (derived keys).
#[derive(Debug, Default)]
pub(crate) struct Registry {
    sshd: Mutex<HashMap<String, Vec<String>>>,
    derived: Mutex<HashMap<(String, Role), Vec<String>>>,
}

/// Whose keys a derived set stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Role {
    /// The instance's own keys, when it has no sshd.
    Own,
    /// Keys that are not the instance's.
    Foreign,
}

impl Registry {
    /// Records the `.pub` lines of the sshd lab start prepared for `id`.
    pub(crate) fn set_sshd(&self, id: &str, keys: Vec<String>) {
        lock(&self.sshd).insert(id.to_string(), keys);
    }

    /// Whether `id` has a running sshd with these keys.
    pub(crate) fn has_sshd(&self, id: &str) -> bool {
        lock(&self.sshd).contains_key(id)
    }

    /// The keys the console prints as `inst`'s own: its sshd's, else a derived Ed25519 key.
    pub(crate) fn own(&self, inventory: &Inventory, inst: &InstanceSpec) -> Vec<String> {
        if let Some(keys) = lock(&self.sshd).get(&inst.id) {
            return keys.clone();
        }
        self.derived(inventory, inst, Role::Own, false)
    }

    /// Keys that are not `inst`'s: a derived Ed25519 key, and a derived ECDSA key too when the
    /// instance's own keys include one (a rebuilt instance has every key type anew).
    pub(crate) fn foreign(&self, inventory: &Inventory, inst: &InstanceSpec) -> Vec<String> {
        let with_ecdsa =
            lock(&self.sshd).get(&inst.id).is_some_and(|keys| keys.iter().any(|k| k.starts_with("ecdsa-")));
        self.derived(inventory, inst, Role::Foreign, with_ecdsa)
    }

    fn derived(&self, inventory: &Inventory, inst: &InstanceSpec, role: Role, with_ecdsa: bool) -> Vec<String> {
        let id = inst.id.as_str();
        let key = (id.to_string(), role);
        if let Some(keys) = lock(&self.derived).get(&key) {
            return keys.clone();
        }
        let comment = inst.host_key_comment(&inventory.region);
        let seed = |what: &str| -> [u8; 32] {
            let mut h = sha2::Sha256::new();
            h.update(format!("ec2-lab {role:?} {what} host key\0").as_bytes());
            h.update(inventory.seed.to_le_bytes());
            h.update(id.as_bytes());
            h.finalize().into()
        };
        let mut keys = Vec::new();
        if with_ecdsa {
            let mut rng = StdRng::from_seed(seed("ecdsa"));
            let ecdsa = PrivateKey::random(&mut rng, Algorithm::Ecdsa { curve: EcdsaCurve::NistP256 });
            if let Ok(line) =
                ecdsa.and_then(|k| PublicKey::new(k.public_key().key_data().clone(), comment.as_str()).to_openssh())
            {
                keys.push(line);
            }
        }
        let ed25519 = Ed25519PublicKey::from(&Ed25519PrivateKey::from_bytes(&seed("ed25519")));
        if let Ok(line) = PublicKey::new(KeyData::from(ed25519), comment.as_str()).to_openssh() {
            keys.push(line);
        }
        lock(&self.derived).insert(key, keys.clone());
        keys
    }
}
