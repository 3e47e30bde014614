//! Command-line types (clap derive only, no I/O). The man page and completions come from these.

use std::path::PathBuf;

use crate::terminal::escape::EscapeChar;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// The command line: global options and a subcommand.
#[derive(Debug, Parser)]
#[command(
    name = "ec2-broker",
    version,
    max_term_width = 100,
    about = "Make plain ssh, scp and rsync reach EC2 instances.",
    long_about = "Make plain ssh, scp and rsync reach EC2 instances.\n\nUse it from ~/.ssh/config:\n\n    \
                  Host i-* *.ec2\n        User ec2-user\n        ProxyCommand ec2-broker proxy %r@%h:%p\n        \
                  IdentityFile ~/.cache/ec2-broker/keys/%r@%h\n        IdentitiesOnly yes"
)]
pub struct Cli {
    /// More log output on stderr: -v info, -vv debug, -vvv trace (default: warnings only).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Append logs to this file instead of stderr (no colours).
    #[arg(long, global = true, env = "EC2_BROKER_LOG_FILE", value_name = "PATH")]
    pub log_file: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Connect stdin/stdout to an instance's SSH port (use as ssh's ProxyCommand).
    Proxy(ProxyArgs),
    /// Open an instance's serial console: the way in when its network or sshd is broken.
    #[command(long_about = CONSOLE_ABOUT)]
    Console(ConsoleArgs),
    /// Open a shell on an instance through Session Manager (no ssh, no key, no open port), or
    /// run one command there and exit with its status.
    #[command(long_about = SHELL_ABOUT)]
    Shell(ShellArgs),
    /// Copy files to or from an instance over several ssh connections at once (ranges checked
    /// with SHA-256, a broken copy resumed).
    #[command(long_about = CP_ABOUT)]
    Cp(CpArgs),
    /// Audit known_hosts files: weak, stale, conflicting and recycled entries, and host keys
    /// checked against the fingerprints EC2 instances print to their console.
    #[command(subcommand)]
    KnownHosts(KnownHostsCommand),
    /// EC2 key pairs: make an Ed25519 key (new) and import a public key into Regions (import).
    #[command(subcommand)]
    Key(KeyCommand),
    /// Assume a profile's MFA role now (asks for the code on the terminal) and cache its
    /// credentials, so ssh connections through the broker do not ask.
    #[command(long_about = LOGIN_ABOUT)]
    Login(LoginArgs),
    /// Why each route reaches an instance or not, with the evidence and the fix (exit 0: some
    /// route ssh can use works, 1: none does).
    #[command(long_about = DOCTOR_ABOUT)]
    Doctor(DoctorArgs),
    /// List instances with their addresses and the routes the APIs say look usable (none is
    /// opened).
    #[command(long_about = LS_ABOUT)]
    Ls(LsArgs),
    /// Print ssh_config Host blocks for instances, or keep them in a marked section of an
    /// Include file (--write).
    #[command(long_about = SSH_CONFIG_ABOUT)]
    SshConfig(SshConfigArgs),
    /// Print a shell completion script (bash, zsh or fish) that also completes cached host names.
    #[command(long_about = COMPLETIONS_ABOUT)]
    Completions(CompletionsArgs),
    /// Print the manual page ec2-broker(1) in roff (`ec2-broker man > ec2-broker.1`).
    Man,
    /// Print the host names and instance ids of the lookup cache, one a line (for completion
    /// scripts).
    #[command(name = "__complete-hosts", hide = true)]
    CompleteHosts,
}

const DOCTOR_ABOUT: &str = "Why each route reaches an instance or not, with the evidence and the fix.

Checks the credentials (whose they are), the instance (state, addresses, VPC), then tries every route \
the way `--route auto` would: direct (TCP to the address, with the security groups' inbound rules \
when it fails), an Instance Connect Endpoint (present in the VPC, tunnel opened), Session Manager \
(agent registered and online, instance profile, a session opened). It pushes a key with Instance \
Connect and logs in once with it over the first route that opened, telling a refused key \
(\"Permission denied\") apart from a network failure. The serial console is checked but not opened \
(account setting, instance type). Finally it reads `ssh -G HOST` for settings that keep ssh from \
using the broker or hide its errors (ControlPersist).

Exit status: 0 when some route ssh can use works, 1 when none does.";

/// Arguments of `ec2-broker doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The instance as you give it to ssh: `[USER@]HOST[:PORT]` (user and port default to what
    /// `ssh -G HOST` says).
    #[arg(value_name = "[USER@]HOST[:PORT]")]
    pub host: String,

    /// AWS account and Region.
    #[command(flatten)]
    pub aws: AwsArgs,

    /// Which instance address the direct route dials.
    #[arg(long, value_enum, default_value_t = AddressKind::Private, env = "EC2_BROKER_ADDRESS")]
    pub address: AddressKind,

    /// Remove this suffix from the host before resolving it (as the ProxyCommand does).
    #[arg(long, value_name = "SUFFIX")]
    pub strip_suffix: Option<String>,

    /// The ssh configuration file to read with `ssh -G` (default: ssh's own).
    #[arg(long, value_name = "FILE")]
    pub ssh_config: Option<PathBuf>,

    /// Do not push a key (and so do not check that sshd accepts one).
    #[arg(long)]
    pub no_push: bool,

    /// The eice route's settings.
    #[command(flatten)]
    pub eice: EiceArgs,

    /// Print JSON (schema ec2-broker.doctor/1) instead of a table.
    #[arg(long)]
    pub json: bool,
}

