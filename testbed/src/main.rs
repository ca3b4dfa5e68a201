//! `testbed`: builds a synthetic world directory, and revokes and reissues its terminals'
//! certificates (see `docs/world.md`).
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use onshi_testbed::manifest::WorldManifest;
use onshi_testbed::population::{DEFAULT_CHUNK_PERSONS, MAX_PERSONS};
use onshi_testbed::terminals::{reissue_terminal, revoke_terminal};
use onshi_testbed::world::{DEFAULT_CARDS, DEFAULT_PERSONS, DEFAULT_SEED, MAX_CARDS, MIN_CARDS};
use onshi_testbed::{build_world, TestbedError, WorldOptions};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Builds synthetic worlds for the onshi simulator.
#[derive(Debug, Parser)]
#[command(
    name = "testbed",
    version,
    after_help = "Logging: RUST_LOG filters the log lines on stderr (default `warn`; e.g. \
                  RUST_LOG=info or RUST_LOG=onshi_testbed=debug); colours only on a terminal."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build a world into a directory.
    ///
    /// A world is everything a local run needs: the mock issuing authority's CA and CRL
    /// (issuing-ca/), virtual card profiles (cards/), the confirmation service's store with a
    /// synthetic population (store/onshi.sqlite), the network CA with the service's TLS
    /// certificate and the terminals' client certificates (network-ca/, service/,
    /// terminals/), service.toml, and world.json, a manifest saying which card and terminal
    /// is which. docs/world.md documents the layout.
    ///
    /// The same --seed and --now give byte-identical files; everything is dated relative to
    /// --now (certificates issued a year before, the expired card expired 150 days before, past its grace period, the
    /// issuing authority's CRL valid for a week, the network CA's CRL of terminals, empty,
    /// from an hour before for a year).
    Build(BuildArgs),
    /// Revoke a terminal's client certificate: put it on the network CA's CRL.
    ///
    /// Adds the terminal's current certificate (client.pem in its folder under terminals/)
    /// to network-ca/crl.pem, re-signed with network-ca/ca.key.pem under a new CRL number,
    /// dated now and good for a year. The file is replaced atomically (a temporary file
    /// renamed over it), so a service reading it never sees half a file. A service whose
    /// service.toml names it as [tls] client_crl (every world's does) re-reads it within
    /// about a second and refuses the certificate at every new TLS handshake; connections
    /// already open are not cut. Revoking a certificate already on the CRL changes nothing.
    /// Run one at a time on a world.
    ///
    /// The terminal keeps its name and its place in the store; give it a new certificate
    /// with reissue-terminal.
    RevokeTerminal(TerminalArgs),
    /// Give a terminal a new key and client certificate (the successor of a revoked one).
    ///
    /// Writes a new RSA-2048 key (client.key.pem, mode 0600) and a new certificate
    /// (client.pem) into the terminal's folder, replacing the old ones: signed by the network
    /// CA with network-ca/ca.key.pem, a new serial number, the same subject as before (the
    /// service takes the terminal's identity from it, so its store still knows the
    /// terminal), valid from an hour ago for three years. The old certificate is not
    /// revoked by this: revoke the terminal first if it must stop working. The key and
    /// serial derive from the world's seed and the serial of the certificate replaced.
    ReissueTerminal(TerminalArgs),
}

#[derive(Debug, clap::Args)]
struct TerminalArgs {
    /// The world directory (made by testbed build).
    #[arg(long, value_name = "DIR")]
    world: PathBuf,
    /// The terminal: its name in world.json, <医療機関コード>-<terminal id> (e.g.
    /// 1340123452-T01), or its folder under DIR/terminals/.
    #[arg(long, value_name = "NAME")]
    terminal: String,
}

#[derive(Debug, clap::Args)]
struct BuildArgs {
    /// The world directory; created if missing.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Seed of every random choice (keys, persons, PINs, serial numbers).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_SEED)]
    seed: u64,
    /// The moment the world is dated from, RFC 3339 (e.g. 2025-11-24T09:00:00+09:00).
    /// Default: the current time.
    #[arg(long, value_name = "RFC3339", value_parser = parse_now)]
    now: Option<OffsetDateTime>,
    /// How many virtual cards to issue (at least 6: the fixed roles valid, revoked, expired,
    /// unregistered, lost, multiple come first).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_CARDS, value_parser = parse_cards)]
    cards: usize,
    /// How many persons the store holds, card holders included (at least --cards, at most
    /// 50,000,000). Households, insurers, lost and multiple qualifications, drugs and checkups
    /// are drawn for them (docs/world.md); ten million take a few minutes and several GB.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_PERSONS, value_parser = parse_persons)]
    persons: usize,
    /// Replace DIR if it is not empty (deletes its contents).
    #[arg(long)]
    force: bool,
}

fn parse_cards(s: &str) -> Result<usize, String> {
    let n: usize = s.parse().map_err(|e| format!("not a number: {e}"))?;
    if (MIN_CARDS..=MAX_CARDS).contains(&n) {
        Ok(n)
    } else {
        Err(format!("must be between {MIN_CARDS} and {MAX_CARDS}"))
    }
}

