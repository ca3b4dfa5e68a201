//! The group commit's rule, written once for both stores ([`Store::commit_group`]): each
//! challenge presented is consumed (its nonce inserted, once); a write's registration and
//! consents count only if its challenge was consumed; a refused write's audit record is first
//! rewritten to say what was really answered; then every record is appended to the chain, in
//! the group's order.
//!
//! The deciding is pure ([`consumption_order`], [`registration_order`], [`plan`]); the doing is
//! a store's [`GroupTx`], the few hot statements of its dialect, run inside the group's one
//! transaction by [`commit`]. The order of the steps is also a locking order: consumptions in
//! the order of the nonces, registrations in the order of the person ids, remembered answers
//! and consents in the order of their keys, so two instances committing overlapping groups
//! lock rows in the same order and cannot deadlock, and the chain's head last, so it is held
//! only for the insert and the commit. (Consents once went in each group's own order: two
//! instances on PostgreSQL deadlocked under load.)
//!
//! [`Store::commit_group`]: super::Store::commit_group

use std::collections::HashMap;
use std::hash::Hash;

use time::OffsetDateTime;

use super::{
    ChainHead, ChallengeUse, GroupWrite, Refuse, Registration, RememberedAnswer, StoreError,
};
use crate::audit::AuditRecord;
use crate::audit_chain::{self, ChainColumns};
use crate::challenge::ChallengeError;
use crate::consent::ConsentGrant;

/// Per write of a group, its challenge's verdict (`Ok` for writes without a challenge).
pub type Verdicts = Vec<Result<(), ChallengeError>>;

/// The statements of a group commit, inside one transaction of one store.
pub(crate) trait GroupTx {
    /// Consumes one challenge (inserts its nonce): its verdict (reused when the nonce is
    /// there already), or a store failure.
    fn consume(
        &mut self,
        challenge: &ChallengeUse,
    ) -> Result<Result<(), ChallengeError>, StoreError>;
    /// Registers a person for insurance use (idempotent; an unknown person fails).
    fn register(&mut self, person_id: &str, at: OffsetDateTime)
        -> Result<Registration, StoreError>;
    /// Records consents, at most one per (person, institution, kind), replacing older ones.
    fn insert_consents(&mut self, grants: &[&ConsentGrant]) -> Result<(), StoreError>;
    /// Remembers answers by idempotency key (a key already there keeps its answer).
    fn remember(&mut self, answers: &[&RememberedAnswer]) -> Result<(), StoreError>;
    /// Reads the chain's head, locking it against every other appender until the end of the
    /// transaction.
    fn lock_chain_head(&mut self) -> Result<ChainHead, StoreError>;
    /// Appends records with their chain columns, in order, and moves the head to
    /// `(last_seq, last_hash)`.
    fn append_audit(
        &mut self,
        records: &[&AuditRecord],
        chain: &[ChainColumns],
        last_seq: i64,
        last_hash: &[u8],
    ) -> Result<(), StoreError>;
}

/// Runs a group commit's steps on `tx` (the caller commits it): see the module documentation.
pub(crate) fn commit(
    tx: &mut impl GroupTx,
    writes: &mut [GroupWrite],
    refuse: &Refuse,
) -> Result<Verdicts, StoreError> {
    steps(tx, writes, refuse).map_err(|e| e.during("commit a group"))
}

fn steps(
    tx: &mut impl GroupTx,
    writes: &mut [GroupWrite],
    refuse: &Refuse,
) -> Result<Verdicts, StoreError> {
    let mut verdicts: Verdicts = vec![Ok(()); writes.len()];
    for (i, challenge) in consumption_order(writes) {
        verdicts[i] = tx.consume(challenge)?;
    }
    for (i, person_id, at) in registration_order(writes, &verdicts) {
        let outcome = tx.register(&person_id, at)?;
        if let GroupWrite::Audit(a) = &mut writes[i] {
            a.registered(outcome);
        }
    }
    // An answer is remembered in the transaction of its audit record: both or neither.
    let mut answers: Vec<&RememberedAnswer> = writes
        .iter()
        .zip(&verdicts)
        .filter_map(|(w, v)| match (w, v) {
            (GroupWrite::Audit(a), Ok(())) => a.remember.as_ref(),
            _ => None,
        })
        .collect();
    // Locking order (see the module documentation).
    answers.sort_by(|x, y| (&x.terminal, &x.method, &x.key).cmp(&(&y.terminal, &y.method, &y.key)));
    if !answers.is_empty() {
        tx.remember(&answers)?;
    }
    let Plan { grants, records } = plan(writes, &verdicts, refuse);
    if !grants.is_empty() {
        tx.insert_consents(&grants)?;
    }
    if !records.is_empty() {
        let head = tx.lock_chain_head()?;
        let (chain, last_seq, last_hash) =
            audit_chain::extend(head.last_seq, &head.last_hash, records.iter().copied());
        tx.append_audit(&records, &chain, last_seq, &last_hash)?;
    }
    Ok(verdicts)
}

