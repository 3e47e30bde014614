//! Terminal-safe text. Anything that came from the network, from a tag or from a service (Name
//! tags, AWS error messages, EICE refusals and close reasons, SSM `CustomerMessage` and
//! `channel_closed` text, console output outside the raw console stream) goes through
//! [`printable`] before it becomes part of a message, so it cannot move the cursor, recolour or
//! retitle the terminal, or forge a line of our own output. Pure: no I/O.
//!
//! What is escaped: every C0 control character (including tab, CR and LF: a message is one line),
//! DEL, every C1 control character (U+0080–U+009F, `CSI` among them), and the Unicode controls
//! that reorder or break displayed text (bidi embeddings, overrides and isolates, U+2028/U+2029).
//! ESC sequences lose their ESC, so what follows it is inert text. Escapes are written the way
//! Rust writes them (`\x1b`, `\u{9b}`), so a reader can still tell what was sent.

use std::borrow::Cow;
use std::fmt::Write as _;

/// `text` with every control character escaped (see the module docs); borrowed when there is
/// nothing to escape.
///
/// ```text
/// printable("web-1")            == "web-1"
/// printable("web\x1b[2J-1\n")  == "web\\x1b[2J-1\\x0a"   (tested below)
/// ```
pub(crate) fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            c if !needs_escape(c) => out.push(c),
            c if u32::from(c) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
        }
    }
    Cow::Owned(out)
}

/// [`printable`] for text of several lines of our own making (an error chain with a candidate
/// list): each line is made printable, the line breaks stay.
pub(crate) fn printable_lines(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c != '\n' && needs_escape(c)) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(text.split('\n').map(printable).collect::<Vec<_>>().join("\n"))
}

/// At most `max` characters of `text`, with `…` when something was cut.
pub(crate) fn clip(text: &str, max: usize) -> Cow<'_, str> {
    match text.char_indices().nth(max) {
        None => Cow::Borrowed(text),
        Some((at, _)) => Cow::Owned(format!("{}…", &text[..at])),
    }
}

/// `arg` as one POSIX shell word: as it is when it holds only characters no shell (nor shlex)
/// treats specially, single-quoted otherwise (`'` written as `'\''`). Data, never code.
pub(crate) fn sh_quote(arg: &str) -> String {
    let plain = !arg.is_empty() && arg.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%^".contains(&b));
    if plain { arg.to_string() } else { format!("'{}'", arg.replace('\'', r"'\''")) }
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        || matches!(c, '\u{2028}' | '\u{2029}')
}

/// `*` (any run) and `?` (exactly one) wildcards over any symbols (bytes for ssh's byte-wise
/// patterns, chars for EC2's filters): iterative, with one backtrack point (the last `*`), so
/// linear in practice and never exponential on `*a*a*a…`.
pub(crate) fn wildcard<T: PartialEq + Copy>(pattern: &[T], text: &[T], any_run: T, any_one: T) -> bool {
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < text.len() {
        if pi < pattern.len() && (pattern[pi] == any_one || pattern[pi] == text[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < pattern.len() && pattern[pi] == any_run {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[pi..].iter().all(|&c| c == any_run)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_examples() {
        assert_eq!(printable("web-1"), "web-1");
        assert_eq!(printable("web\x1b[2J-1\n"), "web\\x1b[2J-1\\x0a");
    }

    #[test]
    fn plain_text_is_borrowed_and_unchanged() {
        for s in ["", "web-1", "Name=db 1 (prod)", "Ünïcödé ok – “quotes” 日本", "tab-free; a \\x1b literal"]
        {
            assert!(matches!(printable(s), Cow::Borrowed(_)), "{s:?}");
            assert_eq!(printable(s), s);
        }
    }

    #[test]
    fn controls_are_escaped() {
        let cases = [
            ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
            // Set the window title, then ring the bell.
            ("\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07"),
            ("a\nfake line", "a\\x0afake line"),
            ("over\rwrite", "over\\x0dwrite"),
            ("tab\there", "tab\\x09here"),
            ("nul\0", "nul\\x00"),
            ("del\x7f", "del\\x7f"),
            // C1: CSI (U+009B) and NEL (U+0085).
            ("\u{9b}2J\u{85}", "\\u{9b}2J\\u{85}"),
            // A right-to-left override that would make "exe.txt" read as "txt.exe".
            ("a\u{202e}txt.exe", "a\\u{202e}txt.exe"),
            ("line\u{2028}sep", "line\\u{2028}sep"),
        ];
        for (input, want) in cases {
            assert_eq!(printable(input), want, "{input:?}");
            // Idempotent: what it produces needs no escaping.
            assert_eq!(printable(want), want);
        }
    }

    #[test]
    fn lines_keep_their_breaks_only() {
        assert_eq!(printable_lines("a\nb"), "a\nb");
        assert_eq!(printable_lines("one\x1b[2K\n  two\r"), "one\\x1b[2K\n  two\\x0d");
    }

    #[test]
    fn clip_counts_characters() {
        assert_eq!(clip("abcdef", 6), "abcdef");
        assert_eq!(clip("abcdef", 3), "abc…");
        assert_eq!(clip("ééééé", 2), "éé…");
    }
}
