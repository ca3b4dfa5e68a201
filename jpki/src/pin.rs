//! The user-authentication PIN: exactly four ASCII digits, never printable, wiped on drop.

use std::fmt;
use std::str::FromStr;

use zeroize::{Zeroize, ZeroizeOnDrop};

/// Why a string is not a PIN. Deliberately says nothing about the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PinError {
    #[error("a user-authentication PIN is exactly 4 ASCII digits")]
    NotFourDigits,
}

/// A user-authentication PIN (EF `0018`). `Debug` and `Display` show `Pin(****)`; the digits
/// leave this type only inside a VERIFY command and are zeroized when it is dropped.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct Pin([u8; 4]);

impl Pin {
    pub fn new(digits: &str) -> Result<Self, PinError> {
        Self::from_bytes(digits.as_bytes())
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, PinError> {
        match bytes {
            [a, b, c, d] if bytes.iter().all(u8::is_ascii_digit) => Ok(Self([*a, *b, *c, *d])),
            _ => Err(PinError::NotFourDigits),
        }
    }

    /// Compares a candidate (the data of a VERIFY) with this PIN without an early exit, so
    /// the time taken does not reveal how many leading digits were right.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        if candidate.len() != self.0.len() {
            return false;
        }
        let diff = self
            .0
            .iter()
            .zip(candidate)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        diff == 0
    }

    /// Whether two PINs are the same (a new PIN typed twice), without an early exit.
    pub fn same_as(&self, other: &Pin) -> bool {
        self.matches(&other.0)
    }

    /// The ASCII digits, for a channel that carries the PIN to the credential itself and
    /// nowhere else: the simulated smartphone's (reader-agent `phone`, docs/smartphone.md).
    pub fn digits_for_credential(&self) -> &[u8; 4] {
        &self.0
    }

    /// The ASCII digits, for building a VERIFY command inside this crate.
    pub(crate) fn digits(&self) -> &[u8; 4] {
        &self.0
    }
}

impl FromStr for Pin {
    type Err = PinError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin(****)")
    }
}

impl fmt::Display for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin(****)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_four_digits() {
        assert!(Pin::new("0000").is_ok());
        assert!(Pin::new("9876").is_ok());
        for bad in ["", "123", "12345", "12a4", " 123", "１２３４", "12.4"] {
            assert_eq!(
                Pin::new(bad).err(),
                Some(PinError::NotFourDigits),
                "{bad:?}"
            );
        }
        assert!("4729".parse::<Pin>().is_ok());
    }

    #[test]
    fn never_shows_digits() {
        let pin = Pin::new("4729").unwrap();
        assert_eq!(format!("{pin:?}"), "Pin(****)");
        assert_eq!(pin.to_string(), "Pin(****)");
        let err = Pin::new("47x9").unwrap_err().to_string();
        assert!(!err.contains("47"));
    }

    #[test]
    fn matches_exactly() {
        let pin = Pin::new("4729").unwrap();
        assert!(pin.matches(b"4729"));
        assert!(!pin.matches(b"4728"));
        assert!(!pin.matches(b"472"));
        assert!(!pin.matches(b"47290"));
        assert!(!pin.matches(b""));
    }
}
