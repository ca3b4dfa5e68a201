//! The conformance suite of the storage interface ([`Store`]): one function per contract of
//! the trait's documentation, run against both stores (tests/tests/store_sqlite.rs and
//! tests/tests/store_postgres.rs) through [`store_suite!`](crate::store_suite), so the two
//! lists of cases cannot drift apart.
//!
//! Each case gets a fresh, empty store from a [`Fixture`]; the cases that check what several
//! service instances sharing one store see open a second instance on the same location.
//! Instants are whole milliseconds (both stores keep instants to the millisecond), dates are
//! plain calendar dates.
//!
//! Why this file is long: it is one list, the contract of every `Store` method case by case
//! (about fifty cases), and [`store_suite!`](crate::store_suite) must name each case once for
//! both stores. Split into files, the macro's list and the cases would live apart and could
//! drift; kept together, a case added here without a line in the macro is seen at once.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::any::Any;
use std::sync::{Arc, Barrier};

use onshi_confirm_service::audit::{AuditQuery, AuditRecord};
use onshi_confirm_service::audit_chain::{self, Break, VerifyError};
use onshi_confirm_service::challenge::ChallengeError;
use onshi_confirm_service::clinical::{Checkup, Medication};
use onshi_confirm_service::consent::{ConsentGrant, ConsentKind};
use onshi_confirm_service::documents::{DocumentKind, InsuranceDocument};
use onshi_confirm_service::eligibility::{
    ElderlyCertificate, HighCostLimit, InsurerNumber, NumbersQuery, Person, QualificationRecord,
    SpecificDisease,
};
use onshi_confirm_service::institutions::{Institution, ListedInstitution};
use onshi_confirm_service::medical_aid::{MedicalTicket, TicketKind, TreatmentMonth};
use onshi_confirm_service::store::{
    AuditWrite, BatchItem, BatchJob, CardKey, ChallengeUse, GroupWrite, LoadBatch, Registration,
    RegistrationWrite, RememberedAnswer, Store, StoreError, Terminal, TerminalStatus,
};
use time::macros::{date, datetime};
use time::{Date, Duration, OffsetDateTime};

/// Generates one `#[test]` per case of the suite, each on a fresh store from `$fixture`, a
/// `fn(&str) -> Fixture` called with the case's name.
#[macro_export]
macro_rules! store_suite {
    ($fixture:path) => {
        $crate::store_suite!(@one $fixture;
            reference_data_round_trip,
            load_replaces_persons_links_and_terminals_and_appends_records,
            load_is_all_or_nothing,
            terminal_device_key_round_trip,
            institutions_listed_with_a_terminal_in_operation,
            an_invalid_institution_is_not_loaded,
            persons_by_numbers_exact_match,
            persons_by_numbers_absent_symbol_or_branch_matches_only_absent,
            persons_by_numbers_wrong_birth_date_finds_none,
            registration_is_idempotent,
            consents_latest_grant_wins,
            home_care_consent_keeps_its_period,
            challenge_is_single_use,
            challenge_concurrent_consumption_one_wins,
            challenges_are_purged_after_expiry,
            challenge_keys_are_made_once_and_rotated,
            audit_round_trip_oldest_first,
            audit_query_by_person,
            audit_query_by_institution,
            audit_query_by_time_range,
            audit_query_limit_keeps_the_oldest,
            audit_duplicate_id_fails_the_whole_group,
            group_commit_consumes_then_records_consents_and_audit,
            group_commit_failure_writes_nothing,
            registration_lands_with_its_audit_record,
            a_failed_group_writes_neither_registration_nor_record,
            a_registration_with_a_refused_challenge_is_not_made,
            audit_chain_links_every_record,
            audit_prune_keeps_the_chain_verifiable,
            batch_create_and_page_items,
            batch_complete_keeps_the_first_answer,
            batch_finishes_when_every_item_is_answered,
            batch_unfinished_oldest_first,
            batch_claim_lease_is_exclusive_until_it_expires,
            claimed_time_round_trips_and_is_chained,
        );
        $crate::store_suite!(@two $fixture;
            challenge_consumed_once_across_instances,
            challenge_keys_are_shared_across_instances,
            batch_claim_exclusive_across_instances,
            audit_chain_is_one_chain_across_instances,
            remembered_answers_are_shared_expire_and_are_pruned,
            overlapping_groups_do_not_deadlock_across_instances,
        );
    };
    (@one $fixture:path; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let fixture = $fixture(stringify!($case));
                let store = fixture.open();
                $crate::store_suite::$case(&*store);
            }
        )*
    };
    (@two $fixture:path; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let fixture = $fixture(stringify!($case));
                let (a, b) = (fixture.open(), fixture.open());
                $crate::store_suite::$case(&*a, &*b);
            }
        )*
    };
}

/// A fresh, empty store location for one case: opens instances of the store on it, and keeps
/// whatever the location needs alive (a temporary directory) until the case ends.
pub struct Fixture {
    open: Box<dyn Fn() -> Arc<dyn Store>>,
    _keep: Box<dyn Any>,
}

impl std::fmt::Debug for Fixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixture").finish_non_exhaustive()
    }
}

impl Fixture {
    /// `open` opens one more instance on the location; `keep` lives as long as the fixture.
    pub fn new(open: impl Fn() -> Arc<dyn Store> + 'static, keep: impl Any) -> Self {
        Self {
            open: Box::new(open),
            _keep: Box::new(keep),
        }
    }

    /// One more store instance on the fixture's location.
    pub fn open(&self) -> Arc<dyn Store> {
        (self.open)()
    }
}

// ---- data ------------------------------------------------------------------------------------

const T0: OffsetDateTime = datetime!(2026-11-24 09:00:00.125 UTC);
/// Terminal names of the idempotency cases (`<institution>-<terminal id>`).
const T01: &str = "1340123452-T01";
const T02: &str = "1340123452-T02";

fn at(ms: i64) -> OffsetDateTime {
    T0 + Duration::milliseconds(ms)
}

fn person(id: &str, birth_date: Date) -> Person {
    Person {
        id: id.into(),
        name: "山田\u{3000}花子".into(),
        kana_name: "ﾔﾏﾀﾞ ﾊﾅｺ".into(),
        sex: 2,
        birth_date,
        address: "東京都千代田区千代田1-1 ﾒｿﾞﾝ「ひかり」101".into(),
        postcode: "100-0001".into(),
        registered_for_insurance: true,
    }
}

/// 協会けんぽ with every optional part present: two 特定疾病 certificates, a 高齢受給者証 and a
/// high-cost limit without certificate type.
fn kyokai(person_id: &str) -> QualificationRecord {
    QualificationRecord {
        person_id: person_id.into(),
        insured_card_classification: "01".into(),
        insurer_number: InsurerNumber::parse("01130012").unwrap(),
        insurer_name: "全国健康保険協会 東京支部".into(),
        symbol: Some("12345678".into()),
        number: "901".into(),
        branch: Some("00".into()),
        personal_family: 1,
        insured_person_name: "山田\u{3000}花子".into(),
        qualification_date: date!(2015 - 04 - 01),
        disqualification_date: Some(date!(2025 - 01 - 01)),
        loss_reason: Some("03".into()),
        card_issue_date: date!(2015 - 04 - 10),
        card_valid_from: date!(2015 - 04 - 01),
        card_expiry: Some(date!(2026 - 07 - 31)),
        copay_ratio: "030".into(),
        preschool: false,
        elderly: Some(ElderlyCertificate {
            valid_from: date!(2024 - 08 - 01),
            valid_until: date!(2025 - 07 - 31),
            copay_ratio: "020".into(),
        }),
        high_cost_limit: Some(HighCostLimit {
            certificate_type: None,
            bracket: "A03".into(),
            valid_from: date!(2024 - 08 - 01),
            valid_until: date!(2025 - 07 - 31),
        }),
        specific_diseases: vec![
            SpecificDisease {
                category: 1,
                monthly_cap_yen: 10_000,
                valid_from: date!(2020 - 01 - 01),
                valid_until: date!(2030 - 12 - 31),
            },
            SpecificDisease {
                category: 2,
                monthly_cap_yen: 20_000,
                valid_from: date!(2021 - 01 - 01),
                valid_until: date!(2031 - 12 - 31),
            },
        ],
    }
}

/// 組合 record of a family member, with a limit certificate type and one 特定疾病.
fn kumiai(person_id: &str) -> QualificationRecord {
    QualificationRecord {
        insurer_number: InsurerNumber::with_check_digit("0613801").unwrap(),
        insurer_name: "関東ＩＴソフトウェア健康保険組合".into(),
        symbol: Some("ｶﾝﾄｳ".into()),
        number: "4711".into(),
        branch: Some("02".into()),
        personal_family: 2,
        insured_person_name: "山田\u{3000}太郎".into(),
        preschool: true,
        copay_ratio: "020".into(),
        elderly: None,
        high_cost_limit: Some(HighCostLimit {
            certificate_type: Some("01".into()),
            bracket: "B10".into(),
            valid_from: date!(2025 - 04 - 01),
            valid_until: date!(2026 - 03 - 31),
        }),
        specific_diseases: vec![SpecificDisease {
            category: 3,
            monthly_cap_yen: 4_000_000_000,
            valid_from: date!(2025 - 04 - 01),
            valid_until: date!(2999 - 12 - 31),
        }],
        ..kyokai(person_id)
    }
}

/// 後期高齢者医療: no 記号, no 枝番, nothing optional.
fn koki(person_id: &str) -> QualificationRecord {
    QualificationRecord {
        insurer_number: InsurerNumber::with_check_digit("3913100").unwrap(),
        insurer_name: "東京都後期高齢者医療広域連合".into(),
        symbol: None,
        branch: None,
        number: "12345678".into(),
        qualification_date: date!(2025 - 01 - 01),
        disqualification_date: None,
        loss_reason: None,
        card_expiry: None,
        copay_ratio: "010".into(),
        elderly: None,
        high_cost_limit: None,
        specific_diseases: Vec::new(),
        ..kyokai(person_id)
    }
}

