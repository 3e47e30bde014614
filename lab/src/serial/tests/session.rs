//! Authentication and the session rules: one session per instance, teardown, key lifetime, the
//! spurious first close, the host key.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use russh::client;
use russh::{ChannelMsg, Disconnect};

use super::client::{Client, Screen, connect_with, console, login_ssh};
use super::{DEADLINE, WEB, XEN, calls, new_key, push, user, world};
use crate::serial::SerialConnInfo;

#[test]
fn only_port0_with_the_pushed_fresh_key_logs_in() {
    let w = world();
    let (key, other) = (new_key(), new_key());
    w.rt.block_on(async {
        assert!(!login_ssh(&w.lab, &user(WEB), &key).await.1, "no session yet");
        assert_eq!(push(&w.lab, WEB, &key).0, 200);
        assert!(!login_ssh(&w.lab, &format!("{WEB}.port1"), &key).await.1, "only port 0 exists");
        assert!(!login_ssh(&w.lab, &user(XEN), &key).await.1, "another instance");
        assert!(!login_ssh(&w.lab, "ec2-user", &key).await.1, "not a serial user name");
        assert!(!login_ssh(&w.lab, &user(WEB), &other).await.1, "not the pushed key");
        w.lab.state().advance(Duration::from_secs(61));
        assert!(!login_ssh(&w.lab, &user(WEB), &key).await.1, "the key expired");
        // Nothing connected: the session ended with the key, without teardown.
        assert_eq!(push(&w.lab, WEB, &key).0, 200);
        w.lab.state().set_serial_faults(|f| f.key_age = Duration::from_secs(61));
        assert!(!login_ssh(&w.lab, &user(WEB), &key).await.1, "a late client");
        w.lab.state().set_serial_faults(|f| f.key_age = Duration::ZERO);
        assert!(login_ssh(&w.lab, &user(WEB), &key).await.1, "the same key in time");
    });
    let conns = w.lab.serial_connections();
    assert_eq!(conns.len(), 8, "{conns:#?}");
    assert!(conns[..7].iter().all(|c| !c.authenticated && c.user.is_some()), "{conns:#?}");
    assert_eq!((conns[1].instance.as_deref(), conns[1].user.clone()), (Some(WEB), Some(format!("{WEB}.port1"))));
    assert_eq!((conns[3].instance.as_deref(), conns[3].user.as_deref()), (None, Some("ec2-user")));
    assert!(conns[7].authenticated);
}

#[test]
fn one_session_per_instance_then_teardown() {
    let w = world();
    let key = new_key();
    w.rt.block_on(async {
        assert_eq!(push(&w.lab, WEB, &key).0, 200);
        assert_eq!(push(&w.lab, WEB, &new_key()), (400, "SerialConsoleSessionLimitExceededException".into()));
        let (first, ok) = login_ssh(&w.lab, &user(WEB), &key).await;
        assert!(ok);
        assert!(!login_ssh(&w.lab, &user(WEB), &key).await.1, "one connection at a time");
        // Only a session channel with a shell: exec is refused.
        let channel = first.channel_open_session().await.unwrap();
        channel.exec(true, "id").await.unwrap();
        let mut screen = Screen::new(channel);
        loop {
            match tokio::time::timeout(DEADLINE, screen.channel.wait()).await.expect("a reply to exec") {
                Some(ChannelMsg::Failure) => break,
                Some(ChannelMsg::Success) | None => panic!("exec must be refused"),
                Some(_) => {}
            }
        }
        screen.channel.request_shell(true).await.unwrap();
        screen.expect("serial-web login: ").await;
        // Held: the session outlives its key.
        w.lab.state().advance(Duration::from_secs(120));
        assert_eq!(push(&w.lab, WEB, &key).1, "SerialConsoleSessionLimitExceededException");

        let left = Instant::now();
        first.disconnect(Disconnect::ByApplication, "", "").await.unwrap();
        drop(screen);
        assert_eq!(push(&w.lab, WEB, &key).1, "SerialConsoleSessionLimitExceededException", "teardown");
        let deadline = Instant::now() + DEADLINE;
        while push(&w.lab, WEB, &key).0 != 200 {
            assert!(Instant::now() < deadline, "the teardown never ended");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(left.elapsed() >= Duration::from_secs(2), "a push came through during the teardown");
    });
    assert!(calls(&w.lab, 400) >= 3);
}

#[test]
fn the_first_connection_after_a_push_may_close_and_a_reconnect_works() {
    let w = world();
    let key = new_key();
    w.lab.state().set_serial_faults(|f| f.spurious_first_close = true);
    w.rt.block_on(async {
        assert_eq!(push(&w.lab, WEB, &key).0, 200);
        let (ssh, _) = login_ssh(&w.lab, &user(WEB), &key).await;
        assert!(ssh.channel_open_session().await.is_err(), "the server hangs up after authentication");
        let (ssh, ok) = login_ssh(&w.lab, &user(WEB), &key).await;
        assert!(ok, "the same key again");
        let mut screen = Screen::new(console(&ssh).await);
        screen.expect("serial-web login: ").await;
    });
    let conns = w.lab.serial_connections();
    assert_eq!(conns.len(), 2, "{conns:#?}");
    assert!(conns[0].authenticated && conns[0].spurious_close, "{conns:#?}");
    assert!(conns[1].authenticated && !conns[1].spurious_close, "{conns:#?}");
}

#[test]
fn the_host_key_has_the_published_fingerprint() {
    let w = world();
    let found = w.lab.serial_fingerprint();
    assert!(found.starts_with("SHA256:") && found.len() == 50 && !found.ends_with('='), "{found}");
    let env = w.lab.env();
    let var = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(var("EC2_BROKER_SERIAL_ENDPOINT"), Some(w.lab.serial_addr().to_string()));
    assert_eq!(var("EC2_BROKER_SERIAL_FINGERPRINT"), Some(found.clone()));
    assert!(w.lab.serial_addr().ip().is_loopback());
    w.rt.block_on(async {
        let mismatch = connect_with(&w.lab, "SHA256:dXwn5ma/xadVMeBZGEru5l2gx+yI5LDiJaLUcz0FMmw").await;
        assert!(mismatch.is_err(), "a client that does not like the key aborts");
    });
    // What ssh-keygen prints for the key the server presented.
    let seen = Arc::new(Mutex::new(None));
    w.rt.block_on(async {
        let handler = Client { expected: found.clone(), seen: seen.clone() };
        let config = Arc::new(client::Config::default());
        client::connect(config, w.lab.serial_addr(), handler).await.expect("the right key is accepted");
    });
    let file = w.dir.join("serial_host_key.pub");
    std::fs::write(&file, seen.lock().unwrap().clone().expect("a host key")).unwrap();
    let out = std::process::Command::new("ssh-keygen").arg("-lf").arg(&file).output().unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(printed.split_whitespace().nth(1), Some(found.as_str()), "{printed}");
    let conns = w.lab.serial_connections();
    assert_eq!(conns[0], SerialConnInfo::default(), "never reached user authentication");
}
