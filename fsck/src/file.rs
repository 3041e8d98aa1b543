//! One backing regular file: a special-file record (§8.7), or a header
//! (§6), content blocks and the trailer (§7).

use std::{
    ffi::CStr,
    fs::File,
    os::{fd::AsFd, unix::fs::FileExt},
    sync::atomic::Ordering,
};

use rayon::prelude::*;
use tresor_format::{
    content::BLOCK_OVERHEAD,
    content::TRAILER_LEN,
    place::{NODE_LEN, NODE_MAGIC},
    policy::check_header,
    ContentCipher, Error, Header, Layout,
};
use tresor_mount::{
    lock::{Guard, Kind, Range},
    MOVED_MAGIC,
};

use crate::{
    walk::{self, DirCtx, Loc},
    Class, Ctx,
};

/// Plaintext bytes opened per read when checking content.
const READ_CHUNK: usize = 1 << 20;

type Problems = Vec<(Class, String)>;

/// Checks the regular file `name` in directory `d` (`st` from `fstatat`).
pub(crate) fn check(ctx: &Ctx<'_>, d: &DirCtx<'_>, name: &CStr, loc: &Loc, st: &libc::stat) -> Problems {
    let (file, st2) = match walk::open_file(d.fd.as_fd(), name) {
        Ok(x) => x,
        Err(e) => return vec![(Class::Unreadable, format!("opening: {e}"))],
    };
    // `st` (from the listing) may describe an entry a live mount has since
    // replaced: what is there now is checked.
    let _ = st;
    if st2.st_nlink > 1 {
        walk::note_link(ctx, &st2, &loc.backing);
    }
    let mut problems = crate::xattr::check(ctx, file.as_fd());
    if st2.st_size == NODE_LEN as i64 {
        ctx.count(|s| s.special_files += 1);
        problems.extend(special(ctx, &file));
        return problems;
    }
    ctx.count(|s| s.files += 1);
    match regular(ctx, d, name, file, loc) {
        Ok(p) => problems.extend(p),
        Err(e) => problems.push((Class::Unreadable, format!("reading: {e}"))),
    }
    problems
}

fn special(ctx: &Ctx<'_>, file: &File) -> Problems {
    let mut buf = [0u8; NODE_LEN];
    if let Err(e) = file.read_exact_at(&mut buf, 0) {
        return vec![(Class::Unreadable, format!("reading the special-file record: {e}"))];
    }
    let result = match &ctx.keys {
        Some(k) => k.place.open_node(&buf).map(drop).map_err(|e| e.to_string()),
        None if buf.starts_with(NODE_MAGIC) => Ok(()),
        None => Err("not a special-file record (bad magic) and too short for a file".into()),
    };
    match result {
        Ok(()) => Vec::new(),
        Err(e) => vec![(Class::SpecialRecord, e)],
    }
}

fn regular(ctx: &Ctx<'_>, d: &DirCtx<'_>, name: &CStr, mut file: File, loc: &Loc) -> std::io::Result<Problems> {
    let h = ctx.volume.params.header_len as u64;
    let content = ctx.keys.is_some() && !ctx.opts.headers_only;
    // The lock a mount takes to read a header; to check content, the whole
    // file, so no writer on any node changes it meanwhile.
    let range = if content { Range::to_eof(0) } else { Range::new(0, h) };
    for attempt in 0..2 {
        let guard = Guard::acquire(file.as_fd(), Kind::Shared, range)?;
        let st = tresor_sys::fstat(file.as_fd())?;
        let size = st.st_size.max(0) as u64;
        let mut bytes = vec![0u8; h.min(size) as usize];
        file.read_exact_at(&mut bytes, 0)?;
        let moved = bytes.starts_with(MOVED_MAGIC);
        if (moved || st.st_nlink == 0) && attempt == 0 {
            // Re-keyed while we opened it: the name leads to the new file.
            drop(guard);
            file = walk::open_file(d.fd.as_fd(), name)?.0;
            continue;
        }
        if moved {
            return Ok(vec![(
                Class::MovedMarker,
                "the re-key marker TRSRMOVD under a live name: the old copy of a file a re-key replaced (its new \
                 copy was lost or the name was linked elsewhere); mounts refuse it"
                    .into(),
            )]);
        }
        let problems = locked(ctx, d, &file, size, &bytes, loc, content);
        drop(guard);
        if !content && problems.iter().any(|(c, _)| *c == Class::FileLength) {
            // A mount on another node may be growing the file: its length
            // passes through invalid values, under a lock on the blocks it
            // writes (to EOF). Look again under a shared lock of it all.
            let _all = Guard::acquire(file.as_fd(), Kind::Shared, Range::to_eof(0))?;
            let size = tresor_sys::fstat(file.as_fd())?.st_size.max(0) as u64;
            let mut bytes = vec![0u8; h.min(size) as usize];
            file.read_exact_at(&mut bytes, 0)?;
            let problems = locked(ctx, d, &file, size, &bytes, loc, false);
            count_header(ctx, &problems);
            return Ok(problems);
        }
        count_header(ctx, &problems);
        return Ok(problems);
    }
    unreachable!("the loop returns on its second pass")
}

