//! The service against strangers and hostile terminals (docs/security.md, "The confirmation
//! service"): a peer that connects and says nothing is dropped; idle strangers cannot take the
//! descriptors a registered terminal needs; HTTP/2 advertises and enforces its bounds; a key
//! file others can read stops the service.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::io::Read;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use onshi_e2e::{bin, grpc, Service, World};
use onshi_proto::v1 as pb;

fn world() -> &'static World {
    World::shared(env!("CARGO_TARGET_TMPDIR"), "hostile-peers-world", 8)
}

fn terminal_dir() -> PathBuf {
    world()
        .terminal("in-operation", 0)
        .unwrap()
        .parent()
        .unwrap()
        .to_owned()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// How long until the service closes a connection on which nothing is sent (bounded).
fn closed_after(addr: &str, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 64];
    match tcp.read(&mut buf) {
        // EOF or a reset: the service let go.
        Ok(0) | Err(_) if started.elapsed() < within => Some(started.elapsed()),
        _ => None,
    }
}

#[test]
fn a_peer_that_connects_and_sends_nothing_is_dropped_within_the_handshake_timeout() {
    let config = world()
        .service_config_with(
            "service-handshake.toml",
            "[limits]\nhandshake_timeout_seconds = 2\n",
        )
        .unwrap();
    let service = Service::start(&config).unwrap();
    let after = closed_after(&service.addr, Duration::from_secs(10))
        .expect("the silent connection was still open after 10 s");
    assert!(
        after >= Duration::from_millis(1500) && after < Duration::from_secs(5),
        "closed after {after:?}"
    );
}

#[test]
fn idle_strangers_cannot_take_the_descriptors_a_registered_terminal_needs() {
    // As reproduced on the old service: 260 idle connections to a service limited to 256
    // descriptors, and a registered terminal got no answer for 20 s.
    let service = Service::start_with(
        &world().dir.join("service.toml"),
        &["prlimit", "--nofile=256:256", "--"],
    )
    .unwrap();
    let strangers: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect(&service.addr).unwrap())
        .collect();
    let rt = runtime();
    let started = Instant::now();
    let answered = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(20), async {
            let mut c = grpc::client(world(), &service.url(), &terminal_dir()).await?;
            c.issue_challenge(pb::IssueChallengeRequest {
                purpose: pb::Purpose::Confirm as i32,
            })
            .await
            .map_err(|e| e.to_string())
        })
        .await
    });
    let took = started.elapsed();
    let challenge = answered
        .unwrap_or_else(|_| panic!("no answer within 20 s with 300 idle strangers"))
        .unwrap();
    assert_eq!(challenge.into_inner().challenge.len(), 32);
    // The handshake time-out (5 s) frees the strangers' places; the terminal waits at most
    // about that long.
    assert!(took < Duration::from_secs(12), "answered after {took:?}");
    // The service never held more descriptors than its limit allows.
    let fds = std::fs::read_dir(format!("/proc/{}/fd", service.pid().unwrap()))
        .unwrap()
        .count();
    assert!(fds < 256, "{fds} descriptors open");
    drop(strangers);
}

/// A raw HTTP/2 connection over mutual TLS as the world's first terminal.
async fn h2_as_terminal(
    addr: &str,
) -> (
    h2::client::SendRequest<bytes::Bytes>,
    tokio::task::JoinHandle<()>,
) {
    let dir = terminal_dir();
    let pem = |p: PathBuf| std::fs::read(p).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for ca in rustls_pemfile::certs(&mut pem(world().dir.join("network-ca/ca.pem")).as_slice()) {
        roots.add(ca.unwrap()).unwrap();
    }
    let chain = rustls_pemfile::certs(&mut pem(dir.join("client.pem")).as_slice())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls_pemfile::private_key(&mut pem(dir.join("client.key.pem")).as_slice())
        .unwrap()
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let (send, conn) = h2::client::handshake(tls).await.unwrap();
    let task = tokio::spawn(async move {
        let _ = conn.await;
    });
    (send, task)
}

