//! The end-to-end harness: real processes, cleaned up even when a test fails.
//!
//! - [`Pcscd`]: a private pcscd with the vpcd driver (jpki-card.md §7): its own mount namespace
//!   with a temporary directory over `/run/pcscd`, its own reader.conf directory and its own
//!   vpcd port pair below 32768, so runs never share a reader or touch a system pcscd. Clients
//!   reach it through `PCSCLITE_CSOCK_NAME`; since the PC/SC client library reads that variable
//!   once per process, every PC/SC client here is a spawned process.
//! - [`Service`], [`Card`]: the confirmation service and a virtual card as child processes.
//! - [`run_agent`]: one `reader-agent confirm` run with PINs on stdin.
//! - [`grpc`]: mutual-TLS clients of the service with a terminal's identity, and card keys.
//! - [`pg`]: a private PostgreSQL server; [`store_suite`]: the storage conformance suite run
//!   against both stores.
//!
//! Readiness is awaited on signals the processes give (a line on stdout, a socket appearing),
//! never on fixed sleeps; every wait is bounded.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

pub mod batch;
pub mod grpc;
pub mod http;
pub mod inproc;
pub mod kiosk;
pub mod oqs;
pub mod pg;
pub mod proc_mem;
pub mod store_suite;
pub mod webdriver;

/// A harness failure, with enough context to debug a CI log.
pub type Result<T> = std::result::Result<T, String>;

/// Where the workspace's binaries are (built by `cargo build --workspace --bins`).
pub fn bin(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    // target/<profile>/deps/<test-binary> or target/<profile>/<binary> → target/<profile>/<name>
    let mut dir = exe.parent().ok_or("cannot locate the target directory")?;
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir = dir.parent().ok_or("cannot locate the target directory")?;
    }
    let path = dir.join(name);
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "{} is missing: build the binaries first (cargo build --workspace --bins)",
            path.display()
        ))
    }
}

/// Sends `signal` to process `pid` (through rustix, not by spawning `kill`). A process that
/// has already exited is not an error.
pub fn send_signal(pid: u32, signal: rustix::process::Signal) -> Result<()> {
    let raw = i32::try_from(pid).map_err(|_| format!("pid {pid} out of range"))?;
    let pid = rustix::process::Pid::from_raw(raw).ok_or("pid 0 names no process")?;
    match rustix::process::kill_process(pid, signal) {
        Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
        Err(e) => Err(format!("cannot signal process {raw}: {e}")),
    }
}

/// Kills and reaps a child on drop.
#[derive(Debug)]
pub struct Guard {
    child: Option<Child>,
    what: String,
}

impl Guard {
    pub fn new(child: Child, what: impl Into<String>) -> Self {
        Self {
            child: Some(child),
            what: what.into(),
        }
    }

    pub fn id(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends SIGTERM and waits (bounded) for the process to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = send_signal(child.id(), rustix::process::Signal::TERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => return,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    _ => break,
                }
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits for the process to exit by itself.
    pub fn wait(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let child = self.child.as_mut().ok_or("process already stopped")?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                self.child = None;
                return Ok(status);
            }
            if Instant::now() > deadline {
                return Err(format!("{} did not exit within {timeout:?}", self.what));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Reads a child's stdout on a thread and forwards lines, so a test can wait for one.
fn line_reader(stdout: std::process::ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    forward_lines(stdout, tx);
    rx
}

/// Forwards a stream's lines (lossily decoded, so an odd byte does not end the reading) on a
/// thread until the stream ends; keeps reading after the receiver is gone, so the writer
/// never blocks on a full pipe.
pub(crate) fn forward_lines(stream: impl std::io::Read + Send + 'static, tx: mpsc::Sender<String>) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        while matches!(reader.read_until(b'\n', &mut buf), Ok(n) if n > 0) {
            let line = String::from_utf8_lossy(&buf);
            let _ = tx.send(line.trim_end_matches(['\n', '\r']).to_string());
            buf.clear();
        }
    });
}

fn wait_for_line(
    rx: &mpsc::Receiver<String>,
    prefix: &str,
    timeout: Duration,
    what: &str,
) -> Result<String> {
    wait_for_line_keeping(rx, prefix, timeout, what).map(|(line, _)| line)
}

