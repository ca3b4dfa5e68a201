//! The generator every unit of the population (a card holder, a block of households) is drawn
//! with: a seeded random stream plus "today", and the pieces every unit needs: persons, dates,
//! income bands, insurance-card numbers and qualification records that follow the rules of
//! [`onshi_confirm_service::eligibility`].

use onshi_confirm_service::eligibility::{
    age_on, birthday_in, copay_ratio, elderly_start, is_preschool, koki_start, limit_bracket,
    ElderlyCertificate, HighCostLimit, IncomeBand, Person, QualificationRecord, SpecificDisease,
};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use time::{Date, Duration, Month};

use super::tables::{Catalog, Insurer, Place, FAMILY_NAMES, FEMALE_NAMES, MALE_NAMES, PLACES};
use crate::TestbedError;

/// Every 番号 is this plus the index of the person the card's household is anchored at: eight
/// digits, unique per anchor, and growing with the person index so the store's index on the
/// numbers is appended to rather than written all over (see `docs/world.md`).
pub const NUMBER_BASE: usize = 10_000_000;

/// Which kind of insurer a record is with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// 協会けんぽ (法別 01).
    Kyokai,
    /// 船員保険 (法別 02).
    Senin,
    /// A 健康保険組合 (法別 06).
    Kumiai,
    /// A 共済組合 (法別 31–34).
    Kyosai,
    /// Municipal 国民健康保険 (6-digit insurer number).
    Kokuho,
    /// 後期高齢者医療 (法別 39).
    Koki,
}

impl Scheme {
    /// Employee insurance (被用者保険): 本人 and 家族 (被扶養者).
    pub fn is_employee(self) -> bool {
        matches!(
            self,
            Self::Kyokai | Self::Senin | Self::Kumiai | Self::Kyosai
        )
    }
}

/// The card numbers shared by everyone insured through one membership (an employee and their
/// dependants, a 国保 household), at one insurer.
#[derive(Debug, Clone)]
pub struct Membership {
    pub scheme: Scheme,
    pub insurer: Insurer,
    /// 記号; `None` for 後期高齢者医療.
    pub symbol: Option<String>,
    /// 番号.
    pub number: String,
    /// 被保険者 (世帯主 for 国保).
    pub insured_person_name: String,
}

/// One coverage period of one person to turn into a record.
#[derive(Debug, Clone)]
pub struct Coverage {
    /// 1 本人, 2 家族.
    pub personal_family: u8,
    /// 枝番 (2 digits); `None` for 後期高齢者医療.
    pub branch: Option<String>,
    pub from: Date,
    pub lost: Option<(Date, &'static str)>,
    pub income: IncomeBand,
    pub with_limit: bool,
    /// 特定疾病: (category, monthly cap in yen).
    pub diseases: Vec<(u8, u32)>,
}

pub(crate) fn date_err(what: &str) -> TestbedError {
    TestbedError::Date(what.to_owned())
}

pub(crate) fn add_days(d: Date, days: i64) -> Result<Date, TestbedError> {
    d.checked_add(Duration::days(days))
        .ok_or_else(|| date_err("adding days"))
}

fn ymd(year: i32, month: Month, day: u8) -> Result<Date, TestbedError> {
    Date::from_calendar_date(year, month, day).map_err(|e| date_err(&e.to_string()))
}

/// The last 1 August on or before `d`: 高齢受給者証 and 限度額 periods run August to July.
pub(crate) fn period_start(d: Date) -> Result<Date, TestbedError> {
    let this_year = ymd(d.year(), Month::August, 1)?;
    if d >= this_year {
        Ok(this_year)
    } else {
        ymd(d.year() - 1, Month::August, 1)
    }
}

/// The first 31 July on or after `d`.
pub(crate) fn period_end(d: Date) -> Result<Date, TestbedError> {
    let this_year = ymd(d.year(), Month::July, 31)?;
    if d <= this_year {
        Ok(this_year)
    } else {
        ymd(d.year() + 1, Month::July, 31)
    }
}

/// The 番号 of a membership anchored at person `anchor`.
pub fn card_number(anchor: usize) -> String {
    (NUMBER_BASE + anchor).to_string()
}

/// 枝番 `n` as two digits.
pub fn branch(n: usize) -> String {
    format!("{:02}", n.min(99))
}

/// A seeded generator for one unit of the population.
pub struct Gen<'a> {
    pub rng: ChaCha8Rng,
    pub today: Date,
    pub catalog: &'a Catalog,
}

impl std::fmt::Debug for Gen<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gen")
            .field("today", &self.today)
            .finish_non_exhaustive()
    }
}

