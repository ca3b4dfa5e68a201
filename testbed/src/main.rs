//! `testbed`: builds a synthetic world directory (see `docs/world.md`).
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use onshi_testbed::population::{DEFAULT_CHUNK_PERSONS, MAX_PERSONS};
use onshi_testbed::world::{DEFAULT_CARDS, DEFAULT_PERSONS, DEFAULT_SEED, MAX_CARDS, MIN_CARDS};
use onshi_testbed::{build_world, WorldOptions};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Builds synthetic worlds for the onshi simulator.
#[derive(Debug, Parser)]
#[command(name = "testbed", version)]
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
    /// --now (certificates issued a year before, the expired card expired the day before, the
    /// CRL valid for a week).
    Build(BuildArgs),
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
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
            match build_world(&options) {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("testbed: error: {e}");
                    ExitCode::FAILURE
                }
            }
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