/// [`wait_for_line`], also returning the lines printed before the one waited for.
fn wait_for_line_keeping(
    rx: &mpsc::Receiver<String>,
    prefix: &str,
    timeout: Duration,
    what: &str,
) -> Result<(String, Vec<String>)> {
    let deadline = Instant::now() + timeout;
    let mut before = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.starts_with(prefix) => return Ok((line, before)),
            Ok(line) => before.push(line),
            Err(_) => {
                return Err(format!(
                    "{what} did not print {prefix:?} within {timeout:?}"
                ))
            }
        }
    }
}

/// Spawns `cmd` with stdout piped and waits (bounded) for its readiness line starting with
/// `ready`: the one way every long-running child of the harness is started.
fn spawn_until_ready(
    cmd: Command,
    what: &str,
    ready: &str,
) -> Result<(Guard, mpsc::Receiver<String>, String)> {
    spawn_until_ready_with(cmd, what, ready, Stdio::inherit())
}

/// [`spawn_until_ready`] with the process's stderr going to `stderr`.
fn spawn_until_ready_with(
    cmd: Command,
    what: &str,
    ready: &str,
    stderr: Stdio,
) -> Result<(Guard, mpsc::Receiver<String>, String)> {
    spawn_until_ready_keeping(cmd, what, ready, stderr)
        .map(|(guard, rx, line, _)| (guard, rx, line))
}

/// [`spawn_until_ready_with`], also returning what the process printed before its readiness
/// line (e.g. the addresses of listeners it bound on port 0).
#[allow(clippy::type_complexity)]
pub(crate) fn spawn_until_ready_keeping(
    mut cmd: Command,
    what: &str,
    ready: &str,
    stderr: Stdio,
) -> Result<(Guard, mpsc::Receiver<String>, String, Vec<String>)> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("cannot start {what}: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let guard = Guard::new(child, what);
    let rx = line_reader(stdout);
    let (line, before) = wait_for_line_keeping(&rx, ready, Duration::from_secs(20), what)?;
    Ok((guard, rx, line, before))
}

/// The network namespace of this test process's private pcscds and the card processes that
/// connect to them. vpcd listens on a port its configuration names (it has no "port 0" that
/// would say which port it took), so rather than picking a port that looks free on the host
/// and racing every other process for it, each test process gives its pcscds a namespace of
/// their own, with nothing else in it: its ports are handed out by a counter and are free by
/// construction. The reader agent and the service stay in the host's namespace; they reach
/// pcscd through its Unix socket, which a network namespace does not hide.
///
/// The namespace is held by a small shell that waits on a pipe from this process, so it ends
/// with the test process whatever way that ends (a static is never dropped).
#[derive(Debug)]
struct CardNet {
    holder: u32,
    _child: Child,
    _lifeline: std::process::ChildStdin,
}

