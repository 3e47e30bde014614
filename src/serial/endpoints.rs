//! Where the serial console of a Region answers, and the host key it must present
//! (`../shared/spec/aws-apis.md` §5.2, AWS's "EC2 Serial Console endpoints and fingerprints").
//!
//! Host names differ by Region (older Regions, newer Regions, China and GovCloud each have their own
//! pattern), so they come from the table, never from a template. A user can name another endpoint
//! and fingerprint (a new Region, private DNS, a local double) with `--serial-endpoint` and
//! `--serial-fingerprint`; the broker never trusts an endpoint's key on first use.

use std::fmt;

/// The SSH port of every serial-console endpoint.
pub(crate) const PORT: u16 = 22;

/// Region, endpoint host, SHA-256 fingerprint of the endpoint's host key.
const TABLE: [(&str, &str, &str); 36] = [
    (
        "us-east-2",
        "serial-console.ec2-instance-connect.us-east-2.aws",
        "SHA256:EhwPkTzRtTY7TRSzz26XbB0/HvV9jRM7mCZN0xw/d/0",
    ), // US East (Ohio)
    (
        "us-east-1",
        "serial-console.ec2-instance-connect.us-east-1.aws",
        "SHA256:dXwn5ma/xadVMeBZGEru5l2gx+yI5LDiJaLUcz0FMmw",
    ), // US East (N. Virginia)
    (
        "us-west-1",
        "serial-console.ec2-instance-connect.us-west-1.aws",
        "SHA256:OHldlcMET8u7QLSX3jmRTRAPFHVtqbyoLZBMUCqiH3Y",
    ), // US West (N. California)
    (
        "us-west-2",
        "serial-console.ec2-instance-connect.us-west-2.aws",
        "SHA256:EMCIe23TqKaBI6yGHainqZcMwqNkDhhAVHa1O2JxVUc",
    ), // US West (Oregon)
    ("af-south-1", "ec2-serial-console.af-south-1.api.aws", "SHA256:RMWWZ2fVePeJUqzjO5jL2KIgXsczoHlz21Ed00biiWI"), // Africa (Cape Town)
    ("ap-east-1", "ec2-serial-console.ap-east-1.api.aws", "SHA256:T0Q1lpiXxChoZHplnAkjbP7tkm2xXViC9bJFsjYnifk"), // Asia Pacific (Hong Kong)
    ("ap-south-2", "ec2-serial-console.ap-south-2.api.aws", "SHA256:WJgPBSwV4/shN+OPITValoewAuYj15DVW845JEhDKRs"), // Asia Pacific (Hyderabad)
    (
        "ap-southeast-3",
        "ec2-serial-console.ap-southeast-3.api.aws",
        "SHA256:5ZwgrCh+lfns32XITqL/4O0zIfbx4bZgsYFqy3o8mIk",
    ), // Asia Pacific (Jakarta)
    (
        "ap-southeast-5",
        "ec2-serial-console.ap-southeast-5.api.aws",
        "SHA256:cQXTHQMRcqRdIjmAGoAMBSExeoRobYyRwT67yTjnEiA",
    ), // Asia Pacific (Malaysia)
    (
        "ap-southeast-4",
        "ec2-serial-console.ap-southeast-4.api.aws",
        "SHA256:Avaq27hFgLvjn5gTSShZ0oV7h90p0GG46wfOeT6ZJvM",
    ), // Asia Pacific (Melbourne)
    (
        "ap-south-1",
        "serial-console.ec2-instance-connect.ap-south-1.aws",
        "SHA256:oBLXcYmklqHHEbliARxEgH8IsO51rezTPiSM35BsU40",
    ), // Asia Pacific (Mumbai)
    (
        "ap-northeast-3",
        "ec2-serial-console.ap-northeast-3.api.aws",
        "SHA256:Am0/jiBKBnBuFnHr9aXsgEV3G8Tu/vVHFXE/3UcyjsQ",
    ), // Asia Pacific (Osaka)
    (
        "ap-northeast-2",
        "serial-console.ec2-instance-connect.ap-northeast-2.aws",
        "SHA256:FoqWXNX+DZ++GuNTztg9PK49WYMqBX+FrcZM2dSrqrI",
    ), // Asia Pacific (Seoul)
    (
        "ap-southeast-1",
        "serial-console.ec2-instance-connect.ap-southeast-1.aws",
        "SHA256:PLFNn7WnCQDHx3qmwLu1Gy/O8TUX7LQgZuaC6L45CoY",
    ), // Asia Pacific (Singapore)
    (
        "ap-southeast-2",
        "serial-console.ec2-instance-connect.ap-southeast-2.aws",
        "SHA256:yFvMwUK9lEUQjQTRoXXzuN+cW9/VSe9W984Cf5Tgzo4",
    ), // Asia Pacific (Sydney)
    (
        "ap-southeast-7",
        "ec2-serial-console.ap-southeast-7.api.aws",
        "SHA256:KCAZiRYrR1Q2lqsg7vTwixWmvc2wmjVT31XRgSdEfDY",
    ), // Asia Pacific (Thailand)
    (
        "ap-northeast-1",
        "serial-console.ec2-instance-connect.ap-northeast-1.aws",
        "SHA256:RQfsDCZTOfQawewTRDV1t9Em/HMrFQe+CRlIOT5um4k",
    ), // Asia Pacific (Tokyo)
    (
        "ca-central-1",
        "serial-console.ec2-instance-connect.ca-central-1.aws",
        "SHA256:P2O2jOZwmpMwkpO6YW738FIOTHdUTyEv2gczYMMO7s4",
    ), // Canada (Central)
    ("ca-west-1", "ec2-serial-console.ca-west-1.api.aws", "SHA256:s3rc8lI2xhbhr3iedjJNxGAFLPGOLjx7IxxXrGckk6Q"), // Canada West (Calgary)
    (
        "cn-north-1",
        "ec2-serial-console.cn-north-1.api.amazonwebservices.com.cn",
        "SHA256:2gHVFy4H7uU3+WaFUxD28v/ggMeqjvSlgngpgLgGT+Y",
    ), // China (Beijing)
    (
        "cn-northwest-1",
        "ec2-serial-console.cn-northwest-1.api.amazonwebservices.com.cn",
        "SHA256:TdgrNZkiQOdVfYEBUhO4SzUA09VWI5rYOZGTogpwmiM",
    ), // China (Ningxia)
    (
        "eu-central-1",
        "serial-console.ec2-instance-connect.eu-central-1.aws",
        "SHA256:aCMFS/yIcOdOlkXvOl8AmZ1Toe+bBnrJJ3Fy0k0De2c",
    ), // Europe (Frankfurt)
    (
        "eu-west-1",
        "serial-console.ec2-instance-connect.eu-west-1.aws",
        "SHA256:h2AaGAWO4Hathhtm6ezs3Bj7udgUxi2qTrHjZAwCW6E",
    ), // Europe (Ireland)
    (
        "eu-west-2",
        "serial-console.ec2-instance-connect.eu-west-2.aws",
        "SHA256:a69rd5CE/AEG4Amm53I6lkD1ZPvS/BCV3tTPW2RnJg8",
    ), // Europe (London)
    ("eu-south-1", "ec2-serial-console.eu-south-1.api.aws", "SHA256:lC0kOVJnpgFyBVrxn0A7n99ecLbXSX95cuuS7X7QK30"), // Europe (Milan)
    (
        "eu-west-3",
        "serial-console.ec2-instance-connect.eu-west-3.aws",
        "SHA256:q8ldnAf9pymeNe8BnFVngY3RPAr/kxswJUzfrlxeEWs",
    ), // Europe (Paris)
    ("eu-south-2", "ec2-serial-console.eu-south-2.api.aws", "SHA256:GoCW2DFRlu669QNxqFxEcsR6fZUz/4F4n7T45ZcwoEc"), // Europe (Spain)
    (
        "eu-north-1",
        "serial-console.ec2-instance-connect.eu-north-1.aws",
        "SHA256:tkGFFUVUDvocDiGSS3Cu8Gdl6w2uI32EPNpKFKLwX84",
    ), // Europe (Stockholm)
    ("eu-central-2", "ec2-serial-console.eu-central-2.api.aws", "SHA256:8Ppx2mBMf6WdCw0NUlzKfwM4/IfRz4OaXFutQXWp6mk"), // Europe (Zurich)
    ("il-central-1", "ec2-serial-console.il-central-1.api.aws", "SHA256:JR6q8v6kNNPi8+QSFQ4dj5dimNmZPTgwgsM1SNvtYyU"), // Israel (Tel Aviv)
    ("mx-central-1", "ec2-serial-console.mx-central-1.api.aws", "SHA256:BCuVl13iQNk+CcVnt18Ef4p2ZHUrBBAOxlFetB32GS0"), // Mexico (Central)
    ("me-south-1", "ec2-serial-console.me-south-1.api.aws", "SHA256:nPjLLKHu2QnLdUq2kVArsoK5xvPJOMRJKCBzCDqC3k8"), // Middle East (Bahrain)
    ("me-central-1", "ec2-serial-console.me-central-1.api.aws", "SHA256:zpb5duKiBZ+l0dFwPeyykB4MPBYhI/XzXNeFSDKBvLE"), // Middle East (UAE)
    (
        "sa-east-1",
        "serial-console.ec2-instance-connect.sa-east-1.aws",
        "SHA256:rd2+/32Ognjew1yVIemENaQzC+Botbih62OqAPDq1dI",
    ), // South America (São Paulo)
    (
        "us-gov-east-1",
        "serial-console.ec2-instance-connect.us-gov-east-1.amazonaws.com",
        "SHA256:tIwe19GWsoyLClrtvu38YEEh+DHIkqnDcZnmtebvF28",
    ), // AWS GovCloud (US-East)
    (
        "us-gov-west-1",
        "serial-console.ec2-instance-connect.us-gov-west-1.amazonaws.com",
        "SHA256:kfOFRWLaOZfB+utbd3bRf8OlPf8nGO2YZLqXZiIw5DQ",
    ), // AWS GovCloud (US-West)
];

