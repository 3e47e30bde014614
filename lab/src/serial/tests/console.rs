//! The getty and the login shell.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use russh::Disconnect;

use super::client::{Screen, console, login_ssh};
use super::{DEADLINE, NO_PASSWORD, PASSWORD, WEB, calls, new_key, push, user, world};
use crate::serial::{BANNER, LOGIN_INCORRECT, PASSWORD_PROMPT, SerialConnInfo, login_prompt};

#[test]
fn login_runs_a_real_shell_that_follows_the_window_and_respawns() {
    let w = world();
    let key = new_key();
    assert_eq!(push(&w.lab, WEB, &key), (200, String::new()));
    assert_eq!(calls(&w.lab, 200), 1);
    w.rt.block_on(async {
        let (ssh, ok) = login_ssh(&w.lab, &user(WEB), &key).await;
        assert!(ok, "the pushed key logs in");
        let channel = console(&ssh).await;
        let mut screen = Screen::new(channel);
        assert_eq!(screen.expect("serial-web login: ").await, BANNER);
        // A wrong password, an unknown user, an empty line.
        screen.type_text("ec2-user\r").await;
        assert_eq!(screen.expect(PASSWORD_PROMPT).await, "ec2-user\r\n");
        screen.type_text("nope\r\n").await;
        assert_eq!(screen.expect(&format!("{LOGIN_INCORRECT}serial-web login: ")).await, "\r\n", "no echo");
        screen.type_text("root\r").await;
        screen.expect(PASSWORD_PROMPT).await;
        screen.type_text(&format!("{PASSWORD}\r")).await;
        screen.expect(LOGIN_INCORRECT).await;
        screen.type_text("\r").await;
        screen.expect("\r\nserial-web login: ").await;
        assert_eq!(w.lab.serial_connections()[0].logged_in, None);

        screen.login("ec2-user", PASSWORD).await;
        screen.type_text("echo serial-$((6*7)) $(id -un) $(tty)\r").await;
        screen.expect("serial-42 ec2-user /dev/pts/").await;
        screen.type_text("stty size; echo $TERM\r").await;
        screen.expect("30 100\r\nvt220").await;
        screen.channel.window_change(120, 40, 0, 0).await.unwrap();
        screen.type_text("stty size\r").await;
        screen.expect("40 120").await;
        // Logging out brings the getty back, with its banner.
        screen.type_text("exit\r").await;
        screen.expect(BANNER).await;
        screen.expect("serial-web login: ").await;
        // Typed ahead in one go, with LF line ends.
        screen.type_text(&format!("ec2-user\n{PASSWORD}\necho again-$((2*21))\n")).await;
        screen.expect("again-42").await;
        ssh.disconnect(Disconnect::ByApplication, "", "").await.unwrap();
    });
    let conns = w.lab.serial_connections();
    assert_eq!(
        conns,
        vec![SerialConnInfo {
            instance: Some(WEB.into()),
            user: Some(user(WEB)),
            authenticated: true,
            spurious_close: false,
            logged_in: Some("ec2-user".into()),
        }]
    );
}

