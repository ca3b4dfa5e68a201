//! `virtual-phone`: a simulated smartphone マイナ保険証 (Android or iPhone) that the reader
//! agent reaches through onshi's own simulator channel, JSON lines over a Unix socket.
//! **Not the real phone protocol**, which is not public (docs/smartphone.md).

use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use onshi_virtual_card::phone::{self, Phone, PhoneProfile, Platform};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(
    name = "virtual-phone",
    version,
    about = "A simulated smartphone マイナ保険証 on onshi's own (not the real) channel",
    long_about = "Serves one simulated phone from a phone profile (the testbed writes them as \
                  phones/phone-NN.json) on a Unix socket, one JSON request per line and one \
                  answer per line (docs/smartphone.md). This channel is onshi's own: the real \
                  phones' protocol with the general-purpose reader is not public, and nothing \
                  here imitates it.\n\n\
                  An Android phone checks the PIN the reader sends (typed at the reader), locks \
                  after 3 wrong tries in a row (kept in memory: a restarted simulator has full \
                  tries) and then signs; an iPhone simulates its holder's verification on the \
                  phone (approved, or refused with --refuse) and then signs. Either signs only \
                  an onshi challenge binding of its own purpose (50 Android, 51 iPhone). Prints \
                  `virtual-phone: serving <name> (<platform>) on <socket>` when ready."
)]
struct Cli {
    /// The phone profile (JSON).
    #[arg(long)]
    profile: PathBuf,
    /// The Unix socket to serve on (replaced if it exists).
    #[arg(long)]
    socket: PathBuf,
    /// iPhone: the holder refuses (or fails) the verification on the phone.
    #[arg(long)]
    refuse: bool,
    /// iPhone: the holder takes this many milliseconds to verify on the phone (default 0),
    /// so that a reader's wait screen can be watched.
    #[arg(long, default_value_t = 0)]
    verify_delay_ms: u64,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let profile = match PhoneProfile::load(&cli.profile) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("virtual-phone: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.refuse && profile.platform != Platform::Iphone {
        eprintln!("virtual-phone: --refuse is for an iPhone (an Android phone checks its PIN)");
        return ExitCode::from(2);
    }
    let phone = match Phone::from_profile(&profile, !cli.refuse) {
        Ok(p) => p.with_verify_delay(std::time::Duration::from_millis(cli.verify_delay_ms)),
        Err(e) => {
            eprintln!("virtual-phone: {}: {e}", cli.profile.display());
            return ExitCode::from(2);
        }
    };
    let _ = std::fs::remove_file(&cli.socket);
    let listener = match UnixListener::bind(&cli.socket) {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "virtual-phone: cannot listen on {}: {e}",
                cli.socket.display()
            );
            return ExitCode::from(1);
        }
    };
    println!(
        "virtual-phone: serving {} ({}) on {}",
        profile.name,
        profile.platform.as_str(),
        cli.socket.display()
    );
    phone::serve(phone, listener);
    ExitCode::SUCCESS
}
