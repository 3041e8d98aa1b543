//! `cargo xtask access-bench [--files N] [--mib M] [--tresor PATH]`: the
//! figures for access management, measured with the real `tresor` binary:
//!
//! * a recursive grant over N files (default 10,000), in files/s;
//! * a re-key of one M MiB file (default 1024), in MB/s (10^6 bytes of
//!   plaintext per second).
//!
//! The files are written directly with the format crate (a steward's
//! headers, real encrypted names and content), so setting up costs seconds,
//! not a FUSE create per file. Wall times include the CLI's identity unlock
//! (Argon2id, about 0.2 s), which is also timed alone and reported.

use std::{
    fs,
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use rand_core::OsRng;
use tresor_format::{ContentCipher, DirIv, EncryptedName, Header, Identity, Layout, NameCipher, Volume};

use crate::Res;

struct Bench {
    dir: PathBuf,
    tresor: PathBuf,
}

impl Bench {
    fn path(&self, p: &str) -> PathBuf {
        self.dir.join(p)
    }

    fn tresor(&self, args: &[&str], who: Option<&str>) -> Res<String> {
        let mut cmd = Command::new(&self.tresor);
        cmd.args(args).env("TRESOR_DIR", self.path("config"));
        if let Some(who) = who {
            cmd.arg("-i").arg(self.path(&format!("{who}.id"))).arg("--passfile").arg(self.path("pass"));
        }
        let out = cmd.output()?;
        if !out.status.success() {
            return Err(format!("tresor {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr)).into());
        }
        Ok(String::from_utf8(out.stdout)?)
    }
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

pub fn run(args: &[String], workspace: &Path) -> Res {
    if args.iter().any(|a| a == "--help") {
        println!(
            "cargo xtask access-bench [--files N (10000)] [--mib M (1024)] [--tresor PATH (target/release/tresor)]"
        );
        return Ok(());
    }
    let files: usize = arg(args, "--files").map(|s| s.parse()).transpose()?.unwrap_or(10_000);
    let mib: u64 = arg(args, "--mib").map(|s| s.parse()).transpose()?.unwrap_or(1024);
    let tresor = arg(args, "--tresor").map(PathBuf::from).unwrap_or_else(|| workspace.join("target/release/tresor"));
    if !tresor.exists() {
        return Err(format!(
            "{} not found: build it (cargo build --release -p tresor) or pass --tresor",
            tresor.display()
        )
        .into());
    }
    let dir = workspace.join("target/tresor-access-bench");
    if dir.exists() {
        fs::remove_dir_all(&dir)?;
    }
    fs::create_dir_all(&dir)?;
    let b = Bench { dir: dir.canonicalize()?, tresor };
    fs::write(b.path("pass"), "bench passphrase\n")?;
    let pass = b.path("pass");
    for who in ["steward", "bob"] {
        let out = b.path(&format!("{who}.id"));
        b.tresor(
            &["id", "new", "--name", who, "--out", out.to_str().unwrap(), "--passfile", pass.to_str().unwrap()],
            None,
        )?;
    }
    let backing = b.path("backing");
    b.tresor(
        &[
            "init",
            backing.to_str().unwrap(),
            "--steward",
            b.path("steward.id").to_str().unwrap(),
            "--passfile",
            pass.to_str().unwrap(),
        ],
        None,
    )?;
    let bob = b.tresor(&["id", "show", "-i", b.path("bob.id").to_str().unwrap()], None)?;
    b.tresor(&["member", "add", backing.to_str().unwrap(), bob.trim(), "--name", "bob"], Some("steward"))?;

    let steward = Identity::unseal(&fs::read(b.path("steward.id"))?, b"bench passphrase")?;
    let volume = Volume::open_self_signed(&fs::read(backing.join("tresor.volume"))?)?;
    let name_key = volume.name_key(&steward)?;
    let names = NameCipher::new(&name_key);
    let places = tresor_format::PlaceKey::new(&name_key);
    let p = volume.params;

    // N small files in 100 directories.
    let tree = backing.join("tree");
    let root_iv = tresor_format::place::parse_diriv(&fs::read(backing.join("tresor.diriv"))?)?;
    let entry = |iv: &DirIv, name: &str| -> Res<String> {
        Ok(match names.encrypt_name(iv, name.as_bytes())? {
            EncryptedName::Short(e) => e,
            EncryptedName::Long { .. } => return Err("bench names are short".into()),
        })
    };
    let tree_entry = entry(&root_iv, "tree")?;
    let tree = tree.with_file_name(&tree_entry);
    fs::create_dir(&tree)?;
    let tree_iv = DirIv::generate(&mut OsRng);
    let at = tresor_format::Place::In { parent: &root_iv, entry: &tree_entry };
    fs::write(tree.join("tresor.diriv"), places.seal_diriv(&tree_iv, at))?;
    let per_dir = 100;
    let t = Instant::now();
    for d in 0..files.div_ceil(per_dir) {
        let sub_entry = entry(&tree_iv, &format!("d{d}"))?;
        let sub = tree.join(&sub_entry);
        fs::create_dir(&sub)?;
        let iv = DirIv::generate(&mut OsRng);
        let at = tresor_format::Place::In { parent: &tree_iv, entry: &sub_entry };
        fs::write(sub.join("tresor.diriv"), places.seal_diriv(&iv, at))?;
        for f in 0..per_dir.min(files - d * per_dir) {
            let (header, key) = Header::create(&volume, &steward, &[*steward.public()], 1, &mut OsRng)?;
            let cipher = ContentCipher::new(p.suite, &key, &header.file_id, p.block_size);
            let mut bytes = header.to_bytes()?;
            let mut block = vec![0u8; 100 + 28];
            cipher.seal_block(0, &[7u8; 100], &mut block, &mut OsRng);
            bytes.extend_from_slice(&block);
            bytes.extend_from_slice(&cipher.seal_trailer(1, &mut OsRng));
            fs::write(sub.join(entry(&iv, &format!("f{f}.csv"))?), bytes)?;
        }
    }
    println!("set up {files} files in {:.1} s", t.elapsed().as_secs_f64());

    let t = Instant::now();
    b.tresor(&["policy", "show", backing.to_str().unwrap()], Some("steward"))?;
    let unlock = t.elapsed().as_secs_f64();
    println!("identity unlock + one command: {unlock:.2} s");

    let t = Instant::now();
    b.tresor(&["grant", "-r", tree.to_str().unwrap(), "--to", "bob"], Some("steward"))?;
    let grant = t.elapsed().as_secs_f64();
    println!(
        "recursive grant over {files} files: {grant:.2} s = {:.0} files/s ({:.0} files/s without the unlock)",
        files as f64 / grant,
        files as f64 / (grant - unlock).max(1e-9)
    );

    // One big file.
    let big = backing.join(entry(&root_iv, "big.bin")?);
    let size = mib << 20;
    let (header, key) = Header::create(&volume, &steward, &[*steward.public()], 1, &mut OsRng)?;
    let cipher = ContentCipher::new(p.suite, &key, &header.file_id, p.block_size);
    let layout = Layout::new(p.header_len, p.block_size);
    let f = fs::File::create(&big)?;
    f.write_all_at(&header.to_bytes()?, 0)?;
    let bs = p.block_size as usize;
    let chunk_blocks = 256;
    let pt = vec![0x5au8; bs];
    let mut out = vec![0u8; chunk_blocks * (bs + 28)];
    let n = layout.block_count(size);
    let mut k = 0;
    while k < n {
        let c = (n - k).min(chunk_blocks as u64) as usize;
        for i in 0..c {
            cipher.seal_block(k + i as u64, &pt, &mut out[i * (bs + 28)..(i + 1) * (bs + 28)], &mut OsRng);
        }
        f.write_all_at(&out[..c * (bs + 28)], layout.block_offset(k))?;
        k += c as u64;
    }
    f.write_all_at(&cipher.seal_trailer(n, &mut OsRng), layout.trailer_offset(size))?;
    drop(f);
    let t = Instant::now();
    b.tresor(&["rekey", big.to_str().unwrap()], Some("steward"))?;
    let rekey = t.elapsed().as_secs_f64();
    println!(
        "re-key of {mib} MiB: {rekey:.2} s = {:.0} MB/s ({:.0} MB/s without the unlock)",
        size as f64 / 1e6 / rekey,
        size as f64 / 1e6 / (rekey - unlock).max(1e-9)
    );
    fs::remove_dir_all(&dir)?;
    Ok(())
}
