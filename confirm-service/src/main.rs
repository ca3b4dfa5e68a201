//! `confirm-service`: serve the confirmation service, or explain a certificate's verdict.
//! Parsing and dispatch only: the commands' bodies are in the library's `cli` module.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use onshi_confirm_service::audit::AuditQuery;
use onshi_confirm_service::cli::{self, StoreLocation};
use onshi_confirm_service::clock::SystemClock;
use onshi_confirm_service::operator;
use time::OffsetDateTime;

/// mimalloc: cheaper small allocations than glibc's malloc on the request path (measured:
/// docs/performance.md "The hot path redesign").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "confirm-service",
    version,
    about = "onshi's confirmation service: validates My Number card certificates and answers insurance eligibility over gRPC (mutual TLS)",
    after_help = "Logging: RUST_LOG filters the log lines on stderr (default `info`; e.g. \
                  RUST_LOG=warn or RUST_LOG=onshi_confirm_service=debug); colours only on a \
                  terminal. Usage errors exit 2. Metrics, health, reflection: docs/operations.md."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve onshi.v1.Confirmation (plus gRPC health and reflection) over TLS with required
    /// client certificates. Prints "confirm-service: listening on ADDR" once ready. Exit
    /// codes: 0 after a shutdown by signal, 2 when the configuration or a file it names
    /// cannot be used (nothing was served), 1 when serving fails.
    Serve(cli::serve::ServeArgs),
    /// Validate a card certificate as the service would, in the manner of `openssl verify`.
    /// Exits 0 when accepted, 1 when rejected, 2 on a usage or I/O error.
    CheckCert {
        /// Take trust anchors, CRLs and policy from this service configuration when no
        /// --trust/--crl is given.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// A trusted issuing-CA certificate (PEM or DER); repeatable.
        #[arg(long, value_name = "CA")]
        trust: Vec<PathBuf>,
        /// An intermediate CA certificate; repeatable.
        #[arg(long, value_name = "CERT")]
        intermediate: Vec<PathBuf>,
        /// A CRL (PEM or DER); repeatable.
        #[arg(long, value_name = "CRL")]
        crl: Vec<PathBuf>,
        /// A required certificate policy OID; repeatable (any one suffices).
        #[arg(long, value_name = "OID", value_parser = cli::policy_oid)]
        policy: Vec<String>,
        /// Check at this time instead of now (RFC 3339, e.g. 2026-11-24T09:00:00+09:00).
        #[arg(long, value_name = "RFC3339-TIME")]
        at: Option<String>,
        /// Clock-skew allowance in seconds for certificates' validity periods (default: the
        /// configuration's cert_clock_skew_seconds, else 0: this machine's clock decides).
        #[arg(long, value_name = "SECONDS")]
        clock_skew: Option<u32>,
        /// What a CRL past its nextUpdate means: reject (fail closed, the default) or accept.
        #[arg(long, value_name = "POLICY", value_parser = ["reject", "accept"])]
        stale_crl: Option<String>,
        /// Print the verdict as JSON.
        #[arg(long)]
        json: bool,
        /// Check a smartphone certificate (スマホ用電子証明書, docs/smartphone.md): take the
        /// anchors, CRLs and policy from --config's [validation.smartphone] instead of the
        /// cards'. A card's certificate then fails as untrusted-issuer, and a phone's without
        /// this flag.
        #[arg(long, requires = "config")]
        smartphone: bool,
        /// The certificate to check (PEM or DER).
        cert: PathBuf,
    },
    /// Print 導入医療機関リスト: every institution with at least one terminal in operation
    /// (code, name, prefecture, the date online confirmation started there, terminals in
    /// operation), by code, from the store's terminal registry. The public uses it to find
    /// where the card works. Exit codes: 0 printed (possibly none), 1 output failed, 2 usage
    /// or store error.
    Institutions {
        #[command(flatten)]
        location: StoreLocation,
        /// csv (a header line, then one line per institution) or json (an array of objects).
        #[arg(long, value_enum, default_value = "csv")]
        format: cli::institutions::Format,
    },
    /// Work on a store (docs/storage.md).
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Query the audit log: every access to a person's data (who, whom, when, what was
    /// returned, which consents), oldest first. Conditions combine; times are RFC 3339 or a
    /// day (2026-11-24 = from 00:00 JST). Exit codes: 0 printed (possibly nothing), 2 usage or
    /// store error. `audit verify` checks the log's hash chain; `audit prune` removes records
    /// past the retention period.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Audit {
        #[command(subcommand)]
        command: Option<AuditCommand>,
        /// The service configuration whose store to read (a world's service.toml).
        #[arg(long, value_name = "FILE", required_unless_present = "store")]
        config: Option<PathBuf>,
        /// The store itself: a SQLite file or a postgres:// URL (instead of --config).
        #[arg(long, value_name = "LOCATION", conflicts_with = "config")]
        store: Option<String>,
        /// Only this person's records.
        #[arg(long, value_name = "PERSON-ID")]
        person: Option<String>,
        /// Only this institution's (医療機関コード, 10 digits with a valid check digit).
        #[arg(long, value_name = "CODE", value_parser = cli::institution_code)]
        institution: Option<String>,
        /// Records at or after this time.
        #[arg(long, value_name = "TIME", value_parser = operator::parse_time)]
        from: Option<OffsetDateTime>,
        /// Records before this time.
        #[arg(long, value_name = "TIME", value_parser = operator::parse_time)]
        until: Option<OffsetDateTime>,
        /// At most this many records.
        #[arg(long, value_name = "N", default_value_t = 1000,
              value_parser = clap::value_parser!(u32).range(1..=i64::from(operator::MAX_LIMIT)))]
        limit: u32,
        /// One JSON object per line instead of columns.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Walk the audit log's hash chain (each record carries the SHA-256 of the one before it;
    /// docs/security.md) from its anchor to its head. Prints the number of records checked and
    /// the head's position and hash; or names the first broken record (its position in the
    /// chain and confirmation id) and what is wrong with it: edited, deleted, inserted or
    /// reordered. Exit codes: 0 the chain is intact, 1 it is broken, 2 usage or store error.
    Verify {
        #[command(flatten)]
        location: StoreLocation,
        /// A head hash printed by an earlier verify, kept where the store's operator cannot
        /// write: it must still be in the chain (catches a chain rewritten from end to end).
        #[arg(long, value_name = "HEX")]
        head: Option<String>,
    },
    /// Remove the audit records older than the retention period (`audit_retention_days` in
    /// service.toml, default 1826 days: five years, an assumption) from the start of the
    /// chain. The hash of the last record removed becomes the chain's anchor, so `verify`
    /// still passes; records removed any other way break it. The service never prunes by
    /// itself: run this from cron. Exit codes: 0 done (possibly nothing removed), 2 usage or
    /// store error.
    Prune {
        #[command(flatten)]
        location: StoreLocation,
        /// Keep this many days instead of the configuration's (0: keep everything).
        #[arg(long, value_name = "DAYS")]
        retention_days: Option<u32>,
        /// Remove the records before this time instead (RFC 3339 or a day, as for queries).
        #[arg(long, value_name = "TIME", value_parser = operator::parse_time,
              conflicts_with = "retention_days")]
        before: Option<OffsetDateTime>,
    },
}