const LOGIN_ABOUT: &str = "Assume a profile's MFA role now and cache its credentials, so ssh connections \
through the broker do not ask for a code.

For a profile with role_arn, mfa_serial and source_profile (or credential_source = Environment), which \
aws-config cannot assume by itself. The code is read from the terminal (/dev/tty). The role's credentials \
are cached, mode 0600, in ~/.cache/ec2-broker/credentials/ until 5 minutes before they expire; until then \
every broker process uses them. A connection that finds no usable credentials asks for the code itself \
when it has a terminal, and otherwise fails with a message pointing here.";

/// Arguments of `ec2-broker login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// AWS profile and the Region STS is called in.
    #[command(flatten)]
    pub aws: AwsArgs,

    /// Ask for a code even when cached credentials are still good.
    #[arg(long)]
    pub force: bool,
}

/// `ec2-broker known-hosts …`.
#[derive(Debug, Subcommand)]
pub enum KnownHostsCommand {
    /// Report on known_hosts files (exit 0: nothing to fix, 1: findings, 2: error).
    Audit(AuditArgs),
    /// Fetch an instance's host keys through a broker route, check them against the keys its
    /// console printed at first boot, and record them under its instance id (HostKeyAlias).
    Pin(PinArgs),
}

/// `ec2-broker key …`.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Import a public key as an EC2 key pair into one or more Regions (exit 0: every Region
    /// holds the key under NAME, 1: some Region does not or the key was refused).
    #[command(long_about = KEY_IMPORT_ABOUT)]
    Import(KeyImportArgs),
    /// Make an Ed25519 key in ~/.ssh (never overwriting anything) to import as a key pair.
    #[command(long_about = KEY_NEW_ABOUT)]
    New(KeyNewArgs),
    /// Install a public key for good in a user's authorized_keys on an instance, with SSM Run
    /// Command (not added twice).
    Install(KeyInstallArgs),
    /// Remove every authorized_keys line of a user on an instance whose key has a fingerprint
    /// (never the last key line unless --force).
    Revoke(KeyRevokeArgs),
    /// Replace a key on instances: install the new one, prove a login with it, then remove the
    /// old one (a plan only, unless --yes).
    #[command(long_about = KEY_ROTATE_ABOUT)]
    Rotate(KeyRotateArgs),
}

/// Arguments of `ec2-broker key install`.
#[derive(Debug, Args)]
pub struct KeyInstallArgs {
    /// The instance: an instance id, a Name tag, tag:KEY=VALUE or an IPv4 address.
    #[arg(value_name = "HOST")]
    pub host: String,

    /// The public key file (an OpenSSH .pub line).
    #[arg(long, value_name = "FILE")]
    pub public_key: PathBuf,

    /// The OS user whose authorized_keys is edited.
    #[arg(long, value_name = "USER", default_value = "ec2-user")]
    pub user: String,

    /// AWS account and Region.
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// Arguments of `ec2-broker key revoke`.
#[derive(Debug, Args)]
pub struct KeyRevokeArgs {
    /// The instance: an instance id, a Name tag, tag:KEY=VALUE or an IPv4 address.
    #[arg(value_name = "HOST")]
    pub host: String,

    /// The key's fingerprint as `ssh-keygen -lf` prints it (SHA256:…).
    #[arg(long, value_name = "SHA256:…")]
    pub fingerprint: String,

    /// The OS user whose authorized_keys is edited.
    #[arg(long, value_name = "USER", default_value = "ec2-user")]
    pub user: String,

    /// Remove the key even when it is the user's last one (no key login is left).
    #[arg(long)]
    pub force: bool,

    /// AWS account and Region.
    #[command(flatten)]
    pub aws: AwsArgs,
}

const KEY_ROTATE_ABOUT: &str = "Replace a key on instances without locking anyone out.

For each HOST, with SSM Run Command: install the public half of --new (FILE.pub) for good, log in with the private key --new over the first route that opens (direct, eice, ssm), and only when that login is accepted remove every line holding the --old key. A host where the login is not proven keeps the old key, and the new one stays installed (ec2-broker key revoke removes it); the host is reported and the exit status is 1.

--from-audit takes the hosts from `known-hosts audit --key OLD`: every running instance launched with a key pair that holds the old key (EC2 knows only launch key pairs: name other hosts yourself).

Without --yes nothing is changed: the plan is printed. --json prints one document with \"schema\": \"ec2-broker.key-rotate/1\" (docs/output.md).";

/// Arguments of `ec2-broker key rotate`.
#[derive(Debug, Args)]
pub struct KeyRotateArgs {
    /// The instances, each `HOST[:PORT]` (the port the proof login dials; default: ssh's Port for
    /// HOST, from `ssh -G`, else 22).
    #[arg(value_name = "HOST", required_unless_present = "from_audit", conflicts_with = "from_audit")]
    pub hosts: Vec<String>,

