//! ISO 7816-4 short APDUs: the command and response byte strings exchanged with a card, and
//! the status words that end every response.
//!
//! Everything here parses untrusted bytes (a card's answer, a host's command) and therefore
//! never panics: malformed input is an [`ApduError`]. A command that carries a PIN is
//! *sensitive*: its data is wiped from memory on drop and shown as `<redacted N bytes>` by
//! `Display`, `Debug` and [`CommandApdu::redacted_hex`], so an APDU trace can never leak it.

use std::fmt;

use zeroize::{Zeroize, Zeroizing};

/// Longest command data field of a short APDU.
pub const MAX_SHORT_DATA: usize = 255;
/// Largest Le of a short APDU (encoded as `00`).
pub const MAX_SHORT_LE: u16 = 256;

/// Why bytes are not a valid short APDU, or why a command cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApduError {
    #[error("APDU is {len} bytes, at least {min} are needed")]
    TooShort { len: usize, min: usize },
    #[error("Lc announces {lc} data bytes but {available} bytes follow")]
    LengthMismatch { lc: usize, available: usize },
    #[error("extended-length APDUs are not supported")]
    ExtendedLength,
    #[error("command data is {len} bytes; a short APDU carries at most {MAX_SHORT_DATA}")]
    DataTooLong { len: usize },
    #[error("Le {le} is out of range; a short APDU expects 1 to {MAX_SHORT_LE} bytes")]
    LeOutOfRange { le: u16 },
    #[error("offset {offset:#06X} does not fit the 15 bits of READ BINARY")]
    OffsetOutOfRange { offset: u16 },
    #[error("short file identifier {sfi} is outside 1..=30")]
    InvalidSfi { sfi: u8 },
    #[error("an application identifier is 5 to 16 bytes, got {len}")]
    InvalidAid { len: usize },
}

/// Instructions whose data field is a PIN or password (VERIFY, CHANGE REFERENCE DATA,
/// RESET RETRY COUNTER and VERIFY's odd form). Their data is never shown.
fn carries_secret(ins: u8) -> bool {
    matches!(ins, 0x20 | 0x21 | 0x24 | 0x2C)
}

/// A short command APDU.
///
/// Fields are private so that the invariants of a short APDU (data ≤ 255 bytes, Le 1..=256)
/// hold for every value, and so that a sensitive command's data can only be read through
/// [`data`](Self::data) and is zeroized when the command is dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct CommandApdu {
    cla: u8,
    ins: u8,
    p1: u8,
    p2: u8,
    data: Vec<u8>,
    le: Option<u16>,
}

impl CommandApdu {
    /// Builds a command, checking the short-APDU limits. `le` is the number of response
    /// bytes expected, 1 to 256 (256 is encoded as `00`); `None` for no Le field.
    pub fn new(
        cla: u8,
        ins: u8,
        p1: u8,
        p2: u8,
        data: impl Into<Vec<u8>>,
        le: Option<u16>,
    ) -> Result<Self, ApduError> {
        let mut data = data.into();
        let problem = if data.len() > MAX_SHORT_DATA {
            Some(ApduError::DataTooLong { len: data.len() })
        } else {
            match le {
                Some(le) if le == 0 || le > MAX_SHORT_LE => Some(ApduError::LeOutOfRange { le }),
                _ => None,
            }
        };
        if let Some(e) = problem {
            // The rejected buffer may hold a PIN too.
            data.zeroize();
            return Err(e);
        }
        Ok(Self::assemble(cla, ins, p1, p2, data, le))
    }

    /// Builds a command the caller knows to be within the short-APDU limits (the fixed
    /// commands of [`crate::commands`]).
    pub(crate) fn assemble(
        cla: u8,
        ins: u8,
        p1: u8,
        p2: u8,
        data: Vec<u8>,
        le: Option<u16>,
    ) -> Self {
        Self {
            cla,
            ins,
            p1,
            p2,
            data,
            le,
        }
    }

