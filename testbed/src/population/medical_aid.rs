//! 医療扶助 recipients (docs/world.md "医療扶助"): persons on 生活保護 without health
//! insurance, each with one qualification record of classification `A1` (保険者番号 = the
//! 公費負担者番号, 番号 = the 公費受給者番号) and the 医療券 / 調剤券 of the world's month in
//! one of the states an answer distinguishes. Everything is derived from the person and the
//! world's day, so it is deterministic.

use onshi_confirm_service::eligibility::{
    append_luhn, InstitutionCode, InsurerNumber, Person, QualificationRecord,
};
use onshi_confirm_service::medical_aid::{
    MedicalTicket, TicketKind, TreatmentMonth, CLASSIFICATION, HOUBETSU, RECIPIENT,
};
use time::Date;

use super::gen::add_days;
use super::tables::Place;
use crate::TestbedError;

/// The world's clinic and pharmacy (their terminals are the world's; docs/world.md).
pub const CLINIC_BODY: &str = "131015678";
pub const CLINIC_NAME: &str = "さくら内科クリニック";
pub const PHARMACY_BODY: &str = "134012345";
pub const PHARMACY_NAME: &str = "みなと薬局";
/// A clinic outside the world (no terminal): the "designated elsewhere" tickets name it.
pub const ELSEWHERE_BODY: &str = "131020000";
pub const ELSEWHERE_NAME: &str = "ひまわり医院";

/// Which tickets a recipient has for the world's month.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AidCase {
    /// A 医療券 designated at the world's clinic and a 調剤券 at its pharmacy, both registered
    /// on the month's first day (有効, designated here for either terminal).
    Registered,
    /// A 医療券 for the clinic issued on paper, not registered (有効（未登録）).
    Unregistered,
    /// A registered 医療券 designated at a clinic outside the world (有効, not designated
    /// here for any of the world's terminals).
    Elsewhere,
    /// Only last month's registered 医療券: nothing for this month (有効（未登録）).
    NoTicketThisMonth,
}

/// The recipient's 公費負担者番号: 12 + the prefecture + 実施機関 100 (the prefecture's own
/// welfare office, an invented numbering) + check digit.
pub fn public_expense_number(place: &Place) -> Result<InsurerNumber, TestbedError> {
    Ok(InsurerNumber::with_check_digit(&format!(
        "{HOUBETSU}{}100",
        place.pref_code
    ))?)
}

/// The 公費受給者番号: six digits from the person's index + check digit.
pub fn recipient_number(index: usize) -> Result<String, TestbedError> {
    Ok(append_luhn(
        RECIPIENT,
        &format!("{:06}", (index + 1) % 1_000_000),
    )?)
}

/// The 医療扶助 record: assistance since `since`, current.
pub fn record(
    person: &Person,
    index: usize,
    place: &Place,
    since: Date,
) -> Result<QualificationRecord, TestbedError> {
    Ok(QualificationRecord {
        person_id: person.id.clone(),
        insured_card_classification: CLASSIFICATION.to_owned(),
        insurer_number: public_expense_number(place)?,
        insurer_name: format!("{}福祉事務所", place.municipality),
        symbol: None,
        number: recipient_number(index)?,
        branch: None,
        personal_family: 1,
        insured_person_name: person.name.clone(),
        qualification_date: since,
        disqualification_date: None,
        loss_reason: None,
        card_issue_date: since,
        card_valid_from: since,
        card_expiry: None,
        copay_ratio: String::new(),
        preschool: false,
        elderly: None,
        high_cost_limit: None,
        specific_diseases: Vec::new(),
    })
}

fn ticket(
    person: &Person,
    month: TreatmentMonth,
    kind: TicketKind,
    serial: usize,
    institution: (&str, &str),
    registered: bool,
) -> Result<MedicalTicket, TestbedError> {
    Ok(MedicalTicket {
        person_id: person.id.clone(),
        month,
        kind,
        issue_number: format!("{}{serial:02}", month.yyyymm()),
        valid_from: month.first_day(),
        valid_until: month.last_day(),
        institution_code: InstitutionCode::with_check_digit(institution.0)?
            .as_str()
            .to_owned(),
        institution_name: institution.1.to_owned(),
        self_pay_yen: 0,
        registered_on: registered.then(|| month.first_day()),
    })
}

/// The tickets of `case` for the month of `today`.
pub fn tickets(
    person: &Person,
    case: AidCase,
    today: Date,
) -> Result<Vec<MedicalTicket>, TestbedError> {
    let month = TreatmentMonth::of(today);
    let clinic = (CLINIC_BODY, CLINIC_NAME);
    Ok(match case {
        AidCase::Registered => vec![
            ticket(person, month, TicketKind::Medical, 1, clinic, true)?,
            ticket(
                person,
                month,
                TicketKind::Dispensing,
                2,
                (PHARMACY_BODY, PHARMACY_NAME),
                true,
            )?,
        ],
        AidCase::Unregistered => vec![ticket(
            person,
            month,
            TicketKind::Medical,
            1,
            clinic,
            false,
        )?],
        AidCase::Elsewhere => vec![ticket(
            person,
            month,
            TicketKind::Medical,
            1,
            (ELSEWHERE_BODY, ELSEWHERE_NAME),
            true,
        )?],
        AidCase::NoTicketThisMonth => {
            let last = TreatmentMonth::of(add_days(month.first_day(), -1)?);
            vec![ticket(person, last, TicketKind::Medical, 1, clinic, true)?]
        }
    })
}

impl super::gen::Gen<'_> {
    /// A card-less recipient (a household of one) at person index `index`.
    pub(super) fn recipient(
        &mut self,
        index: usize,
        case: AidCase,
    ) -> Result<super::Generated, TestbedError> {
        let today = self.today;
        let age = self.between(50, 80);
        let place_index = self.place_index();
        let place = &super::tables::PLACES[place_index];
        let family = self.family_name();
        let address = self.address(place);
        let sex = if self.percent(50) { 1 } else { 2 };
        let person = self.person(index, age, sex, family, place, &address, Some(false))?;
        let since = add_days(today, -i64::from(self.between(60, 2000)))?;
        let records = vec![record(&person, index, place, since)?];
        let tickets = tickets(&person, case, today)?;
        let mut g = super::Generated::new(person, records);
        g.tickets = tickets;
        Ok(g)
    }
}
