//! The examples section of `world.json`: for each case a newcomer may want to reproduce (each
//! qualification validity, a person not registered for insurance use, a person with drugs or
//! checkups on record), the first person of the world showing it, with the insurance-card
//! numbers of a card-less query and the validity that query answers.

use onshi_confirm_service::as_of::MAX_PAST_DAYS;
use onshi_confirm_service::eligibility::{
    assess_by_numbers, InstitutionCode, NumbersQuery, QualificationRecord, Validity,
};
use onshi_confirm_service::medical_aid;
use time::Date;

use onshi_confirm_service::documents::DocumentKind;

use super::tables::{Catalog, PLACES};
use super::Generated;
use crate::manifest::{CardKind, ExampleEntry};

/// The cases, in the order `world.json` lists them.
pub const CASES: [&str; 18] = [
    "validity-1",
    "validity-2",
    "validity-3",
    "validity-4",
    "validity-5",
    "not-registered",
    "medication-history",
    "checkup-results",
    "as-of-before-loss",
    "certificate-in-grace",
    "certificate-expiring",
    "document-kakuninsho",
    "document-oshirase",
    "document-lapsed",
    "medical-aid-registered",
    "medical-aid-unregistered",
    "medical-aid-elsewhere",
    "medical-aid-no-ticket",
];

/// The cases shown by a card's holder (after [`CASES`] in `world.json`): how the rules of
/// December 2026 look at the reader.
pub const CARD_CASES: [&str; 7] = [
    "face-only-card",
    "face-only-registration",
    "comprehensive-consent",
    "prescription-choice",
    "certificate-past-grace",
    "home-visit-requery",
    "online-care-requery",
];

/// What a card-less query with a record's numbers answers about a person whose records are
/// `records` ([`assess_by_numbers`]); no record with those numbers is 4 該当資格なし (the
/// store finds nobody).
pub fn validity_by_numbers(
    records: &[QualificationRecord],
    insurer_number: &str,
    symbol: Option<&str>,
    number: &str,
    branch: Option<&str>,
    birth_date: Date,
    today: Date,
) -> Validity {
    let matching = |r: &&QualificationRecord| {
        r.insurer_number.as_str() == insurer_number
            && r.symbol.as_deref() == symbol
            && r.number == number
            && r.branch.as_deref() == branch
    };
    let Some(record) = records.iter().find(matching) else {
        return Validity::None;
    };
    let query = NumbersQuery {
        insurer_number: record.insurer_number.clone(),
        symbol: record.symbol.clone(),
        number: record.number.clone(),
        branch: record.branch.clone(),
        birth_date,
    };
    assess_by_numbers(records, &query, today).validity
}

/// The first example of each case found so far.
#[derive(Debug, Clone, Default)]
pub struct Examples {
    found: Vec<Option<ExampleEntry>>,
    /// [`CARD_CASES`], in order.
    cards: Vec<Option<ExampleEntry>>,
}

fn yyyymmdd(d: Date) -> String {
    format!("{:04}{:02}{:02}", d.year(), u8::from(d.month()), d.day())
}

fn loss_reason(code: Option<&str>) -> &'static str {
    match code {
        Some("01") => "01 死亡",
        Some("02") => "02 生活保護開始",
        Some("03") => "03 他保険取得",
        _ => "99 その他",
    }
}

impl Examples {
    pub fn new() -> Self {
        Examples {
            found: vec![None; CASES.len()],
            cards: vec![None; CARD_CASES.len()],
        }
    }

    /// Every case has its example.
    pub fn complete(&self) -> bool {
        self.found.iter().all(Option::is_some)
    }

    /// Keeps the examples of `later` for the cases still missing (`later` comes from later
    /// persons).
    pub fn absorb(&mut self, later: Examples) {
        for (mine, theirs) in self.found.iter_mut().zip(later.found) {
            if mine.is_none() {
                *mine = theirs;
            }
        }
        for (mine, theirs) in self.cards.iter_mut().zip(later.cards) {
            if mine.is_none() {
                *mine = theirs;
            }
        }
    }

    /// The examples found, in [`CASES`] order.
    pub fn into_entries(self) -> Vec<ExampleEntry> {
        self.found.into_iter().chain(self.cards).flatten().collect()
    }

