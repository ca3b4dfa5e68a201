//! Deterministic RSA-2048 keys: each key comes from a ChaCha20 generator seeded with
//! SHA-256("onshi-testbed/key/1" ‖ world seed ‖ purpose), so the same seed always gives the same
//! keys and two purposes never share one by accident.
//!
//! Every key in a world is RSA, the network's too: ECDSA signatures need a random nonce (ring
//! draws it from the system), which would make the certificates differ from build to build,
//! while RSA PKCS#1 v1.5 signatures are a function of key and message.

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use rsa::RsaPrivateKey;

use crate::TestbedError;

/// Bits of every key.
pub const RSA_BITS: usize = 2048;

/// 32 bytes derived from the world seed and a purpose label; the root of every random choice.
pub fn derive_seed(world_seed: u64, purpose: &str) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"onshi-testbed/key/1\0");
    ctx.update(&world_seed.to_be_bytes());
    ctx.update(purpose.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// A seeded generator for `purpose`.
pub fn rng_for(world_seed: u64, purpose: &str) -> ChaCha20Rng {
    ChaCha20Rng::from_seed(derive_seed(world_seed, purpose))
}

/// A generated key, held as PKCS#8 DER (the form rcgen, ring and the card profile take).
pub struct RsaKey {
    pkcs8_der: Vec<u8>,
    pkcs8_pem: String,
}

impl std::fmt::Debug for RsaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RsaKey").finish_non_exhaustive()
    }
}

impl RsaKey {
    /// The key for `purpose` in the world of `world_seed`.
    pub fn generate(world_seed: u64, purpose: &str) -> Result<RsaKey, TestbedError> {
        let err = |reason: String| TestbedError::KeyGeneration {
            purpose: purpose.to_owned(),
            reason,
        };
        let mut rng = rng_for(world_seed, purpose);
        let key = RsaPrivateKey::new(&mut rng, RSA_BITS).map_err(|e| err(e.to_string()))?;
        let der = key.to_pkcs8_der().map_err(|e| err(e.to_string()))?;
        let pem = key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| err(e.to_string()))?;
        Ok(RsaKey {
            pkcs8_der: der.as_bytes().to_vec(),
            pkcs8_pem: pem.to_string(),
        })
    }

    /// Generates the keys for all `purposes` on every available core. Each key depends only on
    /// its own purpose, so the result is the same whatever the scheduling.
    pub fn generate_all(world_seed: u64, purposes: &[String]) -> Result<Vec<RsaKey>, TestbedError> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Mutex;

        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(purposes.len().max(1));
        let next = AtomicUsize::new(0);
        let slots: Mutex<Vec<Option<Result<RsaKey, TestbedError>>>> =
            Mutex::new((0..purposes.len()).map(|_| None).collect());
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(purpose) = purposes.get(i) else {
                        break;
                    };
                    let key = RsaKey::generate(world_seed, purpose);
                    let mut slots = slots.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(slot) = slots.get_mut(i) {
                        *slot = Some(key);
                    }
                });
            }
        });
        let slots = slots.into_inner().unwrap_or_else(|e| e.into_inner());
        slots
            .into_iter()
            .zip(purposes)
            .map(|(slot, purpose)| {
                slot.unwrap_or_else(|| {
                    Err(TestbedError::KeyGeneration {
                        purpose: purpose.clone(),
                        reason: "worker thread did not finish".into(),
                    })
                })
            })
            .collect()
    }

    /// PKCS#8 DER.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8_der
    }

    /// PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), LF line endings.
    pub fn pkcs8_pem(&self) -> &str {
        &self.pkcs8_pem
    }

    /// The key as an rcgen signing key (signing through ring, RSA PKCS#1 v1.5 SHA-256).
    pub fn key_pair(&self) -> Result<rcgen::KeyPair, TestbedError> {
        rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
            &self.pkcs8_der.clone().into(),
            &rcgen::PKCS_RSA_SHA256,
        )
        .map_err(TestbedError::cert("load an RSA key into rcgen"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_separate_purposes_and_worlds() {
        assert_eq!(derive_seed(1, "a"), derive_seed(1, "a"));
        assert_ne!(derive_seed(1, "a"), derive_seed(1, "b"));
        assert_ne!(derive_seed(1, "a"), derive_seed(2, "a"));
    }

    #[test]
    fn keys_are_deterministic() {
        let purposes = vec!["x".to_owned(), "y".to_owned()];
        let a = RsaKey::generate_all(7, &purposes).unwrap();
        let b = RsaKey::generate(7, "y").unwrap();
        assert_eq!(a[1].pkcs8_der(), b.pkcs8_der());
        assert_ne!(a[0].pkcs8_der(), a[1].pkcs8_der());
        assert!(a[0]
            .pkcs8_pem()
            .starts_with("-----BEGIN PRIVATE KEY-----\n"));
        a[0].key_pair().unwrap();
    }
}