impl<'a> Gen<'a> {
    pub fn below(&mut self, n: usize) -> usize {
        self.rng.gen_range(0..n.max(1))
    }

    pub fn between(&mut self, lo: u32, hi: u32) -> u32 {
        self.rng.gen_range(lo..=hi.max(lo))
    }

    /// True with probability `per_mille` / 1000.
    pub fn chance(&mut self, per_mille: u32) -> bool {
        self.rng.gen_range(0..1000) < per_mille
    }

    pub fn percent(&mut self, p: u32) -> bool {
        self.chance(p * 10)
    }

    /// Roughly standard normal (the sum of four uniforms, scaled): bounded at ±3.5, so every
    /// drawn measurement stays plausible.
    pub fn normal(&mut self) -> f64 {
        let s: f64 = (0..4).map(|_| self.rng.gen::<f64>()).sum();
        (s - 2.0) * 3f64.sqrt()
    }

    pub fn weighted<T: Copy>(&mut self, table: &[(u32, T)]) -> Option<T> {
        let total: u32 = table.iter().map(|(w, _)| w).sum();
        let mut r = self.rng.gen_range(0..total.max(1));
        for (w, v) in table {
            if r < *w {
                return Some(*v);
            }
            r -= w;
        }
        table.last().map(|(_, v)| *v)
    }

    /// A birth date giving exactly `age` today.
    pub fn birth_for_age(&mut self, age: u32) -> Result<Date, TestbedError> {
        let years = i32::try_from(age).map_err(|_| date_err("age"))?;
        // Born `age` years ago today is the latest possible date; go back up to 364 days.
        let latest = birthday_in(self.today, self.today.year() - years);
        let back = i64::from(self.between(0, 364));
        let candidate = add_days(latest, -back)?;
        Ok(if age_on(candidate, self.today) == age {
            candidate
        } else {
            latest
        })
    }

    /// A date between `from` and `to` inclusive (or `from` if the range is empty).
    pub fn date_between(&mut self, from: Date, to: Date) -> Result<Date, TestbedError> {
        let span = (to - from).whole_days();
        if span <= 0 {
            return Ok(from);
        }
        let span = u32::try_from(span).unwrap_or(u32::MAX);
        add_days(from, i64::from(self.between(0, span)))
    }

    /// When someone's employment (or membership) started: at 18 at the earliest, within the
    /// last `max_years`, and at least a month ago (or at birth for a baby).
    pub fn start_date(&mut self, birth: Date, max_years: i32) -> Result<Date, TestbedError> {
        let adult = birthday_in(birth, birth.year() + 18);
        let earliest = birthday_in(self.today, self.today.year() - max_years).max(adult);
        let latest = add_days(self.today, -30)?.max(birth);
        self.date_between(earliest.min(latest), latest)
    }

    /// Income under 70: 現役並みⅢ–Ⅰ, 一般, 低所得 (brackets ア–オ).
    pub fn income_under_70(&mut self) -> IncomeBand {
        use IncomeBand::*;
        self.weighted(&[
            (3, ActiveIII),
            (7, ActiveII),
            (30, ActiveI),
            (45, General),
            (10, LowII),
            (5, LowI),
        ])
        .unwrap_or(General)
    }

    /// Income from 70: mostly 一般; about one in ten 現役並み.
    pub fn income_70_plus(&mut self) -> IncomeBand {
        use IncomeBand::*;
        self.weighted(&[
            (2, ActiveIII),
            (3, ActiveII),
            (5, ActiveI),
            (55, General),
            (20, GeneralII),
            (10, LowII),
            (5, LowI),
        ])
        .unwrap_or(General)
    }

    /// An income band for someone of `age`.
    pub fn income_for(&mut self, age: u32) -> IncomeBand {
        if age >= 70 {
            self.income_70_plus()
        } else {
            self.income_under_70()
        }
    }

    pub fn place_index(&mut self) -> usize {
        let mut r = self
            .rng
            .gen_range(0..self.catalog.place_weight_total.max(1));
        for (i, p) in PLACES.iter().enumerate() {
            if r < p.weight {
                return i;
            }
            r -= p.weight;
        }
        0
    }

    /// A household's address in `place`: block numbers, sometimes a flat.
    pub fn address(&mut self, place: &Place) -> String {
        let (a, b, c) = (self.between(1, 5), self.between(1, 20), self.between(1, 30));
        if self.percent(40) {
            let room = self.between(1, 12) * 100 + self.between(1, 8);
            format!("{}{}{a}-{b}-{c}-{room}", place.pref_name, place.town)
        } else {
            format!("{}{}{a}-{b}-{c}", place.pref_name, place.town)
        }
    }