fn grpc_request(path: &str, extra_header: Option<(&str, String)>) -> http::Request<()> {
    let mut b = http::Request::builder()
        .method("POST")
        .uri(format!("https://localhost{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some((k, v)) = extra_header {
        b = b.header(k, v);
    }
    b.body(()).unwrap()
}

#[test]
fn http2_advertises_its_stream_limit_and_bounds_headers_and_messages() {
    let service = Service::start(&world().dir.join("service.toml")).unwrap();
    let rt = runtime();
    rt.block_on(async {
        let (send, task) = h2_as_terminal(&service.addr).await;
        let mut send = send.ready().await.unwrap();
        // SETTINGS arrive with the first exchange: a request that is answered.
        let (response, _) = send
            .send_request(grpc_request("/grpc.health.v1.Health/Check", None), true)
            .unwrap();
        let _ = response.await;
        assert_eq!(send.current_max_send_streams(), 100);
        // A header list beyond 16 KiB is refused (the stream or the connection is reset).
        let big = "x".repeat(64 << 10);
        let refused = match send.clone().ready().await {
            Ok(mut s) => match s.send_request(
                grpc_request("/grpc.health.v1.Health/Check", Some(("x-padding", big))),
                true,
            ) {
                Ok((response, _)) => match response.await {
                    Ok(r) => r.status() == http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    Err(_) => true,
                },
                Err(_) => true,
            },
            Err(_) => true,
        };
        assert!(refused, "a 64 KiB header list was accepted");
        task.abort();

        // A message beyond the largest legitimate request (a 10,000-query batch) is refused
        // before it is decoded.
        let mut c = grpc::client(world(), &service.url(), &terminal_dir())
            .await
            .unwrap();
        let query = pb::NumbersQuery {
            insurer_number: "06139988".into(),
            symbol: String::new(),
            number: "1".repeat(38),
            branch: String::new(),
            birth_date: "19800101".into(),
            ..Default::default()
        };
        let status = c
            .submit_batch(pb::SubmitBatchRequest {
                queries: vec![query; 60_000],
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::OutOfRange, "{status:?}");
    });
}

#[test]
fn a_private_key_others_can_read_stops_the_service() {
    use std::os::unix::fs::PermissionsExt as _;
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("server.key.pem");
    std::fs::copy(w.dir.join("service/server.key.pem"), &key).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = w.service_config_with("service-leaky-key.toml", "").unwrap();
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "private_key = \"service/server.key.pem\"",
        &format!("private_key = \"{}\"", key.display()),
    );
    assert!(text.contains(&key.display().to_string()), "{text}");
    std::fs::write(&config, text).unwrap();
    let mut child = Command::new(bin("confirm-service").unwrap())
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded: a service that starts anyway is stopped, and the test fails.
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let status = status.expect("the service started on a key file others can read");
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("chmod 600"), "{err}");
    // The same key, its owner's only, serves.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let _service = Service::start(&config).unwrap();
}

#[test]
fn client_values_cannot_forge_log_lines_and_person_data_stays_out_of_the_log() {
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("service.log");
    let service = Service::start_logged(&w.dir.join("service.toml"), &log).unwrap();
    let example = w.manifest["examples"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["case"] == "validity-1")
        .unwrap()
        .clone();
    let field = |k: &str| example[k].as_str().unwrap_or("").to_owned();
    let rt = runtime();
    let answered = rt.block_on(async {
        let mut c = grpc::client(w, &service.url(), &terminal_dir())
            .await
            .unwrap();
        // As reproduced on the old service: a reception number with a newline wrote a line.
        let forged = c
            .get_batch_result(pb::GetBatchResultRequest {
                reception_number: "123\nFORGED-LINE INFO answered result=RESULT_CODE_OK".into(),
                from: 0,
                limit: 1,
            })
            .await;
        assert!(forged.is_err());
        c.confirm_by_numbers(pb::ConfirmByNumbersRequest {
            query: Some(pb::NumbersQuery {
                insurer_number: field("insurer_number"),
                symbol: field("symbol"),
                number: field("number"),
                branch: field("branch"),
                birth_date: field("birth_date"),
                ..Default::default()
            }),
            claimed_visit_time: None,
        })
        .await
        .unwrap()
        .into_inner()
    });
    let name = answered.qualifications[0].name.clone();
    assert!(!name.is_empty());
    // The log is written as the requests are answered; give it a moment (bounded).
    let deadline = Instant::now() + Duration::from_secs(5);
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap();
        // Both audited calls' RPC lines: the refused fetch and the answered confirmation.
        if text.lines().filter(|l| l.contains("result=")).count() >= 2
            && text.contains("RESULT_CODE_OK")
        {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "the service logged nothing: {text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        !text.lines().any(|l| l.starts_with("FORGED-LINE")),
        "a client wrote a log line:\n{text}"
    );
    for (what, value) in [
        ("number", field("number")),
        ("birth date", field("birth_date")),
        ("name", name),
    ] {
        assert!(
            !text.contains(&value),
            "the log carries the patient's {what}:\n{text}"
        );
    }
}

