//! `ssh-keygen -l` lines for `.pub` lines: the `SHA256:` form OpenSSH prints since 6.8 and the
//! colon-separated MD5 hex form older OpenSSH printed (`../shared/spec/aws-apis.md` §6.1).

use russh::keys::{Algorithm, EcdsaCurve, HashAlg, PublicKey};

/// Which fingerprint a fingerprint line shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FingerprintForm {
    /// `SHA256:<43 base64 characters>`, as `ssh-keygen -l` prints it (OpenSSH 6.8 and later).
    Sha256,
    /// The MD5 of the key blob as 16 colon-separated lower-case hex bytes, with no `MD5:`
    /// prefix, as OpenSSH before 6.8 printed it (`ssh-keygen -l -E md5` prints the same after
    /// `MD5:`).
    Md5,
}

/// One parsed `.pub` line.
#[derive(Debug, Clone)]
pub struct KeyLine {
    key: PublicKey,
}

impl KeyLine {
    /// Parses `<type> <base64> [comment]`; `None` when it is not a public key OpenSSH would read.
    pub fn parse(line: &str) -> Option<KeyLine> {
        PublicKey::from_openssh(line.trim()).ok().map(|key| KeyLine { key })
    }

    /// The fingerprint in `form`.
    pub fn fingerprint(&self, form: FingerprintForm) -> String {
        match form {
            FingerprintForm::Sha256 => self.key.fingerprint(HashAlg::Sha256).to_string(),
            FingerprintForm::Md5 => {
                let digest = md5::compute(self.blob());
                digest.0.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
            }
        }
    }

    /// The key blob (the SSH wire encoding the base64 field holds).
    pub fn blob(&self) -> Vec<u8> {
        // Encoding a key that was just decoded cannot fail; an empty blob would only give a
        // fingerprint that matches nothing.
        self.key.to_bytes().unwrap_or_default()
    }

    /// The key size `ssh-keygen -l` prints: the RSA modulus bits, the curve size, 256 for
    /// Ed25519, 1024 for DSA (the only size OpenSSH makes).
    pub fn bits(&self) -> u32 {
        match self.key.algorithm() {
            Algorithm::Rsa { .. } => self.key.key_data().rsa().map_or(0, |k| k.key_size()),
            Algorithm::Ecdsa { curve: EcdsaCurve::NistP256 } => 256,
            Algorithm::Ecdsa { curve: EcdsaCurve::NistP384 } => 384,
            Algorithm::Ecdsa { curve: EcdsaCurve::NistP521 } => 521,
            Algorithm::Dsa => 1024,
            _ => 256,
        }
    }

    /// The type in parentheses at the end of an `ssh-keygen -l` line.
    pub fn type_label(&self) -> &'static str {
        match self.key.algorithm() {
            Algorithm::Rsa { .. } => "RSA",
            Algorithm::Ecdsa { .. } => "ECDSA",
            Algorithm::Ed25519 => "ED25519",
            Algorithm::Dsa => "DSA",
            Algorithm::SkEcdsaSha2NistP256 => "ECDSA-SK",
            Algorithm::SkEd25519 => "ED25519-SK",
            _ => "UNKNOWN",
        }
    }

    /// The comment, or `no comment` as `ssh-keygen -l` prints an empty one.
    pub fn comment(&self) -> String {
        let comment = self.key.comment().as_str_lossy().to_string();
        if comment.is_empty() { "no comment".into() } else { comment }
    }

    /// The line `ssh-keygen -l -f <file>.pub` prints: `<bits> <fingerprint> <comment> (<TYPE>)`.
    /// In the MD5 form the fingerprint is followed by two spaces, as the spec's legacy example
    /// (`2048 aa:bb:…:ff  root@host (RSA)`) shows.
    pub fn keygen_line(&self, form: FingerprintForm) -> String {
        let separator = if form == FingerprintForm::Md5 { "  " } else { " " };
        format!("{} {}{separator}{} ({})", self.bits(), self.fingerprint(form), self.comment(), self.type_label())
    }
}
