//! The key exchange as ssh follows it, message by message, without the cryptography: the two
//! KEXINITs (RFC 4253 §7.1), the method they agree on, and the order of that method's messages.
//! The only output is *which* endpoint packet ssh will take as the reply carrying the host key.

/// RFC 4253 §12 message numbers.
const MSG_DISCONNECT: u8 = 1;
const MSG_IGNORE: u8 = 2;
const MSG_UNIMPLEMENTED: u8 = 3;
const MSG_DEBUG: u8 = 4;
const MSG_KEXINIT: u8 = 20;
const MSG_NEWKEYS: u8 = 21;
/// RFC 4251 §7: 30 to 49 belong to the key exchange method, which gives them their meaning.
const KEX_METHOD_MESSAGES: std::ops::RangeInclusive<u8> = 30..=49;
/// `SSH_MSG_KEXDH_INIT` (RFC 4253 §8), `SSH_MSG_KEX_ECDH_INIT` (RFC 5656 §7.1), and the same
/// number in Curve25519 (RFC 8731), sntrup761 and ML-KEM hybrids.
const MSG_KEX_INIT: u8 = 30;
/// Their reply: `SSH_MSG_KEXDH_REPLY` / `SSH_MSG_KEX_ECDH_REPLY`. In DH-GEX, the group.
const MSG_KEX_REPLY: u8 = 31;
/// RFC 4419 §5: `SSH_MSG_KEX_DH_GEX_GROUP`, `_INIT`, `_REPLY`, `_REQUEST`.
const MSG_GEX_GROUP: u8 = 31;
const MSG_GEX_INIT: u8 = 32;
const MSG_GEX_REPLY: u8 = 33;
const MSG_GEX_REQUEST: u8 = 34;

/// Names in the kex list that signal a feature and are never chosen as the method (RFC 8308 §2.1,
/// OpenSSH PROTOCOL "strict key exchange extension").
const PSEUDO_METHODS: [&str; 4] = ["ext-info-c", "ext-info-s", STRICT_KEX_CLIENT, STRICT_KEX_SERVER];
const STRICT_KEX_CLIENT: &str = "kex-strict-c-v00@openssh.com";
const STRICT_KEX_SERVER: &str = "kex-strict-s-v00@openssh.com";
/// Client key-exchange messages kept while the method is not known (a guessed first packet):
/// a guess is one message.
const MAX_GUESSED: usize = 1;

/// The message order of a key exchange method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    /// ssh sends 30, the endpoint replies 31 with its host key: fixed-group Diffie-Hellman
    /// (RFC 4253 §8, RFC 8268), ECDH (RFC 5656), Curve25519/448 (RFC 8731), sntrup761 and ML-KEM hybrids.
    InitReply,
    /// DH group exchange (RFC 4419): ssh requests a group (34), the endpoint sends it (31, a
    /// prime and a generator, no key), ssh sends its value (32), the endpoint replies (33).
    GroupExchange,
}

/// The message order of `method`, for the methods this check knows; others are not followed.
pub(super) fn shape(method: &str) -> Option<Shape> {
    match method {
        "diffie-hellman-group-exchange-sha1" | "diffie-hellman-group-exchange-sha256" => Some(Shape::GroupExchange),
        "diffie-hellman-group1-sha1"
        | "diffie-hellman-group14-sha1"
        | "diffie-hellman-group14-sha256"
        | "diffie-hellman-group15-sha512"
        | "diffie-hellman-group16-sha512"
        | "diffie-hellman-group17-sha512"
        | "diffie-hellman-group18-sha512"
        | "curve25519-sha256"
        | "curve25519-sha256@libssh.org"
        | "curve448-sha512"
        | "sntrup761x25519-sha512"
        | "sntrup761x25519-sha512@openssh.com"
        | "mlkem768x25519-sha256"
        | "mlkem768nistp256-sha256"
        | "mlkem1024nistp384-sha384" => Some(Shape::InitReply),
        ecdh if ecdh.starts_with("ecdh-sha2-") => Some(Shape::InitReply),
        _ => None,
    }
}

/// RFC 4253 §7.1: the first method on the client's list that the server also lists; the
/// pseudo-methods never count.
pub(super) fn negotiate<'a>(client: &'a [String], server: &[String]) -> Option<&'a str> {
    client
        .iter()
        .filter(|name| !PSEUDO_METHODS.contains(&name.as_str()))
        .find(|name| server.contains(name))
        .map(|n| n.as_str())
}