fn parse_persons(s: &str) -> Result<usize, String> {
    let n: usize = s
        .replace('_', "")
        .parse()
        .map_err(|e| format!("not a number: {e}"))?;
    if (1..=MAX_PERSONS).contains(&n) {
        Ok(n)
    } else {
        Err(format!("must be between 1 and {MAX_PERSONS}"))
    }
}

fn parse_now(s: &str) -> Result<OffsetDateTime, String> {
    let now =
        OffsetDateTime::parse(s, &Rfc3339).map_err(|e| format!("not an RFC 3339 time: {e}"))?;
    // The world reaches about a century back (birth dates) and decades ahead (validity
    // periods); near the calendar's ends that would not be representable.
    if (NOW_YEARS).contains(&now.year()) {
        Ok(now)
    } else {
        Err(format!(
            "must be in the years {} to {}",
            NOW_YEARS.start(),
            NOW_YEARS.end()
        ))
    }
}

/// The years `--now` may fall in.
const NOW_YEARS: std::ops::RangeInclusive<i32> = 1900..=9899;

/// RFC 3339, for what the commands print.
fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

fn revoke(args: &TerminalArgs) -> Result<(), TestbedError> {
    let r = revoke_terminal(&args.world, &args.terminal, OffsetDateTime::now_utc())?;
    let crl = r.crl.display();
    if r.already {
        println!(
            "testbed: {}'s certificate {} (serial {}) is already on {crl}, revoked {}; \
             nothing changed",
            r.terminal,
            r.certificate,
            r.serial,
            rfc3339(r.revoked_at)
        );
    } else {
        println!(
            "testbed: revoked {}'s certificate {} (serial {})",
            r.terminal, r.certificate, r.serial
        );
        println!(
            "testbed: wrote {crl}: CRL number {}, {} revoked certificate{}, this update {}",
            r.crl_number,
            r.entries,
            if r.entries == 1 { "" } else { "s" },
            rfc3339(r.revoked_at)
        );
    }
    if r.service_reads_it {
        println!(
            "testbed: a service run with this world's service.toml refuses the certificate at \
             its next TLS handshake (it re-reads the CRL within about a second)"
        );
    } else {
        println!(
            "testbed: warning: {}/service.toml does not name {crl} as [tls] client_crl; a \
             service run with it does not see the revocation",
            args.world.display()
        );
    }
    Ok(())
}

fn reissue(args: &TerminalArgs) -> Result<(), TestbedError> {
    let r = reissue_terminal(&args.world, &args.terminal, OffsetDateTime::now_utc())?;
    let dir = args.world.join(&r.dir);
    println!(
        "testbed: reissued {}: new key {} (mode 0600) and certificate {}, serial {} (was {}), \
         valid until {}",
        r.terminal,
        dir.join("client.key.pem").display(),
        dir.join("client.pem").display(),
        r.new_serial,
        r.old_serial,
        rfc3339(r.not_after)
    );
    if r.old_revoked {
        println!(
            "testbed: the old certificate (serial {}) is on the network CA's CRL",
            r.old_serial
        );
    } else {
        println!(
            "testbed: note: the old certificate (serial {}) is not revoked and stays valid \
             until it expires (revoke a terminal before reissuing it to retire the old one)",
            r.old_serial
        );
    }
    Ok(())
}

/// Tells the reader how to see each case of the world just built: the exact card-less
/// command per example (world.json's `examples`), with `reader-agent` as built by cargo.
fn print_examples(manifest: &WorldManifest, out: &std::path::Path) {
    let commands = manifest.example_commands(out);
    if commands.is_empty() {
        return;
    }
    println!(
        "testbed: try each case by numbers (with target/debug/ on PATH: source scripts/env.sh):"
    );
    for (case, description, command) in commands {
        println!("  # {case}: {description}");
        println!("  {command}");
    }
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
    let done = match cli.command {
        Command::RevokeTerminal(args) => revoke(&args),
        Command::ReissueTerminal(args) => reissue(&args),
        Command::Build(args) => {
            let options = WorldOptions {
                out: args.out,
                seed: args.seed,
                now: args.now.unwrap_or_else(OffsetDateTime::now_utc),
                cards: args.cards,
                persons: args.persons,
                force: args.force,
                progress: true,
                chunk_persons: DEFAULT_CHUNK_PERSONS,
                workers: 0,
            };
            build_world(&options).map(|manifest| print_examples(&manifest, &options.out))
        }
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("testbed: error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_near_the_calendar_ends_is_a_usage_error() {
        assert!(parse_now("2026-11-24T09:00:00+09:00").is_ok());
        assert!(parse_now("1900-01-01T00:00:00Z").is_ok());
        assert!(parse_now("9899-12-31T23:59:59Z").is_ok());
        assert!(parse_now("9999-12-31T23:59:59Z").is_err());
        assert!(parse_now("0001-01-01T00:00:00Z").is_err());
    }

    #[test]
    fn persons_out_of_range_are_usage_errors() {
        assert_eq!(parse_persons("1000"), Ok(1000));
        assert_eq!(parse_persons("10_000_000"), Ok(10_000_000));
        assert_eq!(parse_persons("50000000"), Ok(MAX_PERSONS));
        for bad in ["0", "50000001", "-1", "1e9", "", "99999999999999999999999"] {
            assert!(parse_persons(bad).is_err(), "{bad}");
        }
    }
}
