//! The verified-card guard: the one place that decides, after a VERIFY, whether the card is
//! reset or left as it is.
//!
//! pcscd keeps a card powered between clients, so a card whose PIN was verified stays
//! verified for whoever talks to it next, until it is reset. A [`VerifiedCard`] holds the
//! transaction in which VERIFY was (or may have been) sent and ends it with a card reset when
//! it is dropped: an early return, a `?`, a panic, a released kiosk session all clear the
//! verification. Only a VERIFY the card refused (a wrong PIN, a blocked PIN: nothing was
//! verified) leaves the card as it is, and only through [`VerifiedCard::leave`].

use std::ops::{Deref, DerefMut};

use onshi_jpki::flows::FlowError;
use onshi_jpki::CardChannel;

use super::TransactionChannel;

/// A channel inside a transaction that can end with or without a card reset.
pub trait Transaction: CardChannel {
    /// Ends the transaction, leaving the card as it is.
    fn end_leaving(self);
    /// Ends the transaction with a card reset (clears a verified PIN).
    fn end_resetting(self);
}

impl Transaction for TransactionChannel<'_, '_> {
    fn end_leaving(self) {
        self.end();
    }

    fn end_resetting(self) {
        self.end_with_reset();
    }
}

/// A transaction that may hold a verified PIN; dropping it resets the card.
#[derive(Debug)]
pub struct VerifiedCard<C: Transaction> {
    channel: Option<C>,
}

impl<C: Transaction> VerifiedCard<C> {
    /// Guards `channel` before VERIFY is sent on it.
    pub fn new(channel: C) -> Self {
        VerifiedCard {
            channel: Some(channel),
        }
    }

    /// Runs `flow` (which sends VERIFY) in the guarded transaction: on success the guard is
    /// returned, still holding the verified card; on failure the transaction has ended (left
    /// as it is if the card refused the PIN, reset otherwise).
    pub fn verify<T>(
        channel: C,
        flow: impl FnOnce(&mut C) -> Result<T, FlowError<C::Error>>,
    ) -> Result<(Self, T), FlowError<C::Error>> {
        let mut guard = VerifiedCard::new(channel);
        match flow(&mut guard) {
            Ok(value) => Ok((guard, value)),
            Err(e) => {
                if nothing_verified(&e) {
                    guard.leave();
                }
                Err(e)
            }
        }
    }

    /// Runs a whole flow that sends VERIFY (and signs, or changes the PIN) in one guarded
    /// transaction, which then ends: reset, unless the card refused the PIN.
    pub fn run<T>(
        channel: C,
        flow: impl FnOnce(&mut C) -> Result<T, FlowError<C::Error>>,
    ) -> Result<T, FlowError<C::Error>> {
        Self::verify(channel, flow).map(|(guard, value)| {
            drop(guard);
            value
        })
    }

    /// Ends the transaction without a reset: only for a VERIFY the card refused.
    fn leave(mut self) {
        if let Some(channel) = self.channel.take() {
            channel.end_leaving();
        }
    }
}

/// The card refused the PIN: nothing was verified, and its retry counter must stay visible to
/// the next VERIFY (a reset would not change it, but there is nothing to clear).
fn nothing_verified<E>(e: &FlowError<E>) -> bool {
    matches!(e, FlowError::WrongPin { .. } | FlowError::PinBlocked)
}

impl<C: Transaction> Deref for VerifiedCard<C> {
    type Target = C;

    fn deref(&self) -> &C {
        self.channel.as_ref().expect("held until the guard goes")
    }
}

impl<C: Transaction> DerefMut for VerifiedCard<C> {
    fn deref_mut(&mut self) -> &mut C {
        self.channel.as_mut().expect("held until the guard goes")
    }
}

impl<C: Transaction> Drop for VerifiedCard<C> {
    fn drop(&mut self) {
        if let Some(channel) = self.channel.take() {
            channel.end_resetting();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use onshi_jpki::apdu::{CommandApdu, ResponseApdu};

    use super::*;

    /// How the fake transaction ended.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Ended {
        Left,
        Reset,
    }

    /// A channel that answers every command 9000 and records how its transaction ended.
    struct Fake(Rc<RefCell<Option<Ended>>>);

    impl CardChannel for Fake {
        type Error = std::io::Error;

        fn transmit(&mut self, _: &CommandApdu) -> Result<ResponseApdu, std::io::Error> {
            ResponseApdu::parse(&[0x90, 0x00]).map_err(|e| std::io::Error::other(e.to_string()))
        }
    }

    impl Transaction for Fake {
        fn end_leaving(self) {
            *self.0.borrow_mut() = Some(Ended::Left);
        }

        fn end_resetting(self) {
            *self.0.borrow_mut() = Some(Ended::Reset);
        }
    }

    fn fake() -> (Fake, Rc<RefCell<Option<Ended>>>) {
        let ended = Rc::new(RefCell::new(None));
        (Fake(ended.clone()), ended)
    }

    #[test]
    fn an_early_return_after_verify_resets_the_card() {
        fn sign_after_verify(channel: Fake, fail: bool) -> Result<(), FlowError<std::io::Error>> {
            let (mut card, ()) = VerifiedCard::verify(channel, |_| Ok(()))?;
            card.transmit(
                &CommandApdu::new(0x00, 0x2A, 0x00, 0x00, Vec::new(), None).expect("an APDU"),
            )
            .map_err(FlowError::Channel)?;
            if fail {
                return Err(FlowError::SecurityNotSatisfied);
            }
            Ok(())
        }
        let (channel, ended) = fake();
        assert!(sign_after_verify(channel, true).is_err());
        assert_eq!(*ended.borrow(), Some(Ended::Reset));
        let (channel, ended) = fake();
        assert!(sign_after_verify(channel, false).is_ok());
        assert_eq!(*ended.borrow(), Some(Ended::Reset));
    }

    #[test]
    fn a_refused_pin_leaves_the_card_and_any_other_failure_resets_it() {
        for (error, expected) in [
            (FlowError::WrongPin { tries_left: 2 }, Ended::Left),
            (FlowError::PinBlocked, Ended::Left),
            (FlowError::SecurityNotSatisfied, Ended::Reset),
            (
                FlowError::Channel(std::io::Error::other("card removed")),
                Ended::Reset,
            ),
        ] {
            let (channel, ended) = fake();
            let shown = format!("{error:?}");
            let r: Result<(), _> = VerifiedCard::run(channel, |_| Err(error));
            assert!(r.is_err());
            assert_eq!(*ended.borrow(), Some(expected), "{shown}");
        }
    }

    #[test]
    fn a_held_verified_card_is_reset_only_when_the_guard_goes() {
        let (channel, ended) = fake();
        let (card, ()) = VerifiedCard::verify(channel, |_| Ok(())).expect("verified");
        assert_eq!(*ended.borrow(), None, "still verified while held");
        drop(card);
        assert_eq!(*ended.borrow(), Some(Ended::Reset));
    }

    #[test]
    fn a_panic_while_verified_still_resets_the_card() {
        let (channel, ended) = fake();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let (_card, ()) = VerifiedCard::verify(channel, |_| Ok(())).expect("verified");
            panic!("a bug while the card is verified");
        }));
        assert!(r.is_err());
        assert_eq!(*ended.borrow(), Some(Ended::Reset));
    }
}
