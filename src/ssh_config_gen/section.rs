//! The marked section `ssh-config --write` owns inside a file: found by its marker lines,
//! replaced whole, everything outside it kept byte for byte. Pure.

/// Why the section cannot be replaced safely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SectionError {
    /// Markers missing, repeated or out of order: someone edited them.
    #[error(
        "the markers of section {name:?} are damaged ({detail}): fix or remove the lines `{begin}` and `{end}`, then run again"
    )]
    Damaged {
        /// The section's name.
        name: String,
        /// Which lines are wrong.
        detail: String,
        /// The begin marker.
        begin: String,
        /// The end marker.
        end: String,
    },
}

/// The first line of section `name`.
pub(crate) fn begin_marker(name: &str) -> String {
    format!("# >>> ec2-broker ssh-config: {name} >>>")
}

/// The last line of section `name`.
pub(crate) fn end_marker(name: &str) -> String {
    format!("# <<< ec2-broker ssh-config: {name} <<<")
}

/// The line after the begin marker.
const NOTICE: &str =
    "# Written by `ec2-broker ssh-config --write`: what is between these markers is replaced on the next run.";

/// `text` with section `name` holding `body` (which ends with a newline or is empty): replaced
/// where it is, or appended after a blank line when the file has none.
pub(crate) fn replace(text: &str, name: &str, body: &str) -> Result<String, SectionError> {
    let (begin, end) = (begin_marker(name), end_marker(name));
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let at = |marker: &str| -> Vec<usize> {
        lines.iter().enumerate().filter(|(_, l)| l.trim_end() == marker).map(|(n, _)| n).collect()
    };
    let (begins, ends) = (at(&begin), at(&end));
    let section = format!("{begin}\n{NOTICE}\n{body}{end}\n");
    match (begins.as_slice(), ends.as_slice()) {
        ([], []) => {
            let mut out = text.to_string();
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            if !out.is_empty() && !out.ends_with("\n\n") {
                out.push('\n');
            }
            Ok(out + &section)
        }
        ([b], [e]) if b < e => Ok(lines[..*b].concat() + &section + &lines[e + 1..].concat()),
        _ => {
            let numbers = |v: &[usize]| v.iter().map(|n| (n + 1).to_string()).collect::<Vec<_>>().join(", ");
            let detail =
                format!("begin marker on line(s) [{}], end marker on line(s) [{}]", numbers(&begins), numbers(&ends));
            Err(SectionError::Damaged { name: name.to_string(), detail, begin, end })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = "Host a\n    HostName i-1\n\n";

    #[test]
    fn appended_then_replaced_in_place_and_outside_kept() {
        let user = "# mine\nHost bastion\n    User me";
        let once = replace(user, "prod", BODY).unwrap();
        assert_eq!(
            once,
            format!(
                "# mine\nHost bastion\n    User me\n\n{}\n{NOTICE}\n{BODY}{}\n",
                begin_marker("prod"),
                end_marker("prod")
            )
        );
        assert_eq!(replace(&once, "prod", BODY).unwrap(), once, "same body: same text");
        let with_tail = once.clone() + "\nHost *\n    ServerAliveInterval 30\n";
        let replaced = replace(&with_tail, "prod", "Host b\n").unwrap();
        assert!(replaced.starts_with("# mine\nHost bastion\n    User me\n\n"));
        assert!(replaced.ends_with(&format!("Host b\n{}\n\nHost *\n    ServerAliveInterval 30\n", end_marker("prod"))));
        assert!(!replaced.contains("Host a"));
        let other = replace(&replaced, "dev", BODY).unwrap();
        assert!(other.starts_with(&replaced), "another section is added, this one untouched");
        assert_eq!(
            replace("", "prod", BODY).unwrap(),
            format!("{}\n{NOTICE}\n{BODY}{}\n", begin_marker("prod"), end_marker("prod"))
        );
    }

    #[test]
    fn damaged_markers_are_refused_with_line_numbers() {
        let b = begin_marker("prod");
        let e = end_marker("prod");
        for (text, lines) in [
            (format!("{b}\nHost a\n"), "begin marker on line(s) [1], end marker on line(s) []"),
            (format!("{e}\n{b}\n"), "begin marker on line(s) [2], end marker on line(s) [1]"),
            (format!("{b}\n{e}\n{b}\n{e}\n"), "begin marker on line(s) [1, 3], end marker on line(s) [2, 4]"),
        ] {
            let err = replace(&text, "prod", BODY).unwrap_err();
            assert!(err.to_string().contains(lines), "{err}");
        }
    }
}
