//! Face authentication, simulated honestly (eligibility.md §1 step 2).
//!
//! - **The card's photo** (a greyscale JPEG 2000, decoded with OpenJPEG) comes from the virtual
//!   card's documented simulator-only path
//!   (`80 B0` in Kenkaku, docs/virtual-card.md); a real card would not give it up.
//! - **The camera** is simulated: it presents the card holder's face (the card's photo as a
//!   camera sees it: darker, less contrast, sensor noise that differs on every capture), a
//!   stranger's face, or any 8-bit greyscale PGM a script supplies.
//! - **The matcher** is deterministic: the Pearson correlation of the two images' pixels
//!   (resampled to the card photo's size), in permille, against a configurable threshold. It
//!   is blind to brightness and contrast, so the holder scores about 990 whatever the light,
//!   a stranger far below. Two different holders of the synthetic world can look alike (the
//!   testbed draws every face as an oval with eyes and a mouth): the default threshold 950
//!   keeps such false matches rare, not impossible, as with a real matcher.
//! - **The lock**: after [`MAX_FACE_FAILURES`] consecutive failures face authentication is
//!   refused for that card (counted per certificate, in the kiosk's state folder, so the
//!   count survives the card being pulled and the kiosk restarting); a success resets it;
//!   the PIN path remains.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Consecutive failures after which face authentication is refused for a card.
pub const MAX_FACE_FAILURES: u8 = 10;
/// The kiosk's default match threshold, permille.
pub const DEFAULT_THRESHOLD_PERMILLE: u16 = 950;
/// Largest photo the matcher accepts (either side), in pixels per side.
const MAX_SIDE: usize = 1024;

/// The image size a JPEG 2000 codestream declares in its SIZ marker segment (ISO/IEC 15444-1
/// A.5.1: `FF 4F` SOC, `FF 51` SIZ, Lsiz, Rsiz, then Xsiz, Ysiz, XOsiz, YOsiz as 32-bit
/// big-endian), found at the start of a raw codestream or after the first SOC+SIZ in a JP2
/// file (inside its `jp2c` box).
fn j2k_declared_size(bytes: &[u8]) -> Result<(usize, usize), String> {
    const SOC_SIZ: [u8; 4] = [0xFF, 0x4F, 0xFF, 0x51];
    let start = bytes
        .windows(SOC_SIZ.len())
        .position(|w| w == SOC_SIZ)
        .ok_or("the card's JPEG 2000 photo has no codestream header (SOC, SIZ)")?;
    let field = |at: usize| -> Result<usize, String> {
        let b = bytes
            .get(start + at..start + at + 4)
            .ok_or("the card's JPEG 2000 photo ends inside its SIZ header")?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    // After SOC (2), the SIZ marker (2), Lsiz (2) and Rsiz (2).
    let (x, y, x0, y0) = (field(8)?, field(12)?, field(16)?, field(20)?);
    Ok((x.saturating_sub(x0), y.saturating_sub(y0)))
}

/// An 8-bit greyscale image.
#[derive(Clone, PartialEq, Eq)]
pub struct Photo {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

impl std::fmt::Debug for Photo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Photo({}×{})", self.width, self.height)
    }
}

