//! The bodies of the `confirm-service` commands; `main.rs` parses the command line and
//! dispatches here.

pub mod audit;
pub mod check_cert;
pub mod institutions;
pub mod operator;
pub mod serve;
pub mod store;

use std::path::PathBuf;

/// Where an audit command finds the store.
#[derive(Debug, clap::Args)]
pub struct StoreLocation {
    /// The service configuration whose store to use (a world's service.toml).
    #[arg(long, value_name = "FILE", required_unless_present = "store")]
    pub config: Option<PathBuf>,
    /// The store itself: a SQLite file or a postgres:// URL (instead of --config).
    #[arg(long, value_name = "LOCATION", conflicts_with = "config")]
    pub store: Option<String>,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Logs to stderr, filtered by `RUST_LOG` (or the older `ONSHI_LOG`; default `info`), as
/// text (coloured only on a terminal) or one JSON object per line.
pub fn init_tracing(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_env("ONSHI_LOG"))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// `--institution`: a 医療機関コード with a valid check digit.
pub fn institution_code(s: &str) -> Result<String, String> {
    crate::eligibility::InstitutionCode::parse(s)
        .map(|c| c.as_str().to_owned())
        .map_err(|e| e.to_string())
}

/// `--policy`: an OID in dotted decimal, or a usage error (it would match no card).
pub fn policy_oid(s: &str) -> Result<String, String> {
    if crate::config::is_dotted_oid(s) {
        Ok(s.to_owned())
    } else {
        Err("not an OID in dotted decimal (e.g. 1.2.392.200149.8.5.1.0.30)".into())
    }
}
