//! EC2 instance types: DescribeInstanceTypes from a small built-in catalogue (plus the types the
//! inventory's instances use), with the XML element names aws-sdk-ec2 reads, and the serial
//! console's instance-type rule (`../shared/spec/aws-apis.md` §2.3).

use std::fmt::Write;

use axum::http::StatusCode;
use axum::response::Response;

use super::filters::{filters, wildcard};
use super::query::{err, list, ok, param};
use super::xml_escape;
use crate::state::State;

/// One instance type as DescribeInstanceTypes reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TypeInfo {
    name: &'static str,
    /// `nitro` or `xen`; bare-metal types have none (spec §2.3).
    hypervisor: Option<&'static str>,
    bare_metal: bool,
    current_generation: bool,
    architecture: &'static str,
    vcpus: u32,
    memory_mib: u32,
}

const fn virt(name: &'static str, hypervisor: &'static str, arch: &'static str, vcpus: u32, mib: u32) -> TypeInfo {
    TypeInfo {
        name,
        hypervisor: Some(hypervisor),
        bare_metal: false,
        current_generation: true,
        architecture: arch,
        vcpus,
        memory_mib: mib,
    }
}

const fn metal(name: &'static str, arch: &'static str, vcpus: u32, mib: u32) -> TypeInfo {
    TypeInfo {
        name,
        hypervisor: None,
        bare_metal: true,
        current_generation: true,
        architecture: arch,
        vcpus,
        memory_mib: mib,
    }
}

/// The catalogue: Xen, Nitro and bare-metal types, with serial-capable and refused ones of each.
const CATALOGUE: &[TypeInfo] = &[
    TypeInfo { current_generation: false, ..virt("t1.micro", "xen", "x86_64", 1, 627) },
    virt("t2.micro", "xen", "x86_64", 1, 1024),
    virt("t2.small", "xen", "x86_64", 1, 2048),
    virt("m4.large", "xen", "x86_64", 2, 8192),
    virt("t3.micro", "nitro", "x86_64", 2, 1024),
    virt("t3.small", "nitro", "x86_64", 2, 2048),
    virt("t3a.micro", "nitro", "x86_64", 2, 1024),
    virt("t4g.micro", "nitro", "arm64", 2, 1024),
    virt("m5.large", "nitro", "x86_64", 2, 8192),
    virt("c5.large", "nitro", "x86_64", 2, 4096),
    virt("m6i.large", "nitro", "x86_64", 2, 8192),
    metal("m5.metal", "x86_64", 96, 393_216),
    metal("i3.metal", "x86_64", 72, 524_288),
    metal("a1.metal", "arm64", 16, 32_768),
    metal("mac1.metal", "x86_64_mac", 12, 32_768),
    metal("mac2.metal", "arm64_mac", 8, 16_384),
];

/// Bare-metal types without a serial console (spec §2.3).
const NO_SERIAL_METAL: &[&str] = &[
    "a1.metal",
    "mac1.metal",
    "mac2.metal",
    "mac2-m1ultra.metal",
    "mac2-m2.metal",
    "mac2-m2pro.metal",
    "mac-m3ultra.metal",
    "mac-m4.metal",
    "mac-m4max.metal",
    "mac-m4pro.metal",
    "g5g.metal",
    "u-6tb1.metal",
    "u-9tb1.metal",
    "u-12tb1.metal",
    "u-18tb1.metal",
    "u-24tb1.metal",
];

/// Families that run on Xen (the rest of the virtualized types run on Nitro).
const XEN_FAMILIES: &[&str] = &[
    "t1", "t2", "m1", "m2", "m3", "m4", "c1", "c3", "c4", "r3", "r4", "i2", "i3", "d2", "g2", "g3", "h1", "p2", "p3",
    "x1", "x1e", "f1",
];

