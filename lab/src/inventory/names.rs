//! The names EC2 derives from an instance's addresses: private and public DNS names, the host
//! name the instance gives itself, and its host keys' comment.

use std::net::Ipv4Addr;

use super::InstanceSpec;

impl InstanceSpec {
    /// `privateDnsName`: `ip-127-0-1-10.eu-west-1.compute.internal` (`ip-….ec2.internal` in
    /// us-east-1), empty without a private address.
    pub fn private_dns_name(&self, region: &str) -> String {
        let Some(ip) = self.private_ip else {
            return String::new();
        };
        let domain =
            if region == "us-east-1" { "ec2.internal".to_string() } else { format!("{region}.compute.internal") };
        format!("ip-{}.{domain}", dashed(ip))
    }

    /// `dnsName` (the public DNS name): `ec2-127-0-2-10.eu-west-1.compute.amazonaws.com`
    /// (`ec2-….compute-1.amazonaws.com` in us-east-1), empty without a public address.
    pub fn public_dns_name(&self, region: &str) -> String {
        let Some(ip) = self.public_ip else {
            return String::new();
        };
        let domain = if region == "us-east-1" { "compute-1".to_string() } else { format!("{region}.compute") };
        format!("ec2-{}.{domain}.amazonaws.com", dashed(ip))
    }

    /// The host name the instance gives itself: `ip-127-0-1-10` (`localhost` without a private
    /// address).
    pub fn host_name(&self) -> String {
        self.private_ip.map_or_else(|| "localhost".to_string(), |ip| format!("ip-{}", dashed(ip)))
    }

    /// The comment of the instance's host keys: `root@` and its private DNS name, as the keys
    /// cloud-init generates at first boot carry.
    pub fn host_key_comment(&self, region: &str) -> String {
        let name = self.private_dns_name(region);
        format!("root@{}", if name.is_empty() { self.host_name() } else { name })
    }
}

fn dashed(ip: Ipv4Addr) -> String {
    ip.to_string().replace('.', "-")
}