/// The challenges a group presents with the index of their write, in the order of the
/// challenge bytes (then of the writes): of two writes presenting one challenge, the earlier
/// consumes it.
pub(crate) fn consumption_order(writes: &[GroupWrite]) -> Vec<(usize, &ChallengeUse)> {
    let mut uses: Vec<(usize, &ChallengeUse)> = writes
        .iter()
        .enumerate()
        .filter_map(|(i, w)| match w {
            GroupWrite::Consume(u) => Some((i, u)),
            GroupWrite::Audit(a) => a.challenge.as_ref().map(|u| (i, u)),
        })
        .collect();
    uses.sort_by(|a, b| a.1.nonce.cmp(&b.1.nonce).then(a.0.cmp(&b.0)));
    uses
}

/// The registrations a group makes (those of writes whose challenge was accepted) with the
/// index of their write, in the order of the person ids (then of the writes).
pub(crate) fn registration_order(
    writes: &[GroupWrite],
    verdicts: &[Result<(), ChallengeError>],
) -> Vec<(usize, String, OffsetDateTime)> {
    let mut registering: Vec<(usize, String, OffsetDateTime)> = writes
        .iter()
        .zip(verdicts)
        .enumerate()
        .filter_map(|(i, (w, v))| match (w, v) {
            (GroupWrite::Audit(a), Ok(())) => a
                .registration
                .as_ref()
                .map(|r| (i, r.person_id.clone(), r.at)),
            _ => None,
        })
        .collect();
    registering.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
    registering
}

/// What a group writes once its challenges are decided.
#[derive(Debug, PartialEq)]
pub(crate) struct Plan<'w> {
    /// The consents of the writes whose challenge was accepted; of several grants for one
    /// (person, institution, kind) only the last, where the first was.
    pub grants: Vec<&'w ConsentGrant>,
    /// Every write's audit record, in the group's order.
    pub records: Vec<&'w AuditRecord>,
}

/// Rewrites the record of every write whose challenge was refused (with `refuse`) and says
/// what the group writes: `plan(writes, verdicts) -> (grants, records)`.
pub(crate) fn plan<'w>(
    writes: &'w mut [GroupWrite],
    verdicts: &[Result<(), ChallengeError>],
    refuse: &Refuse,
) -> Plan<'w> {
    for (write, verdict) in writes.iter_mut().zip(verdicts) {
        if let (GroupWrite::Audit(a), Err(e)) = (write, verdict) {
            refuse(&mut a.record, e);
        }
    }
    let writes: &'w [GroupWrite] = writes;
    let mut grants: Vec<&ConsentGrant> = Vec::new();
    let mut records: Vec<&AuditRecord> = Vec::new();
    for (write, verdict) in writes.iter().zip(verdicts) {
        if let GroupWrite::Audit(a) = write {
            if verdict.is_ok() {
                grants.extend(a.consents.iter());
            }
            records.push(&a.record);
        }
    }
    let mut grants: Vec<&ConsentGrant> = last_per_key(&grants, |g| grant_key(g))
        .into_iter()
        .copied()
        .collect();
    // Locking order (see the module documentation): each key once, so the order is total.
    grants.sort_by(|x, y| grant_key(x).cmp(&grant_key(y)));
    Plan { grants, records }
}

/// A consent's key in the store: one row per (person, institution, kind).
pub(crate) fn grant_key(g: &ConsentGrant) -> (&str, &str, &str) {
    (
        g.person_id.as_str(),
        g.institution_code.as_str(),
        g.kind.as_str(),
    )
}

