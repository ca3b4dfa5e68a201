//! The card holders: the first persons of the world, one per card, each shaped for the card's
//! role (see [`CardPlan`]). They are drawn like everyone else, each from its own generator,
//! but their insurance is chosen rather than drawn.

use onshi_confirm_service::eligibility::{koki_start, IncomeBand};

use super::clinical::{self, Plan};
use super::gen::{add_days, branch, Coverage, Gen, Scheme};
use super::medical_aid::{self, AidCase};
use super::tables::PLACES;
use super::Generated;
use crate::manifest::CardKind;
use crate::TestbedError;

/// What the holder of a card looks like to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// 協会けんぽ 本人, 3割, with a high-cost bracket (限度額 A03), medication and checkup
    /// history.
    Standard,
    /// An employee (組合 or 協会けんぽ) 本人 with one current qualification.
    Employee,
    /// Only qualification lost (reason 03 他保険取得).
    Lost,
    /// Two current qualifications (組合 and 国保).
    Multiple,
    /// 後期高齢者医療: no 記号, no 枝番, 1割.
    Koki,
    /// A child before school age, 組合 家族, 2割.
    PreschoolChild,
    /// 70–74, 共済 本人 with a 高齢受給者証 (2割).
    Elderly,
    /// 国保 with a 6-digit insurer number, 世帯主, with a 特定疾病療養受療証 (dialysis).
    Kokuho,
    /// A 医療扶助 recipient (生活保護, no insurance) with this month's 医療券 (the world's
    /// clinic) and 調剤券 (its pharmacy) registered.
    MedicalAid,
    /// A 医療扶助 recipient whose 医療券 of this month is not registered (有効（未登録）).
    MedicalAidUnregistered,
}

/// The role of one card in the world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardPlan {
    pub kind: CardKind,
    pub holder: Holder,
    /// The person is registered for insurance use.
    pub registered: bool,
    pub description: &'static str,
}

/// Length of the cycle after the fixed roles: four valid holders of varied kinds, then a
/// certificate in its grace period and one expiring soon (rules of 2024-12-02), then two
/// 医療扶助 recipients (registered tickets, not registered), so a world of 16 cards or more
/// has each and a large world about one card in eight of each.
const CYCLE: usize = 8;

/// The plan of card `index` (0-based): the six fixed roles every world has, the face-only
/// card, then a cycle of varied holders.
pub fn card_plan(index: usize) -> CardPlan {
    let plan = |kind, holder, registered, description| CardPlan {
        kind,
        holder,
        registered,
        description,
    };
    match index {
        0 => plan(
            CardKind::Valid,
            Holder::Standard,
            true,
            "valid, registered; 協会けんぽ 本人, 3割, 限度額区分 A03, drugs and checkups on record (validity 1)",
        ),
        1 => plan(
            CardKind::Revoked,
            Holder::Employee,
            true,
            "certificate revoked (keyCompromise, on the CRL); holder otherwise valid",
        ),
        2 => plan(
            CardKind::Expired,
            Holder::Employee,
            true,
            "certificate expired 150 days ago, past its grace period (refused as expired); holder otherwise valid",
        ),
        3 => plan(
            CardKind::Unregistered,
            Holder::Employee,
            false,
            "valid certificate; person not registered for insurance use",
        ),
        4 => plan(
            CardKind::Lost,
            Holder::Lost,
            true,
            "valid, registered; only qualification lost, reason 03 (validity 2)",
        ),
        5 => plan(
            CardKind::Multiple,
            Holder::Multiple,
            true,
            "valid, registered; two current qualifications, 組合 and 国保 (validity 5)",
        ),
        6 => plan(
            CardKind::FaceOnly,
            Holder::Employee,
            true,
            "face-only card (顔認証マイナンバーカード): no PIN, no signature certificate; registered; one current employee qualification (validity 1)",
        ),
        7 => plan(
            CardKind::FaceOnlyUnregistered,
            Holder::Employee,
            false,
            "face-only card (顔認証マイナンバーカード) whose holder is not registered for insurance use: registers at the reader by face or visual check (validity 1 once registered)",
        ),
        _ => match (index - 8) % CYCLE {
            0 => plan(
                CardKind::Valid,
                Holder::Koki,
                true,
                "valid, registered; 後期高齢者医療, no 記号/枝番, 1割",
            ),
            1 => plan(
                CardKind::Valid,
                Holder::PreschoolChild,
                true,
                "valid, registered; preschool child, 組合 家族, 2割",
            ),
            2 => plan(
                CardKind::Valid,
                Holder::Elderly,
                true,
                "valid, registered; age 70-74, 共済 本人 with 高齢受給者証, 2割",
            ),
            3 => plan(
                CardKind::Valid,
                Holder::Kokuho,
                true,
                "valid, registered; 国保 (6-digit insurer number), 特定疾病 dialysis",
            ),
            4 => plan(
                CardKind::Grace,
                Holder::Employee,
                true,
                "certificate expired yesterday, within its grace period: eligibility confirmed with WARNING_CERTIFICATE_IN_GRACE, no data shared",
            ),
            5 => plan(
                CardKind::Expiring,
                Holder::Employee,
                true,
                "certificate expires in 30 days: confirmed with WARNING_CERTIFICATE_EXPIRING (renewal)",
            ),
            6 => plan(
                CardKind::Valid,
                Holder::MedicalAid,
                true,
                "valid, registered; 医療扶助 recipient (A1): this month's 医療券 at the world's clinic and 調剤券 at its pharmacy registered (validity 1 with the tickets)",
            ),
            _ => plan(
                CardKind::Valid,
                Holder::MedicalAidUnregistered,
                true,
                "valid, registered; 医療扶助 recipient (A1) whose 医療券 of this month the welfare office has not registered: validity 6 有効（未登録）",
            ),
        },
    }
}

