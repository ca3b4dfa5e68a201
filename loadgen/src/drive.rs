//! The measured phase: connections, the closed and open loops, and classifying each answer.
//!
//! Closed loop: `concurrency` workers, each sending its next prepared request as soon as the
//! previous one answered; latency is send → answer. With at least as many workers as
//! connections, worker *i* uses connection *i* mod terminals; with fewer (many terminals, few
//! in flight), worker *i* takes turns over connections *i*, *i* + workers, …, so every
//! connection carries its share.
//! Open loop: requests are scheduled at a fixed rate (request *k* at start + *k*/rate) whatever
//! the answers do, and latency is measured from the **intended** send time, so a stalled server
//! is charged for every request it delayed (no coordinated omission).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use onshi_proto::v1 as pb;
use onshi_proto::v1::confirmation_client::ConfirmationClient;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::mix::{Expected, RequestKind, Target};
use crate::prepare::{Prepared, PreparedPool, Request};
use crate::world::TerminalIdentity;
use crate::LoadgenError;

/// Longest latency the histograms hold (longer ones are clamped): 60 s.
pub const MAX_LATENCY_US: u64 = 60_000_000;
/// Per-request deadline: a request not answered by then counts as an unexpected error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Why a window ended before its time when its prepared requests ran out.
pub const POOL_DRY: &str =
    "its prepared requests ran out and the next window was prepared (raise --prepare for fewer pauses)";
/// How many unexpected answers are kept verbatim for the report.
const MAX_SAMPLES: usize = 10;

/// One virtual terminal: its own TLS connection (one HTTP/2 connection; concurrent requests
/// on it are streams).
#[derive(Debug, Clone)]
pub struct TerminalConn {
    /// The identity its certificate claims.
    pub name: String,
    pub client: ConfirmationClient<Channel>,
}

/// Opens one mutual-TLS connection with `identity`.
pub async fn connect(
    url: &str,
    ca_pem: &[u8],
    identity: &TerminalIdentity,
) -> Result<TerminalConn, LoadgenError> {
    let err = |reason: String| LoadgenError::Connect {
        url: url.to_owned(),
        reason,
    };
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .domain_name("localhost")
        .identity(Identity::from_pem(
            &identity.certificate_pem,
            &identity.key_pem,
        ));
    let channel = Endpoint::from_shared(url.to_owned())
        .map_err(|e| err(e.to_string()))?
        .tls_config(tls)
        .map_err(|e| err(e.to_string()))?
        .connect_timeout(Duration::from_secs(10))
        .timeout(REQUEST_TIMEOUT)
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(|e| err(format!("{e} ({})", source_chain(&e))))?;
    Ok(TerminalConn {
        name: identity.name.clone(),
        client: ConfirmationClient::new(channel),
    })
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut out = Vec::new();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push(s.to_string());
        cur = s.source();
    }
    out.join(": ")
}

/// Opens `count` connections, connection *i* with identity *i* mod identities.
pub async fn connect_all(
    url: &str,
    ca_pem: &[u8],
    identities: &[TerminalIdentity],
    count: usize,
) -> Result<Vec<TerminalConn>, LoadgenError> {
    if identities.is_empty() {
        return Err(LoadgenError::Usage(
            "no terminal identity to connect with".into(),
        ));
    }
    let mut set = JoinSet::new();
    for i in 0..count {
        let url = url.to_owned();
        let ca = ca_pem.to_vec();
        let id = identities[i % identities.len()].clone();
        set.spawn(async move { connect(&url, &ca, &id).await.map(|c| (i, c)) });
    }
    let mut conns: Vec<Option<TerminalConn>> = vec![None; count];
    while let Some(joined) = set.join_next().await {
        let (i, c) = joined.map_err(|e| LoadgenError::Runtime(e.to_string()))??;
        if let Some(slot) = conns.get_mut(i) {
            *slot = Some(c);
        }
    }
    Ok(conns.into_iter().flatten().collect())
}

/// How one answer counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Class {
    /// Confirmed, as expected.
    Confirmed,
    /// Refused with the expected result code (its proto name).
    ExpectedRefusal(&'static str),
    /// Anything else: a label to count by, and a description for the samples.
    Unexpected { label: String, detail: String },
}

