//! The card: a pure state machine from command APDU bytes to response bytes, answering like
//! a My Number card's three applications (jpki-card.md §1–5): JPKI, Kenhojo and Kenkaku.
//!
//! No I/O happens here. The one side effect, saving the mutable state (retry counters, a
//! changed PIN), goes through the [`PersistHook`] the caller injects, and it runs *before*
//! the response is returned, so a change survives the process being killed the moment the
//! host sees the answer.
//!
//! # Files
//!
//! | app | EF | here | READ BINARY |
//! |---|---|---|---|
//! | JPKI | `0001` | signature certificate (if the profile has one) | signature password |
//! | JPKI | `0002` | signature CA certificate (idem) | free |
//! | JPKI | `0006` | token info, 160 bytes, label `JPKIAPICCTOKEN2` | free |
//! | JPKI | `0008` | `8F 8F 00` with both certificates, `00 8F 00` without the signature one | free |
//! | JPKI | `000A` / `000B` | user-authentication certificate / its CA, DER, `FF` filler | free |
//! | JPKI | `0017` / `001A` | user-authentication / signature key | `6982` |
//! | JPKI | `0018` | user-authentication PIN, 3 tries | `6982` |
//! | JPKI | `001B` | signature password, 5 tries (blocked when the profile has none) | `6982` |
//! | Kenhojo | `0011` | PIN (the user-authentication PIN at issue), 3 tries | `6982` |
//! | Kenhojo | `0012` | blocked as issued (`63C0` / `6984`) | `6982` |
//! | Kenhojo | `0014` / `0015` | 照合番号A (My Number) / 照合番号B, 10 tries each | `6982` |
//! | Kenhojo | `0001` / `0002` | My Number / basic four facts (`surface.rs`) | PIN or A / PIN or B |
//! | Kenkaku | `0011` / `0012` / `0013` | birth-date key / 照合番号B / 照合番号A, 10 tries each | `6982` |
//! | Kenkaku | `0002` | card face, `FF 20` { `DF21` … `DF2A` } (`surface.rs`) | 照合番号B or A |
//!
//! Certificate EFs are [`CERTIFICATE_EF_SIZE`] (2048) bytes like a real card's; content
//! longer than that gets the next multiple of 256 bytes instead. Other EFs are as long as
//! their content (the token info exactly 160 bytes).
//!
//! # PINs
//!
//! VERIFY: the right value answers `9000` and restores the full count; a wrong one spends a
//! try and answers `63Cx` (`63C0` for the one that uses the last try); once blocked, every
//! VERIFY with data answers `6984`. The empty VERIFY (retry-counter query) always answers
//! `63Cx`, `63C0` when blocked, and also while the PIN is verified: jpki-card.md allows `9000`
//! there, but OpenSC's driver refuses to bind a card whose query answers anything but `63xx`,
//! and since pcscd keeps a card powered between clients, the PIN one client verified is
//! still verified when the next one binds (observed with OpenSC 0.23 through pcscd + vpcd).
//! A signature password missing from the profile is presented as blocked (`63C0` / `6984`):
//! OpenSC queries both JPKI counters at bind and gives up on the card if either query fails.
//!
//! CHANGE REFERENCE DATA `00 24 P1 80|SFI`: P1=`01` (new value only) needs the PIN verified
//! in this session; P1=`00` carries old and new value, the old one checked like a VERIFY. The
//! user-authentication and Kenhojo PINs take 4 digits, the signature password 6–16 of
//! `A–Z0–9` (`6A80` otherwise); the Kenkaku keys are printed on the card and cannot change
//! (`6985`). The new value is saved in the state file before `9000`.
//!
//! # Status words beyond jpki-card.md's table
//!
//! `6986` (no current EF) for READ BINARY, VERIFY P2=`80` or COMPUTE DIGITAL SIGNATURE
//! P2=`80` while no EF is selected; `6981` (incompatible with file structure) when the file
//! those name is of the wrong kind; `6A80` for a new PIN of the wrong shape; `6985` for a
//! PIN that cannot be changed; `6581` (memory failure) when the state cannot be saved;
//! `6F00` if signing fails.
//!
//! # Security state
//!
//! A successful VERIFY allows what that PIN guards until power-off, reset, a wrong VERIFY of
//! the same PIN, or the selection of another application (re-selecting the same one keeps it,
//! and so does a failed SELECT, which changes nothing). It survives any number of signatures.
//!
//! # Simulator only: the face photo
//!
//! How a face-recognition reader obtains the photo without the holder's numbers is not
//! public. When the profile sets `kenkaku.simulator_face_export`, this card answers a
//! proprietary-class READ BINARY `80 B0 <off hi> <off lo> <Le>` in the Kenkaku application
//! with the raw face photo bytes, no PIN needed. Without that flag (and on every real card)
//! the command answers `6E00` like any unsupported class.

use std::fmt;

use onshi_jpki::apdu::{CommandApdu, ResponseApdu, StatusWord};
use onshi_jpki::constants::{
    sfi, CLA_ISO, CLA_PROPRIETARY, EF_CERT_PRESENCE, EF_SIGN_CA_CERT, EF_SIGN_CERT, EF_SIGN_KEY,
    EF_SIGN_PASSWORD, EF_TOKEN_INFO, EF_USER_AUTH_CA_CERT, EF_USER_AUTH_CERT, EF_USER_AUTH_KEY,
    EF_USER_AUTH_PIN, INS_CHANGE_REFERENCE_DATA, INS_COMPUTE_DIGITAL_SIGNATURE, INS_READ_BINARY,
    INS_SELECT, INS_VERIFY, JPKI_AID, KENHOJO_AID, KENKAKU_AID, P2_CURRENT_EF, SELECT_BY_DF_NAME,
    SELECT_EF_UNDER_DF, SELECT_FCI, SELECT_NO_RESPONSE_DATA, SFI_FLAG, SIGN_PASSWORD_MAX_TRIES,
    USER_AUTH_PIN_MAX_TRIES,
};
use onshi_jpki::Pin;
use rsa::traits::PublicKeyParts;
use rsa::{Pkcs1v15Sign, RsaPrivateKey};
use zeroize::Zeroizing;

use crate::contents::{is_valid_sign_password, CardBuildError, CardContents};
use crate::profile::{CardState, ProfileError};
use crate::surface::{basic_four_facts, my_number_file};

/// Size of the certificate EFs.
pub const CERTIFICATE_EF_SIZE: usize = 0x800;
/// Larger content is rounded up to a multiple of this.
const EF_SIZE_STEP: usize = 256;
/// READ BINARY offsets have 15 bits.
const MAX_EF_SIZE: usize = 0x8000;
/// Longest VERIFY data the card looks at; longer is a malformed command, not a wrong PIN.
const MAX_PIN_DATA: usize = 16;
/// PKCS#1 v1.5 type-1 padding needs 11 bytes of the modulus.
const PKCS1_OVERHEAD: usize = 11;
/// Token info label (jpki-card.md §2), space-padded to 32 bytes, in a 160-byte EF.
pub const TOKEN_LABEL: &str = "JPKIAPICCTOKEN2";
const TOKEN_INFO_LEN: usize = 160;
/// Retry limits of the Kenhojo PIN and the Kenkaku keys.
pub const KENHOJO_PIN_MAX_TRIES: u8 = 3;
pub const KENKAKU_PIN_MAX_TRIES: u8 = 10;

