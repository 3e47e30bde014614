//! IAM double (awsQuery: form posts with `Action=…&Version=2010-05-08`, XML answers), for what
//! the doctor reads of an instance profile (`../shared/spec/keys-and-shell.md` §7 row 5):
//! GetInstanceProfile, GetRole, ListAttachedRolePolicies, ListRolePolicies and GetRolePolicy.
//! Policy documents are URL-encoded, as IAM returns them (botocore decodes them; other clients
//! must). Unknown names are `NoSuchEntity` (404). Requests reach it when their SigV4 credential
//! scope names `iam`.

use std::fmt::Write;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::query::param;
use super::{request_id, xml_escape};
use crate::inventory::RoleSpec;
use crate::state::State;

const XMLNS: &str = "https://iam.amazonaws.com/doc/2010-05-08/";
const VERSION: &str = "2010-05-08";
/// When the lab's IAM entities were created.
const CREATE_DATE: &str = "2026-11-01T08:00:00Z";

pub(super) fn handle(state: &State, action: &str, params: &[(String, String)]) -> Response {
    match action {
        "GetInstanceProfile" => get_instance_profile(state, params),
        "GetRole" => get_role(state, params),
        "ListAttachedRolePolicies" => list_attached_role_policies(state, params),
        "ListRolePolicies" => list_role_policies(state, params),
        "GetRolePolicy" => get_role_policy(state, params),
        other => error(
            StatusCode::BAD_REQUEST,
            "InvalidAction",
            &format!("Could not find operation {other} for version {VERSION}"),
        ),
    }
}

/// An IAM error: `<ErrorResponse><Error><Type>Sender</Type><Code>…`, `text/xml`.
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<ErrorResponse xmlns=\"{XMLNS}\"><Error><Type>Sender</Type><Code>{}</Code><Message>{}</Message></Error>\
         <RequestId>{}</RequestId></ErrorResponse>",
        xml_escape(code),
        xml_escape(message),
        request_id()
    );
    (status, [(header::CONTENT_TYPE, "text/xml")], body).into_response()
}

fn ok(action: &str, inner: &str) -> Response {
    let body = format!(
        "<{action}Response xmlns=\"{XMLNS}\"><{action}Result>{inner}</{action}Result>\
         <ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></{action}Response>",
        request_id()
    );
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/xml")], body).into_response()
}

fn no_such_entity(message: &str) -> Response {
    error(StatusCode::NOT_FOUND, "NoSuchEntity", message)
}

/// A required name member: present, 1–`max` of `[\w+=,.@-]`, or the `ValidationError` IAM gives.
fn name<'a>(params: &'a [(String, String)], member: &str, max: usize) -> Result<&'a str, Box<Response>> {
    let wire = {
        let mut c = member.chars();
        c.next().map(|f| f.to_ascii_lowercase().to_string() + c.as_str()).unwrap_or_default()
    };
    let Some(value) = param(params, member) else {
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "ValidationError",
            &format!(
                "1 validation error detected: Value null at '{wire}' failed to satisfy constraint: Member must not be null"
            ),
        )));
    };
    let valid =
        (1..=max).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b));
    if !valid {
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "ValidationError",
            &format!(
                "1 validation error detected: Value '{value}' at '{wire}' failed to satisfy constraint: Member must \
                 satisfy regular expression pattern: [\\w+=,.@-]+"
            ),
        )));
    }
    Ok(value)
}

fn find_role(state: &State, params: &[(String, String)]) -> Result<RoleSpec, Box<Response>> {
    let role = name(params, "RoleName", 64)?;
    state
        .inventory
        .all_roles()
        .into_iter()
        .find(|r| r.name() == role)
        .ok_or_else(|| Box::new(no_such_entity(&format!("The role with name {role} cannot be found."))))
}

