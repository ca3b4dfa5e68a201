//! The `onshi.v1.Confirmation` gRPC service: challenges, confirmation by card (PIN mode), by the
//! reader's attestation (face and visual-check modes, `ConfirmByReader`) and by insurance-card
//! numbers, registration for insurance use, consent-gated clinical data, and batch
//! confirmation (the background work is in [`crate::batch`]).
//!
//! The order of checks for a card follows architecture.md "main flow" step 4: terminal known
//! and in operation; challenge known, fresh, unused and this terminal's; certificate valid;
//! signature over the binding (or, in face and visual-check modes, the reader's attestation
//! with the terminal's device key, then the face policy); then certificate → person →
//! registration → records. Every request by an identified terminal is audited, durably, before
//! its answer (or refusal) leaves: [`ConfirmationService::finish`] is the one exit.
//!
//! A confirmation's writes all happen in that exit, in one group commit of the writer
//! ([`crate::audit`]): its challenge is consumed, the consents it carried are recorded (only if
//! the challenge was good) and its audit record is written, in one transaction. The checks before
//! it only read, so a confirmation costs no write lock and no sync of its own; a refused
//! challenge still takes precedence over every other outcome, as if checked first. A registration
//! is carried in the same group commit (the person registered only with a good challenge, and
//! never without its audit record).

use std::sync::Arc;

use onshi_proto::binding::{ChallengeBinding, ConsentBits, Purpose};
use onshi_proto::v1::{
    self as pb, ClinicalDataRequest, ConfirmByCardRequest, ConfirmByReaderRequest,
    ConfirmationResult, RegisterByReaderRequest, ResultCode,
};
use prost::Message;
use ring::rand::SecureRandom;
use ring::signature;
use time::{OffsetDateTime, UtcOffset};
use tonic::{Request, Response, Status};

use crate::answer;
use crate::as_of;
use crate::audit::{AuditError, AuditLog, AuditRecord};
use crate::batch;
use crate::cert_cache::CertCache;
use crate::cert_grace::{self, Standing};
use crate::challenge::Challenges;
use crate::clock::Clock;
use crate::consent::{self, ConsentCheck, ConsentGrant, ConsentKind};
use crate::eligibility::{self, DomainError, Person, QualificationRecord};
use crate::holders::{Holder, HolderCache};
use crate::home_care;
use crate::idempotency::Idempotency;
use crate::medical_aid::{self, MedicalTicket};
use crate::outcome::Refusal;
use crate::quota::Quotas;
use crate::store::{
    AuditWrite, CardKey, ChallengeUse, Registration, RegistrationWrite, RememberedAnswer, Store,
    StoreError,
};
use crate::terminal::{DevicePublicKey, RateLimiter, TerminalCache, TerminalIdentity};
use crate::trust_reload::LiveTrust;
use crate::validation::{CertError, ValidatedCertificate, MAX_CERTIFICATE_LEN};

pub(super) use super::attestation::{check_attestation, claim_of, reader_claim};
pub(super) use super::batch_rpc::check_arrival;
pub use super::batch_rpc::{MAX_BATCH, MAX_PAGE, MAX_PAGE_BYTES};

/// Japan Standard Time: "today" for qualification dates is the Japanese calendar day.
pub(crate) const JST: UtcOffset = match UtcOffset::from_hms(9, 0, 0) {
    Ok(o) => o,
    Err(_) => UtcOffset::UTC,
};

/// Longest signature accepted (RSA-4096); the card's is 256 bytes.
pub(super) const MAX_SIGNATURE_LEN: usize = 512;

/// Everything the handlers share.
#[derive(Debug)]
pub struct ServiceState {
    pub store: Arc<dyn Store>,
    pub challenges: Arc<Challenges>,
    /// The current trust store (replaced when the CRL files change).
    pub trust: Arc<LiveTrust>,
    /// The trust store of smartphone certificates (their own CA and CRLs), when configured.
    pub phone_trust: Option<Arc<LiveTrust>>,
    /// Verified certificates, so a known card costs no parsing and no CA signature.
    pub cert_cache: CertCache,
    /// Holders of cards seen a moment ago, so a known card costs no store read.
    pub holders: HolderCache,
    pub audit: AuditLog,
    pub clock: Arc<dyn Clock>,
    /// This instance's name as a batch worker (leases in the shared store).
    pub instance_id: String,
    /// Terminal statuses of the last few seconds.
    pub terminals: TerminalCache,
    /// Per-terminal rate limits.
    pub rate_limiter: RateLimiter,
    /// The lowest face-match threshold accepted from a reader (`min_face_threshold_permille`).
    pub min_face_threshold_permille: u16,
    /// Per-institution quotas on card-less look-ups.
    pub quotas: Quotas,
    /// The batch pages waiting for a worker, queued fairly per institution.
    pub batches: batch::Scheduler,
}

/// The gRPC service.
#[derive(Debug, Clone)]
pub struct ConfirmationService {
    pub(super) state: Arc<ServiceState>,
    /// Answers remembered by idempotency key (card-less calls; [`crate::idempotency`]).
    pub(super) idempotency: Arc<Idempotency>,
}

/// The audit method of a smartphone confirmation on Android (PIN typed at the reader).
pub const METHOD_SMARTPHONE_ANDROID: &str = "smartphone-android";
/// The audit method of a smartphone confirmation on an iPhone (verified on the phone).
pub const METHOD_SMARTPHONE_IPHONE: &str = "smartphone-iphone";

/// What is known about a request when it is answered or refused, for its audit record.
#[derive(Debug)]
pub(crate) struct AuditContext {
    pub person_id: Option<String>,
    pub consents: u8,
    pub certificate_sha256: Option<String>,
    /// `pin` (card in PIN mode), `smartphone-android` / `smartphone-iphone` (a smartphone
    /// マイナ保険証), `numbers` (insurance-card numbers), `face` (face match
    /// attested by the reader), `visual:<staff id>` (visual check attested by the reader; plain
    /// `visual` when the staff id itself was refused) or `reader` (a reader confirmation whose
    /// method was missing or unknown).
    pub method: std::borrow::Cow<'static, str>,
    /// `confirm`, `register`, `medication`, `checkup`, `batch-submit`, `batch-fetch`.
    pub purpose: &'static str,
    /// The challenge to consume with the audit record.
    pub challenge: Option<ChallengeUse>,
    /// Consents to record with the audit record, if the challenge is good.
    pub grants: Vec<ConsentGrant>,
    /// The registration to commit with the audit record, if the request was carried out and
    /// its challenge is good.
    pub registration: Option<RegistrationWrite>,
    /// The visit time the terminal claims (a confirmation caught up after an outage).
    pub claimed_at: Option<OffsetDateTime>,
    /// The idempotency key the answer is remembered under, with the audit record.
    pub remember: Option<crate::idempotency::RememberKey>,
}

