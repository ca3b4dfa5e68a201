//! Host-side flows over a [`CardChannel`]: select the JPKI application, read the
//! user-authentication certificate, query the PIN retry counter, verify the PIN, sign.
//!
//! Every status word is mapped to a [`FlowError`] variant that says what went wrong in the
//! domain (`WrongPin { tries_left }`, `PinBlocked`, …); every answer is checked before it is
//! trusted (certificate header, declared length capped at
//! [`MAX_CERTIFICATE_LEN`], signature length), so a hostile or broken card can neither make
//! the host panic nor read forever.
//!
//! # The PIN-mode confirmation, byte for byte
//!
//! The reader agent always sends this one sequence, in two phases; each phase is one PC/SC
//! transaction, so no other process can interleave between VERIFY and the signature. Between
//! them the patient types the PIN and the agent fetches a challenge from the service.
//! `docs/apdu-sequence.md` has the same table with a worked example.
//!
//! Phase A, [`read_phase`] (certificate `30 82 HH LL …`, T = 4 + `HHLL` bytes in all):
//!
//! ```text
//! 00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01   SELECT JPKI AP            → 90 00
//! 00 A4 02 0C 02 00 0A                           SELECT EF 000A            → 90 00
//! 00 B0 00 00 04                                 READ BINARY header        → 30 82 HH LL 90 00
//! 00 B0 00 04 00                                 READ BINARY 256 @ 4       → 256 bytes 90 00
//! 00 B0 01 04 00                                 READ BINARY 256 @ 260     → …
//!   …                                            (offsets 4 + 256·k while ≥ 256 bytes remain)
//! 00 B0 oo oo NN                                 final READ, Le = exact remainder (1..=FF;
//!                                                omitted when T − 4 is a multiple of 256)
//! 00 A4 02 0C 02 00 18                           SELECT EF 0018            → 90 00
//! 00 20 00 80                                    VERIFY, empty: retry counter → 63 Cx
//! ```
//!
//! Phase B, [`authenticate_phase`]:
//!
//! ```text
//! 00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01   SELECT JPKI AP            → 90 00
//! 00 A4 02 0C 02 00 18                           SELECT EF 0018            → 90 00
//! 00 20 00 80 04 <redacted 4 bytes>              VERIFY PIN                → 90 00
//! 00 A4 02 0C 02 00 17                           SELECT EF 0017            → 90 00
//! 80 2A 00 80 33 30 31 30 0D 06 09 60 86 48 01   COMPUTE DIGITAL SIGNATURE → 256 bytes 90 00
//!    65 03 04 02 01 05 00 04 20 <32-byte hash> 00
//! ```
//!
//! The other ways of reading an EF that real clients use ([`ReadPattern`]) exist so tests can
//! check that the virtual card serves all of them; the agent only uses the canonical one.

use crate::apdu::{ApduError, CommandApdu, ResponseApdu, StatusWord};
use crate::commands;
use crate::constants::{
    is_sha256_digest_info, EF_USER_AUTH_CERT, EF_USER_AUTH_KEY, EF_USER_AUTH_PIN, KENKAKU_AID,
    MAX_CERTIFICATE_LEN, MAX_SIGNATURE_INPUT_LEN, USER_AUTH_SIGNATURE_LEN,
};
use crate::{CardChannel, Pin};

const SELECT_AP: &str = "SELECT application";
const SELECT_EF: &str = "SELECT EF";
const READ_BINARY: &str = "READ BINARY";
const VERIFY: &str = "VERIFY";
const RETRY_COUNTER: &str = "VERIFY (retry counter)";
const SIGN: &str = "COMPUTE DIGITAL SIGNATURE";

const WHAT_JPKI: &str = "JPKI application";
const WHAT_CERT: &str = "user-authentication certificate (EF 000A)";
const WHAT_PIN: &str = "user-authentication PIN (EF 0018)";
const WHAT_KEY: &str = "user-authentication key (EF 0017)";

/// Largest READ BINARY chunk: Le = `00`.
const MAX_CHUNK: usize = 256;
/// Canonical first read: exactly the `30 82 HH LL` header.
const CANONICAL_HEADER_LEN: usize = 4;
/// A `read until the end` client stops when offsets run out (15 bits).
const MAX_EF_READ: usize = 0x8000;

