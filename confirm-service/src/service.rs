//! The `onshi.v1.Confirmation` gRPC service: challenge issuance and PIN-mode confirmation.
//!
//! The order of checks follows architecture.md "main flow" step 4: terminal known and in
//! operation; challenge known, fresh, unused and this terminal's; certificate valid; signature
//! over the binding; then certificate → person → registration → records. Every attempt by an
//! identified terminal is audited, durably, before its answer (or refusal) leaves.

use std::sync::Arc;

use onshi_proto::binding::{ChallengeBinding, ConsentBits, Purpose};
use onshi_proto::v1::confirmation_server::Confirmation;
use onshi_proto::v1::{
    self as pb, ConfirmByCardRequest, ConfirmationResult, IssueChallengeRequest,
    IssueChallengeResponse, ResultCode,
};
use ring::rand::SecureRandom;
use ring::signature;
use time::{Duration, OffsetDateTime, UtcOffset};
use tonic::{Request, Response, Status};

use crate::answer;
use crate::audit::{AuditLog, AuditRecord};
use crate::cert_cache::CertCache;
use crate::challenge::Challenges;
use crate::clock::Clock;
use crate::eligibility;
use crate::outcome::Refusal;
use crate::store::{CardKey, Store, TerminalStatus};
use crate::terminal::TerminalIdentity;
use crate::trust_reload::LiveTrust;
use crate::validation::{ValidatedCertificate, MAX_CERTIFICATE_LEN};

/// Japan Standard Time: "today" for qualification dates is the Japanese calendar day.
const JST: UtcOffset = match UtcOffset::from_hms(9, 0, 0) {
    Ok(o) => o,
    Err(_) => UtcOffset::UTC,
};

/// Longest signature accepted (RSA-4096); the card's is 256 bytes.
const MAX_SIGNATURE_LEN: usize = 512;

/// Everything the handlers share.
#[derive(Debug)]
pub struct ServiceState {
    pub store: Arc<dyn Store>,
    pub challenges: Arc<Challenges>,
    /// The current trust store (replaced when the CRL files change).
    pub trust: Arc<LiveTrust>,
    /// Verified certificates, so a known card costs no parsing and no CA signature.
    pub cert_cache: CertCache,
    pub audit: AuditLog,
    pub clock: Arc<dyn Clock>,
}

/// The gRPC service.
#[derive(Debug, Clone)]
pub struct ConfirmationService {
    state: Arc<ServiceState>,
}

/// What is known about a request when it is answered or refused, for its audit record.
#[derive(Debug, Default)]
struct AuditContext {
    person_id: Option<String>,
    consents: u8,
    certificate_sha256: Option<String>,
}

impl ConfirmationService {
    pub fn new(state: ServiceState) -> Self {
        Self {
            state: Arc::new(state),
        }
    }

    /// Runs blocking store work off the async runtime.
    async fn blocking<T, F>(&self, f: F) -> Result<T, Refusal>
    where
        F: FnOnce(&ServiceState) -> Result<T, Refusal> + Send + 'static,
        T: Send + 'static,
    {
        let state = Arc::clone(&self.state);
        tokio::task::spawn_blocking(move || f(&state))
            .await
            .map_err(|e| Refusal::Internal(format!("worker failed: {e}")))?
    }

    /// Identifies the calling terminal from its verified client certificate.
    async fn identify<T>(&self, request: &Request<T>) -> Result<TerminalIdentity, Refusal> {
        let certs = request
            .peer_certs()
            .ok_or_else(|| Refusal::TerminalUnknown("no client certificate".into()))?;
        let leaf = certs
            .first()
            .ok_or_else(|| Refusal::TerminalUnknown("no client certificate".into()))?;
        let identity =
            TerminalIdentity::from_certificate(leaf.as_ref()).map_err(Refusal::TerminalUnknown)?;
        let lookup = identity.clone();
        let terminal = self
            .blocking(move |s| {
                s.store
                    .terminal(&lookup.institution_code, &lookup.terminal_id)
                    .map_err(|e| Refusal::Unavailable(e.to_string()))
            })
            .await?;
        match terminal {
            None => Err(Refusal::TerminalUnknown(format!(
                "{} is not registered",
                identity.name()
            ))),
            Some(t) if t.status != TerminalStatus::InOperation => {
                Err(Refusal::TerminalNotInOperation(identity.name()))
            }
            Some(_) => Ok(identity),
        }
    }