fn card(n: u8) -> CardKey {
    CardKey {
        issuer_key: format!("{n:02x}").repeat(32),
        serial: format!("00{n:02x}ff"),
    }
}

fn terminal(code: &str, id: &str, status: TerminalStatus) -> Terminal {
    Terminal {
        institution_code: code.into(),
        terminal_id: id.into(),
        status,
        device_public_key: None,
    }
}

/// A stand-in device public key: 65 bytes like an uncompressed P-256 point (the store keeps
/// the bytes; only the service parses them).
fn device_key(n: u8) -> Vec<u8> {
    let mut key = vec![4u8];
    key.extend((0..64u8).map(|i| i.wrapping_mul(n).wrapping_add(n)));
    key
}

fn medication(person_id: &str, on: Date, drug: &str) -> Medication {
    Medication {
        person_id: person_id.into(),
        dispensed_on: on,
        institution_code: "1340123452".into(),
        institution_name: "ひかり薬局".into(),
        drug_code: "2171022F1020".into(),
        drug_name: drug.into(),
        usage: "1日1回朝食後".into(),
        daily_quantity: "1錠".into(),
        days: 28,
    }
}

fn checkup(person_id: &str, on: Date, judgement: &str) -> Checkup {
    Checkup {
        person_id: person_id.into(),
        examined_on: on,
        height_cm_x10: 1713,
        weight_kg_x10: 652,
        waist_cm_x10: 812,
        bmi_x10: 222,
        systolic_mmhg: 128,
        diastolic_mmhg: 79,
        hba1c_x10: 56,
        ldl_mg_dl: 131,
        judgement: judgement.into(),
    }
}

/// A 医療券 / 調剤券 valid for its whole month.
fn medical_ticket(
    person_id: &str,
    month: &str,
    issue_number: &str,
    kind: TicketKind,
    registered_on: Option<Date>,
) -> MedicalTicket {
    let month = TreatmentMonth::parse(month).expect("a YYYYMM month");
    MedicalTicket {
        person_id: person_id.into(),
        month,
        kind,
        issue_number: issue_number.into(),
        valid_from: month.first_day(),
        valid_until: month.last_day(),
        institution_code: "2714206386".into(),
        institution_name: "テスト医院".into(),
        self_pay_yen: 0,
        registered_on,
    }
}

fn load(store: &dyn Store, batch: LoadBatch) {
    store.load(&batch).expect("load");
}

fn numbers(record: &QualificationRecord, birth_date: Date) -> NumbersQuery {
    NumbersQuery {
        insurer_number: record.insurer_number.clone(),
        symbol: record.symbol.clone(),
        number: record.number.clone(),
        branch: record.branch.clone(),
        birth_date,
    }
}

// ---- reference data --------------------------------------------------------------------------

/// Everything [`Store::load`] writes reads back equal: persons, qualification records (oldest
/// first by qualification date, then insertion order, with their 特定疾病 in order), card links,
/// terminals, medications and checkups (newest first, ties in insertion order).
pub fn reference_data_round_trip(store: &dyn Store) {
    let p1 = person("P1", date!(1980 - 02 - 29));
    let p2 = Person {
        id: "P2".into(),
        name: "佐藤\u{3000}一郎".into(),
        sex: 1,
        registered_for_insurance: false,
        ..person("P2", date!(1950 - 12 - 31))
    };
    let later = koki("P1");
    let first = kyokai("P1");
    // Same qualification date as `first`, inserted after it.
    let same_day = kumiai("P1");
    let m_old = medication("P1", date!(2026 - 01 - 10), "アムロジピン錠５ｍｇ");
    let m_new_a = medication("P1", date!(2026 - 11 - 01), "ロスバスタチン錠２．５ｍｇ");
    let m_new_b = medication(
        "P1",
        date!(2026 - 11 - 01),
        "メトホルミン塩酸塩錠２５０ｍｇ",
    );
    let c_old = checkup("P1", date!(2024 - 06 - 01), "B");
    let c_new = checkup("P1", date!(2025 - 06 - 01), "D");
    let t1 = terminal("1340123452", "T01", TerminalStatus::InOperation);
    let t2 = terminal("1340123452", "T02", TerminalStatus::Suspended);
    let kakuninsho = InsuranceDocument {
        person_id: "P1".into(),
        kind: DocumentKind::Kakuninsho,
        valid_from: Some(date!(2025 - 08 - 01)),
        valid_until: Some(date!(2026 - 07 - 31)),
    };
    let oshirase = InsuranceDocument {
        person_id: "P2".into(),
        kind: DocumentKind::Oshirase,
        valid_from: None,
        valid_until: None,
    };
    let ticket_a = medical_ticket("P2", "202701", "0001", TicketKind::Medical, None);
    let ticket_b = MedicalTicket {
        institution_code: "1340123452".into(),
        self_pay_yen: 1500,
        ..medical_ticket(
            "P2",
            "202701",
            "0002",
            TicketKind::Dispensing,
            Some(date!(2027 - 01 - 15)),
        )
    };
    let ticket_dec = medical_ticket(
        "P2",
        "202612",
        "0009",
        TicketKind::Medical,
        Some(date!(2026 - 12 - 01)),
    );
    load(
        store,
        LoadBatch {
            persons: vec![p1.clone(), p2.clone()],
            qualifications: vec![later.clone(), first.clone(), same_day.clone(), koki("P2")],
            cards: vec![
                (card(1), "P1".into()),
                (card(2), "P1".into()),
                (card(3), "P2".into()),
            ],
            terminals: vec![t1.clone(), t2.clone()],
            medications: vec![m_old.clone(), m_new_a.clone(), m_new_b.clone()],
            checkups: vec![c_old.clone(), c_new.clone()],
            institutions: vec![],
            documents: vec![kakuninsho.clone(), oshirase.clone()],
            medical_tickets: vec![ticket_b.clone(), ticket_a.clone(), ticket_dec.clone()],
        },
    );

    // 医療券 / 調剤券 by month, then issue number.
    assert_eq!(
        store.medical_tickets("P2").unwrap(),
        vec![ticket_dec.clone(), ticket_a.clone(), ticket_b.clone()]
    );
    assert_eq!(store.medical_tickets("P1").unwrap(), Vec::new());

    assert_eq!(store.insurance_document("P1").unwrap(), Some(kakuninsho));
    assert_eq!(store.insurance_document("P2").unwrap(), Some(oshirase));
    assert_eq!(store.insurance_document("P3").unwrap(), None);
    assert_eq!(store.person("P1").unwrap(), Some(p1));
    assert_eq!(store.person("P2").unwrap(), Some(p2));
    assert_eq!(store.person("P3").unwrap(), None);

    assert_eq!(
        store.qualifications("P1").unwrap(),
        vec![first, same_day, later]
    );
    assert_eq!(store.qualifications("P2").unwrap(), vec![koki("P2")]);
    assert_eq!(store.qualifications("P3").unwrap(), Vec::new());

    assert_eq!(
        store.person_for_card(&card(1)).unwrap().as_deref(),
        Some("P1")
    );
    assert_eq!(
        store.person_for_card(&card(2)).unwrap().as_deref(),
        Some("P1")
    );
    assert_eq!(
        store.person_for_card(&card(3)).unwrap().as_deref(),
        Some("P2")
    );
    assert_eq!(store.person_for_card(&card(4)).unwrap(), None);
    // Both halves of the key count.
    let mixed = CardKey {
        issuer_key: card(1).issuer_key,
        serial: card(3).serial,
    };
    assert_eq!(store.person_for_card(&mixed).unwrap(), None);

    assert_eq!(store.terminal("1340123452", "T01").unwrap(), Some(t1));
    assert_eq!(store.terminal("1340123452", "T02").unwrap(), Some(t2));
    assert_eq!(store.terminal("1340123452", "T03").unwrap(), None);
    assert_eq!(store.terminal("1310156789", "T01").unwrap(), None);

    assert_eq!(
        store.medications("P1").unwrap(),
        vec![m_new_a, m_new_b, m_old]
    );
    assert_eq!(store.medications("P2").unwrap(), Vec::new());
    assert_eq!(store.checkups("P1").unwrap(), vec![c_new, c_old]);
    assert_eq!(store.checkups("P2").unwrap(), Vec::new());
}

/// A terminal's device public key reads back as loaded, with the terminal's lookup; a terminal
/// without one reads back without one; loading the terminal again replaces its key (a new
/// reader, or none); a key that is not 65 bytes fails the load, which then writes nothing.
fn institution(code: &str, name: &str, started_on: Date) -> Institution {
    Institution {
        institution_code: code.into(),
        name: name.into(),
        started_on,
    }
}

/// 導入医療機関リスト: an institution is listed when it has at least one terminal in
/// operation (suspended ones do not count), with how many; one with none is not, nor a
/// terminal's institution without a registry entry; a reload replaces an entry.
pub fn institutions_listed_with_a_terminal_in_operation(store: &dyn Store) {
    let pharmacy = institution("1340123452", "みなと薬局", date!(2023 - 04 - 01));
    let clinic = institution("1310156789", "さくら内科クリニック", date!(2024 - 10 - 07));
    let dental = institution("2731000002", "なにわ歯科", date!(2025 - 01 - 06));
    load(
        store,
        LoadBatch {
            terminals: vec![
                terminal("1340123452", "T01", TerminalStatus::InOperation),
                terminal("1340123452", "T02", TerminalStatus::InOperation),
                terminal("1340123452", "T09", TerminalStatus::Suspended),
                terminal("1310156789", "T01", TerminalStatus::Suspended),
                // No registry entry: a load-harness terminal, never listed.
                terminal("2714206386", "T01", TerminalStatus::InOperation),
            ],
            institutions: vec![pharmacy.clone(), clinic.clone(), dental.clone()],
            ..LoadBatch::default()
        },
    );
    let listed = store.institutions_in_operation().unwrap();
    assert_eq!(
        listed,
        vec![ListedInstitution {
            institution: pharmacy.clone(),
            terminals_in_operation: 2,
        }]
    );
    // The clinic's terminal goes into operation; the pharmacy is renamed.
    let renamed = institution("1340123452", "みなと薬局 駅前店", date!(2023 - 04 - 01));
    load(
        store,
        LoadBatch {
            terminals: vec![terminal("1310156789", "T01", TerminalStatus::InOperation)],
            institutions: vec![renamed.clone()],
            ..LoadBatch::default()
        },
    );
    assert_eq!(
        store.institutions_in_operation().unwrap(),
        vec![
            ListedInstitution {
                institution: clinic,
                terminals_in_operation: 1,
            },
            ListedInstitution {
                institution: renamed,
                terminals_in_operation: 2,
            },
        ]
    );
}

