//! SigV4 in the `Authorization` header, as the AWS SDKs sign API calls: a parser and verifier
//! for the API doubles and a signer for the lab's own tests. Independent of the broker and of
//! `aws-sigv4` (the conformance suite checks it against `aws-sigv4` and the SDKs), and sharing
//! only the HMAC and encoding helpers of `crate::eice::sigv4`, which a botocore vector pins.
//! Pure: no I/O, and the clock comes in as an argument.
//!
//! Canonical request: method, path, the query (sorted, RFC 3986), each signed header as
//! `name:value` (values trimmed, inner runs of spaces collapsed, repeats joined by `,`), the
//! signed-header list, and the hex SHA-256 of the body.

use sha2::{Digest, Sha256};

use crate::eice::sigv4::{ALGORITHM, canonical_headers, canonical_query, decode_query, hex, hmac, signing_key};

/// How far a request's `X-Amz-Date` may be from the service's clock (the AWS common errors
/// page: "more than 15 minutes after the date stamp … or … more than 15 minutes in the future").
pub const MAX_SKEW_SECS: u64 = 15 * 60;

/// The parts of an `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…,
/// Signature=…` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// The access key id of the credential scope.
    pub access_key_id: String,
    /// The scope's date (`yyyymmdd`).
    pub scope_date: String,
    /// The scope's Region.
    pub region: String,
    /// The scope's signing name (`ec2`, `ssm`, `ec2-instance-connect`, `sts`).
    pub service: String,
    /// `SignedHeaders`, lower case, in the header's order.
    pub signed_headers: Vec<String>,
    /// `Signature` (hex).
    pub signature: String,
}

impl Authorization {
    /// Parses the header; `Err` says what is missing or malformed (AWS's `IncompleteSignature`).
    pub fn parse(header: &str) -> Result<Authorization, String> {
        let Some(rest) = header.strip_prefix(ALGORITHM).filter(|r| r.starts_with(' ')) else {
            return Err(format!("Unsupported Authorization Type: the header must start with {ALGORITHM}"));
        };
        let mut credential = None;
        let mut signed_headers = None;
        let mut signature = None;
        for part in rest.split(',').map(str::trim) {
            match part.split_once('=') {
                Some(("Credential", v)) => credential = Some(v),
                Some(("SignedHeaders", v)) => signed_headers = Some(v),
                Some(("Signature", v)) => signature = Some(v),
                _ => {}
            }
        }
        let missing = |name: &str| format!("Authorization header requires '{name}' parameter.");
        let credential = credential.ok_or_else(|| missing("Credential"))?;
        let signed_headers = signed_headers.ok_or_else(|| missing("SignedHeaders"))?;
        let signature = signature.ok_or_else(|| missing("Signature"))?;
        let parts: Vec<&str> = credential.split('/').collect();
        let [key, date, region, service, "aws4_request"] = parts[..] else {
            return Err(format!(
                "Credential must have the form <key>/<yyyymmdd>/<region>/<service>/aws4_request, not '{credential}'"
            ));
        };
        if key.is_empty() || date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("Credential '{credential}' is malformed"));
        }
        let signed_headers: Vec<String> = signed_headers.split(';').map(str::to_ascii_lowercase).collect();
        if !signed_headers.iter().any(|h| h == "host") {
            return Err("'Host' must be a 'SignedHeader' in the AWS Authorization.".into());
        }
        if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("Signature must be 64 hex characters".into());
        }
        Ok(Authorization {
            access_key_id: key.into(),
            scope_date: date.into(),
            region: region.into(),
            service: service.into(),
            signed_headers,
            signature: signature.to_ascii_lowercase(),
        })
    }

    /// The signature this request should carry: `headers` are the request's (any case), `query`
    /// its raw query string, `amz_date` its `X-Amz-Date`. `Err` names a signed header the
    /// request lacks.
    pub fn expected_signature(&self, request: &Request<'_>, amz_date: &str, secret: &str) -> Result<String, String> {
        let canonical = canonical_request(request, &self.signed_headers)?;
        Ok(signature(secret, amz_date, &self.scope_date, &self.region, &self.service, &canonical))
    }
}

