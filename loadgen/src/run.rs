//! One `loadgen run`: set up terminals (and the service, with `--start-service`), then for
//! each target prepare and measure window after window, and build the report.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::drive::{self, Load, Tally, TerminalConn};
use crate::mix::{Mix, Target};
use crate::prepare::{self, CardPools};
use crate::process::{self, ServerProcess};
use crate::reference;
use crate::report::{Report, RunSetup, TargetReport};
use crate::terminals;
use crate::world::{TerminalIdentity, World};
use crate::LoadgenError;

/// Where the service under test is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceSource {
    /// Already running at these URLs (`https://127.0.0.1:50443`): one, or several instances
    /// sharing a store, over which the virtual terminals are spread round-robin.
    Url(Vec<String>),
    /// Started by the load generator from a copy of the world's configuration and store.
    Start { binary: Option<PathBuf> },
}

/// How virtual terminals get client certificates when the world has fewer than asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityMode {
    /// Mint certificates from the world's network CA and register the terminals.
    Mint,
    /// Reuse the world's in-operation terminals round-robin (several connections per
    /// terminal identity).
    Reuse,
}

/// The load shape of the measured phase.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LoadSpec {
    /// `concurrency` requests in flight (default terminals × streams).
    Closed { concurrency: Option<usize> },
    /// A fixed schedule of `rate` requests a second.
    Open { rate: f64, max_in_flight: usize },
}

/// Everything `loadgen run` takes.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub world: PathBuf,
    pub service: ServiceSource,
    /// The pids of already-running local service instances, for their CPU time.
    pub service_pid: Vec<u32>,
    pub terminals: usize,
    pub identities: IdentityMode,
    pub streams: usize,
    pub duration: Duration,
    pub window: Option<Duration>,
    pub load: LoadSpec,
    pub mix: Mix,
    /// Queries in one `batch` request (one `SubmitBatch`).
    pub batch_size: usize,
    /// Requests prepared per window (over all terminals).
    pub prepare: Option<usize>,
    /// Challenge lifetime of a started service.
    pub challenge_ttl_seconds: u32,
    /// With `--reference`: alternate service and reference this many times, each getting
    /// duration / rounds per round.
    pub rounds: usize,
    /// Load sent and discarded before each target's first measured window.
    pub warmup: Duration,
    pub reference: bool,
    /// A started service runs without its protections (see [`Protections`]).
    pub bare_service: bool,
    /// The `loadgen` binary that serves the reference (default: this executable).
    pub reference_bin: Option<PathBuf>,
    pub json: Option<PathBuf>,
    pub plot: Option<PathBuf>,
    /// Prefix of the `.hgrm` percentile distributions, one per target.
    pub hgrm: Option<PathBuf>,
    /// Deadline of every RPC.
    pub rpc_timeout: Duration,
    /// No progress lines.
    pub quiet: bool,
}

/// The confirmations a second a closed loop is assumed to reach at most, for the limits of a
/// started service: about twice the bare reference's best on the 2-core development machine
/// (docs/performance.md), so the limits never throttle a closed loop there.
pub const CLOSED_LOOP_CEILING_PER_S: f64 = 25_000.0;
/// The headroom of the started service's limits over the planned load.
const LIMIT_HEADROOM: f64 = 2.0;

/// The protections a started service keeps on (issue 21: measure the defended service):
/// its per-terminal rate limit and per-institution look-up quota, lifted only as far as the
/// planned load needs, its per-RPC log line (`RUST_LOG=info`, into the run's folder) and
/// its metrics (a Prometheus listener on loopback, so every counter and histogram is kept).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Protections {
    /// `[rate_limit] per_second` for each terminal.
    pub per_terminal_per_s: f64,
    /// `[rate_limit] burst`.
    pub burst: u32,
    /// `[quotas] lookups_per_day` for each institution.
    pub lookups_per_day: u32,
}

impl RunOptions {
    /// The protections a service started for these options gets; `None` with
    /// `--bare-service`. The planned rate is the open loop's, or [`CLOSED_LOOP_CEILING_PER_S`];
    /// every confirmation costs two RPCs (the challenge and the confirmation); each batch
    /// request counts as `batch_size` look-ups; all with a headroom of two, and all the load on
    /// one institution's terminals in the worst case.
    pub fn protections(&self) -> Option<Protections> {
        if self.bare_service {
            return None;
        }
        let per_s = match self.load {
            LoadSpec::Open { rate, .. } => rate,
            LoadSpec::Closed { .. } => CLOSED_LOOP_CEILING_PER_S,
        };
        let terminals = self.terminals.max(1) as f64;
        let per_terminal = (per_s * 2.0 * LIMIT_HEADROOM / terminals).ceil().max(50.0);
        // The whole run (every round, preparation included) within one 24-hour quota window.
        let seconds = self.duration.as_secs_f64() + 120.0;
        let lookups = per_s * seconds * self.batch_size.max(1) as f64 * LIMIT_HEADROOM;
        Some(Protections {
            per_terminal_per_s: per_terminal,
            burst: u32::try_from(per_terminal as u64)
                .unwrap_or(u32::MAX)
                .max(50),
            lookups_per_day: u32::try_from(lookups.ceil() as u64).unwrap_or(u32::MAX),
        })
    }
}

