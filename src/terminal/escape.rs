//! Escape sequences typed on the local keyboard, as OpenSSH's client has them (sans-IO): the
//! escape character (`~` unless changed) typed at the start of a line is held back and the next
//! key decides: `.` leaves, `?` shows the list, `B` sends a BREAK where the session has one, the
//! escape character again sends it once. Anything else sends the held character and the key.
//!
//! The character is chosen like ssh's `-e`: one character, `^` and a letter for a control key,
//! or `none` to turn escapes off (then every byte goes through).

use std::fmt;
use std::str::FromStr;

/// The escape character of a session, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EscapeChar(Option<u8>);

impl EscapeChar {
    /// ssh's default, `~`.
    pub(crate) const DEFAULT: EscapeChar = EscapeChar(Some(b'~'));
    /// No escapes.
    pub(crate) const NONE: EscapeChar = EscapeChar(None);

    /// How to leave, for a greeting: the escapes, or what to do when they are off.
    pub(crate) fn hint(self) -> String {
        match self.0 {
            Some(_) => format!("{self}. leaves, {self}? lists the escapes."),
            None => "Escapes are off (--escape-char none): end the session from the other side.".into(),
        }
    }

    /// The byte, if escapes are on.
    pub(crate) fn byte(self) -> Option<u8> {
        self.0
    }
}

impl Default for EscapeChar {
    fn default() -> Self {
        EscapeChar::DEFAULT
    }
}

impl fmt::Display for EscapeChar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("none"),
            Some(b @ 0..=0x1f) => write!(f, "^{}", char::from(b + b'@')),
            Some(b) => write!(f, "{}", char::from(b)),
        }
    }
}

/// A `--escape-char` value that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "'{0}' is not an escape character: give one printable ASCII character (e.g. ~ or %), ^ and a letter (e.g. ^]), or none"
)]
pub struct BadEscapeChar(String);

impl FromStr for EscapeChar {
    type Err = BadEscapeChar;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadEscapeChar(crate::text::printable(s).into_owned());
        match s.as_bytes() {
            b"none" => Ok(EscapeChar::NONE),
            [b] if b.is_ascii_graphic() => Ok(EscapeChar(Some(*b))),
            [b'^', c] => match c.to_ascii_uppercase() {
                // ^@ (NUL) is excluded: too easy to send by accident.
                c @ b'A'..=b'_' => Ok(EscapeChar(Some(c - b'@'))),
                _ => Err(bad()),
            },
            _ => Err(bad()),
        }
    }
}

/// What to do with a chunk of keyboard input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Send these bytes to the other side.
    Send(Vec<u8>),
    /// Send a BREAK (only when the filter was made with breaks on).
    Break,
    /// Show the help ([`EscapeFilter::help`]).
    Help,
    /// Leave.
    Leave,
}

/// The escape state between chunks.
#[derive(Debug, Clone)]
pub(crate) struct EscapeFilter {
    escape: EscapeChar,
    breaks: bool,
    line_start: bool,
    held: bool,
}

impl EscapeFilter {
    /// A filter for `escape`; `breaks`: whether `B` is a command (the serial console's BREAK).
    pub(crate) fn new(escape: EscapeChar, breaks: bool) -> EscapeFilter {
        // Like ssh: the first key of a session counts as the start of a line.
        EscapeFilter { escape, breaks, line_start: true, held: false }
    }

    /// The list `~?` shows, for `what` ("the console", "the shell"), with `\r\n` line ends
    /// because the terminal is raw.
    pub(crate) fn help(&self, what: &str) -> String {
        let e = self.escape;
        let mut text = format!("Supported escape sequences:\r\n {e}.   - leave {what}\r\n");
        if self.breaks {
            text +=
                &format!(" {e}B   - send a BREAK (then a SysRq key, e.g. {e}B then h, if the kernel allows SysRq)\r\n");
        }
        text += &format!(
            " {e}?   - this message\r\n {e}{e}   - send the escape character by typing it twice\r\n\
             (Escapes are only recognised right after a newline.)\r\n"
        );
        text
    }

    /// Turns keyboard input into actions, in order. Nothing after [`Action::Leave`] is returned.
    pub(crate) fn feed(&mut self, input: &[u8]) -> Vec<Action> {
        let Some(escape) = self.escape.byte() else {
            return if input.is_empty() { Vec::new() } else { vec![Action::Send(input.to_vec())] };
        };
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
                    b'B' if self.breaks => Some(Action::Break),
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
                if b != escape {
                    send.push(escape);
                }
                send.push(b);
                self.line_start = matches!(b, b'\r' | b'\n');
                continue;
            }
            if self.line_start && b == escape {
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

    fn run_with(escape: EscapeChar, breaks: bool, chunks: &[&[u8]]) -> Vec<Action> {
        let mut f = EscapeFilter::new(escape, breaks);
        chunks.iter().flat_map(|c| f.feed(c)).collect()
    }

    fn run(chunks: &[&[u8]]) -> Vec<Action> {
        run_with(EscapeChar::DEFAULT, true, chunks)
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

    #[test]
    fn without_breaks_b_is_sent() {
        assert_eq!(run_with(EscapeChar::DEFAULT, false, &[b"~B"]), [send(b"~B")]);
        let help = EscapeFilter::new(EscapeChar::DEFAULT, false).help("the shell");
        assert!(help.contains("~.   - leave the shell") && !help.contains("BREAK"), "{help}");
    }

    #[test]
    fn another_character_or_none() {
        let pct: EscapeChar = "%".parse().unwrap();
        assert_eq!(run_with(pct, false, &[b"~.", b"\r%."]), [send(b"~."), send(b"\r"), Action::Leave]);
        let ctrl: EscapeChar = "^]".parse().unwrap();
        assert_eq!(ctrl.byte(), Some(0x1d));
        assert_eq!(ctrl.to_string(), "^]");
        assert_eq!(run_with(ctrl, false, &[b"\x1d."]), [Action::Leave]);
        let none: EscapeChar = "none".parse().unwrap();
        assert_eq!(run_with(none, true, &[b"~.", b"\r~?"]), [send(b"~."), send(b"\r~?")]);
        assert_eq!(none.to_string(), "none");
        assert!(EscapeFilter::new(pct, true).help("the console").contains("%.   - leave the console"));
    }

    #[test]
    fn bad_escape_characters_are_refused_with_the_forms_that_work() {
        for bad in ["", "~~", "^1", "^@", " ", "é", "\u{1b}"] {
            let e = bad.parse::<EscapeChar>().unwrap_err();
            assert!(e.to_string().contains("none"), "{bad:?}: {e}");
            assert!(!e.to_string().contains('\u{1b}'), "control characters are not echoed");
        }
    }
}
