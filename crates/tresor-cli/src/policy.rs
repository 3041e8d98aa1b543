//! `tresor policy`: the default recipients of new files below a directory
//! (kept in the signed registry, keyed by the directory's IV).

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{ArgGroup, Subcommand};
use serde::Serialize;
use tresor_audit::{Event, Op};
use tresor_format::{policy::check_header, Header, MemberId, Volume};

use crate::{
    access::{audit, close_audit, open_vol, resign, steward, walk, Who, EXIT_SOME_FAILED},
    id,
    output::{self, terminal, MemberRef},
    progress::{note, Progress},
    registry, resolve,
};

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Set the default recipients of files created below DIR (down to the
    /// next directory with a policy of its own): `--default MEMBER...`,
    /// `--none` for nobody but each file's creator, or `--unset`. Member-
    /// signed headers below DIR that the new policy would no longer allow
    /// are re-signed by you.
    #[command(group(ArgGroup::new("change").required(true).args(["defaults", "none", "unset"])))]
    Set {
        /// The directory: a backing path, a plaintext path below the backing directory, or a path in a live mount.
        dir: PathBuf,
        /// Members (names or ids) every new file below DIR is readable by,
        /// besides its creator.
        #[arg(long = "default", num_args = 1.., value_name = "MEMBER")]
        defaults: Vec<String>,
        /// New files below DIR are readable by their creator only (a steward
        /// then cannot grant or re-key them, nor recover them if the
        /// creator's passphrase is lost).
        #[arg(long)]
        none: bool,
        /// Remove DIR's policy instead: its files follow the nearest ancestor's.
        #[arg(long)]
        unset: bool,
        #[command(flatten)]
        who: Who,
    },
    /// Show DIR's own policy and the policy in force for it.
    Show {
        /// The directory: a backing path, a plaintext path below the backing directory, or a path in a live mount.
        dir: PathBuf,
        /// One JSON object, for scripts (schema: docs/OUTPUT.md).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        who: id::Viewer,
    },
}

/// `tresor policy show --json`.
#[derive(Serialize)]
struct PolicyShow {
    dir: String,
    /// DIR's own default recipients, or null if it has no policy of its own.
    own: Option<Vec<MemberRef>>,
    /// The default recipients in force for DIR, or null (creator only).
    in_force: Option<Vec<MemberRef>>,
    /// The directory whose policy is in force (`/`: the root), or null.
    in_force_from: Option<String>,
    #[serde(serialize_with = "output::u64_safe")]
    generation: u64,
}

fn refs(volume: &Volume, ids: &[MemberId]) -> Vec<MemberRef> {
    ids.iter().map(|i| MemberRef::of(volume, i)).collect()
}

fn names(volume: &Volume, ids: &[MemberId]) -> String {
    let all: Vec<String> = ids.iter().map(|i| terminal(&registry::name_of(volume, i)).into_owned()).collect();
    if all.is_empty() {
        "nobody but each file's creator".into()
    } else {
        all.join(", ")
    }
}

pub fn policy(cmd: PolicyCommand) -> Result<u8> {
    match cmd {
        PolicyCommand::Set { dir, defaults, none: _, unset, who } => set(dir, defaults, unset, who),
        PolicyCommand::Show { dir, json, who } => {
            let me = who.unlock()?;
            let mut vols = Vec::new();
            let (_, target) = resolve::resolve(&dir, &mut |root| open_vol(root, me.as_ref(), None), &mut vols)?;
            let (vol, names_key) = vols.pop().expect("resolved");
            let iv = vol.dir_iv(&target.backing)?;
            let own = vol.volume.policy(&iv).map(<[_]>::to_vec);
            let in_force = resolve::policy_in_force(&vol, &target.backing)?;
            let from = in_force.as_ref().map(|(d, _)| match names_key.as_ref() {
                Some(n) => resolve::show(n, &vol.backing, d),
                None => d.strip_prefix(&vol.root).unwrap_or(d).display().to_string(),
            });
            if json {
                output::json_line(&PolicyShow {
                    dir: target.shown.clone(),
                    own: own.as_deref().map(|d| refs(&vol.volume, d)),
                    in_force: in_force.as_ref().map(|(_, d)| refs(&vol.volume, d)),
                    in_force_from: from,
                    generation: vol.volume.generation,
                })?;
            } else {
                let shown = terminal(&target.shown);
                match &own {
                    Some(d) => println!("{shown}: default recipients {}", names(&vol.volume, d)),
                    None => println!("{shown}: no policy of its own"),
                }
                match (&in_force, &from) {
                    (Some((_, d)), Some(f)) => println!("in force: {} (set on {})", names(&vol.volume, d), terminal(f)),
                    _ => println!("in force: none (new files are readable by their creator only)"),
                }
            }
            Ok(0)
        }
    }
}

fn set(dir: PathBuf, defaults: Vec<String>, unset: bool, who: Who) -> Result<u8> {
    let me = steward(&who)?;
    let mut vols = Vec::new();
    let steward = Some((&me, "policy set", Op::PolicySet));
    let (_, target) = resolve::resolve(&dir, &mut |root| open_vol(root, Some(&me), steward), &mut vols)?;
    let (mut vol, names_key) = vols.pop().expect("resolved");
    if !target.backing.is_dir() {
        bail!("{} is not a directory", terminal(&target.shown));
    }
    let iv = vol.dir_iv(&target.backing)?;
    let ids = defaults.iter().map(|d| registry::member(&vol.volume, d).map(|m| m.id())).collect::<Result<Vec<_>>>()?;
    if unset {
        vol.volume.remove_policy(&iv);
    } else {
        vol.volume.set_policy(iv, &ids)?;
    }
    vol.volume.sign(&me)?;
    registry::store(&vol.root, &vol.volume)?;
    let event = Event::new(Op::PolicySet).recipients(ids.iter().map(|i| i.0).collect());
    audit(&vol, if unset { event.intent("unset") } else { event }, &target.shown)?;
    eprintln!(
        "policy of {} {}; registry generation {}",
        terminal(&target.shown),
        if unset { "removed".to_owned() } else { format!("set: {}", names(&vol.volume, &ids)) },
        vol.volume.generation
    );
    // Headers below that the new policy no longer allows: re-sign.
    let progress = Progress::new("re-signing", None);
    walk(&vol.backing, names_key.as_ref(), &target.backing, &target.shown, &mut |path, shown| {
        progress.tally(shown, || {
            let in_force = resolve::policy_in_force(&vol, path.parent().expect("in a dir"))?;
            let mut bytes = vec![0u8; vol.volume.params.header_len as usize];
            std::os::unix::fs::FileExt::read_exact_at(&vol.backing.file(path, libc::O_RDONLY)?.0, &mut bytes, 0)?;
            let header = Header::open(&bytes, &vol.volume)?;
            let breaks_rule =
                |h: &Header| check_header(&vol.volume, h, in_force.as_ref().map(|(_, d)| d.as_slice())).is_err();
            // Checked again under the lock: the header may have changed.
            Ok(breaks_rule(&header) && resign(&vol, &me, path, shown, breaks_rule)?)
        });
    })?;
    progress.finish();
    let (done, failed) = progress.counts();
    close_audit(vec![(vol, names_key)])?;
    if done + failed > 0 {
        note(format!("re-signed {done} headers the new policy would not allow, {failed} failed"));
    }
    Ok(if failed > 0 { EXIT_SOME_FAILED } else { 0 })
}
