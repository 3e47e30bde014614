//! Does a known_hosts entry name a host? (sans-IO) As OpenSSH decides it: the name looked up is
//! `host` for port 22 and `[host]:port` otherwise, compared case-insensitively; a pattern list
//! matches when some pattern matches and no negated (`!`) pattern does; `*` and `?` are
//! wildcards; a hashed name `|1|SALT|HASH` matches when HMAC-SHA1(SALT, name) = HASH.

use hmac::{Hmac, Mac};
use russh::keys::ssh_key::known_hosts::HostPatterns;
use sha1::Sha1;

/// The name ssh looks up for `host` on `port`.
pub fn lookup_name(host: &str, port: u16) -> String {
    match port {
        22 => host.to_ascii_lowercase(),
        p => format!("[{}]:{p}", host.to_ascii_lowercase()),
    }
}

/// Whether `hosts` names `host` on `port`.
pub fn matches(hosts: &HostPatterns, host: &str, port: u16) -> bool {
    let name = lookup_name(host, port);
    match hosts {
        HostPatterns::HashedName { salt, hash } => hashed_is(salt, hash, &name),
        HostPatterns::Patterns(patterns) => {
            let mut positive = false;
            for p in patterns {
                match p.strip_prefix('!') {
                    Some(neg) if wildcard(&neg.to_ascii_lowercase(), &name) => return false,
                    Some(_) => {}
                    None => positive |= wildcard(&p.to_ascii_lowercase(), &name),
                }
            }
            positive
        }
    }
}

/// Whether a hashed name is `name` (already in lookup form).
pub fn hashed_is(salt: &[u8], hash: &[u8; 20], name: &str) -> bool {
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(salt) else { return false };
    mac.update(name.as_bytes());
    mac.verify_slice(hash).is_ok()
}

/// `*` (any run) and `?` (any one character) over bytes, iteratively (no recursion blow-up).
fn wildcard(pattern: &str, text: &str) -> bool {
    // ssh's match_pattern works on bytes.
    crate::text::wildcard(pattern.as_bytes(), text.as_bytes(), b'*', b'?')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn pats(s: &str) -> HostPatterns {
        HostPatterns::from_str(s).unwrap()
    }

    #[test]
    fn patterns_as_openssh() {
        assert!(matches(&pats("web-1,10.0.1.23"), "10.0.1.23", 22));
        assert!(matches(&pats("WEB-1"), "web-1", 22), "case-insensitive");
        assert!(!matches(&pats("web-1"), "web-1", 2222), "another port is another name");
        assert!(matches(&pats("[web-1]:2222"), "web-1", 2222));
        assert!(matches(&pats("*.example.com"), "a.b.example.com", 22));
        assert!(!matches(&pats("*.example.com"), "example.com", 22));
        assert!(matches(&pats("10.0.1.?"), "10.0.1.7", 22));
        assert!(!matches(&pats("10.0.1.?"), "10.0.1.17", 22));
        assert!(matches(&pats("*.example.com,!bad.example.com"), "ok.example.com", 22));
        assert!(!matches(&pats("*.example.com,!bad.example.com"), "bad.example.com", 22));
        assert!(!matches(&pats("!web-1"), "other", 22), "only negations never match");
        assert!(matches(&pats("[*]:2222"), "anything", 2222));
        assert!(wildcard("a*b*c", "axxbyyc") && !wildcard("a*b*c", "axxbyy") && wildcard("**", ""));
        assert!(!wildcard(&"*a".repeat(30), &"a".repeat(29)));
    }

    #[test]
    fn hashed_names() {
        // `ssh-keygen -H` of "web-1" with this salt (computed by the test itself and checked
        // against ssh-keygen -F in the end-to-end tests).
        let salt = b"0123456789abcdefghij";
        let mut mac = Hmac::<Sha1>::new_from_slice(salt).unwrap();
        mac.update(b"[web-1]:2222");
        let hash: [u8; 20] = mac.finalize().into_bytes().into();
        let hosts = HostPatterns::HashedName { salt: salt.to_vec(), hash };
        assert!(matches(&hosts, "WEB-1", 2222));
        assert!(!matches(&hosts, "web-1", 22));
        assert!(!matches(&hosts, "web-2", 2222));
    }
}
