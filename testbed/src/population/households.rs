//! Households: who lives together, and how each of them is insured.
//!
//! A household has a head (世帯主) and maybe a spouse, children and a parent of the head, all
//! with the head's family name and address. Its insurance follows the head: an employee's
//! dependants (被扶養者) are 家族 on the employee's card, sharing its 記号・番号 with their own
//! 枝番 (00 the employee, 01, 02, … the family); a 国保 household shares one 記号・番号 with a 枝番
//! per member and the 世帯主 as insured person, even when the 世帯主 is in 後期高齢者医療; from 75
//! everyone has their own 後期高齢者医療 card (no 記号, no 枝番). Working spouses and adult
//! children have their own employee cards.

use onshi_confirm_service::eligibility::{koki_start, IncomeBand};

use super::clinical;
use super::gen::{add_days, branch, Coverage, Gen, Membership, Scheme};
use super::tables::PLACES;
use super::Generated;
use crate::TestbedError;

/// Households the generator makes on purpose, so every world has an example of them
/// (the first households after the card holders).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forced {
    /// A couple whose employee head changed insurer 90 days ago: the old card's numbers give
    /// 無効（新しい資格あり）.
    ChangedInsurer,
    /// A single person on 生活保護 who never had a qualification: 該当資格なし.
    Uninsured,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Head,
    Spouse,
    Child,
    Parent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Template {
    Single,
    Couple,
    Family,
    SingleParent,
    ThreeGenerations,
}

#[derive(Debug, Clone, Copy)]
struct Member {
    role: Role,
    age: u32,
    sex: u8,
}

/// What happened to one person apart from their household.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Usual,
    /// No qualification at all.
    Uninsured,
    /// Their only qualification was lost for this reason.
    Lost(&'static str),
    /// A second current qualification.
    Second,
}

/// How one member is insured today.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cover {
    /// 本人 on the head's employee card (the head only).
    HeadEmployee,
    /// 家族 on the head's employee card.
    Dependant,
    /// Their own employee card.
    OwnEmployee,
    /// A member of the household's 国保.
    Kokuho,
    /// Their own 後期高齢者医療 card.
    Koki,
}

fn opposite(sex: u8) -> u8 {
    if sex == 1 {
        2
    } else {
        1
    }
}

