//! The [`Store`] trait for both stores, written once: every lookup and every write that runs
//! the same SQL in SQLite and PostgreSQL lives here, on a [`Session`] of the store's own
//! connections, with rows mapped by [`codec`]. What differs stays with each store, behind
//! [`Backend`]: its connections (which one reads, which one writes), its few dialect
//! spellings, the bulk load, and the hot and multi-row writes (the group commit's statements,
//! registration, consents, batch jobs).
//!
//! Statements are written with PostgreSQL's `$1` placeholders; the SQLite session binds them
//! as `?1`. A failure is named by the operation it failed ([`StoreError::during`]), here, for
//! both stores.

use std::collections::HashMap;
use std::fmt;

use time::OffsetDateTime;

use super::codec::{self, Row, Value};
use super::group::Verdicts;
use super::{
    corrupt, BatchItem, BatchJob, CardKey, ChainHead, ChainedRecord, ChallengeKey, GroupWrite,
    LoadBatch, Refuse, Registration, Store, StoreError, Terminal,
};
use crate::audit::{AuditQuery, AuditRecord};
use crate::clinical::{Checkup, Medication};
use crate::consent::ConsentGrant;
use crate::documents::InsuranceDocument;
use crate::eligibility::{NumbersQuery, Person, QualificationRecord, SpecificDisease};
use crate::institutions::ListedInstitution;
use crate::medical_aid::MedicalTicket;

