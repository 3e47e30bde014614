use russh::keys::{Algorithm, HashAlg, PrivateKey, PublicKey};

use super::kex::{Shape, negotiate, shape};
use super::*;

const CURVE: &str = "curve25519-sha256";
const GEX: &str = "diffie-hellman-group-exchange-sha256";
const STRICT_C: &str = "kex-strict-c-v00@openssh.com";
const STRICT_S: &str = "kex-strict-s-v00@openssh.com";
/// What OpenSSH 9.x and a strict endpoint offer, shortened.
const SSH_KEX: &[&str] = &[CURVE, GEX, "ext-info-c", STRICT_C];
const ENDPOINT_KEX: &[&str] = &[CURVE, "ecdh-sha2-nistp256", "ext-info-s", STRICT_S];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Ssh,
    Endpoint,
}
use Side::{Endpoint, Ssh};

type Script = Vec<(Side, Vec<u8>)>;

fn string(b: &[u8]) -> Vec<u8> {
    let mut out = (b.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(b);
    out
}

fn packet(payload: &[u8]) -> Vec<u8> {
    // RFC 4253 §6: padding of at least 4 bytes, total a multiple of 8.
    let mut padding = 8 - (payload.len() + 5) % 8;
    if padding < 4 {
        padding += 8;
    }
    let mut out = ((payload.len() + padding + 1) as u32).to_be_bytes().to_vec();
    out.push(padding as u8);
    out.extend_from_slice(payload);
    out.extend(std::iter::repeat_n(0u8, padding));
    out
}

/// A KEXINIT packet: cookie, the ten name-lists, first_kex_packet_follows, reserved.
fn kexinit_with(kex: &[&str], host_key: &str, guess: bool) -> Vec<u8> {
    let mut p = vec![20u8];
    p.extend_from_slice(&[7; 16]);
    p.extend(string(kex.join(",").as_bytes()));
    p.extend(string(host_key.as_bytes()));
    for list in ["chacha20-poly1305@openssh.com", "chacha20-poly1305@openssh.com", "hmac-sha2-256", "hmac-sha2-256"] {
        p.extend(string(list.as_bytes()));
    }
    for list in ["none", "none", "", ""] {
        p.extend(string(list.as_bytes()));
    }
    p.push(u8::from(guess));
    p.extend_from_slice(&[0; 4]);
    packet(&p)
}

fn kexinit(kex: &[&str]) -> Vec<u8> {
    kexinit_with(kex, "ssh-ed25519,rsa-sha2-512", false)
}

/// A key-exchange message whose first field is `first` (a key blob, a prime, a public value).
fn kex_msg(msg: u8, first: &[u8]) -> Vec<u8> {
    let mut p = vec![msg];
    p.extend(string(first));
    p.extend(string(&[9; 32]));
    p.extend(string(b"signature"));
    packet(&p)
}

fn with_key(msg: u8, key: &PublicKey) -> Vec<u8> {
    kex_msg(msg, &key.to_bytes().expect("an Ed25519 key encodes"))
}

fn simple(msg: u8) -> Vec<u8> {
    packet(&[msg, 0, 0, 0, 0])
}

fn key() -> PublicKey {
    PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).expect("a random key").public_key().clone()
}

fn fp(key: &PublicKey) -> Fingerprint {
    Fingerprint::parse(&key.fingerprint(HashAlg::Sha256).to_string()).expect("ssh-key prints fingerprints")
}

/// Version lines and both KEXINITs.
fn hello(ssh_kex: &[&str], endpoint_kex: &[&str]) -> Script {
    vec![
        (Endpoint, b"a banner line\r\nSSH-2.0-OpenSSH_9.2p1 endpoint\r\n".to_vec()),
        (Ssh, b"SSH-2.0-OpenSSH_9.2p1 Debian\r\n".to_vec()),
        (Ssh, kexinit(ssh_kex)),
        (Endpoint, kexinit(endpoint_kex)),
    ]
}

/// A whole curve25519 exchange whose reply carries `host_key`.
fn curve_exchange(host_key: &PublicKey) -> Script {
    let mut s = hello(SSH_KEX, ENDPOINT_KEX);
    s.push((Ssh, kex_msg(30, &[5; 32])));
    s.push((Endpoint, with_key(31, host_key)));
    s.push((Endpoint, simple(21)));
    s.push((Ssh, simple(21)));
    s
}

