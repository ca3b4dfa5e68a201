//! The server-side work of a PIN-mode `ConfirmByCard`, without gRPC and TLS
//! (docs/performance.md "Benchmarks of the confirmation path").
//!
//! `cargo bench -p onshi-loadgen --bench handler -- --warm-up-time 1 --measurement-time 3`
//!
//! The handlers identify the terminal from the TLS peer certificate, which a plain
//! `tonic::Request` cannot carry, so this bench does not call them. It builds a tiny testbed
//! world and the service's own state (`server::build_state` on the world's `service.toml`),
//! then runs the steps of the handler's confirm path in the handler's order with the same
//! library calls: validate the card certificate through the certificate cache, encode the
//! challenge binding and verify the card's RSA signature over it, look up the card's person,
//! the person and their qualification records, assess, build the answer and the write the
//! writer will commit (the challenge use and the audit record). "hot" is a known certificate
//! (cache hit), "cold" a new one (a cache that holds nothing, so every request parses the
//! certificate and checks the CA signature).
//!
//! Not measured here: TLS, HTTP/2 and protobuf, the terminal lookup, the hops to the blocking
//! pool and the writer, and the group commit itself (the challenge consumed and the audit
//! record written, durably: the `store` bench of onshi-confirm-service measures it per
//! request, by group size). The challenge is issued and signed in the untimed setup of each
//! iteration (the terminal's IssueChallenge and the card's signature).

#![allow(clippy::unwrap_used, clippy::expect_used)] // bench setup: a panic is the report

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use onshi_confirm_service::answer;
use onshi_confirm_service::audit::AuditRecord;
use onshi_confirm_service::cert_cache::CertCache;
use onshi_confirm_service::clock::SystemClock;
use onshi_confirm_service::config::Config;
use onshi_confirm_service::eligibility;
use onshi_confirm_service::server::build_state;
use onshi_confirm_service::service::ServiceState;
use onshi_confirm_service::store::{AuditWrite, CardKey};
use onshi_confirm_service::validation::ValidatedCertificate;
use onshi_loadgen::world::World;
use onshi_proto::binding::{ChallengeBinding, ConsentBits, Purpose};
use onshi_proto::v1 as pb;
use onshi_testbed::manifest::CardKind;
use onshi_testbed::{build_world, WorldOptions};
use ring::rand::SystemRandom;
use ring::signature::{self, RsaKeyPair};
use time::{OffsetDateTime, UtcOffset};

struct Fixture {
    state: ServiceState,
    terminal: String,
    certificate: Vec<u8>,
    key: Arc<RsaKeyPair>,
    rng: SystemRandom,
    _dir: tempfile::TempDir,
}

/// A challenge issued to the terminal and the card's signature over its binding.
struct Proof {
    challenge: Vec<u8>,
    signature: Vec<u8>,
}

