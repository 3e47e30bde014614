//! What ImportKeyPair accepts as `PublicKeyMaterial` (`../shared/spec/keys-and-shell.md` §3; EC2
//! User Guide, "Create a key pair using a third-party tool and import the public key"): an RSA or
//! ED25519 public key as an OpenSSH line, an RFC 4716 (SSH2) block, or, for RSA, DER
//! SubjectPublicKeyInfo (raw, base64, or PEM `BEGIN PUBLIC KEY`). The User Guide lists RSA
//! lengths 1024, 2048 and 4096, and 3072 imports too (aws/aws-cli#5336): the lab accepts 1024 to
//! 4096 bits. DSA, ECDSA and anything unreadable are `InvalidKey.Format` (the message is EC2's
//! `Key is not in valid OpenSSH public key format`, aws/aws-sdk-js#314).
//!
//! This is the lab's own decoder: it shares no code with the broker's (`src/keys/pair/`), so a
//! bug in one is caught by the other.

/// The `InvalidKey.Format` message.
pub(super) const NOT_A_KEY: &str = "Key is not in valid OpenSSH public key format";
/// RSA moduli the lab imports, in bits (see the module docs).
const RSA_BITS: std::ops::RangeInclusive<usize> = 1024..=4096;
/// DER `rsaEncryption` OID 1.2.840.113549.1.1.1, contents only.
const RSA_OID: [u8; 9] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

/// Decodes `material` (the bytes of the key file) into one OpenSSH line (`ssh-rsa AAAA…` or
/// `ssh-ed25519 AAAA…`, no comment), or `None` when EC2 would refuse it.
pub(super) fn openssh_line(material: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(material).ok().map(str::trim);
    let blob = match text {
        Some(t) if t.starts_with("---- BEGIN SSH2 PUBLIC KEY ----") => ssh2_blob(t)?,
        Some(t) if t.starts_with("-----BEGIN PUBLIC KEY-----") => {
            let body = t.strip_prefix("-----BEGIN PUBLIC KEY-----")?.split("-----END PUBLIC KEY-----").next()?;
            spki_blob(&crate::base64::decode(&body.split_whitespace().collect::<String>())?)?
        }
        Some(t) if t.starts_with("ssh-") => {
            let mut fields = t.split_whitespace();
            let kind = fields.next()?;
            let blob = crate::base64::decode(fields.next()?)?;
            let labelled = *wire_strings(&blob)?.first()? == kind.as_bytes();
            labelled.then_some(blob)?
        }
        Some(t) if !t.is_empty() => spki_blob(&crate::base64::decode(&t.split_whitespace().collect::<String>())?)?,
        _ => spki_blob(material)?,
    };
    check(&blob)?;
    let kind = String::from_utf8(wire_strings(&blob)?[0].to_vec()).ok()?;
    Some(format!("{kind} {}", crate::base64::encode(&blob)))
}

/// The key blob of an RFC 4716 block: header lines (`Key: value`, `\` continues) skipped.
fn ssh2_blob(text: &str) -> Option<Vec<u8>> {
    let body = text.strip_prefix("---- BEGIN SSH2 PUBLIC KEY ----")?;
    let (body, _) = body.split_once("---- END SSH2 PUBLIC KEY ----")?;
    let mut data = String::new();
    let mut continued = false;
    for line in body.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if continued || line.contains(':') {
            continued = line.ends_with('\\');
        } else {
            data += line;
        }
    }
    crate::base64::decode(&data)
}

/// Only `ssh-ed25519` with 32 bytes and `ssh-rsa` of [`RSA_BITS`] pass.
fn check(blob: &[u8]) -> Option<()> {
    let parts = wire_strings(blob)?;
    match (parts.first().copied()?, parts.len()) {
        (b"ssh-ed25519", 2) => (parts[1].len() == 32).then_some(()),
        (b"ssh-rsa", 3) => {
            let n = parts[2];
            let n = &n[n.iter().position(|b| *b != 0)?..];
            let bits = (n.len() - 1) * 8 + (8 - n[0].leading_zeros() as usize);
            RSA_BITS.contains(&bits).then_some(())
        }
        _ => None,
    }
}

/// Every SSH wire string (`uint32` length, bytes) of `blob`; `None` unless they fill it exactly.
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

/// An RSA SubjectPublicKeyInfo (`SEQUENCE { SEQUENCE { rsaEncryption, NULL }, BIT STRING {
/// SEQUENCE { n, e } } }`) as an `ssh-rsa` blob.
fn spki_blob(der: &[u8]) -> Option<Vec<u8>> {
    let (spki, rest) = tlv(der, 0x30)?;
    if !rest.is_empty() {
        return None;
    }
    let (algorithm, rest) = tlv(spki, 0x30)?;
    let (oid, _) = tlv(algorithm, 0x06)?;
    if oid != RSA_OID {
        return None;
    }
    let (bits, _) = tlv(rest, 0x03)?;
    let (rsa, _) = tlv(bits.strip_prefix(&[0])?, 0x30)?;
    let (n, rest) = tlv(rsa, 0x02)?;
    let (e, _) = tlv(rest, 0x02)?;
    let mut blob = Vec::new();
    for part in [&b"ssh-rsa"[..], e, n] {
        blob.extend(u32::try_from(part.len()).ok()?.to_be_bytes());
        blob.extend(part);
    }
    Some(blob)
}

/// One DER element of tag `tag` at the start of `der`: (contents, what follows).
fn tlv(der: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&t, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    if t != tag {
        return None;
    }
    let (len, rest) = match first {
        0..=0x7f => (usize::from(first), rest),
        0x81..=0x84 => {
            let n = usize::from(first & 0x7f);
            let bytes = rest.get(..n)?;
            (bytes.iter().fold(0usize, |acc, b| acc << 8 | usize::from(*b)), &rest[n..])
        }
        _ => return None,
    };
    Some((rest.get(..len)?, &rest[len..]))
}
