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
        let closed =
            !reports.is_empty() && reports.iter().filter(|r| r["summary"] != true).all(|r| r["closed"] == true);
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

/// A one-node Slurm (slurmctld, slurmd, and munged if none runs), started
/// for one test from its own configuration and stopped on drop.
struct Slurm {
    conf: PathBuf,
    daemons: Vec<std::process::Child>,
    munged_pid: Option<i32>,
}

impl Slurm {
    /// None, with a notice, where Slurm or munge is not installed.
    fn start(s: &Scratch, prolog: &Path, epilog: &Path) -> Option<Slurm> {
        let have = |p: &str| Path::new(p).exists();
        if !(have("/usr/sbin/slurmctld") && have("/usr/sbin/slurmd") && have("/usr/sbin/munged")) {
            eprintln!("notice: slurm-wlm and munge are not installed: the test on a real Slurm is skipped");
            return None;
        }
        let mut slurm = Slurm { conf: s.path("slurm.conf"), daemons: Vec::new(), munged_pid: None };
        let munge_works =
            || Command::new("sh").args(["-c", "munge -n | unmunge"]).output().is_ok_and(|o| o.status.success());
        if !munge_works() {
            fs::create_dir_all("/run/munge").unwrap();
            run_ok(Command::new("chown").args(["munge:munge", "/run/munge"]));
            run_ok(Command::new("/usr/sbin/munged").arg("--force"));
            slurm.munged_pid = fs::read_to_string("/run/munge/munged.pid").ok().and_then(|p| p.trim().parse().ok());
            wait_until("munge works", munge_works);
        }
        let host = String::from_utf8(run_ok(&mut Command::new("hostname")).stdout).unwrap().trim().to_owned();
        let port = 20000 + (std::process::id() % 10000) as u16 * 2;
        for d in ["state", "spool"] {
            fs::create_dir_all(s.path(d)).unwrap();
        }
        let conf = format!(
            "ClusterName=tresortest\nSlurmctldHost={host}\nSlurmUser=root\nSlurmdUser=root\nAuthType=auth/munge\n\
             CredType=cred/munge\nStateSaveLocation={state}\nSlurmdSpoolDir={spool}\nSlurmctldPidFile={dir}/ctld.pid\n\
             SlurmdPidFile={dir}/d.pid\nSlurmctldPort={port}\nSlurmdPort={dport}\nSlurmctldLogFile={dir}/ctld.log\n\
             SlurmdLogFile={dir}/d.log\nProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\n\
             JobAcctGatherType=jobacct_gather/none\nSelectType=select/cons_tres\nSelectTypeParameters=CR_Core\n\
             SchedulerType=sched/builtin\nJobCompType=jobcomp/none\nAccountingStorageType=accounting_storage/none\n\
             MpiDefault=none\nReturnToService=2\nKillWait=5\nProlog={prolog}\nEpilog={epilog}\n\
             NodeName={host} CPUs=2 State=UNKNOWN\nPartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n",
            state = s.path("state").display(),
            spool = s.path("spool").display(),
            dir = s.dir.display(),
            dport = port + 1,
            prolog = prolog.display(),
            epilog = epilog.display(),
        );
        fs::write(&slurm.conf, conf).unwrap();
        for daemon in [&["/usr/sbin/slurmctld", "-D", "-c"][..], &["/usr/sbin/slurmd", "-D"][..]] {
            let child = Command::new(daemon[0])
                .args(&daemon[1..])
                .env("SLURM_CONF", &slurm.conf)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            slurm.daemons.push(child);
        }
        wait_until("the Slurm node is idle", || {
            slurm.cmd("sinfo").args(["-h", "-o", "%t"]).output().is_ok_and(|o| o.stdout.starts_with(b"idle"))
        });
        Some(slurm)
    }

    fn cmd(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("SLURM_CONF", &self.conf);
        cmd
    }

