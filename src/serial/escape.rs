//! The console's escape sequences, as OpenSSH's client has them (sans-IO): a `~` typed at the
//! start of a line is held back and the next key decides: `~.` leaves, `~?` shows the list,
//! `~B` sends a BREAK (the serial console turns it into a SysRq prefix), `~~` sends one `~`.
//! Anything else sends the held `~` and the key.

/// The escape character.
pub(crate) const ESCAPE: u8 = b'~';

/// The help `~?` prints (on stderr, with `\r\n` because the terminal is raw).
pub(crate) const HELP: &str = "Supported escape sequences:\r\n \
     ~.   - leave the console (the instance keeps running)\r\n \
     ~B   - send a BREAK (then a SysRq key, e.g. ~B then h, if the kernel allows SysRq)\r\n \
     ~?   - this message\r\n \
     ~~   - send the escape character by typing it twice\r\n\
     (Escapes are only recognised right after a newline.)\r\n";

/// What to do with a chunk of keyboard input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Send these bytes to the console.
    Send(Vec<u8>),
    /// Send a BREAK.
    Break,
    /// Show [`HELP`].
    Help,
    /// Leave the console.
    Leave,
}

/// The escape state between chunks.
#[derive(Debug, Clone)]
pub(crate) struct EscapeFilter {
    line_start: bool,
    held: bool,
}

impl Default for EscapeFilter {
    fn default() -> Self {
        // Like ssh: the first key of a session counts as the start of a line.
        EscapeFilter { line_start: true, held: false }
    }
}

impl EscapeFilter {
    /// Turns keyboard input into actions, in order. Nothing after [`Action::Leave`] is returned.
    pub(crate) fn feed(&mut self, input: &[u8]) -> Vec<Action> {
        let mut actions = Vec::new();
        let mut send = Vec::new();
        let flush = |send: &mut Vec<u8>, actions: &mut Vec<Action>| {
            if !send.is_empty() {
                actions.push(Action::Send(std::mem::take(send)));
            }
        };
        for &b in input {
            if self.held {
                self.held = false;
                let command = match b {
                    b'.' => Some(Action::Leave),
                    b'?' => Some(Action::Help),
                    b'B' => Some(Action::Break),
                    _ => None,
                };
                if let Some(command) = command {
                    flush(&mut send, &mut actions);
                    let leave = command == Action::Leave;
                    actions.push(command);
                    if leave {
                        return actions;
                    }
                    // Another escape may follow at once (`~B` then `~.`).
                    self.line_start = true;
                    continue;
                }
                if b != ESCAPE {
                    send.push(ESCAPE);
                }
                send.push(b);
                self.line_start = matches!(b, b'\r' | b'\n');
                continue;
            }
            if self.line_start && b == ESCAPE {
                self.held = true;
                continue;
            }
            send.push(b);
            self.line_start = matches!(b, b'\r' | b'\n');
        }
        flush(&mut send, &mut actions);
        actions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&[u8]]) -> Vec<Action> {
        let mut f = EscapeFilter::default();
        chunks.iter().flat_map(|c| f.feed(c)).collect()
    }

    fn send(b: &[u8]) -> Action {
        Action::Send(b.to_vec())
    }

    #[test]
    fn leave_at_line_start_only() {
        assert_eq!(run(&[b"~."]), [Action::Leave]);
        assert_eq!(run(&[b"ls\r~.rest"]), [send(b"ls\r"), Action::Leave]);
        assert_eq!(run(&[b"ls\n", b"~", b"."]), [send(b"ls\n"), Action::Leave]);
        // Not at a line start: sent as typed.
        assert_eq!(run(&[b"a~."]), [send(b"a~.")]);
        assert_eq!(run(&[b"echo ~/x\r"]), [send(b"echo ~/x\r")]);
    }

    #[test]
    fn other_escapes() {
        assert_eq!(run(&[b"~?"]), [Action::Help]);
        assert_eq!(run(&[b"~B", b"h"]), [Action::Break, send(b"h")]);
        assert_eq!(run(&[b"~B~."]), [Action::Break, Action::Leave]);
        assert_eq!(run(&[b"~~"]), [send(b"~")]);
        assert_eq!(run(&[b"~x"]), [send(b"~x")]);
        // `~` then Enter sends both and the next line starts again.
        assert_eq!(run(&[b"~\r~."]), [send(b"~\r"), Action::Leave]);
        // The held `~` survives a chunk boundary.
        assert_eq!(run(&[b"\r~", b"~/a"]), [send(b"\r"), send(b"~/a")]);
    }
}