/// A registry entry with a bad code or name is refused whole, naming it, and nothing of the
/// batch is written.
pub fn an_invalid_institution_is_not_loaded(store: &dyn Store) {
    for bad in [
        institution("1340123453", "check digit", date!(2023 - 04 - 01)),
        institution("1340123452", "", date!(2023 - 04 - 01)),
    ] {
        let err = store
            .load(&LoadBatch {
                terminals: vec![terminal("1340123452", "T01", TerminalStatus::InOperation)],
                institutions: vec![bad.clone()],
                ..LoadBatch::default()
            })
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::InvalidInstitution { code, .. } if *code == bad.institution_code),
            "{err}"
        );
        assert_eq!(store.terminal("1340123452", "T01").unwrap(), None);
    }
    assert!(store.institutions_in_operation().unwrap().is_empty());
}

pub fn terminal_device_key_round_trip(store: &dyn Store) {
    let keyed = |code: &str, id: &str, status, key: Option<Vec<u8>>| Terminal {
        device_public_key: key,
        ..terminal(code, id, status)
    };
    let t1 = keyed(
        "1340123452",
        "T01",
        TerminalStatus::InOperation,
        Some(device_key(1)),
    );
    let t2 = keyed("1340123452", "T02", TerminalStatus::InOperation, None);
    let t3 = keyed(
        "1310156789",
        "T01",
        TerminalStatus::Suspended,
        Some(device_key(3)),
    );
    load(
        store,
        LoadBatch {
            terminals: vec![t1.clone(), t2.clone(), t3.clone()],
            ..LoadBatch::default()
        },
    );
    assert_eq!(
        store.terminal("1340123452", "T01").unwrap(),
        Some(t1.clone())
    );
    assert_eq!(store.terminal("1340123452", "T02").unwrap(), Some(t2));
    assert_eq!(
        store.terminal("1310156789", "T01").unwrap(),
        Some(t3.clone())
    );
    assert_eq!(
        store
            .terminal("1340123452", "T01")
            .unwrap()
            .unwrap()
            .device_public_key
            .unwrap()
            .len(),
        65
    );

    // A new reader: the key is replaced; then none at all.
    let replaced = keyed(
        "1340123452",
        "T01",
        TerminalStatus::InOperation,
        Some(device_key(7)),
    );
    load(
        store,
        LoadBatch {
            terminals: vec![replaced.clone()],
            ..LoadBatch::default()
        },
    );
    assert_eq!(store.terminal("1340123452", "T01").unwrap(), Some(replaced));
    let cleared = keyed("1340123452", "T01", TerminalStatus::InOperation, None);
    load(
        store,
        LoadBatch {
            terminals: vec![cleared.clone()],
            ..LoadBatch::default()
        },
    );
    assert_eq!(
        store.terminal("1340123452", "T01").unwrap(),
        Some(cleared.clone())
    );
    // Another terminal's key is untouched by all of this.
    assert_eq!(store.terminal("1310156789", "T01").unwrap(), Some(t3));

    // Not a 65-byte point: refused, and the batch's other terminal is not written either.
    for bad in [vec![4u8; 64], vec![4u8; 66], Vec::new()] {
        let result = store.load(&LoadBatch {
            terminals: vec![
                t1.clone(),
                keyed("1340123452", "T03", TerminalStatus::InOperation, Some(bad)),
            ],
            ..LoadBatch::default()
        });
        assert!(result.is_err(), "a malformed device key must be refused");
        assert_eq!(
            store.terminal("1340123452", "T01").unwrap(),
            Some(cleared.clone())
        );
        assert_eq!(store.terminal("1340123452", "T03").unwrap(), None);
    }
}

/// A person, card link or terminal loaded again is replaced; qualification records,
/// medications and checkups are appended. Records may come in a later load than their person.
pub fn load_replaces_persons_links_and_terminals_and_appends_records(store: &dyn Store) {
    let paper_only = medical_ticket("P1", "202701", "0001", TicketKind::Medical, None);
    let other_month = medical_ticket(
        "P1",
        "202612",
        "0001",
        TicketKind::Dispensing,
        Some(date!(2026 - 12 - 10)),
    );
    load(
        store,
        LoadBatch {
            persons: vec![
                person("P1", date!(1980 - 02 - 29)),
                person("P2", date!(1990 - 01 - 01)),
            ],
            terminals: vec![terminal("1340123452", "T01", TerminalStatus::InOperation)],
            ..LoadBatch::default()
        },
    );
    load(
        store,
        LoadBatch {
            qualifications: vec![kyokai("P1")],
            cards: vec![(card(1), "P1".into())],
            medications: vec![medication("P1", date!(2026 - 01 - 10), "A")],
            checkups: vec![checkup("P1", date!(2024 - 06 - 01), "A")],
            medical_tickets: vec![paper_only.clone(), other_month.clone()],
            ..LoadBatch::default()
        },
    );
    let renamed = Person {
        name: "鈴木\u{3000}花子".into(),
        address: "大阪府大阪市北区梅田1-1".into(),
        registered_for_insurance: false,
        ..person("P1", date!(1980 - 03 - 01))
    };
    let registered = MedicalTicket {
        registered_on: Some(date!(2027 - 01 - 20)),
        ..paper_only.clone()
    };
    let renewed = InsuranceDocument {
        person_id: "P1".into(),
        kind: DocumentKind::Kakuninsho,
        valid_from: Some(date!(2026 - 08 - 01)),
        valid_until: Some(date!(2027 - 07 - 31)),
    };
    load(
        store,
        LoadBatch {
            persons: vec![renamed.clone()],
            qualifications: vec![koki("P1")],
            cards: vec![(card(1), "P2".into())],
            terminals: vec![terminal("1340123452", "T01", TerminalStatus::Suspended)],
            medications: vec![medication("P1", date!(2026 - 02 - 10), "B")],
            checkups: vec![checkup("P1", date!(2025 - 06 - 01), "C")],
            institutions: vec![],
            documents: vec![renewed.clone()],
            // The welfare office registers the paper-only ticket: it replaces the one before.
            medical_tickets: vec![registered.clone()],
        },
    );
    assert_eq!(
        store.medical_tickets("P1").unwrap(),
        vec![other_month, registered]
    );
    // A later document replaces the one recorded before.
    assert_eq!(store.insurance_document("P1").unwrap(), Some(renewed));
    assert_eq!(store.person("P1").unwrap(), Some(renamed));
    assert_eq!(
        store.qualifications("P1").unwrap(),
        vec![kyokai("P1"), koki("P1")]
    );
    assert_eq!(
        store.person_for_card(&card(1)).unwrap().as_deref(),
        Some("P2")
    );
    assert_eq!(
        store.terminal("1340123452", "T01").unwrap(),
        Some(terminal("1340123452", "T01", TerminalStatus::Suspended))
    );
    let drugs: Vec<String> = store
        .medications("P1")
        .unwrap()
        .into_iter()
        .map(|m| m.drug_name)
        .collect();
    assert_eq!(drugs, ["B", "A"]);
    let judgements: Vec<String> = store
        .checkups("P1")
        .unwrap()
        .into_iter()
        .map(|c| c.judgement)
        .collect();
    assert_eq!(judgements, ["C", "A"]);
}

/// A batch naming a person that does not exist fails with [`StoreError::UnknownPerson`]
/// naming that person, and writes nothing of the batch.
pub fn load_is_all_or_nothing(store: &dyn Store) {
    load(
        store,
        LoadBatch {
            persons: vec![person("P1", date!(1980 - 02 - 29))],
            ..LoadBatch::default()
        },
    );
    let good = || LoadBatch {
        persons: vec![person("P7", date!(1970 - 07 - 07))],
        qualifications: vec![kyokai("P7"), kyokai("P1")],
        cards: vec![(card(7), "P7".into())],
        terminals: vec![terminal("2714206386", "T09", TerminalStatus::InOperation)],
        medications: vec![medication("P1", date!(2026 - 01 - 10), "A")],
        checkups: vec![checkup("P1", date!(2024 - 06 - 01), "A")],
        institutions: vec![],
        documents: vec![],
        medical_tickets: vec![],
    };
    for what in [
        "qualification",
        "card",
        "medication",
        "checkup",
        "document",
        "ticket",
    ] {
        let mut batch = good();
        let day = date!(2026 - 01 - 01);
        match what {
            "qualification" => batch.qualifications.push(koki("ghost")),
            "card" => batch.cards.push((card(8), "ghost".into())),
            "medication" => batch.medications.push(medication("ghost", day, "X")),
            "ticket" => batch.medical_tickets.push(medical_ticket(
                "ghost",
                "202701",
                "0001",
                TicketKind::Medical,
                None,
            )),
            "document" => batch.documents.push(InsuranceDocument {
                person_id: "ghost".into(),
                kind: DocumentKind::Oshirase,
                valid_from: None,
                valid_until: None,
            }),
            _ => batch.checkups.push(checkup("ghost", day, "X")),
        }
        match store.load(&batch) {
            Err(StoreError::UnknownPerson(id)) => assert_eq!(id, "ghost", "{what}"),
            other => panic!("a {what} of an unknown person: expected UnknownPerson, got {other:?}"),
        }
        assert_eq!(store.person("P7").unwrap(), None, "{what}");
        assert_eq!(store.qualifications("P1").unwrap(), Vec::new(), "{what}");
        assert_eq!(store.person_for_card(&card(7)).unwrap(), None, "{what}");
        assert_eq!(store.terminal("2714206386", "T09").unwrap(), None, "{what}");
        assert_eq!(store.medications("P1").unwrap(), Vec::new(), "{what}");
        assert_eq!(store.checkups("P1").unwrap(), Vec::new(), "{what}");
    }
    // The same batch without the ghost goes in whole.
    store.load(&good()).unwrap();
    assert_eq!(store.qualifications("P7").unwrap(), vec![kyokai("P7")]);
    assert_eq!(store.medications("P1").unwrap().len(), 1);
}