impl Photo {
    /// Parses a binary PGM (`P5`, maxval 255), the format of the testbed's card photos.
    pub fn parse_pgm(bytes: &[u8]) -> Result<Photo, String> {
        let mut fields = Vec::with_capacity(4);
        let mut pos = 0;
        while fields.len() < 4 {
            // Skip whitespace and comments.
            while pos < bytes.len() {
                match bytes[pos] {
                    b' ' | b'\t' | b'\r' | b'\n' => pos += 1,
                    b'#' => {
                        while pos < bytes.len() && bytes[pos] != b'\n' {
                            pos += 1;
                        }
                    }
                    _ => break,
                }
            }
            let start = pos;
            while pos < bytes.len() && !bytes[pos].is_ascii_whitespace() {
                pos += 1;
            }
            if start == pos {
                return Err("not a PGM image: the header ends early".into());
            }
            fields.push(String::from_utf8_lossy(&bytes[start..pos]).into_owned());
        }
        // Exactly one whitespace byte separates the header from the pixels.
        pos += 1;
        if fields[0] != "P5" {
            return Err(format!(
                "not a binary PGM image (magic {:?}, expected P5)",
                fields[0]
            ));
        }
        let number = |s: &str, what: &str| -> Result<usize, String> {
            s.parse::<usize>()
                .map_err(|_| format!("not a PGM image: {what} {s:?} is not a number"))
        };
        let width = number(&fields[1], "width")?;
        let height = number(&fields[2], "height")?;
        let maxval = number(&fields[3], "maxval")?;
        if maxval != 255 {
            return Err(format!(
                "only 8-bit PGM images are supported (maxval {maxval})"
            ));
        }
        if !(1..=MAX_SIDE).contains(&width) || !(1..=MAX_SIDE).contains(&height) {
            return Err(format!(
                "a {width}×{height} image is outside 1..={MAX_SIDE} pixels per side"
            ));
        }
        let pixels = bytes.get(pos..pos + width * height).ok_or_else(|| {
            format!("the PGM image is truncated: {width}×{height} pixels announced")
        })?;
        Ok(Photo {
            width,
            height,
            pixels: pixels.to_vec(),
        })
    }

    /// Decodes the card's face photo: a greyscale JPEG 2000 (a JP2 file as on a real card, or
    /// a raw codestream), through OpenJPEG; a binary PGM is still accepted from older worlds.
    /// Only the first component is used, scaled to 8 bits.
    pub fn decode_card_photo(bytes: &[u8]) -> Result<Photo, String> {
        const JP2: [u8; 12] = [
            0x00, 0x00, 0x00, 0x0C, 0x6A, 0x50, 0x20, 0x20, 0x0D, 0x0A, 0x87, 0x0A,
        ];
        const J2K: [u8; 4] = [0xFF, 0x4F, 0xFF, 0x51];
        if !bytes.starts_with(&JP2) && !bytes.starts_with(&J2K) {
            return Photo::parse_pgm(bytes);
        }
        // The card is untrusted: its declared size is checked before OpenJPEG allocates for it.
        let (width, height) = j2k_declared_size(bytes)?;
        if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
            return Err(format!(
                "the card's photo declares {width}×{height} pixels; at most {MAX_SIDE} per side"
            ));
        }
        let image = jpeg2k::Image::from_bytes(bytes)
            .map_err(|e| format!("the card's JPEG 2000 photo cannot be decoded: {e}"))?;
        let component = image
            .components()
            .first()
            .ok_or("the card's JPEG 2000 photo has no component")?;
        let (width, height) = (component.width() as usize, component.height() as usize);
        if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
            return Err(format!(
                "the card's photo is {width}×{height} pixels; at most {MAX_SIDE} per side"
            ));
        }
        let pixels: Vec<u8> = component.data_u8().collect();
        if pixels.len() != width * height {
            return Err("the card's JPEG 2000 photo decoded to the wrong number of pixels".into());
        }
        Ok(Photo {
            width,
            height,
            pixels,
        })
    }

    /// The image as a binary PGM.
    pub fn to_pgm(&self) -> Vec<u8> {
        let mut out = format!("P5\n{} {}\n255\n", self.width, self.height).into_bytes();
        out.extend_from_slice(&self.pixels);
        out
    }

    /// Nearest-neighbour resampling to `width` × `height`.
    fn resized(&self, width: usize, height: usize) -> Photo {
        if (width, height) == (self.width, self.height) {
            return self.clone();
        }
        let mut pixels = Vec::with_capacity(width * height);
        for y in 0..height {
            let sy = y * self.height / height;
            for x in 0..width {
                let sx = x * self.width / width;
                pixels.push(self.pixels[sy * self.width + sx]);
            }
        }
        Photo {
            width,
            height,
            pixels,
        }
    }
}

