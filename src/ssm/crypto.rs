//! KMS session encryption of the data channel, given the key material: no I/O, no KMS call
//! (`../shared/spec/ssm-data-channel.md` §11, pinned by the §16.4 vectors in the tests below).
//!
//! The 64-byte data key KMS generates is split in two AES-256-GCM keys: bytes 0–31 encrypt what
//! the agent sends (we decrypt with them), bytes 32–63 what we send. A payload on the wire is
//! `nonce(12) ‖ ciphertext ‖ tag(16)`, with no associated data; our nonces are random per message.
//! Every copy of key material is zeroized when dropped.

use std::fmt;

use aes_gcm::aead::{Aead, Nonce};
use aes_gcm::{Aes256Gcm, KeyInit};
use zeroize::Zeroizing;

/// Bytes of data key the session asks KMS for (`NumberOfBytes`, §11.2).
pub(crate) const DATA_KEY_LEN: usize = 64;
/// One direction's AES-256 key.
const KEY_LEN: usize = 32;
/// AES-GCM nonce, sent in front of each ciphertext.
const NONCE_LEN: usize = 12;
/// AES-GCM tag, after the ciphertext.
const TAG_LEN: usize = 16;
/// What encryption adds to a payload (§5: a 1024-byte chunk grows to 1052).
pub(crate) const OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// A data key from KMS `GenerateDataKey`: the blob the agent decrypts, and the plaintext key.
#[derive(Clone)]
pub(crate) struct DataKey {
    /// `CiphertextBlob`: sent to the agent as `KMSCipherTextKey` (not secret without KMS access).
    pub ciphertext: Vec<u8>,
    /// `Plaintext`: the 64 key bytes (zeroized on drop, never printed).
    pub plaintext: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKey")
            .field("ciphertext_len", &self.ciphertext.len())
            .field("plaintext", &"<redacted>")
            .finish()
    }
}

/// Why a payload could not be encrypted or decrypted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CryptoError {
    /// KMS gave a key of the wrong size.
    #[error("the KMS data key has {0} bytes where {DATA_KEY_LEN} were asked for")]
    KeyLength(usize),
    /// Too short to hold a nonce and a tag.
    #[error("an encrypted payload of {0} bytes is shorter than its nonce and tag ({OVERHEAD} bytes)")]
    Truncated(usize),
    /// The tag does not match: another key, or bytes changed on the way.
    #[error("an encrypted payload does not decrypt with the session key (wrong key, or altered in transit)")]
    Authentication,
}

/// The two directions' ciphers of one session.
pub(crate) struct SessionCipher {
    /// Decrypts what the agent sends (data key bytes 0–31).
    agent: Aes256Gcm,
    /// Encrypts what we send (data key bytes 32–63).
    client: Aes256Gcm,
}

impl fmt::Debug for SessionCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionCipher(<redacted>)")
    }
}

impl SessionCipher {
    /// Splits the 64-byte plaintext data key (§11.5).
    pub(crate) fn new(plaintext: &[u8]) -> Result<SessionCipher, CryptoError> {
        if plaintext.len() != DATA_KEY_LEN {
            return Err(CryptoError::KeyLength(plaintext.len()));
        }
        let (agent, client) = plaintext.split_at(KEY_LEN);
        // Both halves are exactly 32 bytes, the one length AES-256 accepts.
        let agent = Aes256Gcm::new_from_slice(agent).map_err(|_| CryptoError::KeyLength(plaintext.len()))?;
        let client = Aes256Gcm::new_from_slice(client).map_err(|_| CryptoError::KeyLength(plaintext.len()))?;
        Ok(SessionCipher { agent, client })
    }

    /// Encrypts a payload we send, with a fresh random nonce.
    pub(crate) fn encrypt(&self, plaintext: &[u8]) -> Vec<u8> {
        self.encrypt_with_nonce(rand::random(), plaintext)
    }

    /// Decrypts a payload the agent sent.
    pub(crate) fn decrypt(&self, payload: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        open(&self.agent, payload)
    }

    /// Encrypts with a given nonce: the seam the §16.4 vectors pin.
    fn encrypt_with_nonce(&self, nonce: [u8; NONCE_LEN], plaintext: &[u8]) -> Vec<u8> {
        seal(&self.client, nonce, plaintext)
    }
}

fn seal(cipher: &Aes256Gcm, nonce: [u8; NONCE_LEN], plaintext: &[u8]) -> Vec<u8> {
    let n: Nonce<Aes256Gcm> = nonce.into();
    // AES-GCM fails only past 64 GiB of plaintext; payloads are at most a few KiB.
    let sealed = cipher.encrypt(&n, plaintext).expect("AES-GCM seals payloads under 64 GiB");
    let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    out
}

