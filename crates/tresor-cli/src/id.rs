//! `tresor id`: a member's identity file.

use std::{fs, path::PathBuf};

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use rand_core::OsRng;
use tresor_format::{Identity, KdfParams, SealedIdentity};

use crate::{config, passphrase::PassSource};

#[derive(Subcommand, Debug)]
pub enum IdCommand {
    /// Create a new identity, sealed with a passphrase (Argon2id).
    ///
    /// Prints the public identity string (tresor1…) to give to a steward.
    New {
        /// Your name as stewards will see it in the member registry [default: $USER].
        #[arg(long)]
        name: Option<String>,
        /// Where to write the identity file [default: ~/.config/tresor/identity].
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Replace an existing identity file.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        pass: PassSource,
    },
    /// Print the public identity string and member id (no passphrase needed).
    Show {
        /// The identity file [default: ~/.config/tresor/identity].
        #[arg(long, short, value_name = "FILE", env = "TRESOR_IDENTITY")]
        identity: Option<PathBuf>,
    },
    /// Re-seal the identity file under a new passphrase.
    Passwd {
        /// The identity file [default: ~/.config/tresor/identity].
        #[arg(long, short, value_name = "FILE", env = "TRESOR_IDENTITY")]
        identity: Option<PathBuf>,
        /// Current passphrase source.
        #[command(flatten)]
        pass: PassSource,
        /// Read the new passphrase from the first line of FILE.
        #[arg(long, value_name = "FILE")]
        new_passfile: Option<PathBuf>,
    },
}

fn default_name() -> String {
    std::env::var("USER").unwrap_or_else(|_| "member".into())
}

pub fn run(cmd: IdCommand) -> Result<()> {
    match cmd {
        IdCommand::New { name, out, force, pass } => {
            let path = out.unwrap_or_else(config::default_identity);
            if path.exists() && !force {
                bail!("{} exists; use --force to replace it (the old identity is lost)", path.display());
            }
            let identity = Identity::generate(&name.unwrap_or_else(default_name), &mut OsRng)?;
            let passphrase = pass.read_new()?;
            let sealed = identity.seal(passphrase.as_bytes(), KdfParams::default(), &mut OsRng)?;
            config::write_private(&path, &sealed)?;
            eprintln!("wrote {}", path.display());
            println!("{}", identity.public());
            Ok(())
        }
        IdCommand::Show { identity } => {
            let path = identity.unwrap_or_else(config::default_identity);
            let sealed = SealedIdentity::parse(&read(&path)?).with_context(|| format!("reading {}", path.display()))?;
            println!("{}", sealed.public);
            eprintln!("name: {}  member id: {}", sealed.name, sealed.public.id());
            Ok(())
        }
        IdCommand::Passwd { identity, pass, new_passfile } => {
            let path = identity.unwrap_or_else(config::default_identity);
            let identity = unlock(&path, &pass)?;
            let new = PassSource { passfile: new_passfile, ..PassSource::default() };
            let passphrase = new.read_new()?;
            let sealed = identity.seal(passphrase.as_bytes(), KdfParams::default(), &mut OsRng)?;
            config::write_private(&path, &sealed)?;
            eprintln!("re-sealed {}", path.display());
            Ok(())
        }
    }
}

fn read(path: &std::path::Path) -> Result<Vec<u8>> {
    fs::read(path)
        .with_context(|| format!("reading identity file {} (create one with `tresor id new`)", path.display()))
}

/// Opens an identity file with a passphrase from `pass`.
pub fn unlock(path: &std::path::Path, pass: &PassSource) -> Result<Identity> {
    let file = read(path)?;
    let sealed = SealedIdentity::parse(&file).with_context(|| format!("reading {}", path.display()))?;
    pass.open_with(&format!("Passphrase for {} ({}): ", sealed.name, path.display()), |p| {
        Identity::unseal(&file, p.as_bytes())
    })
    .with_context(|| format!("unlocking {}", path.display()))
}

/// The identity of a command that works without one but shows more with
/// it (plaintext names).
#[derive(clap::Args, Debug)]
pub struct Viewer {
    /// Your identity, to show plaintext names (needed for a path in a
    /// mount) [default: ~/.config/tresor/identity, if there is one].
    #[arg(long, short, value_name = "FILE", env = "TRESOR_IDENTITY")]
    pub identity: Option<PathBuf>,
    #[command(flatten)]
    pub pass: PassSource,
}

impl Viewer {
    /// `-i`/`TRESOR_IDENTITY` if given, else the default identity if this
    /// user has one (as every other command uses it), else none.
    pub fn unlock(&self) -> Result<Option<Identity>> {
        match &self.identity {
            Some(path) => unlock(path, &self.pass).map(Some),
            None => {
                let default = config::default_identity();
                if default.exists() {
                    unlock(&default, &self.pass).map(Some)
                } else {
                    Ok(None)
                }
            }
        }
    }
}
