//! A strict DER walker over the TLV structure of certificates and CRLs.
//!
//! x509-parser is lenient in places (it accepts some BER: non-minimal lengths, non-minimal
//! integers, constructed strings, unsorted SETs). The service refuses anything that is not
//! the one canonical DER encoding, so before a certificate or CRL is handed to x509-parser its
//! bytes are walked here: every tag, every length, and the content rules of the primitive types
//! X.509 uses. Pure and bounded: linear in the input, nesting limited to [`MAX_DEPTH`].

/// Deepest nesting walked (certificates nest about 8 deep; extension values a few more).
pub const MAX_DEPTH: usize = 24;

/// Why bytes are not strict DER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DerError {
    /// Structurally broken: truncated, a length past the end, a bad tag.
    Malformed(String),
    /// Valid BER but not DER: long-form or padded lengths, indefinite lengths, non-minimal
    /// integers, constructed strings, a BOOLEAN other than 00/FF, unsorted SET OF, ...
    NonCanonical(String),
    /// One complete element followed by this many more bytes.
    Trailing(usize),
}

/// A decoded TLV header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The first identifier octet (class, constructed bit, low tag number or 0x1f).
    pub tag: u8,
    /// The tag number (from the high-tag-number form when the low bits are 0x1f).
    pub number: u32,
    pub header_len: usize,
    pub content_len: usize,
}

impl Header {
    pub fn constructed(&self) -> bool {
        self.tag & 0x20 != 0
    }
    pub fn universal(&self) -> bool {
        self.tag & 0xc0 == 0
    }
    pub fn total_len(&self) -> usize {
        self.header_len + self.content_len
    }
}

/// Reads one TLV header from `input`, requiring the content to fit.
pub fn header(input: &[u8]) -> Result<Header, DerError> {
    let malformed = |m: &str| DerError::Malformed(m.to_owned());
    let non_canonical = |m: &str| DerError::NonCanonical(m.to_owned());
    let tag = *input
        .first()
        .ok_or_else(|| malformed("truncated: no tag"))?;
    let mut pos = 1;
    let mut number = u32::from(tag & 0x1f);
    if tag & 0x1f == 0x1f {
        number = 0;
        let mut first = true;
        loop {
            let b = *input
                .get(pos)
                .ok_or_else(|| malformed("truncated tag number"))?;
            pos += 1;
            if first && b == 0x80 {
                return Err(non_canonical("tag number with a leading zero group"));
            }
            first = false;
            if number > (u32::MAX >> 7) {
                return Err(malformed("tag number too large"));
            }
            number = (number << 7) | u32::from(b & 0x7f);
            if b & 0x80 == 0 {
                break;
            }
        }
        if number < 0x1f {
            return Err(non_canonical("high-tag-number form for a low tag number"));
        }
    }
    let first = *input
        .get(pos)
        .ok_or_else(|| malformed("truncated: no length"))?;
    pos += 1;
    let content_len = if first < 0x80 {
        usize::from(first)
    } else if first == 0x80 {
        return Err(non_canonical("indefinite length"));
    } else if first == 0xff {
        return Err(malformed("reserved length octet 0xff"));
    } else {
        let n = usize::from(first & 0x7f);
        let bytes = input
            .get(pos..pos + n)
            .ok_or_else(|| malformed("truncated length"))?;
        pos += n;
        if bytes[0] == 0 {
            return Err(non_canonical("length with a leading zero octet"));
        }
        if n > 4 {
            return Err(malformed("length of more than 4 octets"));
        }
        let len = bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        if len < 0x80 {
            return Err(non_canonical("long-form length below 128"));
        }
        len
    };
    let remaining = input.len() - pos;
    if content_len > remaining {
        return Err(DerError::Malformed(format!(
            "truncated: length {content_len} but {remaining} bytes left"
        )));
    }
    Ok(Header {
        tag,
        number,
        header_len: pos,
        content_len,
    })
}

/// Checks that `input` is exactly one strict-DER element.
pub fn check(input: &[u8]) -> Result<(), DerError> {
    match check_deferring_order(input)? {
        Some(order) => Err(DerError::NonCanonical(order)),
        None => Ok(()),
    }
}

/// As [`check`], except that an unsorted SET OF is not an error but returned (`Some`), for
/// the caller to report once the structure has been parsed: a SET where a SEQUENCE belongs is
/// better reported as a malformed structure than as a misordered SET.
pub fn check_deferring_order(input: &[u8]) -> Result<Option<String>, DerError> {
    let mut order = None;
    let used = element(input, 0, &mut order)?;
    if used < input.len() {
        return Err(DerError::Trailing(input.len() - used));
    }
    Ok(order)
}

/// Walks one element at the start of `input`; returns its total length.
fn element(input: &[u8], depth: usize, order: &mut Option<String>) -> Result<usize, DerError> {
    if depth > MAX_DEPTH {
        return Err(DerError::Malformed("nested too deeply".into()));
    }
    let h = header(input)?;
    let content = &input[h.header_len..h.total_len()];
    if h.constructed() {
        if h.universal() && !matches!(h.number, 16 | 17) {
            return Err(DerError::NonCanonical(format!(
                "constructed encoding of universal type {}",
                h.number
            )));
        }
        let mut pos = 0;
        let mut previous: Option<&[u8]> = None;
        while pos < content.len() {
            let len = element(&content[pos..], depth + 1, order)?;
            let this = &content[pos..pos + len];
            if h.tag == 0x31 {
                // DER orders SET OF by encoding (X.690 §11.6).
                if previous.is_some_and(|p| p > this) && order.is_none() {
                    *order = Some("SET elements not sorted".into());
                }
                previous = Some(this);
            }
            pos += len;
        }
    } else if h.universal() {
        primitive(h.number, content)?;
    }
    Ok(h.total_len())
}