/// The parts of a KEXINIT (RFC 4253 §7.1) the check needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct KexInit {
    /// `kex_algorithms`.
    pub(super) kex: Vec<String>,
    /// `server_host_key_algorithms`.
    pub(super) host_key: Vec<String>,
    /// `first_kex_packet_follows`.
    pub(super) guess_follows: bool,
}

impl KexInit {
    /// Parses a KEXINIT payload (message number, 16-byte cookie, ten name-lists, boolean, reserved u32).
    pub(super) fn parse(payload: &[u8]) -> Option<KexInit> {
        let mut rest = payload.get(1 + 16..)?;
        let mut lists = Vec::with_capacity(10);
        for _ in 0..10 {
            let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
            let text = std::str::from_utf8(rest.get(4..4usize.checked_add(len)?)?).ok()?;
            lists.push(text);
            rest = &rest[4 + len..];
        }
        let guess_follows = *rest.first()? != 0;
        rest.get(1..5)?;
        let names = |list: &str| list.split(',').map(str::to_string).collect::<Vec<_>>();
        Some(KexInit { kex: names(lists[0]), host_key: names(lists[1]), guess_follows })
    }
}

/// Where the key exchange is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Before both KEXINITs are known.
    Negotiating,
    /// [`Shape::InitReply`]: waiting for ssh's 30 (`init_sent` false), then the endpoint's 31.
    InitReply { init_sent: bool },
    /// [`Shape::GroupExchange`]: waiting for ssh's request (34).
    GexRequest,
    /// Waiting for the endpoint's group (31).
    GexGroup,
    /// Waiting for ssh's value (32).
    GexInit,
    /// Waiting for the endpoint's reply (33).
    GexReply,
}

/// What an endpoint packet is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// Not the reply: it may go on to ssh.
    Harmless,
    /// The packet ssh will take as the key exchange's reply: its first field is the host key.
    Reply,
}

/// One key exchange followed from both sides.
#[derive(Debug)]
pub(super) struct Exchange {
    client_init: Option<KexInit>,
    server_init: Option<KexInit>,
    step: Step,
    /// Strict KEX (both sides offered it): nothing but key-exchange messages before NEWKEYS.
    strict: bool,
    /// An IGNORE, DEBUG or UNIMPLEMENTED passed before strictness was known.
    early_chatter: bool,
    /// ssh's key-exchange messages sent on a guess before the method was known.
    guessed: Vec<u8>,
}

impl Exchange {
    /// An exchange before any packet.
    pub(super) fn new() -> Self {
        Exchange {
            client_init: None,
            server_init: None,
            step: Step::Negotiating,
            strict: false,
            early_chatter: false,
            guessed: Vec::new(),
        }
    }

