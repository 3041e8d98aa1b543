//! Renames (`rename`, `renameat2` with `RENAME_NOREPLACE`,
//! `RENAME_EXCHANGE` and `RENAME_WHITEOUT`): the policy check for moves
//! between directories, directory IVs re-tagged around the move (FORMAT.md
//! §8.1), sidecars, and the whiteout record. See the module docs of `fs`.

use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};

use fuser::{RenameFlags, Request};
use tresor_format::{DirIv, Header, Node, NodeKind, Place, Role, Volume};

use super::{target_sidecar_of, Entry, TresorFs, DIRIV_NAME};
use crate::attr;
use crate::paths::{self, show};
use crate::sys::{self, Errno, FsResult};

/// A directory being renamed: its IV file holds the tags of both places
/// until `end_move`.
struct Moving {
    dir: OwnedFd,
    _lock: Option<sys::FlockGuard>,
    iv: DirIv,
    /// (parent IV, entry name, backing path) before and after.
    from: (DirIv, String, Vec<u8>),
    to: (DirIv, String, Vec<u8>),
}

/// What `rename(RENAME_WHITEOUT)` leaves at the old name: a character
/// device 0/0 with no permissions, as the kernel's `vfs_whiteout` makes.
const WHITEOUT: Node = Node { kind: NodeKind::Char, rdev: 0 };

