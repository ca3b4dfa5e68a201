//! The end-of-run report: text for people, JSON for tools (`--json`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::drive::{Second, Tally};

/// The JSON format name; bump on incompatible changes.
pub const FORMAT: &str = "onshi-loadgen-report/2";

/// Latency percentiles in microseconds (HDR histogram, 3 significant digits).
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub count: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p95_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Latency {
        Latency {
            count: h.len(),
            mean_us: h.mean(),
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p95_us: h.value_at_quantile(0.95),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}

/// Answers with one result code (or failure label).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct CodeCount {
    pub expected: u64,
    pub unexpected: u64,
}

/// CPU time of a process over the measured phases.
#[derive(Debug, Clone, Serialize)]
pub struct Cpu {
    /// The first process's id (the only one unless several --service instances were given).
    pub pid: u32,
    /// Every process counted.
    pub pids: Vec<u32>,
    pub seconds: f64,
    /// CPU microseconds per completed request (confirmations and refusals alike).
    pub us_per_request: f64,
}

/// What one target (the service or the reference) did.
#[derive(Debug, Clone, Serialize)]
pub struct TargetReport {
    pub target: String,
    pub url: String,
    pub windows: usize,
    pub prepared: usize,
    pub prepare_issue_seconds: f64,
    pub prepare_sign_seconds: f64,
    pub measured_seconds: f64,
    pub requests: u64,
    /// Completed requests by kind of the mix.
    pub requests_by_kind: BTreeMap<String, u64>,
    pub confirmed: u64,
    pub expected_errors: u64,
    pub unexpected_errors: u64,
    /// Completed requests (confirmed + refused) per second of measured time.
    pub throughput_per_s: f64,
    pub confirmed_per_s: f64,
    pub latency: Latency,
    /// Latency by request kind (to 2 significant digits).
    pub latency_by_kind: BTreeMap<String, Latency>,
    pub errors_by_code: BTreeMap<String, CodeCount>,
    pub unexpected_samples: Vec<String>,
    pub server_cpu: Option<Cpu>,
    pub loadgen_cpu_seconds: Option<f64>,
    /// Each complete second of the measured phases, windows concatenated: requests answered
    /// and their p50 and p99. A window's trailing partial second is left out.
    pub seconds: Vec<Second>,
    pub ended_early: Vec<String>,
    /// Measured seconds whose figure was the harness's doing (the run then exits 3).
    pub harness_faults: Vec<String>,
    /// (percentile, latency µs) points from 0 to 99.99 %, for plots.
    pub percentile_curve: Vec<(f64, u64)>,
    /// The whole latency histogram (µs), for `--hgrm`.
    #[serde(skip)]
    pub histogram: Histogram<u64>,
}

/// The percentiles the plot and the JSON curve use: 0, then 10^-k steps up to 99.99 %.
pub fn curve(h: &Histogram<u64>) -> Vec<(f64, u64)> {
    (0..=80)
        .map(|i| {
            let nines = f64::from(i) / 20.0; // 0 .. 4
            let pct = 100.0 * (1.0 - 10f64.powf(-nines));
            (pct, h.value_at_quantile(pct / 100.0))
        })
        .collect()
}

impl TargetReport {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        target: &str,
        url: &str,
        windows: usize,
        prepared: usize,
        issue: Duration,
        sign: Duration,
        measured: Duration,
        tally: &Tally,
        seconds: Vec<Second>,
        harness_faults: Vec<String>,
        ended_early: Vec<String>,
        server_cpu_seconds: Option<(Vec<u32>, f64)>,
        loadgen_cpu_seconds: Option<f64>,
    ) -> TargetReport {
        let secs = measured.as_secs_f64();
        let per_s = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
        let mut errors_by_code: BTreeMap<String, CodeCount> = BTreeMap::new();
        for (code, n) in &tally.expected {
            errors_by_code.entry(code.clone()).or_default().expected += n;
        }
        for (code, n) in &tally.unexpected {
            errors_by_code.entry(code.clone()).or_default().unexpected += n;
        }
        TargetReport {
            target: target.to_owned(),
            url: url.to_owned(),
            windows,
            prepared,
            prepare_issue_seconds: issue.as_secs_f64(),
            prepare_sign_seconds: sign.as_secs_f64(),
            measured_seconds: secs,
            requests: tally.requests,
            requests_by_kind: tally
                .by_kind
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
            confirmed: tally.confirmed,
            expected_errors: tally.expected_total(),
            unexpected_errors: tally.unexpected_total(),
            throughput_per_s: per_s(tally.requests),
            confirmed_per_s: per_s(tally.confirmed),
            latency: Latency::of(&tally.histogram),
            latency_by_kind: tally
                .kind_latency
                .iter()
                .map(|(k, h)| ((*k).to_owned(), Latency::of(h)))
                .collect(),
            errors_by_code,
            unexpected_samples: tally.samples.clone(),
            server_cpu: server_cpu_seconds.map(|(pids, seconds)| Cpu {
                pid: pids.first().copied().unwrap_or_default(),
                pids,
                seconds,
                us_per_request: if tally.requests > 0 {
                    seconds * 1e6 / tally.requests as f64
                } else {
                    0.0
                },
            }),
            loadgen_cpu_seconds,
            seconds,
            ended_early,
            harness_faults,
            percentile_curve: curve(&tally.histogram),
            histogram: tally.histogram.clone(),
        }
    }
}

