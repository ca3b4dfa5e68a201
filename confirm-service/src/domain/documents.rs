//! The document a person holds in place of the paper insurance card, which is no longer
//! issued (docs/domain.md "Insurance documents"): a 資格確認書 (with a validity period) for a
//! person not registered for insurance use with a My Number card, a 資格情報のお知らせ (no
//! validity period of its own) for a registered one. A query by numbers answers from the
//! qualification; the document is reported beside it.

use time::Date;

/// Which document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DocumentKind {
    /// 資格確認書: insurer number, symbol, number, branch and a validity period.
    Kakuninsho,
    /// 資格情報のお知らせ: the same numbers, for a person registered with a card.
    Oshirase,
}

impl DocumentKind {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kakuninsho => "shikaku-kakuninsho",
            Self::Oshirase => "shikaku-joho-oshirase",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "shikaku-kakuninsho" => Some(Self::Kakuninsho),
            "shikaku-joho-oshirase" => Some(Self::Oshirase),
            _ => None,
        }
    }
}

/// The document one person holds (at most one per person in this simulator).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsuranceDocument {
    pub person_id: String,
    pub kind: DocumentKind,
    /// First day of a 資格確認書's validity (`None` for the お知らせ).
    pub valid_from: Option<Date>,
    /// Last day of a 資格確認書's validity, inclusive (`None` for the お知らせ).
    pub valid_until: Option<Date>,
}

impl InsuranceDocument {
    /// Whether the document itself is valid on `day`: a 資格確認書 within its period (both
    /// ends inclusive); the お知らせ has no period and is always `true`. This never decides a
    /// query's validity, which comes from the qualification.
    pub fn valid_on(&self, day: Date) -> bool {
        self.valid_from.is_none_or(|from| from <= day)
            && self.valid_until.is_none_or(|until| day <= until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn a_kakuninsho_is_valid_through_its_last_day_and_not_after() {
        let d = InsuranceDocument {
            person_id: "P1".into(),
            kind: DocumentKind::Kakuninsho,
            valid_from: Some(date!(2025 - 08 - 01)),
            valid_until: Some(date!(2026 - 07 - 31)),
        };
        assert!(!d.valid_on(date!(2025 - 07 - 31)));
        assert!(d.valid_on(date!(2025 - 08 - 01)));
        assert!(d.valid_on(date!(2026 - 07 - 31)));
        assert!(!d.valid_on(date!(2026 - 08 - 01)));
    }

    #[test]
    fn the_oshirase_has_no_period_and_kinds_round_trip() {
        let d = InsuranceDocument {
            person_id: "P1".into(),
            kind: DocumentKind::Oshirase,
            valid_from: None,
            valid_until: None,
        };
        assert!(d.valid_on(date!(2030 - 01 - 01)));
        for k in [DocumentKind::Kakuninsho, DocumentKind::Oshirase] {
            assert_eq!(DocumentKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(DocumentKind::parse("paper-card"), None);
    }
}