impl AuditContext {
    pub(crate) fn new(method: &'static str, purpose: &'static str) -> Self {
        Self {
            person_id: None,
            consents: 0,
            certificate_sha256: None,
            method: std::borrow::Cow::Borrowed(method),
            purpose,
            challenge: None,
            grants: Vec::new(),
            registration: None,
            claimed_at: None,
            remember: None,
        }
    }

    /// A context for a request that [`ConfirmationService::remembered`] runs under an
    /// idempotency key (taken from the request's extensions).
    pub(crate) fn remembering<R>(
        method: &'static str,
        purpose: &'static str,
        request: &Request<R>,
    ) -> Self {
        Self {
            remember: request
                .extensions()
                .get::<crate::idempotency::RememberKey>()
                .cloned(),
            ..Self::new(method, purpose)
        }
    }
}

/// A card's proof of presence as it arrives in a request.
pub(super) struct CardProof {
    pub(super) certificate: Vec<u8>,
    pub(super) challenge: Vec<u8>,
    pub(super) signature: Vec<u8>,
}

impl ConfirmationService {
    pub fn new(state: ServiceState) -> Self {
        Self {
            state: Arc::new(state),
            idempotency: Arc::new(Idempotency::default()),
        }
    }

    /// Runs a card-less call once per idempotency key of the calling terminal (when the
    /// request carries one): a repeated key is answered from memory, with no second audit
    /// record ([`crate::idempotency`] says what this does not cover).
    pub(super) async fn remembered<Req, T, Fut>(
        &self,
        method: &'static str,
        request: Request<Req>,
        run: impl FnOnce(Request<Req>) -> Fut,
    ) -> Result<Response<T>, Status>
    where
        T: Message + Default,
        Fut: std::future::Future<Output = Result<Response<T>, Status>>,
    {
        let Some(key) = crate::idempotency::key_of(&request) else {
            return run(request).await;
        };
        let terminal = self.identify(&request).await.map_err(|r| r.to_status())?;
        let name = format!("{}-{}", terminal.institution_code, terminal.terminal_id);
        let remember = crate::idempotency::RememberKey {
            terminal: name.clone(),
            method,
            key: key.clone(),
        };
        self.idempotency
            .once(&name, method, key, || async {
                // Answered before, by this instance before a restart or by another sharing
                // the store: that answer, from the record.
                let now = self.state.clock.now();
                let k = remember.clone();
                let stored = self
                    .blocking(move |s| {
                        s.store
                            .remembered_answer(&k.terminal, k.method, &k.key, now)
                            .map_err(unavailable)
                    })
                    .await
                    .map_err(|r| r.to_status())?;
                if let Some(bytes) = stored {
                    tracing::info!(terminal = %remember.terminal, method, "answered from a remembered idempotency key");
                    return crate::idempotency::decode_answer(&bytes);
                }
                let mut request = request;
                request.extensions_mut().insert(remember);
                run(request).await.map(Response::into_inner)
            })
            .await
            .map(Response::new)
    }

    /// The shared state (the server resumes unfinished batches with it).
    pub fn state(&self) -> &Arc<ServiceState> {
        &self.state
    }

    /// Runs blocking store work off the async runtime.
    pub(super) async fn blocking<T, F>(&self, f: F) -> Result<T, Refusal>
    where
        F: FnOnce(&ServiceState) -> Result<T, Refusal> + Send + 'static,
        T: Send + 'static,
    {
        blocking(&self.state, f).await
    }

