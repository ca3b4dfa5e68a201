//! The kiosk on a test bench: a private pcscd with one vpcd reader, a virtual-card rack that
//! inserts and removes cards in it on command, the confirmation service, and
//! `reader-agent kiosk` serving the patient's screens and, on another port, the staff's view,
//! both on free loopback ports, with one staff account made for the bench. Everything stops
//! when the rig is dropped, also when a test fails.
//!
//! The rig's requests are a well-behaved client's: the listener's own Host and Origin, JSON,
//! and the launch token read from the kiosk's state folder; the staff's requests carry the
//! log-in cookie. Attack tests build their own requests with [`request`].

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::http::{follow_events, request, Answer};
use crate::{
    bin, spawn_until_ready, spawn_until_ready_keeping, Guard, Pcscd, Rack, Result, Service, World,
};

/// The bench's staff member.
pub const STAFF_ID: &str = "S001";

#[derive(Debug)]
pub struct KioskRig {
    // Dropped in this order: the kiosk first, then the cards, then pcscd and the service.
    kiosk: Guard,
    pub rack: Rack,
    pub pcscd: Pcscd,
    pub service: Service,
    /// `127.0.0.1:PORT` of the patient's screens and API.
    pub addr: String,
    /// `127.0.0.1:PORT` of the staff's view and API.
    pub staff_addr: String,
    /// `127.0.0.1:PORT` of the kiosk's `/metrics`, when started with `--metrics-listen`.
    pub metrics_addr: Option<String>,
    /// The launch token (from `STATE-DIR/kiosk-token`).
    pub token: String,
    /// The bench's staff password (random per rig).
    pub staff_password: String,
    pub state_dir: tempfile::TempDir,
    /// How the kiosk was started, to start it again ([`KioskRig::restart_kiosk`]).
    launch: Launch,
    /// The service's configuration, to start it again ([`KioskRig::restart_service`]).
    service_config: PathBuf,
}

/// The kiosk's command line and the pcscd socket it talks to.
#[derive(Debug, Clone)]
struct Launch {
    program: PathBuf,
    args: Vec<std::ffi::OsString>,
    pcscd_socket: PathBuf,
}

impl Launch {
    /// Starts the kiosk; returns it with its two addresses once it says it is ready, and the
    /// metrics address it printed before, if any.
    fn spawn(&self) -> Result<(Guard, String, String, Option<String>)> {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .env("PCSCLITE_CSOCK_NAME", &self.pcscd_socket);
        let (guard, _lines, line, before) = spawn_until_ready_keeping(
            cmd,
            "reader-agent kiosk",
            "kiosk: ready on ",
            Stdio::inherit(),
        )?;
        let metrics = before.iter().find_map(|l| {
            Some(
                l.strip_prefix("kiosk: metrics on http://")?
                    .trim_end_matches("/metrics")
                    .to_owned(),
            )
        });
        // "kiosk: ready on ADDR staff ADDR (Ctrl-C to stop)"
        let words: Vec<&str> = line
            .trim_start_matches("kiosk: ready on ")
            .split_whitespace()
            .collect();
        match words.as_slice() {
            [addr, "staff", staff, ..] => {
                Ok((guard, (*addr).to_owned(), (*staff).to_owned(), metrics))
            }
            _ => Err(format!("no addresses in the kiosk's ready line {line:?}")),
        }
    }
}

