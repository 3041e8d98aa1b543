//! `cargo xtask demo`: builds `tresor`, then shows what it is for on a
//! real mount: two members, per-file access, grant and revoke (with a
//! re-key), ciphertext at rest, tamper detection, and the audit log.
//! Everything lives in one directory (default target/tresor-demo).

use std::{
    fs,
    io::Read,
    path::{Path, PathBuf},
    process::Command,
};

use crate::Res;

struct Demo {
    dir: PathBuf,
    tresor: PathBuf,
}

impl Demo {
    fn path(&self, p: &str) -> PathBuf {
        self.dir.join(p)
    }

    /// Runs `tresor ARGS`, echoing the command line, and returns stdout.
    fn tresor(&self, args: &[&str]) -> Res<String> {
        println!("  $ tresor {}", args.join(" ").replace(&format!("{}/", self.dir.display()), ""));
        let out = Command::new(&self.tresor)
            .args(args)
            .env("TRESOR_DIR", self.path("config"))
            .current_dir(&self.dir)
            .output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        for line in stderr.lines() {
            println!("    {line}");
        }
        if !out.status.success() {
            return Err(format!("tresor {} failed", args.join(" ")).into());
        }
        let stdout = String::from_utf8(out.stdout)?;
        for line in stdout.lines() {
            println!("    {line}");
        }
        Ok(stdout)
    }

    fn unmount(&self, mnt: &str) {
        let _ = Command::new("fusermount3").arg("-uq").arg(self.path(mnt)).stderr(std::process::Stdio::null()).status();
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        self.unmount("alice-mnt");
        self.unmount("bob-mnt");
    }
}

fn show(what: &str, result: std::io::Result<String>) {
    match result {
        Ok(s) => println!("  {what}: {:?}", s.lines().next().unwrap_or("")),
        Err(e) => println!("  {what}: refused: {e}"),
    }
}

fn ensure_fuse() -> Res {
    if Command::new("fusermount3").arg("-V").output().is_ok() {
        return Ok(());
    }
    if unsafe { libc::geteuid() } != 0 {
        return Err("fusermount3 is missing: install the fuse3 package (apt-get install fuse3)".into());
    }
    println!("installing fuse3 (apt-get)…");
    let ok = Command::new("sh")
        .args(["-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fuse3 >/dev/null"])
        .status()?
        .success();
    if !ok {
        return Err("apt-get install fuse3 failed".into());
    }
    Ok(())
}