impl TresorFs {
    /// Refuses with EXDEV a move of `from` (in node `from_parent`) into
    /// directory `to_dir` (node `to_parent`) that changes the policy in force
    /// for it when that would make the move break the member header rule:
    /// a file whose member-signed header names someone the new policy does
    /// not allow, or (for a mount that is not a steward's) a directory
    /// without a policy of its own. EXDEV makes `mv` copy and delete
    /// instead, and the copy gets the new directory's defaults.
    fn check_move(
        &self,
        volume: &Volume,
        from: &Entry<'_>,
        from_parent: u64,
        st: &libc::stat,
        to_parent: u64,
        to_dir: &[u8],
    ) -> FsResult<()> {
        if volume.policies().next().is_none() || !(attr::is_dir(st) || attr::is_reg(st)) {
            return Ok(());
        }
        let before = self.policy_in_force(volume, from_parent, &from.dir_path)?;
        let after = self.policy_in_force(volume, to_parent, to_dir)?;
        if before == after {
            return Ok(());
        }
        if attr::is_dir(st) {
            let dir = self.dir(&from.path)?;
            let iv = self.names.dir_iv(dir.fd(), &from.path)?;
            let steward = volume.member(&self.identity.id()).is_some_and(|m| m.role == Role::Steward);
            if volume.policy(&iv).is_some() || steward {
                return Ok(());
            }
            tracing::info!(
                "{}: not moved into a directory under another policy (EXDEV: copy instead, so new files get its defaults)",
                show(&from.path)
            );
            return Err(Errno(libc::EXDEV));
        }
        let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOATIME;
        let fd = sys::openat(from.dir.fd(), &from.cname, flags, 0)?;
        let mut bytes = vec![0u8; volume.params.header_len as usize];
        if sys::pread_exact(fd.as_fd(), &mut bytes, 0).is_err() {
            return Ok(()); // not a valid file anyway; opening it reports that
        }
        let Ok(header) = Header::open(&bytes, volume) else { return Ok(()) };
        if let Err(v) = tresor_format::policy::check_header(volume, &header, after.as_deref()) {
            tracing::info!("{}: not moved: under the destination's policy {v} (EXDEV: copy instead)", show(&from.path));
            return Err(Errno(libc::EXDEV));
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn do_rename(
        &self,
        req: &Request,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: RenameFlags,
    ) -> FsResult<()> {
        self.writable()?;
        let known = RenameFlags::RENAME_NOREPLACE | RenameFlags::RENAME_EXCHANGE | RenameFlags::RENAME_WHITEOUT;
        let exchange = flags.contains(RenameFlags::RENAME_EXCHANGE);
        if !known.contains(flags) || (exchange && flags != RenameFlags::RENAME_EXCHANGE) {
            return Err(Errno::EINVAL);
        }
        let whiteout = flags.contains(RenameFlags::RENAME_WHITEOUT);
        let (s, sdir_st) = self.entry_to_change(parent, name)?;
        let (d, _) = self.entry_to_change(newparent, newname)?;
        let (sdir, ddir) = (s.dir.fd(), d.dir.fd());
        let sst = sys::fstatat(sdir, &s.cname)?;
        let dst = match sys::fstatat(ddir, &d.cname) {
            Ok(st) => Some(st),
            Err(e) if sys::is_errno(&e, libc::ENOENT) => None,
            Err(e) => return Err(e.into()),
        };
        if exchange && dst.is_none() {
            return Err(Errno::ENOENT);
        }
        let cross_dir = s.dir_path != d.dir_path;
        if cross_dir {
            let volume = self.volume.get();
            self.check_move(&volume, &s, parent, &sst, newparent, &d.dir_path)?;
            if let (true, Some(dst)) = (exchange, &dst) {
                self.check_move(&volume, &d, newparent, dst, parent, &s.dir_path)?;
            }
        }
        if whiteout && dst.is_some() && flags.contains(RenameFlags::RENAME_NOREPLACE) {
            return Err(Errno::EEXIST);
        }
        // The whiteout left at the old name (overlayfs): a character
        // device 0/0, made whole under a temporary name before anything moves.
        let record = match whiteout {
            true => Some(self.node_record(req, sdir, &sdir_st, &s.dir_path, WHITEOUT, 0)?),
            false => None,
        };
        // Everything the entries will need in their new places comes first:
        // a directory's IV file gets the tag for its new place beside the
        // old one (FORMAT.md §8.1).
        let mut moving = Vec::new();
        if attr::is_dir(&sst) && s.path != d.path {
            moving.push(self.begin_move(&s, &d)?);
        }
        if exchange && dst.as_ref().is_some_and(attr::is_dir) && s.path != d.path {
            match self.begin_move(&d, &s) {
                Ok(m) => moving.push(m),
                Err(err) => {
                    for m in moving {
                        self.end_move(m, false);
                    }
                    if let Some(tmp) = &record {
                        paths::remove_quietly(sdir, tmp, &s.dir_path);
                    }
                    return Err(err);
                }
            }
        }
        let result = self.rename_entries(&s, &d, &sst, &dst, exchange, flags, cross_dir);
        for m in moving {
            self.end_move(m, result.is_ok());
        }
        if let (Err(_), Some(tmp)) = (&result, &record) {
            paths::remove_quietly(sdir, tmp, &s.dir_path);
        }
        result?;
        self.nodes.moved(self.nodes.id_of(sst.st_ino), newparent, OsStr::new(d.name.entry()), &d.plain);
        if let (true, Some(st)) = (exchange, &dst) {
            self.nodes.moved(self.nodes.id_of(st.st_ino), parent, OsStr::new(s.name.entry()), &s.plain);
        }
        if let Some(tmp) = record {
            // Not atomic with the rename: a crash here leaves no whiteout
            // (the lower layer's entry shows again), never a lost entry.
            let placed = self
                .names
                .put_long_name(sdir, &s.name)
                .and_then(|()| Ok(sys::rename_noreplace(sdir, &tmp, sdir, &s.cname)?));
            if let Err(err) = placed {
                tracing::error!("{}: renamed, but the whiteout could not take its name: {err:?}", show(&s.path));
                paths::remove_quietly(sdir, &tmp, &s.dir_path);
                return Err(err);
            }
        }
        Ok(())
    }

    /// The backing half of a rename: sidecars first, the rename, then the
    /// sidecars no longer needed.
    #[allow(clippy::too_many_arguments)]
    fn rename_entries(
        &self,
        s: &Entry<'_>,
        d: &Entry<'_>,
        sst: &libc::stat,
        dst: &Option<libc::stat>,
        exchange: bool,
        flags: RenameFlags,
        cross_dir: bool,
    ) -> FsResult<()> {
        let (sdir, ddir) = (s.dir.fd(), d.dir.fd());
        self.names.put_long_name(ddir, &d.name)?;
        let s_sidecar = target_sidecar_of(sdir, &s.cname, sst);
        if let (true, Some(sc)) = (cross_dir, &s_sidecar) {
            paths::copy_target_sidecar(sdir, sc, ddir)?;
        }
        let d_sidecar = dst.as_ref().and_then(|st| target_sidecar_of(ddir, &d.cname, st));
        if let (true, true, Some(sc)) = (exchange, cross_dir, &d_sidecar) {
            paths::copy_target_sidecar(ddir, sc, sdir)?;
        }
        let result = if exchange {
            sys::renameat2(sdir, &s.cname, ddir, &d.cname, libc::RENAME_EXCHANGE)
        } else if flags.contains(RenameFlags::RENAME_NOREPLACE) {
            sys::rename_noreplace(sdir, &s.cname, ddir, &d.cname)
        } else {
            match sys::renameat2(sdir, &s.cname, ddir, &d.cname, 0) {
                Err(e)
                    if (sys::is_errno(&e, libc::ENOTEMPTY) || sys::is_errno(&e, libc::EEXIST))
                        && attr::is_dir(sst)
                        && dst.as_ref().is_some_and(attr::is_dir) =>
                {
                    // The target is a Tresor directory: never empty in the
                    // backing tree. Remove it if it is empty in plaintext.
                    self.remove_dir(d)?;
                    sys::renameat2(sdir, &s.cname, ddir, &d.cname, 0)
                }
                other => other,
            }
        };
        result?;
        let same_object = dst.as_ref().is_some_and(|st| st.st_ino == sst.st_ino && st.st_dev == sst.st_dev);
        if !exchange && !same_object {
            self.names.drop_long_name(sdir, &s.name, &s.dir_path);
            if let (Some(sc), Some(st)) = (&d_sidecar, &dst) {
                if st.st_nlink <= 1 {
                    paths::remove_quietly(ddir, sc, &d.dir_path);
                }
            }
            if let (true, Some(sc)) = (cross_dir, &s_sidecar) {
                if sst.st_nlink <= 1 {
                    paths::remove_quietly(sdir, sc, &s.dir_path);
                }
            }
        }
        Ok(())
    }

    /// Before directory `from` is renamed to `to`: locks it against other
    /// nodes' renames, checks its IV at its place, and rewrites its IV file
    /// with the tags of both places, so that a crash at any point leaves a
    /// directory whose IV verifies where it is.
    fn begin_move(&self, from: &Entry<'_>, to: &Entry<'_>) -> FsResult<Moving> {
        let path = sys::openat(from.dir.fd(), &from.cname, libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW, 0)?;
        // flock needs a descriptor open for reading; a directory the daemon
        // may not read (a private mount, mode 0300) is moved without one.
        let lock = sys::openat(from.dir.fd(), &from.cname, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW, 0)
            .and_then(sys::flock_exclusive)
            .ok();
        self.names.forget_iv(&from.path);
        let iv = self.names.dir_iv(path.as_fd(), &from.path)?;
        let (old, new) = (from.name.entry().to_owned(), to.name.entry().to_owned());
        let bytes = self.names.place().seal_diriv_moving(
            &iv,
            Place::In { parent: &from.iv, entry: &old },
            Place::In { parent: &to.iv, entry: &new },
        );
        // Synced: the rename that follows must not outlive it in a crash.
        paths::replace_diriv(path.as_fd(), &bytes, true)?;
        Ok(Moving {
            dir: path,
            _lock: lock,
            iv,
            from: (from.iv, old, from.path.clone()),
            to: (to.iv, new, to.path.clone()),
        })
    }

    /// After the rename (or its failure): the IV file keeps only the tag of
    /// the place the directory is in.
    fn end_move(&self, m: Moving, moved: bool) {
        let (parent, entry, path) = if moved { &m.to } else { &m.from };
        let bytes = self.names.place().seal_diriv(&m.iv, Place::In { parent, entry });
        // Not synced: if this is lost, both tags remain, valid where it is.
        if let Err(err) = paths::replace_diriv(m.dir.as_fd(), &bytes, false) {
            // Still valid where it is (it holds both tags): only a second
            // rename's protocol would notice the extra tag.
            tracing::warn!("{}: could not drop the old place's tag from {}: {err:?}", show(path), DIRIV_NAME);
        }
        self.names.forget_iv(&m.from.2);
        self.names.forget_iv(&m.to.2);
    }
}
