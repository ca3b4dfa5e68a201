//! What the load generator takes from a testbed world (docs/world.md): the card keys and
//! certificates, the terminals' client identities, and the network and service TLS files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use onshi_testbed::manifest::{CardKind, TerminalStatus};
use onshi_testbed::WorldManifest;
use ring::signature::RsaKeyPair;
use serde::Deserialize;

use crate::LoadgenError;

/// One card of the pool: its certificate and the key that signs as the card would.
#[derive(Debug, Clone)]
pub struct PoolCard {
    pub name: String,
    pub kind: CardKind,
    /// The user-authentication certificate, DER.
    pub certificate: Arc<Vec<u8>>,
    /// Parsed once per distinct key (a world shares keys among cards, see docs/world.md).
    pub key: Arc<RsaKeyPair>,
}

/// A terminal's TLS client identity.
#[derive(Debug, Clone)]
pub struct TerminalIdentity {
    /// `<医療機関コード>-<terminal id>`.
    pub name: String,
    pub certificate_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

/// A world loaded for a load run.
#[derive(Debug)]
pub struct World {
    pub dir: PathBuf,
    pub manifest: WorldManifest,
    pub cards: Vec<PoolCard>,
    /// The in-operation terminals of the world, in manifest order.
    pub terminals: Vec<TerminalIdentity>,
    pub network_ca_pem: Vec<u8>,
}

/// The two fields of a card profile the load generator needs; the rest is ignored.
#[derive(Deserialize)]
struct ProfileKeys {
    user_auth_certificate: String,
    user_auth_private_key: String,
}

pub(crate) fn read(path: &Path) -> Result<Vec<u8>, LoadgenError> {
    std::fs::read(path).map_err(LoadgenError::io("read", path))
}

impl World {
    /// Loads the manifest, every card's certificate and key, and the in-operation terminals.
    pub fn load(dir: &Path) -> Result<World, LoadgenError> {
        let manifest = WorldManifest::load(dir).map_err(|e| LoadgenError::World(e.to_string()))?;
        let mut keys: HashMap<String, Arc<RsaKeyPair>> = HashMap::new();
        let mut cards = Vec::with_capacity(manifest.cards.len());
        for entry in &manifest.cards {
            let path = dir.join(&entry.profile);
            let text = read(&path)?;
            let profile: ProfileKeys =
                serde_json::from_slice(&text).map_err(|e| LoadgenError::CardKey {
                    card: entry.name.clone(),
                    reason: format!("profile {}: {e}", path.display()),
                })?;
            let cert =
                pem::parse(&profile.user_auth_certificate).map_err(|e| LoadgenError::CardKey {
                    card: entry.name.clone(),
                    reason: format!("certificate PEM: {e}"),
                })?;
            let key = match keys.get(&profile.user_auth_private_key) {
                Some(k) => Arc::clone(k),
                None => {
                    let der = pem::parse(&profile.user_auth_private_key).map_err(|e| {
                        LoadgenError::CardKey {
                            card: entry.name.clone(),
                            reason: format!("private key PEM: {e}"),
                        }
                    })?;
                    let key = RsaKeyPair::from_pkcs8(der.contents()).map_err(|e| {
                        LoadgenError::CardKey {
                            card: entry.name.clone(),
                            reason: format!(
                                "private key is not an RSA PKCS#8 key ring accepts: {e}"
                            ),
                        }
                    })?;
                    let key = Arc::new(key);
                    keys.insert(profile.user_auth_private_key.clone(), Arc::clone(&key));
                    key
                }
            };
            cards.push(PoolCard {
                name: entry.name.clone(),
                kind: entry.kind,
                certificate: Arc::new(cert.into_contents()),
                key,
            });
        }
        let mut terminals = Vec::new();
        for t in manifest
            .terminals
            .iter()
            .filter(|t| t.status == TerminalStatus::InOperation)
        {
            let tdir = dir.join(&t.dir);
            terminals.push(TerminalIdentity {
                name: t.name.clone(),
                certificate_pem: read(&tdir.join("client.pem"))?,
                key_pem: read(&tdir.join("client.key.pem"))?,
            });
        }
        if terminals.is_empty() {
            return Err(LoadgenError::World(format!(
                "{} has no terminal in operation",
                dir.display()
            )));
        }
        let network_ca_pem = read(&dir.join("network-ca/ca.pem"))?;
        Ok(World {
            dir: dir.to_owned(),
            manifest,
            cards,
            terminals,
            network_ca_pem,
        })
    }

    /// The cards of one kind, in manifest order.
    pub fn cards_of(&self, kind: CardKind) -> Vec<PoolCard> {
        self.cards
            .iter()
            .filter(|c| c.kind == kind)
            .cloned()
            .collect()
    }

    /// Card-less queries for the qualification records of the store's first `max_persons`
    /// persons (`P000000001`…, docs/world.md), read through the service's `Store` from the
    /// store named in the world's `service.toml`: the numbers and birth date as a terminal would
    /// type them, one query per record (lost ones included, so some answer NO_QUALIFICATION).
    pub fn numbers_pool(
        &self,
        max_persons: usize,
    ) -> Result<Vec<onshi_proto::v1::NumbersQuery>, LoadgenError> {
        let config = onshi_confirm_service::config::Config::load(&self.dir.join("service.toml"))
            .map_err(|e| LoadgenError::World(e.to_string()))?;
        let store = onshi_confirm_service::store::open(&config.store)
            .map_err(|e| LoadgenError::World(format!("store {}: {e}", config.store)))?;
        let err = |e: onshi_confirm_service::store::StoreError| {
            LoadgenError::World(format!("reading the numbers pool: {e}"))
        };
        let mut pool = Vec::new();
        for index in 0..max_persons {
            let id = onshi_testbed::population::person_id(index);
            let Some(person) = store.person(&id).map_err(err)? else {
                break;
            };
            let d = person.birth_date;
            let birth_date = format!("{:04}{:02}{:02}", d.year(), u8::from(d.month()), d.day());
            for q in store.qualifications(&id).map_err(err)? {
                // A 医療扶助 recipient is asked for by the public-expense numbers.
                pool.push(if onshi_confirm_service::medical_aid::is_medical_aid(&q) {
                    onshi_proto::v1::NumbersQuery {
                        public_expense_number: q.insurer_number.as_str().to_owned(),
                        recipient_number: q.number,
                        birth_date: birth_date.clone(),
                        ..Default::default()
                    }
                } else {
                    onshi_proto::v1::NumbersQuery {
                        insurer_number: q.insurer_number.as_str().to_owned(),
                        symbol: q.symbol.unwrap_or_default(),
                        number: q.number,
                        branch: q.branch.unwrap_or_default(),
                        birth_date: birth_date.clone(),
                        ..Default::default()
                    }
                });
            }
        }
        Ok(pool)
    }

    /// The institution code of the world's first in-operation terminal (minted terminals
    /// belong to it).
    pub fn institution_code(&self) -> Option<&str> {
        self.manifest
            .terminals
            .iter()
            .find(|t| t.status == TerminalStatus::InOperation)
            .map(|t| t.institution_code.as_str())
    }
}
