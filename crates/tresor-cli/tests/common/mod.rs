//! End-to-end fixtures: the real `tresor` binary, real identities, a real
//! volume, a real daemonised mount, unmounted on drop.
#![allow(dead_code)]

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

pub const PASS: &str = "correct horse battery staple";

pub fn tresor() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tresor"))
}

pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run tresor");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A scratch directory under target/, removed on drop (after unmounting).
pub struct Scratch {
    pub dir: PathBuf,
}

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        Self::new_in(Path::new(env!("CARGO_TARGET_TMPDIR")), name)
    }

    /// Under /tmp: for tests whose paths must stay short (a Unix socket's
    /// path is limited to 108 bytes).
    pub fn short(name: &str) -> Scratch {
        Self::new_in(&std::env::temp_dir(), name)
    }

    fn new_in(base: &Path, name: &str) -> Scratch {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = base.join(format!("tresor-{name}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("pass"), format!("{PASS}\n")).unwrap();
        // Private, as a passphrase file must be (others get a warning).
        fs::set_permissions(dir.join("pass"), std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        Scratch { dir }
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.join(p)
    }

    /// A `tresor` command whose pinned keys stay in this scratch dir.
    pub fn tresor(&self) -> Command {
        let mut cmd = tresor();
        cmd.env("TRESOR_DIR", self.path("config")).env_remove("TRESOR_IDENTITY");
        cmd
    }

    /// `tresor ARGS -i WHO.id --passfile pass`: a command run as `who`.
    pub fn tresor_as(&self, who: &str, args: &[&str]) -> Command {
        let mut cmd = self.tresor();
        cmd.args(args).arg("-i").arg(self.path(&format!("{who}.id"))).arg("--passfile").arg(self.path("pass"));
        cmd
    }

    /// Creates an identity file `NAME.id` and returns its public identity.
    pub fn identity(&self, name: &str) -> String {
        let out = run_ok(
            self.tresor()
                .args(["id", "new", "--name", name, "--out"])
                .arg(self.path(&format!("{name}.id")))
                .arg("--passfile")
                .arg(self.path("pass")),
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// `tresor init` of `backing` with `steward` as steward.
    pub fn init(&self, backing: &str, steward: &str, extra: &[&str]) {
        run_ok(
            self.tresor()
                .arg("init")
                .arg(self.path(backing))
                .arg("--steward")
                .arg(self.path(&format!("{steward}.id")))
                .arg("--passfile")
                .arg(self.path("pass"))
                .args(extra),
        );
    }

    /// The mount command for `who` (not yet run).
    pub fn mount_cmd(&self, backing: &str, mnt: &str, who: &str) -> Command {
        fs::create_dir_all(self.path(mnt)).unwrap();
        let mut cmd = self.tresor();
        cmd.arg("mount")
            .arg(self.path(backing))
            .arg(self.path(mnt))
            .arg("-i")
            .arg(self.path(&format!("{who}.id")))
            .arg("--passfile")
            .arg(self.path("pass"));
        cmd
    }

    /// Mounts (daemonised) and returns a guard that unmounts.
    pub fn mount(&self, backing: &str, mnt: &str, who: &str, opts: &[&str]) -> Mounted {
        let mut cmd = self.mount_cmd(backing, mnt, who);
        for o in opts {
            cmd.args(["-o", o]);
        }
        run_ok(&mut cmd);
        let path = self.path(mnt);
        assert!(is_mountpoint(&path), "{} is not mounted after tresor mount returned 0", path.display());
        Mounted { path }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for line in fs::read_to_string("/proc/self/mountinfo").unwrap_or_default().lines() {
            if let Some(mnt) = line.split(' ').nth(4) {
                if Path::new(mnt).starts_with(&self.dir) {
                    unmount(Path::new(mnt));
                }
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Runs `cmd` and returns its output, failing the test if it has not ended
/// within `limit` (it is killed then): a regression that hangs fails
/// instead of hanging CI.
pub fn run_within(limit: Duration, cmd: &mut Command) -> Output {
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} still running after {limit:?}: it hangs");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

pub struct Mounted {
    pub path: PathBuf,
}

impl Drop for Mounted {
    fn drop(&mut self) {
        unmount(&self.path);
    }
}

pub fn is_mountpoint(path: &Path) -> bool {
    // Canonicalize the parent only: a stat of the mount point itself goes
    // to the daemon, and fails if it died, which must not read as "not
    // mounted" (the mount would then never be cleaned up).
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else { return false };
    let Ok(canon) = parent.canonicalize().map(|p| p.join(name)) else { return false };
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(canon.to_str().unwrap_or("")))
}

pub fn unmount(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while is_mountpoint(path) && Instant::now() < deadline {
        let _ = Command::new("fusermount3").arg("-u").arg(path).output();
        if is_mountpoint(path) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    if is_mountpoint(path) {
        let _ = Command::new("fusermount3").arg("-uz").arg(path).output();
    }
}
