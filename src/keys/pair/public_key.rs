//! A public key to import as an EC2 key pair: read from the forms ImportKeyPair accepts, checked
//! against what EC2 takes and what the broker recommends, and fingerprinted the way EC2 shows it.
//! Pure: no I/O.
//!
//! Forms (`../shared/spec/keys-and-shell.md` §3, EC2 User Guide "Create a key pair using a
//! third-party tool"): an OpenSSH line (`ssh-ed25519 AAAA… comment`), an RFC 4716 (SSH2) block,
//! and for RSA the DER SubjectPublicKeyInfo, raw, base64 or PEM (`BEGIN PUBLIC KEY`).
//!
//! Types: EC2 imports RSA and ED25519 only (DSA and ECDSA are `InvalidKey.Format`). It also
//! imports RSA of 1024 bits, which the broker refuses: keys under 2048 bits are within reach of
//! factoring, and OpenSSH refuses them since 8.2 (`RequiredRSASize` 1024 since 9.1 is only the
//! floor). Over 4096 bits is past EC2's documented lengths (1024, 2048, 4096; 3072 imports).

use russh::keys::ssh_key::encoding::base64::{Base64, Encoding};
use sha2::{Digest, Sha256};

/// The smallest RSA modulus the broker imports, in bits (see the module docs).
pub(crate) const MIN_RSA_BITS: usize = 2048;
/// The largest RSA modulus EC2 documents for ImportKeyPair, in bits.
pub(crate) const MAX_RSA_BITS: usize = 4096;
/// What every refusal suggests instead.
const MAKE_ONE: &str = "make an Ed25519 key with `ec2-broker key new` and import its .pub";
/// DER contents of the `rsaEncryption` OID (1.2.840.113549.1.1.1).
const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// DER contents of the `id-dsa` OID (1.2.840.10040.4.1).
const OID_DSA: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x01];
/// DER contents of the `id-ecPublicKey` OID (1.2.840.10045.2.1).
const OID_EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];

/// Reads a key file (public, or an OpenSSH private key), refusing one larger than 64 KiB: no
/// key file is, and a wrong path could name a huge file.
pub(crate) fn read_key_file(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    const MAX_PUBLIC_KEY_FILE: u64 = 64 * 1024;
    let len = std::fs::metadata(path)?.len();
    if len > MAX_PUBLIC_KEY_FILE {
        let why = format!("{len} bytes: not a key file");
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, why));
    }
    std::fs::read(path)
}

/// A public key EC2 will import and the broker recommends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ImportableKey {
    kind: KeyKind,
    /// The SSH wire blob (`string type, …`).
    blob: Vec<u8>,
    /// What goes to EC2 as `PublicKeyMaterial`: the OpenSSH line, else the file as given.
    material: Vec<u8>,
}

/// The two key types EC2 imports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    /// RSA, with the modulus length in bits.
    Rsa {
        /// Modulus length.
        bits: usize,
    },
    /// Ed25519.
    Ed25519,
}

/// Why a key is not imported. Each message says what to do instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum KeyRefused {
    /// RSA below [`MIN_RSA_BITS`] (EC2 would take 1024).
    #[error(
        "an RSA key of {bits} bits is too weak to import (at least {MIN_RSA_BITS} bits; OpenSSH 8.2 and later refuse RSA keys under 1024 bits and warn below 2048): {MAKE_ONE}"
    )]
    RsaTooShort {
        /// Modulus length.
        bits: usize,
    },
    /// RSA above [`MAX_RSA_BITS`].
    #[error("an RSA key of {bits} bits is longer than EC2 imports (at most {MAX_RSA_BITS} bits): {MAKE_ONE}")]
    RsaTooLong {
        /// Modulus length.
        bits: usize,
    },
    /// DSA (`ssh-dss`): EC2 refuses it, OpenSSH disabled it in 7.0 and removed it in 9.8.
    #[error(
        "a DSA key cannot be imported: EC2 accepts only RSA and ED25519, and OpenSSH dropped DSA (disabled in 7.0): {MAKE_ONE}"
    )]
    Dsa,
    /// ECDSA, security keys or another type EC2 does not import.
    #[error("a {kind} key cannot be imported: EC2 accepts only RSA and ED25519 keys: {MAKE_ONE}")]
    UnsupportedType {
        /// The key type as the file names it.
        kind: String,
    },
    /// A private key where the public one was expected.
    #[error("this is a private key: pass the public key (the .pub file beside it); nothing was sent")]
    PrivateKey,
    /// Not a public key in a form EC2 reads.
    #[error("not a public key EC2 can read ({why}): give an OpenSSH .pub file, or {MAKE_ONE}")]
    Unreadable {
        /// What is wrong.
        why: &'static str,
    },
}