    /// Take the hosts from `known-hosts audit --key OLD`: the running instances launched with a key
    /// pair that holds the old key (a plan only, unless --yes).
    #[arg(long)]
    pub from_audit: bool,

    /// The ssh configuration file to read the port from with `ssh -G` (default: ssh's own).
    #[arg(long, value_name = "FILE")]
    pub ssh_config: Option<PathBuf>,

    /// The key to remove: its fingerprint (SHA256:…), or a public or private key file.
    #[arg(long, value_name = "FILE|SHA256:…")]
    pub old: String,

    /// The new private key (OpenSSH format, no passphrase); its public half is FILE.pub.
    #[arg(long, value_name = "FILE")]
    pub new: PathBuf,

    /// The OS user whose authorized_keys is edited and who logs in.
    #[arg(long, value_name = "USER", default_value = "ec2-user")]
    pub user: String,

    /// Make the changes (without it, only the plan is printed).
    #[arg(long)]
    pub yes: bool,

    /// Print JSON (schema ec2-broker.key-rotate/1) instead of a table.
    #[arg(long)]
    pub json: bool,

    /// AWS account and Region.
    #[command(flatten)]
    pub aws: AwsArgs,

    /// eice route settings.
    #[command(flatten)]
    pub eice: EiceArgs,
}

const KEY_IMPORT_ABOUT: &str = "Import a public key as an EC2 key pair into one or more Regions.

The key is read and checked before any call: RSA of 2048 to 4096 bits or Ed25519, as an OpenSSH \
.pub line, an SSH2 (RFC 4716) block, or for RSA DER/PEM SubjectPublicKeyInfo. RSA under 2048 bits \
(which EC2 would take), DSA and ECDSA are refused with the reason; `ec2-broker key new` makes a key \
that fits. ImportKeyPair then runs in every Region at once. A Region where NAME exists is reported as \
\"already exists, same key\" or \"already exists, another key\" (DescribeKeyPairs tells).

The fingerprint printed is the one EC2 shows (`aws ec2 describe-key-pairs`): RSA, the MD5 of the \
DER public key, colon-separated; Ed25519, the base64 SHA-256 of the key, with its '=' padding.

--from HOST reads the keys in the authorized_keys file(s) of --user on the instance with SSM Run \
Command (a read-only script: nothing is written there; the SSM agent must be online and the identity \
needs ssm:SendCommand) and lists each by fingerprint, weak ones refused with the reason. The only \
acceptable key is imported; when there are several, --fingerprint FP chooses (without it the list is \
printed and nothing is imported).

--json prints one document with \"schema\": \"ec2-broker.key-import/1\" (docs/keys.md).

Exit status: 0 when every Region holds the key under NAME (imported now or before), 1 otherwise \
(a Region failed or holds another key under NAME, or the key was refused or not chosen before any call).";

/// Arguments of `ec2-broker key import`.
#[derive(Debug, Args)]
pub struct KeyImportArgs {
    /// The key pair's name (up to 255 ASCII characters).
    #[arg(value_name = "NAME")]
    pub name: String,

    /// The public key file (e.g. ~/.ssh/NAME.pub).
    #[arg(long, value_name = "FILE", required_unless_present = "from", conflicts_with = "from")]
    pub public_key: Option<PathBuf>,

    /// Read the key from the authorized_keys of --user on this instance (SSM Run Command, read-only).
    #[arg(long, value_name = "HOST")]
    pub from: Option<String>,

    /// With --from: the OS user whose authorized_keys is read.
    #[arg(long, value_name = "USER", default_value = "ec2-user")]
    pub user: String,

    /// With --from: the key to import, when the instance holds several (SHA256:… or EC2's fingerprint).
    #[arg(long, value_name = "FP", requires = "from")]
    pub fingerprint: Option<String>,

    /// AWS profile from ~/.aws/config (default: AWS_PROFILE, then "default").
    #[arg(long, env = "AWS_PROFILE", value_name = "NAME")]
    pub profile: Option<String>,

    /// Regions to import into, comma-separated (default: the profile's Region, or AWS_REGION; with
    /// --from, HOST is looked up in the first).
    #[arg(long = "regions", alias = "region", value_delimiter = ',', value_name = "REGION,…")]
    pub regions: Vec<String>,

    /// Print JSON (schema ec2-broker.key-import/1) instead of a table.
    #[arg(long)]
    pub json: bool,
}

const KEY_NEW_ABOUT: &str = "Make an Ed25519 key in ~/.ssh to import as an EC2 key pair.

Writes ~/.ssh/NAME (mode 0600) and ~/.ssh/NAME.pub (0644), commented NAME@ec2-broker, without a \
passphrase (add one with `ssh-keygen -p -f ~/.ssh/NAME`, or keep the key in ssh-agent with --agent). \
Nothing is ever overwritten: an existing file is an error. ~/.ssh must be yours and not writable by \
others. NAME defaults to ec2-broker-DATE; ssh's own names (id_*, config, known_hosts, …) are refused.

Then: ec2-broker key import NAME --public-key ~/.ssh/NAME.pub";

/// Arguments of `ec2-broker key new`.
#[derive(Debug, Args)]
pub struct KeyNewArgs {
    /// The file name in ~/.ssh, and the key pair name to import it as (default: ec2-broker-DATE).
    #[arg(value_name = "NAME")]
    pub name: Option<String>,

