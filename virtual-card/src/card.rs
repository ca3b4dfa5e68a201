//! The card: a pure state machine from command APDU bytes to response bytes, answering like
//! the JPKI application of a My Number card (jpki-card.md §2–4), user-authentication part.
//!
//! No I/O happens here. The one side effect, saving the PIN retry counter, goes through the
//! [`PersistHook`] the caller injects, and it runs *before* the response is returned, so a
//! counter change survives the process being killed the moment the host sees the answer.
//!
//! # Files
//!
//! | EF | here | READ BINARY |
//! |---|---|---|
//! | `000A` | user-authentication certificate, DER, then `FF` filler | free |
//! | `000B` | its CA certificate, DER, then `FF` filler | free |
//! | `0017` | user-authentication key | `6982` |
//! | `0018` | user-authentication PIN, 3 tries, counter persisted | `6982` |
//! | `001B` | signature password, modelled as blocked (see below) | `6982` |
//!
//! The certificate EFs are [`CERTIFICATE_EF_SIZE`] (2048) bytes like a real card's; content
//! longer than that (unusual test certificates) gets the next multiple of 256 bytes instead.
//!
//! The signature half of JPKI (`0001`, `0002`, `001A`) is not emulated and answers `6A82`.
//! Its password EF `001B` exists nevertheless, because OpenSC's JPKI emulation queries the
//! retry counter of both PINs when it binds and gives up on the card if either query fails;
//! with no signature password in the profile the card presents it as blocked: the empty
//! VERIFY answers `63C0`, any other VERIFY `6984`.
//!
//! # PIN
//!
//! VERIFY of `0018`: the right PIN answers `9000` and restores 3 tries; a wrong one spends a
//! try and answers `63Cx` (`63C0` for the one that uses the last try); once blocked, every
//! VERIFY with data answers `6984`. The empty VERIFY (retry-counter query) always answers
//! `63Cx`, `63C0` when blocked, and also while the PIN is verified: jpki-card.md allows `9000`
//! there, but OpenSC's driver refuses to bind a card whose query answers anything but `63xx`,
//! and since pcscd keeps a card powered between clients, the PIN one client verified is
//! still verified when the next one binds (observed with OpenSC 0.23 through pcscd + vpcd).
//!
//! # Status words beyond jpki-card.md's table
//!
//! `6986` (no current EF) for READ BINARY, VERIFY P2=`80` or COMPUTE DIGITAL SIGNATURE
//! P2=`80` while no EF is selected; `6981` (incompatible with file structure) when the file
//! those name is of the wrong kind (VERIFY of the certificate EF, signing with the PIN EF);
//! `6581` (memory failure) when the retry counter cannot be saved; `6F00` if signing fails.
//!
//! # Security state
//!
//! A successful VERIFY of `0018` allows COMPUTE DIGITAL SIGNATURE until power-off, reset, a
//! wrong VERIFY, or the selection of another application (re-selecting JPKI keeps it, and so
//! does a failed SELECT, which changes nothing). It survives any number of signatures and
//! re-selections of the key EF.

use std::fmt;

use onshi_jpki::apdu::{CommandApdu, ResponseApdu, StatusWord};
use onshi_jpki::constants::{
    sfi, CLA_ISO, CLA_PROPRIETARY, EF_SIGN_PASSWORD, EF_USER_AUTH_CA_CERT, EF_USER_AUTH_CERT,
    EF_USER_AUTH_KEY, EF_USER_AUTH_PIN, INS_COMPUTE_DIGITAL_SIGNATURE, INS_READ_BINARY, INS_SELECT,
    INS_VERIFY, JPKI_AID, P2_CURRENT_EF, SELECT_BY_DF_NAME, SELECT_EF_UNDER_DF, SELECT_FCI,
    SELECT_NO_RESPONSE_DATA, SFI_FLAG, USER_AUTH_PIN_MAX_TRIES,
};
use onshi_jpki::Pin;
use rsa::traits::PublicKeyParts;
use rsa::{Pkcs1v15Sign, RsaPrivateKey};

use crate::contents::{CardBuildError, CardContents};
use crate::profile::{CardState, ProfileError};

/// Size of the certificate EFs `000A` and `000B`.
pub const CERTIFICATE_EF_SIZE: usize = 0x800;
/// Larger content is rounded up to a multiple of this.
const EF_SIZE_STEP: usize = 256;
/// READ BINARY offsets have 15 bits.
const MAX_EF_SIZE: usize = 0x8000;
/// Longest VERIFY data the card looks at; longer is a malformed command, not a wrong PIN.
const MAX_PIN_DATA: usize = 16;
/// PKCS#1 v1.5 type-1 padding needs 11 bytes of the modulus.
const PKCS1_OVERHEAD: usize = 11;

/// Saves the card's mutable state (the PIN retry counter). Called before the response that
/// reports a change is returned; an error makes the card answer `6581`.
pub type PersistHook = Box<dyn FnMut(CardState) -> Result<(), ProfileError> + Send>;

/// A hook that keeps nothing: for cards whose counter need not outlive the process.
pub fn no_persistence() -> PersistHook {
    Box::new(|_| Ok(()))
}

/// The EFs of the JPKI application this card has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ef {
    UserAuthCertificate,
    UserAuthCaCertificate,
    UserAuthKey,
    UserAuthPin,
    SignPassword,
}

impl Ef {
    const ALL: [Ef; 5] = [
        Ef::UserAuthCertificate,
        Ef::UserAuthCaCertificate,
        Ef::UserAuthKey,
        Ef::UserAuthPin,
        Ef::SignPassword,
    ];

