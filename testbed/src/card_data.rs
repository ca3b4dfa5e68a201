//! What a card holds beyond the user-authentication certificate, derived from its holder and
//! the world seed: the signature password, the My Number, the Kenkaku keys and a synthetic
//! face photo. Deterministic like everything in a world: the same seed and holder give the
//! same bytes.

use onshi_virtual_card::contents::my_number_check_digit;
use onshi_virtual_card::surface::{png_1bit, JP2_SIGNATURE};
use time::Date;

use crate::keys::derive_seed;
use crate::TestbedError;

/// A My Number (個人番号) for card `index`: 11 digits from the seed, then the check digit.
/// The first digit is never 0, so the number reads as 12 digits everywhere.
pub fn my_number(seed: u64, index: usize) -> String {
    let d = derive_seed(seed, &format!("my-number/{index}"));
    let mut first = [0u8; 11];
    for (i, slot) in first.iter_mut().enumerate() {
        let v = d.get(i).copied().unwrap_or(0);
        *slot = b'0' + if i == 0 { 1 + v % 9 } else { v % 10 };
    }
    let check = my_number_check_digit(&first).unwrap_or(0);
    let mut s = String::from_utf8_lossy(&first).into_owned();
    s.push(char::from(b'0' + check));
    s
}

/// The signature password: 8 characters of `A–Z0–9` from the seed.
pub fn sign_password(seed: u64, index: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let d = derive_seed(seed, &format!("sign-password/{index}"));
    d.iter()
        .take(8)
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}

/// A date as Japanese-era `YYMMDD` (昭和 from 1926-12-25, 平成 from 1989-01-08, 令和 from
/// 2019-05-01; earlier dates are written in 昭和 years too, which is wrong before 1926 but
/// no holder in a world is that old).
pub fn era_yymmdd(date: Date) -> String {
    let y = date.year();
    let ymd = (y, u8::from(date.month()), date.day());
    let base = if ymd >= (2019, 5, 1) {
        2018
    } else if ymd >= (1989, 1, 8) {
        1988
    } else {
        1925
    };
    format!("{:02}{:02}{:02}", (y - base).rem_euclid(100), ymd.1, ymd.2)
}

/// 照合番号B: era `YYMMDD` birth date, the card's expiry year, a 4-digit security code.
pub fn number_b(seed: u64, index: usize, birth_date: Date, expiry_year: i32) -> String {
    let d = derive_seed(seed, &format!("security-code/{index}"));
    let code = u16::from_be_bytes([d[0], d[1]]) % 10_000;
    format!(
        "{}{:04}{code:04}",
        era_yymmdd(birth_date),
        expiry_year.rem_euclid(10_000)
    )
}

/// Width and height of the synthetic face photo.
pub const PHOTO_WIDTH: usize = 32;
pub const PHOTO_HEIGHT: usize = 40;

/// A synthetic greyscale face photo: a binary PGM (`P5`), 32×40, 8-bit. An oval "face" on a
/// light background with two darker "eyes" and a "mouth", whose shading, size and position
/// depend on the person, plus a little seeded noise, so two holders' photos differ. It is a
/// placeholder: a real card holds a JPEG 2000 photograph.
pub fn face_photo(seed: u64, person_id: &str) -> Vec<u8> {
    let d = derive_seed(seed, &format!("face/{person_id}"));
    let byte = |i: usize| f64::from(d.get(i).copied().unwrap_or(0));
    let skin = 120.0 + byte(0) / 4.0;
    let rx = 10.0 + byte(1) / 64.0;
    let ry = 14.0 + byte(2) / 64.0;
    let cx = 15.5 + (byte(3) - 128.0) / 128.0;
    let cy = 20.0 + (byte(4) - 128.0) / 128.0;
    let mut img = format!("P5\n{PHOTO_WIDTH} {PHOTO_HEIGHT}\n255\n").into_bytes();
    for y in 0..PHOTO_HEIGHT {
        for x in 0..PHOTO_WIDTH {
            let (fx, fy) = (x as f64, y as f64);
            let inside = ((fx - cx) / rx).powi(2) + ((fy - cy) / ry).powi(2) <= 1.0;
            let eye = [(cx - 4.0, cy - 4.0), (cx + 4.0, cy - 4.0)]
                .iter()
                .any(|(ex, ey)| (fx - ex).powi(2) + (fy - ey).powi(2) <= 2.5);
            let mouth = (fy - (cy + 6.0)).abs() < 1.0 && (fx - cx).abs() < 4.0;
            let noise = byte(5 + (x * 7 + y * 13) % 27) / 32.0;
            let v = match (inside, eye || mouth) {
                (true, true) => 40.0,
                (true, false) => skin,
                (false, _) => 225.0,
            } + noise;
            img.push(v.clamp(0.0, 255.0) as u8);
        }
    }
    img
}

