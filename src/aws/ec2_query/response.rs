//! Reading an answer: the operation's XML into its shape, or EC2's error document
//! (`<Response><Errors><Error><Code>…`) into a code, a message and the request id. Pure.

use serde::Deserialize;
use serde::de::DeserializeOwned;

/// An error EC2 answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServiceError {
    /// `UnauthorizedOperation`, `RequestLimitExceeded`, …
    pub(crate) code: String,
    /// The service's sentence (unscrubbed: the caller cleans it).
    pub(crate) message: Option<String>,
    /// `<RequestID>`.
    pub(crate) request_id: Option<String>,
}

#[derive(Deserialize)]
struct ErrorDocument {
    #[serde(rename = "Errors", default)]
    errors: Option<Errors>,
    #[serde(rename = "RequestID", alias = "RequestId", alias = "requestId", default)]
    request_id: Option<String>,
}

#[derive(Deserialize)]
struct Errors {
    #[serde(rename = "Error", default)]
    error: Vec<ErrorItem>,
}

#[derive(Deserialize)]
struct ErrorItem {
    #[serde(rename = "Code", default)]
    code: Option<String>,
    #[serde(rename = "Message", default)]
    message: Option<String>,
}

/// The first error of an error document; `None` when the body is not one or names no code.
pub(crate) fn parse_error(body: &str) -> Option<ServiceError> {
    let doc: ErrorDocument = quick_xml::de::from_str(body).ok()?;
    let first = doc.errors?.error.into_iter().next()?;
    let code = first.code.filter(|c| !c.trim().is_empty())?;
    Some(ServiceError { code: code.trim().to_string(), message: first.message, request_id: doc.request_id })
}

#[derive(Deserialize)]
struct RequestIdOnly {
    #[serde(rename = "requestId", alias = "RequestID", alias = "RequestId", default)]
    request_id: Option<String>,
}

/// The `<requestId>` of a successful answer.
pub(crate) fn request_id(body: &str) -> Option<String> {
    quick_xml::de::from_str::<RequestIdOnly>(body).ok()?.request_id
}

/// The answer's shape; the parser's complaint when the body is not one.
pub(crate) fn parse<T: DeserializeOwned>(body: &str) -> Result<T, String> {
    quick_xml::de::from_str(body).map_err(|e| e.to_string())
}

/// The answer of `action`, as `T`: its root must be `<{action}Response>` (as the SDK required),
/// so an answer of some other call or a proxy's XML is not read as an empty success.
pub(crate) fn parse_answer<T: DeserializeOwned>(action: &str, body: &str) -> Result<T, String> {
    match root_name(body) {
        Some(root) if root.strip_suffix("Response") == Some(action) => parse(body),
        Some(root) => Err(format!("the answer is a <{root}>, not a <{action}Response>")),
        None => Err("the answer has no XML element".into()),
    }
}

/// The `<nextToken>` directly under the root, non-empty, found by scanning the events without
/// building the answer: the next page can be asked for while this one is read.
pub(crate) fn next_token(body: &str) -> Option<String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(body);
    let mut depth = 0usize;
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) => {
                depth += 1;
                if depth == 2 && e.local_name().into_inner() == "nextToken" {
                    let text = reader.read_text(e.name()).ok()?;
                    let token = quick_xml::escape::unescape(&text).ok()?.trim().to_string();
                    return Some(token).filter(|t| !t.is_empty());
                }
            }
            Event::End(_) => depth = depth.checked_sub(1)?,
            Event::Eof => return None,
            _ => {}
        }
    }
}

