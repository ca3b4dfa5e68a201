//! How every refusal reaches a client: the one place that maps a domain failure to the
//! project's result code and a gRPC status (architecture.md "How outcomes reach the client").
//!
//! A refused request answers a gRPC error whose details carry a `google.rpc.ErrorInfo` with
//! domain `onshi.v1` and reason = the result code's proto name, and whose metadata carries the
//! numeric code under `result-code`. Messages are for people; clients branch on the code.

use onshi_proto::v1::ResultCode;
use tonic::{Code, Status};

use crate::challenge::ChallengeError;
use crate::eligibility::{self, DomainError};
use crate::medical_aid;
use crate::validation::CertError;

/// Why a request was refused. Each variant maps to exactly one result code and gRPC code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("terminal unknown: {0}")]
    TerminalUnknown(String),
    #[error("terminal {0} is not in operation")]
    TerminalNotInOperation(String),
    #[error("terminal {0} is over its rate limit; retry in a moment")]
    RateLimited(String),
    #[error(transparent)]
    Challenge(#[from] ChallengeError),
    #[error("certificate refused ({reason}): {0}", reason = .0.reason())]
    Certificate(#[from] CertError),
    #[error("the card's signature over the challenge binding does not verify")]
    SignatureInvalid,
    /// Face or visual-check mode: the reader's attestation cannot be accepted (no device key
    /// registered for the terminal, a missing, malformed or wrong attestation, a face score
    /// below its threshold or a threshold below the service's minimum). The text says which.
    #[error("the reader's attestation is not accepted: {0}")]
    AttestationInvalid(String),
    /// A card's certificate presented as a smartphone's, or a smartphone's as a card's
    /// (the certificate chains to the other kind's CA).
    #[error("the certificate is of another credential kind than the request claims (card or smartphone)")]
    CredentialKindMismatch,
    #[error("the card is not linked to any person by the issuing authority")]
    CardUnknown,
    #[error("the card's holder has not registered the card for health-insurance use")]
    CardNotRegistered,
    /// A request field failed domain validation (check digits, lengths, dates, ...).
    #[error("invalid request: {0}")]
    Invalid(#[from] DomainError),
    /// An enum value this version does not know.
    #[error("unknown {what} value {value}")]
    UnknownEnum { what: &'static str, value: i32 },
    /// A field or request over its size limit.
    #[error("too large: {0}")]
    TooLarge(String),
    #[error("no patient matches the insurance-card numbers and birth date")]
    PatientUnknown,
    #[error("the patient has not consented to share {0} information with this institution")]
    ConsentMissing(&'static str),
    #[error("the patient's consent to share {0} information with this institution has expired")]
    ConsentExpired(&'static str),
    #[error("no batch with reception number {0} for this institution")]
    BatchUnknown(String),
    #[error("a batch holds 1 to {max} queries, got {got}")]
    BatchTooLarge { max: usize, got: usize },
    /// The institution's card-less look-ups of the last 24 hours reached its quota.
    #[error(
        "the institution's quota of {limit} card-less look-ups in 24 hours is used up; retry later"
    )]
    QuotaExceeded { limit: u32 },
    /// More different birth dates for the same insurance-card numbers than allowed in 24 hours.
    #[error(
        "more than {limit} different birth dates were asked for these insurance-card numbers \
         within 24 hours"
    )]
    TooManyBirthDates { limit: u32 },
    /// A query's as-of date outside the accepted window (docs/domain.md "As-of dates").
    #[error("{0}")]
    AsOfOutOfRange(String),
    /// A re-query (再照会) without a 居宅同意取得型 first visit of this person at this
    /// institution for the treatment (or numbers matching no single person).
    #[error("no 居宅同意取得型 consent of this patient to re-queries by this institution for this treatment")]
    RequeryNotConsented,
    /// A re-query after the re-query period's last day (YYYYMMDD).
    #[error("the re-query period ended on {0}: confirm with the card at a new first visit")]
    RequeryPeriodEnded(String),
    #[error("the service is unavailable: {0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(String),
}

impl From<crate::as_of::AsOfError> for Refusal {
    fn from(e: crate::as_of::AsOfError) -> Self {
        match e {
            crate::as_of::AsOfError::Format(e) => Refusal::Invalid(e),
            other => Refusal::AsOfOutOfRange(other.to_string()),
        }
    }
}

impl Refusal {
    /// What the audit log records as returned for this refusal.
    pub fn audit_summary(&self) -> String {
        serde_json::json!({ "refused": self.to_string() }).to_string()
    }

    /// What the log says of this refusal: a fixed name, never a value the request carried
    /// (a reception number with a newline would forge a log line; an insurance number or a
    /// birth date is a patient's data).
    pub fn log_reason(&self) -> &'static str {
        match self {
            Refusal::BadRequest(_) => "bad-request",
            Refusal::TerminalUnknown(_) => "terminal-unknown",
            Refusal::TerminalNotInOperation(_) => "terminal-not-in-operation",
            Refusal::RateLimited(_) => "rate-limited",
            Refusal::Challenge(e) => match e {
                ChallengeError::Unknown => "challenge-unknown",
                ChallengeError::Expired => "challenge-expired",
                ChallengeError::Reused => "challenge-reused",
                ChallengeError::OtherTerminal => "challenge-other-terminal",
                ChallengeError::WrongPurpose => "challenge-wrong-purpose",
                ChallengeError::Store(_) => "challenge-store",
            },
            Refusal::Certificate(e) => e.reason(),
            Refusal::SignatureInvalid => "signature-invalid",
            Refusal::AttestationInvalid(_) => "attestation-invalid",
            Refusal::CredentialKindMismatch => "credential-kind-mismatch",
            Refusal::CardUnknown => "card-unknown",
            Refusal::CardNotRegistered => "card-not-registered",
            Refusal::Invalid(_) => "invalid-field",
            Refusal::UnknownEnum { .. } => "unknown-enum",
            Refusal::TooLarge(_) => "too-large",
            Refusal::PatientUnknown => "patient-unknown",
            Refusal::ConsentMissing(_) => "consent-missing",
            Refusal::ConsentExpired(_) => "consent-expired",
            Refusal::BatchUnknown(_) => "batch-unknown",
            Refusal::BatchTooLarge { .. } => "batch-too-large",
            Refusal::QuotaExceeded { .. } => "quota-exceeded",
            Refusal::TooManyBirthDates { .. } => "too-many-birth-dates",
            Refusal::AsOfOutOfRange(_) => "as-of-out-of-range",
            Refusal::RequeryNotConsented => "requery-not-consented",
            Refusal::RequeryPeriodEnded(_) => "requery-period-ended",
            Refusal::Unavailable(_) => "unavailable",
            Refusal::Internal(_) => "internal",
        }
    }

    /// The project's result code for this refusal.
    pub fn result_code(&self) -> ResultCode {
        match self {
            Refusal::BadRequest(_) => ResultCode::BadRequest,
            Refusal::Invalid(e) => invalid_code(e),
            Refusal::UnknownEnum { .. } => ResultCode::UnknownEnumValue,
            Refusal::TooLarge(_) => ResultCode::FieldTooLong,
            Refusal::PatientUnknown => ResultCode::PatientUnknown,
            Refusal::ConsentMissing(_) => ResultCode::ConsentMissing,
            Refusal::ConsentExpired(_) => ResultCode::ConsentExpired,
            Refusal::BatchUnknown(_) => ResultCode::BatchUnknown,
            Refusal::BatchTooLarge { .. } => ResultCode::BatchTooLarge,
            Refusal::QuotaExceeded { .. } => ResultCode::QuotaExceeded,
            Refusal::TooManyBirthDates { .. } => ResultCode::TooManyBirthDates,
            Refusal::TerminalUnknown(_) => ResultCode::TerminalUnknown,
            Refusal::TerminalNotInOperation(_) => ResultCode::TerminalNotInOperation,
            Refusal::RateLimited(_) => ResultCode::RateLimited,
            Refusal::Challenge(e) => match e {
                ChallengeError::Unknown => ResultCode::ChallengeUnknown,
                ChallengeError::Expired => ResultCode::ChallengeExpired,
                ChallengeError::Reused => ResultCode::ChallengeReused,
                ChallengeError::OtherTerminal => ResultCode::ChallengeOtherTerminal,
                ChallengeError::WrongPurpose => ResultCode::ChallengeUnknown,
                ChallengeError::Store(_) => ResultCode::ServiceUnavailable,
            },
            Refusal::Certificate(e) => match e {
                CertError::Expired { .. } => ResultCode::CertificateExpired,
                CertError::NotYetValid { .. } => ResultCode::CertificateNotYetValid,
                CertError::Revoked { .. } => ResultCode::CertificateRevoked,
                CertError::UntrustedIssuer { .. }
                | CertError::IssuerNotValid { .. }
                | CertError::IssuerNotCa { .. }
                | CertError::PathTooLong { .. } => ResultCode::CertificateUntrusted,
                CertError::CrlMissing { .. } | CertError::CrlStale { .. } => {
                    ResultCode::RevocationUnavailable
                }
                CertError::Malformed { .. }
                | CertError::TrailingData { .. }
                | CertError::NonCanonicalEncoding { .. }
                | CertError::UnsupportedVersion { .. }
                | CertError::SignatureAlgorithmMismatch
                | CertError::TooLarge
                | CertError::UnsupportedAlgorithm { .. }
                | CertError::WeakKey { .. }
                | CertError::BadSignature
                | CertError::NotEndEntity
                | CertError::WrongKeyUsage
                | CertError::ExtraKeyUsage
                | CertError::WrongExtendedKeyUsage
                | CertError::MissingExtendedKeyUsage
                | CertError::WrongRsaExponent { .. }
                | CertError::NonPositiveSerial
                | CertError::SerialTooLong { .. }
                | CertError::WrongSubject { .. }
                | CertError::WrongPolicy
                | CertError::UnknownCriticalExtension { .. } => ResultCode::CertificateInvalid,
            },
            Refusal::SignatureInvalid => ResultCode::SignatureInvalid,
            Refusal::AttestationInvalid(_) => ResultCode::AttestationInvalid,
            Refusal::CredentialKindMismatch => ResultCode::CredentialKindMismatch,
            Refusal::CardUnknown => ResultCode::CardUnknown,
            Refusal::CardNotRegistered => ResultCode::CardNotRegistered,
            Refusal::AsOfOutOfRange(_) => ResultCode::AsOfDateOutOfRange,
            Refusal::RequeryNotConsented => ResultCode::RequeryNotConsented,
            Refusal::RequeryPeriodEnded(_) => ResultCode::RequeryPeriodEnded,
            Refusal::Unavailable(_) => ResultCode::ServiceUnavailable,
            Refusal::Internal(_) => ResultCode::InternalError,
        }
    }

    /// The gRPC status code for this refusal.
    pub fn grpc_code(&self) -> Code {
        match self.result_code() {
            ResultCode::BadRequest
            | ResultCode::InvalidInsurerNumber
            | ResultCode::InvalidInstitutionCode
            | ResultCode::InvalidDate
            | ResultCode::InvalidBranch
            | ResultCode::MissingField
            | ResultCode::FieldTooLong
            | ResultCode::InvalidField
            | ResultCode::UnknownEnumValue
            | ResultCode::BatchTooLarge
            | ResultCode::AsOfDateOutOfRange
            | ResultCode::InvalidPublicExpenseNumber
            | ResultCode::InvalidRecipientNumber
            | ResultCode::MixedQueryKinds => Code::InvalidArgument,
            ResultCode::PatientUnknown | ResultCode::BatchUnknown => Code::NotFound,
            ResultCode::TerminalUnknown | ResultCode::TerminalNotInOperation => {
                Code::PermissionDenied
            }
            ResultCode::CertificateInvalid
            | ResultCode::CertificateExpired
            | ResultCode::CertificateNotYetValid
            | ResultCode::CertificateRevoked
            | ResultCode::CertificateUntrusted
            | ResultCode::SignatureInvalid
            | ResultCode::AttestationInvalid
            | ResultCode::CredentialKindMismatch
            | ResultCode::CardUnknown => Code::Unauthenticated,
            ResultCode::ChallengeUnknown
            | ResultCode::ChallengeExpired
            | ResultCode::ChallengeReused
            | ResultCode::ChallengeOtherTerminal
            | ResultCode::CardNotRegistered
            | ResultCode::ConsentMissing
            | ResultCode::ConsentExpired
            | ResultCode::RequeryNotConsented
            | ResultCode::RequeryPeriodEnded => Code::FailedPrecondition,
            ResultCode::RateLimited | ResultCode::QuotaExceeded => Code::ResourceExhausted,
            ResultCode::TooManyBirthDates => Code::PermissionDenied,
            ResultCode::RevocationUnavailable | ResultCode::ServiceUnavailable => Code::Unavailable,
            // Codes of answers, not refusals, and the reader's own: never a refusal's code, but
            // each one mapped on purpose, so that a new code must be placed here.
            ResultCode::Unspecified
            | ResultCode::Ok
            | ResultCode::NoQualification
            | ResultCode::MultipleQualifications
            | ResultCode::PinAttemptsExhausted
            | ResultCode::FaceAttemptsExhausted
            | ResultCode::PinNotSet
            | ResultCode::PhonePinLocked
            | ResultCode::PhoneVerificationRefused
            | ResultCode::PhoneUnavailable
            | ResultCode::InternalError => Code::Internal,
        }
    }

    /// The status sent to the (authenticated) terminal. Internal details stay in the log.
    pub fn to_status(&self) -> Status {
        let code = self.result_code();
        // Store and internal failures are logged, not told: their text is the store's own
        // ("database is locked", a PostgreSQL error), nothing a terminal needs or should see.
        let message = match self {
            Refusal::Internal(_) => "internal error".to_owned(),
            Refusal::Unavailable(_) | Refusal::Challenge(ChallengeError::Store(_)) => {
                "the service is unavailable for a moment; try again".to_owned()
            }
            other => other.to_string(),
        };
        let mut metadata = std::collections::HashMap::new();
        if let Refusal::Certificate(e) = self {
            metadata.insert("certificate_reason".to_owned(), e.reason().to_owned());
        }
        onshi_proto::status::refusal(self.grpc_code(), code, message, metadata)
    }
}

