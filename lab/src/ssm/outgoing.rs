//! The agent's outgoing buffer and retransmission timer (`ssm-data-channel.md` §9.3), as the real
//! agent does it: every stream-data frame stays until an ack names its sequence number; a 100 ms
//! tick looks only at the oldest one and resends it once `now − lastSent > RTO`. No I/O and no
//! clock here: `now` comes in.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How often the resend timer looks at the oldest unacked frame (`ResendSleepInterval`).
pub(crate) const RESEND_INTERVAL: Duration = Duration::from_millis(100);
/// The agent's outgoing buffer capacity; past it frames are sent but not kept (§9.3).
const CAPACITY: usize = 100_000;
/// Initial smoothed RTT (§9.3).
const INITIAL_SRTT: Duration = Duration::from_millis(100);
/// Initial RTO (§9.3).
const INITIAL_RTO: Duration = Duration::from_millis(200);
/// RTO cap (§9.3).
const MAX_RTO: Duration = Duration::from_secs(1);
/// The floor term of `RTO = SRTT + max(10 ms, 4·RTTVAR)` (§9.3).
const MIN_VARIANCE_TERM: Duration = Duration::from_millis(10);

/// Unacked outgoing frames and the RTT estimator.
#[derive(Debug)]
pub(crate) struct Outgoing {
    next_seq: i64,
    entries: VecDeque<Entry>,
    srtt: f64,
    rttvar: f64,
    rto: Duration,
}

#[derive(Debug)]
struct Entry {
    seq: i64,
    frame: Vec<u8>,
    last_sent: Instant,
}

impl Outgoing {
    /// Empty, sequence 0 next, RTO 200 ms.
    pub(crate) fn new() -> Self {
        Outgoing {
            next_seq: 0,
            entries: VecDeque::new(),
            srtt: INITIAL_SRTT.as_secs_f64(),
            rttvar: 0.0,
            rto: INITIAL_RTO,
        }
    }

    /// Takes the next sequence number.
    pub(crate) fn next_seq(&mut self) -> i64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// Keeps a frame until it is acked (if there is room).
    pub(crate) fn push(&mut self, seq: i64, frame: Vec<u8>, now: Instant) {
        if self.entries.len() < CAPACITY {
            self.entries.push_back(Entry { seq, frame, last_sent: now });
        }
    }

    /// An ack for `seq`: drops that frame wherever it is and feeds the RTT estimator with
    /// `now − lastSent` (no Karn's rule, as in the agent). Returns whether it was buffered.
    pub(crate) fn handle_ack(&mut self, seq: i64, now: Instant) -> bool {
        let Some(pos) = self.entries.iter().position(|e| e.seq == seq) else {
            return false;
        };
        let entry = self.entries.remove(pos).expect("position() found it");
        let r = now.saturating_duration_since(entry.last_sent).as_secs_f64();
        self.rttvar = 0.75 * self.rttvar + 0.25 * (self.srtt - r).abs();
        self.srtt = 0.875 * self.srtt + 0.125 * r;
        let rto = self.srtt + (4.0 * self.rttvar).max(MIN_VARIANCE_TERM.as_secs_f64());
        self.rto = Duration::from_secs_f64(rto).min(MAX_RTO);
        true
    }

    /// On a resend tick: the oldest frame, if it is overdue; its send time becomes `now`.
    #[must_use]
    pub(crate) fn poll_resend(&mut self, now: Instant) -> Option<Vec<u8>> {
        let head = self.entries.front_mut()?;
        if now.saturating_duration_since(head.last_sent) > self.rto {
            head.last_sent = now;
            return Some(head.frame.clone());
        }
        None
    }

    /// Nothing is waiting for an ack.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The current retransmission timeout.
    #[cfg(test)]
    pub(crate) fn rto(&self) -> Duration {
        self.rto
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_head_is_resent_and_only_after_rto() {
        let t0 = Instant::now();
        let mut out = Outgoing::new();
        for i in 0..3 {
            let seq = out.next_seq();
            out.push(seq, vec![i], t0);
        }
        assert_eq!(out.poll_resend(t0 + Duration::from_millis(200)), None, "not past RTO yet");
        assert_eq!(out.poll_resend(t0 + Duration::from_millis(201)), Some(vec![0]));
        // Its send time moved: the next tick does not resend it again, nor anything else.
        assert_eq!(out.poll_resend(t0 + Duration::from_millis(301)), None);
        // Acking the middle one leaves the head in place.
        assert!(out.handle_ack(1, t0 + Duration::from_millis(350)));
        assert_eq!(out.poll_resend(t0 + Duration::from_millis(600)), Some(vec![0]));
        assert!(!out.handle_ack(1, t0), "a duplicate ack is ignored");
    }

    #[test]
    fn rto_follows_jacobson_karels_and_is_capped() {
        let t0 = Instant::now();
        let mut out = Outgoing::new();
        let seq = out.next_seq();
        out.push(seq, vec![], t0);
        out.handle_ack(seq, t0 + Duration::from_millis(20));
        // RTTVAR = 0.25·|0.1 − 0.02| = 0.02; SRTT = 0.875·0.1 + 0.125·0.02 = 0.09; RTO = 0.09 + 0.08.
        assert!((out.rto().as_secs_f64() - 0.170).abs() < 1e-6, "{:?}", out.rto());
        let seq = out.next_seq();
        out.push(seq, vec![], t0);
        out.handle_ack(seq, t0 + Duration::from_secs(30));
        assert_eq!(out.rto(), MAX_RTO);
    }
}
