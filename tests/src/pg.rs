//! A private PostgreSQL server for tests (architecture.md "Storage", docs/storage.md).
//!
//! Debian's `postgresql` refuses to run as root, so the cluster lives in a temporary directory
//! owned by `postgres`, and `initdb` and `postgres` run through `runuser -u postgres`. The
//! server opens no TCP port at all: it listens on its Unix socket in that directory only, and
//! clients name the directory as the host (`postgres://postgres@%2Ftmp%2Fonshi-pg-…/db`). So no
//! port is ever picked, checked free and then raced for; two servers never clash.
//! Commits stay durable (`fsync` and `synchronous_commit` on, as in production); only `initdb`
//! skips its own syncs, since a test cluster that a crash damaged is thrown away anyway.
//!
//! Every server has a supervisor: a small shell that started it and waits on a pipe from the
//! test process. When the pipe closes (the [`PgServer`] is dropped, or the test process ends
//! in any way, SIGKILL included) the supervisor stops the server by its process id (fast
//! shutdown) and removes the directory. So [`PgServer::shared`], a server kept in a static
//! for a whole test binary (statics are never dropped), is cleaned up too.
//!
//! Readiness is the server's own "ready to accept connections" log line, never a sleep.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

use crate::Result;

/// The number in the socket's name (`.s.PGSQL.5432`): PostgreSQL's default, so a URL without
/// a port finds it. It names a file in the server's own directory, not a TCP port.
const SOCKET_PORT: u16 = 5432;

/// How long initdb plus start-up may take.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A private PostgreSQL server, stopped (and its directory removed) on drop.
#[derive(Debug)]
pub struct PgServer {
    dir: PathBuf,
    /// The server's process id (from `postmaster.pid`).
    pid: u32,
    supervisor: Child,
    /// Closing this tells the supervisor to stop the server.
    lifeline: Option<ChildStdin>,
}

