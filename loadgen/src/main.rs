//! `loadgen`: drive the confirmation service with many virtual terminals and report
//! throughput and latency (docs/load-harness.md).
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use onshi_loadgen::mix::Mix;
use onshi_loadgen::output::Outputs;
use onshi_loadgen::run::{self, IdentityMode, LoadSpec, RunOptions, ServiceSource};

#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    version,
    about = "Load generator for onshi's confirmation service: many virtual terminals over mutual TLS, prepared PIN-mode confirmations, HDR latency, and a bare reference server to compare with",
    long_about = None,
    after_help = "Logging: RUST_LOG filters the log lines on stderr (default `warn`; e.g. \
                  RUST_LOG=info or RUST_LOG=onshi_loadgen=debug); colours only on a terminal. \
                  The report itself goes to stdout."
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Prepare challenges and card signatures, then send only the prepared requests and report.
    /// Exits 0 when every answer was the expected one, 1 on unexpected answers, 2 when the run
    /// could not be carried out (bad options, an output file that cannot be written), 3 when a
    /// measured second was the harness's doing (its driver ran out of prepared requests while
    /// the clock ran). The text report is printed whenever the load ran.
    Run(Box<RunArgs>),
    /// Serve the reference: only the card-signature check, with the TLS configuration of a
    /// service.toml. Prints "loadgen reference-server: listening on ADDR" once ready.
    ReferenceServer {
        /// A service configuration (a world's service.toml) for the TLS files.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Address to listen on; port 0 picks a free port.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
        listen: SocketAddr,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum CertMode {
    /// Mint client certificates from the world's network CA and register the terminals in
    /// the store.
    Mint,
    /// Reuse the world's in-operation terminal certificates round-robin.
    Reuse,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The world directory (`testbed build --out DIR`), absolute or relative to the current
    /// directory.
    #[arg(long, value_name = "DIR")]
    world: PathBuf,
    /// A running service to drive, e.g. https://127.0.0.1:50443 (https: it accepts only
    /// mutual TLS; it must use the world's network CA, issuing CA and store). Give either this
    /// or --start-service. Give it once per instance to drive several instances sharing one
    /// store (PostgreSQL): virtual terminal i connects to the i-th URL, round-robin.
    #[arg(long, value_name = "URL")]
    service: Vec<String>,
    /// Start confirm-service on a copy of the world's store, with a long challenge lifetime,
    /// on a free port; stopped at the end.
    #[arg(long, conflicts_with = "service")]
    start_service: bool,
    /// The confirm-service binary for --start-service (default: beside loadgen).
    #[arg(long, value_name = "PATH", requires = "start_service")]
    service_bin: Option<PathBuf>,
    /// The pid of the --service process, for its CPU time per request (/proc); once per
    /// instance with several --service (their CPU times are added).
    #[arg(long, value_name = "PID", conflicts_with = "start_service")]
    service_pid: Vec<u32>,
    /// Virtual terminals: one TLS connection each, with its own client certificate.
    #[arg(long, value_name = "N", default_value_t = 16)]
    terminals: usize,
    /// Where certificates come from when the world has fewer in-operation terminals than
    /// --terminals.
    #[arg(long, value_enum, default_value = "mint")]
    terminal_certs: CertMode,
    /// HTTP/2 streams per connection: closed-loop concurrency is terminals × streams unless
    /// --concurrency is given; also the parallel challenge requests per connection while
    /// preparing.
    #[arg(long, value_name = "S", default_value_t = 4)]
    streams: usize,
    /// Seconds of measured load per target.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    duration: f64,
    /// Prepare and measure in windows of this many seconds, so prepared challenges never
    /// expire (default: the whole run with --start-service, 20 s against --service).
    #[arg(long, value_name = "SECS")]
    window: Option<f64>,
    /// Closed loop: requests in flight at all times.
    #[arg(long, value_name = "C", conflicts_with = "rate")]
    concurrency: Option<usize>,
    /// Open loop: requests per second on a fixed schedule; latency is measured from each
    /// request's intended send time.
    #[arg(long, value_name = "R")]
    rate: Option<f64>,
    /// Open loop: most requests outstanding; waiting for a slot counts as latency.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    max_in_flight: usize,
    /// Request kinds and weights: pin, revoked, expired, unregistered, bad-signature, replay
    /// (ConfirmByCard), cardless, bad-numbers (ConfirmByNumbers), batch (SubmitBatch).
    #[arg(long, default_value = "pin=95,revoked=2,bad-signature=2,replay=1")]
    mix: Mix,
    /// Queries in one `batch` request (one SubmitBatch counts as one request).
    #[arg(long, value_name = "N", default_value_t = 10)]
    batch_size: usize,
    /// Requests to prepare per window (default: rate × window for an open loop; for a closed
    /// loop 2000 per second of the first window, at most 10000, then the rate seen × the next
    /// window + 15 %). When they run out the measured clock stops at that instant, the window
    /// ends and the next one is prepared off the clock; only complete measured seconds make the
    /// per-second series.
    #[arg(long, value_name = "N")]
    prepare: Option<usize>,
    /// Challenge lifetime of the service started with --start-service (1-3600).
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    challenge_ttl: u32,
    /// Also drive a bare reference server with the same load and report the ratio.
    #[arg(long)]
    reference: bool,
    /// With --start-service: start it without its protections (no per-terminal rate limit, no
    /// look-up quota, no per-RPC log line, no metrics), as runs before issue 21 did. By
    /// default the started service runs with all of them on, its limits lifted only as far as
    /// the planned load needs (docs/load-harness.md, "The started service").
    #[arg(long)]
    bare_service: bool,
    /// Alternate service and reference this many times (each round measures
    /// duration / rounds on each), so drifting load on a shared machine hits both alike.
    #[arg(long, value_name = "K", default_value_t = 1)]
    rounds: usize,
    /// Before each target's first measured window, send this many seconds of the same load
    /// (its own prepared requests), then discard what it measured: caches, connections and
    /// the allocator are warm when the clock starts.
    #[arg(long, value_name = "SECS", default_value_t = 0.0)]
    warmup: f64,
    /// Deadline of every RPC loadgen makes (IssueChallenge while preparing, the measured
    /// requests): sent to the server as grpc-timeout, and a request not answered by then fails
    /// with DEADLINE_EXCEEDED and counts as unexpected.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    rpc_timeout: f64,
    /// Write the report as JSON. Every output path is checked before the load starts.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write a plot (SVG): latency by percentile, requests and latency per measured second.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// Write each target's latency histogram as an HdrHistogram percentile distribution in
    /// milliseconds, PREFIX-service.hgrm and (with --reference) PREFIX-reference.hgrm, for
    /// HdrHistogram's plotters.
    #[arg(long, value_name = "PREFIX")]
    hgrm: Option<PathBuf>,
    /// No progress lines.
    #[arg(long)]
    quiet: bool,
}

fn seconds(what: &str, s: f64) -> Result<Duration, String> {
    if s.is_finite() && s > 0.0 && s <= 86_400.0 {
        Ok(Duration::from_secs_f64(s))
    } else {
        Err(format!("{what} must be a positive number of seconds"))
    }
}

fn options(a: RunArgs) -> Result<RunOptions, String> {
    Ok(RunOptions {
        world: a.world,
        service: match (a.service.is_empty(), a.start_service) {
            (false, _) => ServiceSource::Url(a.service),
            (true, true) => ServiceSource::Start {
                binary: a.service_bin,
            },
            (true, false) => {
                return Err(
                    "which service? Give --service https://HOST:PORT for a running one (on the world's store), or --start-service to start one on a copy of the world's store"
                        .into(),
                )
            }
        },
        service_pid: a.service_pid,
        terminals: a.terminals,
        identities: match a.terminal_certs {
            CertMode::Mint => IdentityMode::Mint,
            CertMode::Reuse => IdentityMode::Reuse,
        },
        streams: a.streams,
        duration: seconds("--duration", a.duration)?,
        window: a.window.map(|w| seconds("--window", w)).transpose()?,
        load: match a.rate {
            Some(rate) => LoadSpec::Open {
                rate,
                max_in_flight: a.max_in_flight,
            },
            None => LoadSpec::Closed {
                concurrency: a.concurrency,
            },
        },
        mix: a.mix,
        batch_size: a.batch_size,
        prepare: a.prepare,
        challenge_ttl_seconds: a.challenge_ttl,
        reference: a.reference,
        bare_service: a.bare_service,
        rounds: a.rounds,
        warmup: if a.warmup == 0.0 {
            std::time::Duration::ZERO
        } else if a.warmup <= 600.0 {
            seconds("--warmup", a.warmup)?
        } else {
            return Err("--warmup must be 0 to 600 seconds".into());
        },
        reference_bin: None,
        json: a.json,
        plot: a.plot,
        hgrm: a.hgrm,
        rpc_timeout: seconds("--rpc-timeout", a.rpc_timeout)?,
        quiet: a.quiet,
    })
}

/// Log lines on stderr, filtered by `RUST_LOG` (default `warn`).
fn init_logging() {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Cmd::Run(args) => {
            let opts = match options(*args) {
                Ok(o) => o,
                Err(e) => {
                    eprintln!("loadgen: {e}");
                    return ExitCode::from(2);
                }
            };
            // Checked before any load is applied, written after the report is printed.
            let outputs = match Outputs::open(&opts) {
                Ok(o) => o,
                Err(e) => {
                    eprintln!("loadgen: {e}");
                    return ExitCode::from(2);
                }
            };
            let report = match run::run(&opts) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("loadgen: {e}");
                    return ExitCode::from(2);
                }
            };
            print!("{}", report.text());
            let _ = std::io::Write::flush(&mut std::io::stdout());
            if let Err(e) = outputs.write(&report) {
                eprintln!("loadgen: {e}");
                return ExitCode::from(2);
            }
            let faults = report.harness_faults();
            if !faults.is_empty() {
                for fault in faults {
                    eprintln!("loadgen: HARNESS FAULT: {fault}");
                }
                eprintln!(
                    "loadgen: these figures measure the load generator, not the server: raise --prepare, or shorten --window"
                );
                return ExitCode::from(3);
            }
            if report.unexpected_errors() > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Cmd::ReferenceServer { config, listen } => reference_server(config, listen),
    }
}

fn reference_server(config: PathBuf, listen: SocketAddr) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("loadgen reference-server: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("loadgen reference-server: cannot listen on {listen}: {e}");
                return ExitCode::from(2);
            }
        };
        let local = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let shutdown = async {
            #[cfg(unix)]
            {
                if let Ok(mut term) =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {},
                        _ = term.recv() => {},
                    }
                    return;
                }
            }
            let _ = tokio::signal::ctrl_c().await;
        };
        let served = onshi_loadgen::reference::serve(&config, listener, shutdown, move || {
            use std::io::Write;
            println!("{}{local}", onshi_loadgen::reference::READY_PREFIX);
            let _ = std::io::stdout().flush();
        })
        .await;
        match served {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("loadgen reference-server: {e}");
                ExitCode::from(1)
            }
        }
    })
}