    async fn confirm(
        &self,
        terminal: &TerminalIdentity,
        req: ConfirmByCardRequest,
        ctx: &mut AuditContext,
        now: OffsetDateTime,
    ) -> Result<ConfirmationResult, Refusal> {
        // Bounds first: nothing unbounded is parsed.
        check_request_bounds(&req)?;
        let consents = req.consents.unwrap_or_default();
        let bits = ConsentBits::new(
            consents.medication,
            consents.checkup,
            consents.clinical,
            consents.surgery,
        );
        ctx.consents = bits.bits();
        let cert_hash = ring::digest::digest(&ring::digest::SHA256, &req.certificate);
        ctx.certificate_sha256 = Some(hex::encode(cert_hash.as_ref()));

        // The challenge is consumed before anything else about the card is believed, so a
        // failed attempt still burns it.
        let challenge = req.challenge.clone();
        let name = terminal.name();
        self.blocking(move |s| {
            s.challenges
                .consume(&challenge, &name, Purpose::Confirm, now)
                .map_err(Refusal::from)
        })
        .await?;

        // One snapshot of the trust store for the whole request; the cache re-checks time and
        // the current CRL on every hit.
        let trust = self.state.trust.current();
        let validated: ValidatedCertificate =
            self.state
                .cert_cache
                .validate(&trust, &req.certificate, now)?;

        let binding = ChallengeBinding {
            purpose: Purpose::Confirm,
            challenge: &req.challenge,
            terminal_name: &terminal.name(),
            certificate_der: &req.certificate,
            consents: bits,
        }
        .encode_with_cert_hash(&validated.sha256)
        .map_err(|e| Refusal::BadRequest(e.to_string()))?;
        signature::UnparsedPublicKey::new(
            &signature::RSA_PKCS1_2048_8192_SHA256,
            &validated.rsa_public_key,
        )
        .verify(&binding, &req.signature)
        .map_err(|_| Refusal::SignatureInvalid)?;

        let key =
            CardKey::from_der(&req.certificate).map_err(|e| Refusal::BadRequest(e.to_string()))?;
        let today = now.to_offset(JST).date();
        let (person, records) = self
            .blocking(move |s| {
                let unavailable = |e: crate::store::StoreError| Refusal::Unavailable(e.to_string());
                let person_id = s
                    .store
                    .person_for_card(&key)
                    .map_err(unavailable)?
                    .ok_or(Refusal::CardUnknown)?;
                let person = s
                    .store
                    .person(&person_id)
                    .map_err(unavailable)?
                    .ok_or(Refusal::CardUnknown)?;
                let records = s.store.qualifications(&person_id).map_err(unavailable)?;
                Ok((person, records))
            })
            .await?;
        ctx.person_id = Some(person.id.clone());
        if !person.registered_for_insurance {
            return Err(Refusal::CardNotRegistered);
        }
        let assessment = eligibility::assess(&records, today);
        let consent_valid_until = now + Duration::hours(24);
        Ok(answer::confirmation_result(
            &assessment,
            &person,
            consents,
            now,
            consent_valid_until,
        ))
    }

    async fn audit(
        &self,
        terminal: &TerminalIdentity,
        now: OffsetDateTime,
        ctx: AuditContext,
        confirmation_id: String,
        result_code: ResultCode,
        returned: String,
    ) -> Result<(), Refusal> {
        let record = AuditRecord {
            confirmation_id,
            at: now,
            institution_code: terminal.institution_code.clone(),
            terminal_id: terminal.terminal_id.clone(),
            person_id: ctx.person_id,
            method: "pin".into(),
            purpose: "confirm".into(),
            result_code: result_code.as_str_name().to_owned(),
            consents: ctx.consents,
            certificate_sha256: ctx.certificate_sha256,
            returned,
        };
        self.state.audit.append(record).await.map_err(|e| {
            tracing::error!(error = %e, "audit write failed; refusing to answer");
            Refusal::Unavailable("the audit log cannot be written".into())
        })
    }
}

