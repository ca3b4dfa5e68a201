//! `confirm-service audit`: query, verify and prune the audit log, reading the store directly.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use time::OffsetDateTime;

use super::StoreLocation;
use crate::audit::AuditQuery;
use crate::clock::Clock;
use crate::config::Config;
use crate::operator;

#[allow(clippy::too_many_arguments)]
pub fn query(
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
    let mut out = QuietPipe {
        inner: stdout.lock(),
        closed: false,
    };
    match operator::print_audit(store.as_ref(), &query, json, &mut out) {
        // The reader went away (`audit | head`): it has what it wanted; end quietly.
        Ok(_) if out.closed => ExitCode::SUCCESS,
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
pub(crate) fn open_store(
    location: &StoreLocation,
    what: &str,
) -> Result<(Arc<dyn crate::store::Store>, Option<Config>), ExitCode> {
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
    if !crate::store::is_postgres_url(&place) && !std::path::Path::new(&place).is_file() {
        return Err(fail(&format!("no store file at {place}")));
    }
    let store = crate::store::open(&place).map_err(|e| fail(&e))?;
    Ok((store, config))
}

pub fn verify(location: StoreLocation, head: Option<String>) -> ExitCode {
    use crate::audit_chain::{self, VerifyError};
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

/// `audit prune`: the retention counts back from `clock`'s now.
pub fn prune(
    location: StoreLocation,
    retention_days: Option<u32>,
    before: Option<OffsetDateTime>,
    clock: &dyn Clock,
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
                .unwrap_or(crate::config::DEFAULT_AUDIT_RETENTION_DAYS);
            if days == 0 {
                println!("confirm-service audit prune: the retention is 0 (keep everything)");
                return ExitCode::SUCCESS;
            }
            clock.now() - time::Duration::days(i64::from(days))
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

/// Standard output that a closed pipe (`audit | head`) silences instead of failing: the rest
/// of the output is dropped and `closed` says so.
struct QuietPipe<W> {
    inner: W,
    closed: bool,
}

impl<W: std::io::Write> std::io::Write for QuietPipe<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.closed {
            return Ok(buf.len());
        }
        match self.inner.write(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(buf.len())
            }
            other => other,
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self.inner.flush() {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(())
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    struct Closed;
    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
    }

    #[test]
    fn a_closed_pipe_ends_the_output_quietly() {
        let mut out = super::QuietPipe {
            inner: Closed,
            closed: false,
        };
        assert!(writeln!(out, "a line").is_ok());
        assert!(writeln!(out, "another").is_ok());
        assert!(out.flush().is_ok());
        assert!(out.closed);
        // Any other error is still an error.
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::StorageFull.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut full = super::QuietPipe {
            inner: Full,
            closed: false,
        };
        assert!(writeln!(full, "x").is_err());
    }
}
