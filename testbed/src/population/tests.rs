//! Tests of the population generator, on small populations (a few thousand persons).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use onshi_confirm_service::documents::DocumentKind;
use onshi_confirm_service::eligibility::{
    age_on, assess, elderly_start, is_preschool, InstitutionCode, InsurerNumber, Validity,
};
use time::macros::date;
use time::Date;

use super::clinical::judgement;
use super::*;

const TODAY: Date = date!(2025 - 11 - 24);

fn plans(n: usize) -> Vec<CardPlan> {
    (0..n).map(card_plan).collect()
}

fn population(seed: u64, persons: usize, cards: usize) -> Population {
    Population::new(PopulationSpec {
        seed,
        today: TODAY,
        persons,
        plans: plans(cards),
    })
    .unwrap()
}

/// 5,000 persons with ten cards, generated once for the tests that only read them.
fn sample() -> &'static [Generated] {
    static SAMPLE: OnceLock<Vec<Generated>> = OnceLock::new();
    SAMPLE.get_or_init(|| generate_all(&population(3, 5_000, 10), 1_000, 2).unwrap().0)
}

/// The persons with health insurance (or none): 医療扶助 recipients have their own test.
fn insured(people: &[Generated]) -> impl Iterator<Item = &Generated> {
    people.iter().filter(|g| {
        !g.records
            .iter()
            .any(onshi_confirm_service::medical_aid::is_medical_aid)
    })
}

fn age(g: &Generated) -> u32 {
    age_on(g.person.birth_date, TODAY)
}

#[test]
fn every_insurer_number_and_institution_code_passes_its_check_digit() {
    let mut insurers = BTreeSet::new();
    for g in insured(sample()) {
        for r in &g.records {
            let n = InsurerNumber::parse(r.insurer_number.as_str()).unwrap();
            assert_eq!(n.is_kokuho(), n.as_str().len() == 6);
            insurers.insert(n.as_str().to_owned());
        }
        for m in &g.medications {
            let code = InstitutionCode::parse(&m.institution_code).unwrap();
            assert!(
                [1, 4].contains(&code.point_table()),
                "{}",
                m.institution_code
            );
        }
    }
    // The mix: 協会けんぽ, 船員, 組合, 共済 (31–34), 国保 (6 digits), 後期 (39).
    let houbetsu: BTreeSet<String> = insurers
        .iter()
        .map(|n| {
            if n.len() == 6 {
                "kokuho".into()
            } else {
                n[..2].to_owned()
            }
        })
        .collect();
    for h in ["01", "02", "06", "31", "32", "33", "34", "39", "kokuho"] {
        assert!(houbetsu.contains(h), "no {h} insurer in {houbetsu:?}");
    }
}

#[test]
fn koki_records_have_no_symbol_or_branch_and_their_holders_are_75_or_over() {
    let mut koki = 0;
    for g in insured(sample()) {
        for r in &g.records {
            if r.insurer_number.is_koki() {
                koki += 1;
                assert_eq!(
                    (r.symbol.as_ref(), r.branch.as_ref()),
                    (None, None),
                    "{r:?}"
                );
                assert!(
                    age_on(g.person.birth_date, r.qualification_date) >= 75,
                    "{r:?}"
                );
                assert_eq!(r.personal_family, 1);
                assert_eq!(r.insured_person_name, g.person.name);
                assert!(r.elderly.is_none());
            } else {
                assert!(r.symbol.is_some() && r.branch.is_some(), "{r:?}");
            }
        }
        // From 75 every current qualification is 後期高齢者医療.
        if age(g) >= 75 {
            for r in g.records.iter().filter(|r| r.is_current(TODAY)) {
                assert!(r.insurer_number.is_koki(), "{}: {r:?}", g.person.id);
            }
        }
    }
    assert!(koki > 300, "{koki}");
}