    /// Parses a short APDU of case 1, 2, 3 or 4. Rejects truncated input, an Lc that does
    /// not match the bytes that follow, and extended lengths.
    pub fn parse(bytes: &[u8]) -> Result<Self, ApduError> {
        let [cla, ins, p1, p2, body @ ..] = bytes else {
            return Err(ApduError::TooShort {
                len: bytes.len(),
                min: 4,
            });
        };
        let (data, le): (&[u8], Option<u16>) = match body {
            // Case 1: header only.
            [] => (&[], None),
            // Case 2: header and Le.
            [le] => (&[], Some(decode_le(*le))),
            // `Lc = 00` followed by more bytes is the start of an extended-length APDU.
            [0, ..] => return Err(ApduError::ExtendedLength),
            [lc, rest @ ..] => {
                let lc = usize::from(*lc);
                match rest.len().checked_sub(lc) {
                    // Case 3: Lc and data.
                    Some(0) => (rest, None),
                    // Case 4: Lc, data and Le.
                    Some(1) => match rest.split_last() {
                        Some((le, data)) => (data, Some(decode_le(*le))),
                        None => (rest, None),
                    },
                    _ => {
                        return Err(ApduError::LengthMismatch {
                            lc,
                            available: rest.len(),
                        })
                    }
                }
            }
        };
        Ok(Self::assemble(*cla, *ins, *p1, *p2, data.to_vec(), le))
    }

    pub fn cla(&self) -> u8 {
        self.cla
    }

    pub fn ins(&self) -> u8 {
        self.ins
    }

    pub fn p1(&self) -> u8 {
        self.p1
    }

    pub fn p2(&self) -> u8 {
        self.p2
    }

    /// The data field (empty for cases 1 and 2). For a sensitive command this is the PIN:
    /// use it, never print it.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Expected response length, 1..=256, if the command has an Le field.
    pub fn le(&self) -> Option<u16> {
        self.le
    }

    /// True when the data field is a PIN or password.
    pub fn is_sensitive(&self) -> bool {
        carries_secret(self.ins) && !self.data.is_empty()
    }

    /// The encoded APDU. The buffer is wiped when dropped, since it may hold a PIN.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(4 + 1 + self.data.len() + 1));
        out.extend_from_slice(&[self.cla, self.ins, self.p1, self.p2]);
        if !self.data.is_empty() {
            // `new`/`parse` keep data within 255 bytes.
            out.push(self.data.len() as u8);
            out.extend_from_slice(&self.data);
        }
        if let Some(le) = self.le {
            out.push(encode_le(le));
        }
        out
    }

    /// Spaced upper-case hex of the whole command, the data of a sensitive command replaced
    /// by `<redacted N bytes>`: `00 20 00 80 04 <redacted 4 bytes>`.
    pub fn redacted_hex(&self) -> String {
        let mut out = spaced_hex(&[self.cla, self.ins, self.p1, self.p2]);
        if !self.data.is_empty() {
            out.push_str(&format!(" {:02X} ", self.data.len()));
            if self.is_sensitive() {
                out.push_str(&redacted(self.data.len()));
            } else {
                out.push_str(&spaced_hex(&self.data));
            }
        }
        if let Some(le) = self.le {
            out.push_str(&format!(" {:02X}", encode_le(le)));
        }
        out
    }
}

impl Drop for CommandApdu {
    fn drop(&mut self) {
        self.data.zeroize();
    }
}

impl fmt::Display for CommandApdu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted_hex())
    }
}

impl fmt::Debug for CommandApdu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CommandApdu({})", self.redacted_hex())
    }
}

/// Redacted hex of raw command bytes as they travel on a wire, for traces that see bytes
/// before (or instead of) parsing them. A command that does not parse is still redacted when
/// its instruction byte says it would carry a PIN.
pub fn redacted_command_hex(bytes: &[u8]) -> String {
    match CommandApdu::parse(bytes) {
        Ok(command) => command.redacted_hex(),
        Err(_) => match bytes {
            [_, ins, ..] if bytes.len() > 4 && carries_secret(*ins) => {
                let (header, rest) = bytes.split_at(4);
                format!("{} {}", spaced_hex(header), redacted(rest.len()))
            }
            _ => spaced_hex(bytes),
        },
    }
}

fn redacted(len: usize) -> String {
    format!("<redacted {len} bytes>")
}

fn decode_le(byte: u8) -> u16 {
    if byte == 0 {
        MAX_SHORT_LE
    } else {
        u16::from(byte)
    }
}

fn encode_le(le: u16) -> u8 {
    // 256 (and anything a caller forced past the checks) wraps to the `00` encoding.
    (le & 0xFF) as u8
}

/// Spaced upper-case hex: `90 00`.
pub fn spaced_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&format!("{b:02X}"));
    }
    out
}

