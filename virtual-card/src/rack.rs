//! Many cards in one process: a rack of vpcd slots that cards are inserted into and removed
//! from on command, so a test or a developer can script a morning of patients ("A inserts,
//! removes; B inserts") against one pcscd.
//!
//! Slots are numbered from 0 in the order of the vpcd readers given: reader *i* (a vpcd
//! `CHANNELID` port *p*) provides slot 2*i* at port *p* and slot 2*i*+1 at port *p*+1, which
//! pcscd shows as that reader's two slots. Each inserted card runs on its own thread and
//! connects to its slot's port like `virtual-card attach`; removing it closes the
//! connection, which is how vpcd sees a card pulled out.
//!
//! # Control protocol
//!
//! One command per line on the control socket (a Unix stream socket), one reply line each:
//! `ok ...` or `error ...`. `virtual-card ctl` sends them from the command line.
//!
//! | command | effect |
//! |---|---|
//! | `insert SLOT PROFILE [FAULT ...]` | insert the card of profile file PROFILE (its state file beside it) with extra scripted faults |
//! | `remove SLOT` | pull the card out of SLOT |
//! | `status` | `ok` then one `SLOT ADDRESS empty` or `SLOT ADDRESS NAME` per slot, on one line separated by `; ` |
//! | `shutdown` | remove every card and stop serving |
//!
//! Paths with spaces are not supported on the line protocol.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::card::{PersistHook, VirtualCard};
use crate::contents::CardContents;
use crate::fault::{Fault, FaultInjector, FaultPlan};
use crate::profile::{CardProfile, CardState};
use crate::trace::ApduTrace;
use crate::vpcd::{self, Outcome, VpcdConfig, VpcdEvent};

/// Longest control line accepted.
const MAX_LINE: usize = 4096;

/// Loads a profile and its state, builds the card with its state persisted beside the
/// profile, and applies the profile's faults plus `extra_faults`. Every failure is a
/// one-line message.
pub fn load_card(
    profile_path: &Path,
    extra_faults: &[String],
) -> Result<(VirtualCard, FaultPlan), String> {
    let profile = CardProfile::load(profile_path).map_err(|e| e.to_string())?;
    let state_path = CardProfile::state_path(profile_path);
    let state = CardState::load(&state_path).map_err(|e| e.to_string())?;
    let contents = CardContents::from_profile(&profile)
        .map_err(|e| format!("{}: {e}", profile_path.display()))?;
    let mut specs = profile.faults.clone();
    specs.extend(extra_faults.iter().cloned());
    let faults = FaultPlan::parse(&specs).map_err(|e| format!("fault: {e}"))?;
    let persist: PersistHook = Box::new(move |state: CardState| state.save(&state_path));
    let mut card = VirtualCard::new(contents, state, persist)
        .map_err(|e| format!("{}: {e}", profile_path.display()))?;
    faults.apply(&mut card)?;
    Ok((card, faults))
}

/// A card running in a slot.
struct Inserted {
    name: String,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
    live_faults: Arc<Mutex<Vec<Fault>>>,
}

/// The slots and the cards in them.
pub struct Rack {
    addresses: Vec<String>,
    slots: Vec<Option<Inserted>>,
    /// Names of cards whose removal fault fired, per slot, for `status`.
    pulled: Arc<Mutex<Vec<bool>>>,
}

impl std::fmt::Debug for Rack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rack")
            .field("addresses", &self.addresses)
            .finish_non_exhaustive()
    }
}