#[test]
fn copay_ratios_and_brackets_follow_age_and_income() {
    let mut checked = 0;
    let mut seen = BTreeSet::new();
    for g in insured(sample()) {
        let birth = g.person.birth_date;
        for r in g.records.iter().filter(|r| r.is_current(TODAY)) {
            checked += 1;
            let age = age_on(birth, TODAY);
            let ratio = r.copay_ratio.as_str();
            let bracket = r.high_cost_limit.as_ref().map(|l| l.bracket.as_str());
            seen.insert((ratio.to_owned(), bracket.map(str::to_owned)));
            let active = bracket.is_some_and(|b| ["B01", "B02", "B03"].contains(&b));
            assert_eq!(r.preschool, is_preschool(birth, TODAY));
            if r.insurer_number.is_koki() {
                // 1割, 2割 (一般Ⅱ) or 3割 (現役並み) by income.
                match bracket {
                    Some("B01" | "B02" | "B03") => assert_eq!(ratio, "030"),
                    Some("B09") => assert_eq!(ratio, "020"),
                    Some(b) => {
                        assert!(["B05", "B06", "B10"].contains(&b), "{b}");
                        assert_eq!(ratio, "010");
                    }
                    None => assert!(["010", "020", "030"].contains(&ratio)),
                }
            } else if r.preschool {
                assert_eq!(ratio, "020", "{r:?}");
                assert!(age < 7);
            } else if TODAY < elderly_start(birth) {
                assert_eq!(ratio, "030", "{}: {r:?}", g.person.id);
                assert!(r.elderly.is_none());
            } else {
                // 70–74: 2割, 3割 with 現役並み所得, on a 高齢受給者証.
                assert!((70..75).contains(&age), "{r:?}");
                let elderly = r.elderly.as_ref().expect("高齢受給者証");
                assert_eq!(elderly.copay_ratio, ratio);
                assert!(elderly.valid_from <= TODAY && TODAY <= elderly.valid_until);
                assert_eq!(
                    ratio == "030",
                    active || (bracket.is_none() && ratio == "030")
                );
                if let Some(b) = bracket {
                    assert!(
                        ["B01", "B02", "B03", "B04", "B05", "B06"].contains(&b),
                        "{b}"
                    );
                }
            }
            // The bracket's scale follows the age: ア–オ under 70, B from 70.
            if let Some(b) = bracket {
                assert_eq!(b.starts_with('A'), age < 70, "{b} at {age}");
            }
        }
    }
    assert!(checked > 4_000, "{checked}");
    // Every ratio occurs, with and without a bracket.
    for ratio in ["010", "020", "030"] {
        assert!(seen.iter().any(|(r, _)| r == ratio), "{ratio}");
    }
    assert!(seen.iter().any(|(_, b)| b.is_some()));
}

#[test]
fn household_members_share_the_card_numbers_with_their_own_branch() {
    let by_id: BTreeMap<&str, &Generated> =
        sample().iter().map(|g| (g.person.id.as_str(), g)).collect();
    // (insurer, 記号, 番号) → the records on that card.
    let mut cards: BTreeMap<(String, Option<String>, String), Vec<&QualificationRecord>> =
        BTreeMap::new();
    let mut keys = BTreeSet::new();
    for g in insured(sample()) {
        for r in &g.records {
            let key = (
                r.insurer_number.as_str().to_owned(),
                r.symbol.clone(),
                r.number.clone(),
            );
            assert!(
                keys.insert((key.clone(), r.branch.clone())),
                "two records with the same numbers: {key:?} {:?}",
                r.branch
            );
            cards.entry(key).or_default().push(r);
        }
    }
    let mut families = 0;
    for (key, records) in &cards {
        let branches: BTreeSet<_> = records.iter().map(|r| r.branch.clone()).collect();
        assert_eq!(branches.len(), records.len(), "{key:?}");
        let insured = &records[0].insured_person_name;
        let family_name = insured.split('\u{3000}').next().unwrap();
        let mut addresses = BTreeSet::new();
        for r in records {
            assert_eq!(&r.insured_person_name, insured, "{key:?}");
            let person = &by_id[r.person_id.as_str()].person;
            assert!(person.name.starts_with(family_name), "{key:?}");
            addresses.insert(person.address.clone());
            let b = r.branch.as_deref().unwrap_or("00");
            if b == "00" {
                // 枝番 00 is the 被保険者 (世帯主 in 国保) themselves.
                assert_eq!(person.name, *insured, "{key:?}");
                assert_eq!(r.personal_family, 1);
            } else if !r.insurer_number.is_kokuho() && records.len() > 1 {
                // 家族 on an employee's card.
                assert_eq!(r.personal_family, 2, "{key:?}");
            }
        }
        assert_eq!(addresses.len(), 1, "{key:?}: one household, one address");
        if records.len() > 1 {
            families += 1;
        }
    }
    assert!(families > 500, "{families} cards shared by a family");
}

