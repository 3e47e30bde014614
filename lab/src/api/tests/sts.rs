//! The STS double over HTTP: AssumeRole with and without MFA, the keys it issues (unique,
//! remembered, expiring by the lab clock, usable at EC2 and logged there), GetCallerIdentity,
//! the validation errors and the STS error shape.

use std::time::Duration;

use super::element;
use crate::civil_time::parse_iso8601;
use crate::test_world::{World, ec2_as, exchange, scope, sts};
use crate::{ACCESS_KEY_ID, Inventory};

const READONLY: &str = "arn:aws:iam::123456789012:role/lab-readonly";
const ADMIN_MFA: &str = "arn:aws:iam::123456789012:role/lab-admin-mfa";
const DEVICE: &str = "arn:aws:iam::123456789012:mfa/ops-phone";
const XMLNS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// The demo inventory (its two roles) without sshds.
fn world() -> World {
    let mut inventory = Inventory::demo();
    inventory.serve_ssh = false;
    crate::test_world::start("sts", inventory)
}

/// `<ErrorResponse>` with `code` and exactly `message`.
fn sts_error(code: &str, message: &str) -> String {
    format!(
        "<ErrorResponse xmlns=\"{XMLNS}\"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>"
    )
}

fn assume(w: &World, role: &str, session: &str, extra: &str) -> (u16, String) {
    sts(&w.lab, ACCESS_KEY_ID, &format!("Action=AssumeRole&RoleArn={role}&RoleSessionName={session}{extra}"))
}

#[test]
fn assume_role_issues_unique_expiring_keys_that_sign_ec2_calls() {
    let w = world();
    let state = w.lab.state();
    let (status, xml) = sts(&w.lab, ACCESS_KEY_ID, "Action=GetCallerIdentity");
    assert_eq!(status, 200, "{xml}");
    assert!(
        xml.starts_with(&format!("<GetCallerIdentityResponse xmlns=\"{XMLNS}\"><GetCallerIdentityResult>")),
        "{xml}"
    );
    assert_eq!(element(&xml, "Arn"), Some("arn:aws:iam::123456789012:user/lab-user"));
    assert_eq!(element(&xml, "UserId"), Some(crate::identity::USER_ID));
    assert_eq!(element(&xml, "Account"), Some("123456789012"));
    assert!(element(&xml, "RequestId").is_some_and(|id| id.len() == 36), "{xml}");

    let before = state.now();
    let (status, xml) = assume(&w, READONLY, "ci-run", "&DurationSeconds=900");
    let after = state.now();
    assert_eq!(status, 200, "{xml}");
    assert!(
        xml.starts_with(&format!("<AssumeRoleResponse xmlns=\"{XMLNS}\"><AssumeRoleResult><Credentials>")),
        "{xml}"
    );
    assert!(xml.ends_with("</RequestId></ResponseMetadata></AssumeRoleResponse>"), "{xml}");
    let key = element(&xml, "AccessKeyId").unwrap().to_string();
    assert_eq!(key, "ASIALAB0000000000001");
    let expiration = element(&xml, "Expiration").unwrap();
    assert!(expiration.ends_with('Z') && expiration.len() == 20, "{expiration}");
    let expires = parse_iso8601(expiration).unwrap();
    assert!((before + 900..=after + 900).contains(&expires), "{expiration}");
    let role_id = element(&xml, "AssumedRoleId").unwrap();
    assert!(role_id.starts_with("AROA") && role_id.ends_with(":ci-run") && role_id.len() == 28, "{role_id}");
    let assumed_arn = "arn:aws:sts::123456789012:assumed-role/lab-readonly/ci-run";
    assert_eq!(element(&xml, "Arn"), Some(assumed_arn));
    assert_eq!(element(&xml, "SecretAccessKey").map(str::len), Some(40));
    assert!(element(&xml, "SessionToken").is_some_and(|t| t.len() > 40), "{xml}");

    let (_, again) = assume(&w, READONLY, "ci-run", "");
    let second = element(&again, "AccessKeyId").unwrap().to_string();
    assert_eq!(second, "ASIALAB0000000000002");
    let issued = state.assumed_roles();
    assert_eq!(issued.len(), 2);
    assert_eq!((issued[0].access_key_id.as_str(), issued[0].expires), (key.as_str(), expires));
    assert_eq!((issued[0].role_arn.as_str(), issued[0].session_name.as_str()), (READONLY, "ci-run"));
    assert_eq!(
        (issued[0].arn.as_str(), issued[0].caller_key.as_str(), issued[0].mfa),
        (assumed_arn, ACCESS_KEY_ID, false)
    );
    assert_eq!(issued[1].expires - issued[1].issued, 3600, "DurationSeconds defaults to an hour");
    assert_eq!(element(&xml, "SessionToken"), Some(issued[0].session_token.as_str()));

    let (status, xml) = sts(&w.lab, &key, "Action=GetCallerIdentity");
    assert_eq!(status, 200, "{xml}");
    assert_eq!(element(&xml, "Arn"), Some(assumed_arn));
    assert_eq!(element(&xml, "UserId"), Some(role_id));

    // The issued key signs EC2 calls, and the request log says so.
    let (status, xml) = ec2_as(&w.lab, &key, "Action=DescribeInstances&InstanceId.1=i-0a1b2c3d4e5f60718");
    assert_eq!(status, 200, "{xml}");
    let last = state.calls().pop().unwrap();
    assert_eq!(
        (last.service.as_str(), last.operation.as_str(), last.access_key.as_str()),
        ("ec2", "DescribeInstances", key.as_str())
    );
    let sts_calls: Vec<(String, String)> =
        state.calls().into_iter().filter(|c| c.service == "sts").map(|c| (c.operation, c.access_key)).collect();
    assert_eq!(sts_calls.len(), 4);
    assert_eq!(sts_calls[1], ("AssumeRole".to_string(), ACCESS_KEY_ID.to_string()));
    assert_eq!(sts_calls[3], ("GetCallerIdentity".to_string(), key.clone()));

    // 900 lab seconds later the first key is expired everywhere; the second is not.
    state.advance(Duration::from_secs(expires - state.now()));
    let (status, xml) = sts(&w.lab, &key, "Action=GetCallerIdentity");
    assert_eq!(status, 403);
    assert!(
        xml.starts_with(&sts_error("ExpiredToken", "The security token included in the request is expired")),
        "{xml}"
    );
    let (status, xml) = ec2_as(&w.lab, &key, "Action=DescribeInstances");
    assert_eq!(status, 400);
    assert!(xml.contains("<Code>ExpiredToken</Code>"), "{xml}");
    assert_eq!(sts(&w.lab, &second, "Action=GetCallerIdentity").0, 200);

    let (status, head, xml) = exchange(
        &w.lab,
        &scope("AKIAUNKNOWN000000000", "sts"),
        "Content-Type: application/x-www-form-urlencoded\r\n",
        "Action=GetCallerIdentity&Version=2011-06-15",
    );
    assert_eq!(status, 403);
    assert!(head.to_ascii_lowercase().contains("content-type: text/xml"), "{head}");
    let message = "The security token included in the request is invalid.";
    assert!(xml.starts_with(&sts_error("InvalidClientTokenId", message)), "{xml}");
    assert!(xml.ends_with("</RequestId></ErrorResponse>"), "{xml}");
}