/// How the run was set up.
#[derive(Debug, Clone, Serialize)]
pub struct RunSetup {
    pub world: String,
    /// `closed` or `open`.
    pub mode: String,
    pub concurrency: Option<usize>,
    pub rate: Option<f64>,
    pub terminals: usize,
    /// `world` (the world's own certificates), `reused` (round-robin over them) or `minted`.
    pub terminal_identities: String,
    pub streams: usize,
    pub duration_s: f64,
    /// Service and reference alternated this many times.
    pub rounds: usize,
    /// Seconds of load sent and discarded before each target's first measured window.
    pub warmup_s: f64,
    pub window_s: f64,
    pub prepare_per_window: usize,
    pub mix: String,
    pub cores: usize,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub format: &'static str,
    pub started_at: String,
    pub setup: RunSetup,
    pub targets: Vec<TargetReport>,
    /// The service's throughput as a fraction of the reference's (with `--reference`).
    pub reference_ratio: Option<f64>,
    pub notes: Vec<String>,
}

impl Report {
    /// Measured seconds that were the harness's doing, over all targets.
    pub fn harness_faults(&self) -> Vec<&str> {
        self.targets
            .iter()
            .flat_map(|t| t.harness_faults.iter().map(String::as_str))
            .collect()
    }

    /// Unexpected errors over all targets.
    pub fn unexpected_errors(&self) -> u64 {
        self.targets.iter().map(|t| t.unexpected_errors).sum()
    }

    /// The report as text.
    pub fn text(&self) -> String {
        let s = &self.setup;
        let mut out = String::new();
        let load = match (s.concurrency, s.rate) {
            (Some(c), _) => format!("closed loop, {c} concurrent"),
            (None, Some(r)) => format!("open loop, {r} req/s scheduled"),
            _ => s.mode.clone(),
        };
        let _ = writeln!(
            out,
            "loadgen: {load}; {} terminals ({}), {} streams each; {:.0} s in {} round(s), windows of at most {:.0} s{}; mix {}; {} cores",
            s.terminals,
            s.terminal_identities,
            s.streams,
            s.duration_s,
            s.rounds,
            s.window_s,
            if s.warmup_s > 0.0 {
                format!(", after a warm-up of {:.0} s per target (discarded)", s.warmup_s)
            } else {
                String::new()
            },
            s.mix,
            s.cores
        );
        for t in &self.targets {
            let l = &t.latency;
            let _ = writeln!(out, "\n== {} ({})", t.target, t.url);
            let _ = writeln!(
                out,
                "  prepared   {} requests in {} window(s): challenges {:.1} s, signatures {:.1} s",
                t.prepared, t.windows, t.prepare_issue_seconds, t.prepare_sign_seconds
            );
            let _ = writeln!(
                out,
                "  measured   {:.2} s: {} requests, {:.0} req/s ({:.0} confirmed/s)",
                t.measured_seconds, t.requests, t.throughput_per_s, t.confirmed_per_s
            );
            let _ = writeln!(
                out,
                "  latency    p50 {} p90 {} p95 {} p99 {} p99.9 {} max {} (mean {})",
                ms(l.p50_us),
                ms(l.p90_us),
                ms(l.p95_us),
                ms(l.p99_us),
                ms(l.p999_us),
                ms(l.max_us),
                ms(l.mean_us as u64)
            );
            let kinds: Vec<String> = t
                .requests_by_kind
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            let _ = writeln!(out, "  sent       {}", kinds.join(", "));
            for (kind, k) in &t.latency_by_kind {
                let _ = writeln!(
                    out,
                    "    {kind:<14} p50 {:>9} p95 {:>9} p99 {:>9} max {:>9}",
                    ms(k.p50_us),
                    ms(k.p95_us),
                    ms(k.p99_us),
                    ms(k.max_us)
                );
            }
            let _ = writeln!(
                out,
                "  answers    {} confirmed, {} expected refusals, {} UNEXPECTED",
                t.confirmed, t.expected_errors, t.unexpected_errors
            );
            for (code, n) in &t.errors_by_code {
                let _ = writeln!(
                    out,
                    "    {code:<40} expected {:>8}  unexpected {:>8}",
                    n.expected, n.unexpected
                );
            }
            for sample in &t.unexpected_samples {
                let _ = writeln!(out, "    e.g. {sample}");
            }
            if let Some(cpu) = &t.server_cpu {
                let _ = writeln!(
                    out,
                    "  server CPU {:.2} s ({} {}): {:.1} µs per request",
                    cpu.seconds,
                    if cpu.pids.len() > 1 { "pids" } else { "pid" },
                    cpu.pids
                        .iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                    cpu.us_per_request
                );
            }
            if let Some(c) = t.loadgen_cpu_seconds {
                let per = if t.requests > 0 {
                    c * 1e6 / t.requests as f64
                } else {
                    0.0
                };
                let _ = writeln!(out, "  loadgen CPU {c:.2} s: {per:.1} µs per request");
            }
            for why in &t.ended_early {
                let _ = writeln!(out, "  note: {why}");
            }
            for fault in &t.harness_faults {
                let _ = writeln!(out, "  HARNESS FAULT: {fault}");
            }
        }
        if let Some(r) = self.reference_ratio {
            let _ = writeln!(
                out,
                "\nservice / reference throughput: {r:.3} (target ≥ 0.85, docs/performance.md)"
            );
        }
        for n in &self.notes {
            let _ = writeln!(out, "note: {n}");
        }
        out
    }
}

fn ms(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}
