//! Card holders in memory: the person a known card is linked to, with their qualification
//! records, so that a confirmation by a card seen a moment ago reads nothing from the store
//! and never leaves the async runtime (docs/performance.md "The hot path").
//!
//! What is kept, and why it stays correct:
//!
//! - Only **registered** persons (健康保険証利用申込み done). A person not yet registered is read
//!   from the store every time, so a registration made on any instance is seen by the next
//!   request on every instance; registration never goes back, so a kept person cannot become
//!   unregistered behind the cache.
//! - Only cards the store **links** to a person: an unknown card is looked up again every time,
//!   so a link loaded a moment ago is found at once.
//! - Consents are not kept (the clinical-data calls read them from the store).
//! - Everything else that can change behind the service (qualification records, a person's
//!   details and insurance document, a card moved to another person, all loaded by the world builder or an
//!   operator's load) takes effect within [`HolderCache::TTL`] on every instance: an entry is
//!   used only while younger than that on the service's clock (an entry from "after" `now`,
//!   the clock set back, is stale too). A write made through this instance that changes a
//!   kept person (none today; a registration cannot) calls [`HolderCache::forget_person`].
//! - Bounded: beyond [`HolderCache::MAX_ENTRIES`] cards the cache starts over.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use time::{Duration, OffsetDateTime};

use crate::documents::InsuranceDocument;
use crate::eligibility::{Person, QualificationRecord};
use crate::medical_aid::MedicalTicket;
use crate::store::CardKey;

/// A card's holder as the confirmation needs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub person: Person,
    pub records: Vec<QualificationRecord>,
    /// The document the person holds in place of the paper card (the お知らせ for a
    /// registered person, as a rule), reported beside a card confirmation's answer.
    pub document: Option<InsuranceDocument>,
    /// A 医療扶助 recipient's 医療券 / 調剤券 (empty for everybody else; read only for a
    /// person with an `A1` record). Registered within [`HolderCache::TTL`] like the records.
    pub tickets: Vec<MedicalTicket>,
}

/// Holders by card, each with the instant it was read.
#[derive(Debug, Default)]
pub struct HolderCache {
    entries: RwLock<HashMap<CardKey, (Arc<Holder>, OffsetDateTime)>>,
}

impl HolderCache {
    /// How long a holder read from the store is used before it is read again.
    pub const TTL: Duration = Duration::seconds(2);
    /// Beyond this many cards the cache starts over (at a few hundred bytes a holder, tens of
    /// megabytes at most).
    pub const MAX_ENTRIES: usize = 100_000;

    /// The holder of `card`, if read less than [`Self::TTL`] before `now`.
    pub fn get(&self, card: &CardKey, now: OffsetDateTime) -> Option<Arc<Holder>> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries
            .get(card)
            .filter(|(_, at)| *at <= now && now - *at < Self::TTL)
            .map(|(holder, _)| Arc::clone(holder))
    }

    /// Remembers the holder of `card`, read at `now`, if they may be kept (registered).
    pub fn put(&self, card: CardKey, holder: Arc<Holder>, now: OffsetDateTime) {
        if !holder.person.registered_for_insurance {
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= Self::MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(card, (holder, now));
    }

    /// Forgets every card of `person_id` (after a write of this instance that changed them).
    pub fn forget_person(&self, person_id: &str) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        entries.retain(|_, (h, _)| h.person.id != person_id);
    }

    /// Cards kept now.
    pub fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    const NOW: OffsetDateTime = datetime!(2026-12-03 09:00 UTC);

    fn holder(id: &str, registered: bool) -> Arc<Holder> {
        Arc::new(Holder {
            person: Person {
                id: id.into(),
                name: "山田　太郎".into(),
                kana_name: "ﾔﾏﾀﾞ ﾀﾛｳ".into(),
                sex: 1,
                birth_date: date!(1980 - 01 - 01),
                address: "東京都".into(),
                postcode: "100-0001".into(),
                registered_for_insurance: registered,
            },
            records: Vec::new(),
            document: None,
            tickets: Vec::new(),
        })
    }

    fn card(serial: &str) -> CardKey {
        CardKey {
            issuer_key: "ab".into(),
            serial: serial.into(),
        }
    }

    #[test]
    fn a_registered_holder_is_kept_for_the_ttl_only() {
        let c = HolderCache::default();
        c.put(card("01"), holder("P1", true), NOW);
        assert_eq!(c.get(&card("01"), NOW), Some(holder("P1", true)));
        let last = NOW + HolderCache::TTL - Duration::milliseconds(1);
        assert!(c.get(&card("01"), last).is_some());
        assert_eq!(c.get(&card("01"), NOW + HolderCache::TTL), None);
        // Read "after" now: the clock was set back.
        assert_eq!(c.get(&card("01"), NOW - Duration::seconds(1)), None);
        assert_eq!(c.get(&card("02"), NOW), None);
    }

    #[test]
    fn an_unregistered_person_is_never_kept() {
        let c = HolderCache::default();
        c.put(card("01"), holder("P1", false), NOW);
        assert_eq!(c.get(&card("01"), NOW), None);
        assert!(c.is_empty());
    }

    #[test]
    fn forgetting_a_person_forgets_every_card_of_theirs() {
        let c = HolderCache::default();
        c.put(card("01"), holder("P1", true), NOW);
        c.put(card("02"), holder("P1", true), NOW);
        c.put(card("03"), holder("P2", true), NOW);
        c.forget_person("P1");
        assert_eq!(c.get(&card("01"), NOW), None);
        assert_eq!(c.get(&card("02"), NOW), None);
        assert!(c.get(&card("03"), NOW).is_some());
    }
}