/// Why a flow failed. Transport failures are kept apart from what the card said, and what
/// the card said is named in the domain's terms. No variant ever carries a PIN.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FlowError<E> {
    /// The channel failed (reader gone, card removed, unreadable response).
    #[error("card channel failed: {0}")]
    Channel(#[source] E),
    /// VERIFY refused the PIN. `tries_left == 0` means this attempt blocked it.
    #[error("wrong PIN, {tries_left} tries left")]
    WrongPin { tries_left: u8 },
    /// The PIN was already blocked before this VERIFY.
    #[error("the PIN is blocked")]
    PinBlocked,
    /// The card refused to sign (or read) because the PIN is not verified.
    #[error("security status not satisfied: the PIN has not been verified")]
    SecurityNotSatisfied,
    /// An application, file or object is not on the card.
    #[error("{what} not found on the card")]
    NotFound { what: &'static str },
    /// A status word the flow has no meaning for.
    #[error("{command} answered {sw} ({})", .sw.meaning())]
    UnexpectedStatus {
        command: &'static str,
        sw: StatusWord,
    },
    /// The card answered 9000 with data that cannot be right.
    #[error("malformed response to {command}: {reason}")]
    MalformedResponse {
        command: &'static str,
        reason: String,
    },
    /// The caller's data to sign is not what the card can sign (checked before any APDU).
    #[error("data to sign is {len} bytes, not a DigestInfo the card can sign")]
    InvalidDigestInfo { len: usize },
    /// A [`ReadPattern`] with impossible parameters.
    #[error("invalid read pattern: {reason}")]
    InvalidReadPattern { reason: &'static str },
    /// A command could not be encoded as a short APDU.
    #[error("cannot encode the command: {0}")]
    Encoding(#[from] ApduError),
}

/// What a flow over channel `C` returns.
pub type FlowResult<T, C> = Result<T, FlowError<<C as CardChannel>::Error>>;

/// What the empty VERIFY says about the user-authentication PIN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinStatus {
    /// Already verified in this card session: jpki-card.md allows a card to answer `9000`
    /// instead of `63Cx` then (the project's virtual card does not, for OpenSC's sake).
    Verified,
    /// Not verified; this many attempts remain (1..=3).
    TriesLeft(u8),
    /// No attempts remain.
    Blocked,
    /// The card has no PIN to verify: it answered `6984` (reference data not usable) to the
    /// empty VERIFY, which a card with a PIN answers `63Cx` even when blocked
    /// (jpki-card.md §3). A face-only card (顔認証マイナンバーカード) is issued without PINs;
    /// that it gives exactly this answer is onshi's simulation choice (docs/virtual-card.md):
    /// the real card's answer is not public. A host must not ask the holder for a PIN.
    NotSet,
}

/// The result of phase A.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardReading {
    /// The user-authentication certificate, DER, exactly as long as its header declares.
    pub certificate: Vec<u8>,
    pub pin_status: PinStatus,
}

/// How a client reads a DER object from the current EF (jpki-card.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadPattern {
    /// OpenSC's way, and the reader agent's: 4-byte header at offset 0, then 256-byte chunks
    /// from offset 4 with an exact final Le.
    Canonical,
    /// Read `header_len` bytes (7 in several libraries), parse the header, then read the rest
    /// from offset `header_len` in `chunk`-byte pieces (offsets not 256-aligned).
    HeaderThenRest { header_len: u8, chunk: u16 },
    /// Read `header_len` bytes, parse the header, then re-read the whole object from offset 0.
    HeaderThenReread { header_len: u8, chunk: u16 },
    /// Read `chunk`-byte pieces from offset 0 until `6B00` or a short/empty read. Returns the
    /// whole file as the card serves it, `FF` filler included.
    UntilEnd { chunk: u16 },
    /// Read the 4-byte header by short file id (`00 B0 80|SFI 00 04`, which also makes the
    /// file current), then the rest by offset as in `Canonical`.
    BySfi { sfi: u8 },
}

/// Selects the JPKI application: `00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01`.
pub fn select_jpki<C: CardChannel>(ch: &mut C) -> FlowResult<(), C> {
    let response = transmit(ch, &commands::select_jpki())?;
    success(SELECT_AP, WHAT_JPKI, response).map(drop)
}

