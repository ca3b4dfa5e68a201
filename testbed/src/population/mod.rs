//! The synthetic population: persons in households with kanji names, half-width katakana
//! readings and real towns' addresses, their insurance qualification records, and for a share
//! of them dispensed drugs and checkup results. `docs/world.md` describes the model and its
//! shares.
//!
//! **Streaming.** A world of ten million persons is never held in memory. The population is
//! cut into independent units, each drawn from its own generator seeded by the world seed and
//! the unit's index: one per card holder (the first persons, in card order, see [`CardPlan`]),
//! then blocks of [`BLOCK`] persons filled with households. Chunks of whole blocks are
//! generated on worker threads and handed to the writer in order ([`stream`]), so the result
//! depends on the seed, "today" and the number of persons only — not on the chunk size or the
//! number of threads.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use onshi_confirm_service::clinical::{Checkup, Medication};
use onshi_confirm_service::documents::InsuranceDocument;
use onshi_confirm_service::eligibility::{Person, QualificationRecord};
use onshi_confirm_service::medical_aid::MedicalTicket;
use onshi_confirm_service::store::LoadBatch;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use time::Date;

use crate::keys::derive_seed;
use crate::TestbedError;

pub mod clinical;
pub mod documents;
pub mod examples;
mod gen;
mod holders;
mod households;
pub mod medical_aid;
pub mod tables;

pub use examples::{validity_by_numbers, Examples, CARD_CASES, CASES};
pub use gen::{person_id, person_index, NUMBER_BASE};
pub use holders::{card_plan, CardPlan, Holder};

/// Persons per block: a block is filled with whole households (the last one cut short at the
/// block's end), and is the smallest unit a chunk is made of.
pub const BLOCK: usize = 16;

/// Persons written per store transaction by default.
pub const DEFAULT_CHUNK_PERSONS: usize = 10_000;

/// The most persons a world may have: the 番号 of a card is 8 digits, see `docs/world.md`.
pub const MAX_PERSONS: usize = 50_000_000;

/// One person and everything recorded about them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    pub person: Person,
    pub records: Vec<QualificationRecord>,
    pub medications: Vec<Medication>,
    pub checkups: Vec<Checkup>,
    /// The document held in place of the paper card ([`documents::document_for`]).
    pub document: Option<InsuranceDocument>,
    /// A 医療扶助 recipient's 医療券 / 調剤券 ([`medical_aid`]).
    pub tickets: Vec<MedicalTicket>,
}

impl Generated {
    pub fn new(person: Person, records: Vec<QualificationRecord>) -> Self {
        Generated {
            person,
            records,
            medications: Vec::new(),
            checkups: Vec::new(),
            document: None,
            tickets: Vec::new(),
        }
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct PopulationSpec {
    pub seed: u64,
    /// The date at the service (JST).
    pub today: Date,
    /// Everyone, card holders included.
    pub persons: usize,
    /// The cards, whose holders are the first persons.
    pub plans: Vec<CardPlan>,
}

/// A population ready to be generated chunk by chunk.
#[derive(Debug, Clone)]
pub struct Population {
    spec: PopulationSpec,
    catalog: tables::Catalog,
}

/// How the population is cut into chunks: chunk 0 holds the card holders, every later chunk
/// `blocks_per_chunk` blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub blocks: usize,
    pub blocks_per_chunk: usize,
}

impl Layout {
    /// Chunks in all, the card holders' included.
    pub fn chunks(&self) -> usize {
        1 + self.blocks.div_ceil(self.blocks_per_chunk)
    }

    fn blocks_of(&self, chunk: usize) -> Range<usize> {
        let start = (chunk.saturating_sub(1) * self.blocks_per_chunk).min(self.blocks);
        start..(start + self.blocks_per_chunk).min(self.blocks)
    }
}

/// A generated chunk, ready for [`onshi_confirm_service::store::Store::load`].
#[derive(Debug, Clone, Default)]
pub struct Chunk {
    pub index: usize,
    /// Persons, their qualification records, medications and checkups.
    pub batch: LoadBatch,
    pub households: usize,
    /// The first example of each case in the chunk.
    pub examples: Examples,
}

/// Counts of what was generated, for progress output and the report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub persons: usize,
    pub households: usize,
    pub qualifications: usize,
    pub medications: usize,
    pub checkups: usize,
}