    /// Checks a card's proof for `purpose`: bounds, the challenge (consumed with the audit
    /// record whatever the outcome, so a failed attempt still burns it), the certificate, the signature over the binding. Returns the certificate's store
    /// key; the caller finds its person in the same store round trip as the rest of its work
    /// ([`person_of_card`]).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn verify_card(
        &self,
        terminal: &TerminalIdentity,
        proof: CardProof,
        purpose: Purpose,
        bits: ConsentBits,
        ctx: &mut AuditContext,
        now: OffsetDateTime,
    ) -> Result<(CardKey, Standing), Refusal> {
        check_proof_bounds(&proof.certificate, &proof.challenge, &proof.signature)?;
        let name = terminal.name();
        let (validated, standing) = self
            .challenge_and_certificate(
                &name,
                &proof.certificate,
                &proof.challenge,
                purpose,
                bits,
                ctx,
                now,
            )
            .await?;
        let binding = ChallengeBinding {
            purpose,
            challenge: &proof.challenge,
            terminal_name: &name,
            certificate_der: &proof.certificate,
            consents: bits,
        }
        .encode_with_cert_hash(&validated.sha256)
        .map_err(|e| Refusal::BadRequest(e.to_string()))?;
        signature::UnparsedPublicKey::new(
            &signature::RSA_PKCS1_2048_8192_SHA256,
            &validated.rsa_public_key,
        )
        .verify(&binding, &proof.signature)
        .map_err(|_| Refusal::SignatureInvalid)?;

        Ok((CardKey::of_validated(&validated), standing))
    }

    /// What every proof of a card's presence shares, whoever signed it (the card in PIN mode,
    /// the reader's device key in face and visual-check modes), for a request whose bounds
    /// were checked: records the consents and the certificate's hash for the audit record,
    /// uses the challenge for `purpose` (consumed with the audit record whatever the outcome)
    /// and validates the certificate (chain, validity, key usage,
    /// policy, revocation; cached). Returns the certificate's standing for eligibility
    /// ([`cert_grace`]): an expired certificate within its grace period is accepted for a
    /// confirmation (never for a registration) if everything else about it still holds,
    /// revocation included.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn challenge_and_certificate(
        &self,
        terminal_name: &str,
        certificate: &[u8],
        challenge: &[u8],
        purpose: Purpose,
        bits: ConsentBits,
        ctx: &mut AuditContext,
        now: OffsetDateTime,
    ) -> Result<(ValidatedCertificate, Standing), Refusal> {
        ctx.consents = bits.bits();
        let cert_hash = ring::digest::digest(&ring::digest::SHA256, certificate);
        ctx.certificate_sha256 = Some(hex::encode(cert_hash.as_ref()));

        // Sealed for this terminal and purpose, unexpired: checked by computation, refused
        // before anything else. Its single use is the insert of its nonce with the audit
        // record, in the same transaction as whatever the request changes (consents, a
        // registration): both or neither.
        ctx.challenge = Some(self.state.challenges.check(
            challenge,
            terminal_name,
            purpose,
            now,
        )?);

        // One snapshot of the trust store for the whole request; the cache re-checks time and
        // the current CRL on every hit. A smartphone's certificate is validated against the
        // smartphone CA's store, a card's against the cards' (docs/smartphone.md).
        let phone = purpose.is_smartphone();
        let cards = || Some(self.state.trust.current());
        let phones = || self.state.phone_trust.as_ref().map(|t| t.current());
        // The other kind's store, looked at only when this one does not know the issuer (so
        // a card's confirmation takes no second snapshot).
        let other = || if phone { cards() } else { phones() };
        let Some(trust) = (if phone { phones() } else { cards() }) else {
            // No smartphone CA configured: no phone certificate can be trusted.
            return Err(credential_mismatch_or(
                other,
                certificate,
                now,
                CertError::UntrustedIssuer {
                    issuer: "(no smartphone CA is configured)".into(),
                },
            ));
        };
        match self
            .state
            .cert_cache
            .validate_traced(&trust, certificate, now)
        {
            Ok((validated, lookup)) => {
                crate::observe::cache_lookup(
                    "certificate",
                    lookup == crate::cert_cache::Lookup::Hit,
                );
                let standing = cert_grace::standing(validated.not_after, now);
                Ok((validated, standing))
            }
            // No grace period for a smartphone certificate (docs/domain.md, assumption).
            Err(CertError::Expired { not_after, at })
                if !phone && !matches!(purpose, Purpose::Register | Purpose::RegisterByReader) =>
            {
                match cert_grace::standing(not_after, now) {
                    standing @ Standing::InGrace { .. } => {
                        // Rare, so uncached: the full validation but for the notAfter.
                        let validated = trust.validate_in_grace(certificate, now)?;
                        Ok((validated, standing))
                    }
                    _ => Err(CertError::Expired { not_after, at }.into()),
                }
            }
            Err(e) => Err(credential_mismatch_or(other, certificate, now, e)),
        }
    }

    /// The card holder's side of a confirmation once the card is proven (by its own signature
    /// or a reader's attestation): certificate → person → registration → records, with the
    /// consents to record with the audit record. A certificate in its grace period confirms
    /// eligibility only: no consent is recorded (so no data is shared), and the answer carries
    /// the grace warning; one expiring soon carries the renewal warning.
    pub(super) async fn confirm_holder(
        &self,
        terminal: &TerminalIdentity,
        key: CardKey,
        standing: Standing,
        bits: ConsentBits,
        ctx: &mut AuditContext,
        now: OffsetDateTime,
    ) -> Result<ConfirmationResult, Refusal> {
        let bits = if standing.shares_data() {
            bits
        } else {
            ConsentBits::new(false, false, false, false)
        };
        let today = now.to_offset(JST).date();
        // A card seen a moment ago: its holder from memory, no store read and no hand-off
        // ([`crate::holders`]). Otherwise one store round trip for the person and their
        // records. The consents are recorded with the audit record.
        let holder = match self.state.holders.get(&key, now) {
            Some(holder) => holder,
            None => {
                let lookup = key.clone();
                let holder = self
                    .blocking(move |s| {
                        let person_id = person_of_card(s.store.as_ref(), &lookup)?;
                        let (person, records) = load_person(s.store.as_ref(), &person_id)?
                            .ok_or(Refusal::CardUnknown)?;
                        let document = s
                            .store
                            .insurance_document(&person_id)
                            .map_err(unavailable)?;
                        let tickets = load_tickets(s.store.as_ref(), &person_id, &records)?;
                        Ok(Arc::new(Holder {
                            person,
                            records,
                            document,
                            tickets,
                        }))
                    })
                    .await?;
                self.state.holders.put(key, Arc::clone(&holder), now);
                holder
            }
        };
        ctx.person_id = Some(holder.person.id.clone());
        let (mut result, grants) =
            confirm_person(&holder, &terminal.institution_code, bits, today, now)?;
        ctx.grants = grants;
        answer::certificate_warning(&mut result, standing);
        Ok(result)
    }

    /// A face or visual-check confirmation: the request's shape, then the challenge and the
    /// certificate exactly as for a card in PIN mode, then the reader's attestation over the
    /// binding with the terminal's device key, then the face policy, then the card holder.
    pub(super) async fn confirm_by_reader_checks(
        &self,
        terminal: &TerminalIdentity,
        device_key: Option<DevicePublicKey>,
        req: ConfirmByReaderRequest,
        ctx: &mut AuditContext,
        now: OffsetDateTime,
    ) -> Result<ConfirmationResult, Refusal> {
        let claim = reader_claim(&req, ctx)?;
        check_card_bounds(&req.certificate, &req.challenge)?;
        let bits = consent_bits(req.consents.as_ref())?;
        let prescription = prescription_issue(req.prescription_issue)?;
        let treatment = home_care::treatment(req.treatment)?;
        // 居宅同意取得型 first visit: a visual check at the mobile device, over its own purpose.
        let requery = match (req.requery_consent, &claim) {
            (false, _) => None,
            (true, super::attestation::ReaderClaim::Visual { staff_id }) => {
                ctx.method = format!("mobile-visual:{staff_id}").into();
                Some(home_care::requery_kind(treatment)?)
            }
            (true, _) => {
                return Err(Refusal::Invalid(DomainError::Contradictory {
                    what: "a 居宅同意取得型 first visit is confirmed by PIN or by a visual check",
                }))
            }
        };
        let purpose = match requery {
            Some(_) => Purpose::HomeCareVisualCheck,
            None => claim.purpose(),
        };
        let name = terminal.name();
        let (validated, standing) = self
            .challenge_and_certificate(
                &name,
                &req.certificate,
                &req.challenge,
                purpose,
                bits,
                ctx,
                now,
            )
            .await?;

        let binding = ChallengeBinding {
            purpose,
            challenge: &req.challenge,
            terminal_name: &name,
            certificate_der: &req.certificate,
            consents: bits,
        }
        .encode_attested_with_cert_hash(&validated.sha256, &claim.check())
        .map_err(|e| Refusal::BadRequest(e.to_string()));
        check_attestation(
            &name,
            device_key.as_deref(),
            &req.attestation,
            binding,
            &claim,
            self.state.min_face_threshold_permille,
        )?;
        let key = CardKey::of_validated(&validated);
        let mut result = self
            .confirm_holder(terminal, key, standing, bits, ctx, now)
            .await?;
        result.set_prescription_issue(prescription);
        home_care_first_visit(&mut result, terminal, treatment, requery, ctx, now);
        Ok(result)
    }

    /// A registration without a PIN (顔認証マイナンバーカード): the request's shape, the
    /// challenge (purpose 40) and the certificate, then the reader's attestation over the
    /// register-by-reader binding with the terminal's device key, then the face policy.
    /// Returns the certificate's store key, as [`Self::verify_card`] does for a PIN.
    pub(super) async fn verify_reader_registration(
        &self,
        terminal: &TerminalIdentity,
        device_key: Option<DevicePublicKey>,
        req: RegisterByReaderRequest,
        ctx: &mut AuditContext,
        now: OffsetDateTime,
    ) -> Result<CardKey, Refusal> {
        let claim = claim_of(req.method, req.face_match.as_ref(), &req.staff_id, ctx)?;
        check_card_bounds(&req.certificate, &req.challenge)?;
        let purpose = Purpose::RegisterByReader;
        let name = terminal.name();
        let (validated, _standing) = self
            .challenge_and_certificate(
                &name,
                &req.certificate,
                &req.challenge,
                purpose,
                ConsentBits::default(),
                ctx,
                now,
            )
            .await?;
        let binding = ChallengeBinding {
            purpose,
            challenge: &req.challenge,
            terminal_name: &name,
            certificate_der: &req.certificate,
            consents: ConsentBits::default(),
        }
        .encode_attested_with_cert_hash(&validated.sha256, &claim.check())
        .map_err(|e| Refusal::BadRequest(e.to_string()));
        check_attestation(
            &name,
            device_key.as_deref(),
            &req.attestation,
            binding,
            &claim,
            self.state.min_face_threshold_permille,
        )?;
        Ok(CardKey::of_validated(&validated))
    }

    pub(super) async fn confirm(
        &self,
        terminal: &TerminalIdentity,
        req: ConfirmByCardRequest,
        ctx: &mut AuditContext,
        now: OffsetDateTime,
    ) -> Result<ConfirmationResult, Refusal> {
        let bits = consent_bits(req.consents.as_ref())?;
        let prescription = prescription_issue(req.prescription_issue)?;
        let treatment = home_care::treatment(req.treatment)?;
        // 居宅同意取得型 first visit: the card's PIN at the mobile device, over its own purpose.
        let (purpose, requery) = if req.requery_consent {
            ctx.method = "mobile-pin".into();
            let kind = home_care::requery_kind(treatment)?;
            (Purpose::HomeCareConfirm, Some(kind))
        } else {
            (Purpose::Confirm, None)
        };
        let proof = CardProof {
            certificate: req.certificate,
            challenge: req.challenge,
            signature: req.signature,
        };
        // The credential: a card (PIN mode), or a smartphone whose kind decides the binding's
        // purpose, the trust store and the audit method (docs/smartphone.md).
        // A 居宅同意取得型 first visit reads the card itself (an assumption: docs/domain.md).
        let purpose = match pb::CredentialKind::try_from(req.credential_kind) {
            Ok(pb::CredentialKind::Unspecified | pb::CredentialKind::Card) => purpose,
            Ok(pb::CredentialKind::SmartphoneAndroid | pb::CredentialKind::SmartphoneIphone)
                if requery.is_some() =>
            {
                return Err(Refusal::BadRequest(
                    "a 居宅同意取得型 first visit (requery_consent) is made with the card, not a \
                     smartphone"
                        .into(),
                ));
            }
            Ok(pb::CredentialKind::SmartphoneAndroid) => {
                ctx.method = std::borrow::Cow::Borrowed(METHOD_SMARTPHONE_ANDROID);
                Purpose::SmartphoneAndroid
            }
            Ok(pb::CredentialKind::SmartphoneIphone) => {
                ctx.method = std::borrow::Cow::Borrowed(METHOD_SMARTPHONE_IPHONE);
                Purpose::SmartphoneIphone
            }
            Err(_) => {
                return Err(Refusal::UnknownEnum {
                    what: "credential_kind",
                    value: req.credential_kind,
                })
            }
        };
        let (key, standing) = self
            .verify_card(terminal, proof, purpose, bits, ctx, now)
            .await?;
        let mut result = self
            .confirm_holder(terminal, key, standing, bits, ctx, now)
            .await?;
        result.set_prescription_issue(prescription);
        home_care_first_visit(&mut result, terminal, treatment, requery, ctx, now);
        Ok(result)
    }

    /// The one exit of every handler: writes the request's challenge use, consents and audit
    /// record (durably, in one transaction) and only then lets the answer or the refusal
    /// leave; a refused challenge turns the outcome into that refusal. `outcome` carries the
    /// answer, its result code and the audit log's summary of what was returned.
    pub(super) async fn finish<T: 'static>(
        &self,
        terminal: &TerminalIdentity,
        now: OffsetDateTime,
        ctx: AuditContext,
        confirmation_id: String,
        outcome: Result<(T, ResultCode, String), Refusal>,
    ) -> Result<Response<T>, Status> {
        self.finish_committed(terminal, now, ctx, confirmation_id, outcome)
            .await
            .map(|(response, _)| response)
    }

    /// As [`finish`](Self::finish), also telling what the request's registration did
    /// (committed with its audit record, only if the request was carried out).
    pub(super) async fn finish_committed<T: 'static>(
        &self,
        terminal: &TerminalIdentity,
        now: OffsetDateTime,
        mut ctx: AuditContext,
        confirmation_id: String,
        outcome: Result<(T, ResultCode, String), Refusal>,
    ) -> Result<(Response<T>, Option<Registration>), Status> {
        let (code, returned) = match &outcome {
            Ok((_, code, returned)) => (*code, returned.clone()),
            Err(refusal) => (refusal.result_code(), refusal.audit_summary()),
        };
        let purpose = ctx.purpose;
        crate::observe::note_confirmation(&confirmation_id);
        let registration = ctx.registration.take().filter(|_| outcome.is_ok());
        let remember = ctx.remember.take().and_then(|key| {
            // A write with a challenge is never remembered: its verdict could still change
            // the answer (no such call carries a key today).
            if ctx.challenge.is_some() {
                return None;
            }
            let answer = crate::idempotency::encode_answer(&encoded(&outcome))?;
            Some(RememberedAnswer {
                terminal: key.terminal,
                method: key.method.to_owned(),
                key: key.key,
                answer,
                expires_at: now + crate::idempotency::TTL,
            })
        });
        let write = AuditWrite {
            challenge: ctx.challenge.take(),
            consents: std::mem::take(&mut ctx.grants),
            registration,
            remember,
            record: audit_record(terminal, now, ctx, confirmation_id, code, returned),
        };
        let committed = self
            .state
            .audit
            .commit(write)
            .await
            .map_err(|e| audit_failed(e).to_status())?;
        let outcome = match committed.verdict {
            Ok(()) => outcome,
            Err(refused) => Err(Refusal::Challenge(refused)),
        };
        let code = match &outcome {
            Ok((_, code, _)) => *code,
            Err(refusal) => refusal.result_code(),
        };
        // The RPC's own log line (crate::observe) carries the outcome; this detail (with the
        // purpose) only at DEBUG, so a call costs one line at INFO.
        match &outcome {
            Ok(_) => {
                crate::observe::note_outcome(code.as_str_name(), None);
                tracing::debug!(terminal = %terminal.name(), purpose, result = code.as_str_name(), "answered")
            }
            Err(refusal) => {
                crate::observe::note_outcome(code.as_str_name(), Some(refusal.log_reason()));
                tracing::debug!(terminal = %terminal.name(), purpose, result = code.as_str_name(), reason = refusal.log_reason(), "refused")
            }
        }
        match outcome {
            Ok((answer, _, _)) => Ok((Response::new(answer), committed.registration)),
            Err(refusal) => Err(refusal.to_status()),
        }
    }

    /// Looks up the person a clinical-data request names and checks the consent for `kind`.
    pub(super) async fn consented_patient(
        &self,
        terminal: &TerminalIdentity,
        req: &ClinicalDataRequest,
        kind: ConsentKind,
        ctx: &mut AuditContext,
        now: OffsetDateTime,
    ) -> Result<(String, ConsentGrant), Refusal> {
        let query = answer::numbers_query(req.patient.as_ref().unwrap_or(&Default::default()))?;
        let institution = terminal.institution_code.clone();
        let (person_id, check) = self
            .blocking(move |s| {
                // A look-up by numbers like any other: it counts towards the quotas, or a
                // wrong birth date (no patient) and the right one (no consent) would tell
                // apart as many dates as the rate limit allows.
                s.quotas.charge_lookups(&institution, 1, now)?;
                s.quotas.check_numbers(&institution, &query, now)?;
                let ids = s.store.persons_by_numbers(&query).map_err(unavailable)?;
                if ids.is_empty() {
                    s.quotas.record_miss(&institution, &query, now);
                }
                let [person_id] = ids.as_slice() else {
                    return Err(Refusal::PatientUnknown);
                };
                let grants = s
                    .store
                    .consents(person_id, &institution)
                    .map_err(unavailable)?;
                Ok((
                    person_id.clone(),
                    consent::check(&grants, &institution, kind, now),
                ))
            })
            .await?;
        ctx.person_id = Some(person_id.clone());
        match check {
            ConsentCheck::Valid(grant) => {
                ctx.consents = grant.kind.bit();
                Ok((person_id, grant))
            }
            ConsentCheck::Missing => Err(Refusal::ConsentMissing(kind.as_str())),
            ConsentCheck::Expired(_) => Err(Refusal::ConsentExpired(kind.as_str())),
        }
    }

    /// A consent-gated data request (medication, checkup): the patient by numbers, a valid
    /// consent of this institution for `kind`, then the rows, audited with purpose `kind`.
    pub(super) async fn clinical_data<R, T>(
        &self,
        request: Request<ClinicalDataRequest>,
        kind: ConsentKind,
        fetch: fn(&dyn Store, &str) -> Result<Vec<R>, StoreError>,
        respond: fn(&[R], pb::ConsentRecord, String) -> T,
    ) -> Result<Response<T>, Status>
    where
        R: Send + 'static,
        T: 'static,
    {
        let terminal = self.identify(&request).await.map_err(|r| r.to_status())?;
        let now = self.state.clock.now();
        let id = new_confirmation_id(self.state.clock.now()).map_err(|r| r.to_status())?;
        let mut ctx = AuditContext::remembering("numbers", kind.as_str(), &request);
        let req = request.into_inner();
        let outcome = async {
            let (person_id, grant) = self
                .consented_patient(&terminal, &req, kind, &mut ctx, now)
                .await?;
            let rows = self
                .blocking(move |s| fetch(s.store.as_ref(), &person_id).map_err(unavailable))
                .await?;
            let summary = summary_count(&format!("{}s", kind.as_str()), rows.len());
            let response = respond(&rows, answer::consent_record(Some(&grant)), id.clone());
            Ok((response, ResultCode::Ok, summary))
        }
        .await;
        self.finish(&terminal, now, ctx, id, outcome).await
    }
}