/// The two status bytes that end every response, as one number (`0x9000`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StatusWord(pub u16);

impl StatusWord {
    pub const SUCCESS: Self = Self(0x9000);
    /// Counter-free warning/error family `63Cx`: use [`wrong_pin`](Self::wrong_pin).
    const WRONG_PIN_BASE: u16 = 0x63C0;
    pub const MEMORY_FAILURE: Self = Self(0x6581);
    pub const WRONG_LENGTH: Self = Self(0x6700);
    pub const COMMAND_INCOMPATIBLE: Self = Self(0x6981);
    pub const SECURITY_NOT_SATISFIED: Self = Self(0x6982);
    pub const AUTH_METHOD_BLOCKED: Self = Self(0x6983);
    pub const PIN_BLOCKED: Self = Self(0x6984);
    pub const NO_CURRENT_EF: Self = Self(0x6986);
    pub const FILE_NOT_FOUND: Self = Self(0x6A82);
    pub const INCORRECT_P1P2: Self = Self(0x6A86);
    pub const OFFSET_OUTSIDE: Self = Self(0x6B00);
    pub const INS_NOT_SUPPORTED: Self = Self(0x6D00);
    pub const CLA_NOT_SUPPORTED: Self = Self(0x6E00);
    pub const NO_PRECISE_DIAGNOSIS: Self = Self(0x6F00);

    pub const fn from_bytes(sw1: u8, sw2: u8) -> Self {
        Self(((sw1 as u16) << 8) | sw2 as u16)
    }

    pub const fn to_bytes(self) -> [u8; 2] {
        self.0.to_be_bytes()
    }

    pub const fn sw1(self) -> u8 {
        (self.0 >> 8) as u8
    }

    pub const fn sw2(self) -> u8 {
        (self.0 & 0xFF) as u8
    }

    pub const fn is_success(self) -> bool {
        self.0 == Self::SUCCESS.0
    }

    /// `63Cx`: a wrong PIN (or the retry-counter query) with `x` tries left.
    pub const fn wrong_pin(tries_left: u8) -> Self {
        let nibble = if tries_left > 0x0F { 0x0F } else { tries_left };
        Self(Self::WRONG_PIN_BASE | nibble as u16)
    }

    /// The `x` of a `63Cx` status, if this is one.
    pub const fn tries_left(self) -> Option<u8> {
        if self.0 & 0xFFF0 == Self::WRONG_PIN_BASE {
            Some((self.0 & 0x0F) as u8)
        } else {
            None
        }
    }

    /// What the status means, for messages and traces.
    pub fn meaning(self) -> &'static str {
        match self {
            Self::SUCCESS => "success",
            Self::MEMORY_FAILURE => "memory failure",
            Self::WRONG_LENGTH => "wrong length",
            Self::COMMAND_INCOMPATIBLE => "command incompatible with file structure",
            Self::SECURITY_NOT_SATISFIED => "security status not satisfied",
            Self::AUTH_METHOD_BLOCKED => "authentication method blocked",
            Self::PIN_BLOCKED => "PIN blocked",
            Self::NO_CURRENT_EF => "no current EF",
            Self::FILE_NOT_FOUND => "file or application not found",
            Self::INCORRECT_P1P2 => "incorrect P1/P2",
            Self::OFFSET_OUTSIDE => "offset outside the file",
            Self::INS_NOT_SUPPORTED => "instruction not supported",
            Self::CLA_NOT_SUPPORTED => "class not supported",
            Self::NO_PRECISE_DIAGNOSIS => "no precise diagnosis",
            sw if sw.tries_left().is_some() => "wrong PIN / tries left",
            _ => "unknown status",
        }
    }
}

impl fmt::Display for StatusWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04X}", self.0)
    }
}

impl fmt::Debug for StatusWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StatusWord({:04X})", self.0)
    }
}

/// A response APDU: data (possibly empty) and the status word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseApdu {
    pub data: Vec<u8>,
    pub sw: StatusWord,
}

impl ResponseApdu {
    pub fn new(data: Vec<u8>, sw: StatusWord) -> Self {
        Self { data, sw }
    }

    /// A response that is only a status word.
    pub fn status(sw: StatusWord) -> Self {
        Self {
            data: Vec::new(),
            sw,
        }
    }