/// The local name of the document's first element.
fn root_name(body: &str) -> Option<String> {
    let mut reader = quick_xml::Reader::from_str(body);
    loop {
        match reader.read_event().ok()? {
            quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e) => {
                return Some(e.local_name().into_inner().to_string());
            }
            quick_xml::events::Event::Eof => return None,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::shapes::{DescribeInstances, DescribeRegions, DescribeSecurityGroups, Paged};
    use super::*;

    #[test]
    fn an_error_document_gives_code_message_and_request_id() {
        let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>You are not authorized to perform this operation.</Message></Error></Errors><RequestID>7a62c49f-347e-4fc4-9331-6e8eEXAMPLE</RequestID></Response>"#;
        assert_eq!(
            parse_error(body),
            Some(ServiceError {
                code: "UnauthorizedOperation".into(),
                message: Some("You are not authorized to perform this operation.".into()),
                request_id: Some("7a62c49f-347e-4fc4-9331-6e8eEXAMPLE".into()),
            })
        );
        for not_one in ["", "<html><body>Bad Gateway</body></html>", "<Response><Errors/></Response>", "{\"x\":1}"] {
            assert_eq!(parse_error(not_one), None, "{not_one}");
        }
    }

    #[test]
    fn instances_with_tags_groups_and_a_next_page() {
        let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>8f7724cf-496f-496e-8fe3-example</requestId>
  <reservationSet><item><reservationId>r-1</reservationId><groupSet/>
    <instancesSet>
      <item>
        <instanceId>i-1234567890abcdef0</instanceId><imageId>ami-1</imageId>
        <instanceState><code>16</code><name>running</name></instanceState>
        <placement><availabilityZone>us-east-1c</availabilityZone><tenancy>default</tenancy></placement>
        <privateIpAddress>10.31.4.7</privateIpAddress><ipAddress>54.194.252.215</ipAddress>
        <groupSet><item><groupId>sg-1</groupId><groupName>a</groupName></item><item><groupId>sg-2</groupId></item></groupSet>
        <tagSet><item><key>Name</key><value>web &amp; db</value></item><item><key>env</key><value/></item></tagSet>
        <launchTime>2026-11-23T08:30:08.000Z</launchTime>
        <metadataOptions><httpEndpoint>disabled</httpEndpoint></metadataOptions>
        <networkInterfaceSet><item><groupSet><item><groupId>sg-9</groupId></item></groupSet></item></networkInterfaceSet>
      </item>
      <item><instanceId>i-2</instanceId></item>
    </instancesSet></item>
  </reservationSet>
  <nextToken>abc</nextToken>
</DescribeInstancesResponse>"#;
        let page: DescribeInstances = parse(body).unwrap();
        assert_eq!(page.next_token(), Some("abc"));
        assert_eq!(next_token(body).as_deref(), Some("abc"), "the scan agrees with the parser");
        assert_eq!(request_id(body).as_deref(), Some("8f7724cf-496f-496e-8fe3-example"));
        let instances = &page.reservation_set.item[0].instances_set.item;
        assert_eq!(instances.len(), 2);
        let i = &instances[0];
        assert_eq!(i.instance_id.as_deref(), Some("i-1234567890abcdef0"));
        assert_eq!(i.instance_state.as_ref().and_then(|s| s.name.as_deref()), Some("running"));
        assert_eq!(i.tag_set.item[0].value.as_deref(), Some("web & db"));
        assert_eq!(i.tag_set.item.len(), 2);
        let groups: Vec<_> = i.group_set.item.iter().filter_map(|g| g.group_id.as_deref()).collect();
        assert_eq!(groups, ["sg-1", "sg-2"], "the instance's groups, not its interfaces'");
        assert_eq!(i.ip_address.as_deref(), Some("54.194.252.215"));
        assert_eq!(i.metadata_options.as_ref().and_then(|m| m.http_endpoint.as_deref()), Some("disabled"));
        assert_eq!(instances[1].tag_set.item.len(), 0);
        let last: DescribeInstances =
            parse("<DescribeInstancesResponse><reservationSet/><nextToken/></DescribeInstancesResponse>").unwrap();
        assert_eq!(last.next_token(), None);
        assert!(parse::<DescribeInstances>("<DescribeInstancesResponse><reservationSet>").is_err());
    }

    #[test]
    fn the_next_token_scan_reads_only_the_answers_own() {
        let nested = "<R><reservationSet><item><nextToken>inner</nextToken></item></reservationSet></R>";
        assert_eq!(next_token(nested), None, "a nextToken deeper down is not the answer's");
        assert_eq!(next_token("<R><x/><nextToken> a&amp;b= </nextToken></R>").as_deref(), Some("a&b="));
        assert_eq!(next_token("<R><nextToken/></R>"), None);
        assert_eq!(next_token("<R><nextToken></nextToken></R>"), None);
        assert_eq!(next_token("<R><nextToken>x"), None, "a cut answer has none");
        assert_eq!(next_token(""), None);
    }

    #[test]
    fn a_success_must_be_the_answer_of_its_call() {
        let ok = r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- a comment --><DescribeRegionsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><regionInfo/></DescribeRegionsResponse>"#;
        let regions: DescribeRegions = parse_answer("DescribeRegions", ok).unwrap();
        assert!(regions.region_info.item.is_empty());
        let other = "<DescribeInstancesResponse><reservationSet/></DescribeInstancesResponse>";
        let e = parse_answer::<DescribeInstances>("DescribeRegions", other).unwrap_err();
        assert_eq!(e, "the answer is a <DescribeInstancesResponse>, not a <DescribeRegionsResponse>");
        assert!(parse_answer::<DescribeInstances>("DescribeInstances", "<html><body>proxy</body></html>").is_err());
        assert!(parse_answer::<DescribeInstances>("DescribeInstances", "").is_err());
    }

    #[test]
    fn security_group_rules_with_every_kind_of_source() {
        let body = r#"<DescribeSecurityGroupsResponse><securityGroupInfo><item>
          <groupId>sg-1</groupId><groupName>ssh</groupName>
          <ipPermissions><item><ipProtocol>tcp</ipProtocol><fromPort>22</fromPort><toPort>22</toPort>
            <groups><item><groupId>sg-2</groupId></item></groups>
            <ipRanges><item><cidrIp>10.0.0.0/8</cidrIp></item></ipRanges>
            <ipv6Ranges><item><cidrIpv6>::/0</cidrIpv6></item></ipv6Ranges>
            <prefixListIds><item><prefixListId>pl-1</prefixListId></item></prefixListIds></item>
            <item><ipProtocol>-1</ipProtocol></item></ipPermissions>
          <ipPermissionsEgress/></item></securityGroupInfo></DescribeSecurityGroupsResponse>"#;
        let out: DescribeSecurityGroups = parse(body).unwrap();
        let g = &out.security_group_info.item[0];
        let rule = &g.ip_permissions.item[0];
        assert_eq!((rule.from_port, rule.to_port), (Some(22), Some(22)));
        assert_eq!(rule.ip_ranges.item[0].cidr_ip.as_deref(), Some("10.0.0.0/8"));
        assert_eq!(rule.ipv6_ranges.item[0].cidr_ipv6.as_deref(), Some("::/0"));
        assert_eq!(rule.prefix_list_ids.item[0].prefix_list_id.as_deref(), Some("pl-1"));
        assert_eq!(rule.groups.item[0].group_id.as_deref(), Some("sg-2"));
        assert_eq!(g.ip_permissions.item[1].from_port, None);
        assert!(g.ip_permissions_egress.item.is_empty());
    }
}
