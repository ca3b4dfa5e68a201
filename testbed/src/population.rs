//! The synthetic population: persons with kanji names, half-width katakana readings and
//! addresses from small built-in lists, and their insurance qualification records.
//!
//! A first model, realistic-looking rather than statistically faithful: ages and insurers follow
//! rough national proportions, co-pay ratios, 高齢受給者証 and brackets follow the rules of
//! [`onshi_confirm_service::eligibility`], and a few percent of people have changed insurer
//! (an old lost record and a current one), lost their only qualification, or have none.
//!
//! The first persons belong to the cards, in card order, each shaped for its card's role
//! (see [`CardPlan`]); the rest carry no card.

use onshi_confirm_service::eligibility::{
    age_on, birthday_in, copay_ratio, elderly_start, is_preschool, koki_start, limit_bracket,
    ElderlyCertificate, HighCostLimit, IncomeBand, InsurerNumber, Person, QualificationRecord,
    SpecificDisease,
};
use rand::Rng;
use rand_chacha::ChaCha20Rng;
use time::{Date, Duration, Month};

use crate::manifest::CardKind;
use crate::TestbedError;

/// What the holder of a card looks like to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// 協会けんぽ 本人, 3割, with a high-cost bracket (限度額 A03).
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

/// The plan of card `index` (0-based): the six fixed roles, then a cycle of varied holders.
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
            "valid, registered; 協会けんぽ 本人, 3割, 限度額区分 A03 (validity 1)",
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
            "certificate expired yesterday; holder otherwise valid",
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
        _ => match (index - 6) % 4 {
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
            _ => plan(
                CardKind::Valid,
                Holder::Kokuho,
                true,
                "valid, registered; 国保 (6-digit insurer number), 特定疾病 dialysis",
            ),
        },
    }
}

/// Everyone in the world and their records.
#[derive(Debug, Clone, Default)]
pub struct Population {
    /// Card holders first, in card order.
    pub persons: Vec<Person>,
    pub records: Vec<QualificationRecord>,
}

struct Place {
    pref_code: &'static str,
    pref_name: &'static str,
    /// The prefecture without 都/府/県, as 協会けんぽ branches are named.
    pref_short: &'static str,
    municipality: &'static str,
    /// 3-digit municipality part of insurer numbers.
    muni_code: &'static str,
    town: &'static str,
    postcode: &'static str,
}

const fn place(
    pref_code: &'static str,
    pref_name: &'static str,
    pref_short: &'static str,
    municipality: &'static str,
    muni_code: &'static str,
    town: &'static str,
    postcode: &'static str,
) -> Place {
    Place {
        pref_code,
        pref_name,
        pref_short,
        municipality,
        muni_code,
        town,
        postcode,
    }
}

const PLACES: [Place; 10] = [
    place(
        "13",
        "東京都",
        "東京",
        "千代田区",
        "101",
        "千代田区丸の内",
        "100-0005",
    ),
    place(
        "13",
        "東京都",
        "東京",
        "新宿区",
        "104",
        "新宿区西新宿",
        "160-0023",
    ),
    place(
        "13",
        "東京都",
        "東京",
        "世田谷区",
        "112",
        "世田谷区太子堂",
        "154-0004",
    ),
    place(
        "27",
        "大阪府",
        "大阪",
        "大阪市",
        "100",
        "大阪市北区梅田",
        "530-0001",
    ),
    place(
        "14",
        "神奈川県",
        "神奈川",
        "横浜市",
        "100",
        "横浜市西区みなとみらい",
        "220-0012",
    ),
    place(
        "23",
        "愛知県",
        "愛知",
        "名古屋市",
        "100",
        "名古屋市中村区名駅",
        "450-0002",
    ),
    place(
        "01",
        "北海道",
        "北海道",
        "札幌市",
        "100",
        "札幌市中央区北一条西",
        "060-0001",
    ),
    place(
        "40",
        "福岡県",
        "福岡",
        "福岡市",
        "130",
        "福岡市博多区博多駅前",
        "812-0011",
    ),
    place(
        "26",
        "京都府",
        "京都",
        "京都市",
        "100",
        "京都市下京区烏丸通",
        "600-8216",
    ),
    place(
        "12",
        "千葉県",
        "千葉",
        "千葉市",
        "100",
        "千葉市中央区中央",
        "260-0013",
    ),
];