fn no_consents() -> ConsentBits {
    ConsentBits::new(false, false, false, false)
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let world_dir = dir.path().join("world");
        let mut opts = WorldOptions::new(&world_dir, OffsetDateTime::now_utc());
        opts.cards = 8;
        opts.persons = 200;
        opts.force = true;
        opts.progress = false;
        build_world(&opts).expect("build the tiny world");
        let world = World::load(&world_dir).unwrap();
        let mut config = Config::load(&world_dir.join("service.toml")).unwrap();
        config.validation.reload_interval_seconds = 0;
        let state = build_state(&config, Arc::new(SystemClock)).unwrap();
        let card = world.cards_of(CardKind::Valid).remove(0);
        Fixture {
            state,
            terminal: world.terminals[0].name.clone(),
            certificate: card.certificate.to_vec(),
            key: card.key,
            rng: SystemRandom::new(),
            _dir: dir,
        }
    }

    /// The untimed part: IssueChallenge and the card's signature.
    fn prove(&self) -> Proof {
        let bytes = self
            .state
            .challenges
            .issue(&self.terminal, Purpose::Confirm, OffsetDateTime::now_utc())
            .unwrap()
            .bytes;
        let binding = ChallengeBinding {
            purpose: Purpose::Confirm,
            challenge: &bytes,
            terminal_name: &self.terminal,
            certificate_der: &self.certificate,
            consents: no_consents(),
        }
        .encode()
        .unwrap();
        let mut sig = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(&signature::RSA_PKCS1_SHA256, &self.rng, &binding, &mut sig)
            .unwrap();
        Proof {
            challenge: bytes.to_vec(),
            signature: sig,
        }
    }

    /// The card's signature over the challenge binding, checked as the handler does.
    fn verify(&self, validated: &ValidatedCertificate, proof: &Proof) {
        let binding = ChallengeBinding {
            purpose: Purpose::Confirm,
            challenge: &proof.challenge,
            terminal_name: &self.terminal,
            certificate_der: &self.certificate,
            consents: no_consents(),
        }
        .encode_with_cert_hash(&validated.sha256)
        .unwrap();
        signature::UnparsedPublicKey::new(
            &signature::RSA_PKCS1_2048_8192_SHA256,
            &validated.rsa_public_key,
        )
        .verify(black_box(&binding), black_box(&proof.signature))
        .unwrap();
    }

    /// The confirm path's server-side steps, in the handler's order: the answer and the write
    /// handed to the writer.
    fn confirm(&self, cache: &CertCache, proof: &Proof) -> (pb::ConfirmationResult, AuditWrite) {
        let now = OffsetDateTime::now_utc();
        let s = &self.state;
        let challenge = s
            .challenges
            .check(&proof.challenge, &self.terminal, Purpose::Confirm, now)
            .unwrap();
        let trust = s.trust.current();
        let validated = cache.validate(&trust, &self.certificate, now).unwrap();
        self.verify(&validated, proof);
        let key = CardKey::from_der(&self.certificate).unwrap();
        let person_id = s.store.person_for_card(&key).unwrap().unwrap();
        let person = s.store.person(&person_id).unwrap().unwrap();
        let records = s.store.qualifications(&person_id).unwrap();
        assert!(person.registered_for_insurance);
        let jst = UtcOffset::from_hms(9, 0, 0).unwrap();
        let assessment = eligibility::assess(&records, now.to_offset(jst).date());
        let result = answer::confirmation_result(
            &assessment,
            Some(&person),
            pb::ReferenceClassification::MyNumberCard,
            &[],
            now,
        );
        let (institution_code, terminal_id) = self.terminal.split_once('-').unwrap();
        let record = AuditRecord {
            confirmation_id: format!("{:032x}", now.unix_timestamp_nanos()),
            at: now,
            institution_code: institution_code.into(),
            terminal_id: terminal_id.into(),
            person_id: Some(person_id),
            method: "pin".into(),
            purpose: "confirm".into(),
            result_code: result.result_code().as_str_name().into(),
            consents: 0,
            certificate_sha256: Some(
                validated
                    .sha256
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect(),
            ),
            returned: answer::audit_summary(&result),
            claimed_at: None,
        };
        let write = AuditWrite {
            record,
            challenge: Some(challenge),
            consents: Vec::new(),
            registration: None,
            remember: None,
        };
        (result, write)
    }
}

fn handler(c: &mut Criterion) {
    let f = Fixture::new();
    let cold = CertCache::new(0);
    // Warm the service's own cache, as the first request with this card would.
    f.confirm(&f.state.cert_cache, &f.prove());

    let mut group = c.benchmark_group("confirm path (server side, no TLS/gRPC/group commit)");
    group.bench_function("hot: known certificate", |b| {
        b.iter_batched(
            || f.prove(),
            |p| black_box(f.confirm(&f.state.cert_cache, &p)),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("cold: new certificate", |b| {
        b.iter_batched(
            || f.prove(),
            |p| black_box(f.confirm(&cold, &p)),
            BatchSize::SmallInput,
        )
    });
    group.finish();

    // The parts, to see where the time goes.
    let now = OffsetDateTime::now_utc();
    let trust = f.state.trust.current();
    let mut group = c.benchmark_group("confirm path parts");
    group.bench_function("CertCache::validate hit", |b| {
        b.iter(|| {
            f.state
                .cert_cache
                .validate(&trust, black_box(&f.certificate), now)
                .unwrap()
        })
    });
    group.bench_function("CertCache::validate miss", |b| {
        b.iter(|| {
            cold.validate(&trust, black_box(&f.certificate), now)
                .unwrap()
        })
    });
    let validated = cold.validate(&trust, &f.certificate, now).unwrap();
    let proof = f.prove();
    group.bench_function("binding encode + RSA-2048 verify", |b| {
        b.iter(|| f.verify(&validated, &proof))
    });
    group.bench_function("card key + person + qualifications", |b| {
        b.iter(|| {
            let key = CardKey::from_der(black_box(&f.certificate)).unwrap();
            let id = f.state.store.person_for_card(&key).unwrap().unwrap();
            let person = f.state.store.person(&id).unwrap().unwrap();
            let records = f.state.store.qualifications(&id).unwrap();
            black_box((person, records))
        })
    });
    group.finish();
}

criterion_group!(benches, handler);
criterion_main!(benches);
