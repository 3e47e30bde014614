//! The lab's own SigV4 query-string (presigned URL) code: a verifier for the EICE double and a
//! signer for the lab's tests. Independent of the broker and of `aws-sigv4`, and pinned by the
//! botocore-produced vector of `../shared/spec/aws-apis.md` §9 (tests below). Pure: no I/O, and
//! the clock comes in as an argument.
//!
//! Canonical request (§4.1): method, path, the query without `X-Amz-Signature` (every name and
//! value percent-decoded, re-encoded as RFC 3986 with only unreserved characters left bare,
//! sorted by name then value), each signed header as `name:value`, the signed-header list, and
//! the SHA-256 of the empty payload (never `UNSIGNED-PAYLOAD`).

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The only algorithm SigV4 query signing uses.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// SHA-256 of the empty string: the payload hash of a presigned GET.
pub const EMPTY_PAYLOAD_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// Longest `X-Amz-Expires` SigV4 allows (7 days).
pub const MAX_EXPIRES_SECS: u64 = 604_800;

/// Why a query carries no usable SigV4 presignature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryError {
    /// None of the `X-Amz-*` signing parameters is present.
    Unsigned,
    /// A signing parameter is missing or malformed (the text says which).
    Malformed(String),
}

/// A presigned query, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presigned {
    /// Every parameter but `X-Amz-Signature`, percent-decoded, in request order.
    pub params: Vec<(String, String)>,
    /// The access key id from `X-Amz-Credential`.
    pub access_key_id: String,
    /// The scope's date (`yyyymmdd`).
    pub scope_date: String,
    /// The scope's Region.
    pub region: String,
    /// The scope's signing name.
    pub service: String,
    /// `X-Amz-Date` (`yyyymmddThhmmssZ`).
    pub amz_date: String,
    /// `X-Amz-Date` as Unix seconds.
    pub signed_at: u64,
    /// `X-Amz-Expires` in seconds.
    pub expires: u64,
    /// `X-Amz-SignedHeaders`, lower case.
    pub signed_headers: Vec<String>,
    /// `X-Amz-Signature` (hex).
    pub signature: String,
}

/// Every `name=value` of a raw query, percent-decoded, in order.
pub fn decode_query(raw_query: &str) -> Vec<(String, String)> {
    raw_query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .map(|(k, v)| (percent_decode(k), percent_decode(v)))
        .collect()
}

impl Presigned {
    /// Parses a raw (still percent-encoded) query string.
    pub fn parse(raw_query: &str) -> Result<Presigned, QueryError> {
        let mut params = Vec::new();
        let mut signature = None;
        for (k, v) in decode_query(raw_query) {
            if k == "X-Amz-Signature" {
                signature = Some(v);
            } else {
                params.push((k, v));
            }
        }
        let get = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let names = ["X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders"];
        if signature.is_none() && names.iter().all(|n| get(n).is_none()) {
            return Err(QueryError::Unsigned);
        }
        let need = |name: &str| get(name).ok_or_else(|| QueryError::Malformed(format!("{name} is missing")));
        let bad = |msg: String| QueryError::Malformed(msg);
        if need("X-Amz-Algorithm")? != ALGORITHM {
            return Err(bad(format!("X-Amz-Algorithm must be {ALGORITHM}")));
        }
        let credential = need("X-Amz-Credential")?;
        let parts: Vec<&str> = credential.split('/').collect();
        let [key, date, region, service, "aws4_request"] = parts[..] else {
            return Err(bad(format!(
                "X-Amz-Credential must be <key>/<yyyymmdd>/<region>/<service>/aws4_request, not '{credential}'"
            )));
        };
        let amz_date = need("X-Amz-Date")?;
        let signed_at = unix_from_amz_date(amz_date)
            .ok_or_else(|| bad(format!("X-Amz-Date '{amz_date}' is not yyyymmddThhmmssZ")))?;
        let expires = need("X-Amz-Expires")?;
        let expires =
            expires.parse::<u64>().ok().filter(|e| (1..=MAX_EXPIRES_SECS).contains(e)).ok_or_else(|| {
                bad(format!("X-Amz-Expires must be 1 to {MAX_EXPIRES_SECS} seconds, not '{expires}'"))
            })?;
        let signed_headers: Vec<String> =
            need("X-Amz-SignedHeaders")?.split(';').map(str::to_ascii_lowercase).collect();
        if !signed_headers.iter().any(|h| h == "host") {
            return Err(bad("X-Amz-SignedHeaders must include host".into()));
        }
        let signature = signature.ok_or_else(|| bad("X-Amz-Signature is missing".into()))?;
        Ok(Presigned {
            access_key_id: key.into(),
            scope_date: date.into(),
            region: region.into(),
            service: service.into(),
            amz_date: amz_date.into(),
            signed_at,
            expires,
            signed_headers,
            signature,
            params,
        })
    }

