//! `tresor acl`: who can read each file, who signed its header and when,
//! and any header that breaks the access rules. JSON rows: docs/OUTPUT.md.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;
use tresor_format::{policy::check_header, Header};

use crate::{
    access::{for_each_file, Outcome},
    id,
    output::{self, terminal, MemberRef, Reader},
    resolve,
};

#[derive(Args, Debug)]
pub struct AclArgs {
    /// Files (or, with -r, directories): backing paths, plaintext paths below the backing directory, or paths in a live mount.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Include everything below directories (stale tresor.tmp.* leftovers of
    /// interrupted runs found on the way are removed).
    #[arg(short, long)]
    recursive: bool,
    /// One JSON object per file, for scripts (schema: docs/OUTPUT.md).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    who: id::Viewer,
}

/// One file (`tresor acl --json`).
#[derive(Serialize)]
struct AclRow {
    /// The plaintext path from the volume root (`<entry>` where a name
    /// cannot be decrypted).
    path: String,
    readers: Vec<Reader>,
    signed_by: MemberRef,
    signed_at: String,
    /// Why the header breaks the member header rule, or null.
    violation: Option<String>,
}

pub fn acl(args: AclArgs) -> Result<u8> {
    let me = args.who.unlock()?;
    let json = args.json;
    for_each_file(&args.paths, args.recursive, me.as_ref(), None, "", |vol, path, shown, _| {
        let volume = &vol.volume;
        let mut bytes = vec![0u8; volume.params.header_len as usize];
        std::os::unix::fs::FileExt::read_exact_at(&vol.backing.file(path, libc::O_RDONLY)?.0, &mut bytes, 0)
            .with_context(|| format!("{}: reading the header", terminal(shown)))?;
        let header = Header::open(&bytes, volume).with_context(|| format!("{}: file header", terminal(shown)))?;
        let in_force = resolve::policy_in_force(vol, path.parent().expect("a file has a directory"))?;
        let violation = check_header(volume, &header, in_force.as_ref().map(|(_, d)| d.as_slice())).err();
        let row = AclRow {
            path: shown.to_owned(),
            readers: header.recipients().map(|r| Reader::of(volume, &r)).collect(),
            signed_by: MemberRef::of(volume, &header.writer()),
            signed_at: output::rfc3339(header.signed_at()),
            violation: violation.map(|v| v.to_string()),
        };
        if json {
            output::json_line(&row)?;
        } else {
            print_text(&row);
        }
        Ok(Outcome::Done)
    })
}

fn print_text(row: &AclRow) {
    let name = |n: &Option<String>, id: &str| match n {
        Some(n) => terminal(n).into_owned(),
        None => format!("<removed {id}>"),
    };
    println!("{}", terminal(&row.path));
    for r in &row.readers {
        println!("  reader  {:<20} {:<8} {}", name(&r.name, &r.id), r.role, r.id);
    }
    println!("  signed by {} at {}", name(&row.signed_by.name, &row.signed_by.id), row.signed_at);
    if let Some(v) = &row.violation {
        println!("  VIOLATION: {v}");
    }
}