const SW_WRONG_DATA: StatusWord = StatusWord::from_bytes(0x6A, 0x80);
const SW_CONDITIONS_NOT_SATISFIED: StatusWord = StatusWord::from_bytes(0x69, 0x85);

/// Saves the card's mutable state (retry counters, changed PINs). Called before the
/// response that reports a change is returned; an error makes the card answer `6581`.
pub type PersistHook = Box<dyn FnMut(CardState) -> Result<(), ProfileError> + Send>;

/// A hook that keeps nothing: for cards whose counter need not outlive the process.
pub fn no_persistence() -> PersistHook {
    Box::new(|_| Ok(()))
}

/// The card's applications.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum App {
    Jpki,
    Kenhojo,
    Kenkaku,
}

/// The card's PINs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PinRef {
    UserAuth,
    SignPassword,
    Kenhojo,
    KenkakuBirth,
    KenkakuNumberB,
    /// Kenhojo `0014`, 照合番号A: the My Number.
    KenhojoNumberA,
    /// Kenhojo `0015`, 照合番号B.
    KenhojoNumberB,
    /// Kenkaku `0013`, 照合番号A: the My Number.
    KenkakuNumberA,
    /// Kenhojo `0012`: blocked on every card examined (no value, 63C0 / 6984).
    KenhojoBlocked,
}

impl PinRef {
    fn max_tries(self) -> u8 {
        match self {
            PinRef::UserAuth => USER_AUTH_PIN_MAX_TRIES,
            PinRef::SignPassword => SIGN_PASSWORD_MAX_TRIES,
            PinRef::Kenhojo => KENHOJO_PIN_MAX_TRIES,
            PinRef::KenkakuBirth
            | PinRef::KenkakuNumberB
            | PinRef::KenkakuNumberA
            | PinRef::KenhojoNumberA
            | PinRef::KenhojoNumberB
            | PinRef::KenhojoBlocked => KENKAKU_PIN_MAX_TRIES,
        }
    }

    fn bit(self) -> u16 {
        1 << (self as u8)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyRef {
    UserAuth,
    Sign,
}

/// Who may READ BINARY a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Free,
    /// After any of these PINs is verified.
    Pin(&'static [PinRef]),
}

/// What an EF is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    /// A transparent file: index into `VirtualCard::files`.
    Binary(usize, Access),
    Pin(PinRef),
    Key(KeyRef),
}

/// Where the card's file pointer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Selection {
    app: App,
    current_ef: Option<u16>,
}

/// What a card session holds; power-off and reset start a fresh one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Session {
    /// `None` after power-on or reset: the master file, no application.
    selection: Option<Selection>,
    /// One bit per [`PinRef`] verified in this session.
    verified: u16,
}