impl PgServer {
    /// The server of this test binary, started on first use and shared by its tests (each
    /// test takes its own database with [`PgServer::create_database`]). Panics when the
    /// server cannot start: the tests cannot run without it.
    pub fn shared() -> &'static PgServer {
        static SERVER: OnceLock<PgServer> = OnceLock::new();
        SERVER.get_or_init(|| match PgServer::start() {
            Ok(s) => s,
            Err(e) => panic!("cannot start a private PostgreSQL server: {e}"),
        })
    }

    /// Initializes a cluster in a fresh directory and starts a server on it.
    pub fn start() -> Result<PgServer> {
        let bin = bin_dir()?;
        Self::init_and_spawn(&bin).map_err(|e| format!("postgres did not start: {e}"))
    }

    fn init_and_spawn(bin: &Path) -> Result<PgServer> {
        let dir = tempfile::Builder::new()
            .prefix("onshi-pg-")
            .tempdir_in(std::env::temp_dir())
            .map_err(|e| format!("cannot create a directory for PostgreSQL: {e}"))?;
        chown_to_postgres(dir.path())?;
        let mut initdb = Command::new("runuser");
        initdb
            .args(["-u", "postgres", "--"])
            .arg(bin.join("initdb"))
            .arg("-D")
            .arg(dir.path().join("data"))
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C"])
            .arg("--no-sync")
            .current_dir(dir.path());
        let out = crate::run_bounded(initdb, START_TIMEOUT)?;
        if !out.status.success() {
            return Err(format!(
                "initdb failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        // The supervisor removes the directory from now on (see the module documentation).
        Self::spawn(bin, &dir.keep())
    }

    fn spawn(bin: &Path, dir: &Path) -> Result<PgServer> {
        let data = dir.join("data");
        // $1 data directory, $2 directory to remove at the end, then the postgres command.
        // `read` returns at EOF, i.e. when the test process closed its end or ended.
        let script = r#"
            data="$1"; dir="$2"; shift 2
            "$@" &
            server=$!
            read _ || true
            if pid=$(head -n 1 "$data/postmaster.pid" 2>/dev/null); then
                kill -INT "$pid" 2>/dev/null
            else
                kill -TERM "$server" 2>/dev/null
            fi
            wait "$server"
            rm -rf "$dir"
        "#;
        let mut child = Command::new("sh")
            .args(["-c", script, "onshi-pg-supervisor"])
            .arg(&data)
            .arg(dir)
            .args(["runuser", "-u", "postgres", "--"])
            .arg(bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-p", &SOCKET_PORT.to_string()])
            .arg("-k")
            .arg(dir)
            .args([
                // The Unix socket in `dir` only: no TCP listener.
                "-c",
                "listen_addresses=",
                // Durable commits, as in production.
                "-c",
                "fsync=on",
                "-c",
                "synchronous_commit=on",
                // Two service instances with their pools, plus the tests' own connections.
                "-c",
                "max_connections=200",
                // Plain log lines, in English, so readiness can be recognized.
                "-c",
                "log_line_prefix=",
                "-c",
                "lc_messages=C",
            ])
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start the PostgreSQL supervisor: {e}"))?;
        let lifeline = child.stdin.take();
        let stderr = child.stderr.take().ok_or("no stderr from postgres")?;
        // Dropped on any failure below: stops whatever started and removes the directory.
        let mut server = PgServer {
            dir: dir.to_owned(),
            pid: 0,
            supervisor: child,
            lifeline,
        };
        let lines = log_reader(stderr);
        let deadline = Instant::now() + START_TIMEOUT;
        let mut log = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) if line.contains("database system is ready to accept connections") => {
                    break
                }
                Ok(line) if line.starts_with("FATAL:") || line.starts_with("PANIC:") => {
                    log.push(line);
                    return Err(log.join(" | ")); // dropping `server` cleans up
                }
                Ok(line) => log.push(line),
                Err(_) => {
                    return Err(format!(
                        "no readiness within {START_TIMEOUT:?}; log: {}",
                        log.join(" | ")
                    ));
                }
            }
        }
        let pid_file = std::fs::read_to_string(dir.join("data/postmaster.pid"))
            .map_err(|e| format!("postmaster.pid: {e}"))?;
        server.pid = pid_file
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| format!("no process id in postmaster.pid: {pid_file:?}"))?;
        Ok(server)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The cluster's directory (data directory and Unix socket inside).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The URL of database `name` on this server: its socket directory, percent-encoded, as
    /// the host.
    pub fn url(&self, name: &str) -> String {
        let dir = self.dir.to_string_lossy();
        let host = percent_encoding::utf8_percent_encode(&dir, percent_encoding::NON_ALPHANUMERIC);
        format!("postgres://postgres@{host}:{SOCKET_PORT}/{name}")
    }

    /// Creates a fresh, empty database whose name starts with `tag` (made safe as an
    /// identifier) and returns its URL.
    pub fn create_database(&self, tag: &str) -> Result<String> {
        static N: AtomicU32 = AtomicU32::new(0);
        let safe: String = tag
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        let name = format!("t_{safe}_{}", N.fetch_add(1, Ordering::Relaxed));
        let mut admin = postgres::Client::connect(&self.url("postgres"), postgres::NoTls)
            .map_err(|e| format!("cannot connect to the private PostgreSQL: {e}"))?;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .map_err(|e| format!("CREATE DATABASE {name}: {e}"))?;
        Ok(self.url(&name))
    }

    /// Stops the server (fast shutdown, by its process id) and waits (bounded) for the
    /// supervisor, which removes the directory once the server has exited.
    fn stop(&mut self) {
        if self.pid != 0 {
            let _ = crate::send_signal(self.pid, rustix::process::Signal::INT);
        }
        drop(self.lifeline.take());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match self.supervisor.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    // A server that ignored the fast shutdown: immediate shutdown.
                    if self.pid != 0 {
                        let _ = crate::send_signal(self.pid, rustix::process::Signal::QUIT);
                    }
                    let _ = self.supervisor.kill();
                    let _ = self.supervisor.wait();
                    break;
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin` (Debian's layout), or `ONSHI_PG_BIN`.
pub fn bin_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("ONSHI_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let root = Path::new("/usr/lib/postgresql");
    let entries = std::fs::read_dir(root).map_err(|e| {
        format!(
            "{}: {e}; install PostgreSQL (scripts/setup.sh installs Debian's postgresql)",
            root.display()
        )
    })?;
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((version, bin))
        })
        .max()
        .map(|(_, bin)| bin)
        .ok_or_else(|| format!("no PostgreSQL server under {}", root.display()))
}

fn chown_to_postgres(dir: &Path) -> Result<()> {
    let out = crate::run_bounded(
        {
            let mut c = Command::new("chown");
            c.arg("postgres:postgres").arg(dir);
            c
        },
        Duration::from_secs(10),
    )?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "cannot hand {} to the postgres user (run the tests as root): {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Forwards the server's log lines until start-up is decided, then keeps draining them (a
/// full pipe would block the server) without holding them.
fn log_reader(stderr: std::process::ChildStderr) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut forwarding = true;
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if forwarding && tx.send(line).is_err() {
                forwarding = false;
            }
        }
    });
    rx
}