/// The face photo as a real card holds it (Kenkaku DF27): the synthetic face of
/// [`face_photo`] encoded losslessly as a greyscale JPEG 2000 JP2 file by OpenJPEG's
/// `opj_compress` (Debian `libopenjp2-tools`, installed by scripts/setup.sh). The tool rather
/// than a crate: the kept Rust binding (jpeg2k) encodes only from the `image` crate's types, a
/// large dependency for a few kilobytes of synthetic photo; OpenJPEG's own encoder is the
/// reference and is deterministic.
pub fn face_photo_jp2(seed: u64, person_id: &str) -> Result<Vec<u8>, TestbedError> {
    let err = |reason: String| TestbedError::Encode {
        what: "a face photo as JPEG 2000",
        reason: format!("{person_id}: {reason}"),
    };
    // A folder of its own per call (two worlds built at once in one process draw the same
    // persons), removed when dropped.
    let dir = tempfile::Builder::new()
        .prefix("onshi-face-")
        .tempdir()
        .map_err(|e| err(e.to_string()))?;
    let (pgm, jp2) = (dir.path().join("face.pgm"), dir.path().join("face.jp2"));
    let result = (|| {
        std::fs::write(&pgm, face_photo(seed, person_id)).map_err(|e| err(e.to_string()))?;
        // Three resolution levels: the default five need a larger image than 32×40.
        let out = std::process::Command::new("opj_compress")
            .arg("-i")
            .arg(&pgm)
            .arg("-o")
            .arg(&jp2)
            .args(["-n", "3"])
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| {
                err(format!(
                    "cannot run opj_compress ({e}); install Debian's libopenjp2-tools (scripts/setup.sh)"
                ))
            })?;
        if !out.status.success() {
            return Err(err(format!(
                "opj_compress failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let bytes = std::fs::read(&jp2).map_err(|e| err(e.to_string()))?;
        if !bytes.starts_with(&JP2_SIGNATURE) {
            return Err(err("opj_compress did not write a JP2 file".into()));
        }
        Ok(bytes)
    })();
    drop(dir);
    result
}

/// A field of the card face "as printed" (Kenkaku DF25, DF26, DF2A): a 1-bit greyscale PNG of
/// `height` pixels, one 8-pixel-wide cell per character whose marks are drawn from the
/// character (not a font: a synthetic stand-in that differs with the text).
pub fn printed_field(text: &str, height: u32) -> Vec<u8> {
    let chars: Vec<u32> = text.chars().map(u32::from).collect();
    let width = (8 * chars.len().max(1)) as u32;
    png_1bit(width, height, |x, y| {
        let c = chars.get((x / 8) as usize).copied().unwrap_or(0);
        let (cx, cy) = (x % 8, y * 8 / height.max(1));
        cx != 0 && cx != 7 && cy != 0 && (c.rotate_left(cx * 3 + cy) & 1 == 1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use onshi_virtual_card::contents::{is_valid_my_number, is_valid_sign_password};
    use time::Month;

    #[test]
    fn my_numbers_are_valid_and_deterministic() {
        for i in 0..200 {
            let n = my_number(1, i);
            assert!(is_valid_my_number(&n), "{n}");
            assert_eq!(n, my_number(1, i));
        }
        assert_ne!(my_number(1, 0), my_number(2, 0));
    }

    #[test]
    fn passwords_follow_the_rules() {
        for i in 0..50 {
            assert!(is_valid_sign_password(sign_password(1, i).as_bytes()));
        }
    }

    #[test]
    fn eras() {
        let d = |y, m, day| Date::from_calendar_date(y, m, day).unwrap();
        assert_eq!(era_yymmdd(d(1980, Month::January, 2)), "550102");
        assert_eq!(era_yymmdd(d(1989, Month::January, 7)), "640107");
        assert_eq!(era_yymmdd(d(1989, Month::January, 8)), "010108");
        assert_eq!(era_yymmdd(d(2019, Month::April, 30)), "310430");
        assert_eq!(era_yymmdd(d(2019, Month::May, 1)), "010501");
        assert_eq!(number_b(1, 0, d(1980, Month::January, 2), 2034).len(), 14);
        assert!(number_b(1, 0, d(1980, Month::January, 2), 2034).starts_with("5501022034"));
    }

    #[test]
    fn photos_are_pgm_and_differ_by_person() {
        let a = face_photo(1, "P000000001");
        let b = face_photo(1, "P000000002");
        assert!(a.starts_with(b"P5\n32 40\n255\n"));
        assert_eq!(
            a.len(),
            "P5\n32 40\n255\n".len() + PHOTO_WIDTH * PHOTO_HEIGHT
        );
        assert_ne!(a, b);
        assert_eq!(a, face_photo(1, "P000000001"));
    }
}
