//! `virtual-card`: attach a virtual My Number card to pcscd through vpcd, or describe one.
//!
//! Thin by design: parse arguments, load the profile, and hand over to `vpcd::run`.

use std::fs::OpenOptions;
use std::io::{IsTerminal, Write};
use std::net::ToSocketAddrs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;

use clap::{Args, Parser, Subcommand};
use onshi_jpki::apdu::spaced_hex;
use onshi_jpki::constants::USER_AUTH_PIN_MAX_TRIES;
use onshi_virtual_card::contents::summarize_certificate;
use onshi_virtual_card::rack::{self, Rack};
use onshi_virtual_card::replay::{ReplayCard, ReplayEvent};
use onshi_virtual_card::trace::ApduTrace;
use onshi_virtual_card::vpcd::{self, Outcome, VpcdConfig, VpcdEvent, DEFAULT_VPCD_ADDRESS};
use onshi_virtual_card::{CardContents, CardProfile, CardState};
use tracing_subscriber::EnvFilter;

/// Exit code for a bad profile or bad usage (clap uses it for usage errors too).
const EXIT_USAGE: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "virtual-card",
    version,
    about = "A virtual My Number card that answers APDUs like a real one",
    long_about = "A virtual My Number card (JPKI user-authentication certificate, key and PIN) \
                  that attaches to pcscd through the vsmartcard vpcd driver, so PC/SC \
                  applications, OpenSC and the reader agent see a card in the reader \
                  \"Virtual PCD 00 00\".\n\n\
                  The PIN retry counter is saved in <profile>.state.json beside the profile \
                  before every answer that changes it, so a blocked PIN stays blocked. \
                  Logs go to stderr (RUST_LOG sets the level); PINs are never logged."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Insert the card into the vpcd reader and answer APDUs until killed or removed.
    ///
    /// Prints `virtual-card: attached <name> to <host:port>` on stdout each time the
    /// connection to vpcd is made. If vpcd is not listening yet, or pcscd restarts, the card
    /// retries (50 ms doubling to 1 s) forever.
    Attach(AttachArgs),
    /// Print what a card profile holds: name, ATR, certificate, PIN tries left (never the PIN).
    Info(InfoArgs),
    /// Run a rack of vpcd slots (two per --vpcd reader) and insert or remove cards on
    /// command through a Unix control socket (see `ctl`). Prints `virtual-card: serving N
    /// slots on SOCKET` when ready; `ctl SOCKET shutdown` (or a signal) ends it.
    Serve(ServeArgs),
    /// Act as a card that answers the responses of a recorded APDU trace in order (the
    /// reader agent's or the virtual card's --trace): reproduce a session without the card.
    /// Redacted PIN commands match by header and length, COMPUTE DIGITAL SIGNATURE by header
    /// (its data depends on the challenge, so the recorded signature will not verify). Prints
    /// a line for every divergence and when the recording is used up.
    Replay(ReplayArgs),
    /// Send commands to a `serve` process: `insert SLOT PROFILE [FAULT ...]`, `remove SLOT`,
    /// `arm SLOT FAULT ...` (transport faults on a card in the reader, counted from now),
    /// `status`, `shutdown`. Prints each reply; exits 1 if any reply is an error.
    Ctl(CtlArgs),
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// The control socket to create (an existing socket file there is replaced).
    #[arg(long, value_name = "PATH")]
    control: PathBuf,
    /// A vpcd reader's base address (its CHANNELID port); repeat for several readers. Each
    /// gives two slots: the port and the next one.
    #[arg(long = "vpcd", value_name = "HOST:PORT", required = true)]
    readers: Vec<String>,
}

#[derive(Debug, Args)]
struct ReplayArgs {
    /// The recorded trace.
    #[arg(long, value_name = "FILE")]
    trace: PathBuf,
    /// Address where the vpcd driver listens.
    #[arg(long, value_name = "HOST:PORT", default_value = DEFAULT_VPCD_ADDRESS)]
    vpcd: String,
    /// Answer to reset (hex), overriding the trace's `# atr` note.
    #[arg(long, value_name = "HEX")]
    atr: Option<String>,
}

#[derive(Debug, Args)]
struct CtlArgs {
    /// The control socket of the `serve` process.
    #[arg(long, value_name = "PATH")]
    control: PathBuf,
    /// One command, e.g. `insert 0 world/cards/card-0001.json latency=50`.
    #[arg(required = true, num_args = 1.., value_name = "COMMAND")]
    command: Vec<String>,
}

