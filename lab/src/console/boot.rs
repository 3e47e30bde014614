//! The boot text around the host key block: kernel and systemd lines, cloud-init's stages and
//! `ci-info:` tables, the getty banner and login prompt (Amazon Linux 2023 with cloud-init
//! 22.2.2, or Amazon Linux 2 with cloud-init 19.3 for the legacy block), and EC2Launch's lines
//! for Windows. Made up in the lab from the shapes of real consoles, not copied from one.

use super::fingerprint::KeyLine;
use crate::civil_time;

/// What the boot text needs to know about the instance and its first boot.
#[derive(Debug, Clone)]
pub(crate) struct Boot<'a> {
    /// The short host name, `ip-127-0-1-10`.
    pub(crate) host: String,
    /// The primary private IPv4 (the `ci-info` network table shows it).
    pub(crate) private_ip: String,
    /// `t3.micro`, … (the DMI line shows it).
    pub(crate) instance_type: &'a str,
    /// The default OS user cloud-init reports authorized keys for.
    pub(crate) user: &'a str,
    /// The launch key pair's public key line, if the instance has one.
    pub(crate) authorized_key: Option<&'a str>,
    /// Power-on, Unix seconds.
    pub(crate) start: u64,
    /// Amazon Linux 2 with cloud-init 19.3 (the `ec2:` era) instead of Amazon Linux 2023.
    pub(crate) legacy: bool,
}

/// Kernel lines are stamped with seconds since power-on, six decimals.
fn kernel_line(micros: u64, text: &str) -> String {
    format!("[{:>5}.{:06}] {text}", micros / 1_000_000, micros % 1_000_000)
}

