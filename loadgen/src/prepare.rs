//! The preparation phase: a challenge from the server for every request, then the card's
//! signature over the challenge binding, made on all cores with ring from the card's PKCS#8
//! key (PKCS#1 v1.5 is deterministic, so it is byte-identical to the card's own signature).
//! Replay requests are sent once here, so the measured phase can present a used challenge.
//! The card-less kinds need no challenge: they are built from the pool of the world's numbers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use onshi_proto::binding::{ChallengeBinding, ConsentBits, Purpose};
use onshi_proto::v1 as pb;
use onshi_testbed::manifest::CardKind;
use ring::signature::RSA_PKCS1_SHA256;
use tokio::task::JoinSet;

use crate::drive::TerminalConn;
use crate::mix::{Mix, RequestKind};
use crate::world::{PoolCard, World};
use crate::LoadgenError;

/// One request ready to send.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub kind: RequestKind,
    pub request: Request,
}

/// The RPC a prepared request goes to, and its message.
#[derive(Debug, Clone)]
pub enum Request {
    Card(pb::ConfirmByCardRequest),
    Numbers(pb::ConfirmByNumbersRequest),
    Batch(pb::SubmitBatchRequest),
}

/// A window's requests, one queue per virtual terminal (a challenge is bound to the terminal
/// that asked for it).
#[derive(Debug, Default)]
pub struct PreparedPool {
    pub per_terminal: Vec<Vec<Prepared>>,
    /// The earliest `expires_at` of the challenges, Unix seconds.
    pub earliest_expiry: Option<i64>,
    pub issue_time: Duration,
    pub sign_time: Duration,
}