#[derive(Debug, Args)]
struct AttachArgs {
    /// Card profile (JSON) written by the world builder.
    #[arg(long, value_name = "FILE")]
    profile: PathBuf,
    /// Address where the vpcd driver listens (35963 is slot 0 of Debian's default reader).
    #[arg(long, value_name = "HOST:PORT", default_value = DEFAULT_VPCD_ADDRESS)]
    vpcd: String,
    /// Append an APDU trace to FILE, or write it to stderr with `-`. One line per command
    /// (`> `), response (`< `) and power event (`# `); VERIFY data is always redacted.
    #[arg(long, value_name = "FILE|-")]
    trace: Option<String>,
    /// Fault: pull the card out (close the connection) instead of answering the N-th command
    /// APDU, then exit 0 after printing a line.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    remove_after_apdus: Option<u64>,
    /// Scripted fault (repeatable), added to the profile's `faults`: remove-after-apdus=N,
    /// remove-at-read=N, remove-before-sign, latency=MS, mute-at-apdu=N, short-read=N,
    /// long-read=N, bad-sw=XXXX, cert-not-der, atr=HEX, pin-blocked. See
    /// docs/virtual-card.md.
    #[arg(long = "fault", value_name = "SPEC")]
    faults: Vec<String>,
}

#[derive(Debug, Args)]
struct InfoArgs {
    /// Card profile (JSON) written by the world builder.
    #[arg(long, value_name = "FILE")]
    profile: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Command::Attach(args) => attach(args),
        Command::Info(args) => info(&args),
        Command::Serve(args) => serve(&args),
        Command::Replay(args) => replay(&args),
        Command::Ctl(args) => return ctl(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("virtual-card: {message}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

/// Loads the profile and its saved state and builds the card's contents. Every failure is a
/// one-line message; the caller exits with code 2.
fn load(profile_path: &Path) -> Result<(CardContents, CardState, PathBuf, Vec<String>), String> {
    let profile = CardProfile::load(profile_path).map_err(|e| e.to_string())?;
    let state_path = CardProfile::state_path(profile_path);
    let state = CardState::load(&state_path).map_err(|e| e.to_string())?;
    let contents = CardContents::from_profile(&profile)
        .map_err(|e| format!("{}: {e}", profile_path.display()))?;
    Ok((contents, state, state_path, profile.faults.clone()))
}

fn serve(args: &ServeArgs) -> Result<(), String> {
    let mut rack = Rack::new(&args.readers)?;
    let listener = rack::bind_control(&args.control)
        .map_err(|e| format!("--control {}: {e}", args.control.display()))?;
    println!(
        "virtual-card: serving {} slots on {}",
        rack.status().len(),
        args.control.display()
    );
    let _ = std::io::stdout().flush();
    rack::serve(&mut rack, &listener);
    let _ = std::fs::remove_file(&args.control);
    Ok(())
}

fn replay(args: &ReplayArgs) -> Result<(), String> {
    let text = std::fs::read_to_string(&args.trace)
        .map_err(|e| format!("--trace {}: {e}", args.trace.display()))?;
    let mut card =
        ReplayCard::parse(&text).map_err(|e| format!("{}: {e}", args.trace.display()))?;
    if let Some(atr) = &args.atr {
        let atr = hex::decode(atr.replace([' ', ':'], "")).map_err(|e| format!("--atr: {e}"))?;
        card.set_atr(atr);
    }
    args.vpcd
        .to_socket_addrs()
        .map_err(|e| format!("--vpcd {}: {e}", args.vpcd))?;
    let total = card.len();
    let config = VpcdConfig::new(args.vpcd.clone());
    let stop = AtomicBool::new(false);
    let mut trace = ApduTrace::disabled();
    // Events are reported after each connection ends and as they come, through this wrapper.
    struct Reporting<'a> {
        card: &'a mut ReplayCard,
        total: usize,
    }
    impl vpcd::CardBehaviour for Reporting<'_> {
        fn atr(&self) -> &[u8] {
            self.card.atr()
        }
        fn answer(&mut self, apdu: &[u8]) -> Option<Vec<u8>> {
            let r = self.card.answer(apdu);
            for event in self.card.take_events() {
                match event {
                    ReplayEvent::Matched { index } if index == self.total => {
                        println!("virtual-card: replay reached the end of the trace ({index} commands)");
                    }
                    ReplayEvent::Matched { .. } => {}
                    ReplayEvent::Diverged { index, line, expected, got } => println!(
                        "virtual-card: replay diverged at command {index} (trace line {line}): expected {expected}, got {got}"
                    ),
                    ReplayEvent::PastEnd { got } => {
                        println!("virtual-card: replay past the end of the trace: {got}")
                    }
                }
                let _ = std::io::stdout().flush();
            }
            r
        }
        fn power_off(&mut self) {}
        fn reset(&mut self) {}
    }
    let mut reporting = Reporting {
        card: &mut card,
        total,
    };
    let mut on_event = |event: VpcdEvent<'_>| {
        if let VpcdEvent::Connected { address } = event {
            println!(
                "virtual-card: attached replay of {} ({total} commands) to {address}",
                args.trace.display()
            );
            let _ = std::io::stdout().flush();
        }
    };
    if let Outcome::Removed { after_apdus } =
        vpcd::run(&mut reporting, &config, &mut trace, &stop, &mut on_event)
    {
        println!(
            "virtual-card: replay pulled the card out at command APDU {after_apdus}, as recorded"
        );
    }
    Ok(())
}

