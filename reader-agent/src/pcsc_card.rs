//! The PC/SC edge: waiting for a card with `SCardGetStatusChange` (no polling), connecting, and
//! a [`CardChannel`] over one PC/SC transaction so no other process can interleave APDUs between
//! VERIFY and COMPUTE DIGITAL SIGNATURE.
//!
//! Every call here blocks; callers run them on a blocking thread, never on the async runtime.

use std::ffi::{CStr, CString};
use std::io::Write;
use std::time::{Duration, Instant};

use onshi_jpki::apdu::{CommandApdu, ResponseApdu};
use onshi_jpki::CardChannel;
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

/// An APDU trace sink: one line per command (`> `) and response (`< `), notes (`# `), VERIFY
/// data always redacted. The format is the virtual card's, so `virtual-card replay --trace`
/// can play a recorded session back as a card; a command whose response never came is
/// written without a `< ` line.
pub struct Trace {
    out: Box<dyn Write + Send>,
}

impl std::fmt::Debug for Trace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Trace")
    }
}

impl Trace {
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        Self { out }
    }

    /// A note line (`# text`): the card's ATR, a phase starting. Never carries a secret.
    pub fn note(&mut self, text: &str) {
        let _ = writeln!(self.out, "# {text}");
        let _ = self.out.flush();
    }

    fn record(&mut self, command: &CommandApdu, response: Option<&[u8]>) {
        let _ = writeln!(self.out, "> {}", command.redacted_hex());
        if let Some(r) = response {
            let _ = writeln!(self.out, "< {}", hex_spaced(r));
        }
        let _ = self.out.flush();
    }
}

fn hex_spaced(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A [`CardChannel`] over one PC/SC transaction.
pub struct TransactionChannel<'tx, 't> {
    tx: pcsc::Transaction<'tx>,
    trace: Option<&'t mut Trace>,
}

impl std::fmt::Debug for TransactionChannel<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TransactionChannel")
    }
}

impl<'tx, 't> TransactionChannel<'tx, 't> {
    /// Begins a transaction on the card (exclusive access until it ends).
    pub fn begin(
        card: &'tx mut pcsc::Card,
        trace: Option<&'t mut Trace>,
    ) -> Result<Self, CardIoError> {
        // A reset by another client (or by our own previous phase) invalidates the handle
        // once; reconnect and try again rather than reporting a removal.
        let card = match card.transaction2() {
            Ok(tx) => return Ok(Self { tx, trace }),
            Err((card, pcsc::Error::ResetCard)) => card,
            Err((_, e)) => return Err(e.into()),
        };
        card.reconnect(
            ShareMode::Shared,
            Protocols::ANY,
            pcsc::Disposition::LeaveCard,
        )?;
        let tx = card.transaction()?;
        Ok(Self { tx, trace })
    }

    /// Ends the transaction, leaving the card powered and its state as it is.
    pub fn end(self) {
        let _ = self.tx.end(pcsc::Disposition::LeaveCard);
    }

    /// Ends the transaction and resets the card, clearing its security state (a verified
    /// PIN) so no later client of this reader can sign with it.
    pub fn end_with_reset(self) {
        let _ = self.tx.end(pcsc::Disposition::ResetCard);
    }
}

impl CardChannel for TransactionChannel<'_, '_> {
    type Error = CardIoError;

    fn transmit(&mut self, command: &CommandApdu) -> Result<ResponseApdu, CardIoError> {
        let bytes = command.to_bytes();
        let mut buf = [0u8; pcsc::MAX_BUFFER_SIZE_EXTENDED];
        let result = self.tx.transmit(&bytes, &mut buf);
        let response = match result {
            Ok(r) => r,
            Err(e) => {
                if let Some(t) = self.trace.as_deref_mut() {
                    t.record(command, None);
                }
                return Err(e.into());
            }
        };
        if let Some(t) = self.trace.as_deref_mut() {
            t.record(command, Some(response));
        }
        if response.is_empty() {
            // vpcd (and real readers) hand back nothing when the card vanished mid-command.
            return Err(CardIoError::NoAnswer);
        }
        ResponseApdu::parse(response).map_err(|e| CardIoError::BadResponse(e.to_string()))
    }
}

/// Name of a reader as text.
pub fn reader_name(name: &CStr) -> String {
    name.to_string_lossy().into_owned()
}