#[test]
fn each_validity_occurs() {
    let mut card_lookup: BTreeMap<u8, usize> = BTreeMap::new();
    let mut new_available = 0;
    for g in insured(sample()) {
        *card_lookup
            .entry(assess(&g.records, TODAY).validity.code())
            .or_default() += 1;
        for r in g.records.iter().filter(|r| r.is_lost(TODAY)) {
            let v = validity_by_numbers(
                &g.records,
                r.insurer_number.as_str(),
                r.symbol.as_deref(),
                &r.number,
                r.branch.as_deref(),
                g.person.birth_date,
                TODAY,
            );
            if v == Validity::InvalidNewAvailable {
                new_available += 1;
                assert!(r.disqualification_date.is_some());
            }
        }
    }
    let n = sample().len();
    for v in [1, 2, 4, 5] {
        assert!(
            card_lookup.get(&v).copied().unwrap_or(0) > 0,
            "{v}: {card_lookup:?}"
        );
    }
    assert!(card_lookup[&1] * 100 > n * 90, "{card_lookup:?}");
    assert!(new_available > 50, "{new_available}");
    // Not registered for insurance use: about one in five.
    let unregistered = sample()
        .iter()
        .filter(|g| !g.person.registered_for_insurance)
        .count();
    assert!(
        (n / 10..n * 3 / 10).contains(&unregistered),
        "{unregistered}"
    );
}

#[test]
fn the_same_seed_gives_the_same_people_whatever_the_chunks_and_threads() {
    let pop = population(11, 1_200, 6);
    let (a, ta) = generate_all(&pop, BLOCK, 1).unwrap();
    let (b, tb) = generate_all(&pop, 10_000, 2).unwrap();
    let (c, tc) = generate_all(&pop, 5 * BLOCK, 3).unwrap();
    assert_eq!(a.len(), 1_200);
    assert!(a == b && b == c, "chunking changed the population");
    assert!(ta == tb && tb == tc);
    assert_eq!(ta.persons, 1_200);
    // Another run of the same spec is the same; another seed is not.
    assert!(generate_all(&population(11, 1_200, 6), 1_000, 2).unwrap().0 == a);
    assert!(generate_all(&population(12, 1_200, 6), 1_000, 2).unwrap().0 != a);
    // More persons only add persons: the blocks before are untouched.
    let (more, _) = generate_all(&population(11, 1_500, 6), 1_000, 2).unwrap();
    let whole_blocks = 6 + (1_200 - 6) / BLOCK * BLOCK;
    assert!(more[..whole_blocks] == a[..whole_blocks]);
    // Person ids are consecutive.
    for (i, g) in a.iter().enumerate() {
        assert_eq!(g.person.id, person_id(i));
        assert_eq!(person_index(&g.person.id), Some(i));
    }
}

#[test]
fn the_chunks_reach_the_writer_in_order_and_a_failure_stops_the_stream() {
    let pop = population(5, 2_000, 6);
    let layout = pop.layout(100);
    let mut seen = Vec::new();
    stream(&pop, &layout, 1..layout.chunks(), 3, |chunk| {
        seen.push(chunk.index);
        Ok(())
    })
    .unwrap();
    assert_eq!(seen, (1..layout.chunks()).collect::<Vec<_>>());
    let mut calls = 0;
    let err = stream(&pop, &layout, 1..layout.chunks(), 2, |_| {
        calls += 1;
        if calls == 2 {
            Err(TestbedError::Options("disk full".into()))
        } else {
            Ok(())
        }
    });
    assert!(matches!(err, Err(TestbedError::Options(m)) if m == "disk full"));
    assert_eq!(calls, 2);
}

