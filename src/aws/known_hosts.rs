//! The EC2 calls of `known-hosts audit`: instances by many addresses and ids at once (filters
//! take up to 200 values: one call per 200 hosts and per page, not one per line; for thousands of
//! addresses one listing of the Region, 1000 instances a page), console output and key pairs
//! (`../shared/spec/aws-apis.md` §2.3, §6).

use russh::keys::ssh_key::encoding::base64::{Base64, Encoding};

use super::ec2_query::{Params, shapes};
use super::{Aws, AwsError};
use crate::target::instance::Instance;

/// A key pair as DescribeKeyPairs lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPair {
    /// `KeyName`.
    pub name: String,
    /// The public key in OpenSSH form, when the API returns it.
    pub public_key: Option<String>,
    /// `KeyFingerprint` (format depends on how the pair was made).
    pub fingerprint: Option<String>,
}

/// Values per filter in one DescribeInstances call (AWS's limit).
const VALUES_PER_CALL: usize = 200;
/// More filtered calls than this: list the whole Region instead (a page holds 1000 instances, so
/// this wins from 1600 addresses on for Regions up to 8000 instances, and bounds the calls).
const LIST_ALL_ABOVE: usize = 16;

/// The instances of `all` whose primary private IPv4, public IPv4 or id is one of `addresses`
/// or `ids`: [`Aws::instances_for_hosts`] over a listing of the whole Region.
pub(crate) fn instances_among(all: Vec<Instance>, addresses: &[String], ids: &[String]) -> Vec<Instance> {
    let wanted: std::collections::HashSet<&str> = addresses.iter().chain(ids).map(String::as_str).collect();
    let ip = |a: Option<std::net::Ipv4Addr>| a.is_some_and(|a| wanted.contains(a.to_string().as_str()));
    all.into_iter().filter(|i| wanted.contains(i.id.as_str()) || ip(i.private_ip) || ip(i.public_ip)).collect()
}

impl Aws {
    /// Every instance (any state, terminated included) whose primary private IPv4, public IPv4
    /// or id is one of `hosts`.
    pub(crate) async fn instances_for_hosts(
        &self,
        addresses: &[String],
        ids: &[String],
    ) -> Result<Vec<Instance>, AwsError> {
        let filtered_calls = 2 * addresses.len().div_ceil(VALUES_PER_CALL) + ids.len().div_ceil(VALUES_PER_CALL);
        if filtered_calls > LIST_ALL_ABOVE {
            // Cheaper to list the Region once (1000 per page) and match here.
            return Ok(instances_among(self.all_instances().await?, addresses, ids));
        }
        let mut calls = Vec::new();
        for (filter, values) in [("private-ip-address", addresses), ("ip-address", addresses), ("instance-id", ids)] {
            for chunk in values.chunks(VALUES_PER_CALL) {
                calls.push(self.describe_many(filter, chunk));
            }
        }
        let mut out: Vec<Instance> = Vec::new();
        for found in futures_util::future::join_all(calls).await {
            for i in found? {
                if !out.iter().any(|o| o.id == i.id) {
                    out.push(i);
                }
            }
        }
        Ok(out)
    }

    async fn describe_many(&self, filter: &str, values: &[String]) -> Result<Vec<Instance>, AwsError> {
        self.collect_instances(&Params::new("DescribeInstances").filter(filter, values)).await
    }

    /// Every key pair of the Region with its public key (`IncludePublicKey`); one call, the API
    /// does not paginate it.
    pub(crate) async fn key_pairs(&self) -> Result<Vec<KeyPair>, AwsError> {
        let out: shapes::DescribeKeyPairs =
            self.ec2().call(&Params::new("DescribeKeyPairs").value("IncludePublicKey", "true")).await?;
        Ok(out
            .key_set
            .item
            .into_iter()
            .filter_map(|k| {
                Some(KeyPair { name: k.key_name?, public_key: k.public_key, fingerprint: k.key_fingerprint })
            })
            .collect())
    }

    /// Every instance (any state) launched with one of the key pairs `names`.
    pub(crate) async fn instances_with_key_pairs(&self, names: &[String]) -> Result<Vec<Instance>, AwsError> {
        let mut out = Vec::new();
        for chunk in names.chunks(VALUES_PER_CALL) {
            out.extend(self.describe_many("key-name", chunk).await?);
        }
        Ok(out)
    }

    /// The instance's console output, decoded (`None` when there is none).
    pub(crate) async fn console_output(&self, id: &str) -> Result<Option<String>, AwsError> {
        let out: shapes::GetConsoleOutput =
            self.ec2().call(&Params::new("GetConsoleOutput").value("InstanceId", id)).await?;
        let Some(b64) = out.output.as_deref().filter(|o| !o.trim().is_empty()) else { return Ok(None) };
        let bytes = Base64::decode_vec(b64.trim()).map_err(|e| AwsError::Transport {
            service: "EC2",
            operation: "GetConsoleOutput",
            detail: format!("the console output is not base64: {e}"),
        })?;
        Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
    }
}
