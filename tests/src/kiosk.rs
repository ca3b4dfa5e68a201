//! The kiosk on a test bench: a private pcscd with one vpcd reader, a virtual-card rack that
//! inserts and removes cards in it on command, the confirmation service, and
//! `reader-agent kiosk` serving its pages on a free loopback port. Everything stops when the
//! rig is dropped, also when a test fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::webdriver::http_json;
use crate::{bin, spawn_until_ready, Guard, Pcscd, Rack, Result, Service};

#[derive(Debug)]
pub struct KioskRig {
    // Dropped in this order: the kiosk first, then the cards, then pcscd and the service.
    _kiosk: Guard,
    pub rack: Rack,
    pub pcscd: Pcscd,
    pub service: Service,
    /// `127.0.0.1:PORT` of the kiosk's pages and API.
    pub addr: String,
    pub state_dir: tempfile::TempDir,
}

impl KioskRig {
    /// Starts everything for the terminal `agent_toml` against a service with `service_config`;
    /// `extra` are more `reader-agent kiosk` options (a free loopback port unless `--listen`).
    pub fn start(service_config: &Path, agent_toml: &Path, extra: &[&str]) -> Result<Self> {
        let service = Service::start(service_config)?;
        let pcscd = Pcscd::start()?;
        let rack = Rack::start(&[&pcscd])?;
        let state_dir = tempfile::Builder::new()
            .prefix("onshi-kiosk-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let mut cmd = Command::new(bin("reader-agent")?);
        cmd.arg("kiosk")
            .arg("--config")
            .arg(agent_toml)
            .args(["--service", &service.url()]);
        if !extra.contains(&"--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        cmd.args(["--reader", &Pcscd::slot_reader(0)])
            .arg("--state-dir")
            .arg(state_dir.path())
            .args(extra)
            .env("PCSCLITE_CSOCK_NAME", pcscd.socket());
        let (guard, _lines, line) =
            spawn_until_ready(cmd, "reader-agent kiosk", "kiosk: ready on ")?;
        let addr = line
            .trim_start_matches("kiosk: ready on ")
            .split_whitespace()
            .next()
            .ok_or("no address in the kiosk's ready line")?
            .to_owned();
        Ok(Self {
            _kiosk: guard,
            rack,
            pcscd,
            service,
            addr,
            state_dir,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
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

    pub fn state(&self) -> Result<Value> {
        Ok(http_json(&self.addr, "GET", "/api/state", None)?.1)
    }

    /// POSTs to the kiosk's API.
    pub fn post(&self, path: &str, body: Value) -> Result<(u16, Value)> {
        http_json(&self.addr, "POST", path, Some(body))
    }

    /// Waits (bounded) until the kiosk shows `screen`; returns that state.
    pub fn wait_screen(&self, screen: &str) -> Result<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let s = self.state()?;
            if s["screen"] == screen {
                return Ok(s);
            }
            if Instant::now() > deadline {
                return Err(format!("the kiosk did not reach {screen} within 30 s: {s}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Where the face-failure counts are kept.
    pub fn state_path(&self) -> PathBuf {
        self.state_dir.path().to_owned()
    }
}
