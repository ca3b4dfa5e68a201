//! The audit log's hash chain: each record carries the SHA-256 of the record before it, so a
//! record edited, deleted, inserted or moved in the store breaks the chain where it happened,
//! and `confirm-service audit verify` names the first broken record.
//!
//! **One chain per store.** Every record has a position (1, 2, …, no gaps), the previous
//! record's hash and its own hash, `SHA-256(prev_hash || encode(record))`. The store keeps the
//! chain's **head** in one row (last position and hash) and its **anchor** (position and hash
//! of the last record removed by pruning, [`GENESIS`] at position 0 before any). Appends
//! read and advance the head inside the group commit's transaction: SQLite's write
//! transaction serializes them, PostgreSQL locks the head row (`SELECT … FOR UPDATE`), so
//! several instances sharing one database append to one chain in one order.
//!
//! **The record's bytes** ([`encode`]), fixed and documented in docs/security.md: the tag
//! `onshi/audit/v1`, then every field of [`AuditRecord`] in declaration order, text as a
//! 4-byte big-endian length and its UTF-8 bytes, an optional text as one byte `00` (absent) or
//! `01` followed by the text, the instant as 8-byte big-endian signed Unix milliseconds, the
//! consents as one byte. Nothing is ambiguous: every variable field carries its length. The
//! last field, the claimed visit time, is written only when present, as the byte `01` and the
//! instant: a record without one encodes exactly as before it existed, so the hashes of
//! records written before it stay valid.
//!
//! **What it does not stop.** The hash is unkeyed: someone who can write the store can rewrite
//! every record after the one they change and the head with them. The chain shows edits by
//! anyone who does not; to catch a complete rewrite, keep the head hash `verify` prints
//! somewhere the store's operator cannot write, and check it later with `--head`.

use std::collections::HashMap;

use crate::audit::AuditRecord;
use crate::store::millis;
use crate::store::{ChainHead, ChainedRecord, Store, StoreError};

/// Length of a chain hash (SHA-256).
pub const HASH_LEN: usize = 32;

/// The previous hash of the first record of a chain that was never pruned.
pub const GENESIS: [u8; HASH_LEN] = [0; HASH_LEN];

/// The domain tag that starts every encoded record.
pub const TAG: &[u8] = b"onshi/audit/v1";

/// Records read per page while verifying.
const PAGE: u32 = 10_000;

fn text(out: &mut Vec<u8>, s: &str) {
    // A field longer than 4 GiB cannot be stored; saturating keeps this total.
    let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn opt_text(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            text(out, s);
        }
    }
}

/// The canonical bytes of a record (see the module documentation).
pub fn encode(r: &AuditRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + r.returned.len());
    out.extend_from_slice(TAG);
    text(&mut out, &r.confirmation_id);
    out.extend_from_slice(&millis(r.at).to_be_bytes());
    text(&mut out, &r.institution_code);
    text(&mut out, &r.terminal_id);
    opt_text(&mut out, r.person_id.as_deref());
    text(&mut out, &r.method);
    text(&mut out, &r.purpose);
    text(&mut out, &r.result_code);
    out.push(r.consents);
    opt_text(&mut out, r.certificate_sha256.as_deref());
    text(&mut out, &r.returned);
    if let Some(claimed) = r.claimed_at {
        out.push(1);
        out.extend_from_slice(&millis(claimed).to_be_bytes());
    }
    out
}

/// A record's hash: `SHA-256(prev || encode(record))`.
pub fn link(prev: &[u8], record: &AuditRecord) -> [u8; HASH_LEN] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(prev);
    ctx.update(&encode(record));
    let mut out = [0u8; HASH_LEN];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The chain columns of one record: its position, its predecessor's hash and its own.
pub type ChainColumns = (i64, Vec<u8>, Vec<u8>);

/// The chain columns of records appended after the head `(last_seq, last_hash)`, in order,
/// and the new head's position and hash.
pub fn extend<'a>(
    last_seq: i64,
    last_hash: &[u8],
    records: impl IntoIterator<Item = &'a AuditRecord>,
) -> (Vec<ChainColumns>, i64, Vec<u8>) {
    let mut seq = last_seq;
    let mut prev = last_hash.to_vec();
    let mut out = Vec::new();
    for r in records {
        seq += 1;
        let hash = link(&prev, r).to_vec();
        out.push((seq, std::mem::replace(&mut prev, hash.clone()), hash));
    }
    (out, seq, prev)
}