// ---- persons by insurance numbers ------------------------------------------------------------

fn numbers_world(store: &dyn Store) {
    let birth = date!(1980 - 02 - 29);
    let other_symbol = QualificationRecord {
        symbol: Some("87654321".into()),
        ..kyokai("P3")
    };
    let other_branch = QualificationRecord {
        branch: Some("01".into()),
        ..kyokai("P4")
    };
    load(
        store,
        LoadBatch {
            persons: vec![
                // "a1" sorts after "B2" byte-wise: the result must be sorted, not in load order.
                person("a1", birth),
                person("B2", birth),
                person("P3", birth),
                person("P4", birth),
                person("K1", date!(1940 - 01 - 01)),
                person("K2", date!(1941 - 01 - 01)),
            ],
            qualifications: vec![
                kyokai("a1"),
                kyokai("B2"),
                // A second record with the same numbers does not list a person twice.
                kyokai("B2"),
                other_symbol,
                other_branch,
                koki("K1"),
                koki("K2"),
            ],
            ..LoadBatch::default()
        },
    );
}

/// All four numbers and the birth date must match; several matches come sorted, once each.
pub fn persons_by_numbers_exact_match(store: &dyn Store) {
    numbers_world(store);
    let birth = date!(1980 - 02 - 29);
    let q = numbers(&kyokai("x"), birth);
    assert_eq!(store.persons_by_numbers(&q).unwrap(), ["B2", "a1"]);
    let q = NumbersQuery {
        symbol: Some("87654321".into()),
        ..numbers(&kyokai("x"), birth)
    };
    assert_eq!(store.persons_by_numbers(&q).unwrap(), ["P3"]);
    let q = NumbersQuery {
        branch: Some("01".into()),
        ..numbers(&kyokai("x"), birth)
    };
    assert_eq!(store.persons_by_numbers(&q).unwrap(), ["P4"]);
    let q = NumbersQuery {
        number: "902".into(),
        ..numbers(&kyokai("x"), birth)
    };
    assert_eq!(store.persons_by_numbers(&q).unwrap(), Vec::<String>::new());
    let q = NumbersQuery {
        insurer_number: koki("x").insurer_number,
        ..numbers(&kyokai("x"), birth)
    };
    assert_eq!(store.persons_by_numbers(&q).unwrap(), Vec::<String>::new());
    let q = numbers(&koki("x"), date!(1940 - 01 - 01));
    assert_eq!(store.persons_by_numbers(&q).unwrap(), ["K1"]);
}

/// An absent 記号 or 枝番 matches only an absent one, and a present one never matches absent.
pub fn persons_by_numbers_absent_symbol_or_branch_matches_only_absent(store: &dyn Store) {
    numbers_world(store);
    let none = Vec::<String>::new();
    let birth = date!(1980 - 02 - 29);
    // 後期高齢者医療 numbers, asked with a 記号 or 枝番 (even an empty one): nothing.
    for (symbol, branch) in [
        (Some("12345678"), None),
        (None, Some("00")),
        (Some(""), None),
        (None, Some("")),
    ] {
        let q = NumbersQuery {
            symbol: symbol.map(str::to_owned),
            branch: branch.map(str::to_owned),
            ..numbers(&koki("x"), date!(1940 - 01 - 01))
        };
        assert_eq!(store.persons_by_numbers(&q).unwrap(), none, "{q:?}");
    }
    // Records with 記号 and 枝番, asked without one of them: nothing.
    for q in [
        NumbersQuery {
            symbol: None,
            ..numbers(&kyokai("x"), birth)
        },
        NumbersQuery {
            branch: None,
            ..numbers(&kyokai("x"), birth)
        },
    ] {
        assert_eq!(store.persons_by_numbers(&q).unwrap(), none, "{q:?}");
    }
    let q = numbers(&koki("x"), date!(1941 - 01 - 01));
    assert_eq!(store.persons_by_numbers(&q).unwrap(), ["K2"]);
}

/// The right numbers with another birth date find nobody.
pub fn persons_by_numbers_wrong_birth_date_finds_none(store: &dyn Store) {
    numbers_world(store);
    let none = Vec::<String>::new();
    for birth in [
        date!(1980 - 03 - 01),
        date!(1980 - 02 - 28),
        date!(2080 - 02 - 29),
    ] {
        let q = numbers(&kyokai("x"), birth);
        assert_eq!(store.persons_by_numbers(&q).unwrap(), none, "{birth}");
    }
    let q = numbers(&koki("x"), date!(1941 - 01 - 02));
    assert_eq!(store.persons_by_numbers(&q).unwrap(), none);
    // And the right one still finds them (the cases above failed for the date alone).
    let q = numbers(&kyokai("x"), date!(1980 - 02 - 29));
    assert_eq!(store.persons_by_numbers(&q).unwrap().len(), 2);
}

// ---- registration and consents ---------------------------------------------------------------

/// Registering marks the person; doing it again changes nothing and says so; an unknown
/// person is an error.
pub fn registration_is_idempotent(store: &dyn Store) {
    let unregistered = Person {
        registered_for_insurance: false,
        ..person("P1", date!(1980 - 02 - 29))
    };
    load(
        store,
        LoadBatch {
            persons: vec![unregistered.clone(), person("P2", date!(1990 - 01 - 01))],
            ..LoadBatch::default()
        },
    );
    assert_eq!(
        store.register_for_insurance("P1", at(0)).unwrap(),
        Registration::Registered
    );
    assert_eq!(
        store.person("P1").unwrap(),
        Some(Person {
            registered_for_insurance: true,
            ..unregistered
        })
    );
    assert_eq!(
        store.register_for_insurance("P1", at(1000)).unwrap(),
        Registration::AlreadyRegistered
    );
    assert_eq!(
        store.register_for_insurance("P2", at(0)).unwrap(),
        Registration::AlreadyRegistered
    );
    match store.register_for_insurance("ghost", at(0)) {
        Err(StoreError::UnknownPerson(id)) => assert_eq!(id, "ghost"),
        other => panic!("expected UnknownPerson, got {other:?}"),
    }
    assert_eq!(store.person("ghost").unwrap(), None);
}

fn sorted(mut grants: Vec<ConsentGrant>) -> Vec<ConsentGrant> {
    grants.sort_by_key(|g| g.kind);
    grants
}

/// A 居宅同意取得型 consent (docs/domain.md "Home visits and online care") is stored beside
/// the 24-hour consents under its own kind, with its period's end exactly; a re-query is
/// answered from what the store returns until that end, for its institution and treatment only.
pub fn home_care_consent_keeps_its_period(store: &dyn Store) {
    use onshi_confirm_service::home_care;
    // 2026-12-03 10:00 JST.
    let first = time::macros::datetime!(2026-12-03 01:00 UTC);
    let grant =
        home_care::first_visit_grant("P7", "1340123452", ConsentKind::HomeVisitRequery, first);
    let medication = ConsentGrant::new("P7", "1340123452", ConsentKind::Medication, first);
    store
        .record_consents(&[grant.clone(), medication.clone()])
        .unwrap();
    let stored = sorted(store.consents("P7", "1340123452").unwrap());
    assert_eq!(stored, vec![medication, grant.clone()]);
    assert_eq!(
        stored[1].valid_until,
        time::macros::datetime!(2027-01-31 15:00 UTC),
        "the first instant of 2027-02-01 JST"
    );
    let last = time::macros::datetime!(2027-01-31 14:59:59.999 UTC);
    let period =
        home_care::check_requery(&stored, "1340123452", ConsentKind::HomeVisitRequery, last)
            .unwrap();
    assert_eq!(period.requery_until, "20270131");
    for (institution, kind, at) in [
        (
            "1340123452",
            ConsentKind::HomeVisitRequery,
            grant.valid_until,
        ),
        ("1340123452", ConsentKind::OnlineRequery, last),
        ("1310156789", ConsentKind::HomeVisitRequery, last),
    ] {
        let grants = store.consents("P7", institution).unwrap();
        assert!(
            home_care::check_requery(&grants, institution, kind, at).is_err(),
            "{institution} {kind:?} {at}"
        );
    }
}

/// A grant replaces the earlier one of the same person, institution and kind, and only that
/// one; within one call the last grant of a key wins.
pub fn consents_latest_grant_wins(store: &dyn Store) {
    let g = |p: &str, i: &str, k, ms| ConsentGrant::new(p, i, k, at(ms));
    assert_eq!(store.consents("P1", "1340123452").unwrap(), Vec::new());
    store
        .record_consents(&[
            g("P1", "1340123452", ConsentKind::Medication, 0),
            g("P1", "1340123452", ConsentKind::Checkup, 0),
            g("P1", "1310156789", ConsentKind::Medication, 5),
            g("P2", "1340123452", ConsentKind::Medication, 7),
        ])
        .unwrap();
    store
        .record_consents(&[g("P1", "1340123452", ConsentKind::Medication, 90_000_000)])
        .unwrap();
    assert_eq!(
        sorted(store.consents("P1", "1340123452").unwrap()),
        vec![
            g("P1", "1340123452", ConsentKind::Medication, 90_000_000),
            g("P1", "1340123452", ConsentKind::Checkup, 0),
        ]
    );
    assert_eq!(
        store.consents("P1", "1310156789").unwrap(),
        vec![g("P1", "1310156789", ConsentKind::Medication, 5)]
    );
    assert_eq!(
        store.consents("P2", "1340123452").unwrap(),
        vec![g("P2", "1340123452", ConsentKind::Medication, 7)]
    );
    store
        .record_consents(&[
            g("P2", "1340123452", ConsentKind::Surgery, 10),
            g("P2", "1340123452", ConsentKind::Surgery, 20),
        ])
        .unwrap();
    assert_eq!(
        sorted(store.consents("P2", "1340123452").unwrap()),
        vec![
            g("P2", "1340123452", ConsentKind::Medication, 7),
            g("P2", "1340123452", ConsentKind::Surgery, 20),
        ]
    );
}

