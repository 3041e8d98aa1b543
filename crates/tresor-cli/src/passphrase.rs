//! Where a passphrase comes from, as gocryptfs offers: a prompt on the
//! terminal (three tries), a file (`-` for stdin), an inherited file
//! descriptor, or an external program (a keyring, `systemd-creds`, Vault,
//! a TPM tool), so scripts and units never put it on a command line or in
//! the environment.

use std::{
    fs,
    io::{IsTerminal, Read},
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use zeroize::Zeroizing;

/// How many times the terminal prompt asks before giving up.
const PROMPT_TRIES: usize = 3;

#[derive(Args, Debug, Clone, Default)]
pub struct PassSource {
    /// Read the passphrase from the first line of FILE (`-`: standard input).
    /// A file that group or others can read gets a warning.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["passfd", "extpass"])]
    pub passfile: Option<PathBuf>,
    /// Read the passphrase from the first line of file descriptor N (inherited from the caller).
    #[arg(long, value_name = "N", conflicts_with = "extpass")]
    pub passfd: Option<i32>,
    /// Run CMD (with /bin/sh -c) and read the passphrase from the first line of its
    /// output, e.g. `systemd-creds cat tresor-pass` or `secret-tool lookup tresor node`.
    /// A non-zero exit is an error.
    #[arg(long, value_name = "CMD")]
    pub extpass: Option<String>,
}

impl PassSource {
    fn is_prompt(&self) -> bool {
        self.passfile.is_none() && self.passfd.is_none() && self.extpass.is_none()
    }

    /// The passphrase, asking on the terminal if no other source was given.
    pub fn read(&self, prompt: &str) -> Result<Zeroizing<String>> {
        let text = if let Some(path) = self.passfile.as_deref().filter(|p| *p != Path::new("-")) {
            warn_if_readable_by_others(path);
            Zeroizing::new(
                fs::read_to_string(path).with_context(|| format!("reading passphrase file {}", path.display()))?,
            )
        } else if self.passfile.is_some() {
            let mut s = Zeroizing::new(String::new());
            std::io::stdin().read_to_string(&mut s).context("reading the passphrase from standard input")?;
            s
        } else if let Some(fd) = self.passfd {
            let mut file = tresor_sys::process::take_inherited_fd(fd)
                .map_err(|_| anyhow!("--passfd {fd}: not an open file descriptor"))?;
            let mut s = Zeroizing::new(String::new());
            file.read_to_string(&mut s).context("reading passphrase from --passfd")?;
            s
        } else if let Some(cmd) = &self.extpass {
            run_extpass(cmd)?
        } else {
            Zeroizing::new(
                rpassword::prompt_password(prompt)
                    .context("no terminal to ask for the passphrase; use --passfile, --passfd or --extpass")?,
            )
        };
        let line = Zeroizing::new(text.lines().next().unwrap_or("").to_owned());
        if line.is_empty() {
            bail!("empty passphrase");
        }
        Ok(line)
    }

    /// Reads a passphrase and hands it to `open`; on a terminal, asks
    /// again (up to three times in all) while `open` fails with a wrong
    /// passphrase.
    pub fn open_with<T>(
        &self,
        prompt: &str,
        mut open: impl FnMut(&str) -> Result<T, tresor_format::Error>,
    ) -> Result<T, anyhow::Error> {
        let tries = if self.is_prompt() && std::io::stdin().is_terminal() { PROMPT_TRIES } else { 1 };
        for attempt in 1..=tries {
            match open(&self.read(prompt)?) {
                Err(tresor_format::Error::WrongPassphrase) if attempt < tries => {
                    eprintln!("wrong passphrase, try again");
                }
                other => return other.map_err(Into::into),
            }
        }
        unreachable!("the last try returns")
    }

    /// A new passphrase: from the source given, or asked twice.
    pub fn read_new(&self) -> Result<Zeroizing<String>> {
        if !self.is_prompt() {
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

/// A passphrase file others can read protects nothing: say so (as ssh does
/// for a private key), but go on, since the file may sit on a file system
/// without modes or be one the administrator chose knowingly.
fn warn_if_readable_by_others(path: &Path) {
    if let Ok(meta) = fs::metadata(path) {
        let mode = meta.permissions().mode();
        if mode & 0o044 != 0 {
            eprintln!(
                "tresor: warning: passphrase file {} is readable by {} (mode {:o}); make it private: chmod 600 {}",
                path.display(),
                if mode & 0o004 != 0 { "everyone" } else { "its group" },
                mode & 0o777,
                path.display()
            );
        }
    }
}

/// Runs `cmd` with /bin/sh -c; its standard output is the passphrase, its
/// standard error goes to ours (a prompt of its own, a diagnosis).
fn run_extpass(cmd: &str) -> Result<Zeroizing<String>> {
    let out = Command::new("/bin/sh")
        .args(["-c", cmd])
        .stdin(Stdio::inherit())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running --extpass {cmd:?}"))?;
    let stdout = Zeroizing::new(out.stdout);
    if !out.status.success() {
        bail!("--extpass {cmd:?} failed ({}); no passphrase", out.status);
    }
    let text = std::str::from_utf8(&stdout).map_err(|_| anyhow!("--extpass {cmd:?} printed a non-UTF-8 passphrase"))?;
    Ok(Zeroizing::new(text.to_owned()))
}