/// An endpoint to connect to and the host key fingerprint it must present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// The fingerprint its host key must have.
    pub fingerprint: Fingerprint,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host.contains(':') {
            true => write!(f, "[{}]:{}", self.host, self.port),
            false => write!(f, "{}:{}", self.host, self.port),
        }
    }
}

/// An OpenSSH SHA-256 fingerprint, `SHA256:` and 43 base64 characters (no padding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fingerprint(String);

impl Fingerprint {
    /// Parses `SHA256:…` as `ssh-keygen -l` prints it (trailing `=` padding is accepted and dropped).
    pub(crate) fn parse(text: &str) -> Result<Self, EndpointError> {
        let bad = || EndpointError::BadFingerprint(text.to_string());
        let body = text.trim().strip_prefix("SHA256:").ok_or_else(bad)?.trim_end_matches('=');
        let base64 = |b: u8| b.is_ascii_alphanumeric() || b == b'+' || b == b'/';
        if body.len() != 43 || !body.bytes().all(base64) {
            return Err(bad());
        }
        Ok(Fingerprint(format!("SHA256:{body}")))
    }

    /// The fingerprint as text.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why no endpoint could be chosen.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum EndpointError {
    /// The Region is not in the table and the user named no endpoint.
    #[error(
        "no serial console endpoint is known for Region {region}: look it up in AWS's \"EC2 Serial Console endpoints and fingerprints\" page and pass --serial-endpoint HOST and --serial-fingerprint SHA256:…"
    )]
    UnknownRegion {
        /// The Region.
        region: String,
    },
    /// The user named an endpoint the table does not vouch for, without a fingerprint.
    #[error(
        "--serial-endpoint {host} needs --serial-fingerprint SHA256:… as well: the broker never trusts a serial console's host key on first use"
    )]
    NoFingerprint {
        /// The endpoint named.
        host: String,
    },
    /// Not a `SHA256:` fingerprint.
    #[error("{0:?} is not an OpenSSH SHA-256 fingerprint (SHA256: followed by 43 base64 characters)")]
    BadFingerprint(String),
    /// Not `HOST`, `HOST:PORT` or `[IPV6]:PORT`.
    #[error("{0:?} is not HOST, HOST:PORT or [IPV6]:PORT")]
    BadEndpoint(String),
}