impl Session {
    const FRESH: Session = Session {
        selection: None,
        verified: 0,
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
    /// `(app, fid, node)` for every EF of the card.
    efs: Vec<(App, u16, Node)>,
    /// Transparent files as stored, indexed by [`Node::Binary`].
    files: Vec<Vec<u8>>,
    user_auth_key: RsaPrivateKey,
    sign_key: Option<RsaPrivateKey>,
    /// The PIN values from the profile; changed values live in `state`. `None`: a face-only
    /// card, whose user-authentication and Kenhojo PINs were never set.
    user_auth_pin: Option<Pin>,
    sign_password: Option<Zeroizing<Vec<u8>>>,
    kenhojo_pin: Option<Zeroizing<Vec<u8>>>,
    kenkaku_birth_key: Option<Zeroizing<Vec<u8>>>,
    kenkaku_number_b: Option<Zeroizing<Vec<u8>>>,
    /// 照合番号A of both card-face applications: the My Number (from Kenhojo's data).
    number_a: Option<Zeroizing<Vec<u8>>>,
    /// Simulator only: the raw face photo for `80 B0` in Kenkaku.
    face_export: Option<Vec<u8>>,
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

/// DER TLV with a definite length (short form, or `81`/`82` long form).
pub fn tlv(tag: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = tag.to_vec();
    match value.len() {
        n if n < 0x80 => out.push(n as u8),
        n if n < 0x100 => out.extend_from_slice(&[0x81, n as u8]),
        n => {
            let n = u16::try_from(n).unwrap_or(u16::MAX);
            out.push(0x82);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
    out.extend_from_slice(value);
    out
}

/// JPKI EF `0006`: the label space-padded to 32 bytes, then spaces to 160 bytes. What a real
/// card keeps after the label is not public; spaces are an assumption.
pub fn token_info() -> Vec<u8> {
    let mut info = TOKEN_LABEL.as_bytes().to_vec();
    info.resize(TOKEN_INFO_LEN, b' ');
    info
}

impl VirtualCard {
    /// Builds a powered-off card from its contents and the saved state; `persist` saves every
    /// change of the state. Retry counters above their maximum are clamped.
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
            signature,
            kenhojo,
            kenkaku,
        } = contents;
        let mut efs = Vec::new();
        let mut files = Vec::new();
        let mut add_file = |app: App, fid: u16, data: Vec<u8>, access: Access| {
            efs.push((app, fid, Node::Binary(files.len(), access)));
            files.push(data);
        };
        use App::{Jpki, Kenhojo, Kenkaku};
        add_file(
            Jpki,
            EF_USER_AUTH_CERT,
            stored_ef(&user_auth_certificate, "user-authentication certificate")?,
            Access::Free,
        );
        add_file(
            Jpki,
            EF_USER_AUTH_CA_CERT,
            stored_ef(
                &user_auth_ca_certificate,
                "user-authentication CA certificate",
            )?,
            Access::Free,
        );
        add_file(Jpki, EF_TOKEN_INFO, token_info(), Access::Free);
        let presence = if signature.is_some() {
            vec![0x8F, 0x8F, 0x00]
        } else {
            vec![0x00, 0x8F, 0x00]
        };
        add_file(Jpki, EF_CERT_PRESENCE, presence, Access::Free);
        let mut sign_key = None;
        let mut sign_password = None;
        if let Some(sig) = signature {
            add_file(
                Jpki,
                EF_SIGN_CERT,
                stored_ef(&sig.certificate, "signature certificate")?,
                Access::Pin(&[PinRef::SignPassword]),
            );
            add_file(
                Jpki,
                EF_SIGN_CA_CERT,
                stored_ef(&sig.ca_certificate, "signature CA certificate")?,
                Access::Free,
            );
            sign_key = Some(sig.key);
            sign_password = Some(sig.password);
        }
        let mut kenhojo_pin = None;
        let has_kenhojo = kenhojo.is_some();
        let number_a = kenhojo
            .as_ref()
            .map(|k| Zeroizing::new(k.my_number.as_bytes().to_vec()));
        if let Some(k) = kenhojo {
            add_file(
                Kenhojo,
                0x0001,
                my_number_file(&k.my_number),
                Access::Pin(&[PinRef::Kenhojo, PinRef::KenhojoNumberA]),
            );
            add_file(
                Kenhojo,
                0x0002,
                basic_four_facts(&k.name, &k.address, &k.birth_date, &k.sex),
                Access::Pin(&[PinRef::Kenhojo, PinRef::KenhojoNumberB]),
            );
            kenhojo_pin = k.pin;
        }
        let mut kenkaku_birth_key = None;
        let mut kenkaku_number_b = None;
        let mut face_export = None;
        if let Some(k) = kenkaku {
            let face = k.face.file();
            if face.len() > MAX_EF_SIZE {
                return Err(CardBuildError::FileTooLarge {
                    what: "card face",
                    len: face.len(),
                    max: MAX_EF_SIZE,
                });
            }
            add_file(
                Kenkaku,
                0x0002,
                face,
                Access::Pin(&[PinRef::KenkakuNumberB, PinRef::KenkakuNumberA]),
            );
            if k.simulator_face_export {
                face_export = Some(k.face.photo);
            }
            kenkaku_birth_key = Some(k.birth_date_key);
            kenkaku_number_b = Some(k.number_b);
        }
        efs.push((Jpki, EF_USER_AUTH_KEY, Node::Key(KeyRef::UserAuth)));
        efs.push((Jpki, EF_USER_AUTH_PIN, Node::Pin(PinRef::UserAuth)));
        efs.push((Jpki, EF_SIGN_PASSWORD, Node::Pin(PinRef::SignPassword)));
        if sign_key.is_some() {
            efs.push((Jpki, EF_SIGN_KEY, Node::Key(KeyRef::Sign)));
        }
        if has_kenhojo {
            efs.push((Kenhojo, 0x0011, Node::Pin(PinRef::Kenhojo)));
            efs.push((Kenhojo, 0x0012, Node::Pin(PinRef::KenhojoBlocked)));
            efs.push((Kenhojo, 0x0014, Node::Pin(PinRef::KenhojoNumberA)));
            efs.push((Kenhojo, 0x0015, Node::Pin(PinRef::KenhojoNumberB)));
        }
        if kenkaku_birth_key.is_some() {
            efs.push((Kenkaku, 0x0011, Node::Pin(PinRef::KenkakuBirth)));
            efs.push((Kenkaku, 0x0012, Node::Pin(PinRef::KenkakuNumberB)));
            efs.push((Kenkaku, 0x0013, Node::Pin(PinRef::KenkakuNumberA)));
        }
        let mut card = Self {
            name,
            atr,
            efs,
            files,
            user_auth_key,
            sign_key,
            user_auth_pin,
            sign_password,
            kenhojo_pin,
            kenkaku_birth_key,
            kenkaku_number_b,
            number_a,
            face_export,
            state,
            persist,
            session: Session::FRESH,
        };
        for pin in [
            PinRef::UserAuth,
            PinRef::SignPassword,
            PinRef::Kenhojo,
            PinRef::KenkakuBirth,
            PinRef::KenkakuNumberB,
            PinRef::KenhojoNumberA,
            PinRef::KenhojoNumberB,
            PinRef::KenkakuNumberA,
        ] {
            if card.tries(pin) > pin.max_tries() {
                card.set_tries(pin, pin.max_tries());
            }
        }
        Ok(card)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn atr(&self) -> &[u8] {
        &self.atr
    }

    /// Replaces the answer-to-reset (the wrong-ATR fault).
    pub fn set_atr(&mut self, atr: Vec<u8>) {
        self.atr = atr;
    }

    /// Replaces the content of the user-authentication certificate EF (the not-DER fault).
    pub fn set_user_auth_certificate_ef(&mut self, content: &[u8]) -> Result<(), CardBuildError> {
        let stored = stored_ef(content, "user-authentication certificate")?;
        if let Some(idx) = self.file_index(App::Jpki, EF_USER_AUTH_CERT) {
            if let Some(f) = self.files.get_mut(idx) {
                *f = stored;
            }
        }
        Ok(())
    }

    /// The persistent state as it stands (and as last saved).
    pub fn state(&self) -> CardState {
        self.state.clone()
    }

    /// Sets the user-authentication retry counter and saves it (the blocked-PIN fault).
    pub fn force_user_auth_tries(&mut self, tries_left: u8) -> Result<(), ProfileError> {
        let mut state = self.state.clone();
        state.user_auth_pin_tries_left = tries_left.min(USER_AUTH_PIN_MAX_TRIES);
        (self.persist)(state.clone())?;
        self.state = state;
        Ok(())
    }

    /// The card lost power: the session (selection, verified PINs) is gone.
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
            (CLA_ISO, INS_CHANGE_REFERENCE_DATA) => self.change_reference_data(command),
            (CLA_PROPRIETARY, INS_COMPUTE_DIGITAL_SIGNATURE) => self.compute_signature(command),
            (CLA_PROPRIETARY, INS_READ_BINARY) if self.face_export_active() => {
                self.read_face_export(command)
            }
            // A known instruction in the other class.
            (
                CLA_ISO | CLA_PROPRIETARY,
                INS_SELECT
                | INS_READ_BINARY
                | INS_VERIFY
                | INS_CHANGE_REFERENCE_DATA
                | INS_COMPUTE_DIGITAL_SIGNATURE,
            ) => Err(StatusWord::CLA_NOT_SUPPORTED),
            (CLA_ISO | CLA_PROPRIETARY, _) => Err(StatusWord::INS_NOT_SUPPORTED),
            _ => Err(StatusWord::CLA_NOT_SUPPORTED),
        };
        answer.unwrap_or_else(ResponseApdu::status)
    }

    fn has_app(&self, app: App) -> bool {
        self.efs.iter().any(|(a, _, _)| *a == app)
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
        let app = if aid == JPKI_AID {
            App::Jpki
        } else if aid == KENHOJO_AID {
            App::Kenhojo
        } else if aid == KENKAKU_AID {
            App::Kenkaku
        } else {
            // Every foreign AID a middleware probes: the card lacks them, and saying so keeps
            // other drivers from claiming it. A failed SELECT leaves the selection as it was.
            return Err(StatusWord::FILE_NOT_FOUND);
        };
        if !self.has_app(app) {
            return Err(StatusWord::FILE_NOT_FOUND);
        }
        if self.session.selection.map(|s| s.app) != Some(app) {
            // Entering an application drops the security state of the one left.
            self.session.verified = 0;
        }
        // With P2=00 the host may ask for FCI; this card returns none, which Le=00 allows.
        self.session.selection = Some(Selection {
            app,
            current_ef: None,
        });
        done()
    }

    fn node(&self, app: App, fid: u16) -> Option<Node> {
        self.efs
            .iter()
            .find(|(a, f, _)| *a == app && *f == fid)
            .map(|(_, _, n)| *n)
    }

    fn node_by_sfi(&self, app: App, short_id: u8) -> Option<(u16, Node)> {
        self.efs
            .iter()
            .find(|(a, f, _)| *a == app && sfi(*f) == short_id)
            .map(|(_, f, n)| (*f, *n))
    }

    fn file_index(&self, app: App, fid: u16) -> Option<usize> {
        match self.node(app, fid) {
            Some(Node::Binary(i, _)) => Some(i),
            _ => None,
        }
    }

    fn select_ef(&mut self, command: &CommandApdu) -> Answer {
        if !matches!(command.p2(), SELECT_NO_RESPONSE_DATA | SELECT_FCI) {
            return Err(StatusWord::INCORRECT_P1P2);
        }
        let &[hi, lo] = command.data() else {
            return Err(StatusWord::WRONG_LENGTH);
        };
        let fid = u16::from_be_bytes([hi, lo]);
        let Some(selection) = self.session.selection else {
            return Err(StatusWord::FILE_NOT_FOUND);
        };
        self.node(selection.app, fid)
            .ok_or(StatusWord::FILE_NOT_FOUND)?;
        self.session.selection = Some(Selection {
            app: selection.app,
            current_ef: Some(fid),
        });
        done()
    }

    fn read_binary(&mut self, command: &CommandApdu) -> Answer {
        if !command.data().is_empty() {
            return Err(StatusWord::WRONG_LENGTH);
        }
        let le = usize::from(command.le().ok_or(StatusWord::WRONG_LENGTH)?);
        let p1 = command.p1();
        let (node, offset) = if p1 & SFI_FLAG != 0 {
            // P1 = 100x xxxx: a short file id in the low five bits, a one-byte offset in P2.
            let short_id = p1 & 0x1F;
            if p1 & 0x60 != 0 || short_id == 0 {
                return Err(StatusWord::INCORRECT_P1P2);
            }
            let Some(selection) = self.session.selection else {
                return Err(StatusWord::FILE_NOT_FOUND);
            };
            let (fid, node) = self
                .node_by_sfi(selection.app, short_id)
                .ok_or(StatusWord::FILE_NOT_FOUND)?;
            // Reading by short id makes the file current for the reads that follow.
            self.session.selection = Some(Selection {
                app: selection.app,
                current_ef: Some(fid),
            });
            (node, usize::from(command.p2()))
        } else {
            let node = self.current_node()?;
            (node, usize::from(u16::from_be_bytes([p1, command.p2()])))
        };
        let Node::Binary(index, access) = node else {
            return Err(StatusWord::SECURITY_NOT_SATISFIED);
        };
        if let Access::Pin(pins) = access {
            if !pins.iter().any(|p| self.session.verified & p.bit() != 0) {
                return Err(StatusWord::SECURITY_NOT_SATISFIED);
            }
        }
        let file = self
            .files
            .get(index)
            .ok_or(StatusWord::NO_PRECISE_DIAGNOSIS)?;
        read_slice(file, offset, le)
    }

    fn face_export_active(&self) -> bool {
        self.face_export.is_some() && self.session.selection.map(|s| s.app) == Some(App::Kenkaku)
    }

    /// Simulator only (module docs): the raw face photo by offset, no PIN.
    fn read_face_export(&self, command: &CommandApdu) -> Answer {
        let le = usize::from(command.le().ok_or(StatusWord::WRONG_LENGTH)?);
        if !command.data().is_empty() || command.p1() & 0x80 != 0 {
            return Err(StatusWord::INCORRECT_P1P2);
        }
        let photo = self
            .face_export
            .as_deref()
            .ok_or(StatusWord::CLA_NOT_SUPPORTED)?;
        read_slice(
            photo,
            usize::from(u16::from_be_bytes([command.p1(), command.p2()])),
            le,
        )
    }

    /// The node of the current EF.
    fn current_node(&self) -> Result<Node, StatusWord> {
        let selection = self.session.selection.ok_or(StatusWord::NO_CURRENT_EF)?;
        let fid = selection.current_ef.ok_or(StatusWord::NO_CURRENT_EF)?;
        self.node(selection.app, fid)
            .ok_or(StatusWord::NO_CURRENT_EF)
    }

    /// The EF named by P2 of VERIFY, CHANGE REFERENCE DATA and COMPUTE DIGITAL SIGNATURE:
    /// `80` the current EF, `80|SFI` an EF of the application by short id.
    fn referenced_node(&self, p2: u8) -> Result<Node, StatusWord> {
        if !(P2_CURRENT_EF..=SFI_FLAG | 0x1E).contains(&p2) {
            return Err(StatusWord::INCORRECT_P1P2);
        }
        let Some(selection) = self.session.selection else {
            return Err(StatusWord::FILE_NOT_FOUND);
        };
        if p2 == P2_CURRENT_EF {
            self.current_node()
        } else {
            self.node_by_sfi(selection.app, p2 & 0x1F)
                .map(|(_, n)| n)
                .ok_or(StatusWord::FILE_NOT_FOUND)
        }
    }

    fn referenced_pin(&self, p2: u8) -> Result<PinRef, StatusWord> {
        match self.referenced_node(p2)? {
            Node::Pin(pin) => Ok(pin),
            _ => Err(StatusWord::COMMAND_INCOMPATIBLE),
        }
    }

    fn tries(&self, pin: PinRef) -> u8 {
        let s = &self.state;
        match pin {
            PinRef::UserAuth => s.user_auth_pin_tries_left,
            PinRef::SignPassword => s
                .sign_password_tries_left
                .unwrap_or(SIGN_PASSWORD_MAX_TRIES),
            PinRef::Kenhojo => s.kenhojo_pin_tries_left.unwrap_or(KENHOJO_PIN_MAX_TRIES),
            PinRef::KenkakuBirth => s
                .kenkaku_birth_key_tries_left
                .unwrap_or(KENKAKU_PIN_MAX_TRIES),
            PinRef::KenkakuNumberB => s
                .kenkaku_number_b_tries_left
                .unwrap_or(KENKAKU_PIN_MAX_TRIES),
            PinRef::KenhojoNumberA => s
                .kenhojo_number_a_tries_left
                .unwrap_or(KENKAKU_PIN_MAX_TRIES),
            PinRef::KenhojoNumberB => s
                .kenhojo_number_b_tries_left
                .unwrap_or(KENKAKU_PIN_MAX_TRIES),
            PinRef::KenkakuNumberA => s
                .kenkaku_number_a_tries_left
                .unwrap_or(KENKAKU_PIN_MAX_TRIES),
            PinRef::KenhojoBlocked => 0,
        }
    }

    fn set_tries(&mut self, pin: PinRef, n: u8) {
        set_tries_in(&mut self.state, pin, n);
    }

    /// Whether `candidate` is the current value of a PIN (a changed one from the state, else
    /// the profile's); `None` for a PIN the card has no value for (a signature password
    /// missing from the profile).
    fn pin_matches(&self, pin: PinRef, candidate: &[u8]) -> Option<bool> {
        let changed = match pin {
            PinRef::UserAuth => self.state.user_auth_pin.as_deref(),
            PinRef::SignPassword => self.state.sign_password.as_deref(),
            PinRef::Kenhojo => self.state.kenhojo_pin.as_deref(),
            _ => None,
        };
        let original = match pin {
            PinRef::UserAuth => {
                return match changed {
                    Some(c) => Some(constant_time_eq(c.as_bytes(), candidate)),
                    None => self.user_auth_pin.as_ref().map(|p| p.matches(candidate)),
                }
            }
            PinRef::SignPassword => self.sign_password.as_deref(),
            PinRef::Kenhojo => self.kenhojo_pin.as_deref(),
            PinRef::KenkakuBirth => self.kenkaku_birth_key.as_deref(),
            PinRef::KenkakuNumberB | PinRef::KenhojoNumberB => self.kenkaku_number_b.as_deref(),
            PinRef::KenhojoNumberA | PinRef::KenkakuNumberA => self.number_a.as_deref(),
            PinRef::KenhojoBlocked => None,
        }?;
        Some(constant_time_eq(
            changed.map_or(original.as_slice(), str::as_bytes),
            candidate,
        ))
    }

    /// The length of a PIN's current value (CHANGE REFERENCE DATA with P1=`00` splits its
    /// data there).
    fn pin_len(&self, pin: PinRef) -> Option<usize> {
        let changed = match pin {
            PinRef::UserAuth => self.state.user_auth_pin.as_deref(),
            PinRef::SignPassword => self.state.sign_password.as_deref(),
            PinRef::Kenhojo => self.state.kenhojo_pin.as_deref(),
            _ => None,
        };
        if let Some(c) = changed {
            return Some(c.len());
        }
        match pin {
            PinRef::UserAuth => self.user_auth_pin.as_ref().map(|_| 4),
            PinRef::SignPassword => self.sign_password.as_ref().map(|p| p.len()),
            PinRef::Kenhojo => self.kenhojo_pin.as_ref().map(|p| p.len()),
            PinRef::KenkakuBirth => self.kenkaku_birth_key.as_ref().map(|p| p.len()),
            PinRef::KenkakuNumberB | PinRef::KenhojoNumberB => {
                self.kenkaku_number_b.as_ref().map(|p| p.len())
            }
            PinRef::KenhojoNumberA | PinRef::KenkakuNumberA => {
                self.number_a.as_ref().map(|p| p.len())
            }
            PinRef::KenhojoBlocked => None,
        }
    }

    fn verify(&mut self, command: &CommandApdu) -> Answer {
        if command.p1() != 0x00 {
            return Err(StatusWord::INCORRECT_P1P2);
        }
        let pin = self.referenced_pin(command.p2())?;
        self.check_pin(pin, command.data())
    }

    /// A PIN this card was issued without: a face-only card's user-authentication and Kenhojo
    /// PINs. Unlike a value that is merely absent (presented as blocked, `63C0` / `6984`, for
    /// OpenSC's sake), such a PIN answers `6984` to every VERIFY, the empty one included, so a
    /// host can tell before sending any secret that there is no PIN to ask for.
    fn never_set(&self, pin: PinRef) -> bool {
        self.user_auth_pin.is_none() && matches!(pin, PinRef::UserAuth | PinRef::Kenhojo)
    }

    /// VERIFY of one PIN (module docs).
    fn check_pin(&mut self, pin: PinRef, candidate: &[u8]) -> Answer {
        if self.never_set(pin) {
            return Err(StatusWord::PIN_BLOCKED);
        }
        if self.pin_len(pin).is_none() {
            // No value: presented as blocked.
            return Err(if candidate.is_empty() {
                StatusWord::wrong_pin(0)
            } else {
                StatusWord::PIN_BLOCKED
            });
        };
        let tries_left = self.tries(pin);
        if candidate.is_empty() {
            // The retry-counter query: always 63Cx, never 6984 (blocked) nor 9000 (verified).
            return Err(StatusWord::wrong_pin(tries_left));
        }
        if candidate.len() > MAX_PIN_DATA {
            return Err(StatusWord::WRONG_LENGTH);
        }
        if tries_left == 0 {
            return Err(StatusWord::PIN_BLOCKED);
        }
        if self.pin_matches(pin, candidate) == Some(true) {
            if tries_left != pin.max_tries() {
                let mut restored = self.state.clone();
                set_tries_in(&mut restored, pin, pin.max_tries());
                // Only a saved reset counts: otherwise the card would forget it on restart
                // while having told the host the PIN was fine.
                self.save(restored.clone())?;
                self.state = restored;
            }
            self.session.verified |= pin.bit();
            done()
        } else {
            let left = tries_left - 1;
            // The attempt is spent even if saving fails: never hand a try back.
            self.set_tries(pin, left);
            self.session.verified &= !pin.bit();
            self.save(self.state.clone())?;
            Err(StatusWord::wrong_pin(left))
        }
    }

    fn change_reference_data(&mut self, command: &CommandApdu) -> Answer {
        let pin = self.referenced_pin(command.p2())?;
        if self.never_set(pin) {
            // Switching to a card with PINs is done at the municipal office, not by a host.
            return Err(StatusWord::PIN_BLOCKED);
        }
        let data = command.data();
        let new: &[u8] = match command.p1() {
            0x01 => {
                if self.session.verified & pin.bit() == 0 {
                    return Err(StatusWord::SECURITY_NOT_SATISFIED);
                }
                data
            }
            0x00 => {
                let old_len = self.pin_len(pin).unwrap_or(0);
                if old_len == 0 || data.len() <= old_len {
                    return Err(StatusWord::WRONG_LENGTH);
                }
                let (old, new) = data.split_at(old_len);
                self.check_pin(pin, old)?;
                new
            }
            _ => return Err(StatusWord::INCORRECT_P1P2),
        };
        let valid = match pin {
            PinRef::UserAuth | PinRef::Kenhojo => {
                new.len() == 4 && new.iter().all(u8::is_ascii_digit)
            }
            PinRef::SignPassword => is_valid_sign_password(new),
            _ => return Err(SW_CONDITIONS_NOT_SATISFIED),
        };
        if !valid {
            return Err(SW_WRONG_DATA);
        }
        let new = String::from_utf8_lossy(new).into_owned();
        let mut changed = self.state.clone();
        match pin {
            PinRef::UserAuth => changed.user_auth_pin = Some(new),
            PinRef::SignPassword => changed.sign_password = Some(new),
            PinRef::Kenhojo => changed.kenhojo_pin = Some(new),
            _ => {}
        }
        self.save(changed.clone())?;
        self.state = changed;
        done()
    }

    fn compute_signature(&mut self, command: &CommandApdu) -> Answer {
        if command.p1() != 0x00 {
            return Err(StatusWord::INCORRECT_P1P2);
        }
        let Node::Key(key_ref) = self.referenced_node(command.p2())? else {
            return Err(StatusWord::COMMAND_INCOMPATIBLE);
        };
        let (key, guard) = match key_ref {
            KeyRef::UserAuth => (&self.user_auth_key, PinRef::UserAuth),
            KeyRef::Sign => (
                self.sign_key.as_ref().ok_or(StatusWord::FILE_NOT_FOUND)?,
                PinRef::SignPassword,
            ),
        };
        let modulus_len = key.size();
        let data = command.data();
        if data.is_empty() || data.len() + PKCS1_OVERHEAD > modulus_len {
            return Err(StatusWord::WRONG_LENGTH);
        }
        if command.le().is_some_and(|le| usize::from(le) < modulus_len) {
            return Err(StatusWord::WRONG_LENGTH);
        }
        if self.session.verified & guard.bit() == 0 {
            return Err(StatusWord::SECURITY_NOT_SATISFIED);
        }
        // P1=00: PKCS#1 v1.5 type-1 padding over the data exactly as given (the host sends a
        // DigestInfo), so no hash prefix is added here.
        let signature = key
            .sign(Pkcs1v15Sign::new_unprefixed(), data)
            .map_err(|_| StatusWord::NO_PRECISE_DIAGNOSIS)?;
        Ok(ResponseApdu::new(signature, StatusWord::SUCCESS))
    }

    fn save(&mut self, state: CardState) -> Result<(), StatusWord> {
        (self.persist)(state).map_err(|error| {
            tracing::error!(card = %self.name, %error, "cannot save the card's state");
            StatusWord::MEMORY_FAILURE
        })
    }
}

fn set_tries_in(s: &mut CardState, pin: PinRef, n: u8) {
    match pin {
        PinRef::UserAuth => s.user_auth_pin_tries_left = n,
        PinRef::SignPassword => s.sign_password_tries_left = Some(n),
        PinRef::Kenhojo => s.kenhojo_pin_tries_left = Some(n),
        PinRef::KenkakuBirth => s.kenkaku_birth_key_tries_left = Some(n),
        PinRef::KenkakuNumberB => s.kenkaku_number_b_tries_left = Some(n),
        PinRef::KenhojoNumberA => s.kenhojo_number_a_tries_left = Some(n),
        PinRef::KenhojoNumberB => s.kenhojo_number_b_tries_left = Some(n),
        PinRef::KenkakuNumberA => s.kenkaku_number_a_tries_left = Some(n),
        PinRef::KenhojoBlocked => {}
    }
}

/// Compares without an early exit, so the time taken does not reveal how much was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// READ BINARY of `file` at `offset` for `le` bytes: past the end, what exists with `9000`
/// (not `6282`), as the real card does; at or past the end, `6B00`.
fn read_slice(file: &[u8], offset: usize, le: usize) -> Answer {
    if offset >= file.len() {
        return Err(StatusWord::OFFSET_OUTSIDE);
    }
    let end = file.len().min(offset + le);
    let data = file.get(offset..end).ok_or(StatusWord::OFFSET_OUTSIDE)?;
    Ok(ResponseApdu::new(data.to_vec(), StatusWord::SUCCESS))
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
            user_auth_pin: Some(Pin::new(PIN).unwrap()),
            signature: None,
            kenhojo: None,
            kenkaku: None,
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
            "00A4020C020006",
            "00A4020C020008",
            "00A4020C02001B",
        ] {
            assert_eq!(sw(&mut c, ef), "9000", "{ef}");
        }
        // Without a signature certificate in the profile: no 0001, 0002, 001A.
        for missing in ["0001", "0002", "001A", "3F00", "FFFF"] {
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
        let (mut c, saved) = card_with(CardState::with_tries(1), fake_certificate(1230, 0xC0));
        sw(&mut c, SELECT_JPKI);
        sw(&mut c, SELECT_0018);
        assert_eq!(sw(&mut c, EMPTY_VERIFY), "63C1");
        assert_eq!(sw(&mut c, VERIFY_RIGHT), "9000");
        assert_eq!(
            saved.lock().unwrap().as_slice(),
            &[CardState::with_tries(3)]
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
            user_auth_pin: Some(Pin::new(PIN).unwrap()),
            signature: None,
            kenhojo: None,
            kenkaku: None,
        };
        let failing: PersistHook = Box::new(|_| {
            Err(ProfileError::Invalid {
                path: "/nonexistent".into(),
                reason: "disk full".into(),
            })
        });
        let mut c = VirtualCard::new(contents, CardState::with_tries(2), failing).unwrap();
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
        let (c, _) = card_with(CardState::with_tries(9), fake_certificate(10, 1));
        assert_eq!(c.state().user_auth_pin_tries_left, 3);
    }