#[test]
fn mfa_roles_need_the_current_code() {
    let w = world();
    let state = w.lab.state();
    let denied = format!(
        "User: arn:aws:iam::123456789012:user/lab-user is not authorized to perform: sts:AssumeRole on resource: {ADMIN_MFA}"
    );
    let (status, xml) = assume(&w, ADMIN_MFA, "admin", "");
    assert_eq!(status, 403);
    assert!(xml.starts_with(&sts_error("AccessDenied", &denied)), "{xml}");

    let mfa = |code: &str| format!("&SerialNumber={DEVICE}&TokenCode={code}");
    let (status, xml) = assume(&w, ADMIN_MFA, "admin", &mfa("000000"));
    assert_eq!(status, 403);
    let wrong = "MultiFactorAuthentication failed with invalid MFA one time pass code. ";
    assert!(xml.starts_with(&sts_error("AccessDenied", wrong)), "{xml}");
    let (status, xml) = assume(&w, ADMIN_MFA, "admin", &mfa("123456"));
    assert_eq!(status, 200, "{xml}");
    assert_eq!(element(&xml, "Arn"), Some("arn:aws:sts::123456789012:assumed-role/lab-admin-mfa/admin"));
    assert!(state.assumed_roles()[0].mfa);

    state.set_mfa_code("654321");
    assert_eq!(state.mfa_code(), "654321");
    assert_eq!(assume(&w, ADMIN_MFA, "admin", &mfa("123456")).0, 403);
    assert_eq!(assume(&w, ADMIN_MFA, "admin", &mfa("654321")).0, 200);
    // A role without MFA in its trust policy still checks a code that is given.
    assert_eq!(assume(&w, READONLY, "ro", &mfa("111111")).0, 403);
    assert_eq!(assume(&w, READONLY, "ro", &mfa("654321")).0, 200);

    let (status, xml) = assume(&w, ADMIN_MFA, "admin", &format!("&SerialNumber={DEVICE}"));
    assert!(status == 403 && xml.contains("must provide both MFA serial number and one time pass code."), "{xml}");
    let (status, xml) =
        assume(&w, ADMIN_MFA, "admin", "&SerialNumber=arn:aws:iam::999999999999:mfa/other&TokenCode=654321");
    assert!(status == 403 && xml.contains("unable to validate MFA code."), "{xml}");
    let unknown = "arn:aws:iam::123456789012:role/nope";
    let (status, xml) = assume(&w, unknown, "x1", &mfa("654321"));
    assert_eq!(status, 403);
    assert!(xml.contains(&format!("sts:AssumeRole on resource: {unknown}</Message>")), "{xml}");
    assert_eq!(state.assumed_roles().len(), 3);
}