    /// Also add the key to the running ssh-agent (SSH_AUTH_SOCK).
    #[arg(long)]
    pub agent: bool,
}

/// Arguments of `ec2-broker known-hosts pin`.
#[derive(Debug, Args)]
pub struct PinArgs {
    /// The instance: an instance id, a Name tag, tag:KEY=VALUE or an IPv4 address.
    #[arg(value_name = "HOST")]
    pub host: String,

    /// AWS account and Region.
    #[command(flatten)]
    pub aws: AwsArgs,

    /// How to reach the instance's SSH port for the key scan.
    #[arg(long, value_enum, default_value_t = RouteArg::Direct)]
    pub route: RouteArg,

    /// The SSH port.
    #[arg(long, default_value_t = 22)]
    pub port: u16,

    /// Which instance address the direct route dials.
    #[arg(long, value_enum, default_value_t = AddressKind::Private)]
    pub address: AddressKind,

    /// The known_hosts file to write [default: ~/.ssh/known_hosts].
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// Also pin keys the console cannot vouch for (it shows no host keys, e.g. after a reboot).
    #[arg(long)]
    pub accept_unverified: bool,

    /// The eice route's settings.
    #[command(flatten)]
    pub eice: EiceArgs,

    /// Seconds to wait for each key exchange.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub connect_timeout: u64,

    /// Print JSON (schema ec2-broker.known-hosts-pin/1) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `ec2-broker known-hosts audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// known_hosts files (default: ~/.ssh/known_hosts and /etc/ssh/ssh_known_hosts, those that exist).
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// AWS account and Region whose instances the addresses are looked up in.
    #[command(flatten)]
    pub aws: AwsArgs,

    /// Only check the files themselves: no AWS calls.
    #[arg(long)]
    pub offline: bool,

    /// Print JSON (schema ec2-broker.known-hosts-audit/1) instead of a table.
    #[arg(long)]
    pub json: bool,

    /// Do not read console output (one GetConsoleOutput per instance found): only addresses are
    /// checked, and keys are neither verified nor found mismatching.
    #[arg(long)]
    pub no_console: bool,

    /// A user key (a .pub file or SHA256:… fingerprint): list the key pairs that hold it and every
    /// instance launched with one of them (where a lost or leaked key still opens a door).
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,

    /// Remove duplicate, conflicting, terminated and recycled entries (and serial endpoints with
    /// the wrong key); the old file is kept beside it as FILE.ec2-broker-backup.YYYYMMDDTHHMMSSZ.
    #[arg(long)]
    pub fix: bool,
}

const CONSOLE_ABOUT: &str = "Open an instance's serial console: the way in when its network or sshd is broken.

Checks that serial access is enabled for the account and Region, that the instance is running and of a \
Nitro-based type, pushes a fresh key with SendSerialConsoleSSHPublicKey, connects to the Region's \
serial console endpoint (its host key must have the fingerprint AWS publishes), and hands you the \
instance's ttyS0. Log in with an OS user's password: SSH keys do not apply at the console.

At the start of a line: ~. leaves, ~? lists the escapes, ~~ sends a ~ (another escape character: -e).

One session per instance: a new one can start about 30 s after the last one closed (the broker waits \
and retries). The session is a terminal, not a byte stream: scp and rsync cannot run over it. To use \
your own ssh client instead, see `ec2-broker proxy --route serial`.";

/// Where the serial console answers, for a Region the broker does not know or for private DNS.
#[derive(Debug, Args, Clone, Default)]
pub struct SerialEndpointArgs {
    /// serial: connect to HOST or HOST:PORT instead of the Region's published endpoint.
    #[arg(long, value_name = "HOST[:PORT]", env = "EC2_BROKER_SERIAL_ENDPOINT")]
    pub serial_endpoint: Option<String>,

    /// serial: the SHA256 fingerprint the endpoint's host key must have (default: the one AWS
    /// publishes for the Region).
    #[arg(long, value_name = "SHA256:…", env = "EC2_BROKER_SERIAL_FINGERPRINT")]
    pub serial_fingerprint: Option<String>,
}

/// Arguments of `ec2-broker console`.
#[derive(Debug, Args)]
pub struct ConsoleArgs {
    /// The instance: an instance id, a Name tag, tag:KEY=VALUE or an IPv4 address (a trailing
    /// .ec2 or .REGION is understood).
    #[arg(value_name = "HOST")]
    pub host: String,

    /// AWS account and Region.
    #[command(flatten)]
    pub aws: AwsArgs,

    /// Endpoint overrides.
    #[command(flatten)]
    pub endpoint: SerialEndpointArgs,

    /// Also write everything the console prints to this file (a transcript).
    #[arg(long, value_name = "FILE")]
    pub log_session: Option<PathBuf>,

    /// When another serial session holds the instance, wait up to this many seconds for it to
    /// close before giving up.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub wait: u64,

    /// Seconds to wait for the endpoint to connect and log in.
    #[arg(long, default_value_t = 15, value_name = "SECONDS")]
    pub connect_timeout: u64,

