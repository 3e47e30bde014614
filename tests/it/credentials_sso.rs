//! Credentials as users have them (issue 20): IAM Identity Center profiles (legacy
//! `sso_start_url` ones and `sso_session` ones) signed in through a token cache written as
//! `aws sso login` writes it, against the lab's portal double (`AWS_ENDPOINT_URL_SSO`); an
//! expired or missing sign-in, which must say `run aws sso login --profile P`;
//! `credential_process`; and web identity (`web_identity_token_file` + `role_arn`). Nothing in the environment holds keys: every world removes the lab's
//! `AWS_ACCESS_KEY_ID`, so credentials can only come from the profile.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use ec2_lab::sso::{CachedSignIn, write_token_cache};
use ec2_lab::{ACCESS_KEY_ID, BearerToken, Issuer, SECRET_ACCESS_KEY};

use crate::harness::{Output, World, broker};

const T: Duration = Duration::from_secs(60);
const LEGACY_URL: &str = "https://d-legacy.awsapps.com/start";
const SESSION_URL: &str = "https://d-session.awsapps.com/start";
/// The role the demo inventory has and the portal double hands out.
const ROLE_NAME: &str = "lab-readonly";
const SIGNED_IN: Duration = Duration::from_secs(8 * 3600);

/// A world whose AWS config holds the profiles below (and nothing else gives credentials):
/// `legacy` and `modern` (sso-session `corp`) sign in, `chained` assumes a role with `modern`'s
/// credentials, `expired-legacy`, `expired-session` and `never` have expired or no sign-ins,
/// `process` runs `creds.sh`, `web` assumes a role with the OIDC token in `web-identity-token`.
fn sso_world() -> World {
    let world = World::new();
    let (region, account) = (&world.lab.state().inventory.region, &world.lab.state().inventory.account);
    // aws-config refuses `sso_region` in a profile that names an sso-session: it lives in the
    // session's section then.
    let legacy =
        format!("sso_region = {region}\nsso_account_id = {account}\nsso_role_name = {ROLE_NAME}\nregion = {region}\n");
    let session = format!("sso_account_id = {account}\nsso_role_name = {ROLE_NAME}\nregion = {region}\n");
    let config = format!(
        "[profile legacy]\nsso_start_url = {LEGACY_URL}\n{}\n\
         [sso-session corp]\nsso_start_url = {SESSION_URL}\nsso_region = {region}\nsso_registration_scopes = sso:account:access\n\n\
         [profile modern]\nsso_session = corp\n{}\n\
         [profile expired-legacy]\nsso_start_url = https://d-old.awsapps.com/start\n{}\n\
         [sso-session old]\nsso_start_url = https://d-old2.awsapps.com/start\nsso_region = {region}\n\n\
         [profile expired-session]\nsso_session = old\n{}\n\
         [profile never]\nsso_start_url = https://d-never.awsapps.com/start\n{}\n\
         [profile process]\ncredential_process = {}\nregion = {region}\n\n\
         [profile web]\nrole_arn = arn:aws:iam::{account}:role/{ROLE_NAME}\nweb_identity_token_file = {}\n\
         role_session_name = broker-web\nregion = {region}\n",
        legacy,
        session,
        legacy,
        session,
        legacy,
        world.path("creds.sh").display(),
        world.path("web-identity-token").display(),
    );
    fs::write(world.path("aws-config"), config).unwrap();
    fs::write(world.path("aws-credentials"), "").unwrap();
    world
}

fn home(world: &World) -> PathBuf {
    world.path("home")
}

/// Signs in at the lab for `valid_for` and caches the token under `key` as the CLI does.
fn sign_in(world: &World, key: &str, start_url: &str, valid_for: Duration) -> BearerToken {
    let token = world.lab.state().sso_sign_in(valid_for);
    let region = &world.lab.state().inventory.region;
    write_token_cache(&home(world), &CachedSignIn { key, start_url, region, token: &token }).unwrap();
    token
}

