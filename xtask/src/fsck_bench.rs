//! `cargo xtask fsck-bench [--files N] [--per-dir N] [--size BYTES] [--big-mib M] [--tresor PATH] [--keep]`:
//! how fast `tresor fsck` checks a volume, with the real binary.
//!
//! Builds a volume directly with `tresor-format` (no mount: N files take
//! seconds, not hours): `--files` files of `--size` bytes in directories of
//! `--per-dir`, each a valid file (header signed by the steward, content
//! sealed) under an encrypted name, every directory IV tagged with its
//! place; plus one file of `--big-mib` MiB. Then runs
//!
//! 1. `tresor fsck BACKING --headers-only` without an identity: files/s;
//! 2. `tresor fsck BACKING -i STEWARD`: every name, place tag, block and
//!    trailer: files/s and MB/s of content,
//!
//! and prints each run's peak resident memory (VmHWM of the fsck process,
//! reported in its JSON). Both runs read from the page cache (the volume was
//! just written): the figures are fsck's cost, not the disk's.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use rand_core::OsRng;
use tresor_format::{
    content::ContentCipher, DirIv, EncryptedName, Header, Identity, KdfParams, NameCipher, Place, PlaceKey, Volume,
    VolumeParams,
};

use crate::Res;

const PASS: &str = "fsck-bench";

struct Opts {
    files: u64,
    per_dir: u64,
    size: usize,
    big_mib: usize,
    tresor: Option<PathBuf>,
    keep: bool,
}

fn parse(args: &[String]) -> Res<Opts> {
    let mut o = Opts { files: 100_000, per_dir: 1000, size: 1000, big_mib: 256, tresor: None, keep: false };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--files" => o.files = val()?.parse()?,
            "--per-dir" => o.per_dir = val()?.parse()?,
            "--size" => o.size = val()?.parse()?,
            "--big-mib" => o.big_mib = val()?.parse()?,
            "--tresor" => o.tresor = Some(PathBuf::from(val()?)),
            "--keep" => o.keep = true,
            _ => return Err(format!("unknown option {a}; see the module docs of xtask/src/fsck_bench.rs").into()),
        }
    }
    Ok(o)
}

fn name(cipher: &NameCipher, iv: &DirIv, plain: &str) -> Res<String> {
    Ok(match cipher.encrypt_name(iv, plain.as_bytes())? {
        EncryptedName::Short(s) => s,
        EncryptedName::Long { .. } => return Err("bench names are short".into()),
    })
}

/// A complete backing file of `len` plaintext bytes.
fn file_bytes(volume: &Volume, steward: &Identity, len: usize) -> Res<Vec<u8>> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let (header, key) = Header::create(volume, steward, std::slice::from_ref(steward.public()), now, &mut OsRng)?;
    let p = volume.params;
    let cipher = ContentCipher::new(p.suite, &key, &header.file_id, p.block_size);
    let plain: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let mut out = header.to_bytes()?;
    out.extend_from_slice(&cipher.seal_content(&plain, &mut OsRng));
    Ok(out)
}

fn build(dir: &Path, o: &Opts) -> Res<PathBuf> {
    let back = dir.join("back");
    fs::create_dir_all(&back)?;
    let steward = Identity::generate("bench", &mut OsRng)?;
    fs::write(dir.join("steward.id"), steward.seal(PASS.as_bytes(), KdfParams::INSECURE_FOR_TESTS, &mut OsRng)?)?;
    fs::write(dir.join("pass"), format!("{PASS}\n"))?;
    let (volume, name_key) = Volume::create(&steward, VolumeParams::default(), &mut OsRng)?;
    fs::write(back.join("tresor.volume"), volume.to_bytes())?;
    let (names, place) = (NameCipher::new(&name_key), PlaceKey::new(&name_key));
    let root_iv = DirIv::generate(&mut OsRng);
    fs::write(back.join("tresor.diriv"), place.seal_diriv(&root_iv, Place::Root))?;
    // A few distinct files, copied: placement is not bound (FORMAT.md §11),
    // and each copy costs fsck the same as a file of its own.
    let blobs: Vec<Vec<u8>> = (0..8).map(|_| file_bytes(&volume, &steward, o.size)).collect::<Res<_>>()?;
    let started = Instant::now();
    let dirs = o.files.div_ceil(o.per_dir);
    let mut made = 0;
    for d in 0..dirs {
        let entry = name(&names, &root_iv, &format!("d{d}"))?;
        let sub = back.join(&entry);
        fs::create_dir(&sub)?;
        let iv = DirIv::generate(&mut OsRng);
        fs::write(sub.join("tresor.diriv"), place.seal_diriv(&iv, Place::In { parent: &root_iv, entry: &entry }))?;
        for f in 0..o.per_dir.min(o.files - made) {
            fs::write(sub.join(name(&names, &iv, &format!("f{f}"))?), &blobs[(f % 8) as usize])?;
        }
        made += o.per_dir.min(o.files - made);
    }
    if o.big_mib > 0 {
        let big = file_bytes(&volume, &steward, o.big_mib << 20)?;
        fs::write(back.join(name(&names, &root_iv, "big.bin")?), big)?;
    }
    eprintln!("built {} files in {dirs} directories in {:.1} s", o.files, started.elapsed().as_secs_f64());
    Ok(back)
}

fn fsck(tresor: &Path, dir: &Path, extra: &[&str]) -> Res<serde_json::Value> {
    let out = Command::new(tresor)
        .arg("fsck")
        .arg(dir.join("back"))
        .args(["--json", "--quiet"])
        .args(extra)
        .env("TRESOR_DIR", dir.join("config"))
        .env_remove("TRESOR_IDENTITY")
        .output()?;
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("fsck printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)))?;
    if doc["exit_code"] != 0 {
        return Err(format!("the bench volume is not clean: {doc:#}").into());
    }
    Ok(doc)
}

pub fn run(args: &[String], ws: &Path) -> Res {
    let o = parse(args)?;
    let tresor = match &o.tresor {
        Some(t) => t.clone(),
        None => {
            let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .args(["build", "--release", "-p", "tresor"])
                .current_dir(ws)
                .status()?;
            if !status.success() {
                return Err("building tresor failed".into());
            }
            ws.join("target/release/tresor")
        }
    };
    let dir = ws.join(format!("target/fsck-bench-{}", std::process::id()));
    build(&dir, &o)?;
    let h = fsck(&tresor, &dir, &["--headers-only"])?;
    let s = &h["summary"];
    println!(
        "headers only, no identity: {} files in {:.2} s: {:.0} files/s; VmHWM {} KiB",
        s["files"],
        s["seconds"].as_f64().unwrap_or(0.0),
        s["files_per_second"].as_f64().unwrap_or(0.0),
        h["vm_hwm_kib"]
    );
    let id = dir.join("steward.id").display().to_string();
    let pass = dir.join("pass").display().to_string();
    let f = fsck(&tresor, &dir, &["-i", &id, "--passfile", &pass])?;
    let s = &f["summary"];
    let secs = s["seconds"].as_f64().unwrap_or(0.0).max(1e-9);
    println!(
        "full content, steward identity: {} files, {:.1} MB in {secs:.2} s: {:.0} files/s, {:.0} MB/s; VmHWM {} KiB",
        s["files"],
        s["content_bytes"].as_f64().unwrap_or(0.0) / 1e6,
        s["files_per_second"].as_f64().unwrap_or(0.0),
        s["content_bytes"].as_f64().unwrap_or(0.0) / 1e6 / secs,
        f["vm_hwm_kib"]
    );
    if !o.keep {
        fs::remove_dir_all(&dir)?;
    }
    Ok(())
}