    /// The escape character, as ssh's -e: one character, ^ and a letter (e.g. ^]), or none.
    #[arg(short = 'e', long, default_value = "~", value_name = "CHAR")]
    pub escape_char: EscapeChar,
}

const SHELL_ABOUT: &str = "Open a shell on an instance through Session Manager, or run one command there.

Needs only the instance's SSM agent: no key, no sshd, no open port. Without COMMAND it starts the \
account's default shell session (the SSM-SessionManagerRunShell preferences apply: Run As user, KMS \
encryption). With `-- COMMAND...` it runs the command with AWS-StartInteractiveCommand when stdin is a \
terminal, else with AWS-StartNonInteractiveCommand: stdout and stderr arrive apart and byte for byte, and \
ec2-broker exits with the command's status. Such a command gets no stdin from Session Manager: to move \
bulk data use ssh or scp with --route ssm. When the preferences require KMS encryption, a data key is \
generated with kms:GenerateDataKey and every keystroke and output byte is encrypted. Session Manager, \
not the client, picks the OS user (see --user).";

const CP_ABOUT: &str = "Copy files to or from an instance over several ssh connections at once.

One side is HOST:PATH (or USER@HOST:PATH), the other a local path, as with scp. A large file is cut \
into ranges moved over --streams ssh connections at once, each its own session on the route ssh_config \
picks (through a Session Manager agent every session has its own pace, so four streams move about \
four times as much). Each range and then the whole file is checked with SHA-256. The copy goes to \
DST.ec2-broker-part beside the destination, which becomes DST only once the whole file's checksum \
matches; an interrupted copy leaves a journal (DST.ec2-broker-journal) and the same command run \
again sends only the ranges still missing. Files under 4 MiB go over one stream. The instance needs \
only sh, dd, head and sha256sum.";

/// Arguments of `ec2-broker cp`.
#[derive(Debug, Args)]
pub struct CpArgs {
    /// What to copy: a local path or `[USER@]HOST:PATH`.
    #[arg(value_name = "SRC")]
    pub source: String,

    /// Where to: a local path or `[USER@]HOST:PATH` (exactly one side is remote). An existing
    /// directory receives the source under its own name.
    #[arg(value_name = "DST")]
    pub destination: String,

    /// Copy a directory and everything in it (files keep their permission bits).
    #[arg(short = 'r', long)]
    pub recursive: bool,

    /// How many ssh connections move a large file at once (1–64).
    #[arg(long, default_value_t = 4, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub streams: u32,

    /// Size of one range, a multiple of 64 KiB: with K, M or G (1024-based), e.g. 1M (default:
    /// about a quarter of a stream's share, from 256 KiB to 64 MiB). Given, a file is split even
    /// under 4 MiB.
    #[arg(long, value_name = "SIZE")]
    pub range_size: Option<String>,

    /// The ssh configuration file ssh reads (ssh -F).
    #[arg(short = 'F', value_name = "FILE")]
    pub ssh_config: Option<PathBuf>,

    /// The remote user (ssh -l).
    #[arg(short = 'l', value_name = "USER")]
    pub login: Option<String>,

    /// The identity file ssh offers (ssh -i).
    #[arg(short = 'i', value_name = "FILE")]
    pub identity: Option<PathBuf>,

    /// The ssh program to run.
    #[arg(long, default_value = "ssh", env = "EC2_BROKER_SSH", value_name = "PROGRAM")]
    pub ssh: PathBuf,
}

/// Arguments of `ec2-broker shell`.
#[derive(Debug, Args)]
pub struct ShellArgs {
    /// The instance: an instance id, a Name tag, tag:KEY=VALUE or an IPv4 address (a trailing
    /// .ec2 or .REGION is understood).
    // Explicit indexes: the completion script rebuilds the host argument, which would otherwise
    // move it after COMMAND.
    #[arg(value_name = "HOST", index = 1)]
    pub host: String,

    /// The OS user you expect. Session Manager picks the user (the IAM principal's
    /// SSMSessionRunAs tag, else the preferences' Run As user, else ssm-user): a user it would
    /// not pick is refused with the reason.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,

    /// AWS account and Region.
    #[command(flatten)]
    pub aws: AwsArgs,

    /// Keep trying this many seconds to resume a dropped Session Manager connection before giving
    /// up on the session.
    #[arg(long, default_value_t = 600, value_name = "SECONDS", env = "EC2_BROKER_SSM_RESUME_TIMEOUT")]
    pub ssm_resume_timeout: u64,

    /// The escape character on a terminal, as ssh's -e: one character, ^ and a letter (e.g.
    /// ^]), or none. At the start of a line: ~. leaves, ~? lists the escapes, ~~ sends a ~.
    #[arg(short = 'e', long, default_value = "~", value_name = "CHAR")]
    pub escape_char: EscapeChar,

    /// The command to run instead of a shell, after `--` (run by `sh -c` on a terminal, split
    /// shell-style and run without a shell otherwise).
    #[arg(last = true, value_name = "COMMAND", index = 2)]
    pub command: Vec<String>,
}

/// AWS account and Region selection, shared by every command that calls AWS.
#[derive(Debug, Args, Clone, Default)]
pub struct AwsArgs {
    /// AWS profile from ~/.aws/config (default: AWS_PROFILE, then "default").
    #[arg(long, env = "AWS_PROFILE", value_name = "NAME")]
    pub profile: Option<String>,