impl Boot<'_> {
    fn kernel_version(&self) -> &'static str {
        if self.legacy { "4.14.355-275.572.amzn2.x86_64" } else { "6.1.115-126.197.amzn2023.x86_64" }
    }

    fn cloud_init_version(&self) -> &'static str {
        if self.legacy { "19.3-46.amzn2" } else { "22.2.2" }
    }

    /// `Fri, 20 Nov 2026 09:00:07 +0000`, as cloud-init stamps its stages.
    fn rfc2822(&self, after_micros: u64) -> String {
        let secs = self.start + after_micros / 1_000_000;
        let c = civil_time::from_unix(secs);
        format!(
            "{}, {:02} {} {} {:02}:{:02}:{:02} +0000",
            civil_time::weekday_abbrev(secs),
            c.day,
            civil_time::month_abbrev(c.month),
            c.year,
            c.hour,
            c.minute,
            c.second
        )
    }

    fn stage(&self, micros: u64, pid: u32, stage: &str) -> String {
        let up = format!("{}.{:02}", micros / 1_000_000, micros % 1_000_000 / 10_000);
        let v = self.cloud_init_version();
        let at = self.rfc2822(micros);
        kernel_line(
            micros,
            &format!("cloud-init[{pid}]: Cloud-init v. {v} running '{stage}' at {at}. Up {up} seconds."),
        )
    }

    /// From power-on to cloud-init's `init` stage and its network table.
    pub(crate) fn kernel_and_init(&self) -> Vec<String> {
        let kernel = self.kernel_version();
        let mut out = if self.legacy {
            vec![
                kernel_line(
                    0,
                    &format!(
                        "Linux version {kernel} (mockbuild@ip-10-0-33-201) (gcc version 7.3.1 20180712 (Red Hat 7.3.1-17) (GCC)) #1 SMP Tue Oct 15 18:21:45 UTC 2024"
                    ),
                ),
                kernel_line(
                    0,
                    &format!(
                        "Command line: BOOT_IMAGE=/boot/vmlinuz-{kernel} root=UUID=0c4d9a2e-7b31-4f86-a5d2-3e9b8c1f6a40 ro console=tty0 console=ttyS0,115200n8 net.ifnames=0 biosdevname=0 nvme_core.io_timeout=4294967295 rd.emergency=poweroff rd.shell=0"
                    ),
                ),
            ]
        } else {
            vec![
                kernel_line(
                    0,
                    &format!(
                        "Linux version {kernel} (mockbuild@ip-10-0-58-12) (gcc (GCC) 11.4.1 20230605 (Red Hat 11.4.1-2), GNU ld version 2.39-6.amzn2023.0.10) #1 SMP PREEMPT_DYNAMIC Tue Nov  5 21:35:25 UTC 2024"
                    ),
                ),
                kernel_line(
                    0,
                    &format!(
                        "Command line: BOOT_IMAGE=(hd0,gpt1)/boot/vmlinuz-{kernel} root=UUID=5e1a9c3d-0b7f-4d2e-9a51-6c8e2f4b1d07 ro console=tty0 console=ttyS0,115200n8 nvme_core.io_timeout=4294967295 rd.emergency=poweroff rd.shell=0 selinux=1 security=selinux quiet"
                    ),
                ),
            ]
        };
        out.extend([
            kernel_line(0, "BIOS-provided physical RAM map:"),
            kernel_line(0, "BIOS-e820: [mem 0x0000000000000000-0x000000000009ffff] usable"),
            kernel_line(0, &format!("DMI: Amazon EC2 {}/, BIOS 1.0 10/16/2017", self.instance_type)),
            kernel_line(0, "Hypervisor detected: KVM"),
            kernel_line(201_815, "Calibrating delay loop (skipped) preset value.. 4999.99 BogoMIPS (lpj=9999980)"),
            kernel_line(812_440, "nvme nvme0: pci function 0000:00:04.0"),
            kernel_line(845_233, "ena 0000:00:05.0: Elastic Network Adapter (ENA) v2.13.0g"),
            kernel_line(1_402_117, "Run /init as init process"),
        ]);
        if self.legacy {
            out.push(kernel_line(2_118_201, "systemd[1]: systemd 219 running in system mode. (+PAM +AUDIT +SELINUX +IMA -APPARMOR +SMACK +SYSVINIT +UTMP +LIBCRYPTSETUP +GCRYPT +GNUTLS +ACL +XZ +LZ4 -SECCOMP +BLKID +ELFUTILS +KMOD +IDN)"));
        } else {
            out.push(kernel_line(2_118_201, "systemd[1]: systemd 252.23-2.amzn2023 running in system mode (+PAM +AUDIT +SELINUX -APPARMOR +IMA +SMACK +SECCOMP +GCRYPT +GNUTLS +OPENSSL +ACL +BLKID +CURL +ELFUTILS)"));
        }
        out.extend([
            kernel_line(2_120_019, "systemd[1]: Detected virtualization amazon."),
            kernel_line(2_121_342, "systemd[1]: Detected architecture x86-64."),
            "[  OK  ] Started systemd-journald.service - Journal Service.".to_string(),
            "[  OK  ] Reached target network-pre.target - Preparation for Network.".to_string(),
            self.stage(5_004_512, 1601, "init-local"),
            "[  OK  ] Started systemd-networkd.service - Network Configuration.".to_string(),
            self.stage(6_511_930, 1688, "init"),
        ]);
        let ci = |micros: u64, text: &str| kernel_line(micros, &format!("cloud-init[1688]: ci-info: {text}"));
        let ip = format!("{:<15}", self.private_ip);
        out.extend([
            ci(
                6_532_811,
                "++++++++++++++++++++++++++++++++++++++Net device info+++++++++++++++++++++++++++++++++++++++",
            ),
            ci(6_533_102, "+--------+------+-----------------+---------------+--------+-------------------+"),
            ci(6_533_390, "| Device |  Up  |     Address     |      Mask     | Scope  |     Hw-Address    |"),
            ci(6_533_610, "+--------+------+-----------------+---------------+--------+-------------------+"),
            ci(6_533_990, &format!("|  ens5  | True | {ip} | 255.255.255.0 | global | 02:4f:3a:1c:9e:77 |")),
            ci(6_534_401, "|   lo   | True |    127.0.0.1    |   255.0.0.0   |  host  |         .         |"),
            ci(6_534_702, "+--------+------+-----------------+---------------+--------+-------------------+"),
        ]);
        out
    }

    /// The `modules:final` stage up to the host key block: the authorized-keys report.
    pub(crate) fn final_stage(&self) -> Vec<String> {
        let mut out = vec![self.stage(8_850_117, 2102, "modules:final")];
        let Some(key) = self.authorized_key.and_then(KeyLine::parse) else {
            out.push(format!("ci-info: no authorized SSH keys fingerprints found for user {}.", self.user));
            return out;
        };
        // cloud-init's table shows the SHA-256 of the key blob as colon-separated hex.
        let hex: Vec<String> = sha256_hex(&key.blob());
        let fingerprint = hex.join(":");
        let comment = key.comment();
        let kind = self.authorized_key.and_then(|k| k.split_whitespace().next()).unwrap_or_default();
        let widths = [kind.len().max(7), fingerprint.len().max(20), 7, comment.len().max(7)];
        let rule = format!("+{}+", widths.iter().map(|w| "-".repeat(w + 2)).collect::<Vec<_>>().join("+"));
        let row = |cells: [&str; 4]| {
            let padded: Vec<String> = cells.iter().zip(widths).map(|(c, w)| format!(" {c:^w$} ")).collect();
            format!("ci-info: |{}|", padded.join("|"))
        };
        let title = format!("Authorized keys from /home/{0}/.ssh/authorized_keys for user {0}", self.user);
        let width = rule.len().saturating_sub(title.len()) / 2;
        out.extend([
            format!("ci-info: {}{title}{}", "+".repeat(width), "+".repeat(width)),
            format!("ci-info: {rule}"),
            row(["Keytype", "Fingerprint (sha256)", "Options", "Comment"]),
            format!("ci-info: {rule}"),
            row([kind, &fingerprint, "-", &comment]),
            format!("ci-info: {rule}"),
        ]);
        out
    }

    /// After the host key block: the end of cloud-init, the getty's banner and login prompt.
    pub(crate) fn finished(&self) -> Vec<String> {
        let v = self.cloud_init_version();
        let at = self.rfc2822(9_412_908);
        let mut out = vec![
            kernel_line(
                9_412_908,
                &format!(
                    "cloud-init[2102]: Cloud-init v. {v} finished at {at}. Datasource DataSourceEc2.  Up 9.41 seconds"
                ),
            ),
            "[  OK  ] Finished cloud-final.service - Execute cloud user/final scripts.".to_string(),
            "[  OK  ] Reached target cloud-init.target - Cloud-init target.".to_string(),
        ];
        out.extend(self.banner());
        out
    }

    /// The getty's banner and login prompt (the last line, with its trailing space).
    pub(crate) fn banner(&self) -> Vec<String> {
        let (release, suffix) =
            if self.legacy { ("Amazon Linux 2", "") } else { ("Amazon Linux 2023.6.20241111", " (-)") };
        vec![
            String::new(),
            release.to_string(),
            format!("Kernel {} on an x86_64{suffix}", self.kernel_version()),
            String::new(),
            format!("{} login: ", self.host),
        ]
    }

    /// Lines logged long after boot (a user-data script's and systemd's), before which a
    /// second, forged block can be printed.
    pub(crate) fn later(&self) -> Vec<String> {
        vec![
            kernel_line(
                602_113_407,
                "cloud-init[3021]: + /var/lib/cloud/instance/scripts/part-001: re-announcing host keys",
            ),
            kernel_line(602_190_002, "systemd[1]: Reloading sshd.service - OpenSSH server daemon..."),
        ]
    }
}

/// EC2Launch v2's console lines on Windows (no host key block of any kind, spec §6.3).
pub(crate) fn windows(start: u64) -> Vec<String> {
    let stamp = |after: u64| {
        let c = civil_time::from_unix(start + after);
        format!("{}/{:02}/{:02} {:02}:{:02}:{:02}Z", c.year, c.month, c.day, c.hour, c.minute, c.second)
    };
    [
        (72, "Windows sysprep configuration complete."),
        (100, "Message: Waiting for meta-data accessibility..."),
        (101, "Message: Meta-data is now available."),
        (104, "AMI Origin Version: 2024.11.13"),
        (104, "AMI Origin Name: Windows_Server-2022-English-Full-Base"),
        (105, "OS: Microsoft Windows NT 10.0.20348"),
        (105, "OsProductName: Windows Server 2022 Datacenter"),
        (106, "Language: en-US"),
        (106, "TimeZone: UTC"),
        (107, "Launch: EC2 Launch v2"),
        (110, "Message: Windows is Ready to use"),
    ]
    .into_iter()
    .map(|(after, text)| format!("{}: {text}", stamp(after)))
    .collect()
}

fn sha256_hex(data: &[u8]) -> Vec<String> {
    use sha2::Digest;
    sha2::Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}
