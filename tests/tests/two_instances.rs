//! Two service instances, one store (architecture.md "Storage"): a testbed world copied into a
//! private PostgreSQL (`store copy`, onshi_confirm_service::store::copy), two
//! `confirm-service serve` processes on their own ports sharing that database, and a challenge
//! issued by one instance that is consumed exactly once whichever instance it is presented to.
//! Also: the copy reproduces the world exactly, and refuses what it must.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use onshi_confirm_service::audit::AuditQuery;
use onshi_confirm_service::store::copy::{copy, run_copy};
use onshi_confirm_service::store::postgres::PgStore;
use onshi_confirm_service::store::{SqliteStore, Store, StoreError};
use onshi_e2e::grpc::{self, CardKeys};
use onshi_e2e::pg::PgServer;
use onshi_e2e::{Guard, Service, World};
use onshi_proto::binding::{ChallengeBinding, ConsentBits, Purpose};
use onshi_proto::v1::confirmation_client::ConfirmationClient;
use onshi_proto::v1::{self as pb, ResultCode};
use rsa::sha2::{Digest, Sha256};
use tonic::transport::Channel;

fn world() -> &'static World {
    World::shared(env!("CARGO_TARGET_TMPDIR"), "two-instances-world", 8)
}

fn world_store() -> PathBuf {
    world().dir.join("store/onshi.sqlite")
}