// ---- challenges ------------------------------------------------------------------------------
//
// The store keeps only the nonces of used challenges and the sealing keys; the seal itself
// (terminal, purpose, expiry) is checked by computation (`challenge.rs`'s unit tests and the
// service tests).

/// A nonce as the service makes one: its challenge's expiry (`at(expires_ms)`) first, then
/// `seed`.
fn nonce(seed: u8, expires_ms: i64) -> [u8; 16] {
    let mut n = [seed; 16];
    n[..8].copy_from_slice(&onshi_confirm_service::challenge::nonce_floor(at(
        expires_ms,
    )));
    n
}

/// A challenge is consumed once; a second use is a reuse.
pub fn challenge_is_single_use(store: &dyn Store) {
    let a = nonce(1, 60_000);
    let b = nonce(2, 60_000);
    assert_eq!(store.consume_challenge(a), Ok(()));
    assert_eq!(store.consume_challenge(a), Err(ChallengeError::Reused));
    // Using one challenge leaves the others alone.
    assert_eq!(store.consume_challenge(b), Ok(()));
    assert_eq!(store.consume_challenge(b), Err(ChallengeError::Reused));
}

/// Many threads consuming one challenge at once: exactly one succeeds, the others see a reuse.
pub fn challenge_concurrent_consumption_one_wins(store: &dyn Store) {
    race_for_one_challenge(&[store], 16);
}

/// Two instances on one store, many threads each: one consumption in all.
pub fn challenge_consumed_once_across_instances(a: &dyn Store, b: &dyn Store) {
    race_for_one_challenge(&[a, b], 8);
}

fn race_for_one_challenge(instances: &[&dyn Store], threads_each: usize) {
    for round in 0..5u8 {
        let bytes = nonce(10 + round, 60_000);
        let n = instances.len() * threads_each;
        let barrier = Barrier::new(n);
        let outcomes: Vec<Result<(), ChallengeError>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..n)
                .map(|i| {
                    let store = instances[i % instances.len()];
                    let barrier = &barrier;
                    s.spawn(move || {
                        barrier.wait();
                        store.consume_challenge(bytes)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let wins = outcomes.iter().filter(|o| o.is_ok()).count();
        assert_eq!(wins, 1, "round {round}: {outcomes:?}");
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, Ok(()) | Err(ChallengeError::Reused))),
            "round {round}: {outcomes:?}"
        );
    }
}

/// Purging forgets the nonces of challenges that expired before the given instant, and only
/// those (a forgotten nonce could be inserted again; the service refuses its expired
/// challenge before it gets there).
pub fn challenges_are_purged_after_expiry(store: &dyn Store) {
    let old = nonce(1, 0);
    let edge = nonce(2, 10_000);
    let fresh = nonce(3, 20_000);
    for n in [old, edge, fresh] {
        assert_eq!(store.consume_challenge(n), Ok(()));
    }
    assert_eq!(store.purge_challenges(at(10_000)).unwrap(), 1);
    assert_eq!(store.purge_challenges(at(10_000)).unwrap(), 0);
    assert_eq!(store.consume_challenge(edge), Err(ChallengeError::Reused));
    assert_eq!(store.consume_challenge(fresh), Err(ChallengeError::Reused));
    assert_eq!(store.purge_challenges(at(20_001)).unwrap(), 2);
    assert_eq!(store.consume_challenge(old), Ok(()), "forgotten");
}

/// The first read makes a key; later reads return it until it is older than the rotation
/// period, then a second key is made and both are returned, newest first; a third rotation
/// drops the oldest.
pub fn challenge_keys_are_made_once_and_rotated(store: &dyn Store) {
    let day = Duration::days(1);
    let first = store.challenge_keys(at(0), day).unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].secret.len(), 32);
    assert_eq!(first[0].created_at, at(0));
    assert_eq!(store.challenge_keys(at(1_000), day).unwrap(), first);
    let later = at(0) + day;
    let rotated = store.challenge_keys(later, day).unwrap();
    assert_eq!(rotated.len(), 2);
    assert_eq!(rotated[1], first[0]);
    assert_eq!(rotated[0].id, first[0].id + 1);
    assert_eq!(rotated[0].created_at, later);
    assert_ne!(rotated[0].secret, first[0].secret, "a new random key");
    let again = store.challenge_keys(later + day, day).unwrap();
    assert_eq!(again.len(), 2);
    assert_eq!(again[1], rotated[0]);
}

/// Two instances reading (and rotating) the keys at once agree on them.
pub fn challenge_keys_are_shared_across_instances(a: &dyn Store, b: &dyn Store) {
    let day = Duration::days(1);
    let (ka, kb) = std::thread::scope(|s| {
        let ha = s.spawn(|| a.challenge_keys(at(0), day).unwrap());
        let hb = s.spawn(|| b.challenge_keys(at(0), day).unwrap());
        (ha.join().unwrap(), hb.join().unwrap())
    });
    assert_eq!(ka, kb);
    assert_eq!(ka.len(), 1);
    let (ra, rb) = std::thread::scope(|s| {
        let ha = s.spawn(|| a.challenge_keys(at(0) + day, day).unwrap());
        let hb = s.spawn(|| b.challenge_keys(at(0) + day, day).unwrap());
        (ha.join().unwrap(), hb.join().unwrap())
    });
    assert_eq!(ra, rb);
    assert_eq!(ra.len(), 2);
}

// ---- audit -----------------------------------------------------------------------------------

fn record(id: &str, ms: i64, institution: &str, person: Option<&str>) -> AuditRecord {
    AuditRecord {
        confirmation_id: id.into(),
        at: at(ms),
        institution_code: institution.into(),
        terminal_id: "T01".into(),
        person_id: person.map(str::to_owned),
        method: "pin".into(),
        purpose: "confirm".into(),
        result_code: if person.is_some() {
            "RESULT_CODE_OK".into()
        } else {
            "RESULT_CODE_CERTIFICATE_REVOKED".into()
        },
        consents: 0b1001,
        certificate_sha256: person.map(|_| "ab".repeat(32)),
        returned: r#"{"validity":"valid","insurers":["01130012"]}"#.into(),
        claimed_at: None,
    }
}

fn all(limit: u32) -> AuditQuery {
    AuditQuery {
        limit,
        ..AuditQuery::default()
    }
}

fn ids(records: Vec<AuditRecord>) -> Vec<String> {
    records.into_iter().map(|r| r.confirmation_id).collect()
}

/// The audit trail of [`audit_query_by_person`] and the others: two institutions, two persons
/// and a refusal without a person, appended in groups and out of time order.
fn audit_world(store: &dyn Store) {
    store
        .append_audit(&[
            record("C3", 3_000, "1340123452", Some("P1")),
            record("C1", 1_000, "1340123452", Some("P1")),
        ])
        .unwrap();
    store
        .append_audit(&[
            record("C2", 2_000, "1310156789", Some("P2")),
            record("C4", 3_999, "1310156789", None),
            record("C5", 4_000, "1340123452", Some("P2")),
            record("C6", 5_000, "1310156789", Some("P1")),
        ])
        .unwrap();
}

/// Records read back equal to what was appended, oldest first whatever the append order;
/// instants keep (at least) their milliseconds.
pub fn audit_round_trip_oldest_first(store: &dyn Store) {
    assert_eq!(store.query_audit(&all(100)).unwrap(), Vec::new());
    let first = record("C1", 2_000, "1340123452", Some("P1"));
    let refused = record("C0", 1_000, "1340123452", None);
    store.append_audit(std::slice::from_ref(&first)).unwrap();
    store.append_audit(std::slice::from_ref(&refused)).unwrap();
    assert_eq!(store.query_audit(&all(100)).unwrap(), vec![refused, first]);

    // Below a millisecond the store may round down, never up, and never by a millisecond.
    let mut fine = record("C9", 9_000, "1340123452", Some("P1"));
    fine.at += Duration::nanoseconds(456_789);
    store.append_audit(&[fine.clone()]).unwrap();
    let back = store
        .query_audit(&AuditQuery {
            from: Some(at(9_000)),
            ..all(10)
        })
        .unwrap();
    assert_eq!(back.len(), 1);
    assert!(
        back[0].at <= fine.at && fine.at - back[0].at < Duration::milliseconds(1),
        "{} read back as {}",
        fine.at,
        back[0].at
    );
    assert_eq!(
        AuditRecord {
            at: fine.at,
            ..back[0].clone()
        },
        fine
    );
}

/// A person's records, oldest first.
pub fn audit_query_by_person(store: &dyn Store) {
    audit_world(store);
    let q = |p: &str| AuditQuery {
        person_id: Some(p.into()),
        ..all(100)
    };
    assert_eq!(
        ids(store.query_audit(&q("P1")).unwrap()),
        ["C1", "C3", "C6"]
    );
    assert_eq!(ids(store.query_audit(&q("P2")).unwrap()), ["C2", "C5"]);
    assert_eq!(
        ids(store.query_audit(&q("P3")).unwrap()),
        Vec::<String>::new()
    );
    // Conditions combine.
    let both = AuditQuery {
        institution_code: Some("1340123452".into()),
        ..q("P1")
    };
    assert_eq!(ids(store.query_audit(&both).unwrap()), ["C1", "C3"]);
}

/// An institution's records, oldest first, refusals without a person included.
pub fn audit_query_by_institution(store: &dyn Store) {
    audit_world(store);
    let q = |i: &str| AuditQuery {
        institution_code: Some(i.into()),
        ..all(100)
    };
    assert_eq!(
        ids(store.query_audit(&q("1340123452")).unwrap()),
        ["C1", "C3", "C5"]
    );
    assert_eq!(
        ids(store.query_audit(&q("1310156789")).unwrap()),
        ["C2", "C4", "C6"]
    );
    assert_eq!(
        ids(store.query_audit(&q("0110113719")).unwrap()),
        Vec::<String>::new()
    );
}

