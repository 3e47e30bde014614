//! STS `AssumeRoleWithWebIdentity`: the one STS call that is not signed (the OIDC token is the
//! proof), as aws-config makes it for `web_identity_token_file` + `role_arn` (a profile, or
//! `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`). Tokens are the lab's
//! ([`crate::State::web_identity_token`]); errors are STS's: 400 `InvalidIdentityToken` for a
//! token it cannot validate, 400 `ExpiredTokenException` for an expired one, 403 `AccessDenied`
//! for a role the inventory does not have or that needs MFA (its trust names the account's
//! principals, not an OIDC provider).

use axum::http::StatusCode;
use axum::response::Response;

use super::query::param;
use super::sts::{RoleRequest, access_denied, credentials_xml, error, ok, role_request};
use super::xml_escape;
use crate::identity::{Grant, Issuer, TokenCheck, TokenKind};
use crate::state::State;

/// The `sub` claim the lab's tokens stand for.
const SUBJECT: &str = "system:serviceaccount:lab:broker";
/// The identity provider the lab's tokens stand for (`Provider` in the answer).
const PROVIDER: &str = "oidc.lab.example";

pub(super) fn assume_role_with_web_identity(state: &State, params: &[(String, String)]) -> Response {
    let RoleRequest { role_arn, session, duration } = match role_request(params) {
        Ok(r) => r,
        Err(refusal) => return *refusal,
    };
    let token = param(params, "WebIdentityToken").unwrap_or_default();
    match state.check_token(TokenKind::WebIdentity, token) {
        TokenCheck::Valid => {}
        TokenCheck::Expired => {
            return error(
                StatusCode::BAD_REQUEST,
                "ExpiredTokenException",
                &format!("Token expired: current date/time {} must be before the expiration date/time", state.now()),
            );
        }
        TokenCheck::Unknown => {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidIdentityToken",
                "The web identity token that was passed could not be validated by AWS. Get a new identity token from \
                 the identity provider and then retry the request.",
            );
        }
    }
    let Some(role) = state.inventory.role(role_arn).filter(|r| !r.mfa) else {
        return access_denied("Not authorized to perform sts:AssumeRoleWithWebIdentity");
    };
    let issued =
        state.grant(Grant { role, session, caller_key: "", mfa: false, issuer: Issuer::WebIdentity, duration });
    let xml = format!(
        "{}<SubjectFromWebIdentityToken>{}</SubjectFromWebIdentityToken><Provider>{}</Provider>\
         <Audience>sts.amazonaws.com</Audience>",
        credentials_xml(&issued),
        xml_escape(SUBJECT),
        xml_escape(PROVIDER)
    );
    ok("AssumeRoleWithWebIdentity", &xml)
}