impl Rack {
    /// A rack over vpcd readers given by their base `HOST:PORT` (two slots each).
    pub fn new(readers: &[String]) -> Result<Self, String> {
        let mut addresses = Vec::new();
        for r in readers {
            let (host, port) = r
                .rsplit_once(':')
                .ok_or_else(|| format!("{r}: expected HOST:PORT"))?;
            let port: u16 = port
                .parse()
                .map_err(|_| format!("{r}: {port:?} is not a port"))?;
            let next = port
                .checked_add(1)
                .ok_or_else(|| format!("{r}: the second slot's port would overflow"))?;
            addresses.push(format!("{host}:{port}"));
            addresses.push(format!("{host}:{next}"));
        }
        if addresses.is_empty() {
            return Err("give at least one vpcd reader".into());
        }
        let n = addresses.len();
        Ok(Self {
            addresses,
            slots: (0..n).map(|_| None).collect(),
            pulled: Arc::new(Mutex::new(vec![false; n])),
        })
    }

    fn slot(&self, text: &str) -> Result<usize, String> {
        match text.parse::<usize>() {
            Ok(i) if i < self.slots.len() => Ok(i),
            _ => Err(format!(
                "no slot {text:?} (slots are 0 to {})",
                self.slots.len() - 1
            )),
        }
    }

    /// Inserts the card of `profile` into `slot`.
    pub fn insert(
        &mut self,
        slot: usize,
        profile: &Path,
        faults: &[String],
    ) -> Result<String, String> {
        if let Some(Some(card)) = self.slots.get(slot) {
            if !card.thread.is_finished() {
                return Err(format!(
                    "slot {slot} holds {} already; remove it first",
                    card.name
                ));
            }
        }
        self.remove(slot).ok();
        let (mut card, plan) = load_card(profile, faults)?;
        let name = card.name().to_owned();
        let address = self
            .addresses
            .get(slot)
            .cloned()
            .ok_or_else(|| format!("no slot {slot}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = stop.clone();
        let pulled = self.pulled.clone();
        if let Ok(mut p) = pulled.lock() {
            if let Some(flag) = p.get_mut(slot) {
                *flag = false;
            }
        }
        let thread_name = name.clone();
        let live_faults = Arc::new(Mutex::new(Vec::new()));
        let thread_live = live_faults.clone();
        let thread = std::thread::Builder::new()
            .name(format!("slot-{slot}"))
            .spawn(move || {
                let config = VpcdConfig {
                    faults: plan,
                    live_faults: Some(thread_live),
                    ..VpcdConfig::new(address)
                };
                let mut trace = ApduTrace::disabled();
                let mut on_event = |event: VpcdEvent<'_>| {
                    if let VpcdEvent::Connected { address } = event {
                        tracing::info!(card = %thread_name, %address, slot, "inserted");
                    }
                };
                let outcome =
                    vpcd::run(&mut card, &config, &mut trace, &thread_stop, &mut on_event);
                if let Outcome::Removed { .. } = outcome {
                    tracing::info!(card = %thread_name, slot, "removed by a scripted fault");
                    if let Ok(mut p) = pulled.lock() {
                        if let Some(flag) = p.get_mut(slot) {
                            *flag = true;
                        }
                    }
                }
            })
            .map_err(|e| format!("cannot start the card thread: {e}"))?;
        if let Some(s) = self.slots.get_mut(slot) {
            *s = Some(Inserted {
                name: name.clone(),
                stop,
                thread,
                live_faults,
            });
        }
        Ok(format!("inserted {name} into slot {slot}"))
    }

    /// Pulls the card out of `slot` (waits, bounded, for its thread to close the connection).
    pub fn remove(&mut self, slot: usize) -> Result<String, String> {
        let card = self
            .slots
            .get_mut(slot)
            .ok_or_else(|| format!("no slot {slot}"))?
            .take()
            .ok_or_else(|| format!("slot {slot} is empty"))?;
        card.stop.store(true, Ordering::Relaxed);
        // The card thread looks at the flag at least every 100 ms.
        for _ in 0..50 {
            if card.thread.is_finished() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if card.thread.is_finished() {
            let _ = card.thread.join();
        }
        Ok(format!("removed {} from slot {slot}", card.name))
    }

    /// Arms transport faults on the card in `slot` while it runs.
    pub fn arm(&mut self, slot: usize, specs: &[String]) -> Result<String, String> {
        let plan = FaultPlan::parse(specs)?;
        if plan.is_empty() {
            return Err("give at least one fault".into());
        }
        if let Some(f) = plan.faults.iter().find(|f| !FaultInjector::can_arm_live(f)) {
            return Err(format!(
                "fault {f} changes what the card holds and applies at insertion only: remove the card and insert it with the fault"
            ));
        }
        let card = self
            .slots
            .get(slot)
            .and_then(Option::as_ref)
            .filter(|c| !c.thread.is_finished())
            .ok_or_else(|| format!("slot {slot} is empty"))?;
        let mut armed = card
            .live_faults
            .lock()
            .map_err(|_| "the card thread failed".to_owned())?;
        armed.extend(plan.faults.iter().cloned());
        Ok(format!("armed {plan} on {} in slot {slot}", card.name))
    }

    /// One entry per slot: `SLOT ADDRESS empty|NAME`.
    pub fn status(&self) -> Vec<String> {
        let pulled = self.pulled.lock().map(|p| p.clone()).unwrap_or_default();
        self.addresses
            .iter()
            .zip(&self.slots)
            .enumerate()
            .map(|(i, (address, card))| match card {
                Some(c) if pulled.get(i).copied().unwrap_or(false) => {
                    format!("{i} {address} empty ({} pulled out by a fault)", c.name)
                }
                Some(c) => format!("{i} {address} {}", c.name),
                None => format!("{i} {address} empty"),
            })
            .collect()
    }

    /// Removes every card.
    pub fn remove_all(&mut self) {
        for slot in 0..self.slots.len() {
            let _ = self.remove(slot);
        }
    }

    /// Executes one control line; `Ok(None)` means shut down.
    pub fn execute(&mut self, line: &str) -> Result<Option<String>, String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["insert", slot, profile, faults @ ..] => {
                let slot = self.slot(slot)?;
                let faults: Vec<String> = faults.iter().map(|s| (*s).to_owned()).collect();
                self.insert(slot, Path::new(profile), &faults).map(Some)
            }
            ["remove", slot] => {
                let slot = self.slot(slot)?;
                self.remove(slot).map(Some)
            }
            ["arm", slot, faults @ ..] => {
                let slot = self.slot(slot)?;
                let faults: Vec<String> = faults.iter().map(|s| (*s).to_owned()).collect();
                self.arm(slot, &faults).map(Some)
            }
            ["status"] => Ok(Some(self.status().join("; "))),
            ["shutdown"] => {
                self.remove_all();
                Ok(None)
            }
            [] => Err("empty command".into()),
            _ => Err(format!(
                "unknown command {line:?} (insert SLOT PROFILE [FAULT ...], remove SLOT, arm SLOT FAULT ..., status, shutdown)"
            )),
        }
    }
}