impl Gen<'_> {
    fn template(&mut self) -> Template {
        self.weighted(&[
            (36, Template::Single),
            (29, Template::Couple),
            (22, Template::Family),
            (6, Template::SingleParent),
            (7, Template::ThreeGenerations),
        ])
        .unwrap_or(Template::Single)
    }

    fn age_in(&mut self, bands: &[(u32, (u32, u32))]) -> u32 {
        let (lo, hi) = self.weighted(bands).unwrap_or((20, 64));
        self.between(lo, hi)
    }

    /// Children of a mother aged `mother_age`: the eldest born when she was 24–36, the others
    /// 1–5 years apart; grown-up children over 29 have left.
    fn children(&mut self, mother_age: u32, count: usize, out: &mut Vec<Member>) {
        let mut age = mother_age.saturating_sub(self.between(24, 36));
        if age > 29 {
            age = self.between(18, 29);
        }
        for i in 0..count {
            if i > 0 {
                let gap = self.between(1, 5);
                if age < gap {
                    break;
                }
                age -= gap;
            }
            let sex = if self.percent(51) { 1 } else { 2 };
            out.push(Member {
                role: Role::Child,
                age,
                sex,
            });
        }
    }

    fn members(&mut self, template: Template) -> Vec<Member> {
        let mut out = Vec::with_capacity(5);
        let head_sex = |g: &mut Self, male_percent| if g.percent(male_percent) { 1 } else { 2 };
        match template {
            Template::Single => {
                let age = self.age_in(&[
                    (22, (20, 39)),
                    (14, (40, 56)),
                    (32, (57, 74)),
                    (32, (75, 95)),
                ]);
                let sex = head_sex(self, if age >= 75 { 35 } else { 55 });
                out.push(Member {
                    role: Role::Head,
                    age,
                    sex,
                });
            }
            Template::Couple | Template::Family | Template::ThreeGenerations => {
                let age = match template {
                    Template::Couple => self.age_in(&[
                        (6, (25, 39)),
                        (10, (40, 56)),
                        (48, (57, 74)),
                        (36, (75, 92)),
                    ]),
                    Template::Family => self.between(30, 57),
                    _ => self.between(35, 55),
                };
                let sex = head_sex(self, 85);
                out.push(Member {
                    role: Role::Head,
                    age,
                    sex,
                });
                let spouse_age = (age + self.between(0, 3)).saturating_sub(self.between(0, 5));
                out.push(Member {
                    role: Role::Spouse,
                    age: spouse_age.max(20),
                    sex: opposite(sex),
                });
                let mother_age = if sex == 2 { age } else { spouse_age };
                match template {
                    Template::Family => {
                        let count = self.weighted(&[(45, 1), (42, 2), (13, 3)]).unwrap_or(1);
                        self.children(mother_age, count, &mut out);
                    }
                    Template::ThreeGenerations => {
                        let count = self.weighted(&[(50, 1), (50, 2)]).unwrap_or(1);
                        self.children(mother_age, count, &mut out);
                        let parent_age = (age + self.between(25, 35)).min(99);
                        let sex = if self.percent(35) { 1 } else { 2 };
                        out.push(Member {
                            role: Role::Parent,
                            age: parent_age,
                            sex,
                        });
                    }
                    _ => {}
                }
            }
            Template::SingleParent => {
                let age = self.between(28, 55);
                let sex = head_sex(self, 15);
                out.push(Member {
                    role: Role::Head,
                    age,
                    sex,
                });
                let count = self.weighted(&[(55, 1), (45, 2)]).unwrap_or(1);
                let mother_age = if sex == 2 { age } else { age.saturating_sub(2) };
                self.children(mother_age, count, &mut out);
            }
        }
        out
    }

    /// How each member is insured, the head first.
    fn covers(&mut self, members: &[Member]) -> Vec<Cover> {
        let head_age = members.first().map_or(40, |m| m.age);
        let head = if head_age >= 75 {
            Cover::Koki
        } else if self.percent(if head_age >= 65 { 25 } else { 82 }) {
            Cover::HeadEmployee
        } else {
            Cover::Kokuho
        };
        let employee_head = head == Cover::HeadEmployee;
        let mut out = vec![head];
        for m in members.iter().skip(1) {
            let cover = if m.age >= 75 {
                Cover::Koki
            } else {
                let works = match m.role {
                    Role::Spouse => m.age < 65 && self.percent(if employee_head { 45 } else { 35 }),
                    Role::Child => m.age >= 23 && self.percent(65),
                    Role::Parent | Role::Head => false,
                };
                if works {
                    Cover::OwnEmployee
                } else if employee_head {
                    Cover::Dependant
                } else {
                    Cover::Kokuho
                }
            };
            out.push(cover);
        }
        out
    }
}

/// The income band that applies to a member of `age` on a card of a head of `head_age` with
/// `band`: 70–74 dependants of a younger head are never 現役並み (that needs a 70+ earner).
fn member_band(band: IncomeBand, head_age: u32, age: u32) -> IncomeBand {
    let active_from_a_younger_head = age >= 70 && head_age < 70 && band.is_active();
    // 一般Ⅱ is a 後期高齢者医療 band; under 70 it is plain 一般.
    if active_from_a_younger_head || (age < 70 && band == IncomeBand::GeneralII) {
        IncomeBand::General
    } else {
        band
    }
}