/// The endpoint for `region`, with the user's overrides: `host` (`HOST[:PORT]`) and
/// `fingerprint`. A fingerprint alone replaces the table's (AWS rotated the key before this
/// table was updated); a host alone keeps the Region's fingerprint (private DNS for the same
/// service) only for a Region in the table.
pub(crate) fn resolve(region: &str, host: Option<&str>, fingerprint: Option<&str>) -> Result<Endpoint, EndpointError> {
    let known = TABLE.iter().find(|(r, _, _)| *r == region);
    let (host_override, fingerprint_override) = (host, fingerprint.is_some());
    let fingerprint = match (fingerprint, known) {
        (Some(f), _) => Fingerprint::parse(f)?,
        (None, Some((_, _, f))) => Fingerprint(f.to_string()),
        (None, None) => {
            return Err(match host {
                Some(h) => EndpointError::NoFingerprint { host: h.to_string() },
                None => EndpointError::UnknownRegion { region: region.to_string() },
            });
        }
    };
    let (host, port) = match (host, known) {
        (Some(h), _) => split_host_port(h)?,
        (None, Some((_, h, _))) => (h.to_string(), PORT),
        (None, None) => return Err(EndpointError::UnknownRegion { region: region.to_string() }),
    };
    // An override changes what the broker trusts: never silently.
    if let Some(h) = host_override {
        tracing::info!(endpoint = %h, region, "serial console endpoint overridden (--serial-endpoint or EC2_BROKER_SERIAL_ENDPOINT)");
    }
    if fingerprint_override {
        tracing::info!(%fingerprint, region, "serial console host key fingerprint overridden (--serial-fingerprint or EC2_BROKER_SERIAL_FINGERPRINT): the published one is not checked");
    }
    Ok(Endpoint { host, port, fingerprint })
}