/// Runs blocking store work off the async runtime.
pub(crate) async fn blocking<T, F>(state: &Arc<ServiceState>, f: F) -> Result<T, Refusal>
where
    F: FnOnce(&ServiceState) -> Result<T, Refusal> + Send + 'static,
    T: Send + 'static,
{
    let state = Arc::clone(state);
    tokio::task::spawn_blocking(move || f(&state))
        .await
        .map_err(|e| Refusal::Internal(format!("worker failed: {e}")))?
}

/// A certificate refused as untrusted by the store of the credential kind the request claims
/// is of the other kind when the other store knows its issuer: a card's certificate presented
/// as a smartphone's, or the reverse, is refused as such (RESULT_CODE_CREDENTIAL_KIND_MISMATCH)
/// rather than as an unknown issuer. Rare, so the other store's check is uncached.
fn credential_mismatch_or(
    other: impl FnOnce() -> Option<Arc<crate::validation::TrustStore>>,
    certificate: &[u8],
    now: OffsetDateTime,
    error: CertError,
) -> Refusal {
    if !matches!(error, CertError::UntrustedIssuer { .. }) {
        return error.into();
    }
    match other().map(|o| o.validate(certificate, now)) {
        Some(Ok(_)) => Refusal::CredentialKindMismatch,
        Some(Err(e)) if !matches!(e, CertError::UntrustedIssuer { .. }) => {
            Refusal::CredentialKindMismatch
        }
        _ => error.into(),
    }
}