#[test]
fn drugs_and_checkups_are_on_record_for_the_documented_share() {
    let people = sample();
    let n = people.len();
    let with_drugs = people.iter().filter(|g| !g.medications.is_empty()).count();
    assert!(
        (n * 30 / 100..n * 60 / 100).contains(&with_drugs),
        "{with_drugs} of {n}"
    );
    let tokutei: Vec<&Generated> = people
        .iter()
        .filter(|g| (40..75).contains(&age(g)))
        .collect();
    let examined = tokutei.iter().filter(|g| !g.checkups.is_empty()).count();
    let share = examined * 100 / tokutei.len();
    assert!((45..66).contains(&share), "{share}% of 40–74");
    let mut judgements = BTreeSet::new();
    for g in people {
        if age(g) < 18 {
            assert!(g.checkups.is_empty(), "{}", g.person.id);
        }
        for m in &g.medications {
            assert_eq!(m.person_id, g.person.id);
            assert!(m.dispensed_on <= TODAY && m.dispensed_on >= g.person.birth_date);
            assert_eq!(m.drug_code.len(), 12);
            assert!(!m.drug_name.is_empty() && !m.usage.is_empty());
            assert!((1..=90).contains(&m.days), "{m:?}");
        }
        for c in &g.checkups {
            assert!(c.examined_on < TODAY);
            assert!((1200..=2000).contains(&c.height_cm_x10), "{c:?}");
            assert!((150..=420).contains(&c.bmi_x10), "{c:?}");
            let h = f64::from(c.height_cm_x10) / 1000.0;
            let bmi = f64::from(c.weight_kg_x10) / 10.0 / (h * h);
            assert!((bmi - f64::from(c.bmi_x10) / 10.0).abs() < 0.3, "{c:?}");
            assert!(c.diastolic_mmhg + 20 <= c.systolic_mmhg, "{c:?}");
            assert!((43..=120).contains(&c.hba1c_x10), "{c:?}");
            assert_eq!(c.judgement, judgement(g.person.sex == 1, c));
            judgements.insert(c.judgement.clone());
        }
    }
    assert_eq!(judgements.len(), 4, "{judgements:?}");
}

#[test]
fn the_age_pyramid_is_plausible() {
    let n = sample().len();
    let share = |lo: u32, hi: u32| {
        sample()
            .iter()
            .filter(|g| (lo..=hi).contains(&age(g)))
            .count()
            * 100
            / n
    };
    // Japan: about 11% under 15, 60% 15–64, 14% 65–74, 16% from 75.
    assert!((7..=18).contains(&share(0, 14)), "{}", share(0, 14));
    assert!((50..=68).contains(&share(15, 64)), "{}", share(15, 64));
    assert!((9..=20).contains(&share(65, 74)), "{}", share(65, 74));
    assert!((10..=22).contains(&share(75, 120)), "{}", share(75, 120));
}

#[test]
fn card_holders_have_the_records_their_roles_need() {
    let pop = population(1, 50, 12);
    let holders = pop.card_holders().unwrap();
    let validity = |i: usize| assess(&holders[i].records, TODAY).validity;
    assert_eq!(validity(0), Validity::Valid);
    let standard = &holders[0].records[0];
    assert_eq!(standard.copay_ratio, "030");
    assert_eq!(standard.insurer_number.houbetsu(), Some("01"));
    assert_eq!(standard.branch.as_deref(), Some("00"));
    assert_eq!(
        standard
            .high_cost_limit
            .as_ref()
            .map(|l| l.bracket.as_str()),
        Some("A03")
    );
    assert!(!holders[0].medications.is_empty() && !holders[0].checkups.is_empty());
    for i in 1..4 {
        assert_eq!(validity(i), Validity::Valid, "card {i}");
    }
    assert!(!holders[3].person.registered_for_insurance);
    assert!(holders[0].person.registered_for_insurance);
    assert_eq!(validity(4), Validity::Invalid);
    assert_eq!(holders[4].records[0].loss_reason.as_deref(), Some("03"));
    assert_eq!(validity(5), Validity::Multiple);
    // The face-only card's holder: an ordinary registered employee (the card is what differs).
    assert_eq!(validity(6), Validity::Valid);
    assert!(holders[6].person.registered_for_insurance);
    // The second face-only card's holder: the same, but not registered (it registers at the
    // reader without a PIN).
    assert_eq!(validity(7), Validity::Valid);
    assert!(!holders[7].person.registered_for_insurance);

    let koki = &holders[8].records[0];
    assert!(koki.insurer_number.is_koki());
    assert_eq!((koki.symbol.as_ref(), koki.branch.as_ref()), (None, None));
    assert_eq!(koki.copay_ratio, "010");

    let child = &holders[9].records[0];
    assert!(child.preschool);
    assert_eq!(child.copay_ratio, "020");
    assert_eq!(child.personal_family, 2);
    assert_ne!(child.branch.as_deref(), Some("00"));
    assert_ne!(child.insured_person_name, holders[9].person.name);

    let elderly = &holders[10].records[0];
    assert_eq!(elderly.copay_ratio, "020");
    assert!(elderly.elderly.is_some());

    let kokuho = &holders[11].records[0];
    assert!(kokuho.insurer_number.is_kokuho());
    assert_eq!(kokuho.specific_diseases.len(), 1);
    assert_eq!(kokuho.copay_ratio, "030");
}