#[test]
fn validation_errors_unknown_actions_and_role_chaining() {
    let w = world();
    let check = |extra: &str, session: &str, text: &str| {
        let (status, xml) = assume(&w, READONLY, session, extra);
        let xml = xml.replace("&apos;", "'");
        assert_eq!(status, 400, "{xml}");
        assert!(xml.contains("<Code>ValidationError</Code>") && xml.contains(text), "{xml}");
    };
    check(
        "",
        "a",
        "Value 'a' at 'roleSessionName' failed to satisfy constraint: Member must have length greater than or equal to 2",
    );
    check("", &"s".repeat(65), "Member must have length less than or equal to 64");
    check("", "bad%20name", "Member must satisfy regular expression pattern");
    check("&DurationSeconds=899", "ok", "Member must have value greater than or equal to 900");
    check("&DurationSeconds=43201", "ok", "Member must have value less than or equal to 43200");
    check("&TokenCode=12345&SerialNumber=x", "ok", "at 'tokenCode'");
    let (status, xml) = sts(&w.lab, ACCESS_KEY_ID, "Action=AssumeRole&RoleSessionName=ok");
    assert!(status == 400 && xml.contains("Value null at &apos;roleArn&apos;"), "{xml}");
    let (status, xml) = sts(&w.lab, ACCESS_KEY_ID, "Action=GetSessionToken");
    assert!(status == 400 && xml.contains("<Code>InvalidAction</Code>"), "{xml}");
    assert_eq!(assume(&w, READONLY, "long", "&DurationSeconds=43200").0, 200);

    // Role chaining: a role's credentials may assume another role for at most an hour.
    let (_, xml) = assume(&w, READONLY, "first", "");
    let key = element(&xml, "AccessKeyId").unwrap().to_string();
    let chained = |duration: u32| {
        let form = format!("Action=AssumeRole&RoleArn={READONLY}&RoleSessionName=chain&DurationSeconds={duration}");
        sts(&w.lab, &key, &form)
    };
    let (status, xml) = chained(3601);
    assert!(status == 400 && xml.contains("1 hour session limit for roles assumed by role chaining"), "{xml}");
    let (status, xml) = chained(3600);
    assert_eq!(status, 200, "{xml}");
    assert_eq!(w.lab.state().assumed_roles().last().unwrap().caller_key, key);
}

#[test]
fn faults_and_denials_use_the_sts_error_shape() {
    let w = world();
    let state = w.lab.state();
    state.set_faults(|f| f.throttle_next = 1);
    let (status, xml) = assume(&w, READONLY, "t1", "");
    assert_eq!(status, 400);
    assert!(xml.starts_with(&sts_error("Throttling", "Rate exceeded")), "{xml}");
    state.set_faults(|f| f.fail_next = 1);
    let (status, xml) = sts(&w.lab, ACCESS_KEY_ID, "Action=GetCallerIdentity");
    assert_eq!(status, 500);
    assert!(xml.contains("<Type>Receiver</Type><Code>InternalFailure</Code>"), "{xml}");

    state.set_faults(|f| {
        f.deny.insert("sts:AssumeRole".into());
    });
    let (status, xml) = assume(&w, READONLY, "t2", "");
    assert_eq!(status, 403);
    let message = format!(
        "User: arn:aws:iam::123456789012:user/lab-user is not authorized to perform: sts:AssumeRole on resource: {READONLY}"
    );
    assert!(xml.starts_with(&sts_error("AccessDenied", &message)), "{xml}");
    assert_eq!(sts(&w.lab, ACCESS_KEY_ID, "Action=GetCallerIdentity").0, 200, "only AssumeRole is denied");
    assert!(state.assumed_roles().is_empty());
    // Without an sts scope the same form goes to EC2, which knows no such action.
    let (status, xml) = crate::test_world::ec2(&w.lab, &format!("Action=AssumeRole&RoleArn={READONLY}"));
    assert!(status == 400 && xml.contains("<Code>InvalidAction</Code>"), "{xml}");
}
