//! The agent's one PC/SC edge: every PC/SC call of the agent is in this module.
//!
//! - here: waiting for a card with `SCardGetStatusChange` (no polling), connecting, listing
//!   the readers;
//! - [`channel`]: a [`CardChannel`] over one PC/SC transaction, so no other process can
//!   interleave APDUs between VERIFY and COMPUTE DIGITAL SIGNATURE, and the APDU trace;
//! - [`verified`]: the guard that resets a card which may hold a verified PIN when it goes,
//!   whatever the way out (the one place that decides reset-or-leave after VERIFY);
//! - [`watch`]: the kiosk's watcher, turning card insertions and removals into events;
//! - [`worker`]: the card worker, one thread per card that runs its commands one at a time
//!   and holds a verified card in its transaction until released.
//!
//! Every call here blocks; callers run them on a blocking thread, never on the async runtime.

pub mod channel;
pub mod verified;
pub mod watch;
pub mod worker;

pub use channel::{Trace, TransactionChannel};
pub use verified::VerifiedCard;

use std::ffi::{CStr, CString};
use std::time::{Duration, Instant};

use pcsc::{Context, Protocols, ReaderState, Scope, ShareMode, State};

/// What went wrong between the agent and the card.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CardIoError {
    #[error("the card was removed (or reset) while it was being read; place the card again")]
    CardRemoved,
    #[error("the card stopped answering (it was removed during the command, or is mute); place the card again")]
    NoAnswer,
    #[error("no card was placed within {0:?}")]
    NoCard(Duration),
    #[error("reader {0:?} not found")]
    ReaderNotFound(String),
    #[error("the PC/SC service (pcscd) is not reachable: {0}")]
    NoService(pcsc::Error),
    #[error("the card answered with a malformed response: {0}")]
    BadResponse(String),
    #[error("PC/SC error: {0}")]
    Pcsc(pcsc::Error),
    #[error("{0}")]
    Worker(String),
}

impl From<pcsc::Error> for CardIoError {
    fn from(e: pcsc::Error) -> Self {
        match e {
            pcsc::Error::RemovedCard
            | pcsc::Error::ResetCard
            | pcsc::Error::NoSmartcard
            | pcsc::Error::UnpoweredCard
            | pcsc::Error::UnresponsiveCard
            | pcsc::Error::NotTransacted => CardIoError::CardRemoved,
            pcsc::Error::NoService | pcsc::Error::ServiceStopped => CardIoError::NoService(e),
            other => CardIoError::Pcsc(other),
        }
    }
}

/// A PC/SC context with the card found in a reader.
pub struct ConnectedCard {
    pub reader: String,
    /// The answer-to-reset, as pcscd reports it (empty if it could not be read).
    pub atr: Vec<u8>,
    pub card: pcsc::Card,
}

impl std::fmt::Debug for ConnectedCard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectedCard")
            .field("reader", &self.reader)
            .finish_non_exhaustive()
    }
}

/// Waits until a card is present in `reader` (or any reader) and connects to it.
pub fn wait_and_connect(
    reader: Option<&str>,
    timeout: Duration,
    mut on_waiting: impl FnMut(),
) -> Result<ConnectedCard, CardIoError> {
    let ctx = Context::establish(Scope::User).map_err(CardIoError::NoService)?;
    let deadline = Instant::now() + timeout;
    let pnp = pcsc::PNP_NOTIFICATION();
    let mut states: Vec<ReaderState> = vec![ReaderState::new(pnp, State::UNAWARE)];
    let mut announced = false;
    loop {
        // Refresh the reader list (readers may come and go), keeping known states.
        let names = match ctx.list_readers_owned() {
            Ok(n) => n,
            Err(pcsc::Error::NoReadersAvailable) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let wanted: Vec<CString> = names
            .into_iter()
            .filter(|n| reader.is_none_or(|want| n.to_string_lossy() == want))
            .collect();
        states.retain(|s| s.name() == pnp || wanted.iter().any(|w| w.as_c_str() == s.name()));
        for name in &wanted {
            if !states.iter().any(|s| s.name() == name.as_c_str()) {
                states.push(ReaderState::new(name.clone(), State::UNAWARE));
            }
        }
        for s in states.iter().filter(|s| s.name() != pnp) {
            let ev = s.event_state();
            if ev.contains(State::PRESENT)
                && !ev.contains(State::MUTE)
                && !ev.contains(State::EXCLUSIVE)
            {
                let name = s.name().to_owned();
                let card = ctx.connect(&name, ShareMode::Shared, Protocols::ANY)?;
                let atr = card
                    .status2_owned()
                    .map(|st| st.atr().to_vec())
                    .unwrap_or_default();
                return Ok(ConnectedCard {
                    reader: name.to_string_lossy().into_owned(),
                    atr,
                    card,
                });
            }
        }
        if !announced {
            on_waiting();
            announced = true;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            if let Some(want) = reader {
                if wanted.is_empty() {
                    return Err(CardIoError::ReaderNotFound(want.to_owned()));
                }
            }
            return Err(CardIoError::NoCard(timeout));
        }
        for s in &mut states {
            s.sync_current_state();
        }
        match ctx.get_status_change(left, &mut states) {
            Ok(()) | Err(pcsc::Error::Timeout) => {}
            Err(pcsc::Error::UnknownReader) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Name of a reader as text.
pub fn reader_name(name: &CStr) -> String {
    name.to_string_lossy().into_owned()
}

/// The readers pcscd knows, and whether each holds a card.
pub fn readers() -> Result<Vec<(String, bool)>, CardIoError> {
    let ctx = Context::establish(Scope::User).map_err(CardIoError::NoService)?;
    let names = match ctx.list_readers_owned() {
        Ok(n) => n,
        Err(pcsc::Error::NoReadersAvailable) => Vec::new(),
        Err(e) => return Err(CardIoError::Pcsc(e)),
    };
    let mut states: Vec<ReaderState> = names
        .iter()
        .map(|n| ReaderState::new(n.clone(), State::UNAWARE))
        .collect();
    let _ = ctx.get_status_change(Duration::from_millis(0), &mut states);
    Ok(states
        .iter()
        .map(|s| {
            (
                reader_name(s.name()),
                s.event_state().contains(State::PRESENT),
            )
        })
        .collect())
}
