//! `reader-agent change-pin`: the patient changes the user-authentication PIN at the
//! terminal (VERIFY with the current PIN, then CHANGE REFERENCE DATA `00 24 01 80`), in one
//! PC/SC transaction on the card worker that ends with a card reset so nothing stays verified.
//!
//! Both PINs come from a [`PinSource`] and live only in `onshi_jpki::Pin`s (zeroized on drop).

use std::time::Duration;

use onshi_jpki::flows::{self, FlowError, PinStatus};
use onshi_jpki::Pin;

use crate::pcsc_card::worker::CardHandle;
use crate::pcsc_card::Trace;

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
/// card to appear and `card_timeout` for the exchange. The card is reached through the card
/// worker ([`CardHandle`]), in one transaction held by a
/// [`VerifiedCard`](crate::pcsc_card::VerifiedCard).
pub fn run(
    reader: Option<String>,
    wait: Duration,
    card_timeout: Duration,
    old: Pin,
    new: Pin,
    trace: Option<Trace>,
) -> ChangeOutcome {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return ChangeOutcome::Error(format!("cannot start the runtime: {e}")),
    };
    runtime.block_on(async move {
        let waiting = || eprintln!("カードを置いてください (place the card on the reader)");
        let card = match CardHandle::wait_for_card(reader, wait, card_timeout, trace, waiting).await
        {
            Ok((card, _)) => card,
            Err(e) => return ChangeOutcome::Error(e.to_string()),
        };
        // Both PINs move into the job and are dropped (zeroized) on the worker's thread.
        let changed = card
            .verified_transaction(move |ch| {
                // The empty VERIFY first: a card without a PIN is told nothing secret.
                flows::select_jpki(ch)?;
                if flows::user_auth_pin_status(ch)? == PinStatus::NotSet {
                    return Ok(Err(ChangeOutcome::NotSet));
                }
                flows::change_user_auth_pin(ch, &old, &new).map(Ok)
            })
            .await;
        let Ok(result) = changed else {
            return ChangeOutcome::Error(format!(
                "the card did not answer within {} s (a mute card or a stuck reader)",
                card_timeout.as_secs_f64()
            ));
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
    })
}