    /// Takes one endpoint packet's payload; an error fails the check closed.
    pub(super) fn handle_server_packet(&mut self, payload: &[u8]) -> Result<Role, &'static str> {
        let Some(&msg) = payload.first() else { return Err("the endpoint sent an empty packet") };
        match msg {
            MSG_IGNORE | MSG_UNIMPLEMENTED | MSG_DEBUG => self.chatter().map(|()| Role::Harmless),
            MSG_KEXINIT if self.server_init.is_some() => {
                Err("the endpoint started a second key exchange before its reply")
            }
            MSG_KEXINIT => {
                let init = KexInit::parse(payload).ok_or("the endpoint sent a malformed KEXINIT")?;
                if init.guess_follows {
                    // The endpoint never speaks first in the methods followed here, so its guess has
                    // no packet to name; ssh would skip a packet on a wrong guess: refuse either way.
                    return Err("the endpoint announced a guessed key-exchange packet (first_kex_packet_follows)");
                }
                self.server_init = Some(init);
                self.negotiate().map(|()| Role::Harmless)
            }
            MSG_NEWKEYS => Err("the endpoint ended the key exchange without a host key"),
            MSG_DISCONNECT => Err("the endpoint disconnected during the key exchange"),
            msg if KEX_METHOD_MESSAGES.contains(&msg) => self.server_kex_message(msg),
            _ => Err("the endpoint sent a message that has no place before the key exchange ends"),
        }
    }

    /// Takes one of ssh's packet payloads; an error fails the check closed.
    pub(super) fn handle_client_packet(&mut self, payload: &[u8]) -> Result<(), &'static str> {
        let Some(&msg) = payload.first() else { return Err("ssh sent an empty packet") };
        match msg {
            MSG_IGNORE | MSG_UNIMPLEMENTED | MSG_DEBUG => self.chatter(),
            MSG_KEXINIT if self.client_init.is_some() => Err("ssh started a second key exchange"),
            MSG_KEXINIT => {
                self.client_init = Some(KexInit::parse(payload).ok_or("ssh sent a KEXINIT this check cannot read")?);
                self.negotiate()
            }
            MSG_NEWKEYS => Err("ssh ended the key exchange before the endpoint's host key was checked"),
            MSG_DISCONNECT => Err("ssh gave up the key exchange"),
            msg if KEX_METHOD_MESSAGES.contains(&msg) => self.client_kex_message(msg),
            _ => Err("ssh sent a message that has no place before the key exchange ends"),
        }
    }

    /// IGNORE, DEBUG, UNIMPLEMENTED: allowed in between unless strict KEX is on.
    fn chatter(&mut self) -> Result<(), &'static str> {
        match self.step {
            Step::Negotiating => {
                self.early_chatter = true;
                Ok(())
            }
            _ if self.strict => Err("a message other than the key exchange's came during a strict key exchange"),
            _ => Ok(()),
        }
    }

    /// Once both KEXINITs are in: the method, strictness, and ssh's guessed messages.
    fn negotiate(&mut self) -> Result<(), &'static str> {
        let (Some(client), Some(server)) = (&self.client_init, &self.server_init) else {
            return Ok(());
        };
        let method =
            negotiate(&client.kex, &server.kex).ok_or("ssh and the endpoint have no key exchange method in common")?;
        let shape = shape(method).ok_or(
            "ssh and the endpoint agreed on a key exchange method this check does not follow: set KexAlgorithms curve25519-sha256 for this host",
        )?;
        self.strict =
            client.kex.iter().any(|n| n == STRICT_KEX_CLIENT) && server.kex.iter().any(|n| n == STRICT_KEX_SERVER);
        if self.strict && self.early_chatter {
            return Err("a message other than KEXINIT came first during a strict key exchange");
        }
        // RFC 4253 §7: the guess is right when both sides prefer the same method and host key type.
        let right_guess =
            client.kex.first() == server.kex.first() && client.host_key.first() == server.host_key.first();
        if client.guess_follows && !right_guess {
            return Err("ssh guessed the key exchange method wrong (first_kex_packet_follows)");
        }
        self.step = match shape {
            Shape::InitReply => Step::InitReply { init_sent: false },
            Shape::GroupExchange => Step::GexRequest,
        };
        for msg in std::mem::take(&mut self.guessed) {
            self.client_kex_message(msg)?;
        }
        Ok(())
    }

    /// A 30–49 message from the endpoint, read with the negotiated method's numbering.
    fn server_kex_message(&mut self, msg: u8) -> Result<Role, &'static str> {
        const BEFORE_SSH: &str = "the endpoint answered the key exchange before ssh had sent its part";
        match (self.step, msg) {
            (Step::Negotiating, _) => Err("the endpoint sent a key-exchange message before the method was agreed"),
            (Step::InitReply { init_sent: true }, MSG_KEX_REPLY) => Ok(Role::Reply),
            (Step::InitReply { init_sent: false }, MSG_KEX_REPLY) => Err(BEFORE_SSH),
            (Step::GexGroup, MSG_GEX_GROUP) => {
                self.step = Step::GexInit;
                Ok(Role::Harmless)
            }
            (Step::GexReply, MSG_GEX_REPLY) => Ok(Role::Reply),
            (Step::GexRequest, MSG_GEX_GROUP) | (Step::GexInit, MSG_GEX_REPLY) => Err(BEFORE_SSH),
            _ => Err("the endpoint sent a key-exchange message out of order"),
        }
    }

    /// A 30–49 message from ssh, read with the negotiated method's numbering.
    fn client_kex_message(&mut self, msg: u8) -> Result<(), &'static str> {
        match (self.step, msg) {
            (Step::Negotiating, _) => match &self.client_init {
                Some(init) if init.guess_follows && self.guessed.len() < MAX_GUESSED => {
                    self.guessed.push(msg);
                    Ok(())
                }
                _ => Err("ssh sent a key-exchange message before the method was agreed"),
            },
            (Step::InitReply { init_sent: false }, MSG_KEX_INIT) => {
                self.step = Step::InitReply { init_sent: true };
                Ok(())
            }
            (Step::GexRequest, MSG_GEX_REQUEST) => {
                self.step = Step::GexGroup;
                Ok(())
            }
            (Step::GexInit, MSG_GEX_INIT) => {
                self.step = Step::GexReply;
                Ok(())
            }
            _ => Err("ssh sent a key-exchange message out of order"),
        }
    }
}