impl Gen<'_> {
    /// The holder of card `index` with `plan`.
    pub(super) fn card_holder(
        &mut self,
        index: usize,
        plan: &CardPlan,
    ) -> Result<Generated, TestbedError> {
        let today = self.today;
        let age = match plan.holder {
            Holder::Standard => self.between(40, 60),
            Holder::Kokuho => self.between(35, 60),
            Holder::Employee | Holder::Lost | Holder::Multiple => self.between(25, 60),
            Holder::Koki => self.between(77, 90),
            Holder::PreschoolChild => self.between(2, 4),
            Holder::Elderly => self.between(71, 73),
            Holder::MedicalAid | Holder::MedicalAidUnregistered => self.between(45, 75),
        };
        let place_index = self.place_index();
        let place = &PLACES[place_index];
        let family = self.family_name();
        let address = self.address(place);
        let sex = if self.percent(50) { 1 } else { 2 };
        let person = self.person(
            index,
            age,
            sex,
            family,
            place,
            &address,
            Some(plan.registered),
        )?;
        let own = person.name.clone();
        let cov = |from, income, personal_family, branch_no: usize| Coverage {
            personal_family,
            branch: Some(branch(branch_no)),
            from,
            lost: None,
            income,
            with_limit: false,
            diseases: Vec::new(),
        };
        let records = match plan.holder {
            Holder::Standard => {
                let from = self.start_date(person.birth_date, 15)?;
                let m = self.membership(Scheme::Kyokai, place_index, index, &own);
                let mut c = cov(from, IncomeBand::ActiveI, 1, 0);
                c.with_limit = true;
                vec![self.record(&person, &m, &c)?]
            }
            Holder::Employee => {
                let scheme = if index % 2 == 0 {
                    Scheme::Kyokai
                } else {
                    Scheme::Kumiai
                };
                let from = self.start_date(person.birth_date, 15)?;
                let income = self.income_under_70();
                let m = self.membership(scheme, place_index, index, &own);
                vec![self.record(&person, &m, &cov(from, income, 1, 0))?]
            }
            Holder::Lost => {
                let until = add_days(today, -60)?;
                let from = self
                    .start_date(person.birth_date, 10)?
                    .min(add_days(until, -365)?);
                let m = self.membership(Scheme::Kumiai, place_index, index, &own);
                let mut c = cov(from, IncomeBand::General, 1, 0);
                c.lost = Some((until, "03"));
                vec![self.record(&person, &m, &c)?]
            }
            Holder::Multiple => {
                let from = self.start_date(person.birth_date, 10)?;
                let a = self.membership(Scheme::Kumiai, place_index, index, &own);
                let b = self.membership(Scheme::Kokuho, place_index, index, &own);
                let b_from = add_days(today, -200)?;
                vec![
                    self.record(&person, &a, &cov(from, IncomeBand::General, 1, 0))?,
                    self.record(&person, &b, &cov(b_from, IncomeBand::General, 1, 0))?,
                ]
            }
            Holder::Koki => {
                let m = self.membership(Scheme::Koki, place_index, index, &own);
                let mut c = cov(koki_start(person.birth_date), IncomeBand::General, 1, 0);
                c.branch = None;
                vec![self.record(&person, &m, &c)?]
            }
            Holder::PreschoolChild => {
                // 家族 on a parent's card; the parent is not one of the world's persons.
                let parent_sex = if self.percent(50) { 1 } else { 2 };
                let parent_birth_year = person.birth_date.year() - 32;
                let (given, _) = self.given_name(parent_sex, parent_birth_year);
                let parent = format!("{}\u{3000}{given}", family.0);
                let m = self.membership(Scheme::Kumiai, place_index, index, &parent);
                let branch_no = self.below(3) + 1;
                let c = cov(person.birth_date, IncomeBand::General, 2, branch_no);
                vec![self.record(&person, &m, &c)?]
            }
            Holder::Elderly => {
                let from = self.start_date(person.birth_date, 30)?;
                let m = self.membership(Scheme::Kyosai, place_index, index, &own);
                vec![self.record(&person, &m, &cov(from, IncomeBand::General, 1, 0))?]
            }
            Holder::Kokuho => {
                let from = self.start_date(person.birth_date, 20)?;
                let m = self.membership(Scheme::Kokuho, place_index, index, &own);
                let mut c = cov(from, IncomeBand::ActiveI, 1, 0);
                c.diseases = vec![(1, 10_000)];
                vec![self.record(&person, &m, &c)?]
            }
            Holder::MedicalAid | Holder::MedicalAidUnregistered => {
                let since = add_days(today, -i64::from(self.between(60, 2000)))?;
                vec![medical_aid::record(&person, index, place, since)?]
            }
        };
        let case = match plan.holder {
            Holder::MedicalAid => Some(AidCase::Registered),
            Holder::MedicalAidUnregistered => Some(AidCase::Unregistered),
            _ => None,
        };
        let tickets = match case {
            Some(case) => medical_aid::tickets(&person, case, today)?,
            None => Vec::new(),
        };
        let mut generated = Generated::new(person, records);
        generated.tickets = tickets;
        // card-0001's holder always has drugs and checkups to share (the consent demo).
        let health = self.health(age, generated.person.sex);
        let clinical_plan = if plan.holder == Holder::Standard {
            Plan {
                health: clinical::Health {
                    hypertension: true,
                    ..health
                },
                medications: Some(true),
                checkups: Some(true),
            }
        } else {
            Plan {
                health,
                ..Plan::default()
            }
        };
        clinical::attach_with(self, &mut generated, age, place_index, &clinical_plan)?;
        Ok(generated)
    }
}
