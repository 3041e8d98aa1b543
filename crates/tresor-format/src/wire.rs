//! Little-endian, length-checked reading and writing of the binary structures.
//! Every parser goes through `Reader`, so a truncated or overlong input is a
//! `Malformed` error naming the structure, never a panic.

use crate::error::{Error, Result, Structure};

pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: Structure,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], what: Structure) -> Self {
        Reader { buf, pos: 0, what }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or_else(|| Error::malformed(self.what, "truncated"))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("take returned N bytes"))
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// Checks the magic bytes and the version, the first fields of every
    /// versioned structure, so that a foreign file and a newer format get
    /// different errors.
    pub(crate) fn magic_and_version(&mut self, magic: &[u8; 8], version: u16) -> Result<()> {
        if self.take(8).ok() != Some(magic.as_slice()) {
            return Err(Error::BadMagic { what: self.what });
        }
        let found = self.u16()?;
        if found != version {
            return Err(Error::UnsupportedVersion { what: self.what, found, supported: version });
        }
        Ok(())
    }

    /// A u8-length-prefixed UTF-8 string of 1..=max bytes without control characters.
    pub(crate) fn short_str(&mut self, max: usize) -> Result<String> {
        let len = self.u8()? as usize;
        let bytes = self.take(len)?;
        let s = std::str::from_utf8(bytes).map_err(|_| Error::malformed(self.what, "name is not UTF-8"))?;
        check_display_name(s, max).map_err(|reason| Error::malformed(self.what, reason))?;
        Ok(s.to_owned())
    }

    pub(crate) fn finish(self) -> Result<()> {
        if self.pos != self.buf.len() {
            return Err(Error::malformed(self.what, "trailing bytes"));
        }
        Ok(())
    }
}

/// Names shown to people (member and identity names): short, printable.
pub(crate) fn check_display_name(s: &str, max: usize) -> Result<(), &'static str> {
    if s.is_empty() || s.len() > max {
        return Err("name must be 1 to 64 bytes");
    }
    if s.chars().any(char::is_control) {
        return Err("name contains a control character");
    }
    Ok(())
}

pub(crate) fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_short_str(out: &mut Vec<u8>, s: &str) {
    out.push(s.len() as u8);
    out.extend_from_slice(s.as_bytes());
}
