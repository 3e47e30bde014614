//! IAM: what the doctor reads of an instance profile when the SSM agent is offline
//! (`../shared/spec/keys-and-shell.md` §7 row 5): the profile's role, its trust policy and its
//! policies. IAM returns policy documents URL-encoded; they are decoded here.

use super::{Aws, AwsError, clean};

const SERVICE: &str = "IAM";

/// An instance profile's role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProfileRole {
    /// The role's name.
    pub name: String,
    /// Its trust policy (JSON, decoded), when IAM sent it.
    pub trust: Option<String>,
}

/// The policies of a role.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct RolePolicies {
    /// ARNs of the attached managed policies.
    pub attached: Vec<String>,
    /// Inline policies: (name, document as JSON, decoded).
    pub inline: Vec<(String, String)>,
}

impl Aws {
    /// The roles of the instance profile `name` (`Ok(None)`: IAM does not know the profile).
    pub(crate) async fn instance_profile_roles(&self, name: &str) -> Result<Option<Vec<ProfileRole>>, AwsError> {
        let out = match self.iam().get_instance_profile().instance_profile_name(name).send().await {
            Ok(out) => out,
            Err(e) => {
                return match AwsError::from_sdk(SERVICE, "GetInstanceProfile", e) {
                    e if e.code() == Some("NoSuchEntity") => Ok(None),
                    e => Err(e),
                };
            }
        };
        let roles = out.instance_profile().map(|p| p.roles()).unwrap_or_default();
        Ok(Some(
            roles
                .iter()
                .map(|r| ProfileRole {
                    name: clean(r.role_name(), 200),
                    trust: r.assume_role_policy_document().map(url_decode),
                })
                .collect(),
        ))
    }

    /// The trust policy of role `name` (GetRole), decoded.
    pub(crate) async fn role_trust(&self, name: &str) -> Result<Option<String>, AwsError> {
        let out = self
            .iam()
            .get_role()
            .role_name(name)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "GetRole", e))?;
        Ok(out.role().and_then(|r| r.assume_role_policy_document()).map(url_decode))
    }

    /// The managed policies attached to role `name`, and its inline policies with their
    /// documents (the first page of each list: 100 items, more than any role has in practice).
    pub(crate) async fn role_policies(&self, name: &str) -> Result<RolePolicies, AwsError> {
        let (attached, inline) = tokio::join!(
            self.iam().list_attached_role_policies().role_name(name).send(),
            self.iam().list_role_policies().role_name(name).send(),
        );
        let attached = attached.map_err(|e| AwsError::from_sdk(SERVICE, "ListAttachedRolePolicies", e))?;
        let inline = inline.map_err(|e| AwsError::from_sdk(SERVICE, "ListRolePolicies", e))?;
        let mut policies = RolePolicies {
            attached: attached.attached_policies().iter().filter_map(|p| p.policy_arn()).map(str::to_string).collect(),
            inline: Vec::new(),
        };
        for policy in inline.policy_names() {
            let doc = self
                .iam()
                .get_role_policy()
                .role_name(name)
                .policy_name(policy)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk(SERVICE, "GetRolePolicy", e))?;
            policies.inline.push((clean(policy, 200), url_decode(doc.policy_document())));
        }
        Ok(policies)
    }
}

/// A policy document as IAM sends it (RFC 3986 percent-encoded), decoded; text that is not
/// encoded (a client or double that decoded it already) comes back unchanged.
pub(crate) fn url_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_documents_are_decoded() {
        assert_eq!(url_decode("%7B%22Version%22%3A%20%222012-10-17%22%7D"), r#"{"Version": "2012-10-17"}"#);
        assert_eq!(url_decode(r#"{"a":"b"}"#), r#"{"a":"b"}"#, "already decoded");
    }
}