/// `from` is inclusive, `until` exclusive, to the millisecond.
pub fn audit_query_by_time_range(store: &dyn Store) {
    audit_world(store);
    let q = |from: Option<i64>, until: Option<i64>| AuditQuery {
        from: from.map(at),
        until: until.map(at),
        ..all(100)
    };
    assert_eq!(
        ids(store.query_audit(&q(Some(2_000), Some(4_000))).unwrap()),
        ["C2", "C3", "C4"]
    );
    assert_eq!(
        ids(store.query_audit(&q(Some(2_001), Some(4_001))).unwrap()),
        ["C3", "C4", "C5"]
    );
    assert_eq!(
        ids(store.query_audit(&q(Some(4_000), None)).unwrap()),
        ["C5", "C6"]
    );
    assert_eq!(
        ids(store.query_audit(&q(None, Some(2_000))).unwrap()),
        ["C1"]
    );
    assert_eq!(
        ids(store.query_audit(&q(Some(3_000), Some(3_000))).unwrap()),
        Vec::<String>::new()
    );
    let mixed = AuditQuery {
        person_id: Some("P1".into()),
        ..q(Some(2_000), Some(6_000))
    };
    assert_eq!(ids(store.query_audit(&mixed).unwrap()), ["C3", "C6"]);
}

/// A limit returns the oldest matching records; zero means no limit.
pub fn audit_query_limit_keeps_the_oldest(store: &dyn Store) {
    audit_world(store);
    assert_eq!(ids(store.query_audit(&all(2)).unwrap()), ["C1", "C2"]);
    assert_eq!(
        ids(store.query_audit(&all(6)).unwrap()),
        ["C1", "C2", "C3", "C4", "C5", "C6"]
    );
    assert_eq!(store.query_audit(&all(1000)).unwrap().len(), 6);
    assert_eq!(store.query_audit(&all(0)).unwrap().len(), 6);
    let q = AuditQuery {
        institution_code: Some("1310156789".into()),
        ..all(2)
    };
    assert_eq!(ids(store.query_audit(&q).unwrap()), ["C2", "C4"]);
}

/// A confirmation id already in the log, or twice in one group, fails the whole group.
pub fn audit_duplicate_id_fails_the_whole_group(store: &dyn Store) {
    store
        .append_audit(&[record("C1", 1_000, "1340123452", Some("P1"))])
        .unwrap();
    let err = store.append_audit(&[
        record("C2", 2_000, "1340123452", Some("P1")),
        record("C1", 3_000, "1340123452", Some("P2")),
        record("C3", 4_000, "1340123452", Some("P1")),
    ]);
    assert!(err.is_err(), "a duplicate of a stored id was accepted");
    let err = store.append_audit(&[
        record("C4", 2_000, "1340123452", Some("P1")),
        record("C4", 3_000, "1340123452", Some("P2")),
    ]);
    assert!(err.is_err(), "a duplicate within a group was accepted");
    assert_eq!(
        store.query_audit(&all(100)).unwrap(),
        vec![record("C1", 1_000, "1340123452", Some("P1"))]
    );
    // The log still takes new records.
    store
        .append_audit(&[record("C2", 2_000, "1340123452", Some("P1"))])
        .unwrap();
    assert_eq!(ids(store.query_audit(&all(100)).unwrap()), ["C1", "C2"]);
}

// ---- the group commit ------------------------------------------------------------------------

fn use_of(nonce: &[u8; 16]) -> ChallengeUse {
    ChallengeUse { nonce: *nonce }
}

fn audit_write(
    record: AuditRecord,
    challenge: Option<ChallengeUse>,
    consents: Vec<ConsentGrant>,
) -> GroupWrite {
    GroupWrite::Audit(Box::new(AuditWrite {
        record,
        challenge,
        consents,
        registration: None,
        remember: None,
    }))
}

