//! Window-size changes of the local terminal, from `SIGWINCH` (no polling).

use std::io;

use tokio::signal::unix::{Signal, SignalKind, signal};

/// The sizes the terminal takes, each reported once.
pub(crate) struct Resizes {
    winch: Signal,
    last: Option<(u16, u16)>,
}

impl Resizes {
    /// Starts listening; `current` is the size already announced (not reported again).
    pub(crate) fn listen(current: Option<(u16, u16)>) -> io::Result<Resizes> {
        Ok(Resizes { winch: signal(SignalKind::window_change())?, last: current })
    }

    /// The next new size as (columns, rows). Pends forever once the signal stream ends.
    pub(crate) async fn next(&mut self) -> (u16, u16) {
        loop {
            if self.winch.recv().await.is_none() {
                std::future::pending::<()>().await;
            }
            if let Some(size) = super::window_size()
                && self.last != Some(size)
            {
                self.last = Some(size);
                return size;
            }
        }
    }
}