/// One household starting at person `start`, at most `room` persons.
pub(super) fn household(
    gen: &mut Gen<'_>,
    start: usize,
    room: usize,
    forced: Option<Forced>,
) -> Result<Vec<Generated>, TestbedError> {
    let template = match forced {
        Some(Forced::ChangedInsurer) => Template::Couple,
        Some(Forced::Uninsured) => Template::Single,
        None => gen.template(),
    };
    let mut members = gen.members(template);
    if let Some(f) = forced {
        let head = &mut members[0];
        head.age = match f {
            Forced::ChangedInsurer => 45,
            Forced::Uninsured => 58,
        };
        if let Some(spouse) = members.get_mut(1) {
            spouse.age = 43;
        }
    }
    members.truncate(room.max(1));

    let today = gen.today;
    let place_index = gen.place_index();
    let place = &PLACES[place_index];
    let family = gen.family_name();
    let address = gen.address(place);
    let mut persons = Vec::with_capacity(members.len());
    for (i, m) in members.iter().enumerate() {
        persons.push(gen.person(start + i, m.age, m.sex, family, place, &address, None)?);
    }
    let mut covers = gen.covers(&members);
    if forced == Some(Forced::ChangedInsurer) {
        covers[0] = Cover::HeadEmployee;
        if let Some(c) = covers.get_mut(1) {
            *c = Cover::Dependant;
        }
    }
    let head = &persons[0];
    let head_age = members[0].age;
    let household_band = gen.income_for(head_age);

    // The head's membership: an employee card, or the 国保 household (whose 世帯主 is the head
    // even when the head is in 後期高齢者医療).
    let head_scheme = match covers[0] {
        Cover::HeadEmployee => Some(gen.employee_scheme()),
        _ if covers.contains(&Cover::Kokuho) => Some(Scheme::Kokuho),
        _ => None,
    };
    let mut unit = head_scheme.map(|s| gen.membership(s, place_index, start, &head.name));
    let unit_from = match head_scheme {
        Some(Scheme::Kokuho) => gen.start_date(head.birth_date, 30)?,
        Some(_) => gen.start_date(head.birth_date, 25)?,
        None => today,
    };

    // About one household in fourteen changed the head's insurer in the last two years.
    let changed = match forced {
        Some(Forced::ChangedInsurer) => true,
        Some(Forced::Uninsured) => false,
        None => unit.is_some() && (22..75).contains(&head_age) && gen.percent(7),
    };
    let mut old_unit = None;
    let mut switch = today;
    if let (true, Some(current)) = (changed, unit.as_ref()) {
        switch = if forced.is_some() {
            add_days(today, -90)?
        } else {
            gen.date_between(add_days(today, -700)?, add_days(today, -7)?)?
        };
        let old_scheme = if current.scheme == Scheme::Kokuho || gen.percent(30) {
            // A new job after 国保 (self-employed, between jobs), or the reverse.
            if current.scheme == Scheme::Kokuho {
                gen.employee_scheme()
            } else {
                Scheme::Kokuho
            }
        } else {
            gen.employee_scheme()
        };
        let mut old = gen.membership(old_scheme, place_index, start, &head.name);
        if old.insurer.number == current.insurer.number {
            old = gen.membership(Scheme::Kokuho, place_index, start, &head.name);
        }
        if old.insurer.number != current.insurer.number {
            old_unit = Some(old);
        }
    }
    let unit_from = if old_unit.is_some() {
        switch
    } else {
        unit_from
    };
    let old_from = gen
        .start_date(head.birth_date, 25)?
        .min(add_days(switch, -180)?);

    // 枝番 in the head's membership: 00 for the head if a member, then 01, 02, … in order.
    let mut next_branch = 1;
    let mut out = Vec::with_capacity(persons.len());
    for (i, (person, (m, cover))) in persons
        .into_iter()
        .zip(members.iter().zip(covers.iter().copied()))
        .enumerate()
    {
        let index = start + i;
        let band = match cover {
            Cover::OwnEmployee => gen.income_for(m.age),
            Cover::Koki => gen.income_70_plus(),
            _ => member_band(household_band, head_age, m.age),
        };
        let in_unit = matches!(
            cover,
            Cover::HeadEmployee | Cover::Dependant | Cover::Kokuho
        );
        let branch_no = if !in_unit || i == 0 {
            0
        } else {
            next_branch += 1;
            next_branch - 1
        };
        let personal_family = if i == 0 || cover == Cover::OwnEmployee {
            1
        } else {
            2
        };
        let with_limit = gen.percent(15);
        let diseases = gen.specific_diseases(m.age, m.sex, band);
        let coverage = |from, lost| Coverage {
            personal_family,
            branch: Some(branch(branch_no)),
            from,
            lost,
            income: band,
            with_limit,
            diseases: if lost.is_none() {
                diseases.clone()
            } else {
                Vec::new()
            },
        };

        let mut records = Vec::with_capacity(2);
        let mut own: Option<(Membership, Coverage)> = None;
        match cover {
            Cover::HeadEmployee | Cover::Dependant | Cover::Kokuho => {
                if let Some(u) = unit.as_mut() {
                    if let Some(old) = &old_unit {
                        if person.birth_date < switch {
                            let from = old_from.max(person.birth_date);
                            let cov = coverage(from, Some((switch, "03")));
                            records.push(gen.record(&person, old, &cov)?);
                        }
                    }
                    own = Some((u.clone(), coverage(unit_from.max(person.birth_date), None)));
                }
            }
            Cover::OwnEmployee => {
                let scheme = gen.employee_scheme();
                let m = gen.membership(scheme, place_index, index, &person.name);
                let from = gen.start_date(person.birth_date, 20)?;
                own = Some((
                    m,
                    Coverage {
                        branch: Some(branch(0)),
                        personal_family: 1,
                        ..coverage(from, None)
                    },
                ));
            }
            Cover::Koki => {
                let m = gen.membership(Scheme::Koki, place_index, index, &person.name);
                own = Some((
                    m,
                    Coverage {
                        branch: None,
                        personal_family: 1,
                        ..coverage(koki_start(person.birth_date), None)
                    },
                ));
            }
        }

        // What happened to this person on their own.
        let single = members.len() == 1;
        let newborn = (today - person.birth_date).whole_days() < 45;
        let scheme = own.as_ref().map(|(m, _)| m.scheme);
        let fate = if forced == Some(Forced::Uninsured) || (newborn && gen.percent(40)) {
            // 生活保護 (医療扶助) without a past qualification, or a baby not enrolled yet.
            Fate::Uninsured
        } else if scheme.is_none() {
            Fate::Usual
        } else if cover == Cover::Koki && gen.chance(15) {
            Fate::Lost("01")
        } else if single && cover != Cover::Koki && gen.chance(15) {
            // 生活保護: most had a qualification that ended, some never had one.
            if gen.percent(40) {
                Fate::Uninsured
            } else {
                Fate::Lost("02")
            }
        } else if single && scheme.is_some_and(Scheme::is_employee) && gen.chance(5) {
            // Left a job; the new insurer has not reported yet.
            Fate::Lost("03")
        } else if single && cover != Cover::Koki && gen.chance(3) {
            Fate::Lost("99")
        } else if cover != Cover::Koki
            && personal_family == 1
            && !(i == 0 && old_unit.is_some())
            && gen.chance(6)
        {
            Fate::Second
        } else {
            Fate::Usual
        };
        match fate {
            Fate::Usual => {}
            Fate::Uninsured => {
                own = None;
                records.clear();
            }
            Fate::Lost(reason) => {
                if let Some((_, cov)) = own.as_mut() {
                    let earliest = add_days(cov.from, 1)?.max(add_days(today, -700)?);
                    let until = gen.date_between(earliest, add_days(today, -1)?)?;
                    if until > cov.from && until < today {
                        cov.lost = Some((until, reason));
                        cov.diseases.clear();
                    }
                }
            }
            Fate::Second => {
                if let Some((m, cov)) = own.as_ref() {
                    // Two current qualifications: joined 国保 after leaving a job (or the
                    // reverse) before the old insurer reported the loss.
                    let scheme = if m.scheme == Scheme::Kokuho {
                        gen.employee_scheme()
                    } else {
                        Scheme::Kokuho
                    };
                    let second = gen.membership(scheme, place_index, index, &person.name);
                    if second.insurer.number != m.insurer.number {
                        let from = gen.date_between(add_days(today, -60)?, add_days(today, -1)?)?;
                        let second_cov = Coverage {
                            branch: Some(branch(0)),
                            personal_family: 1,
                            from: from.max(person.birth_date),
                            with_limit: false,
                            diseases: Vec::new(),
                            ..cov.clone()
                        };
                        records.push(gen.record(&person, &second, &second_cov)?);
                    }
                }
            }
        }
        if let Some((m, cov)) = &own {
            records.push(gen.record(&person, m, cov)?);
        }
        records.sort_by_key(|r| r.qualification_date);
        let deceased = records
            .iter()
            .any(|r| r.loss_reason.as_deref() == Some("01"));
        let mut generated = Generated::new(person, records);
        if !deceased {
            clinical::attach(gen, &mut generated, m.age, place_index)?;
        }
        out.push(generated);
    }
    Ok(out)
}