fn primitive(number: u32, c: &[u8]) -> Result<(), DerError> {
    let nc = |m: &str| Err(DerError::NonCanonical(m.to_owned()));
    let bad = |m: &str| Err(DerError::Malformed(m.to_owned()));
    match number {
        0 => return bad("end-of-contents octets (indefinite length)"),
        1 => match c {
            [0x00] | [0xff] => {}
            [_] => return nc("BOOLEAN other than 00 or FF"),
            _ => return bad("BOOLEAN not one octet"),
        },
        2 | 10 => match c {
            [] => return bad("empty INTEGER"),
            [0x00, b, ..] if b & 0x80 == 0 => return nc("INTEGER with a redundant leading 00"),
            [0xff, b, ..] if b & 0x80 != 0 => return nc("INTEGER with a redundant leading FF"),
            _ => {}
        },
        3 => match c {
            [] => return bad("empty BIT STRING"),
            [unused, ..] if *unused > 7 => return bad("BIT STRING with more than 7 unused bits"),
            [unused] if *unused != 0 => return bad("empty BIT STRING with unused bits"),
            [unused, .., last] if last & ((1u8 << unused) - 1) != 0 => {
                return nc("BIT STRING with non-zero unused bits")
            }
            _ => {}
        },
        5 if !c.is_empty() => return bad("NULL with content"),
        6 => {
            if c.is_empty() {
                return bad("empty OBJECT IDENTIFIER");
            }
            if c.last().is_some_and(|b| b & 0x80 != 0) {
                return bad("truncated OBJECT IDENTIFIER");
            }
            let mut start = true;
            for &b in c {
                if start && b == 0x80 {
                    return nc("OBJECT IDENTIFIER arc with a leading zero group");
                }
                start = b & 0x80 == 0;
            }
        }
        23 if !is_time(c, 12) => return nc("UTCTime not in the form YYMMDDHHMMSSZ"),
        24 if !is_time(c, 14) => return nc("GeneralizedTime not in the form YYYYMMDDHHMMSSZ"),
        _ => {}
    }
    Ok(())
}

/// `digits` ASCII digits then `Z`.
fn is_time(c: &[u8], digits: usize) -> bool {
    c.len() == digits + 1 && c.last() == Some(&b'Z') && c[..digits].iter().all(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_canonical_der() {
        assert_eq!(check(&[0x30, 0x03, 0x02, 0x01, 0x05]), Ok(()));
        assert_eq!(check(&[0x02, 0x02, 0x00, 0x80]), Ok(()));
        assert_eq!(check(&[0x01, 0x01, 0xff]), Ok(()));
        let mut long = vec![0x04, 0x81, 0x80];
        long.extend([0u8; 128]);
        assert_eq!(check(&long), Ok(()));
        assert_eq!(
            check(&[0x31, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x02]),
            Ok(())
        );
    }

    #[test]
    fn refuses_ber_and_broken_encodings() {
        let nc = |b: &[u8]| matches!(check(b), Err(DerError::NonCanonical(_)));
        let bad = |b: &[u8]| matches!(check(b), Err(DerError::Malformed(_)));
        assert!(
            nc(&[0x30, 0x81, 0x03, 0x02, 0x01, 0x05]),
            "long form below 128"
        );
        assert!(
            nc(&[0x30, 0x82, 0x00, 0x03, 0x02, 0x01, 0x05]),
            "padded length"
        );
        assert!(
            nc(&[0x30, 0x80, 0x02, 0x01, 0x05, 0x00, 0x00]),
            "indefinite"
        );
        assert!(nc(&[0x02, 0x02, 0x00, 0x05]), "non-minimal integer");
        assert!(
            nc(&[0x02, 0x02, 0xff, 0x85]),
            "non-minimal negative integer"
        );
        assert!(nc(&[0x01, 0x01, 0x01]), "BOOLEAN 01");
        assert!(
            nc(&[0x24, 0x03, 0x04, 0x01, 0x00]),
            "constructed OCTET STRING"
        );
        assert!(
            nc(&[0x31, 0x06, 0x02, 0x01, 0x02, 0x02, 0x01, 0x01]),
            "unsorted SET"
        );
        assert!(nc(&[0x03, 0x02, 0x01, 0x01]), "unused bits set");
        assert!(nc(&[
            0x17, 0x0b, b'9', b'9', b'0', b'1', b'0', b'1', b'0', b'0', b'0', b'0', b'Z'
        ]));
        assert!(bad(&[0x30, 0x05, 0x02, 0x01]), "truncated");
        assert!(bad(&[0x30]), "no length");
        assert!(bad(&[0x02, 0x00]), "empty integer");
        assert!(bad(&[0x30, 0x85, 1, 0, 0, 0, 0]), "five length octets");
        assert_eq!(check(&[0x05, 0x00, 0x00]), Err(DerError::Trailing(1)));
        assert!(
            nc(&[0x30, 0x85, 0, 0, 0, 0, 1, 0x05, 0x00]),
            "padded five-octet length"
        );
    }

    #[test]
    fn depth_is_bounded() {
        // 40 nested empty-ish SEQUENCEs: refused as too deep, not a stack overflow.
        let mut v: Vec<u8> = vec![0x05, 0x00];
        for _ in 0..40 {
            let mut outer = vec![0x30, v.len() as u8];
            outer.extend(&v);
            v = outer;
        }
        assert!(matches!(check(&v), Err(DerError::Malformed(m)) if m.contains("deep")));
    }
}