    /// Looks at the holder `g` of card `card` of `kind`, for the [`CARD_CASES`] (card holders
    /// are offered in card order, so the first card of each kind is the example).
    pub fn offer_card(&mut self, g: &Generated, card: &str, kind: CardKind, today: Date) {
        if g.records.iter().any(medical_aid::is_medical_aid) {
            return;
        }
        let current: Vec<&QualificationRecord> =
            g.records.iter().filter(|r| r.is_current(today)).collect();
        let [record] = current[..] else { return };
        for (slot, case) in CARD_CASES.iter().enumerate() {
            if self.cards[slot].is_some() {
                continue;
            }
            let registered = g.person.registered_for_insurance;
            let description = match (*case, kind) {
                ("face-only-card", CardKind::FaceOnly) if registered => {
                    "a face-only card (顔認証マイナンバーカード): no PIN pad is offered; confirmed \
                     by face or a staff member's visual check"
                }
                ("face-only-registration", CardKind::FaceOnlyUnregistered) if !registered => {
                    "a face-only card whose holder is not registered for insurance use: \
                     registered at the reader by face or visual check (RegisterByReader), \
                     then confirmed"
                }
                ("comprehensive-consent", CardKind::Valid)
                    if registered && !g.medications.is_empty() && !g.checkups.is_empty() =>
                {
                    "包括同意: one consent for every kind (`confirm --consent all`); then both \
                     the medications and the checkups answer"
                }
                ("certificate-past-grace", CardKind::Expired) if registered => {
                    "the card's certificate expired 150 days ago, past its grace period (the end \
                     of the third month after the month of expiry): the card is refused with \
                     RESULT_CODE_CERTIFICATE_EXPIRED, the card-less query still answers 有効"
                }
                ("prescription-choice", CardKind::Valid) if registered => {
                    "電子処方箋: at the clinic's reader the patient chooses an electronic or a \
                     paper prescription (`confirm --prescription`); the result echoes it"
                }
                ("home-visit-requery", CardKind::Valid) if registered => {
                    "居宅同意取得型: a first visit at the patient's home reads the card with the \
                     mobile device (`confirm --treatment home-visit --mobile` at 1340123452-T02); \
                     later visits re-query without it (`numbers --treatment home-visit \
                     --requery`) until the end of the next month"
                }
                ("online-care-requery", CardKind::Valid) if registered => {
                    "オンライン診療: the same with `--treatment online`; a home-visit first \
                     visit allows no online re-query (RESULT_CODE_REQUERY_NOT_CONSENTED)"
                }
                _ => continue,
            };
            let validity = validity_by_numbers(
                &g.records,
                record.insurer_number.as_str(),
                record.symbol.as_deref(),
                &record.number,
                record.branch.as_deref(),
                g.person.birth_date,
                today,
            );
            self.cards[slot] = Some(ExampleEntry {
                case: (*case).to_owned(),
                description: description.to_owned(),
                person_id: g.person.id.clone(),
                card: Some(card.to_owned()),
                phone: None,
                insurer_number: record.insurer_number.as_str().to_owned(),
                symbol: record.symbol.clone(),
                number: record.number.clone(),
                branch: record.branch.clone(),
                birth_date: yyyymmdd(g.person.birth_date),
                validity: validity.code(),
                as_of_date: None,
                public_expense_number: None,
                recipient_number: None,
            });
        }
    }

