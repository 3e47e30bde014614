//! Large inventories for benchmarks: thousands of instances on distinct loopback addresses, a
//! few terminated ones on recycled addresses, every kind of console, all from one seed.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use super::{InstanceSpec, Inventory, KeyPairSpec, LAB_ADMIN_PUBLIC_KEY};
use crate::civil_time;
use crate::console::ConsoleKeys;

/// Addresses start at 127.10.0.0, clear of 127.0.0.0/16 where the demo and every lab test put
/// theirs (127.0.0.1, 127.0.1.*, 127.0.2.*, 127.0.4.*–127.0.9.*), and skip host bytes 0 and 255.
const FIRST_SECOND_OCTET: usize = 10;
/// How many addresses that leaves: 246 × 256 × 254.
const ADDRESS_SPACE: usize = (256 - FIRST_SECOND_OCTET) * 256 * 254;
/// A prime that does not divide [`ADDRESS_SPACE`]: stepping by it visits every address once,
/// spreading consecutive instances over the whole space.
const ADDRESS_STRIDE: usize = 7919;
/// About one instance in this many is terminated, on a running instance's recycled addresses.
const TERMINATED_ONE_IN: u64 = 20;

impl Inventory {
    /// `n_instances` instances from `seed` (the same inventory for the same arguments): about
    /// 5 % terminated on the addresses of an earlier running instance (recycled), the rest
    /// running on distinct loopback addresses spread over 127.10.0.1–127.255.255.254 (40 % with
    /// a public address too); about 2 % Windows; `console_keys` mixed (running Linux: 70 %
    /// `cloud-init`, 8 % `legacy`, 10 % `none`, 4 % each `tampered`, `mismatch`, `cut`;
    /// terminated: half `cloud-init`, half `none`); 30 % launched with the `lab-admin` key pair
    /// and 10 % with `retired-2019`, a key pair that no longer exists. `serve_ssh` is off (no
    /// listener per instance) and `seed` seeds the stand-in host keys.
    ///
    /// # Panics
    /// Above four million instances (the loopback addresses would run out).
    pub fn generated(n_instances: usize, seed: u64) -> Inventory {
        assert!(n_instances <= ADDRESS_SPACE / 4, "at most {} generated instances", ADDRESS_SPACE / 4);
        let mut rng = SplitMix64(seed);
        let mut next_address = 0usize;
        let mut address = || {
            let k = next_address * ADDRESS_STRIDE % ADDRESS_SPACE;
            next_address += 1;
            let (net, host) = (k / 254, k % 254 + 1);
            let second = u8::try_from(FIRST_SECOND_OCTET + net / 256).unwrap_or(u8::MAX);
            Ipv4Addr::new(127, second, (net % 256) as u8, host as u8)
        };
        let id_prefix = rng.next() as u32;
        let mut instances: Vec<InstanceSpec> = Vec::with_capacity(n_instances);
        let mut running: Vec<usize> = Vec::new();
        for i in 0..n_instances {
            let roll = rng.below(100);
            let terminated = !running.is_empty() && rng.below(TERMINATED_ONE_IN) == 0;
            let (private_ip, public_ip, state) = if terminated {
                let recycled = &instances[running[rng.below(running.len() as u64) as usize]];
                (recycled.private_ip, recycled.public_ip, "terminated")
            } else {
                let public = if rng.below(10) < 4 { Some(address()) } else { None };
                (Some(address()), public, "running")
            };
            let windows = !terminated && rng.below(50) == 0;
            let console_keys = match (terminated, windows) {
                (true, _) => Some(if roll < 50 { ConsoleKeys::CloudInit } else { ConsoleKeys::Absent }),
                (false, true) => None,
                (false, false) => Some(match roll {
                    0..70 => ConsoleKeys::CloudInit,
                    70..78 => ConsoleKeys::Legacy,
                    78..88 => ConsoleKeys::Absent,
                    88..92 => ConsoleKeys::Tampered,
                    92..96 => ConsoleKeys::Mismatch,
                    _ => ConsoleKeys::Cut,
                }),
            };
            let key_name = match rng.below(10) {
                0..3 => Some("lab-admin".to_string()),
                3 => Some("retired-2019".to_string()),
                _ => None,
            };
            let role = ["web", "api", "db", "batch", "cache"][rng.below(5) as usize];
            let launched = 1_790_812_800 + rng.below(50 * 86_400); // 2026-10-01T00:00:00Z + up to 50 days
            let c = civil_time::from_unix(launched);
            if !terminated {
                running.push(i);
            }
            instances.push(InstanceSpec {
                id: format!("i-0{id_prefix:08x}{i:08x}"),
                name: Some(format!("gen-{role}-{i}")),
                tags: BTreeMap::from([("Role".to_string(), role.to_string())]),
                state: state.to_string(),
                az: format!("eu-west-1{}", ["a", "b", "c"][rng.below(3) as usize]),
                private_ip,
                public_ip,
                platform: windows.then(|| "windows".to_string()),
                instance_type: ["t3.micro", "t3.small", "m5.large", "c6g.medium", "t2.micro"][rng.below(5) as usize]
                    .to_string(),
                launch_time: format!(
                    "{}-{:02}-{:02}T{:02}:{:02}:{:02}.000Z",
                    c.year, c.month, c.day, c.hour, c.minute, c.second
                ),
                vpc_id: super::default_vpc(),
                subnet_id: super::default_subnet(),
                os_users: super::default_users(),
                instance_connect: true,
                console_output: String::new(),
                console_keys,
                key_name,
                ssm: None,
                ssm_agent_version: super::default_agent_version(),
                inbound: true,
                serial_password: None,
                security_groups: None,
                instance_profile: None,
                metadata_endpoint: super::enabled(),
                ssm_connected: true,
                shared_ami: false,
            });
        }
        Inventory {
            region: super::default_region(),
            account: super::default_account(),
            instances,
            endpoints: Vec::new(),
            key_pairs: vec![KeyPairSpec {
                name: "lab-admin".into(),
                public_key: LAB_ADMIN_PUBLIC_KEY.into(),
                id: None,
                fingerprint: None,
                create_time: super::key_pair::default_create_time(),
            }],
            security_groups: Vec::new(),
            roles: Vec::new(),
            instance_profiles: Vec::new(),
            vpc_endpoints: Vec::new(),
            route_tables: Vec::new(),
            nat_gateways: Vec::new(),
            default_host_management_role: None,
            ssm_tls: false,
            serial_console_access: true,
            serve_ssh: false,
            seed,
            session_preferences: None,
            kms_keys: Vec::new(),
        }
    }
}

/// SplitMix64 (Steele, Lea and Flood, 2014): a tiny deterministic generator, plenty for
/// picking inventory shapes.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform enough in `0..n` for n far below 2^64.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}
