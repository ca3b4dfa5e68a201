//! The RPC handlers: each call's steps, from the request to [`ConfirmationService::finish`].

use std::pin::Pin;
use std::sync::Arc;

use onshi_proto::binding::{ConsentBits, Purpose};
use onshi_proto::v1::confirmation_server::Confirmation;
use onshi_proto::v1::{
    self as pb, BatchItemResult, BatchResult, BatchStatus, CheckupsResponse, ClinicalDataRequest,
    ConfirmByCardRequest, ConfirmByNumbersRequest, ConfirmByReaderRequest, ConfirmationResult,
    GetBatchResultRequest, IssueChallengeRequest, IssueChallengeResponse, ListInstitutionsRequest,
    ListInstitutionsResponse, MedicationsResponse, RegisterByReaderRequest, RegisterRequest,
    RegisterResponse, ResultCode, SubmitBatchRequest, SubmitBatchResponse,
};
use prost::Message;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use super::service::*;
use crate::answer;
use crate::batch;
use crate::consent::ConsentKind;
use crate::outcome::Refusal;
use crate::store::{Registration, RegistrationWrite};

type ResultStream = Pin<Box<dyn Stream<Item = Result<BatchItemResult, Status>> + Send + 'static>>;

/// The card-less calls as carried out (the trait methods add the idempotency memory).
impl ConfirmationService {
    /// The registration once the card is proven (by its PIN signature or a reader's
    /// attestation): the challenge is consumed, the person registered and the audit record
    /// written in one group commit, so a registration never lands without its record, nor a
    /// record of a registration that did not happen.
    async fn register_holder(
        &self,
        terminal: &crate::terminal::TerminalIdentity,
        key: Result<crate::store::CardKey, Refusal>,
        mut ctx: AuditContext,
        id: String,
        now: time::OffsetDateTime,
    ) -> Result<Response<RegisterResponse>, Status> {
        let outcome = async {
            let key = key?;
            let person_id = self
                .blocking(move |s| person_of_card(s.store.as_ref(), &key))
                .await?;
            ctx.person_id = Some(person_id.clone());
            ctx.registration = Some(RegistrationWrite {
                person_id,
                at: now,
                outcome: None,
            });
            // `newly_registered` and the record's `returned` are settled by the commit.
            let response = RegisterResponse {
                result_code: ResultCode::Ok as i32,
                newly_registered: false,
                confirmation_id: id.clone(),
                registered_at: Some(answer::timestamp(now)),
            };
            Ok((
                response,
                ResultCode::Ok,
                Registration::AlreadyRegistered.audit_summary(),
            ))
        }
        .await;
        let (mut response, registration) = self
            .finish_committed(terminal, now, ctx, id, outcome)
            .await?;
        response.get_mut().newly_registered = registration == Some(Registration::Registered);
        Ok(response)
    }
    async fn confirm_by_numbers_once(
        &self,
        request: Request<ConfirmByNumbersRequest>,
    ) -> Result<Response<ConfirmationResult>, Status> {
        let terminal = self.identify(&request).await.map_err(|r| r.to_status())?;
        let now = self.state.clock.now();
        let id = new_confirmation_id(self.state.clock.now()).map_err(|r| r.to_status())?;
        let mut ctx = AuditContext::remembering("numbers", "confirm", &request);
        let request = request.into_inner();
        let query = request.query.unwrap_or_default();
        if query.requery {
            ctx.method = "requery".into();
        }
        let institution = terminal.institution_code.clone();
        let claimed = match request
            .claimed_visit_time
            .map(|t| claimed_visit_time(&t, now))
        {
            None => Ok(None),
            Some(Ok(t)) => Ok(Some(t)),
            Some(Err(refusal)) => Err(refusal),
        };
        let outcome = match claimed {
            Err(refusal) => Err(refusal),
            Ok(claimed) => {
                ctx.claimed_at = claimed;
                self.confirm_numbers_now(&institution, query, now).await
            }
        }
        .map(|(result, person)| {
            ctx.person_id = person;
            stamped(result, &id)
        });
        self.finish(&terminal, now, ctx, id, outcome).await
    }

