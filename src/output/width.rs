//! Tables that fit the terminal: the width of stdout when it is a terminal (`COLUMNS`, else the
//! terminal's own size), and the pure fitting of columns and lines to a width. Into a pipe or a
//! file nothing is cut, so scripts see every byte.

use std::io::IsTerminal;

/// The ellipsis that ends a cut cell.
const ELLIPSIS: char = '…';

/// The width to fit tables to: `None` when stdout is not a terminal (nothing is cut).
pub(crate) fn stdout_width() -> Option<usize> {
    let stdout = std::io::stdout();
    if !stdout.is_terminal() {
        return None;
    }
    let columns = std::env::var("COLUMNS").ok().and_then(|c| c.trim().parse::<usize>().ok()).filter(|&c| c > 0);
    columns.or_else(|| {
        let size = rustix::termios::tcgetwinsize(&stdout).ok()?;
        Some(usize::from(size.ws_col)).filter(|&c| c > 0)
    })
}

/// Narrows `widths` (columns separated by `gap` spaces) until the row fits `max`, taking a
/// character at a time from the widest of the `shrinkable` columns, none below `min`. A row that
/// cannot fit stays as narrow as it gets.
pub(crate) fn fit_columns(widths: &mut [usize], gap: usize, max: usize, shrinkable: &[usize], min: usize) {
    let total = |w: &[usize]| w.iter().sum::<usize>() + gap * w.len().saturating_sub(1);
    while total(widths) > max {
        let widest = shrinkable.iter().copied().filter(|&c| widths[c] > min).max_by_key(|&c| widths[c]);
        match widest {
            Some(c) => widths[c] -= 1,
            None => break,
        }
    }
}

/// `cell` cut to `width` characters, its last one an ellipsis when something was cut.
pub(crate) fn cut(cell: &str, width: usize) -> String {
    if cell.chars().count() <= width {
        return cell.to_string();
    }
    let mut out: String = cell.chars().take(width.saturating_sub(1)).collect();
    out.push(ELLIPSIS);
    out
}

/// Every line of `text` longer than `width` wrapped at spaces, its continuation lines indented
/// by `indent` spaces. A word longer than a line (an ARN, a command) is never split, so it can
/// still be copied whole: it gets a line of its own and the terminal folds it. `None` leaves the
/// text as it is.
pub(crate) fn wrap(text: &str, width: Option<usize>, indent: usize) -> String {
    let Some(width) = width else { return text.to_string() };
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let (body, newline) = line.strip_suffix('\n').map_or((line, ""), |b| (b, "\n"));
        if body.chars().count() <= width {
            out.push_str(line);
            continue;
        }
        let (mut current, mut len) = (String::new(), 0);
        // `first`: no space before the next word; `words`: the line holds more than spaces.
        let (mut first, mut words) = (true, false);
        // Split on single spaces: the runs of spaces that align columns are kept.
        for word in body.split(' ') {
            let word_len = word.chars().count();
            if words && !word.is_empty() && len + 1 + word_len > width {
                out.push_str(current.trim_end());
                out.push('\n');
                (current, len) = (" ".repeat(indent), indent);
                (first, words) = (true, false);
            }
            if !first {
                current.push(' ');
                len += 1;
            }
            first = false;
            current.push_str(word);
            len += word_len;
            words |= !word.is_empty();
        }
        out.push_str(current.trim_end());
        out.push_str(newline);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_shrink_from_the_widest_shrinkable_one() {
        let mut w = [9, 19, 20, 7, 30];
        fit_columns(&mut w, 2, 80, &[2, 4], 4);
        assert_eq!(w, [9, 19, 19, 7, 18], "the widest shrinks first, then both in turn");
        assert_eq!(w.iter().sum::<usize>() + 8, 80);
        let mut w = [9, 19, 20];
        fit_columns(&mut w, 2, 10, &[2], 6);
        assert_eq!(w, [9, 19, 6], "no narrower than the minimum");
    }

    #[test]
    fn cells_are_cut_with_an_ellipsis() {
        assert_eq!(cut("push,direct,eice", 8), "push,di…");
        assert_eq!(cut("web-1", 5), "web-1");
        assert_eq!(cut("wéb-ünïcode", 4), "wéb…");
    }

    #[test]
    fn long_lines_wrap_under_the_indent() {
        let text = "ssm          fails    the agent has not checked in since yesterday\nshort\n";
        assert_eq!(
            wrap(text, Some(40), 22),
            "ssm          fails    the agent has not\n                      checked in since\n                      yesterday\nshort\n"
        );
        assert_eq!(wrap(text, None, 22), text, "not a terminal: untouched");
        let long = format!("x {} z", "y".repeat(30));
        assert_eq!(wrap(&long, Some(20), 4), format!("x\n    {}\n    z", "y".repeat(30)), "a long word stays whole");
        let aligned = "a    b\n";
        assert_eq!(wrap(aligned, Some(3), 0), "a\nb\n");
        assert_eq!(wrap(aligned, Some(10), 0), aligned, "alignment kept when it fits");
    }
}