fn card_net() -> Result<&'static CardNet> {
    static NET: OnceLock<std::result::Result<CardNet, String>> = OnceLock::new();
    NET.get_or_init(|| {
        let mut child = Command::new("unshare")
            .args([
                "-n",
                "sh",
                "-c",
                "ip link set lo up || exit 1; echo up; read _ || true",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start a network namespace with unshare -n: {e}"))?;
        let lifeline = child
            .stdin
            .take()
            .ok_or("no stdin for the namespace holder")?;
        let stdout = child
            .stdout
            .take()
            .ok_or("no stdout from the namespace holder")?;
        let lines = line_reader(stdout);
        let holder = child.id();
        match wait_for_line(&lines, "up", Duration::from_secs(10), "unshare -n") {
            Ok(_) => Ok(CardNet {
                holder,
                _child: child,
                _lifeline: lifeline,
            }),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!(
                    "{e} (a private network namespace needs root and `ip` from iproute2, \
                     which scripts/setup.sh installs)"
                ))
            }
        }
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// `program` run inside the cards' network namespace ([`card_net`]): `nsenter` enters it and
/// then executes `program` in the same process, so the child's id is the program's.
pub fn in_card_net(program: impl AsRef<std::ffi::OsStr>) -> Result<Command> {
    let net = card_net()?;
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net=/proc/{}/ns/net", net.holder))
        .arg("--")
        .arg(program);
    Ok(cmd)
}

/// The first vpcd port, vpcd's own default.
const FIRST_VPCD_PORT: u16 = 35963;
static NEXT_PORT: AtomicU16 = AtomicU16::new(0);

/// `count` consecutive ports in the cards' namespace, none handed out before: a vpcd reader
/// takes its CHANNELID port and the next.
fn next_ports(count: u16) -> Result<u16> {
    let n = NEXT_PORT.fetch_add(count, Ordering::SeqCst);
    FIRST_VPCD_PORT
        .checked_add(n)
        .filter(|p| p.checked_add(count).is_some())
        .ok_or_else(|| "this test process ran out of vpcd ports".to_owned())
}

fn reader_friendly_name(i: u16) -> String {
    if i == 0 {
        "Virtual PCD".to_owned()
    } else {
        format!("Virtual PCD R{i}")
    }
}

/// A private pcscd with the vpcd driver listening on its own port pair.
#[derive(Debug)]
pub struct Pcscd {
    guard: Guard,
    dir: tempfile::TempDir,
    port: u16,
    readers: u16,
}

impl Pcscd {
    /// Starts a private pcscd (root is needed for the mount namespace) with one vpcd reader.
    pub fn start() -> Result<Self> {
        Self::start_with_readers(1)
    }

    /// Starts a private pcscd with `readers` vpcd readers (two slots each) on consecutive
    /// port pairs. Reader 0 is `Virtual PCD`, reader *i* > 0 `Virtual PCD R<i>`; pcscd names
    /// their slots `<name> 00 00` and `<name> 00 01`.
    ///
    /// Beware: Debian's vpcd driver keeps its per-slot state in one table indexed by slot
    /// number only, so with several readers in one pcscd a card on reader 1 also shows up in
    /// reader 0 (found by experiment with vsmartcard-vpcd 0.9). Use one pcscd per reader to
    /// get several independent port pairs; `start()` does that.
    pub fn start_with_readers(readers: u16) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("onshi-pcscd-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let port = next_ports(2 * readers)?;
        let guard =
            Self::start_on(&dir, port, readers).map_err(|e| format!("pcscd did not start: {e}"))?;
        Ok(Self {
            guard,
            dir,
            port,
            readers,
        })
    }

    fn start_on(dir: &tempfile::TempDir, port: u16, readers: u16) -> Result<Guard> {
        let run = dir.path().join("run");
        let conf = dir.path().join("reader.conf.d");
        std::fs::create_dir_all(&run).map_err(|e| e.to_string())?;
        std::fs::create_dir_all(&conf).map_err(|e| e.to_string())?;
        let _ = std::fs::remove_file(run.join("pcscd.comm"));
        let conf_text: String = (0..readers)
            .map(|i| {
                let p = port + 2 * i;
                format!(
                    "FRIENDLYNAME \"{}\"\nDEVICENAME /dev/null:0x{p:04X}\nLIBPATH /usr/lib/pcsc/drivers/serial/libifdvpcd.so\nCHANNELID 0x{p:04X}\n\n",
                    reader_friendly_name(i)
                )
            })
            .collect();
        std::fs::write(conf.join("vpcd"), conf_text).map_err(|e| e.to_string())?;
        std::fs::create_dir_all("/run/pcscd")
            .map_err(|e| format!("cannot create /run/pcscd (run as root): {e}"))?;
        // The daemon sees `run` as /run/pcscd inside its own mount namespace only, and listens
        // for cards in the cards' network namespace.
        let script = format!(
            "mount --bind '{}' /run/pcscd && exec pcscd -f -c '{}'",
            run.display(),
            conf.display()
        );
        let child = in_card_net("unshare")?
            .args(["-m", "--propagation", "private", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start pcscd via unshare: {e}"))?;
        let mut guard = Guard::new(child, "pcscd");
        let socket = run.join("pcscd.comm");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            if let Some(child) = guard.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!("pcscd exited early with {status}"));
                }
            }
            if Instant::now() > deadline {
                return Err("pcscd's socket did not appear within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(guard)
    }

    /// The client socket, for `PCSCLITE_CSOCK_NAME`.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("run").join("pcscd.comm")
    }

    /// The vpcd address of slot 0, in the cards' network namespace: start a card process for
    /// it through [`in_card_net`] ([`Card::attach`] and [`Rack::start`] do).
    pub fn vpcd(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The base vpcd address (CHANNELID port) of reader `i`: its slot 0; slot 1 is the next
    /// port.
    pub fn vpcd_reader(&self, i: u16) -> String {
        format!("127.0.0.1:{}", self.port + 2 * i)
    }

    /// The number of vpcd readers.
    pub fn readers(&self) -> u16 {
        self.readers
    }

    /// The PC/SC reader name of slot `slot` (0 or 1) of this pcscd's first vpcd reader.
    pub fn slot_reader(slot: u16) -> String {
        format!("{} 00 {:02}", reader_friendly_name(0), slot % 2)
    }

    /// Waits (bounded) until pcscd reports slot 0 empty, e.g. after a card process stopped:
    /// vpcd notices a removal on its next presence poll, not at once.
    pub fn wait_until_empty(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = Command::new(bin("reader-agent")?)
                .arg("readers")
                .env("PCSCLITE_CSOCK_NAME", self.socket())
                .output()
                .map_err(|e| format!("reader-agent readers: {e}"))?;
            let text = String::from_utf8_lossy(&out.stdout);
            if text
                .lines()
                .any(|l| l.starts_with("Virtual PCD 00 00") && l.ends_with("empty"))
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("slot 0 still holds a card after 10 s: {text}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits (bounded) until pcscd reports a card in `reader` (e.g. `Virtual PCD 00 00`):
    /// a card attached to vpcd is seen by pcscd on the driver's next presence poll.
    pub fn wait_until_present(&self, reader: &str) -> Result<()> {
        self.wait_for_reader(reader, "card present")
    }

    /// Waits (bounded) until pcscd reports `reader` empty.
    pub fn wait_until_reader_empty(&self, reader: &str) -> Result<()> {
        self.wait_for_reader(reader, "empty")
    }

    fn wait_for_reader(&self, reader: &str, state: &str) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let out = Command::new(bin("reader-agent")?)
                .arg("readers")
                .env("PCSCLITE_CSOCK_NAME", self.socket())
                .output()
                .map_err(|e| format!("reader-agent readers: {e}"))?;
            let text = String::from_utf8_lossy(&out.stdout);
            if text
                .lines()
                .any(|l| l.starts_with(reader) && l.ends_with(state))
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("{reader} not {state:?} after 15 s: {text}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the daemon and starts a new one on the same port pair.
    pub fn restart(&mut self) -> Result<()> {
        self.guard.stop();
        self.guard = Self::start_on(&self.dir, self.port, self.readers)?;
        Ok(())
    }
}

/// The confirmation service as a child process.
#[derive(Debug)]
pub struct Service {
    _guard: Guard,
    pub addr: String,
}

impl Service {
    pub fn start(config: &Path) -> Result<Self> {
        Self::start_with(config, &[])
    }

    /// [`Service::start`] logging at `info` into the file `log` (its stderr).
    pub fn start_logged(config: &Path, log: &Path) -> Result<Self> {
        let file = std::fs::File::create(log)
            .map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let mut cmd = Command::new(bin("confirm-service")?);
        cmd.args(["serve", "--config"])
            .arg(config)
            .args(["--listen", "127.0.0.1:0"])
            .env("ONSHI_LOG", "info")
            .env("NO_COLOR", "1");
        let (guard, _lines, line) = spawn_until_ready_with(
            cmd,
            "confirm-service",
            "confirm-service: listening on ",
            Stdio::from(file),
        )?;
        Ok(Self {
            _guard: guard,
            addr: line
                .trim_start_matches("confirm-service: listening on ")
                .to_owned(),
        })
    }

    /// [`Service::start`] with more `serve` options (`extra`), RUST_LOG at `info` and its
    /// stderr into the file `log`; returns it and the lines
    /// it printed on stdout before it said it was listening (`confirm-service: metrics on …`,
    /// `confirm-service: health on …` for listeners asked for on port 0).
    pub fn start_with_options(
        config: &Path,
        log: &Path,
        extra: &[&str],
    ) -> Result<(Self, Vec<String>)> {
        let file = std::fs::File::create(log)
            .map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let mut cmd = Command::new(bin("confirm-service")?);
        cmd.args(["serve", "--config"])
            .arg(config)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .env_remove("ONSHI_LOG")
            .env("RUST_LOG", "info");
        let (guard, _lines, line, before) = spawn_until_ready_keeping(
            cmd,
            "confirm-service",
            "confirm-service: listening on ",
            Stdio::from(file),
        )?;
        Ok((
            Self {
                _guard: guard,
                addr: line
                    .trim_start_matches("confirm-service: listening on ")
                    .to_owned(),
            },
            before,
        ))
    }

    /// [`Service::start`] through `wrapper`, a command that execs the rest (e.g.
    /// `prlimit --nofile=256:256 --`), so the process id is the service's.
    pub fn start_with(config: &Path, wrapper: &[&str]) -> Result<Self> {
        let service = bin("confirm-service")?;
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(&service);
                c
            }
            None => Command::new(&service),
        };
        cmd.args(["serve", "--config"])
            .arg(config)
            .args(["--listen", "127.0.0.1:0"])
            .env("ONSHI_LOG", "warn");
        let (guard, _lines, line) =
            spawn_until_ready(cmd, "confirm-service", "confirm-service: listening on ")?;
        let addr = line
            .trim_start_matches("confirm-service: listening on ")
            .to_owned();
        Ok(Self {
            _guard: guard,
            addr,
        })
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The service process's id.
    pub fn pid(&self) -> Option<u32> {
        self._guard.id()
    }

    /// Kills the service with SIGKILL (no chance to flush or clean up) and reaps it.
    pub fn kill_hard(&mut self) -> Result<()> {
        let pid = self._guard.id().ok_or("the service has already stopped")?;
        send_signal(pid, rustix::process::Signal::KILL)?;
        self._guard.wait(Duration::from_secs(10)).map(|_| ())
    }
}

/// A virtual card attached to a pcscd's vpcd port.
#[derive(Debug)]
pub struct Card {
    pub guard: Guard,
    /// The card process's stdout lines after the "attached" line.
    pub lines: mpsc::Receiver<String>,
}

impl Card {
    /// Attaches the card in `profile` to `vpcd` (a [`Pcscd::vpcd`] address).
    pub fn attach(profile: &Path, vpcd: &str, extra: &[&str]) -> Result<Self> {
        let mut cmd = in_card_net(bin("virtual-card")?)?;
        cmd.arg("attach")
            .arg("--profile")
            .arg(profile)
            .args(["--vpcd", vpcd])
            .args(extra);
        Self::spawn(cmd)
    }

    /// `virtual-card replay --trace FILE`: a recorded session acting as the card.
    pub fn replay(trace: &Path, vpcd: &str) -> Result<Self> {
        let mut cmd = in_card_net(bin("virtual-card")?)?;
        cmd.arg("replay")
            .arg("--trace")
            .arg(trace)
            .args(["--vpcd", vpcd]);
        Self::spawn(cmd)
    }

    fn spawn(cmd: Command) -> Result<Self> {
        let (guard, lines, _) = spawn_until_ready(cmd, "virtual-card", "virtual-card: attached")?;
        Ok(Self { guard, lines })
    }

    /// Waits (bounded) for a stdout line starting with `prefix`.
    pub fn wait_line(&self, prefix: &str, timeout: Duration) -> Result<String> {
        wait_for_line(&self.lines, prefix, timeout, "virtual-card")
    }

    /// The stdout lines printed so far (without waiting).
    pub fn printed(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }
}

/// The outcome of one agent run.
#[derive(Debug)]
pub struct AgentRun {
    pub code: Option<i32>,
    pub json: serde_json::Value,
    pub stderr: String,
}

/// Runs `reader-agent confirm --json --pin-stdin` against a private pcscd.
pub fn run_agent(
    pcscd: &Pcscd,
    agent_toml: &Path,
    service: &Service,
    pins: &str,
    extra: &[&str],
) -> Result<AgentRun> {
    let out = run_agent_raw(
        pcscd,
        agent_toml,
        service,
        pins,
        &[&["--json"], extra].concat(),
    )?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_str(&stdout).map_err(|e| {
        format!("reader-agent printed no JSON ({e}); stdout: {stdout}; stderr: {stderr}")
    })?;
    Ok(AgentRun {
        code: out.status.code(),
        json,
        stderr,
    })
}

/// Runs `reader-agent confirm --pin-stdin` and returns its raw output.
pub fn run_agent_raw(
    pcscd: &Pcscd,
    agent_toml: &Path,
    service: &Service,
    pins: &str,
    extra: &[&str],
) -> Result<std::process::Output> {
    run_agent_command("confirm", pcscd, agent_toml, service, pins, extra)
}

/// Runs `reader-agent <subcommand> --json --pin-stdin` (confirm or register) and parses its
/// JSON outcome.
pub fn run_agent_json(
    subcommand: &str,
    pcscd: &Pcscd,
    agent_toml: &Path,
    service: &Service,
    pins: &str,
) -> Result<AgentRun> {
    agent_run(run_agent_command(
        subcommand,
        pcscd,
        agent_toml,
        service,
        pins,
        &["--json"],
    )?)
}

/// Runs `reader-agent <subcommand> --json` without a PIN, in face or visual-check mode
/// (`mode`: `["--face"]` or `["--visual-check", "--staff-id", ID]`), and parses its outcome.
pub fn run_agent_by_reader(
    subcommand: &str,
    pcscd: &Pcscd,
    agent_toml: &Path,
    service: &Service,
    mode: &[&str],
) -> Result<AgentRun> {
    let mut cmd = agent_command(subcommand, pcscd, agent_toml, service)?;
    cmd.arg("--json").args(mode);
    agent_run(run_with_stdin(cmd, "", "reader-agent")?)
}

/// A `--json` run's exit code, parsed outcome and stderr.
fn agent_run(out: std::process::Output) -> Result<AgentRun> {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_str(&stdout).map_err(|e| {
        format!("reader-agent printed no JSON ({e}); stdout: {stdout}; stderr: {stderr}")
    })?;
    Ok(AgentRun {
        code: out.status.code(),
        json,
        stderr,
    })
}

/// `reader-agent <subcommand> --wait 20 --config … --service …` on the private pcscd.
fn agent_command(
    subcommand: &str,
    pcscd: &Pcscd,
    agent_toml: &Path,
    service: &Service,
) -> Result<Command> {
    let mut cmd = Command::new(bin("reader-agent")?);
    cmd.args([subcommand, "--wait", "20", "--config"])
        .arg(agent_toml)
        .args(["--service", &service.url()])
        .env("PCSCLITE_CSOCK_NAME", pcscd.socket());
    Ok(cmd)
}

fn run_agent_command(
    subcommand: &str,
    pcscd: &Pcscd,
    agent_toml: &Path,
    service: &Service,
    pins: &str,
    extra: &[&str],
) -> Result<std::process::Output> {
    let mut cmd = agent_command(subcommand, pcscd, agent_toml, service)?;
    cmd.arg("--pin-stdin").args(extra);
    run_with_stdin(cmd, pins, "reader-agent")
}

/// Runs a short-lived command with `input` on its stdin and collects its output; killed if it
/// has not finished within 60 s (its own waits are bounded too: this is the backstop).
pub fn run_with_stdin(mut cmd: Command, input: &str, what: &str) -> Result<std::process::Output> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {what}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        match stdin.write_all(input.as_bytes()) {
            // The process may end before it reads its input (e.g. a usage error found in its
            // arguments): what it printed and its exit status are the result, not the pipe.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            other => other.map_err(|e| e.to_string())?,
        }
    }
    let (tx, rx) = mpsc::channel();
    let id = child.id();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(o) => o.map_err(|e| e.to_string()),
        Err(_) => {
            let _ = send_signal(id, rustix::process::Signal::KILL);
            Err(format!("{what} did not finish within 60 s"))
        }
    }
}

/// A built world, shared by the tests of one test binary.
#[derive(Debug)]
pub struct World {
    pub dir: PathBuf,
    pub manifest: serde_json::Value,
}

impl World {
    /// The world of this test binary: built once (on first use) into `<tmp>/<name>` with
    /// `cards` cards, then shared by every test of the binary. `tmp` is the test's
    /// `env!("CARGO_TARGET_TMPDIR")`. Panics if the build fails: the tests cannot run without it.
    pub fn shared(tmp: &str, name: &str, cards: u32) -> &'static World {
        static WORLD: std::sync::OnceLock<World> = std::sync::OnceLock::new();
        WORLD.get_or_init(|| match World::build(&Path::new(tmp).join(name), cards) {
            Ok(w) => w,
            Err(e) => panic!("cannot build the test world {name}: {e}"),
        })
    }

    /// Builds a world with the `testbed` binary.
    pub fn build(dir: &Path, cards: u32) -> Result<Self> {
        let status = Command::new(bin("testbed")?)
            .args(["build", "--force", "--persons", "60", "--cards"])
            .arg(cards.to_string())
            .arg("--out")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .map_err(|e| format!("cannot run testbed: {e}"))?;
        if !status.success() {
            return Err(format!("testbed build failed: {status}"));
        }
        let text = std::fs::read_to_string(dir.join("world.json")).map_err(|e| e.to_string())?;
        let manifest = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        Ok(Self {
            dir: dir.to_owned(),
            manifest,
        })
    }

    /// The manifest entry of the card of a kind (`valid`, `revoked`, ...), or of the card of
    /// that name (`card-0015`).
    pub fn card(&self, kind: &str) -> Result<&serde_json::Value> {
        self.manifest["cards"]
            .as_array()
            .and_then(|cards| {
                cards
                    .iter()
                    .find(|c| c["kind"] == kind || c["name"] == kind)
            })
            .ok_or_else(|| format!("the world has no {kind} card"))
    }

    /// Copies a card's profile into `into` (so a test's PIN counter is its own) and returns
    /// the copy's path.
    pub fn private_card(&self, kind: &str, into: &Path) -> Result<(PathBuf, String)> {
        let card = self.card(kind)?;
        let rel = card["profile"].as_str().ok_or("card without profile")?;
        let src = self.dir.join(rel);
        let dst = into.join(src.file_name().ok_or("bad profile path")?);
        std::fs::copy(&src, &dst).map_err(|e| format!("copy {}: {e}", src.display()))?;
        let pin = card["pin"].as_str().ok_or("card without pin")?.to_owned();
        Ok((dst, pin))
    }

    /// A copy of the world's service.toml with `extra` TOML appended (e.g. a `[rate_limit]`
    /// table), written beside it as `name` so its relative paths still hold.
    pub fn service_config_with(&self, name: &str, extra: &str) -> Result<PathBuf> {
        let text = std::fs::read_to_string(self.dir.join("service.toml"))
            .map_err(|e| format!("read service.toml: {e}"))?;
        let path = self.dir.join(name);
        std::fs::write(&path, format!("{text}\n{extra}\n"))
            .map_err(|e| format!("write {}: {e}", path.display()))?;
        Ok(path)
    }

    /// A configuration like `base` (a service.toml in the world's folder) on a consistent copy
    /// of the world's store of the caller's own, `store-<name>/onshi.sqlite`, written as
    /// `service-<name>.toml`. For tests that change the store under the service, or whose
    /// services run on moved clocks (every service leases the store's unfinished batch jobs).
    pub fn own_store_config(&self, name: &str, base: &Path) -> Result<PathBuf> {
        let dir = self.dir.join(format!("store-{name}"));
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let copy = dir.join("onshi.sqlite");
        let _ = std::fs::remove_file(&copy);
        let source =
            onshi_confirm_service::store::SqliteStore::open(&self.dir.join("store/onshi.sqlite"))
                .map_err(|e| format!("the world's store: {e}"))?;
        let copy_path = copy.to_str().ok_or("a store path that is not UTF-8")?;
        // A consistent snapshot of a store other tests are writing to.
        source
            .with_connection(|c| c.execute("VACUUM INTO ?1", [copy_path]))
            .map_err(|e| format!("copy the world's store: {e}"))?;
        let text =
            std::fs::read_to_string(base).map_err(|e| format!("read {}: {e}", base.display()))?;
        let text = text.replacen(
            "store = \"store/onshi.sqlite\"",
            &format!("store = \"store-{name}/onshi.sqlite\""),
            1,
        );
        if !text.contains(&format!("store-{name}/")) {
            return Err(format!("{} names no store", base.display()));
        }
        let path = self.dir.join(format!("service-{name}.toml"));
        std::fs::write(&path, text).map_err(|e| format!("write {}: {e}", path.display()))?;
        Ok(path)
    }

    /// The folder of the in-operation terminal called `name` (a rogue terminal may share the
    /// name; it is not in operation).
    pub fn in_operation_terminal_dir(&self, name: &str) -> Result<PathBuf> {
        let t = self.manifest["terminals"]
            .as_array()
            .and_then(|ts| {
                ts.iter()
                    .find(|t| t["name"] == name && t["status"] == "in-operation")
            })
            .ok_or_else(|| format!("the world has no in-operation terminal {name}"))?;
        let dir = t["dir"].as_str().ok_or("terminal without dir")?;
        Ok(self.dir.join(dir))
    }

    /// The agent.toml of the terminal with this status (`in-operation`, `suspended`, ...).
    pub fn terminal(&self, status: &str, nth: usize) -> Result<PathBuf> {
        let t = self.manifest["terminals"]
            .as_array()
            .and_then(|ts| ts.iter().filter(|t| t["status"] == status).nth(nth))
            .ok_or_else(|| format!("the world has no {status} terminal #{nth}"))?;
        let dir = t["dir"].as_str().ok_or("terminal without dir")?;
        Ok(self.dir.join(dir).join("agent.toml"))
    }
}

/// Runs a command to completion with a bound on its run time; a command still running at
/// the deadline is killed and reported. For the foreign tools (OpenSC, openssl) the tests
/// drive as processes.
pub fn run_bounded(mut command: Command, timeout: Duration) -> Result<std::process::Output> {
    let what = format!("{command:?}");
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {what}: {e}"))?;
    let id = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(o) => o.map_err(|e| format!("{what}: {e}")),
        Err(_) => {
            let _ = send_signal(id, rustix::process::Signal::KILL);
            Err(format!("{what} did not finish within {timeout:?}"))
        }
    }
}