/// What the simulated camera is shown.
#[derive(Debug, Clone)]
pub enum Camera {
    /// The card's holder stands in front of the reader.
    Holder,
    /// Someone else does.
    Stranger,
    /// A script supplies the captured image.
    Image(Photo),
}

impl Camera {
    /// One capture. `attempt` seeds the sensor noise, so two captures differ and a run can
    /// be repeated exactly.
    pub fn capture(&self, card_photo: &Photo, attempt: u32) -> Photo {
        match self {
            Camera::Holder => {
                let mut rng = SplitMix(0x6f6e_7368_6900_0000 ^ u64::from(attempt));
                let pixels = card_photo
                    .pixels
                    .iter()
                    .map(|&p| {
                        let noise = (rng.next() % 21) as f64 - 10.0;
                        (f64::from(p) * 0.85 + 12.0 + noise).clamp(0.0, 255.0) as u8
                    })
                    .collect();
                Photo {
                    pixels,
                    ..card_photo.clone()
                }
            }
            Camera::Stranger => stranger(card_photo.width, card_photo.height),
            Camera::Image(photo) => photo.clone(),
        }
    }
}

/// A face that is nobody's card photo: a small round face low and to the left on a dark
/// background.
fn stranger(width: usize, height: usize) -> Photo {
    let (w, h) = (width as f64, height as f64);
    let (cx, cy, rx, ry) = (w * 0.4, h * 0.58, w * 0.22, h * 0.22);
    let mut pixels = Vec::with_capacity(width * height);
    for y in 0..height {
        for x in 0..width {
            let (fx, fy) = (x as f64, y as f64);
            let inside = ((fx - cx) / rx).powi(2) + ((fy - cy) / ry).powi(2) <= 1.0;
            let eye = [
                (cx - rx * 0.4, cy - ry * 0.3),
                (cx + rx * 0.4, cy - ry * 0.3),
            ]
            .iter()
            .any(|(ex, ey)| (fx - ex).powi(2) + (fy - ey).powi(2) <= 2.5);
            pixels.push(match (inside, eye) {
                (true, true) => 40,
                (true, false) => 150,
                (false, _) => 90,
            });
        }
    }
    Photo {
        width,
        height,
        pixels,
    }
}

/// The matcher's score of `probe` against `reference`, permille: the Pearson correlation of
/// their pixels (the probe resampled to the reference's size), negative correlations as 0.
/// A flat image (no variation at all) scores 0.
pub fn match_score(reference: &Photo, probe: &Photo) -> u16 {
    let probe = probe.resized(reference.width, reference.height);
    let n = reference.pixels.len() as f64;
    let mean = |p: &[u8]| p.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let (ma, mb) = (mean(&reference.pixels), mean(&probe.pixels));
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (&a, &b) in reference.pixels.iter().zip(&probe.pixels) {
        let (da, db) = (f64::from(a) - ma, f64::from(b) - mb);
        ab += da * db;
        aa += da * da;
        bb += db * db;
    }
    if aa == 0.0 || bb == 0.0 {
        return 0;
    }
    let r = ab / (aa.sqrt() * bb.sqrt());
    (r.clamp(0.0, 1.0) * 1000.0).floor() as u16
}

/// A tiny deterministic generator for the camera's sensor noise.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Consecutive face failures per card (keyed by the SHA-256 of its user-authentication
/// certificate, hex), kept in `face-failures.json` in the kiosk's state folder.
#[derive(Debug)]
pub struct FaceFailures {
    path: Option<PathBuf>,
    counts: BTreeMap<String, u8>,
}

impl FaceFailures {
    /// In memory only (tests).
    pub fn in_memory() -> Self {
        Self {
            path: None,
            counts: BTreeMap::new(),
        }
    }