/// Limits on the options, so every loop and allocation is bounded.
pub const MAX_TERMINALS: usize = terminals::MAX_MINTED;
pub const MAX_STREAMS: usize = 1_000;
pub const MAX_CONCURRENCY: usize = 100_000;
pub const MAX_PREPARE: usize = 10_000_000;
pub const MAX_DURATION: Duration = Duration::from_secs(3600);
pub const MAX_RATE: f64 = 1_000_000.0;
pub const MAX_ROUNDS: usize = 100;
/// Requests prepared per second of the first window (at most 5 s of it) in a closed loop
/// when `--prepare` is not given; later windows are sized from the throughput seen.
pub const DEFAULT_PREPARE_PER_SECOND: usize = 2_000;
/// Bounds of `--rpc-timeout`.
pub const MIN_RPC_TIMEOUT: Duration = Duration::from_millis(10);
pub const MAX_RPC_TIMEOUT: Duration = Duration::from_secs(600);

/// Checks a `--service` URL: the service speaks only gRPC over mutual TLS.
pub fn check_service_url(url: &str) -> Result<(), LoadgenError> {
    let example = "e.g. --service https://127.0.0.1:50443";
    let uri: tonic::transport::Uri = url.parse().map_err(|e| {
        LoadgenError::Usage(format!(
            "--service {url:?} is not a URL ({e}): give the service's address, {example}"
        ))
    })?;
    match (uri.scheme_str(), uri.authority()) {
        (Some("https"), Some(_)) => Ok(()),
        (Some("http"), Some(authority)) => Err(LoadgenError::Usage(format!(
            "--service {url}: the service accepts only mutual TLS (each virtual terminal presents its client certificate), so its URL starts with https://, e.g. https://{authority}"
        ))),
        _ => Err(LoadgenError::Usage(format!(
            "--service {url:?}: give the service's address as https://HOST:PORT, {example}"
        ))),
    }
}

/// Fails if a card the `unregistered` kind would present is registered for insurance use in
/// the store at `store` (someone registered it since the world was built): the service would
/// confirm it, and the run would report unexpected answers instead of measuring.
pub fn check_still_unregistered(
    cards: &[crate::world::PoolCard],
    store: &str,
) -> Result<(), LoadgenError> {
    use onshi_confirm_service::store::CardKey;
    let db = onshi_confirm_service::store::open(store)
        .map_err(|e| LoadgenError::Store(format!("{store}: {e}")))?;
    let err =
        |e: onshi_confirm_service::store::StoreError| LoadgenError::Store(format!("{store}: {e}"));
    let mut registered = Vec::new();
    for card in cards {
        let key = CardKey::from_der(&card.certificate).map_err(err)?;
        let Some(person) = db.person_for_card(&key).map_err(err)? else {
            continue;
        };
        if db
            .person(&person)
            .map_err(err)?
            .is_some_and(|p| p.registered_for_insurance)
        {
            registered.push(card.name.clone());
        }
    }
    if registered.is_empty() {
        Ok(())
    } else {
        Err(LoadgenError::World(format!(
            "the `unregistered` request kind needs cards whose holder is not registered for insurance use, but {} {} registered in {store} since the world was built: rebuild the world (`testbed build`) or drop `unregistered` from --mix",
            registered.join(", "),
            if registered.len() == 1 { "is" } else { "are" }
        )))
    }
}

impl RunOptions {
    fn validate(&self) -> Result<(), LoadgenError> {
        let bad = |m: String| Err(LoadgenError::Usage(m));
        if self.terminals == 0 || self.terminals > MAX_TERMINALS {
            return bad(format!("--terminals must be 1..={MAX_TERMINALS}"));
        }
        let max_batch = onshi_confirm_service::service::MAX_BATCH;
        if self.batch_size == 0 || self.batch_size > max_batch {
            return bad(format!("--batch-size must be 1..={max_batch}"));
        }
        if self.reference && !self.mix.card_only() {
            let kinds: Vec<&str> = self
                .mix
                .kinds()
                .filter(|k| !k.is_card())
                .map(|k| k.name())
                .collect();
            return bad(format!(
                "--reference compares ConfirmByCard only (the reference server implements no other RPC), but the mix has {}: drop --reference or those kinds",
                kinds.join(", ")
            ));
        }
        if self.streams == 0 || self.streams > MAX_STREAMS {
            return bad(format!("--streams must be 1..={MAX_STREAMS}"));
        }
        if self.duration < Duration::from_millis(100) || self.duration > MAX_DURATION {
            return bad("--duration must be 0.1 to 3600 seconds".into());
        }
        if let Some(w) = self.window {
            if w < Duration::from_millis(100) {
                return bad("--window must be at least 0.1 s".into());
            }
        }
        match self.load {
            LoadSpec::Closed {
                concurrency: Some(c),
            } if c == 0 || c > MAX_CONCURRENCY => {
                return bad(format!("--concurrency must be 1..={MAX_CONCURRENCY}"))
            }
            LoadSpec::Open {
                rate,
                max_in_flight,
            } => {
                if !(rate.is_finite() && rate > 0.0 && rate <= MAX_RATE) {
                    return bad(format!("--rate must be above 0 and at most {MAX_RATE}"));
                }
                if max_in_flight == 0 || max_in_flight > MAX_CONCURRENCY {
                    return bad(format!("--max-in-flight must be 1..={MAX_CONCURRENCY}"));
                }
            }
            _ => {}
        }
        if let Some(p) = self.prepare {
            if p == 0 || p > MAX_PREPARE {
                return bad(format!("--prepare must be 1..={MAX_PREPARE}"));
            }
        }
        if self.rounds == 0 || self.rounds > MAX_ROUNDS {
            return bad(format!("--rounds must be 1..={MAX_ROUNDS}"));
        }
        if self.duration / u32::try_from(self.rounds).unwrap_or(1) < Duration::from_millis(100) {
            return bad("--duration / --rounds must be at least 0.1 s".into());
        }
        if let ServiceSource::Url(urls) = &self.service {
            for url in urls {
                check_service_url(url)?;
            }
            // CPU per request divides the pids' CPU by every instance's requests: a pid left
            // out would make the figure silently low.
            if !self.service_pid.is_empty() && self.service_pid.len() != urls.len() {
                return bad(format!(
                    "{} --service-pid for {} --service: give one pid per instance, or none",
                    self.service_pid.len(),
                    urls.len()
                ));
            }
        }
        if self.rpc_timeout < MIN_RPC_TIMEOUT || self.rpc_timeout > MAX_RPC_TIMEOUT {
            return bad(format!(
                "--rpc-timeout must be {} to {} seconds",
                MIN_RPC_TIMEOUT.as_secs_f64(),
                MAX_RPC_TIMEOUT.as_secs()
            ));
        }
        if self.challenge_ttl_seconds == 0 || self.challenge_ttl_seconds > 3600 {
            return bad("--challenge-ttl must be 1..=3600 seconds (the service's limit)".into());
        }
        Ok(())
    }

