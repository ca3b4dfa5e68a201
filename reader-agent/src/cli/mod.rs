//! What every command shares: loading the terminal configuration, the runtimes, the
//! shutdown signal, logging, printing an outcome, and the card options' checks.

pub mod card;
pub mod desk;
pub mod serve;
pub mod staff;

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use onshi_reader_agent::config::AgentConfig;
use onshi_reader_agent::pcsc_card::Trace;
use onshi_reader_agent::report::{render_human, Outcome};

/// Loads the terminal configuration; a bad one is a usage error (exit 2), said on stderr.
pub fn load_config(path: &Path) -> Result<AgentConfig, ExitCode> {
    AgentConfig::load(path).map_err(|e| {
        eprintln!("reader-agent: {e}");
        ExitCode::from(2)
    })
}

/// The runtime of the card flows and the kiosk: two workers (card work runs on blocking
/// threads besides). Says why when it cannot start.
pub fn two_thread_runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => Some(r),
        Err(e) => {
            eprintln!("reader-agent: cannot start the runtime: {e}");
            None
        }
    }
}

/// A runtime on the calling thread (the card's work runs on the card worker's thread). Says
/// why when it cannot start.
pub fn current_thread_runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => Some(r),
        Err(e) => {
            eprintln!("reader-agent: cannot start the runtime: {e}");
            None
        }
    }
}

/// Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

pub fn print_outcome(outcome: &Outcome, json: bool) {
    if json {
        match serde_json::to_string_pretty(outcome) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("reader-agent: {e}"),
        }
    } else {
        print!("{}", render_human(outcome));
    }
}

pub fn card_timeout_arg(seconds: f64) -> Option<Duration> {
    match Duration::try_from_secs_f64(seconds) {
        Ok(d) if !d.is_zero() && d <= Duration::from_secs(600) => Some(d),
        _ => {
            eprintln!("reader-agent: --card-timeout must be more than 0 and at most 600 seconds");
            None
        }
    }
}

pub fn open_trace(trace: Option<&str>) -> Result<Option<Trace>, ExitCode> {
    match trace {
        None => Ok(None),
        Some("-") => Ok(Some(Trace::new(Box::new(std::io::stderr())))),
        Some(path) => match std::fs::File::create(path) {
            Ok(f) => Ok(Some(Trace::new(Box::new(f)))),
            Err(e) => {
                eprintln!("reader-agent: cannot create trace file {path}: {e}");
                Err(ExitCode::from(2))
            }
        },
    }
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Log lines to stderr, filtered by `RUST_LOG` (default `warn`), as text (coloured only when
/// stderr is a terminal) or one JSON object per line.
pub fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