/// A whole DH-GEX exchange: the group's first field is `group`, the reply carries `host_key`.
fn gex_exchange(group: &[u8], host_key: &PublicKey) -> Script {
    let mut s = hello(&[GEX, CURVE, STRICT_C], &[CURVE, GEX, STRICT_S]);
    s.push((Ssh, packet(&[34, 0, 0, 8, 0, 0, 0, 16, 0, 0, 0, 32, 0])));
    s.push((Endpoint, kex_msg(31, group)));
    s.push((Ssh, kex_msg(32, &[5; 256])));
    s.push((Endpoint, with_key(33, host_key)));
    s.push((Endpoint, simple(21)));
    s
}

/// Feeds a script in order; returns what went on to ssh, the final verdict, and whether it was
/// ever `Verified`.
fn run(check: &mut HostKeyCheck, script: &Script) -> (Vec<u8>, Verdict, bool) {
    let (mut out, mut ever_verified) = (Vec::new(), false);
    for (side, bytes) in script {
        let verdict = match side {
            Ssh => check.handle_client(bytes),
            Endpoint => {
                let (fwd, verdict) = check.handle_server(bytes);
                out.extend(fwd);
                verdict
            }
        };
        ever_verified |= verdict == Verdict::Verified;
    }
    (out, check.verdict().clone(), ever_verified)
}

fn endpoint_bytes(script: &Script) -> Vec<u8> {
    script.iter().filter(|(side, _)| *side == Endpoint).flat_map(|(_, b)| b.clone()).collect()
}

fn assert_refused(script: &Script, expected: &PublicKey, what: &str) {
    let (_, verdict, ever_verified) = run(&mut HostKeyCheck::new(fp(expected)), script);
    assert!(!ever_verified, "{what}: verified");
    assert!(matches!(verdict, Verdict::Malformed(_) | Verdict::Mismatch { .. }), "{what}: {verdict:?}");
}

fn assert_malformed(script: &Script, expected: &PublicKey, what: &str) {
    let (_, verdict, ever_verified) = run(&mut HostKeyCheck::new(fp(expected)), script);
    assert!(!ever_verified && matches!(verdict, Verdict::Malformed(_)), "{what}: {verdict:?}");
}

/// Feeds `a` and `b` one byte at a time, alternating, as two peers talking at once.
fn interleave(check: &mut HostKeyCheck, ssh: &[u8], endpoint: &[u8], out: &mut Vec<u8>) -> Vec<Verdict> {
    let mut verdicts = Vec::new();
    for i in 0..ssh.len().max(endpoint.len()) {
        if let Some(b) = ssh.get(i) {
            verdicts.push(check.handle_client(std::slice::from_ref(b)));
        }
        if let Some(b) = endpoint.get(i) {
            let (fwd, verdict) = check.handle_server(std::slice::from_ref(b));
            out.extend(fwd);
            verdicts.push(verdict);
        }
    }
    verdicts
}

fn concat<'a>(parts: impl IntoIterator<Item = &'a Vec<u8>>) -> Vec<u8> {
    parts.into_iter().flatten().copied().collect()
}

// See: issue 14
#[test]
fn real_sequence_byte_by_byte_in_both_directions() {
    let k = key();
    for script in [curve_exchange(&k), gex_exchange(&[0, 0xff, 0xff, 0xfb], &k)] {
        let endpoint = endpoint_bytes(&script);
        let reply = script.iter().rposition(|(side, b)| *side == Endpoint && b[5] != 21).expect("a reply");
        let reply_start = endpoint_bytes(&script[..reply].to_vec()).len();
        let mut check = HostKeyCheck::new(fp(&k));
        let mut out = Vec::new();
        // The hellos cross on the wire; then each key-exchange message waits for the one before.
        let hello: Vec<_> = script.iter().take_while(|(_, b)| !(b.len() > 5 && (30..=49).contains(&b[5]))).collect();
        let ssh_hello = concat(hello.iter().filter(|(s, _)| *s == Ssh).map(|(_, b)| b));
        let endpoint_hello = concat(hello.iter().filter(|(s, _)| *s == Endpoint).map(|(_, b)| b));
        let verdicts = interleave(&mut check, &ssh_hello, &endpoint_hello, &mut out);
        assert!(verdicts.iter().all(|v| *v == Verdict::Pending), "{verdicts:?}");
        assert_eq!(out, endpoint_hello, "the version line and KEXINIT go on at once");
        for (side, bytes) in &script[hello.len()..] {
            for (i, b) in bytes.iter().enumerate() {
                let verdict = match side {
                    Ssh => check.handle_client(std::slice::from_ref(b)),
                    Endpoint => {
                        let (fwd, verdict) = check.handle_server(std::slice::from_ref(b));
                        out.extend(fwd);
                        verdict
                    }
                };
                if out.len() > reply_start {
                    assert_eq!(verdict, Verdict::Verified, "reply bytes went on before the verdict");
                } else {
                    assert!(verdict == Verdict::Pending || i + 1 == bytes.len(), "{verdict:?}");
                }
            }
        }
        assert_eq!(check.verdict(), &Verdict::Verified);
        assert_eq!(out, endpoint);
        assert_eq!(check.handle_server(b"encrypted").0, b"encrypted");
    }
}

