//! Outgoing stream-data messages until the agent acknowledges them: per-message retransmission
//! timers with exponential back-off, a round-trip estimator, and the bytes-in-flight count that
//! flow control reads.
//!
//! The official peers resend only the oldest unacked message, one per 100 ms tick (§9.3). Here
//! every message has its own deadline, so a burst lost across a reconnect is resent at once, and
//! each resend doubles that message's timeout, so a slow peer is not flooded.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

/// First retransmission timeout, before any round trip was measured (the agent's value, §9.3).
/// Short on purpose: the agent drops (does not ack) the first data while it is still dialing the
/// instance's port (§13.3), and the ssh banner should not wait a second for its resend.
const INITIAL_RTO: Duration = Duration::from_millis(200);
/// Lower bound of the computed timeout: below it, scheduling noise on a loaded 2-core machine
/// triggers spurious resends (measured RTTs through the lab are 0.2–3 ms, so 100 ms is generous).
const MIN_RTO: Duration = Duration::from_millis(100);
/// Upper bound of the computed timeout, before back-off (the agent caps at 1 s, §9.3).
const MAX_RTO: Duration = Duration::from_secs(1);
/// Upper bound after back-off: a message is retried at least this often while the link is up.
const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// Unacknowledged outgoing messages.
#[derive(Debug)]
pub(crate) struct SendBuffer {
    unacked: BTreeMap<i64, Entry>,
    /// Messages to put on the wire, in order: new ones and resends.
    queue: VecDeque<i64>,
    /// Retransmission deadlines; entries whose message was acked or re-armed are stale.
    deadlines: BinaryHeap<Reverse<(Instant, i64)>>,
    bytes: usize,
    rtt: Rtt,
    retransmits: u64,
}

#[derive(Debug)]
struct Entry {
    frame: Vec<u8>,
    payload_len: usize,
    first_sent: Option<Instant>,
    deadline: Option<Instant>,
    sends: u32,
    queued: bool,
}

impl SendBuffer {
    pub(crate) fn new() -> Self {
        SendBuffer {
            unacked: BTreeMap::new(),
            queue: VecDeque::new(),
            deadlines: BinaryHeap::new(),
            bytes: 0,
            rtt: Rtt::new(),
            retransmits: 0,
        }
    }

    /// Stores an encoded message and queues it for its first transmission.
    pub(crate) fn push(&mut self, seq: i64, frame: Vec<u8>, payload_len: usize) {
        self.bytes += payload_len;
        self.unacked
            .insert(seq, Entry { frame, payload_len, first_sent: None, deadline: None, sends: 0, queued: true });
        self.queue.push_back(seq);
    }

    /// The next frame to transmit, if any, copied into `out`; arms its retransmission timer.
    pub(crate) fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        while let Some(seq) = self.queue.pop_front() {
            let Some(entry) = self.unacked.get_mut(&seq) else { continue };
            entry.queued = false;
            if entry.sends > 0 {
                self.retransmits += 1;
            }
            entry.first_sent.get_or_insert(now);
            let backoff = 1u32 << entry.sends.min(6);
            let timeout = (self.rtt.rto * backoff).min(MAX_BACKOFF);
            entry.sends += 1;
            let deadline = now + timeout;
            entry.deadline = Some(deadline);
            self.deadlines.push(Reverse((deadline, seq)));
            out.clear();
            out.extend_from_slice(&entry.frame);
            return true;
        }
        false
    }

    /// The agent acknowledged `seq`. Returns whether it was outstanding.
    pub(crate) fn ack(&mut self, now: Instant, seq: i64) -> bool {
        let Some(entry) = self.unacked.remove(&seq) else { return false };
        self.bytes -= entry.payload_len;
        // Karn's rule: a resent message's ack does not tell which send it answers.
        if entry.sends == 1
            && let Some(sent) = entry.first_sent
        {
            self.rtt.sample(now.saturating_duration_since(sent));
        }
        self.prune();
        true
    }

    /// Queues every message whose timer expired for retransmission.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        while let Some(&Reverse((deadline, seq))) = self.deadlines.peek() {
            if deadline > now {
                break;
            }
            self.deadlines.pop();
            if let Some(entry) = self.unacked.get_mut(&seq)
                && entry.deadline == Some(deadline)
                && !entry.queued
            {
                entry.deadline = None;
                entry.queued = true;
                self.queue.push_back(seq);
            }
        }
    }

    /// After a reconnect: everything unacked goes out again at once, in order.
    pub(crate) fn requeue_all(&mut self) {
        self.deadlines.clear();
        self.queue.clear();
        for (seq, entry) in &mut self.unacked {
            entry.deadline = None;
            entry.queued = true;
            self.queue.push_back(*seq);
        }
    }

    /// The earliest retransmission deadline.
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        self.deadlines.peek().map(|Reverse((d, _))| *d)
    }

    /// Payload bytes sent or queued and not yet acknowledged.
    pub(crate) fn bytes_in_flight(&self) -> usize {
        self.bytes
    }

    /// Messages not yet acknowledged.
    pub(crate) fn len(&self) -> usize {
        self.unacked.len()
    }

    /// Resends so far.
    pub(crate) fn retransmits(&self) -> u64 {
        self.retransmits
    }

    /// The current retransmission timeout.
    #[cfg(test)]
    pub(crate) fn rto(&self) -> Duration {
        self.rtt.rto
    }

    /// Drops stale heap entries so `next_timeout` is exact.
    fn prune(&mut self) {
        while let Some(&Reverse((deadline, seq))) = self.deadlines.peek() {
            match self.unacked.get(&seq) {
                Some(e) if e.deadline == Some(deadline) => break,
                _ => {
                    self.deadlines.pop();
                }
            }
        }
    }
}