pub(crate) fn unavailable(e: StoreError) -> Refusal {
    // The store's own words go to the log, never to the terminal (Refusal::to_status).
    tracing::error!(error = %e, "store unavailable");
    Refusal::Unavailable(e.to_string())
}

/// The person the issuing authority linked a certificate to.
pub(super) fn person_of_card(store: &dyn Store, key: &CardKey) -> Result<String, Refusal> {
    store
        .person_for_card(key)
        .map_err(unavailable)?
        .ok_or(Refusal::CardUnknown)
}

/// A card confirmation once the card is proven: registration, assessment, and the consents
/// to record with its audit record.
pub(super) fn confirm_person(
    holder: &Holder,
    institution: &str,
    bits: ConsentBits,
    today: time::Date,
    now: OffsetDateTime,
) -> Result<(ConfirmationResult, Vec<ConsentGrant>), Refusal> {
    let Holder {
        person,
        records,
        document,
        tickets,
    } = holder;
    if !person.registered_for_insurance {
        return Err(Refusal::CardNotRegistered);
    }
    let grants: Vec<ConsentGrant> = ConsentKind::from_bits(bits.bits())
        .into_iter()
        .map(|kind| ConsentGrant::new(&person.id, institution, kind, now))
        .collect();
    let assessment = eligibility::assess(records, today);
    let mut result = answer::confirmation_result(
        &assessment,
        Some(person),
        pb::ReferenceClassification::MyNumberCard,
        &grants,
        now,
    );
    answer::medical_aid_answer(&mut result, &assessment, tickets, today, today, institution);
    result.as_of_date = answer::yyyymmdd(today);
    // The document the holder has besides the card (docs/domain.md "Insurance documents"),
    // reported as for a query by numbers: the validity stays the qualification's.
    result.insurance_document = document
        .as_ref()
        .map(|d| answer::insurance_document(d, today));
    if let Some(echo) = result.consents.as_mut() {
        echo.comprehensive = bits.is_comprehensive();
    }
    Ok((result, grants))
}