#[test]
fn the_client_going_away_kills_the_shell() {
    let w = world();
    let key = new_key();
    // Durations nobody else uses, to find exactly these processes.
    let (background, foreground) =
        (format!("sleep 29{}", std::process::id()), format!("sleep 30{}", std::process::id()));
    w.rt.block_on(async {
        assert_eq!(push(&w.lab, WEB, &key).0, 200);
        let (ssh, ok) = login_ssh(&w.lab, &user(WEB), &key).await;
        assert!(ok);
        let mut screen = Screen::new(console(&ssh).await);
        screen.expect(&login_prompt("serial-web")).await;
        screen.login("ec2-user", PASSWORD).await;
        // A background job and a foreground one, both on the console.
        screen.type_text(&format!("{background} & {foreground}\r")).await;
        let deadline = Instant::now() + DEADLINE;
        while !(pgrep(&background) && pgrep(&foreground)) {
            assert!(Instant::now() < deadline, "the shell's command never ran");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        drop(screen);
        ssh.disconnect(Disconnect::ByApplication, "", "").await.unwrap();
        let deadline = Instant::now() + DEADLINE;
        while pgrep(&background) || pgrep(&foreground) {
            assert!(Instant::now() < deadline, "the console's processes outlived the connection");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
}

fn pgrep(pattern: &str) -> bool {
    std::process::Command::new("pgrep").args(["-f", pattern]).output().is_ok_and(|o| o.status.success())
}

#[test]
fn without_a_serial_password_every_login_is_incorrect() {
    let w = world();
    let key = new_key();
    assert_eq!(push(&w.lab, NO_PASSWORD, &key).0, 200);
    w.rt.block_on(async {
        let (ssh, ok) = login_ssh(&w.lab, &user(NO_PASSWORD), &key).await;
        assert!(ok);
        let mut screen = Screen::new(console(&ssh).await);
        // No Name tag: the prompt names the instance id.
        screen.expect(&login_prompt(NO_PASSWORD)).await;
        screen.type_text("ec2-user\r\r").await;
        screen.expect(&format!("{LOGIN_INCORRECT}{}", login_prompt(NO_PASSWORD))).await;
    });
    assert_eq!(w.lab.serial_connections()[0].logged_in, None);
}

#[test]
fn openssh_logs_in_with_the_pushed_key() {
    let w = world();
    let key = new_key();
    let key_file = w.dir.join("serial_key");
    std::fs::write(&key_file, key.to_openssh(russh::keys::ssh_key::LineEnding::LF).unwrap().as_bytes()).unwrap();
    std::fs::set_permissions(&key_file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let known_hosts = w.dir.join("serial_known_hosts");
    assert_eq!(push(&w.lab, WEB, &key).0, 200);
    let mut ssh = std::process::Command::new("ssh")
        .args(["-tt", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o"])
        .arg("StrictHostKeyChecking=accept-new")
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .args(["-o", "GlobalKnownHostsFile=/dev/null", "-o", "SendEnv=LANG", "-i"])
        .arg(&key_file)
        .args(["-p", &w.lab.serial_addr().port().to_string(), "-l", &user(WEB), "127.0.0.1"])
        .env("LANG", "C.UTF-8")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("running ssh (install openssh-client)");
    let mut stdin = ssh.stdin.take().unwrap();
    let mut stdout = ssh.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = stdout.read(&mut buf) {
            if tx.send(buf[..n].to_vec()).is_err() {
                return;
            }
        }
    });
    let mut screen = String::new();
    let mut expect = |want: &str| {
        let deadline = Instant::now() + DEADLINE;
        while !screen.contains(want) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(data) => screen.push_str(&String::from_utf8_lossy(&data)),
                Err(_) => panic!("no {want:?} from ssh; screen:\n{screen:?}"),
            }
        }
        screen.clear();
    };
    expect("serial-web login: ");
    stdin.write_all(b"ec2-user\r").unwrap();
    expect(PASSWORD_PROMPT);
    stdin.write_all(format!("{PASSWORD}\r").as_bytes()).unwrap();
    stdin.write_all(b"echo serial-$((6*7))\r").unwrap();
    expect("serial-42");
    let _ = ssh.kill();
    let _ = ssh.wait();
    let stored = std::process::Command::new("ssh-keygen").arg("-lf").arg(&known_hosts).output().unwrap();
    let stored = String::from_utf8_lossy(&stored.stdout).to_string();
    assert_eq!(stored.split_whitespace().nth(1), Some(w.lab.serial_fingerprint().as_str()), "{stored}");
    let conns = w.lab.serial_connections();
    assert_eq!((conns.len(), conns[0].logged_in.as_deref()), (1, Some("ec2-user")), "{conns:#?}");
}
