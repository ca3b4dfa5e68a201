//! The reference server: a bare tonic server with the service's TLS configuration (the world's
//! server certificate, required client certificates from the network CA) that does only the
//! signature check of a PIN-mode confirmation — the floor the service is compared with.
//!
//! `IssueChallenge` answers 32 random bytes and the terminal name from the client certificate
//! (nothing is stored). `ConfirmByCard` bounds the fields as the service does, encodes the
//! challenge binding with `onshi_proto::binding`, verifies the card's signature with ring's
//! `RSA_PKCS1_2048_8192_SHA256` and the certificate's key, and answers a minimal
//! `ConfirmationResult`, or `SIGNATURE_INVALID` the way the service reports refusals. The
//! certificate's public key is parsed once per certificate and the terminal name once per
//! client certificate (the service caches validated certificates too).

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, RwLock};

use onshi_confirm_service::config::Config;
use onshi_confirm_service::terminal::TerminalIdentity;
use onshi_proto::binding::{ChallengeBinding, ConsentBits, Purpose, CHALLENGE_LEN};
use onshi_proto::v1 as pb;
use onshi_proto::v1::confirmation_server::{Confirmation, ConfirmationServer};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic::{Code, Request, Response, Status};

use x509_parser::prelude::{FromDer, X509Certificate};

use crate::world::read;
use crate::LoadgenError;

/// What the reference prints on stdout once it listens.
pub const READY_PREFIX: &str = "loadgen reference-server: listening on ";
/// Entries kept in each cache before it is cleared (bounds memory on hostile input).
const CACHE_LIMIT: usize = 100_000;

/// The reference implementation of `onshi.v1.Confirmation`.
#[derive(Debug)]
pub struct Reference {
    terminals: RwLock<HashMap<Vec<u8>, Arc<str>>>,
    keys: RwLock<HashMap<[u8; 32], Arc<Vec<u8>>>>,
    rng: SystemRandom,
}

fn refusal(code: Code, result: pb::ResultCode, message: &str) -> Status {
    onshi_proto::status::refusal(code, result, message, HashMap::new())
}

fn bad_request(message: &str) -> Status {
    refusal(Code::InvalidArgument, pb::ResultCode::BadRequest, message)
}

impl Default for Reference {
    fn default() -> Self {
        Reference {
            terminals: RwLock::default(),
            keys: RwLock::default(),
            rng: SystemRandom::new(),
        }
    }
}

impl Reference {
    fn terminal_name<T>(&self, request: &Request<T>) -> Result<Arc<str>, Status> {
        let unknown = || {
            refusal(
                Code::PermissionDenied,
                pb::ResultCode::TerminalUnknown,
                "no usable client certificate",
            )
        };
        let certs = request.peer_certs().ok_or_else(unknown)?;
        let leaf = certs.first().ok_or_else(unknown)?;
        let der: &[u8] = leaf.as_ref();
        if let Some(name) = self
            .terminals
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(der)
        {
            return Ok(Arc::clone(name));
        }
        let identity = TerminalIdentity::from_certificate(der).map_err(|_| unknown())?;
        let name: Arc<str> = Arc::from(identity.name());
        let mut cache = self.terminals.write().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(der.to_vec(), Arc::clone(&name));
        Ok(name)
    }

    fn public_key(&self, cert_hash: &[u8; 32], der: &[u8]) -> Result<Arc<Vec<u8>>, Status> {
        if let Some(key) = self
            .keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(cert_hash)
        {
            return Ok(Arc::clone(key));
        }
        let invalid = || {
            refusal(
                Code::Unauthenticated,
                pb::ResultCode::CertificateInvalid,
                "the certificate does not parse",
            )
        };
        let (_, cert) = X509Certificate::from_der(der).map_err(|_| invalid())?;
        let key = Arc::new(cert.public_key().subject_public_key.data.to_vec());
        let mut cache = self.keys.write().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(*cert_hash, Arc::clone(&key));
        Ok(key)
    }
}

