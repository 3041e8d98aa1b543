//! The log file: an 8-byte magic and a 2-byte version, then records, each
//! framed as `u32be(len) ‖ CBOR bytes`. A daemon killed in the middle of a
//! `write(2)` leaves a torn last frame, which the reader reports as an
//! incomplete last record and which never hides the records before it.

pub const MAGIC: &[u8; 8] = b"TRSRAUDT";
pub const VERSION: u16 = 1;
pub const FILE_HEADER_LEN: usize = 10;
/// No record is larger: the writer bounds every field (three sealed fields
/// of at most `record::MAX_SEALED_PLAIN` bytes, 4096 recipients, 64 KiB of
/// text, the rest small), so a bigger length field is damage, not a record.
/// It also bounds what a streaming reader holds at once.
pub const MAX_RECORD: usize = 1024 * 1024;

pub fn file_header() -> [u8; FILE_HEADER_LEN] {
    let mut h = [0u8; FILE_HEADER_LEN];
    h[..8].copy_from_slice(MAGIC);
    h[8..].copy_from_slice(&VERSION.to_be_bytes());
    h
}

/// One frame: where it starts in the file and its record bytes.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    pub offset: usize,
    pub bytes: &'a [u8],
}

/// The frames of a log file.
#[derive(Debug)]
pub struct Frames<'a> {
    pub frames: Vec<Frame<'a>>,
    /// A last frame cut short (offset, bytes present): the writer stopped
    /// in the middle of it.
    pub torn: Option<(usize, usize)>,
    /// A frame whose length field is impossible (offset, length): damage.
    pub bad_length: Option<(usize, usize)>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FileError {
    #[error("not a Tresor audit log (no TRSRAUDT header)")]
    NotALog,
    #[error("audit log format version {0} is not supported by this tresor (version 1); upgrade tresor")]
    Version(u16),
}

/// Splits a log file into frames. Never panics on any input.
pub fn split(file: &[u8]) -> Result<Frames<'_>, FileError> {
    if file.len() < FILE_HEADER_LEN || &file[..8] != MAGIC {
        return Err(FileError::NotALog);
    }
    let version = u16::from_be_bytes([file[8], file[9]]);
    if version != VERSION {
        return Err(FileError::Version(version));
    }
    let mut frames = Vec::new();
    let mut pos = FILE_HEADER_LEN;
    let mut torn = None;
    let mut bad_length = None;
    while pos < file.len() {
        let rest = &file[pos..];
        if rest.len() < 4 {
            torn = Some((pos, rest.len()));
            break;
        }
        let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        if len == 0 || len > MAX_RECORD {
            bad_length = Some((pos, len));
            break;
        }
        if rest.len() < 4 + len {
            torn = Some((pos, rest.len()));
            break;
        }
        frames.push(Frame { offset: pos, bytes: &rest[4..4 + len] });
        pos += 4 + len;
    }
    Ok(Frames { frames, torn, bad_length })
}

/// Appends one frame to `out`.
pub fn put(out: &mut Vec<u8>, record: &[u8]) {
    out.extend_from_slice(&(record.len() as u32).to_be_bytes());
    out.extend_from_slice(record);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_last_frame_leaves_the_frames_before_it() {
        let mut f = file_header().to_vec();
        put(&mut f, b"first");
        put(&mut f, b"second");
        let whole = split(&f).unwrap();
        assert_eq!(whole.frames.len(), 2);
        assert!(whole.torn.is_none());
        for cut in FILE_HEADER_LEN + 9 + 1..f.len() {
            let s = split(&f[..cut]).unwrap();
            assert_eq!(s.frames.len(), 1, "cut at {cut}");
            assert_eq!(s.torn.unwrap().0, FILE_HEADER_LEN + 9);
        }
        assert_eq!(split(b"TRSRAUDT\0\x02").unwrap_err(), FileError::Version(2));
        assert_eq!(split(b"nope").unwrap_err(), FileError::NotALog);
    }
}