/// A person and all their qualification records, or `None` when there is no such person.
pub(crate) fn load_person(
    store: &dyn Store,
    person_id: &str,
) -> Result<Option<(Person, Vec<QualificationRecord>)>, Refusal> {
    let Some(person) = store.person(person_id).map_err(unavailable)? else {
        return Ok(None);
    };
    let records = store.qualifications(person_id).map_err(unavailable)?;
    Ok(Some((person, records)))
}

/// A 医療扶助 recipient's tickets (docs/domain.md "医療扶助"): read only when one of the
/// person's records is an `A1` one, so nobody else costs a store read.
pub(crate) fn load_tickets(
    store: &dyn Store,
    person_id: &str,
    records: &[QualificationRecord],
) -> Result<Vec<MedicalTicket>, Refusal> {
    if !records.iter().any(medical_aid::is_medical_aid) {
        return Ok(Vec::new());
    }
    store.medical_tickets(person_id).map_err(unavailable)
}

/// A card-less confirmation (by numbers), as answered alone or as a batch item: the result,
/// and the person it concerns when one matched. Validation failures are `Err`.
///
/// A look-up of numbers whose institution has already missed with as many birth dates as
/// allowed is refused before anything is looked up (so the refusal tells nothing new); a birth
/// date that matches nobody is recorded as a miss, and answered exactly like numbers nobody
/// has (該当資格なし).
pub(crate) fn confirm_numbers(
    s: &ServiceState,
    institution: &str,
    query: &pb::NumbersQuery,
    now: OffsetDateTime,
) -> Result<(ConfirmationResult, Option<String>), Refusal> {
    let as_of_text = &query.as_of_date;
    let treatment = home_care::treatment(query.treatment)?;
    let requery = if query.requery {
        Some(home_care::requery_kind(treatment)?)
    } else {
        None
    };
    let query = answer::numbers_query(query)?;
    // The day asked about: the qualification's validity on it, whatever document the numbers
    // were read from (docs/domain.md "As-of dates").
    let today = as_of::resolve(as_of_text, now.to_offset(JST).date())?;
    s.quotas.check_numbers(institution, &query, now)?;
    let store = s.store.as_ref();
    let ids = store.persons_by_numbers(&query).map_err(unavailable)?;
    if ids.is_empty() {
        s.quotas.record_miss(institution, &query, now);
    }
    let found = match ids.as_slice() {
        [id] => load_person(store, id)?,
        _ => None,
    };
    let reference = pb::ReferenceClassification::InsuranceCard;
    let (result, person_id) = match (&found, ids.len()) {
        (Some((person, records)), _) => {
            // The numbers asked for decide between 2 and 3: a lost card whose holder has a
            // newer qualification answers 無効（新しい資格あり）.
            let assessment = eligibility::assess_by_numbers(records, &query, today);
            let mut r = answer::confirmation_result(&assessment, Some(person), reference, &[], now);
            // A 医療扶助 recipient: the as-of month's tickets, or 有効（未登録）.
            let tickets = load_tickets(store, &person.id, records)?;
            let service_day = now.to_offset(JST).date();
            answer::medical_aid_answer(
                &mut r,
                &assessment,
                &tickets,
                today,
                service_day,
                institution,
            );
            // The document the numbers may have been read from, reported beside the answer;
            // the validity stays the qualification's (docs/domain.md "Insurance documents").
            r.insurance_document = store
                .insurance_document(&person.id)
                .map_err(unavailable)?
                .map(|d| answer::insurance_document(&d, today));
            (r, Some(person.id.clone()))
        }
        // Several persons carry the same numbers and birth date: 複数該当.
        (None, n) if n > 1 => {
            let mut r = answer::confirmation_result(
                &eligibility::assess(&[], today),
                None,
                reference,
                &[],
                now,
            );
            r.set_validity(pb::QualificationValidity::Multiple);
            r.set_result_code(ResultCode::MultipleQualifications);
            (r, None)
        }
        _ => (
            answer::confirmation_result(
                &eligibility::assess(&[], today),
                None,
                reference,
                &[],
                now,
            ),
            None,
        ),
    };
    let mut result = result;
    result.as_of_date = answer::yyyymmdd(today);
    result.set_treatment(treatment);
    if let Some(kind) = requery {
        // 再照会: only for the one person this institution has a 居宅同意取得型 consent of, in
        // its period (numbers matching nobody or several are answered as no consent, so the
        // refusal tells nothing about who has the numbers).
        let Some(person) = &person_id else {
            return Err(Refusal::RequeryNotConsented);
        };
        let grants = store.consents(person, institution).map_err(unavailable)?;
        result.home_care = Some(home_care::check_requery(&grants, institution, kind, now)?);
    }
    Ok((result, person_id))
}