impl ImportableKey {
    /// Reads and checks the bytes of a public-key file.
    pub(crate) fn parse(file: &[u8]) -> Result<ImportableKey, KeyRefused> {
        let unreadable = |why| KeyRefused::Unreadable { why };
        let text = std::str::from_utf8(file).ok().map(str::trim);
        if text.is_some_and(|t| t.starts_with("-----BEGIN") && t.contains("PRIVATE KEY-----")) {
            return Err(KeyRefused::PrivateKey);
        }
        let (blob, material) = match text {
            Some(t) if t.starts_with("---- BEGIN SSH2 PUBLIC KEY ----") => (ssh2_blob(t)?, file.to_vec()),
            Some(t) if t.starts_with("-----BEGIN PUBLIC KEY-----") => {
                let body = t["-----BEGIN PUBLIC KEY-----".len()..]
                    .split("-----END PUBLIC KEY-----")
                    .next()
                    .unwrap_or_default();
                (spki_blob(&decode(body).ok_or(unreadable("the PEM body is not base64"))?)?, file.to_vec())
            }
            Some(t) if t.starts_with("-----BEGIN") => return Err(unreadable("a PEM block other than PUBLIC KEY")),
            Some(t) if !t.is_empty() && !t.contains(char::is_whitespace) && decode(t).is_some() => {
                (spki_blob(&decode(t).unwrap_or_default())?, file.to_vec())
            }
            Some(t) if !t.is_empty() => {
                let line = t.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#')).unwrap_or_default();
                let mut fields = line.split_whitespace();
                let kind = fields.next().unwrap_or_default();
                let blob = fields.next().and_then(decode).ok_or(unreadable("no base64 key after the type"))?;
                if wire_strings(&blob).and_then(|p| p.first().copied()) != Some(kind.as_bytes()) {
                    return Err(unreadable("the key data does not match its type"));
                }
                (blob, line.as_bytes().to_vec())
            }
            Some(_) => return Err(unreadable("the file is empty")),
            None => (spki_blob(file)?, file.to_vec()),
        };
        let kind = kind_of(&blob)?;
        Ok(ImportableKey { kind, blob, material })
    }

    /// RSA or Ed25519, with the RSA length.
    pub(crate) fn kind(&self) -> KeyKind {
        self.kind
    }

    /// `rsa` or `ed25519`, as DescribeKeyPairs' `keyType`.
    pub(crate) fn key_type(&self) -> &'static str {
        match self.kind {
            KeyKind::Rsa { .. } => "rsa",
            KeyKind::Ed25519 => "ed25519",
        }
    }

    /// The bytes to send as `PublicKeyMaterial`.
    pub(crate) fn material(&self) -> &[u8] {
        &self.material
    }

    /// The fingerprint EC2 shows for this key imported (EC2 User Guide, "Verify your key pair's
    /// fingerprint", checked against AWS in `keys-and-shell.md` §3): RSA, the MD5 of the DER
    /// SubjectPublicKeyInfo as colon-separated hex (not the RFC 4716 MD5 of the SSH blob the
    /// API reference names); Ed25519, the base64 SHA-256 of the SSH blob, `=`-padded, without
    /// `SHA256:`.
    pub(crate) fn ec2_fingerprint(&self) -> String {
        match self.kind {
            KeyKind::Rsa { .. } => {
                let digest = md5::compute(rsa_spki(&self.blob)).0;
                digest.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
            }
            KeyKind::Ed25519 => Base64::encode_string(&Sha256::digest(&self.blob)),
        }
    }

    /// `SHA256:…` as `ssh-keygen -l` prints it (unpadded).
    pub(crate) fn ssh_fingerprint(&self) -> String {
        format!("SHA256:{}", Base64::encode_string(&Sha256::digest(&self.blob)).trim_end_matches('='))
    }

    /// Whether an OpenSSH line (DescribeKeyPairs' `publicKey`) holds this key.
    pub(crate) fn same_as_line(&self, line: &str) -> bool {
        line.split_whitespace().nth(1).and_then(decode).is_some_and(|b| b == self.blob)
    }
}

/// Decodes standard base64 ignoring whitespace inside.
fn decode(text: &str) -> Option<Vec<u8>> {
    Base64::decode_vec(&text.split_whitespace().collect::<String>()).ok()
}

/// The type and checks of an SSH blob.
fn kind_of(blob: &[u8]) -> Result<KeyKind, KeyRefused> {
    let parts = wire_strings(blob).ok_or(KeyRefused::Unreadable { why: "the key data is truncated" })?;
    let kind = String::from_utf8_lossy(parts.first().copied().unwrap_or_default()).into_owned();
    match (kind.as_str(), parts.as_slice()) {
        ("ssh-ed25519", [_, point]) if point.len() == 32 => Ok(KeyKind::Ed25519),
        ("ssh-rsa", [_, _e, n]) => {
            let bits = bit_length(n);
            match bits {
                b if b < MIN_RSA_BITS => Err(KeyRefused::RsaTooShort { bits }),
                b if b > MAX_RSA_BITS => Err(KeyRefused::RsaTooLong { bits }),
                _ => Ok(KeyKind::Rsa { bits }),
            }
        }
        ("ssh-dss", _) => Err(KeyRefused::Dsa),
        ("ssh-ed25519" | "ssh-rsa", _) => Err(KeyRefused::Unreadable { why: "the key data is malformed" }),
        _ => Err(KeyRefused::UnsupportedType { kind }),
    }
}