/// Selects EF 000A and reads the user-authentication certificate the canonical way.
/// The JPKI application must be selected.
pub fn read_user_auth_certificate<C: CardChannel>(ch: &mut C) -> FlowResult<Vec<u8>, C> {
    select_file(ch, EF_USER_AUTH_CERT, WHAT_CERT)?;
    read_der(
        ch,
        &commands::read_binary(0, 4)?,
        CANONICAL_HEADER_LEN,
        MAX_CHUNK,
        false,
        WHAT_CERT,
    )
}

/// Reads the current EF (or, for [`ReadPattern::BySfi`], the EF it names) the way `pattern`
/// describes. Header-based patterns return exactly the DER object; `UntilEnd` returns the
/// file's bytes including filler.
pub fn read_ef_by_chunks<C: CardChannel>(
    ch: &mut C,
    pattern: ReadPattern,
) -> FlowResult<Vec<u8>, C> {
    const WHAT: &str = "DER object in the current EF";
    let check_chunk = |chunk: u16| {
        if (1..=MAX_CHUNK as u16).contains(&chunk) {
            Ok(usize::from(chunk))
        } else {
            Err(FlowError::InvalidReadPattern {
                reason: "chunk must be 1 to 256 bytes",
            })
        }
    };
    let check_header = |header_len: u8| {
        if usize::from(header_len) >= CANONICAL_HEADER_LEN {
            Ok(usize::from(header_len))
        } else {
            Err(FlowError::InvalidReadPattern {
                reason: "header read must be at least 4 bytes to hold a 30 82 HH LL header",
            })
        }
    };
    match pattern {
        ReadPattern::Canonical => {
            let first = commands::read_binary(0, 4)?;
            read_der(ch, &first, CANONICAL_HEADER_LEN, MAX_CHUNK, false, WHAT)
        }
        ReadPattern::HeaderThenRest { header_len, chunk } => {
            let (header_len, chunk) = (check_header(header_len)?, check_chunk(chunk)?);
            let first = commands::read_binary(0, header_len as u16)?;
            read_der(ch, &first, header_len, chunk, false, WHAT)
        }
        ReadPattern::HeaderThenReread { header_len, chunk } => {
            let (header_len, chunk) = (check_header(header_len)?, check_chunk(chunk)?);
            let first = commands::read_binary(0, header_len as u16)?;
            read_der(ch, &first, header_len, chunk, true, WHAT)
        }
        ReadPattern::UntilEnd { chunk } => read_until_end(ch, check_chunk(chunk)?),
        ReadPattern::BySfi { sfi } => {
            let first = commands::read_binary_sfi(sfi, 0, 4)?;
            read_der(ch, &first, CANONICAL_HEADER_LEN, MAX_CHUNK, false, WHAT)
        }
    }
}

/// Selects EF 0018 and sends the empty VERIFY. `63Cx` → `TriesLeft(x)` (`Blocked` for x = 0),
/// `9000` → `Verified`, `6984` → `NotSet` (a card without a PIN), `6983` → `Blocked`. Costs no
/// attempt and sends no secret.
pub fn user_auth_pin_status<C: CardChannel>(ch: &mut C) -> FlowResult<PinStatus, C> {
    select_file(ch, EF_USER_AUTH_PIN, WHAT_PIN)?;
    let response = transmit(ch, &commands::retry_counter())?;
    match (response.sw, response.sw.tries_left()) {
        (_, Some(0)) => Ok(PinStatus::Blocked),
        (_, Some(n)) => Ok(PinStatus::TriesLeft(n)),
        (StatusWord::SUCCESS, None) => Ok(PinStatus::Verified),
        // A card with a PIN answers 63C0 here when it is blocked; 6984 to the query itself
        // says there is no usable reference data at all.
        (StatusWord::PIN_BLOCKED, None) => Ok(PinStatus::NotSet),
        // Not what jpki-card.md's card does for a blocked PIN, but unambiguous.
        (StatusWord::AUTH_METHOD_BLOCKED, None) => Ok(PinStatus::Blocked),
        (sw, None) => Err(status_error(RETRY_COUNTER, WHAT_PIN, sw)),
    }
}