/// What is wrong at the first broken record.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Break {
    /// The record's fields (or its previous hash) no longer give its hash.
    Edited { detail: String },
    /// Records are missing before this one (or at the end of the chain).
    Deleted { detail: String },
    /// This record was not appended by the service at this place.
    Inserted { detail: String },
    /// This record's predecessor comes later in the chain.
    Reordered { detail: String },
}

impl Break {
    pub fn kind(&self) -> &'static str {
        match self {
            Break::Edited { .. } => "edited",
            Break::Deleted { .. } => "deleted",
            Break::Inserted { .. } => "inserted",
            Break::Reordered { .. } => "reordered",
        }
    }

    fn detail(&self) -> &str {
        match self {
            Break::Edited { detail }
            | Break::Deleted { detail }
            | Break::Inserted { detail }
            | Break::Reordered { detail } => detail,
        }
    }
}

/// Where the chain breaks first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    /// The record's position in the chain (`None` for a record outside it, or the end).
    pub position: Option<i64>,
    /// Its confirmation id (`None` when the break is at the end of the chain).
    pub confirmation_id: Option<String>,
    pub what: Break,
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "record")?;
        if let Some(p) = self.position {
            write!(f, " {p}")?;
        }
        if let Some(id) = &self.confirmation_id {
            write!(f, " ({id})")?;
        }
        if self.position.is_none() && self.confirmation_id.is_none() {
            write!(f, "s at the end of the chain")?;
        }
        write!(f, ": {}: {}", self.what.kind(), self.what.detail())
    }
}

/// The outcome of a walk over an intact chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Records checked.
    pub records: u64,
    /// The head's position and hash (hex).
    pub head_seq: i64,
    pub head_hash: String,
    /// The anchor's position (records up to it were pruned).
    pub anchor_seq: i64,
}

/// Why verification could not finish.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("the chain is broken at {0}")]
    Broken(Box<Broken>),
}

fn broken(r: &ChainedRecord, what: Break) -> VerifyError {
    VerifyError::Broken(Box::new(Broken {
        position: r.position,
        confirmation_id: Some(r.record.confirmation_id.clone()),
        what,
    }))
}

