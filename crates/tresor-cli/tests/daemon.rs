//! The mount as a system daemon: signals end it as cleanly as `umount`,
//! mount(8) and fstab options work (remount included), it shows as type
//! `fuse.tresor`, keeps nothing of whoever started it, and is silent on
//! success.

mod common;

use std::{
    fs,
    io::{ErrorKind, Read},
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::{is_mountpoint, run_ok, unmount, Scratch};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The pid of the daemon serving `mnt`: the `tresor` process whose command
/// line names it.
fn daemon_pid(mnt: &Path) -> i32 {
    let exe = fs::canonicalize(env!("CARGO_BIN_EXE_tresor")).unwrap();
    let needle = mnt.as_os_str().as_encoded_bytes();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else { continue };
        let is_tresor = fs::read_link(entry.path().join("exe")).is_ok_and(|e| e == exe);
        if is_tresor && cmdline.split(|&b| b == 0).any(|arg| arg == needle) {
            return pid;
        }
    }
    panic!("no daemon serving {}", mnt.display());
}

fn kill(pid: i32, signal: &str) {
    run_ok(Command::new("kill").args([&format!("-{signal}"), &pid.to_string()]));
}

fn wait_gone(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Path::new(&format!("/proc/{pid}")).exists() {
        // A zombie child of ours is gone as far as the mount is concerned.
        let state = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if state.split(' ').nth(2) == Some("Z") {
            return;
        }
        assert!(Instant::now() < deadline, "daemon {pid} still running");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_mounted(mnt: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !is_mountpoint(mnt) {
        assert!(Instant::now() < deadline, "the mount did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `tresor audit verify --json` of every log of the volume: (exit code, reports).
fn verify(s: &Scratch) -> (Option<i32>, Vec<serde_json::Value>) {
    let out = s.tresor().args(["audit", "verify", "--json", "--volume"]).arg(s.path("backing")).output().unwrap();
    let reports = String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    (out.status.code(), reports)
}

/// After the daemon has gone: the mount point is a plain directory again,
/// a new mount there works, and every audit log verifies with its unmount
/// record. Returns the new mount.
fn assert_ended_cleanly(s: &Scratch, mnt: &Path) -> common::Mounted {
    assert!(!is_mountpoint(mnt), "still mounted (a dead mount: Transport endpoint is not connected)");
    fs::read_dir(mnt).expect("the mount point is usable again");
    let (code, reports) = verify(s);
    assert_eq!(code, Some(0), "{reports:?}");
    assert!(
        !reports.is_empty() && reports.iter().filter(|r| r["summary"] != true).all(|r| r["closed"] == true),
        "{reports:?}"
    );
    let m = s.mount("backing", "mnt", "alice", &[]);
    fs::write(m.path.join("again"), b"x").unwrap();
    m
}

fn volume(name: &str) -> Scratch {
    let s = Scratch::new(name);
    s.identity("alice");
    s.init("backing", "alice", &[]);
    s
}

#[test]
fn sigterm_to_the_detached_daemon_unmounts_cleanly_and_closes_the_audit_log() {
    let s = volume("sigterm");
    let m = s.mount("backing", "mnt", "alice", &[]);
    fs::write(m.path.join("data.csv"), b"1,2\n").unwrap();
    let pid = daemon_pid(&m.path);
    kill(pid, "TERM");
    wait_gone(pid);
    let again = assert_ended_cleanly(&s, &m.path);
    assert_eq!(fs::read(again.path.join("data.csv")).unwrap(), b"1,2\n");
}

#[test]
fn sighup_to_the_detached_daemon_unmounts_cleanly() {
    let s = volume("sighup");
    let m = s.mount("backing", "mnt", "alice", &[]);
    let pid = daemon_pid(&m.path);
    kill(pid, "HUP");
    wait_gone(pid);
    assert_ended_cleanly(&s, &m.path);
}

#[test]
fn ctrl_c_on_a_foreground_mount_unmounts_cleanly_and_exits_zero() {
    let s = volume("sigint");
    let mut daemon = s.mount_cmd("backing", "mnt", "alice").arg("-f").stderr(Stdio::null()).spawn().unwrap();
    let mnt = s.path("mnt");
    wait_mounted(&mnt);
    fs::write(mnt.join("x"), b"y").unwrap();
    kill(daemon.id() as i32, "INT");
    let status = daemon.wait().unwrap();
    assert!(status.success(), "{status}");
    assert_ended_cleanly(&s, &mnt);
}

#[test]
fn a_signal_to_a_mount_in_use_detaches_it_and_the_daemon_ends_when_the_last_file_closes() {
    let s = volume("busy");
    let m = s.mount("backing", "mnt", "alice", &[]);
    fs::write(m.path.join("open"), b"kept open").unwrap();
    let mut open = fs::File::open(m.path.join("open")).unwrap();
    let pid = daemon_pid(&m.path);
    kill(pid, "TERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    while is_mountpoint(&m.path) {
        assert!(Instant::now() < deadline, "a busy mount is detached, not left in place");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut text = String::new();
    open.read_to_string(&mut text).unwrap();
    assert_eq!(text, "kept open", "an open file keeps working after the detach");
    drop(open);
    wait_gone(pid);
    assert_ended_cleanly(&s, &m.path);
}

#[test]
fn a_normal_unmount_logs_no_warning_and_no_colour_off_a_terminal() {
    let s = volume("quiet-unmount");
    let daemon = s.mount_cmd("backing", "mnt", "alice").arg("-f").stderr(Stdio::piped()).spawn().unwrap();
    let mnt = s.path("mnt");
    wait_mounted(&mnt);
    unmount(&mnt);
    let out = daemon.wait_with_output().unwrap();
    assert!(out.status.success());
    let log = stderr(&out);
    assert!(log.contains("unmounted"), "{log}");
    assert!(!log.contains("WARN") && !log.contains("ERROR"), "{log}");
    assert!(!log.contains('\x1b'), "colour codes in a log that is not a terminal: {log:?}");
}

#[test]
fn a_mount_is_silent_on_success_but_for_the_first_use_pin() {
    let s = volume("silent");
    // A node that has not mounted this volume before (`init` pinned it for its steward).
    // (With its log in a file: where syslog is unreachable, a mount says so.)
    let node =
        |cmd: &mut Command| run_ok(cmd.env("TRESOR_DIR", s.path("node")).arg("--log-file").arg(s.path("daemon.log")));
    let first = node(&mut s.mount_cmd("backing", "mnt", "alice"));
    assert!(stderr(&first).contains("pinned now on first use"), "{}", stderr(&first));
    assert!(first.stdout.is_empty());
    unmount(&s.path("mnt"));
    let again = node(&mut s.mount_cmd("backing", "mnt", "alice"));
    assert_eq!(stderr(&again), "", "nothing to say on a mount that worked");
    assert!(again.stdout.is_empty());
    unmount(&s.path("mnt"));
}

/// The mountinfo line of `mnt`: (per-mount and super-block options, fs type).
fn mount_line(mnt: &Path) -> (String, String) {
    let canon = mnt.canonicalize().unwrap();
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = info.lines().rfind(|l| l.split(' ').nth(4) == canon.to_str()).expect("mounted");
    let fields: Vec<&str> = line.split(' ').collect();
    let dash = fields.iter().position(|f| *f == "-").unwrap();
    (format!("{},{}", fields[5], fields.last().unwrap()), fields[dash + 1].to_owned())
}

#[test]
fn a_root_mount_shows_as_type_fuse_tresor() {
    let s = volume("fstype");
    let m = s.mount("backing", "mnt", "alice", &[]);
    assert_eq!(mount_line(&m.path).1, "fuse.tresor");
    let out = run_ok(Command::new("findmnt").args(["-n", "-o", "TARGET", "-t", "fuse.tresor"]));
    assert!(String::from_utf8_lossy(&out.stdout).lines().any(|l| Path::new(l) == m.path), "findmnt -t fuse.tresor");
}

#[test]
fn the_generic_options_mount8_and_fstab_pass_are_accepted_and_applied() {
    let s = volume("generic-opts");
    let m = s.mount(
        "backing",
        "mnt",
        "alice",
        &["defaults,_netdev,nofail,x-systemd.requires=network-online.target,nodiratime,strictatime,relatime,sync,dirsync"],
    );
    let (opts, _) = mount_line(&m.path);
    for want in ["nodiratime", "relatime", "sync", "dirsync"] {
        assert!(opts.split(',').any(|o| o == want), "{want} missing from {opts}");
    }
    fs::write(m.path.join("f"), b"works").unwrap();
}

#[test]
fn a_non_empty_mount_point_is_refused_unless_nonempty_is_given() {
    let s = volume("nonempty");
    fs::create_dir_all(s.path("mnt")).unwrap();
    fs::write(s.path("mnt/local.txt"), b"on the local disk").unwrap();
    let out = s.mount_cmd("backing", "mnt", "alice").output().unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not empty") && stderr(&out).contains("nonempty"), "{}", stderr(&out));
    assert!(!is_mountpoint(&s.path("mnt")));
    let m = s.mount("backing", "mnt", "alice", &["nonempty"]);
    assert!(!m.path.join("local.txt").exists(), "the volume's view hides the directory's own files");
}

/// `mount.fuse.tresor` as mount(8) calls it for `mount -o remount,...`:
/// the source and mount point from /proc/mounts, the options merged.
fn remount_helper(s: &Scratch, mnt: &Path, opts: &str) -> std::process::Output {
    let helper = s.path("mount.fuse.tresor");
    if !helper.exists() {
        symlink(env!("CARGO_BIN_EXE_tresor"), &helper).unwrap();
    }
    Command::new(&helper).arg("tresor:backing").arg(mnt).args(["-o", opts]).output().unwrap()
}

#[test]
fn remount_ro_makes_a_live_mount_read_only_and_remount_rw_writable_again() {
    let s = volume("remount");
    let m = s.mount("backing", "mnt", "alice", &["noatime"]);
    fs::write(m.path.join("before"), b"1").unwrap();

    let out = remount_helper(&s, &m.path, "ro,nosuid,nodev,remount");
    assert!(out.status.success(), "{}", stderr(&out));
    let (opts, _) = mount_line(&m.path);
    assert!(opts.starts_with("ro,") && opts.contains("noatime"), "ro, other flags kept: {opts}");
    let err = fs::write(m.path.join("after"), b"2").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
    assert_eq!(fs::read(m.path.join("before")).unwrap(), b"1", "still readable");

    let out = remount_helper(&s, &m.path, "remount,rw");
    assert!(out.status.success(), "{}", stderr(&out));
    fs::write(m.path.join("after"), b"2").unwrap();

    // mount(8) itself, when it does the remount without the helper.
    run_ok(Command::new("mount").args(["-i", "-o", "remount,ro"]).arg(&m.path));
    assert_eq!(fs::write(m.path.join("x"), b"3").unwrap_err().kind(), ErrorKind::ReadOnlyFilesystem);
    run_ok(Command::new("mount").args(["-i", "-o", "remount,rw"]).arg(&m.path));
    fs::write(m.path.join("x"), b"3").unwrap();

    let out = remount_helper(&s, &s.path("backing"), "remount,ro");
    assert!(!out.status.success() && stderr(&out).contains("not a Tresor mount"), "{}", stderr(&out));
}

#[test]
fn the_detached_daemon_keeps_no_inherited_descriptor_and_leaves_its_directory() {
    let s = volume("detach");
    fs::create_dir_all(s.path("mnt")).unwrap();
    // As ssh or a Slurm prolog runs it: a pipe as stdout and another
    // descriptor on it (7) that whoever reads the pipe waits on.
    let mount = s.mount_cmd("backing", "mnt", "alice");
    let mut child = Command::new("sh")
        .args(["-c", "exec 7>&1; exec \"$@\"", "sh"])
        .arg(mount.get_program())
        .args(mount.get_args())
        .env("TRESOR_DIR", s.path("config"))
        .current_dir(s.path("."))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = stdout.read_to_end(&mut sink);
        let _ = tx.send(());
    });
    assert!(child.wait().unwrap().success());
    let mnt = s.path("mnt");
    let _m = common::Mounted { path: mnt.clone() };
    assert!(
        rx.recv_timeout(Duration::from_secs(10)).is_ok(),
        "the caller's pipe stays open while the mount lives: the daemon kept an inherited descriptor"
    );
    let pid = daemon_pid(&mnt);
    assert_eq!(fs::read_link(format!("/proc/{pid}/cwd")).unwrap(), PathBuf::from("/"));
}

/// Runs `script` with sh in a private mount namespace whose /dev holds
/// only null and fuse, and /dev/log only if `log` is given (bound to it).
fn with_private_dev(s: &Scratch, log: Option<&Path>, script: &str) -> std::process::Output {
    let setup = r#"set -e
        mount -t tmpfs tresor-test-dev /dev
        mknod -m 666 /dev/null c 1 3
        mknod -m 666 /dev/fuse c 10 229
        if [ -n "$LOG" ]; then touch /dev/log; mount --bind "$LOG" /dev/log; fi
        "#;
    Command::new("unshare")
        .args(["-m", "sh", "-c", &format!("{setup}{script}")])
        .env("LOG", log.map(|l| l.as_os_str().to_owned()).unwrap_or_default())
        .env("TRESOR", env!("CARGO_BIN_EXE_tresor"))
        .env("TRESOR_DIR", s.path("config"))
        .env("TRESOR_LOG", "debug")
        .env("BACKING", s.path("backing"))
        .env("MNT", s.path("mnt"))
        .env("ID", s.path("alice.id"))
        .env("PASS", s.path("pass"))
        .output()
        .unwrap()
}

#[test]
fn the_daemon_logs_to_syslog_at_each_message_level_and_warns_when_syslog_is_unreachable() {
    let s = Scratch::short("syslog");
    s.identity("alice");
    s.init("backing", "alice", &[]);
    fs::create_dir_all(s.path("mnt")).unwrap();
    let mount_and_unmount = r#"
        "$TRESOR" mount "$BACKING" "$MNT" -i "$ID" --passfile "$PASS"
        ls "$MNT" >/dev/null
        umount "$MNT"
        "#;

    let unreachable = with_private_dev(&s, None, mount_and_unmount);
    assert!(unreachable.status.success(), "{}", stderr(&unreachable));
    assert!(stderr(&unreachable).contains("syslog is unreachable"), "{}", stderr(&unreachable));

    let log = s.path("log.sock");
    let syslog = std::os::unix::net::UnixDatagram::bind(&log).unwrap();
    syslog.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    // Read as journald does, all along: syslog(3) blocks on a full socket.
    let reader = std::thread::spawn(move || {
        let mut messages = Vec::new();
        let mut buf = vec![0u8; 8192];
        while !messages.iter().any(|m: &String| m.contains("unmounted")) {
            let n = syslog.recv(&mut buf).expect("the daemon's messages reach syslog");
            messages.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        messages
    });
    let reachable = with_private_dev(&s, Some(&log), mount_and_unmount);
    assert!(reachable.status.success(), "{}", stderr(&reachable));
    assert_eq!(stderr(&reachable), "", "silent when syslog is there");
    let messages = reader.join().unwrap();
    // <PRI> is facility daemon (3) * 8 + severity: 6 info, 7 debug.
    let at = |pri: &str, text: &str| messages.iter().any(|m| m.starts_with(pri) && m.contains(text));
    assert!(at("<30>", "mounted at"), "info at LOG_INFO: {messages:#?}");
    assert!(at("<31>", ""), "debug at LOG_DEBUG: {messages:#?}");
    assert!(messages.iter().all(|m| m.contains("tresor[") && !m.contains('\x1b')), "{messages:#?}");
    assert!(
        !messages.iter().any(|m| m.starts_with("<28>") || m.starts_with("<27>")),
        "no warning or error: {messages:#?}"
    );
}

#[test]
fn sigterm_ends_an_unprivileged_users_fusermount3_mount_cleanly_too() {
    let usable = fs::metadata("/dev/fuse").is_ok_and(|m| {
        use std::os::unix::fs::PermissionsExt;
        m.permissions().mode() & 0o006 == 0o006
    });
    let tests_user = Command::new("id").arg("tests").output().is_ok_and(|o| o.status.success());
    if !usable || !tests_user || unsafe { libc::geteuid() } != 0 {
        eprintln!("skipping: needs root, the tests user and a /dev/fuse every user may open (see .ci/run)");
        return;
    }
    let s = Scratch::short("sigterm-user");
    s.identity("alice");
    s.init("backing", "alice", &[]);
    fs::create_dir(s.path("mnt")).unwrap();
    run_ok(Command::new("chmod").arg("755").arg(&s.dir));
    run_ok(Command::new("chown").args(["-R", "tests:tests"]).arg(&s.dir));
    let mount = s.mount_cmd("backing", "mnt", "alice");
    run_ok(
        Command::new("setpriv")
            .args(["--reuid", "tests", "--regid", "tests", "--init-groups", "env"])
            .arg(format!("TRESOR_DIR={}", s.path("config").display()))
            .arg(mount.get_program())
            .args(mount.get_args()),
    );
    let mnt = s.path("mnt");
    assert_eq!(mount_line(&mnt).1, "fuse.tresor", "fusermount3 passes the subtype");
    let pid = daemon_pid(&mnt);
    kill(pid, "TERM");
    wait_gone(pid);
    assert!(!is_mountpoint(&mnt));
    fs::read_dir(&mnt).expect("no dead mount left behind");
    let (code, reports) = verify(&s);
    assert_eq!(code, Some(0), "{reports:?}");
    assert!(reports.iter().filter(|r| r["summary"] != true).all(|r| r["closed"] == true), "{reports:?}");
}