    fn window(&self) -> Duration {
        let default = match self.service {
            // A started service gets a long challenge lifetime: one window for the whole run.
            ServiceSource::Start { .. } => self.duration,
            // Someone else's service keeps its own lifetime (60 s by default).
            ServiceSource::Url(_) => Duration::from_secs(20),
        };
        self.window.unwrap_or(default).min(self.duration)
    }

    fn prepare_per_window(&self, window: Duration) -> usize {
        if let Some(p) = self.prepare {
            return p;
        }
        let secs = window.as_secs_f64();
        let n = match self.load {
            // The first window only: later ones are sized from the rate seen.
            LoadSpec::Closed { .. } => DEFAULT_PREPARE_PER_SECOND as f64 * secs.min(5.0),
            LoadSpec::Open { rate, .. } => rate * secs * 1.02 + self.terminals as f64,
        };
        (n.ceil() as usize).clamp(self.terminals, MAX_PREPARE)
    }
}

/// Everything set up before the first target runs: identities, the started service.
struct Setup {
    identities: Vec<TerminalIdentity>,
    identity_label: String,
    urls: Vec<String>,
    service_pids: Vec<u32>,
    service: Option<ServerProcess>,
    notes: Vec<String>,
    /// Holds the run's copy of the store and configuration; deleted on drop.
    run_dir: Option<tempfile::TempDir>,
}

/// Absolute form of the path keys of a service configuration, so a copy works elsewhere.
fn absolutize_config(
    text: &str,
    base: &Path,
    store: &Path,
    ttl: u32,
    protections: Option<Protections>,
) -> Result<String, LoadgenError> {
    let mut table: toml::Table =
        toml::from_str(text).map_err(|e| LoadgenError::World(format!("service.toml: {e}")))?;
    let abs = |v: &mut toml::Value| {
        if let Some(s) = v.as_str() {
            let p = Path::new(s);
            if p.is_relative() {
                *v = toml::Value::String(base.join(p).to_string_lossy().into_owned());
            }
        }
    };
    for (section, keys) in [
        (
            "tls",
            &["certificate", "private_key", "client_ca", "client_crl"][..],
        ),
        (
            "validation",
            &["trust_anchors", "intermediates", "crls"][..],
        ),
    ] {
        let Some(t) = table.get_mut(section).and_then(toml::Value::as_table_mut) else {
            continue;
        };
        // The section's own paths and those of its sub-tables ([validation.smartphone]: the
        // smartphone CA's trust files).
        let mut tables = vec![t];
        while let Some(t) = tables.pop() {
            for (key, v) in t.iter_mut() {
                match v {
                    toml::Value::Table(sub) => tables.push(sub),
                    toml::Value::Array(items) if keys.contains(&key.as_str()) => {
                        items.iter_mut().for_each(abs)
                    }
                    v if keys.contains(&key.as_str()) => abs(v),
                    _ => {}
                }
            }
        }
    }
    table.insert(
        "store".into(),
        toml::Value::String(store.to_string_lossy().into_owned()),
    );
    table.insert(
        "challenge_ttl_seconds".into(),
        toml::Value::Integer(i64::from(ttl)),
    );
    // A handful of virtual terminals carry the load of thousands, and a few institutions
    // all the card-less look-ups: the limits are lifted as far as the planned load needs
    // (the birth-date guard keeps its configured value: the load asks with the right birth
    // dates), or turned off for a bare service.
    let mut limit = toml::Table::new();
    let mut quota = table
        .get("quotas")
        .and_then(toml::Value::as_table)
        .cloned()
        .unwrap_or_default();
    match protections {
        Some(p) => {
            limit.insert(
                "per_second".into(),
                toml::Value::Float(p.per_terminal_per_s),
            );
            limit.insert("burst".into(), toml::Value::Integer(i64::from(p.burst)));
            quota.insert(
                "lookups_per_day".into(),
                toml::Value::Integer(i64::from(p.lookups_per_day)),
            );
        }
        None => {
            limit.insert("per_second".into(), toml::Value::Float(0.0));
            quota.insert("lookups_per_day".into(), toml::Value::Integer(0));
            quota.insert("birth_dates_per_numbers".into(), toml::Value::Integer(0));
        }
    }
    table.insert("rate_limit".into(), toml::Value::Table(limit));
    table.insert("quotas".into(), toml::Value::Table(quota));
    toml::to_string(&table).map_err(|e| LoadgenError::World(format!("service.toml copy: {e}")))
}

