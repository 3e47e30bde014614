//! The `managed-ssh-keys/active-keys/<user>/` blob IMDS serves (`../shared/spec/aws-apis.md` §3.3).
//!
//! Each entry: `#Timestamp=` (expiry, Unix seconds), `#Instance=`, `#Caller=`, `#Request=`, the key
//! line, a signature line, then a blank line. The lab does not run AWS's signer chain (RSA-PSS
//! over a certificate chain with OCSP staples), so the signature line is a placeholder the lab's
//! AuthorizedKeysCommand skips over exactly as the real parser skips to the blank line.

use crate::state::PushedKey;

/// Validity of a pushed key (spec §2.1).
pub const KEY_VALIDITY_SECS: u64 = 60;

/// Formats the entries for one user.
pub fn format(keys: &[PushedKey], account: &str) -> String {
    let mut out = String::new();
    for k in keys {
        out.push_str(&format!(
            "#Timestamp={}\n#Instance={}\n#Caller={}\n#Request={}\n{}\nbGFiLXNpZ25hdHVyZS1ub3QtdmVyaWZpZWQ=\n\n",
            k.expires,
            k.instance,
            crate::identity::user_arn(account),
            k.request_id,
            k.key
        ));
    }
    out
}
