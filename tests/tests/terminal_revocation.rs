//! A stolen terminal's certificate revoked end to end (docs/security.md, "A stolen or revoked
//! terminal certificate"): the world's network CA CRL (`network-ca/crl.pem`, named by
//! `[tls] client_crl`), `testbed revoke-terminal` while the service runs, and
//! `testbed reissue-terminal` for the successor. Each test builds a world of its own, since it
//! changes the world's files.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use onshi_e2e::grpc::{self, CardKeys};
use onshi_e2e::{bin, run_bounded, Service, World};
use onshi_proto::binding::{ChallengeBinding, ConsentBits, Purpose};
use onshi_proto::v1::confirmation_client::ConfirmationClient;
use onshi_proto::v1::{self as pb, ResultCode};

/// The pharmacy's first terminal: the one revoked.
const T01: &str = "1340123452-T01";
/// Its second terminal, never revoked.
const T02: &str = "1340123452-T02";

/// How long a revocation may take to reach new handshakes (the service re-reads its TLS
/// files about once a second).
const REVOCATION_DEADLINE: Duration = Duration::from_secs(10);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A world of the test's own in a temporary directory (removed when the guard drops).
fn own_world(tag: &str) -> (tempfile::TempDir, World) {
    let tmp = tempfile::Builder::new()
        .prefix(&format!("{tag}-"))
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let world = World::build(&tmp.path().join("world"), 6).expect("testbed build");
    (tmp, world)
}

