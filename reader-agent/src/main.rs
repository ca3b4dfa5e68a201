//! `reader-agent`: the reception terminal's command line.
#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use onshi_proto::binding::ConsentBits;
use onshi_reader_agent::config::AgentConfig;
use onshi_reader_agent::confirm::{self, ConfirmOptions, PinSource};
use onshi_reader_agent::pcsc_card::Trace;
use onshi_reader_agent::pin_input::{StdinLines, TtyPrompt};
use onshi_reader_agent::report::{render_human, Outcome};

#[derive(Debug, Parser)]
#[command(
    name = "reader-agent",
    version,
    about = "onshi's reception terminal: reads a My Number card through PC/SC and confirms the holder's insurance eligibility"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Consent {
    Medication,
    Checkup,
    Clinical,
    Surgery,
    None,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Confirm eligibility with the card in the reader, in PIN mode. The PIN is asked on the
    /// terminal (no echo) or read from stdin with --pin-stdin, never from the command line.
    /// Exit codes: 0 confirmed, 1 refused (by the card or the service; see result_code),
    /// 2 usage or configuration error, 3 card, reader or connection failure.
    Confirm {
        /// The terminal configuration (a world's terminals/<name>/agent.toml).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Override the configured service address, e.g. https://127.0.0.1:50443.
        #[arg(long, value_name = "URL")]
        service: Option<String>,
        /// Use this reader (default: the first reader with a card).
        #[arg(long, value_name = "NAME")]
        reader: Option<String>,
        /// How long to wait for a card, in seconds.
        #[arg(long, value_name = "SECONDS", default_value_t = 30)]
        wait: u64,
        /// Read the PIN from standard input, one attempt per line.
        #[arg(long)]
        pin_stdin: bool,
        /// The patient's consents (comma-separated): medication, checkup, clinical, surgery,
        /// or none.
        #[arg(long, value_enum, value_delimiter = ',', default_value = "none")]
        consent: Vec<Consent>,
        /// Print the outcome as JSON (for scripts) instead of the staff view.
        #[arg(long)]
        json: bool,
        /// Record the APDU trace to this file ('-' for stderr); VERIFY data is always redacted.
        #[arg(long, value_name = "FILE")]
        trace: Option<String>,
    },
    /// List the PC/SC readers and whether a card is present.
    Readers,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Confirm {
            config,
            service,
            reader,
            wait,
            pin_stdin,
            consent,
            json,
            trace,
        } => run_confirm(
            config, service, reader, wait, pin_stdin, consent, json, trace,
        ),
        Command::Readers => list_readers(),
    }
}

#[allow(clippy::too_many_arguments)]
fn run_confirm(
    config: PathBuf,
    service: Option<String>,
    reader: Option<String>,
    wait: u64,
    pin_stdin: bool,
    consent: Vec<Consent>,
    json: bool,
    trace: Option<String>,
) -> ExitCode {
    let config = match AgentConfig::load(&config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("reader-agent: {e}");
            return ExitCode::from(2);
        }
    };
    if !pin_stdin && !std::io::stdin().is_terminal() {
        eprintln!("reader-agent: stdin is not a terminal: use --pin-stdin to read the PIN from it");
        return ExitCode::from(2);
    }
    let has = |c: Consent| consent.contains(&c);
    let consents = ConsentBits::new(
        has(Consent::Medication),
        has(Consent::Checkup),
        has(Consent::Clinical),
        has(Consent::Surgery),
    );
    let trace = match trace.as_deref() {
        None => None,
        Some("-") => Some(Trace::new(Box::new(std::io::stderr()))),
        Some(path) => match std::fs::File::create(path) {
            Ok(f) => Some(Trace::new(Box::new(f))),
            Err(e) => {
                eprintln!("reader-agent: cannot create trace file {path}: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let pins: Box<dyn PinSource> = if pin_stdin {
        Box::new(StdinLines)
    } else {
        Box::new(TtyPrompt)
    };
    let opts = ConfirmOptions {
        reader,
        wait: Duration::from_secs(wait),
        consents,
        service_override: service,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("reader-agent: cannot start the runtime: {e}");
            return ExitCode::from(3);
        }
    };
    let progress = |line: &str| eprintln!("{line}");
    let outcome: Outcome = runtime.block_on(confirm::run(&config, &opts, pins, trace, &progress));
    if json {
        match serde_json::to_string_pretty(&outcome) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("reader-agent: {e}"),
        }
    } else {
        print!("{}", render_human(&outcome));
    }
    ExitCode::from(outcome.exit_code())
}

fn list_readers() -> ExitCode {
    let ctx = match pcsc::Context::establish(pcsc::Scope::User) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("reader-agent: the PC/SC service (pcscd) is not reachable: {e}");
            return ExitCode::from(3);
        }
    };
    let names = match ctx.list_readers_owned() {
        Ok(n) => n,
        Err(pcsc::Error::NoReadersAvailable) => Vec::new(),
        Err(e) => {
            eprintln!("reader-agent: {e}");
            return ExitCode::from(3);
        }
    };
    if names.is_empty() {
        println!("no readers");
    }
    let mut states: Vec<pcsc::ReaderState> = names
        .iter()
        .map(|n| pcsc::ReaderState::new(n.clone(), pcsc::State::UNAWARE))
        .collect();
    let _ = ctx.get_status_change(Duration::from_millis(0), &mut states);
    for s in &states {
        let present = s.event_state().contains(pcsc::State::PRESENT);
        println!(
            "{}\t{}",
            s.name().to_string_lossy(),
            if present { "card present" } else { "empty" }
        );
    }
    ExitCode::SUCCESS
}