#[tonic::async_trait]
impl Confirmation for Reference {
    async fn issue_challenge(
        &self,
        request: Request<pb::IssueChallengeRequest>,
    ) -> Result<Response<pb::IssueChallengeResponse>, Status> {
        let terminal_name = self.terminal_name(&request)?;
        let mut challenge = vec![0u8; CHALLENGE_LEN];
        self.rng.fill(&mut challenge).map_err(|_| {
            refusal(
                Code::Internal,
                pb::ResultCode::InternalError,
                "no randomness",
            )
        })?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Ok(Response::new(pb::IssueChallengeResponse {
            challenge,
            expires_at: Some(prost_types::Timestamp {
                seconds: i64::try_from(now).unwrap_or(0) + 3600,
                nanos: 0,
            }),
            terminal_name: terminal_name.to_string(),
        }))
    }

    async fn confirm_by_card(
        &self,
        request: Request<pb::ConfirmByCardRequest>,
    ) -> Result<Response<pb::ConfirmationResult>, Status> {
        let terminal_name = self.terminal_name(&request)?;
        let r = request.into_inner();
        if r.certificate.is_empty() || r.certificate.len() > 8192 {
            return Err(bad_request("certificate must be 1-8192 bytes"));
        }
        if r.challenge.len() != CHALLENGE_LEN {
            return Err(bad_request("challenge must be 32 bytes"));
        }
        if r.signature.is_empty() || r.signature.len() > 512 {
            return Err(bad_request("signature must be 1-512 bytes"));
        }
        let digest = ring::digest::digest(&ring::digest::SHA256, &r.certificate);
        let mut cert_hash = [0u8; 32];
        cert_hash.copy_from_slice(digest.as_ref());
        let key = self.public_key(&cert_hash, &r.certificate)?;
        let c = r.consents.unwrap_or_default();
        let binding = ChallengeBinding {
            purpose: Purpose::Confirm,
            challenge: &r.challenge,
            terminal_name: &terminal_name,
            certificate_der: &r.certificate,
            consents: ConsentBits::new(c.medication, c.checkup, c.clinical, c.surgery),
        }
        .encode_with_cert_hash(&cert_hash)
        .map_err(|e| bad_request(&e.to_string()))?;
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, key.as_slice())
            .verify(&binding, &r.signature)
            .map_err(|_| {
                refusal(
                    Code::Unauthenticated,
                    pb::ResultCode::SignatureInvalid,
                    "the card's signature over the challenge binding does not verify",
                )
            })?;
        Ok(Response::new(pb::ConfirmationResult {
            result_code: pb::ResultCode::Ok as i32,
            processing_status: pb::ProcessingStatus::Completed as i32,
            reference_classification: pb::ReferenceClassification::MyNumberCard as i32,
            validity: pb::QualificationValidity::Valid as i32,
            ..Default::default()
        }))
    }
}

/// Serves the reference on `listener` with the TLS files of the service configuration at
/// `config` (a world's service.toml) until `shutdown` completes; calls `on_ready` first.
pub async fn serve(
    config: &Path,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    on_ready: impl FnOnce(),
) -> Result<(), LoadgenError> {
    let config = Config::load(config).map_err(|e| LoadgenError::World(e.to_string()))?;
    let tls = ServerTlsConfig::new()
        .identity(Identity::from_pem(
            read(&config.tls.certificate)?,
            read(&config.tls.private_key)?,
        ))
        .client_ca_root(Certificate::from_pem(read(&config.tls.client_ca)?))
        .client_auth_optional(false);
    let mut builder = Server::builder()
        .tls_config(tls)
        .map_err(|e| LoadgenError::Runtime(format!("reference TLS: {e}")))?;
    on_ready();
    builder
        .add_service(ConfirmationServer::new(Reference::default()))
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await
        .map_err(|e| LoadgenError::Runtime(format!("reference server: {e}")))
}
