//! The My Number card's JPKI protocol without I/O.
//!
//! - [`apdu`]: command and response APDUs and status words; PIN-carrying commands redact
//!   themselves and are wiped on drop.
//! - [`constants`]: AIDs, EF ids, instruction bytes, DigestInfo prefixes.
//! - [`commands`]: the card commands of jpki-card.md §3, byte for byte.
//! - [`Pin`]: four ASCII digits that never print.
//! - [`flows`]: the host-side sequences (read the certificate, check the retry counter,
//!   verify, sign) over any [`CardChannel`], including the two phases of a PIN-mode
//!   confirmation that the reader agent runs.
//!
//! Nothing here touches a reader: the reader agent implements [`CardChannel`] over PC/SC,
//! tests implement it over a script or the virtual card.
#![forbid(unsafe_code)]

pub mod apdu;
pub mod commands;
pub mod constants;
pub mod flows;
pub mod fuzzing;
mod pin;

pub use apdu::{ApduError, CommandApdu, ResponseApdu, StatusWord};
pub use flows::{CardReading, FlowError, FlowResult, PinStatus, ReadPattern};
pub use pin::{Pin, PinError};

/// A connection to a card that exchanges one APDU at a time.
///
/// Implementations carry the bytes (PC/SC, a test script, an in-process virtual card); the
/// flows interpret them. A transport failure (reader gone, card removed, response too short
/// to hold a status word) is `Self::Error`; a status word the card chose is not an error here.
pub trait CardChannel {
    type Error: std::error::Error + Send + Sync + 'static;

    fn transmit(&mut self, command: &CommandApdu) -> Result<ResponseApdu, Self::Error>;
}

impl<C: CardChannel + ?Sized> CardChannel for &mut C {
    type Error = C::Error;

    fn transmit(&mut self, command: &CommandApdu) -> Result<ResponseApdu, Self::Error> {
        (**self).transmit(command)
    }
}