// See: issue 14
#[test]
fn decoy_with_the_published_key_is_never_verified() {
    let (aws, attacker) = (key(), key());
    let decoy = with_key(31, &aws);
    let real = curve_exchange(&attacker);
    // Before the endpoint's KEXINIT (ssh answers UNIMPLEMENTED and ignores it), right after it
    // (before ssh's init), and as a 33 the method does not have.
    for (at, decoy) in [(3, decoy.clone()), (4, decoy), (5, with_key(33, &aws))] {
        let mut script = real.clone();
        script.insert(at, (Endpoint, decoy));
        assert_refused(&script, &aws, &format!("decoy at {at}"));
    }
    // Without the decoy, the real exchange names the attacker's key.
    let (out, verdict, _) = run(&mut HostKeyCheck::new(fp(&aws)), &real);
    assert_eq!(verdict, Verdict::Mismatch { found: attacker.fingerprint(HashAlg::Sha256).to_string() });
    assert_eq!(out, endpoint_bytes(&real[..5].to_vec()), "the reply is held back");
}

#[test]
fn reply_before_ssh_sent_its_part_is_refused() {
    let k = key();
    let mut script = curve_exchange(&k);
    script.swap(4, 5);
    assert_malformed(&script, &k, "31 before 30");
    let mut script = gex_exchange(&[0, 0xff], &k);
    script.swap(4, 5);
    assert_malformed(&script, &k, "group before request");
    let mut script = gex_exchange(&[0, 0xff], &k);
    script.swap(6, 7);
    assert_malformed(&script, &k, "33 before 32");
}

// See: issue 14
#[test]
fn group_exchange_group_carrying_a_key_is_not_the_reply() {
    let (aws, attacker) = (key(), key());
    let script = gex_exchange(&aws.to_bytes().expect("encodes"), &attacker);
    let mut check = HostKeyCheck::new(fp(&aws));
    let (out, verdict, ever_verified) = run(&mut check, &script[..6].to_vec());
    assert_eq!((verdict, ever_verified), (Verdict::Pending, false), "the group is not the reply");
    assert_eq!(out, endpoint_bytes(&script[..6].to_vec()), "the group goes on to ssh");
    let (out, verdict, _) = run(&mut check, &script[6..].to_vec());
    assert_eq!(verdict, Verdict::Mismatch { found: attacker.fingerprint(HashAlg::Sha256).to_string() });
    assert!(out.is_empty(), "the 33 is held back");
    // And the real key in the 33 passes.
    let (_, verdict, _) = run(&mut HostKeyCheck::new(fp(&aws)), &gex_exchange(&[0, 0xff], &aws));
    assert_eq!(verdict, Verdict::Verified);
}

#[test]
fn second_kexinit_is_refused() {
    let k = key();
    let mut script = curve_exchange(&k);
    script.insert(5, (Endpoint, kexinit(ENDPOINT_KEX)));
    assert_malformed(&script, &k, "endpoint's second KEXINIT");
    let mut script = curve_exchange(&k);
    script.insert(4, (Ssh, kexinit(SSH_KEX)));
    assert_malformed(&script, &k, "ssh's second KEXINIT");
}

#[test]
fn strict_kex_refuses_chatter_and_plain_kex_allows_it() {
    let k = key();
    let ignore = packet(&[2, 0, 0, 0, 1, b'x']);
    for at in [3, 4, 5] {
        let mut script = curve_exchange(&k);
        script.insert(at, (Endpoint, ignore.clone()));
        assert_malformed(&script, &k, &format!("strict, IGNORE at {at}"));
    }
    let mut plain = hello(&[CURVE, "ext-info-c"], &[CURVE]);
    plain.insert(1, (Endpoint, ignore.clone()));
    plain.push((Endpoint, packet(&[4, 0, 0, 0, 0, 0, 0, 0, 0, 0])));
    plain.push((Ssh, kex_msg(30, &[5; 32])));
    plain.push((Endpoint, ignore.clone()));
    plain.push((Endpoint, simple(3)));
    plain.push((Endpoint, with_key(31, &k)));
    let (out, verdict, _) = run(&mut HostKeyCheck::new(fp(&k)), &plain);
    assert_eq!(verdict, Verdict::Verified);
    assert_eq!(out, endpoint_bytes(&plain));
    // Strict on one side only is not strict.
    let mut half = plain.clone();
    half[3] = (Ssh, kexinit(&[CURVE, STRICT_C]));
    assert_eq!(run(&mut HostKeyCheck::new(fp(&k)), &half).1, Verdict::Verified);
}