    fn fid(self) -> u16 {
        match self {
            Ef::UserAuthCertificate => EF_USER_AUTH_CERT,
            Ef::UserAuthCaCertificate => EF_USER_AUTH_CA_CERT,
            Ef::UserAuthKey => EF_USER_AUTH_KEY,
            Ef::UserAuthPin => EF_USER_AUTH_PIN,
            Ef::SignPassword => EF_SIGN_PASSWORD,
        }
    }

    fn from_fid(fid: u16) -> Option<Ef> {
        Self::ALL.into_iter().find(|ef| ef.fid() == fid)
    }

    fn from_sfi(short_id: u8) -> Option<Ef> {
        Self::ALL.into_iter().find(|ef| sfi(ef.fid()) == short_id)
    }
}

/// Where the card's file pointer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Selection {
    /// After power-on or reset: the master file, no application, no EF.
    MasterFile,
    /// The JPKI application, and the EF last selected in it.
    Jpki { current_ef: Option<Ef> },
}

/// What a card session holds; power-off and reset start a fresh one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Session {
    selection: Selection,
    user_auth_verified: bool,
}

impl Session {
    const FRESH: Session = Session {
        selection: Selection::MasterFile,
        user_auth_verified: false,
    };
}

/// A command's outcome: a response, or a bare status word that ends it early.
type Answer = Result<ResponseApdu, StatusWord>;

fn done() -> Answer {
    Ok(ResponseApdu::status(StatusWord::SUCCESS))
}

/// A virtual My Number card.
pub struct VirtualCard {
    name: String,
    atr: Vec<u8>,
    /// EF `000A` as stored: certificate then `FF` filler.
    user_auth_certificate_ef: Vec<u8>,
    /// EF `000B` as stored.
    user_auth_ca_certificate_ef: Vec<u8>,
    user_auth_key: RsaPrivateKey,
    user_auth_pin: Pin,
    state: CardState,
    persist: PersistHook,
    session: Session,
}