fn ctl(args: &CtlArgs) -> ExitCode {
    let line = args.command.join(" ");
    match rack::send(&args.control, &[line]) {
        Ok(replies) => {
            let mut failed = false;
            for r in &replies {
                println!("{r}");
                failed |= !r.starts_with("ok");
            }
            if failed {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("virtual-card: {e}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn attach(args: AttachArgs) -> Result<(), String> {
    let (mut card, faults) = rack::load_card(&args.profile, &args.faults)?;
    // Checked once here so a typo is a usage error, not an endless reconnect loop.
    args.vpcd
        .to_socket_addrs()
        .map_err(|e| format!("--vpcd {}: {e}", args.vpcd))?;
    let mut trace = match args.trace.as_deref() {
        None => ApduTrace::disabled(),
        Some("-") => ApduTrace::new(Box::new(std::io::stderr())),
        Some(path) => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("--trace {path}: {e}"))?;
            ApduTrace::new(Box::new(file))
        }
    };
    let name = card.name().to_owned();
    if !faults.is_empty() {
        tracing::info!(card = %name, faults = %faults, "scripted faults armed");
    }
    let config = VpcdConfig {
        remove_after_apdus: args.remove_after_apdus,
        faults,
        ..VpcdConfig::new(args.vpcd)
    };
    // Never set: the process ends by signal. The counter is saved before every answer, so
    // nothing is lost that way.
    let stop = AtomicBool::new(false);
    let mut on_event = |event: VpcdEvent<'_>| match event {
        VpcdEvent::Connected { address } => {
            tracing::info!(card = %name, %address, "attached to vpcd");
            println!("virtual-card: attached {name} to {address}");
            let _ = std::io::stdout().flush();
        }
        VpcdEvent::Disconnected { reason, retry_in } => {
            tracing::warn!(card = %name, %reason, retry_in_ms = retry_in.as_millis(), "detached from vpcd; reconnecting");
        }
        VpcdEvent::ConnectFailed { error, retry_in } => {
            tracing::info!(card = %name, %error, retry_in_ms = retry_in.as_millis(), "cannot reach vpcd; retrying");
        }
        _ => {}
    };
    match vpcd::run(&mut card, &config, &mut trace, &stop, &mut on_event) {
        Outcome::Removed { after_apdus } => {
            println!(
                "virtual-card: removed {name} instead of answering command APDU {after_apdus}"
            );
            let _ = std::io::stdout().flush();
        }
        Outcome::Stopped => {}
    }
    Ok(())
}

fn info(args: &InfoArgs) -> Result<(), String> {
    let (contents, state, _, _) = load(&args.profile)?;
    let cert = summarize_certificate(&contents.user_auth_certificate).map_err(|e| e.to_string())?;
    let ca =
        summarize_certificate(&contents.user_auth_ca_certificate).map_err(|e| e.to_string())?;
    let tries = state.user_auth_pin_tries_left;
    println!("name: {}", contents.name);
    println!("ATR: {}", spaced_hex(&contents.atr));
    println!("user-authentication certificate:");
    println!("  subject: {}", cert.subject);
    println!("  issuer: {}", cert.issuer);
    println!("  serial: {}", cert.serial);
    println!("  not before: {}", cert.not_before);
    println!("  not after: {}", cert.not_after);
    println!("  size: {} bytes", contents.user_auth_certificate.len());
    println!("CA certificate subject: {}", ca.subject);
    println!(
        "PIN tries left: {tries} of {USER_AUTH_PIN_MAX_TRIES}{}{}",
        if tries == 0 { " (blocked)" } else { "" },
        if state.user_auth_pin.is_some() {
            " (changed on the card)"
        } else {
            ""
        }
    );
    match &contents.signature {
        Some(sig) => {
            let s = summarize_certificate(&sig.certificate).map_err(|e| e.to_string())?;
            println!("signature certificate: {} (issuer {})", s.subject, s.issuer);
            println!(
                "signature password tries left: {} of 5",
                state.sign_password_tries_left.unwrap_or(5)
            );
        }
        None => println!("signature certificate: none (password presented as blocked)"),
    }
    println!(
        "Kenhojo: {}",
        if contents.kenhojo.is_some() {
            "present"
        } else {
            "absent"
        }
    );
    match &contents.kenkaku {
        Some(k) => println!(
            "Kenkaku: present, face photo {} bytes{}",
            k.face.photo.len(),
            if k.simulator_face_export {
                ", simulator-only face read enabled"
            } else {
                ""
            }
        ),
        None => println!("Kenkaku: absent"),
    }
    Ok(())
}
