//! The checks EC2 Instance Connect makes of a pushed public key and OS user
//! (`../shared/spec/aws-apis.md` §2.1, issue 18 items 4, 5 and 8): the model's length and
//! pattern constraints, then the key itself as the EC2 User Guide's "requirements for key pairs"
//! describe it: RSA (2048 to 4096 bits) or ED25519, in OpenSSH or SSH2 (RFC 4716) format, whose
//! base64 decodes to a blob of the named type. ECDSA and security-key types are refused (not a
//! documented Instance Connect type, and the on-instance parser would never offer them).

/// The model's length bounds of `SSHPublicKey`, in characters.
pub(super) const KEY_LEN: std::ops::RangeInclusive<usize> = 80..=4096;
/// "For EC2 Instance Connect the supported lengths are 2048 and 4096" (EC2 User Guide); the lab
/// accepts the range between.
const RSA_BITS: std::ops::RangeInclusive<usize> = 2048..=4096;

/// Checks `key` and returns it as the service stores it: one OpenSSH line, trimmed (an SSH2
/// key is turned into that form), so the metadata blob never gets an empty line from a trailing
/// newline. `Err` is the `InvalidArgsException` message.
pub(super) fn normalize(key: &str) -> Result<String, String> {
    if !KEY_LEN.contains(&key.chars().count()) {
        return Err(format!("SSHPublicKey must be between {} and {} characters", KEY_LEN.start(), KEY_LEN.end()));
    }
    let key = key.trim();
    let (kind, base64, comment) = match key.strip_prefix("---- BEGIN SSH2 PUBLIC KEY ----") {
        Some(rest) => ssh2(rest)?,
        None => {
            if key.contains(['\n', '\r']) {
                return Err("SSHPublicKey must be a single line in OpenSSH format".into());
            }
            let mut fields = key.split_whitespace();
            let kind = fields.next().unwrap_or_default().to_string();
            let base64 = fields.next().ok_or("SSHPublicKey has no key data")?.to_string();
            let comment: Vec<&str> = fields.collect();
            (kind, base64, comment.join(" "))
        }
    };
    let blob = crate::base64::decode(&base64).ok_or("SSHPublicKey's key data is not valid base64")?;
    check_blob(&kind, &blob)?;
    Ok(if comment.is_empty() { format!("{kind} {base64}") } else { format!("{kind} {base64} {comment}") })
}

/// An RFC 4716 body (after the BEGIN line): headers, base64 lines, the END line.
fn ssh2(rest: &str) -> Result<(String, String, String), String> {
    let body = rest.split("---- END SSH2 PUBLIC KEY ----").next().unwrap_or_default();
    if !rest.contains("---- END SSH2 PUBLIC KEY ----") {
        return Err("SSHPublicKey in SSH2 format has no END line".into());
    }
    let mut base64 = String::new();
    let mut comment = String::new();
    let mut continued = false;
    for line in body.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if continued || line.contains(':') {
            continued = line.ends_with('\\');
            if let Some(value) = line.strip_prefix("Comment:") {
                comment = value.trim().trim_matches('"').to_string();
            }
            continue;
        }
        base64 += line;
    }
    let blob = crate::base64::decode(&base64).ok_or("SSHPublicKey's key data is not valid base64")?;
    let kind = Reader(&blob).string().map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default();
    Ok((kind, base64, comment))
}

fn check_blob(kind: &str, blob: &[u8]) -> Result<(), String> {
    let mut r = Reader(blob);
    let inner = r.string().ok_or("SSHPublicKey's key data is truncated")?;
    if inner != kind.as_bytes() {
        return Err(format!("SSHPublicKey's key data is not a {kind} key"));
    }
    match kind {
        "ssh-ed25519" => {
            let point = r.string().ok_or("SSHPublicKey's key data is truncated")?;
            if point.len() != 32 || !r.0.is_empty() {
                return Err("SSHPublicKey is not a valid ED25519 key".into());
            }
        }
        "ssh-rsa" => {
            let _e = r.string().ok_or("SSHPublicKey's key data is truncated")?;
            let n = r.string().ok_or("SSHPublicKey's key data is truncated")?;
            if !r.0.is_empty() {
                return Err("SSHPublicKey is not a valid RSA key".into());
            }
            let n = match n.iter().position(|b| *b != 0) {
                Some(first) => &n[first..],
                None => &[][..],
            };
            let bits = n.first().map_or(0, |top| (n.len() - 1) * 8 + (8 - top.leading_zeros() as usize));
            if !RSA_BITS.contains(&bits) {
                return Err(format!(
                    "RSA keys must be {} to {} bits long, not {bits}",
                    RSA_BITS.start(),
                    RSA_BITS.end()
                ));
            }
        }
        other => {
            return Err(format!("Unsupported key type {other}: use an RSA (2048 to 4096 bits) or ED25519 key"));
        }
    }
    Ok(())
}

/// SSH wire-format strings (`uint32` length, bytes).
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn string(&mut self) -> Option<&'a [u8]> {
        let (len, rest) = self.0.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
        let value = rest.get(..len)?;
        self.0 = &rest[len..];
        Some(value)
    }
}

