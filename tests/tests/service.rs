//! The confirmation service over real mutual TLS, driven by a gRPC client in this test: the
//! refusals a reader agent cannot easily provoke (replayed challenge, another terminal's
//! challenge, forged signature, garbage input, bad client certificates, unknown and suspended
//! terminals). The card's signature is made with the card profile's key, exactly as the card
//! would (PKCS#1 v1.5 over the SHA-256 DigestInfo of the binding).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::{Path, PathBuf};

use onshi_e2e::grpc::{self, CardKeys};
use onshi_e2e::inproc::InProcService;
use onshi_e2e::World;
use onshi_proto::binding::{ChallengeBinding, ConsentBits, Purpose};
use onshi_proto::v1::confirmation_client::ConfirmationClient;
use onshi_proto::v1::{self as pb, ResultCode};
use tonic::transport::Channel;

fn world() -> &'static World {
    World::shared(env!("CARGO_TARGET_TMPDIR"), "service-world", 8)
}

fn service() -> InProcService {
    InProcService::start(&world().dir.join("service.toml")).expect("confirm-service")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A client with the identity in `terminal_dir` (client.pem/client.key.pem), or none.
async fn client(
    service: &InProcService,
    terminal_dir: Option<&Path>,
) -> Result<ConfirmationClient<Channel>, tonic::transport::Error> {
    Ok(ConfirmationClient::new(
        channel(service, terminal_dir).await?,
    ))
}

/// A mutual-TLS channel to the service (no client identity when `terminal_dir` is `None`).
async fn channel(
    service: &InProcService,
    terminal_dir: Option<&Path>,
) -> Result<Channel, tonic::transport::Error> {
    grpc::channel(world(), &service.url(), terminal_dir)
        .await
        .unwrap()
}

fn terminal_dir(status: &str, nth: usize) -> PathBuf {
    world()
        .terminal(status, nth)
        .unwrap()
        .parent()
        .unwrap()
        .to_owned()
}

fn card(kind: &str) -> CardKeys {
    CardKeys::of(world(), kind).unwrap()
}

fn sign(card: &CardKeys, challenge: &[u8], terminal_name: &str, consents: ConsentBits) -> Vec<u8> {
    card.sign(&ChallengeBinding {
        purpose: Purpose::Confirm,
        challenge,
        terminal_name,
        certificate_der: &card.certificate,
        consents,
    })
    .unwrap()
}

async fn challenge(c: &mut ConfirmationClient<Channel>) -> pb::IssueChallengeResponse {
    c.issue_challenge(pb::IssueChallengeRequest {
        purpose: pb::Purpose::Confirm as i32,
    })
    .await
    .unwrap()
    .into_inner()
}

fn request(
    card: &CardKeys,
    ch: &pb::IssueChallengeResponse,
    sig: Vec<u8>,
) -> pb::ConfirmByCardRequest {
    pb::ConfirmByCardRequest {
        prescription_issue: Default::default(),
        credential_kind: 0,
        certificate: card.certificate.clone(),
        challenge: ch.challenge.clone(),
        signature: sig,
        consents: None,
        treatment: 0,
        requery_consent: false,
    }
}

fn refusal(status: &tonic::Status) -> Option<ResultCode> {
    onshi_confirm_service::outcome::result_code_of(status)
}

#[test]
fn a_challenge_is_single_use() {
    let svc = service();
    runtime().block_on(async {
        let mut c = client(&svc, Some(&terminal_dir("in-operation", 0)))
            .await
            .unwrap();
        let card = card("valid");
        let ch = challenge(&mut c).await;
        let sig = sign(
            &card,
            &ch.challenge,
            &ch.terminal_name,
            ConsentBits::default(),
        );
        let first = c
            .confirm_by_card(request(&card, &ch, sig.clone()))
            .await
            .unwrap();
        assert_eq!(first.get_ref().result_code(), ResultCode::Ok);
        assert_eq!(first.get_ref().validity(), pb::QualificationValidity::Valid);
        let replay = c
            .confirm_by_card(request(&card, &ch, sig))
            .await
            .unwrap_err();
        assert_eq!(
            refusal(&replay),
            Some(ResultCode::ChallengeReused),
            "{replay:?}"
        );
        assert_eq!(replay.code(), tonic::Code::FailedPrecondition);
    });
}

/// A challenge lives until its `expires_at` by the service's clock, and no longer: the clock
/// is moved, nobody waits.
#[test]
fn a_challenge_expires_when_the_service_clock_passes_its_lifetime() {
    let svc = service();
    runtime().block_on(async {
        let mut c = client(&svc, Some(&terminal_dir("in-operation", 0)))
            .await
            .unwrap();
        let card = card("valid");
        let issued_at = svc.now();
        let last = challenge(&mut c).await;
        let late = challenge(&mut c).await;
        let expires_at = late.expires_at.expect("expires_at");
        assert_eq!(
            expires_at.seconds,
            (issued_at + time::Duration::seconds(60)).unix_timestamp(),
            "the configured 60 s from the service's clock"
        );
        // A second before it runs out, still good.
        svc.advance(time::Duration::seconds(59));
        let sig = sign(
            &card,
            &last.challenge,
            &last.terminal_name,
            ConsentBits::default(),
        );
        let answer = c.confirm_by_card(request(&card, &last, sig)).await.unwrap();
        assert_eq!(answer.get_ref().result_code(), ResultCode::Ok);
        // A second after it ran out, expired.
        svc.advance(time::Duration::seconds(2));
        let sig = sign(
            &card,
            &late.challenge,
            &late.terminal_name,
            ConsentBits::default(),
        );
        let refused = c
            .confirm_by_card(request(&card, &late, sig))
            .await
            .unwrap_err();
        assert_eq!(
            refusal(&refused),
            Some(ResultCode::ChallengeExpired),
            "{refused:?}"
        );
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    });
}

#[test]
fn another_terminals_challenge_is_refused() {
    let svc = service();
    runtime().block_on(async {
        let mut t1 = client(&svc, Some(&terminal_dir("in-operation", 0)))
            .await
            .unwrap();
        let mut t2 = client(&svc, Some(&terminal_dir("in-operation", 1)))
            .await
            .unwrap();
        let card = card("valid");
        let ch = challenge(&mut t1).await;
        // Signed for terminal 1's name, presented by terminal 2.
        let sig = sign(
            &card,
            &ch.challenge,
            &ch.terminal_name,
            ConsentBits::default(),
        );
        let err = t2
            .confirm_by_card(request(&card, &ch, sig.clone()))
            .await
            .unwrap_err();
        assert_eq!(
            refusal(&err),
            Some(ResultCode::ChallengeOtherTerminal),
            "{err:?}"
        );
        // Not consumed by the other terminal's attempt: terminal 1 can still use it.
        let ok = t1.confirm_by_card(request(&card, &ch, sig)).await.unwrap();
        assert_eq!(ok.get_ref().result_code(), ResultCode::Ok);
    });
}

#[test]
fn forged_or_mismatched_signatures_are_refused() {
    let svc = service();
    runtime().block_on(async {
        let mut c = client(&svc, Some(&terminal_dir("in-operation", 0)))
            .await
            .unwrap();
        let card = card("valid");
        // Signed over other consents than the ones sent.
        let ch = challenge(&mut c).await;
        let sig = sign(
            &card,
            &ch.challenge,
            &ch.terminal_name,
            ConsentBits::new(true, true, true, true),
        );
        let err = c
            .confirm_by_card(request(&card, &ch, sig))
            .await
            .unwrap_err();
        assert_eq!(refusal(&err), Some(ResultCode::SignatureInvalid), "{err:?}");
        // Signed by another card's key.
        let other = card_with_other_key(&card);
        let ch = challenge(&mut c).await;
        let sig = sign(
            &other,
            &ch.challenge,
            &ch.terminal_name,
            ConsentBits::default(),
        );
        let err = c
            .confirm_by_card(request(&card, &ch, sig))
            .await
            .unwrap_err();
        assert_eq!(refusal(&err), Some(ResultCode::SignatureInvalid), "{err:?}");
    });
}

fn card_with_other_key(card: &CardKeys) -> CardKeys {
    // The revoked card's key differs from the valid card's unless the pool wrapped around.
    let other = self::card("revoked");
    assert_ne!(
        other.key, card.key,
        "test world must give these cards different keys"
    );
    CardKeys {
        certificate: card.certificate.clone(),
        key: other.key,
    }
}

#[test]
fn garbage_input_gets_clear_errors_not_crashes() {
    let svc = service();
    runtime().block_on(async {
        let mut c = client(&svc, Some(&terminal_dir("in-operation", 0)))
            .await
            .unwrap();
        let card = card("valid");
        let ch = challenge(&mut c).await;
        // Unspecified purpose (a missing field), an unknown one. (Every defined purpose is
        // served; face and visual-check challenges are for ConfirmByReader, tests/attestation.rs.)
        let err = c
            .issue_challenge(pb::IssueChallengeRequest { purpose: 0 })
            .await
            .unwrap_err();
        assert_eq!(refusal(&err), Some(ResultCode::MissingField));
        let err = c
            .issue_challenge(pb::IssueChallengeRequest { purpose: 99 })
            .await
            .unwrap_err();
        assert_eq!(refusal(&err), Some(ResultCode::UnknownEnumValue));
        // Short challenge, empty signature, oversized certificate.
        let mut bad = request(&card, &ch, vec![1; 256]);
        bad.challenge.truncate(5);
        let err = c.confirm_by_card(bad).await.unwrap_err();
        assert_eq!(refusal(&err), Some(ResultCode::BadRequest));
        let err = c
            .confirm_by_card(request(&card, &ch, vec![]))
            .await
            .unwrap_err();
        assert_eq!(refusal(&err), Some(ResultCode::BadRequest));
        let mut big = request(&card, &ch, vec![1; 256]);
        big.certificate = vec![0x30; 100_000];
        let err = c.confirm_by_card(big).await.unwrap_err();
        assert_eq!(refusal(&err), Some(ResultCode::BadRequest));
        // A certificate that is not DER, with a fresh challenge.
        let ch = challenge(&mut c).await;
        let mut junk = request(&card, &ch, vec![1; 256]);
        junk.certificate = b"\x30\x82\x01\x00 definitely not a certificate".to_vec();
        let err = c.confirm_by_card(junk).await.unwrap_err();
        assert_eq!(
            refusal(&err),
            Some(ResultCode::CertificateInvalid),
            "{err:?}"
        );
        // An unknown challenge.
        let mut unknown = request(&card, &ch, vec![1; 256]);
        unknown.challenge = vec![0xAB; 32];
        let err = c.confirm_by_card(unknown).await.unwrap_err();
        assert_eq!(refusal(&err), Some(ResultCode::ChallengeUnknown));
        // The service still answers properly afterwards.
        let ch = challenge(&mut c).await;
        let sig = sign(
            &card,
            &ch.challenge,
            &ch.terminal_name,
            ConsentBits::default(),
        );
        let ok = c.confirm_by_card(request(&card, &ch, sig)).await.unwrap();
        assert_eq!(ok.get_ref().result_code(), ResultCode::Ok);
    });
}

#[test]
fn terminals_without_a_valid_client_certificate_get_nothing() {
    let svc = service();
    runtime().block_on(async {
        // No client certificate: the handshake (or the first call) fails; never an answer.
        let outcome = match client(&svc, None).await {
            Err(_) => None,
            Ok(mut c) => Some(
                c.issue_challenge(pb::IssueChallengeRequest {
                    purpose: pb::Purpose::Confirm as i32,
                })
                .await,
            ),
        };
        if let Some(result) = outcome {
            let err = result.expect_err("a terminal without a certificate must not be served");
            assert_eq!(refusal(&err), None, "no result code for a failed handshake");
        }
        // A certificate from an untrusted CA: likewise.
        let rogue = terminal_dir("untrusted", 0);
        let outcome = match client(&svc, Some(&rogue)).await {
            Err(_) => None,
            Ok(mut c) => Some(
                c.issue_challenge(pb::IssueChallengeRequest {
                    purpose: pb::Purpose::Confirm as i32,
                })
                .await,
            ),
        };
        if let Some(result) = outcome {
            let err = result.expect_err("an untrusted terminal must not be served");
            assert_eq!(refusal(&err), None, "no result code for a failed handshake");
        }
    });
}

#[test]
fn unknown_and_suspended_terminals_are_refused_specifically() {
    let svc = service();
    runtime().block_on(async {
        let mut unknown = client(&svc, Some(&terminal_dir("unregistered", 0)))
            .await
            .unwrap();
        let err = unknown
            .issue_challenge(pb::IssueChallengeRequest {
                purpose: pb::Purpose::Confirm as i32,
            })
            .await
            .unwrap_err();
        assert_eq!(refusal(&err), Some(ResultCode::TerminalUnknown), "{err:?}");
        assert_eq!(err.code(), tonic::Code::PermissionDenied);
        let mut suspended = client(&svc, Some(&terminal_dir("suspended", 0)))
            .await
            .unwrap();
        let err = suspended
            .issue_challenge(pb::IssueChallengeRequest {
                purpose: pb::Purpose::Confirm as i32,
            })
            .await
            .unwrap_err();
        assert_eq!(
            refusal(&err),
            Some(ResultCode::TerminalNotInOperation),
            "{err:?}"
        );
    });
}

#[test]
fn lost_and_multiple_qualifications_are_carried_out_with_their_validity() {
    let svc = service();
    runtime().block_on(async {
        let mut c = client(&svc, Some(&terminal_dir("in-operation", 0)))
            .await
            .unwrap();
        for (kind, validity, code, n) in [
            (
                "lost",
                pb::QualificationValidity::Invalid,
                ResultCode::Ok,
                1,
            ),
            (
                "multiple",
                pb::QualificationValidity::Multiple,
                ResultCode::MultipleQualifications,
                2,
            ),
        ] {
            let card = card(kind);
            let ch = challenge(&mut c).await;
            let sig = sign(
                &card,
                &ch.challenge,
                &ch.terminal_name,
                ConsentBits::default(),
            );
            let r = c
                .confirm_by_card(request(&card, &ch, sig))
                .await
                .unwrap()
                .into_inner();
            assert_eq!(r.validity(), validity, "{kind}");
            assert_eq!(r.result_code(), code, "{kind}");
            assert_eq!(r.qualifications.len(), n, "{kind}");
            if kind == "lost" {
                assert!(!r.qualifications[0].disqualification_date.is_empty());
                assert!(!r.qualifications[0].loss_reason.is_empty());
            }
        }
    });
}

#[test]
fn health_checking_and_reflection_are_served() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let svc = service();
    runtime().block_on(async {
        let channel = channel(&svc, Some(&terminal_dir("in-operation", 0)))
            .await
            .unwrap();
        let status = HealthClient::new(channel.clone())
            .check(HealthCheckRequest {
                service: "onshi.v1.Confirmation".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status();
        assert_eq!(status, ServingStatus::Serving);

        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut responses = ServerReflectionClient::new(channel)
            .server_reflection_info(tokio_stream::iter(vec![request]))
            .await
            .unwrap()
            .into_inner();
        let first = responses.message().await.unwrap().expect("one response");
        let Some(MessageResponse::ListServicesResponse(list)) = first.message_response else {
            panic!("unexpected reflection answer: {first:?}");
        };
        let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        assert!(
            names.contains(&"onshi.v1.Confirmation".to_owned()),
            "{names:?}"
        );
        assert!(
            names.contains(&"grpc.health.v1.Health".to_owned()),
            "{names:?}"
        );
    });
}

#[test]
fn unusable_tls_material_is_a_one_line_configuration_error() {
    let w = world();
    let text = std::fs::read_to_string(w.dir.join("service.toml")).unwrap();
    // The private key replaced by a certificate, in a config beside the world's.
    let bad = text.replace("service/server.key.pem", "network-ca/ca.pem");
    assert_ne!(bad, text);
    let config = w.dir.join("service-bad-key.toml");
    std::fs::write(&config, bad).unwrap();
    let mut cmd = std::process::Command::new(onshi_e2e::bin("confirm-service").unwrap());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config);
    let out = onshi_e2e::run_bounded(cmd, std::time::Duration::from_secs(30)).unwrap();
    std::fs::remove_file(&config).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("network-ca/ca.pem"), "{stderr}");
    assert!(stderr.contains("private key"), "{stderr}");
}
