//! STS double (awsQuery: form posts with `Action=…&Version=2011-06-15`, XML answers):
//! AssumeRole against the inventory's `[[role]]`s with the MFA checks, and GetCallerIdentity
//! for the lab's key and the keys AssumeRole issued. Requests reach it when their SigV4
//! credential scope names `sts`; `iam::authenticate` has already refused unknown and expired
//! keys. Element names are aws-sdk-sts's (`AssumeRoleResult/{Credentials, AssumedRoleUser}`,
//! errors `ErrorResponse/Error/{Type, Code, Message}`).

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::query::param;
use super::{request_id, xml_escape};
use crate::civil_time;
use crate::identity::{self, AssumedRole, Caller, DEFAULT_SESSION_SECS, Grant, Issuer};
use crate::state::State;

const XMLNS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
const VERSION: &str = "2011-06-15";
/// AssumeRole's `DurationSeconds` range.
const MIN_SESSION_SECS: u64 = 900;
const MAX_SESSION_SECS: u64 = 43_200;
/// The cap on sessions of a role assumed with role credentials (role chaining).
const CHAINED_SESSION_SECS: u64 = 3600;

pub(super) fn handle(state: &State, action: &str, params: &[(String, String)], access_key: &str) -> Response {
    match action {
        "AssumeRole" => assume_role(state, params, access_key),
        "GetCallerIdentity" => get_caller_identity(state, access_key),
        "AssumeRoleWithWebIdentity" => super::sts_web_identity::assume_role_with_web_identity(state, params),
        other => error(
            StatusCode::BAD_REQUEST,
            "InvalidAction",
            &format!("Could not find operation {other} for version {VERSION}"),
        ),
    }
}

/// An STS error: `<ErrorResponse><Error><Type>Sender|Receiver</Type><Code>…`, `text/xml`.
pub(super) fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let kind = if status.is_server_error() { "Receiver" } else { "Sender" };
    let body = format!(
        "<ErrorResponse xmlns=\"{XMLNS}\"><Error><Type>{kind}</Type><Code>{}</Code><Message>{}</Message></Error>\
         <RequestId>{}</RequestId></ErrorResponse>",
        xml_escape(code),
        xml_escape(message),
        request_id()
    );
    (status, [(header::CONTENT_TYPE, "text/xml")], body).into_response()
}

pub(super) fn ok(action: &str, inner: &str) -> Response {
    let body = format!(
        "<{action}Response xmlns=\"{XMLNS}\"><{action}Result>{inner}</{action}Result>\
         <ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></{action}Response>",
        request_id()
    );
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/xml")], body).into_response()
}

fn validation(message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "ValidationError", message)
}

/// `1 validation error detected: Value '<v>' at '<member>' failed to satisfy constraint: …`.
fn constraint(value: &str, member: &str, constraint: &str) -> Response {
    validation(&format!(
        "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: Member must {constraint}"
    ))
}

pub(super) fn access_denied(message: &str) -> Response {
    error(StatusCode::FORBIDDEN, "AccessDenied", message)
}

/// `AssumeRole`: `RoleArn`, `RoleSessionName` (2–64 of `[\w+=,.@-]`), `DurationSeconds`
/// (900–43200, default 3600; at most 3600 when the caller is itself an assumed role),
/// `SerialNumber` + `TokenCode` (the lab's MFA device: any `arn:aws:iam::<account>:mfa/<name>`,
/// code `State::mfa_code`). Unknown roles, and MFA roles without MFA, are AccessDenied.
fn assume_role(state: &State, params: &[(String, String)], access_key: &str) -> Response {
    let account = &state.inventory.account;
    let RoleRequest { role_arn, session, duration } = match role_request(params) {
        Ok(r) => r,
        Err(refusal) => return *refusal,
    };
    let caller = state.caller(access_key);
    if matches!(caller, Caller::Role(_)) && duration > CHAINED_SESSION_SECS {
        return validation(
            "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.",
        );
    }
    let not_authorized = || {
        access_denied(&format!(
            "User: {} is not authorized to perform: sts:AssumeRole on resource: {role_arn}",
            state.caller_arn(access_key)
        ))
    };
    let Some(role) = state.inventory.role(role_arn) else {
        return not_authorized();
    };
    let mfa = match (param(params, "SerialNumber"), param(params, "TokenCode")) {
        (None, None) => false,
        (Some(_), None) | (None, Some(_)) => {
            return access_denied(
                "MultiFactorAuthentication failed, must provide both MFA serial number and one time pass code.",
            );
        }
        (Some(serial), Some(code)) => {
            if code.len() < 6 {
                return constraint(code, "tokenCode", "have length greater than or equal to 6");
            }
            if code.len() > 6 {
                return constraint(code, "tokenCode", "have length less than or equal to 6");
            }
            if !code.bytes().all(|b| b.is_ascii_digit()) {
                return constraint(code, "tokenCode", "satisfy regular expression pattern: [\\d]*");
            }
            let device = serial.strip_prefix(&format!("arn:aws:iam::{account}:mfa/"));
            if device.is_none_or(str::is_empty) {
                return access_denied(
                    "MultiFactorAuthentication failed, unable to validate MFA code.  Please verify your MFA serial number is valid and associated with this user.",
                );
            }
            if code != state.mfa_code() {
                return access_denied("MultiFactorAuthentication failed with invalid MFA one time pass code. ");
            }
            true
        }
    };
    if role.mfa && !mfa {
        return not_authorized();
    }

    let issued =
        state.grant(Grant { role, session, caller_key: access_key, mfa, issuer: Issuer::AssumeRole, duration });
    ok("AssumeRole", &credentials_xml(&issued))
}