/// Serves the control socket until `shutdown`. Connections are handled one at a time, each
/// for as many lines as the client sends.
pub fn serve(rack: &mut Rack, listener: &UnixListener) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        if !handle(rack, stream) {
            return;
        }
    }
}

/// Handles one control connection; false once `shutdown` was received.
fn handle(rack: &mut Rack, stream: UnixStream) -> bool {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(mut writer) = stream.try_clone() else {
        return true;
    };
    let mut reader = BufReader::new(stream).take(MAX_LINE as u64 * 64);
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return true,
            Ok(_) => {}
        }
        if line.len() > MAX_LINE {
            let _ = writeln!(writer, "error line too long");
            return true;
        }
        let reply = rack.execute(line.trim());
        let (text, go_on) = match reply {
            Ok(Some(t)) => (format!("ok {t}"), true),
            Ok(None) => ("ok shutting down".to_owned(), false),
            Err(e) => (format!("error {e}"), true),
        };
        tracing::info!(command = line.trim(), reply = %text, "control");
        if writeln!(writer, "{text}")
            .and_then(|()| writer.flush())
            .is_err()
            || !go_on
        {
            return go_on;
        }
    }
}

/// Binds the control socket at `path`. A socket file left by a rack that is gone is replaced;
/// a socket a live rack answers on, or a file that is not a socket, is left alone and refused
/// (removing it would cut that rack off from its controller, or delete the user's file).
pub fn bind_control(path: &Path) -> Result<UnixListener, String> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => {
            return Err("exists and is not a socket; not replaced".into());
        }
        Ok(_) => {
            if UnixStream::connect(path).is_ok() {
                return Err("another rack is serving on this socket".into());
            }
            std::fs::remove_file(path)
                .map_err(|e| format!("cannot replace a stale socket: {e}"))?;
        }
        Err(_) => {}
    }
    UnixListener::bind(path).map_err(|e| e.to_string())
}

