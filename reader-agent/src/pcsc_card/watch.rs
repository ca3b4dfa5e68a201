//! The kiosk's reader watcher: a thread blocked in `SCardGetStatusChange` that turns changes
//! of card presence into insertion and removal events.

use std::ffi::CString;
use std::time::Duration;

use pcsc::{Context, ReaderState, Scope, State};
use tokio::sync::mpsc;

use super::reader_name;

/// What the watcher reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CardEvent {
    Inserted {
        reader: String,
    },
    Removed {
        reader: String,
    },
    /// pcscd went away or failed; the watcher keeps retrying.
    ServiceError(String),
}

/// Watches `reader` (or every reader) and sends an event on every change of card presence.
/// Blocks in `SCardGetStatusChange`; returns when `events` is closed.
pub fn watch(reader: Option<String>, events: mpsc::UnboundedSender<CardEvent>) {
    let pnp = pcsc::PNP_NOTIFICATION();
    loop {
        let ctx = match Context::establish(Scope::User) {
            Ok(c) => c,
            Err(e) => {
                if events
                    .send(CardEvent::ServiceError(format!(
                        "the PC/SC service (pcscd) is not reachable: {e}"
                    )))
                    .is_err()
                {
                    return;
                }
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        let mut states: Vec<ReaderState> = vec![ReaderState::new(pnp, State::UNAWARE)];
        // Which readers held a card at the last look.
        let mut present: Vec<CString> = Vec::new();
        loop {
            if events.is_closed() {
                return;
            }
            let names = match ctx.list_readers_owned() {
                Ok(n) => n,
                Err(pcsc::Error::NoReadersAvailable) => Vec::new(),
                Err(_) => break,
            };
            let wanted: Vec<CString> = names
                .into_iter()
                .filter(|n| reader.as_deref().is_none_or(|w| n.to_string_lossy() == w))
                .collect();
            states.retain(|s| s.name() == pnp || wanted.iter().any(|w| w.as_c_str() == s.name()));
            for name in &wanted {
                if !states.iter().any(|s| s.name() == name.as_c_str()) {
                    states.push(ReaderState::new(name.clone(), State::UNAWARE));
                }
            }
            // A reader that vanished with a card in it: the card is gone too.
            present.retain(|p| {
                let still = wanted.contains(p);
                if !still {
                    let _ = events.send(CardEvent::Removed {
                        reader: reader_name(p),
                    });
                }
                still
            });
            for s in states.iter().filter(|s| s.name() != pnp) {
                let ev = s.event_state();
                let is_present = ev.contains(State::PRESENT) && !ev.contains(State::MUTE);
                let was_present = present.iter().any(|p| p.as_c_str() == s.name());
                let name = s.name().to_owned();
                if is_present && !was_present {
                    present.push(name.clone());
                    let _ = events.send(CardEvent::Inserted {
                        reader: reader_name(&name),
                    });
                } else if !is_present && was_present {
                    present.retain(|p| p != &name);
                    let _ = events.send(CardEvent::Removed {
                        reader: reader_name(&name),
                    });
                }
            }
            for s in &mut states {
                s.sync_current_state();
            }
            // Woken by pcscd on any change; the bound only lets a closed channel be noticed.
            match ctx.get_status_change(Duration::from_secs(2), &mut states) {
                Ok(()) | Err(pcsc::Error::Timeout) | Err(pcsc::Error::UnknownReader) => {}
                Err(e) => {
                    let _ = events.send(CardEvent::ServiceError(format!(
                        "waiting for card events failed: {e}"
                    )));
                    break;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
