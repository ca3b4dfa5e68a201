//! The virtual My Number card.
//!
//! - [`card`]: the card itself, a pure state machine from APDU bytes to response bytes that
//!   answers like the JPKI application (user-authentication part) of jpki-card.md;
//! - [`contents`]: building what the card holds from a [`profile::CardProfile`], checked;
//! - [`profile`]: card profiles and the persisted PIN retry counter on disk;
//! - [`fault`]: scripted faults (removal, latency, mute, corrupt answers, bad certificate, ...);
//! - [`rack`]: many cards in one process, inserted and removed through a control socket;
//! - [`replay`]: a recorded APDU trace acting as a card;
//! - [`surface`]: the files of the card-face applications (Kenhojo, Kenkaku), byte for byte;
//! - [`vpcd`]: the transport that attaches the card to pcscd through the vpcd driver;
//! - [`trace`]: the optional APDU trace, PINs always redacted;
//! - [`phone`]: the simulated smartphone マイナ保険証 and onshi's own (not the real) channel
//!   to it, served by the `virtual-phone` binary (docs/smartphone.md).
//!
//! The `virtual-card` binary wires these together.
#![forbid(unsafe_code)]

pub mod card;
pub mod contents;
pub mod fault;
pub mod fuzzing;
pub mod phone;
pub mod profile;
pub mod rack;
pub mod replay;
pub mod surface;
pub mod trace;
pub mod vpcd;

pub use card::{no_persistence, PersistHook, VirtualCard, CERTIFICATE_EF_SIZE};
pub use contents::{CardBuildError, CardContents};
pub use profile::{CardProfile, CardState, ProfileError};

#[cfg(test)]
pub(crate) mod test_support {
    use std::sync::OnceLock;

    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;
    use rsa::RsaPrivateKey;

    /// The PIN of test cards. Not 1234, so a leak in a trace cannot hide among common bytes.
    pub const PIN: &str = "4729";

    /// One RSA-2048 key per test binary, from a fixed seed: generation is slow.
    pub fn test_key() -> &'static RsaPrivateKey {
        static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
        KEY.get_or_init(|| {
            let mut rng = ChaCha20Rng::seed_from_u64(0x0457_4A50_4B49);
            RsaPrivateKey::new(&mut rng, 2048).expect("RSA key generation")
        })
    }

    /// Enough of a certificate for read tests: `30 82 HH LL` and `content_len` bytes.
    pub fn fake_certificate(content_len: usize, fill: u8) -> Vec<u8> {
        let mut der = vec![0x30, 0x82];
        der.extend_from_slice(&(content_len as u16).to_be_bytes());
        der.extend((0..content_len).map(|i| fill ^ (i % 251) as u8));
        der
    }
}