    /// The value of a (decoded) parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The signature this request should carry, given the request's `headers` (name, value; any
    /// case) and the secret key. `Err` names a signed header the request lacks.
    pub fn expected_signature(
        &self,
        method: &str,
        path: &str,
        headers: &[(String, String)],
        secret: &str,
    ) -> Result<String, String> {
        let canonical_headers = canonical_headers(headers, &self.signed_headers)?;
        let canonical = format!(
            "{method}\n{path}\n{}\n{canonical_headers}\n{}\n{EMPTY_PAYLOAD_SHA256}",
            canonical_query(&self.params),
            self.signed_headers.join(";")
        );
        let scope = format!("{}/{}/{}/aws4_request", self.scope_date, self.region, self.service);
        let string_to_sign = format!("{ALGORITHM}\n{}\n{scope}\n{}", self.amz_date, hex(&Sha256::digest(canonical)));
        let key = signing_key(secret, &self.scope_date, &self.region, &self.service);
        Ok(hex(&hmac(&key, string_to_sign.as_bytes())))
    }
}

/// The canonical headers block of SigV4: each signed header (lower case, in order) with its
/// values trimmed, inner white space folded and joined by commas. `Err` names a signed header
/// the request lacks. Shared by the presigned-URL and the header-signed verifiers.
pub fn canonical_headers(headers: &[(String, String)], signed_headers: &[String]) -> Result<String, String> {
    let mut out = String::new();
    for name in signed_headers {
        let values: Vec<String> = (headers.iter())
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        if values.is_empty() {
            return Err(format!("the signed header {name} is not in the request"));
        }
        out += &format!("{name}:{}\n", values.join(","));
    }
    Ok(out)
}

/// What [`presign`] signs.
#[derive(Debug, Clone)]
pub struct PresignRequest<'a> {
    /// The `Host` header value (`host` or `host:port`).
    pub host: &'a str,
    /// The path, e.g. `/openTunnel`.
    pub path: &'a str,
    /// The request's own parameters (not encoded), in URL order.
    pub params: &'a [(&'a str, &'a str)],
    /// Access key id.
    pub access_key_id: &'a str,
    /// Secret access key.
    pub secret: &'a str,
    /// Session token, added as `X-Amz-Security-Token` (signed) when present.
    pub session_token: Option<&'a str>,
    /// Region of the scope.
    pub region: &'a str,
    /// Signing name of the scope (`ec2-instance-connect` for EICE).
    pub service: &'a str,
    /// Signing time, Unix seconds.
    pub now: u64,
    /// `X-Amz-Expires`.
    pub expires: u64,
}

/// The lab's signer: the query string of a presigned GET (parameters in `req.params` order, then
/// the `X-Amz-*` ones in botocore's order, signature last). Only the `host` header is signed.
pub fn presign(req: &PresignRequest<'_>) -> String {
    let amz_date = amz_date_from_unix(req.now);
    let credential = format!("{}/{}/{}/{}/aws4_request", req.access_key_id, &amz_date[..8], req.region, req.service);
    let expires = req.expires.to_string();
    let mut params: Vec<(String, String)> = req.params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    params.push(("X-Amz-Algorithm".into(), ALGORITHM.into()));
    params.push(("X-Amz-Credential".into(), credential));
    params.push(("X-Amz-Date".into(), amz_date));
    params.push(("X-Amz-Expires".into(), expires));
    params.push(("X-Amz-SignedHeaders".into(), "host".into()));
    if let Some(token) = req.session_token {
        params.push(("X-Amz-Security-Token".into(), token.into()));
    }
    let query: Vec<String> = params.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect();
    let query = query.join("&");
    let parsed = Presigned::parse(&format!("{query}&X-Amz-Signature=0")).expect("the signer writes every parameter");
    let host = [("host".to_string(), req.host.to_string())];
    let signature = parsed.expected_signature("GET", req.path, &host, req.secret).expect("host is signed and given");
    format!("{query}&X-Amz-Signature={signature}")
}

/// `yyyymmddThhmmssZ` → Unix seconds.
pub fn unix_from_amz_date(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.bytes().all(|c| c.is_ascii_digit()).then(|| part.parse().ok())?
    };
    let (y, mo, d, h, mi, sec) = (num(0..4)?, num(4..6)?, num(6..8)?, num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if mo > 2 { mo - 3 } else { mo + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + h * 3600 + mi * 60 + sec).ok()
}

/// Unix seconds → `yyyymmddThhmmssZ`.
pub fn amz_date_from_unix(secs: u64) -> String {
    let c = crate::civil_time::from_unix(secs);
    format!("{:04}{:02}{:02}T{:02}{:02}{:02}Z", c.year, c.month, c.day, c.hour, c.minute, c.second)
}

/// Sorted, RFC 3986-encoded `name=value` pairs joined by `&`.
pub(crate) fn canonical_query(params: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, String)> = params.iter().map(|(k, v)| (encode(k), encode(v))).collect();
    pairs.sort();
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

/// RFC 3986: everything but `A-Z a-z 0-9 - _ . ~` as `%XX` (upper-case hex).
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out += &format!("%{b:02X}");
        }
    }
    out
}

/// `%XX` → byte; everything else (including `+`, which SigV4 does not treat as a space) as is.
/// Invalid UTF-8 is replaced, so it cannot match a signature made over the real bytes.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (b[i], b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k = hmac(&k, region.as_bytes());
    let k = hmac(&k, service.as_bytes());
    hmac(&k, b"aws4_request")
}

pub(crate) fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
