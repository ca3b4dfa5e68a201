//! What the page shows, as the JSON the page and scripts read (`/api/state`, the event
//! stream, every action's answer): computed from the flow's [`State`](super::State) by
//! [`State::view`](super::State::view), never kept beside it.

use serde::Serialize;

/// What the page shows; serialised as the state the page and scripts read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KioskState {
    /// The card session's id: 128 random bits, hex; `null` before the first card. Every
    /// action names the session it is for, so an action meant for a pulled card never
    /// touches the next one, and an id cannot be guessed.
    pub session: Option<String>,
    #[serde(flatten)]
    pub screen: Screen,
    /// The staff member who switched on 目視確認, if it is on.
    pub visual_check_staff: Option<String>,
    /// The mobile device of a home visit or online care (`kiosk --mobile`): every
    /// confirmation is a 居宅同意取得型 first visit.
    pub mobile: bool,
    /// Why the last session ended early, shown on the start screen; or a note on the current
    /// screen.
    pub notice: Option<Notice>,
    /// The PC/SC service's trouble, if any.
    pub reader_error: Option<String>,
    /// The confirmation service is known to be unreachable (the outage path is on).
    pub outage: bool,
    /// The start screen offers 「スマートフォンで受付」 (the kiosk has a smartphone channel).
    pub phone: bool,
}

/// A note for the patient: why the last session ended early (start screen) or what just
/// happened (method choice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Notice {
    CardRemoved,
    TimedOut,
    FaceLocked,
    PinLocked,
    FaceUnavailable,
}

/// The certificate warning on a confirmation carried out, as the page shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CertificateWarning {
    /// The certificate expires within three months: renew it at the municipality.
    Expiring,
    /// Expired, in its grace period: eligibility confirmed, no data shared; renew it.
    InGrace,
}

impl CertificateWarning {
    /// The warning of an answer, if it carries one this version knows.
    pub fn of(result: &onshi_proto::v1::ConfirmationResult) -> Option<Self> {
        use onshi_proto::v1::Warning;
        match Warning::try_from(result.warning) {
            Ok(Warning::CertificateExpiring) => Some(Self::Expiring),
            Ok(Warning::CertificateInGrace) => Some(Self::InGrace),
            _ => None,
        }
    }
}

/// A timestamp's day in Japan, YYYY-MM-DD.
pub fn jst_day(t: &prost_types::Timestamp) -> Option<String> {
    let jst = time::UtcOffset::from_hms(9, 0, 0).ok()?;
    let d = time::OffsetDateTime::from_unix_timestamp(t.seconds)
        .ok()?
        .to_offset(jst)
        .date();
    Some(format!(
        "{:04}-{:02}-{:02}",
        d.year(),
        u8::from(d.month()),
        d.day()
    ))
}

/// What a busy screen is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    ReadingCard,
    /// Asking the phone held to the reader what it presents.
    ReadingPhone,
    /// 「スマートフォンで本人確認してください」: the iPhone's holder verifies on the phone.
    PhoneVerification,
    ReadingFace,
    VerifyingPin,
    Confirming,
    Registering,
    RecordingOutage,
}

/// Whether face authentication is offered for the card in the reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaceOffer {
    Available,
    /// Ten consecutive failures for this card.
    Locked,
    /// No face photo on the card, or no device key to attest the match.
    Unavailable,
}

/// What the PIN pad is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PinPadPurpose {
    Confirm,
    Register,
    /// The Android phone's PIN (スマホ用電子証明書), sent to the phone only.
    Phone,
}

/// How the holder was identified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Pin,
    Face,
    Visual,
    SmartphoneAndroid,
    SmartphoneIphone,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Pin => "pin",
            Method::Face => "face",
            Method::Visual => "visual",
            Method::SmartphoneAndroid => "smartphone-android",
            Method::SmartphoneIphone => "smartphone-iphone",
        }
    }
}

/// Why a session ended on the failure screen: a stable key the page translates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailReason {
    /// The service (or the card, for a locked PIN) refused.
    Refused,
    /// The service could not be asked, or answered something unusable.
    ServiceUnreachable,
    CardUnreadable,
    CardError,
    /// Neither the PIN nor the face is left, and staff have not switched on 目視確認.
    NoMethodLeft,
    NoPinOnCard,
    PinLocked,
    PinNotSet,
    TimedOut,
    Cancelled,
    /// The outage record could not be written (the store is full, or the disk failed).
    OutageNotRecorded,
}

