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
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::mix::{Expected, RequestKind, Target};
use crate::prepare::{Prepared, PreparedPool, Request};
use crate::world::TerminalIdentity;
use crate::LoadgenError;

/// Longest latency the histograms hold (longer ones are clamped): 60 s.
pub const MAX_LATENCY_US: u64 = 60_000_000;
/// Default deadline of every RPC the harness makes (`--rpc-timeout`): a request not answered by
/// then fails with DEADLINE_EXCEEDED and counts as an unexpected answer.
pub const DEFAULT_RPC_TIMEOUT: Duration = Duration::from_secs(10);
/// Why a window ended before its time when its prepared requests ran out.
pub const POOL_DRY: &str =
    "its prepared requests ran out, so its clock stopped and the next window was prepared off the clock (raise --prepare for fewer windows)";
/// How many unexpected answers are kept verbatim for the report.
const MAX_SAMPLES: usize = 10;

/// One virtual terminal: its own TLS connection (one HTTP/2 connection; concurrent requests
/// on it are streams).
#[derive(Debug, Clone)]
pub struct TerminalConn {
    /// The identity its certificate claims.
    pub name: String,
    pub client: ConfirmationClient<Channel>,
    /// The deadline of each RPC on this connection.
    pub rpc_timeout: Duration,
}

/// `message` as a request with a deadline: tonic sends it as `grpc-timeout`, so the server
/// can give up on it too, and the channel fails the call with DEADLINE_EXCEEDED when it passes.
pub fn with_deadline<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(timeout);
    request
}

