//! `confirm-service store copy`.

use std::process::ExitCode;

use super::init_tracing;

/// `store copy`: prints the copy's figures; exit code 2 for a bad location, 1 for a failed copy.
pub fn copy(from: &std::path::Path, to: &str, progress: bool) -> ExitCode {
    use crate::store::StoreError;
    init_tracing(super::LogFormat::Text);
    match crate::store::copy::run_copy(from, to, progress) {
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