/// A confirmation with the card, carried out: the treatment it was for, and for a
/// 居宅同意取得型 first visit the re-query consent to record with its audit record and the
/// period it opens.
fn home_care_first_visit(
    result: &mut ConfirmationResult,
    terminal: &TerminalIdentity,
    treatment: pb::MedicalTreatment,
    requery: Option<ConsentKind>,
    ctx: &mut AuditContext,
    now: OffsetDateTime,
) {
    result.set_treatment(treatment);
    if let (Some(kind), Some(person)) = (requery, &ctx.person_id) {
        let grant = home_care::first_visit_grant(person, &terminal.institution_code, kind, now);
        result.home_care = Some(home_care::period(&grant));
        ctx.grants.push(grant);
    }
}

pub(crate) fn audit_record(
    terminal: &TerminalIdentity,
    now: OffsetDateTime,
    ctx: AuditContext,
    confirmation_id: String,
    code: ResultCode,
    returned: String,
) -> AuditRecord {
    AuditRecord {
        confirmation_id,
        at: now,
        institution_code: terminal.institution_code.clone(),
        terminal_id: terminal.terminal_id.clone(),
        person_id: ctx.person_id,
        method: ctx.method.into_owned(),
        purpose: ctx.purpose.into(),
        result_code: code.as_str_name().to_owned(),
        consents: ctx.consents,
        certificate_sha256: ctx.certificate_sha256,
        returned,
        claimed_at: ctx.claimed_at,
    }
}

/// How far in the future a claimed visit time may be (the terminal's clock running ahead).
pub const CLAIM_MAX_SKEW: time::Duration = time::Duration::minutes(5);
/// How old a claimed visit time may be: a month of billing (a visit older than that has been
/// billed on its declaration already), far beyond any outage an outage store of the default
/// 500 records bridges.
pub const CLAIM_MAX_AGE: time::Duration = time::Duration::days(31);

/// The visit time a card-less request claims, checked against the service's clock: not more
/// than [`CLAIM_MAX_SKEW`] ahead, not more than [`CLAIM_MAX_AGE`] old.
pub(crate) fn claimed_visit_time(
    t: &prost_types::Timestamp,
    now: OffsetDateTime,
) -> Result<OffsetDateTime, Refusal> {
    let claimed = u32::try_from(t.nanos)
        .ok()
        .filter(|n| *n < 1_000_000_000)
        .and_then(|n| {
            OffsetDateTime::from_unix_timestamp(t.seconds)
                .ok()
                .map(|s| s + time::Duration::nanoseconds(i64::from(n)))
        })
        .ok_or_else(|| Refusal::BadRequest("the claimed visit time is not a time".into()))?;
    if claimed > now + CLAIM_MAX_SKEW {
        return Err(Refusal::BadRequest(format!(
            "the claimed visit time {} is in the future (more than {} minutes ahead of the \
             service's clock)",
            rfc3339(claimed),
            CLAIM_MAX_SKEW.whole_minutes()
        )));
    }
    if claimed < now - CLAIM_MAX_AGE {
        return Err(Refusal::BadRequest(format!(
            "the claimed visit time {} is more than {} days old",
            rfc3339(claimed),
            CLAIM_MAX_AGE.whole_days()
        )));
    }
    Ok(claimed)
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// An outcome as the answer it becomes, its message encoded, for the idempotency record
/// (`None` for an answer that is not a message: nothing remembers those).
fn encoded<T: 'static>(
    outcome: &Result<(T, ResultCode, String), Refusal>,
) -> Option<Result<Vec<u8>, Status>> {
    match outcome {
        Ok((t, _, _)) => crate::idempotency::encode_message(t).map(Ok),
        Err(refusal) => Some(Err(refusal.to_status())),
    }
}

/// The refusal when the audit log cannot be written: no answer leaves without its record.
pub(crate) fn audit_failed(e: AuditError) -> Refusal {
    tracing::error!(error = %e, "audit write failed; refusing to answer");
    Refusal::Unavailable("the audit log cannot be written".into())
}

/// The handler's input checks on a decoded request, before anything in it is parsed: sizes of
/// the certificate, challenge and signature. Pure, so the fuzz target runs exactly these.
pub fn check_request_bounds(req: &ConfirmByCardRequest) -> Result<(), Refusal> {
    check_proof_bounds(&req.certificate, &req.challenge, &req.signature)
}