/// Selects EF 0018 and verifies the PIN. `63Cx` → `WrongPin { tries_left: x }` (x = 0: this
/// attempt blocked it); `6984` → `PinBlocked` (it was blocked already).
pub fn verify_user_auth_pin<C: CardChannel>(ch: &mut C, pin: &Pin) -> FlowResult<(), C> {
    select_file(ch, EF_USER_AUTH_PIN, WHAT_PIN)?;
    // The command owns a copy of the digits and wipes it when dropped at the end of this
    // function.
    let command = commands::verify(pin);
    let response = transmit(ch, &command)?;
    if let Some(tries_left) = response.sw.tries_left() {
        return Err(FlowError::WrongPin { tries_left });
    }
    match response.sw {
        StatusWord::SUCCESS => Ok(()),
        StatusWord::PIN_BLOCKED | StatusWord::AUTH_METHOD_BLOCKED => Err(FlowError::PinBlocked),
        sw => Err(status_error(VERIFY, WHAT_PIN, sw)),
    }
}

/// Changes the user-authentication PIN: selects JPKI and EF 0018, verifies `old` (errors as
/// [`verify_user_auth_pin`]), then sends CHANGE REFERENCE DATA `00 24 01 80 04 <new>`.
pub fn change_user_auth_pin<C: CardChannel>(ch: &mut C, old: &Pin, new: &Pin) -> FlowResult<(), C> {
    select_jpki(ch)?;
    verify_user_auth_pin(ch, old)?;
    let command = commands::change_reference_data(new);
    let response = transmit(ch, &command)?;
    success("CHANGE REFERENCE DATA", WHAT_PIN, response).map(drop)
}

/// Selects EF 0017 and has the card sign `digest_info` (a DER DigestInfo: the card only adds
/// PKCS#1 v1.5 padding). Needs a verified PIN; `6982` → `SecurityNotSatisfied`. Returns the
/// 256-byte signature.
pub fn sign_with_user_auth_key<C: CardChannel>(
    ch: &mut C,
    digest_info: &[u8],
) -> FlowResult<Vec<u8>, C> {
    if digest_info.is_empty() || digest_info.len() > MAX_SIGNATURE_INPUT_LEN {
        return Err(FlowError::InvalidDigestInfo {
            len: digest_info.len(),
        });
    }
    select_file(ch, EF_USER_AUTH_KEY, WHAT_KEY)?;
    let response = transmit(ch, &commands::compute_signature(digest_info)?)?;
    let signature = success(SIGN, WHAT_KEY, response)?;
    if signature.len() != USER_AUTH_SIGNATURE_LEN {
        return Err(malformed(
            SIGN,
            format!(
                "signature is {} bytes, an RSA-2048 signature is {USER_AUTH_SIGNATURE_LEN}",
                signature.len()
            ),
        ));
    }
    Ok(signature)
}

/// Phase A of a PIN-mode confirmation: select JPKI, read the certificate, read the retry
/// counter. Sends exactly the sequence in the module documentation.
pub fn read_phase<C: CardChannel>(ch: &mut C) -> FlowResult<CardReading, C> {
    select_jpki(ch)?;
    let certificate = read_user_auth_certificate(ch)?;
    let pin_status = user_auth_pin_status(ch)?;
    Ok(CardReading {
        certificate,
        pin_status,
    })
}

/// Phase B of a PIN-mode confirmation: select JPKI, verify the PIN, sign the SHA-256
/// DigestInfo of the challenge binding. `digest_info` is checked before any APDU is sent, so
/// a caller mistake never costs a PIN attempt.
///
/// The card stays verified after this returns, and pcscd keeps cards powered between
/// clients: the caller should end the transaction by resetting the card
/// (`SCARD_RESET_CARD`) so no other process can sign with the patient's verified PIN.
pub fn authenticate_phase<C: CardChannel>(
    ch: &mut C,
    pin: &Pin,
    digest_info: &[u8],
) -> FlowResult<Vec<u8>, C> {
    if !is_sha256_digest_info(digest_info) {
        return Err(FlowError::InvalidDigestInfo {
            len: digest_info.len(),
        });
    }
    select_jpki(ch)?;
    verify_user_auth_pin(ch, pin)?;
    sign_with_user_auth_key(ch, digest_info)
}