/// A gRPC OK answer of any RPC the harness sends.
#[derive(Debug, Clone)]
pub enum Answer {
    /// `ConfirmByCard` or `ConfirmByNumbers` (boxed: it is far larger than the other).
    Result(Box<pb::ConfirmationResult>),
    /// `SubmitBatch`.
    Batch(pb::SubmitBatchResponse),
}

/// Sends one prepared request to the RPC it belongs to.
pub async fn send(
    client: &mut ConfirmationClient<Channel>,
    request: Request,
) -> Result<Answer, tonic::Status> {
    match request {
        Request::Card(r) => client
            .confirm_by_card(r)
            .await
            .map(|a| Answer::Result(Box::new(a.into_inner()))),
        Request::Numbers(r) => client
            .confirm_by_numbers(r)
            .await
            .map(|a| Answer::Result(Box::new(a.into_inner()))),
        Request::Batch(r) => client
            .submit_batch(r)
            .await
            .map(|a| Answer::Batch(a.into_inner())),
    }
}

/// A 受付番号 as the service hands it out: 16 ASCII digits.
fn is_reception_number(s: &str) -> bool {
    s.len() == 16 && s.bytes().all(|b| b.is_ascii_digit())
}

/// Classifies an answer to a request of `kind` sent to `target`.
pub fn classify(
    kind: RequestKind,
    target: Target,
    answer: &Result<Answer, tonic::Status>,
) -> Class {
    let expected = kind.expected(target);
    match (expected, answer) {
        (Expected::Confirmed | Expected::CarriedOut, Ok(Answer::Result(r))) => {
            let code = r.result_code();
            match code {
                pb::ResultCode::Ok
                | pb::ResultCode::NoQualification
                | pb::ResultCode::MultipleQualifications => Class::Confirmed,
                other => Class::Unexpected {
                    label: format!("confirmed-with-{}", other.as_str_name()),
                    detail: format!("{kind}: gRPC OK with result code {}", other.as_str_name()),
                },
            }
        }
        (Expected::BatchAccepted, Ok(Answer::Batch(b))) => {
            if is_reception_number(&b.reception_number) && b.total > 0 {
                Class::Confirmed
            } else {
                Class::Unexpected {
                    label: "batch-without-reception-number".to_owned(),
                    detail: format!(
                        "{kind}: accepted with reception number {:?} and total {}",
                        b.reception_number, b.total
                    ),
                }
            }
        }
        (Expected::Refused(want), Ok(_)) => Class::Unexpected {
            label: "confirmed-instead-of-refused".to_owned(),
            detail: format!("{kind}: confirmed, expected {}", want.as_str_name()),
        },
        (_, Ok(other)) => Class::Unexpected {
            label: "wrong-answer-type".to_owned(),
            detail: format!("{kind}: answered {other:?}"),
        },
        (expected, Err(status)) => {
            let got = onshi_confirm_service::outcome::result_code_of(status);
            match (expected, got) {
                (Expected::Refused(want), Some(code)) if code == want => {
                    Class::ExpectedRefusal(want.as_str_name())
                }
                (_, Some(code)) => Class::Unexpected {
                    label: code.as_str_name().to_owned(),
                    detail: format!(
                        "{kind}: refused {} ({}), expected {expected:?}",
                        code.as_str_name(),
                        status.message()
                    ),
                },
                (_, None) => Class::Unexpected {
                    label: format!("grpc-{:?}", status.code()),
                    detail: format!(
                        "{kind}: gRPC {:?} without a result code: {}",
                        status.code(),
                        status.message()
                    ),
                },
            }
        }
    }
}

/// Counts and latencies of a measured phase.
#[derive(Debug, Clone)]
pub struct Tally {
    /// Latency in microseconds.
    pub histogram: Histogram<u64>,
    pub requests: u64,
    /// Completed requests by kind (`pin`, `revoked`, …).
    pub by_kind: BTreeMap<&'static str, u64>,
    pub confirmed: u64,
    /// Expected refusals by result code name.
    pub expected: BTreeMap<String, u64>,
    /// Unexpected answers by label (result code name, `grpc-<Code>`, …).
    pub unexpected: BTreeMap<String, u64>,
    pub samples: Vec<String>,
}