    /// Looks at the person `g` (persons are offered in index order); `card` is the card they
    /// hold and its kind, if any.
    pub fn offer(
        &mut self,
        g: &Generated,
        card: Option<(String, CardKind)>,
        today: Date,
        catalog: &Catalog,
    ) {
        let (card, card_kind) = match card {
            Some((name, kind)) => (Some(name), Some(kind)),
            None => (None, None),
        };
        if self.complete() {
            return;
        }
        // 医療扶助 recipients show their own cases only (asked by public-expense numbers).
        if g.records.iter().any(medical_aid::is_medical_aid) {
            self.offer_aid(g, card, today);
            return;
        }
        let current: Vec<&QualificationRecord> =
            g.records.iter().filter(|r| r.is_current(today)).collect();
        let latest_lost = g
            .records
            .iter()
            .filter(|r| r.is_lost(today))
            .max_by_key(|r| (r.disqualification_date, r.qualification_date));
        let one_current = (current.len() == 1).then(|| current[0]);
        for (slot, case) in CASES.iter().enumerate() {
            if self.found[slot].is_some() {
                continue;
            }
            // The day asked for: today, but the day before the loss for `as-of-before-loss`.
            let mut as_of: Option<Date> = None;
            let pick: Option<(&QualificationRecord, String)> = match *case {
                "validity-1" => one_current.map(|r| (r, "one current qualification: 有効".into())),
                "validity-2" => match (current.is_empty(), latest_lost) {
                    (true, Some(r)) => Some((
                        r,
                        format!(
                            "the only qualification was lost (reason {}): 無効",
                            loss_reason(r.loss_reason.as_deref())
                        ),
                    )),
                    _ => None,
                },
                "validity-3" => match (one_current, latest_lost) {
                    (Some(_), Some(r)) if r.loss_reason.as_deref() == Some("03") => Some((
                        r,
                        "the card of a qualification lost on changing insurer (reason 03 \
                         他保険取得); a newer one is current: 無効（新しい資格あり）"
                            .into(),
                    )),
                    _ => None,
                },
                "validity-4" => {
                    if g.records.is_empty() {
                        self.found[slot] = uninsured_example(g, card.clone(), catalog);
                    }
                    None
                }
                "validity-5" => (current.len() >= 2).then(|| {
                    (
                        current[0],
                        format!(
                            "{} current qualifications: 複数該当 (either card's numbers)",
                            current.len()
                        ),
                    )
                }),
                "not-registered" => match one_current {
                    Some(r) if !g.person.registered_for_insurance => Some((
                        r,
                        "not registered for insurance use: a card read is refused, the \
                         card-less query answers 有効"
                            .into(),
                    )),
                    _ => None,
                },
                "medication-history" => match one_current {
                    Some(r) if !g.medications.is_empty() => Some((
                        r,
                        format!(
                            "{} dispensed drugs on record (shown with a medication consent)",
                            g.medications.len()
                        ),
                    )),
                    _ => None,
                },
                "document-kakuninsho" | "document-oshirase" | "document-lapsed" => {
                    match (one_current, &g.document) {
                        (Some(r), Some(d)) => {
                            let period = format!(
                                "{}–{}",
                                d.valid_from.map(yyyymmdd).unwrap_or_default(),
                                d.valid_until.map(yyyymmdd).unwrap_or_default()
                            );
                            match (*case, d.kind, d.valid_on(today)) {
                                ("document-kakuninsho", DocumentKind::Kakuninsho, true) => Some((
                                    r,
                                    format!(
                                        "holds a 資格確認書 valid {period} (not registered for \
                                         insurance use): the card-less query answers 有効 and \
                                         reports the document valid"
                                    ),
                                )),
                                ("document-oshirase", DocumentKind::Oshirase, _) => Some((
                                    r,
                                    "holds a 資格情報のお知らせ (registered for insurance use): \
                                     the card-less query answers 有効 and reports the お知らせ"
                                        .to_owned(),
                                )),
                                ("document-lapsed", DocumentKind::Kakuninsho, false) => Some((
                                    r,
                                    format!(
                                        "holds a 資格確認書 that lapsed ({period}) while the \
                                         qualification is current: the card-less query still \
                                         answers 有効 and reports the document lapsed"
                                    ),
                                )),
                                _ => None,
                            }
                        }
                        _ => None,
                    }
                }
                "as-of-before-loss" => match (current.is_empty(), latest_lost) {
                    (true, Some(r)) => {
                        let before =
                            r.disqualification_date
                                .and_then(Date::previous_day)
                                .filter(|d| {
                                    *d >= r.qualification_date
                                        && today - *d <= time::Duration::days(MAX_PAST_DAYS)
                                });
                        before.map(|d| {
                            as_of = Some(d);
                            (
                                r,
                                format!(
                                    "the lost qualification asked for the day before its loss \
                                     (as-of date {}): 有効 on that day, 無効 today",
                                    yyyymmdd(d)
                                ),
                            )
                        })
                    }
                    _ => None,
                },
                "certificate-in-grace" => match (card_kind, one_current) {
                    (Some(CardKind::Grace), Some(r)) => Some((
                        r,
                        "the card's certificate expired yesterday and is in its grace period: \
                         the card confirms eligibility with WARNING_CERTIFICATE_IN_GRACE, no \
                         data shared (by numbers: 有効)"
                            .into(),
                    )),
                    _ => None,
                },
                "certificate-expiring" => match (card_kind, one_current) {
                    (Some(CardKind::Expiring), Some(r)) => Some((
                        r,
                        "the card's certificate expires within three months: the card confirms \
                         with WARNING_CERTIFICATE_EXPIRING (by numbers: 有効)"
                            .into(),
                    )),
                    _ => None,
                },
                "checkup-results" => match one_current {
                    Some(r) if !g.checkups.is_empty() => Some((
                        r,
                        format!(
                            "{} checkup results on record (shown with a checkup consent)",
                            g.checkups.len()
                        ),
                    )),
                    _ => None,
                },
                _ => None,
            };
            if let Some((record, description)) = pick {
                let validity = validity_by_numbers(
                    &g.records,
                    record.insurer_number.as_str(),
                    record.symbol.as_deref(),
                    &record.number,
                    record.branch.as_deref(),
                    g.person.birth_date,
                    as_of.unwrap_or(today),
                );
                self.found[slot] = Some(ExampleEntry {
                    case: (*case).to_owned(),
                    description,
                    person_id: g.person.id.clone(),
                    card: card.clone(),
                    phone: None,
                    insurer_number: record.insurer_number.as_str().to_owned(),
                    symbol: record.symbol.clone(),
                    number: record.number.clone(),
                    branch: record.branch.clone(),
                    birth_date: yyyymmdd(g.person.birth_date),
                    as_of_date: as_of.map(yyyymmdd),
                    validity: validity.code(),
                    public_expense_number: None,
                    recipient_number: None,
                });
            }
        }
    }
}

