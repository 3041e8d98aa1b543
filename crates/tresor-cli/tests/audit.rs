//! The audit log end to end: real mounts of the real `tresor` binary write
//! it, `tresor audit` verifies and replays it (docs/AUDIT.md).

mod common;

use std::fs::{self, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn json_lines(out: &std::process::Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn logs(s: &Scratch) -> Vec<PathBuf> {
    let mut v: Vec<_> = fs::read_dir(s.path("backing/tresor.audit")).unwrap().map(|e| e.unwrap().path()).collect();
    v.sort();
    v
}

/// `tresor audit verify --json` of every log of the volume.
fn verify(s: &Scratch, extra: &[&str]) -> (Option<i32>, Vec<Value>) {
    let out =
        s.tresor().args(["audit", "verify", "--json", "--volume"]).arg(s.path("backing")).args(extra).output().unwrap();
    let mut lines = json_lines(&out);
    let summary = lines.pop().expect("a summary line");
    assert_eq!(summary["summary"], true, "verify ends with one summary: {summary}");
    assert_eq!(summary["ok"], (out.status.code() == Some(0)), "{summary}");
    (out.status.code(), lines)
}

/// Waits until every mount log ends with its unmount record (the daemon
/// writes it as it exits, just after `fusermount3 -u` returns).
fn wait_closed(s: &Scratch) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, reports) = verify(s, &[]);
        if reports.iter().all(|r| r["closed"] == true) || Instant::now() > deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn show(s: &Scratch, who: &str, args: &[&str]) -> Vec<Value> {
    let out = run_ok(
        s.tresor()
            .args(["audit", "show", "--json", "--volume"])
            .arg(s.path("backing"))
            .arg("-i")
            .arg(s.path(&format!("{who}.id")))
            .arg("--passfile")
            .arg(s.path("pass"))
            .args(args),
    );
    json_lines(&out)
}

fn find<'a>(records: &'a [Value], op: &str, path: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| r["op"] == op && r["path"] == path).collect()
}

/// The backing file of a plaintext file: node ids are backing inode numbers.
fn backing_file(s: &Scratch, plain: &Path) -> PathBuf {
    let ino = fs::metadata(plain).unwrap().ino();
    let mut stack = vec![s.path("backing")];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            if e.metadata().unwrap().ino() == ino {
                return e.path();
            }
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
        }
    }
    panic!("no backing file for {}", plain.display());
}