    /// Random bytes, and random commands built from the card's own vocabulary, never panic,
    /// and every answer ends in a status word.
    #[test]
    fn never_panics() {
        let (mut plain, _) = card();
        fuzz(&mut plain);
        let (mut full, _) = full_card(true);
        fuzz(&mut full);
    }

    fn fuzz(c: &mut VirtualCard) {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let clas = [0x00, 0x80, 0x0C, 0xFF];
        let inss = [0xA4, 0xB0, 0x20, 0x24, 0x2A, 0xCA, 0x00];
        let apps = [JPKI_AID, KENHOJO_AID, KENKAKU_AID];
        let efs: [u16; 9] = [0x01, 0x02, 0x06, 0x08, 0x0A, 0x11, 0x12, 0x17, 0x1B];
        for i in 0..40_000 {
            let r = next();
            // Now and then, a well-formed SELECT so every application and EF gets fuzzed.
            if i % 25 == 0 {
                let mut sel = vec![0x00, 0xA4, 0x04, 0x0C, 0x0A];
                sel.extend_from_slice(&apps[(r % 3) as usize]);
                c.process(&sel);
                let fid = efs[((r >> 8) % 9) as usize];
                c.process(&[0x00, 0xA4, 0x02, 0x0C, 0x02, 0x00, fid as u8]);
            }
            let apdu: Vec<u8> = if i % 2 == 0 {
                let len = (r % 300) as usize;
                (0..len).map(|_| next() as u8).collect()
            } else {
                let lc = (next() % 40) as usize;
                let mut a = vec![
                    clas[(r % 4) as usize],
                    inss[((r >> 8) % 7) as usize],
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

    fn full_card(face_export: bool) -> (VirtualCard, Saved) {
        card_of_kind(face_export, false)
    }

    /// Every application; `face_only`: issued without PINs and without the signature half.
    fn card_of_kind(face_export: bool, face_only: bool) -> (VirtualCard, Saved) {
        use crate::contents::{KenhojoContents, KenkakuContents, SignatureContents};
        let saved: Saved = Arc::default();
        let sink = saved.clone();
        let contents = CardContents {
            name: "card-full".into(),
            atr: vec![0x3B, 0xE0, 0x00, 0xFF, 0x81, 0x31, 0xFE, 0x45, 0x14],
            user_auth_certificate: fake_certificate(1230, 0xC0),
            user_auth_ca_certificate: fake_certificate(900, 0xCA),
            user_auth_key: test_key().clone(),
            user_auth_pin: (!face_only).then(|| Pin::new(PIN).unwrap()),
            signature: (!face_only).then(|| SignatureContents {
                certificate: fake_certificate(1500, 0x51),
                ca_certificate: fake_certificate(950, 0x52),
                key: test_key().clone(),
                password: Zeroizing::new(b"SIGN2024".to_vec()),
            }),
            kenhojo: Some(KenhojoContents {
                pin: (!face_only).then(|| Zeroizing::new(PIN.as_bytes().to_vec())),
                my_number: "123456789018".into(),
                name: "山田\u{3000}太郎".into(),
                address: "東京都千代田区千代田1-1".into(),
                birth_date: "19800102".into(),
                sex: "1".into(),
            }),
            kenkaku: Some(KenkakuContents {
                birth_date_key: Zeroizing::new(b"550102".to_vec()),
                number_b: Zeroizing::new(b"55010220341234".to_vec()),
                face: crate::surface::tests::sample_face(),
                simulator_face_export: face_export,
            }),
        };
        let persist: PersistHook = Box::new(move |s| {
            sink.lock().unwrap().push(s);
            Ok(())
        });
        (
            VirtualCard::new(contents, CardState::default(), persist).unwrap(),
            saved,
        )
    }

    /// Reads a whole EF in 255-byte chunks until 6B00 or a short read.
    fn read_all(c: &mut VirtualCard) -> (Vec<u8>, String) {
        let mut out = Vec::new();
        for _ in 0..200 {
            let r = c.process(&[0x00, 0xB0, (out.len() >> 8) as u8, out.len() as u8, 0xFF]);
            let (data, sw) = r.split_at(r.len() - 2);
            if sw != [0x90, 0x00] {
                return (out, hex::encode_upper(sw));
            }
            out.extend_from_slice(data);
            if data.len() < 255 {
                break;
            }
        }
        (out, "9000".into())
    }

    #[test]
    fn token_info_and_certificate_presence() {
        let (mut c, _) = full_card(false);
        sw(&mut c, SELECT_JPKI);
        sw(&mut c, "00A4020C020006");
        let (info, _) = read_all(&mut c);
        assert_eq!(info.len(), 160);
        assert_eq!(&info[..32], format!("{:<32}", "JPKIAPICCTOKEN2").as_bytes());
        sw(&mut c, "00A4020C020008");
        assert_eq!(send(&mut c, "00B0000000"), "8F8F009000");
        let (mut plain, _) = card();
        sw(&mut plain, SELECT_JPKI);
        sw(&mut plain, "00A4020C020008");
        assert_eq!(send(&mut plain, "00B0000000"), "008F009000");
    }

    #[test]
    fn signature_certificate_needs_the_password_which_has_five_tries() {
        let (mut c, saved) = full_card(false);
        sw(&mut c, SELECT_JPKI);
        // The CA certificate is free, the certificate is not.
        sw(&mut c, "00A4020C020002");
        assert_eq!(send(&mut c, "00B0000004"), "308203B69000");
        sw(&mut c, "00A4020C020001");
        assert_eq!(sw(&mut c, "00B0000004"), "6982");
        sw(&mut c, "00A4020C02001B");
        assert_eq!(sw(&mut c, EMPTY_VERIFY), "63C5");
        assert_eq!(sw(&mut c, "0020008006414243313233"), "63C4"); // ABC123
        assert_eq!(
            saved
                .lock()
                .unwrap()
                .last()
                .unwrap()
                .sign_password_tries_left,
            Some(4)
        );
        // The user-authentication PIN does not open the signature certificate.
        assert_eq!(sw(&mut c, "002000980434373239"), "9000");
        sw(&mut c, "00A4020C020001");
        assert_eq!(sw(&mut c, "00B0000004"), "6982");
        assert_eq!(sw(&mut c, "00200080085349474E32303234"), "6981"); // 0001 is no PIN
        assert_eq!(sw(&mut c, "0020009B085349474E32303234"), "9000"); // SIGN2024
        assert_eq!(send(&mut c, "00B0000004"), "308205DC9000");
        assert_eq!(c.state().sign_password_tries_left, Some(5));
        // The signature key signs after the password; by SFI 1A.
        let di = binding_digest_info(b"sig");
        let r =
            c.process(&hex::decode(sign_apdu(&di).replacen("802A0080", "802A009A", 1)).unwrap());
        assert_eq!(r.len(), 258);
        // Five wrong passwords block it.
        for left in (0..5).rev() {
            assert_eq!(sw(&mut c, "0020009B06414243313233"), format!("63C{left}"));
        }
        assert_eq!(sw(&mut c, "0020009B085349474E32303234"), "6984");
        assert_eq!(sw(&mut c, "0020009B"), "63C0");
    }

    #[test]
    fn change_reference_data_changes_the_pin_and_persists_it() {
        let (mut c, saved) = card();
        sw(&mut c, SELECT_JPKI);
        sw(&mut c, SELECT_0018);
        // Without VERIFY first: refused, nothing spent.
        assert_eq!(sw(&mut c, "002401800431323334"), "6982");
        assert_eq!(sw(&mut c, VERIFY_RIGHT), "9000");
        // Not four digits: 6A80.
        assert_eq!(sw(&mut c, "00240180043132333A"), "6A80");
        assert_eq!(sw(&mut c, "0024018003313233"), "6A80");
        assert_eq!(sw(&mut c, "002401800431323334"), "9000"); // 1234
        assert_eq!(
            saved
                .lock()
                .unwrap()
                .last()
                .unwrap()
                .user_auth_pin
                .as_deref(),
            Some("1234")
        );
        c.reset();
        sw(&mut c, SELECT_JPKI);
        sw(&mut c, SELECT_0018);
        assert_eq!(sw(&mut c, VERIFY_RIGHT), "63C2"); // the old PIN is wrong now
        assert_eq!(sw(&mut c, "002000800431323334"), "9000");
        // P1=00: old and new in one command; a wrong old one costs a try.
        assert_eq!(sw(&mut c, "002400800430303030"), "6700"); // no new value
        assert_eq!(sw(&mut c, "00240080083030303034343434"), "63C2");
        assert_eq!(sw(&mut c, "00240080083132333434373239"), "9000");
        assert_eq!(sw(&mut c, VERIFY_RIGHT), "9000");
        // The state's Debug never shows the PIN.
        assert!(!format!("{:?}", c.state()).contains("4729"));
        // Bad P1.
        assert_eq!(sw(&mut c, "002402800431323334"), "6A86");
    }

    #[test]
    fn kenhojo_my_number_and_basic_four_facts() {
        let (mut c, _) = full_card(false);
        let kenhojo = format!("00A4040C0A{}", hex::encode(KENHOJO_AID));
        assert_eq!(sw(&mut c, &kenhojo), "9000");
        // JPKI EFs are not in Kenhojo.
        assert_eq!(sw(&mut c, SELECT_000A), "6A82");
        sw(&mut c, "00A4020C020001");
        assert_eq!(sw(&mut c, "00B0000000"), "6982");
        sw(&mut c, "00A4020C020011");
        assert_eq!(sw(&mut c, EMPTY_VERIFY), "63C3");
        assert_eq!(sw(&mut c, VERIFY_WRONG), "63C2");
        assert_eq!(sw(&mut c, VERIFY_RIGHT), "9000");
        sw(&mut c, "00A4020C020001");
        let mut expected = crate::surface::my_number_file("123456789018");
        expected.extend_from_slice(&[0x90, 0x00]);
        assert_eq!(c.process(&hex::decode("00B0000000").unwrap()), expected);
        sw(&mut c, "00A4020C020002");
        let (facts, _) = read_all(&mut c);
        let objects =
            crate::surface::tests::walk(&facts, 0xFF20, &[0xDF22, 0xDF23, 0xDF24, 0xDF25]);
        let expected_values: [&[u8]; 4] = [
            "山田\u{3000}太郎".as_bytes(),
            "東京都千代田区千代田1-1".as_bytes(),
            b"19800102",
            b"1",
        ];
        for (i, (_, value)) in objects.iter().enumerate() {
            assert_eq!(value.as_slice(), expected_values[i]);
        }
        // Selecting JPKI drops the Kenhojo verification.
        sw(&mut c, SELECT_JPKI);
        sw(&mut c, &kenhojo);
        sw(&mut c, "00A4020C020001");
        assert_eq!(sw(&mut c, "00B0000000"), "6982");
        // Applications missing from a profile are refused.
        let (mut plain, _) = card();
        assert_eq!(sw(&mut plain, &kenhojo), "6A82");
    }

    /// A face-only card: the certificate is free as on any card, every VERIFY of the PINs it
    /// was issued without answers 6984 (the empty one first of all, before any secret), the
    /// key refuses to sign (6982), nothing can set a PIN, and nothing is ever saved; the
    /// card-face applications still open with the numbers printed on the card.
    #[test]
    fn a_face_only_card_has_no_pin_to_verify_and_signs_nothing() {
        let (mut c, saved) = card_of_kind(false, true);
        sw(&mut c, SELECT_JPKI);
        sw(&mut c, SELECT_000A);
        assert_eq!(send(&mut c, "00B0000004").len(), 12);
        sw(&mut c, "00A4020C020008");
        assert_eq!(send(&mut c, "00B0000000"), "008F009000");
        sw(&mut c, SELECT_0018);
        assert_eq!(sw(&mut c, EMPTY_VERIFY), "6984");
        assert_eq!(sw(&mut c, VERIFY_RIGHT), "6984");
        assert_eq!(sw(&mut c, VERIFY_WRONG), "6984");
        assert_eq!(sw(&mut c, "0020009800"), "6984"); // by SFI, empty
        assert_eq!(sw(&mut c, "002000980434373239"), "6984");
        assert_eq!(sw(&mut c, "002401800431323334"), "6984");
        assert_eq!(sw(&mut c, "00240080083437323931323334"), "6984");
        sw(&mut c, SELECT_0017);
        assert_eq!(sw(&mut c, &sign_apdu(&binding_digest_info(b"x"))), "6982");
        // The signature half is absent: its password is presented as blocked (63C0), its
        // key and certificate are not there.
        sw(&mut c, "00A4020C02001B");
        assert_eq!(sw(&mut c, EMPTY_VERIFY), "63C0");
        assert_eq!(sw(&mut c, "00A4020C020001"), "6A82");
        assert_eq!(sw(&mut c, "00A4020C02001A"), "6A82");
        // Kenhojo: no PIN either, but 照合番号A opens the My Number.
        let kenhojo = format!("00A4040C0A{}", hex::encode(KENHOJO_AID));
        sw(&mut c, &kenhojo);
        sw(&mut c, "00A4020C020011");
        assert_eq!(sw(&mut c, EMPTY_VERIFY), "6984");
        assert_eq!(sw(&mut c, VERIFY_RIGHT), "6984");
        sw(&mut c, "00A4020C020014");
        assert_eq!(sw(&mut c, "002000800C313233343536373839303138"), "9000");
        sw(&mut c, "00A4020C020001");
        assert_eq!(sw(&mut c, "00B0000000"), "9000");
        // Kenkaku: 照合番号B opens the card face.
        let kenkaku = format!("00A4040C0A{}", hex::encode(KENKAKU_AID));
        sw(&mut c, &kenkaku);
        sw(&mut c, "00A4020C020012");
        assert_eq!(sw(&mut c, "002000800E3535303130323230333431323334"), "9000");
        sw(&mut c, "00A4020C020002");
        assert_eq!(sw(&mut c, "00B0000000"), "9000");
        assert!(saved.lock().unwrap().is_empty(), "nothing to save");
        // The same commands on a card issued with PINs: 63C3 and a signature.
        let (mut d, _) = card_of_kind(false, false);
        sw(&mut d, SELECT_JPKI);
        sw(&mut d, SELECT_0018);
        assert_eq!(sw(&mut d, EMPTY_VERIFY), "63C3");
    }

    #[test]
    fn kenhojo_numbers_a_and_b_each_open_one_file_and_0012_is_blocked() {
        let (mut c, _) = full_card(false);
        let kenhojo = format!("00A4040C0A{}", hex::encode(KENHOJO_AID));
        sw(&mut c, &kenhojo);
        // 0012: blocked as issued, whatever is sent.
        sw(&mut c, "00A4020C020012");
        assert_eq!(sw(&mut c, EMPTY_VERIFY), "63C0");
        assert_eq!(sw(&mut c, VERIFY_RIGHT), "6984");
        // 照合番号A (0014): the My Number; opens EF 0001, not 0002.
        sw(&mut c, "00A4020C020014");
        assert_eq!(sw(&mut c, EMPTY_VERIFY), "63CA");
        assert_eq!(sw(&mut c, "002000800C313233343536373839303138"), "9000");
        sw(&mut c, "00A4020C020001");
        assert_eq!(sw(&mut c, "00B0000000"), "9000");
        sw(&mut c, "00A4020C020002");
        assert_eq!(sw(&mut c, "00B0000000"), "6982");
        // 照合番号B (0015): opens EF 0002, not 0001.
        c.reset();
        sw(&mut c, &kenhojo);
        sw(&mut c, "00A4020C020015");
        assert_eq!(sw(&mut c, "002000800E3535303130323230333431323335"), "63C9");
        assert_eq!(sw(&mut c, "002000800E3535303130323230333431323334"), "9000");
        sw(&mut c, "00A4020C020002");
        assert_eq!(sw(&mut c, "00B0000000"), "9000");
        sw(&mut c, "00A4020C020001");
        assert_eq!(sw(&mut c, "00B0000000"), "6982");
        // Ten wrong 照合番号B block it: 63C0 on the last, then 6984.
        for left in (0..10).rev() {
            assert_eq!(
                sw(&mut c, "002000950E3535303130323230333431323335"),
                format!("63C{left:X}")
            );
        }
        assert_eq!(sw(&mut c, "002000950E3535303130323230333431323334"), "6984");
        assert_eq!(sw(&mut c, "0020009500"), "63C0");
    }

    #[test]
    fn kenkaku_card_face_and_the_simulator_only_face_path() {
        let face = crate::surface::tests::sample_face();
        let photo = &face.photo;
        let kenkaku = format!("00A4040C0A{}", hex::encode(KENKAKU_AID));
        let (mut c, _) = full_card(false);
        assert_eq!(sw(&mut c, &kenkaku), "9000");
        sw(&mut c, "00A4020C020002");
        assert_eq!(sw(&mut c, "00B0000000"), "6982");
        // The simulator-only read is refused like any unknown class without the flag.
        assert_eq!(sw(&mut c, "80B0000000"), "6E00");
        sw(&mut c, "00A4020C020012");
        assert_eq!(sw(&mut c, EMPTY_VERIFY), "63CA");
        assert_eq!(sw(&mut c, "002000800E3535303130323230333431323335"), "63C9");
        assert_eq!(sw(&mut c, "002000800E3535303130323230333431323334"), "9000");
        // 照合番号B cannot be changed.
        assert_eq!(sw(&mut c, "002401800E3535303130323230333431323335"), "6985");
        sw(&mut c, "00A4020C020002");
        let (file, _) = read_all(&mut c);
        assert_eq!(file, face.file());
        // The birth-date key does not open it (it opens only the age record, EF 0001).
        c.reset();
        sw(&mut c, &kenkaku);
        assert_eq!(sw(&mut c, "0020009106353530313232"), "63C9"); // 550122
        assert_eq!(sw(&mut c, "0020009106353530313032"), "9000"); // 550102
        sw(&mut c, "00A4020C020002");
        assert_eq!(sw(&mut c, "00B0000000"), "6982");
        // 照合番号A (the My Number, key 0013, by short id) opens it.
        assert_eq!(sw(&mut c, "0020009300"), "63CA");
        assert_eq!(sw(&mut c, "002000930C313233343536373839303137"), "63C9");
        assert_eq!(sw(&mut c, "002000930C313233343536373839303138"), "9000");
        sw(&mut c, "00A4020C020002");
        assert_eq!(sw(&mut c, "00B0000000"), "9000");

        let (mut c, _) = full_card(true);
        sw(&mut c, &kenkaku);
        let mut expected = photo[..256].to_vec();
        expected.extend_from_slice(&[0x90, 0x00]);
        assert_eq!(c.process(&hex::decode("80B0000000").unwrap()), expected);
        let mut expected = photo[256..].to_vec();
        expected.extend_from_slice(&[0x90, 0x00]);
        assert_eq!(c.process(&hex::decode("80B0010000").unwrap()), expected);
        assert_eq!(sw(&mut c, "80B0020000"), "6B00");
        // Only in Kenkaku.
        sw(&mut c, SELECT_JPKI);
        assert_eq!(sw(&mut c, "80B0000000"), "6E00");
    }
}