/// Reads the project's result code back from a refusal status (the client side of the above).
/// The result code of a field that failed validation: by the field, then by the failure.
fn invalid_code(e: &DomainError) -> ResultCode {
    match e {
        DomainError::WrongLength { what, .. }
        | DomainError::NonDigit { what, .. }
        | DomainError::BadCheckDigit { what, .. }
            if *what == eligibility::INSURER =>
        {
            ResultCode::InvalidInsurerNumber
        }
        DomainError::WrongLength { what, .. }
        | DomainError::NonDigit { what, .. }
        | DomainError::BadCheckDigit { what, .. }
            if *what == eligibility::INSTITUTION =>
        {
            ResultCode::InvalidInstitutionCode
        }
        DomainError::WrongLength { what, .. } | DomainError::NonDigit { what, .. }
            if *what == eligibility::BRANCH =>
        {
            ResultCode::InvalidBranch
        }
        DomainError::WrongLength { what, .. }
        | DomainError::NonDigit { what, .. }
        | DomainError::BadCheckDigit { what, .. }
            if *what == medical_aid::PUBLIC_EXPENSE =>
        {
            ResultCode::InvalidPublicExpenseNumber
        }
        DomainError::NotPublicAssistance { .. } => ResultCode::InvalidPublicExpenseNumber,
        DomainError::WrongLength { what, .. }
        | DomainError::NonDigit { what, .. }
        | DomainError::BadCheckDigit { what, .. }
            if *what == medical_aid::RECIPIENT =>
        {
            ResultCode::InvalidRecipientNumber
        }
        DomainError::MixedQueryKinds { .. } => ResultCode::MixedQueryKinds,
        DomainError::BadDate { .. } => ResultCode::InvalidDate,
        DomainError::Empty { .. } => ResultCode::MissingField,
        DomainError::TooLong { .. } => ResultCode::FieldTooLong,
        DomainError::WrongLength { .. }
        | DomainError::NonDigit { .. }
        | DomainError::BadCheckDigit { .. }
        | DomainError::BadCharacter { .. }
        | DomainError::NotForKoki { .. }
        | DomainError::Contradictory { .. } => ResultCode::InvalidField,
    }
}