/// Bits of a big-endian unsigned integer (leading zero bytes ignored).
fn bit_length(n: &[u8]) -> usize {
    let n = &n[n.iter().position(|b| *b != 0).unwrap_or(n.len())..];
    n.first().map_or(0, |top| (n.len() - 1) * 8 + (8 - top.leading_zeros() as usize))
}

/// The blob of an RFC 4716 block (headers `Key: value`, `\` continuing a header, skipped).
fn ssh2_blob(text: &str) -> Result<Vec<u8>, KeyRefused> {
    let unreadable = |why| KeyRefused::Unreadable { why };
    let (body, _) = text["---- BEGIN SSH2 PUBLIC KEY ----".len()..]
        .split_once("---- END SSH2 PUBLIC KEY ----")
        .ok_or(unreadable("the SSH2 block has no END line"))?;
    let mut data = String::new();
    let mut continued = false;
    for line in body.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if continued || line.contains(':') {
            continued = line.ends_with('\\');
        } else {
            data += line;
        }
    }
    decode(&data).ok_or(unreadable("the SSH2 block is not base64"))
}

/// Every SSH wire string (`uint32` length, bytes) of `blob`, which they must fill exactly.
fn wire_strings(mut blob: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    while !blob.is_empty() {
        let (len, rest) = blob.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
        out.push(rest.get(..len)?);
        blob = &rest[len..];
    }
    Some(out)
}

/// A DER SubjectPublicKeyInfo as an SSH blob: RSA only (DSA and EC named as such).
fn spki_blob(der: &[u8]) -> Result<Vec<u8>, KeyRefused> {
    let bad = KeyRefused::Unreadable { why: "not an OpenSSH key, SSH2 block or DER SubjectPublicKeyInfo" };
    let (spki, _) = element(der, 0x30).ok_or(bad.clone())?;
    let (algorithm, rest) = element(spki, 0x30).ok_or(bad.clone())?;
    let (oid, _) = element(algorithm, 0x06).ok_or(bad.clone())?;
    match oid {
        OID_RSA => {}
        OID_DSA => return Err(KeyRefused::Dsa),
        OID_EC => return Err(KeyRefused::UnsupportedType { kind: "ECDSA".into() }),
        _ => return Err(KeyRefused::Unreadable { why: "EC2 reads DER and PEM keys only for RSA" }),
    }
    let (bits, _) = element(rest, 0x03).ok_or(bad.clone())?;
    let (rsa, _) = bits.strip_prefix(&[0]).and_then(|b| element(b, 0x30)).ok_or(bad.clone())?;
    let (n, rest) = element(rsa, 0x02).ok_or(bad.clone())?;
    let (e, _) = element(rest, 0x02).ok_or(bad)?;
    let mut blob = Vec::new();
    for part in [&b"ssh-rsa"[..], e, n] {
        blob.extend((part.len() as u32).to_be_bytes());
        blob.extend(part);
    }
    Ok(blob)
}

/// The DER SubjectPublicKeyInfo of an `ssh-rsa` blob (what `ssh-keygen -e -m PKCS8` prints).
fn rsa_spki(blob: &[u8]) -> Vec<u8> {
    let parts = wire_strings(blob).unwrap_or_default();
    let (e, n) = match parts.as_slice() {
        [_, e, n] => (*e, *n),
        _ => (&[][..], &[][..]),
    };
    // SSH mpints are minimal two's complement, exactly DER INTEGER contents.
    let mut key = der(0x02, n);
    key.extend(der(0x02, e));
    let mut bits = vec![0];
    bits.extend(der(0x30, &key));
    let mut algorithm = der(0x06, OID_RSA);
    algorithm.extend([0x05, 0x00]);
    let mut spki = der(0x30, &algorithm);
    spki.extend(der(0x03, &bits));
    der(0x30, &spki)
}

/// One DER element: tag, definite length, contents.
fn der(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    match contents.len() {
        len @ 0..=0x7f => out.push(len as u8),
        len => {
            let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
            out.push(0x80 | bytes.len() as u8);
            out.extend(bytes);
        }
    }
    out.extend_from_slice(contents);
    out
}

/// The element of `tag` at the start of `der`: (contents, what follows).
fn element(der: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&t, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = match first {
        0..=0x7f => (usize::from(first), rest),
        0x81..=0x84 => {
            let n = usize::from(first & 0x7f);
            let bytes = rest.get(..n)?;
            (bytes.iter().fold(0usize, |acc, b| acc << 8 | usize::from(*b)), &rest[n..])
        }
        _ => return None,
    };
    (t == tag).then_some(())?;
    Some((rest.get(..len)?, &rest[len..]))
}

#[cfg(test)]
mod tests;