/// The Region and published fingerprint of a serial console endpoint host name, if it is one.
pub(crate) fn published_for_host(host: &str) -> Option<(&'static str, &'static str)> {
    TABLE.iter().find(|(_, h, _)| h.eq_ignore_ascii_case(host)).map(|(r, _, f)| (*r, *f))
}

#[cfg(test)]
/// Every Region of the table, in its order.
pub(crate) fn regions() -> impl Iterator<Item = &'static str> {
    TABLE.iter().map(|(r, _, _)| *r)
}

fn split_host_port(text: &str) -> Result<(String, u16), EndpointError> {
    let bad = || EndpointError::BadEndpoint(text.to_string());
    let port = |p: &str| p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad);
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        return match after {
            "" => Ok((host.to_string(), PORT)),
            _ => Ok((host.to_string(), port(after.strip_prefix(':').ok_or_else(bad)?)?)),
        };
    }
    let (host, p) = match text.split_once(':') {
        Some((h, p)) if !p.contains(':') => (h, port(p)?),
        Some(_) => (text, PORT), // a bare IPv6 address
        None => (text, PORT),
    };
    if host.is_empty() || host.contains(char::is_whitespace) || host.contains('@') {
        return Err(bad());
    }
    Ok((host.to_string(), p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_hosts_follow_the_published_patterns() {
        for (region, host, fp) in TABLE {
            Fingerprint::parse(fp).unwrap();
            let patterns = [
                format!("serial-console.ec2-instance-connect.{region}.aws"),
                format!("ec2-serial-console.{region}.api.aws"),
                format!("ec2-serial-console.{region}.api.amazonwebservices.com.cn"),
                format!("serial-console.ec2-instance-connect.{region}.amazonaws.com"),
            ];
            assert!(patterns.iter().any(|p| p == host), "{region}: {host}");
        }
        assert_eq!(regions().count(), 36);
        let mut sorted: Vec<_> = regions().collect();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 36, "a Region is listed twice");
    }

    #[test]
    fn regions_pick_their_own_pattern() {
        let e = resolve("eu-west-1", None, None).unwrap();
        assert_eq!(e.to_string(), "serial-console.ec2-instance-connect.eu-west-1.aws:22");
        assert_eq!(e.fingerprint.as_str(), "SHA256:h2AaGAWO4Hathhtm6ezs3Bj7udgUxi2qTrHjZAwCW6E");
        assert_eq!(resolve("eu-south-2", None, None).unwrap().host, "ec2-serial-console.eu-south-2.api.aws");
        assert_eq!(
            resolve("cn-north-1", None, None).unwrap().host,
            "ec2-serial-console.cn-north-1.api.amazonwebservices.com.cn"
        );
        assert_eq!(
            resolve("us-gov-west-1", None, None).unwrap().host,
            "serial-console.ec2-instance-connect.us-gov-west-1.amazonaws.com"
        );
    }

    #[test]
    fn overrides() {
        let fp = "SHA256:dXwn5ma/xadVMeBZGEru5l2gx+yI5LDiJaLUcz0FMmw";
        let e = resolve("xx-new-1", Some("127.0.0.1:2222"), Some(fp)).unwrap();
        assert_eq!((e.host.as_str(), e.port, e.fingerprint.as_str()), ("127.0.0.1", 2222, fp));
        // A host alone keeps a known Region's fingerprint.
        let e = resolve("eu-west-1", Some("serial.internal"), None).unwrap();
        assert_eq!((e.host.as_str(), e.port), ("serial.internal", 22));
        assert_eq!(e.fingerprint.as_str(), "SHA256:h2AaGAWO4Hathhtm6ezs3Bj7udgUxi2qTrHjZAwCW6E");
        // A fingerprint alone replaces the table's; padding is dropped.
        let e = resolve("eu-west-1", None, Some(&format!("{fp}="))).unwrap();
        assert_eq!(e.fingerprint.as_str(), fp);
        assert_eq!(
            resolve("[::1]:2200", None, None).unwrap_err(),
            EndpointError::UnknownRegion { region: "[::1]:2200".into() }
        );
        let e = resolve("xx-new-1", Some("[::1]:2200"), Some(fp)).unwrap();
        assert_eq!((e.host.as_str(), e.port, e.to_string().as_str()), ("::1", 2200, "[::1]:2200"));
    }

    #[test]
    fn bad_input_is_named() {
        assert_eq!(
            resolve("xx-new-1", None, None).unwrap_err(),
            EndpointError::UnknownRegion { region: "xx-new-1".into() }
        );
        assert!(matches!(resolve("xx-new-1", Some("h"), None), Err(EndpointError::NoFingerprint { .. })));
        for fp in ["MD5:aa", "SHA256:short", "SHA256:h2AaGAWO4Hathhtm6ezs3Bj7udgUxi2qTrHjZAwCW6E!", ""] {
            assert!(matches!(resolve("eu-west-1", None, Some(fp)), Err(EndpointError::BadFingerprint(_))), "{fp}");
        }
        for host in ["", "h:0", "h:99999", "h:x", "[::1", "[::1]x", "u@h", "a b"] {
            assert!(matches!(resolve("eu-west-1", Some(host), None), Err(EndpointError::BadEndpoint(_))), "{host}");
        }
    }
}