#[test]
fn everyone_is_well_formed() {
    for g in insured(sample()) {
        let p = &g.person;
        assert!(p.name.contains('\u{3000}'));
        assert!(p
            .kana_name
            .chars()
            .all(|c| c == ' ' || ('\u{FF61}'..='\u{FF9F}').contains(&c)));
        assert!(p.postcode.len() == 8 && p.postcode.as_bytes()[3] == b'-');
        assert!(p.address.starts_with(|c: char| !c.is_ascii()));
        assert!(p.birth_date <= TODAY);
        for r in &g.records {
            assert_eq!(r.person_id, p.id);
            assert!(["010", "020", "030"].contains(&r.copay_ratio.as_str()));
            assert!(r.qualification_date <= TODAY, "{r:?}");
            assert!(r.qualification_date >= p.birth_date, "{r:?}");
            assert!(r.card_issue_date >= r.qualification_date, "{r:?}");
            assert!(r.card_issue_date <= TODAY, "{r:?}");
            assert_eq!(r.number.len(), 8);
            if let Some(d) = r.disqualification_date {
                assert!(d > r.qualification_date, "{r:?}");
                assert!(d <= TODAY, "{r:?}");
                assert!(
                    ["01", "02", "03", "99"].contains(&r.loss_reason.as_deref().unwrap_or("")),
                    "{r:?}"
                );
            } else {
                assert!(r.loss_reason.is_none());
            }
            if let Some(e) = &r.elderly {
                assert!(e.valid_from <= e.valid_until, "{r:?}");
            }
            if let Some(b) = &r.branch {
                assert!(b.len() == 2 && b.bytes().all(|c| c.is_ascii_digit()));
            }
            for d in &r.specific_diseases {
                assert!((1..=3).contains(&d.category));
                assert!([10_000, 20_000].contains(&d.monthly_cap_yen));
            }
        }
    }
    // Every loss reason occurs.
    let reasons: BTreeSet<&str> = sample()
        .iter()
        .flat_map(|g| g.records.iter().filter_map(|r| r.loss_reason.as_deref()))
        .collect();
    assert_eq!(reasons, BTreeSet::from(["01", "02", "03", "99"]));
}