    /// Loads the counts from `dir/face-failures.json` (none yet: all zero).
    pub fn load(dir: &Path) -> Result<Self, String> {
        let path = dir.join("face-failures.json");
        let counts = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|e| format!("{} is not valid: {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        Ok(Self {
            path: Some(path),
            counts,
        })
    }

    pub fn failures(&self, card: &str) -> u8 {
        self.counts.get(card).copied().unwrap_or(0)
    }

    pub fn locked(&self, card: &str) -> bool {
        self.failures(card) >= MAX_FACE_FAILURES
    }

    /// Counts one more failure; returns the new count.
    pub fn record_failure(&mut self, card: &str) -> Result<u8, String> {
        let n = self.counts.entry(card.to_owned()).or_insert(0);
        *n = n.saturating_add(1).min(MAX_FACE_FAILURES);
        let n = *n;
        self.save()?;
        Ok(n)
    }

    /// A success: the count starts again.
    pub fn reset(&mut self, card: &str) -> Result<(), String> {
        if self.counts.remove(card).is_some() {
            self.save()?;
        }
        Ok(())
    }

    fn save(&self) -> Result<(), String> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(&self.counts).map_err(|e| e.to_string())?;
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The card's photo is a JPEG 2000 JP2 file (as the testbed writes it, with OpenJPEG's
    /// `opj_compress`, installed by scripts/setup.sh): decoded to the same pixels, losslessly.
    #[test]
    fn a_jp2_card_photo_decodes_to_its_pixels() {
        let photo = card_photo(3);
        let dir = std::env::temp_dir().join(format!("onshi-face-jp2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (pgm, jp2) = (dir.join("p.pgm"), dir.join("p.jp2"));
        std::fs::write(&pgm, photo.to_pgm()).unwrap();
        let ok = std::process::Command::new("opj_compress")
            .arg("-i")
            .arg(&pgm)
            .arg("-o")
            .arg(&jp2)
            .args(["-n", "3"])
            .output()
            .expect("opj_compress (Debian libopenjp2-tools)")
            .status
            .success();
        assert!(ok);
        let bytes = std::fs::read(&jp2).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(&bytes[4..8], b"jP  ");
        assert_eq!(Photo::decode_card_photo(&bytes).unwrap(), photo);
        // A PGM still decodes; a corrupt JP2 is an error, not a panic.
        assert_eq!(Photo::decode_card_photo(&photo.to_pgm()).unwrap(), photo);
        assert!(Photo::decode_card_photo(&bytes[..40]).is_err());
        // A card declaring a huge image is refused before OpenJPEG is asked to decode it.
        let soc = bytes
            .windows(4)
            .position(|w| w == [0xFF, 0x4F, 0xFF, 0x51])
            .unwrap();
        let mut huge = bytes.clone();
        huge[soc + 8..soc + 12].copy_from_slice(&60_000u32.to_be_bytes());
        huge[soc + 12..soc + 16].copy_from_slice(&60_000u32.to_be_bytes());
        let err = Photo::decode_card_photo(&huge).unwrap_err();
        assert!(err.contains("declares 60000×60000"), "{err}");
    }

    /// A card-like photo: an oval face with eyes and a mouth, shaped by `k`.
    fn card_photo(k: u32) -> Photo {
        let (width, height) = (32usize, 40usize);
        let (cx, cy) = (15.5, 20.0);
        let (rx, ry) = (10.0 + f64::from(k % 4), 14.0 + f64::from(k % 3));
        let skin = 120.0 + f64::from(k * 17 % 60);
        let mut pixels = Vec::new();
        for y in 0..height {
            for x in 0..width {
                let (fx, fy) = (x as f64, y as f64);
                let inside = ((fx - cx) / rx).powi(2) + ((fy - cy) / ry).powi(2) <= 1.0;
                let eye = [(cx - 4.0, cy - 4.0), (cx + 4.0, cy - 4.0)]
                    .iter()
                    .any(|(ex, ey)| (fx - ex).powi(2) + (fy - ey).powi(2) <= 2.5);
                let mouth = (fy - (cy + 6.0)).abs() < 1.0 && (fx - cx).abs() < 4.0;
                pixels.push(match (inside, eye || mouth) {
                    (true, true) => 40,
                    (true, false) => skin as u8,
                    (false, _) => 225,
                });
            }
        }
        Photo {
            width,
            height,
            pixels,
        }
    }

    #[test]
    fn pgm_round_trip_and_bad_images_are_named() {
        let p = card_photo(1);
        assert_eq!(Photo::parse_pgm(&p.to_pgm()).unwrap(), p);
        let with_comment = b"P5\n# camera\n2 1\n255\n\x01\x02";
        assert_eq!(Photo::parse_pgm(with_comment).unwrap().pixels, vec![1, 2]);
        assert!(Photo::parse_pgm(b"P2\n1 1\n255\n1")
            .unwrap_err()
            .contains("P5"));
        assert!(Photo::parse_pgm(b"P5\n2 2\n255\n\x01")
            .unwrap_err()
            .contains("truncated"));
        assert!(Photo::parse_pgm(b"P5\n2 2\n65535\n")
            .unwrap_err()
            .contains("8-bit"));
        assert!(Photo::parse_pgm(b"P5\n0 2\n255\n")
            .unwrap_err()
            .contains("outside"));
        assert!(Photo::parse_pgm(b"P5\n9999999 2\n255\n").is_err());
        assert!(Photo::parse_pgm(b"P5").unwrap_err().contains("ends early"));
    }

    #[test]
    fn the_holder_matches_on_every_capture_and_a_stranger_never_does() {
        for k in 0..12 {
            let card = card_photo(k);
            for attempt in 0..10 {
                let holder = match_score(&card, &Camera::Holder.capture(&card, attempt));
                assert!(
                    holder >= DEFAULT_THRESHOLD_PERMILLE + 10,
                    "card {k} attempt {attempt}: {holder}"
                );
            }
            let stranger = match_score(&card, &Camera::Stranger.capture(&card, 0));
            assert!(stranger < 500, "card {k}: stranger scored {stranger}");
        }
    }

    #[test]
    fn captures_differ_but_are_repeatable() {
        let card = card_photo(3);
        let a = Camera::Holder.capture(&card, 1);
        assert_eq!(a, Camera::Holder.capture(&card, 1));
        assert_ne!(a, Camera::Holder.capture(&card, 2));
        assert_ne!(a, card);
    }

    #[test]
    fn a_supplied_image_is_resampled_and_a_flat_one_scores_zero() {
        let card = card_photo(2);
        let doubled = card.resized(64, 80);
        assert!(match_score(&card, &Camera::Image(doubled).capture(&card, 0)) >= 999);
        let flat = Photo {
            width: 4,
            height: 4,
            pixels: vec![128; 16],
        };
        assert_eq!(match_score(&card, &flat), 0);
    }

    #[test]
    fn failures_lock_at_ten_survive_a_restart_and_a_success_resets_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = FaceFailures::load(dir.path()).unwrap();
        for i in 1..=9 {
            assert_eq!(f.record_failure("card-a").unwrap(), i);
            assert!(!f.locked("card-a"));
        }
        assert_eq!(f.record_failure("card-a").unwrap(), 10);
        assert!(f.locked("card-a"));
        assert_eq!(f.record_failure("card-a").unwrap(), 10);
        assert!(!f.locked("card-b"));
        let mut again = FaceFailures::load(dir.path()).unwrap();
        assert!(again.locked("card-a"));
        again.reset("card-a").unwrap();
        assert_eq!(
            FaceFailures::load(dir.path()).unwrap().failures("card-a"),
            0
        );
        std::fs::write(dir.path().join("face-failures.json"), "nonsense").unwrap();
        assert!(FaceFailures::load(dir.path())
            .unwrap_err()
            .contains("not valid"));
    }
}
