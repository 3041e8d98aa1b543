//! `cargo xtask man`: the man pages and shell completions in `man/`, made
//! from the clap definitions of the `tresor` command (one page per
//! command, `tresor(1)`, and `mount.fuse.tresor(8)` for mount options and
//! fstab use). Never edited by hand: the test below fails when `man/` is
//! not what this generates, so `cargo test --workspace` catches a stale page.

use std::{fs, path::Path};

use clap_complete::Shell;

use crate::{workspace, Res};

/// Regenerates `man/` in the workspace.
pub fn run() -> Res {
    let dir = workspace().join("man");
    if dir.exists() {
        fs::remove_dir_all(&dir)?;
    }
    generate(&dir)?;
    println!("wrote {}", dir.display());
    Ok(())
}

/// Writes every page and completion script into `dir`.
pub fn generate(dir: &Path) -> Res {
    fs::create_dir_all(dir.join("completions"))?;
    let cmd = tresor::command();
    clap_mangen::generate_to(cmd.clone(), dir)?;
    clap_mangen::Man::new(tresor::helper_command()).section("8").generate_to(dir)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut cmd.clone(), "tresor", dir.join("completions"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// Every file below `dir`, relative to it, sorted.
    fn files(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).into_iter().flatten().flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(e.path());
                } else {
                    out.push(e.path().strip_prefix(dir).unwrap().to_path_buf());
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn the_man_pages_and_completions_in_man_are_what_the_command_line_generates() {
        let fresh = std::env::temp_dir().join(format!("tresor-man-{}", std::process::id()));
        let _ = fs::remove_dir_all(&fresh);
        generate(&fresh).unwrap();
        let checked_in = workspace().join("man");
        let stale = "man/ is stale: run `cargo xtask man` and commit the result";
        assert_eq!(files(&checked_in), files(&fresh), "{stale}");
        for f in files(&fresh) {
            assert!(
                fs::read(checked_in.join(&f)).unwrap() == fs::read(fresh.join(&f)).unwrap(),
                "{}: {stale}",
                f.display()
            );
        }
        let pages = files(&fresh);
        for page in ["tresor.1", "tresor-mount.1", "tresor-audit-verify.1", "mount.fuse.tresor.8"] {
            assert!(pages.contains(&PathBuf::from(page)), "{page} in {pages:?}");
        }
        fs::remove_dir_all(&fresh).unwrap();
    }
}