/// Whether the serial console supports `instance_type`: a virtualized Nitro type, or bare metal
/// except [`NO_SERIAL_METAL`] (spec §2.3).
pub(super) fn serial_capable(state: &State, instance_type: &str) -> bool {
    lookup(state, instance_type)
        .is_some_and(|t| t.hypervisor == Some("nitro") || (t.bare_metal && !NO_SERIAL_METAL.contains(&instance_type)))
}

/// A catalogue type, or one an inventory instance uses (described from its name).
fn lookup(state: &State, name: &str) -> Option<TypeInfo> {
    if let Some(t) = CATALOGUE.iter().find(|t| t.name == name) {
        return Some(*t);
    }
    state.inventory.instances.iter().find(|i| i.instance_type == name).map(|_| inferred(name))
}

/// What the name tells: `.metal` is bare metal, an old family is Xen, anything else Nitro.
fn inferred(name: &str) -> TypeInfo {
    // `TypeInfo::name` (static) stays empty: the XML uses the inventory's spelling.
    let family = name.split('.').next().unwrap_or_default();
    let graviton = family.ends_with('g') || family.contains("gd") || family.contains("gn");
    let arch = if graviton { "arm64" } else { "x86_64" };
    if name.ends_with(".metal") {
        metal("", arch, 64, 262_144)
    } else if XEN_FAMILIES.contains(&family) {
        virt("", "xen", arch, 2, 4096)
    } else {
        virt("", "nitro", arch, 2, 4096)
    }
}

/// Every type the double knows: the catalogue, then the inventory's other types.
fn known(state: &State) -> Vec<(String, TypeInfo)> {
    let mut all: Vec<(String, TypeInfo)> = CATALOGUE.iter().map(|t| (t.name.to_string(), *t)).collect();
    for i in &state.inventory.instances {
        if !all.iter().any(|(n, _)| *n == i.instance_type) {
            all.push((i.instance_type.clone(), inferred(&i.instance_type)));
        }
    }
    all
}

const KNOWN_FILTERS: &[&str] =
    &["instance-type", "hypervisor", "bare-metal", "current-generation", "processor-info.supported-architecture"];

/// `DescribeInstanceTypes`: `InstanceType.N`, `Filter.N`, `MaxResults` (5–100), `NextToken`.
pub(super) fn describe(state: &State, params: &[(String, String)]) -> Response {
    if let Some(answer) = super::query::dry_run(params) {
        return answer;
    }
    let wanted = list(params, "InstanceType");
    let all = known(state);
    let missing: Vec<&str> = wanted.iter().filter(|w| !all.iter().any(|(n, _)| n == *w)).map(String::as_str).collect();
    if !missing.is_empty() {
        return err(
            StatusCode::BAD_REQUEST,
            "InvalidInstanceType",
            &format!("The following supplied instance types do not exist: [{}]", missing.join(", ")),
        );
    }
    let filters = filters(params);
    if let Some((name, _)) = filters.iter().find(|(name, _)| !KNOWN_FILTERS.contains(&name.as_str())) {
        return err(StatusCode::BAD_REQUEST, "InvalidParameterValue", &format!("The filter '{name}' is invalid"));
    }
    let matching: Vec<&(String, TypeInfo)> = all
        .iter()
        .filter(|(n, _)| wanted.is_empty() || wanted.contains(n))
        .filter(|(n, t)| filters.iter().all(|(f, values)| values.iter().any(|v| matches(n, t, f, v))))
        .collect();
    let page = match param(params, "MaxResults").map(str::parse::<usize>) {
        None => matching.len().max(1),
        Some(Ok(n)) if (5..=100).contains(&n) => n,
        Some(_) => {
            return err(StatusCode::BAD_REQUEST, "InvalidParameterValue", "MaxResults must be between 5 and 100");
        }
    };
    let start = match param(params, "NextToken").map(str::parse::<usize>) {
        None => 0,
        Some(Ok(n)) if n <= matching.len() => n,
        Some(_) => return err(StatusCode::BAD_REQUEST, "InvalidParameterValue", "The NextToken is not valid"),
    };
    let end = (start + page).min(matching.len());
    let mut xml = String::from("<instanceTypeSet>");
    for (name, t) in &matching[start..end] {
        item_xml(&mut xml, name, t);
    }
    xml.push_str("</instanceTypeSet>");
    if end < matching.len() {
        let _ = write!(xml, "<nextToken>{end}</nextToken>");
    }
    ok("DescribeInstanceTypes", state, &xml)
}