    pub fn family_name(&mut self) -> (&'static str, &'static str) {
        FAMILY_NAMES[self.below(FAMILY_NAMES.len())]
    }

    /// A given name common for the sex and the birth year.
    pub fn given_name(&mut self, sex: u8, birth_year: i32) -> (&'static str, &'static str) {
        let generation = match birth_year {
            ..=1954 => 0,
            1955..=1984 => 1,
            _ => 2,
        };
        let list = if sex == 1 {
            &MALE_NAMES[generation]
        } else {
            &FEMALE_NAMES[generation]
        };
        list[self.below(list.len())]
    }

    /// Whether someone of `age` has registered their card for insurance use.
    pub fn registered(&mut self, age: u32) -> bool {
        let per_cent = match age {
            0..=14 => 55,
            15..=64 => 80,
            _ => 85,
        };
        self.percent(per_cent)
    }

    /// A person of `age` in a household with `family` name at `address`.
    #[allow(clippy::too_many_arguments)]
    pub fn person(
        &mut self,
        index: usize,
        age: u32,
        sex: u8,
        family: (&str, &str),
        place: &Place,
        address: &str,
        registered: Option<bool>,
    ) -> Result<Person, TestbedError> {
        let birth_date = self.birth_for_age(age)?;
        let (given, given_kana) = self.given_name(sex, birth_date.year());
        let registered_for_insurance = match registered {
            Some(r) => r,
            None => self.registered(age),
        };
        Ok(Person {
            id: person_id(index),
            name: format!("{}\u{3000}{given}", family.0),
            kana_name: format!("{} {given_kana}", family.1),
            sex,
            birth_date,
            address: address.to_owned(),
            postcode: place.postcode.to_owned(),
            registered_for_insurance,
        })
    }

    /// An insurer of `scheme` for someone living in place `place_index`.
    pub fn insurer(&mut self, scheme: Scheme, place_index: usize) -> Insurer {
        let catalog = self.catalog;
        let local = &catalog.local[place_index.min(catalog.local.len().saturating_sub(1))];
        match scheme {
            Scheme::Kyokai => local.kyokai.clone(),
            Scheme::Senin => catalog.senin.clone(),
            Scheme::Kumiai => catalog.kumiai[self.below(catalog.kumiai.len())].clone(),
            Scheme::Kyosai => {
                // Local government, police and schools of the prefecture, or a national one.
                let n = local.kyosai.len() + catalog.national_kyosai.len();
                let i = self.below(n);
                match local.kyosai.get(i) {
                    Some(k) => k.clone(),
                    None => catalog.national_kyosai[i - local.kyosai.len()].clone(),
                }
            }
            Scheme::Kokuho => local.kokuho.clone(),
            Scheme::Koki => local.koki.clone(),
        }
    }

    /// The 記号 of a new membership: the employer's office (事業所) code, a 国保 district.
    pub fn symbol(&mut self, scheme: Scheme) -> Option<String> {
        Some(match scheme {
            Scheme::Kyokai | Scheme::Senin => self.between(1_000_000, 89_999_999).to_string(),
            Scheme::Kumiai => self.between(1, 9_999).to_string(),
            Scheme::Kyosai => self.between(10, 99_999).to_string(),
            Scheme::Kokuho => format!("{:02}", self.between(1, 99)),
            Scheme::Koki => return None,
        })
    }

    /// A membership anchored at person `anchor` (whose index makes the 番号).
    pub fn membership(
        &mut self,
        scheme: Scheme,
        place_index: usize,
        anchor: usize,
        insured_person_name: &str,
    ) -> Membership {
        Membership {
            scheme,
            insurer: self.insurer(scheme, place_index),
            symbol: self.symbol(scheme),
            number: card_number(anchor),
            insured_person_name: insured_person_name.to_owned(),
        }
    }

    /// An employee insurer drawn by national shares: 協会けんぽ, 組合, 共済, 船員.
    pub fn employee_scheme(&mut self) -> Scheme {
        self.weighted(&[
            (52, Scheme::Kyokai),
            (33, Scheme::Kumiai),
            (12, Scheme::Kyosai),
            (1, Scheme::Senin),
        ])
        .unwrap_or(Scheme::Kyokai)
    }

