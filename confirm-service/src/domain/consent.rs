//! Consents (eligibility.md §1 step 4): the patient decides, per institution, whether to share
//! past medication (薬剤情報), specific health checkup (特定健診等情報), clinical (診療情報) and
//! surgery (手術情報) information. A consent is valid for 24 hours for that institution only.
//! The high-cost-care limit information needs no consent (since October 2024).
//!
//! The rules live here and nowhere else: [`check`] decides whether a data kind may be returned.

use onshi_proto::binding::ConsentBits;
use time::{Duration, OffsetDateTime};

/// How long a consent stays valid.
pub const CONSENT_VALIDITY: Duration = Duration::hours(24);

/// The four consents. The discriminant is the binding's consent bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConsentKind {
    Medication = ConsentBits::MEDICATION as isize,
    Checkup = ConsentBits::CHECKUP as isize,
    Clinical = ConsentBits::CLINICAL as isize,
    Surgery = ConsentBits::SURGERY as isize,
    /// 居宅同意取得型 (crate::home_care): consent to re-queries for home visits (訪問診療・訪問
    /// 看護) by this institution, valid until the end of the re-query period. Not a binding bit
    /// (the binding's purpose byte carries it).
    HomeVisitRequery = 32,
    /// The same for online care (オンライン診療).
    OnlineRequery = 64,
}

impl ConsentKind {
    pub const ALL: [ConsentKind; 4] = [
        ConsentKind::Medication,
        ConsentKind::Checkup,
        ConsentKind::Clinical,
        ConsentKind::Surgery,
    ];

    /// The 居宅同意取得型 kinds (never in a binding's consent byte).
    pub const REQUERY: [ConsentKind; 2] =
        [ConsentKind::HomeVisitRequery, ConsentKind::OnlineRequery];

    /// The stored (and documented) spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Medication => "medication",
            Self::Checkup => "checkup",
            Self::Clinical => "clinical",
            Self::Surgery => "surgery",
            Self::HomeVisitRequery => "requery-home-visit",
            Self::OnlineRequery => "requery-online",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .chain(Self::REQUERY)
            .find(|k| k.as_str() == s)
    }

    /// The binding's bit for this consent.
    pub fn bit(self) -> u8 {
        self as u8
    }

    /// The kinds whose bit is set in a binding's consent byte.
    pub fn from_bits(bits: u8) -> Vec<ConsentKind> {
        Self::ALL
            .into_iter()
            .filter(|k| bits & k.bit() != 0)
            .collect()
    }
}

/// A consent a person gave an institution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentGrant {
    pub person_id: String,
    pub institution_code: String,
    pub kind: ConsentKind,
    pub given_at: OffsetDateTime,
    pub valid_until: OffsetDateTime,
}

impl ConsentGrant {
    /// A grant given at `at`, valid for [`CONSENT_VALIDITY`].
    pub fn new(
        person_id: &str,
        institution_code: &str,
        kind: ConsentKind,
        at: OffsetDateTime,
    ) -> Self {
        Self {
            person_id: person_id.to_owned(),
            institution_code: institution_code.to_owned(),
            kind,
            given_at: at,
            valid_until: at + CONSENT_VALIDITY,
        }
    }

    /// In force at `now` (the end is exclusive).
    pub fn is_valid_at(&self, now: OffsetDateTime) -> bool {
        self.given_at <= now && now < self.valid_until
    }
}

/// Whether data of one kind may be returned to an institution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsentCheck {
    /// A valid grant exists.
    Valid(ConsentGrant),
    /// The person never consented for this institution and kind.
    Missing,
    /// The latest grant has lapsed.
    Expired(ConsentGrant),
}

/// Decides from the grants a person gave `institution_code` (any kinds, any institutions: the
/// others are ignored) whether `kind` may be returned at `now`.
pub fn check(
    grants: &[ConsentGrant],
    institution_code: &str,
    kind: ConsentKind,
    now: OffsetDateTime,
) -> ConsentCheck {
    let latest = grants
        .iter()
        .filter(|g| g.kind == kind && g.institution_code == institution_code)
        .max_by_key(|g| g.given_at);
    match latest {
        None => ConsentCheck::Missing,
        Some(g) if g.is_valid_at(now) => ConsentCheck::Valid(g.clone()),
        Some(g) => ConsentCheck::Expired(g.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000 + s).unwrap()
    }

    #[test]
    fn a_consent_lasts_24_hours_for_its_institution_and_kind_only() {
        let g = ConsentGrant::new("P1", "1340123452", ConsentKind::Medication, at(0));
        let grants = vec![g.clone()];
        assert_eq!(
            check(&grants, "1340123452", ConsentKind::Medication, at(0)),
            ConsentCheck::Valid(g.clone())
        );
        assert_eq!(
            check(&grants, "1340123452", ConsentKind::Medication, at(86_399)),
            ConsentCheck::Valid(g.clone())
        );
        assert_eq!(
            check(&grants, "1340123452", ConsentKind::Medication, at(86_400)),
            ConsentCheck::Expired(g.clone())
        );
        assert_eq!(
            check(&grants, "1310156789", ConsentKind::Medication, at(10)),
            ConsentCheck::Missing
        );
        assert_eq!(
            check(&grants, "1340123452", ConsentKind::Checkup, at(10)),
            ConsentCheck::Missing
        );
    }

    #[test]
    fn the_latest_grant_decides() {
        let old = ConsentGrant::new("P1", "I", ConsentKind::Checkup, at(0));
        let new = ConsentGrant::new("P1", "I", ConsentKind::Checkup, at(90_000));
        let grants = vec![new.clone(), old];
        assert_eq!(
            check(&grants, "I", ConsentKind::Checkup, at(100_000)),
            ConsentCheck::Valid(new)
        );
    }

    #[test]
    fn bits_match_the_binding() {
        assert_eq!(
            ConsentKind::from_bits(ConsentBits::new(true, false, true, false).bits()),
            vec![ConsentKind::Medication, ConsentKind::Clinical]
        );
        for k in ConsentKind::ALL.into_iter().chain(ConsentKind::REQUERY) {
            assert_eq!(ConsentKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(ConsentKind::parse("other"), None);
    }
}
