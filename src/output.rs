//! Reports on stdout for the commands a user runs (`doctor`, `known-hosts`, `pin`), never for
//! `proxy`, whose stdout is ssh's byte stream. A reader that leaves early (`| head`) is not an
//! error: the rest of the report is dropped quietly, as ripgrep does, instead of the panic of
//! `print!` on a closed pipe.
//!
//! Around the reports: a progress bar on stderr for long work ([`progress`]) and tables fitted to
//! the terminal's width ([`width`]), both only on a terminal. No report prints colour, so there
//! is nothing for `NO_COLOR` to turn off here (logs follow it in `logging`). The JSON documents'
//! schemas are described in docs/output.md.

pub(crate) mod progress;
pub(crate) mod width;

use std::io::{self, Write};

/// Writes `text` to stdout; a closed pipe is a quiet success, other errors are returned.
pub(crate) fn print(text: &str) -> io::Result<()> {
    write_to(&mut io::stdout().lock(), text)
}

/// [`print()`] to any writer (the test seam).
pub(crate) fn write_to(out: &mut impl Write, text: &str) -> io::Result<()> {
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct ClosedPipe;

    impl Write for ClosedPipe {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_pipe_is_quiet_and_other_errors_are_not() {
        assert!(write_to(&mut ClosedPipe, "report\n").is_ok());
        let mut full = [0u8; 2];
        let err = write_to(&mut &mut full[..], "too long").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WriteZero);
        let mut v = Vec::new();
        write_to(&mut v, "ok\n").unwrap();
        assert_eq!(v, b"ok\n");
    }
}