impl fmt::Debug for VirtualCard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VirtualCard")
            .field("name", &self.name)
            .field("atr", &hex::encode_upper(&self.atr))
            .field("state", &self.state)
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl VirtualCard {
    /// Builds a powered-off card from its contents and the saved state; `persist` saves every
    /// change of the state. A retry counter above the maximum is clamped.
    pub fn new(
        contents: CardContents,
        state: CardState,
        persist: PersistHook,
    ) -> Result<Self, CardBuildError> {
        let CardContents {
            name,
            atr,
            user_auth_certificate,
            user_auth_ca_certificate,
            user_auth_key,
            user_auth_pin,
        } = contents;
        Ok(Self {
            user_auth_certificate_ef: stored_ef(
                &user_auth_certificate,
                "user-authentication certificate",
            )?,
            user_auth_ca_certificate_ef: stored_ef(
                &user_auth_ca_certificate,
                "user-authentication CA certificate",
            )?,
            name,
            atr,
            user_auth_key,
            user_auth_pin,
            state: CardState {
                user_auth_pin_tries_left: state
                    .user_auth_pin_tries_left
                    .min(USER_AUTH_PIN_MAX_TRIES),
            },
            persist,
            session: Session::FRESH,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn atr(&self) -> &[u8] {
        &self.atr
    }

    /// The persistent state as it stands (and as last saved).
    pub fn state(&self) -> CardState {
        self.state
    }

    /// The card lost power: the session (selection, verified PIN) is gone.
    pub fn power_off(&mut self) {
        self.session = Session::FRESH;
    }

    /// Warm or cold reset (and power-on): a fresh session with the master file selected.
    pub fn reset(&mut self) {
        self.session = Session::FRESH;
    }

    /// Answers one command APDU. Never panics: bytes that are not a short APDU get `6700`.
    pub fn process(&mut self, apdu: &[u8]) -> Vec<u8> {
        let response = match CommandApdu::parse(apdu) {
            Ok(command) => self.execute(&command),
            // Truncated, inconsistent Lc, extended length: the card cannot read the command.
            Err(_) => ResponseApdu::status(StatusWord::WRONG_LENGTH),
        };
        response.to_bytes()
    }

    fn execute(&mut self, command: &CommandApdu) -> ResponseApdu {
        let answer = match (command.cla(), command.ins()) {
            (CLA_ISO, INS_SELECT) => self.select(command),
            (CLA_ISO, INS_READ_BINARY) => self.read_binary(command),
            (CLA_ISO, INS_VERIFY) => self.verify(command),
            (CLA_PROPRIETARY, INS_COMPUTE_DIGITAL_SIGNATURE) => self.compute_signature(command),
            // A known instruction in the other class.
            (
                CLA_ISO | CLA_PROPRIETARY,
                INS_SELECT | INS_READ_BINARY | INS_VERIFY | INS_COMPUTE_DIGITAL_SIGNATURE,
            ) => Err(StatusWord::CLA_NOT_SUPPORTED),
            (CLA_ISO | CLA_PROPRIETARY, _) => Err(StatusWord::INS_NOT_SUPPORTED),
            _ => Err(StatusWord::CLA_NOT_SUPPORTED),
        };
        answer.unwrap_or_else(ResponseApdu::status)
    }

    fn select(&mut self, command: &CommandApdu) -> Answer {
        match command.p1() {
            SELECT_BY_DF_NAME => self.select_application(command),
            SELECT_EF_UNDER_DF => self.select_ef(command),
            _ => Err(StatusWord::INCORRECT_P1P2),
        }
    }

    fn select_application(&mut self, command: &CommandApdu) -> Answer {
        if !matches!(command.p2(), SELECT_NO_RESPONSE_DATA | SELECT_FCI) {
            return Err(StatusWord::INCORRECT_P1P2);
        }
        let aid = command.data();
        if aid.is_empty() || aid.len() > 16 {
            return Err(StatusWord::WRONG_LENGTH);
        }
        if aid != JPKI_AID {
            // Kenhojo, Kenkaku (not emulated yet) and every foreign AID a middleware probes:
            // the card lacks them, and saying so keeps other drivers from claiming it. A
            // failed SELECT leaves the current selection as it was.
            return Err(StatusWord::FILE_NOT_FOUND);
        }
        if !matches!(self.session.selection, Selection::Jpki { .. }) {
            // Entering an application drops the security state of the one left.
            self.session.user_auth_verified = false;
        }
        // With P2=00 the host may ask for FCI; this card returns none, which Le=00 allows.
        self.session.selection = Selection::Jpki { current_ef: None };
        done()
    }

    fn select_ef(&mut self, command: &CommandApdu) -> Answer {
        if !matches!(command.p2(), SELECT_NO_RESPONSE_DATA | SELECT_FCI) {
            return Err(StatusWord::INCORRECT_P1P2);
        }
        let &[hi, lo] = command.data() else {
            return Err(StatusWord::WRONG_LENGTH);
        };
        let Selection::Jpki { current_ef } = &mut self.session.selection else {
            return Err(StatusWord::FILE_NOT_FOUND);
        };
        let ef = Ef::from_fid(u16::from_be_bytes([hi, lo])).ok_or(StatusWord::FILE_NOT_FOUND)?;
        *current_ef = Some(ef);
        done()
    }

    fn read_binary(&mut self, command: &CommandApdu) -> Answer {
        if !command.data().is_empty() {
            return Err(StatusWord::WRONG_LENGTH);
        }
        let le = usize::from(command.le().ok_or(StatusWord::WRONG_LENGTH)?);
        let p1 = command.p1();
        let (ef, offset) = if p1 & SFI_FLAG != 0 {
            // P1 = 100x xxxx: a short file id in the low five bits, a one-byte offset in P2.
            let short_id = p1 & 0x1F;
            if p1 & 0x60 != 0 || short_id == 0 {
                return Err(StatusWord::INCORRECT_P1P2);
            }
            let Selection::Jpki { current_ef } = &mut self.session.selection else {
                return Err(StatusWord::FILE_NOT_FOUND);
            };
            let ef = Ef::from_sfi(short_id).ok_or(StatusWord::FILE_NOT_FOUND)?;
            // Reading by short id makes the file current for the reads that follow.
            *current_ef = Some(ef);
            (ef, usize::from(command.p2()))
        } else {
            let ef = self.current_ef().ok_or(StatusWord::NO_CURRENT_EF)?;
            (ef, usize::from(u16::from_be_bytes([p1, command.p2()])))
        };
        let file = self
            .transparent_file(ef)
            .ok_or(StatusWord::SECURITY_NOT_SATISFIED)?;
        if offset >= file.len() {
            return Err(StatusWord::OFFSET_OUTSIDE);
        }
        // Past the end: what exists, with 9000 (not 6282), as the real card does.
        let end = file.len().min(offset + le);
        let data = file.get(offset..end).ok_or(StatusWord::OFFSET_OUTSIDE)?;
        Ok(ResponseApdu::new(data.to_vec(), StatusWord::SUCCESS))
    }

    fn verify(&mut self, command: &CommandApdu) -> Answer {
        if command.p1() != 0x00 {
            return Err(StatusWord::INCORRECT_P1P2);
        }
        match self.referenced_ef(command.p2())? {
            Ef::UserAuthPin => self.verify_user_auth_pin(command.data()),
            Ef::SignPassword => Ok(verify_sign_password(command.data())),
            _ => Err(StatusWord::COMMAND_INCOMPATIBLE),
        }
    }

    fn verify_user_auth_pin(&mut self, candidate: &[u8]) -> Answer {
        let tries_left = self.state.user_auth_pin_tries_left;
        if candidate.is_empty() {
            // The retry-counter query: always 63Cx, never 6984 (blocked) nor 9000 (verified).
            // OpenSC's JPKI driver gives up on a card whose empty VERIFY answers anything but
            // 63xx, and since pcscd keeps the card powered between clients, a PIN verified by
            // one client is still verified when the next one binds.
            return Err(StatusWord::wrong_pin(tries_left));
        }
        if candidate.len() > MAX_PIN_DATA {
            return Err(StatusWord::WRONG_LENGTH);
        }
        if tries_left == 0 {
            return Err(StatusWord::PIN_BLOCKED);
        }
        if self.user_auth_pin.matches(candidate) {
            if tries_left != USER_AUTH_PIN_MAX_TRIES {
                let restored = CardState {
                    user_auth_pin_tries_left: USER_AUTH_PIN_MAX_TRIES,
                };
                // Only a saved reset counts: otherwise the card would forget it on restart
                // while having told the host the PIN was fine.
                self.save(restored)?;
                self.state = restored;
            }
            self.session.user_auth_verified = true;
            done()
        } else {
            let left = tries_left - 1;
            // The attempt is spent even if saving fails: never hand a try back.
            self.state.user_auth_pin_tries_left = left;
            self.session.user_auth_verified = false;
            self.save(self.state)?;
            Err(StatusWord::wrong_pin(left))
        }
    }

    fn compute_signature(&mut self, command: &CommandApdu) -> Answer {
        if command.p1() != 0x00 {
            return Err(StatusWord::INCORRECT_P1P2);
        }
        if self.referenced_ef(command.p2())? != Ef::UserAuthKey {
            return Err(StatusWord::COMMAND_INCOMPATIBLE);
        }
        let modulus_len = self.user_auth_key.size();
        let data = command.data();
        if data.is_empty() || data.len() + PKCS1_OVERHEAD > modulus_len {
            return Err(StatusWord::WRONG_LENGTH);
        }
        if command.le().is_some_and(|le| usize::from(le) < modulus_len) {
            return Err(StatusWord::WRONG_LENGTH);
        }
        if !self.session.user_auth_verified {
            return Err(StatusWord::SECURITY_NOT_SATISFIED);
        }
        // P1=00: PKCS#1 v1.5 type-1 padding over the data exactly as given (the host sends a
        // DigestInfo), so no hash prefix is added here.
        let signature = self
            .user_auth_key
            .sign(Pkcs1v15Sign::new_unprefixed(), data)
            .map_err(|_| StatusWord::NO_PRECISE_DIAGNOSIS)?;
        Ok(ResponseApdu::new(signature, StatusWord::SUCCESS))
    }

    /// The EF named by P2 of VERIFY and COMPUTE DIGITAL SIGNATURE: `80` the current EF,
    /// `80|SFI` an EF of the application by short id.
    fn referenced_ef(&self, p2: u8) -> Result<Ef, StatusWord> {
        if !(P2_CURRENT_EF..=SFI_FLAG | 0x1E).contains(&p2) {
            return Err(StatusWord::INCORRECT_P1P2);
        }
        let Selection::Jpki { current_ef } = self.session.selection else {
            return Err(StatusWord::FILE_NOT_FOUND);
        };
        if p2 == P2_CURRENT_EF {
            current_ef.ok_or(StatusWord::NO_CURRENT_EF)
        } else {
            Ef::from_sfi(p2 & 0x1F).ok_or(StatusWord::FILE_NOT_FOUND)
        }
    }

    fn current_ef(&self) -> Option<Ef> {
        match self.session.selection {
            Selection::Jpki { current_ef } => current_ef,
            Selection::MasterFile => None,
        }
    }

    /// The bytes of a freely readable EF; `None` for key and PIN EFs.
    fn transparent_file(&self, ef: Ef) -> Option<&[u8]> {
        match ef {
            Ef::UserAuthCertificate => Some(&self.user_auth_certificate_ef),
            Ef::UserAuthCaCertificate => Some(&self.user_auth_ca_certificate_ef),
            Ef::UserAuthKey | Ef::UserAuthPin | Ef::SignPassword => None,
        }
    }

    fn save(&mut self, state: CardState) -> Result<(), StatusWord> {
        (self.persist)(state).map_err(|error| {
            tracing::error!(card = %self.name, %error, "cannot save the PIN retry counter");
            StatusWord::MEMORY_FAILURE
        })
    }
}

/// The signature password: not in the profile, so presented as blocked (module docs).
fn verify_sign_password(candidate: &[u8]) -> ResponseApdu {
    ResponseApdu::status(if candidate.is_empty() {
        StatusWord::wrong_pin(0)
    } else {
        StatusWord::PIN_BLOCKED
    })
}

/// An EF as stored: content, then `FF` up to the EF size.
fn stored_ef(content: &[u8], what: &'static str) -> Result<Vec<u8>, CardBuildError> {
    if content.len() > MAX_EF_SIZE {
        return Err(CardBuildError::FileTooLarge {
            what,
            len: content.len(),
            max: MAX_EF_SIZE,
        });
    }
    let size = CERTIFICATE_EF_SIZE.max(content.len().div_ceil(EF_SIZE_STEP) * EF_SIZE_STEP);
    let mut ef = content.to_vec();
    ef.resize(size, 0xFF);
    Ok(ef)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use onshi_jpki::constants::{sha256_digest_info, KENHOJO_AID, KENKAKU_AID};
    use rsa::sha2::{Digest, Sha256};

    use super::*;
    use crate::test_support::{fake_certificate, test_key, PIN};

    type Saved = Arc<Mutex<Vec<CardState>>>;

    fn card_with(state: CardState, cert: Vec<u8>) -> (VirtualCard, Saved) {
        let saved: Saved = Arc::default();
        let sink = saved.clone();
        let contents = CardContents {
            name: "card-test".into(),
            atr: vec![0x3B, 0xE0, 0x00, 0xFF, 0x81, 0x31, 0xFE, 0x45, 0x14],
            user_auth_certificate: cert,
            user_auth_ca_certificate: fake_certificate(900, 0xCA),
            user_auth_key: test_key().clone(),
            user_auth_pin: Pin::new(PIN).unwrap(),
        };
        let persist: PersistHook = Box::new(move |s| {
            sink.lock().unwrap().push(s);
            Ok(())
        });
        let mut card = VirtualCard::new(contents, state, persist).unwrap();
        card.reset();
        (card, saved)
    }

    fn card() -> (VirtualCard, Saved) {
        card_with(CardState::default(), fake_certificate(1230, 0xC0))
    }

    /// Sends hex, returns the response as upper-case hex.
    fn send(card: &mut VirtualCard, apdu: &str) -> String {
        hex::encode_upper(card.process(&hex::decode(apdu.replace(' ', "")).unwrap()))
    }

    fn sw(card: &mut VirtualCard, apdu: &str) -> String {
        let r = send(card, apdu);
        r[r.len() - 4..].to_string()
    }

    const SELECT_JPKI: &str = "00A4040C0AD392F000260100000001";
    const SELECT_000A: &str = "00A4020C02000A";
    const SELECT_000B: &str = "00A4020C02000B";
    const SELECT_0017: &str = "00A4020C020017";
    const SELECT_0018: &str = "00A4020C020018";
    const VERIFY_RIGHT: &str = "002000800434373239"; // "4729"
    const VERIFY_WRONG: &str = "002000800430303030"; // "0000"
    const EMPTY_VERIFY: &str = "00200080";

    fn sign_apdu(di: &[u8]) -> String {
        format!("802A0080{:02X}{}00", di.len(), hex::encode_upper(di))
    }

    fn binding_digest_info(message: &[u8]) -> [u8; 51] {
        sha256_digest_info(&Sha256::digest(message).into())
    }

    #[test]
    fn atr_and_identity() {
        let (card, _) = card();
        assert_eq!(hex::encode_upper(card.atr()), "3BE000FF8131FE4514");
        assert_eq!(card.name(), "card-test");
        assert!(!format!("{card:?}").contains(PIN));
    }

    #[test]
    fn select_application() {
        let (mut c, _) = card();
        assert_eq!(sw(&mut c, SELECT_JPKI), "9000");
        // P2=00 with Le=00 is accepted too, and answers no FCI.
        assert_eq!(send(&mut c, "00A404000AD392F00026010000000100"), "9000");
        assert_eq!(send(&mut c, "00A404000AD392F000260100000001"), "9000");
        // Applications the card lacks, including Kenhojo and Kenkaku for now.
        for aid in [
            KENHOJO_AID.to_vec(),
            KENKAKU_AID.to_vec(),
            hex::decode("A000000063504B43532D3135").unwrap(),
            hex::decode("D392F000260100000002").unwrap(),
        ] {
            let apdu = format!("00A4040C{:02X}{}", aid.len(), hex::encode(&aid));
            assert_eq!(sw(&mut c, &apdu), "6A82", "{apdu}");
        }
        // A prefix of the JPKI AID is not the JPKI AID.
        assert_eq!(sw(&mut c, "00A4040C05D392F00026"), "6A82");
        assert_eq!(sw(&mut c, "00A4040400"), "6A86"); // P2=04 (FCP)
        assert_eq!(sw(&mut c, "00A4080C020001"), "6A86"); // by path
        assert_eq!(sw(&mut c, "00A4000C023F00"), "6A86"); // by file id from the MF
        assert_eq!(sw(&mut c, "00A4040C"), "6700"); // no AID
        let too_long = format!("00A4040C11{}", "D3".repeat(17));
        assert_eq!(sw(&mut c, &too_long), "6700");
    }

    #[test]
    fn select_ef() {
        let (mut c, _) = card();
        // Before an application is selected there is no EF to find.
        assert_eq!(sw(&mut c, SELECT_000A), "6A82");
        assert_eq!(sw(&mut c, SELECT_JPKI), "9000");
        for ef in [
            SELECT_000A,
            SELECT_000B,
            SELECT_0017,
            SELECT_0018,
            "00A4020C02001B",
        ] {
            assert_eq!(sw(&mut c, ef), "9000", "{ef}");
        }
        for missing in ["0001", "0002", "0006", "0008", "001A", "3F00", "FFFF"] {
            assert_eq!(
                sw(&mut c, &format!("00A4020C02{missing}")),
                "6A82",
                "{missing}"
            );
        }
        // A failed SELECT leaves the current EF: still 001B, whose reads are refused.
        assert_eq!(sw(&mut c, "00B0000004"), "6982");
        assert_eq!(sw(&mut c, "00A4020C0100"), "6700");
        assert_eq!(sw(&mut c, "00A4020C03000A00"), "6700");
        assert_eq!(sw(&mut c, "00A4020402000A"), "6A86");
    }

    #[test]
    fn read_binary_by_offset() {
        let cert = fake_certificate(1230, 0xC0);
        let (mut c, _) = card();
        sw(&mut c, SELECT_JPKI);
        // No EF selected yet.
        assert_eq!(sw(&mut c, "00B0000004"), "6986");
        sw(&mut c, SELECT_000A);
        assert_eq!(send(&mut c, "00B0000004"), "308204CE9000");
        // Le=00 is 256 bytes.
        let r = c.process(&[0x00, 0xB0, 0x00, 0x04, 0x00]);
        assert_eq!(r.len(), 258);
        assert_eq!(&r[..256], &cert[4..260]);
        // Odd offsets and lengths (the 7-byte-header clients).
        let r = c.process(&[0x00, 0xB0, 0x00, 0x07, 0x0B]);
        assert_eq!(&r[..11], &cert[7..18]);
        // The content ends at 1234 and FF filler follows up to 0x800.
        let r = c.process(&[0x00, 0xB0, 0x04, 0xC0, 0x20]);
        assert_eq!(&r[..18], &cert[0x4C0..]);
        assert!(r[18..32].iter().all(|&b| b == 0xFF));
        // Reading past the end returns what exists, with 9000.
        let r = c.process(&[0x00, 0xB0, 0x07, 0xF0, 0x00]);
        assert_eq!(r.len(), 16 + 2);
        assert!(r[..16].iter().all(|&b| b == 0xFF));
        assert_eq!(&r[16..], &[0x90, 0x00]);
        // At or past the end: 6B00.
        assert_eq!(sw(&mut c, "00B0080001"), "6B00");
        assert_eq!(sw(&mut c, "00B07FFF01"), "6B00");
        // Malformed READ BINARY.
        assert_eq!(sw(&mut c, "00B00000"), "6700"); // no Le
        assert_eq!(sw(&mut c, "00B000000100"), "6700"); // data
                                                        // The CA certificate EF.
        sw(&mut c, SELECT_000B);
        assert_eq!(send(&mut c, "00B0000004"), "308203849000");
    }

    #[test]
    fn read_binary_by_short_file_id() {
        let cert = fake_certificate(1230, 0xC0);
        let (mut c, _) = card();
        // No application: nothing to read by short id.
        assert_eq!(sw(&mut c, "00B08A0004"), "6A82");
        sw(&mut c, SELECT_JPKI);
        assert_eq!(send(&mut c, "00B08A0004"), "308204CE9000");
        // It made 000A the current EF: a plain read continues in it.
        let r = c.process(&[0x00, 0xB0, 0x00, 0x04, 0x10]);
        assert_eq!(&r[..16], &cert[4..20]);
        assert_eq!(send(&mut c, "00B08B0004"), "308203849000");
        let r = c.process(&[0x00, 0xB0, 0x00, 0x00, 0x04]);
        assert_eq!(hex::encode_upper(&r), "308203849000"); // now 000B
                                                           // Offsets by SFI are one byte.
        let r = c.process(&[0x00, 0xB0, 0x8A, 0xFF, 0x01]);
        assert_eq!(r, vec![cert[255], 0x90, 0x00]);
        // Key and PIN EFs are never readable.
        assert_eq!(sw(&mut c, "00B0970004"), "6982");
        assert_eq!(sw(&mut c, "00B0980004"), "6982");
        assert_eq!(sw(&mut c, "00B09B0004"), "6982");
        assert_eq!(sw(&mut c, "00B0810004"), "6A82"); // SFI 01: not emulated
        assert_eq!(sw(&mut c, "00B0800004"), "6A86"); // SFI 0
        assert_eq!(sw(&mut c, "00B0A00004"), "6A86"); // P1 bits 6-7 set
    }

    #[test]
    fn protected_efs_refuse_reads() {
        let (mut c, _) = card();
        sw(&mut c, SELECT_JPKI);
        for ef in [SELECT_0017, SELECT_0018] {
            sw(&mut c, ef);
            assert_eq!(sw(&mut c, "00B0000004"), "6982");
        }
        // Not even after the PIN is verified.
        assert_eq!(sw(&mut c, VERIFY_RIGHT), "9000");
        sw(&mut c, SELECT_0017);
        assert_eq!(sw(&mut c, "00B0000000"), "6982");
    }

    #[test]
    fn pin_counter_blocks_after_three_and_is_persisted() {
        let (mut c, saved) = card();
        sw(&mut c, SELECT_JPKI);
        sw(&mut c, SELECT_0018);
        assert_eq!(sw(&mut c, EMPTY_VERIFY), "63C3");
        assert_eq!(sw(&mut c, VERIFY_WRONG), "63C2");
        assert_eq!(sw(&mut c, EMPTY_VERIFY), "63C2");
        assert_eq!(sw(&mut c, VERIFY_WRONG), "63C1");
        // The attempt that uses the last try answers 63C0 ...
        assert_eq!(sw(&mut c, VERIFY_WRONG), "63C0");
        // ... every later VERIFY 6984, even with the right PIN ...
        assert_eq!(sw(&mut c, VERIFY_RIGHT), "6984");
        assert_eq!(sw(&mut c, VERIFY_WRONG), "6984");
        // ... and the retry-counter query 63C0, not 6984.
        assert_eq!(sw(&mut c, EMPTY_VERIFY), "63C0");
        let counts: Vec<u8> = saved
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.user_auth_pin_tries_left)
            .collect();
        assert_eq!(counts, vec![2, 1, 0]);
        assert_eq!(c.state().user_auth_pin_tries_left, 0);
        // Blocked survives power cycles (it is state, not session).
        c.power_off();
        c.reset();
        sw(&mut c, SELECT_JPKI);
        assert_eq!(sw(&mut c, "00200098"), "63C0");
        // Lc announcing data that is missing is malformed, not a PIN attempt.
        assert_eq!(sw(&mut c, "00200098043437"), "6700");
    }

    #[test]
    fn correct_pin_resets_the_counter() {
        let (mut c, saved) = card_with(
            CardState {
                user_auth_pin_tries_left: 1,
            },
            fake_certificate(1230, 0xC0),
        );
        sw(&mut c, SELECT_JPKI);
        sw(&mut c, SELECT_0018);
        assert_eq!(sw(&mut c, EMPTY_VERIFY), "63C1");
        assert_eq!(sw(&mut c, VERIFY_RIGHT), "9000");
        assert_eq!(
            saved.lock().unwrap().as_slice(),
            &[CardState {
                user_auth_pin_tries_left: 3
            }]
        );
        // Verified, but the retry-counter query still answers 63Cx (OpenSC insists).
        assert_eq!(sw(&mut c, EMPTY_VERIFY), "63C3");
        // A right PIN at full count writes nothing.
        assert_eq!(sw(&mut c, VERIFY_RIGHT), "9000");
        assert_eq!(saved.lock().unwrap().len(), 1);
        // A wrong PIN un-verifies.
        assert_eq!(sw(&mut c, VERIFY_WRONG), "63C2");
        assert_eq!(sw(&mut c, EMPTY_VERIFY), "63C2");
    }

    #[test]
    fn verify_addressing() {
        let (mut c, _) = card();
        // No application.
        assert_eq!(sw(&mut c, VERIFY_RIGHT), "6A82");
        sw(&mut c, SELECT_JPKI);
        // No current EF.
        assert_eq!(sw(&mut c, VERIFY_RIGHT), "6986");
        // Current EF is not a PIN.
        sw(&mut c, SELECT_000A);
        assert_eq!(sw(&mut c, VERIFY_RIGHT), "6981");
        assert_eq!(c.state().user_auth_pin_tries_left, 3);
        // By SFI: 98 names 0018 whatever is current.
        assert_eq!(sw(&mut c, "002000980434373239"), "9000");
        assert_eq!(sw(&mut c, "002000990434373239"), "6A82"); // SFI 19: no such EF
        assert_eq!(sw(&mut c, "0020008A0434373239"), "6981"); // SFI 0A: not a PIN
        assert_eq!(sw(&mut c, "002000010434373239"), "6A86");
        assert_eq!(sw(&mut c, "0020009F0434373239"), "6A86");
        assert_eq!(sw(&mut c, "002001800434373239"), "6A86");
        // PIN data longer than any PIN is malformed and costs nothing.
        assert_eq!(
            sw(&mut c, &format!("0020009811{}", "31".repeat(17))),
            "6700"
        );
        assert_eq!(c.state().user_auth_pin_tries_left, 3);
        // A wrong-length PIN is a wrong PIN.
        assert_eq!(sw(&mut c, "00200098053437323930"), "63C2");
    }

    #[test]
    fn signature_password_is_presented_blocked() {
        let (mut c, saved) = card();
        sw(&mut c, SELECT_JPKI);
        assert_eq!(sw(&mut c, "00A4020C02001B"), "9000");
        assert_eq!(sw(&mut c, EMPTY_VERIFY), "63C0");
        assert_eq!(sw(&mut c, "0020008006414243444546"), "6984");
        assert_eq!(sw(&mut c, "0020009B"), "63C0");
        assert!(saved.lock().unwrap().is_empty());
        assert_eq!(c.state().user_auth_pin_tries_left, 3);
    }

    #[test]
    fn signs_only_after_verify_and_signature_verifies() {
        let (mut c, _) = card();
        let message = b"onshi/v1\x01 a binding-style message";
        let di = binding_digest_info(message);
        sw(&mut c, SELECT_JPKI);
        sw(&mut c, SELECT_0017);
        assert_eq!(sw(&mut c, &sign_apdu(&di)), "6982");
        sw(&mut c, SELECT_0018);
        assert_eq!(sw(&mut c, VERIFY_RIGHT), "9000");
        sw(&mut c, SELECT_0017);
        let r = c.process(&hex::decode(sign_apdu(&di)).unwrap());
        assert_eq!(r.len(), 258);
        assert_eq!(&r[256..], &[0x90, 0x00]);
        // An ordinary RSASSA-PKCS1-v1_5 SHA-256 signature of the message.
        let public = test_key().to_public_key();
        public
            .verify(
                Pkcs1v15Sign::new::<Sha256>(),
                &Sha256::digest(message),
                &r[..256],
            )
            .unwrap();
        // Repeated identical commands get identical answers; verification stays in force
        // across signatures and re-selection of the key EF.
        assert_eq!(c.process(&hex::decode(sign_apdu(&di)).unwrap()), r);
        sw(&mut c, SELECT_0017);
        assert_eq!(c.process(&hex::decode(sign_apdu(&di)).unwrap()), r);
        // Re-selecting the JPKI application keeps it too; P2=97 names the key by SFI.
        sw(&mut c, SELECT_JPKI);
        let by_sfi = sign_apdu(&di).replacen("802A0080", "802A0097", 1);
        assert_eq!(c.process(&hex::decode(by_sfi).unwrap()), r);
        // Case 3 (no Le) is accepted; a small Le is not.
        sw(&mut c, SELECT_0017);
        let no_le = &sign_apdu(&di)[..sign_apdu(&di).len() - 2];
        assert_eq!(c.process(&hex::decode(no_le).unwrap()), r);
        let small_le = format!("{no_le}80");
        assert_eq!(sw(&mut c, &small_le), "6700");
    }

    #[test]
    fn verification_is_cleared_by_power_off_and_reset() {
        let di = binding_digest_info(b"m");
        for clear in [
            VirtualCard::power_off as fn(&mut VirtualCard),
            VirtualCard::reset,
        ] {
            let (mut c, _) = card();
            sw(&mut c, SELECT_JPKI);
            sw(&mut c, SELECT_0018);
            assert_eq!(sw(&mut c, VERIFY_RIGHT), "9000");
            clear(&mut c);
            // The session is gone: no application either.
            assert_eq!(sw(&mut c, SELECT_0017), "6A82");
            sw(&mut c, SELECT_JPKI);
            sw(&mut c, SELECT_0017);
            assert_eq!(sw(&mut c, &sign_apdu(&di)), "6982");
        }
        // A failed SELECT of another application changes nothing.
        let (mut c, _) = card();
        sw(&mut c, SELECT_JPKI);
        assert_eq!(sw(&mut c, "002000980434373239"), "9000");
        let kenhojo = format!("00A4040C0A{}", hex::encode(KENHOJO_AID));
        assert_eq!(sw(&mut c, &kenhojo), "6A82");
        assert_eq!(
            sw(&mut c, &sign_apdu(&di).replacen("802A0080", "802A0097", 1)),
            "9000"
        );
    }

    #[test]
    fn compute_signature_errors() {
        let (mut c, _) = card();
        let di = binding_digest_info(b"m");
        assert_eq!(sw(&mut c, &sign_apdu(&di)), "6A82"); // no application
        sw(&mut c, SELECT_JPKI);
        assert_eq!(sw(&mut c, &sign_apdu(&di)), "6986"); // no current EF
        sw(&mut c, SELECT_0018);
        assert_eq!(sw(&mut c, VERIFY_RIGHT), "9000");
        assert_eq!(sw(&mut c, &sign_apdu(&di)), "6981"); // the PIN EF is not a key
        sw(&mut c, SELECT_0017);
        assert_eq!(
            sw(&mut c, &sign_apdu(&di).replacen("802A0080", "802A0180", 1)),
            "6A86"
        );
        assert_eq!(
            sw(&mut c, &sign_apdu(&di).replacen("802A0080", "802A0000", 1)),
            "6A86"
        );
        assert_eq!(sw(&mut c, "802A008000"), "6700"); // no data
        assert_eq!(sw(&mut c, &sign_apdu(&[0x01; 246])), "6700"); // too long to pad
                                                                  // The longest input PKCS#1 type 1 allows is signed.
        assert_eq!(
            c.process(&hex::decode(sign_apdu(&[0x01; 245])).unwrap())
                .len(),
            258
        );
        // A bare hash is signed as given (the card does not check it is a DigestInfo).
        assert_eq!(
            c.process(&hex::decode(sign_apdu(&[0x01; 32])).unwrap())
                .len(),
            258
        );
        // The ISO class is not this command's.
        assert_eq!(
            sw(&mut c, &sign_apdu(&di).replacen("802A", "002A", 1)),
            "6E00"
        );
    }

    #[test]
    fn unknown_class_instruction_and_malformed() {
        let (mut c, _) = card();
        assert_eq!(sw(&mut c, "00CA010000"), "6D00"); // GET DATA
        assert_eq!(sw(&mut c, "00C0000000"), "6D00"); // GET RESPONSE
        assert_eq!(sw(&mut c, "80CA9F7F00"), "6D00");
        assert_eq!(sw(&mut c, "FFCA000000"), "6E00"); // reader pseudo-APDU
        assert_eq!(sw(&mut c, "0CB0000004"), "6E00"); // secure messaging
        assert_eq!(sw(&mut c, "80A4040C0AD392F000260100000001"), "6E00");
        for malformed in [
            "",
            "00",
            "00A4",
            "00A404",
            "00A4040C05D392",
            "00B000000001",
            "00A4040C01D3D3D3",
        ] {
            assert_eq!(send(&mut c, malformed), "6700", "{malformed:?}");
        }
    }

    #[test]
    fn persistence_failure_answers_memory_failure() {
        let contents = CardContents {
            name: "card-test".into(),
            atr: vec![0x3B, 0x00],
            user_auth_certificate: fake_certificate(100, 1),
            user_auth_ca_certificate: fake_certificate(100, 2),
            user_auth_key: test_key().clone(),
            user_auth_pin: Pin::new(PIN).unwrap(),
        };
        let failing: PersistHook = Box::new(|_| {
            Err(ProfileError::Invalid {
                path: "/nonexistent".into(),
                reason: "disk full".into(),
            })
        });
        let mut c = VirtualCard::new(
            contents,
            CardState {
                user_auth_pin_tries_left: 2,
            },
            failing,
        )
        .unwrap();
        sw(&mut c, SELECT_JPKI);
        sw(&mut c, SELECT_0018);
        // The wrong attempt is spent anyway ...
        assert_eq!(sw(&mut c, VERIFY_WRONG), "6581");
        assert_eq!(c.state().user_auth_pin_tries_left, 1);
        // ... a right PIN whose counter reset cannot be saved does not verify.
        assert_eq!(sw(&mut c, VERIFY_RIGHT), "6581");
        assert_eq!(c.state().user_auth_pin_tries_left, 1);
        assert_eq!(sw(&mut c, EMPTY_VERIFY), "63C1");
    }

    #[test]
    fn file_sizes() {
        assert_eq!(stored_ef(&[0x30; 10], "x").unwrap().len(), 0x800);
        assert_eq!(stored_ef(&[0x30; 0x800], "x").unwrap().len(), 0x800);
        assert_eq!(stored_ef(&[0x30; 0x801], "x").unwrap().len(), 0x900);
        assert_eq!(stored_ef(&[0x30; 0x8000], "x").unwrap().len(), 0x8000);
        assert!(matches!(
            stored_ef(&[0x30; 0x8001], "x"),
            Err(CardBuildError::FileTooLarge { len: 0x8001, .. })
        ));
        let ef = stored_ef(&[0x30, 0x01, 0x00], "x").unwrap();
        assert!(ef[3..].iter().all(|&b| b == 0xFF));
        // A large certificate is served whole, then filler.
        let (mut c, _) = card_with(CardState::default(), fake_certificate(0x900, 7));
        sw(&mut c, SELECT_JPKI);
        sw(&mut c, SELECT_000A);
        // 4 + 0x900 bytes of content: the EF is 0xA00 bytes.
        assert_eq!(sw(&mut c, "00B0090301"), "9000");
        assert_eq!(send(&mut c, "00B0090401"), "FF9000");
        assert_eq!(sw(&mut c, "00B009FF01"), "9000");
        assert_eq!(sw(&mut c, "00B00A0001"), "6B00");
    }

    #[test]
    fn clamps_an_impossible_counter() {
        let (c, _) = card_with(
            CardState {
                user_auth_pin_tries_left: 9,
            },
            fake_certificate(10, 1),
        );
        assert_eq!(c.state().user_auth_pin_tries_left, 3);
    }

    /// Random bytes, and random commands built from the card's own vocabulary, never panic,
    /// and every answer ends in a status word.
    #[test]
    fn never_panics() {
        let (mut c, _) = card();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let clas = [0x00, 0x80, 0x0C, 0xFF];
        let inss = [0xA4, 0xB0, 0x20, 0x2A, 0xCA, 0x00];
        for i in 0..40_000 {
            let r = next();
            let apdu: Vec<u8> = if i % 2 == 0 {
                let len = (r % 300) as usize;
                (0..len).map(|_| next() as u8).collect()
            } else {
                let lc = (next() % 40) as usize;
                let mut a = vec![
                    clas[(r % 4) as usize],
                    inss[((r >> 8) % 6) as usize],
                    (r >> 16) as u8 & 0x9F,
                    (r >> 24) as u8,
                ];
                if lc > 0 {
                    a.push(lc as u8);
                    a.extend((0..lc).map(|_| next() as u8));
                }
                if (r >> 32) % 2 == 0 {
                    a.push((r >> 40) as u8);
                }
                a
            };
            let answer = c.process(&apdu);
            assert!(answer.len() >= 2);
            if i % 1000 == 0 {
                c.reset();
            }
        }
    }
}