    async fn confirm_numbers_now(
        &self,
        institution: &str,
        query: pb::NumbersQuery,
        now: time::OffsetDateTime,
    ) -> Result<(pb::ConfirmationResult, Option<String>), Refusal> {
        let institution = institution.to_owned();
        self.blocking(move |s| {
            s.quotas.charge_lookups(&institution, 1, now)?;
            confirm_numbers(s, &institution, &query, now)
        })
        .await
    }

    async fn get_medications_once(
        &self,
        request: Request<ClinicalDataRequest>,
    ) -> Result<Response<MedicationsResponse>, Status> {
        self.clinical_data(
            request,
            ConsentKind::Medication,
            |store, person| store.medications(person),
            |rows, consent, confirmation_id| MedicationsResponse {
                medications: rows.iter().map(answer::medication).collect(),
                consent: Some(consent),
                confirmation_id,
            },
        )
        .await
    }

    async fn get_checkups_once(
        &self,
        request: Request<ClinicalDataRequest>,
    ) -> Result<Response<CheckupsResponse>, Status> {
        self.clinical_data(
            request,
            ConsentKind::Checkup,
            |store, person| store.checkups(person),
            |rows, consent, confirmation_id| CheckupsResponse {
                checkups: rows.iter().map(answer::checkup).collect(),
                consent: Some(consent),
                confirmation_id,
            },
        )
        .await
    }

    async fn submit_batch_once(
        &self,
        request: Request<SubmitBatchRequest>,
    ) -> Result<Response<SubmitBatchResponse>, Status> {
        let terminal = self.identify(&request).await.map_err(|r| r.to_status())?;
        let now = self.state.clock.now();
        let id = new_confirmation_id(self.state.clock.now()).map_err(|r| r.to_status())?;
        let ctx = AuditContext::remembering("numbers", "batch-submit", &request);
        let queries = request.into_inner().queries;
        let outcome = self.submit_batch(&terminal, queries, now).await;
        self.finish(&terminal, now, ctx, id, outcome).await
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
        let now = self.state.clock.now();
        let issued = self
            .state
            .challenges
            .issue(&terminal.name(), purpose, now)
            .map_err(|e| Refusal::from(e).to_status())?;
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
        let id = new_confirmation_id(self.state.clock.now()).map_err(|r| r.to_status())?;
        let mut ctx = AuditContext::new("pin", "confirm");
        let outcome = self
            .confirm(&terminal, request.into_inner(), &mut ctx, now)
            .await
            .map(|result| stamped(result, &id));
        self.finish(&terminal, now, ctx, id, outcome).await
    }

    async fn confirm_by_reader(
        &self,
        request: Request<ConfirmByReaderRequest>,
    ) -> Result<Response<ConfirmationResult>, Status> {
        let (terminal, device_key) = self
            .identify_with_device_key(&request)
            .await
            .map_err(|r| r.to_status())?;
        let now = self.state.clock.now();
        let id = new_confirmation_id(self.state.clock.now()).map_err(|r| r.to_status())?;
        // The method is set from the request as soon as it is known (`face`, `visual:<id>`).
        let mut ctx = AuditContext::new("reader", "confirm");
        let outcome = self
            .confirm_by_reader_checks(&terminal, device_key, request.into_inner(), &mut ctx, now)
            .await
            .map(|result| stamped(result, &id));
        self.finish(&terminal, now, ctx, id, outcome).await
    }

    async fn confirm_by_numbers(
        &self,
        request: Request<ConfirmByNumbersRequest>,
    ) -> Result<Response<ConfirmationResult>, Status> {
        self.remembered("numbers", request, |r| self.confirm_by_numbers_once(r))
            .await
    }

