//! `reader-agent change-pin`: the patient changes the user-authentication PIN at the
//! terminal (VERIFY with the current PIN, then CHANGE REFERENCE DATA `00 24 01 80`), in one
//! PC/SC transaction that ends with a card reset so nothing stays verified.
//!
//! Both PINs come from a [`PinSource`] and live only in `onshi_jpki::Pin`s (zeroized on drop).

use std::sync::mpsc;
use std::time::Duration;

use onshi_jpki::flows::{self, FlowError, PinStatus};
use onshi_jpki::Pin;

use crate::pcsc_card::{self, Trace, TransactionChannel, VerifiedCard};

/// How a PIN change ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeOutcome {
    Changed,
    WrongPin {
        tries_left: u8,
    },
    Blocked,
    /// A face-only card: it has no PIN to change, and none was sent to it.
    NotSet,
    Error(String),
}

impl ChangeOutcome {
    pub fn exit_code(&self) -> u8 {
        match self {
            ChangeOutcome::Changed => 0,
            ChangeOutcome::WrongPin { .. } | ChangeOutcome::Blocked | ChangeOutcome::NotSet => 1,
            ChangeOutcome::Error(_) => 3,
        }
    }

    pub fn message(&self) -> String {
        match self {
            ChangeOutcome::Changed => "the PIN was changed".into(),
            ChangeOutcome::WrongPin { tries_left } => format!(
                "the current PIN was wrong; the PIN was not changed (tries left: {tries_left})"
            ),
            ChangeOutcome::Blocked => {
                "the card's PIN is locked; only the municipal office can unlock it".into()
            }
            ChangeOutcome::NotSet => {
                "this card has no PIN (a face-only card, 顔認証マイナンバーカード); \
                                       the PIN was not sent to it. Only the municipal office can \
                                       switch it to a card with PINs"
                    .into()
            }
            ChangeOutcome::Error(m) => m.clone(),
        }
    }
}

/// Changes the PIN of the card in `reader` (or the first card), bounded by `wait` for the
/// card to appear and `card_timeout` for the exchange.
pub fn run(
    reader: Option<String>,
    wait: Duration,
    card_timeout: Duration,
    old: Pin,
    new: Pin,
    trace: Option<Trace>,
) -> ChangeOutcome {
    let (tx, rx) = mpsc::channel();
    let (connected_tx, connected_rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        let mut trace = trace;
        let result = (|| {
            let mut connected = pcsc_card::wait_and_connect(reader.as_deref(), wait, || {
                eprintln!("カードを置いてください (place the card on the reader)")
            })
            .map_err(FlowError::Channel)?;
            let _ = connected_tx.send(());
            let mut ch = TransactionChannel::begin(&mut connected.card, trace.as_mut())
                .map_err(FlowError::Channel)?;
            // The empty VERIFY first: a card without a PIN is told nothing secret.
            flows::select_jpki(&mut ch)?;
            if flows::user_auth_pin_status(&mut ch)? == PinStatus::NotSet {
                ch.end();
                return Ok(Err(ChangeOutcome::NotSet));
            }
            // A verified PIN never outlives the change: the guard resets the card.
            VerifiedCard::run(ch, |ch| flows::change_user_auth_pin(ch, &old, &new)).map(Ok)
        })();
        drop(old);
        drop(new);
        let _ = tx.send(result);
    });
    // Wait for the connection (bounded by `wait` inside), then for the exchange.
    let _ = connected_rx.recv_timeout(wait + Duration::from_secs(1));
    let result = match rx.recv_timeout(card_timeout) {
        Ok(r) => r,
        Err(_) => {
            return ChangeOutcome::Error(format!(
                "the card did not answer within {} s (a mute card or a stuck reader)",
                card_timeout.as_secs_f64()
            ))
        }
    };
    match result {
        Ok(Ok(())) => ChangeOutcome::Changed,
        Ok(Err(outcome)) => outcome,
        Err(FlowError::WrongPin { tries_left: 0 }) | Err(FlowError::PinBlocked) => {
            ChangeOutcome::Blocked
        }
        Err(FlowError::WrongPin { tries_left }) => ChangeOutcome::WrongPin { tries_left },
        Err(FlowError::Channel(e)) => ChangeOutcome::Error(e.to_string()),
        Err(e) => ChangeOutcome::Error(format!("the card refused the PIN change: {e}")),
    }
}
