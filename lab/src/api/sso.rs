//! The IAM Identity Center portal double (restJson1): `GetRoleCredentials`,
//! `GET /federation/credentials?account_id=…&role_name=…` with the sign-in's access token in
//! `x-amz-sso_bearer_token` and no SigV4 signature. It answers as the Portal API reference
//! documents: `{"roleCredentials":{accessKeyId, secretAccessKey, sessionToken, expiration}}`
//! (expiration in epoch milliseconds); 401 `UnauthorizedException` for a token it does not know
//! or that expired, 400 `InvalidRequestException` for a missing parameter, 429
//! `TooManyRequestsException` (the `throttle_next` knob). A role the user is not assigned (an
//! account other than the inventory's, a role name no `[[role]]` has) is 403
//! `ForbiddenException` "No access", as the real portal answers, although the service model does
//! not list that error (aws-sdk-sso reads it as an unmodelled error with that code).
//!
//! The credentials it issues are the lab's session credentials ([`Issuer::IdentityCenter`]), so
//! the other doubles verify signatures made with them.

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use super::request_id;
use crate::identity::{Grant, Issuer, TokenCheck, TokenKind};
use crate::state::State;

/// How long the portal's role credentials last: a permission set's default session duration.
const SESSION_SECS: u64 = 3600;
/// The session name Identity Center gives role sessions: the user's name.
const SESSION_NAME: &str = "lab-user";

/// `GET /federation/credentials`.
pub(crate) async fn get_role_credentials(
    axum::extract::State(state): axum::extract::State<Arc<State>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let response = answer(&state, &uri, &headers);
    state.record("sso", "GetRoleCredentials", response.status().as_u16(), "");
    response
}

fn answer(state: &State, uri: &Uri, headers: &HeaderMap) -> Response {
    let throttled = {
        let mut f = state.faults();
        let throttled = f.throttle_next > 0 && f.throttle_only.as_deref().is_none_or(|op| op == "GetRoleCredentials");
        if throttled {
            f.throttle_next -= 1;
        }
        throttled
    };
    if throttled {
        return error(StatusCode::TOO_MANY_REQUESTS, "TooManyRequestsException", "Too many requests");
    }
    let params: Vec<(String, String)> =
        form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes()).into_owned().collect();
    let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty());
    let token = headers.get("x-amz-sso_bearer_token").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if state.check_token(TokenKind::Sso, token) != TokenCheck::Valid {
        return error(StatusCode::UNAUTHORIZED, "UnauthorizedException", "Session token not found or invalid");
    }
    let (Some(account), Some(role_name)) = (param("account_id"), param("role_name")) else {
        return error(StatusCode::BAD_REQUEST, "InvalidRequestException", "account_id and role_name are required");
    };
    let inventory = &state.inventory;
    let role = inventory.roles.iter().find(|r| r.name() == role_name);
    let (true, Some(role), false) = (account == inventory.account, role, state.denied("sso:GetRoleCredentials")) else {
        return error(StatusCode::FORBIDDEN, "ForbiddenException", "No access");
    };
    let issued = state.grant(Grant {
        role,
        session: SESSION_NAME,
        caller_key: "",
        mfa: false,
        issuer: Issuer::IdentityCenter,
        duration: SESSION_SECS,
    });
    let body = serde_json::json!({
        "roleCredentials": {
            "accessKeyId": issued.access_key_id,
            "secretAccessKey": issued.secret_access_key,
            "sessionToken": issued.session_token,
            "expiration": issued.expires * 1000,
        }
    });
    respond(StatusCode::OK, None, body)
}

/// A restJson1 error: the code in `x-amzn-ErrorType`, the message in the body.
fn error(status: StatusCode, code: &'static str, message: &str) -> Response {
    respond(status, Some(code), serde_json::json!({ "message": message }))
}

fn respond(status: StatusCode, code: Option<&'static str>, body: serde_json::Value) -> Response {
    let mut response = (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response();
    let headers = response.headers_mut();
    if let Some(code) = code {
        headers.insert("x-amzn-errortype", HeaderValue::from_static(code));
    }
    if let Ok(id) = HeaderValue::from_str(&request_id()) {
        headers.insert("x-amzn-requestid", id);
    }
    response
}