/// Longest face photo the simulator path reads (a real card's JPEG 2000 is a few KB).
pub const MAX_FACE_PHOTO: usize = 0x4000;

/// **Simulator only** (docs/virtual-card.md): selects the Kenkaku application and reads the
/// face photo with the proprietary `80 B0` in 256-byte chunks until a short read or `6B00`.
/// A card without the simulator path answers `6E00`, reported as
/// [`FlowError::UnexpectedStatus`]; a card without Kenkaku as [`FlowError::NotFound`].
pub fn read_simulator_face_photo<C: CardChannel>(ch: &mut C) -> FlowResult<Vec<u8>, C> {
    let response = transmit(ch, &commands::select_application(&KENKAKU_AID)?)?;
    success(SELECT_AP, "Kenkaku application", response)?;
    let mut photo = Vec::new();
    loop {
        if photo.len() >= MAX_FACE_PHOTO {
            return Err(malformed(
                READ_BINARY,
                format!("the face photo is longer than {MAX_FACE_PHOTO} bytes"),
            ));
        }
        let command = commands::read_simulator_face_photo(photo.len() as u16, MAX_CHUNK as u16)?;
        match read_chunk(ch, &command, MAX_CHUNK, "face photo (simulator path)")? {
            Chunk::Data(data) => {
                let done = data.len() < MAX_CHUNK;
                photo.extend_from_slice(&data);
                if done {
                    break;
                }
            }
            Chunk::End => break,
        }
    }
    if photo.is_empty() {
        return Err(malformed(READ_BINARY, "the face photo is empty"));
    }
    Ok(photo)
}

fn transmit<C: CardChannel>(ch: &mut C, command: &CommandApdu) -> FlowResult<ResponseApdu, C> {
    ch.transmit(command).map_err(FlowError::Channel)
}

fn select_file<C: CardChannel>(ch: &mut C, fid: u16, what: &'static str) -> FlowResult<(), C> {
    let response = transmit(ch, &commands::select_ef(fid))?;
    success(SELECT_EF, what, response).map(drop)
}

/// The data of a `9000` answer, or the error its status word means.
fn success<E>(
    command: &'static str,
    what: &'static str,
    response: ResponseApdu,
) -> Result<Vec<u8>, FlowError<E>> {
    if response.sw.is_success() {
        Ok(response.data)
    } else {
        Err(status_error(command, what, response.sw))
    }
}

/// Status words with the same meaning for every command.
fn status_error<E>(command: &'static str, what: &'static str, sw: StatusWord) -> FlowError<E> {
    match sw {
        StatusWord::FILE_NOT_FOUND => FlowError::NotFound { what },
        StatusWord::SECURITY_NOT_SATISFIED => FlowError::SecurityNotSatisfied,
        sw => FlowError::UnexpectedStatus { command, sw },
    }
}

fn malformed<E>(command: &'static str, reason: impl Into<String>) -> FlowError<E> {
    FlowError::MalformedResponse {
        command,
        reason: reason.into(),
    }
}

/// One READ BINARY answer.
enum Chunk {
    /// `9000` with at most Le bytes (possibly none).
    Data(Vec<u8>),
    /// `6B00`: the offset is at or past the end of the file.
    End,
}

fn read_chunk<C: CardChannel>(
    ch: &mut C,
    command: &CommandApdu,
    le: usize,
    what: &'static str,
) -> FlowResult<Chunk, C> {
    let response = transmit(ch, command)?;
    match response.sw {
        StatusWord::SUCCESS if response.data.len() > le => Err(malformed(
            READ_BINARY,
            format!("{} bytes returned for Le {le}", response.data.len()),
        )),
        StatusWord::SUCCESS => Ok(Chunk::Data(response.data)),
        StatusWord::OFFSET_OUTSIDE => Ok(Chunk::End),
        sw => Err(status_error(READ_BINARY, what, sw)),
    }
}

/// The total length (header and content) a DER SEQUENCE header declares.
enum DerHeader {
    Sequence {
        total: usize,
    },
    /// The file holds only `FF` filler: no object was ever written.
    Blank,
}

