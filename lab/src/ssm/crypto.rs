//! The agent's side of KMS session encryption (`ssm-data-channel.md` §11), as the real agent's
//! `agent/session/crypto/blockcipher.go` and `nonce.go` do it: the 64-byte data key splits into
//! the agent→client key (bytes 0–31, the agent encrypts with it) and the client→agent key
//! (bytes 32–63, it decrypts with it); AES-256-GCM, no associated data; the wire form is
//! `nonce(12) ‖ ciphertext ‖ tag(16)`; the agent's nonces are a 96-bit little-endian counter
//! (three little-endian `u32` words, carry upwards) started at a random value. Pure: the random
//! start comes in.

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};

/// Bytes of the data key the client asks KMS for (`NumberOfBytes`, §11).
pub(crate) const DATA_KEY_LEN: usize = 64;
/// AES-GCM nonce length.
const NONCE_LEN: usize = 12;

/// Why a payload did not decrypt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecryptError;

/// Both directions' AES-256-GCM keys of one session and the agent's nonce counter.
pub(crate) struct AgentCipher {
    encrypt: Aes256Gcm,
    decrypt: Aes256Gcm,
    nonce: [u32; 3],
}

impl std::fmt::Debug for AgentCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AgentCipher(<redacted>)")
    }
}

impl AgentCipher {
    /// Splits a 64-byte data key; `None` for any other length (the agent would fail the
    /// session creating its ciphers). `nonce_start` is the counter's random first value.
    pub(crate) fn new(data_key: &[u8], nonce_start: [u8; NONCE_LEN]) -> Option<AgentCipher> {
        if data_key.len() != DATA_KEY_LEN {
            return None;
        }
        let (agent_to_client, client_to_agent) = data_key.split_at(DATA_KEY_LEN / 2);
        let word = |i: usize| u32::from_le_bytes([0, 1, 2, 3].map(|b| nonce_start[4 * i + b]));
        Some(AgentCipher {
            encrypt: Aes256Gcm::new_from_slice(agent_to_client).ok()?,
            decrypt: Aes256Gcm::new_from_slice(client_to_agent).ok()?,
            nonce: [word(0), word(1), word(2)],
        })
    }

    /// Encrypts what the agent sends (Output, StdErr, ExitCode, the challenge).
    pub(crate) fn encrypt(&mut self, plaintext: &[u8]) -> Vec<u8> {
        let nonce = self.next_nonce();
        seal(&self.encrypt, nonce, plaintext)
    }

    /// Decrypts what the client sent with the client→agent key.
    pub(crate) fn decrypt(&self, payload: &[u8]) -> Result<Vec<u8>, DecryptError> {
        open(&self.decrypt, payload)
    }

    /// The current counter as bytes, then the counter plus one (`GenerateNonce`).
    fn next_nonce(&mut self) -> [u8; NONCE_LEN] {
        let mut bytes = [0u8; NONCE_LEN];
        for (i, w) in self.nonce.iter().enumerate() {
            bytes[4 * i..4 * i + 4].copy_from_slice(&w.to_le_bytes());
        }
        for w in &mut self.nonce {
            *w = w.wrapping_add(1);
            if *w != 0 {
                break;
            }
        }
        bytes
    }
}

/// Checks a payload the way an observer holding the session's data key would: whether it is
/// `nonce ‖ ciphertext ‖ tag` under the key for its direction (`agent_to_client` picks bytes
/// 0–31, else 32–63). The service uses it to count plaintext that crossed the websocket.
pub(crate) fn sealed_under(data_key: &[u8], agent_to_client: bool, payload: &[u8]) -> bool {
    let Some(half) = (data_key.len() == DATA_KEY_LEN).then(|| data_key.split_at(DATA_KEY_LEN / 2)) else {
        return false;
    };
    let key = if agent_to_client { half.0 } else { half.1 };
    Aes256Gcm::new_from_slice(key).is_ok_and(|cipher| open(&cipher, payload).is_ok())
}

fn seal(cipher: &Aes256Gcm, nonce: [u8; NONCE_LEN], plaintext: &[u8]) -> Vec<u8> {
    let n = Nonce::<U12>::from(nonce);
    // AES-GCM encryption fails only past 64 GiB per message; payloads here are ≤ 1 KiB.
    let sealed = cipher.encrypt(&n, plaintext).unwrap_or_default();
    [nonce.as_slice(), &sealed].concat()
}

fn open(cipher: &Aes256Gcm, payload: &[u8]) -> Result<Vec<u8>, DecryptError> {
    if payload.len() < NONCE_LEN + 16 {
        return Err(DecryptError);
    }
    let (nonce, sealed) = payload.split_at(NONCE_LEN);
    let n = Nonce::<U12>::try_from(nonce).map_err(|_| DecryptError)?;
    cipher.decrypt(&n, sealed).map_err(|_| DecryptError)
}

/// Seals `plaintext` with a raw 32-byte key and nonce (the KMS double's blobs, tests).
pub(crate) fn seal_with(key: &[u8; 32], nonce: [u8; NONCE_LEN], plaintext: &[u8]) -> Vec<u8> {
    match Aes256Gcm::new_from_slice(key) {
        Ok(cipher) => seal(&cipher, nonce, plaintext),
        Err(_) => Vec::new(),
    }
}

/// Opens what [`seal_with`] made.
pub(crate) fn open_with(key: &[u8; 32], payload: &[u8]) -> Result<Vec<u8>, DecryptError> {
    let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| DecryptError)?;
    open(&cipher, payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    fn vector_key() -> Vec<u8> {
        (0u8..64).collect()
    }

    const NONCE: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];

    /// §16.4, agent→client: the agent's first nonce is its counter's start.
    #[test]
    fn kms_vector_agent_to_client() {
        let mut c = AgentCipher::new(&vector_key(), NONCE).unwrap();
        let want = hex("000102030405060708090a0b 2f67ba77aa 2797ff353b8a046d28236dcd9d057bbb");
        assert_eq!(c.encrypt(b"hello"), want);
        assert!(sealed_under(&vector_key(), true, &want));
        assert!(!sealed_under(&vector_key(), false, &want), "the other direction's key must not open it");
    }

    /// §16.4, client→agent: the agent decrypts with bytes 32–63.
    #[test]
    fn kms_vector_client_to_agent() {
        let c = AgentCipher::new(&vector_key(), [9; 12]).unwrap();
        let payload = hex("000102030405060708090a0b 343731cb25 fb6b6d50e4ed83c749b851c5fa918ab5");
        assert_eq!(c.decrypt(&payload).unwrap(), b"hello");
        assert!(sealed_under(&vector_key(), false, &payload));
        let mut tampered = payload.clone();
        tampered[14] ^= 1;
        assert_eq!(c.decrypt(&tampered), Err(DecryptError));
        assert_eq!(c.decrypt(b"hello"), Err(DecryptError), "plaintext is refused, never passed on");
    }

    #[test]
    fn nonce_counts_up_little_endian_with_carry() {
        let start = [0xff, 0xff, 0xff, 0xff, 7, 0, 0, 0, 0, 0, 0, 0];
        let mut c = AgentCipher::new(&vector_key(), start).unwrap();
        assert_eq!(c.encrypt(b"a")[..12], start);
        assert_eq!(c.encrypt(b"a")[..12], [0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0]);
        assert!(AgentCipher::new(&[0; 32], start).is_none(), "a data key must be 64 bytes");
    }
}
