//! The agent's KMS Decrypt of the client's data key (`agent/session/crypto/kmsservice.go`),
//! answered by the KMS double's logic as the instance role: `Faults::deny` of `kms:Decrypt`
//! refuses it too, naming the instance's role session.

use std::collections::BTreeMap;

use crate::state::State;

/// The plaintext data key, or the error as the agent's AWS SDK prints it (`<Code>: <Message>`).
pub(crate) fn decrypt(
    state: &State,
    instance: &str,
    blob: &[u8],
    context: &BTreeMap<String, String>,
    key_id: &str,
) -> Result<Vec<u8>, String> {
    let inventory = &state.inventory;
    if state.denied("kms:Decrypt") {
        let resource = crate::kms::resolve(inventory, key_id)
            .map(|k| k.arn(&inventory.region, &inventory.account))
            .unwrap_or_else(|_| format!("arn:aws:kms:{}:{}:key/*", inventory.region, inventory.account));
        let role = inventory.get(instance).and_then(|i| i.instance_profile.clone()).unwrap_or_default();
        let role = role.rsplit('/').next().filter(|r| !r.is_empty() && *r != "none").unwrap_or("lab-ssm");
        return Err(format!(
            "AccessDeniedException: User: arn:aws:sts::{}:assumed-role/{role}/{instance} is not authorized to perform: kms:Decrypt on resource: {resource} because no identity-based policy allows the kms:Decrypt action",
            inventory.account
        ));
    }
    match state.kms.decrypt(inventory, blob, context, Some(key_id)) {
        Ok((_, plaintext)) => Ok(plaintext),
        Err(e) => Err(format!("{}: {}", e.code(), e.message())),
    }
}
