//! `tresor info`: what a volume is and what this client knows of it. The
//! JSON schema is documented in docs/OPERATIONS-fsck-info.md.

use std::{
    collections::HashMap,
    fs,
    os::fd::{AsFd, BorrowedFd},
    path::{Path, PathBuf},
};

use anyhow::Result;
use clap::Args;
use serde::Serialize;
use tresor_format::{
    names::{self, classify, EntryKind},
    place::{parse_diriv, DIRIV_FILE_MAX},
    volume::VOLUME_VERSION,
    DirIv, NameCipher, Role, Volume,
};

use crate::{
    config, id,
    output::{self, MemberRef, MemberRow},
    passphrase::PassSource,
};

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// The volume's backing directory.
    pub backing: PathBuf,
    /// One JSON document (schema: docs/OPERATIONS-fsck-info.md).
    #[arg(long)]
    pub json: bool,
    /// A member's identity file: shows each policy's plaintext directory.
    #[arg(long, short, value_name = "FILE", env = "TRESOR_IDENTITY")]
    pub identity: Option<PathBuf>,
    #[command(flatten)]
    pub pass: PassSource,
}

#[derive(Serialize)]
struct Info {
    backing: String,
    format_version: u16,
    suite: &'static str,
    suite_id: u8,
    block_size: u32,
    header_len: u32,
    max_recipients: usize,
    volume_id: String,
    registry: Registry,
    members: Vec<MemberRow>,
    stewards: Vec<String>,
    policies: Vec<PolicyRow>,
    audit: Audit,
    client: Client,
}

#[derive(Serialize)]
struct Registry {
    #[serde(serialize_with = "output::u64_safe")]
    generation: u64,
    signed_at: String,
    expires_at: String,
    signer: MemberRef,
    /// Problems `tresor fsck` would report for the registry (empty: trusted, current).
    problems: Vec<String>,
}

#[derive(Serialize)]
struct PolicyRow {
    dir_iv: String,
    /// The plaintext directory, when an identity was given and the IV was found.
    path: Option<String>,
    default_recipients: Vec<MemberRef>,
}

#[derive(Serialize)]
struct Audit {
    directory: &'static str,
    logs: u64,
    bytes: u64,
}

#[derive(Serialize)]
struct Client {
    config_dir: String,
    pinned_steward: Option<String>,
    #[serde(serialize_with = "output::opt_u64_safe")]
    highest_generation_seen: Option<u64>,
}

pub fn run(args: InfoArgs) -> Result<u8> {
    let (volume, problems) = crate::fsck::registry(&args.backing)?;
    let names = match &args.identity {
        Some(p) => {
            let identity = id::unlock(p, &args.pass)?;
            Some(NameCipher::new(&volume.name_key(&identity)?))
        }
        None => None,
    };
    let paths = match &names {
        Some(n) if volume.policies().next().is_some() => policy_paths(&args.backing, &volume, n),
        _ => HashMap::new(),
    };
    let p = volume.params;
    // The pin file is the generation file without its extension (config.rs).
    let gen_path = config::generation_path(&volume.id);
    let pin_path = gen_path.with_extension("");
    let info = Info {
        backing: args.backing.display().to_string(),
        format_version: VOLUME_VERSION,
        suite: p.suite.as_str(),
        suite_id: p.suite as u8,
        block_size: p.block_size,
        header_len: p.header_len,
        max_recipients: tresor_format::header::max_recipients(p.header_len),
        volume_id: hex::encode(volume.id),
        registry: Registry {
            generation: volume.generation,
            signed_at: output::rfc3339(volume.signed_at),
            expires_at: output::rfc3339(volume.expires_at),
            signer: MemberRef::of(&volume, &volume.signer()),
            problems: problems.into_iter().map(|f| format!("{}: {}", f.class.as_str(), f.message)).collect(),
        },
        members: volume.members().iter().map(|m| MemberRow::new(&m.name, m.role, m.public, None)).collect(),
        stewards: volume.members().iter().filter(|m| m.role == Role::Steward).map(|m| m.name.clone()).collect(),
        policies: volume
            .policies()
            .map(|(iv, rcpt)| PolicyRow {
                dir_iv: hex::encode(iv.0),
                path: paths.get(iv).cloned(),
                default_recipients: rcpt.iter().map(|r| MemberRef::of(&volume, r)).collect(),
            })
            .collect(),
        audit: audit(&args.backing),
        client: Client {
            config_dir: config::dir().display().to_string(),
            pinned_steward: fs::read_to_string(&pin_path).ok().map(|t| t.trim().to_owned()),
            highest_generation_seen: fs::read_to_string(&gen_path).ok().and_then(|t| t.trim().parse().ok()),
        },
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&info)?);
    } else {
        print_text(&info);
    }
    Ok(0)
}

fn audit(backing: &Path) -> Audit {
    let mut a = Audit { directory: tresor_audit::DEFAULT_DIR, logs: 0, bytes: 0 };
    if let Ok(rd) = fs::read_dir(backing.join(tresor_audit::DEFAULT_DIR)) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().ends_with(".log") {
                a.logs += 1;
                a.bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
    }
    a
}

