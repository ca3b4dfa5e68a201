//! The validated-certificate cache: the hot path pays for parsing and the CA signature once
//! per card.
//!
//! Keyed by the SHA-256 of the certificate DER. An entry holds what phase 1 of validation
//! established (the verified paths, the card's key and dates) together with the generation
//! of the trust store it was established against. A hit is used only when the generation is
//! the current store's, and even then phase 2 is re-run in full: every CA's and the card's
//! validity at the request's time, and each link's serial against the current CRL. So a
//! verdict that a newer CRL (a new store generation) or the passing of time would change is
//! never served from the cache. Only successes are cached: a refusal is recomputed.
//!
//! Bounded: at most `capacity` entries; when full, entries of older generations are dropped
//! and, if that is not enough, the whole cache is cleared (a cheap, predictable policy for a
//! population much larger than the cache).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use time::OffsetDateTime;

use crate::validation::{CertError, TrustStore, ValidatedCertificate, Verified};

/// Default number of cached certificates.
pub const DEFAULT_CAPACITY: usize = 50_000;

/// A cache of verified certificates. Shared by all handlers.
#[derive(Debug)]
pub struct CertCache {
    entries: Mutex<HashMap<[u8; 32], Arc<Verified>>>,
    capacity: usize,
}

impl Default for CertCache {
    fn default() -> Self {
        CertCache::new(DEFAULT_CAPACITY)
    }
}

/// How a validation was answered, for metrics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Hit,
    Miss,
}

impl CertCache {
    /// A cache of at most `capacity` certificates; 0 disables caching.
    pub fn new(capacity: usize) -> Self {
        CertCache {
            entries: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Arc<Verified>>> {
        // A panic while holding the lock cannot leave the map inconsistent (single inserts
        // and lookups), so a poisoned lock is still usable.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Validates `der` at `at` against `store`, using and filling the cache.
    pub fn validate(
        &self,
        store: &TrustStore,
        der: &[u8],
        at: OffsetDateTime,
    ) -> Result<ValidatedCertificate, CertError> {
        self.validate_traced(store, der, at).map(|(c, _)| c)
    }

    /// As [`validate`](Self::validate), also saying whether the cache answered.
    pub fn validate_traced(
        &self,
        store: &TrustStore,
        der: &[u8],
        at: OffsetDateTime,
    ) -> Result<(ValidatedCertificate, Lookup), CertError> {
        if self.capacity == 0 || der.len() > crate::validation::MAX_CERTIFICATE_LEN {
            return store.validate(der, at).map(|c| (c, Lookup::Miss));
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, der).as_ref());
        let cached = self.lock().get(&key).cloned();
        if let Some(entry) = cached {
            if entry.generation() == store.generation() {
                store.recheck(&entry, at)?;
                return Ok((entry.certificate.clone(), Lookup::Hit));
            }
        }
        let verified = store.verify(der, at)?;
        let certificate = verified.certificate.clone();
        let mut entries = self.lock();
        if entries.len() >= self.capacity {
            let current = store.generation();
            entries.retain(|_, v| v.generation() == current);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(key, Arc::new(verified));
        Ok((certificate, Lookup::Miss))
    }
}
