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
mod tests;