    /// Splits raw response bytes into data and the final two status bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, ApduError> {
        match bytes {
            [data @ .., sw1, sw2] => Ok(Self {
                data: data.to_vec(),
                sw: StatusWord::from_bytes(*sw1, *sw2),
            }),
            _ => Err(ApduError::TooShort {
                len: bytes.len(),
                min: 2,
            }),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data.len() + 2);
        out.extend_from_slice(&self.data);
        out.extend_from_slice(&self.sw.to_bytes());
        out
    }
}

impl fmt::Display for ResponseApdu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.data.is_empty() {
            write!(f, "{}", spaced_hex(&self.sw.to_bytes()))
        } else {
            write!(
                f,
                "{} {}",
                spaced_hex(&self.data),
                spaced_hex(&self.sw.to_bytes())
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(bytes: &[u8]) -> CommandApdu {
        let c = CommandApdu::parse(bytes).unwrap();
        assert_eq!(&*c.to_bytes(), bytes);
        c
    }

    #[test]
    fn parses_all_four_short_cases() {
        let c1 = round_trip(&[0x00, 0x20, 0x00, 0x80]);
        assert_eq!((c1.data(), c1.le()), (&[][..], None));

        let c2 = round_trip(&[0x00, 0xB0, 0x00, 0x00, 0x04]);
        assert_eq!((c2.data(), c2.le()), (&[][..], Some(4)));
        let c2_256 = round_trip(&[0x00, 0xB0, 0x00, 0x04, 0x00]);
        assert_eq!(c2_256.le(), Some(256));

        let c3 = round_trip(&[0x00, 0xA4, 0x02, 0x0C, 0x02, 0x00, 0x0A]);
        assert_eq!((c3.data(), c3.le()), (&[0x00, 0x0A][..], None));

        let c4 = round_trip(&[0x80, 0x2A, 0x00, 0x80, 0x02, 0xAA, 0xBB, 0x00]);
        assert_eq!((c4.data(), c4.le()), (&[0xAA, 0xBB][..], Some(256)));
        assert_eq!(
            (c4.cla(), c4.ins(), c4.p1(), c4.p2()),
            (0x80, 0x2A, 0x00, 0x80)
        );
    }

    #[test]
    fn rejects_truncated_and_inconsistent() {
        for short in [&[][..], &[0x00], &[0x00, 0xA4], &[0x00, 0xA4, 0x04]] {
            assert!(matches!(
                CommandApdu::parse(short),
                Err(ApduError::TooShort { min: 4, .. })
            ));
        }
        // Lc 3 but only two bytes follow.
        assert_eq!(
            CommandApdu::parse(&[0x00, 0xA4, 0x02, 0x0C, 0x03, 0x00, 0x0A]),
            Err(ApduError::LengthMismatch {
                lc: 3,
                available: 2
            })
        );
        // Lc 1 with three bytes after it: neither case 3 nor case 4.
        assert!(matches!(
            CommandApdu::parse(&[0x00, 0xA4, 0x02, 0x0C, 0x01, 0x00, 0x0A, 0x00]),
            Err(ApduError::LengthMismatch { .. })
        ));
        assert_eq!(
            CommandApdu::parse(&[0x00, 0xB0, 0x00, 0x00, 0x00, 0x01, 0x00]),
            Err(ApduError::ExtendedLength)
        );
    }

    #[test]
    fn parse_never_panics_on_any_short_input() {
        // Every 0..=6-byte prefix pattern over a few interesting byte values.
        let values = [0x00, 0x01, 0x02, 0x04, 0x7F, 0x80, 0xFF];
        let mut buf = Vec::new();
        for len in 0..=7usize {
            let combos = values.len().pow(len as u32).min(20_000);
            for n in 0..combos {
                buf.clear();
                let mut k = n;
                for _ in 0..len {
                    buf.push(values[k % values.len()]);
                    k /= values.len();
                }
                if let Ok(c) = CommandApdu::parse(&buf) {
                    assert_eq!(&*c.to_bytes(), &buf[..]);
                }
                let _ = ResponseApdu::parse(&buf);
                let _ = redacted_command_hex(&buf);
            }
        }
    }

    #[test]
    fn new_checks_limits() {
        assert_eq!(
            CommandApdu::new(0, 0xB0, 0, 0, vec![], Some(0)),
            Err(ApduError::LeOutOfRange { le: 0 })
        );
        assert_eq!(
            CommandApdu::new(0, 0xB0, 0, 0, vec![], Some(257)),
            Err(ApduError::LeOutOfRange { le: 257 })
        );
        assert_eq!(
            CommandApdu::new(0, 0xD6, 0, 0, vec![0; 256], None),
            Err(ApduError::DataTooLong { len: 256 })
        );
        let max = CommandApdu::new(0, 0xD6, 0, 0, vec![1; 255], Some(256)).unwrap();
        assert_eq!(max.to_bytes().len(), 4 + 1 + 255 + 1);
        assert_eq!(max.to_bytes()[4], 0xFF);
        assert_eq!(*max.to_bytes().last().unwrap(), 0x00);
    }

    #[test]
    fn verify_data_is_redacted_everywhere() {
        let c =
            CommandApdu::parse(&[0x00, 0x20, 0x00, 0x80, 0x04, 0x31, 0x32, 0x33, 0x34]).unwrap();
        assert!(c.is_sensitive());
        assert_eq!(c.redacted_hex(), "00 20 00 80 04 <redacted 4 bytes>");
        assert_eq!(c.to_string(), "00 20 00 80 04 <redacted 4 bytes>");
        let debug = format!("{c:?}");
        assert!(debug.contains("<redacted 4 bytes>"));
        for leak in ["31", "32 33", "1234"] {
            assert!(!debug.contains(leak), "{debug}");
            assert!(!c.to_string().contains(leak));
        }
        // The empty retry-counter VERIFY has nothing to hide.
        let empty = CommandApdu::parse(&[0x00, 0x20, 0x00, 0x80]).unwrap();
        assert!(!empty.is_sensitive());
        assert_eq!(empty.to_string(), "00 20 00 80");
    }

    #[test]
    fn raw_redaction_covers_malformed_pin_commands() {
        // Inconsistent Lc: does not parse, still redacted.
        let raw = [0x00, 0x20, 0x00, 0x80, 0x05, 0x31, 0x32, 0x33, 0x34];
        assert_eq!(redacted_command_hex(&raw), "00 20 00 80 <redacted 5 bytes>");
        let ok = [0x00, 0x20, 0x00, 0x98, 0x04, 0x31, 0x32, 0x33, 0x34];
        assert_eq!(
            redacted_command_hex(&ok),
            "00 20 00 98 04 <redacted 4 bytes>"
        );
        assert_eq!(
            redacted_command_hex(&[0x00, 0xB0, 0x00, 0x00, 0x04]),
            "00 B0 00 00 04"
        );
        assert_eq!(redacted_command_hex(&[0x00, 0xB0]), "00 B0");
    }

    #[test]
    fn status_words() {
        assert_eq!(
            StatusWord::from_bytes(0x6A, 0x82),
            StatusWord::FILE_NOT_FOUND
        );
        assert_eq!(StatusWord::wrong_pin(2), StatusWord(0x63C2));
        assert_eq!(StatusWord(0x63C2).tries_left(), Some(2));
        assert_eq!(StatusWord(0x63C0).tries_left(), Some(0));
        assert_eq!(StatusWord(0x6300).tries_left(), None);
        assert_eq!(StatusWord::SUCCESS.tries_left(), None);
        assert_eq!(StatusWord::wrong_pin(99), StatusWord(0x63CF));
        assert_eq!(StatusWord(0x6A82).to_string(), "6A82");
        assert_eq!(format!("{:?}", StatusWord(0x9000)), "StatusWord(9000)");
        assert_eq!(StatusWord::PIN_BLOCKED.to_bytes(), [0x69, 0x84]);
        assert_eq!(StatusWord(0x63C1).meaning(), "wrong PIN / tries left");
    }

    #[test]
    fn responses() {
        assert!(matches!(
            ResponseApdu::parse(&[0x90]),
            Err(ApduError::TooShort { len: 1, min: 2 })
        ));
        let r = ResponseApdu::parse(&[0x30, 0x82, 0x90, 0x00]).unwrap();
        assert_eq!(r.data, vec![0x30, 0x82]);
        assert!(r.sw.is_success());
        assert_eq!(r.to_bytes(), vec![0x30, 0x82, 0x90, 0x00]);
        assert_eq!(r.to_string(), "30 82 90 00");
        assert_eq!(
            ResponseApdu::status(StatusWord::wrong_pin(3)).to_string(),
            "63 C3"
        );
    }
}