#[test]
fn negotiation_picks_sshs_first_method_the_endpoint_supports() {
    let names = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let cases: [(&[&str], &[&str], Option<&str>); 6] = [
        (&[CURVE, GEX], &[GEX, CURVE], Some(CURVE)),
        (&[GEX, CURVE], &[CURVE, GEX], Some(GEX)),
        (&["sntrup761x25519-sha512@openssh.com", CURVE], &[CURVE], Some(CURVE)),
        (&["ext-info-c", STRICT_C, CURVE], &["ext-info-c", STRICT_C, CURVE], Some(CURVE)),
        (&["ext-info-c", STRICT_C], &["ext-info-c", STRICT_C], None),
        (&[CURVE], &["ecdh-sha2-nistp256"], None),
    ];
    for (ssh, endpoint, want) in cases {
        assert_eq!(negotiate(&names(ssh), &names(endpoint)), want, "{ssh:?} / {endpoint:?}");
    }
    assert_eq!(shape(GEX), Some(Shape::GroupExchange));
    assert_eq!(shape("diffie-hellman-group14-sha256"), Some(Shape::InitReply));
    assert_eq!(shape("ecdh-sha2-nistp521"), Some(Shape::InitReply));
    assert_eq!(shape("mlkem768x25519-sha256"), Some(Shape::InitReply));
    assert_eq!(shape("gss-gex-sha1-toWM5Slw5Ew8Mqkay+al2g=="), None);
    // End to end: ssh prefers DH-GEX, so the endpoint's 31 is a group even though it lists curve25519 first.
    let (aws, attacker) = (key(), key());
    let mut script = hello(&[GEX, CURVE], &[CURVE, GEX]);
    script.push((Ssh, packet(&[34, 0, 0, 8, 0, 0, 0, 16, 0, 0, 0, 32, 0])));
    script.push((Endpoint, with_key(31, &aws)));
    script.push((Ssh, kex_msg(32, &[5; 256])));
    script.push((Endpoint, with_key(33, &attacker)));
    assert!(matches!(run(&mut HostKeyCheck::new(fp(&aws)), &script).1, Verdict::Mismatch { .. }));
}

#[test]
fn no_common_or_unknown_method_is_malformed() {
    let k = key();
    let mut script = curve_exchange(&k);
    script[3] = (Endpoint, kexinit(&["ecdh-sha2-nistp256", STRICT_S]));
    assert_malformed(&script, &k, "no common method");
    let mut script = curve_exchange(&k);
    script[2] = (Ssh, kexinit(&["gss-curve25519-sha256-x", CURVE]));
    script[3] = (Endpoint, kexinit(&["gss-curve25519-sha256-x", CURVE]));
    assert_malformed(&script, &k, "unknown method");
    let mut script = curve_exchange(&k);
    script[3] = (Endpoint, packet(&[20, 1, 2, 3]));
    assert_malformed(&script, &k, "truncated KEXINIT");
}

#[test]
fn guessed_first_packets_fail_closed_unless_right() {
    let k = key();
    let mut script = curve_exchange(&k);
    script[3] = (Endpoint, kexinit_with(ENDPOINT_KEX, "ssh-ed25519", true));
    assert_malformed(&script, &k, "the endpoint's guess");
    let mut script = curve_exchange(&k);
    script[2] = (Ssh, kexinit_with(&[GEX, CURVE], "ssh-ed25519", true));
    assert_malformed(&script, &k, "ssh's wrong guess");
    // A right guess: ssh's 30 goes out before the endpoint's KEXINIT.
    let mut script = curve_exchange(&k);
    script[2] = (Ssh, kexinit_with(SSH_KEX, "ssh-ed25519", true));
    script[3] = (Endpoint, kexinit_with(ENDPOINT_KEX, "ssh-ed25519", false));
    script.swap(3, 4);
    assert_eq!(run(&mut HostKeyCheck::new(fp(&k)), &script).1, Verdict::Verified);
    // Without the flag the same order is refused.
    script[2] = (Ssh, kexinit_with(SSH_KEX, "ssh-ed25519", false));
    assert_malformed(&script, &k, "an unannounced early 30");
}