/// `InstanceOSUser`: 1–32 characters matching either alternative of the model's pattern
/// `(^[A-Za-z_][A-Za-z0-9\@\._-]{0,30}[A-Za-z0-9\$_-]?$)|(^(?=.{2,32}$)[0-9]{1,32}[A-Za-z\@\._-][A-Za-z0-9\@\._-]*[A-Za-z0-9\$_-]?$)`.
pub(super) fn valid_os_user(user: &str) -> bool {
    let b = user.as_bytes();
    (1..=32).contains(&b.len()) && (letter_led(b) || digit_led(b))
}

fn middle(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'@' | b'.' | b'_' | b'-')
}

fn last(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'$' | b'_' | b'-')
}

/// `rest` is `[middle]{0,max}[last]?`.
fn tail(rest: &[u8], max: Option<usize>) -> bool {
    let fits = |n: usize| max.is_none_or(|m| n <= m);
    let all_middle = rest.iter().all(|&c| middle(c)) && fits(rest.len());
    let with_last = match rest.split_last() {
        Some((&l, init)) => last(l) && init.iter().all(|&c| middle(c)) && fits(init.len()),
        None => true,
    };
    all_middle || with_last
}

/// `^[A-Za-z_][A-Za-z0-9\@\._-]{0,30}[A-Za-z0-9\$_-]?$`
fn letter_led(b: &[u8]) -> bool {
    matches!(b.first(), Some(c) if c.is_ascii_alphabetic() || *c == b'_') && tail(&b[1..], Some(30))
}

/// `^(?=.{2,32}$)[0-9]{1,32}[A-Za-z\@\._-][A-Za-z0-9\@\._-]*[A-Za-z0-9\$_-]?$`
fn digit_led(b: &[u8]) -> bool {
    let digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
    let Some(&sep) = b.get(digits) else {
        return false;
    };
    (2..=32).contains(&b.len())
        && digits >= 1
        && (sep.is_ascii_alphabetic() || matches!(sep, b'@' | b'.' | b'_' | b'-'))
        && tail(&b[digits + 1..], None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_users_follow_both_alternatives_of_the_model_pattern() {
        for ok in ["ec2-user", "_svc", "a", "user$", "first.last@corp", "123admin", "1.x", "9_", &"a".repeat(32)] {
            assert!(valid_os_user(ok), "{ok} is valid");
        }
        let long_dot = format!("{}.", "a".repeat(31));
        for bad in ["", "123", "1", "-x", "a$b", "$", "a b", "üser", &"a".repeat(33), &long_dot] {
            assert!(!valid_os_user(bad), "{bad} is invalid");
        }
    }

    fn blob(parts: &[&[u8]]) -> String {
        let mut out = Vec::new();
        for p in parts {
            out.extend((p.len() as u32).to_be_bytes());
            out.extend(*p);
        }
        crate::base64::encode(&out)
    }

    fn rsa(bits: usize) -> String {
        let mut n = vec![0u8];
        n.push(0x80);
        n.extend(vec![0x11; bits / 8 - 1]);
        format!("ssh-rsa {} me@host", blob(&[b"ssh-rsa", &[1, 0, 1], &n]))
    }

    #[test]
    fn keys_are_checked_inside_and_trimmed() {
        let ed = format!("ssh-ed25519 {} me@host", blob(&[b"ssh-ed25519", &[7; 32]]));
        assert_eq!(normalize(&format!("{ed}\n")).as_deref(), Ok(ed.as_str()));
        assert!(normalize(&rsa(2048)).is_ok());
        assert!(normalize(&rsa(4096)).is_ok());
        assert!(normalize(&rsa(1024)).unwrap_err().contains("not 1024"));
        let bad64 = format!("ssh-ed25519 {}!! me@a-host-with-a-long-name", &blob(&[b"ssh-ed25519", &[7; 32]])[..60]);
        assert!(normalize(&bad64).unwrap_err().contains("base64"));
        let mislabelled = format!("ssh-rsa {} me@host", blob(&[b"ssh-ed25519", &[7; 32]]));
        assert!(normalize(&mislabelled).unwrap_err().contains("not a ssh-rsa key"));
        let ecdsa = format!("ecdsa-sha2-nistp256 {} me", blob(&[b"ecdsa-sha2-nistp256", b"nistp256", &[4; 65]]));
        assert!(normalize(&ecdsa).unwrap_err().contains("Unsupported key type"));
        let short_ed = format!("ssh-ed25519 {} padding-to-reach-eighty-characters", blob(&[b"ssh-ed25519", &[7; 31]]));
        assert!(normalize(&short_ed).is_err());
    }

    #[test]
    fn ssh2_keys_become_openssh_lines() {
        let data = blob(&[b"ssh-ed25519", &[7; 32]]);
        let ssh2 = format!(
            "---- BEGIN SSH2 PUBLIC KEY ----\nComment: \"me@host\"\n{}\n{}\n---- END SSH2 PUBLIC KEY ----\n",
            &data[..40],
            &data[40..]
        );
        assert_eq!(normalize(&ssh2), Ok(format!("ssh-ed25519 {data} me@host")));
    }
}
