//! Incoming stream-data messages: in-order delivery, a bounded reorder buffer, and the ack
//! decision of §9.2 — except that duplicates are re-acknowledged, which the official client does
//! not do (the cause of endless agent resends, §9.2).

use std::collections::BTreeMap;

use super::message::Message;

/// What to do with a received stream-data message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Deliver these, in order (the message itself, then any buffered successors); ack it.
    Deliver(Vec<Message>),
    /// Ahead of a gap: kept for later; ack it.
    Stored,
    /// Already delivered: ack it again, deliver nothing.
    Duplicate,
    /// Ahead of a gap and the buffer is full: drop without an ack, so the agent resends it.
    Overflow,
}

/// Reordering state for the agent → client direction.
#[derive(Debug)]
pub(crate) struct RecvBuffer {
    expected: i64,
    pending: BTreeMap<i64, Message>,
    max_pending: usize,
}

impl RecvBuffer {
    /// `max_pending` bounds the out-of-order messages kept (each ≤ ~1 KiB from the agent).
    pub(crate) fn new(max_pending: usize) -> Self {
        RecvBuffer { expected: 0, pending: BTreeMap::new(), max_pending }
    }

    /// Classifies `msg` by its sequence number.
    pub(crate) fn receive(&mut self, msg: Message) -> Verdict {
        let seq = msg.sequence;
        if seq < self.expected {
            return Verdict::Duplicate;
        }
        if seq > self.expected {
            if self.pending.contains_key(&seq) {
                return Verdict::Duplicate;
            }
            if self.pending.len() >= self.max_pending {
                return Verdict::Overflow;
            }
            self.pending.insert(seq, msg);
            return Verdict::Stored;
        }
        let mut out = vec![msg];
        self.expected += 1;
        while let Some(next) = self.pending.remove(&self.expected) {
            out.push(next);
            self.expected += 1;
        }
        Verdict::Deliver(out)
    }

    /// The next sequence number expected.
    #[cfg(test)]
    pub(crate) fn expected(&self) -> i64 {
        self.expected
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn m(seq: i64) -> Message {
        Message {
            kind: "output_stream_data".into(),
            schema_version: 1,
            created_ms: 1,
            sequence: seq,
            flags: 0,
            id: Uuid::nil(),
            payload_type: 1,
            payload: vec![seq as u8],
        }
    }

    fn seqs(v: Verdict) -> Vec<i64> {
        match v {
            Verdict::Deliver(ms) => ms.iter().map(|m| m.sequence).collect(),
            other => panic!("expected delivery, got {other:?}"),
        }
    }

    #[test]
    fn reorders_and_flags_duplicates() {
        let mut r = RecvBuffer::new(2);
        assert_eq!(r.receive(m(2)), Verdict::Stored);
        assert_eq!(r.receive(m(2)), Verdict::Duplicate);
        assert_eq!(r.receive(m(1)), Verdict::Stored);
        assert_eq!(r.receive(m(3)), Verdict::Overflow);
        assert_eq!(seqs(r.receive(m(0))), vec![0, 1, 2]);
        assert_eq!(r.receive(m(1)), Verdict::Duplicate);
        assert_eq!(seqs(r.receive(m(3))), vec![3]);
        assert_eq!(r.expected(), 4);
    }
}