/// Opens one mutual-TLS connection with `identity`.
pub async fn connect(
    url: &str,
    ca_pem: &[u8],
    identity: &TerminalIdentity,
    rpc_timeout: Duration,
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
        .timeout(rpc_timeout)
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(|e| err(format!("{e} ({})", source_chain(&e))))?;
    Ok(TerminalConn {
        name: identity.name.clone(),
        client: ConfirmationClient::new(channel),
        rpc_timeout,
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
    urls: &[String],
    ca_pem: &[u8],
    identities: &[TerminalIdentity],
    count: usize,
    rpc_timeout: Duration,
) -> Result<Vec<TerminalConn>, LoadgenError> {
    if identities.is_empty() {
        return Err(LoadgenError::Usage(
            "no terminal identity to connect with".into(),
        ));
    }
    if urls.is_empty() {
        return Err(LoadgenError::Usage("no service URL to connect to".into()));
    }
    let mut set = JoinSet::new();
    for i in 0..count {
        // Several instances: terminal i goes to the i-th URL, round-robin.
        let url = urls[i % urls.len()].clone();
        let ca = ca_pem.to_vec();
        let id = identities[i % identities.len()].clone();
        set.spawn(async move { connect(&url, &ca, &id, rpc_timeout).await.map(|c| (i, c)) });
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

/// Sends one prepared request to the RPC it belongs to, with a deadline of `timeout`.
pub async fn send(
    client: &mut ConfirmationClient<Channel>,
    request: Request,
    timeout: Duration,
) -> Result<Answer, tonic::Status> {
    match request {
        Request::Card(r) => client
            .confirm_by_card(with_deadline(r, timeout))
            .await
            .map(|a| Answer::Result(Box::new(a.into_inner()))),
        Request::Numbers(r) => client
            .confirm_by_numbers(with_deadline(r, timeout))
            .await
            .map(|a| Answer::Result(Box::new(a.into_inner()))),
        Request::Batch(r) => client
            .submit_batch(with_deadline(r, timeout))
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
    /// Latency in microseconds by kind, to 2 significant digits (a tenth of the memory of
    /// the overall histogram, which every worker keeps once per kind).
    pub kind_latency: BTreeMap<&'static str, Histogram<u64>>,
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
            kind_latency: BTreeMap::new(),
            confirmed: 0,
            expected: BTreeMap::new(),
            unexpected: BTreeMap::new(),
            samples: Vec::new(),
        })
    }

    pub fn record(&mut self, kind: RequestKind, latency: Duration, class: Class) {
        let us = micros(latency);
        self.histogram.saturating_record(us);
        if let Some(h) = self.kind_histogram(kind.name()) {
            h.saturating_record(us);
        }
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

    fn kind_histogram(&mut self, kind: &'static str) -> Option<&mut Histogram<u64>> {
        if !self.kind_latency.contains_key(kind) {
            let h = Histogram::new_with_bounds(1, MAX_LATENCY_US, 2).ok()?;
            self.kind_latency.insert(kind, h);
        }
        self.kind_latency.get_mut(kind)
    }

    pub fn merge(&mut self, other: &Tally) {
        // Both histograms have the same bounds, so adding cannot fail; be safe anyway.
        let _ = self.histogram.add(&other.histogram);
        self.requests += other.requests;
        for (k, v) in &other.by_kind {
            *self.by_kind.entry(k).or_default() += v;
        }
        for (k, h) in &other.kind_latency {
            if let Some(mine) = self.kind_histogram(k) {
                let _ = mine.add(h);
            }
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

/// Latency in whole microseconds, within the histograms' bounds.
fn micros(latency: Duration) -> u64 {
    u64::try_from(latency.as_micros())
        .unwrap_or(u64::MAX)
        .clamp(1, MAX_LATENCY_US)
}

/// One complete second of measured time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Second {
    /// Requests answered in it.
    pub completed: u64,
    /// Latency of those requests, to 2 significant digits.
    pub p50_us: u64,
    pub p99_us: u64,
}

/// A measured second whose figure is the harness's doing, not the server's: the driver had
/// no prepared request to send while the measured clock ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "second {second} of a measured window: the driver ran out of prepared requests while the \
     measured clock ran, so that second measures the harness, not the server"
)]
pub struct HarnessFault {
    /// The second of its window, from 0.
    pub second: usize,
}

/// The complete seconds in `clock` of measured time: a trailing partial second is left out,
/// so the per-second series never shows a fall that is only a fraction of a second measured.
pub fn whole_seconds(clock: Duration) -> usize {
    usize::try_from(clock.as_secs()).unwrap_or(usize::MAX)
}

/// The first of the `whole` complete seconds in which the driver was starved, if any.
/// Starvation in the trailing partial second is how a window ends (the clock stops at that
/// instant), so only the complete seconds are checked.
pub fn first_starved(starved: &[bool], whole: usize) -> Option<HarnessFault> {
    starved
        .iter()
        .take(whole)
        .position(|s| *s)
        .map(|second| HarnessFault { second })
}

/// The result of one measured window.
#[derive(Debug, Clone)]
pub struct Measured {
    pub tally: Tally,
    /// Measured time: from the start to the moment the clock stopped (the window's end, or the
    /// instant the driver first found no prepared request). Answers to requests sent before
    /// then still count; no time spent preparing is in it.
    pub elapsed: Duration,
    /// The window's complete seconds (the trailing partial one is dropped).
    pub seconds: Vec<Second>,
    /// Why the window ended before its duration, if it did.
    pub ended_early: Option<String>,
    /// A complete second that measured the harness, if there was one.
    pub fault: Option<HarnessFault>,
}

/// Not yet stopped.
const RUNNING: u64 = u64::MAX;

/// Counters the progress line reads, and what happened in each second of the window.
#[derive(Debug)]
struct Live {
    started: Instant,
    done: AtomicU64,
    expected: AtomicU64,
    unexpected: AtomicU64,
    completed: Vec<AtomicU64>,
    /// Created on a second's first answer.
    latency: Vec<Mutex<Option<Histogram<u64>>>>,
    /// A second in which the driver found no prepared request to send.
    starved: Vec<AtomicBool>,
    /// Nanoseconds from `started` to when the measured clock stopped, or RUNNING.
    stopped_ns: AtomicU64,
}

impl Live {
    fn new(window: Duration) -> Live {
        // The window's seconds; answers after the clock stopped fall in the partial second
        // or later, which the series leaves out.
        let slots = usize::try_from(window.as_secs())
            .unwrap_or(usize::MAX)
            .saturating_add(2);
        Live {
            started: Instant::now(),
            done: AtomicU64::new(0),
            expected: AtomicU64::new(0),
            unexpected: AtomicU64::new(0),
            completed: (0..slots).map(|_| AtomicU64::new(0)).collect(),
            latency: (0..slots).map(|_| Mutex::new(None)).collect(),
            starved: (0..slots).map(|_| AtomicBool::new(false)).collect(),
            stopped_ns: AtomicU64::new(RUNNING),
        }
    }

    fn second_of(at: Duration) -> usize {
        usize::try_from(at.as_secs()).unwrap_or(usize::MAX)
    }

    fn count(&self, class: &Class, latency: Duration) {
        self.done.fetch_add(1, Ordering::Relaxed);
        let second = Self::second_of(self.started.elapsed());
        if let Some(slot) = self.completed.get(second) {
            slot.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(slot) = self.latency.get(second) {
            let mut h = slot.lock().unwrap_or_else(|e| e.into_inner());
            if h.is_none() {
                *h = Histogram::new_with_bounds(1, MAX_LATENCY_US, 2).ok();
            }
            if let Some(h) = h.as_mut() {
                h.saturating_record(micros(latency));
            }
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

    /// Marks the current second as starved of prepared requests; returns the instant.
    fn starve(&self) -> Duration {
        let at = self.started.elapsed();
        if let Some(slot) = self.starved.get(Self::second_of(at)) {
            slot.store(true, Ordering::Relaxed);
        }
        at
    }

    /// Stops the measured clock at `at` (from the start), unless it stopped earlier.
    fn stop_clock_at(&self, at: Duration) {
        let ns = u64::try_from(at.as_nanos()).unwrap_or(RUNNING - 1);
        let _ = self
            .stopped_ns
            .compare_exchange(RUNNING, ns, Ordering::AcqRel, Ordering::Acquire);
    }

    fn stop_clock(&self) {
        self.stop_clock_at(self.started.elapsed());
    }

    fn clock(&self) -> Option<Duration> {
        match self.stopped_ns.load(Ordering::Acquire) {
            RUNNING => None,
            ns => Some(Duration::from_nanos(ns)),
        }
    }

    /// The first `whole` seconds.
    fn seconds(&self, whole: usize) -> Vec<Second> {
        self.completed
            .iter()
            .zip(&self.latency)
            .take(whole)
            .map(|(n, h)| {
                let h = h.lock().unwrap_or_else(|e| e.into_inner());
                let q = |q: f64| h.as_ref().map_or(0, |h| h.value_at_quantile(q));
                Second {
                    completed: n.load(Ordering::Relaxed),
                    p50_us: q(0.50),
                    p99_us: q(0.99),
                }
            })
            .collect()
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
        let max_ticks = limit.as_secs() + 2;
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

/// Drives one window of load against `conns` with the prepared `pool`. The measured clock
/// runs from the first send to the window's end, or stops at the instant the driver first finds
/// no prepared request (the window then ends and the next one is prepared off the clock).
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
    let rpc_timeout = conns
        .iter()
        .map(|c| c.rpc_timeout)
        .max()
        .unwrap_or(DEFAULT_RPC_TIMEOUT);
    let live = Arc::new(Live::new(duration));
    let stop_progress = Arc::new(AtomicBool::new(false));
    let progress = spawn_progress(
        target.name().to_owned(),
        Arc::clone(&live),
        Arc::clone(&stop_progress),
        duration + rpc_timeout,
        quiet,
    );
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
    stop_progress.store(true, Ordering::Relaxed);
    let _ = progress.await;
    let (tally, ended_early) = result?;
    let elapsed = live.clock().unwrap_or(duration);
    let whole = whole_seconds(elapsed);
    let starved: Vec<bool> = live
        .starved
        .iter()
        .map(|s| s.load(Ordering::Relaxed))
        .collect();
    Ok(Measured {
        tally,
        elapsed,
        seconds: live.seconds(whole),
        ended_early,
        fault: first_starved(&starved, whole),
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
    let deadline = live.started + duration;
    let stop = Arc::new(AtomicBool::new(false));
    let exhausted = Arc::new(AtomicBool::new(false));
    let mut set = JoinSet::new();
    let workers = concurrency.max(1);
    for w in 0..workers {
        // The connections this worker takes turns over, with their queues.
        let mine: Vec<(ConfirmationClient<Channel>, Queue, Duration)> = if workers >= conns.len() {
            vec![w % conns.len()]
        } else {
            (w..conns.len()).step_by(workers).collect()
        }
        .into_iter()
        .filter_map(|t| {
            Some((
                conns[t].client.clone(),
                queues.get(t).cloned()?,
                conns[t].rpc_timeout,
            ))
        })
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
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                if abort.load(Ordering::Relaxed) {
                    live.stop_clock();
                    break;
                }
                // The next of this worker's connections that still has a prepared request.
                let next = (0..mine.len())
                    .map(|k| (turn + k) % mine.len())
                    .find_map(|i| pop(&mine[i].1).map(|item| (i, item)));
                let Some((i, item)) = next else {
                    // Keep the concurrency constant: the first dry worker stops the clock
                    // at this instant and ends the window.
                    live.stop_clock_at(live.starve());
                    exhausted.store(true, Ordering::Relaxed);
                    stop.store(true, Ordering::Relaxed);
                    break;
                };
                turn = i + 1;
                let timeout = mine[i].2;
                let sent = Instant::now();
                let answer = send(&mut mine[i].0, item.request, timeout).await;
                let latency = sent.elapsed();
                let class = classify(item.kind, target, &answer);
                live.count(&class, latency);
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
    let start = tokio::time::Instant::from_std(live.started);
    let mut early = None;
    for k in 0..total {
        let intended = start + Duration::from_secs_f64(k as f64 / rate);
        if tokio::time::Instant::now() < intended {
            tokio::time::sleep_until(intended).await;
        }
        if abort.load(Ordering::Relaxed) {
            live.stop_clock();
            early = Some("interrupted".to_owned());
            break;
        }
        let t = (k % conns.len() as u64) as usize;
        let Some(item) = queues.get(t).and_then(|q| pop(q)) else {
            live.stop_clock_at(live.starve());
            early = Some(POOL_DRY.to_owned());
            break;
        };
        // Waiting for a slot does not move the intended time: the wait is charged as latency.
        let permit = Arc::clone(&slots)
            .acquire_owned()
            .await
            .map_err(|e| LoadgenError::Runtime(e.to_string()))?;
        let mut client = conns[t].client.clone();
        let timeout = conns[t].rpc_timeout;
        let (shards, live) = (Arc::clone(&shards), Arc::clone(live));
        tokio::spawn(async move {
            let answer = send(&mut client, item.request, timeout).await;
            let latency = intended.elapsed();
            let class = classify(item.kind, target, &answer);
            live.count(&class, latency);
            if let Some(shard) = shards.get(t) {
                shard
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .record(item.kind, latency, class);
            }
            drop(permit);
        });
    }
    // On schedule, the last request goes out just before `duration`; a driver that fell
    // behind measured for as long as it took to send them all.
    live.stop_clock_at(live.started.elapsed().max(duration));
    // Every request has a deadline (--rpc-timeout), so this wait is bounded.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_carries_its_deadline_as_grpc_timeout() {
        let request = with_deadline((), Duration::from_millis(2500));
        let header = request
            .metadata()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // tonic encodes the deadline in the largest unit that keeps it exact.
        assert_eq!(header.as_deref(), Some("2500000u"));
    }

    #[test]
    fn the_trailing_partial_second_is_not_a_measured_second() {
        assert_eq!(whole_seconds(Duration::from_millis(1_100)), 1);
        assert_eq!(whole_seconds(Duration::from_secs(10)), 10);
        assert_eq!(whole_seconds(Duration::from_millis(999)), 0);
    }

    #[test]
    fn starvation_inside_a_complete_second_is_a_harness_fault() {
        // The 9,270, 522, 5,010 series: the pool ran dry in second 1 and the window went on.
        let starved = [false, true, false, false];
        assert_eq!(first_starved(&starved, 4), Some(HarnessFault { second: 1 }));
        let message = HarnessFault { second: 1 }.to_string();
        assert!(
            message.contains("ran out of prepared requests"),
            "{message}"
        );
    }

    #[test]
    fn starvation_that_ends_the_window_is_not_a_fault() {
        // The clock stopped in second 2 when the pool ran dry: seconds 0 and 1 are complete.
        let starved = [false, false, true];
        assert_eq!(first_starved(&starved, 2), None);
        assert_eq!(first_starved(&[false; 3], 3), None);
    }

    #[test]
    fn a_stopped_clock_keeps_its_first_stop_and_seconds_leave_out_the_partial_one() {
        let live = Live::new(Duration::from_secs(3));
        assert_eq!(live.clock(), None);
        live.stop_clock_at(Duration::from_millis(2_400));
        live.stop_clock_at(Duration::from_millis(2_900));
        assert_eq!(live.clock(), Some(Duration::from_millis(2_400)));
        live.count(&Class::Confirmed, Duration::from_millis(3));
        let seconds = live.seconds(whole_seconds(Duration::from_millis(2_400)));
        assert_eq!(seconds.len(), 2);
        assert_eq!(seconds[0].completed, 1);
        assert!(
            seconds[0].p50_us >= 2_900 && seconds[0].p99_us <= 3_100,
            "{seconds:?}"
        );
        assert_eq!(seconds[1].completed, 0);
    }
}