    async fn register_for_insurance(
        &self,
        request: Request<RegisterRequest>,
    ) -> Result<Response<RegisterResponse>, Status> {
        let terminal = self.identify(&request).await.map_err(|r| r.to_status())?;
        let now = self.state.clock.now();
        let id = new_confirmation_id(self.state.clock.now()).map_err(|r| r.to_status())?;
        let mut ctx = AuditContext::new("pin", "register");
        let req = request.into_inner();
        let proof = CardProof {
            certificate: req.certificate,
            challenge: req.challenge,
            signature: req.signature,
        };
        let key = self
            .verify_card(
                &terminal,
                proof,
                Purpose::Register,
                ConsentBits::default(),
                &mut ctx,
                now,
            )
            .await
            .map(|(key, _standing)| key);
        self.register_holder(&terminal, key, ctx, id, now).await
    }

    async fn register_by_reader(
        &self,
        request: Request<RegisterByReaderRequest>,
    ) -> Result<Response<RegisterResponse>, Status> {
        let (terminal, device_key) = self
            .identify_with_device_key(&request)
            .await
            .map_err(|r| r.to_status())?;
        let now = self.state.clock.now();
        let id = new_confirmation_id(self.state.clock.now()).map_err(|r| r.to_status())?;
        // The method is set from the request as soon as it is known (`face`, `visual:<id>`).
        let mut ctx = AuditContext::new("reader", "register");
        let key = self
            .verify_reader_registration(&terminal, device_key, request.into_inner(), &mut ctx, now)
            .await;
        self.register_holder(&terminal, key, ctx, id, now).await
    }

    async fn list_institutions(
        &self,
        request: Request<ListInstitutionsRequest>,
    ) -> Result<Response<ListInstitutionsResponse>, Status> {
        // Any registered terminal may ask (the list is public); nothing about a person is read,
        // so nothing is audited.
        self.identify(&request).await.map_err(|r| r.to_status())?;
        let listed = self
            .blocking(|s| s.store.institutions_in_operation().map_err(unavailable))
            .await
            .map_err(|r| r.to_status())?;
        Ok(Response::new(ListInstitutionsResponse {
            institutions: listed.iter().map(crate::institutions::to_proto).collect(),
        }))
    }

    async fn get_medications(
        &self,
        request: Request<ClinicalDataRequest>,
    ) -> Result<Response<MedicationsResponse>, Status> {
        self.remembered("medications", request, |r| self.get_medications_once(r))
            .await
    }

    async fn get_checkups(
        &self,
        request: Request<ClinicalDataRequest>,
    ) -> Result<Response<CheckupsResponse>, Status> {
        self.remembered("checkups", request, |r| self.get_checkups_once(r))
            .await
    }

    async fn submit_batch(
        &self,
        request: Request<SubmitBatchRequest>,
    ) -> Result<Response<SubmitBatchResponse>, Status> {
        self.remembered("batch-submit", request, |r| self.submit_batch_once(r))
            .await
    }
    async fn submit_batch_stream(
        &self,
        request: Request<Streaming<pb::NumbersQuery>>,
    ) -> Result<Response<SubmitBatchResponse>, Status> {
        let terminal = self.identify(&request).await.map_err(|r| r.to_status())?;
        let id = new_confirmation_id(self.state.clock.now()).map_err(|r| r.to_status())?;
        let ctx = AuditContext::new("numbers", "batch-submit");
        let mut stream = request.into_inner();
        let mut queries = Vec::new();
        let mut too_many = false;
        let mut broken = None;
        let mut oversized = None;
        loop {
            match stream.message().await {
                Ok(Some(_)) if queries.len() == MAX_BATCH => {
                    too_many = true;
                    break;
                }
                Ok(Some(query)) => {
                    // Checked as it arrives: an oversized query ends the stream, kept nowhere.
                    if let Err(refusal) = check_arrival(queries.len(), &query) {
                        oversized = Some(refusal);
                        break;
                    }
                    queries.push(query)
                }
                Ok(None) => break,
                Err(status) => {
                    broken = Some(status);
                    break;
                }
            }
        }
        let now = self.state.clock.now();
        let outcome = if let Some(refusal) = oversized {
            Err(refusal)
        } else if let Some(status) = broken {
            // The stream broke off: nothing is submitted, and the attempt is audited.
            Err(Refusal::BadRequest(format!(
                "the query stream failed after {} queries: {}",
                queries.len(),
                status.message()
            )))
        } else if too_many {
            Err(Refusal::BatchTooLarge {
                max: MAX_BATCH,
                got: MAX_BATCH + 1,
            })
        } else {
            self.submit_batch(&terminal, queries, now).await
        };
        self.finish(&terminal, now, ctx, id, outcome).await
    }

