//! Pure text helpers of the shell plugin: the agent's UTF-8 boundary rule for pty output and
//! `shlex.Split` for NonInteractiveCommands.

/// How many leading bytes of `buf` can go now (`processStdoutData`): whole characters, and
/// invalid bytes one by one, except an undecodable rest shorter than 4 bytes, which waits.
pub(crate) fn utf8_ready(buf: &[u8]) -> usize {
    let mut i = 0;
    while i < buf.len() {
        let width = match buf[i] {
            0x00..=0x7f => 1,
            0xc2..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf4 => 4,
            _ => 0,
        };
        let valid = width > 0 && i + width <= buf.len() && std::str::from_utf8(&buf[i..i + width]).is_ok();
        if valid {
            i += width;
        } else if buf.len() - i < 4 {
            break;
        } else {
            i += 1;
        }
    }
    i
}

/// `shlex.Split` (github.com/google/shlex): words split on whitespace, `'…'` literal, `"…"`
/// with `\` escaping `"`, `\`, `$`, `` ` `` and newline, `\` outside quotes escaping anything,
/// `#` at the start of a word starting a comment to the end of the line.
pub(crate) fn split_words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let Some(&first) = chars.peek() else {
            return Ok(words);
        };
        if first == '#' {
            while chars.next_if(|&c| c != '\n').is_some() {}
            continue;
        }
        let mut word = String::new();
        while let Some(c) = chars.next() {
            match c {
                c if c.is_whitespace() => break,
                '\'' => loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("EOF found when expecting closing quote".into()),
                    }
                },
                '"' => loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`' | '\n')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("EOF found after escape character".into()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("EOF found when expecting closing quote".into()),
                    }
                },
                '\\' => match chars.next() {
                    Some(c) => word.push(c),
                    None => return Err("EOF found after escape character".into()),
                },
                c => word.push(c),
            }
        }
        words.push(word);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_like_shlex() {
        let w = |s: &str| split_words(s).unwrap();
        assert_eq!(w("sh -c 'exit 3'"), ["sh", "-c", "exit 3"]);
        assert_eq!(w(r#"echo "a \"b\" \x" c\ d"#), ["echo", r#"a "b" \x"#, "c d"]);
        assert_eq!(w("  ls   -l # a comment\n  x"), ["ls", "-l", "x"]);
        assert_eq!(w("a''b"), ["ab"]);
        assert!(split_words("echo 'open").is_err());
        assert!(w("").is_empty());
    }

    #[test]
    fn utf8_boundaries_wait_for_the_rest_of_a_character() {
        let euro = "€".as_bytes(); // e2 82 ac
        assert_eq!(utf8_ready(b"abc"), 3);
        assert_eq!(utf8_ready(&[b'a', euro[0], euro[1]]), 1, "a cut character waits");
        assert_eq!(utf8_ready(&[b'a', euro[0], euro[1], euro[2]]), 4);
        assert_eq!(utf8_ready(&[0xff, b'a', b'b', b'c', b'd']), 5, "invalid bytes go one by one");
        assert_eq!(utf8_ready(&[b'a', 0xff]), 1, "an undecodable tail under 4 bytes waits, as in the agent");
    }
}
