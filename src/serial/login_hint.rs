//! Noticing the first `login:` prompt in the console's output, to remind the user that the
//! serial console needs an OS password (SSH keys do not apply at a getty) (sans-IO).

/// What the reminder says (stderr, raw terminal: `\r\n`).
pub(crate) const REMINDER: &str = "\r\n[ec2-broker] The serial console logs in with an OS user's PASSWORD: SSH keys do not \
     work here. No password set? Set one while the instance is still reachable (sudo passwd USER), \
     or through user data or SSM Run Command. ~? lists the escapes, ~. leaves.\r\n";

const PROMPT: &[u8] = b"login:";

/// Watches output for the first login prompt.
#[derive(Debug, Default)]
pub(crate) struct LoginHint {
    tail: Vec<u8>,
    shown: bool,
}

impl LoginHint {
    /// Takes console output; true exactly once, when a login prompt first appears (it may be
    /// split across chunks).
    pub(crate) fn feed(&mut self, output: &[u8]) -> bool {
        if self.shown {
            return false;
        }
        self.tail.extend_from_slice(output);
        if self.tail.windows(PROMPT.len()).any(|w| w.eq_ignore_ascii_case(PROMPT)) {
            self.shown = true;
            self.tail = Vec::new();
            return true;
        }
        let keep = self.tail.len().saturating_sub(PROMPT.len() - 1);
        self.tail.drain(..keep);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_even_when_split() {
        let mut h = LoginHint::default();
        assert!(!h.feed(b"Amazon Linux 2023\r\nKernel 6.1 on an x86_64 (ttyS0)\r\n\r\nweb-1 lo"));
        assert!(h.feed(b"gin: "));
        assert!(!h.feed(b"\r\nweb-1 login: "), "only the first prompt");
        let mut h = LoginHint::default();
        assert!(h.feed(b"LOGIN: "));
        let mut h = LoginHint::default();
        assert!(!h.feed(b"logout\r\n"));
    }
}