/// The handler's input checks on a decoded request, before anything in it is parsed: sizes of
/// the certificate, challenge and signature. Pure, so the fuzz target runs exactly these.
pub fn check_request_bounds(req: &ConfirmByCardRequest) -> Result<(), Refusal> {
    if req.certificate.is_empty() || req.certificate.len() > MAX_CERTIFICATE_LEN {
        return Err(Refusal::BadRequest(format!(
            "certificate must be 1 to {MAX_CERTIFICATE_LEN} bytes"
        )));
    }
    if req.challenge.len() != onshi_proto::binding::CHALLENGE_LEN {
        return Err(Refusal::BadRequest("challenge must be 32 bytes".into()));
    }
    if req.signature.is_empty() || req.signature.len() > MAX_SIGNATURE_LEN {
        return Err(Refusal::BadRequest(format!(
            "signature must be 1 to {MAX_SIGNATURE_LEN} bytes"
        )));
    }
    Ok(())
}

fn new_confirmation_id() -> Result<String, Refusal> {
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Refusal::Internal("system random generator failed".into()))?;
    Ok(hex::encode(bytes))
}

fn purpose_from_proto(value: i32) -> Result<Purpose, Refusal> {
    match pb::Purpose::try_from(value) {
        Ok(pb::Purpose::Confirm) => Ok(Purpose::Confirm),
        Ok(pb::Purpose::Register) => Ok(Purpose::Register),
        Ok(pb::Purpose::Face) => Ok(Purpose::Face),
        Ok(pb::Purpose::VisualCheck) => Ok(Purpose::VisualCheck),
        Ok(pb::Purpose::Unspecified) => Err(Refusal::BadRequest("purpose is required".into())),
        Err(_) => Err(Refusal::BadRequest(format!("unknown purpose {value}"))),
    }
}

#[tonic::async_trait]
impl Confirmation for ConfirmationService {
    async fn issue_challenge(
        &self,
        request: Request<IssueChallengeRequest>,
    ) -> Result<Response<IssueChallengeResponse>, Status> {
        let terminal = self.identify(&request).await.map_err(|r| r.to_status())?;
        let purpose = purpose_from_proto(request.get_ref().purpose).map_err(|r| r.to_status())?;
        if purpose != Purpose::Confirm {
            return Err(Refusal::BadRequest(
                "only PURPOSE_CONFIRM is served by this version of the service".into(),
            )
            .to_status());
        }
        let now = self.state.clock.now();
        let name = terminal.name();
        let issued = self
            .blocking(move |s| {
                s.challenges
                    .issue(&name, purpose, now)
                    .map_err(Refusal::from)
            })
            .await
            .map_err(|r| r.to_status())?;
        Ok(Response::new(IssueChallengeResponse {
            challenge: issued.bytes.to_vec(),
            expires_at: Some(answer::timestamp(issued.expires_at)),
            terminal_name: terminal.name(),
        }))
    }

    async fn confirm_by_card(
        &self,
        request: Request<ConfirmByCardRequest>,
    ) -> Result<Response<ConfirmationResult>, Status> {
        let terminal = self.identify(&request).await.map_err(|r| r.to_status())?;
        let now = self.state.clock.now();
        let confirmation_id = new_confirmation_id().map_err(|r| r.to_status())?;
        let mut ctx = AuditContext::default();
        let outcome = self
            .confirm(&terminal, request.into_inner(), &mut ctx, now)
            .await;
        match outcome {
            Ok(mut result) => {
                result.confirmation_id = confirmation_id.clone();
                let code = result.result_code();
                let returned = answer::audit_summary(&result);
                self.audit(&terminal, now, ctx, confirmation_id, code, returned)
                    .await
                    .map_err(|r| r.to_status())?;
                tracing::info!(terminal = %terminal.name(), result = code.as_str_name(), "confirmation");
                Ok(Response::new(result))
            }
            Err(refusal) => {
                let code = refusal.result_code();
                tracing::info!(terminal = %terminal.name(), result = code.as_str_name(), reason = %refusal, "refused");
                self.audit(
                    &terminal,
                    now,
                    ctx,
                    confirmation_id,
                    code,
                    serde_json::json!({ "refused": refusal.to_string() }).to_string(),
                )
                .await
                .map_err(|r| r.to_status())?;
                Err(refusal.to_status())
            }
        }
    }
}