    async fn get_batch_result(
        &self,
        request: Request<GetBatchResultRequest>,
    ) -> Result<Response<BatchResult>, Status> {
        let terminal = self.identify(&request).await.map_err(|r| r.to_status())?;
        let now = self.state.clock.now();
        let id = new_confirmation_id(self.state.clock.now()).map_err(|r| r.to_status())?;
        let ctx = AuditContext::new("numbers", "batch-fetch");
        let req = request.into_inner();
        let outcome = async {
            let job = self.own_batch(&terminal, &req.reception_number).await?;
            let limit = match req.limit {
                0 => MAX_PAGE,
                n => n.min(MAX_PAGE),
            };
            let mut result = BatchResult {
                reception_number: job.reception_number.clone(),
                total: job.total,
                completed: job.completed,
                submitted_at: Some(answer::timestamp(job.submitted_at)),
                finished_at: job.finished_at.map(answer::timestamp),
                ..Default::default()
            };
            if job.finished_at.is_none() {
                result.set_status(BatchStatus::Processing);
            } else {
                result.set_status(BatchStatus::Done);
                let number = job.reception_number.clone();
                let from = req.from;
                let items = self
                    .blocking(move |s| {
                        s.store
                            .batch_items(&number, from, limit)
                            .map_err(unavailable)
                    })
                    .await?;
                // Bounded in bytes as well as in count: the page ends before the answer
                // that would take it past MAX_PAGE_BYTES.
                let mut bytes = 0;
                for item in &items {
                    let answer = batch::item_result(item)?;
                    bytes += Message::encoded_len(&answer) + 8;
                    if bytes > MAX_PAGE_BYTES && !result.items.is_empty() {
                        break;
                    }
                    result.items.push(answer);
                }
            }
            let summary = serde_json::json!({
                "reception_number": result.reception_number,
                "status": result.status,
                "items": result.items.len(),
            })
            .to_string();
            Ok((result, ResultCode::Ok, summary))
        }
        .await;
        self.finish(&terminal, now, ctx, id, outcome).await
    }

    async fn stream_batch_results(
        &self,
        request: Request<GetBatchResultRequest>,
    ) -> Result<Response<ResultStream>, Status> {
        let terminal = self.identify(&request).await.map_err(|r| r.to_status())?;
        let now = self.state.clock.now();
        let id = new_confirmation_id(self.state.clock.now()).map_err(|r| r.to_status())?;
        let ctx = AuditContext::new("numbers", "batch-fetch");
        let req = request.into_inner();
        let outcome = self
            .own_batch(&terminal, &req.reception_number)
            .await
            .map(|job| {
                let summary = serde_json::json!({
                    "reception_number": job.reception_number, "streamed_from": req.from
                })
                .to_string();
                (job, ResultCode::Ok, summary)
            });
        let job = self
            .finish(&terminal, now, ctx, id, outcome)
            .await?
            .into_inner();
        let stream = batch::stream_results(Arc::clone(&self.state), job, req.from);
        Ok(Response::new(Box::pin(stream) as ResultStream))
    }
}