#[test]
fn a_workload_through_two_mounts_is_recorded_verified_and_replayed() {
    let s = Scratch::new("audit");
    s.identity("alice");
    let bob = s.identity("bob");
    // Without the steward in the root's policy, so that bob's file is his
    // alone and alice's attempt to open it is a denial to record.
    s.init("backing", "alice", &["--no-steward-default"]);
    run_ok(
        s.tresor()
            .args(["member", "add"])
            .arg(s.path("backing"))
            .arg(&bob)
            .args(["--name", "bob", "-i"])
            .arg(s.path("alice.id"))
            .arg("--passfile")
            .arg(s.path("pass")),
    );
    {
        let a = s.mount("backing", "mnt-a", "alice", &[]);
        let b = s.mount("backing", "mnt-b", "bob", &[]);
        let (am, bm) = (&a.path, &b.path);
        fs::create_dir(am.join("study")).unwrap();
        fs::write(am.join("study/cohort.csv"), b"patient,outcome\n").unwrap();
        assert_eq!(fs::read(am.join("study/cohort.csv")).unwrap(), b"patient,outcome\n");
        fs::rename(am.join("study/cohort.csv"), am.join("study/final.csv")).unwrap();
        fs::set_permissions(am.join("study/final.csv"), std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
        // Bob's file: Alice is not a recipient, so her open is denied.
        fs::write(bm.join("bobs.txt"), b"for bob only").unwrap();
        assert_eq!(fs::read(am.join("bobs.txt")).unwrap_err().kind(), ErrorKind::PermissionDenied);
        // A damaged block: EIO on read.
        fs::write(am.join("scan.bin"), vec![7u8; 3 * 4096]).unwrap();
        let bf = OpenOptions::new().read(true).write(true).open(backing_file(&s, &am.join("scan.bin"))).unwrap();
        let at = bf.metadata().unwrap().len() / 2;
        let mut byte = [0u8];
        bf.read_exact_at(&mut byte, at).unwrap();
        bf.write_all_at(&[byte[0] ^ 1], at).unwrap();
        let f = OpenOptions::new().read(true).custom_flags(libc::O_DIRECT).open(am.join("scan.bin")).unwrap();
        let mut buf = vec![0u8; 3 * 4096];
        assert_eq!(f.read_at(&mut buf, 0).unwrap_err().raw_os_error(), Some(libc::EIO));
        drop(f);
        fs::remove_file(am.join("study/final.csv")).unwrap();

        // The log directory is reserved: not listed, not reachable, and a
        // plaintext entry of that name is a different (encrypted) entry.
        let names: Vec<_> = fs::read_dir(am).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(!names.iter().any(|n| n == "tresor.audit"), "{names:?}");
        assert_eq!(fs::metadata(am.join("tresor.audit")).unwrap_err().kind(), ErrorKind::NotFound);
        fs::create_dir(am.join("tresor.audit")).unwrap();
        fs::write(am.join("tresor.audit/x.log"), b"not a log").unwrap();
    }
    wait_closed(&s);
    // Session log of `member add`, two mount logs; none holds a plaintext name.
    let files = logs(&s);
    assert_eq!(files.len(), 3, "{files:?}");
    for f in &files {
        let bytes = fs::read(f).unwrap();
        for name in [&b"cohort"[..], b"final.csv", b"bobs.txt", b"study", b"x.log"] {
            assert!(!bytes.windows(name.len()).any(|w| w == name), "{} shows a plaintext name", f.display());
        }
    }

    let (code, reports) = verify(&s, &[]);
    assert_eq!(code, Some(0), "{reports:?}");
    assert!(
        reports.iter().all(|r| r["ok"] == true && r["closed"] == true && r["warnings"] == serde_json::json!([])),
        "{reports:#?}"
    );

    let all = show(&s, "alice", &[]);
    assert!(all.iter().any(|r| r["op"] == "member-add" && r["subject"] == "bob" && r["member_name"] == "alice"));
    assert_eq!(all.iter().filter(|r| r["op"] == "mount").count(), 2);
    assert_eq!(all.iter().filter(|r| r["op"] == "unmount").count(), 2);
    assert_eq!(find(&all, "mkdir", "study").len(), 1);
    let create = find(&all, "create", "study/cohort.csv");
    assert_eq!(create.len(), 1);
    assert_eq!(create[0]["recipients"], serde_json::json!(["alice"]));
    assert_eq!(create[0]["result"], "ok");
    let releases = find(&all, "release", "study/cohort.csv");
    assert!(releases.iter().any(|r| r["bytes_written"] == "16" && r["bytes_read"] == "0"), "{releases:?}");
    assert!(releases.iter().any(|r| r["bytes_read"] == "16"), "{releases:?}");
    assert!(releases.iter().all(|r| r["pid"] != 0 && r["process"] != ""), "the opener is named: {releases:?}");
    let rename = find(&all, "rename", "study/cohort.csv");
    assert_eq!(rename[0]["new_path"], "study/final.csv");
    assert_eq!(find(&all, "setattr", "study/final.csv")[0]["setattr"]["mode"], 0o640);
    let denied = find(&all, "open", "bobs.txt");
    assert!(denied.iter().any(|r| r["result"] == "EACCES" && r["member_name"] == "alice"), "{denied:?}");
    let eio = find(&all, "read", "scan.bin");
    assert!(eio.iter().any(|r| r["result"] == "EIO" && r["offset"] == "0"), "{eio:?}");
    assert_eq!(find(&all, "unlink", "study/final.csv").len(), 1);
    assert!(all.iter().all(|r| r["uid"] == 0 && !r["process"].as_str().unwrap().is_empty() || r["pid"] == 0));

    // Filters.
    let bobs = show(&s, "bob", &["--member", "bob", "--op", "create"]);
    assert_eq!(bobs.iter().map(|r| r["path"].as_str().unwrap()).collect::<Vec<_>>(), ["bobs.txt"]);
    let study = show(&s, "alice", &["--path", "study"]);
    assert!(!study.is_empty() && study.iter().all(|r| r["path"].as_str().unwrap().starts_with("study")));

    // who: renamed to and from, denied attempts included.
    let out = run_ok(
        s.tresor()
            .args(["audit", "who", "study/final.csv", "--json", "--volume"])
            .arg(s.path("backing"))
            .arg("-i")
            .arg(s.path("alice.id"))
            .arg("--passfile")
            .arg(s.path("pass")),
    );
    let ops: Vec<String> = json_lines(&out).iter().map(|r| r["op"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ops, ["rename", "setattr", "unlink"]);

    // access: who could read bobs.txt, and final.csv before it was removed.
    let access = |path: &str, at: &str| {
        let out = s
            .tresor()
            .args(["audit", "access", path, "--at", at, "--json", "--volume"])
            .arg(s.path("backing"))
            .arg("-i")
            .arg(s.path("alice.id"))
            .arg("--passfile")
            .arg(s.path("pass"))
            .output()
            .unwrap();
        json_lines(&out).remove(0)
    };
    let now = format!("{}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 1);
    assert_eq!(access("bobs.txt", &now)["readers"][0]["name"], "bob");
    let rename_time = rename[0]["time"].as_str().unwrap();
    assert_eq!(access("study/final.csv", rename_time)["readers"][0]["name"], "alice");
    assert!(access("study/final.csv", &now)["unknown"].is_string(), "unlinked by then");
}

#[test]
fn a_mount_killed_mid_workload_leaves_a_log_that_verifies_to_its_last_record() {
    let s = Scratch::new("audit-kill");
    s.identity("alice");
    s.init("backing", "alice", &[]);
    let mut daemon = s.mount_cmd("backing", "mnt", "alice");
    let mut daemon = daemon.args(["-f", "-o", "audit_checkpoint_records=50"]).stderr(Stdio::null()).spawn().unwrap();
    let mnt = s.path("mnt");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !is_mountpoint(&mnt) {
        assert!(Instant::now() < deadline, "the mount did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    let writer = {
        let mnt = mnt.clone();
        std::thread::spawn(move || {
            let mut n = 0u32;
            // Until the daemon dies under us.
            while fs::write(mnt.join(format!("f{n}")), b"data").is_ok() && n < 100_000 {
                n += 1;
            }
            n
        })
    };
    std::thread::sleep(Duration::from_millis(700));
    daemon.kill().unwrap(); // SIGKILL
    daemon.wait().unwrap();
    let written = writer.join().unwrap();
    unmount(&mnt);
    assert!(written > 20, "the workload ran ({written} files)");

    let (code, reports) = verify(&s, &[]);
    assert_eq!(code, Some(0), "{reports:?}");
    let r = &reports[0];
    assert_eq!(r["closed"], false);
    let last = r["last_seq"].as_u64().unwrap();
    // mount, checkpoint, then create + release per file written (the last
    // one may have died between the two).
    assert!(last >= 2 * written as u64, "{r}");
    assert!(r["verified_up_to"].as_u64().unwrap() >= 50, "{r}");
    let warnings = r["warnings"].to_string();
    assert!(warnings.contains("unsigned tail") || warnings.contains("no unmount record"), "{warnings}");

    // The human-readable verdict says the same.
    let out = s.tresor().args(["audit", "verify", "--volume"]).arg(s.path("backing")).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("verified:") && text.contains("warning:"), "{text}");
}

#[test]
fn a_full_audit_filesystem_fails_the_mount_closed() {
    let s = Scratch::new("audit-full");
    s.identity("alice");
    s.init("backing", "alice", &[]);
    let small = s.path("small");
    fs::create_dir(&small).unwrap();
    let ok = Command::new("mount").args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"]).arg(&small).status().unwrap();
    assert!(ok.success(), "mounting a tmpfs (needs root)");
    struct Umount(PathBuf);
    impl Drop for Umount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _small = Umount(small.clone());
    // The steward names the log's place (the volume requires its log).
    run_ok(
        s.tresor()
            .args(["member", "audit-policy"])
            .arg(s.path("backing"))
            .arg("--dir")
            .arg(&small)
            .arg("-i")
            .arg(s.path("alice.id"))
            .arg("--passfile")
            .arg(s.path("pass")),
    );
    let m = s.mount(
        "backing",
        "mnt",
        "alice",
        &["audit_dir=".to_owned() + small.to_str().unwrap()].iter().map(String::as_str).collect::<Vec<_>>(),
    );
    fs::write(m.path.join("before"), b"recorded").unwrap();
    // Fill the log's file system.
    let filler = small.join("filler");
    let mut f = fs::File::create(&filler).unwrap();
    let block = vec![0u8; 4096];
    while std::io::Write::write_all(&mut f, &block).is_ok() {}
    drop(f);

    // The log's last page may still hold a few records; then it is full.
    let refused = (0..1000).find_map(|i| fs::write(m.path.join(format!("after{i}")), b"x").err());
    let err = refused.expect("writes went on with a full audit log");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    // Closed for good, even once space is back: the log has a hole now.
    fs::remove_file(&filler).unwrap();
    assert_eq!(fs::create_dir(m.path.join("dir")).unwrap_err().raw_os_error(), Some(libc::EIO));
    assert_eq!(fs::remove_file(m.path.join("before")).unwrap_err().raw_os_error(), Some(libc::EIO));
    // Reading does not need a record.
    assert_eq!(fs::metadata(m.path.join("before")).unwrap().len(), 8);
    drop(m);

    // What was written verifies (cut back to whole records).
    let log = fs::read_dir(&small).unwrap().next().unwrap().unwrap().path();
    let out =
        s.tresor().args(["audit", "verify", "--json", "--volume"]).arg(s.path("backing")).arg(&log).output().unwrap();
    let r = &json_lines(&out)[0];
    assert_eq!(r["ok"], true, "{r}");
}

#[test]
fn checkpoints_anchored_by_the_mount_expose_a_cut_tail_and_a_deleted_log() {
    let s = Scratch::new("audit-anchor");
    s.identity("alice");
    s.init("backing", "alice", &[]);
    let anchors = s.path("anchors.txt");
    let script = s.path("anchor.sh");
    fs::write(&script, format!("#!/bin/sh\ncat >> {}\n", anchors.display())).unwrap();
    fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let opts = format!("audit_anchor_cmd={},audit_checkpoint_records=10", script.display());
    {
        let m = s.mount("backing", "mnt", "alice", &[&opts]);
        for i in 0..12 {
            fs::write(m.path.join(format!("f{i}")), b"x").unwrap();
        }
    }
    wait_closed(&s);
    // The anchor command runs on its own thread, after the record it anchors
    // is written: wait for the line of the final checkpoint.
    let (_, reports) = verify(&s, &[]);
    let last = format!(" {} ", reports[0]["last_seq"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !fs::read_to_string(&anchors).unwrap_or_default().contains(&last) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let anchors_arg = ["--anchors", anchors.to_str().unwrap()];
    let (code, reports) = verify(&s, &anchors_arg);
    assert_eq!(code, Some(0), "{reports:?}");
    let checkpoints = fs::read_to_string(&anchors).unwrap().lines().count() as u64;
    assert!(checkpoints >= 4, "mount, every 10 records, unmount: {checkpoints}");
    assert_eq!(reports[0]["anchors_matched"], checkpoints);

    // Cut the log just after its second checkpoint (seq 12): alone it still
    // looks like a mount that was killed; the anchors prove the cut.
    let log = logs(&s).remove(0);
    let bytes = fs::read(&log).unwrap();
    let mut end = 10; // file header
    for _ in 0..13 {
        end += 4 + u32::from_be_bytes(bytes[end..end + 4].try_into().unwrap()) as usize;
    }
    fs::write(&log, &bytes[..end]).unwrap();
    let (code, _) = verify(&s, &[]);
    assert_eq!(code, Some(0), "without anchors a cut at a checkpoint cannot be told from a crash");
    let (code, reports) = verify(&s, &anchors_arg);
    assert_eq!(code, Some(1));
    assert_eq!(reports[0]["problem"]["diagnosis"], "cut-off", "{reports:?}");
    assert_eq!(reports[0]["problem"]["seq"], 13);

    // Delete the log: the anchors name a mount whose log is gone.
    fs::remove_file(&log).unwrap();
    let out =
        s.tresor().args(["audit", "verify", "--volume"]).arg(s.path("backing")).args(anchors_arg).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("TAMPERED: removed") && text.contains("missing"), "{text}");

    // Usage errors exit 2, with what to do next.
    let stray = s.path("stray.log");
    fs::write(&stray, b"TRSRAUDT\0\x01").unwrap();
    let out = s.tresor().args(["audit", "verify"]).arg(&stray).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--volume"), "{out:?}");
    let out = s.tresor().args(["audit", "access", "f0", "--at", "someday", "--volume"]).arg(s.path("backing")).output();
    assert_eq!(out.unwrap().status.code(), Some(2));
}

#[test]
fn a_mount_refuses_a_planted_symlink_or_fifo_as_its_log_directory() {
    let s = Scratch::new("audit-planted");
    s.identity("alice");
    s.init("backing", "alice", &[]);
    let dir = s.path("backing/tresor.audit");
    let outside = s.path("outside");
    fs::create_dir(&outside).unwrap();
    let _ = fs::remove_dir_all(&dir);
    std::os::unix::fs::symlink(&outside, &dir).unwrap();
    let out = s.mount_cmd("backing", "mnt", "alice").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("symlink"), "{stderr}");
    assert!(!is_mountpoint(&s.path("mnt")));
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0, "nothing written where the symlink points");

    let mkfifo = |p: &Path| {
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    };
    fs::remove_file(&dir).unwrap();
    mkfifo(&dir);
    let out = s.mount_cmd("backing", "mnt", "alice").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // (Refused today by the mount's own create_dir_all with EEXIST before the
    // writer's clearer "not a directory"; either way: no mount, no hang.)
    assert!(!out.status.success() && stderr.contains("audit log directory"), "{stderr}");
    assert!(!is_mountpoint(&s.path("mnt")));

    // Nor does verify hang on a FIFO or follow a symlink planted among the
    // logs: each is a log that cannot be read, and the run says so.
    fs::remove_file(&dir).unwrap();
    fs::create_dir(&dir).unwrap();
    mkfifo(&dir.join("x.log"));
    std::os::unix::fs::symlink("/etc/passwd", dir.join("y.log")).unwrap();
    let out = s.tresor().args(["audit", "verify", "--volume"]).arg(s.path("backing")).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("x.log: TAMPERED: cannot read") && text.contains("y.log: TAMPERED: cannot read"), "{text}");
    assert!(text.contains("summary: 2 log files") && text.contains("TAMPERED: 2 of 2"), "{text}");
}

fn lines_of(out: &std::process::Output) -> Vec<Value> {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    json_lines(out)
}

/// `tresor audit ARGS -i alice` on the volume, its output.
fn audit_as(s: &Scratch, who: &str, args: &[&str]) -> std::process::Output {
    s.tresor()
        .arg("audit")
        .args(args)
        .arg("--volume")
        .arg(s.path("backing"))
        .arg("-i")
        .arg(s.path(&format!("{who}.id")))
        .arg("--passfile")
        .arg(s.path("pass"))
        .output()
        .unwrap()
}

#[test]
fn auditors_ask_by_result_process_host_pid_several_ops_and_relative_times_in_json_csv_and_reports() {
    let s = Scratch::new("audit-ask");
    s.identity("alice");
    s.init("backing", "alice", &[]);
    let dangerous = "a\u{200B}b\u{202E}txt.exe\u{1b}[2J";
    {
        let m = s.mount("backing", "mnt", "alice", &[]);
        fs::write(m.path.join("kept.csv"), b"1,2\n").unwrap();
        fs::write(m.path.join(dangerous), b"x").unwrap();
        fs::create_dir(m.path.join("d")).unwrap();
        fs::write(m.path.join("d/x"), b"x").unwrap();
        assert!(fs::remove_dir(m.path.join("d")).is_err(), "not empty");
        let cat = Command::new("cat").arg(m.path.join("kept.csv")).output().unwrap();
        assert!(cat.status.success());
        // `who` takes a path through the mount as well as a volume path.
        let through = lines_of(&audit_as(&s, "alice", &["who", "--json", m.path.join("kept.csv").to_str().unwrap()]));
        let relative = lines_of(&audit_as(&s, "alice", &["who", "--json", "kept.csv"]));
        assert!(!through.is_empty() && through == relative, "{through:?} vs {relative:?}");
    }
    wait_closed(&s);
    let lines = |out: &std::process::Output| {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        json_lines(out)
    };
    let all = lines(&audit_as(&s, "alice", &["show", "--json", "--since", "-1h", "--until", "now"]));
    assert!(all.len() >= 6, "{all:?}");
    assert!(all.iter().all(|r| r["time_ns"].is_string()), "nanoseconds as strings: never rounded");
    assert!(lines(&audit_as(&s, "alice", &["show", "--json", "--until", "yesterday"])).is_empty());

    let failed = lines(&audit_as(&s, "alice", &["show", "--json", "--failed"]));
    assert_eq!(
        failed.iter().map(|r| (r["op"].as_str().unwrap(), r["result"].as_str().unwrap())).collect::<Vec<_>>(),
        [("rmdir", "ENOTEMPTY")]
    );
    let by_cat = lines(&audit_as(&s, "alice", &["show", "--json", "--comm", "cat", "--op", "open,release"]));
    assert_eq!(by_cat.iter().map(|r| r["op"].as_str().unwrap()).collect::<Vec<_>>(), ["open", "release"]);
    let pid = by_cat[0]["pid"].to_string();
    let host = by_cat[0]["host"].as_str().unwrap().to_owned();
    assert_eq!(lines(&audit_as(&s, "alice", &["show", "--json", "--pid", &pid, "--host", &host])).len(), 2);
    assert!(lines(&audit_as(&s, "alice", &["show", "--json", "--host", "elsewhere"])).is_empty());
    let ops = lines(&audit_as(&s, "alice", &["show", "--json", "--op", "create", "--op", "rmdir"]));
    assert_eq!(ops.len(), 4, "three creates and the failed rmdir: {ops:?}");

    // Any name: exact in JSON, escaped on a terminal, quoted in CSV.
    assert!(ops.iter().any(|r| r["path"] == dangerous), "{ops:?}");
    let table = audit_as(&s, "alice", &["show", "--op", "create"]);
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(text.contains(r"a\u{200b}b\u{202e}txt.exe\u{1b}[2J") && !text.contains('\u{1b}'), "{text}");
    let csv = String::from_utf8(audit_as(&s, "alice", &["show", "--csv", "--op", "create"]).stdout).unwrap();
    assert!(csv.starts_with("time,time_ns,host,mount,seq,member,") && csv.lines().count() == 4, "{csv}");

    // aureport-like summaries.
    let report = lines(&audit_as(&s, "alice", &["report", "--json"]));
    let row = |section: &str, key: &str| {
        report
            .iter()
            .find(|r| r["section"] == section && r["key"] == key)
            .unwrap_or_else(|| panic!("{report:?}"))
            .clone()
    };
    assert_eq!(row("failure", "ENOTEMPTY")["records"], 1);
    assert_eq!(row("file", "kept.csv")["failed"], 0);
    assert!(row("member", "alice")["records"].as_u64().unwrap() >= 6);
    let csv = String::from_utf8(audit_as(&s, "alice", &["report", "--csv"]).stdout).unwrap();
    assert!(csv.starts_with("section,key,records,failed,denied,first,last"), "{csv}");

    // A reader that goes away early is no error.
    let mut child = s
        .tresor()
        .args(["audit", "show", "--volume"])
        .arg(s.path("backing"))
        .arg("-i")
        .arg(s.path("alice.id"))
        .arg("--passfile")
        .arg(s.path("pass"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // `| head -0`
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success() && !String::from_utf8_lossy(&out.stderr).contains("panicked"), "{out:?}");
}

#[test]
fn prune_removes_only_sealed_verified_old_segments_and_is_itself_audited() {
    let s = Scratch::new("audit-prune");
    s.identity("alice");
    s.init("backing", "alice", &[]);
    for name in ["f", "g"] {
        let m = s.mount("backing", "mnt", "alice", &[]);
        fs::write(m.path.join(name), b"x").unwrap();
    }
    wait_closed(&s);
    let before = logs(&s);
    assert_eq!(before.len(), 2, "two mounts' logs");
    // Nothing ends before yesterday.
    let out = audit_as(&s, "alice", &["prune", "--before", "yesterday"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing to prune"), "{out:?}");
    assert_eq!(logs(&s), before);
    // A tampered log keeps all of its evidence; the rest goes, recorded first.
    let mount_log = before.iter().max_by_key(|p| fs::metadata(p).unwrap().len()).unwrap().clone();
    let saved = fs::read(&mount_log).unwrap();
    let mut bad = saved.clone();
    let n = bad.len();
    bad[n - 100] ^= 1;
    fs::write(&mount_log, &bad).unwrap();
    let out = audit_as(&s, "alice", &["prune", "--before", "now"]);
    assert!(out.status.success(), "{out:?}");
    let after = logs(&s);
    assert!(after.contains(&mount_log), "a tampered log is never pruned");
    fs::write(&mount_log, &saved).unwrap();
    let (code, reports) = verify(&s, &[]);
    assert_eq!(code, Some(0), "what stays verifies, the prune's own log included: {reports:?}");
    let recorded = show(&s, "alice", &["--op", "prune"]);
    assert_eq!(recorded.len(), 1, "one prune record per removed log: {recorded:?}");
    assert_eq!(after.len(), 2, "the kept mount log and the prune's session log");
}

#[test]
fn verify_with_a_state_file_reads_only_what_was_added_and_still_finds_a_cut() {
    let s = Scratch::new("audit-state");
    s.identity("alice");
    s.init("backing", "alice", &[]);
    {
        let m = s.mount("backing", "mnt", "alice", &[]);
        fs::write(m.path.join("f"), b"x").unwrap();
    }
    wait_closed(&s);
    let state = s.path("verified.state");
    let summary = |out: std::process::Output| {
        let lines = json_lines(&out);
        (out.status.code(), lines.last().unwrap().clone())
    };
    let run = || {
        s.tresor()
            .args(["audit", "verify", "--json", "--state"])
            .arg(&state)
            .arg("--volume")
            .arg(s.path("backing"))
            .output()
            .unwrap()
    };
    let (code, first) = summary(run());
    assert_eq!(code, Some(0), "{first}");
    assert!(first["records"].as_u64().unwrap() > 4, "{first}");
    assert_eq!(fs::read_to_string(&state).unwrap().lines().count(), logs(&s).len());
    let (code, again) = summary(run());
    assert_eq!((code, again["records"].as_u64()), (Some(0), Some(0)), "nothing new to read: {again}");
    // A log cut before where the last run got to.
    let log = logs(&s).into_iter().max_by_key(|p| fs::metadata(p).unwrap().len()).unwrap();
    let len = fs::metadata(&log).unwrap().len();
    fs::OpenOptions::new().write(true).open(&log).unwrap().set_len(len - 10).unwrap();
    let out = run();
    let lines = json_lines(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(lines.iter().any(|r| r["problem"]["diagnosis"] == "cut-off"), "{lines:?}");
}