    /// AWS Region (default: a Region suffix in the host, then AWS_REGION, then the profile's).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
}

/// Arguments of `ec2-broker proxy`.
#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// The instance, as ssh passes it (`%r@%h:%p`).
    #[arg(
        value_name = "[USER@]HOST[:PORT]",
        help = "The instance: [USER@]HOST[:PORT], where HOST is an instance id, a Name tag (wildcards \
                allowed), tag:KEY=VALUE, or an IPv4 address. A trailing .ec2 or .REGION is understood"
    )]
    pub host: String,

    /// AWS account and Region.
    #[command(flatten)]
    pub aws: AwsArgs,

    /// Which instance address the direct route dials.
    #[arg(long, value_enum, default_value_t = AddressKind::Private, env = "EC2_BROKER_ADDRESS")]
    pub address: AddressKind,

    /// How to reach the instance (auto: try the routes of --try-routes in turn, starting with the
    /// one that worked last time for this instance).
    #[arg(long, value_enum, default_value_t = RouteArg::Auto, env = "EC2_BROKER_ROUTE")]
    pub route: RouteArg,

    /// Do not push a key with EC2 Instance Connect (your own key already works).
    #[arg(long)]
    pub no_push: bool,

    /// How ssh gets the short-lived private key.
    #[arg(long, value_enum, default_value_t = KeyDelivery::File, env = "EC2_BROKER_KEY_DELIVERY")]
    pub key_delivery: KeyDelivery,

    /// How the short-lived public key reaches the instance, in order: run-command after
    /// instance-connect is the fallback when the instance refuses the pushed key (auto route) or
    /// Instance Connect refuses the push (IAM, user); run-command alone places it that way every
    /// time.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_values_t = [KeyPlacement::InstanceConnect, KeyPlacement::RunCommand],
        env = "EC2_BROKER_KEY_PLACEMENT",
        value_name = "HOW,…"
    )]
    pub key_placement: Vec<KeyPlacement>,

    /// Push a key for every connection: never reuse the key pushed for the same instance, user
    /// and route moments ago (also EC2_BROKER_KEY_REUSE=0, or key-reuse = off in the settings).
    #[arg(long)]
    pub no_key_reuse: bool,

    /// EC2_BROKER_KEY_REUSE: 0, false, no or off is --no-key-reuse.
    #[arg(
        long = "key-reuse",
        env = "EC2_BROKER_KEY_REUSE",
        hide = true,
        value_parser = clap::builder::BoolishValueParser::new(),
        default_value_t = true,
        action = clap::ArgAction::Set,
        value_name = "BOOL"
    )]
    pub key_reuse: bool,

    /// Directory for key files; ssh_config's IdentityFile must point at DIR/%r@%h.
    /// [default: ~/.cache/ec2-broker/keys]
    #[arg(long, env = "EC2_BROKER_KEY_DIR", value_name = "DIR")]
    pub key_dir: Option<PathBuf>,

    /// Remove this suffix from the host before resolving it (for per-account ssh_config blocks
    /// such as `Host *.prod`); `.ec2` is always removed.
    #[arg(long, value_name = "SUFFIX")]
    pub strip_suffix: Option<String>,

    /// OS user when the host names none (ssh always passes %r).
    #[arg(long, default_value = "ec2-user", value_name = "USER")]
    pub user: String,

    /// Seconds to wait for the TCP connection to the instance.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub connect_timeout: u64,

    /// The eice route's settings.
    #[command(flatten)]
    pub eice: EiceArgs,

    /// ssm route: keep trying this many seconds to resume a dropped Session Manager connection
    /// before giving up on the session.
    #[arg(long, default_value_t = 600, value_name = "SECONDS", env = "EC2_BROKER_SSM_RESUME_TIMEOUT")]
    pub ssm_resume_timeout: u64,

    /// serial route: endpoint overrides.
    #[command(flatten)]
    pub serial: SerialEndpointArgs,

    /// auto route: the routes to try, in order (leave one out to never use it).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_values_t = [RouteArg::Direct, RouteArg::Eice, RouteArg::Ssm],
        env = "EC2_BROKER_TRY_ROUTES",
        value_name = "ROUTE,…"
    )]
    pub try_routes: Vec<RouteArg>,
}

/// The eice route's settings, the same for every command that opens routes.
#[derive(Debug, Clone, Default, Args)]
pub struct EiceArgs {
    /// eice route: the Instance Connect Endpoint to use (default: the one in the instance's subnet,
    /// else in its VPC).
    #[arg(long, value_name = "EICE_ID", env = "EC2_BROKER_EICE_ID")]
    pub eice_id: Option<String>,

    /// eice route: open the TCP connection to HOST:PORT instead of the endpoint's DNS name (a proxy,
    /// private DNS, a local double). The URL, its signature and the TLS name stay the endpoint's.
    #[arg(long, value_name = "HOST:PORT", env = "EC2_BROKER_EICE_CONNECT_TO")]
    pub eice_connect_to: Option<String>,

    /// eice route: ask for a tunnel of at most this many seconds (1-3600); needed when an IAM policy
    /// caps ec2-instance-connect:maxTunnelDuration.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u32).range(1..=3600))]
    pub eice_max_duration: Option<u32>,
}