#[test]
fn the_examples_cover_every_case_and_say_what_the_numbers_answer() {
    // Sixteen cards: the cycle's certificate in grace and expiring one are cards 13 and 14,
    // its 医療扶助 recipients cards 15 and 16.
    let pop = population(7, 40, 16);
    let (people, _) = generate_all(&pop, 16, 2).unwrap();
    let mut examples = Examples::new();
    let kinds = plans(16);
    for g in &people {
        let i = person_index(&g.person.id).unwrap();
        let card = kinds.get(i).map(|p| (format!("card-{:04}", i + 1), p.kind));
        examples.offer(g, card, TODAY, pop.catalog());
    }
    assert!(examples.complete());
    let entries = examples.into_entries();
    let cases: Vec<&str> = entries.iter().map(|e| e.case.as_str()).collect();
    assert_eq!(cases, CASES);
    for e in &entries {
        let g = &people[person_index(&e.person_id).unwrap()];
        if let Some(pen) = &e.public_expense_number {
            // 医療扶助: asked by the public-expense numbers; the tickets decide 1 or 6.
            let r = &g.records[0];
            assert_eq!(
                (r.insurer_number.as_str(), Some(&r.number)),
                (pen.as_str(), e.recipient_number.as_ref())
            );
            let answer = onshi_confirm_service::medical_aid::tickets_for(&g.tickets, TODAY, TODAY);
            assert_eq!(if answer.unregistered { 6 } else { 1 }, e.validity, "{e:?}");
            continue;
        }
        let numbers = validity_by_numbers(
            &g.records,
            &e.insurer_number,
            e.symbol.as_deref(),
            &e.number,
            e.branch.as_deref(),
            g.person.birth_date,
            e.as_of_date.as_deref().map_or(TODAY, |d| {
                onshi_confirm_service::eligibility::parse_yyyymmdd("as-of", d).unwrap()
            }),
        );
        assert_eq!(numbers.code(), e.validity, "{e:?}");
        if e.case == "as-of-before-loss" {
            // Valid the day before, lost today.
            assert_eq!(e.validity, 1, "{e:?}");
            let today = validity_by_numbers(
                &g.records,
                &e.insurer_number,
                e.symbol.as_deref(),
                &e.number,
                e.branch.as_deref(),
                g.person.birth_date,
                TODAY,
            );
            assert_eq!(today.code(), 2, "{e:?}");
        }
        if let Some(v) = e.case.strip_prefix("validity-") {
            assert_eq!(v, e.validity.to_string(), "{e:?}");
        }
        // The document cases: the numbers answer 有効 whatever the document's standing.
        let doc = g.document.as_ref();
        match e.case.as_str() {
            "document-kakuninsho" | "document-lapsed" => {
                let d = doc.unwrap();
                assert_eq!(d.kind, DocumentKind::Kakuninsho, "{e:?}");
                assert_eq!(d.valid_on(TODAY), e.case == "document-kakuninsho", "{e:?}");
                assert_eq!(e.validity, 1, "{e:?}");
            }
            "document-oshirase" => {
                assert_eq!(doc.unwrap().kind, DocumentKind::Oshirase, "{e:?}");
                assert!(g.person.registered_for_insurance);
                assert_eq!(e.validity, 1, "{e:?}");
            }
            _ => {}
        }
        InsurerNumber::parse(&e.insurer_number).unwrap();
        onshi_confirm_service::eligibility::NumbersQuery::parse(
            &e.insurer_number,
            e.symbol.as_deref().unwrap_or(""),
            &e.number,
            e.branch.as_deref().unwrap_or(""),
            &e.birth_date,
        )
        .unwrap();
    }
    // Cards are named where the person holds one.
    let first = &entries[0];
    assert_eq!(first.card.as_deref(), Some("card-0001"));
    assert!(
        !people[person_index(&entries[5].person_id).unwrap()]
            .person
            .registered_for_insurance
    );
}

#[test]
fn sizes_are_checked() {
    assert!(check_size(0, 6).is_err());
    assert!(check_size(5, 6).is_err());
    assert!(check_size(MAX_PERSONS + 1, 6).is_err());
    check_size(6, 6).unwrap();
    check_size(MAX_PERSONS, 6).unwrap();
    // The largest world's 番号 still have eight digits and never start with 9.
    let last = gen::card_number(MAX_PERSONS - 1);
    assert_eq!(last.len(), 8);
    assert!(!last.starts_with('9'));
}

#[test]
fn a_lost_card_of_someone_with_a_newer_qualification_answers_3() {
    let people = sample();
    let changed = people
        .iter()
        .find(|g| {
            g.records.len() == 2
                && g.records[0].loss_reason.as_deref() == Some("03")
                && g.records[1].is_current(TODAY)
        })
        .expect("someone who changed insurer");
    let by = |r: &QualificationRecord| {
        validity_by_numbers(
            &changed.records,
            r.insurer_number.as_str(),
            r.symbol.as_deref(),
            &r.number,
            r.branch.as_deref(),
            changed.person.birth_date,
            TODAY,
        )
    };
    assert_eq!(by(&changed.records[0]), Validity::InvalidNewAvailable);
    assert_eq!(by(&changed.records[1]), Validity::Valid);
    // Only the lost record: 無効. The card lookup never says 3.
    assert_eq!(
        validity_by_numbers(
            &changed.records[..1],
            changed.records[0].insurer_number.as_str(),
            changed.records[0].symbol.as_deref(),
            &changed.records[0].number,
            changed.records[0].branch.as_deref(),
            changed.person.birth_date,
            TODAY,
        ),
        Validity::Invalid
    );
    assert_eq!(assess(&changed.records, TODAY).validity, Validity::Valid);
    // Numbers nobody has: 該当資格なし.
    assert_eq!(
        validity_by_numbers(
            &changed.records,
            "131011",
            Some("01"),
            "90000000",
            Some("00"),
            changed.person.birth_date,
            TODAY
        ),
        Validity::None
    );
}

