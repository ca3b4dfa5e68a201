//! The load generator's one error type.

use std::path::PathBuf;

/// Why a run could not be set up or carried out. Request failures during the measured phase
/// are not errors: they are counted and reported.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadgenError {
    #[error("cannot {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("world: {0}")]
    World(String),
    #[error("card {card}: {reason}")]
    CardKey { card: String, reason: String },
    #[error("terminal certificates: {0}")]
    Mint(String),
    #[error("store: {0}")]
    Store(String),
    #[error("TLS or connection to {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("preparation: {0}")]
    Prepare(String),
    #[error("{what}: {reason}")]
    Process { what: String, reason: String },
    #[error("invalid option: {0}")]
    Usage(String),
    #[error("report: {0}")]
    Report(String),
    #[error("runtime: {0}")]
    Runtime(String),
    /// SIGINT or SIGTERM arrived while a window was being prepared; nothing of it is measured.
    #[error("interrupted while preparing")]
    Interrupted,
}

impl LoadgenError {
    pub(crate) fn io(
        what: &'static str,
        path: &std::path::Path,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_owned();
        move |source| LoadgenError::Io { what, path, source }
    }
}
