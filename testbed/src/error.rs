//! Why building or changing a world failed.

use std::path::PathBuf;

/// Everything that can stop [`crate::build_world`] and the commands that change a built world
/// ([`crate::terminals`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestbedError {
    #[error("invalid options: {0}")]
    Options(String),
    #[error("{path} is not empty; pass --force to replace it")]
    OutputNotEmpty { path: PathBuf },
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("key generation for {purpose} failed: {reason}")]
    KeyGeneration { purpose: String, reason: String },
    #[error("certificate or CRL generation failed ({what}): {source}")]
    Certificate { what: String, source: rcgen::Error },
    #[error("generated data is invalid: {0}")]
    Domain(#[from] onshi_confirm_service::eligibility::DomainError),
    #[error("store: {0}")]
    Store(#[from] onshi_confirm_service::store::StoreError),
    #[error("card profile: {0}")]
    Profile(#[from] onshi_virtual_card::profile::ProfileError),
    #[error("cannot encode {what}: {reason}")]
    Encode { what: &'static str, reason: String },
    #[error("date arithmetic out of range: {0}")]
    Date(String),
    /// A built world that cannot be changed as asked (no world, an unknown terminal, the
    /// network CA's key missing, …); the text says what and why.
    #[error("{0}")]
    World(String),
}

impl TestbedError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| TestbedError::Io {
            action,
            path,
            source,
        }
    }

    pub(crate) fn cert(what: impl Into<String>) -> impl FnOnce(rcgen::Error) -> Self {
        let what = what.into();
        move |source| TestbedError::Certificate { what, source }
    }
}