/// Walks the whole chain from its anchor to its head. `expected_head` (hex), when given, must
/// be the hash of the record at the head or of one of the records before it (a head kept
/// elsewhere earlier).
pub fn verify(store: &dyn Store, expected_head: Option<&str>) -> Result<Verified, VerifyError> {
    let head: ChainHead = store.audit_chain_head()?;
    // First pass: every chained record's hash → its position, to tell a reordered record
    // (its predecessor comes later) from a deleted one (its predecessor is nowhere).
    let mut positions: HashMap<Vec<u8>, i64> = HashMap::new();
    let mut after = None;
    loop {
        let page = store.audit_chain_page(after, PAGE)?;
        let Some(last) = page.last() else { break };
        after = Some((last.position.unwrap_or(0), last.row));
        for r in &page {
            if let (Some(h), Some(p)) = (&r.hash, r.position) {
                positions.entry(h.clone()).or_insert(p);
            }
        }
    }
    let mut expected_seq = head.anchor_seq + 1;
    let mut prev: Vec<u8> = head.anchor_hash.clone();
    let mut prev_record: Option<ChainedRecord> = None;
    let mut count: u64 = 0;
    let mut expected_found = expected_head.is_none();
    let mut after = None;
    loop {
        let page = store.audit_chain_page(after, PAGE)?;
        let Some(last) = page.last() else { break };
        after = Some((last.position.unwrap_or(0), last.row));
        for r in page {
            let seq = r.position.unwrap_or(0);
            if let Some(defect) = &r.defect {
                return Err(broken(
                    &r,
                    Break::Edited {
                        detail: defect.clone(),
                    },
                ));
            }
            let (Some(prev_hash), Some(hash)) = (&r.prev_hash, &r.hash) else {
                return Err(broken(
                    &r,
                    Break::Inserted {
                        detail: "it has a position but no hashes".into(),
                    },
                ));
            };
            if seq < expected_seq {
                return Err(broken(
                    &r,
                    Break::Inserted {
                        detail: format!(
                            "position {seq} is taken twice or lies before the chain's anchor \
                             (position {})",
                            head.anchor_seq
                        ),
                    },
                ));
            }
            if seq > expected_seq {
                return Err(broken(
                    &r,
                    Break::Deleted {
                        detail: if expected_seq + 1 == seq {
                            format!("the record at position {expected_seq} before it is missing")
                        } else {
                            format!(
                                "the records at positions {expected_seq} to {} before it are \
                                 missing",
                                seq - 1
                            )
                        },
                    },
                ));
            }
            if link(prev_hash, &r.record).as_slice() != hash.as_slice() {
                return Err(broken(
                    &r,
                    Break::Edited {
                        detail: "its fields do not give its hash".into(),
                    },
                ));
            }
            if *prev_hash != prev {
                let later = positions.get(prev_hash).copied().filter(|&p| p > seq);
                let earlier = positions.get(prev_hash).copied().filter(|&p| p < seq);
                return Err(match (later, earlier, &prev_record) {
                    (Some(p), _, _) => broken(
                        &r,
                        Break::Reordered {
                            detail: format!("its predecessor is at position {p}, after it"),
                        },
                    ),
                    (None, Some(_), Some(before)) => broken(
                        before,
                        Break::Inserted {
                            detail: "the record after it was chained to the record before it"
                                .into(),
                        },
                    ),
                    _ if prev_record.is_none() => broken(
                        &r,
                        Break::Deleted {
                            detail: "it is not chained to the anchor: records before it were \
                                     removed other than by pruning"
                                .into(),
                        },
                    ),
                    _ => broken(
                        &r,
                        Break::Deleted {
                            detail: "the record it was chained to is missing".into(),
                        },
                    ),
                });
            }
            if let Some(e) = expected_head {
                if hex::encode(hash).eq_ignore_ascii_case(e) {
                    expected_found = true;
                }
            }
            prev = hash.clone();
            expected_seq = seq + 1;
            count += 1;
            prev_record = Some(r);
        }
    }
    // Rows outside the chain: the service writes none.
    if let Some(r) = store.unchained_audit(1)?.into_iter().next() {
        return Err(broken(
            &r,
            Break::Inserted {
                detail: "it has no position in the chain".into(),
            },
        ));
    }
    if expected_seq - 1 != head.last_seq || prev != head.last_hash {
        let what = if expected_seq - 1 < head.last_seq {
            Break::Deleted {
                detail: format!(
                    "the chain ends at position {} but its head says {}",
                    expected_seq - 1,
                    head.last_seq
                ),
            }
        } else if expected_seq - 1 > head.last_seq {
            Break::Inserted {
                detail: format!(
                    "the chain goes on to position {} past its head at {}",
                    expected_seq - 1,
                    head.last_seq
                ),
            }
        } else {
            Break::Edited {
                detail: "the last record's hash is not the head's".into(),
            }
        };
        return Err(VerifyError::Broken(Box::new(Broken {
            position: prev_record.as_ref().and_then(|r| r.position),
            confirmation_id: prev_record.map(|r| r.record.confirmation_id),
            what,
        })));
    }
    if !expected_found {
        if let Some(e) = expected_head {
            if hex::encode(&head.anchor_hash).eq_ignore_ascii_case(e) {
                expected_found = true;
            }
        }
    }
    if !expected_found {
        return Err(VerifyError::Broken(Box::new(Broken {
            position: None,
            confirmation_id: None,
            what: Break::Edited {
                detail: format!(
                    "no record kept has the hash {} given with --head: the chain was rewritten \
                     (or pruned past it)",
                    expected_head.unwrap_or_default()
                ),
            },
        })));
    }
    Ok(Verified {
        records: count,
        head_seq: head.last_seq,
        head_hash: hex::encode(&head.last_hash),
        anchor_seq: head.anchor_seq,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn record() -> AuditRecord {
        AuditRecord {
            confirmation_id: "C1".into(),
            at: datetime!(2026-11-24 00:00:00.125 UTC),
            institution_code: "1340123452".into(),
            terminal_id: "T01".into(),
            person_id: Some("P1".into()),
            method: "pin".into(),
            purpose: "confirm".into(),
            result_code: "RESULT_CODE_OK".into(),
            consents: 1,
            certificate_sha256: None,
            returned: "{}".into(),
            claimed_at: None,
        }
    }

    #[test]
    fn the_encoding_is_the_documented_one() {
        let bytes = encode(&record());
        let mut expected = b"onshi/audit/v1".to_vec();
        expected.extend_from_slice(&[0, 0, 0, 2]);
        expected.extend_from_slice(b"C1");
        expected.extend_from_slice(&1_795_478_400_125i64.to_be_bytes());
        expected.extend_from_slice(&[0, 0, 0, 10]);
        expected.extend_from_slice(b"1340123452");
        expected.extend_from_slice(&[0, 0, 0, 3]);
        expected.extend_from_slice(b"T01");
        expected.extend_from_slice(&[1, 0, 0, 0, 2]);
        expected.extend_from_slice(b"P1");
        expected.extend_from_slice(&[0, 0, 0, 3]);
        expected.extend_from_slice(b"pin");
        expected.extend_from_slice(&[0, 0, 0, 7]);
        expected.extend_from_slice(b"confirm");
        expected.extend_from_slice(&[0, 0, 0, 14]);
        expected.extend_from_slice(b"RESULT_CODE_OK");
        expected.push(1);
        expected.push(0);
        expected.extend_from_slice(&[0, 0, 0, 2]);
        expected.extend_from_slice(b"{}");
        assert_eq!(bytes, expected);
    }

    #[test]
    fn every_field_changes_the_hash_and_fields_cannot_trade_bytes() {
        let base = link(&GENESIS, &record());
        let variants: Vec<AuditRecord> = vec![
            AuditRecord {
                confirmation_id: "C2".into(),
                ..record()
            },
            AuditRecord {
                at: datetime!(2026-11-24 00:00:00.126 UTC),
                ..record()
            },
            AuditRecord {
                institution_code: "1340123453".into(),
                ..record()
            },
            AuditRecord {
                terminal_id: "T02".into(),
                ..record()
            },
            AuditRecord {
                person_id: None,
                ..record()
            },
            AuditRecord {
                person_id: Some(String::new()),
                ..record()
            },
            AuditRecord {
                method: "face".into(),
                ..record()
            },
            AuditRecord {
                purpose: "register".into(),
                ..record()
            },
            AuditRecord {
                result_code: "RESULT_CODE_X".into(),
                ..record()
            },
            AuditRecord {
                consents: 3,
                ..record()
            },
            AuditRecord {
                certificate_sha256: Some("ab".into()),
                ..record()
            },
            AuditRecord {
                returned: "{ }".into(),
                ..record()
            },
            // Bytes moved from one field to its neighbour.
            AuditRecord {
                method: "pinconfirm".into(),
                purpose: String::new(),
                ..record()
            },
        ];
        let mut seen = std::collections::HashSet::new();
        seen.insert(base);
        for v in &variants {
            assert!(seen.insert(link(&GENESIS, v)), "{v:?}");
        }
        assert_ne!(link(&[1; 32], &record()), base, "the previous hash counts");
    }

    #[test]
    fn extend_links_each_record_to_the_one_before() {
        let a = record();
        let b = AuditRecord {
            confirmation_id: "C2".into(),
            ..record()
        };
        let (cols, seq, head) = extend(5, &[9; 32], [&a, &b]);
        assert_eq!(seq, 7);
        assert_eq!(cols[0].0, 6);
        assert_eq!(cols[0].1, vec![9; 32]);
        assert_eq!(cols[0].2, link(&[9; 32], &a).to_vec());
        assert_eq!(cols[1].1, cols[0].2);
        assert_eq!(head, cols[1].2);
    }
}
