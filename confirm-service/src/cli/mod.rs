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
///
/// `buffered` (the server): each line goes into one shared 64 KB buffer under a lock, and a
/// thread writes the buffer out every [`FLUSH_EVERY`] (and whenever it fills), so a busy server
/// makes one `write` per batch of lines instead of one per line (the per-RPC line's `write`
/// was about 5 µs of a confirmation's CPU; docs/performance.md). A line reaches stderr at most
/// [`FLUSH_EVERY`] late; the lines of the last [`FLUSH_EVERY`] are lost if the process is
/// killed with SIGKILL (the audit log, not this log, is the durable record). The returned
/// guard writes out what is left when dropped: keep it until the process ends.
pub fn init_tracing(format: LogFormat, buffered: bool) -> Option<LogFlusher> {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_env("ONSHI_LOG"))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal();
    let (writer, flusher) = if buffered {
        let flusher = LogFlusher::start();
        (
            tracing_subscriber::fmt::writer::BoxMakeWriter::new(flusher.writer()),
            Some(flusher),
        )
    } else {
        (
            tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stderr),
            None,
        )
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let _ = match format {
        LogFormat::Text => builder.with_ansi(ansi).try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    flusher
}

/// How late a buffered log line may reach stderr.
pub const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

type LogBuffer = std::sync::Arc<std::sync::Mutex<std::io::BufWriter<std::io::Stderr>>>;

/// The server's log buffer and the thread that writes it out (see [`init_tracing`]).
#[derive(Debug)]
pub struct LogFlusher {
    buffer: LogBuffer,
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LogFlusher {
    fn start() -> LogFlusher {
        let buffer: LogBuffer = std::sync::Arc::new(std::sync::Mutex::new(
            std::io::BufWriter::with_capacity(64 * 1024, std::io::stderr()),
        ));
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let shared = buffer.clone();
        let thread = std::thread::Builder::new()
            .name("log-flusher".into())
            .spawn(move || {
                // Until the guard is dropped (the sender goes away).
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(FLUSH_EVERY)
                {
                    flush(&shared);
                }
            })
            .ok();
        LogFlusher {
            buffer,
            stop: Some(stop),
            thread,
        }
    }

    fn writer(&self) -> SharedLog {
        SharedLog(self.buffer.clone())
    }
}

impl Drop for LogFlusher {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        flush(&self.buffer);
    }
}

fn flush(buffer: &LogBuffer) {
    use std::io::Write as _;
    let _ = buffer.lock().unwrap_or_else(|p| p.into_inner()).flush();
}

/// What the log layer writes each line to: the shared buffer, locked for that line.
#[derive(Debug, Clone)]
struct SharedLog(LogBuffer);

/// One line's hold on the buffer. Its `flush` does nothing: the flusher thread writes out.
struct LockedLog<'a>(std::sync::MutexGuard<'a, std::io::BufWriter<std::io::Stderr>>);

impl std::io::Write for LockedLog<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.0.write_all(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for SharedLog {
    type Writer = LockedLog<'a>;
    fn make_writer(&'a self) -> LockedLog<'a> {
        LockedLog(self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
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