impl PreparedPool {
    pub fn len(&self) -> usize {
        self.per_terminal.iter().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The world's cards, by what a request kind needs, and the card-less numbers of its persons.
#[derive(Debug, Clone, Default)]
pub struct CardPools {
    pin: Vec<PoolCard>,
    revoked: Vec<PoolCard>,
    expired: Vec<PoolCard>,
    unregistered: Vec<PoolCard>,
    /// One query per qualification record of the store's first persons (empty unless the mix
    /// has a card-less kind).
    numbers: Arc<Vec<pb::NumbersQuery>>,
    /// Queries in one `batch` submission.
    batch_size: usize,
}

/// Persons whose qualifications make the card-less pool (each has one to a few records).
pub const NUMBERS_PERSONS: usize = 2_000;

impl CardPools {
    /// Sorts the world's cards, and reads the numbers pool from the world's store when the
    /// mix has a card-less kind; fails if the mix asks for a kind the world has nothing for.
    pub fn new(world: &World, mix: &Mix, batch_size: usize) -> Result<CardPools, LoadgenError> {
        let mut pin = world.cards_of(CardKind::Valid);
        pin.extend(world.cards_of(CardKind::Lost));
        pin.extend(world.cards_of(CardKind::Multiple));
        let numbers = if mix.needs_numbers() {
            world.numbers_pool(NUMBERS_PERSONS)?
        } else {
            Vec::new()
        };
        let pools = CardPools {
            pin,
            revoked: world.cards_of(CardKind::Revoked),
            expired: world.cards_of(CardKind::Expired),
            unregistered: world.cards_of(CardKind::Unregistered),
            numbers: Arc::new(numbers),
            batch_size: batch_size.max(1),
        };
        for kind in mix.kinds() {
            let empty = if kind.is_card() {
                pools.for_kind(kind).is_empty()
            } else {
                pools.numbers.is_empty()
            };
            if empty {
                return Err(LoadgenError::World(format!(
                    "the mix asks for {kind} requests but the world has no card or person for them"
                )));
            }
        }
        Ok(pools)
    }

    /// The cards the `unregistered` kind presents.
    pub fn unregistered(&self) -> &[PoolCard] {
        &self.unregistered
    }

    /// Queries in the numbers pool.
    pub fn numbers_len(&self) -> usize {
        self.numbers.len()
    }

    fn for_kind(&self, kind: RequestKind) -> &[PoolCard] {
        match kind {
            RequestKind::Pin | RequestKind::BadSignature | RequestKind::Replay => &self.pin,
            RequestKind::Revoked => &self.revoked,
            RequestKind::Expired => &self.expired,
            RequestKind::Unregistered => &self.unregistered,
            RequestKind::Cardless | RequestKind::BadNumbers | RequestKind::Batch => &[],
        }
    }

    /// The `serial`-th query of the pool (round-robin).
    fn query(&self, serial: usize) -> Option<pb::NumbersQuery> {
        self.numbers
            .get(serial % self.numbers.len().max(1))
            .cloned()
    }

    /// A card-less request of `kind` (not a card kind), the `serial`-th of its terminal's run.
    fn numbers_request(&self, kind: RequestKind, serial: usize) -> Option<Request> {
        match kind {
            RequestKind::Cardless => Some(Request::Numbers(pb::ConfirmByNumbersRequest {
                query: Some(self.query(serial)?),
                claimed_visit_time: None,
            })),
            RequestKind::BadNumbers => {
                // An insurance card's numbers with a wrong check digit: the next query of the
                // pool that has an insurer number (a 医療扶助 query has public-expense numbers
                // instead, whose own check would answer another code).
                let mut query = (0..self.numbers.len())
                    .filter_map(|i| self.query(serial.wrapping_add(i)))
                    .find(|q| !q.insurer_number.is_empty())?;
                query.insurer_number = wrong_check_digit(&query.insurer_number);
                Some(Request::Numbers(pb::ConfirmByNumbersRequest {
                    query: Some(query),
                    claimed_visit_time: None,
                }))
            }
            RequestKind::Batch => {
                let start = serial.wrapping_mul(self.batch_size);
                let queries = (0..self.batch_size)
                    .map(|i| self.query(start.wrapping_add(i)))
                    .collect::<Option<Vec<_>>>()?;
                Some(Request::Batch(pb::SubmitBatchRequest { queries }))
            }
            _ => None,
        }
    }
}

/// The insurer number with its last digit (the check digit, for both the 8-digit and the
/// 6-digit 国保 form) replaced by another, so it fails the check.
fn wrong_check_digit(insurer_number: &str) -> String {
    let mut out = insurer_number.to_owned();
    if let Some(last) = out.pop() {
        let d = last.to_digit(10).unwrap_or(0);
        out.push(char::from_digit((d + 1) % 10, 10).unwrap_or('0'));
    }
    out
}

struct Issued {
    terminal: usize,
    index: usize,
    challenge: Vec<u8>,
    terminal_name: String,
    expires: Option<i64>,
}

struct Job {
    terminal: usize,
    index: usize,
    kind: RequestKind,
    card: PoolCard,
    challenge: Vec<u8>,
    terminal_name: String,
    consents: u8,
}

/// Prepares `per_terminal` requests for each connection, `parallel` challenge requests in
/// flight per connection, signatures on `threads` threads. Stops with
/// [`LoadgenError::Interrupted`] soon after `abort` is set (a large window takes minutes).
pub async fn prepare(
    conns: &[TerminalConn],
    cards: &CardPools,
    mix: &Mix,
    per_terminal: usize,
    parallel: usize,
    threads: usize,
    abort: &Arc<AtomicBool>,
) -> Result<PreparedPool, LoadgenError> {
    let parallel = parallel.max(1);
    let started = Instant::now();
    let sequences: Vec<Vec<RequestKind>> = (0..conns.len())
        .map(|t| {
            let mut seq = mix.sequence(per_terminal);
            if !seq.is_empty() {
                let by = t % seq.len();
                seq.rotate_left(by);
            }
            seq
        })
        .collect();
    let mut set = JoinSet::new();
    for (t, conn) in conns.iter().enumerate() {
        // Only the card kinds need a challenge.
        let card_slots: Arc<Vec<usize>> = Arc::new(
            sequences
                .get(t)
                .map(|seq| {
                    seq.iter()
                        .enumerate()
                        .filter(|(_, k)| k.is_card())
                        .map(|(i, _)| i)
                        .collect()
                })
                .unwrap_or_default(),
        );
        for lane in 0..parallel.min(card_slots.len()) {
            let mut client = conn.client.clone();
            let timeout = conn.rpc_timeout;
            let card_slots = Arc::clone(&card_slots);
            let abort = Arc::clone(abort);
            set.spawn(async move {
                let mut out = Vec::new();
                for index in card_slots.iter().skip(lane).step_by(parallel).copied() {
                    if abort.load(Ordering::Relaxed) {
                        return Err(LoadgenError::Interrupted);
                    }
                    let answer = client
                        .issue_challenge(crate::drive::with_deadline(
                            pb::IssueChallengeRequest {
                                purpose: pb::Purpose::Confirm as i32,
                            },
                            timeout,
                        ))
                        .await
                        .map_err(|s| {
                            LoadgenError::Prepare(format!(
                                "IssueChallenge refused: {:?} {}",
                                s.code(),
                                s.message()
                            ))
                        })?
                        .into_inner();
                    out.push(Issued {
                        terminal: t,
                        index,
                        challenge: answer.challenge,
                        terminal_name: answer.terminal_name,
                        expires: answer.expires_at.map(|ts| ts.seconds),
                    });
                }
                Ok::<_, LoadgenError>(out)
            });
        }
    }
    let mut issued = Vec::with_capacity(conns.len() * per_terminal);
    while let Some(joined) = set.join_next().await {
        let batch = joined.map_err(|e| LoadgenError::Runtime(e.to_string()))??;
        issued.extend(batch);
    }
    let issue_time = started.elapsed();

    let earliest_expiry = issued.iter().filter_map(|i| i.expires).min();
    let mut jobs = Vec::with_capacity(issued.len());
    for i in issued {
        let kind = sequences
            .get(i.terminal)
            .and_then(|s| s.get(i.index))
            .copied()
            .unwrap_or(RequestKind::Pin);
        let pool = cards.for_kind(kind);
        let serial = i.terminal * per_terminal + i.index;
        let card = pool
            .get(serial % pool.len().max(1))
            .cloned()
            .ok_or_else(|| LoadgenError::Prepare(format!("no card for {kind}")))?;
        jobs.push(Job {
            terminal: i.terminal,
            index: i.index,
            kind,
            card,
            challenge: i.challenge,
            terminal_name: i.terminal_name,
            consents: (serial % 16) as u8,
        });
    }

    let sign_started = Instant::now();
    let threads = threads.max(1);
    let stop = Arc::clone(abort);
    let signed = tokio::task::spawn_blocking(move || sign_all(jobs, threads, &stop))
        .await
        .map_err(|e| LoadgenError::Runtime(e.to_string()))??;
    let sign_time = sign_started.elapsed();

    let mut per_terminal_out: Vec<Vec<Option<Prepared>>> =
        (0..conns.len()).map(|_| vec![None; per_terminal]).collect();
    for (t, seq) in sequences.iter().enumerate() {
        for (index, kind) in seq.iter().enumerate().filter(|(_, k)| !k.is_card()) {
            let serial = t * per_terminal + index;
            let request = cards
                .numbers_request(*kind, serial)
                .ok_or_else(|| LoadgenError::Prepare(format!("no numbers for {kind}")))?;
            if let Some(slot) = per_terminal_out.get_mut(t).and_then(|v| v.get_mut(index)) {
                *slot = Some(Prepared {
                    kind: *kind,
                    request,
                });
            }
        }
    }
    for (t, index, prepared) in signed {
        if let Some(slot) = per_terminal_out.get_mut(t).and_then(|v| v.get_mut(index)) {
            *slot = Some(prepared);
        }
    }
    let per_terminal: Vec<Vec<Prepared>> = per_terminal_out
        .into_iter()
        .map(|v| v.into_iter().flatten().collect())
        .collect();
    let pool = PreparedPool {
        per_terminal,
        earliest_expiry,
        issue_time,
        sign_time,
    };
    spend_replays(conns, &pool).await?;
    Ok(pool)
}

/// Signs every job, spread over `threads` threads.
fn sign_all(
    jobs: Vec<Job>,
    threads: usize,
    abort: &AtomicBool,
) -> Result<Vec<(usize, usize, Prepared)>, LoadgenError> {
    let chunk = jobs.len().div_ceil(threads).max(1);
    let rng = ring::rand::SystemRandom::new();
    std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .chunks(chunk)
            .map(|part| {
                let rng = &rng;
                scope.spawn(move || {
                    part.iter()
                        .map(|job| {
                            if abort.load(Ordering::Relaxed) {
                                return Err(LoadgenError::Interrupted);
                            }
                            sign_one(job, rng).map(|p| (job.terminal, job.index, p))
                        })
                        .collect::<Result<Vec<_>, LoadgenError>>()
                })
            })
            .collect();
        let mut out = Vec::with_capacity(jobs.len());
        for h in handles {
            let part = h
                .join()
                .map_err(|_| LoadgenError::Runtime("a signing thread panicked".into()))??;
            out.extend(part);
        }
        Ok(out)
    })
}