impl Tally {
    pub fn new() -> Result<Tally, LoadgenError> {
        Ok(Tally {
            histogram: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .map_err(|e| LoadgenError::Runtime(format!("histogram: {e}")))?,
            requests: 0,
            by_kind: BTreeMap::new(),
            confirmed: 0,
            expected: BTreeMap::new(),
            unexpected: BTreeMap::new(),
            samples: Vec::new(),
        })
    }

    pub fn record(&mut self, kind: RequestKind, latency: Duration, class: Class) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.histogram
            .saturating_record(us.clamp(1, MAX_LATENCY_US));
        self.requests += 1;
        *self.by_kind.entry(kind.name()).or_default() += 1;
        match class {
            Class::Confirmed => self.confirmed += 1,
            Class::ExpectedRefusal(code) => *self.expected.entry(code.to_owned()).or_default() += 1,
            Class::Unexpected { label, detail } => {
                *self.unexpected.entry(label).or_default() += 1;
                if self.samples.len() < MAX_SAMPLES {
                    self.samples.push(detail);
                }
            }
        }
    }

    pub fn merge(&mut self, other: &Tally) {
        // Both histograms have the same bounds, so adding cannot fail; be safe anyway.
        let _ = self.histogram.add(&other.histogram);
        self.requests += other.requests;
        for (k, v) in &other.by_kind {
            *self.by_kind.entry(k).or_default() += v;
        }
        self.confirmed += other.confirmed;
        for (k, v) in &other.expected {
            *self.expected.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.unexpected {
            *self.unexpected.entry(k.clone()).or_default() += v;
        }
        for s in &other.samples {
            if self.samples.len() < MAX_SAMPLES {
                self.samples.push(s.clone());
            }
        }
    }

    pub fn expected_total(&self) -> u64 {
        self.expected.values().sum()
    }

    pub fn unexpected_total(&self) -> u64 {
        self.unexpected.values().sum()
    }
}

/// How the measured phase applies load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Load {
    /// `concurrency` requests always in flight.
    Closed { concurrency: usize },
    /// `rate` requests a second on schedule, at most `max_in_flight` outstanding.
    Open { rate: f64, max_in_flight: usize },
}

/// The result of one measured window.
#[derive(Debug, Clone)]
pub struct Measured {
    pub tally: Tally,
    pub elapsed: Duration,
    /// Requests completed in each second of the window (the last one may be partial).
    pub per_second: Vec<u64>,
    /// Why the window ended before its duration, if it did.
    pub ended_early: Option<String>,
}

/// Counters the progress line reads, and completions per second of the window.
#[derive(Debug)]
struct Live {
    started: Instant,
    done: AtomicU64,
    expected: AtomicU64,
    unexpected: AtomicU64,
    per_second: Vec<AtomicU64>,
}

