//! `confirm-service institutions`: 導入医療機関リスト, the institutions with at least one
//! terminal in operation, read from the store's terminal registry, as CSV or JSON.

use std::io::Write;
use std::process::ExitCode;

use super::StoreLocation;
use crate::institutions;

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A header line, then one line per institution (UTF-8).
    Csv,
    /// One JSON array of objects with the CSV's columns as keys.
    Json,
}

/// Prints the list; exit code 2 when the store cannot be read.
pub fn run(location: StoreLocation, format: Format) -> ExitCode {
    let (store, _) = match super::audit::open_store(&location, "institutions") {
        Ok(s) => s,
        Err(code) => return code,
    };
    let listed = match store.institutions_in_operation() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("confirm-service institutions: {e}");
            return ExitCode::from(2);
        }
    };
    let list: Vec<_> = listed.iter().map(institutions::to_proto).collect();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let written = match format {
        Format::Csv => institutions::write_csv(&list, &mut out).map_err(|e| e.to_string()),
        Format::Json => {
            writeln!(out, "{}", institutions::to_json(&list)).map_err(|e| e.to_string())
        }
    };
    match written {
        Ok(()) => {
            eprintln!(
                "confirm-service institutions: {} institution(s)",
                list.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("confirm-service institutions: {e}");
            ExitCode::from(1)
        }
    }
}
