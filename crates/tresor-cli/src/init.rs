//! `tresor init`: a new volume in an empty backing directory.

use std::{fs, path::PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use rand_core::OsRng;
use tresor_format::{names, volume::DEFAULT_VALIDITY_SECS, DirIv, Place, PlaceKey, Suite, Volume, VolumeParams};

use crate::{config, id, passphrase::PassSource};

#[derive(Args, Debug)]
pub struct InitArgs {
    /// The backing directory (created if missing; must be empty).
    pub backing: PathBuf,
    /// The steward's identity file: the volume's first member, who signs the
    /// registry [default: ~/.config/tresor/identity].
    #[arg(long, short = 'i', visible_alias = "identity", value_name = "FILE", env = "TRESOR_IDENTITY")]
    pub steward: Option<PathBuf>,
    /// Content cipher: aes-256-gcm-siv (default; nonce-misuse resistant),
    /// aes-256-gcm, or chacha20-poly1305 (for hosts without AES instructions).
    #[arg(long, default_value = "aes-256-gcm-siv")]
    pub cipher: String,
    /// Plaintext bytes per block (power of two, 4096 to 1048576).
    #[arg(long, default_value_t = VolumeParams::default().block_size)]
    pub block_size: u32,
    /// Bytes reserved for each file header: 4096 holds 40 recipients per file.
    #[arg(long, default_value_t = VolumeParams::default().header_len)]
    pub header_size: u32,
    /// Days each signature keeps the member registry valid. Every change
    /// renews it; `tresor member renew` renews it without a change. A node
    /// that has never seen the volume can be shown a rolled-back registry
    /// for at most this long (THREAT-MODEL.md).
    #[arg(long, value_name = "DAYS", default_value_t = DEFAULT_VALIDITY_SECS / 86_400)]
    pub registry_valid_days: u64,
    /// Let members mount without an audit log (`-o audit=off`) or with it
    /// elsewhere. By default the volume requires every mount and command to
    /// keep its log in the volume; `tresor member audit-policy` changes it.
    #[arg(long)]
    pub audit_optional: bool,
    /// Do not make the steward a default recipient of the root directory.
    /// By default every file created in the volume is also readable by the
    /// steward, so a member's lost passphrase loses no file they created and
    /// a steward can grant, revoke and re-key any file; with this flag, a
    /// new file is readable by its creator only until someone sets a policy
    /// (`tresor policy set`).
    #[arg(long)]
    pub no_steward_default: bool,
    #[command(flatten)]
    pub pass: PassSource,
}

fn suite(name: &str) -> Result<Suite> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "aes-256-gcm" | "aes256gcm" => Suite::Aes256Gcm,
        "aes-256-gcm-siv" | "aes256gcmsiv" => Suite::Aes256GcmSiv,
        "chacha20-poly1305" | "chacha20poly1305" => Suite::ChaCha20Poly1305,
        other => bail!("unknown cipher {other:?}: use aes-256-gcm, aes-256-gcm-siv or chacha20-poly1305"),
    })
}

pub fn run(args: InitArgs) -> Result<()> {
    let params =
        VolumeParams { suite: suite(&args.cipher)?, block_size: args.block_size, header_len: args.header_size };
    fs::create_dir_all(&args.backing).with_context(|| format!("creating {}", args.backing.display()))?;
    let root = crate::backing::Root::open(&args.backing)?;
    let listing = tresor_sys::openat(root.fd(), c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)
        .and_then(tresor_sys::read_dir)
        .with_context(|| format!("listing {}", args.backing.display()))?;
    if !listing.is_empty() {
        bail!("{} is not empty: a volume starts in an empty directory", args.backing.display());
    }
    let steward_path = args.steward.unwrap_or_else(config::default_identity);
    let steward = id::unlock(&steward_path, &args.pass)?;
    let (mut volume, name_key) = Volume::create(&steward, params, &mut OsRng)?;
    let validity = args.registry_valid_days.saturating_mul(86_400);
    if args.audit_optional {
        volume.set_audit_policy(tresor_format::AuditPolicy { required: false, ..volume.audit.clone() })?;
    }
    // The root's policy names the steward, so no file is readable by its
    // creator alone (docs/OPERATIONS.md, "Stewards and lost passphrases").
    let root_dir_iv = DirIv::generate(&mut OsRng);
    if !args.no_steward_default {
        volume.set_policy(root_dir_iv, &[steward.id()])?;
    }
    if validity != volume.validity() || args.audit_optional || !args.no_steward_default {
        volume.set_validity(validity)?;
        volume.sign(&steward)?;
    }
    // The root IV first: a volume file without it would be a half-made volume.
    // Both made O_EXCL beneath the root's descriptor: nothing planted meanwhile is followed or reused.
    let create = |name: &str, bytes: &[u8]| -> Result<()> {
        let path = args.backing.join(name);
        tresor_sys::write_new(root.fd(), &tresor_sys::cstring(name.as_bytes())?, bytes, 0o644)
            .map_err(|e| crate::backing::explain(&path, e))
            .with_context(|| format!("creating {}", path.display()))
    };
    let root_iv = PlaceKey::new(&name_key).seal_diriv(&root_dir_iv, Place::Root);
    create(names::DIRIV_FILE, &root_iv)?;
    create(names::VOLUME_FILE, &volume.to_bytes())?;
    tresor_sys::sync_dir(root.fd())?;
    config::pin_for(&volume.to_bytes(), Some(steward.public()))?;
    println!(
        "created volume {} in {} ({}, {} KiB blocks, {}-byte headers); steward {} ({}){}",
        hex::encode(volume.id),
        args.backing.display(),
        params.suite.as_str(),
        params.block_size / 1024,
        params.header_len,
        crate::output::terminal(steward.name()),
        steward.id(),
        if args.no_steward_default {
            "; new files are readable by their creator only"
        } else {
            "; the steward reads every new file (root policy)"
        }
    );
    crate::registry::warn_if_single_steward(&volume);
    Ok(())
}
