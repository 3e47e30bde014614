//! A progress bar on stderr for long work (console fetches of an audit, `ls` over several
//! Regions), drawn only when stderr is a terminal (indicatif also leaves out a dumb one: `TERM`
//! unset or `dumb`): into a pipe or a file nothing is written, so scripts and logs see the same
//! bytes as before. Never on stdout, which carries the report.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar of `len` steps labelled `what`, or nothing when stderr is not a terminal.
pub(crate) struct Progress(Option<ProgressBar>);

impl Progress {
    /// Starts the bar (drawn at once, at 0) when stderr is a terminal.
    pub(crate) fn start(what: &str, len: usize) -> Progress {
        Progress::start_if(std::io::stderr().is_terminal(), what, len)
    }

    /// [`Progress::start`] with the terminal test given (the seam).
    fn start_if(terminal: bool, what: &str, len: usize) -> Progress {
        if !terminal {
            return Progress(None);
        }
        // No colour in the template: the bar follows NO_COLOR by never colouring.
        let style = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let bar = ProgressBar::with_draw_target(Some(len as u64), ProgressDrawTarget::stderr())
            .with_style(style)
            .with_message(what.to_string());
        bar.tick();
        Progress(Some(bar))
    }

    /// One step done.
    pub(crate) fn step(&self) {
        if let Some(bar) = &self.0 {
            bar.inc(1);
        }
    }

    /// Whether anything is drawn.
    #[cfg(test)]
    fn shown(&self) -> bool {
        self.0.is_some()
    }
}

impl Drop for Progress {
    /// Erases the bar, so the report and later messages start on a clean line.
    fn drop(&mut self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_when_stderr_is_not_a_terminal() {
        let p = Progress::start_if(false, "consoles", 3);
        assert!(!p.shown());
        p.step();
    }
}