pub fn run(dir: PathBuf, workspace: &Path) -> Res {
    ensure_fuse()?;
    println!("building tresor (release)…");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    if !Command::new(cargo)
        .args(["build", "--quiet", "--release", "-p", "tresor"])
        .current_dir(workspace)
        .status()?
        .success()
    {
        return Err("cargo build failed".into());
    }
    for mnt in ["alice-mnt", "bob-mnt"] {
        let _ = Command::new("fusermount3").arg("-uq").arg(dir.join(mnt)).stderr(std::process::Stdio::null()).status();
    }
    if dir.exists() {
        fs::remove_dir_all(&dir)?;
    }
    fs::create_dir_all(&dir)?;
    let d = Demo { dir: dir.canonicalize()?, tresor: workspace.join("target/release/tresor") };
    fs::write(d.path("pass"), "demo passphrase\n")?;
    // A passphrase file readable by others draws a warning (rightly).
    fs::set_permissions(d.path("pass"), std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    fs::create_dir_all(d.path("alice-mnt"))?;
    fs::create_dir_all(d.path("bob-mnt"))?;
    let pass = d.path("pass");
    let pass = pass.to_str().unwrap();

    println!("\n1. Two researchers make identities; alice creates a volume and adds bob.");
    d.tresor(&["id", "new", "--name", "alice", "--out", "alice.id", "--passfile", pass])?;
    let bob = d.tresor(&["id", "new", "--name", "bob", "--out", "bob.id", "--passfile", pass])?;
    d.tresor(&["init", "backing", "--steward", "alice.id", "--passfile", pass])?;
    d.tresor(&["member", "add", "backing", bob.trim(), "--name", "bob", "-i", "alice.id", "--passfile", pass])?;
    d.tresor(&["member", "list", "backing"])?;

    println!("\n2. alice mounts the volume and writes patient data.");
    let alice_log = d.path("alice-mount.log");
    let alice_log = alice_log.to_str().unwrap();
    d.tresor(&["mount", "backing", "alice-mnt", "-i", "alice.id", "--passfile", pass, "--log-file", alice_log])?;
    let alice = d.path("alice-mnt");
    fs::create_dir(alice.join("results"))?;
    let cohort = "patient_id,age,outcome\n".to_owned() + &"1001,54,recovered\n1002,61,readmitted\n".repeat(3000);
    fs::write(alice.join("cohort.csv"), &cohort)?;
    fs::write(alice.join("results/summary.txt"), "readmission rate: 50%\n")?;
    println!("  alice sees: {:?}", listing(&alice)?);
    println!("  the backing directory holds only ciphertext: {:?}", listing(&d.path("backing"))?);

    println!("\n3. bob mounts the same volume (as a second compute node would).");
    let bob_log = d.path("bob-mount.log");
    let bob_log = bob_log.to_str().unwrap();
    d.tresor(&["mount", "backing", "bob-mnt", "-i", "bob.id", "--passfile", pass, "--log-file", bob_log])?;
    let bob_mnt = d.path("bob-mnt");
    println!(
        "  bob sees the names and sizes: {:?} ({} bytes)",
        listing(&bob_mnt)?,
        fs::metadata(bob_mnt.join("cohort.csv"))?.len()
    );
    show("bob reads cohort.csv", fs::read_to_string(bob_mnt.join("cohort.csv")));
    fs::write(bob_mnt.join("bob-notes.txt"), "my own analysis notes\n")?;
    show("bob reads his own bob-notes.txt", fs::read_to_string(bob_mnt.join("bob-notes.txt")));
    // The root's policy (set by `tresor init`) names the steward, so a lost
    // passphrase of bob's would not lose his notes.
    show("alice, the steward, reads bob-notes.txt", fs::read_to_string(alice.join("bob-notes.txt")));
    show("alice reads cohort.csv", fs::read_to_string(alice.join("cohort.csv")));

    println!("\n4. alice, the steward, grants bob cohort.csv, then revokes him again.");
    let steward = ["-i", "alice.id", "--passfile", pass];
    d.tresor(&[&["grant", "alice-mnt/cohort.csv", "--to", "bob"], &steward[..]].concat())?;
    show("bob reads cohort.csv", fs::read_to_string(bob_mnt.join("cohort.csv")));
    d.tresor(&[&["acl", "alice-mnt/cohort.csv"], &steward[..]].concat())?;
    d.tresor(&[&["revoke", "alice-mnt/cohort.csv", "--from", "bob"], &steward[..]].concat())?;
    show("bob reads cohort.csv after the revoke (re-keyed)", fs::read_to_string(bob_mnt.join("cohort.csv")));

    println!("\n5. Someone with access to the storage flips one bit of cohort.csv's ciphertext.");
    let victim = largest_file(&d.path("backing"))?;
    let mut bytes = fs::read(&victim)?;
    let at = 4096 + 3 * 4124 + 100;
    bytes[at] ^= 1;
    fs::write(&victim, &bytes)?;
    let mut first = vec![0u8; 4096];
    fs::File::open(alice.join("cohort.csv"))?.read_exact(&mut first)?;
    println!("  the first 4 KiB still read: {:?}…", String::from_utf8_lossy(&first[..22]));
    show("reading the whole file", fs::read_to_string(alice.join("cohort.csv")));

    d.unmount("alice-mnt");
    d.unmount("bob-mnt");

    println!("\n6. An auditor checks the hash-chained logs of both mounts and asks who touched cohort.csv.");
    d.tresor(&["audit", "verify", "--volume", "backing"])?;
    d.tresor(&[&["audit", "who", "cohort.csv", "--volume", "backing"], &steward[..]].concat())?;
    println!("\nDone: both mounts unmounted. Everything is in {}.", d.dir.display());
    Ok(())
}

fn listing(dir: &Path) -> Res<Vec<String>> {
    let mut names: Vec<String> = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    names.sort();
    Ok(names)
}

fn largest_file(dir: &Path) -> Res<PathBuf> {
    let mut best: Option<(u64, PathBuf)> = None;
    for e in fs::read_dir(dir)? {
        let e = e?;
        let len = e.metadata()?.len();
        if e.file_type()?.is_file() && best.as_ref().is_none_or(|(l, _)| len > *l) {
            best = Some((len, e.path()));
        }
    }
    Ok(best.ok_or("no file in the backing directory")?.1)
}