#[test]
fn messages_out_of_place_are_refused() {
    let k = key();
    let cases: [(Side, Vec<u8>); 9] = [
        (Endpoint, simple(21)),
        (Endpoint, simple(52)),
        (Endpoint, simple(94)),
        (Endpoint, simple(7)),
        (Endpoint, simple(1)),
        (Endpoint, kex_msg(30, &[5; 32])),
        (Ssh, simple(21)),
        (Ssh, simple(50)),
        (Ssh, kex_msg(30, &[5; 32])),
    ];
    for (side, bytes) in cases {
        let mut script = curve_exchange(&k);
        script.insert(5, (side, bytes.clone()));
        assert_malformed(&script, &k, &format!("{side:?} {}", bytes[5]));
    }
}

#[test]
fn wrong_key_is_held_back_and_named() {
    let (k, other) = (key(), key());
    let script = curve_exchange(&k);
    let mut check = HostKeyCheck::new(fp(&other));
    let (out, verdict, _) = run(&mut check, &script[..5].to_vec());
    assert_eq!((out, verdict), (endpoint_bytes(&script[..5].to_vec()), Verdict::Pending));
    let (fwd, verdict) = check.handle_server(&script[5].1);
    assert!(fwd.is_empty(), "the reply must not reach ssh");
    assert_eq!(verdict, Verdict::Mismatch { found: k.fingerprint(HashAlg::Sha256).to_string() });
    assert_eq!(check.handle_server(b"more").0, b"");
    assert_eq!(check.handle_client(b"more"), verdict);
}

#[test]
fn not_ssh_is_refused() {
    let expected = fp(&key());
    // Lines before the version line are allowed (RFC 4253 §4.2): wait for more.
    let mut check = HostKeyCheck::new(expected.clone());
    assert_eq!(check.handle_server(b"HTTP/1.1 400 Bad Request\r\n\r\n").1, Verdict::Pending);
    let mut check = HostKeyCheck::new(expected.clone());
    assert!(matches!(check.handle_server(&b"junk\n".repeat(20_000)).1, Verdict::Malformed(_)));
    let cases: [&[u8]; 4] = [
        b"SSH-1.5-old\r\n",
        &[b'x'; 300],
        b"SSH-2.0-x\r\n\xff\xff\xff\xff\x04",
        b"SSH-2.0-x\r\n\0\0\0\x0c\x0a\x15\0\0\0\0\0\0\0\0\0\0",
    ];
    for case in cases {
        let (_, verdict) = HostKeyCheck::new(expected.clone()).handle_server(case);
        assert!(matches!(verdict, Verdict::Malformed(_)), "{:?}: {verdict:?}", String::from_utf8_lossy(case));
        let verdict = HostKeyCheck::new(expected.clone()).handle_client(case);
        assert!(matches!(verdict, Verdict::Malformed(_)), "ssh {:?}: {verdict:?}", String::from_utf8_lossy(case));
    }
    // Many IGNOREs: bounded.
    let mut script = hello(&[CURVE], &[CURVE]);
    script.push((Endpoint, packet(&[2; 1000]).repeat(80)));
    assert_malformed(&script, &key(), "too much chatter");
    // Random bytes never panic.
    for seed in 0..200u32 {
        let data: Vec<u8> = (0..512u32).map(|i| (i.wrapping_mul(2_654_435_761) ^ seed) as u8).collect();
        fuzz_feed(&data);
        let mut with_version = b"SSH-2.0-x\n".to_vec();
        with_version.extend(&data);
        fuzz_feed(&with_version);
    }
}

// See: issue 14
#[test]
fn oracle_holds_over_generated_streams() {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut verified, mut decided, mut decoys_refused, mut decoy_runs) = (0, 0, 0, 0);
    for _ in 0..3000 {
        let len = 16 + (next() % 160) as usize;
        let data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let run = fuzz_oracle(&data);
        verified += usize::from(run.verified);
        decided += usize::from(run.well_formed);
        if run.decoys > 0 {
            decoy_runs += 1;
            decoys_refused += usize::from(!run.reply_has_expected_key && !run.verified);
        }
    }
    // The generated streams cover what matters: accepted exchanges, and many decoys with the
    // published key where the reply carries another (each of them refused, or the oracle panics).
    eprintln!("verified {verified}, well-formed {decided}, decoy runs {decoy_runs}, refused {decoys_refused}");
    assert!(verified >= 100 && decided >= 200, "verified {verified}, well-formed {decided}");
    assert!(decoy_runs >= 1000 && decoys_refused >= 300, "decoy runs {decoy_runs}, refused {decoys_refused}");
}
