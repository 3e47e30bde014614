//! The Session Manager sessions this process started and has not ended yet, so that a broker
//! that abandons a connection (ssh left while the route was opening or a session was resuming)
//! ends them with `TerminateSession` instead of leaving them to time out on the instance.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::Aws;

/// Session ids, shared by every clone of one [`Aws`].
#[derive(Debug, Clone, Default)]
pub(crate) struct OpenSessions(Arc<Mutex<BTreeSet<String>>>);

impl OpenSessions {
    pub(crate) fn opened(&self, id: &str) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).insert(id.to_string());
    }

    pub(crate) fn ended(&self, id: &str) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).remove(id);
    }

    fn take_all(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_iter().collect()
    }
}

impl Aws {
    /// Ends every session this process started and did not end, all at once, giving up after
    /// `budget` (the broker promises to be gone within 1 s of ssh). Returns how many were ended.
    pub(crate) async fn end_open_sessions(&self, budget: Duration) -> usize {
        let ids = self.open_sessions.take_all();
        if ids.is_empty() {
            return 0;
        }
        let calls = ids.iter().map(|id| self.terminate_session(id));
        match tokio::time::timeout(budget, futures_util::future::join_all(calls)).await {
            Ok(results) => {
                for (id, result) in ids.iter().zip(&results) {
                    if let Err(e) = result {
                        tracing::warn!(session = %id, error = %e, "could not terminate the SSM session");
                    }
                }
                results.iter().filter(|r| r.is_ok()).count()
            }
            Err(_) => {
                tracing::warn!(sessions = ?ids, "TerminateSession did not answer in time; the sessions time out on their own");
                0
            }
        }
    }
}