impl Totals {
    pub fn add(&mut self, chunk: &Chunk) {
        self.persons += chunk.batch.persons.len();
        self.households += chunk.households;
        self.qualifications += chunk.batch.qualifications.len();
        self.medications += chunk.batch.medications.len();
        self.checkups += chunk.batch.checkups.len();
    }
}

/// Checks the size of a population: at least one person per card, at most [`MAX_PERSONS`].
pub fn check_size(persons: usize, cards: usize) -> Result<(), TestbedError> {
    if persons > MAX_PERSONS {
        return Err(TestbedError::Options(format!(
            "--persons is at most {MAX_PERSONS}, got {persons}"
        )));
    }
    if persons < cards.max(1) {
        return Err(TestbedError::Options(format!(
            "--persons ({persons}) must be at least --cards ({cards}): every card has a holder"
        )));
    }
    Ok(())
}

impl Population {
    pub fn new(spec: PopulationSpec) -> Result<Population, TestbedError> {
        check_size(spec.persons, spec.plans.len())?;
        Ok(Population {
            spec,
            catalog: tables::Catalog::new()?,
        })
    }

    pub fn spec(&self) -> &PopulationSpec {
        &self.spec
    }

    pub fn catalog(&self) -> &tables::Catalog {
        &self.catalog
    }

    /// Chunks of about `chunk_persons` persons (whole blocks, at least one).
    pub fn layout(&self, chunk_persons: usize) -> Layout {
        let rest = self.spec.persons.saturating_sub(self.spec.plans.len());
        Layout {
            blocks: rest.div_ceil(BLOCK),
            blocks_per_chunk: (chunk_persons / BLOCK).max(1),
        }
    }

    fn gen(&self, purpose: &str) -> gen::Gen<'_> {
        gen::Gen {
            rng: ChaCha8Rng::from_seed(derive_seed(self.spec.seed, purpose)),
            today: self.spec.today,
            catalog: &self.catalog,
        }
    }

    /// The card holders, in card order.
    pub fn card_holders(&self) -> Result<Vec<Generated>, TestbedError> {
        self.spec
            .plans
            .iter()
            .enumerate()
            .map(|(i, plan)| {
                let mut g = self
                    .gen(&format!("population/card/{i}"))
                    .card_holder(i, plan)?;
                g.document = documents::document_for(&g, self.spec.today)?;
                Ok(g)
            })
            .collect()
    }

    /// The persons of block `b`, in index order, and how many households they form.
    pub fn block(&self, b: usize) -> Result<(Vec<Generated>, usize), TestbedError> {
        let start = self.spec.plans.len() + b * BLOCK;
        let end = (start + BLOCK).min(self.spec.persons);
        let mut gen = self.gen(&format!("population/block/{b}"));
        let mut out = Vec::with_capacity(BLOCK);
        let mut households = 0;
        while start + out.len() < end {
            // The first households of the world are examples made on purpose.
            let forced = match (b, households) {
                (0, 0) => Some(households::Forced::ChangedInsurer),
                (0, 1) => Some(households::Forced::Uninsured),
                _ => None,
            };
            let at = start + out.len();
            // Then two card-less 医療扶助 recipients (for bulk queries): designated elsewhere,
            // and without a ticket this month.
            let aid = match (b, households) {
                (0, 2) => Some(medical_aid::AidCase::Elsewhere),
                (0, 3) => Some(medical_aid::AidCase::NoTicketThisMonth),
                _ => None,
            };
            if let Some(case) = aid {
                households += 1;
                out.push(gen.recipient(at, case)?);
                continue;
            }
            let household = households::household(&mut gen, at, end - at, forced)?;
            households += 1;
            out.extend(household);
        }
        for g in &mut out {
            g.document = documents::document_for(g, self.spec.today)?;
        }
        Ok((out, households))
    }

    /// Generates chunk `index` of `layout`.
    pub fn chunk(&self, layout: &Layout, index: usize) -> Result<Chunk, TestbedError> {
        let mut chunk = Chunk {
            index,
            examples: Examples::new(),
            ..Chunk::default()
        };
        let take = |chunk: &mut Chunk, g: Generated| {
            let i = person_index(&g.person.id).unwrap_or(usize::MAX);
            let card = self
                .spec
                .plans
                .get(i)
                .map(|plan| (format!("card-{:04}", i + 1), plan.kind));
            if let Some((name, kind)) = &card {
                chunk.examples.offer_card(&g, name, *kind, self.spec.today);
            }
            chunk
                .examples
                .offer(&g, card, self.spec.today, &self.catalog);
            chunk.batch.persons.push(g.person);
            chunk.batch.qualifications.extend(g.records);
            chunk.batch.medications.extend(g.medications);
            chunk.batch.checkups.extend(g.checkups);
            chunk.batch.documents.extend(g.document);
            chunk.batch.medical_tickets.extend(g.tickets);
        };
        if index == 0 {
            for g in self.card_holders()? {
                chunk.households += 1;
                take(&mut chunk, g);
            }
            return Ok(chunk);
        }
        for b in layout.blocks_of(index) {
            let (persons, households) = self.block(b)?;
            chunk.households += households;
            for g in persons {
                take(&mut chunk, g);
            }
        }
        Ok(chunk)
    }
}