/// Family names with their half-width katakana readings.
const FAMILY_NAMES: [(&str, &str); 20] = [
    ("佐藤", "ｻﾄｳ"),
    ("鈴木", "ｽｽﾞｷ"),
    ("高橋", "ﾀｶﾊｼ"),
    ("田中", "ﾀﾅｶ"),
    ("伊藤", "ｲﾄｳ"),
    ("渡辺", "ﾜﾀﾅﾍﾞ"),
    ("山本", "ﾔﾏﾓﾄ"),
    ("中村", "ﾅｶﾑﾗ"),
    ("小林", "ｺﾊﾞﾔｼ"),
    ("加藤", "ｶﾄｳ"),
    ("吉田", "ﾖｼﾀﾞ"),
    ("山田", "ﾔﾏﾀﾞ"),
    ("佐々木", "ｻｻｷ"),
    ("山口", "ﾔﾏｸﾞﾁ"),
    ("松本", "ﾏﾂﾓﾄ"),
    ("井上", "ｲﾉｳｴ"),
    ("木村", "ｷﾑﾗ"),
    ("林", "ﾊﾔｼ"),
    ("斎藤", "ｻｲﾄｳ"),
    ("清水", "ｼﾐｽﾞ"),
];

const MALE_NAMES: [(&str, &str); 12] = [
    ("太郎", "ﾀﾛｳ"),
    ("健", "ｹﾝ"),
    ("翔太", "ｼｮｳﾀ"),
    ("大輔", "ﾀﾞｲｽｹ"),
    ("誠", "ﾏｺﾄ"),
    ("蓮", "ﾚﾝ"),
    ("悠真", "ﾕｳﾏ"),
    ("浩", "ﾋﾛｼ"),
    ("隆", "ﾀｶｼ"),
    ("修", "ｵｻﾑ"),
    ("陽翔", "ﾊﾙﾄ"),
    ("一郎", "ｲﾁﾛｳ"),
];

const FEMALE_NAMES: [(&str, &str); 12] = [
    ("花子", "ﾊﾅｺ"),
    ("陽子", "ﾖｳｺ"),
    ("美咲", "ﾐｻｷ"),
    ("結衣", "ﾕｲ"),
    ("恵子", "ｹｲｺ"),
    ("由美", "ﾕﾐ"),
    ("陽菜", "ﾋﾅ"),
    ("さくら", "ｻｸﾗ"),
    ("裕子", "ﾕｳｺ"),
    ("幸子", "ｻﾁｺ"),
    ("芽依", "ﾒｲ"),
    ("和子", "ｶｽﾞｺ"),
];

/// Health insurance societies (組合): 7-digit bodies (法別 06) and names. Invented names.
const KUMIAI: [(&str, &str); 4] = [
    ("0613101", "みらい電機健康保険組合"),
    ("0613205", "さくら商事健康保険組合"),
    ("0627310", "なにわ製薬健康保険組合"),
    ("0623412", "あおば運輸健康保険組合"),
];

/// Which insurer a record is with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    /// 協会けんぽ (法別 01), the prefecture's branch.
    Kyokai,
    /// A 健康保険組合 (法別 06).
    Kumiai,
    /// A 共済組合 (法別 31–34).
    Kyosai,
    /// Municipal 国民健康保険 (6-digit insurer number).
    Kokuho,
    /// 後期高齢者医療 (法別 39).
    Koki,
}

