//! The files of the two card-face applications, Kenhojo (券面入力補助) and Kenkaku (券面事項確認),
//! byte for byte as real cards hold them (jpki-card.md §5; the layouts and their public sources
//! are in docs/virtual-card.md).
//!
//! Pure functions from the card's data to file bytes; the card (`card.rs`) decides who may read
//! them.

use crate::card::tlv;

/// The outer tag of Kenhojo EF `0002` and Kenkaku EF `0002`.
pub const TAG_FILE: [u8; 2] = [0xFF, 0x20];
/// The offset table inside them.
pub const TAG_OFFSETS: [u8; 2] = [0xDF, 0x21];

/// A file `outer { table, objects... }` whose first object `table` lists, as big-endian 16-bit
/// numbers, where each of the following objects starts, **counted from the first byte of the
/// file** (the outer tag), not from the start of the outer value. Public clients check this
/// table against the objects they find and refuse the file when it disagrees.
pub fn offset_table_file(outer: [u8; 2], table: [u8; 2], objects: &[Vec<u8>]) -> Vec<u8> {
    let table_len = tlv(&table, &vec![0; 2 * objects.len()]).len();
    let value_len = table_len + objects.iter().map(Vec::len).sum::<usize>();
    // The outer header's length depends only on the value's length, which the offsets'
    // values do not change.
    let header_len = tlv(&outer, &vec![0; value_len]).len() - value_len;
    let mut offsets = Vec::with_capacity(2 * objects.len());
    let mut at = header_len + table_len;
    for object in objects {
        offsets.extend_from_slice(&u16::try_from(at).unwrap_or(u16::MAX).to_be_bytes());
        at += object.len();
    }
    let mut value = tlv(&table, &offsets);
    for object in objects {
        value.extend_from_slice(object);
    }
    tlv(&outer, &value)
}

/// Kenhojo EF `0001`: `FF 10 0C` and the 12 ASCII digits of the My Number, then two `FF`: the
/// EF is 17 bytes on a real card (a public client reads it with Le=17, another hashes all 17).
pub fn my_number_file(my_number: &str) -> Vec<u8> {
    let mut file = tlv(&[0xFF, 0x10], my_number.as_bytes());
    file.extend_from_slice(&[0xFF, 0xFF]);
    file
}

/// Kenhojo EF `0002`, the basic four facts: `FF 20` { `DF21` offsets of the next four,
/// `DF22` name (UTF-8, family and given name separated by U+3000), `DF23` address (UTF-8),
/// `DF24` birth date `YYYYMMDD`, `DF25` sex `1`/`2`/`9` }.
pub fn basic_four_facts(name: &str, address: &str, birth_date: &str, sex: &str) -> Vec<u8> {
    offset_table_file(
        TAG_FILE,
        TAG_OFFSETS,
        &[
            tlv(&[0xDF, 0x22], name.as_bytes()),
            tlv(&[0xDF, 0x23], address.as_bytes()),
            tlv(&[0xDF, 0x24], birth_date.as_bytes()),
            tlv(&[0xDF, 0x25], sex.as_bytes()),
        ],
    )
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// One BER object at the start of `bytes`: (tag, header length, value length). Tags are
    /// one byte, or two when the low five bits of the first are all set; lengths short or
    /// `81`/`82` long form. Written apart from the builders so the tests recompute offsets
    /// independently.
    pub(crate) fn object(bytes: &[u8]) -> (u32, usize, usize) {
        let (tag, mut at) = if bytes[0] & 0x1F == 0x1F {
            ((u32::from(bytes[0]) << 8) | u32::from(bytes[1]), 2)
        } else {
            (u32::from(bytes[0]), 1)
        };
        let len = match bytes[at] {
            0x81 => {
                at += 2;
                usize::from(bytes[at - 1])
            }
            0x82 => {
                at += 3;
                usize::from(u16::from_be_bytes([bytes[at - 2], bytes[at - 1]]))
            }
            n => {
                assert!(n < 0x80, "unexpected length byte {n:02X}");
                at += 1;
                usize::from(n)
            }
        };
        (tag, at, len)
    }

    /// Walks an offset-table file: checks the outer tag, that the table is first, that each
    /// offset is where the object really starts (from the file's first byte), and that the
    /// objects fill the value exactly. Returns (tag, value) of each object after the table.
    pub(crate) fn walk(file: &[u8], outer: u32, expected_tags: &[u32]) -> Vec<(u32, Vec<u8>)> {
        let (tag, header, len) = object(file);
        assert_eq!(tag, outer);
        assert_eq!(
            header + len,
            file.len(),
            "the outer object is the whole file"
        );
        let (table_tag, table_header, table_len) = object(&file[header..]);
        assert_eq!(table_tag, 0xDF21);
        assert_eq!(table_len, 2 * expected_tags.len());
        let table = &file[header + table_header..header + table_header + table_len];
        let mut at = header + table_header + table_len;
        let mut found = Vec::new();
        for (i, &expected) in expected_tags.iter().enumerate() {
            let declared = usize::from(u16::from_be_bytes([table[2 * i], table[2 * i + 1]]));
            assert_eq!(declared, at, "offset {i} of {outer:04X}");
            let (t, h, l) = object(&file[at..]);
            assert_eq!(t, expected, "object {i}");
            found.push((t, file[at + h..at + h + l].to_vec()));
            at += h + l;
        }
        assert_eq!(at, file.len(), "nothing follows the last object");
        found
    }

    #[test]
    fn basic_four_facts_byte_for_byte() {
        let file = basic_four_facts(
            "山田\u{3000}太郎",
            "東京都千代田区千代田1-1",
            "19800102",
            "1",
        );
        // Worked by hand: name 15 bytes, address 33; the value is 11 + 18 + 36 + 11 + 4 = 80
        // (0x50, short form), so the header is 3 bytes and DF22 starts at 3 + 11 = 0x0E, DF23
        // at 0x0E + 18 = 0x20, DF24 at 0x20 + 36 = 0x44, DF25 at 0x44 + 11 = 0x4F.
        let mut expected = hex::decode("FF2050DF2108000E0020004400 4F".replace(' ', "")).unwrap();
        expected.extend_from_slice(&[0xDF, 0x22, 15]);
        expected.extend_from_slice("山田\u{3000}太郎".as_bytes());
        expected.extend_from_slice(&[0xDF, 0x23, 33]);
        expected.extend_from_slice("東京都千代田区千代田1-1".as_bytes());
        expected.extend_from_slice(b"\xDF\x24\x0819800102\xDF\x25\x011");
        assert_eq!(hex::encode_upper(&file), hex::encode_upper(&expected));
        let objects = walk(&file, 0xFF20, &[0xDF22, 0xDF23, 0xDF24, 0xDF25]);
        assert_eq!(objects[2].1, b"19800102");
    }

    #[test]
    fn offsets_count_from_the_first_byte_with_every_header_length() {
        // Values of 0x50, 0xC8 and 0x2xx bytes: short, 81 and 82 outer lengths.
        for address_len in [10usize, 130, 600] {
            let address = "a".repeat(address_len);
            let file = basic_four_facts("x", &address, "20000229", "2");
            let objects = walk(&file, 0xFF20, &[0xDF22, 0xDF23, 0xDF24, 0xDF25]);
            assert_eq!(objects[1].1, address.as_bytes());
        }
    }

    #[test]
    fn the_my_number_file_is_17_bytes() {
        let file = my_number_file("123456789018");
        assert_eq!(
            hex::encode_upper(&file),
            "FF100C313233343536373839303138FFFF"
        );
    }
}