/// Generates chunks `range` of `layout` on `workers` threads and hands them to `sink` in
/// order, one at a time. At most two chunks per worker are in memory. Stops at the first
/// error, from a worker or from `sink`.
pub fn stream(
    population: &Population,
    layout: &Layout,
    range: Range<usize>,
    workers: usize,
    mut sink: impl FnMut(Chunk) -> Result<(), TestbedError>,
) -> Result<(), TestbedError> {
    let count = range.len();
    if count == 0 {
        return Ok(());
    }
    let workers = workers.clamp(1, 16).min(count);
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let mut receivers = Vec::with_capacity(workers);
        for w in 0..workers {
            let (tx, rx) = mpsc::sync_channel::<Result<Chunk, TestbedError>>(1);
            receivers.push(rx);
            let stop = &stop;
            let range = range.clone();
            scope.spawn(move || {
                // Worker `w` makes every `workers`-th chunk, so the writer knows which channel
                // the next chunk comes from.
                for index in range.skip(w).step_by(workers) {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let chunk = population.chunk(layout, index);
                    let failed = chunk.is_err();
                    if tx.send(chunk).is_err() || failed {
                        break;
                    }
                }
            });
        }
        let mut write = || -> Result<(), TestbedError> {
            for k in 0..count {
                let chunk = receivers[k % workers].recv().map_err(|_| {
                    TestbedError::Options("a population worker stopped unexpectedly".into())
                })??;
                sink(chunk)?;
            }
            Ok(())
        };
        let result = write();
        // Unblock and stop the workers before the scope waits for them.
        stop.store(true, Ordering::Relaxed);
        drop(receivers);
        result
    })
}

/// The whole population in memory, for tests and small worlds: `(persons, records,
/// medications, checkups)` through the same chunks as [`stream`].
pub fn generate_all(
    population: &Population,
    chunk_persons: usize,
    workers: usize,
) -> Result<(Vec<Generated>, Totals), TestbedError> {
    let layout = population.layout(chunk_persons);
    let mut out = Vec::new();
    let mut totals = Totals::default();
    let holders = population.card_holders()?;
    totals.persons += holders.len();
    totals.households += holders.len();
    out.extend(holders);
    stream(population, &layout, 1..layout.chunks(), workers, |chunk| {
        totals.add(&chunk);
        regroup(chunk.batch, &mut out);
        Ok(())
    })?;
    Ok((out, totals))
}

/// Splits a batch back into persons with their rows (rows are in person order).
fn regroup(batch: LoadBatch, out: &mut Vec<Generated>) {
    let mut q = batch.qualifications.into_iter().peekable();
    let mut m = batch.medications.into_iter().peekable();
    let mut c = batch.checkups.into_iter().peekable();
    let mut d = batch.documents.into_iter().peekable();
    let mut t = batch.medical_tickets.into_iter().peekable();
    for person in batch.persons {
        let mut g = Generated::new(person, Vec::new());
        while let Some(r) = q.next_if(|r| r.person_id == g.person.id) {
            g.records.push(r);
        }
        while let Some(r) = m.next_if(|r| r.person_id == g.person.id) {
            g.medications.push(r);
        }
        while let Some(r) = c.next_if(|r| r.person_id == g.person.id) {
            g.checkups.push(r);
        }
        g.document = d.next_if(|r| r.person_id == g.person.id);
        while let Some(r) = t.next_if(|r| r.person_id == g.person.id) {
            g.tickets.push(r);
        }
        out.push(g);
    }
}

#[cfg(test)]
mod tests;