/// Two instances committing, at the same moment, groups that record the same consents in
/// opposite orders: every group commits. (On PostgreSQL, upserting the consents in each group's
/// own order made the two transactions wait for each other's rows: "deadlock detected", and
/// every request of both groups answered SERVICE_UNAVAILABLE, found by scripts/perf-postgres.sh
/// with two instances. The consents are now written in the order of their keys.)
pub fn overlapping_groups_do_not_deadlock_across_instances(a: &dyn Store, b: &dyn Store) {
    let persons: Vec<String> = (1..=6).map(|i| format!("P{i}")).collect();
    let kinds = [ConsentKind::Medication, ConsentKind::Checkup];
    let barrier = Barrier::new(2);
    let group = |instance: usize, round: u32| -> Vec<GroupWrite> {
        let mut order: Vec<&String> = persons.iter().collect();
        if instance == 1 {
            order.reverse();
        }
        (0..2)
            .map(|w| {
                let grants = order
                    .iter()
                    .flat_map(|p| {
                        kinds.iter().map(move |k| {
                            ConsentGrant::new(p.as_str(), "1340123452", *k, at(i64::from(round)))
                        })
                    })
                    .collect();
                let id = format!("I{instance}-R{round}-W{w}");
                let mut seed = [0u8; 16];
                seed[..8]
                    .copy_from_slice(&onshi_confirm_service::challenge::nonce_floor(at(600_000)));
                seed[8..12].copy_from_slice(&round.to_be_bytes());
                seed[12] = instance as u8;
                seed[13] = w as u8;
                audit_write(
                    record(&id, i64::from(round), "1340123452", Some("P1")),
                    Some(use_of(&seed)),
                    grants,
                )
            })
            .collect()
    };
    let failures: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = [a, b]
            .into_iter()
            .enumerate()
            .map(|(instance, store)| {
                let (barrier, group) = (&barrier, &group);
                s.spawn(move || {
                    let mut failed = Vec::new();
                    for round in 0..60 {
                        let mut writes = group(instance, round);
                        barrier.wait();
                        if let Err(e) = store.commit_group(&mut writes, &mark_refused) {
                            failed.push(format!("instance {instance}, round {round}: {e}"));
                        }
                    }
                    failed
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert!(
        failures.is_empty(),
        "{} failed groups: {failures:#?}",
        failures.len()
    );
    assert_eq!(a.query_audit(&all(1_000)).unwrap().len(), 2 * 60 * 2);
}

/// A record's claimed visit time is read back as written (to the millisecond), is covered by
/// the chain (a record with one verifies), and a record without one reads `None`.
pub fn claimed_time_round_trips_and_is_chained(store: &dyn Store) {
    let mut caught_up = record("C1", 5_000, "1340123452", Some("P1"));
    caught_up.claimed_at = Some(at(-3_600_000));
    let plain = record("C2", 6_000, "1340123452", Some("P1"));
    store
        .append_audit(&[caught_up.clone(), plain.clone()])
        .unwrap();
    assert_eq!(store.query_audit(&all(10)).unwrap(), vec![caught_up, plain]);
    onshi_confirm_service::audit_chain::verify(store, None).unwrap();
}

/// An answer remembered in a group with its audit record is read by any instance on the
/// store until it expires; a key already remembered keeps its first answer; expired answers
/// are pruned with the expired challenges.
pub fn remembered_answers_are_shared_expire_and_are_pruned(a: &dyn Store, b: &dyn Store) {
    let remembered = |id: &str, key: &str, answer: &[u8], expires_ms: i64| {
        GroupWrite::Audit(Box::new(AuditWrite {
            remember: Some(RememberedAnswer {
                terminal: T01.into(),
                method: "numbers".into(),
                key: key.into(),
                answer: answer.to_vec(),
                expires_at: at(expires_ms),
            }),
            ..AuditWrite::record(record(id, 0, "1340123452", None))
        }))
    };
    a.commit_group(
        &mut [remembered("C1", "k1", b"first", 10_000)],
        &onshi_confirm_service::store::keep_record,
    )
    .unwrap();
    a.commit_group(
        &mut [remembered("C2", "k2", b"other", 20_000)],
        &onshi_confirm_service::store::keep_record,
    )
    .unwrap();
    // The same key again (another instance carried it out at the same moment) keeps the
    // first answer; its record is written all the same.
    b.commit_group(
        &mut [remembered("C3", "k1", b"second", 30_000)],
        &onshi_confirm_service::store::keep_record,
    )
    .unwrap();
    assert_eq!(a.query_audit(&all(10)).unwrap().len(), 3);
    for s in [a, b] {
        assert_eq!(
            s.remembered_answer(T01, "numbers", "k1", at(10_000))
                .unwrap(),
            Some(b"first".to_vec())
        );
        // Scoped to the terminal and the method.
        assert_eq!(
            s.remembered_answer(T02, "numbers", "k1", at(0)).unwrap(),
            None
        );
        assert_eq!(
            s.remembered_answer(T01, "medications", "k1", at(0))
                .unwrap(),
            None
        );
    }
    // Expired: not answered, and pruned.
    assert_eq!(
        b.remembered_answer(T01, "numbers", "k1", at(10_001))
            .unwrap(),
        None
    );
    b.purge_challenges(at(15_000)).unwrap();
    assert_eq!(
        a.remembered_answer(T01, "numbers", "k1", at(0)).unwrap(),
        None
    );
    assert_eq!(
        a.remembered_answer(T01, "numbers", "k2", at(15_000))
            .unwrap(),
        Some(b"other".to_vec())
    );
}

/// The test's rewrite of a record whose challenge was refused.
fn mark_refused(record: &mut AuditRecord, e: &ChallengeError) {
    record.result_code = format!("REFUSED {e}");
    record.person_id = None;
}

/// In one group: a request's challenge is consumed before its consents and record are
/// written; the same challenge used again later in the group is a reuse, whose consents are
/// not recorded and whose record is rewritten; a challenge used before the group is a reuse
/// too; a record without a challenge is written as it is.
pub fn group_commit_consumes_then_records_consents_and_audit(store: &dyn Store) {
    let a = nonce(1, 60_000);
    let b = nonce(2, 60_000);
    assert_eq!(store.consume_challenge(b), Ok(()));
    let medication = ConsentGrant::new("P1", "1340123452", ConsentKind::Medication, at(10));
    let checkup = ConsentGrant::new("P1", "1340123452", ConsentKind::Checkup, at(11));
    let mut writes = vec![
        audit_write(
            record("C1", 10, "1340123452", Some("P1")),
            Some(use_of(&a)),
            vec![medication.clone()],
        ),
        audit_write(
            record("C2", 11, "1340123452", Some("P1")),
            Some(use_of(&a)),
            vec![checkup],
        ),
        audit_write(
            record("C3", 12, "1340123452", Some("P1")),
            Some(use_of(&b)),
            vec![],
        ),
        audit_write(record("C4", 13, "1340123452", Some("P2")), None, vec![]),
    ];
    let verdicts = store.commit_group(&mut writes, &mark_refused).unwrap();
    assert_eq!(
        verdicts,
        vec![
            Ok(()),
            Err(ChallengeError::Reused),
            Err(ChallengeError::Reused),
            Ok(()),
        ]
    );
    assert_eq!(
        store.consents("P1", "1340123452").unwrap(),
        vec![medication],
        "only the good challenge's consents are recorded"
    );
    let log = store.query_audit(&all(100)).unwrap();
    assert_eq!(log[0], record("C1", 10, "1340123452", Some("P1")));
    // Rewritten by `mark_refused`: its code, and no person; the rest as the request made it.
    let mut c2 = record("C2", 11, "1340123452", Some("P1"));
    c2.result_code = "REFUSED the challenge was already used".into();
    c2.person_id = None;
    assert_eq!(log[1], c2);
    assert_eq!(log[2].result_code, "REFUSED the challenge was already used");
    assert_eq!(log[3], record("C4", 13, "1340123452", Some("P2")));
    assert_eq!(log.len(), 4);
    assert_eq!(store.consume_challenge(a), Err(ChallengeError::Reused));
}

/// A group that cannot be written (here a duplicate confirmation id) writes none of its
/// parts: its challenges stay unused and its consents unrecorded.
pub fn group_commit_failure_writes_nothing(store: &dyn Store) {
    store
        .append_audit(&[record("C1", 1_000, "1340123452", Some("P1"))])
        .unwrap();
    let a = nonce(1, 60_000);
    let grant = ConsentGrant::new("P1", "1340123452", ConsentKind::Medication, at(10));
    let mut writes = vec![
        audit_write(
            record("C2", 10, "1340123452", Some("P1")),
            Some(use_of(&a)),
            vec![grant],
        ),
        audit_write(record("C1", 11, "1340123452", Some("P1")), None, vec![]),
    ];
    assert!(store.commit_group(&mut writes, &mark_refused).is_err());
    assert_eq!(store.consents("P1", "1340123452").unwrap(), Vec::new());
    assert_eq!(ids(store.query_audit(&all(100)).unwrap()), ["C1"]);
    assert_eq!(
        store.consume_challenge(a),
        Ok(()),
        "the failed group consumed nothing"
    );
}

// ---- registration with its audit record, the audit chain ------------------------------------

fn unregistered(store: &dyn Store) {
    load(
        store,
        LoadBatch {
            persons: vec![
                Person {
                    registered_for_insurance: false,
                    ..person("P1", date!(1980 - 02 - 29))
                },
                Person {
                    registered_for_insurance: false,
                    ..person("P2", date!(1990 - 01 - 01))
                },
            ],
            ..LoadBatch::default()
        },
    );
}

fn registering(id: &str, ms: i64, person: &str, challenge: Option<ChallengeUse>) -> GroupWrite {
    let mut record = record(id, ms, "1340123452", Some(person));
    record.purpose = "register".into();
    GroupWrite::Audit(Box::new(AuditWrite {
        record,
        challenge,
        consents: Vec::new(),
        registration: Some(RegistrationWrite {
            person_id: person.into(),
            at: at(ms),
            outcome: None,
        }),
        remember: None,
    }))
}

fn registered(store: &dyn Store, person: &str) -> bool {
    store
        .person(person)
        .unwrap()
        .unwrap()
        .registered_for_insurance
}

fn verified(store: &dyn Store) -> u64 {
    match audit_chain::verify(store, None) {
        Ok(v) => v.records,
        Err(e) => panic!("the chain does not verify: {e}"),
    }
}

/// A registration carried by its audit write lands with its record in one commit: the person
/// is registered, the record says so (`newly_registered`), the write tells what happened; the
/// same again registers nothing new and its record says that.
pub fn registration_lands_with_its_audit_record(store: &dyn Store) {
    unregistered(store);
    let mut writes = vec![registering("R1", 10, "P1", None)];
    assert_eq!(
        store.commit_group(&mut writes, &mark_refused).unwrap(),
        vec![Ok(())]
    );
    let GroupWrite::Audit(a) = &writes[0] else {
        unreachable!()
    };
    assert_eq!(
        a.registration.as_ref().unwrap().outcome,
        Some(Registration::Registered)
    );
    assert!(registered(store, "P1"));
    assert!(!registered(store, "P2"));
    let log = store.query_audit(&all(10)).unwrap();
    assert_eq!(ids(log.clone()), ["R1"]);
    assert_eq!(log[0].returned, r#"{"newly_registered":true}"#);

    let mut writes = vec![registering("R2", 20, "P1", None)];
    store.commit_group(&mut writes, &mark_refused).unwrap();
    let GroupWrite::Audit(a) = &writes[0] else {
        unreachable!()
    };
    assert_eq!(
        a.registration.as_ref().unwrap().outcome,
        Some(Registration::AlreadyRegistered)
    );
    let log = store.query_audit(&all(10)).unwrap();
    assert_eq!(log[1].returned, r#"{"newly_registered":false}"#);
    assert_eq!(verified(store), 2);
}

/// A group that fails (here a duplicate confirmation id later in the group) writes neither the
/// registration nor its record; nor does a registration of an unknown person.
pub fn a_failed_group_writes_neither_registration_nor_record(store: &dyn Store) {
    unregistered(store);
    store
        .append_audit(&[record("C1", 1, "1340123452", None)])
        .unwrap();
    let mut writes = vec![
        registering("R1", 10, "P1", None),
        audit_write(record("C1", 11, "1340123452", None), None, vec![]),
    ];
    assert!(store.commit_group(&mut writes, &mark_refused).is_err());
    assert!(!registered(store, "P1"), "the registration was rolled back");
    assert_eq!(ids(store.query_audit(&all(10)).unwrap()), ["C1"]);

    let mut writes = vec![
        registering("R2", 12, "P2", None),
        registering("R3", 13, "ghost", None),
    ];
    match store.commit_group(&mut writes, &mark_refused) {
        Err(StoreError::UnknownPerson(id)) => assert_eq!(id, "ghost"),
        other => panic!("expected UnknownPerson, got {other:?}"),
    }
    assert!(!registered(store, "P2"));
    assert_eq!(ids(store.query_audit(&all(10)).unwrap()), ["C1"]);
    assert_eq!(verified(store), 1);
}

/// A registration whose challenge is refused is not made; its record is written, rewritten.
pub fn a_registration_with_a_refused_challenge_is_not_made(store: &dyn Store) {
    unregistered(store);
    let a = nonce(1, 60_000);
    let b = nonce(2, 60_000);
    assert_eq!(store.consume_challenge(a), Ok(()));
    let mut writes = vec![
        registering("R1", 10, "P1", Some(use_of(&a))),
        registering("R2", 11, "P2", Some(use_of(&b))),
    ];
    assert_eq!(
        store.commit_group(&mut writes, &mark_refused).unwrap(),
        vec![Err(ChallengeError::Reused), Ok(())]
    );
    assert!(!registered(store, "P1"));
    assert!(registered(store, "P2"));
    let log = store.query_audit(&all(10)).unwrap();
    assert_eq!(log[0].person_id, None);
    assert!(log[0].result_code.starts_with("REFUSED"));
    assert_eq!(log[1].returned, r#"{"newly_registered":true}"#);
}

/// Every record appended (in groups, by `append_audit`, with challenges) is chained: the head
/// advances by one per record and `verify` checks them all.
pub fn audit_chain_links_every_record(store: &dyn Store) {
    let empty = store.audit_chain_head().unwrap();
    assert_eq!(empty.last_seq, 0);
    assert_eq!(empty.last_hash, audit_chain::GENESIS.to_vec());
    assert_eq!(verified(store), 0);
    audit_world(store);
    let a = nonce(1, 60_000);
    let mut writes = vec![
        audit_write(
            record("C7", 6_000, "1340123452", Some("P1")),
            Some(use_of(&a)),
            vec![],
        ),
        audit_write(
            record("C8", 6_001, "1340123452", Some("P1")),
            Some(use_of(&a)),
            vec![],
        ),
    ];
    store.commit_group(&mut writes, &mark_refused).unwrap();
    let head = store.audit_chain_head().unwrap();
    assert_eq!(head.last_seq, 8);
    assert_eq!(verified(store), 8);
    // The chain is in append order: C3 then C1 (one group), then the rest.
    let page = store.audit_chain_page(None, 100).unwrap();
    let order: Vec<&str> = page
        .iter()
        .map(|r| r.record.confirmation_id.as_str())
        .collect();
    assert_eq!(order, ["C3", "C1", "C2", "C4", "C5", "C6", "C7", "C8"]);
    assert_eq!(
        page.iter().map(|r| r.position.unwrap()).collect::<Vec<_>>(),
        (1..=8).collect::<Vec<_>>()
    );
    assert_eq!(page[7].hash.as_deref(), Some(head.last_hash.as_slice()));
    // The record read back is the record hashed (C8 was rewritten as a reuse before both).
    assert_eq!(
        page[7].record.result_code,
        "REFUSED the challenge was already used"
    );
    assert!(store.unchained_audit(10).unwrap().is_empty());
    // A head kept elsewhere earlier is still in the chain; a made-up one is not.
    let fourth: String = page[3]
        .hash
        .as_ref()
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(audit_chain::verify(store, Some(&fourth)).is_ok());
    match audit_chain::verify(store, Some(&"ab".repeat(32))) {
        Err(VerifyError::Broken(b)) => assert!(matches!(b.what, Break::Edited { .. })),
        other => panic!("a made-up head must not verify: {other:?}"),
    }
}

/// Pruning removes the oldest records (in chain order, up to the first that is not old enough)
/// and anchors the chain at the last one removed, so what is kept still verifies.
pub fn audit_prune_keeps_the_chain_verifiable(store: &dyn Store) {
    audit_world(store); // chain order C3 C1 C2 C4 C5 C6 at 3.0 1.0 2.0 3.999 4.0 5.0 s
    assert_eq!(store.prune_audit(at(0)).unwrap(), 0);
    // Before 3.5 s: C3, C1, C2 go; C4 (3.999 s) stops it.
    assert_eq!(store.prune_audit(at(3_500)).unwrap(), 3);
    assert_eq!(
        ids(store.query_audit(&all(10)).unwrap()),
        ["C4", "C5", "C6"]
    );
    let head = store.audit_chain_head().unwrap();
    assert_eq!((head.anchor_seq, head.last_seq), (3, 6));
    assert_eq!(verified(store), 3);
    assert_eq!(store.prune_audit(at(3_500)).unwrap(), 0);
    // Appending after a prune continues the chain.
    store
        .append_audit(&[record("C7", 9_000, "1340123452", None)])
        .unwrap();
    assert_eq!(verified(store), 4);
    // Everything old enough goes; the anchor is then the head and the empty chain verifies.
    assert_eq!(store.prune_audit(at(60_000)).unwrap(), 4);
    let head = store.audit_chain_head().unwrap();
    assert_eq!((head.anchor_seq, head.last_seq), (7, 7));
    assert_eq!(head.anchor_hash, head.last_hash);
    assert_eq!(verified(store), 0);
    store
        .append_audit(&[record("C8", 61_000, "1340123452", None)])
        .unwrap();
    assert_eq!(verified(store), 1);
}

/// Two instances appending at once (as two service instances sharing one store do) build one
/// chain: positions 1..n without gaps or repeats, every link holding.
pub fn audit_chain_is_one_chain_across_instances(a: &dyn Store, b: &dyn Store) {
    let per_thread: u32 = 40;
    let barrier = Barrier::new(4);
    std::thread::scope(|s| {
        for (t, store) in [a, b, a, b].into_iter().enumerate() {
            let barrier = &barrier;
            s.spawn(move || {
                barrier.wait();
                for i in 0..per_thread {
                    // Groups of one and of three.
                    let records: Vec<AuditRecord> = (0..1 + (i % 2) * 2)
                        .map(|k| record(&format!("T{t}-{i}-{k}"), i64::from(i), "1340123452", None))
                        .collect();
                    store.append_audit(&records).unwrap();
                }
            });
        }
    });
    let total = 4 * (per_thread / 2) * (1 + 3);
    assert_eq!(verified(a), u64::from(total));
    assert_eq!(verified(b), u64::from(total));
}

// ---- batch confirmation ----------------------------------------------------------------------

fn job(reception_number: &str, submitted_ms: i64, total: u32) -> BatchJob {
    BatchJob {
        reception_number: reception_number.into(),
        institution_code: "1340123452".into(),
        terminal_id: "T01".into(),
        submitted_at: at(submitted_ms),
        total,
        completed: 0,
        finished_at: None,
    }
}

fn queries(n: u8) -> Vec<Vec<u8>> {
    (0..n).map(|i| vec![0x0A, 2, i, 0xFF]).collect()
}

fn create(store: &dyn Store, reception_number: &str, submitted_ms: i64, n: u8) -> BatchJob {
    let j = job(reception_number, submitted_ms, u32::from(n));
    store.create_batch(&j, &queries(n)).unwrap();
    j
}

/// A job reads back as created; its items page in order of ordinal.
pub fn batch_create_and_page_items(store: &dyn Store) {
    assert_eq!(store.batch("R1").unwrap(), None);
    let j = create(store, "R1", 0, 5);
    create(store, "R2", 1, 2);
    assert_eq!(store.batch("R1").unwrap(), Some(j.clone()));
    let item = |i: u8| BatchItem {
        ordinal: u32::from(i),
        query: queries(5)[usize::from(i)].clone(),
        result: None,
    };
    assert_eq!(
        store.batch_items("R1", 0, 2).unwrap(),
        vec![item(0), item(1)]
    );
    assert_eq!(
        store.batch_items("R1", 2, 2).unwrap(),
        vec![item(2), item(3)]
    );
    assert_eq!(store.batch_items("R1", 4, 100).unwrap(), vec![item(4)]);
    assert_eq!(store.batch_items("R1", 5, 100).unwrap(), Vec::new());
    assert_eq!(store.batch_items("R1", 0, 0).unwrap(), Vec::new());
    assert_eq!(store.batch_items("R2", 0, 100).unwrap().len(), 2);
    assert_eq!(store.batch_items("R9", 0, 100).unwrap(), Vec::new());
    // A reception number is taken once; the failed attempt leaves the job as it was.
    assert!(store.create_batch(&job("R1", 9, 1), &queries(1)).is_err());
    assert_eq!(store.batch("R1").unwrap(), Some(j));
    assert_eq!(store.batch_items("R1", 0, 100).unwrap().len(), 5);
}

/// An item answered twice (in two calls or within one) keeps its first answer, and counts once.
pub fn batch_complete_keeps_the_first_answer(store: &dyn Store) {
    create(store, "R1", 0, 4);
    store
        .complete_batch_items("R1", &[(1, b"first".to_vec())], at(10))
        .unwrap();
    store
        .complete_batch_items(
            "R1",
            &[
                (1, b"second".to_vec()),
                (2, b"two".to_vec()),
                (2, b"two again".to_vec()),
            ],
            at(20),
        )
        .unwrap();
    let results: Vec<Option<Vec<u8>>> = store
        .batch_items("R1", 0, 10)
        .unwrap()
        .into_iter()
        .map(|i| i.result)
        .collect();
    assert_eq!(
        results,
        vec![None, Some(b"first".to_vec()), Some(b"two".to_vec()), None]
    );
    let j = store.batch("R1").unwrap().unwrap();
    assert_eq!((j.completed, j.finished_at), (2, None));
    assert_eq!(ids_of(store.unfinished_batches().unwrap()), ["R1"]);
}

fn ids_of(jobs: Vec<BatchJob>) -> Vec<String> {
    jobs.into_iter().map(|j| j.reception_number).collect()
}

/// The answer that completes the job marks it finished at that call's instant; later calls
/// move neither the count nor that instant.
pub fn batch_finishes_when_every_item_is_answered(store: &dyn Store) {
    create(store, "R1", 0, 3);
    store
        .complete_batch_items("R1", &[(0, vec![0]), (2, vec![2])], at(10))
        .unwrap();
    assert_eq!(store.batch("R1").unwrap().unwrap().finished_at, None);
    store
        .complete_batch_items("R1", &[(1, vec![1])], at(20))
        .unwrap();
    let done = store.batch("R1").unwrap().unwrap();
    assert_eq!((done.completed, done.finished_at), (3, Some(at(20))));
    assert_eq!(store.unfinished_batches().unwrap(), Vec::new());
    store
        .complete_batch_items("R1", &[(1, vec![9])], at(30))
        .unwrap();
    assert_eq!(store.batch("R1").unwrap(), Some(done));
    assert_eq!(
        store.batch_items("R1", 1, 1).unwrap()[0].result,
        Some(vec![1])
    );
}

/// Unfinished jobs, oldest first; finished ones are left out.
pub fn batch_unfinished_oldest_first(store: &dyn Store) {
    assert_eq!(store.unfinished_batches().unwrap(), Vec::new());
    let late = create(store, "R-late", 2_000, 1);
    let early = create(store, "R-early", 1_000, 2);
    create(store, "R-done", 500, 1);
    store
        .complete_batch_items("R-done", &[(0, vec![1])], at(3_000))
        .unwrap();
    assert_eq!(store.unfinished_batches().unwrap(), vec![early, late]);
}

/// A lease excludes other workers until it expires; its holder may renew it.
pub fn batch_claim_lease_is_exclusive_until_it_expires(store: &dyn Store) {
    create(store, "R1", 0, 2);
    create(store, "R2", 0, 2);
    assert!(store.claim_batch("R1", "w1", at(0), at(30_000)).unwrap());
    assert!(!store
        .claim_batch("R1", "w2", at(10_000), at(40_000))
        .unwrap());
    // Another job is free.
    assert!(store
        .claim_batch("R2", "w2", at(10_000), at(40_000))
        .unwrap());
    // The holder renews; the lease then lasts to the new end.
    assert!(store
        .claim_batch("R1", "w1", at(20_000), at(50_000))
        .unwrap());
    assert!(!store
        .claim_batch("R1", "w2", at(49_999), at(80_000))
        .unwrap());
    // Expired: anyone may take it, and then the former holder is out.
    assert!(store
        .claim_batch("R1", "w2", at(50_000), at(80_000))
        .unwrap());
    assert!(!store
        .claim_batch("R1", "w1", at(60_000), at(90_000))
        .unwrap());
    // No lease on a job that does not exist.
    assert!(!store.claim_batch("R9", "w1", at(0), at(30_000)).unwrap());
}

/// Workers of two instances claiming one job at once: one lease.
pub fn batch_claim_exclusive_across_instances(a: &dyn Store, b: &dyn Store) {
    for round in 0..5 {
        let rn = format!("R{round}");
        create(a, &rn, 0, 1);
        let instances = [a, b];
        let barrier = Barrier::new(8);
        let wins: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let store = instances[i % 2];
                    let (barrier, rn) = (&barrier, &rn);
                    s.spawn(move || {
                        barrier.wait();
                        store
                            .claim_batch(rn, &format!("w{i}"), at(0), at(30_000))
                            .unwrap()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| usize::from(h.join().unwrap()))
                .sum()
        });
        assert_eq!(wins, 1, "round {round}");
    }
}