pub fn result_code_of(status: &Status) -> Option<ResultCode> {
    onshi_proto::status::result_code_of(status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::OffsetDateTime;

    #[test]
    fn store_failures_are_not_told_to_the_terminal() {
        for refusal in [
            Refusal::Unavailable("database is locked".into()),
            Refusal::Challenge(ChallengeError::Store("database is locked".into())),
            Refusal::Internal("database is locked".into()),
        ] {
            let status = refusal.to_status();
            assert!(!status.message().contains("locked"), "{}", status.message());
        }
    }

    #[test]
    fn the_log_names_a_refusal_without_its_values() {
        let forged = "123\n2026-12-02T00:00:00Z  INFO answered result=RESULT_CODE_OK";
        for refusal in [
            Refusal::BatchUnknown(forged.into()),
            Refusal::BadRequest(forged.into()),
            Refusal::TerminalUnknown(forged.into()),
        ] {
            let said = refusal.log_reason();
            assert!(!said.contains('\n') && !said.contains("123"), "{said}");
        }
    }

    #[test]
    fn each_refusal_has_a_specific_code_and_round_trips() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let cases = [
            (
                Refusal::Certificate(CertError::Expired {
                    not_after: now,
                    at: now,
                }),
                ResultCode::CertificateExpired,
                Code::Unauthenticated,
            ),
            (
                Refusal::Certificate(CertError::Revoked {
                    revoked_at: now,
                    reason: "keyCompromise".into(),
                }),
                ResultCode::CertificateRevoked,
                Code::Unauthenticated,
            ),
            (
                // The card-profile reasons are invalid certificates like the others.
                Refusal::Certificate(CertError::WrongSubject { detail: "x".into() }),
                ResultCode::CertificateInvalid,
                Code::Unauthenticated,
            ),
            (
                Refusal::Certificate(CertError::UntrustedIssuer { issuer: "x".into() }),
                ResultCode::CertificateUntrusted,
                Code::Unauthenticated,
            ),
            (
                Refusal::Challenge(ChallengeError::Reused),
                ResultCode::ChallengeReused,
                Code::FailedPrecondition,
            ),
            (
                Refusal::Challenge(ChallengeError::OtherTerminal),
                ResultCode::ChallengeOtherTerminal,
                Code::FailedPrecondition,
            ),
            (
                Refusal::CardNotRegistered,
                ResultCode::CardNotRegistered,
                Code::FailedPrecondition,
            ),
            (
                Refusal::AttestationInvalid("x".into()),
                ResultCode::AttestationInvalid,
                Code::Unauthenticated,
            ),
            (
                Refusal::BadRequest("x".into()),
                ResultCode::BadRequest,
                Code::InvalidArgument,
            ),
            (
                Refusal::TerminalUnknown("x".into()),
                ResultCode::TerminalUnknown,
                Code::PermissionDenied,
            ),
        ];
        for (refusal, code, grpc) in cases {
            let status = refusal.to_status();
            assert_eq!(status.code(), grpc, "{refusal}");
            assert_eq!(result_code_of(&status), Some(code), "{refusal}");
            assert_eq!(
                status
                    .metadata()
                    .get(onshi_proto::RESULT_CODE_METADATA)
                    .and_then(|v| v.to_str().ok()),
                Some((code as i32).to_string().as_str())
            );
        }
    }

    #[test]
    fn internal_details_do_not_leak() {
        let status = Refusal::Internal("disk I/O error at /secret/path".into()).to_status();
        assert!(!status.message().contains("/secret/path"));
        assert_eq!(result_code_of(&status), Some(ResultCode::InternalError));
    }
}