/// A `Role` element's members (GetRole's and GetInstanceProfile's), the trust policy
/// URL-encoded.
fn role_xml(state: &State, r: &RoleSpec) -> String {
    let e = xml_escape;
    format!(
        "<Path>/</Path><RoleName>{}</RoleName><RoleId>{}</RoleId><Arn>{}</Arn><CreateDate>{CREATE_DATE}</CreateDate>\
         <AssumeRolePolicyDocument>{}</AssumeRolePolicyDocument><MaxSessionDuration>3600</MaxSessionDuration>",
        e(r.name()),
        r.role_id(),
        e(&r.arn),
        url_encode(&r.trust_policy(&state.inventory.account)),
    )
}

fn get_instance_profile(state: &State, params: &[(String, String)]) -> Response {
    let profile = match name(params, "InstanceProfileName", 128) {
        Ok(p) => p,
        Err(response) => return *response,
    };
    let inventory = &state.inventory;
    let Some(spec) = inventory.all_instance_profiles().into_iter().find(|p| p.name == profile) else {
        return no_such_entity(&format!("Instance Profile {profile} cannot be found."));
    };
    let arn = format!("arn:aws:iam::{}:instance-profile/{}", inventory.account, spec.name);
    let mut xml = format!(
        "<InstanceProfile><Path>/</Path><InstanceProfileName>{}</InstanceProfileName>\
         <InstanceProfileId>{}</InstanceProfileId><Arn>{}</Arn><CreateDate>{CREATE_DATE}</CreateDate><Roles>",
        xml_escape(&spec.name),
        crate::inventory::instance_profile_id(&arn),
        xml_escape(&arn),
    );
    let roles = inventory.all_roles();
    for role in spec.role.iter().filter_map(|n| roles.iter().find(|r| r.name() == n)) {
        let _ = write!(xml, "<member>{}</member>", role_xml(state, role));
    }
    xml.push_str("</Roles></InstanceProfile>");
    ok("GetInstanceProfile", &xml)
}

fn get_role(state: &State, params: &[(String, String)]) -> Response {
    match find_role(state, params) {
        Ok(role) => ok("GetRole", &format!("<Role>{}</Role>", role_xml(state, &role))),
        Err(response) => *response,
    }
}

fn list_attached_role_policies(state: &State, params: &[(String, String)]) -> Response {
    let role = match find_role(state, params) {
        Ok(r) => r,
        Err(response) => return *response,
    };
    let mut xml = String::from("<AttachedPolicies>");
    for arn in &role.managed_policies {
        let policy = arn.rsplit('/').next().unwrap_or(arn);
        let _ = write!(
            xml,
            "<member><PolicyName>{}</PolicyName><PolicyArn>{}</PolicyArn></member>",
            xml_escape(policy),
            xml_escape(arn)
        );
    }
    xml.push_str("</AttachedPolicies><IsTruncated>false</IsTruncated>");
    ok("ListAttachedRolePolicies", &xml)
}

fn list_role_policies(state: &State, params: &[(String, String)]) -> Response {
    let role = match find_role(state, params) {
        Ok(r) => r,
        Err(response) => return *response,
    };
    let mut xml = String::from("<PolicyNames>");
    for policy in role.inline_policies.keys() {
        let _ = write!(xml, "<member>{}</member>", xml_escape(policy));
    }
    xml.push_str("</PolicyNames><IsTruncated>false</IsTruncated>");
    ok("ListRolePolicies", &xml)
}

fn get_role_policy(state: &State, params: &[(String, String)]) -> Response {
    let role = match find_role(state, params) {
        Ok(r) => r,
        Err(response) => return *response,
    };
    let policy = match name(params, "PolicyName", 128) {
        Ok(p) => p,
        Err(response) => return *response,
    };
    let Some(document) = role.inline_policies.get(policy) else {
        return no_such_entity(&format!("The role policy with name {policy} cannot be found."));
    };
    let xml = format!(
        "<RoleName>{}</RoleName><PolicyName>{}</PolicyName><PolicyDocument>{}</PolicyDocument>",
        xml_escape(role.name()),
        xml_escape(policy),
        url_encode(document)
    );
    ok("GetRolePolicy", &xml)
}

/// RFC 3986 percent-encoding (unreserved characters kept, a space as `%20`), as IAM encodes
/// policy documents.
pub(crate) fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}