#[test]
fn each_insured_person_holds_the_document_their_registration_calls_for() {
    let pop = population(11, 400, 14);
    let (people, _) = generate_all(&pop, 16, 2).unwrap();
    let (mut kakuninsho, mut oshirase, mut lapsed) = (0, 0, 0);
    for g in &people {
        let Some(d) = &g.document else {
            assert!(
                g.records.is_empty()
                    || g.records
                        .iter()
                        .all(onshi_confirm_service::medical_aid::is_medical_aid),
                "{}: insured without a document",
                g.person.id
            );
            continue;
        };
        assert_eq!(d.person_id, g.person.id);
        match d.kind {
            DocumentKind::Oshirase => {
                assert!(g.person.registered_for_insurance, "{}", g.person.id);
                assert_eq!((d.valid_from, d.valid_until), (None, None));
                oshirase += 1;
            }
            DocumentKind::Kakuninsho => {
                assert!(!g.person.registered_for_insurance, "{}", g.person.id);
                let (from, until) = (d.valid_from.unwrap(), d.valid_until.unwrap());
                assert!(from >= super::documents::NO_PAPER_CARDS_FROM && from <= until);
                kakuninsho += 1;
                if !d.valid_on(TODAY) && g.records.iter().any(|r| r.is_current(TODAY)) {
                    lapsed += 1;
                }
            }
        }
    }
    // The shares follow the registration rate (55–85 % by age): most hold the お知らせ.
    assert!(
        oshirase > 2 * kakuninsho,
        "{oshirase} お知らせ, {kakuninsho} 資格確認書"
    );
    assert!(
        lapsed > 0 && lapsed < kakuninsho,
        "{lapsed} lapsed of {kakuninsho}"
    );
    // Deterministic: the same seed gives the same documents.
    let (again, _) = generate_all(&pop, 16, 2).unwrap();
    let docs = |p: &[Generated]| p.iter().map(|g| g.document.clone()).collect::<Vec<_>>();
    assert_eq!(docs(&people), docs(&again));
}

/// 医療扶助 recipients: card holders at the cycle's positions 7 and 8 (cards 15 and 16) and
/// the two card-less ones of block 0, each with one current A1 record whose numbers are a
/// 公費負担者番号 (法別 12) and a 公費受給者番号 with valid check digits, and the tickets of
/// their case for the world's month.
#[test]
fn medical_aid_recipients_have_public_expense_numbers_and_this_months_tickets() {
    use onshi_confirm_service::medical_aid::{self, TreatmentMonth};
    assert_eq!(card_plan(14).holder, Holder::MedicalAid);
    assert_eq!(card_plan(15).holder, Holder::MedicalAidUnregistered);
    assert_eq!(card_plan(22).holder, Holder::MedicalAid);
    let pop = population(5, 60, 16);
    let (people, _) = generate_all(&pop, 16, 2).unwrap();
    let recipients: Vec<&Generated> = people
        .iter()
        .filter(|g| g.records.iter().any(medical_aid::is_medical_aid))
        .collect();
    let ids: Vec<usize> = recipients
        .iter()
        .map(|g| person_index(&g.person.id).unwrap())
        .collect();
    assert_eq!(ids.len(), 4, "{ids:?}");
    assert_eq!(&ids[..2], &[14, 15]);
    let mut unregistered = 0;
    for g in &recipients {
        let [r] = &g.records[..] else {
            panic!("one record: {g:?}")
        };
        assert!(r.is_current(TODAY));
        assert!(medical_aid::query(r.insurer_number.as_str(), &r.number, "19600101").is_ok());
        assert!(g.document.is_none());
        assert!(!g.tickets.is_empty());
        let answer = medical_aid::tickets_for(&g.tickets, TODAY, TODAY);
        if answer.unregistered {
            unregistered += 1;
        }
        for t in &answer.tickets {
            assert_eq!(t.month, TreatmentMonth::of(TODAY));
        }
    }
    // Card 16 (not registered) and the card-less one without a ticket this month.
    assert_eq!(unregistered, 2);
}