/// Adds (or resets) a staff account in a kiosk state folder, the operator's way.
pub fn add_staff(state_dir: &Path, staff_id: &str, password: &str) -> Result<()> {
    use std::io::Write as _;
    let mut child = Command::new(bin("reader-agent")?)
        .args(["staff", "add", "--password-stdin", "--staff-id", staff_id])
        .arg("--state-dir")
        .arg(state_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run reader-agent staff add: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        writeln!(stdin, "{password}").map_err(|e| e.to_string())?;
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "reader-agent staff add failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn random_password() -> Result<String> {
    let mut bytes = [0u8; 12];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| "no randomness")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl KioskRig {
    /// Starts everything for the terminal `agent_toml` against a service with `service_config`;
    /// `extra` are more `reader-agent kiosk` options (free loopback ports unless `--listen` /
    /// `--staff-listen`).
    pub fn start(service_config: &Path, agent_toml: &Path, extra: &[&str]) -> Result<Self> {
        Self::start_with(service_config, agent_toml, extra, &[])
    }

    /// [`KioskRig::start`] with the kiosk started through `wrapper` (a command that execs the
    /// rest, e.g. `setpriv … --`), so its process id is the kiosk's.
    pub fn start_with(
        service_config: &Path,
        agent_toml: &Path,
        extra: &[&str],
        wrapper: &[&str],
    ) -> Result<Self> {
        let service = Service::start(service_config)?;
        let pcscd = Pcscd::start()?;
        let rack = Rack::start(&[&pcscd])?;
        let state_dir = tempfile::Builder::new()
            .prefix("onshi-kiosk-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let staff_password = random_password()?;
        add_staff(state_dir.path(), STAFF_ID, &staff_password)?;
        let agent = bin("reader-agent")?;
        let (program, mut args): (PathBuf, Vec<std::ffi::OsString>) = match wrapper.split_first() {
            Some((first, rest)) => (
                PathBuf::from(first),
                rest.iter()
                    .map(Into::into)
                    .chain([agent.clone().into_os_string()])
                    .collect(),
            ),
            None => (agent.clone(), Vec::new()),
        };
        args.extend(["kiosk".into(), "--config".into(), agent_toml.into()]);
        args.extend(["--service".into(), service.url().into()]);
        if !extra.contains(&"--listen") {
            args.extend(["--listen".into(), "127.0.0.1:0".into()]);
        }
        if !extra.contains(&"--staff-listen") {
            args.extend(["--staff-listen".into(), "127.0.0.1:0".into()]);
        }
        args.extend(["--reader".into(), Pcscd::slot_reader(0).into()]);
        args.extend(["--state-dir".into(), state_dir.path().into()]);
        args.extend(extra.iter().map(Into::into));
        let launch = Launch {
            program,
            args,
            pcscd_socket: pcscd.socket(),
        };
        let (guard, addr, staff_addr, metrics_addr) = launch.spawn()?;
        let token = std::fs::read_to_string(state_dir.path().join("kiosk-token"))
            .map_err(|e| format!("cannot read the kiosk's token: {e}"))?;
        Ok(Self {
            kiosk: guard,
            rack,
            pcscd,
            service,
            addr,
            staff_addr,
            metrics_addr,
            token: token.trim().to_owned(),
            staff_password,
            state_dir,
            launch,
            service_config: service_config.to_owned(),
        })
    }

    /// Kills the kiosk with SIGKILL (no chance to clean up) and reaps it.
    pub fn kill_kiosk_hard(&mut self) -> Result<()> {
        let pid = self.kiosk.id().ok_or("the kiosk has already stopped")?;
        crate::send_signal(pid, rustix::process::Signal::KILL)?;
        self.kiosk.wait(Duration::from_secs(10)).map(|_| ())
    }

    /// Starts the kiosk again as it was started, on the same state folder (new ports, a new
    /// launch token).
    pub fn restart_kiosk(&mut self) -> Result<()> {
        let (guard, addr, staff_addr, metrics_addr) = self.launch.spawn()?;
        self.kiosk = guard;
        self.addr = addr;
        self.staff_addr = staff_addr;
        self.metrics_addr = metrics_addr;
        let token = std::fs::read_to_string(self.state_dir.path().join("kiosk-token"))
            .map_err(|e| format!("cannot read the kiosk's token: {e}"))?;
        self.token = token.trim().to_owned();
        Ok(())
    }

    /// Starts the kiosk's command line again with `extra` options, as a one-off command
    /// (e.g. to see it refuse to start); returns its output.
    pub fn run_kiosk_once(&self, timeout: Duration) -> Result<std::process::Output> {
        let mut cmd = Command::new(&self.launch.program);
        cmd.args(&self.launch.args)
            .env("PCSCLITE_CSOCK_NAME", &self.launch.pcscd_socket);
        crate::run_bounded(cmd, timeout)
    }

    /// Starts the service again on the address it had (after [`Service::kill_hard`]), so
    /// the kiosk finds it where it was.
    pub fn restart_service(&mut self) -> Result<()> {
        let mut cmd = Command::new(bin("confirm-service")?);
        cmd.args(["serve", "--config"])
            .arg(&self.service_config)
            .args(["--listen", &self.service.addr])
            .env("ONSHI_LOG", "warn");
        let (guard, _lines, line) =
            spawn_until_ready(cmd, "confirm-service", "confirm-service: listening on ")?;
        let addr = line
            .trim_start_matches("confirm-service: listening on ")
            .to_owned();
        self.service = Service {
            _guard: guard,
            addr,
        };
        Ok(())
    }

    /// The kiosk process's id.
    pub fn pid(&self) -> Option<u32> {
        self.kiosk.id()
    }

    /// A page or API address on the patient's listener.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The address that opens the patient's screens in a browser (it carries the token, which
    /// the page then sends with every request).
    pub fn launch_url(&self) -> String {
        self.url(&format!("/?token={}", self.token))
    }

    /// A page or API address on the staff's listener.
    pub fn staff_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.staff_addr)
    }

    /// Places a card (a profile file) on the reader.
    pub fn insert(&self, profile: &Path) -> Result<()> {
        let profile = profile.to_str().ok_or("profile path is not UTF-8")?;
        match self.rack.ctl(&["insert", "0", profile])? {
            (Some(0), _) => Ok(()),
            (code, out) => Err(format!("rack insert failed ({code:?}): {out}")),
        }
    }

    /// Pulls the card out.
    pub fn remove(&self) -> Result<()> {
        match self.rack.ctl(&["remove", "0"])? {
            (Some(0), _) => Ok(()),
            (code, out) => Err(format!("rack remove failed ({code:?}): {out}")),
        }
    }

    /// A well-behaved script's request to `addr`: same origin, JSON, the secret `token`.
    fn scripted(
        addr: &str,
        token: &str,
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
        body: Option<Value>,
    ) -> Result<Answer> {
        let origin = format!("http://{addr}");
        let mut headers = vec![
            ("origin", origin.as_str()),
            ("content-type", "application/json"),
        ];
        if !token.is_empty() {
            headers.push(("x-onshi-token", token));
        }
        headers.extend_from_slice(extra);
        let body = body.map(|b| b.to_string());
        request(addr, method, path, &headers, body.as_deref())
    }

    pub fn state(&self) -> Result<Value> {
        Self::scripted(&self.addr, &self.token, "GET", "/api/state", &[], None)?.json()
    }

    /// POSTs to the kiosk's API as a script does.
    pub fn post(&self, path: &str, body: Value) -> Result<(u16, Value)> {
        let a = Self::scripted(&self.addr, &self.token, "POST", path, &[], Some(body))?;
        Ok((a.status, a.json()?))
    }

    /// Logs the bench's staff member in: the answer's cookie and secret are the log-in.
    pub fn staff_login(&self) -> Result<Staff<'_>> {
        let a = Self::scripted(
            &self.staff_addr,
            "",
            "POST",
            "/api/login",
            &[],
            Some(serde_json::json!({"staff_id": STAFF_ID, "password": self.staff_password})),
        )?;
        if a.status != 200 {
            return Err(format!("log-in refused: {} {}", a.status, a.body));
        }
        let cookie = a
            .header("set-cookie")
            .and_then(|c| c.split(';').next())
            .ok_or("the log-in set no cookie")?
            .to_owned();
        let secret = a.json()?["token"]
            .as_str()
            .ok_or("the log-in answered no secret")?
            .to_owned();
        Ok(Staff {
            rig: self,
            cookie,
            secret,
        })
    }

    /// Waits (bounded) until the kiosk shows `screen`; returns that state. Follows the
    /// kiosk's event stream (`/api/events`, which sends the current state first and then every
    /// change), as the page does, instead of polling.
    pub fn wait_screen(&self, screen: &str) -> Result<Value> {
        self.wait_state(Duration::from_secs(30), |state| state["screen"] == screen)
            .map_err(|e| format!("the kiosk did not reach {screen}: {e}"))
    }

    /// Waits (bounded) until the kiosk's state satisfies `done`; returns that state. Follows
    /// the kiosk's event stream (`/api/events`: the current state first, then every change).
    pub fn wait_state(&self, timeout: Duration, done: impl FnMut(&Value) -> bool) -> Result<Value> {
        let origin = format!("http://{}", self.addr);
        follow_events(
            &self.addr,
            "/api/events",
            &[("origin", &origin), ("x-onshi-token", &self.token)],
            "state",
            timeout,
            done,
        )
    }

    /// Where the face-failure counts are kept.
    pub fn state_path(&self) -> PathBuf {
        self.state_dir.path().to_owned()
    }
}

