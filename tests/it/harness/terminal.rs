//! Helpers for programs driven through a pty (`console`, `shell`).

use std::fs;
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use ec2_lab::pty::{Pty, same_modes};
use rustix::termios::{LocalModes, Termios};

use super::run::wait_deadline;

/// A file's text, empty when it is missing (a program's stderr file).
pub fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

/// The program is in raw mode now; after SIGTERM it exits within `within` and the terminal's
/// modes are `before` again.
pub fn assert_sigterm_restores(pty: &Pty, before: &Termios, child: &mut Child, stderr: &Path, within: Duration) {
    assert!(!pty.modes().unwrap().local_modes.contains(LocalModes::ICANON), "raw during the session");
    let kill = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(kill.success());
    assert!(wait_deadline(child, within).is_some(), "still running after SIGTERM");
    assert!(same_modes(before, &pty.modes().unwrap()), "the terminal was not restored:\n{}", read(stderr));
}

/// `stty size` on the remote terminal shows 30 100, and after the pty is resized to 120×40 (and
/// `child` told with SIGWINCH, as a terminal would) it shows 40 120. Returns the screen position
/// after the second answer.
pub fn assert_resize_reaches_the_remote(pty: &Pty, child: &Child, from: usize, within: Duration) -> usize {
    pty.type_text("stty size\r").unwrap();
    let at = pty.expect_after(from, "30 100", within).unwrap();
    pty.resize(120, 40).unwrap();
    let kill = Command::new("kill").args(["-WINCH", &child.id().to_string()]).status().expect("kill");
    assert!(kill.success());
    std::thread::sleep(Duration::from_millis(300));
    pty.type_text("stty size\r").unwrap();
    pty.expect_after(at, "40 120", within).unwrap()
}