/// The world's service.toml with its store replaced by `url`, written beside the original so
/// its relative paths still resolve.
fn service_toml_for(url: &str, tag: &str) -> PathBuf {
    let dir = &world().dir;
    let text = std::fs::read_to_string(dir.join("service.toml")).unwrap();
    let mut replaced = 0;
    let text: String = text
        .lines()
        .map(|line| {
            if line.trim_start().starts_with("store") && line.contains('=') {
                replaced += 1;
                format!("store = {url:?}")
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(replaced, 1, "service.toml has one store line");
    let path = dir.join(format!("service-{tag}.toml"));
    std::fs::write(&path, text + "\n").unwrap();
    path
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn terminal_dir(nth: usize) -> PathBuf {
    world()
        .terminal("in-operation", nth)
        .unwrap()
        .parent()
        .unwrap()
        .to_owned()
}

/// A mutual-TLS client of the service at `url` with the identity of the terminal in
/// `terminal_dir`.
async fn client(url: String, terminal_dir: &Path) -> ConfirmationClient<Channel> {
    grpc::client(world(), &url, terminal_dir).await.unwrap()
}

fn card(kind: &str) -> CardKeys {
    CardKeys::of(world(), kind).unwrap()
}

/// The request a card would send for challenge `ch`: certificate and a PKCS#1 v1.5 signature
/// over the SHA-256 DigestInfo of the binding, as the card signs.
fn signed_request(card: &CardKeys, ch: &pb::IssueChallengeResponse) -> pb::ConfirmByCardRequest {
    let binding = ChallengeBinding {
        purpose: Purpose::Confirm,
        challenge: &ch.challenge,
        terminal_name: &ch.terminal_name,
        certificate_der: &card.certificate,
        consents: ConsentBits::default(),
    }
    .encode()
    .unwrap();
    let signature = card
        .key
        .sign(
            rsa::Pkcs1v15Sign::new::<Sha256>(),
            &Sha256::digest(&binding),
        )
        .unwrap();
    pb::ConfirmByCardRequest {
        prescription_issue: Default::default(),
        credential_kind: 0,
        certificate: card.certificate.clone(),
        challenge: ch.challenge.clone(),
        signature,
        consents: None,
        treatment: 0,
        requery_consent: false,
    }
}

async fn issue(c: &mut ConfirmationClient<Channel>) -> pb::IssueChallengeResponse {
    c.issue_challenge(pb::IssueChallengeRequest {
        purpose: pb::Purpose::Confirm as i32,
    })
    .await
    .unwrap()
    .into_inner()
}

/// The result code of an answer: OK's own, or the one a refusal carries.
fn code(answer: &Result<tonic::Response<pb::ConfirmationResult>, tonic::Status>) -> ResultCode {
    match answer {
        Ok(r) => r.get_ref().result_code(),
        Err(status) => onshi_confirm_service::outcome::result_code_of(status)
            .unwrap_or_else(|| panic!("a refusal without a result code: {status:?}")),
    }
}

/// An instance started here rather than by [`Service::start`], to see how it exits.
struct Instance {
    addr: String,
    guard: Guard,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl Instance {
    fn start(config: &Path) -> Instance {
        let dir = tempfile::tempdir().unwrap();
        let stderr = dir.path().join("stderr");
        let mut child = Command::new(onshi_e2e::bin("confirm-service").unwrap())
            .args(["serve", "--config"])
            .arg(config)
            .args(["--listen", "127.0.0.1:0"])
            .env("ONSHI_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let guard = Guard::new(child, "confirm-service B");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("confirm-service: listening on ") {
                    let _ = tx.send(addr.to_owned());
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| {
                panic!(
                    "instance B did not start: {}",
                    std::fs::read_to_string(&stderr).unwrap_or_default()
                )
            });
        Instance {
            addr,
            guard,
            stderr,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// SIGTERM, then the exit status must be success with nothing alarming on stderr.
    fn terminate(&mut self) {
        let pid = self.guard.id().unwrap();
        onshi_e2e::send_signal(pid, rustix::process::Signal::TERM).unwrap();
        let status = self.guard.wait(Duration::from_secs(20)).unwrap();
        let stderr = std::fs::read_to_string(&self.stderr).unwrap();
        assert!(status.success(), "{status}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn a_challenge_is_consumed_once_across_two_instances() {
    let url = PgServer::shared()
        .create_database("two_instances")
        .expect("a database on the private PostgreSQL");
    let stats = run_copy(&world_store(), &url, false).expect("copy the world");
    assert_eq!(stats.persons, 60);
    let config = service_toml_for(&url, "two-instances");
    let a = Service::start(&config).expect("instance A");
    let mut b = Instance::start(&config);
    assert_ne!(a.addr, b.addr);
    let card = card("valid");

    runtime().block_on(async {
        let mut on_a = client(a.url(), &terminal_dir(0)).await;
        let mut on_b = client(b.url(), &terminal_dir(0)).await;

        // Issued by A, presented to B: accepted; replayed to A or B: reused.
        let ch = issue(&mut on_a).await;
        let first = on_b.confirm_by_card(signed_request(&card, &ch)).await;
        assert_eq!(code(&first), ResultCode::Ok, "{first:?}");
        assert_eq!(
            first.unwrap().get_ref().validity(),
            pb::QualificationValidity::Valid
        );
        let replay = on_a.confirm_by_card(signed_request(&card, &ch)).await;
        assert_eq!(code(&replay), ResultCode::ChallengeReused, "{replay:?}");
        let replay = on_b.confirm_by_card(signed_request(&card, &ch)).await;
        assert_eq!(code(&replay), ResultCode::ChallengeReused, "{replay:?}");

        // Another terminal's presentation at B does not use up A's challenge.
        let mut other_on_b = client(b.url(), &terminal_dir(1)).await;
        let ch = issue(&mut on_a).await;
        let other = other_on_b.confirm_by_card(signed_request(&card, &ch)).await;
        assert_eq!(
            code(&other),
            ResultCode::ChallengeOtherTerminal,
            "{other:?}"
        );
        let own = on_a.confirm_by_card(signed_request(&card, &ch)).await;
        assert_eq!(code(&own), ResultCode::Ok, "{own:?}");

        // The same challenge sent to both at once: one answer, one reuse.
        for _ in 0..5 {
            let ch = issue(&mut on_b).await;
            let (x, y) = tokio::join!(
                on_a.confirm_by_card(signed_request(&card, &ch)),
                on_b.confirm_by_card(signed_request(&card, &ch)),
            );
            let mut codes = [code(&x), code(&y)];
            codes.sort_by_key(|c| *c as i32);
            assert_eq!(codes, [ResultCode::Ok, ResultCode::ChallengeReused]);
        }
    });

    // An instance on PostgreSQL shuts down cleanly on SIGTERM.
    b.terminate();

    // Both instances audited into the one store: 7 answers, 7 reuses, 1 other terminal.
    let store = PgStore::open(&url).unwrap();
    let audit = store
        .query_audit(&AuditQuery {
            limit: 1000,
            ..AuditQuery::default()
        })
        .unwrap();
    let count = |code: ResultCode| {
        audit
            .iter()
            .filter(|r| r.result_code == code.as_str_name())
            .count()
    };
    assert_eq!(count(ResultCode::Ok), 7, "{audit:#?}");
    assert_eq!(count(ResultCode::ChallengeReused), 7, "{audit:#?}");
    assert_eq!(count(ResultCode::ChallengeOtherTerminal), 1, "{audit:#?}");
    assert_eq!(audit.len(), 15, "{audit:#?}");
}

#[test]
fn the_copy_reproduces_the_world() {
    let source = SqliteStore::open(&world_store()).unwrap();
    let url = PgServer::shared().create_database("copy").unwrap();
    let destination = PgStore::open(&url).unwrap();
    // Small chunks, so the world crosses several transactions.
    let stats = copy(&source, &destination, 7, false).unwrap();
    assert_eq!(stats.persons, 60);
    assert_eq!(stats.chunks, 9);

    // Everything the source exports reads back equal from the copy, through the one trait.
    let mut persons = 0;
    let mut cards = 0;
    source
        .export(1000, |batch| {
            for t in &batch.terminals {
                assert_eq!(
                    destination
                        .terminal(&t.institution_code, &t.terminal_id)
                        .unwrap()
                        .as_ref(),
                    Some(t)
                );
            }
            for (key, person) in &batch.cards {
                cards += 1;
                assert_eq!(
                    destination.person_for_card(key).unwrap().as_ref(),
                    Some(person)
                );
            }
            for p in &batch.persons {
                persons += 1;
                let id = p.id.as_str();
                assert_eq!(destination.person(id).unwrap().as_ref(), Some(p));
                assert_eq!(
                    destination.qualifications(id).unwrap(),
                    Store::qualifications(&source, id).unwrap()
                );
                assert_eq!(
                    destination.medications(id).unwrap(),
                    source.medications(id).unwrap()
                );
                assert_eq!(
                    destination.checkups(id).unwrap(),
                    source.checkups(id).unwrap()
                );
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(persons, 60);
    assert_eq!(cards, stats.cards);
    assert!(stats.qualifications >= 60, "{stats}");
    assert!(stats.terminals >= 2, "{stats}");

    // A second copy into the same database would append every record again: refused.
    match run_copy(&world_store(), &url, false) {
        Err(e @ StoreError::NotEmpty { .. }) => {
            assert!(e.to_string().contains("empty database"), "{e}")
        }
        other => panic!("a copy into a filled database: {other:?}"),
    }
    // A missing source is an error, not an empty copy (and not a new file).
    let missing = world().dir.join("store/no-such.sqlite");
    let fresh = PgServer::shared().create_database("copy_missing").unwrap();
    match run_copy(&missing, &fresh, false) {
        Err(StoreError::Open { location, reason }) => {
            assert_eq!(location, missing.display().to_string());
            assert_eq!(reason, "no such file");
        }
        other => panic!("a copy from a missing file: {other:?}"),
    }
    assert!(!missing.exists());
    // The destination must be PostgreSQL.
    assert!(matches!(
        run_copy(&world_store(), "/tmp/elsewhere.sqlite", false),
        Err(StoreError::BadLocation(_))
    ));
}

/// Two instances sharing one PostgreSQL, each confirming for two terminals at once, append to
/// one audit chain: `audit verify` checks every record and finds no break.
#[test]
fn two_instances_writing_at_once_keep_one_valid_audit_chain() {
    let url = PgServer::shared()
        .create_database("two_instances_chain")
        .expect("a database on the private PostgreSQL");
    run_copy(&world_store(), &url, false).expect("copy the world");
    let config = service_toml_for(&url, "two-instances-chain");
    let a = Service::start(&config).expect("instance A");
    let mut b = Instance::start(&config);
    let card = card("valid");
    let per_stream = 15;
    runtime().block_on(async {
        let mut streams = Vec::new();
        for (url, nth) in [(a.url(), 0), (b.url(), 0), (a.url(), 1), (b.url(), 1)] {
            let mut c = client(url, &terminal_dir(nth)).await;
            let card = &card;
            streams.push(async move {
                for _ in 0..per_stream {
                    let ch = issue(&mut c).await;
                    let answer = c.confirm_by_card(signed_request(card, &ch)).await;
                    assert_eq!(code(&answer), ResultCode::Ok, "{answer:?}");
                }
            });
        }
        futures_join_all(streams).await;
    });
    b.terminate();
    let out = Command::new(onshi_e2e::bin("confirm-service").unwrap())
        .args(["audit", "verify", "--store", &url])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!("{} record(s) checked", 4 * per_stream)),
        "{text}"
    );
}

/// Runs the futures concurrently on the current task (no extra dependency).
async fn futures_join_all<F: std::future::Future<Output = ()>>(futures: Vec<F>) {
    let mut futures: Vec<std::pin::Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    std::future::poll_fn(move |cx| {
        futures.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if futures.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
}