fn set_up(opts: &RunOptions, world: &World) -> Result<Setup, LoadgenError> {
    let mut notes = Vec::new();
    let need_mint = opts.terminals > world.terminals.len() && opts.identities == IdentityMode::Mint;
    let (mut identities, identity_label) = if opts.terminals <= world.terminals.len() {
        (
            world.terminals[..opts.terminals].to_vec(),
            "world".to_owned(),
        )
    } else if need_mint {
        let code = world
            .institution_code()
            .ok_or_else(|| LoadgenError::World("no in-operation terminal".into()))?;
        (
            terminals::mint(world, code, opts.terminals)?,
            "minted".to_owned(),
        )
    } else {
        notes.push(format!(
            "{} connections share the world's {} terminal certificates round-robin (--terminal-certs reuse): the service sees {} distinct terminals",
            opts.terminals,
            world.terminals.len(),
            world.terminals.len()
        ));
        (world.terminals.clone(), "reused".to_owned())
    };
    let world_config = world.dir.join("service.toml");
    match &opts.service {
        ServiceSource::Url(urls) => {
            let url = urls.join(", ");
            if need_mint {
                let config = onshi_confirm_service::config::Config::load(&world_config)
                    .map_err(|e| LoadgenError::World(e.to_string()))?;
                terminals::register(&config.store, &identities)?;
                notes.push(format!(
                    "minted terminals were registered in {}; the service at {url} must use that store",
                    config.store
                ));
            }
            Ok(Setup {
                identities,
                identity_label,
                urls: urls.clone(),
                service_pids: opts.service_pid.clone(),
                service: None,
                notes,
                run_dir: None,
            })
        }
        ServiceSource::Start { binary } => {
            // The run's own copy of the store, beside the world (the same file system, so
            // the audit log's fsyncs cost what they cost there), and of the configuration.
            let run_dir = tempfile::Builder::new()
                .prefix(".loadgen-run-")
                .tempdir_in(&world.dir)
                .map_err(LoadgenError::io("create a run directory in", &world.dir))?;
            let config = onshi_confirm_service::config::Config::load(&world_config)
                .map_err(|e| LoadgenError::World(e.to_string()))?;
            if onshi_confirm_service::store::is_postgres_url(&config.store) {
                return Err(LoadgenError::World(
                    "the world's store is PostgreSQL; a started service copies a SQLite store, \
                     so start the service yourself and pass --service URL"
                        .into(),
                ));
            }
            let world_store = PathBuf::from(&config.store);
            let store = run_dir.path().join("onshi.sqlite");
            std::fs::copy(&world_store, &store).map_err(LoadgenError::io("copy", &world_store))?;
            for suffix in ["-wal", "-shm"] {
                let mut from = world_store.clone().into_os_string();
                from.push(suffix);
                let from = PathBuf::from(from);
                if from.exists() {
                    let mut to = store.clone().into_os_string();
                    to.push(suffix);
                    std::fs::copy(&from, PathBuf::from(to))
                        .map_err(LoadgenError::io("copy", &from))?;
                }
            }
            if need_mint {
                terminals::register(&store.to_string_lossy(), &identities)?;
            }
            let text = std::fs::read_to_string(&world_config)
                .map_err(LoadgenError::io("read", &world_config))?;
            let protections = opts.protections();
            let copy = absolutize_config(
                &text,
                &world.dir,
                &store,
                opts.challenge_ttl_seconds,
                protections,
            )?;
            let config_path = run_dir.path().join("service.toml");
            std::fs::write(&config_path, copy).map_err(LoadgenError::io("write", &config_path))?;
            let binary = match binary {
                Some(b) => b.clone(),
                None => process::sibling_binary("confirm-service")?,
            };
            let mut command = Command::new(&binary);
            command
                .args(["serve", "--config"])
                .arg(&config_path)
                .args(["--listen", "127.0.0.1:0"])
                .env_remove("ONSHI_LOG");
            let log_path = run_dir.path().join("service.log");
            let stderr = match protections {
                Some(p) => {
                    // Every protection on: the per-RPC log line (into a file, so the run's
                    // progress lines stay readable) and the metrics recorder.
                    command
                        .env("RUST_LOG", "info")
                        .args(["--metrics-listen", "127.0.0.1:0"]);
                    notes.push(format!(
                        "the service ran with its protections on: a per-terminal rate limit of {} requests/s (burst {}), a look-up quota of {} a day per institution, the per-RPC log line (RUST_LOG=info) and its metrics (docs/load-harness.md)",
                        p.per_terminal_per_s, p.burst, p.lookups_per_day
                    ));
                    std::process::Stdio::from(
                        std::fs::File::create(&log_path)
                            .map_err(LoadgenError::io("create", &log_path))?,
                    )
                }
                None => {
                    command.env("RUST_LOG", "warn");
                    notes.push(
                        "--bare-service: the service ran without a rate limit, quota, per-RPC log line or metrics".into(),
                    );
                    std::process::Stdio::inherit()
                }
            };
            let service = ServerProcess::start(
                command,
                "confirm-service",
                "confirm-service: listening on ",
                stderr,
            )
            .map_err(|e| match (e, std::fs::read_to_string(&log_path)) {
                // Its log is in the run folder, deleted on return: say what it said.
                (LoadgenError::Process { what, reason }, Ok(log)) if !log.trim().is_empty() => {
                    LoadgenError::Process {
                        what,
                        reason: format!("{reason}; its log:\n{}", log.trim_end()),
                    }
                }
                (e, _) => e,
            })?;
            notes.push(format!(
                "the service ran on a copy of the world's store with challenge_ttl_seconds = {}",
                opts.challenge_ttl_seconds
            ));
            identities.shrink_to_fit();
            Ok(Setup {
                identities,
                identity_label,
                urls: vec![service.url()],
                service_pids: vec![service.pid],
                service: Some(service),
                notes,
                run_dir: Some(run_dir),
            })
        }
    }
}