pub use crate::target::instance::AddressKind;

/// `--address private|public`: the domain type stays free of clap (doctor and route read it).
impl ValueEnum for AddressKind {
    fn value_variants<'a>() -> &'a [Self] {
        &[AddressKind::Private, AddressKind::Public]
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(match self {
            AddressKind::Private => clap::builder::PossibleValue::new("private")
                .help("The primary private IPv4 address (needs a VPN, peering or a bastion-free network path)"),
            AddressKind::Public => clap::builder::PossibleValue::new("public").help("The public IPv4 address"),
        })
    }
}

/// Route selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RouteArg {
    /// TCP straight to the instance's address.
    Direct,
    /// A Session Manager tunnel: needs only the SSM agent's outbound connection, no inbound network.
    Ssm,
    /// An EC2 Instance Connect Endpoint tunnel to the instance's private address.
    Eice,
    /// The serial console's SSH endpoint, for your own ssh as `User INSTANCE.port0` (a terminal,
    /// not a byte stream: no scp, rsync or forwarding).
    Serial,
    /// Try direct, then an Instance Connect Endpoint, then Session Manager (see --try-routes),
    /// keeping the first whose sshd answers.
    Auto,
}

pub use crate::keys::holder::KeyDelivery;
pub use crate::keys::placement::Placement as KeyPlacement;

/// `--key-placement instance-connect,run-command` (the domain type stays free of clap).
impl ValueEnum for KeyPlacement {
    fn value_variants<'a>() -> &'a [Self] {
        &[KeyPlacement::InstanceConnect, KeyPlacement::RunCommand]
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(match self {
            KeyPlacement::InstanceConnect => clap::builder::PossibleValue::new("instance-connect")
                .help("EC2 Instance Connect's SendSSHPublicKey (needs the ec2-instance-connect package)"),
            KeyPlacement::RunCommand => clap::builder::PossibleValue::new("run-command")
                .help("SSM Run Command appends it to authorized_keys as root, with an expiry (needs ssm:SendCommand)"),
        })
    }
}

/// `--key-delivery file|agent` (the domain type stays free of clap).
impl ValueEnum for KeyDelivery {
    fn value_variants<'a>() -> &'a [Self] {
        &[KeyDelivery::File, KeyDelivery::Agent]
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(match self {
            KeyDelivery::File => clap::builder::PossibleValue::new("file")
                .help("A 0600 file in a 0700 directory, named for ssh_config's `IdentityFile DIR/%r@%h`"),
            KeyDelivery::Agent => clap::builder::PossibleValue::new("agent")
                .help("The running ssh-agent (SSH_AUTH_SOCK), with a lifetime constraint; nothing on disk"),
        })
    }
}

const LS_ABOUT: &str = "List instances with their addresses and the routes the APIs say look usable.

Nothing is opened: the ROUTES column comes from what the APIs say. push: the instance runs Linux and is \
running, so EC2 Instance Connect can push a key; direct: it is running and has an address; eice: an \
Instance Connect Endpoint serves its VPC (DescribeInstanceConnectEndpoints); ssm: its SSM agent is Online \
(DescribeInstanceInformation); serial: serial console access is enabled in the Region and its type is \
Nitro-based (GetSerialConsoleAccessStatus, DescribeInstanceTypes). A route marked with ? could not be \
checked (the call was refused): `ec2-broker doctor HOST` tells more.

Regions and profiles are listed concurrently, every listing paginated. The lookups of the running \
instances (by Name and by id) go into the broker's lookup cache, so the next ssh skips DescribeInstances.

--json prints one document with \"schema\": \"ec2-broker.ls/1\" (described in docs/output.md).

Exit status: 0 when every Region was listed, 1 when some could not be (the others are still printed).";

/// Which accounts and Regions to list (`ls`, `ssh-config`).
#[derive(Debug, Args, Clone, Default)]
pub struct ScopeArgs {
    /// AWS profile from ~/.aws/config; repeat for several accounts (default: AWS_PROFILE, then
    /// "default").
    #[arg(long = "profile", env = "AWS_PROFILE", value_name = "NAME")]
    pub profiles: Vec<String>,

    /// Regions to list, comma-separated (default: the profile's Region, or AWS_REGION).
    #[arg(long = "regions", alias = "region", value_delimiter = ',', value_name = "REGION,…")]
    pub regions: Vec<String>,

    /// Every Region enabled for the account (DescribeRegions).
    #[arg(long, conflicts_with = "regions")]
    pub all_regions: bool,
}

/// Arguments of `ec2-broker ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Show only instances matching one of these: an instance id, a Name (wildcards * and ?),
    /// tag:KEY=VALUE or an IPv4 address.
    #[arg(value_name = "FILTER")]
    pub filters: Vec<String>,

    /// Accounts and Regions.
    #[command(flatten)]
    pub scope: ScopeArgs,

    /// Print JSON (schema ec2-broker.ls/1) instead of a table.
    #[arg(long)]
    pub json: bool,
}

const SSH_CONFIG_ABOUT: &str = "Print ssh_config Host blocks for instances, or keep them in a marked section \
of an Include file.

