//! Issue 19, `ec2-broker cp`: ranges over several ssh connections (real ssh, real sshd), over
//! the direct route and through the SSM double with its agent's pacing on, `-r`, resume after a
//! session ended mid-copy (the lab's `ssm-end` fault), a changed source, clear errors.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use ec2_lab::{Disconnect, DisconnectKind, Inventory};

use crate::assert_ok;
use crate::harness::{Output, World, broker, random_file, remote_dir, sha256_file};

/// `ec2-broker cp -F <config> ARGS`.
fn cp(world: &World, args: &[&str]) -> Output {
    let mut cmd = world.command(broker());
    cmd.arg("cp").arg("-F").arg(&world.ssh_config).args(args);
    world.run(cmd, Duration::from_secs(180))
}

fn ssm_world() -> World {
    World::with(Inventory::demo(), "--route ssm")
}

/// Nothing but the destination: no part file, no journal.
fn assert_clean(dir: &Path) {
    for entry in fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.contains(".ec2-broker-"), "{name} left behind in {}", dir.display());
    }
}

/// How many ranges the broker log says were verified and saved.
fn ranges_saved(world: &World) -> usize {
    fs::read_to_string(&world.broker_log).unwrap_or_default().matches("range verified and saved").count()
}

#[test]
fn download_and_upload_are_byte_exact_over_four_streams_on_the_direct_route() {
    let world = World::new();
    let remote = remote_dir(&world);
    let size = (1 << 20) + 13;
    random_file(&remote.join("src.bin"), size, 0xc0b1);
    let back = world.path("back.bin");
    let src = format!("web-1:{}/src.bin", remote.display());
    assert_ok!(cp(&world, &["--streams", "4", "--range-size", "64K", &src, &back.display().to_string()]));
    assert_eq!(sha256_file(&back), sha256_file(&remote.join("src.bin")));
    assert_eq!(ranges_saved(&world), 17, "17 ranges of 64 KiB");

    // Into an existing directory: the source's own name, its mode kept.
    fs::set_permissions(&back, fs::Permissions::from_mode(0o640)).unwrap();
    let up = format!("web-1:{}", remote.display());
    assert_ok!(cp(&world, &["--range-size", "128K", &back.display().to_string(), &up]));
    let landed = remote.join("back.bin");
    assert_eq!(sha256_file(&landed), sha256_file(&back));
    assert_eq!(fs::metadata(&landed).unwrap().permissions().mode() & 0o777, 0o640);
    assert_clean(&remote);
    assert_clean(world.dir.path());
}

#[test]
fn through_paced_ssm_every_stream_is_its_own_session_and_bytes_are_exact() {
    let world = ssm_world();
    let remote = remote_dir(&world);
    random_file(&remote.join("log.bin"), 256 << 10, 0x5513);
    let back = world.path("log.bin");
    let src = format!("db-1:{}/log.bin", remote.display());
    assert_ok!(cp(&world, &["--streams", "4", "--range-size", "64K", &src, &back.display().to_string()]));
    assert_eq!(sha256_file(&back), sha256_file(&remote.join("log.bin")));
    let sessions = world.lab.ssm_sessions();
    assert_eq!(sessions.len(), 5, "one listing, then four streams: {sessions:#?}");
    let streams = sessions.iter().filter(|s| s.bytes_from_port >= 64 << 10).count();
    assert_eq!(streams, 4, "each stream carried its own range: {sessions:#?}");

    let dest = format!("db-1:{}/up.bin", remote.display());
    assert_ok!(cp(&world, &["--streams", "4", "--range-size", "64K", &back.display().to_string(), &dest]));
    assert_eq!(sha256_file(&remote.join("up.bin")), sha256_file(&back));
    assert_clean(&remote);
}

#[test]
fn small_files_go_over_one_stream_and_directories_need_r() {
    let world = World::new();
    let remote = remote_dir(&world);
    let tree = remote.join("tree");
    fs::create_dir_all(tree.join("sub/deeper")).unwrap();
    random_file(&tree.join("a.bin"), 70_000, 1);
    random_file(&tree.join("sub/b b.txt"), 10, 2);
    random_file(&tree.join("sub/deeper/c"), 0, 3);
    fs::set_permissions(tree.join("a.bin"), fs::Permissions::from_mode(0o754)).unwrap();
    let src = format!("web-1:{}", tree.display());
    let out = cp(&world, &[&src, &world.path("got").display().to_string()]);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(out.stderr.contains("is a directory: add -r"), "{}", out.describe());

    assert_ok!(cp(&world, &["-r", &src, &world.path("got").display().to_string()]));
    let got = world.path("got");
    for rel in ["a.bin", "sub/b b.txt", "sub/deeper/c"] {
        assert_eq!(sha256_file(&got.join(rel)), sha256_file(&tree.join(rel)), "{rel}");
    }
    assert_eq!(fs::metadata(got.join("a.bin")).unwrap().permissions().mode() & 0o777, 0o754);
    assert_eq!(ranges_saved(&world), 2, "one range each for the two non-empty files");

    // And back up, under a new name.
    let dest = format!("web-1:{}/tree2", remote.display());
    assert_ok!(cp(&world, &["-r", &got.display().to_string(), &dest]));
    for rel in ["a.bin", "sub/b b.txt", "sub/deeper/c"] {
        assert_eq!(sha256_file(&remote.join("tree2").join(rel)), sha256_file(&tree.join(rel)), "{rel}");
    }
    assert_eq!(fs::metadata(remote.join("tree2/a.bin")).unwrap().permissions().mode() & 0o777, 0o754);
}