fn matches(name: &str, t: &TypeInfo, filter: &str, value: &str) -> bool {
    match filter {
        "instance-type" => wildcard(value, name),
        "hypervisor" => t.hypervisor.is_some_and(|h| wildcard(value, h)),
        "bare-metal" => value == t.bare_metal.to_string(),
        "current-generation" => value == t.current_generation.to_string(),
        "processor-info.supported-architecture" => wildcard(value, t.architecture),
        _ => false,
    }
}

fn item_xml(xml: &mut String, name: &str, t: &TypeInfo) {
    let _ = write!(
        xml,
        "<item><instanceType>{}</instanceType><currentGeneration>{}</currentGeneration>\
         <supportedUsageClasses><item>on-demand</item><item>spot</item></supportedUsageClasses>\
         <bareMetal>{}</bareMetal>",
        xml_escape(name),
        t.current_generation,
        t.bare_metal
    );
    if let Some(h) = t.hypervisor {
        let _ = write!(xml, "<hypervisor>{h}</hypervisor>");
    }
    let _ = write!(
        xml,
        "<processorInfo><supportedArchitectures><item>{}</item></supportedArchitectures></processorInfo>\
         <vCpuInfo><defaultVCpus>{}</defaultVCpus></vCpuInfo><memoryInfo><sizeInMiB>{}</sizeInMiB></memoryInfo></item>",
        t.architecture, t.vcpus, t.memory_mib
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Inventory;

    fn state(toml: &str) -> State {
        State::new(Inventory::from_toml(toml).unwrap())
    }

    #[test]
    fn serial_capable_types() {
        let s = state("[[instance]]\nid = \"i-0aa0000000000000a\"\ninstance_type = \"c7g.large\"\n");
        for t in [
            "t3.micro",
            "t3.small",
            "t3a.micro",
            "m5.large",
            "c5.large",
            "t4g.micro",
            "m5.metal",
            "i3.metal",
            "c7g.large",
        ] {
            assert!(serial_capable(&s, t), "{t}");
        }
        for t in
            ["t1.micro", "t2.micro", "t2.small", "m4.large", "a1.metal", "mac1.metal", "mac2.metal", "x9.nonexistent"]
        {
            assert!(!serial_capable(&s, t), "{t}");
        }
    }

    #[test]
    fn inventory_types_are_described_from_their_names() {
        let t = inferred("r4.xlarge");
        assert_eq!((t.hypervisor, t.bare_metal), (Some("xen"), false));
        let t = inferred("c6gd.metal");
        assert_eq!((t.hypervisor, t.bare_metal, t.architecture), (None, true, "arm64"));
        assert_eq!(inferred("m7i.large").hypervisor, Some("nitro"));
    }

    #[test]
    fn items_carry_the_sdk_element_names() {
        let mut xml = String::new();
        item_xml(&mut xml, "m5.metal", &metal("m5.metal", "x86_64", 96, 393_216));
        assert_eq!(
            xml,
            "<item><instanceType>m5.metal</instanceType><currentGeneration>true</currentGeneration>\
             <supportedUsageClasses><item>on-demand</item><item>spot</item></supportedUsageClasses>\
             <bareMetal>true</bareMetal><processorInfo><supportedArchitectures><item>x86_64</item>\
             </supportedArchitectures></processorInfo><vCpuInfo><defaultVCpus>96</defaultVCpus></vCpuInfo>\
             <memoryInfo><sizeInMiB>393216</sizeInMiB></memoryInfo></item>"
        );
    }
}
