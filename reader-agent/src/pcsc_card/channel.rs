//! A [`CardChannel`] over one PC/SC transaction, and the APDU trace.

use std::io::Write;

use onshi_jpki::apdu::{CommandApdu, ResponseApdu};
use onshi_jpki::CardChannel;
use pcsc::{Protocols, ShareMode};

use super::CardIoError;

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