/// Plaintext paths of the directories whose IV has a policy, by a walk of
/// the directories (no symlink followed); stops once all are found.
fn policy_paths(backing: &Path, volume: &Volume, names: &NameCipher) -> HashMap<DirIv, String> {
    let mut want: usize = volume.policies().count();
    let mut found = HashMap::new();
    let Ok(root) = fs::File::open(backing) else { return found };
    walk(root.as_fd(), "/", volume, names, &mut want, &mut found, 0);
    found
}

fn walk(
    dir: BorrowedFd<'_>,
    plain: &str,
    volume: &Volume,
    names: &NameCipher,
    want: &mut usize,
    found: &mut HashMap<DirIv, String>,
    depth: usize,
) {
    let Some(iv) = read_small(dir, names::DIRIV_FILE, DIRIV_FILE_MAX).and_then(|b| parse_diriv(&b).ok()) else {
        return;
    };
    if volume.policy(&iv).is_some() {
        found.insert(iv, plain.to_owned());
        *want -= 1;
    }
    if *want == 0 || depth > 4096 {
        return;
    }
    let Ok(list) = tresor_sys::openat(dir, c".", libc::O_RDONLY | libc::O_DIRECTORY, 0).and_then(tresor_sys::read_dir)
    else {
        return;
    };
    for e in list {
        let Ok(entry) = String::from_utf8(e.name) else { continue };
        let encrypted = match classify(&entry) {
            EntryKind::Reserved => continue,
            EntryKind::Short => entry.clone(),
            EntryKind::Long => match read_small(dir, &names::long_name_sidecar(&entry), 1024) {
                Some(b) => String::from_utf8_lossy(&b).into_owned(),
                None => continue,
            },
        };
        let Ok(name) = names.decrypt_name(&iv, &encrypted) else { continue };
        let Ok(cname) = tresor_sys::cstring(entry.as_bytes()) else { continue };
        let Ok(sub) = tresor_sys::openat(
            dir,
            &cname,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_NONBLOCK,
            0,
        ) else {
            continue;
        };
        let path = if plain == "/" {
            format!("/{}", String::from_utf8_lossy(&name))
        } else {
            format!("{plain}/{}", String::from_utf8_lossy(&name))
        };
        walk(sub.as_fd(), &path, volume, names, want, found, depth + 1);
        if *want == 0 {
            return;
        }
    }
}

/// A small regular file in `dir`, opened without following a symlink or
/// blocking (a planted FIFO is refused by type), at most `max` bytes.
fn read_small(dir: BorrowedFd<'_>, name: &str, max: usize) -> Option<Vec<u8>> {
    let cname = tresor_sys::cstring(name.as_bytes()).ok()?;
    let fd = tresor_sys::openat(dir, &cname, libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK, 0).ok()?;
    let st = tresor_sys::fstat(fd.as_fd()).ok()?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG || st.st_size.max(0) as usize > max {
        return None;
    }
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(fs::File::from(fd), max as u64), &mut out).ok()?;
    Some(out)
}

fn print_text(i: &Info) {
    println!("backing          {}", i.backing);
    println!("format           volume file version {}", i.format_version);
    println!("suite            {} ({})", i.suite, i.suite_id);
    println!("block size       {} bytes", i.block_size);
    println!("header size      {} bytes (up to {} readers per file)", i.header_len, i.max_recipients);
    println!("volume id        {}", i.volume_id);
    let r = &i.registry;
    println!(
        "registry         generation {}, signed {} by {} ({}), expires {}",
        r.generation,
        r.signed_at,
        output::terminal(r.signer.name.as_deref().unwrap_or("?")),
        r.signer.id,
        r.expires_at
    );
    for p in &r.problems {
        println!("  PROBLEM        {p}");
    }
    println!("members          {}", i.members.len());
    for m in &i.members {
        println!("  {:<24} {:<8} {}", output::terminal(&m.name), m.role, m.id);
    }
    let stewards: Vec<_> = i.stewards.iter().map(|s| output::terminal(s)).collect();
    println!("stewards         {}", stewards.join(", "));
    println!("policies         {}", i.policies.len());
    for p in &i.policies {
        let who: Vec<String> = p
            .default_recipients
            .iter()
            .map(|m| m.name.as_deref().map(output::terminal).map_or(m.id.clone(), Into::into))
            .collect();
        let at = p.path.as_deref().map_or("(directory not located: give -i IDENTITY)".into(), output::terminal);
        println!(
            "  {} {at}: {}",
            p.dir_iv,
            if who.is_empty() { "nobody besides the creator".into() } else { who.join(", ") }
        );
    }
    println!("audit            {}/: {} logs, {} bytes", i.audit.directory, i.audit.logs, i.audit.bytes);
    println!("this client      {}", i.client.config_dir);
    println!("  pinned steward {}", i.client.pinned_steward.as_deref().unwrap_or("(none)"));
    match i.client.highest_generation_seen {
        Some(g) => println!("  generation     {g} (highest seen)"),
        None => println!("  generation     (none seen)"),
    }
}