/// `program ARGS` with the world's environment minus the lab's keys, with the world's profiles
/// and `AWS_PROFILE=profile`.
fn command(world: &World, program: impl AsRef<std::path::Path>, profile: &str) -> Command {
    let mut cmd = world.command(program);
    cmd.env_remove("AWS_ACCESS_KEY_ID").env_remove("AWS_SECRET_ACCESS_KEY");
    cmd.env("AWS_CONFIG_FILE", world.path("aws-config"));
    cmd.env("AWS_SHARED_CREDENTIALS_FILE", world.path("aws-credentials"));
    cmd.env("AWS_PROFILE", profile);
    cmd
}

fn ls(world: &World, profile: &str) -> Output {
    let mut cmd = command(world, broker(), profile);
    cmd.arg("ls");
    world.run(cmd, T)
}

/// The signed API calls since the `seen`th, which must be some.
fn signed_calls(world: &World, seen: usize) -> Vec<ec2_lab::ApiCall> {
    let calls: Vec<_> =
        world.lab.state().calls()[seen..].iter().filter(|c| !c.access_key.is_empty()).cloned().collect();
    assert!(!calls.is_empty(), "no signed call\n{}", world.dump());
    calls
}

fn portal_calls(world: &World) -> Vec<ec2_lab::ApiCall> {
    world.lab.state().calls().into_iter().filter(|c| c.service == "sso").collect()
}

/// Asserts every call was signed with the one set of credentials the portal issued.
fn assert_signed_by_the_portal(world: &World) {
    let issued = world.lab.state().issued_credentials(Issuer::IdentityCenter);
    assert_eq!(issued.len(), 1, "one GetRoleCredentials issued credentials: {issued:#?}\n{}", world.dump());
    let issued = &issued[0];
    assert!(issued.role_arn.ends_with(&format!(":role/{ROLE_NAME}")), "{issued:?}");
    for call in signed_calls(world, 0) {
        assert_eq!(call.access_key, issued.access_key_id, "{call:?} not signed with the SSO key\n{}", world.dump());
        assert!(call.status < 400, "{call:?} refused\n{}", world.dump());
    }
    let portal = portal_calls(world);
    assert_eq!(portal.len(), 1, "{portal:#?}");
    assert_eq!(portal[0].status, 200);
}

#[test]
fn a_legacy_sso_profile_lists_instances_with_the_portals_credentials() {
    let world = sso_world();
    sign_in(&world, LEGACY_URL, LEGACY_URL, SIGNED_IN);
    let out = ls(&world, "legacy");
    assert!(out.success(), "{}\n{}", out.describe(), out.context);
    assert!(out.stdout.contains("web-1"), "{}", out.describe());
    assert!(out.stderr.is_empty(), "{}", out.describe());
    assert_signed_by_the_portal(&world);
}

#[test]
fn an_sso_session_profile_carries_ssh_through_the_proxy() {
    let world = sso_world();
    sign_in(&world, "corp", SESSION_URL, SIGNED_IN);
    let mut cmd = command(&world, "ssh", "modern");
    cmd.arg("-F").arg(&world.ssh_config).args(["web-1", "echo ok"]);
    let out = world.run(cmd, T);
    assert!(out.success() && out.stdout.trim() == "ok", "{}\n{}", out.describe(), out.context);
    assert_signed_by_the_portal(&world);
    let pushed = world.lab.state().pushed_keys();
    assert!(!pushed.is_empty(), "no key pushed\n{}", world.dump());
}