/// One target's connections and everything measured on it so far, across rounds.
struct TargetRun<'a> {
    opts: &'a RunOptions,
    target: Target,
    /// The URLs, comma-separated, for the report.
    url: String,
    pids: Vec<u32>,
    cards: &'a CardPools,
    conns: Vec<TerminalConn>,
    load: Load,
    window: Duration,
    per_terminal: usize,
    threads: usize,
    ticks: f64,
    tally: Tally,
    issue: Duration,
    sign: Duration,
    measured: Duration,
    server_cpu: Option<f64>,
    own_cpu: Option<f64>,
    seconds: Vec<drive::Second>,
    /// Measured seconds that were the harness's doing.
    faults: Vec<String>,
    early: std::collections::BTreeMap<String, usize>,
    prepared: usize,
    windows: usize,
    /// Whether the warm-up (`--warmup`) has been sent.
    warmed: bool,
}

impl<'a> TargetRun<'a> {
    /// Opens the target's connections.
    async fn connect(
        opts: &'a RunOptions,
        target: Target,
        urls: &[String],
        pids: Vec<u32>,
        ca_pem: &[u8],
        identities: &[TerminalIdentity],
        cards: &'a CardPools,
    ) -> Result<TargetRun<'a>, LoadgenError> {
        let conns =
            drive::connect_all(urls, ca_pem, identities, opts.terminals, opts.rpc_timeout).await?;
        let window = opts.window();
        let per_terminal = opts
            .prepare_per_window(window)
            .div_ceil(conns.len().max(1))
            .max(1);
        let load = match opts.load {
            LoadSpec::Closed { concurrency } => Load::Closed {
                concurrency: concurrency.unwrap_or(opts.terminals * opts.streams),
            },
            LoadSpec::Open {
                rate,
                max_in_flight,
            } => Load::Open {
                rate,
                max_in_flight,
            },
        };
        Ok(TargetRun {
            opts,
            target,
            url: urls.join(", "),
            pids,
            cards,
            conns,
            load,
            window,
            per_terminal,
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            ticks: process::clock_ticks(),
            tally: Tally::new()?,
            issue: Duration::ZERO,
            sign: Duration::ZERO,
            measured: Duration::ZERO,
            server_cpu: Some(0.0),
            own_cpu: Some(0.0),
            seconds: Vec::new(),
            faults: Vec::new(),
            early: Default::default(),
            prepared: 0,
            windows: 0,
            warmed: false,
        })
    }

    /// Prepares and measures windows until `duration` of measured time has passed.
    async fn drive(
        &mut self,
        duration: Duration,
        abort: &Arc<AtomicBool>,
    ) -> Result<(), LoadgenError> {
        let opts = self.opts;
        if !self.warmed && !opts.warmup.is_zero() {
            self.warmed = true;
            self.warm_up(abort).await?;
        }
        let me = std::process::id();
        let mut left = duration;
        // Bounded: each window takes at least 0.1 s off `left`.
        while left > Duration::from_millis(50) && !abort.load(Ordering::Relaxed) {
            let this = self.window.min(left);
            if !opts.quiet {
                eprintln!(
                    "loadgen: {}: preparing {} requests on {} connections",
                    self.target.name(),
                    self.per_terminal * self.conns.len(),
                    self.conns.len()
                );
            }
            let pool = match prepare::prepare(
                &self.conns,
                self.cards,
                &opts.mix,
                self.per_terminal,
                opts.streams,
                self.threads,
                abort,
            )
            .await
            {
                // Interrupted while preparing: what was measured so far is reported.
                Err(LoadgenError::Interrupted) => break,
                other => other?,
            };
            self.issue += pool.issue_time;
            self.sign += pool.sign_time;
            self.prepared += pool.len();
            if let Some(expiry) = pool.earliest_expiry {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs_f64())
                    .unwrap_or(0.0);
                if (expiry as f64) < now + this.as_secs_f64() + 2.0 {
                    return Err(LoadgenError::Usage(format!(
                        "the prepared challenges expire {:.0} s from now, before the {:.0} s window ends: use a shorter --window, fewer --prepare, or --start-service (long challenge lifetime)",
                        expiry as f64 - now,
                        this.as_secs_f64()
                    )));
                }
            }
            let ticks = self.ticks;
            let cpu_before = process::cpu_seconds_of(&self.pids, ticks);
            let own_before = process::cpu_seconds(me, ticks).ok();
            let m = drive::measure(
                &self.conns,
                pool,
                self.target,
                self.load,
                this,
                Arc::clone(abort),
                opts.quiet,
            )
            .await?;
            let cpu_after = process::cpu_seconds_of(&self.pids, ticks);
            self.server_cpu = match (self.server_cpu, cpu_before, cpu_after) {
                (Some(acc), Ok(Some(b)), Ok(Some(a))) => Some(acc + (a - b)),
                _ => None,
            };
            self.own_cpu = match (
                self.own_cpu,
                own_before,
                process::cpu_seconds(me, ticks).ok(),
            ) {
                (Some(acc), Some(b), Some(a)) => Some(acc + (a - b)),
                _ => None,
            };
            self.tally.merge(&m.tally);
            self.measured += m.elapsed;
            if let Some(fault) = m.fault {
                self.faults.push(format!(
                    "{}, window {}: {fault}",
                    self.target.name(),
                    self.windows + 1
                ));
            }
            self.seconds.extend(m.seconds);
            self.windows += 1;
            left = left.saturating_sub(m.elapsed.max(Duration::from_millis(100)));
            let observed = m.tally.requests as f64 / m.elapsed.as_secs_f64().max(1e-3);
            if let Some(why) = m.ended_early {
                *self.early.entry(why).or_default() += 1;
            }
            // Without --prepare, a closed loop sizes the next window from the rate just seen
            // (15 % spare), so it neither wastes signatures nor pauses often.
            if opts.prepare.is_none() && matches!(opts.load, LoadSpec::Closed { .. }) {
                let n = self.conns.len().max(1);
                // The rest of this round, or (when it is over) a round like this one.
                let upcoming = if left > Duration::from_millis(50) {
                    left
                } else {
                    duration
                };
                let next = observed * self.window.min(upcoming).as_secs_f64() * 1.15;
                let cap = (MAX_PREPARE / n).max(1);
                self.per_terminal = ((next / n as f64).ceil() as usize).clamp(1, cap);
            }
        }
        Ok(())
    }

    /// `--warmup`: the same load for `opts.warmup`, from requests prepared for it alone; what
    /// it measured is discarded (unexpected answers in it are said on stderr).
    async fn warm_up(&mut self, abort: &Arc<AtomicBool>) -> Result<(), LoadgenError> {
        let opts = self.opts;
        let secs = opts.warmup.as_secs_f64();
        let total = match opts.load {
            LoadSpec::Closed { .. } => DEFAULT_PREPARE_PER_SECOND as f64 * secs,
            LoadSpec::Open { rate, .. } => rate * secs * 1.02,
        };
        let per_terminal = ((total / self.conns.len().max(1) as f64).ceil() as usize)
            .clamp(1, (MAX_PREPARE / self.conns.len().max(1)).max(1));
        if !opts.quiet {
            eprintln!(
                "loadgen: {}: warm-up of {secs} s (not measured): preparing {} requests",
                self.target.name(),
                per_terminal * self.conns.len()
            );
        }
        let pool = match prepare::prepare(
            &self.conns,
            self.cards,
            &opts.mix,
            per_terminal,
            opts.streams,
            self.threads,
            abort,
        )
        .await
        {
            Err(LoadgenError::Interrupted) => return Ok(()),
            other => other?,
        };
        let m = drive::measure(
            &self.conns,
            pool,
            self.target,
            self.load,
            opts.warmup,
            Arc::clone(abort),
            true,
        )
        .await?;
        if !opts.quiet {
            eprintln!(
                "loadgen: {}: warm-up sent {} requests in {:.1} s ({} unexpected answers), discarded",
                self.target.name(),
                m.tally.requests,
                m.elapsed.as_secs_f64(),
                m.tally.unexpected_total()
            );
        }
        Ok(())
    }

    fn report(self) -> TargetReport {
        let windows = self.windows;
        TargetReport::new(
            self.target.name(),
            &self.url,
            windows,
            self.prepared,
            self.issue,
            self.sign,
            self.measured,
            &self.tally,
            self.seconds,
            self.faults,
            self.early
                .into_iter()
                .map(|(why, n)| format!("{n} of {windows} window(s) ended early: {why}"))
                .collect(),
            Some(self.pids.clone())
                .filter(|p| !p.is_empty())
                .zip(self.server_cpu),
            self.own_cpu,
        )
    }
}

