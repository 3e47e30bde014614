//! Which instance types have a serial console (`../shared/spec/aws-apis.md` §2.3): every
//! virtualized Nitro type, and bare metal except a published list. `DescribeInstanceTypes`
//! supplies the facts; `hypervisor` is absent on bare metal.

pub(crate) use crate::aws::serial::TypeInfo;

/// Bare-metal types without a serial console.
const METAL_EXCEPTIONS: [&str; 16] = [
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

/// Why a type has no serial console, in words for the user; `None` when it has one.
pub(crate) fn unsupported_reason(t: &TypeInfo) -> Option<String> {
    if t.bare_metal {
        return METAL_EXCEPTIONS
            .contains(&t.name.as_str())
            .then(|| format!("{} is one of the bare-metal types without a serial console", t.name));
    }
    match t.hypervisor.as_deref() {
        Some("nitro") => None,
        Some(h) => Some(format!("{} runs on the {h} hypervisor; the serial console needs a Nitro-based type", t.name)),
        None => Some(format!("{} reports no hypervisor; the serial console needs a Nitro-based type", t.name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, hypervisor: Option<&str>, bare_metal: bool) -> TypeInfo {
        TypeInfo { name: name.into(), hypervisor: hypervisor.map(str::to_string), bare_metal }
    }

    #[test]
    fn nitro_and_most_metal() {
        assert_eq!(unsupported_reason(&t("t3.micro", Some("nitro"), false)), None);
        assert_eq!(unsupported_reason(&t("m5.metal", None, true)), None);
        let xen = unsupported_reason(&t("t2.micro", Some("xen"), false)).unwrap();
        assert!(xen.contains("xen hypervisor") && xen.contains("Nitro"), "{xen}");
        assert!(unsupported_reason(&t("mac2-m2pro.metal", None, true)).unwrap().contains("bare-metal"));
        assert!(unsupported_reason(&t("x9.odd", None, false)).is_some());
    }
}