/// The first `calls` sessions (listing, preparing) take harmless disconnects; one stream's
/// session then ends for good after `bytes`.
fn end_one_stream_after(world: &World, calls: usize, bytes: u64) {
    world.lab.state().set_ssm_faults(|f| {
        for _ in 0..calls {
            f.disconnects.push_back(Disconnect::after_bytes(u64::MAX, DisconnectKind::Drop));
        }
        f.disconnects.push_back(Disconnect::after_bytes(bytes, DisconnectKind::End));
    });
}

#[test]
fn a_copy_whose_stream_died_resumes_without_resending_saved_ranges() {
    let world = ssm_world();
    let remote = remote_dir(&world);
    let source = remote.join("bundle.bin");
    random_file(&source, 1 << 20, 0x2e5);
    let dst = world.path("bundle.bin");
    let src = format!("db-1:{}", source.display());
    let args = ["--streams", "4", "--range-size", "64K", &src, &dst.display().to_string()];
    end_one_stream_after(&world, 1, 150_000);
    let out = cp(&world, &args);
    assert_eq!(out.code(), Some(1), "{}\n{:#?}", out.describe(), world.lab.ssm_sessions());
    assert!(out.stderr.contains("run the same command again"), "{}", out.describe());
    assert!(!dst.exists(), "the destination is never half written");
    let journal = fs::read_to_string(world.path("bundle.bin.ec2-broker-journal")).expect("journal");
    let part = world.path("bundle.bin.ec2-broker-part");
    assert_eq!(fs::metadata(&part).unwrap().permissions().mode() & 0o777, 0o600);
    let first = ranges_saved(&world);
    assert!((12..16).contains(&first), "three streams finished, one did not: {first}\n{journal}");

    let before = world.lab.ssm_sessions().len();
    let out = cp(&world, &args);
    assert_ok!(out);
    assert!(out.stderr.contains(&format!("resuming: {first} of 16 ranges")), "{}", out.describe());
    assert_eq!(sha256_file(&dst), sha256_file(&source));
    assert_eq!(ranges_saved(&world) - first, 16 - first, "only the missing ranges were sent again");
    let rerun: u64 = world.lab.ssm_sessions()[before..].iter().map(|s| s.bytes_from_port).sum();
    let missing = (16 - first) as u64 * (64 << 10);
    assert!(rerun < missing + (256 << 10), "{rerun} bytes came through the agent for {missing} missing");
    assert_clean(world.dir.path());
}

#[test]
fn a_changed_source_starts_again_and_errors_are_clear() {
    let world = ssm_world();
    let remote = remote_dir(&world);
    let source = remote.join("data.bin");
    random_file(&source, 1 << 20, 7);
    let dst = world.path("data.bin");
    let src = format!("db-1:{}", source.display());
    let args = ["--streams", "4", "--range-size", "64K", &src, &dst.display().to_string()];
    end_one_stream_after(&world, 1, 150_000);
    assert_eq!(cp(&world, &args).code(), Some(1));
    random_file(&source, 1 << 20, 8);
    let old = fs::metadata(&source).unwrap().modified().unwrap() - Duration::from_secs(3600);
    fs::File::options().write(true).open(&source).unwrap().set_modified(old).unwrap();
    let out = cp(&world, &args);
    assert_ok!(out);
    assert!(out.stderr.contains("the source changed since the earlier copy"), "{}", out.describe());
    assert_eq!(sha256_file(&dst), sha256_file(&source));

    let missing = format!("db-1:{}/nope.bin", remote.display());
    let out = cp(&world, &[&missing, &world.path("nope.bin").display().to_string()]);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(out.stderr.contains("nope.bin: no such file or directory on the instance"), "{}", out.describe());
    assert!(!world.path("nope.bin").exists());
    let out = cp(&world, &["a", "b"]);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(out.stderr.contains("neither side is HOST:PATH"), "{}", out.describe());
    let out = cp(&world, &["--range-size", "1000", &src, "x"]);
    assert!(out.stderr.contains("multiple of 64K"), "{}", out.describe());
}

#[test]
fn an_upload_whose_stream_died_resumes_without_resending_saved_ranges() {
    let world = ssm_world();
    let remote = remote_dir(&world);
    let local = world.path("up.bin");
    random_file(&local, 1 << 20, 0x0b5);
    let dest = format!("db-1:{}/up.bin", remote.display());
    let args = ["--streams", "4", "--range-size", "64K", &local.display().to_string(), &dest];
    // Sessions before the streams: the destination's kind, the part file's creation.
    end_one_stream_after(&world, 2, 150_000);
    let out = cp(&world, &args);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(out.stderr.contains("run the same command again"), "{}", out.describe());
    assert!(!remote.join("up.bin").exists(), "the destination is never half written");
    let first = ranges_saved(&world);
    assert!((12..16).contains(&first), "three streams finished, one did not: {first}");
    // Whichever stream died (the last range's too), the part file has the file's length.
    let part = fs::metadata(remote.join("up.bin.ec2-broker-part")).expect("the part file stays");
    assert_eq!(part.len(), 1 << 20);

    let out = cp(&world, &args);
    assert_ok!(out);
    assert!(out.stderr.contains(&format!("resuming: {first} of 16 ranges")), "{}", out.describe());
    assert_eq!(sha256_file(&remote.join("up.bin")), sha256_file(&local));
    assert_eq!(ranges_saved(&world) - first, 16 - first, "only the missing ranges were sent again");
    assert_clean(&remote);
}