/// One coverage period to turn into a record.
struct Coverage {
    scheme: Scheme,
    /// 1 本人, 2 家族.
    personal_family: u8,
    from: Date,
    lost: Option<(Date, &'static str)>,
    income: IncomeBand,
    with_limit: bool,
    diseases: Vec<(u8, u32)>,
}

impl Coverage {
    fn new(scheme: Scheme, personal_family: u8, from: Date, income: IncomeBand) -> Self {
        Coverage {
            scheme,
            personal_family,
            from,
            lost: None,
            income,
            with_limit: false,
            diseases: Vec::new(),
        }
    }
}

struct Generator {
    rng: ChaCha20Rng,
    today: Date,
}

fn date_err(what: &str) -> TestbedError {
    TestbedError::Date(what.to_owned())
}

fn add_days(d: Date, days: i64) -> Result<Date, TestbedError> {
    d.checked_add(Duration::days(days))
        .ok_or_else(|| date_err("adding days"))
}

fn ymd(year: i32, month: Month, day: u8) -> Result<Date, TestbedError> {
    Date::from_calendar_date(year, month, day).map_err(|e| date_err(&e.to_string()))
}

/// The last 1 August on or before `d`: 高齢受給者証 and 限度額 periods run August to July.
fn period_start(d: Date) -> Result<Date, TestbedError> {
    let this_year = ymd(d.year(), Month::August, 1)?;
    if d >= this_year {
        Ok(this_year)
    } else {
        ymd(d.year() - 1, Month::August, 1)
    }
}

/// The first 31 July on or after `d`.
fn period_end(d: Date) -> Result<Date, TestbedError> {
    let this_year = ymd(d.year(), Month::July, 31)?;
    if d <= this_year {
        Ok(this_year)
    } else {
        ymd(d.year() + 1, Month::July, 31)
    }
}

impl Generator {
    fn below(&mut self, n: usize) -> usize {
        self.rng.gen_range(0..n.max(1))
    }

    fn between(&mut self, lo: u32, hi: u32) -> u32 {
        self.rng.gen_range(lo..=hi.max(lo))
    }

    fn percent(&mut self, p: u32) -> bool {
        self.rng.gen_range(0..100) < p
    }

