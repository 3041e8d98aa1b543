//! The log file: an 8-byte magic and a 2-byte version, then records, each
//! framed as `u32be(len) ‖ CBOR bytes`. A daemon killed in the middle of a
//! `write(2)` leaves a torn last frame, which the reader reports as an
//! incomplete last record and which never hides the records before it.

pub const MAGIC: &[u8; 8] = b"TRSRAUDT";
/// The version this writer writes: 2, whose checkpoints carry a Merkle
/// root and its signed note, and whose segments the tree's right edge
/// (`docs/AUDIT.md` §4.5). Version 1 (no Merkle tree) is read as before.
pub const VERSION: u16 = 2;
/// The versions this reader reads.
pub const VERSIONS: [u16; 2] = [1, 2];
pub const FILE_HEADER_LEN: usize = 10;
/// No record is larger: the writer bounds every field (three sealed fields
/// of at most `record::MAX_SEALED_PLAIN` bytes, 4096 recipients, 64 KiB of
/// text, the rest small), so a bigger length field is damage, not a record.
/// It also bounds what a streaming reader holds at once.
pub const MAX_RECORD: usize = 1024 * 1024;

pub fn file_header() -> [u8; FILE_HEADER_LEN] {
    file_header_of(VERSION)
}

/// The header of a log of `version` (test vectors of version 1).
pub fn file_header_of(version: u16) -> [u8; FILE_HEADER_LEN] {
    let mut h = [0u8; FILE_HEADER_LEN];
    h[..8].copy_from_slice(MAGIC);
    h[8..].copy_from_slice(&version.to_be_bytes());
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
    #[error("audit log format version {0} is not supported by this tresor (versions 1 and 2); upgrade tresor")]
    Version(u16),
}

/// Splits a log file into frames. Never panics on any input.
pub fn split(file: &[u8]) -> Result<Frames<'_>, FileError> {
    if file.len() < FILE_HEADER_LEN || &file[..8] != MAGIC {
        return Err(FileError::NotALog);
    }
    let version = u16::from_be_bytes([file[8], file[9]]);
    if !VERSIONS.contains(&version) {
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

/// How a stream of frames ended.
#[derive(Debug)]
pub enum End {
    /// After a whole frame (or the header): a clean end.
    Clean,
    /// A last frame cut short (offset, bytes present).
    Torn(usize, usize),
    /// An impossible length field (offset, length): damage.
    BadLength(usize, usize),
    /// The file could not be read.
    Io(std::io::Error),
}

/// Reads a log's frames one at a time, holding at most one frame
/// ([`MAX_RECORD`] bytes) whatever the log's size: `verify` and `show`
/// stream years of logs in bounded memory.
pub struct FrameReader<R> {
    r: R,
    version: u16,
    offset: usize,
    buf: Vec<u8>,
    end: Option<End>,
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn fill(r: &mut impl std::io::Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl<R: std::io::Read> FrameReader<R> {
    /// Reads and checks the file header. Give it a buffered reader.
    pub fn new(mut r: R) -> Result<FrameReader<R>, FileError> {
        let mut h = [0u8; FILE_HEADER_LEN];
        let n = fill(&mut r, &mut h).map_err(|_| FileError::NotALog)?;
        split(&h[..n])?;
        let version = u16::from_be_bytes([h[8], h[9]]);
        Ok(FrameReader { r, version, offset: FILE_HEADER_LEN, buf: Vec::with_capacity(4096), end: None })
    }

    /// The file's format version (one of [`VERSIONS`]).
    pub fn version(&self) -> u16 {
        self.version
    }

    /// Goes on from byte `offset` of the file (a frame boundary a previous
    /// read ended at), skipping what is before it unread.
    pub fn skip_to(mut self, offset: usize) -> Result<Self, FileError>
    where
        R: std::io::Seek,
    {
        let at = offset.max(FILE_HEADER_LEN);
        self.r.seek(std::io::SeekFrom::Start(at as u64)).map_err(|_| FileError::NotALog)?;
        self.offset = at;
        Ok(self)
    }

    /// The next whole frame (its offset and bytes), or `None` at the end
    /// (then [`FrameReader::end`] says how it ended).
    pub fn next_frame(&mut self) -> Option<(usize, &[u8])> {
        if self.end.is_some() {
            return None;
        }
        let pos = self.offset;
        let mut len = [0u8; 4];
        let got = match fill(&mut self.r, &mut len) {
            Ok(n) => n,
            Err(e) => {
                self.end = Some(End::Io(e));
                return None;
            }
        };
        if got < 4 {
            self.end = Some(if got == 0 { End::Clean } else { End::Torn(pos, got) });
            return None;
        }
        let len = u32::from_be_bytes(len) as usize;
        if len == 0 || len > MAX_RECORD {
            self.end = Some(End::BadLength(pos, len));
            return None;
        }
        // Grown once to the largest frame seen; not cleared between frames.
        if self.buf.len() < len {
            self.buf.resize(len, 0);
        }
        match fill(&mut self.r, &mut self.buf[..len]) {
            Ok(n) if n == len => {}
            Ok(n) => {
                self.end = Some(End::Torn(pos, 4 + n));
                return None;
            }
            Err(e) => {
                self.end = Some(End::Io(e));
                return None;
            }
        }
        self.offset += 4 + len;
        Some((pos, &self.buf[..len]))
    }

    /// How the frames ended (`Clean` while frames remain).
    pub fn end(&self) -> &End {
        self.end.as_ref().unwrap_or(&End::Clean)
    }

    /// The offset after the last whole frame.
    pub fn offset(&self) -> usize {
        self.offset
    }
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
        assert_eq!(split(b"TRSRAUDT\0\x03").unwrap_err(), FileError::Version(3));
        assert!(split(b"TRSRAUDT\0\x01").is_ok() && split(b"TRSRAUDT\0\x02").is_ok());
        for cut in FILE_HEADER_LEN..f.len() {
            let mut r = FrameReader::new(&f[..cut]).unwrap();
            let mut n = 0;
            while r.next_frame().is_some() {
                n += 1;
            }
            let expect = split(&f[..cut]).unwrap();
            assert_eq!(n, expect.frames.len(), "cut at {cut}");
            match (r.end(), expect.torn) {
                (End::Clean, None) => {}
                (End::Torn(o, l), Some((eo, el))) => assert_eq!((*o, *l), (eo, el)),
                (end, torn) => panic!("cut at {cut}: {end:?} vs {torn:?}"),
            }
        }
        assert_eq!(split(b"nope").unwrap_err(), FileError::NotALog);
    }
}