pub(super) fn check_proof_bounds(
    certificate: &[u8],
    challenge: &[u8],
    signature: &[u8],
) -> Result<(), Refusal> {
    check_card_bounds(certificate, challenge)?;
    if signature.is_empty() || signature.len() > MAX_SIGNATURE_LEN {
        return Err(Refusal::BadRequest(format!(
            "signature must be 1 to {MAX_SIGNATURE_LEN} bytes"
        )));
    }
    Ok(())
}

/// The sizes of a card's certificate and of the challenge, whoever signed for them.
pub(super) fn check_card_bounds(certificate: &[u8], challenge: &[u8]) -> Result<(), Refusal> {
    if certificate.is_empty() || certificate.len() > MAX_CERTIFICATE_LEN {
        return Err(Refusal::BadRequest(format!(
            "certificate must be 1 to {MAX_CERTIFICATE_LEN} bytes"
        )));
    }
    if challenge.len() != onshi_proto::binding::CHALLENGE_LEN {
        return Err(Refusal::BadRequest("challenge must be 32 bytes".into()));
    }
    Ok(())
}

pub(super) fn random_bytes<const N: usize>() -> Result<[u8; N], Refusal> {
    let mut bytes = [0u8; N];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Refusal::Internal("system random generator failed".into()))?;
    Ok(bytes)
}

/// A confirmation id: 32 hex digits, the issue time (`now`, the service's clock) in
/// microseconds then 8 random bytes.
pub(crate) fn new_confirmation_id(now: OffsetDateTime) -> Result<String, Refusal> {
    // Time first: ids of one instance sort by issue time, so the audit log's unique index
    // grows at its end instead of at a random page per record; the random half keeps ids of
    // instances sharing a store apart.
    let micros = now.unix_timestamp_nanos() / 1000;
    let micros = u64::try_from(micros).unwrap_or_default();
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&micros.to_be_bytes());
    id[8..].copy_from_slice(&random_bytes::<8>()?);
    Ok(hex::encode(id))
}

/// 16 random decimal digits.
pub(super) fn new_reception_number() -> Result<String, Refusal> {
    let n = u64::from_be_bytes(random_bytes::<8>()?) % 10_000_000_000_000_000;
    Ok(format!("{n:016}"))
}

/// The consents a card request carries, as the binding's bits: a 包括同意 must come with every
/// kind (`RESULT_CODE_INVALID_FIELD` otherwise), so a request cannot claim one it did not get.
pub(super) fn consent_bits(consents: Option<&pb::Consents>) -> Result<ConsentBits, Refusal> {
    let Some(consents) = consents else {
        return Ok(ConsentBits::default());
    };
    ConsentBits::from_request(consents).ok_or(Refusal::Invalid(DomainError::Contradictory {
        what: "a 包括同意 (comprehensive consent) must give every kind of consent",
    }))
}

/// The patient's prescription choice as the request carries it; a value this version does not
/// know is refused (`RESULT_CODE_UNKNOWN_ENUM_VALUE`), never passed on.
pub(super) fn prescription_issue(value: i32) -> Result<pb::PrescriptionIssue, Refusal> {
    pb::PrescriptionIssue::try_from(value).map_err(|_| Refusal::UnknownEnum {
        what: "prescription issue",
        value,
    })
}

pub(super) fn purpose_from_proto(value: i32) -> Result<Purpose, Refusal> {
    match pb::Purpose::try_from(value) {
        Ok(pb::Purpose::Confirm) => Ok(Purpose::Confirm),
        Ok(pb::Purpose::Register) => Ok(Purpose::Register),
        Ok(pb::Purpose::Face) => Ok(Purpose::Face),
        Ok(pb::Purpose::VisualCheck) => Ok(Purpose::VisualCheck),
        Ok(pb::Purpose::RegisterByReader) => Ok(Purpose::RegisterByReader),
        Ok(pb::Purpose::HomeCareConfirm) => Ok(Purpose::HomeCareConfirm),
        Ok(pb::Purpose::HomeCareVisualCheck) => Ok(Purpose::HomeCareVisualCheck),
        Ok(pb::Purpose::SmartphoneAndroid) => Ok(Purpose::SmartphoneAndroid),
        Ok(pb::Purpose::SmartphoneIphone) => Ok(Purpose::SmartphoneIphone),
        Ok(pb::Purpose::Unspecified) => {
            Err(Refusal::Invalid(DomainError::Empty { what: "purpose" }))
        }
        Err(_) => Err(Refusal::UnknownEnum {
            what: "purpose",
            value,
        }),
    }
}

/// A carried-out confirmation with its audit record's id, its code and the audit summary,
/// as [`ConfirmationService::finish`] takes it.
pub(super) fn stamped(
    mut result: ConfirmationResult,
    id: &str,
) -> (ConfirmationResult, ResultCode, String) {
    result.confirmation_id = id.to_owned();
    let code = result.result_code();
    let summary = answer::audit_summary(&result);
    (result, code, summary)
}

pub(super) fn summary_count(key: &str, n: usize) -> String {
    serde_json::json!({ key: n }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, FixedClock, ManualClock};
    use time::macros::datetime;

    #[test]
    fn a_confirmation_id_carries_the_service_clock_s_time() {
        let at = datetime!(2026-04-01 09:00:00.123456 UTC);
        let clock = FixedClock(at);
        let a = new_confirmation_id(clock.now()).unwrap_or_default();
        let b = new_confirmation_id(clock.now()).unwrap_or_default();
        assert_eq!(a.len(), 32);
        let micros = u64::try_from(at.unix_timestamp_nanos() / 1000).unwrap_or_default();
        assert_eq!(&a[..16], format!("{micros:016x}"));
        assert_eq!(a[..16], b[..16], "the same instant");
        assert_ne!(a[16..], b[16..], "the random half tells them apart");
    }

    #[test]
    fn confirmation_ids_sort_by_the_clock_not_the_machine() {
        // A clock far from the machine's: the ids follow it.
        let clock = ManualClock::new(datetime!(2001-01-01 00:00 UTC));
        let first = new_confirmation_id(clock.now()).unwrap_or_default();
        clock.advance(time::Duration::microseconds(1));
        let second = new_confirmation_id(clock.now()).unwrap_or_default();
        assert!(first < second);
        clock.advance(-time::Duration::days(1));
        let earlier = new_confirmation_id(clock.now()).unwrap_or_default();
        assert!(earlier < first);
    }
}