#[test]
fn oversized_batch_queries_are_refused_as_they_arrive() {
    use onshi_confirm_service::outcome::result_code_of;
    let service = Service::start(&world().dir.join("service.toml")).unwrap();
    let rt = runtime();
    rt.block_on(async {
        let mut c = grpc::client(world(), &service.url(), &terminal_dir())
            .await
            .unwrap();
        let query = |number: String| pb::NumbersQuery {
            insurer_number: "06139988".into(),
            symbol: String::new(),
            number,
            branch: String::new(),
            birth_date: "19800101".into(),
            ..Default::default()
        };
        // As reproduced on the old service: 200 streamed queries with a 1 MiB 番号 each were
        // kept (the store grew by 400 MB). The first one ends the stream now.
        let big = query("1".repeat(1 << 20));
        let started = Instant::now();
        let status = c
            .submit_batch_stream(tokio_stream::iter(std::iter::repeat_n(big, 200)))
            .await
            .unwrap_err();
        assert_eq!(
            result_code_of(&status),
            Some(pb::ResultCode::FieldTooLong),
            "{status:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(20));
        // The same in one message (within the message bound).
        let status = c
            .submit_batch(pb::SubmitBatchRequest {
                queries: vec![query("1".repeat(300)); 3],
            })
            .await
            .unwrap_err();
        assert_eq!(result_code_of(&status), Some(pb::ResultCode::FieldTooLong));
        // Each field is held to the length the domain gives it as the query arrives: 39
        // characters of 番号 (at most 38) refuse the batch, well within the byte bound.
        let status = c
            .submit_batch(pb::SubmitBatchRequest {
                queries: vec![query("1".repeat(39))],
            })
            .await
            .unwrap_err();
        assert_eq!(result_code_of(&status), Some(pb::ResultCode::FieldTooLong));
        for (what, long) in [
            (
                "枝番",
                pb::NumbersQuery {
                    branch: "001".into(),
                    ..query("1".into())
                },
            ),
            (
                "保険者番号",
                pb::NumbersQuery {
                    insurer_number: "061399880".into(),
                    ..query("1".into())
                },
            ),
            (
                "記号",
                pb::NumbersQuery {
                    symbol: "記".repeat(39),
                    ..query("1".into())
                },
            ),
            (
                "birth date",
                pb::NumbersQuery {
                    birth_date: "198001011".into(),
                    ..query("1".into())
                },
            ),
        ] {
            let status = c
                .submit_batch(pb::SubmitBatchRequest {
                    queries: vec![query("1".into()), long],
                })
                .await
                .unwrap_err();
            assert_eq!(
                result_code_of(&status),
                Some(pb::ResultCode::FieldTooLong),
                "{what}: {status:?}"
            );
        }
        // A query that is merely invalid (a 番号 of the right length with a wrong check digit
        // in its insurer number) is kept and answered with its own error, like a card-less
        // confirmation.
        let accepted = c
            .submit_batch(pb::SubmitBatchRequest {
                queries: vec![pb::NumbersQuery {
                    insurer_number: "06139989".into(),
                    ..query("1".repeat(38))
                }],
            })
            .await
            .unwrap()
            .into_inner();
        assert!(!accepted.reception_number.is_empty());
        // ... and answered with that error once processed.
        let deadline = Instant::now() + Duration::from_secs(60);
        let item = loop {
            let r = c
                .get_batch_result(pb::GetBatchResultRequest {
                    reception_number: accepted.reception_number.clone(),
                    from: 0,
                    limit: 1,
                })
                .await
                .unwrap()
                .into_inner();
            if let Some(item) = r.items.into_iter().next() {
                break item;
            }
            assert!(
                Instant::now() < deadline,
                "the kept query was never answered"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(
            item.result.map(|r| r.result_code()),
            Some(pb::ResultCode::InvalidInsurerNumber)
        );
    });
}