/// Runs `reader-agent change-pin --pin-stdin` against a private pcscd; `pins` holds the
/// current and the new PIN, one per line.
pub fn run_change_pin(pcscd: &Pcscd, pins: &str, extra: &[&str]) -> Result<std::process::Output> {
    let mut cmd = Command::new(bin("reader-agent")?);
    cmd.args(["change-pin", "--pin-stdin", "--wait", "20"])
        .args(extra)
        .env("PCSCLITE_CSOCK_NAME", pcscd.socket());
    run_with_stdin(cmd, pins, "reader-agent change-pin")
}

/// A `virtual-card serve` rack as a child process, driven through its control socket.
#[derive(Debug)]
pub struct Rack {
    pub guard: Guard,
    pub control: PathBuf,
    _dir: tempfile::TempDir,
}

impl Rack {
    /// Starts a rack over every vpcd reader of each pcscd, in order: the first pcscd's
    /// reader gives slots 0 and 1, the next one 2 and 3, and so on.
    pub fn start(pcscds: &[&Pcscd]) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("onshi-rack-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let control = dir.path().join("control.sock");
        let mut cmd = in_card_net(bin("virtual-card")?)?;
        cmd.arg("serve").arg("--control").arg(&control);
        for pcscd in pcscds {
            for i in 0..pcscd.readers() {
                cmd.args(["--vpcd", &pcscd.vpcd_reader(i)]);
            }
        }
        let (guard, _lines, _) =
            spawn_until_ready(cmd, "virtual-card serve", "virtual-card: serving")?;
        Ok(Self {
            guard,
            control,
            _dir: dir,
        })
    }

