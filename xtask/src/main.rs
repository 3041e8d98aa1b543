//! Project tasks, run as `cargo xtask <task>`.
//!
//! - `demo [DIR]`: builds a small volume in DIR (default `target/tresor-demo`)
//!   with the format crate and shows per-file access control and tamper
//!   detection on real files.
//! - `vectors`: rewrites `tests/vectors/*.json` from the inputs in
//!   `crates/tresor-format/tests/vectors.rs`. Only for a format change, which
//!   also bumps the version and changes docs/FORMAT.md.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

use rand_core::OsRng;
use tresor_format::{
    names, ContentCipher, DirIv, EncryptedName, Header, Identity, KdfParams, Layout, NameCipher, Policy, Role, Volume,
    VolumeParams,
};

type Res<T = ()> = Result<T, Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("demo") => demo(args.get(1).map(PathBuf::from).unwrap_or_else(|| workspace().join("target/tresor-demo"))),
        Some("vectors") => vectors(),
        _ => {
            eprintln!("usage: cargo xtask demo [DIR] | cargo xtask vectors");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn vectors() -> Res {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["test", "--quiet", "-p", "tresor-format", "--test", "vectors"])
        .env("TRESOR_WRITE_VECTORS", "1")
        .current_dir(workspace())
        .status()?;
    if !status.success() {
        return Err("writing the vectors failed".into());
    }
    println!("wrote {}", workspace().join("tests/vectors").display());
    Ok(())
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// What `tresor` will do through its mount and CLI, done here by hand with the
/// format crate on a real backing directory.
fn demo(dir: PathBuf) -> Res {
    if dir.exists() {
        fs::remove_dir_all(&dir)?;
    }
    fs::create_dir_all(&dir)?;
    let rng = &mut OsRng;
    println!("Tresor format demo in {}\n", dir.display());

    // Identities: a steward and a researcher, sealed with Argon2id.
    let steward = Identity::generate("steward", rng)?;
    let alice = Identity::generate("alice", rng)?;
    let outsider = Identity::generate("outsider", rng)?;
    let t = std::time::Instant::now();
    let sealed = alice.seal(b"alice's passphrase", KdfParams::default(), rng)?;
    fs::write(dir.join("alice.identity"), &sealed)?;
    let alice = Identity::unseal(&fs::read(dir.join("alice.identity"))?, b"alice's passphrase")?;
    println!("1. alice's identity file sealed and unsealed with Argon2id (64 MiB, 3 passes): {:.2?}", t.elapsed());
    println!("   public identity: {}", alice.public());
    println!("   wrong passphrase: {}", Identity::unseal(&sealed, b"guess").unwrap_err());

    // The volume: steward signs a registry holding alice.
    let backing = dir.join("backing");
    fs::create_dir_all(&backing)?;
    let (mut volume, name_key) = Volume::create(&steward, VolumeParams::default(), rng)?;
    volume.add_member(&name_key, alice.public(), "alice", Role::Member, rng)?;
    volume.sign(&steward)?;
    fs::write(backing.join(names::VOLUME_FILE), volume.to_bytes())?;
    let pinned = [steward.public().ed25519];
    let volume = Volume::open(&fs::read(backing.join(names::VOLUME_FILE))?, &pinned)?;
    println!(
        "\n2. volume {} with {} members, {} blocks of {} KiB; registry verified against the pinned steward key",
        hex(&volume.id[..4]),
        volume.members().len(),
        volume.params.suite.as_str(),
        volume.params.block_size / 1024
    );

    // A directory with its IV and a policy, and a file in it.
    let root_iv = DirIv::generate(rng);
    fs::write(backing.join(names::DIRIV_FILE), root_iv.0)?;
    let policy = Policy::create(&volume, root_iv, &[steward.id()], &steward, now())?;
    fs::write(backing.join(names::POLICY_FILE), policy.to_bytes())?;
    let names_cipher = NameCipher::new(&volume.name_key(&alice)?);
    let plaintext = b"patient_id,age,outcome\n1001,54,recovered\n1002,61,readmitted\n".repeat(2000);
    let recipients = [*alice.public(), *steward.public()];
    let (header, key) = Header::create(&volume, &alice, &recipients, now(), rng)?;
    let cipher = ContentCipher::new(volume.params.suite, &key, &header.file_id, volume.params.block_size);
    let mut file = header.to_bytes()?;
    file.extend_from_slice(&cipher.seal_content(&plaintext, rng));
    let EncryptedName::Short(entry) = names_cipher.encrypt_name(&root_iv, b"cohort.csv")? else { unreachable!() };
    let path = backing.join(&entry);
    fs::write(&path, &file)?;
    println!(
        "\n3. alice wrote cohort.csv ({} bytes) for herself and the steward (the policy's default)",
        plaintext.len()
    );
    println!("   stored as {} ({} bytes)", path.strip_prefix(&dir)?.display(), file.len());
    println!("   backing directory: {:?}", list(&backing)?);

    // Reading it back as each person.
    let stored = fs::read(&path)?;
    let layout = Layout::new(volume.params.header_len, volume.params.block_size);
    let header = Header::parse(&stored)?;
    header.verify(&volume)?;
    println!(
        "\n4. header verified: written by {} at {}; size from the file length alone: {} bytes",
        volume.member(&header.writer()).map(|m| m.name.as_str()).unwrap_or("?"),
        header.signed_at(),
        layout.plaintext_size(stored.len() as u64)?
    );
    for who in [&steward, &alice, &outsider] {
        let outcome = header.file_key(who).and_then(|k| {
            ContentCipher::new(volume.params.suite, &k, &header.file_id, volume.params.block_size)
                .open_content(&stored[header.reserved_len() as usize..])
        });
        match outcome {
            Ok(p) => println!("   {:8} reads it: {:?}…", who.name(), String::from_utf8_lossy(&p[..22])),
            Err(e) => println!("   {:8} is refused: {e}", who.name()),
        }
    }

    // Tampering.
    let mut tampered = stored.clone();
    let at = layout.block_offset(1) as usize + 100;
    tampered[at] ^= 1;
    let err = cipher.open_content(&tampered[header.reserved_len() as usize..]).unwrap_err();
    println!("\n5. one bit flipped at byte {at} of the ciphertext: {err}");
    let cut = &stored[header.reserved_len() as usize..layout.block_offset(1) as usize];
    println!("   the file cut after its first block: {}", cipher.open_content(cut).unwrap_err());
    let mut forged = stored.clone();
    forged[header.reserved_len() as usize - 200] = 1;
    println!("   a byte written into the header padding: {}", Header::parse(&forged).unwrap_err());
    println!(
        "   a file name that is not ours: {}",
        names_cipher.decrypt_name(&root_iv, "bm90LWEtbmFtZS1mcm9tLXRoaXMtdm9sdW1l").unwrap_err()
    );
    println!("\nDone. The files are in {}.", dir.display());
    Ok(())
}

fn list(dir: &Path) -> Res<Vec<String>> {
    let mut names: Vec<String> = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    names.sort();
    Ok(names)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