/// What is signed of one HTTP request.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `POST`, `GET`, …
    pub method: &'a str,
    /// The path (`/`).
    pub path: &'a str,
    /// The raw query string (empty for a POST to `/`).
    pub query: &'a str,
    /// Every header (name, value), any case.
    pub headers: &'a [(String, String)],
    /// The body.
    pub body: &'a [u8],
}

/// The canonical request of `request` over `signed_headers` (lower case, in order).
pub fn canonical_request(request: &Request<'_>, signed_headers: &[String]) -> Result<String, String> {
    let canonical_headers = canonical_headers(request.headers, signed_headers)?;
    Ok(format!(
        "{}\n{}\n{}\n{canonical_headers}\n{}\n{}",
        request.method,
        request.path,
        canonical_query(&decode_query(request.query)),
        signed_headers.join(";"),
        hex(&Sha256::digest(request.body))
    ))
}

/// The hex signature of a canonical request.
pub fn signature(secret: &str, amz_date: &str, date: &str, region: &str, service: &str, canonical: &str) -> String {
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let string_to_sign = format!("{ALGORITHM}\n{amz_date}\n{scope}\n{}", hex(&Sha256::digest(canonical)));
    hex(&hmac(&signing_key(secret, date, region, service), string_to_sign.as_bytes()))
}

/// The lab's signer (for its own tests): the `Authorization` value for `request`, whose headers
/// must already hold `host` and `x-amz-date` (`yyyymmddThhmmssZ`); every header is signed.
pub fn authorization(request: &Request<'_>, access_key_id: &str, secret: &str, region: &str, service: &str) -> String {
    let amz_date = (request.headers.iter())
        .find(|(k, _)| k.eq_ignore_ascii_case("x-amz-date"))
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let date = amz_date.get(..8).unwrap_or_default();
    let mut names: Vec<String> = request.headers.iter().map(|(k, _)| k.to_ascii_lowercase()).collect();
    names.sort();
    names.dedup();
    let canonical = canonical_request(request, &names).expect("every named header is in the request");
    let signature = signature(secret, &amz_date, date, region, service, &canonical);
    format!(
        "{ALGORITHM} Credential={access_key_id}/{date}/{region}/{service}/aws4_request, SignedHeaders={}, Signature={signature}",
        names.join(";")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The AWS SigV4 test suite's `get-vanilla` case (access key `AKIDEXAMPLE`, secret
    /// `wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY`, 20150830T123600Z, us-east-1, service).
    #[test]
    fn the_sigv4_suite_vanilla_vector() {
        let headers = [
            ("Host".to_string(), "example.amazonaws.com".to_string()),
            ("X-Amz-Date".to_string(), "20150830T123600Z".to_string()),
        ];
        let request = Request { method: "GET", path: "/", query: "", headers: &headers, body: b"" };
        let header =
            authorization(&request, "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "us-east-1", "service");
        assert_eq!(
            header,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
        let parsed = Authorization::parse(&header).unwrap();
        assert_eq!(parsed.access_key_id, "AKIDEXAMPLE");
        assert_eq!(
            parsed.expected_signature(&request, "20150830T123600Z", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            Ok(parsed.signature.clone())
        );
    }

    #[test]
    fn incomplete_headers_are_refused_with_the_reason() {
        let sig = "0".repeat(64);
        for (header, reason) in [
            ("AWS4-HMAC-SHA1 Credential=a/20261123/eu-west-1/ec2/aws4_request", "Unsupported"),
            ("AWS4-HMAC-SHA256 Credential=lab, SignedHeaders=host, Signature=00", "Credential"),
            (
                &format!("AWS4-HMAC-SHA256 Credential=a/20261123/eu-west-1/ec2/aws4_request, Signature={sig}"),
                "SignedHeaders",
            ),
            (
                &format!(
                    "AWS4-HMAC-SHA256 Credential=a/20261123/eu-west-1/ec2/aws4_request, SignedHeaders=x-amz-date, Signature={sig}"
                ),
                "Host",
            ),
        ] {
            let err = Authorization::parse(header).unwrap_err();
            assert!(err.contains(reason), "{header}: {err}");
        }
    }
}