    /// Runs `virtual-card ctl` with one command; returns (exit code, stdout).
    pub fn ctl(&self, command: &[&str]) -> Result<(Option<i32>, String)> {
        let mut c = Command::new(bin("virtual-card")?);
        c.arg("ctl")
            .arg("--control")
            .arg(&self.control)
            .args(command);
        let out = run_bounded(c, Duration::from_secs(30))?;
        Ok((
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        ))
    }
}

// --- domain API test helpers ---

impl Service {
    /// Kills the service with SIGKILL, no clean shutdown (a crash), and reaps it: whatever it
    /// had not committed is lost, and whatever it had is in the store for the next start.
    pub fn kill(self) -> Result<ExitStatus> {
        let mut guard = self._guard;
        let mut child = guard.child.take().ok_or("the service already stopped")?;
        // `Child::kill` sends SIGKILL on Unix.
        child
            .kill()
            .map_err(|e| format!("cannot kill confirm-service: {e}"))?;
        child
            .wait()
            .map_err(|e| format!("cannot reap confirm-service: {e}"))
    }
}

/// A simulated phone (`virtual-phone`) serving a phone profile on a Unix socket of its own;
/// stopped on drop.
#[derive(Debug)]
pub struct Phone {
    _guard: Guard,
    pub socket: PathBuf,
}