/// Keeps the last of several entries with the same key, in first-seen order: what row-by-row
/// upserts would leave, as one multi-row statement (which may not touch a row twice) can
/// write it.
pub(crate) fn last_per_key<'a, T, K: Hash + Eq>(
    items: &'a [T],
    key: impl Fn(&'a T) -> K,
) -> Vec<&'a T> {
    let mut at: HashMap<K, usize> = HashMap::new();
    let mut out: Vec<&T> = Vec::new();
    for item in items {
        match at.get(&key(item)) {
            Some(&i) => out[i] = item,
            None => {
                at.insert(key(item), out.len());
                out.push(item);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::ConsentKind;
    use crate::store::{keep_record, AuditWrite, RegistrationWrite};
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-12-01 09:00 UTC);

    fn record(id: &str) -> AuditRecord {
        AuditRecord {
            confirmation_id: id.into(),
            at: NOW,
            institution_code: "1340123452".into(),
            terminal_id: "T01".into(),
            person_id: Some("P1".into()),
            method: "pin".into(),
            purpose: "confirm".into(),
            result_code: "RESULT_CODE_OK".into(),
            consents: 0,
            certificate_sha256: None,
            returned: "{}".into(),
            claimed_at: None,
        }
    }

    fn challenge(byte: u8) -> ChallengeUse {
        ChallengeUse { nonce: [byte; 16] }
    }

    fn grant(person: &str, kind: ConsentKind, hour: u8) -> ConsentGrant {
        ConsentGrant {
            person_id: person.into(),
            institution_code: "1340123452".into(),
            kind,
            given_at: NOW.replace_hour(hour).unwrap(),
            valid_until: NOW.replace_hour(hour + 1).unwrap(),
        }
    }

    fn write(id: &str, byte: Option<u8>) -> GroupWrite {
        GroupWrite::Audit(Box::new(AuditWrite {
            challenge: byte.map(challenge),
            ..AuditWrite::record(record(id))
        }))
    }

    fn rewrite_refused(r: &mut AuditRecord, e: &ChallengeError) {
        r.result_code = format!("REFUSED {e:?}");
    }

    /// A store in memory that logs what it was asked, in order.
    #[derive(Default)]
    struct Fake {
        /// Nonces used before.
        used: std::collections::HashSet<[u8; 16]>,
        persons: HashMap<String, bool>,
        log: Vec<String>,
        head: (i64, Vec<u8>),
        appended: Vec<(AuditRecord, ChainColumns)>,
    }

    impl GroupTx for Fake {
        fn consume(&mut self, u: &ChallengeUse) -> Result<Result<(), ChallengeError>, StoreError> {
            self.log.push(format!("consume {}", u.nonce[0]));
            Ok(if self.used.insert(u.nonce) {
                Ok(())
            } else {
                Err(ChallengeError::Reused)
            })
        }
        fn register(&mut self, id: &str, _: OffsetDateTime) -> Result<Registration, StoreError> {
            self.log.push(format!("register {id}"));
            match self.persons.get_mut(id) {
                None => Err(StoreError::UnknownPerson(id.into())),
                Some(r @ false) => {
                    *r = true;
                    Ok(Registration::Registered)
                }
                Some(true) => Ok(Registration::AlreadyRegistered),
            }
        }
        fn insert_consents(&mut self, grants: &[&ConsentGrant]) -> Result<(), StoreError> {
            for g in grants {
                self.log
                    .push(format!("consent {} {}", g.person_id, g.kind.as_str()));
            }
            Ok(())
        }
        fn remember(&mut self, answers: &[&RememberedAnswer]) -> Result<(), StoreError> {
            for a in answers {
                self.log.push(format!("remember {}", a.key));
            }
            Ok(())
        }
        fn lock_chain_head(&mut self) -> Result<ChainHead, StoreError> {
            self.log.push("lock head".into());
            Ok(ChainHead {
                last_seq: self.head.0,
                last_hash: self.head.1.clone(),
                anchor_seq: 0,
                anchor_hash: audit_chain::GENESIS.to_vec(),
            })
        }
        fn append_audit(
            &mut self,
            records: &[&AuditRecord],
            chain: &[ChainColumns],
            last_seq: i64,
            last_hash: &[u8],
        ) -> Result<(), StoreError> {
            for (r, c) in records.iter().zip(chain) {
                self.log.push(format!("append {}", r.confirmation_id));
                self.appended.push(((*r).clone(), c.clone()));
            }
            self.head = (last_seq, last_hash.to_vec());
            Ok(())
        }
    }

    /// A store where the nonces of `used` were consumed before.
    fn fake_with(used: &[u8]) -> Fake {
        Fake {
            used: used.iter().map(|&b| [b; 16]).collect(),
            head: (0, audit_chain::GENESIS.to_vec()),
            ..Fake::default()
        }
    }

    #[test]
    fn consumes_in_byte_order_and_appends_in_group_order() {
        let mut tx = fake_with(&[]);
        let mut writes = vec![
            write("C3", Some(3)),
            write("C1", Some(1)),
            write("C2", Some(2)),
        ];
        let verdicts = commit(&mut tx, &mut writes, &rewrite_refused).unwrap();
        assert_eq!(verdicts, vec![Ok(()), Ok(()), Ok(())]);
        assert_eq!(
            tx.log,
            [
                "consume 1",
                "consume 2",
                "consume 3",
                "lock head",
                "append C3",
                "append C1",
                "append C2"
            ]
        );
        // The chain goes on from the head without a gap, each record linked to the one before.
        let positions: Vec<i64> = tx.appended.iter().map(|(_, c)| c.0).collect();
        assert_eq!(positions, [1, 2, 3]);
        assert_eq!(tx.appended[0].1 .1, audit_chain::GENESIS.to_vec());
        assert_eq!(tx.appended[1].1 .1, tx.appended[0].1 .2);
        assert_eq!(tx.head, (3, tx.appended[2].1 .2.clone()));
    }

    #[test]
    fn the_earlier_write_of_one_challenge_consumes_it() {
        let mut tx = fake_with(&[9]);
        let mut writes = vec![
            write("A", Some(7)),
            write("B", Some(7)),
            write("C", Some(9)),
        ];
        let verdicts = commit(&mut tx, &mut writes, &rewrite_refused).unwrap();
        assert_eq!(
            verdicts,
            vec![
                Ok(()),
                Err(ChallengeError::Reused),
                Err(ChallengeError::Reused)
            ]
        );
        let codes: Vec<&str> = tx
            .appended
            .iter()
            .map(|(r, _)| r.result_code.as_str())
            .collect();
        assert_eq!(
            codes,
            ["RESULT_CODE_OK", "REFUSED Reused", "REFUSED Reused"]
        );
    }

    #[test]
    fn a_refused_challenge_records_no_consents_and_no_registration() {
        let mut tx = fake_with(&[2]);
        tx.persons.insert("P1".into(), false);
        tx.persons.insert("P2".into(), false);
        let with = |id: &str, byte: u8, person: &str| {
            GroupWrite::Audit(Box::new(AuditWrite {
                record: record(id),
                challenge: Some(challenge(byte)),
                consents: vec![grant(person, ConsentKind::Medication, 9)],
                registration: Some(RegistrationWrite {
                    person_id: person.into(),
                    at: NOW,
                    outcome: None,
                }),
                remember: None,
            }))
        };
        let mut writes = vec![with("OK", 1, "P2"), with("NO", 2, "P1")];
        let verdicts = commit(&mut tx, &mut writes, &rewrite_refused).unwrap();
        assert_eq!(verdicts[1], Err(ChallengeError::Reused));
        assert_eq!(
            tx.log,
            [
                "consume 1",
                "consume 2",
                "register P2",
                "consent P2 medication",
                "lock head",
                "append OK",
                "append NO"
            ]
        );
        let GroupWrite::Audit(ok) = &writes[0] else {
            panic!()
        };
        assert_eq!(
            ok.registration.as_ref().unwrap().outcome,
            Some(Registration::Registered)
        );
        assert_eq!(ok.record.returned, Registration::Registered.audit_summary());
        let GroupWrite::Audit(no) = &writes[1] else {
            panic!()
        };
        assert_eq!(no.registration.as_ref().unwrap().outcome, None);
        assert_eq!(no.record.result_code, "REFUSED Reused");
        assert!(!tx.persons["P1"]);
    }

    #[test]
    fn registrations_go_in_person_order_and_an_unknown_person_fails_the_group() {
        let mut tx = fake_with(&[]);
        tx.persons.insert("P1".into(), true);
        let reg = |id: &str, person: &str| {
            GroupWrite::Audit(Box::new(AuditWrite {
                registration: Some(RegistrationWrite {
                    person_id: person.into(),
                    at: NOW,
                    outcome: None,
                }),
                ..AuditWrite::record(record(id))
            }))
        };
        let mut writes = vec![reg("B", "P9"), reg("A", "P1")];
        let err = commit(&mut tx, &mut writes, &keep_record).unwrap_err();
        assert!(matches!(err, StoreError::UnknownPerson(p) if p == "P9"));
        assert_eq!(tx.log, ["register P1", "register P9"]);
        assert!(tx.appended.is_empty());
    }

    #[test]
    fn a_group_without_records_locks_no_head() {
        let mut tx = fake_with(&[6]);
        let mut writes = vec![
            GroupWrite::Consume(challenge(6)),
            GroupWrite::Consume(challenge(5)),
        ];
        let verdicts = commit(&mut tx, &mut writes, &keep_record).unwrap();
        assert_eq!(verdicts, vec![Err(ChallengeError::Reused), Ok(())]);
        assert_eq!(tx.log, ["consume 5", "consume 6"]);
    }

    #[test]
    fn plan_keeps_each_keys_last_grant_of_accepted_writes() {
        let mut writes = vec![
            GroupWrite::Audit(Box::new(AuditWrite {
                consents: vec![
                    grant("P1", ConsentKind::Medication, 9),
                    grant("P1", ConsentKind::Checkup, 9),
                ],
                ..AuditWrite::record(record("A"))
            })),
            GroupWrite::Audit(Box::new(AuditWrite {
                consents: vec![grant("P1", ConsentKind::Medication, 11)],
                ..AuditWrite::record(record("B"))
            })),
            GroupWrite::Audit(Box::new(AuditWrite {
                consents: vec![grant("P2", ConsentKind::Medication, 12)],
                challenge: Some(challenge(1)),
                ..AuditWrite::record(record("C"))
            })),
        ];
        let verdicts = vec![Ok(()), Ok(()), Err(ChallengeError::Expired)];
        let latest = grant("P1", ConsentKind::Medication, 11);
        let checkup = grant("P1", ConsentKind::Checkup, 9);
        let plan = plan(&mut writes, &verdicts, &rewrite_refused);
        // In the order of their keys (person, institution, kind): the locking order.
        assert_eq!(plan.grants, vec![&checkup, &latest]);
        let ids: Vec<&str> = plan
            .records
            .iter()
            .map(|r| r.confirmation_id.as_str())
            .collect();
        assert_eq!(ids, ["A", "B", "C"]);
        assert_eq!(plan.records[2].result_code, "REFUSED Expired");
    }

    /// Two groups naming the same consents in opposite orders write them in one order, so
    /// two instances committing them at once cannot deadlock (PostgreSQL did).
    #[test]
    fn consents_are_written_in_the_order_of_their_keys_whatever_the_group_order() {
        let grants = [
            grant("P2", ConsentKind::Medication, 1),
            grant("P1", ConsentKind::Medication, 1),
            grant("P1", ConsentKind::Checkup, 1),
        ];
        let mut forward = vec![GroupWrite::Audit(Box::new(AuditWrite {
            consents: grants.to_vec(),
            ..AuditWrite::record(record("A"))
        }))];
        let mut backward = vec![GroupWrite::Audit(Box::new(AuditWrite {
            consents: grants.iter().rev().cloned().collect(),
            ..AuditWrite::record(record("B"))
        }))];
        let a = plan(&mut forward, &[Ok(())], &rewrite_refused).grants;
        let b = plan(&mut backward, &[Ok(())], &rewrite_refused).grants;
        assert_eq!(a, b);
        let keys: Vec<(&str, &str)> = a
            .iter()
            .map(|g| (g.person_id.as_str(), g.kind.as_str()))
            .collect();
        assert_eq!(
            keys,
            [
                ("P1", ConsentKind::Checkup.as_str()),
                ("P1", ConsentKind::Medication.as_str()),
                ("P2", ConsentKind::Medication.as_str())
            ]
        );
    }

    #[test]
    fn the_last_entry_of_a_key_wins_in_first_seen_order() {
        let items = [("a", 1), ("b", 2), ("a", 3), ("c", 4), ("b", 5)];
        let kept: Vec<_> = last_per_key(&items, |i| i.0).into_iter().copied().collect();
        assert_eq!(kept, [("a", 3), ("b", 5), ("c", 4)]);
    }
}
