//! Where a passphrase comes from: a prompt on the terminal, a file, or an
//! inherited file descriptor (for scripts and systemd units that must not
//! put it on a command line or in the environment).

use std::{fs, io::Read, os::fd::FromRawFd, path::PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use zeroize::Zeroizing;

#[derive(Args, Debug, Clone, Default)]
pub struct PassSource {
    /// Read the passphrase from the first line of FILE.
    #[arg(long, value_name = "FILE", conflicts_with = "passfd")]
    pub passfile: Option<PathBuf>,
    /// Read the passphrase from the first line of file descriptor N.
    #[arg(long, value_name = "N")]
    pub passfd: Option<i32>,
}

impl PassSource {
    /// The passphrase, asking on the terminal if no file or fd was given.
    pub fn read(&self, prompt: &str) -> Result<Zeroizing<String>> {
        let text = if let Some(path) = &self.passfile {
            Zeroizing::new(
                fs::read_to_string(path).with_context(|| format!("reading passphrase file {}", path.display()))?,
            )
        } else if let Some(fd) = self.passfd {
            if fd < 0 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
                bail!("--passfd {fd}: not an open file descriptor");
            }
            // The fd is ours to consume: nothing else in this process uses it.
            let mut file = unsafe { fs::File::from_raw_fd(fd) };
            let mut s = Zeroizing::new(String::new());
            file.read_to_string(&mut s).context("reading passphrase from --passfd")?;
            s
        } else {
            Zeroizing::new(
                rpassword::prompt_password(prompt)
                    .context("no terminal to ask for the passphrase; use --passfile or --passfd")?,
            )
        };
        let line = Zeroizing::new(text.lines().next().unwrap_or("").to_owned());
        if line.is_empty() {
            bail!("empty passphrase");
        }
        Ok(line)
    }

    /// A new passphrase: from a file or fd as given, or asked twice.
    pub fn read_new(&self) -> Result<Zeroizing<String>> {
        if self.passfile.is_some() || self.passfd.is_some() {
            return self.read("");
        }
        let first = self.read("New passphrase: ")?;
        let second = self.read("Repeat passphrase: ")?;
        if *first != *second {
            bail!("the passphrases do not match");
        }
        Ok(first)
    }
}
