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

/// The JP2 file signature box: the 12 bytes a JPEG 2000 file (not a raw codestream) starts
/// with. Real cards hold the face photo as a JP2 file (public clients detect `jP  ` at bytes
/// 4–8 and save it as `.jp2`).
pub const JP2_SIGNATURE: [u8; 12] = [
    0x00, 0x00, 0x00, 0x0C, 0x6A, 0x50, 0x20, 0x20, 0x0D, 0x0A, 0x87, 0x0A,
];
/// The PNG signature: the rendered name, address and security code are 1-bit greyscale PNGs.
pub const PNG_SIGNATURE: [u8; 8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];

/// What Kenkaku EF `0002` holds, each as the card stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardFace {
    /// `DF22`, `YYYYMMDD` (Gregorian).
    pub birth_date: String,
    /// `DF23`, `1`/`2`/`9`.
    pub sex: String,
    /// `DF24`: the application's public key as `90` (exponent) and `91` (modulus) objects.
    pub public_key: Vec<u8>,
    /// `DF25`, the name as printed: a 1-bit greyscale PNG.
    pub name_image: Vec<u8>,
    /// `DF26`, the address as printed: a 1-bit greyscale PNG.
    pub address_image: Vec<u8>,
    /// `DF27`, the face photo: a greyscale JPEG 2000 in a JP2 file.
    pub photo: Vec<u8>,
    /// `DF28`, 256 bytes: the issuer's RSA-2048 signature over `DF22`–`DF27`.
    pub signature: Vec<u8>,
    /// `DF29`, the card's expiry date `YYYYMMDD`.
    pub expiry_date: String,
    /// `DF2A`, the security code as printed: a 1-bit greyscale PNG.
    pub security_code_image: Vec<u8>,
}

/// The tags of Kenkaku EF `0002`'s objects after `DF21`, in order.
pub const CARD_FACE_TAGS: [[u8; 2]; 9] = [
    [0xDF, 0x22],
    [0xDF, 0x23],
    [0xDF, 0x24],
    [0xDF, 0x25],
    [0xDF, 0x26],
    [0xDF, 0x27],
    [0xDF, 0x28],
    [0xDF, 0x29],
    [0xDF, 0x2A],
];

impl CardFace {
    fn objects(&self) -> Vec<Vec<u8>> {
        let values: [&[u8]; 9] = [
            self.birth_date.as_bytes(),
            self.sex.as_bytes(),
            &self.public_key,
            &self.name_image,
            &self.address_image,
            &self.photo,
            &self.signature,
            self.expiry_date.as_bytes(),
            &self.security_code_image,
        ];
        CARD_FACE_TAGS
            .iter()
            .zip(values)
            .map(|(tag, value)| tlv(tag, value))
            .collect()
    }

    /// Kenkaku EF `0002`: `FF 20` { `DF21` offsets of the nine objects, `DF22` … `DF2A` }.
    pub fn file(&self) -> Vec<u8> {
        offset_table_file(TAG_FILE, TAG_OFFSETS, &self.objects())
    }

    /// What `DF28` signs, as a public client checks it: SHA-256 of each of three groups of
    /// objects as written (`DF22`–`DF24`, `DF25`–`DF26`, `DF27`), the three digests
    /// concatenated. The signature is PKCS#1 v1.5 over a SHA-256 DigestInfo holding these 96
    /// bytes. `DF29` and `DF2A` follow the signature and are not covered.
    pub fn signed_groups(&self) -> [Vec<u8>; 3] {
        let o = self.objects();
        [o[0..3].concat(), o[3..5].concat(), o[5].clone()]
    }
}

/// A DigestInfo naming SHA-256 around `digest`, whatever its length: `DF28` covers the three
/// group digests (96 bytes) in one, as public clients verify it.
pub fn sha256_digest_info(digest: &[u8]) -> Vec<u8> {
    const SHA256: [u8; 15] = [
        0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00,
    ];
    let mut inner = SHA256.to_vec();
    inner.extend_from_slice(&tlv(&[0x04], digest));
    tlv(&[0x30], &inner)
}

/// `DF24`'s value for an RSA key: `90` the public exponent, `91` the modulus, big-endian.
pub fn rsa_public_key_value(modulus: &[u8], exponent: &[u8]) -> Vec<u8> {
    let mut value = tlv(&[0x90], exponent);
    value.extend_from_slice(&tlv(&[0x91], modulus));
    value
}