/// One screen and what it needs.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "screen", rename_all = "snake_case")]
pub enum Screen {
    /// 「カードを置いてください」
    InsertCard,
    /// Busy.
    Working { task: Task },
    /// The mobile mode: 訪問診療・訪問看護 or オンライン診療, before the method choice.
    ChooseTreatment,
    ChooseMethod {
        face: FaceOffer,
        face_failures: u8,
        pin_tries_left: u8,
        /// `false`: the card has no PIN (a face-only card, 顔認証マイナンバーカード); the PIN
        /// pad is not offered at all.
        pin_set: bool,
        visual_check: bool,
    },
    /// The PIN pad.
    Pin {
        purpose: PinPadPurpose,
        tries_left: u8,
        wrong_pin: bool,
    },
    /// The camera.
    Face {
        failures: u8,
        max_failures: u8,
        threshold_permille: u16,
        last_score_permille: Option<u16>,
    },
    Consent {
        item: &'static str,
        index: u8,
        total: u8,
        /// 包括同意 (one tap for every kind) is offered: no single answer was given yet.
        comprehensive_offered: bool,
    },
    /// 電子処方箋: paper or electronic prescription.
    Prescription,
    OfferRegistration {
        /// `false`: the card has no PIN; it registers with the check that identified the
        /// holder (face or visual), attested by the reader.
        needs_pin: bool,
    },
    /// 「受付完了」
    Done {
        confirmation_id: String,
        validity: i32,
        validity_label: &'static str,
        method: Method,
        registered_now: bool,
        /// The answer's certificate warning (rules of 2024-12-02), if any.
        warning: Option<CertificateWarning>,
        /// With a warning: the day the certificate expires or expired, YYYY-MM-DD (JST).
        certificate_expiry: Option<String>,
        /// In grace: the last day eligibility is confirmed with it, YYYY-MM-DD (JST).
        grace_until: Option<String>,
        /// `electronic` or `paper`; `null` where the kiosk did not ask.
        prescription: Option<&'static str>,
        /// `home-visit` or `online` (a first visit at the mobile device); `null` for 外来.
        treatment: Option<&'static str>,
        /// A first visit: the last day of the re-query period, YYYY-MM-DD (JST).
        requery_until: Option<String>,
    },
    /// The outage path: the service cannot be reached; the patient declares the insurance
    /// card's numbers and birth date (資格申立書). No PIN.
    OutageDeclare { error: Option<String> },
    /// The visit is recorded on the terminal and will be confirmed when the service is back.
    OutageRecorded { waiting: usize },
    /// A clear failure; `result_code` is the service's or the reader's code when there is
    /// one.
    Failed {
        reason: FailReason,
        result_code: Option<String>,
        message: String,
    },
}

impl Screen {
    /// The screen's name as the page knows it.
    pub fn name(&self) -> &'static str {
        match self {
            Screen::InsertCard => "insert_card",
            Screen::Working { .. } => "working",
            Screen::ChooseTreatment => "choose_treatment",
            Screen::ChooseMethod { .. } => "choose_method",
            Screen::Pin { .. } => "pin",
            Screen::Face { .. } => "face",
            Screen::Consent { .. } => "consent",
            Screen::Prescription => "prescription",
            Screen::OfferRegistration { .. } => "offer_registration",
            Screen::Done { .. } => "done",
            Screen::OutageDeclare { .. } => "outage_declare",
            Screen::OutageRecorded { .. } => "outage_recorded",
            Screen::Failed { .. } => "failed",
        }
    }
}

/// Why an action was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionRefused {
    /// The action names a session that is not the card in the reader.
    StaleSession,
    /// The action belongs to another screen.
    WrongScreen,
    /// The method is not offered for this card.
    NotOffered,
    /// The kiosk's task has ended.
    Stopped,
}

/// Why an action was not taken, with the state it left.
#[derive(Debug, Clone, Serialize)]
pub struct ActionError {
    pub error: ActionRefused,
    pub message: String,
    pub state: KioskState,
}
