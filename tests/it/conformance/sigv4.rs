//! Item 9: every API verifies SigV4 (a wrong secret, an unknown key and a skewed clock are
//! refused in each service's own words), and item 2: every answer carries `x-amzn-RequestId`.
//! Before issue 18 the EC2, Instance Connect and SSM doubles accepted any signature and the
//! awsJson answers had no request id.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_types::request_id::RequestId;
use ec2_lab::Lab;

use super::block_on;
use super::{WEB, http, refusal, sdk, sdk_as, uuid_shaped};
use crate::harness::World;

const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINYty6T5SkXeQOkFfXnrzMghT3hM1xSvDhM9xqLNTjhH lab-admin";

/// (EC2, SSM, Instance Connect, STS) refusals of one set of credentials.
async fn refusals(lab: &Lab, access_key: &str, secret: &str) -> [super::Refusal; 4] {
    let config = sdk_as(lab, access_key, secret).await;
    let ec2 = aws_sdk_ec2::Client::new(&config).describe_instances().send().await;
    let ssm = aws_sdk_ssm::Client::new(&config).describe_instance_information().send().await;
    let eic = aws_sdk_ec2instanceconnect::Client::new(&config)
        .send_ssh_public_key()
        .instance_id(WEB)
        .instance_os_user("ec2-user")
        .ssh_public_key(KEY)
        .send()
        .await;
    let sts = aws_sdk_sts::Client::new(&config).get_caller_identity().send().await;
    [refusal(ec2), refusal(ssm), refusal(eic), refusal(sts)]
}

fn summary(r: &[super::Refusal; 4]) -> Vec<(u16, &str)> {
    r.iter().map(|r| (r.status, r.code.as_str())).collect()
}

// See: issue 18
#[test]
fn issue_18_9_wrong_secrets_and_unknown_keys_are_refused_by_every_api() {
    let world = World::new();
    block_on(async {
        let lab = &world.lab;
        let wrong = refusals(lab, ec2_lab::ACCESS_KEY_ID, "not-the-lab-secret-EXAMPLEEXAMPLEEXAMPLE").await;
        assert_eq!(
            summary(&wrong),
            [
                (401, "AuthFailure"),
                (400, "InvalidSignatureException"),
                (400, "InvalidSignatureException"),
                (403, "SignatureDoesNotMatch")
            ]
        );
        assert_eq!(wrong[0].message, "AWS was not able to validate the provided access credentials");
        assert!(wrong[1].message.starts_with("The request signature we calculated does not match"), "{:?}", wrong[1]);
        let unknown = refusals(lab, "AKIAUNKNOWNEXAMPLE00", "any-secret").await;
        assert_eq!(
            summary(&unknown),
            [
                (401, "AuthFailure"),
                (400, "UnrecognizedClientException"),
                (400, "UnrecognizedClientException"),
                (403, "InvalidClientTokenId")
            ]
        );
        assert_eq!(unknown[1].message, "The security token included in the request is invalid.");
        // Item 2: every refusal names its request id.
        for r in wrong.iter().chain(&unknown) {
            assert!(r.request_id.as_deref().is_some_and(uuid_shaped), "{r:?}");
        }
        assert!(lab.state().pushed_keys().is_empty(), "no refused push stored a key");

        // The real credentials work, and successes carry request ids too.
        let config = sdk(lab).await;
        let ssm = aws_sdk_ssm::Client::new(&config).describe_instance_information().send().await.unwrap();
        assert!(ssm.request_id().is_some_and(uuid_shaped), "{ssm:?}");
        let pushed = aws_sdk_ec2instanceconnect::Client::new(&config)
            .send_ssh_public_key()
            .instance_id(WEB)
            .instance_os_user("ec2-user")
            .ssh_public_key(KEY)
            .send()
            .await
            .unwrap();
        let header = RequestId::request_id(&pushed);
        assert_eq!(header, pushed.request_id.as_deref(), "the header and the body name one id");
        assert!(header.is_some_and(uuid_shaped));
        let ec2 = aws_sdk_ec2::Client::new(&config).describe_instances().send().await.unwrap();
        assert!(ec2.request_id().is_some_and(uuid_shaped));
    })
}

/// A request signed by `aws-sigv4` (not the lab's signer) at `at`; returns the status, head and body.
fn signed_post(lab: &Lab, service: &str, target: Option<&str>, body: &str, at: SystemTime) -> (u16, String, String) {
    let addr = lab.endpoint_url().trim_start_matches("http://").to_string();
    let content_type =
        if target.is_some() { "application/x-amz-json-1.1" } else { "application/x-www-form-urlencoded" };
    let mut headers = vec![("host", addr.clone()), ("content-type", content_type.to_string())];
    headers.extend(target.map(|t| ("x-amz-target", t.to_string())));
    let identity = Credentials::new(ec2_lab::ACCESS_KEY_ID, ec2_lab::SECRET_ACCESS_KEY, None, None, "raw").into();
    let params: aws_sigv4::http_request::SigningParams<'_> = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("eu-west-1")
        .name(service)
        .time(at)
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let url = format!("http://{addr}/");
    let signable = SignableRequest::new(
        "POST",
        &url,
        headers.iter().map(|(k, v)| (*k, v.as_str())),
        SignableBody::Bytes(body.as_bytes()),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut head = String::from("POST / HTTP/1.1\r\n");
    for (k, v) in &headers {
        head += &format!("{k}: {v}\r\n");
    }
    for (k, v) in instructions.headers() {
        head += &format!("{k}: {v}\r\n");
    }
    http(&addr, &head, body.as_bytes())
}

// See: issue 18
#[test]
fn issue_18_9_a_clock_more_than_15_minutes_off_is_refused() {
    let world = World::new();
    let lab = &world.lab;
    let now = SystemTime::now();
    let late = now - Duration::from_secs(20 * 60);
    let ahead = now + Duration::from_secs(20 * 60);
    let describe = "Action=DescribeInstances&Version=2016-11-15";
    let ssm = Some("AmazonSSM.DescribeInstanceInformation");

    // aws-sigv4's signature at the right time is the lab's too.
    assert_eq!(signed_post(lab, "ec2", None, describe, now).0, 200);
    assert_eq!(signed_post(lab, "ssm", ssm, "{}", now).0, 200);

    let (status, head, body) = signed_post(lab, "ec2", None, describe, late);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("<Code>RequestExpired</Code>"), "{body}");
    assert!(head.contains("x-amzn-requestid: "), "{head}");
    let (status, _, body) = signed_post(lab, "ssm", ssm, "{}", late);
    assert_eq!(status, 400, "{body}");
    let error: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["__type"], "InvalidSignatureException");
    let message = error.get("message").or_else(|| error.get("Message")).and_then(|m| m.as_str());
    assert!(message.unwrap_or_default().starts_with("Signature expired: "), "{body}");
    let (status, _, body) = signed_post(lab, "ssm", ssm, "{}", ahead);
    assert_eq!(status, 400);
    assert!(body.contains("Signature not yet current: "), "{body}");
    let (status, _, body) = signed_post(lab, "sts", None, "Action=GetCallerIdentity&Version=2011-06-15", late);
    assert_eq!(status, 403);
    assert!(body.contains("<Code>SignatureDoesNotMatch</Code><Message>Signature expired: "), "{body}");

    // A scope naming another service is refused, even with the right secret.
    let (status, _, body) = signed_post(lab, "ssm", None, describe, now);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("<Code>AuthFailure</Code>"), "{body}");
}