    /// Submits `script` (`sbatch --parsable`) and returns the job id.
    fn submit(&self, s: &Scratch, script: &Path, home: &Path) -> String {
        let out = run_ok(
            self.cmd("sbatch")
                .args(["--parsable", "--output"])
                .arg(s.path("job-%j.out"))
                .arg(script)
                .env("HOME", home)
                .env(
                    "PATH",
                    format!("{}:{}", Path::new(TRESOR).parent().unwrap().display(), std::env::var("PATH").unwrap()),
                ),
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    fn scancel(&self, job: &str) {
        run_ok(self.cmd("scancel").arg(job));
    }
}

impl Drop for Slurm {
    fn drop(&mut self) {
        for d in &mut self.daemons {
            let _ = Command::new("kill").args(["-TERM", &d.id().to_string()]).output();
            let _ = d.wait();
        }
        if let Some(pid) = self.munged_pid {
            let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).output();
        }
    }
}

/// Pins of volumes mounted without HOME land in /var/lib/tresor: the ones
/// this test added are removed afterwards.
struct SystemPins(Vec<PathBuf>);

impl SystemPins {
    fn now() -> SystemPins {
        SystemPins(
            fs::read_dir("/var/lib/tresor/pinned").map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default(),
        )
    }
}

impl Drop for SystemPins {
    fn drop(&mut self) {
        for e in fs::read_dir("/var/lib/tresor/pinned").into_iter().flatten().flatten() {
            if !self.0.contains(&e.path()) {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

#[test]
fn on_a_real_slurm_both_patterns_mount_for_the_job_and_scancel_unmounts_cleanly() {
    let s = volume("ops-slurm");
    let _pins = SystemPins::now();
    let scripts: Vec<String> =
        blocks("sh").into_iter().filter(|b| b.contains("SLURM_JOB_ID")).map(|b| localise(&b, &s)).collect();
    for (name, text) in ["prolog.sh", "epilog.sh"].iter().zip(&scripts) {
        fs::write(s.path(name), text).unwrap();
        fs::set_permissions(s.path(name), fs::Permissions::from_mode(0o755)).unwrap();
    }
    let Some(slurm) = Slurm::start(&s, &s.path("prolog.sh"), &s.path("epilog.sh")) else { return };

    // Prolog/epilog: the job finds the volume at /run/tresor/$SLURM_JOB_ID.
    fs::write(s.path("uses-prolog.sh"), "#!/bin/sh\necho from-job > /run/tresor/$SLURM_JOB_ID/out.txt\nsleep 300\n")
        .unwrap();
    let job = slurm.submit(&s, &s.path("uses-prolog.sh"), &s.path("."));
    let mnt = PathBuf::from(format!("/run/tresor/{job}"));
    wait_until("the prolog's mount holds the job's output", || {
        fs::read(mnt.join("out.txt")).is_ok_and(|c| c == b"from-job\n")
    });
    slurm.scancel(&job);
    wait_until("the epilog unmounted and removed the mount point", || !mnt.exists());
    assert_logs_closed(&s);

    // The job script's own mount, held by the job and ended by scancel.
    let home = s.path("home");
    fs::create_dir_all(home.join(".config/tresor")).unwrap();
    fs::copy(s.path("alice.id"), home.join(".config/tresor/identity")).unwrap();
    fs::copy(s.path("pass"), home.join(".config/tresor/pass")).unwrap();
    let script = localise(&blocks("slurm-job")[0], &s);
    let workload = script.lines().find(|l| l.starts_with("python ")).unwrap();
    fs::write(s.path("job.sh"), script.replace(workload, r#"echo result > "$mnt/out.csv"; sleep 300"#)).unwrap();
    let job = slurm.submit(&s, &s.path("job.sh"), &home);
    wait_until("the job's own mount is up", || mount_of(&s).is_some());
    let own = mount_of(&s).unwrap();
    wait_until("the job wrote through it", || fs::read(own.join("out.csv")).is_ok_and(|c| c == b"result\n"));
    slurm.scancel(&job);
    wait_until("scancel ended the job's mount", || mount_of(&s).is_none());
    if let Err(e) = fs::read_dir(&own) {
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "no dead mount left behind: {e}");
    }
    assert_logs_closed(&s);
    let _ = fs::remove_dir(&own);
}