/// Sends control lines and returns the replies (the `virtual-card ctl` client).
pub fn send(socket: &Path, lines: &[String]) -> Result<Vec<String>, String> {
    let stream = UnixStream::connect(socket)
        .map_err(|e| format!("cannot reach the control socket {}: {e}", socket.display()))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream);
    let mut replies = Vec::new();
    for l in lines {
        writeln!(writer, "{l}")
            .and_then(|()| writer.flush())
            .map_err(|e| format!("control socket: {e}"))?;
        let mut reply = String::new();
        let n = reader
            .read_line(&mut reply)
            .map_err(|e| format!("control socket: {e}"))?;
        if n == 0 {
            return Err(format!(
                "control socket: the rack closed the connection without answering {l:?}"
            ));
        }
        replies.push(reply.trim_end().to_owned());
    }
    Ok(replies)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_two_per_reader_and_commands_are_checked() {
        let mut rack = Rack::new(&["127.0.0.1:20000".into(), "127.0.0.1:20010".into()]).unwrap();
        assert_eq!(
            rack.status(),
            vec![
                "0 127.0.0.1:20000 empty",
                "1 127.0.0.1:20001 empty",
                "2 127.0.0.1:20010 empty",
                "3 127.0.0.1:20011 empty"
            ]
        );
        assert!(rack.execute("remove 0").unwrap_err().contains("empty"));
        assert!(rack.execute("remove 4").unwrap_err().contains("no slot"));
        assert!(rack
            .execute("insert 1 /nonexistent.json")
            .unwrap_err()
            .contains("cannot read"));
        assert!(rack
            .execute("dance")
            .unwrap_err()
            .contains("unknown command"));
        assert_eq!(rack.execute("shutdown").unwrap(), None);
        assert!(Rack::new(&[]).is_err());
        assert!(Rack::new(&["127.0.0.1:65535".into()]).is_err());
    }

    #[test]
    fn the_control_socket_replaces_only_a_stale_socket() {
        let dir = std::env::temp_dir().join(format!("onshi-bind-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // A regular file is never deleted.
        let file = dir.join("notes.txt");
        std::fs::write(&file, "keep me").unwrap();
        assert!(bind_control(&file).unwrap_err().contains("not a socket"));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
        // A live rack's socket is not taken over.
        let socket = dir.join("control.sock");
        let _ = std::fs::remove_file(&socket);
        let live = bind_control(&socket).unwrap();
        assert!(bind_control(&socket).unwrap_err().contains("another rack"));
        // Once that rack is gone, its leftover socket file is replaced.
        drop(live);
        bind_control(&socket).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_rack_that_hangs_up_without_answering_is_an_error_for_ctl() {
        let dir = std::env::temp_dir().join(format!("onshi-rack-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("control.sock");
        let _ = std::fs::remove_file(&socket);
        let listener = UnixListener::bind(&socket).unwrap();
        let server = std::thread::spawn(move || {
            // Reads the command, then closes without a reply.
            let (stream, _) = listener.accept().unwrap();
            let mut line = String::new();
            BufReader::new(stream).read_line(&mut line).unwrap();
        });
        let err = send(&socket, &["status".to_owned()]).unwrap_err();
        assert!(err.contains("without answering"), "{err}");
        server.join().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