/// Counts a verified header: one whose problems, if any, came after it.
fn count_header(ctx: &Ctx<'_>, problems: &Problems) {
    let header_failed = problems.iter().any(|(c, m)| {
        matches!(c, Class::Header | Class::HeaderSigner) || (*c == Class::FileLength && m.contains("header region"))
    });
    if !header_failed {
        ctx.count(|s| s.headers_checked += 1);
    }
}

/// Checks a file whose header region is `bytes`, under its lock.
fn locked(ctx: &Ctx<'_>, d: &DirCtx<'_>, file: &File, size: u64, bytes: &[u8], loc: &Loc, content: bool) -> Problems {
    let p = ctx.volume.params;
    let h = p.header_len as u64;
    if size < h {
        return vec![(Class::FileLength, format!("{size} bytes: shorter than the {h}-byte header region"))];
    }
    let header = match Header::open(bytes, ctx.volume) {
        Ok(hd) => hd,
        Err(e @ (Error::UnknownSigner { .. } | Error::SignerNotAllowed { .. })) => {
            return vec![(
                Class::HeaderSigner,
                format!("{e}; a steward re-signs it (tresor grant/revoke/rekey) if the content is wanted"),
            )]
        }
        Err(e) => return vec![(Class::Header, e.to_string())],
    };
    let mut problems = Problems::new();
    if let Err(v) = check_header(ctx.volume, &header, d.in_force) {
        problems.push((Class::AccessRule, format!("{v} (mounts refuse to open it)")));
    }
    let layout = Layout::new(p.header_len, p.block_size);
    let plain = match layout.plaintext_size(size) {
        Ok(n) => n,
        Err(e) => {
            problems.push((Class::FileLength, format!("{e} ({size} bytes): the file was cut or extended")));
            return problems;
        }
    };
    if let Some(t) = &ctx.access {
        t.add(&header, plain, loc);
    }
    let Some(keys) = ctx.keys.as_ref().filter(|k| header.is_recipient(&k.identity.id())) else {
        return problems;
    };
    let key = match header.file_key(keys.identity) {
        Ok(k) => k,
        Err(e) => {
            problems.push((
                Class::KeyCommitment,
                format!("{e}: the key wrapped for this identity is not the one the header commits to"),
            ));
            return problems;
        }
    };
    if !content {
        return problems;
    }
    let cipher = ContentCipher::new(p.suite, &key, &header.file_id, p.block_size);
    if let Err((class, e)) = blocks(ctx, file, &cipher, &layout, plain) {
        problems.push((class, e));
    } else {
        ctx.count(|s| {
            s.content_checked += 1;
            s.content_bytes += size;
        });
    }
    problems
}

/// Opens every block and the trailer, reading many blocks at a time.
fn blocks(
    ctx: &Ctx<'_>,
    file: &File,
    cipher: &ContentCipher,
    layout: &Layout,
    plain: u64,
) -> Result<(), (Class, String)> {
    let b = layout.block_size as usize;
    let ct = b + BLOCK_OVERHEAD;
    let n = layout.block_count(plain);
    let per_read = (READ_CHUNK / b).max(1) as u64;
    let io = |e: std::io::Error| (Class::Unreadable, format!("reading content: {e}"));
    let mut buf = Vec::new();
    let mut i = 0u64;
    while i < n {
        let count = per_read.min(n - i);
        let start = layout.block_offset(i);
        let end = if i + count == n { layout.trailer_offset(plain) } else { layout.block_offset(i + count) };
        buf.resize((end - start) as usize, 0);
        file.read_exact_at(&mut buf, start).map_err(io)?;
        ctx.progress.bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
        // Blocks of one read are opened in parallel: a large file is not
        // bound to one core.
        buf.par_chunks(ct).enumerate().try_for_each_init(
            || vec![0u8; b],
            |out, (k, block)| {
                let no = i + k as u64;
                let r = if no + 1 == n {
                    cipher.open_last_block(no, block, out)
                } else {
                    cipher.open_block(no, block, out)
                };
                r.map(drop).map_err(|e| (Class::Block, e.to_string()))
            },
        )?;
        i += count;
    }
    let mut trailer = [0u8; TRAILER_LEN];
    file.read_exact_at(&mut trailer, layout.trailer_offset(plain)).map_err(io)?;
    cipher
        .open_trailer(n, &trailer)
        .map_err(|e| (Class::Trailer, format!("{e}: the file was cut at a block boundary, or its end was replaced")))?;
    Ok(())
}
