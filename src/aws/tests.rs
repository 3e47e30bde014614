//! How SDK errors become messages: never a raw body or a `Debug` dump, always the code and the
//! request id when the service answered. See: issue 14 (§3).

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_sts::error::{ConnectorError, ErrorMetadata};
use aws_sdk_sts::operation::get_caller_identity::GetCallerIdentityError;

use super::*;

const SECRET: &str = "awsTestsSecretKeyEXAMPLEEXAMPLEEXAMPLE0001";
const TOKEN: &str = "IQoJawsTestsSessionToken//////////wEaCWV1LXdlc3QtMSJHMEUCIQ+example==";

fn answer(status: u16, body: &str, request_id: Option<&str>) -> HttpResponse {
    let mut raw = HttpResponse::new(status.try_into().expect("a valid status"), body.to_string().into());
    if let Some(id) = request_id {
        raw.headers_mut().insert("x-amzn-RequestId", id.to_string());
    }
    raw
}

fn credentials_body() -> String {
    format!(
        "<Credentials><AccessKeyId>ASIAFRESHLYISSUED001</AccessKeyId><SecretAccessKey>{SECRET}</SecretAccessKey><SessionToken>{TOKEN}</SessionToken></Credentials>"
    )
}

#[test]
fn a_service_error_keeps_code_message_and_request_id_only() {
    redact::register(TOKEN);
    let meta = ErrorMetadata::builder()
        .code("InvalidClientTokenId")
        .message(format!("The security token {TOKEN} is invalid.\x1b]0;owned\x07"))
        .build();
    let body = format!("<ErrorResponse>{}</ErrorResponse>", credentials_body());
    let err = SdkError::service_error(GetCallerIdentityError::generic(meta), answer(403, &body, Some("req-0001")));
    let e = AwsError::from_sdk("STS", "GetCallerIdentity", err);
    assert_eq!(
        e.to_string(),
        "STS GetCallerIdentity: InvalidClientTokenId: The security token <redacted> is invalid.\\x1b]0;owned\\x07 (request id req-0001)"
    );
    assert_eq!((e.code(), e.request_id()), (Some("InvalidClientTokenId"), Some("req-0001")));
    let debug = format!("{e:?}");
    assert!(!debug.contains(SECRET) && !debug.contains("ASIAFRESHLY"), "{debug}");
}

#[test]
fn an_answer_without_an_error_code_shows_no_body() {
    let body = format!("<html><body>Proxy error. Your request: {}</body></html>", credentials_body());
    let err = SdkError::service_error(
        GetCallerIdentityError::generic(ErrorMetadata::builder().build()),
        answer(502, &body, Some("req-0002")),
    );
    let e = AwsError::from_sdk("STS", "GetCallerIdentity", err);
    assert_eq!(
        e.to_string(),
        "STS GetCallerIdentity: the endpoint answered HTTP 502 without a readable AWS error (request id req-0002)"
    );
    assert!(!format!("{e:?}").contains(SECRET));
}

#[test]
fn an_unparseable_answer_shows_no_body() {
    // A success whose body was cut: the SDK's context holds it whole, fresh credentials included.
    let body = format!("<GetCallerIdentityResponse>{}", credentials_body());
    let err: SdkError<GetCallerIdentityError, HttpResponse> =
        SdkError::response_error("failed to parse XML", answer(200, &body, None));
    let e = AwsError::from_sdk("STS", "GetCallerIdentity", err);
    assert_eq!(e.to_string(), "STS GetCallerIdentity: the endpoint answered HTTP 200 without a readable AWS error");
    assert!(!format!("{e:?}").contains(SECRET));
}

#[test]
fn connection_failures_say_what_failed_without_the_debug_dump() {
    let dns = std::io::Error::other("dns error: failed to lookup address information: Name or service not known");
    let err: SdkError<GetCallerIdentityError, HttpResponse> =
        SdkError::dispatch_failure(ConnectorError::io(Box::new(dns)));
    let e = AwsError::from_sdk("STS", "GetCallerIdentity", err);
    assert!(matches!(e, AwsError::Unreachable { name_lookup: true, .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "STS GetCallerIdentity: cannot reach the endpoint: io error: dns error: failed to lookup address information: Name or service not known"
    );

    let missing = CredentialsError::not_loaded("no credentials in the chain");
    let err: SdkError<GetCallerIdentityError, HttpResponse> =
        SdkError::dispatch_failure(ConnectorError::other(Box::new(missing), None));
    let e = AwsError::from_sdk("STS", "GetCallerIdentity", err);
    assert!(matches!(e, AwsError::NoCredentials { .. }), "{e:?}");
    assert!(!e.to_string().contains("DispatchFailure"), "{e}");
}

#[test]
fn region_names() {
    for ok in ["eu-west-1", "us-gov-west-1", "cn-north-1", "eu-isoe-west-1", "local"] {
        assert!(valid_region(ok), "{ok}");
    }
    for bad in ["", "bad region!", "EU-WEST-1", "-eu-west-1", "eu-west-1-", "eu_west_1", "eu-west-1.", &"a".repeat(64)]
    {
        assert!(!valid_region(bad), "{bad:?}");
    }
    let e = AwsError::BadRegion { region: "bad region!".into() };
    assert!(e.to_string().starts_with("the Region 'bad region!' is not a valid Region name: "), "{e}");
}