/// Jacobson/Karels estimator as in §9.3, with our own bounds.
#[derive(Debug)]
struct Rtt {
    srtt: Option<Duration>,
    rttvar: Duration,
    rto: Duration,
}

impl Rtt {
    fn new() -> Self {
        Rtt { srtt: None, rttvar: Duration::ZERO, rto: INITIAL_RTO }
    }

    fn sample(&mut self, r: Duration) {
        let (srtt, rttvar) = match self.srtt {
            None => (r, r / 2),
            Some(srtt) => {
                let diff = srtt.abs_diff(r);
                (srtt * 7 / 8 + r / 8, self.rttvar * 3 / 4 + diff / 4)
            }
        };
        self.srtt = Some(srtt);
        self.rttvar = rttvar;
        self.rto = (srtt + (rttvar * 4).max(Duration::from_millis(10))).clamp(MIN_RTO, MAX_RTO);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(buf: &mut SendBuffer, now: Instant) -> Vec<u8> {
        let mut out = Vec::new();
        assert!(buf.poll_transmit(now, &mut out));
        out
    }

    #[test]
    fn each_message_has_its_own_timer_with_backoff() {
        let t0 = crate::ssm::driver::test_epoch();
        let mut b = SendBuffer::new();
        b.push(0, vec![0], 1);
        b.push(1, vec![1], 1);
        assert_eq!(sent(&mut b, t0), vec![0]);
        assert_eq!(sent(&mut b, t0 + Duration::from_millis(50)), vec![1]);
        assert_eq!(b.next_timeout(), Some(t0 + INITIAL_RTO));
        b.handle_timeout(t0 + INITIAL_RTO);
        let t1 = t0 + INITIAL_RTO;
        assert_eq!(sent(&mut b, t1), vec![0]);
        // The second message's own deadline, not a tick of the head.
        assert_eq!(b.next_timeout(), Some(t0 + Duration::from_millis(50) + INITIAL_RTO));
        b.handle_timeout(t0 + Duration::from_millis(250));
        assert_eq!(sent(&mut b, t0 + Duration::from_millis(250)), vec![1]);
        assert!(b.ack(t1, 1));
        // Message 0 was sent twice: its next timeout is doubled.
        assert_eq!(b.next_timeout(), Some(t1 + INITIAL_RTO * 2));
        assert_eq!(b.retransmits(), 2);
        assert!(b.ack(t1, 0));
        assert!(!b.ack(t1, 0));
        assert_eq!((b.len(), b.bytes_in_flight(), b.next_timeout()), (0, 0, None));
    }

    #[test]
    fn rtt_samples_only_from_messages_sent_once() {
        let t0 = crate::ssm::driver::test_epoch();
        let mut b = SendBuffer::new();
        b.push(0, vec![0], 10);
        let _ = sent(&mut b, t0);
        b.ack(t0 + Duration::from_millis(400), 0);
        assert_eq!(b.rto(), MAX_RTO.min(Duration::from_millis(400 + 800)));
        b.push(1, vec![1], 10);
        let _ = sent(&mut b, t0);
        b.handle_timeout(t0 + Duration::from_secs(2));
        let _ = sent(&mut b, t0 + Duration::from_secs(2));
        let before = b.rto();
        b.ack(t0 + Duration::from_secs(2), 1);
        assert_eq!(b.rto(), before, "an ack of a resent message is not a sample");
    }

    #[test]
    fn requeue_after_reconnect_resends_all_in_order() {
        let t0 = crate::ssm::driver::test_epoch();
        let mut b = SendBuffer::new();
        for i in 0..5 {
            b.push(i, vec![i as u8], 1);
            let _ = sent(&mut b, t0);
        }
        b.ack(t0, 2);
        b.requeue_all();
        let got: Vec<u8> = std::iter::from_fn(|| {
            let mut out = Vec::new();
            b.poll_transmit(t0, &mut out).then(|| out[0])
        })
        .collect();
        assert_eq!(got, vec![0, 1, 3, 4]);
        assert_eq!(b.bytes_in_flight(), 4);
    }
}