fn sign_one(job: &Job, rng: &ring::rand::SystemRandom) -> Result<Prepared, LoadgenError> {
    let consents = ConsentBits::new(
        job.consents & ConsentBits::MEDICATION != 0,
        job.consents & ConsentBits::CHECKUP != 0,
        job.consents & ConsentBits::CLINICAL != 0,
        job.consents & ConsentBits::SURGERY != 0,
    );
    let binding = ChallengeBinding {
        purpose: Purpose::Confirm,
        challenge: &job.challenge,
        terminal_name: &job.terminal_name,
        certificate_der: &job.card.certificate,
        consents,
    }
    .encode()
    .map_err(|e| LoadgenError::Prepare(format!("challenge binding: {e}")))?;
    let mut signature = vec![0u8; job.card.key.public().modulus_len()];
    job.card
        .key
        .sign(&RSA_PKCS1_SHA256, rng, &binding, &mut signature)
        .map_err(|_| LoadgenError::CardKey {
            card: job.card.name.clone(),
            reason: "RSA signing failed".into(),
        })?;
    if job.kind == RequestKind::BadSignature {
        let mid = signature.len() / 2;
        if let Some(b) = signature.get_mut(mid) {
            *b ^= 0x01;
        }
    }
    Ok(Prepared {
        kind: job.kind,
        request: Request::Card(pb::ConfirmByCardRequest {
            certificate: job.card.certificate.as_ref().clone(),
            challenge: job.challenge.clone(),
            signature,
            consents: Some(consents.into()),
            prescription_issue: pb::PrescriptionIssue::Unspecified as i32,
            treatment: 0,
            requery_consent: false,
            credential_kind: pb::CredentialKind::Card as i32,
        }),
    })
}