/// Statements on one connection of a store (inside a transaction or not).
pub(crate) trait Session {
    /// Runs a statement, handing each row to `each`.
    fn query(
        &mut self,
        sql: &str,
        params: &[Value<'_>],
        each: &mut dyn FnMut(&dyn Row) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;

    /// Runs a statement; how many rows it changed.
    fn execute(&mut self, sql: &str, params: &[Value<'_>]) -> Result<u64, StoreError>;
}

impl dyn Session + '_ {
    /// Every row, mapped.
    pub(crate) fn rows<T>(
        &mut self,
        sql: &str,
        params: &[Value<'_>],
        map: impl Fn(&dyn Row) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        self.query(sql, params, &mut |r| {
            out.push(map(r)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// The first row, mapped, if there is one.
    pub(crate) fn row<T>(
        &mut self,
        sql: &str,
        params: &[Value<'_>],
        map: impl Fn(&dyn Row) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let mut out = None;
        self.query(sql, params, &mut |r| {
            if out.is_none() {
                out = Some(map(r)?);
            }
            Ok(())
        })?;
        Ok(out)
    }
}

/// What a store provides so that [`Store`] can be written once.
pub(crate) trait Backend: fmt::Debug + Send + Sync {
    /// `"sqlite"` or `"postgres"`.
    const KIND: &'static str;
    /// The audit column that orders records in time and bounds time ranges, read back as the
    /// record's instant (SQLite keeps `at_ms` beside the RFC 3339 text; PostgreSQL `at`).
    const AUDIT_TIME: &'static str;
    /// Columns after a chained record's that [`Backend::chained_time`] checks its time with.
    const CHAIN_TIME_CHECK: &'static str;
    /// Follows a `SELECT` whose rows must stay locked until the transaction ends (PostgreSQL's
    /// `FOR UPDATE`; SQLite's write transaction already holds the whole file).
    const FOR_UPDATE: &'static str;

    /// A chained record's time (column 5) and, when the stored time cannot be one the service
    /// wrote, why.
    fn chained_time(r: &dyn Row) -> Result<(OffsetDateTime, Option<String>), StoreError>;

    /// Runs `f` on a connection for lookups.
    fn read<R>(
        &self,
        f: impl FnOnce(&mut dyn Session) -> Result<R, StoreError>,
    ) -> Result<R, StoreError>;

    /// Runs `f` in one transaction for the rare writes (batch jobs), committed if it succeeds.
    fn write<R>(
        &self,
        f: impl FnOnce(&mut dyn Session) -> Result<R, StoreError>,
    ) -> Result<R, StoreError>;

    /// Runs `f` in one transaction beside the group commits (purging challenges, pruning the
    /// audit log), committed if it succeeds.
    fn write_beside_groups<R>(
        &self,
        f: impl FnOnce(&mut dyn Session) -> Result<R, StoreError>,
    ) -> Result<R, StoreError>;

    // ---- per store: bulk load and the hot and multi-row writes -----------------------------

    /// [`Store::load`].
    fn load_batch(&self, batch: &LoadBatch) -> Result<(), StoreError>;
    /// [`Store::register_for_insurance`].
    fn register(&self, person_id: &str, at: OffsetDateTime) -> Result<Registration, StoreError>;
    /// [`Store::record_consents`].
    fn upsert_consents(&self, grants: &[ConsentGrant]) -> Result<(), StoreError>;
    /// [`Store::commit_group`]: [`super::group::commit`] on the store's statements.
    fn group_commit(
        &self,
        writes: &mut [GroupWrite],
        refuse: &Refuse,
    ) -> Result<Verdicts, StoreError>;
    /// [`Store::create_batch`].
    fn insert_batch(&self, job: &BatchJob, queries: &[Vec<u8>]) -> Result<(), StoreError>;
    /// [`Store::complete_batch_items`].
    fn answer_batch_items(
        &self,
        reception_number: &str,
        results: &[(u32, Vec<u8>)],
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;
}

fn during(what: &'static str) -> impl FnOnce(StoreError) -> StoreError {
    move |e| e.during(what)
}

const DISEASES: &str = "SELECT d.qualification_id, d.category, d.monthly_cap_yen, d.valid_from,
            d.valid_until
     FROM specific_diseases d JOIN qualifications q ON q.id = d.qualification_id
     WHERE q.person_id = $1 ORDER BY d.qualification_id, d.ordinal";

impl<B: Backend> Store for B {
    fn kind(&self) -> &'static str {
        B::KIND
    }

    fn load(&self, batch: &LoadBatch) -> Result<(), StoreError> {
        for i in &batch.institutions {
            i.check().map_err(|e| StoreError::InvalidInstitution {
                code: i.institution_code.clone(),
                reason: e.to_string(),
            })?;
        }
        self.load_batch(batch)
            .map_err(during("load reference data"))
    }

    fn institutions_in_operation(&self) -> Result<Vec<ListedInstitution>, StoreError> {
        self.read(|s| {
            s.rows(
                "SELECT i.institution_code, i.name, i.started_on, COUNT(*)
                 FROM institutions i
                 JOIN terminals t ON t.institution_code = i.institution_code
                 WHERE t.status = 'in-operation'
                 GROUP BY i.institution_code, i.name, i.started_on
                 ORDER BY i.institution_code",
                &[],
                codec::listed_institution,
            )
        })
        .map_err(during("list the institutions in operation"))
    }

    fn terminal(
        &self,
        institution_code: &str,
        terminal_id: &str,
    ) -> Result<Option<Terminal>, StoreError> {
        self.read(|s| {
            s.row(
                &format!(
                    "SELECT {} FROM terminals WHERE institution_code = $1 AND terminal_id = $2",
                    codec::TERMINAL_COLUMNS
                ),
                &[institution_code.into(), terminal_id.into()],
                codec::terminal,
            )
        })
        .map_err(during("read a terminal"))
    }

    fn person_for_card(&self, card: &CardKey) -> Result<Option<String>, StoreError> {
        self.read(|s| {
            s.row(
                "SELECT person_id FROM cards WHERE issuer_key = $1 AND serial = $2",
                &[(&card.issuer_key).into(), (&card.serial).into()],
                |r| r.text(0),
            )
        })
        .map_err(during("read a card link"))
    }

    fn person(&self, id: &str) -> Result<Option<Person>, StoreError> {
        self.read(|s| {
            s.row(
                &format!(
                    "SELECT {} FROM persons WHERE id = $1",
                    codec::PERSON_COLUMNS
                ),
                &[id.into()],
                codec::person,
            )
        })
        .map_err(during("read a person"))
    }

    fn qualifications(&self, person_id: &str) -> Result<Vec<QualificationRecord>, StoreError> {
        self.read(|s| {
            let records = s.rows(
                &format!(
                    "SELECT {}, id FROM qualifications
                     WHERE person_id = $1 ORDER BY qualification_date, id",
                    codec::QUALIFICATION_COLUMNS
                ),
                &[person_id.into()],
                codec::qualification,
            )?;
            if records.is_empty() {
                return Ok(Vec::new());
            }
            let mut diseases: HashMap<i64, Vec<SpecificDisease>> = HashMap::new();
            for (of, d) in s.rows(DISEASES, &[person_id.into()], codec::specific_disease)? {
                diseases.entry(of).or_default().push(d);
            }
            Ok(records
                .into_iter()
                .map(|(id, mut record)| {
                    record.specific_diseases = diseases.remove(&id).unwrap_or_default();
                    record
                })
                .collect())
        })
        .map_err(during("read qualification records"))
    }

    fn persons_by_numbers(&self, q: &NumbersQuery) -> Result<Vec<String>, StoreError> {
        self.read(|s| {
            s.rows(
                "SELECT DISTINCT q.person_id FROM qualifications q JOIN persons p ON p.id = q.person_id
                 WHERE q.insurer_number = $1 AND q.number = $2
                   AND q.symbol IS NOT DISTINCT FROM $3 AND q.branch IS NOT DISTINCT FROM $4
                   AND p.birth_date = $5
                 ORDER BY q.person_id",
                &[
                    q.insurer_number.as_str().into(),
                    (&q.number).into(),
                    q.symbol.as_deref().into(),
                    q.branch.as_deref().into(),
                    q.birth_date.into(),
                ],
                |r| r.text(0),
            )
        })
        .map_err(during("look up persons by insurance numbers"))
    }

    fn medications(&self, person_id: &str) -> Result<Vec<Medication>, StoreError> {
        self.read(|s| {
            s.rows(
                &format!(
                    "SELECT {} FROM medications WHERE person_id = $1
                     ORDER BY dispensed_on DESC, id",
                    codec::MEDICATION_COLUMNS
                ),
                &[person_id.into()],
                codec::medication,
            )
        })
        .map_err(during("read medications"))
    }

    fn insurance_document(&self, person_id: &str) -> Result<Option<InsuranceDocument>, StoreError> {
        self.read(|s| {
            s.row(
                &format!(
                    "SELECT {} FROM insurance_documents WHERE person_id = $1",
                    codec::DOCUMENT_COLUMNS
                ),
                &[person_id.into()],
                codec::insurance_document,
            )
        })
        .map_err(during("read the insurance document"))
    }

    fn medical_tickets(&self, person_id: &str) -> Result<Vec<MedicalTicket>, StoreError> {
        self.read(|s| {
            s.rows(
                &format!(
                    "SELECT {} FROM medical_tickets WHERE person_id = $1
                     ORDER BY treatment_month, issue_number",
                    codec::TICKET_COLUMNS
                ),
                &[person_id.into()],
                codec::medical_ticket,
            )
        })
        .map_err(during("read medical tickets"))
    }

    fn checkups(&self, person_id: &str) -> Result<Vec<Checkup>, StoreError> {
        self.read(|s| {
            s.rows(
                &format!(
                    "SELECT {} FROM checkups WHERE person_id = $1 ORDER BY examined_on DESC, id",
                    codec::CHECKUP_COLUMNS
                ),
                &[person_id.into()],
                codec::checkup,
            )
        })
        .map_err(during("read checkups"))
    }

    fn register_for_insurance(
        &self,
        person_id: &str,
        at: OffsetDateTime,
    ) -> Result<Registration, StoreError> {
        self.register(person_id, at)
            .map_err(during("register for insurance use"))
    }

    fn record_consents(&self, grants: &[ConsentGrant]) -> Result<(), StoreError> {
        self.upsert_consents(grants)
            .map_err(during("record consents"))
    }

    fn consents(
        &self,
        person_id: &str,
        institution_code: &str,
    ) -> Result<Vec<ConsentGrant>, StoreError> {
        self.read(|s| {
            s.rows(
                "SELECT kind, given_at, valid_until FROM consents
                 WHERE person_id = $1 AND institution_code = $2 ORDER BY kind",
                &[person_id.into(), institution_code.into()],
                |r| codec::consent(person_id, institution_code, r),
            )
        })
        .map_err(during("read consents"))
    }

    fn commit_group(
        &self,
        writes: &mut [GroupWrite],
        refuse: &Refuse,
    ) -> Result<Verdicts, StoreError> {
        self.group_commit(writes, refuse)
            .map_err(during("commit a group"))
    }

    fn purge_challenges(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        // Nonces begin with their challenge's expiry (big-endian milliseconds), so the expired
        // ones are a range at the start of the primary key.
        let floor = crate::challenge::nonce_floor(before);
        self.write_beside_groups(|s| {
            s.execute(
                "DELETE FROM idempotency WHERE expires_at < $1",
                &[before.into()],
            )?;
            s.execute(
                "DELETE FROM used_challenges WHERE nonce < $1",
                &[Value::Bytes(&floor)],
            )
        })
        .map_err(during("purge challenges"))
    }

    fn remembered_answer(
        &self,
        terminal: &str,
        method: &str,
        key: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(|s| {
            s.row(
                "SELECT answer FROM idempotency
                 WHERE terminal = $1 AND method = $2 AND key = $3 AND expires_at >= $4",
                &[terminal.into(), method.into(), key.into(), now.into()],
                |r| r.bytes(0),
            )
        })
        .map_err(during("read a remembered answer"))
    }

    fn challenge_keys(
        &self,
        now: OffsetDateTime,
        rotate_after: time::Duration,
    ) -> Result<Vec<ChallengeKey>, StoreError> {
        const NEWEST: &str =
            "SELECT id, secret, created_at FROM challenge_keys ORDER BY id DESC LIMIT 2";
        let key = |r: &dyn Row| -> Result<ChallengeKey, StoreError> {
            Ok(ChallengeKey {
                id: r.int(0)?,
                secret: r.bytes(1)?,
                created_at: super::from_millis(r.int(2)?)?,
            })
        };
        self.write_beside_groups(|s| {
            let keys = s.rows(NEWEST, &[], key)?;
            let due = keys
                .first()
                .is_none_or(|k| k.created_at + rotate_after <= now);
            if !due {
                return Ok(keys);
            }
            let mut secret = [0u8; 32];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret)
                .map_err(|_| StoreError::Internal("the system random generator failed"))?;
            let id = keys.first().map_or(1, |k| k.id + 1);
            // Another instance rotating at the same moment inserts the same id first: its
            // key is then the one read back.
            s.execute(
                "INSERT INTO challenge_keys (id, secret, created_at) VALUES ($1, $2, $3)
                 ON CONFLICT (id) DO NOTHING",
                &[
                    Value::Int(id),
                    Value::Bytes(&secret),
                    Value::Int(super::millis(now)),
                ],
            )?;
            s.rows(NEWEST, &[], key)
        })
        .map_err(during("read the challenge keys"))
    }

    fn query_audit(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        // Only the conditions given, so the planner can use the matching index.
        let time = B::AUDIT_TIME;
        let mut params: Vec<Value<'_>> = Vec::new();
        let mut conditions: Vec<String> = Vec::new();
        let mut condition = |column_and_operator: String, value| {
            params.push(value);
            conditions.push(format!("{column_and_operator} ${}", params.len()));
        };
        if let Some(p) = &q.person_id {
            condition("person_id =".into(), p.into());
        }
        if let Some(c) = &q.institution_code {
            condition("institution_code =".into(), c.into());
        }
        if let Some(f) = q.from {
            condition(format!("{time} >="), f.into());
        }
        if let Some(u) = q.until {
            condition(format!("{time} <"), u.into());
        }
        params.push(q.row_limit().into());
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT confirmation_id, {time}, {} FROM audit {filter}
             ORDER BY {time}, seq LIMIT ${}",
            codec::AUDIT_FIELDS,
            params.len()
        );
        self.read(|s| s.rows(&sql, &params, codec::audit_record))
            .map_err(during("query the audit log"))
    }

    fn audit_chain_head(&self) -> Result<ChainHead, StoreError> {
        self.read(|s| chain_head(s, ""))
            .map_err(during("read the audit chain's head"))
    }

    fn audit_chain_page(
        &self,
        after: Option<(i64, i64)>,
        limit: u32,
    ) -> Result<Vec<ChainedRecord>, StoreError> {
        let (position, row) = after.unwrap_or((i64::MIN, i64::MIN));
        let sql = format!(
            "SELECT {} FROM audit
             WHERE chain_seq IS NOT NULL AND (chain_seq, seq) > ($1, $2)
             ORDER BY chain_seq, seq LIMIT $3",
            chained_columns::<B>()
        );
        self.read(|s| {
            s.rows(&sql, &[position.into(), row.into(), limit.into()], |r| {
                codec::chained_record(r, B::chained_time)
            })
        })
        .map_err(during("read the audit chain"))
    }

    fn unchained_audit(&self, limit: u32) -> Result<Vec<ChainedRecord>, StoreError> {
        let sql = format!(
            "SELECT {} FROM audit WHERE chain_seq IS NULL ORDER BY seq LIMIT $1",
            chained_columns::<B>()
        );
        self.read(|s| {
            s.rows(&sql, &[limit.into()], |r| {
                codec::chained_record(r, B::chained_time)
            })
        })
        .map_err(during("read unchained audit records"))
    }

    fn prune_audit(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let oldest = format!(
            "SELECT chain_seq, hash FROM audit
             WHERE chain_seq > $1 AND chain_seq < coalesce(
                 (SELECT min(chain_seq) FROM audit WHERE chain_seq > $1 AND {} >= $2),
                 CAST($3 AS BIGINT) + 1)
             ORDER BY chain_seq DESC LIMIT 1",
            B::AUDIT_TIME
        );
        self.write_beside_groups(|s| {
            // Locked: pruning is serialized with every instance's appends.
            let head = chain_head(s, B::FOR_UPDATE)?;
            // The oldest records in chain order, up to the first one not older than `before`.
            let last = s.row(
                &oldest,
                &[head.anchor_seq.into(), before.into(), head.last_seq.into()],
                |r| Ok((r.int(0)?, r.bytes(1)?)),
            )?;
            let Some((anchor_seq, anchor_hash)) = last else {
                return Ok(0);
            };
            let removed = s.execute(
                "DELETE FROM audit WHERE chain_seq > $1 AND chain_seq <= $2",
                &[head.anchor_seq.into(), anchor_seq.into()],
            )?;
            s.execute(
                "UPDATE audit_chain SET anchor_seq = $1, anchor_hash = $2",
                &[anchor_seq.into(), anchor_hash.as_slice().into()],
            )?;
            Ok(removed)
        })
        .map_err(during("prune the audit log"))
    }

    fn create_batch(&self, job: &BatchJob, queries: &[Vec<u8>]) -> Result<(), StoreError> {
        self.insert_batch(job, queries)
            .map_err(during("create a batch job"))
    }

    fn batch(&self, reception_number: &str) -> Result<Option<BatchJob>, StoreError> {
        self.read(|s| {
            s.row(
                &format!(
                    "SELECT {} FROM batch_jobs WHERE reception_number = $1",
                    codec::BATCH_COLUMNS
                ),
                &[reception_number.into()],
                codec::batch_job,
            )
        })
        .map_err(during("read a batch job"))
    }

    fn unfinished_batches(&self) -> Result<Vec<BatchJob>, StoreError> {
        self.read(|s| {
            s.rows(
                &format!(
                    "SELECT {} FROM batch_jobs WHERE finished_at IS NULL
                     ORDER BY submitted_at, reception_number",
                    codec::BATCH_COLUMNS
                ),
                &[],
                codec::batch_job,
            )
        })
        .map_err(during("read unfinished batch jobs"))
    }

    fn claim_batch(
        &self,
        reception_number: &str,
        worker: &str,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        // Like consuming a challenge: one conditional UPDATE, re-checked after any concurrent
        // claim of the same job commits.
        self.write(|s| {
            s.execute(
                "UPDATE batch_jobs SET lease_owner = $2, lease_until = $4
                 WHERE reception_number = $1 AND finished_at IS NULL
                   AND (lease_owner IS NULL OR lease_owner = $2 OR lease_until <= $3)",
                &[
                    reception_number.into(),
                    worker.into(),
                    now.into(),
                    lease_until.into(),
                ],
            )
        })
        .map(|changed| changed == 1)
        .map_err(during("claim a batch job"))
    }

    fn batch_items(
        &self,
        reception_number: &str,
        from: u32,
        limit: u32,
    ) -> Result<Vec<BatchItem>, StoreError> {
        self.read(|s| {
            s.rows(
                "SELECT ordinal, query, result FROM batch_items
                 WHERE reception_number = $1 AND ordinal >= $2 ORDER BY ordinal LIMIT $3",
                &[reception_number.into(), from.into(), limit.into()],
                codec::batch_item,
            )
        })
        .map_err(during("read batch items"))
    }

    fn complete_batch_items(
        &self,
        reception_number: &str,
        results: &[(u32, Vec<u8>)],
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.answer_batch_items(reception_number, results, now)
            .map_err(during("complete batch items"))
    }
}

/// The columns [`codec::chained_record`] reads, then the store's time check.
fn chained_columns<B: Backend>() -> String {
    format!(
        "{}, confirmation_id, {}, {}{}",
        codec::CHAIN_FIELDS,
        B::AUDIT_TIME,
        codec::AUDIT_FIELDS,
        B::CHAIN_TIME_CHECK
    )
}

/// The chain's head, locked with `lock` (a [`Backend::FOR_UPDATE`] or nothing).
pub(crate) fn chain_head(s: &mut dyn Session, lock: &str) -> Result<ChainHead, StoreError> {
    s.row(
        &format!(
            "SELECT {} FROM audit_chain{lock}",
            codec::CHAIN_HEAD_COLUMNS
        ),
        &[],
        codec::chain_head,
    )?
    .ok_or_else(|| corrupt("audit chain", "the head row is missing"))
}
