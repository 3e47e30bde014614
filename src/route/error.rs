//! Why a route did not open: one typed error for every route, so that `doctor` matches on
//! variants and on the AWS error kind behind them, never on message text.

use super::direct::DirectError;
use super::eice::EiceError;
use super::serial::SerialRouteError;
use super::ssm::SsmError;
use crate::aws::AwsError;
use crate::target::instance::NoAddress;

/// How the SSH server's first line failed to come.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Greeting {
    /// The connection closed first.
    #[error("closed before sshd said anything")]
    Closed,
    /// Nothing came in time.
    #[error("sshd said nothing within {secs} s")]
    Silent {
        /// How long we waited.
        secs: u64,
    },
    /// Bytes came, but no line end within the longest identification line.
    #[error("not an SSH server: more than {max} bytes without a line end")]
    NotSsh {
        /// The longest line accepted.
        max: usize,
    },
    /// Reading failed.
    #[error("reading sshd's first line: {0}")]
    Failed(String),
}

/// Why a route did not open.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RouteError {
    /// The instance has no address of the kind the direct route dials.
    #[error(transparent)]
    NoAddress(#[from] NoAddress),
    /// The direct route's TCP connection failed.
    #[error(transparent)]
    Direct(#[from] DirectError),
    /// The route connected, but the SSH server did not speak.
    #[error("{0}")]
    Greeting(Greeting),
    /// A tunnel or session opened, then closed (or stayed silent) before sshd spoke.
    #[error("{greeting}{}", cause.as_ref().map(|c| format!(": {c}")).unwrap_or_default())]
    Relayed {
        /// What happened to the first line.
        greeting: Greeting,
        /// The route's own reason, when it gave one.
        cause: Option<Box<RouteError>>,
    },
    /// Opening the tunnel or session took too long.
    #[error("no {what} within {secs} s")]
    Timeout {
        /// `tunnel`, `session`.
        what: &'static str,
        /// The deadline.
        secs: u64,
    },
    /// The Instance Connect Endpoint route.
    #[error(transparent)]
    Eice(#[from] EiceError),
    /// The Session Manager route.
    #[error(transparent)]
    Ssm(#[from] SsmError),
    /// The serial console route.
    #[error(transparent)]
    Serial(#[from] SerialRouteError),
}

impl RouteError {
    /// The AWS error behind this failure, if an API call failed (doctor reads its kind and the
    /// action to allow). The serial route carries none: its checks go on when a call fails.
    pub(crate) fn aws(&self) -> Option<&AwsError> {
        match self {
            RouteError::Eice(EiceError::Api(e)) => Some(e),
            RouteError::Ssm(SsmError::Start { source, .. }) => Some(source),
            RouteError::Relayed { cause: Some(c), .. } => c.aws(),
            _ => None,
        }
    }

    /// Whether the route reached its far end (endpoint, agent) but not the instance's sshd: the
    /// tunnel or session closed, or sshd stayed silent.
    pub(crate) fn sshd_unreached(&self) -> bool {
        matches!(
            self,
            RouteError::Greeting(_) | RouteError::Relayed { .. } | RouteError::Eice(EiceError::Closed { .. })
        )
    }

    /// The error with its causes, joined by `: ` (what the user reads; `Display` alone stops at
    /// this level, as `thiserror` sources do).
    pub(crate) fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(s) = source {
            let more = s.to_string();
            // Many levels already quote their source's text: say it once.
            if !text.contains(&more) {
                text = format!("{text}: {more}");
            }
            source = s.source();
        }
        text
    }

    /// Whether the direct route's own connect error (which names the address) is the cause.
    pub(crate) fn names_the_address(&self) -> bool {
        matches!(self, RouteError::Direct(_))
    }
}
