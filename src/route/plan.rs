//! `--route auto`: which routes to try, in which order, from what is known about the instance
//! before any call (sans-IO). Direct first (cheapest, full speed), then an Instance Connect
//! Endpoint (full speed, needs a VPC and a private address), then Session Manager (needs only the
//! agent's outbound connection). The serial console is never chosen: it is a terminal, not a
//! byte stream to sshd. Whether a route really works is learned by trying it.

use super::Route;

/// What the plan needs to know about the instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Facts {
    /// It has the address the direct route would dial (`--address`).
    pub has_address: bool,
    /// It has a private IPv4 address in a VPC (what an endpoint reaches).
    pub in_vpc: bool,
}

/// The default order.
pub(crate) const DEFAULT_ORDER: [Route; 3] = [Route::Direct, Route::Eice, Route::Ssm];

/// The routes to try, in order: `order` (default [`DEFAULT_ORDER`]) minus `exclude` and minus
/// those the facts rule out.
pub(crate) fn plan(facts: Facts, order: &[Route], exclude: &[Route]) -> Vec<Route> {
    let order = if order.is_empty() { &DEFAULT_ORDER[..] } else { order };
    let mut out: Vec<Route> = Vec::new();
    for &route in order {
        if exclude.contains(&route) || out.contains(&route) {
            continue;
        }
        let possible = match route {
            Route::Direct => facts.has_address,
            Route::Eice => facts.in_vpc,
            Route::Ssm => true,
            Route::Serial => false,
        };
        if possible {
            out.push(route);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use Route::{Direct, Eice, Serial, Ssm};

    const ALL: Facts = Facts { has_address: true, in_vpc: true };

    /// Facts, order, exclusions, expected plan.
    type Case = (Facts, &'static [Route], &'static [Route], &'static [Route]);

    #[test]
    fn table() {
        let cases: [Case; 8] = [
            (ALL, &[], &[], &[Direct, Eice, Ssm]),
            (Facts { has_address: false, ..ALL }, &[], &[], &[Eice, Ssm]),
            (Facts { in_vpc: false, ..ALL }, &[], &[], &[Direct, Ssm]),
            (Facts { has_address: false, in_vpc: false }, &[], &[], &[Ssm]),
            (ALL, &[Ssm, Direct], &[], &[Ssm, Direct]),
            (ALL, &[], &[Direct], &[Eice, Ssm]),
            (ALL, &[Serial, Eice, Eice], &[], &[Eice]),
            (ALL, &[], &[Direct, Eice, Ssm], &[]),
        ];
        for (facts, order, exclude, expected) in cases {
            assert_eq!(plan(facts, order, exclude), expected, "{facts:?} {order:?} {exclude:?}");
        }
    }
}
