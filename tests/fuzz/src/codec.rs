//! Tiny independent codecs the targets need to get past checksums and to
//! check canonical encodings, written here rather than pulled in as
//! dependencies (and independent of the implementations under test).

const BECH32_CHARSET: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
const BECH32M_CONST: u32 = 0x2bc8_30a3;

fn bech32_polymod(values: impl IntoIterator<Item = u8>) -> u32 {
    const GEN: [u32; 5] = [0x3b6a_57b2, 0x2650_8e6d, 0x1ea1_19fa, 0x3d42_33dd, 0x2a14_62b3];
    let mut chk: u32 = 1;
    for v in values {
        let top = chk >> 25;
        chk = ((chk & 0x01ff_ffff) << 5) ^ u32::from(v);
        for (i, g) in GEN.iter().enumerate() {
            if (top >> i) & 1 == 1 {
                chk ^= g;
            }
        }
    }
    chk
}

/// Encodes `hrp` (lowercase ASCII) and 5-bit `data` as a Bech32m string.
pub fn bech32m_encode(hrp: &str, data: &[u8]) -> String {
    let expanded = hrp
        .bytes()
        .map(|c| c >> 5)
        .chain(std::iter::once(0))
        .chain(hrp.bytes().map(|c| c & 31))
        .chain(data.iter().map(|d| d & 31))
        .chain([0u8; 6]);
    let pm = bech32_polymod(expanded) ^ BECH32M_CONST;
    let mut out = String::with_capacity(hrp.len() + 1 + data.len() + 6);
    out.push_str(hrp);
    out.push('1');
    for d in data {
        out.push(BECH32_CHARSET[usize::from(d & 31)] as char);
    }
    for i in 0..6 {
        out.push(BECH32_CHARSET[((pm >> (5 * (5 - i))) & 31) as usize] as char);
    }
    out
}

/// Replaces the last six characters of a Bech32-looking string (`hrp1data`)
/// by a valid Bech32m checksum, so that a mutated public identity string
/// reaches the code behind the checksum. `None` if `s` does not look like
/// Bech32 (no separator, characters outside the alphabet).
pub fn bech32m_rechecksum(s: &str) -> Option<String> {
    let s = s.trim();
    let sep = s.rfind('1')?;
    let (hrp, rest) = (&s[..sep], &s[sep + 1..]);
    if hrp.is_empty() || !hrp.bytes().all(|c| (33..=126).contains(&c) && !c.is_ascii_uppercase()) {
        return None;
    }
    let data = &rest.as_bytes()[..rest.len().saturating_sub(6)];
    let values: Option<Vec<u8>> =
        data.iter().map(|c| BECH32_CHARSET.iter().position(|x| x == c).map(|v| v as u8)).collect();
    Some(bech32m_encode(hrp, &values?))
}

/// 8-bit bytes to 5-bit groups, zero-padded at the end (BIP-173 `convertbits`).
pub fn to_base32(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() * 8 / 5 + 1);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(((acc >> bits) & 31) as u8);
        }
    }
    if bits > 0 {
        out.push(((acc << (5 - bits)) & 31) as u8);
    }
    out
}

/// Strict base64url without padding (RFC 4648 §5): `None` on any character
/// outside the alphabet, an impossible length, or non-zero trailing bits.
pub fn base64url_decode(s: &str) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        } as u32)
    }
    if s.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        acc = (acc << 6) | val(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if acc != 0 {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bech32m_matches_the_bip350_vectors() {
        // BIP-350 valid Bech32m strings.
        for s in [
            "a1lqfn3a",
            "abcdef1l7aum6echk45nj3s0wdvt2fg8x9yrzpqzd3ryx",
            "split1checkupstagehandshakeupstreamerranterredcaperredlc445v",
        ] {
            assert_eq!(bech32m_rechecksum(s).as_deref(), Some(s));
        }
    }

    #[test]
    fn base64url_decodes_strictly() {
        assert_eq!(base64url_decode("aGVsbG8").unwrap(), b"hello");
        assert_eq!(base64url_decode("").unwrap(), b"");
        assert_eq!(base64url_decode("_-8").unwrap(), [0xff, 0xef]);
        assert!(base64url_decode("aGVsbG9").is_none(), "non-zero trailing bits");
        assert!(base64url_decode("aGVsbG8=").is_none());
        assert!(base64url_decode("a").is_none());
    }
}