One Host block per instance that is not terminated: the alias is its Name tag in lower case (or its \
instance id), made unique when several instances share it (NAME.REGION, then NAME.ID) and reported on \
stderr; HostName and HostKeyAlias are the instance id, so known_hosts entries survive address changes; \
ProxyCommand runs `ec2-broker proxy --profile P --region R %r@%h:%p`; IdentityFile names the key the \
proxy pushes (~/.cache/ec2-broker/keys/%r@%h, written as an absolute path because ssh reads `~` from the \
password database); User is --user, Administrator for Windows (no key push there), else ec2-user.

--write FILE keeps the blocks between marker lines in FILE (one section per set of profiles), leaving \
everything else in the file as it is; the file is replaced atomically, keeping its mode and owner (a \
symlink is followed and kept). Running it again with nothing changed leaves the file untouched. The \
changes are shown on stderr as a diff. It refuses to write ~/.ssh/config itself: add `Include FILE` at the \
top of ~/.ssh/config instead (before any Host line).";

/// Arguments of `ec2-broker ssh-config`.
#[derive(Debug, Args)]
pub struct SshConfigArgs {
    /// Accounts and Regions.
    #[command(flatten)]
    pub scope: ScopeArgs,

    /// Only instances matching one of these (as `ls` FILTER: an id, a Name with wildcards,
    /// tag:KEY=VALUE or an address); repeat for several.
    #[arg(long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,

    /// The OS user of every block (default: Administrator on Windows, else ec2-user).
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,

    /// Keep the blocks in a marked section of this file (an Include file, never ~/.ssh/config).
    #[arg(long, value_name = "FILE")]
    pub write: Option<PathBuf>,

    /// Start every alias with the profile's name and a dot (`prod.web-1`): for several accounts
    /// in one file.
    #[arg(long)]
    pub prefix_profile: bool,

    /// The broker as ProxyCommand should run it (default: `ec2-broker` when that is this program
    /// on PATH, else this program's full path).
    #[arg(long, value_name = "PATH")]
    pub broker: Option<PathBuf>,
}

const COMPLETIONS_ABOUT: &str = "Print a shell completion script, generated from the same definitions as --help.

Host arguments (proxy, console, doctor, known-hosts pin) complete from the names and instance ids in the \
broker's lookup cache (~/.cache/ec2-broker/instances.json, filled by ssh connections and by `ec2-broker ls`).

  bash: ec2-broker completions bash > ~/.local/share/bash-completion/completions/ec2-broker
  zsh:  ec2-broker completions zsh > \"${fpath[1]}/_ec2-broker\"
  fish: ec2-broker completions fish > ~/.config/fish/completions/ec2-broker.fish";

/// Arguments of `ec2-broker completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: CompletionShell,
}

/// Shells `completions` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    /// GNU bash (4.0 or later).
    Bash,
    /// Z shell.
    Zsh,
    /// fish.
    Fish,
}

/// `command` with every `env = …` setting dropped whose variable `lookup` finds set but empty,
/// so that an empty export (`EC2_BROKER_LOG_FILE=`) means "unset", as it does for ssh and the
/// AWS CLI, instead of "a value is required". `lookup` is `std::env::var_os` in `main`.
pub fn ignoring_empty_env(
    command: clap::Command,
    lookup: &dyn Fn(&std::ffi::OsStr) -> Option<std::ffi::OsString>,
) -> clap::Command {
    let command = command.mut_args(|arg| {
        let empty = arg.get_env().and_then(lookup).is_some_and(|v| v.is_empty());
        if empty { arg.env(None) } else { arg }
    });
    command.mut_subcommands(|sub| ignoring_empty_env(sub, lookup))
}

#[cfg(test)]
mod empty_env_tests {
    use std::ffi::{OsStr, OsString};

    use clap::{CommandFactory, FromArgMatches};

    use super::*;

    // See: issue 14 (an empty exported setting made every command fail).
    #[test]
    fn empty_environment_values_count_as_unset() {
        let env = |name: &OsStr| -> Option<OsString> {
            match name.to_str()? {
                "EC2_BROKER_LOG_FILE" | "EC2_BROKER_ROUTE" | "EC2_BROKER_KEY_DIR" => Some(OsString::new()),
                "EC2_BROKER_SSM_RESUME_TIMEOUT" => Some("30".into()),
                _ => None,
            }
        };
        let argv = ["ec2-broker", "proxy", "web-1"];
        let cmd = ignoring_empty_env(Cli::command(), &env);
        let proxy = cmd.find_subcommand("proxy").expect("proxy subcommand");
        let env_of = |id: &str| proxy.get_arguments().find(|a| a.get_id() == id).and_then(|a| a.get_env());
        assert_eq!(env_of("route"), None, "empty EC2_BROKER_ROUTE is ignored");
        assert_eq!(env_of("key_dir"), None);
        assert_eq!(env_of("ssm_resume_timeout"), Some(OsStr::new("EC2_BROKER_SSM_RESUME_TIMEOUT")), "set ones stay");
        assert_eq!(cmd.get_arguments().find(|a| a.get_id() == "log_file").and_then(|a| a.get_env()), None);
        let cli = Cli::from_arg_matches(&cmd.try_get_matches_from(argv).expect("parses")).expect("valid");
        assert!(cli.log_file.is_none());
    }
}