/// Runs the load and returns the report (the caller writes the files, see `output`).
pub fn run(opts: &RunOptions) -> Result<Report, LoadgenError> {
    opts.validate()?;
    let started_at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    // Absolute from here on: the run's copy of the configuration and the servers it starts
    // must not depend on the directory loadgen was started in.
    let world_dir = std::fs::canonicalize(&opts.world).map_err(|e| {
        LoadgenError::World(format!(
            "--world {}: {e} (give the folder `testbed build --out DIR` made)",
            opts.world.display()
        ))
    })?;
    let world = World::load(&world_dir)?;
    let cards = CardPools::new(&world, &opts.mix, opts.batch_size)?;
    if opts
        .mix
        .kinds()
        .any(|k| k == crate::mix::RequestKind::Unregistered)
    {
        let config = onshi_confirm_service::config::Config::load(&world.dir.join("service.toml"))
            .map_err(|e| LoadgenError::World(e.to_string()))?;
        check_still_unregistered(cards.unregistered(), &config.store)?;
    }
    let mut setup = set_up(opts, &world)?;
    if opts.mix.needs_numbers() {
        setup.notes.push(format!(
            "card-less kinds use {} queries (the qualification records of the store's first {} persons) round-robin",
            cards.numbers_len(),
            prepare::NUMBERS_PERSONS
        ));
    }
    if opts
        .mix
        .kinds()
        .any(|k| k == crate::mix::RequestKind::Batch)
    {
        setup.notes.push(format!(
            "one batch request = one SubmitBatch of {} queries; its latency is the submission's, the queries are answered in the background",
            opts.batch_size
        ));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| LoadgenError::Runtime(e.to_string()))?;
    let abort = Arc::new(AtomicBool::new(false));
    let mut targets = Vec::new();
    let result: Result<(), LoadgenError> = runtime.block_on(async {
        let flag = Arc::clone(&abort);
        // SIGINT or SIGTERM: stop preparing at once, or finish the measured window in flight;
        // then stop the servers and report what was measured.
        tokio::spawn(async move {
            let term = async {
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(_) => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                _ = term => {},
            }
            eprintln!("loadgen: interrupted; stopping the preparation or the window in flight");
            flag.store(true, Ordering::Relaxed);
        });
        let t0 = Instant::now();
        let mut service = TargetRun::connect(
            opts,
            Target::Service,
            &setup.urls,
            setup.service_pids.clone(),
            &world.network_ca_pem,
            &setup.identities,
            &cards,
        )
        .await?;
        let reference_server = if opts.reference {
            let binary = match &opts.reference_bin {
                Some(b) => b.clone(),
                None => std::env::current_exe().map_err(|e| LoadgenError::Process {
                    what: "reference".into(),
                    reason: e.to_string(),
                })?,
            };
            let mut command = Command::new(binary);
            command
                .arg("reference-server")
                .arg("--config")
                .arg(world.dir.join("service.toml"))
                .args(["--listen", "127.0.0.1:0"]);
            Some(ServerProcess::start(
                command,
                "reference server",
                reference::READY_PREFIX,
                std::process::Stdio::inherit(),
            )?)
        } else {
            None
        };
        let mut reference = match &reference_server {
            Some(server) => Some(
                TargetRun::connect(
                    opts,
                    Target::Reference,
                    &[server.url()],
                    vec![server.pid],
                    &world.network_ca_pem,
                    &setup.identities,
                    &cards,
                )
                .await?,
            ),
            None => None,
        };
        // Alternate the targets round by round, so a change in the machine's load hits both.
        let rounds = opts.rounds.max(1);
        let slice = opts.duration / u32::try_from(rounds).unwrap_or(1);
        for round in 1..=rounds {
            if abort.load(Ordering::Relaxed) {
                break;
            }
            if !opts.quiet && rounds > 1 {
                eprintln!("loadgen: round {round} of {rounds}");
            }
            service.drive(slice, &abort).await?;
            if let Some(r) = reference.as_mut() {
                if !abort.load(Ordering::Relaxed) {
                    r.drive(slice, &abort).await?;
                }
            }
        }
        targets.push(service.report());
        if let Some(r) = reference {
            targets.push(r.report());
        }
        drop(reference_server);
        if !opts.quiet {
            eprintln!("loadgen: done in {:.1} s", t0.elapsed().as_secs_f64());
        }
        Ok(())
    });
    // Stop the started service before reporting (also when the run failed).
    drop(setup.service);
    if let Some(dir) = &setup.run_dir {
        // Evidence the per-RPC log line was on: the lines the service wrote.
        if let Ok(log) = std::fs::read_to_string(dir.path().join("service.log")) {
            let lines = log.lines().filter(|l| l.contains("rpc=")).count();
            setup.notes.push(format!(
                "the service wrote {lines} per-RPC log lines during the run"
            ));
        }
    }
    runtime.shutdown_timeout(Duration::from_secs(2));
    result?;

    let reference_ratio = match (targets.first(), targets.get(1)) {
        (Some(s), Some(r)) if r.throughput_per_s > 0.0 => {
            Some(s.throughput_per_s / r.throughput_per_s)
        }
        _ => None,
    };
    let window = opts.window();
    let mut notes = setup.notes;
    if reference_ratio.is_some() && matches!(opts.load, LoadSpec::Open { .. }) {
        notes.push(
            "in an open loop both targets are offered the same rate, so the ratio compares achieved rates, not capacity: use a closed loop for the capacity ratio".into(),
        );
    }
    let limited: u64 = targets
        .iter()
        .filter_map(|t| t.errors_by_code.get("RESULT_CODE_RATE_LIMITED"))
        .map(|n| n.expected + n.unexpected)
        .sum();
    if limited > 0 {
        notes.push(format!(
            "{limited} requests were refused RESULT_CODE_RATE_LIMITED: the service's per-terminal limit throttled the load, so the figures measure the limit; raise [rate_limit] per_second and burst in its service.toml, or set per_second = 0 (docs/load-harness.md)"
        ));
    }
    notes.push(
        "CPU per request counts every completed request, confirmations and expected refusals alike, over the measured phases only".into(),
    );
    let report = Report {
        format: crate::report::FORMAT,
        started_at,
        setup: RunSetup {
            world: world.dir.display().to_string(),
            mode: match opts.load {
                LoadSpec::Closed { .. } => "closed".into(),
                LoadSpec::Open { .. } => "open".into(),
            },
            concurrency: match opts.load {
                LoadSpec::Closed { concurrency } => {
                    Some(concurrency.unwrap_or(opts.terminals * opts.streams))
                }
                LoadSpec::Open { .. } => None,
            },
            rate: match opts.load {
                LoadSpec::Open { rate, .. } => Some(rate),
                LoadSpec::Closed { .. } => None,
            },
            terminals: opts.terminals,
            terminal_identities: setup.identity_label,
            streams: opts.streams,
            duration_s: opts.duration.as_secs_f64(),
            rounds: opts.rounds,
            warmup_s: opts.warmup.as_secs_f64(),
            window_s: window.as_secs_f64(),
            prepare_per_window: opts.prepare_per_window(window),
            mix: opts.mix.to_string(),
            cores: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
        },
        targets,
        reference_ratio,
        notes,
    };
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One pid per instance or none: CPU per request would otherwise count one instance's CPU
    /// against both instances' requests.
    #[test]
    fn service_pids_match_the_instances() {
        let urls = vec![
            "https://127.0.0.1:50443".to_owned(),
            "https://127.0.0.1:50444".to_owned(),
        ];
        let with = |pids: Vec<u32>| RunOptions {
            service: ServiceSource::Url(urls.clone()),
            service_pid: pids,
            ..options(LoadSpec::Closed { concurrency: None }, 4, false)
        };
        assert!(with(vec![]).validate().is_ok());
        assert!(with(vec![10, 11]).validate().is_ok());
        let e = with(vec![10]).validate().unwrap_err().to_string();
        assert!(e.contains("one pid per instance"), "{e}");
    }

    #[test]
    fn service_urls_explain_themselves() {
        assert!(check_service_url("https://127.0.0.1:50443").is_ok());
        let msg = |url: &str| match check_service_url(url) {
            Ok(()) => panic!("{url} accepted"),
            Err(e) => e.to_string(),
        };
        let http = msg("http://127.0.0.1:50443");
        assert!(
            http.contains("mutual TLS") && http.contains("https://127.0.0.1:50443"),
            "{http}"
        );
        assert!(msg("127.0.0.1:50443").contains("https://HOST:PORT"));
        assert!(msg("https://").contains("--service"));
    }

    #[test]
    fn a_bare_service_copy_has_absolute_paths_the_new_ttl_and_no_rate_limit_or_quota() {
        let text = r#"listen = "127.0.0.1:50443"
store = "store/onshi.sqlite"
challenge_ttl_seconds = 60
[tls]
certificate = "service/server.pem"
private_key = "/abs/key.pem"
client_ca = "network-ca/ca.pem"
client_crl = "network-ca/crl.pem"
[validation]
trust_anchors = ["issuing-ca/ca.pem"]
crls = ["issuing-ca/crl.der"]
[validation.smartphone]
trust_anchors = ["smartphone-ca/ca.pem"]
crls = ["smartphone-ca/crl.der"]
"#;
        let out = absolutize_config(
            text,
            Path::new("/w"),
            Path::new("/run/s.sqlite"),
            3600,
            None,
        )
        .unwrap_or_default();
        let t: toml::Table = toml::from_str(&out).unwrap_or_default();
        assert_eq!(t["store"].as_str(), Some("/run/s.sqlite"));
        assert_eq!(t["challenge_ttl_seconds"].as_integer(), Some(3600));
        assert_eq!(t["rate_limit"]["per_second"].as_float(), Some(0.0));
        assert_eq!(t["quotas"]["lookups_per_day"].as_integer(), Some(0));
        assert_eq!(t["quotas"]["birth_dates_per_numbers"].as_integer(), Some(0));
        assert_eq!(
            t["tls"]["certificate"].as_str(),
            Some("/w/service/server.pem")
        );
        assert_eq!(t["tls"]["private_key"].as_str(), Some("/abs/key.pem"));
        assert_eq!(
            t["tls"]["client_crl"].as_str(),
            Some("/w/network-ca/crl.pem")
        );
        assert_eq!(
            t["validation"]["crls"][0].as_str(),
            Some("/w/issuing-ca/crl.der")
        );
        assert_eq!(
            t["validation"]["smartphone"]["trust_anchors"][0].as_str(),
            Some("/w/smartphone-ca/ca.pem")
        );
        assert_eq!(
            t["validation"]["smartphone"]["crls"][0].as_str(),
            Some("/w/smartphone-ca/crl.der")
        );
    }

    fn options(load: LoadSpec, terminals: usize, bare: bool) -> RunOptions {
        RunOptions {
            world: PathBuf::from("/w"),
            service: ServiceSource::Start { binary: None },
            service_pid: Vec::new(),
            terminals,
            identities: IdentityMode::Mint,
            streams: 4,
            duration: Duration::from_secs(30),
            window: None,
            load,
            mix: Mix::default(),
            batch_size: 10,
            prepare: None,
            challenge_ttl_seconds: 3600,
            rounds: 1,
            warmup: Duration::ZERO,
            reference: true,
            bare_service: bare,
            reference_bin: None,
            json: None,
            plot: None,
            hgrm: None,
            rpc_timeout: Duration::from_secs(10),
            quiet: true,
        }
    }

    /// The started service keeps its protections with limits the planned load stays under
    /// (issue 21: measure the defended service), and `--bare-service` turns them off.
    #[test]
    fn a_started_service_keeps_its_limits_lifted_only_as_far_as_the_load_needs() {
        let open = options(
            LoadSpec::Open {
                rate: 10_000.0,
                max_in_flight: 1_000,
            },
            16,
            false,
        );
        let p = open.protections().unwrap();
        // 10,000 confirmations/s over 16 terminals, two RPCs each, headroom 2.
        assert_eq!(p.per_terminal_per_s, 2_500.0);
        assert_eq!(p.burst, 2_500);
        // (30 s + 120 s) x 10,000/s x 10 queries a batch x 2.
        assert_eq!(p.lookups_per_day, 30_000_000);
        let closed = options(LoadSpec::Closed { concurrency: None }, 16, false)
            .protections()
            .unwrap();
        assert_eq!(closed.per_terminal_per_s, 6_250.0);
        assert!(options(LoadSpec::Closed { concurrency: None }, 16, true)
            .protections()
            .is_none());

        let text =
            "store = \"s\"\n[quotas]\nlookups_per_day = 30000\nbirth_dates_per_numbers = 3\n";
        let out = absolutize_config(text, Path::new("/w"), Path::new("/s"), 60, Some(p)).unwrap();
        let t: toml::Table = toml::from_str(&out).unwrap();
        assert_eq!(t["rate_limit"]["per_second"].as_float(), Some(2_500.0));
        assert_eq!(t["rate_limit"]["burst"].as_integer(), Some(2_500));
        assert_eq!(
            t["quotas"]["lookups_per_day"].as_integer(),
            Some(30_000_000)
        );
        // The birth-date guard keeps the world's value.
        assert_eq!(t["quotas"]["birth_dates_per_numbers"].as_integer(), Some(3));
    }
}
