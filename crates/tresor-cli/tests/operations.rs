//! The examples of docs/OPERATIONS.md, read from that file and run: the
//! fstab line through mount(8), the systemd unit's command under a
//! notification socket as systemd runs it, the Slurm job script cancelled
//! as slurmstepd cancels it, and the prolog/epilog pair as slurmd runs it.

mod common;

use std::{
    fs,
    os::unix::{fs::PermissionsExt, net::UnixDatagram},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::{is_mountpoint, run_ok, Scratch};

const TRESOR: &str = env!("CARGO_BIN_EXE_tresor");

/// The fenced blocks of docs/OPERATIONS.md whose info string is `tag`.
fn blocks(tag: &str) -> Vec<String> {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/OPERATIONS.md");
    let text = fs::read_to_string(doc).unwrap();
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match &mut current {
            None if line == format!("```{tag}") => current = Some(String::new()),
            Some(block) if line == "```" => {
                out.push(std::mem::take(block));
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    assert!(!out.is_empty(), "no ```{tag} block in docs/OPERATIONS.md");
    out
}

/// The documented paths, replaced by this scratch volume's.
fn localise(text: &str, s: &Scratch) -> String {
    text.replace("/data/project1.backing", s.path("backing").to_str().unwrap())
        .replace("/mnt/project1", s.path("mnt").to_str().unwrap())
        .replace("/etc/tresor/node.id", s.path("alice.id").to_str().unwrap())
        .replace("/etc/tresor/node.pass", s.path("pass").to_str().unwrap())
        .replace("/usr/local/bin/tresor", TRESOR)
}

fn volume(name: &str) -> Scratch {
    let s = Scratch::short(name);
    s.identity("alice");
    s.init("backing", "alice", &[]);
    fs::create_dir_all(s.path("mnt")).unwrap();
    s
}

/// Every audit log of the volume verifies and ends with its unmount record
/// (waiting a little for a daemon that is still writing it).
fn assert_logs_closed(s: &Scratch) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = s.tresor().args(["audit", "verify", "--json", "--volume"]).arg(s.path("backing")).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let reports: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let closed = !reports.is_empty() && reports.iter().all(|r| r["closed"] == true);
        if out.status.success() && closed {
            return;
        }
        assert!(Instant::now() < deadline, "audit logs not verified and closed: {text}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_fstab_line_mounts_through_mount8_as_fuse_tresor_and_remounts_read_only() {
    let s = volume("ops-fstab");
    let line = localise(&blocks("fstab")[0], &s);
    fs::write(s.path("fstab"), &line).unwrap();
    let mnt = s.path("mnt");
    // mount(8) looks for helpers in /sbin only: give this test a private
    // mount namespace whose /sbin (/usr/sbin) holds just the helper link.
    let script = r#"set -e
        mount -t tmpfs tresor-test-sbin /usr/sbin
        ln -s "$TRESOR" /usr/sbin/mount.fuse.tresor
        mount -T "$FSTAB" "$MNT"
        findmnt -n -o FSTYPE "$MNT"
        echo from-fstab > "$MNT/f"
        cat "$MNT/f"
        mount -T "$FSTAB" -o remount,ro "$MNT"
        if echo x 2>/dev/null > "$MNT/g"; then echo wrote-on-ro; fi
        findmnt -n -o OPTIONS "$MNT" | cut -d, -f1
        umount "$MNT"
        echo done"#;
    let out = Command::new("unshare")
        .args(["-m", "sh", "-c", script])
        .env("TRESOR", TRESOR)
        .env("FSTAB", s.path("fstab"))
        .env("MNT", &mnt)
        .env("TRESOR_DIR", s.path("config"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout, "fuse.tresor\nfrom-fstab\nro\ndone\n");
    assert_logs_closed(&s);
}

#[test]
fn the_systemd_unit_is_valid_reports_ready_once_mounted_and_stops_cleanly() {
    let s = volume("ops-unit");
    let unit = localise(&blocks("systemd")[0], &s);
    if Command::new("systemd-analyze").arg("--version").output().is_ok() {
        let path = s.path("tresor-project1.service");
        fs::write(&path, &unit).unwrap();
        let out = Command::new("systemd-analyze").arg("verify").arg(&path).output().unwrap();
        assert!(out.status.success(), "systemd-analyze verify: {}", String::from_utf8_lossy(&out.stderr));
    } else {
        eprintln!("notice: systemd-analyze is absent; the unit file's syntax is not checked");
    }
    let exec = unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).unwrap();
    assert!(unit.contains("Type=notify") && unit.contains("KillSignal=SIGTERM"));

    // What systemd does for Type=notify: a datagram socket in NOTIFY_SOCKET.
    let socket_path = s.path("notify");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let words: Vec<&str> = exec.split_whitespace().collect();
    let mut service = Command::new(words[0])
        .args(&words[1..])
        .env("NOTIFY_SOCKET", &socket_path)
        .env("TRESOR_DIR", s.path("config"))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 512];
    let n = socket.recv(&mut buf).expect("READY=1 from the service");
    let message = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(message.lines().any(|l| l == "READY=1"), "{message}");
    assert!(message.contains(&format!("MAINPID={}", service.id())), "{message}");
    assert!(is_mountpoint(&s.path("mnt")), "READY=1 only once the mount is live");
    fs::write(s.path("mnt/written-by-the-service"), b"ok").unwrap();

    // systemctl stop: KillSignal to the main process.
    run_ok(Command::new("kill").args(["-TERM", &service.id().to_string()]));
    let n = socket.recv(&mut buf).expect("STOPPING=1 on stop");
    assert!(String::from_utf8_lossy(&buf[..n]).lines().any(|l| l == "STOPPING=1"));
    assert!(service.wait().unwrap().success(), "a stopped service exits 0");
    assert!(!is_mountpoint(&s.path("mnt")));
    assert_logs_closed(&s);
}

/// The Tresor mount (if any) whose source is this scratch volume.
fn mount_of(s: &Scratch) -> Option<PathBuf> {
    let source = format!("tresor:{}", s.path("backing").canonicalize().ok()?.display());
    let info = fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        let dash = f.iter().position(|x| *x == "-")?;
        (f.get(dash + 2) == Some(&source.as_str())).then(|| PathBuf::from(f[4]))
    })
}