fn parse_der_header(head: &[u8]) -> Result<DerHeader, String> {
    let total = match head {
        [0x30, 0x82, hi, lo, ..] => 4 + usize::from(u16::from_be_bytes([*hi, *lo])),
        [0x30, 0x81, len, ..] => 3 + usize::from(*len),
        [0x30, 0x80, ..] => return Err("indefinite length is not DER".into()),
        [0x30] | [0x30, 0x81] | [0x30, 0x82] | [0x30, 0x82, _] => {
            return Err("file ends inside the DER header".into())
        }
        [0x30, len, ..] if *len < 0x80 => 2 + usize::from(*len),
        [0x30, len, ..] => {
            return Err(format!(
                "a {}-byte length field declares more than 64 KiB",
                len & 0x7F
            ))
        }
        [0xFF, ..] => return Ok(DerHeader::Blank),
        [] => return Err("no data".into()),
        [tag, ..] => return Err(format!("starts {tag:02X}, not a DER SEQUENCE (30)")),
    };
    Ok(DerHeader::Sequence { total })
}

/// Reads a DER object: `first` fetches up to `first_le` bytes at offset 0 holding the header;
/// the rest follows in `chunk`-byte reads with an exact final Le, continuing after the header
/// bytes already held or, with `reread`, again from offset 0.
fn read_der<C: CardChannel>(
    ch: &mut C,
    first: &CommandApdu,
    first_le: usize,
    chunk: usize,
    reread: bool,
    what: &'static str,
) -> FlowResult<Vec<u8>, C> {
    let head = match read_chunk(ch, first, first_le, what)? {
        Chunk::Data(data) if !data.is_empty() => data,
        _ => return Err(malformed(READ_BINARY, "the file is empty")),
    };
    let total = match parse_der_header(&head) {
        Ok(DerHeader::Sequence { total }) => total,
        Ok(DerHeader::Blank) => return Err(FlowError::NotFound { what }),
        Err(reason) => return Err(malformed(READ_BINARY, reason)),
    };
    if total > MAX_CERTIFICATE_LEN {
        return Err(malformed(
            READ_BINARY,
            format!(
                "header declares {total} bytes, more than the {MAX_CERTIFICATE_LEN}-byte limit"
            ),
        ));
    }
    let truncated = |have: usize| {
        malformed(
            READ_BINARY,
            format!("the file ends after {have} bytes but the header declares {total}"),
        )
    };
    let mut der = Vec::with_capacity(total);
    if !reread {
        // A short first answer means the file ended there.
        if head.len() < first_le && head.len() < total {
            return Err(truncated(head.len()));
        }
        der.extend_from_slice(&head[..head.len().min(total)]);
    }
    while der.len() < total {
        let want = chunk.min(total - der.len());
        // Both fit: der.len() < total ≤ 8 KiB and want ≤ 256.
        let command = commands::read_binary(der.len() as u16, want as u16)?;
        match read_chunk(ch, &command, want, what)? {
            Chunk::Data(data) if !data.is_empty() => {
                let short = data.len() < want;
                der.extend_from_slice(&data);
                if short {
                    return Err(truncated(der.len()));
                }
            }
            _ => return Err(truncated(der.len())),
        }
    }
    // A pattern that reads the header again from offset 0 must get the same header back: a
    // card whose answers change between reads would otherwise pass arbitrary bytes off as the
    // object the header declared.
    let seen = head.len().min(total);
    if reread && der[..seen] != head[..seen] {
        return Err(malformed(
            READ_BINARY,
            "the bytes read again from offset 0 differ from the header read first",
        ));
    }
    Ok(der)
}

fn read_until_end<C: CardChannel>(ch: &mut C, chunk: usize) -> FlowResult<Vec<u8>, C> {
    let mut file = Vec::new();
    loop {
        if file.len() >= MAX_EF_READ {
            return Err(malformed(
                READ_BINARY,
                "the card keeps answering past the 15-bit offset range",
            ));
        }
        let command = commands::read_binary(file.len() as u16, chunk as u16)?;
        match read_chunk(ch, &command, chunk, "current EF")? {
            Chunk::Data(data) => {
                let done = data.len() < chunk;
                file.extend_from_slice(&data);
                if done {
                    return Ok(file);
                }
            }
            Chunk::End => return Ok(file),
        }
    }
}

#[cfg(test)]
mod tests;
