//! A minimal DER writer for the few structures rcgen cannot produce: the JPKI certificate
//! policies extension, a CRL distribution point given as a directory name, and the Names inside
//! it. Definite lengths only, every value built bottom-up, so the output is canonical DER.

/// Universal tags used here.
pub const TAG_OID: u8 = 0x06;
pub const TAG_PRINTABLE_STRING: u8 = 0x13;
pub const TAG_SEQUENCE: u8 = 0x30;
pub const TAG_SET: u8 = 0x31;

/// Tag, length, value.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// SEQUENCE of already-encoded elements.
pub fn sequence(elements: &[&[u8]]) -> Vec<u8> {
    tlv(TAG_SEQUENCE, &elements.concat())
}

/// An OBJECT IDENTIFIER. The first two arcs must be valid (0–2, and below 40 unless the first
/// is 2), which holds for the constants this crate passes.
pub fn oid(arcs: &[u64]) -> Vec<u8> {
    let mut content = Vec::new();
    let (first, rest) = match arcs {
        [a, b, rest @ ..] => (a * 40 + b, rest),
        [a] => (a * 40, &[][..]),
        [] => (0, &[][..]),
    };
    for arc in std::iter::once(first).chain(rest.iter().copied()) {
        // Base 128, most significant group first, continuation bit on all but the last.
        let mut groups = vec![(arc & 0x7f) as u8];
        let mut v = arc >> 7;
        while v > 0 {
            groups.push(0x80 | (v & 0x7f) as u8);
            v >>= 7;
        }
        content.extend(groups.iter().rev());
    }
    tlv(TAG_OID, &content)
}

/// Parses a dotted OID string (`1.2.392.200149.8.5.1.0.30`) into arcs.
pub fn parse_oid(dotted: &str) -> Option<Vec<u64>> {
    let arcs = dotted
        .split('.')
        .map(|a| a.parse::<u64>().ok())
        .collect::<Option<Vec<_>>>()?;
    (arcs.len() >= 2).then_some(arcs)
}

/// A Name (RDNSequence) of single-valued RDNs with PrintableString values, in the given order.
/// Returns `None` if a value is not a PrintableString.
pub fn name(rdns: &[(&[u64], &str)]) -> Option<Vec<u8>> {
    let mut content = Vec::new();
    for (attr, value) in rdns {
        if !is_printable(value) {
            return None;
        }
        let atv = sequence(&[&oid(attr), &tlv(TAG_PRINTABLE_STRING, value.as_bytes())]);
        content.extend(tlv(TAG_SET, &atv));
    }
    Some(tlv(TAG_SEQUENCE, &content))
}

/// The PrintableString alphabet (X.680 §41.4).
pub fn is_printable(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b" '()+,-./:=?".contains(&b))
}

/// `certificatePolicies` extension value: `SEQUENCE { SEQUENCE { policyIdentifier } }`, with no
/// qualifiers (RFC 5280 §4.2.1.4).
pub fn certificate_policies(policy: &[u64]) -> Vec<u8> {
    sequence(&[&sequence(&[&oid(policy)])])
}

/// `cRLDistributionPoints` extension value with one distribution point whose full name is a
/// directory name (RFC 5280 §4.2.1.13), as JPKI certificates carry it:
///
/// ```text
/// SEQUENCE {                      -- CRLDistributionPoints
///   SEQUENCE {                    -- DistributionPoint
///     [0] {                       -- distributionPoint: a CHOICE, so explicitly tagged
///       [0] {                     -- fullName: GeneralNames, implicitly tagged
///         [4] { Name }            -- directoryName: Name is a CHOICE, so explicit
/// } } } }
/// ```
pub fn crl_distribution_point_directory_name(name_der: &[u8]) -> Vec<u8> {
    let directory_name = tlv(0xA4, name_der);
    let full_name = tlv(0xA0, &directory_name);
    let distribution_point = tlv(0xA0, &full_name);
    sequence(&[&sequence(&[&distribution_point])])
}

/// `SubjectKeyIdentifier` extension value: an OCTET STRING.
pub fn octet_string(bytes: &[u8]) -> Vec<u8> {
    tlv(0x04, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_use_the_shortest_form() {
        assert_eq!(tlv(0x04, &[]), vec![0x04, 0x00]);
        assert_eq!(tlv(0x04, &[0; 127])[..2], [0x04, 0x7f]);
        assert_eq!(tlv(0x04, &[0; 128])[..3], [0x04, 0x81, 0x80]);
        assert_eq!(tlv(0x04, &[0; 256])[..4], [0x04, 0x82, 0x01, 0x00]);
    }

    #[test]
    fn the_jpki_test_policy_oid() {
        // 1.2.392.200149.8.5.1.0.30, checked by hand: 42, 392 = 0x83 0x08,
        // 200149 = 0x8c 0x9b 0x55, then single bytes.
        assert_eq!(
            oid(&[1, 2, 392, 200149, 8, 5, 1, 0, 30]),
            vec![0x06, 0x0b, 0x2a, 0x83, 0x08, 0x8c, 0x9b, 0x55, 0x08, 0x05, 0x01, 0x00, 0x1e]
        );
        assert_eq!(oid(&[2, 5, 29, 32]), vec![0x06, 0x03, 0x55, 0x1d, 0x20]);
        assert_eq!(
            parse_oid("1.2.392.200149.8.5.1.0.30"),
            Some(vec![1, 2, 392, 200149, 8, 5, 1, 0, 30])
        );
        assert_eq!(parse_oid("1"), None);
        assert_eq!(parse_oid("1.x"), None);
    }

    #[test]
    fn names_are_printable_strings_in_order() {
        let n = name(&[(&[2, 5, 4, 6], "JP"), (&[2, 5, 4, 3], "A")]).unwrap();
        assert_eq!(
            n,
            vec![
                0x30, 0x19, 0x31, 0x0b, 0x30, 0x09, 0x06, 0x03, 0x55, 0x04, 0x06, 0x13, 0x02, b'J',
                b'P', 0x31, 0x0a, 0x30, 0x08, 0x06, 0x03, 0x55, 0x04, 0x03, 0x13, 0x01, b'A'
            ]
        );
        assert_eq!(name(&[(&[2, 5, 4, 3], "日本")]), None);
    }

    #[test]
    fn distribution_point_nesting() {
        let name = [0x30, 0x00];
        assert_eq!(
            crl_distribution_point_directory_name(&name),
            vec![0x30, 0x0a, 0x30, 0x08, 0xa0, 0x06, 0xa0, 0x04, 0xa4, 0x02, 0x30, 0x00]
        );
    }
}
