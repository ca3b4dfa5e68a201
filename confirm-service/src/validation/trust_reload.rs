//! Reloading the trust configuration (anchors, intermediates, CRLs) while the service runs.
//!
//! The handlers read the current [`TrustStore`] through [`LiveTrust::current`], an `Arc`
//! snapshot taken under a read lock. A reload builds and verifies a complete new store off to
//! the side and then swaps the `Arc` in one step, so every request sees either the old store
//! or the new one, never a store without a CRL: there is no moment in which a revoked card is
//! accepted because a CRL is being replaced. A reload that fails (a half-written file, a
//! forged or older CRL) keeps the old store and logs an error; the next change of the files
//! triggers another attempt. The new store has a new generation, so the certificate cache
//! ([`crate::cert_cache`]) re-validates every certificate against it.
//!
//! [`Watcher`] polls the files' metadata (length, modification and change times, inode) once
//! a second from a plain thread: no new dependency, and cheap even for a 20 MB CRL, which is
//! read only when its metadata changes.

use std::path::PathBuf;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use crate::validation::{EndEntityPolicy, TrustLoadError, TrustStore};

/// The current trust store, replaceable while requests use it.
#[derive(Debug)]
pub struct LiveTrust {
    current: RwLock<Arc<TrustStore>>,
}

impl LiveTrust {
    pub fn new(store: TrustStore) -> Self {
        LiveTrust {
            current: RwLock::new(Arc::new(store)),
        }
    }

    /// The store to validate one request against.
    pub fn current(&self) -> Arc<TrustStore> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Makes `store` current, atomically for every later [`current`](Self::current). The
    /// revocations of the store it replaces are remembered
    /// ([`TrustStore::remembering_revocations_of`]): a CRL that drops an expired certificate's
    /// entry does not unrevoke it for its grace period.
    pub fn replace(&self, store: TrustStore) {
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        let store = store.remembering_revocations_of(&current);
        *current = Arc::new(store);
    }
}

/// Where the trust configuration comes from.
#[derive(Debug, Clone)]
pub struct TrustFiles {
    pub anchors: Vec<PathBuf>,
    pub intermediates: Vec<PathBuf>,
    pub crls: Vec<PathBuf>,
    pub policy: EndEntityPolicy,
}

/// What identifies one version of a file without reading it.
type Fingerprint = Vec<Option<(u64, i64, i64, i64, i64, u64)>>;

impl TrustFiles {
    pub fn load(&self) -> Result<TrustStore, TrustLoadError> {
        TrustStore::load(
            &self.anchors,
            &self.intermediates,
            &self.crls,
            self.policy.clone(),
        )
    }

    fn fingerprint(&self) -> Fingerprint {
        self.anchors
            .iter()
            .chain(&self.intermediates)
            .chain(&self.crls)
            .map(|p| {
                let m = std::fs::metadata(p).ok()?;
                #[cfg(unix)]
                {
                    use std::os::unix::fs::MetadataExt;
                    Some((
                        m.len(),
                        m.mtime(),
                        m.mtime_nsec(),
                        m.ctime(),
                        m.ctime_nsec(),
                        m.ino(),
                    ))
                }
                #[cfg(not(unix))]
                {
                    let t = m
                        .modified()
                        .ok()?
                        .duration_since(std::time::UNIX_EPOCH)
                        .ok()?;
                    Some((
                        m.len(),
                        t.as_secs() as i64,
                        t.subsec_nanos().into(),
                        0,
                        0,
                        0,
                    ))
                }
            })
            .collect()
    }
}

/// The outcome of one reload attempt.
#[derive(Debug)]
pub enum Reload {
    /// Nothing changed on disk.
    Unchanged,
    /// A new store is current; its generation and revoked-serial count.
    Replaced { generation: u64, revoked: usize },
    /// The files changed but could not be used; the old store stays current.
    Failed(String),
}

/// Watches the trust files and reloads on change.
#[derive(Debug)]
pub struct Watcher {
    files: TrustFiles,
    seen: Fingerprint,
}

impl Watcher {
    /// A watcher that treats the files as they are now as already loaded.
    pub fn new(files: TrustFiles) -> Self {
        let seen = files.fingerprint();
        Watcher { files, seen }
    }

    /// Reloads into `live` if any file changed since the last attempt.
    pub fn poll(&mut self, live: &LiveTrust) -> Reload {
        let now = self.files.fingerprint();
        if now == self.seen {
            return Reload::Unchanged;
        }
        self.seen = now;
        let store = match self.files.load() {
            Ok(s) => s,
            Err(e) => return Reload::Failed(e.to_string()),
        };
        // Refuse to go back to an older CRL of a CA than the one in force (a rollback would
        // un-revoke cards).
        let old = live.current();
        let old_updates: std::collections::HashMap<_, _> =
            old.crl_this_updates().into_iter().collect();
        for (key, t) in store.crl_this_updates() {
            if let Some(prev) = old_updates.get(&key) {
                if t < *prev {
                    return Reload::Failed(format!(
                        "a CRL's thisUpdate {} is older than the one in force ({})",
                        super::rfc3339(&t),
                        super::rfc3339(prev)
                    ));
                }
            }
        }
        let generation = store.generation();
        let revoked = store.revoked_count();
        live.replace(store);
        Reload::Replaced {
            generation,
            revoked,
        }
    }

    /// Polls every `interval` on a thread of its own until `live` is dropped.
    pub fn spawn(
        mut self,
        live: Weak<LiveTrust>,
        interval: Duration,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("trust-reload".into())
            .spawn(move || loop {
                std::thread::sleep(interval);
                let Some(live) = live.upgrade() else {
                    return;
                };
                match self.poll(&live) {
                    Reload::Unchanged => {}
                    Reload::Replaced {
                        generation,
                        revoked,
                    } => tracing::info!(
                        generation,
                        revoked,
                        "trust configuration reloaded (new CRLs in force)"
                    ),
                    Reload::Failed(reason) => tracing::error!(
                        %reason,
                        "TRUST RELOAD FAILED: the previous trust store and CRLs stay in force"
                    ),
                }
            })
    }
}