impl Examples {
    /// Looks at a 医療扶助 recipient for the `medical-aid-*` cases: the answer a query by
    /// their public-expense numbers gets at the world's clinic today (validity 1 with the
    /// tickets, or 6 有効（未登録）).
    fn offer_aid(&mut self, g: &Generated, card: Option<String>, today: Date) {
        let Some(record) = g
            .records
            .iter()
            .find(|r| medical_aid::is_medical_aid(r) && r.is_current(today))
        else {
            return;
        };
        let answer = medical_aid::tickets_for(&g.tickets, today, today);
        let clinic = InstitutionCode::with_check_digit(super::medical_aid::CLINIC_BODY)
            .map(|c| c.as_str().to_owned())
            .unwrap_or_default();
        let here = answer.tickets.iter().any(|t| t.institution_code == clinic);
        let (case, description) = match (answer.unregistered, here, card.is_some()) {
            (false, true, true) => (
                "medical-aid-registered",
                "医療扶助 recipient (A1): this month's 医療券 (the clinic) and 調剤券 (the \
                 pharmacy) registered: 有効 with the tickets, designated here at either",
            ),
            (true, _, true) => (
                "medical-aid-unregistered",
                "医療扶助 recipient (A1) whose 医療券 of this month is not registered by the \
                 welfare office: 有効（未登録） without tickets",
            ),
            (false, false, false) => (
                "medical-aid-elsewhere",
                "card-less 医療扶助 recipient (bulk) whose registered 医療券 names a clinic \
                 outside the world: 有効, not designated here",
            ),
            (true, _, false) => (
                "medical-aid-no-ticket",
                "card-less 医療扶助 recipient (bulk) with last month's 医療券 only: \
                 有効（未登録） for this month",
            ),
            _ => return,
        };
        let Some(slot) = CASES.iter().position(|c| *c == case) else {
            return;
        };
        if self.found[slot].is_some() {
            return;
        }
        let validity = if answer.unregistered { 6 } else { 1 };
        self.found[slot] = Some(ExampleEntry {
            case: case.to_owned(),
            description: description.to_owned(),
            person_id: g.person.id.clone(),
            card,
            insurer_number: String::new(),
            symbol: None,
            number: String::new(),
            branch: None,
            birth_date: yyyymmdd(g.person.birth_date),
            as_of_date: None,
            validity,
            public_expense_number: Some(record.insurer_number.as_str().to_owned()),
            recipient_number: Some(record.number.clone()),
            phone: None,
        });
    }
}

/// A person without any qualification has no card numbers; the example's numbers are those of
/// a 国保 card of their town that was never issued (番号 starting with 9: the generator's
/// numbers start with 1 to 5), which a card-less query answers with 該当資格なし.
fn uninsured_example(
    g: &Generated,
    card: Option<String>,
    catalog: &Catalog,
) -> Option<ExampleEntry> {
    let place = PLACES
        .iter()
        .position(|p| p.postcode == g.person.postcode)?;
    let kokuho = &catalog.local.get(place)?.kokuho;
    let index = super::gen::person_index(&g.person.id)?;
    Some(ExampleEntry {
        case: "validity-4".into(),
        description:
            "no qualification at all (医療扶助 under 生活保護); the numbers are of a 国保 \
                      card never issued: 該当資格なし"
                .into(),
        person_id: g.person.id.clone(),
        card,
        phone: None,
        insurer_number: kokuho.number.as_str().to_owned(),
        symbol: Some("01".into()),
        number: format!("9{:07}", index % 10_000_000),
        branch: Some("00".into()),
        birth_date: yyyymmdd(g.person.birth_date),
        as_of_date: None,
        validity: Validity::None.code(),
        public_expense_number: None,
        recipient_number: None,
    })
}
