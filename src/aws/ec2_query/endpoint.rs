//! Where EC2 calls go: the configured endpoint (`AWS_ENDPOINT_URL_EC2`, `AWS_ENDPOINT_URL`, the
//! profile's `endpoint_url`), else the Region's own, by the partition rules of the SDK's
//! endpoint resolver for EC2 (FIPS and dual-stack as configured). Pure.

/// The endpoint URL for `region` when none is configured.
pub(crate) fn default_endpoint(region: &str, fips: bool, dual_stack: bool) -> String {
    let (plain, dual) = if region.starts_with("cn-") {
        ("amazonaws.com.cn", "api.amazonwebservices.com.cn")
    } else if region.starts_with("us-isob-") {
        ("sc2s.sgov.gov", "sc2s.sgov.gov")
    } else if region.starts_with("us-iso-") {
        ("c2s.ic.gov", "c2s.ic.gov")
    } else {
        ("amazonaws.com", "api.aws")
    };
    let host = if fips { "ec2-fips" } else { "ec2" };
    let suffix = if dual_stack { dual } else { plain };
    format!("https://{host}.{region}.{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_fips_and_dual_stack() {
        assert_eq!(default_endpoint("eu-west-1", false, false), "https://ec2.eu-west-1.amazonaws.com");
        assert_eq!(default_endpoint("cn-north-1", false, false), "https://ec2.cn-north-1.amazonaws.com.cn");
        assert_eq!(default_endpoint("us-east-1", true, false), "https://ec2-fips.us-east-1.amazonaws.com");
        assert_eq!(default_endpoint("us-east-1", false, true), "https://ec2.us-east-1.api.aws");
        assert_eq!(default_endpoint("us-gov-west-1", false, false), "https://ec2.us-gov-west-1.amazonaws.com");
    }
}