#[test]
fn an_expired_or_missing_sign_in_says_to_run_aws_sso_login() {
    let world = sso_world();
    let legacy = sign_in(&world, "https://d-old.awsapps.com/start", "https://d-old.awsapps.com/start", Duration::ZERO);
    let session = sign_in(&world, "old", "https://d-old2.awsapps.com/start", Duration::ZERO);
    // The expiry is the lab clock's second: be past it.
    std::thread::sleep(Duration::from_millis(1100));
    let cases = [
        ("expired-legacy", "its sign-in expired at"),
        ("expired-session", "its sign-in expired at"),
        ("never", "there is no cached sign-in"),
    ];
    for (profile, why) in cases {
        let out = ls(&world, profile);
        let context = format!("{profile}: {}\n{}", out.describe(), out.context);
        assert_eq!(out.code(), Some(1), "{context}");
        assert!(out.stdout.is_empty(), "{context}");
        assert!(out.stderr.starts_with("ec2-broker: error: "), "{context}");
        assert!(
            out.stderr.contains(&format!("profile {profile} signs in with IAM Identity Center and {why}")),
            "{context}"
        );
        assert!(out.stderr.contains(&format!("run `aws sso login --profile {profile}`")), "{context}");
        assert!(!out.stderr.contains("DispatchFailure") && !out.stderr.contains("ProviderError"), "{context}");
        let log = fs::read_to_string(&world.broker_log).unwrap_or_default();
        for token in [&legacy.access_token, &session.access_token] {
            assert!(!out.stderr.contains(token.as_str()) && !log.contains(token.as_str()), "token shown\n{context}");
        }
    }
    // The legacy profile's expiry is the portal's word (aws-config does not check it); the
    // sso-session's is checked before any call.
    let portal = portal_calls(&world);
    assert_eq!(portal.len(), 1, "{portal:#?}");
    assert_eq!(portal[0].status, 401);
    assert!(world.lab.state().issued_credentials(Issuer::IdentityCenter).is_empty());
    let ec2 = world.lab.state().calls().into_iter().filter(|c| c.service == "ec2").count();
    assert_eq!(ec2, 0, "no EC2 call without credentials\n{}", world.dump());
}

#[test]
fn a_credential_process_profile_signs_with_what_the_process_prints() {
    let world = sso_world();
    let ran = world.path("creds-ran");
    let script = format!(
        "#!/bin/sh\necho run >> '{}'\ncat <<'EOF'\n{{\"Version\": 1, \"AccessKeyId\": \"{ACCESS_KEY_ID}\", \
         \"SecretAccessKey\": \"{SECRET_ACCESS_KEY}\"}}\nEOF\n",
        ran.display()
    );
    fs::write(world.path("creds.sh"), script).unwrap();
    fs::set_permissions(world.path("creds.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    let out = ls(&world, "process");
    assert!(out.success(), "{}\n{}", out.describe(), out.context);
    assert!(out.stdout.contains("web-1"), "{}", out.describe());
    assert!(fs::read_to_string(&ran).is_ok_and(|s| s.starts_with("run")), "the process did not run");
    for call in signed_calls(&world, 0) {
        assert_eq!(call.access_key, ACCESS_KEY_ID, "{call:?}");
    }
    assert!(portal_calls(&world).is_empty());
}

#[test]
fn a_web_identity_profile_assumes_its_role_with_the_token_file() {
    let world = sso_world();
    let token = world.lab.state().web_identity_token(SIGNED_IN);
    fs::write(world.path("web-identity-token"), &token.access_token).unwrap();
    let out = ls(&world, "web");
    assert!(out.success(), "{}\n{}", out.describe(), out.context);
    assert!(out.stdout.contains("web-1"), "{}", out.describe());
    let issued = world.lab.state().issued_credentials(Issuer::WebIdentity);
    assert_eq!(issued.len(), 1, "{issued:#?}\n{}", world.dump());
    assert_eq!(issued[0].session_name, "broker-web");
    assert!(issued[0].role_arn.ends_with(&format!(":role/{ROLE_NAME}")));
    let assume: Vec<_> =
        world.lab.state().calls().into_iter().filter(|c| c.operation == "AssumeRoleWithWebIdentity").collect();
    assert_eq!(assume.len(), 1, "{assume:#?}");
    assert_eq!((assume[0].status, assume[0].access_key.as_str()), (200, ""), "unsigned, accepted");
    for call in signed_calls(&world, 0) {
        assert_eq!(call.access_key, issued[0].access_key_id, "{call:?}");
    }
    let log = fs::read_to_string(&world.broker_log).unwrap_or_default();
    assert!(!log.contains(&token.access_token) && !out.stderr.contains(&token.access_token), "token shown");
}