/// What AssumeRole and AssumeRoleWithWebIdentity share: `RoleArn`, `RoleSessionName` (2–64 of
/// `[\w+=,.@-]`) and `DurationSeconds` (900–43200, default 3600).
pub(super) struct RoleRequest<'a> {
    pub(super) role_arn: &'a str,
    pub(super) session: &'a str,
    pub(super) duration: u64,
}

/// The [`RoleRequest`] of a form, or STS's validation error (boxed: a `Response` is large).
pub(super) fn role_request(params: &[(String, String)]) -> Result<RoleRequest<'_>, Box<Response>> {
    let null = |member: &str| {
        Box::new(validation(&format!(
            "1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
        )))
    };
    let role_arn = param(params, "RoleArn").ok_or_else(|| null("roleArn"))?;
    let session = param(params, "RoleSessionName").ok_or_else(|| null("roleSessionName"))?;
    if session.len() < 2 {
        return Err(Box::new(constraint(session, "roleSessionName", "have length greater than or equal to 2")));
    }
    if session.len() > 64 {
        return Err(Box::new(constraint(session, "roleSessionName", "have length less than or equal to 64")));
    }
    if !session.bytes().all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b)) {
        return Err(Box::new(constraint(
            session,
            "roleSessionName",
            "satisfy regular expression pattern: [\\w+=,.@-]*",
        )));
    }
    let duration = match param(params, "DurationSeconds") {
        None => DEFAULT_SESSION_SECS,
        Some(d) => match d.parse::<i64>() {
            Ok(n) if n < MIN_SESSION_SECS as i64 => {
                let bound = format!("have value greater than or equal to {MIN_SESSION_SECS}");
                return Err(Box::new(constraint(d, "durationSeconds", &bound)));
            }
            Ok(n) if n > MAX_SESSION_SECS as i64 => {
                let bound = format!("have value less than or equal to {MAX_SESSION_SECS}");
                return Err(Box::new(constraint(d, "durationSeconds", &bound)));
            }
            Ok(n) => n.unsigned_abs(),
            Err(_) => {
                return Err(Box::new(validation(&format!("Value '{d}' for parameter DurationSeconds is invalid."))));
            }
        },
    };
    Ok(RoleRequest { role_arn, session, duration })
}

/// `<Credentials>…</Credentials><AssumedRoleUser>…</AssumedRoleUser>` of issued credentials.
pub(super) fn credentials_xml(issued: &AssumedRole) -> String {
    let e = xml_escape;
    format!(
        "<Credentials><AccessKeyId>{}</AccessKeyId><SecretAccessKey>{}</SecretAccessKey>\
         <SessionToken>{}</SessionToken><Expiration>{}</Expiration></Credentials>\
         <AssumedRoleUser><AssumedRoleId>{}</AssumedRoleId><Arn>{}</Arn></AssumedRoleUser>",
        e(&issued.access_key_id),
        e(&issued.secret_access_key),
        e(&issued.session_token),
        civil_time::iso8601(issued.expires),
        e(&issued.assumed_role_id),
        e(&issued.arn),
    )
}

/// `GetCallerIdentity`: the lab user for [`crate::ACCESS_KEY_ID`], the assumed role for an
/// issued key.
fn get_caller_identity(state: &State, access_key: &str) -> Response {
    let account = &state.inventory.account;
    let (arn, user_id) = match state.caller(access_key) {
        Caller::Role(r) => (r.arn, r.assumed_role_id),
        _ => (identity::user_arn(account), identity::USER_ID.to_string()),
    };
    let e = xml_escape;
    let xml = format!("<Arn>{}</Arn><UserId>{}</UserId><Account>{}</Account>", e(&arn), e(&user_id), e(account));
    ok("GetCallerIdentity", &xml)
}
