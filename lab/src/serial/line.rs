//! The getty's line editor: turns keystrokes into a line and the bytes to echo. No I/O here.
//!
//! Enter is CR or LF; an LF right after a CR belongs to the same Enter (terminals send CR,
//! programs often CR LF). Backspace and DEL erase a character, Ctrl-U the whole line; other
//! control characters and terminal escape sequences (arrow keys) are ignored. Lines are capped
//! at [`MAX_LINE`] bytes; more is dropped.

use std::collections::VecDeque;

/// The longest line kept (login names are at most 32 characters; passwords get some room).
pub(super) const MAX_LINE: usize = 256;

const CR: u8 = b'\r';
const LF: u8 = b'\n';
const BS: u8 = 0x08;
const DEL: u8 = 0x7f;
const CTRL_U: u8 = 0x15;
const ESC: u8 = 0x1b;

/// Reads one line at a time from the bytes a client typed.
#[derive(Debug, Default)]
pub(super) struct LineEditor {
    line: Vec<u8>,
    /// The last Enter was a CR: a following LF is part of it.
    after_cr: bool,
    escape: Escape,
}

/// Where the editor is in a terminal escape sequence.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Escape {
    #[default]
    None,
    /// After ESC.
    Started,
    /// After ESC `[` or ESC `O`: parameters until a final byte.
    Sequence,
}

impl LineEditor {
    /// Consumes bytes from the front of `input` up to and including the next Enter. Returns the
    /// bytes to echo (the typed characters when `echo`, and CR LF for Enter either way) and the
    /// line once Enter was pressed; bytes after that Enter stay in `input`.
    pub(super) fn feed(&mut self, input: &mut VecDeque<u8>, echo: bool) -> (Vec<u8>, Option<String>) {
        let mut out = Vec::new();
        while let Some(b) = input.pop_front() {
            let after_cr = std::mem::take(&mut self.after_cr);
            match (self.escape, b) {
                (Escape::Started, b'[' | b'O') => self.escape = Escape::Sequence,
                (Escape::Started, _) => self.escape = Escape::None,
                (Escape::Sequence, 0x40..=0x7e) => self.escape = Escape::None,
                (Escape::Sequence, _) => {}
                (Escape::None, LF) if after_cr => {}
                (Escape::None, CR | LF) => {
                    self.after_cr = b == CR;
                    out.extend_from_slice(b"\r\n");
                    let line = String::from_utf8_lossy(&std::mem::take(&mut self.line)).into_owned();
                    return (out, Some(line));
                }
                (Escape::None, BS | DEL) => {
                    if self.erase_char() && echo {
                        out.extend_from_slice(b"\x08 \x08");
                    }
                }
                (Escape::None, CTRL_U) => {
                    while self.erase_char() {
                        if echo {
                            out.extend_from_slice(b"\x08 \x08");
                        }
                    }
                }
                (Escape::None, ESC) => self.escape = Escape::Started,
                (Escape::None, 0..=0x1f) => {}
                (Escape::None, _) => {
                    if self.line.len() < MAX_LINE {
                        self.line.push(b);
                        if echo {
                            out.push(b);
                        }
                    }
                }
            }
        }
        (out, None)
    }

    /// Drops a pending LF that completes the last CR (before handing the rest to a shell).
    pub(super) fn finish(&mut self, input: &mut VecDeque<u8>) {
        if std::mem::take(&mut self.after_cr) && input.front() == Some(&LF) {
            input.pop_front();
        }
    }

    /// Erases the last character (all bytes of a UTF-8 sequence); false when the line is empty.
    fn erase_char(&mut self) -> bool {
        while let Some(b) = self.line.pop() {
            if b & 0xc0 != 0x80 {
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(e: &mut LineEditor, input: &[u8], echo: bool) -> (String, Option<String>, String) {
        let mut q: VecDeque<u8> = input.iter().copied().collect();
        let (out, line) = e.feed(&mut q, echo);
        let rest: Vec<u8> = q.into_iter().collect();
        (String::from_utf8_lossy(&out).into_owned(), line, String::from_utf8_lossy(&rest).into_owned())
    }

    #[test]
    fn enter_is_cr_or_lf_and_crlf_counts_once() {
        let mut e = LineEditor::default();
        assert_eq!(
            feed(&mut e, b"ec2-user\r\nsecret\r\n", true),
            ("ec2-user\r\n".into(), Some("ec2-user".into()), "\nsecret\r\n".into())
        );
        assert_eq!(feed(&mut e, b"\nsecret\r\nrest", false), ("\r\n".into(), Some("secret".into()), "\nrest".into()));
        let mut q: VecDeque<u8> = b"\nrest".iter().copied().collect();
        e.finish(&mut q);
        assert_eq!(q.into_iter().collect::<Vec<u8>>(), b"rest");
        assert_eq!(feed(&mut e, b"a\nb\n", true), ("a\r\n".into(), Some("a".into()), "b\n".into()));
        assert_eq!(feed(&mut e, b"\n", true), ("\r\n".into(), Some(String::new()), String::new()));
    }

    #[test]
    fn partial_lines_wait_for_more_input() {
        let mut e = LineEditor::default();
        assert_eq!(feed(&mut e, b"ec2-", true), ("ec2-".into(), None, String::new()));
        assert_eq!(feed(&mut e, b"user\r", true), ("user\r\n".into(), Some("ec2-user".into()), String::new()));
        assert_eq!(feed(&mut e, b"pw", false), (String::new(), None, String::new()));
        assert_eq!(feed(&mut e, b"\r", false), ("\r\n".into(), Some("pw".into()), String::new()));
    }

    #[test]
    fn editing_keys() {
        let mut e = LineEditor::default();
        assert_eq!(feed(&mut e, b"roq\x7fo\x08\x08oot\r", true).1.as_deref(), Some("root"));
        assert_eq!(feed(&mut e, b"ab\x08", true).0, "ab\x08 \x08");
        assert_eq!(feed(&mut e, b"\x08\x08\x08x\r", true).1.as_deref(), Some("x"), "erasing past the start is a no-op");
        assert_eq!(feed(&mut e, b"junk\x15ok\r", false), ("\r\n".into(), Some("ok".into()), String::new()));
        assert_eq!(feed(&mut e, "zé\x7f\x7fy\r".as_bytes(), true).1.as_deref(), Some("y"), "UTF-8 erases whole");
        assert_eq!(feed(&mut e, b"a\x1b[Ab\x1bOD\x03\tc\r", true).1.as_deref(), Some("abc"), "arrows and controls");
    }

    #[test]
    fn lines_are_capped() {
        let mut e = LineEditor::default();
        let long = vec![b'x'; MAX_LINE + 10];
        let (_, line, _) = feed(&mut e, &long, false);
        assert_eq!(line, None);
        let (_, line, _) = feed(&mut e, b"\r", false);
        assert_eq!(line.map(|l| l.len()), Some(MAX_LINE));
    }
}
