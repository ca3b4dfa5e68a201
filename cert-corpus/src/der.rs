//! A minimal DER writer (definite lengths, built bottom-up), plus the few deliberately
//! non-canonical encodings the corpus needs.

pub fn len_bytes(len: usize) -> Vec<u8> {
    if len < 0x80 {
        vec![len as u8]
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        let mut out = vec![0x80 | (bytes.len() - skip) as u8];
        out.extend_from_slice(&bytes[skip..]);
        out
    }
}

pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend(len_bytes(content.len()));
    out.extend_from_slice(content);
    out
}

/// A TLV whose length is written in four octets with leading zeros (valid BER, not DER).
pub fn tlv_padded_len(tag: u8, content: &[u8]) -> Vec<u8> {
    let len = content.len() as u32;
    let mut out = vec![tag, 0x84];
    out.extend(len.to_be_bytes());
    out.extend_from_slice(content);
    out
}

pub fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

pub fn set(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x31, &parts.concat())
}

/// A non-negative INTEGER from big-endian magnitude bytes, minimally encoded.
pub fn uint(magnitude: &[u8]) -> Vec<u8> {
    let skip = magnitude
        .iter()
        .take_while(|&&b| b == 0)
        .count()
        .min(magnitude.len().saturating_sub(1));
    let m = &magnitude[skip..];
    let mut content = Vec::new();
    if m.first().is_none_or(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(m);
    tlv(0x02, &content)
}

pub fn small_int(v: u8) -> Vec<u8> {
    uint(&[v])
}

pub fn oid(arcs: &[u64]) -> Vec<u8> {
    let mut content = Vec::new();
    let first = arcs[0] * 40 + arcs[1];
    for arc in std::iter::once(first).chain(arcs[2..].iter().copied()) {
        let mut groups = vec![(arc & 0x7f) as u8];
        let mut v = arc >> 7;
        while v > 0 {
            groups.push(0x80 | (v & 0x7f) as u8);
            v >>= 7;
        }
        content.extend(groups.iter().rev());
    }
    tlv(0x06, &content)
}

pub fn parse_oid(dotted: &str) -> Vec<u64> {
    dotted.split('.').filter_map(|a| a.parse().ok()).collect()
}

pub fn null() -> Vec<u8> {
    vec![0x05, 0x00]
}

pub fn octets(b: &[u8]) -> Vec<u8> {
    tlv(0x04, b)
}

pub fn bits(b: &[u8]) -> Vec<u8> {
    let mut c = vec![0u8];
    c.extend_from_slice(b);
    tlv(0x03, &c)
}

pub fn printable(s: &str) -> Vec<u8> {
    tlv(0x13, s.as_bytes())
}

/// UTCTime before 2050, GeneralizedTime from 2050 (RFC 5280 §4.1.2.5).
pub fn time(t: time::OffsetDateTime) -> Vec<u8> {
    let t = t.to_offset(time::UtcOffset::UTC);
    if t.year() < 2050 {
        let s = format!(
            "{:02}{:02}{:02}{:02}{:02}{:02}Z",
            t.year() % 100,
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        );
        tlv(0x17, s.as_bytes())
    } else {
        let s = format!(
            "{:04}{:02}{:02}{:02}{:02}{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        );
        tlv(0x18, s.as_bytes())
    }
}

/// A Name of single-valued RDNs with PrintableString values.
pub fn name(rdns: &[(&str, &str)]) -> Vec<u8> {
    let mut content = Vec::new();
    for (attr, value) in rdns {
        let atv = seq(&[&oid(&parse_oid(attr)), &printable(value)]);
        content.extend(set(&[&atv]));
    }
    tlv(0x30, &content)
}