fn open(cipher: &Aes256Gcm, payload: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    if payload.len() < OVERHEAD {
        return Err(CryptoError::Truncated(payload.len()));
    }
    let (nonce, sealed) = payload.split_at(NONCE_LEN);
    let mut n = [0u8; NONCE_LEN];
    n.copy_from_slice(nonce);
    let n: Nonce<Aes256Gcm> = n.into();
    cipher.decrypt(&n, sealed).map(Zeroizing::new).map_err(|_| CryptoError::Authentication)
}

#[cfg(test)]
/// The agent's side of the cipher, for the fake agent of the session tests.
pub(crate) struct AgentCipher(SessionCipher);

#[cfg(test)]
impl AgentCipher {
    pub(crate) fn new(plaintext: &[u8]) -> AgentCipher {
        AgentCipher(SessionCipher::new(plaintext).unwrap())
    }

    /// Encrypts as the agent does (bytes 0–31).
    pub(crate) fn encrypt(&self, plaintext: &[u8]) -> Vec<u8> {
        seal(&self.0.agent, rand::random(), plaintext)
    }

    /// Decrypts what the client sent (bytes 32–63).
    pub(crate) fn decrypt(&self, payload: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        open(&self.0.client, payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    fn spec_key() -> Vec<u8> {
        (0u8..64).collect()
    }

    const NONCE: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];

    // §16.4: client→agent payload of "hello" with nonce 00..0b, key bytes 32–63.
    #[test]
    fn spec_16_4_client_to_agent_vector() {
        let c = SessionCipher::new(&spec_key()).unwrap();
        let sealed = c.encrypt_with_nonce(NONCE, b"hello");
        assert_eq!(sealed, hex("000102030405060708090a0b 343731cb25 fb6b6d50e4ed83c749b851c5fa918ab5"));
        assert_eq!(sealed.len(), 5 + OVERHEAD);
        // The agent (bytes 32–63 to decrypt) reads it back.
        assert_eq!(&*AgentCipher::new(&spec_key()).decrypt(&sealed).unwrap(), b"hello");
    }

    // §16.4: agent→client payload of "hello", decrypted with key bytes 0–31.
    #[test]
    fn spec_16_4_agent_to_client_vector() {
        let c = SessionCipher::new(&spec_key()).unwrap();
        let payload = hex("000102030405060708090a0b 2f67ba77aa 2797ff353b8a046d28236dcd9d057bbb");
        assert_eq!(&*c.decrypt(&payload).unwrap(), b"hello");
        // And the agent's side seals it the same way with the same nonce.
        assert_eq!(seal(&c.agent, NONCE, b"hello"), payload);
    }

    #[test]
    fn the_two_directions_use_different_keys() {
        let c = SessionCipher::new(&spec_key()).unwrap();
        let ours = c.encrypt(b"hello");
        // Our own payload does not decrypt with the agent→client key: the halves are not mixed up.
        assert_eq!(c.decrypt(&ours), Err(CryptoError::Authentication));
        assert_eq!(&*AgentCipher::new(&spec_key()).decrypt(&ours).unwrap(), b"hello");
    }

    #[test]
    fn nonces_are_fresh_per_message() {
        let c = SessionCipher::new(&spec_key()).unwrap();
        let (a, b) = (c.encrypt(b"same"), c.encrypt(b"same"));
        assert_ne!(a[..NONCE_LEN], b[..NONCE_LEN]);
    }

    #[test]
    fn altered_short_and_foreign_payloads_are_refused() {
        let c = SessionCipher::new(&spec_key()).unwrap();
        let mut payload = hex("000102030405060708090a0b 2f67ba77aa 2797ff353b8a046d28236dcd9d057bbb");
        payload[13] ^= 1;
        assert_eq!(c.decrypt(&payload), Err(CryptoError::Authentication));
        assert_eq!(c.decrypt(&[0u8; 27]), Err(CryptoError::Truncated(27)));
        assert_eq!(c.decrypt(b""), Err(CryptoError::Truncated(0)));
        let other: Vec<u8> = (100u8..164).collect();
        let foreign = AgentCipher::new(&other).encrypt(b"hello");
        assert_eq!(c.decrypt(&foreign), Err(CryptoError::Authentication));
    }

    #[test]
    fn a_key_of_the_wrong_size_is_refused() {
        assert_eq!(SessionCipher::new(&[0u8; 32]).unwrap_err(), CryptoError::KeyLength(32));
        assert_eq!(SessionCipher::new(&[0u8; 65]).unwrap_err(), CryptoError::KeyLength(65));
    }

    #[test]
    fn key_material_is_not_printed() {
        let key = DataKey { ciphertext: vec![1, 2, 3], plaintext: Zeroizing::new(spec_key()) };
        let shown = format!("{key:?} {:?}", SessionCipher::new(&spec_key()).unwrap());
        assert!(!shown.contains("32, 33"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }
}