    fn weighted<T: Copy>(&mut self, table: &[(u32, T)]) -> Option<T> {
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
    fn birth_for_age(&mut self, age: u32) -> Result<Date, TestbedError> {
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
    fn date_between(&mut self, from: Date, to: Date) -> Result<Date, TestbedError> {
        let span = (to - from).whole_days();
        if span <= 0 {
            return Ok(from);
        }
        let span = u32::try_from(span).unwrap_or(u32::MAX);
        add_days(from, i64::from(self.between(0, span)))
    }

    fn income_under_70(&mut self) -> IncomeBand {
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

    fn income_70_plus(&mut self) -> IncomeBand {
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

    fn given_name(&mut self, sex: u8) -> (&'static str, &'static str) {
        let list = if sex == 1 { &MALE_NAMES } else { &FEMALE_NAMES };
        list[self.below(list.len())]
    }

    fn person(
        &mut self,
        index: usize,
        age: u32,
        registered: bool,
    ) -> Result<(Person, usize), TestbedError> {
        let sex = if self.percent(50) { 1 } else { 2 };
        let (family, family_kana) = FAMILY_NAMES[self.below(FAMILY_NAMES.len())];
        let (given, given_kana) = self.given_name(sex);
        let place_index = self.below(PLACES.len());
        let place = &PLACES[place_index];
        let address = format!(
            "{}{}{}-{}-{}",
            place.pref_name,
            place.town,
            self.between(1, 5),
            self.between(1, 20),
            self.between(1, 30)
        );
        Ok((
            Person {
                id: format!("P{:09}", index + 1),
                name: format!("{family}\u{3000}{given}"),
                kana_name: format!("{family_kana} {given_kana}"),
                sex,
                birth_date: self.birth_for_age(age)?,
                address,
                postcode: place.postcode.to_owned(),
                registered_for_insurance: registered,
            },
            place_index,
        ))
    }

    /// The name of the insured person (被保険者, or 世帯主 for 国保) of someone's household:
    /// the same family name, another given name.
    fn household_head(&mut self, person: &Person) -> String {
        let family = person.name.split('\u{3000}').next().unwrap_or("");
        let sex = if person.sex == 1 { 2 } else { 1 };
        let (given, _) = self.given_name(sex);
        format!("{family}\u{3000}{given}")
    }

    fn insurer(
        &mut self,
        scheme: Scheme,
        place: &Place,
    ) -> Result<(InsurerNumber, String), TestbedError> {
        let (body, name) = match scheme {
            Scheme::Kyokai => (
                format!("01{}001", place.pref_code),
                format!("全国健康保険協会 {}支部", place.pref_short),
            ),
            Scheme::Kumiai => {
                let (body, name) = KUMIAI[self.below(KUMIAI.len())];
                (body.to_owned(), name.to_owned())
            }
            Scheme::Kyosai => match self.below(3) {
                0 => ("3113011".to_owned(), "国家公務員共済組合 総務省".to_owned()),
                1 => (
                    format!("32{}001", place.pref_code),
                    format!("地方職員共済組合 {}支部", place.pref_short),
                ),
                _ => (
                    format!("33{}001", place.pref_code),
                    format!("公立学校共済組合 {}支部", place.pref_short),
                ),
            },
            Scheme::Kokuho => (
                format!("{}{}", place.pref_code, place.muni_code),
                place.municipality.to_owned(),
            ),
            Scheme::Koki => (
                format!("39{}{}", place.pref_code, place.muni_code),
                format!("{}後期高齢者医療広域連合", place.pref_name),
            ),
        };
        Ok((InsurerNumber::with_check_digit(&body)?, name))
    }

    fn record(
        &mut self,
        person: &Person,
        place: &Place,
        insured_person_name: &str,
        cov: Coverage,
    ) -> Result<QualificationRecord, TestbedError> {
        let (insurer_number, insurer_name) = self.insurer(cov.scheme, place)?;
        let family = cov.personal_family == 2;
        let branch_no = if family { self.between(1, 4) } else { 0 };
        let (symbol, number, branch) = match cov.scheme {
            Scheme::Kyokai => (
                Some(format!("{:08}", self.between(1_000_000, 99_999_999))),
                self.between(1, 999_999).to_string(),
                Some(format!("{branch_no:02}")),
            ),
            Scheme::Kumiai => (
                Some(format!("{:04}", self.between(1, 9_999))),
                self.between(1, 99_999).to_string(),
                Some(format!("{branch_no:02}")),
            ),
            Scheme::Kyosai => (
                Some(format!("{:06}", self.between(1, 999_999))),
                self.between(1, 999_999).to_string(),
                Some(format!("{branch_no:02}")),
            ),
            Scheme::Kokuho => (
                Some(format!("{:03}", self.between(1, 999))),
                format!("{:07}", self.between(1, 9_999_999)),
                Some(format!("{:02}", self.between(1, 6))),
            ),
            // 後期高齢者医療: 番号 only, no 記号, no 枝番.
            Scheme::Koki => (None, format!("{:08}", self.between(1, 99_999_999)), None),
        };

        // The record is described as of today, or as of its last day if it was lost.
        let as_of = match cov.lost {
            Some((until, _)) => add_days(until, -1)?.min(self.today),
            None => self.today,
        };
        let is_koki = cov.scheme == Scheme::Koki;
        let age = age_on(person.birth_date, as_of);
        let card_issue_date = add_days(cov.from, i64::from(self.between(3, 20)))?.min(as_of);
        // 国保 and 後期 cards are renewed every August; employee cards run until loss.
        let card_expiry = match cov.scheme {
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
                valid_until: until,
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
            insurer_number,
            insurer_name,
            symbol,
            number,
            branch,
            // 国保 and 後期 have no 本人/家族 distinction: everyone is a 被保険者.
            personal_family: match cov.scheme {
                Scheme::Kokuho | Scheme::Koki => 1,
                _ => cov.personal_family,
            },
            insured_person_name: insured_person_name.to_owned(),
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

    /// When someone's employment (or membership) started: at 18 at the earliest, within the
    /// last `max_years`, and at least a month ago.
    fn start_date(&mut self, birth: Date, max_years: i32) -> Result<Date, TestbedError> {
        let adult = birthday_in(birth, birth.year() + 18);
        let earliest = birthday_in(self.today, self.today.year() - max_years).max(adult);
        let latest = add_days(self.today, -30)?;
        self.date_between(earliest.min(latest), latest)
    }

    /// The card holder of `plan`.
    fn card_holder(
        &mut self,
        index: usize,
        plan: &CardPlan,
    ) -> Result<(Person, Vec<QualificationRecord>), TestbedError> {
        let age = match plan.holder {
            Holder::Standard | Holder::Kokuho => self.between(35, 60),
            Holder::Employee | Holder::Lost | Holder::Multiple => self.between(25, 60),
            Holder::Koki => self.between(77, 90),
            Holder::PreschoolChild => self.between(2, 4),
            Holder::Elderly => self.between(71, 73),
        };
        let (person, place_index) = self.person(index, age, plan.registered)?;
        let place = &PLACES[place_index];
        let own = person.name.clone();
        let records = match plan.holder {
            Holder::Standard => {
                let from = self.start_date(person.birth_date, 15)?;
                let mut cov = Coverage::new(Scheme::Kyokai, 1, from, IncomeBand::ActiveI);
                cov.with_limit = true;
                vec![self.record(&person, place, &own, cov)?]
            }
            Holder::Employee => {
                let scheme = if index % 2 == 0 {
                    Scheme::Kyokai
                } else {
                    Scheme::Kumiai
                };
                let from = self.start_date(person.birth_date, 15)?;
                let income = self.income_under_70();
                vec![self.record(&person, place, &own, Coverage::new(scheme, 1, from, income))?]
            }
            Holder::Lost => {
                let until = add_days(self.today, -60)?;
                let from = self
                    .start_date(person.birth_date, 10)?
                    .min(add_days(until, -365)?);
                let mut cov = Coverage::new(Scheme::Kumiai, 1, from, IncomeBand::General);
                cov.lost = Some((until, "03"));
                vec![self.record(&person, place, &own, cov)?]
            }
            Holder::Multiple => {
                let from = self.start_date(person.birth_date, 10)?;
                let a = Coverage::new(Scheme::Kumiai, 1, from, IncomeBand::General);
                let b_from = add_days(self.today, -200)?;
                let b = Coverage::new(Scheme::Kokuho, 1, b_from, IncomeBand::General);
                vec![
                    self.record(&person, place, &own, a)?,
                    self.record(&person, place, &own, b)?,
                ]
            }
            Holder::Koki => {
                let from = koki_start(person.birth_date);
                let cov = Coverage::new(Scheme::Koki, 1, from, IncomeBand::General);
                vec![self.record(&person, place, &own, cov)?]
            }
            Holder::PreschoolChild => {
                let parent = self.household_head(&person);
                let cov = Coverage::new(Scheme::Kumiai, 2, person.birth_date, IncomeBand::General);
                vec![self.record(&person, place, &parent, cov)?]
            }
            Holder::Elderly => {
                let from = self.start_date(person.birth_date, 30)?;
                let cov = Coverage::new(Scheme::Kyosai, 1, from, IncomeBand::General);
                vec![self.record(&person, place, &own, cov)?]
            }
            Holder::Kokuho => {
                let from = self.start_date(person.birth_date, 20)?;
                let mut cov = Coverage::new(Scheme::Kokuho, 1, from, IncomeBand::ActiveI);
                cov.diseases = vec![(1, 10_000)];
                vec![self.record(&person, place, &own, cov)?]
            }
        };
        Ok((person, records))
    }

    /// A person without a card: age, insurer and history drawn from rough proportions.
    fn other(&mut self, index: usize) -> Result<(Person, Vec<QualificationRecord>), TestbedError> {
        let band = self
            .weighted(&[
                (6, (0, 5)),
                (12, (6, 19)),
                (55, (20, 64)),
                (13, (65, 74)),
                (14, (75, 95)),
            ])
            .unwrap_or((20, 64));
        let age = self.between(band.0, band.1);
        let registered = self.percent(85);
        let (person, place_index) = self.person(index, age, registered)?;
        let place = &PLACES[place_index];
        let own = person.name.clone();

        // 1% appear in no insurer's records at all.
        if self.percent(1) {
            return Ok((person, Vec::new()));
        }

        let income = if age >= 70 {
            self.income_70_plus()
        } else {
            self.income_under_70()
        };
        let (scheme, personal_family) = if age >= 75 {
            (Scheme::Koki, 1)
        } else if age < 20 {
            let scheme = self
                .weighted(&[
                    (40, Scheme::Kyokai),
                    (25, Scheme::Kumiai),
                    (10, Scheme::Kyosai),
                    (25, Scheme::Kokuho),
                ])
                .unwrap_or(Scheme::Kyokai);
            (scheme, 2)
        } else if age < 65 {
            let (scheme, family) = self
                .weighted(&[
                    (35, (Scheme::Kyokai, false)),
                    (22, (Scheme::Kumiai, false)),
                    (7, (Scheme::Kyosai, false)),
                    (12, (Scheme::Kyokai, true)),
                    (4, (Scheme::Kumiai, true)),
                    (20, (Scheme::Kokuho, false)),
                ])
                .unwrap_or((Scheme::Kyokai, false));
            (scheme, if family { 2 } else { 1 })
        } else {
            let (scheme, family) = self
                .weighted(&[
                    (70, (Scheme::Kokuho, false)),
                    (15, (Scheme::Kyokai, false)),
                    (5, (Scheme::Kumiai, false)),
                    (10, (Scheme::Kyokai, true)),
                ])
                .unwrap_or((Scheme::Kokuho, false));
            (scheme, if family { 2 } else { 1 })
        };
        let insured = if personal_family == 2 || (scheme == Scheme::Kokuho && age < 20) {
            self.household_head(&person)
        } else {
            own.clone()
        };
        let from = match scheme {
            Scheme::Koki => koki_start(person.birth_date),
            _ if age < 20 => person.birth_date,
            _ => self.start_date(person.birth_date, 25)?,
        };
        let mut current = Coverage::new(scheme, personal_family, from, income);
        current.with_limit = self.percent(10);
        if self.percent(1) {
            current.diseases.push((1, 10_000));
        }

        let mut records = Vec::new();
        let history = self.below(100);
        if history < 3 && age >= 20 {
            // Lost their only qualification: 生活保護開始 or other reasons.
            let until =
                self.date_between(add_days(self.today, -400)?, add_days(self.today, -1)?)?;
            current.from = current.from.min(add_days(until, -90)?);
            current.lost = Some((until, if self.percent(50) { "02" } else { "99" }));
            records.push(self.record(&person, place, &insured, current)?);
        } else if history < 11 && age >= 22 && scheme != Scheme::Koki {
            // Changed insurer: the old record lost (他保険取得) the day the new one started.
            let switch =
                self.date_between(add_days(self.today, -700)?, add_days(self.today, -7)?)?;
            let old_scheme = if scheme == Scheme::Kumiai {
                Scheme::Kyokai
            } else {
                Scheme::Kumiai
            };
            let old_from = self
                .start_date(person.birth_date, 25)?
                .min(add_days(switch, -180)?);
            let mut old = Coverage::new(old_scheme, personal_family, old_from, income);
            old.lost = Some((switch, "03"));
            records.push(self.record(&person, place, &insured, old)?);
            current.from = switch;
            records.push(self.record(&person, place, &insured, current)?);
        } else {
            records.push(self.record(&person, place, &insured, current)?);
        }
        Ok((person, records))
    }
}

/// Generates the population of `persons` people for the cards `plans` (which take the first
/// persons, in order). `today` is the date at the service (JST).
pub fn generate(
    rng: ChaCha20Rng,
    today: Date,
    persons: usize,
    plans: &[CardPlan],
) -> Result<Population, TestbedError> {
    let mut gen = Generator { rng, today };
    let mut population = Population::default();
    for index in 0..persons {
        let (person, records) = match plans.get(index) {
            Some(plan) => gen.card_holder(index, plan)?,
            None => gen.other(index)?,
        };
        population.persons.push(person);
        population.records.extend(records);
    }
    Ok(population)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::rng_for;
    use onshi_confirm_service::eligibility::{assess, Validity};
    use time::macros::date;

    fn plans(n: usize) -> Vec<CardPlan> {
        (0..n).map(card_plan).collect()
    }

    #[test]
    fn card_holders_have_the_records_their_roles_need() {
        let today = date!(2025 - 11 - 24);
        let plans = plans(10);
        let pop = generate(rng_for(1, "population"), today, 50, &plans).unwrap();
        assert_eq!(pop.persons.len(), 50);
        let records = |i: usize| -> Vec<QualificationRecord> {
            let id = &pop.persons[i].id;
            pop.records
                .iter()
                .filter(|r| &r.person_id == id)
                .cloned()
                .collect()
        };
        let validity = |i: usize| assess(&records(i), today).validity;

        assert_eq!(validity(0), Validity::Valid);
        let standard = &records(0)[0];
        assert_eq!(standard.copay_ratio, "030");
        assert_eq!(standard.insurer_number.houbetsu(), Some("01"));
        assert_eq!(
            standard
                .high_cost_limit
                .as_ref()
                .map(|l| l.bracket.as_str()),
            Some("A03")
        );
        for i in 1..4 {
            assert_eq!(validity(i), Validity::Valid, "card {i}");
        }
        assert!(!pop.persons[3].registered_for_insurance);
        assert!(pop.persons[0].registered_for_insurance);
        assert_eq!(validity(4), Validity::Invalid);
        assert_eq!(records(4)[0].loss_reason.as_deref(), Some("03"));
        assert_eq!(validity(5), Validity::Multiple);

        let koki = &records(6)[0];
        assert!(koki.insurer_number.is_koki());
        assert_eq!((koki.symbol.as_ref(), koki.branch.as_ref()), (None, None));
        assert_eq!(koki.copay_ratio, "010");

        let child = &records(7)[0];
        assert!(child.preschool);
        assert_eq!(child.copay_ratio, "020");
        assert_eq!(child.personal_family, 2);

        let elderly = &records(8)[0];
        assert_eq!(elderly.copay_ratio, "020");
        assert!(elderly.elderly.is_some());

        let kokuho = &records(9)[0];
        assert!(kokuho.insurer_number.is_kokuho());
        assert_eq!(kokuho.specific_diseases.len(), 1);
        assert_eq!(kokuho.copay_ratio, "030");
    }

    #[test]
    fn everyone_is_well_formed() {
        let today = date!(2025 - 04 - 01);
        let pop = generate(rng_for(9, "population"), today, 2000, &plans(6)).unwrap();
        for p in &pop.persons {
            assert!(p.name.contains('\u{3000}'));
            assert!(p
                .kana_name
                .chars()
                .all(|c| c == ' ' || ('\u{FF61}'..='\u{FF9F}').contains(&c)));
            assert!(p.postcode.len() == 8 && p.postcode.as_bytes()[3] == b'-');
            assert!(p.birth_date <= today);
        }
        for r in &pop.records {
            assert!(["010", "020", "030"].contains(&r.copay_ratio.as_str()));
            assert!(r.qualification_date <= today, "{r:?}");
            assert!(r.card_issue_date >= r.qualification_date, "{r:?}");
            assert!(r.card_issue_date <= today, "{r:?}");
            if let Some(d) = r.disqualification_date {
                assert!(d > r.qualification_date, "{r:?}");
                assert!(r.loss_reason.is_some());
            }
            if let Some(e) = &r.elderly {
                assert!(e.valid_from <= e.valid_until, "{r:?}");
            }
            if let Some(b) = &r.branch {
                assert_eq!(b.len(), 2);
            }
        }
        // The mix has every kind of insurer.
        let has = |f: &dyn Fn(&QualificationRecord) -> bool| pop.records.iter().any(f);
        assert!(has(&|r| r.insurer_number.is_kokuho()));
        assert!(has(&|r| r.insurer_number.is_koki()));
        assert!(has(&|r| r.insurer_number.houbetsu() == Some("06")));
        assert!(has(&|r| r.elderly.is_some()));
        assert!(has(&|r| r.loss_reason.as_deref() == Some("03")));
    }
}
