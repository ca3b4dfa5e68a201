//! `confirm-service`: serve the confirmation service, or explain a certificate's verdict.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use onshi_confirm_service::audit::AuditQuery;
use onshi_confirm_service::check_cert::{self, CheckOptions};
use onshi_confirm_service::clock::SystemClock;
use onshi_confirm_service::config::Config;
use onshi_confirm_service::operator;
use onshi_confirm_service::validation::{EndEntityPolicy, StaleCrlPolicy};
use time::OffsetDateTime;

#[derive(Debug, Parser)]
#[command(
    name = "confirm-service",
    version,
    about = "onshi's confirmation service: validates My Number card certificates and answers insurance eligibility over gRPC (mutual TLS)"
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
    Serve {
        /// The service configuration (a world's service.toml; see docs/world.md).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Override the configured listen address; port 0 picks a free port.
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
    },
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
        #[arg(long, value_name = "OID", value_parser = policy_oid)]
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
        /// The certificate to check (PEM or DER).
        cert: PathBuf,
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
        #[arg(long, value_name = "CODE", value_parser = institution_code)]
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

/// Where an audit command finds the store.
#[derive(Debug, clap::Args)]
struct StoreLocation {
    /// The service configuration whose store to use (a world's service.toml).
    #[arg(long, value_name = "FILE", required_unless_present = "store")]
    config: Option<PathBuf>,
    /// The store itself: a SQLite file or a postgres:// URL (instead of --config).
    #[arg(long, value_name = "LOCATION", conflicts_with = "config")]
    store: Option<String>,
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

fn store_copy(from: &std::path::Path, to: &str, progress: bool) -> ExitCode {
    use onshi_confirm_service::store::StoreError;
    init_tracing();
    match onshi_confirm_service::store::copy::run_copy(from, to, progress) {
        Ok(stats) => {
            println!("confirm-service store copy: {stats}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("confirm-service store copy: {e}");
            ExitCode::from(if matches!(e, StoreError::BadLocation(_)) {
                2
            } else {
                1
            })
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Store {
            command: StoreCommand::Copy { from, to, quiet },
        } => store_copy(&from, &to, !quiet),
        Command::Audit {
            command: Some(AuditCommand::Verify { location, head }),
            ..
        } => audit_verify(location, head),
        Command::Audit {
            command:
                Some(AuditCommand::Prune {
                    location,
                    retention_days,
                    before,
                }),
            ..
        } => audit_prune(location, retention_days, before),
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
        } => audit(
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
        Command::Serve { config, listen } => serve(config, listen),
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
            cert,
        } => check(
            config,
            trust,
            intermediate,
            crl,
            policy,
            at,
            (clock_skew, stale_crl),
            json,
            cert,
        ),
    }
}

/// `--institution`: a 医療機関コード with a valid check digit.
fn institution_code(s: &str) -> Result<String, String> {
    onshi_confirm_service::eligibility::InstitutionCode::parse(s)
        .map(|c| c.as_str().to_owned())
        .map_err(|e| e.to_string())
}

#[allow(clippy::too_many_arguments)]
fn audit(
    config: Option<PathBuf>,
    store: Option<String>,
    query: AuditQuery,
    json: bool,
) -> ExitCode {
    if let (Some(from), Some(until)) = (query.from, query.until) {
        if from >= until {
            eprintln!("confirm-service audit: --from must be before --until");
            return ExitCode::from(2);
        }
    }
    let (store, _) = match open_store(&StoreLocation { config, store }, "audit") {
        Ok(s) => s,
        Err(code) => return code,
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match operator::print_audit(store.as_ref(), &query, json, &mut out) {
        Ok(n) => {
            eprintln!("confirm-service audit: {n} record(s)");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("confirm-service audit: {e}");
            ExitCode::from(2)
        }
    }
}

/// The store an audit command names, and the configuration when one was given; errors are
/// printed (prefixed with `confirm-service <what>`) and become exit code 2.
fn open_store(
    location: &StoreLocation,
    what: &str,
) -> Result<(Arc<dyn onshi_confirm_service::store::Store>, Option<Config>), ExitCode> {
    let fail = |e: &dyn std::fmt::Display| {
        eprintln!("confirm-service {what}: {e}");
        ExitCode::from(2)
    };
    let config = match &location.config {
        Some(path) => Some(Config::load(path).map_err(|e| fail(&e))?),
        None => None,
    };
    let place = match (&location.store, &config) {
        (Some(place), _) => place.clone(),
        (None, Some(c)) => c.store.clone(),
        (None, None) => return Err(fail(&"give --config or --store")),
    };
    if !onshi_confirm_service::store::is_postgres_url(&place)
        && !std::path::Path::new(&place).is_file()
    {
        return Err(fail(&format!("no store file at {place}")));
    }
    let store = onshi_confirm_service::store::open(&place).map_err(|e| fail(&e))?;
    Ok((store, config))
}

fn audit_verify(location: StoreLocation, head: Option<String>) -> ExitCode {
    use onshi_confirm_service::audit_chain::{self, VerifyError};
    let (store, _) = match open_store(&location, "audit verify") {
        Ok(s) => s,
        Err(code) => return code,
    };
    match audit_chain::verify(store.as_ref(), head.as_deref()) {
        Ok(v) => {
            println!(
                "confirm-service audit verify: {} record(s) checked, the chain is intact; \
                 head {} {}{}",
                v.records,
                v.head_seq,
                v.head_hash,
                if v.anchor_seq > 0 {
                    format!(" (records up to {} were pruned)", v.anchor_seq)
                } else {
                    String::new()
                }
            );
            ExitCode::SUCCESS
        }
        Err(VerifyError::Broken(b)) => {
            println!("confirm-service audit verify: the chain is broken at {b}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("confirm-service audit verify: {e}");
            ExitCode::from(2)
        }
    }
}

fn audit_prune(
    location: StoreLocation,
    retention_days: Option<u32>,
    before: Option<OffsetDateTime>,
) -> ExitCode {
    let (store, config) = match open_store(&location, "audit prune") {
        Ok(s) => s,
        Err(code) => return code,
    };
    let before = match before {
        Some(t) => t,
        None => {
            let days = retention_days
                .or(config.map(|c| c.audit_retention_days))
                .unwrap_or(onshi_confirm_service::config::DEFAULT_AUDIT_RETENTION_DAYS);
            if days == 0 {
                println!("confirm-service audit prune: the retention is 0 (keep everything)");
                return ExitCode::SUCCESS;
            }
            OffsetDateTime::now_utc() - time::Duration::days(i64::from(days))
        }
    };
    match store.prune_audit(before) {
        Ok(n) => {
            let at = before
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            println!("confirm-service audit prune: {n} record(s) older than {at} removed");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("confirm-service audit prune: {e}");
            ExitCode::from(2)
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ONSHI_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// `--policy`: an OID in dotted decimal, or a usage error (it would match no card).
fn policy_oid(s: &str) -> Result<String, String> {
    if onshi_confirm_service::config::is_dotted_oid(s) {
        Ok(s.to_owned())
    } else {
        Err("not an OID in dotted decimal (e.g. 1.2.392.200149.8.5.1.0.30)".into())
    }
}

fn serve(config_path: PathBuf, listen: Option<SocketAddr>) -> ExitCode {
    init_tracing();
    let config = match Config::load(&config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("confirm-service: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(usize::from(config.store_threads))
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("confirm-service: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(async move {
        let addr = listen.unwrap_or(config.listen);
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("confirm-service: cannot listen on {addr}: {e}");
                return ExitCode::from(2);
            }
        };
        let local = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let shutdown = async {
            let ctrl_c = tokio::signal::ctrl_c();
            #[cfg(unix)]
            {
                let mut term =
                    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    {
                        Ok(t) => t,
                        Err(_) => {
                            let _ = ctrl_c.await;
                            return;
                        }
                    };
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            #[cfg(not(unix))]
            {
                let _ = ctrl_c.await;
            }
            tracing::info!("shutting down");
        };
        match onshi_confirm_service::server::run(
            &config,
            listener,
            Arc::new(SystemClock),
            shutdown,
            move || {
                println!("confirm-service: listening on {local}");
                use std::io::Write;
                let _ = std::io::stdout().flush();
            },
        )
        .await
        {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("confirm-service: {e}");
                ExitCode::from(if e.is_configuration() { 2 } else { 1 })
            }
        }
    })
}

#[allow(clippy::too_many_arguments)]
fn check(
    config: Option<PathBuf>,
    mut trust: Vec<PathBuf>,
    mut intermediates: Vec<PathBuf>,
    mut crls: Vec<PathBuf>,
    mut policy_oids: Vec<String>,
    at: Option<String>,
    (clock_skew, stale_crl): (Option<u32>, Option<String>),
    json: bool,
    cert: PathBuf,
) -> ExitCode {
    let mut policy = EndEntityPolicy::default();
    if let Some(path) = &config {
        match Config::load(path) {
            Ok(c) => {
                if trust.is_empty() {
                    trust = c.validation.trust_anchors.clone();
                    intermediates.extend(c.validation.intermediates.clone());
                }
                if crls.is_empty() {
                    crls = c.validation.crls.clone();
                }
                if policy_oids.is_empty() {
                    policy_oids = c.validation.policy_oids.clone();
                }
                policy = c.validation.policy();
            }
            Err(e) => {
                eprintln!("check-cert: {e}");
                return ExitCode::from(2);
            }
        }
    }
    if trust.is_empty() {
        eprintln!("check-cert: no trust anchor: give --trust CA or --config FILE");
        return ExitCode::from(2);
    }
    if crls.is_empty() {
        // Without a CRL every certificate would be refused as crl-missing: say so up front.
        eprintln!(
            "check-cert: no CRL: give --crl CRL or --config FILE (revocation is always checked)"
        );
        return ExitCode::from(2);
    }
    policy.policy_oids = policy_oids;
    if let Some(seconds) = clock_skew {
        policy.clock_skew = time::Duration::seconds(i64::from(seconds));
    }
    match stale_crl.as_deref() {
        Some("accept") => policy.stale_crl = StaleCrlPolicy::Accept,
        Some(_) => policy.stale_crl = StaleCrlPolicy::Reject,
        None => {}
    }
    let at = match at {
        None => OffsetDateTime::now_utc(),
        Some(s) => {
            match OffsetDateTime::parse(&s, &time::format_description::well_known::Rfc3339) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("check-cert: --at {s:?} is not an RFC 3339 time: {e}");
                    return ExitCode::from(2);
                }
            }
        }
    };
    let opts = CheckOptions {
        trust,
        intermediates,
        crls,
        policy,
        at,
    };
    match check_cert::check(&cert, &opts) {
        Ok(verdict) => {
            if json {
                match serde_json::to_string_pretty(&verdict) {
                    Ok(s) => println!("{s}"),
                    Err(e) => {
                        eprintln!("check-cert: {e}");
                        return ExitCode::from(2);
                    }
                }
            } else {
                println!("{}", verdict.line());
            }
            if verdict.accepted() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("check-cert: {e}");
            ExitCode::from(2)
        }
    }
}