/// A logged-in staff member's client on the staff listener.
#[derive(Debug)]
pub struct Staff<'a> {
    rig: &'a KioskRig,
    /// `name=value` of the log-in cookie.
    pub cookie: String,
    /// The log-in's secret, sent as `X-Onshi-Token`.
    pub secret: String,
}

impl Staff<'_> {
    pub fn get(&self, path: &str) -> Result<Answer> {
        KioskRig::scripted(
            &self.rig.staff_addr,
            &self.secret,
            "GET",
            path,
            &[("cookie", &self.cookie)],
            None,
        )
    }

    pub fn post(&self, path: &str, body: Value) -> Result<(u16, Value)> {
        let a = KioskRig::scripted(
            &self.rig.staff_addr,
            &self.secret,
            "POST",
            path,
            &[("cookie", &self.cookie)],
            Some(body),
        )?;
        Ok((a.status, a.json()?))
    }

    /// Today's confirmations at this kiosk.
    pub fn confirmations(&self) -> Result<Value> {
        self.get("/api/staff/confirmations")?.json()
    }
}

/// A rig for a world's first in-operation terminal, with a private copy of one card (so its
/// PIN and face counters are the test's own).
#[derive(Debug)]
pub struct Bench {
    pub rig: KioskRig,
    _dir: tempfile::TempDir,
    /// The card's profile file.
    pub profile: PathBuf,
    pub pin: String,
}

impl Bench {
    pub fn start(world: &World, kind: &str, extra: &[&str]) -> Result<Self> {
        Self::start_with(world, kind, extra, &[])
    }

    /// [`Bench::start`] with the kiosk started through `wrapper` ([`KioskRig::start_with`]).
    pub fn start_with(world: &World, kind: &str, extra: &[&str], wrapper: &[&str]) -> Result<Self> {
        Self::start_on(world, kind, 0, extra, wrapper)
    }

    /// [`Bench::start_with`] on the world's `nth` in-operation terminal (0 and 1: the
    /// pharmacy's, 2: the clinic's, whose kiosk asks for the 電子処方箋 choice).
    pub fn start_on(
        world: &World,
        kind: &str,
        nth: usize,
        extra: &[&str],
        wrapper: &[&str],
    ) -> Result<Self> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let (profile, pin) = world.private_card(kind, dir.path())?;
        let rig = KioskRig::start_with(
            &world.dir.join("service.toml"),
            &world.terminal("in-operation", nth)?,
            extra,
            wrapper,
        )?;
        Ok(Self {
            rig,
            _dir: dir,
            profile,
            pin,
        })
    }
}