#[test]
fn the_slurm_job_script_mounts_for_the_job_and_a_cancel_unmounts_cleanly() {
    let s = volume("ops-job");
    // The job's user: identity and passphrase where the script expects them.
    let home = s.path("home");
    fs::create_dir_all(home.join(".config/tresor")).unwrap();
    fs::copy(s.path("alice.id"), home.join(".config/tresor/identity")).unwrap();
    fs::copy(s.path("pass"), home.join(".config/tresor/pass")).unwrap();
    let job = localise(&blocks("slurm-job")[0], &s);
    let workload = job.lines().find(|l| l.starts_with("python ")).expect("the job's workload line");
    let job = job.replace(workload, r#"echo result > "$mnt/out.csv"; sleep 120"#);
    fs::write(s.path("job.sh"), &job).unwrap();
    fs::set_permissions(s.path("job.sh"), fs::Permissions::from_mode(0o755)).unwrap();

    // A job step in its own process group, as slurmstepd starts it.
    let mut step = Command::new("setsid")
        .arg(s.path("job.sh"))
        .env_remove("TRESOR_DIR")
        .env_remove("TRESOR_IDENTITY")
        .env("HOME", &home)
        .env("PATH", format!("{}:{}", Path::new(TRESOR).parent().unwrap().display(), std::env::var("PATH").unwrap()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the job's mount is up", || mount_of(&s).is_some());
    let mnt = mount_of(&s).unwrap();
    wait_until("the job wrote its result", || fs::read(mnt.join("out.csv")).is_ok_and(|c| c == b"result\n"));

    // scancel: SIGTERM to every process of the step.
    run_ok(Command::new("kill").args(["-TERM", "--", &format!("-{}", step.id())]));
    let _ = step.wait();
    wait_until("the job's mount is gone", || mount_of(&s).is_none());
    fs::read_dir(&mnt).expect("no dead mount left behind");
    assert_logs_closed(&s);
    let _ = fs::remove_dir(&mnt);
}

#[test]
fn the_slurm_prolog_mounts_for_the_job_and_the_epilog_unmounts() {
    let s = volume("ops-prolog");
    let [prolog, epilog] = <[String; 2]>::try_from(
        blocks("sh").into_iter().filter(|b| b.contains("SLURM_JOB_ID")).map(|b| localise(&b, &s)).collect::<Vec<_>>(),
    )
    .expect("a prolog and an epilog");
    let job_id = format!("tresor-test-{}", std::process::id());
    let run_as_slurmd = |script: &str| {
        Command::new("sh")
            .args(["-c", script])
            .env("SLURM_JOB_ID", &job_id)
            .env("TRESOR_DIR", s.path("config"))
            .env(
                "PATH",
                format!("{}:{}", Path::new(TRESOR).parent().unwrap().display(), std::env::var("PATH").unwrap()),
            )
            .output()
            .unwrap()
    };
    let mnt = PathBuf::from(format!("/run/tresor/{job_id}"));
    let out = run_as_slurmd(&prolog);
    assert!(out.status.success(), "prolog: {}", String::from_utf8_lossy(&out.stderr));
    assert!(is_mountpoint(&mnt));
    fs::write(mnt.join("from-the-job"), b"x").unwrap();
    let out = run_as_slurmd(&epilog);
    assert!(out.status.success(), "epilog: {}", String::from_utf8_lossy(&out.stderr));
    assert!(!is_mountpoint(&mnt) && !mnt.exists(), "the epilog unmounts and removes the mount point");
    assert_logs_closed(&s);
}