impl Phone {
    /// Serves `profile` on `dir/<file stem>.sock`; `refuse`: the iPhone's holder refuses.
    pub fn start(profile: &Path, dir: &Path, refuse: bool) -> Result<Self> {
        Self::start_with(profile, dir, refuse, &[])
    }

    /// [`Phone::start`] with more `virtual-phone` arguments (`--verify-delay-ms N`).
    pub fn start_with(profile: &Path, dir: &Path, refuse: bool, extra: &[&str]) -> Result<Self> {
        let stem = profile
            .file_stem()
            .ok_or("a profile path without a file name")?
            .to_string_lossy()
            .into_owned();
        let socket = dir.join(format!(
            "{stem}{}.sock",
            if refuse { "-refuse" } else { "" }
        ));
        let _ = std::fs::remove_file(&socket);
        let mut cmd = Command::new(bin("virtual-phone")?);
        cmd.arg("--profile")
            .arg(profile)
            .arg("--socket")
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        if refuse {
            cmd.arg("--refuse");
        }
        cmd.args(extra);
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start virtual-phone: {e}"))?;
        let guard = Guard::new(child, "virtual-phone");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            if Instant::now() > deadline {
                return Err("virtual-phone did not listen within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Self {
            _guard: guard,
            socket,
        })
    }
}