/// Sends every replay request once, so its challenge is used before the measured phase.
async fn spend_replays(conns: &[TerminalConn], pool: &PreparedPool) -> Result<(), LoadgenError> {
    let mut set = JoinSet::new();
    for (t, queue) in pool.per_terminal.iter().enumerate() {
        let replays: Vec<pb::ConfirmByCardRequest> = queue
            .iter()
            .filter(|p| p.kind == RequestKind::Replay)
            .filter_map(|p| match &p.request {
                Request::Card(r) => Some(r.clone()),
                _ => None,
            })
            .collect();
        if replays.is_empty() {
            continue;
        }
        let Some(conn) = conns.get(t) else { continue };
        let mut client = conn.client.clone();
        let timeout = conn.rpc_timeout;
        set.spawn(async move {
            for request in replays {
                client
                    .confirm_by_card(crate::drive::with_deadline(request, timeout))
                    .await
                    .map_err(|s| {
                        LoadgenError::Prepare(format!(
                            "the first use of a replay challenge was refused: {:?} {}",
                            s.code(),
                            s.message()
                        ))
                    })?;
            }
            Ok::<_, LoadgenError>(())
        });
    }
    while let Some(joined) = set.join_next().await {
        joined.map_err(|e| LoadgenError::Runtime(e.to_string()))??;
    }
    Ok(())
}