impl Live {
    fn new(window: Duration) -> Live {
        // Room for stragglers answered up to REQUEST_TIMEOUT after the window.
        let slots = window.as_secs() + REQUEST_TIMEOUT.as_secs() + 2;
        Live {
            started: Instant::now(),
            done: AtomicU64::new(0),
            expected: AtomicU64::new(0),
            unexpected: AtomicU64::new(0),
            per_second: (0..slots).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn count(&self, class: &Class) {
        self.done.fetch_add(1, Ordering::Relaxed);
        let second = self.started.elapsed().as_secs() as usize;
        if let Some(slot) = self
            .per_second
            .get(second)
            .or_else(|| self.per_second.last())
        {
            slot.fetch_add(1, Ordering::Relaxed);
        }
        match class {
            Class::Confirmed => {}
            Class::ExpectedRefusal(_) => {
                self.expected.fetch_add(1, Ordering::Relaxed);
            }
            Class::Unexpected { .. } => {
                self.unexpected.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Prints a progress line on stderr each second until `stop`.
fn spawn_progress(
    label: String,
    live: Arc<Live>,
    stop: Arc<AtomicBool>,
    limit: Duration,
    quiet: bool,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        let mut last = 0u64;
        // Bounded: the window's duration plus the longest a straggler may take.
        let max_ticks = limit.as_secs() + REQUEST_TIMEOUT.as_secs() + 2;
        for second in 1..=max_ticks {
            tick.tick().await;
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let done = live.done.load(Ordering::Relaxed);
            if !quiet {
                eprintln!(
                    "loadgen: {label:>9} {second:>4} s {:>8} req/s {done:>10} done {:>7} expected refusals {:>5} unexpected",
                    done - last,
                    live.expected.load(Ordering::Relaxed),
                    live.unexpected.load(Ordering::Relaxed),
                );
            }
            last = done;
        }
    })
}

/// Drives one window of load against `conns` with the prepared `pool`.
pub async fn measure(
    conns: &[TerminalConn],
    pool: PreparedPool,
    target: Target,
    load: Load,
    duration: Duration,
    abort: Arc<AtomicBool>,
    quiet: bool,
) -> Result<Measured, LoadgenError> {
    if conns.is_empty() {
        return Err(LoadgenError::Usage("no connections".into()));
    }
    let queues: Vec<Arc<Mutex<Vec<Prepared>>>> = pool
        .per_terminal
        .into_iter()
        .map(|mut q| {
            q.reverse(); // pop() then yields them in prepared order
            Arc::new(Mutex::new(q))
        })
        .collect();
    let live = Arc::new(Live::new(duration));
    let stop_progress = Arc::new(AtomicBool::new(false));
    let progress = spawn_progress(
        target.name().to_owned(),
        Arc::clone(&live),
        Arc::clone(&stop_progress),
        duration,
        quiet,
    );
    let started = Instant::now();
    let result = match load {
        Load::Closed { concurrency } => {
            closed_loop(conns, &queues, target, concurrency, duration, &live, &abort).await
        }
        Load::Open {
            rate,
            max_in_flight,
        } => {
            open_loop(
                conns,
                &queues,
                target,
                rate,
                max_in_flight,
                duration,
                &live,
                &abort,
            )
            .await
        }
    };
    let elapsed = started.elapsed();
    stop_progress.store(true, Ordering::Relaxed);
    let _ = progress.await;
    let seconds = (elapsed.as_secs_f64().ceil() as usize).max(1);
    let per_second = live
        .per_second
        .iter()
        .take(seconds)
        .map(|c| c.load(Ordering::Relaxed))
        .collect();
    let (tally, ended_early) = result?;
    Ok(Measured {
        tally,
        elapsed,
        per_second,
        ended_early,
    })
}

/// One connection's prepared requests, next last.
type Queue = Arc<Mutex<Vec<Prepared>>>;

fn pop(queue: &Mutex<Vec<Prepared>>) -> Option<Prepared> {
    queue.lock().unwrap_or_else(|e| e.into_inner()).pop()
}

async fn closed_loop(
    conns: &[TerminalConn],
    queues: &[Arc<Mutex<Vec<Prepared>>>],
    target: Target,
    concurrency: usize,
    duration: Duration,
    live: &Arc<Live>,
    abort: &Arc<AtomicBool>,
) -> Result<(Tally, Option<String>), LoadgenError> {
    let deadline = Instant::now() + duration;
    let stop = Arc::new(AtomicBool::new(false));
    let exhausted = Arc::new(AtomicBool::new(false));
    let mut set = JoinSet::new();
    let workers = concurrency.max(1);
    for w in 0..workers {
        // The connections this worker takes turns over, with their queues.
        let mine: Vec<(ConfirmationClient<Channel>, Queue)> = if workers >= conns.len() {
            vec![w % conns.len()]
        } else {
            (w..conns.len()).step_by(workers).collect()
        }
        .into_iter()
        .filter_map(|t| Some((conns[t].client.clone(), queues.get(t).cloned()?)))
        .collect();
        if mine.is_empty() {
            continue;
        }
        let (stop, exhausted, live, abort) = (
            Arc::clone(&stop),
            Arc::clone(&exhausted),
            Arc::clone(live),
            Arc::clone(abort),
        );
        let mut tally = Tally::new()?;
        set.spawn(async move {
            let mut mine = mine;
            let mut turn = 0;
            while !stop.load(Ordering::Relaxed)
                && !abort.load(Ordering::Relaxed)
                && Instant::now() < deadline
            {
                // The next of this worker's connections that still has a prepared request.
                let next = (0..mine.len())
                    .map(|k| (turn + k) % mine.len())
                    .find_map(|i| pop(&mine[i].1).map(|item| (i, item)));
                let Some((i, item)) = next else {
                    // Keep the concurrency constant: the first dry worker ends the window.
                    exhausted.store(true, Ordering::Relaxed);
                    stop.store(true, Ordering::Relaxed);
                    break;
                };
                turn = i + 1;
                let sent = Instant::now();
                let answer = send(&mut mine[i].0, item.request).await;
                let latency = sent.elapsed();
                let class = classify(item.kind, target, &answer);
                live.count(&class);
                tally.record(item.kind, latency, class);
            }
            tally
        });
    }
    let mut total = Tally::new()?;
    while let Some(joined) = set.join_next().await {
        let tally = joined.map_err(|e| LoadgenError::Runtime(e.to_string()))?;
        total.merge(&tally);
    }
    let early = if abort.load(Ordering::Relaxed) {
        Some("interrupted".to_owned())
    } else if exhausted.load(Ordering::Relaxed) {
        Some(POOL_DRY.to_owned())
    } else {
        None
    };
    Ok((total, early))
}

#[allow(clippy::too_many_arguments)]
async fn open_loop(
    conns: &[TerminalConn],
    queues: &[Arc<Mutex<Vec<Prepared>>>],
    target: Target,
    rate: f64,
    max_in_flight: usize,
    duration: Duration,
    live: &Arc<Live>,
    abort: &Arc<AtomicBool>,
) -> Result<(Tally, Option<String>), LoadgenError> {
    if !(rate.is_finite() && rate > 0.0) {
        return Err(LoadgenError::Usage(format!(
            "--rate {rate} must be positive"
        )));
    }
    let max_in_flight = max_in_flight.clamp(1, Semaphore::MAX_PERMITS);
    let shards: Arc<Vec<Mutex<Tally>>> = Arc::new(
        (0..conns.len())
            .map(|_| Tally::new().map(Mutex::new))
            .collect::<Result<_, _>>()?,
    );
    let slots = Arc::new(Semaphore::new(max_in_flight));
    let total = (rate * duration.as_secs_f64()).ceil().max(1.0) as u64;
    let start = tokio::time::Instant::now();
    let mut early = None;
    for k in 0..total {
        let intended = start + Duration::from_secs_f64(k as f64 / rate);
        if tokio::time::Instant::now() < intended {
            tokio::time::sleep_until(intended).await;
        }
        if abort.load(Ordering::Relaxed) {
            early = Some("interrupted".to_owned());
            break;
        }
        let t = (k % conns.len() as u64) as usize;
        let Some(item) = queues.get(t).and_then(|q| pop(q)) else {
            early = Some(POOL_DRY.to_owned());
            break;
        };
        // Waiting for a slot does not move the intended time: the wait is charged as latency.
        let permit = Arc::clone(&slots)
            .acquire_owned()
            .await
            .map_err(|e| LoadgenError::Runtime(e.to_string()))?;
        let mut client = conns[t].client.clone();
        let (shards, live) = (Arc::clone(&shards), Arc::clone(live));
        tokio::spawn(async move {
            let answer = send(&mut client, item.request).await;
            let latency = intended.elapsed();
            let class = classify(item.kind, target, &answer);
            live.count(&class);
            if let Some(shard) = shards.get(t) {
                shard
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .record(item.kind, latency, class);
            }
            drop(permit);
        });
    }
    // Every request has a deadline (REQUEST_TIMEOUT), so this wait is bounded.
    let all = u32::try_from(max_in_flight).unwrap_or(u32::MAX);
    let _drained = slots
        .acquire_many(all)
        .await
        .map_err(|e| LoadgenError::Runtime(e.to_string()))?;
    let mut tally = Tally::new()?;
    for shard in shards.iter() {
        tally.merge(&shard.lock().unwrap_or_else(|e| e.into_inner()));
    }
    Ok((tally, early))
}