fn testbed(args: &[&str], world: &Path) -> Output {
    let mut command = Command::new(bin("testbed").unwrap());
    command
        .args(args)
        .arg("--world")
        .arg(world)
        .env("ONSHI_LOG", "warn");
    run_bounded(command, Duration::from_secs(60)).unwrap()
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

/// A copy of a terminal folder's client certificate and key (what a thief would hold).
fn copy_identity(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for file in ["client.pem", "client.key.pem"] {
        std::fs::copy(from.join(file), to.join(file)).unwrap();
    }
}

/// What a new connection with a client identity got.
#[derive(Debug)]
enum Attempt {
    /// Served: the terminal name the service took from the certificate.
    Served(String),
    /// The handshake was refused: the connection failed, or the first call failed at the
    /// transport, with no result code of the service.
    Refused(String),
    /// An answer of the service (a result code): the handshake went through.
    Answered(#[allow(dead_code)] tonic::Status), // read through Debug, in failure reports
}

/// A NEW connection (a fresh TLS handshake) with the identity in `dir`, and one
/// `IssueChallenge` on it; bounded by 10 s.
async fn attempt(world: &World, url: &str, dir: &Path) -> Attempt {
    let call = async {
        let channel = match grpc::channel(world, url, Some(dir)).await.unwrap() {
            Ok(c) => c,
            Err(e) => return Attempt::Refused(format!("connect: {e:?}")),
        };
        let result = ConfirmationClient::new(channel)
            .issue_challenge(pb::IssueChallengeRequest {
                purpose: pb::Purpose::Confirm as i32,
            })
            .await;
        match result {
            Ok(r) => Attempt::Served(r.into_inner().terminal_name),
            Err(status) if onshi_confirm_service::outcome::result_code_of(&status).is_some() => {
                Attempt::Answered(status)
            }
            Err(status) => {
                // The connection died under the call (closed by the server's alert): tonic
                // reports Unavailable, Unknown or Cancelled depending on when it noticed, but
                // always with the transport's error as the cause, never the service's answer.
                let from_transport = std::error::Error::source(&status)
                    .is_some_and(|e| e.downcast_ref::<tonic::transport::Error>().is_some());
                assert!(
                    from_transport,
                    "a refused handshake surfaces as a transport failure: {status:?}"
                );
                Attempt::Refused(format!("first call: {status:?}"))
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("a connection attempt got no outcome within 10 s")
}

async fn assert_served(world: &World, url: &str, dir: &Path, name: &str) {
    match attempt(world, url, dir).await {
        Attempt::Served(n) => assert_eq!(n, name, "{}", dir.display()),
        other => panic!("{} ({name}) was not served: {other:?}", dir.display()),
    }
}

async fn assert_refused(world: &World, url: &str, dir: &Path) -> String {
    match attempt(world, url, dir).await {
        Attempt::Refused(why) => why,
        other => panic!("{} was not refused: {other:?}", dir.display()),
    }
}

/// One full confirmation by the valid card through the terminal in `dir`.
async fn confirm(world: &World, url: &str, dir: &Path) -> pb::ConfirmationResult {
    let mut c = grpc::client(world, url, dir).await.unwrap();
    let ch = c
        .issue_challenge(pb::IssueChallengeRequest {
            purpose: pb::Purpose::Confirm as i32,
        })
        .await
        .unwrap()
        .into_inner();
    let card = CardKeys::of(world, "valid").unwrap();
    let signature = card
        .sign(&ChallengeBinding {
            purpose: Purpose::Confirm,
            challenge: &ch.challenge,
            terminal_name: &ch.terminal_name,
            certificate_der: &card.certificate,
            consents: ConsentBits::default(),
        })
        .unwrap();
    c.confirm_by_card(pb::ConfirmByCardRequest {
        prescription_issue: Default::default(),
        credential_kind: 0,
        certificate: card.certificate.clone(),
        challenge: ch.challenge,
        signature,
        consents: None,
        treatment: 0,
        requery_consent: false,
    })
    .await
    .unwrap()
    .into_inner()
}

#[test]
fn a_revoked_terminal_is_refused_at_the_handshake_and_its_reissued_successor_works() {
    let (tmp, world) = own_world("revocation");
    let service_toml = std::fs::read_to_string(world.dir.join("service.toml")).unwrap();
    assert!(
        service_toml.contains("client_crl = \"network-ca/crl.pem\""),
        "{service_toml}"
    );
    let log = tmp.path().join("service.log");
    let svc =
        Service::start_logged(&world.dir.join("service.toml"), &log).expect("confirm-service");
    let url = svc.url();
    let t01 = world.in_operation_terminal_dir(T01).unwrap();
    let t02 = world.in_operation_terminal_dir(T02).unwrap();
    // The stolen identity: T01's certificate and key as they are now.
    let stolen: PathBuf = tmp.path().join("stolen-t01");
    copy_identity(&t01, &stolen);

    runtime().block_on(async {
        // Before: the certificate works, for a full confirmation too.
        assert_served(&world, &url, &stolen, T01).await;
        assert_eq!(
            confirm(&world, &url, &t01).await.result_code(),
            ResultCode::Ok
        );
        assert_served(&world, &url, &t02, T02).await;
    });

    let out = testbed(&["revoke-terminal", "--terminal", T01], &world.dir);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "revoke-terminal failed: {stdout}{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("revoked 1340123452-T01"), "{stdout}");

    runtime().block_on(async {
        // Within the deadline, a new handshake with the revoked certificate is refused.
        let started = Instant::now();
        let why = loop {
            match attempt(&world, &url, &stolen).await {
                Attempt::Refused(why) => break why,
                Attempt::Served(_) if started.elapsed() < REVOCATION_DEADLINE => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                other => panic!(
                    "the revoked certificate was not refused within {REVOCATION_DEADLINE:?}: \
                     {other:?}"
                ),
            }
        };
        println!(
            "refused {:?} after the revocation: {why}",
            started.elapsed()
        );
        // Because the service took the new CRL (not for some other reason).
        let logged = std::fs::read_to_string(&log).unwrap();
        assert!(
            logged.contains("TLS files reloaded") && !logged.contains("cannot be used"),
            "{logged}"
        );
        // For good, not once: every new handshake is refused, the folder's copy too, while
        // the pharmacy's other terminal is still served.
        for _ in 0..3 {
            assert_refused(&world, &url, &stolen).await;
        }
        assert_refused(&world, &url, &t01).await;
        assert_served(&world, &url, &t02, T02).await;
    });

    // Revoking again changes nothing.
    let crl_before = std::fs::read(world.dir.join("network-ca/crl.pem")).unwrap();
    let out = testbed(&["revoke-terminal", "--terminal", T01], &world.dir);
    assert!(out.status.success());
    assert!(
        text(&out.stdout).contains("already on"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(
        std::fs::read(world.dir.join("network-ca/crl.pem")).unwrap(),
        crl_before
    );

    let out = testbed(&["reissue-terminal", "--terminal", T01], &world.dir);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "reissue-terminal failed: {stdout}{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("reissued 1340123452-T01"), "{stdout}");
    assert_ne!(
        std::fs::read(t01.join("client.pem")).unwrap(),
        std::fs::read(stolen.join("client.pem")).unwrap(),
        "a new certificate"
    );

    runtime().block_on(async {
        // The successor is served as the same terminal (the store still knows it) and
        // confirms; the stolen certificate stays refused.
        assert_served(&world, &url, &t01, T01).await;
        assert_eq!(
            confirm(&world, &url, &t01).await.result_code(),
            ResultCode::Ok
        );
        assert_refused(&world, &url, &stolen).await;
        assert_served(&world, &url, &t02, T02).await;
    });
    drop(svc);
}

#[test]
fn the_commands_refuse_clearly_what_they_cannot_do() {
    let (tmp, world) = own_world("revocation-errors");
    let refused = |args: &[&str], dir: &Path, expect: &str| {
        let out = testbed(args, dir);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("testbed: error: ") && stderr.contains(expect),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    };
    let missing = tmp.path().join("no-such-world");
    for command in ["revoke-terminal", "reissue-terminal"] {
        refused(&[command, "--terminal", T01], &missing, "is not a world");
        refused(
            &[command, "--terminal", "1340123452-T42"],
            &world.dir,
            "no terminal \"1340123452-T42\"",
        );
        refused(&[command, "--terminal", "rogue"], &world.dir, "rogue CA");
    }
    // The world itself is sound: a revocation goes through.
    let out = testbed(&["revoke-terminal", "--terminal", T02], &world.dir);
    assert!(out.status.success(), "{}", text(&out.stderr));
    std::fs::remove_file(world.dir.join("network-ca/ca.key.pem")).unwrap();
    for command in ["revoke-terminal", "reissue-terminal"] {
        refused(
            &[command, "--terminal", T01],
            &world.dir,
            "ca.key.pem is missing",
        );
    }
    // The help explains the commands.
    for command in ["revoke-terminal", "reissue-terminal"] {
        let out = run_bounded(
            {
                let mut c = Command::new(bin("testbed").unwrap());
                c.args([command, "--help"]);
                c
            },
            Duration::from_secs(30),
        )
        .unwrap();
        assert!(out.status.success());
        let help = text(&out.stdout);
        assert!(
            help.contains("--world <DIR>") && help.contains("--terminal <NAME>"),
            "{help}"
        );
        assert!(help.contains("network CA"), "{help}");
    }
}
