//! The verifier and signer pinned by the spec §9 vector, and their edge cases.

use super::*;

/// `../shared/spec/aws-apis.md` §9: produced with botocore's RequestSigner as the CLI's
/// `eicesigner.py` does, secret key `wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY`.
const VECTOR_HOST: &str = "eice-0123456789abcdef0.12345678.ec2-instance-connect-endpoint.us-east-1.amazonaws.com";
const VECTOR_QUERY: &str = "instanceConnectEndpointId=eice-0123456789abcdef0&remotePort=22&privateIpAddress=10.0.1.23&maxTunnelDuration=3600&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20261123%2Fus-east-1%2Fec2-instance-connect%2Faws4_request&X-Amz-Date=20261123T083008Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Security-Token=SESSIONTOKEN&X-Amz-Signature=705e4f94260eeab4a7e0f407182d4e6d24cb7297365317b19bf2e6429a9e798b";
const VECTOR_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

fn verifies(host: &str, query: &str, secret: &str) -> bool {
    let Ok(p) = Presigned::parse(query) else { return false };
    let headers = [("Host".to_string(), host.to_string())];
    p.expected_signature("GET", "/openTunnel", &headers, secret).is_ok_and(|s| s == p.signature)
}

#[test]
fn spec_vector_verifies() {
    let p = Presigned::parse(VECTOR_QUERY).unwrap();
    assert_eq!(
        (p.access_key_id.as_str(), p.scope_date.as_str(), p.region.as_str(), p.service.as_str()),
        ("AKIDEXAMPLE", "20261123", "us-east-1", "ec2-instance-connect")
    );
    assert_eq!((p.amz_date.as_str(), p.expires), ("20261123T083008Z", 60));
    assert_eq!(p.signed_at, 1_795_422_608);
    assert_eq!(p.param("X-Amz-Security-Token"), Some("SESSIONTOKEN"));
    assert!(verifies(VECTOR_HOST, VECTOR_QUERY, VECTOR_SECRET));
}

#[test]
fn spec_vector_fails_when_any_byte_changes() {
    assert!(!verifies(VECTOR_HOST, VECTOR_QUERY, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEZ"));
    assert!(!verifies(&format!("{VECTOR_HOST}:443"), VECTOR_QUERY, VECTOR_SECRET));
    for i in 0..VECTOR_QUERY.len() {
        let mut q = VECTOR_QUERY.as_bytes().to_vec();
        q[i] = if q[i] == b'1' { b'2' } else { b'1' };
        let q = String::from_utf8(q).unwrap();
        assert!(!verifies(VECTOR_HOST, &q, VECTOR_SECRET), "byte {i} changed and it still verified: {q}");
    }
    for i in 0..VECTOR_HOST.len() {
        let mut h = VECTOR_HOST.as_bytes().to_vec();
        h[i] = if h[i] == b'1' { b'2' } else { b'1' };
        assert!(!verifies(&String::from_utf8(h).unwrap(), VECTOR_QUERY, VECTOR_SECRET), "host byte {i}");
    }
}

#[test]
fn signer_reproduces_the_spec_vector() {
    let params = [
        ("instanceConnectEndpointId", "eice-0123456789abcdef0"),
        ("remotePort", "22"),
        ("privateIpAddress", "10.0.1.23"),
        ("maxTunnelDuration", "3600"),
    ];
    let query = presign(&PresignRequest {
        host: VECTOR_HOST,
        path: "/openTunnel",
        params: &params,
        access_key_id: "AKIDEXAMPLE",
        secret: VECTOR_SECRET,
        session_token: Some("SESSIONTOKEN"),
        region: "us-east-1",
        service: "ec2-instance-connect",
        now: 1_795_422_608,
        expires: 60,
    });
    assert_eq!(query, VECTOR_QUERY);
}

#[test]
fn encoding_variants_verify_alike() {
    // A client may leave `/` bare or encode unreserved characters: the canonical form is the same.
    let q = VECTOR_QUERY.replace("%2F", "/").replace("eice-0123", "eice%2D0123");
    assert!(verifies(VECTOR_HOST, &q, VECTOR_SECRET));
    // `+` is a literal plus, not a space.
    assert_eq!(percent_decode("a+b%20c%2"), "a+b c%2");
}

#[test]
fn malformed_queries() {
    assert_eq!(Presigned::parse("remotePort=22"), Err(QueryError::Unsigned));
    let without = |name: &str| {
        VECTOR_QUERY.split('&').filter(|p| !p.starts_with(&format!("{name}="))).collect::<Vec<_>>().join("&")
    };
    for name in ["X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders"] {
        let Err(QueryError::Malformed(m)) = Presigned::parse(&without(name)) else { panic!("{name}") };
        assert!(m.contains(name), "{m}");
    }
    assert!(matches!(Presigned::parse(&without("X-Amz-Signature")), Err(QueryError::Malformed(_))));
    let bad_date = VECTOR_QUERY.replace("20261123T083008Z", "2026-11-23T08:30:08Z");
    assert!(matches!(Presigned::parse(&bad_date), Err(QueryError::Malformed(_))));
    let long = VECTOR_QUERY.replace("X-Amz-Expires=60", "X-Amz-Expires=604801");
    assert!(matches!(Presigned::parse(&long), Err(QueryError::Malformed(_))));
}

#[test]
fn amz_dates() {
    for secs in [0, 951_782_400, 1_795_422_608, 4_102_444_799] {
        assert_eq!(unix_from_amz_date(&amz_date_from_unix(secs)), Some(secs));
    }
    assert_eq!(amz_date_from_unix(1_795_422_608), "20261123T083008Z");
    assert_eq!(amz_date_from_unix(951_782_400), "20000229T000000Z");
    assert_eq!(unix_from_amz_date("20261323T083008Z"), None);
    assert_eq!(unix_from_amz_date("2026112xT083008Z"), None);
}