/// A 1-bit greyscale PNG (`ink(x, y)` true is black), stored without compression: small
/// images, valid for any PNG decoder.
pub fn png_1bit(width: u32, height: u32, ink: impl Fn(u32, u32) -> bool) -> Vec<u8> {
    let row_bytes = width.div_ceil(8) as usize;
    let mut raw = Vec::with_capacity((row_bytes + 1) * height as usize);
    for y in 0..height {
        raw.push(0); // filter type None
        let mut row = vec![0xFFu8; row_bytes];
        for x in 0..width {
            if ink(x, y) {
                if let Some(b) = row.get_mut((x / 8) as usize) {
                    *b &= !(0x80 >> (x % 8));
                }
            }
        }
        raw.extend_from_slice(&row);
    }
    let mut png = PNG_SIGNATURE.to_vec();
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[1, 0, 0, 0, 0]); // bit depth 1, greyscale, deflate, no interlace
    png_chunk(&mut png, b"IHDR", &ihdr);
    png_chunk(&mut png, b"IDAT", &zlib_stored(&raw));
    png_chunk(&mut png, b"IEND", &[]);
    png
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&u32::try_from(data.len()).unwrap_or(u32::MAX).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(out.get(start..).unwrap_or_default());
    out.extend_from_slice(&crc.to_be_bytes());
}

/// A zlib stream of stored (uncompressed) deflate blocks.
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let mut chunks = data.chunks(0xFFFF).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[0x01, 0x00, 0x00, 0xFF, 0xFF]);
    }
    while let Some(chunk) = chunks.next() {
        out.push(u8::from(chunks.peek().is_none()));
        let len = u16::try_from(chunk.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in data {
        a = (a + u32::from(byte)) % 65521;
        b = (b + a) % 65521;
    }
    out.extend_from_slice(&((b << 16) | a).to_be_bytes());
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A card face with small but well-formed objects, for tests and fuzzing: the photo is the
/// JP2 signature and filler (not a decodable image), the key and signature are filler.
pub fn example_card_face() -> CardFace {
    let mut public_key = vec![0x90, 0x03, 0x01, 0x00, 0x01, 0x91, 0x82, 0x01, 0x00];
    public_key.extend(std::iter::repeat_n(0xC5, 256));
    let mut photo = JP2_SIGNATURE.to_vec();
    photo.extend_from_slice(&[0x55; 300]);
    CardFace {
        birth_date: "19800102".into(),
        sex: "1".into(),
        public_key,
        name_image: png_1bit(72, 12, |x, y| (x + y) % 3 == 0),
        address_image: png_1bit(160, 24, |x, _| x % 5 == 0),
        photo,
        signature: vec![0xBC; 256],
        expiry_date: "20350102".into(),
        security_code_image: png_1bit(24, 12, |x, y| x == y),
    }
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
    pub(crate) fn sample_face() -> CardFace {
        example_card_face()
    }

    #[test]
    fn the_card_face_has_nine_objects_behind_an_offset_table() {
        let face = sample_face();
        let file = face.file();
        // 0x2xx bytes of value: FF 20 82 HH LL, DF21 12 and 18 bytes of offsets, so DF22
        // starts at 5 + 3 + 18 = 0x1A.
        assert_eq!(&file[..2], &[0xFF, 0x20]);
        assert_eq!(file[2], 0x82);
        assert_eq!(&file[5..8], &[0xDF, 0x21, 0x12]);
        assert_eq!(&file[8..10], &[0x00, 0x1A]);
        assert_eq!(&file[0x1A..0x1A + 11], b"\xDF\x22\x0819800102");
        let tags: Vec<u32> = CARD_FACE_TAGS
            .iter()
            .map(|t| u32::from(u16::from_be_bytes(*t)))
            .collect();
        let objects = walk(&file, 0xFF20, &tags);
        assert_eq!(objects[1].1, b"1");
        assert_eq!(objects[2].1, face.public_key);
        assert_eq!(objects[5].1, face.photo);
        assert_eq!(objects[6].1.len(), 256);
        assert_eq!(objects[7].1, b"20350102");
        assert_eq!(objects[8].1, face.security_code_image);
        // The three signed groups are the objects as written.
        let groups = face.signed_groups();
        assert_eq!(groups[2][..2], [0xDF, 0x27]);
        // DF24 has a two-byte length (82 01 09): a 5-byte header.
        assert_eq!(groups[0].len(), 11 + 4 + 5 + face.public_key.len());
    }

    #[test]
    fn png_1bit_is_well_formed() {
        let png = png_1bit(10, 2, |x, _| x < 3);
        assert_eq!(&png[..8], &PNG_SIGNATURE);
        assert_eq!(&png[12..16], b"IHDR");
        // Rows: filter byte, then 2 bytes; the first three pixels black (bits 0).
        let idat = png.windows(4).position(|w| w == b"IDAT").unwrap();
        let zlib = &png[idat + 4..];
        assert_eq!(&zlib[..2], &[0x78, 0x01]);
        assert_eq!(&zlib[2..7], &[0x01, 0x06, 0x00, 0xF9, 0xFF]);
        assert_eq!(&zlib[7..13], &[0x00, 0x1F, 0xFF, 0x00, 0x1F, 0xFF]);
        // CRC-32 of "IEND" is the well-known AE 42 60 82.
        assert_eq!(&png[png.len() - 4..], &[0xAE, 0x42, 0x60, 0x82]);
    }
}