#[derive(Debug, Subcommand)]
enum StoreCommand {
    /// Copy a SQLite store's reference data (persons, qualification records, card links,
    /// terminals, medications, checkups) into an empty PostgreSQL database, creating its
    /// schema: chunks of 1,000 persons, each one transaction, a progress line per chunk on
    /// stderr. The audit log, consents, challenges and batch jobs are not copied. Exit codes:
    /// 0 copied, 1 the copy failed (chunks before the failure stay in the destination), 2 a
    /// bad location.
    Copy {
        /// The SQLite store file, e.g. a world's store/onshi.sqlite.
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        /// The destination: a postgres:// or postgresql:// URL.
        #[arg(long, value_name = "URL")]
        to: String,
        /// No progress lines.
        #[arg(long)]
        quiet: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Store {
            command: StoreCommand::Copy { from, to, quiet },
        } => cli::store::copy(&from, &to, !quiet),
        Command::Audit {
            command: Some(AuditCommand::Verify { location, head }),
            ..
        } => cli::audit::verify(location, head),
        Command::Audit {
            command:
                Some(AuditCommand::Prune {
                    location,
                    retention_days,
                    before,
                }),
            ..
        } => cli::audit::prune(location, retention_days, before, &SystemClock),
        Command::Audit {
            command: None,
            config,
            store,
            person,
            institution,
            from,
            until,
            limit,
            json,
        } => cli::audit::query(
            config,
            store,
            AuditQuery {
                person_id: person,
                institution_code: institution,
                from,
                until,
                limit,
            },
            json,
        ),
        Command::Serve(args) => cli::serve::serve(args),
        Command::Institutions { location, format } => cli::institutions::run(location, format),
        Command::CheckCert {
            config,
            trust,
            intermediate,
            crl,
            policy,
            at,
            clock_skew,
            stale_crl,
            json,
            smartphone,
            cert,
        } => cli::check_cert::run(
            config,
            trust,
            intermediate,
            crl,
            policy,
            at,
            (clock_skew, stale_crl),
            json,
            smartphone,
            cert,
        ),
    }
}
