//! EC2 key pairs (`[[key_pair]]`): what DescribeKeyPairs reports for each, with the fingerprint
//! rules AWS documents, and the demo's `lab-admin` key pair.

use serde::Deserialize;
use sha2::Digest;

use crate::console::KeyLine;

/// The `lab-admin` key pair's public key (a throwaway Ed25519 key made for the lab once with
/// `ssh-keygen -t ed25519 -C lab-admin`; web-1 and api-1 of the demo inventory launched with it).
pub const LAB_ADMIN_PUBLIC_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINYty6T5SkXeQOkFfXnrzMghT3hM1xSvDhM9xqLNTjhH lab-admin";

/// The private half of [`LAB_ADMIN_PUBLIC_KEY`] (OpenSSH format, no passphrase). Lab-only: it
/// guards nothing but lab instances. Write it to a mode-0600 file to use it with `ssh -i`.
pub const LAB_ADMIN_PRIVATE_KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACDWLcuk+UpF3kDpBX1568zIIU94TNcUrw4TPcaizU44RwAAAJA2cooeNnKK
HgAAAAtzc2gtZWQyNTUxOQAAACDWLcuk+UpF3kDpBX1568zIIU94TNcUrw4TPcaizU44Rw
AAAED0YTEvnCErMvwB3KIiVrux5iXxuTV+tcebwVXIciW3T9Yty6T5SkXeQOkFfXnrzMgh
T3hM1xSvDhM9xqLNTjhHAAAACWxhYi1hZG1pbgECAwQ=
-----END OPENSSH PRIVATE KEY-----
";

/// One key pair (`[[key_pair]]`), as if imported with ImportKeyPair.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPairSpec {
    /// `keyName`.
    pub name: String,
    /// The OpenSSH public key line (`ssh-ed25519 AAAA… comment` or `ssh-rsa AAAA… comment`).
    pub public_key: String,
    /// `keyPairId`; absent: `key-` and 17 hex digits derived from the name.
    pub id: Option<String>,
    /// `keyFingerprint` as given, for a key pair that EC2 created: an RSA key pair's
    /// fingerprint is then the SHA-1 of its private key, which the lab does not have. Absent:
    /// the imported-key rule of [`KeyPairSpec::fingerprint`].
    pub fingerprint: Option<String>,
    /// `createTime` (ISO 8601, UTC).
    #[serde(default = "default_create_time")]
    pub create_time: String,
}

impl KeyPairSpec {
    /// `keyPairId`.
    pub fn key_pair_id(&self) -> String {
        if let Some(id) = &self.id {
            return id.clone();
        }
        let digest = sha2::Sha256::digest(self.name.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("key-{}", &hex[..17])
    }

    /// `keyType`: `ed25519` or `rsa` (the only types EC2 accepts).
    pub fn key_type(&self) -> &'static str {
        if self.public_key.trim_start().starts_with("ssh-rsa ") { "rsa" } else { "ed25519" }
    }

    /// `keyFingerprint`. AWS documents (EC2 User Guide, "Verify the fingerprint of your key
    /// pair", and the `KeyPairInfo.KeyFingerprint` API reference): for an **imported** key
    /// pair, RSA is "the MD5 public key fingerprint as specified in section 4 of RFC 4716"
    /// and computed over the public key in DER form (`openssl pkey -pubin -outform DER |
    /// openssl md5 -c`: colon-separated hex); ED25519 is "the base64-encoded SHA-256 digest",
    /// which EC2 may pad with `=` where ssh-keygen does not. So: RSA → MD5 of the DER
    /// SubjectPublicKeyInfo as `aa:bb:…`; Ed25519 → base64 of SHA-256 of the key blob, padded,
    /// without a `SHA256:` prefix. An EC2-created RSA key pair (SHA-1 of its PKCS#8 private
    /// key) needs the `fingerprint` field.
    pub fn fingerprint(&self) -> String {
        if let Some(fp) = &self.fingerprint {
            return fp.clone();
        }
        let Some(key) = KeyLine::parse(&self.public_key) else {
            return String::new();
        };
        if self.key_type() == "rsa" {
            let der = rsa_spki_der(&self.public_key).unwrap_or_default();
            md5::compute(der).0.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
        } else {
            crate::base64::encode(&sha2::Sha256::digest(key.blob()))
        }
    }

    /// The public key as DescribeKeyPairs returns it with `IncludePublicKey`: type and base64,
    /// with the key pair's name as the comment (the AWS CLI examples show `… my-key-pair`).
    pub fn public_key_material(&self) -> String {
        let mut fields = self.public_key.split_whitespace();
        let (kind, base64) = (fields.next().unwrap_or_default(), fields.next().unwrap_or_default());
        format!("{kind} {base64} {}", self.name)
    }
}

/// The DER SubjectPublicKeyInfo of an `ssh-rsa` public key line (what `ssh-keygen -e -m PKCS8`
/// prints as PEM): `SEQUENCE { SEQUENCE { rsaEncryption, NULL }, BIT STRING { SEQUENCE { n, e } } }`.
fn rsa_spki_der(line: &str) -> Option<Vec<u8>> {
    let key = russh::keys::PublicKey::from_openssh(line.trim()).ok()?;
    let rsa = key.key_data().rsa()?;
    // SSH mpints are minimal two's complement, exactly DER INTEGER contents.
    let mut rsa_key = der(0x02, rsa.n().as_bytes());
    rsa_key.extend(der(0x02, rsa.e().as_bytes()));
    let rsa_key = der(0x30, &rsa_key);
    const RSA_ENCRYPTION: [u8; 11] = [0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    let mut algorithm = RSA_ENCRYPTION.to_vec();
    algorithm.extend([0x05, 0x00]);
    let mut bits = vec![0x00];
    bits.extend(rsa_key);
    let mut spki = der(0x30, &algorithm);
    spki.extend(der(0x03, &bits));
    Some(der(0x30, &spki))
}

/// One DER element: tag, definite length, contents.
fn der(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = contents.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(contents);
    out
}

pub(super) fn default_create_time() -> String {
    "2026-10-01T08:00:00.000Z".into()
}