    /// 特定疾病療養受療証 someone of `age` and `sex` holds (rare).
    pub fn specific_diseases(&mut self, age: u32, sex: u8, income: IncomeBand) -> Vec<(u8, u32)> {
        let mut out = Vec::new();
        let dialysis_per_100k = match age {
            0..=29 => 20,
            30..=59 => 200,
            _ => 600,
        };
        if self.rng.gen_range(0..100_000) < dialysis_per_100k {
            // 人工透析 of a high earner under 70: 20,000 yen a month.
            let cap = if age < 70 && income.is_active() {
                20_000
            } else {
                10_000
            };
            out.push((1, cap));
        }
        if sex == 1 && self.rng.gen_range(0..100_000) < 20 {
            out.push((2, 10_000));
        }
        if self.rng.gen_range(0..100_000) < 5 {
            out.push((3, 10_000));
        }
        out
    }

    /// The record of `person`'s coverage `cov` through `m`.
    pub fn record(
        &mut self,
        person: &Person,
        m: &Membership,
        cov: &Coverage,
    ) -> Result<QualificationRecord, TestbedError> {
        // The record is described as of today, or as of its last day if it was lost.
        let as_of = match cov.lost {
            Some((until, _)) => add_days(until, -1)?.min(self.today),
            None => self.today,
        };
        let is_koki = m.scheme == Scheme::Koki;
        let age = age_on(person.birth_date, as_of);
        let card_issue_date = add_days(cov.from, i64::from(self.between(3, 20)))?
            .min(as_of)
            .max(cov.from);
        // 国保 and 後期 cards are renewed every August; employee cards run until loss.
        let card_expiry = match m.scheme {
            Scheme::Kokuho | Scheme::Koki => Some(period_end(as_of)?),
            _ => None,
        };

        let elderly = if !is_koki && as_of >= elderly_start(person.birth_date) {
            let from = period_start(as_of)?
                .max(elderly_start(person.birth_date))
                .max(cov.from);
            let until = period_end(as_of)?.min(add_days(koki_start(person.birth_date), -1)?);
            Some(ElderlyCertificate {
                valid_from: from,
                valid_until: until.max(from),
                copay_ratio: copay_ratio(person.birth_date, as_of, false, cov.income).to_owned(),
            })
        } else {
            None
        };

        let high_cost_limit = if cov.with_limit {
            use IncomeBand::*;
            // Under 70 every bracket comes with a 限度額適用認定証 (or, for low income, the
            // 減額認定証); from 70 only 現役並みⅠ/Ⅱ and low income need one.
            let certificate_type = match (age < 70, cov.income) {
                (_, LowI | LowII) => Some("02"),
                (true, _) | (false, ActiveI | ActiveII) => Some("01"),
                _ => None,
            };
            Some(HighCostLimit {
                certificate_type: certificate_type.map(str::to_owned),
                bracket: limit_bracket(age, cov.income).to_owned(),
                valid_from: period_start(as_of)?.max(cov.from),
                valid_until: period_end(as_of)?,
            })
        } else {
            None
        };

        let specific_diseases = cov
            .diseases
            .iter()
            .map(|&(category, monthly_cap_yen)| {
                Ok(SpecificDisease {
                    category,
                    monthly_cap_yen,
                    valid_from: cov.from,
                    // Renewed yearly like the other certificates; shown a period ahead.
                    valid_until: period_end(add_days(period_end(as_of)?, 1)?)?,
                })
            })
            .collect::<Result<Vec<_>, TestbedError>>()?;

        Ok(QualificationRecord {
            person_id: person.id.clone(),
            insured_card_classification: "01".into(),
            insurer_number: m.insurer.number.clone(),
            insurer_name: m.insurer.name.clone(),
            symbol: m.symbol.clone(),
            number: m.number.clone(),
            branch: if is_koki { None } else { cov.branch.clone() },
            // 国保 and 後期 have no 本人/家族 distinction: everyone is a 被保険者.
            personal_family: if m.scheme.is_employee() {
                cov.personal_family
            } else {
                1
            },
            insured_person_name: m.insured_person_name.clone(),
            qualification_date: cov.from,
            disqualification_date: cov.lost.map(|(d, _)| d),
            loss_reason: cov.lost.map(|(_, r)| r.to_owned()),
            card_issue_date,
            card_valid_from: cov.from,
            card_expiry,
            copay_ratio: copay_ratio(person.birth_date, as_of, is_koki, cov.income).to_owned(),
            preschool: is_preschool(person.birth_date, as_of),
            elderly,
            high_cost_limit,
            specific_diseases,
        })
    }
}

/// `P` and the 1-based index in nine digits.
pub fn person_id(index: usize) -> String {
    format!("P{:09}", index + 1)
}

/// The 0-based index of a person id, for tests and examples.
pub fn person_index(id: &str) -> Option<usize> {
    id.strip_prefix('P')?.parse::<usize>().ok()?.checked_sub(1)
}
