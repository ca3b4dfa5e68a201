//! What an operator of the service relies on (docs/operations.md): the Prometheus endpoint
//! whose counters move, one JSON log line per RPC, no person data in either, and a standard
//! gRPC client (Python's grpcio, installed by scripts/grpc-tools.sh) asking reflection v1 and
//! v1alpha and health over mutual TLS, and health on the plaintext loopback port.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::Path;
use std::process::Command;

use onshi_e2e::{grpc, Service, World};
use onshi_proto::v1 as pb;

fn world() -> &'static World {
    World::shared(env!("CARGO_TARGET_TMPDIR"), "operations-world", 6)
}

/// The address the service printed for one of its listeners (`confirm-service: <what> on
/// <address>`), asked for on port 0.
fn printed_address(printed: &[String], what: &str) -> String {
    let prefix = format!("confirm-service: {what} on ");
    printed
        .iter()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} line in {printed:?}"))
        .trim_start_matches("http://")
        .trim_end_matches("/metrics")
        .to_owned()
}

fn scrape(addr: &str) -> String {
    let answer = onshi_e2e::http::request(addr, "GET", "/metrics", &[], None).unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.body
}

/// The sum of a counter's samples whose labels contain `label`.
fn counter(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn metrics_and_logs_move_without_person_data_and_a_standard_client_reflects_and_checks_health() {
    let world = world();
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("service.log");
    let (service, printed) = Service::start_with_options(
        &world.dir.join("service.toml"),
        &log,
        &[
            "--metrics-listen",
            "127.0.0.1:0",
            "--health-listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ],
    )
    .unwrap();
    // Both listeners asked for port 0 and said which port they got.
    let metrics = printed_address(&printed, "metrics");
    let health = printed_address(&printed, "health");
    let rpc = "rpc=\"onshi.v1.Confirmation/ConfirmByNumbers\"";
    let before = counter(&scrape(&metrics), "onshi_rpc_requests_total", rpc);

    // A look-up with numbers and a birth date that must appear in no label and no log line.
    let (number, birth_date) = ("7654321", "19791231");
    let terminal = world.terminal("in-operation", 0).unwrap();
    let terminal = terminal.parent().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut c = grpc::client(world, &service.url(), terminal).await.unwrap();
        for _ in 0..2 {
            let answer = c
                .confirm_by_numbers(pb::ConfirmByNumbersRequest {
                    query: Some(pb::NumbersQuery {
                        insurer_number: "06139981".into(),
                        symbol: "OPS".into(),
                        number: number.into(),
                        branch: "00".into(),
                        birth_date: birth_date.into(),
                        ..Default::default()
                    }),
                    claimed_visit_time: None,
                })
                .await;
            // Answered or refused, the RPC was counted.
            let _ = answer;
        }
    });

    let text = scrape(&metrics);
    let after = counter(&text, "onshi_rpc_requests_total", rpc);
    assert_eq!(after - before, 2.0, "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("onshi_rpc_duration_seconds") && l.contains(rpc)),
        "no latency for the RPC:\n{text}"
    );
    for secret in [number, birth_date] {
        assert!(!text.contains(secret), "{secret} in the metrics:\n{text}");
    }

    // The standard client: reflection v1 and v1alpha and health over mutual TLS, and health
    // on the plaintext loopback port.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let tools = Command::new(root.join("scripts/grpc-tools.sh"))
        .output()
        .unwrap();
    assert!(
        tools.status.success(),
        "scripts/grpc-tools.sh: {}",
        String::from_utf8_lossy(&tools.stderr)
    );
    let pythonpath = String::from_utf8(tools.stdout).unwrap().trim().to_owned();
    let check = Command::new("python3")
        .arg(root.join("scripts/grpc-check.py"))
        .arg(&service.addr)
        .arg(world.dir.join("network-ca/ca.pem"))
        .arg(terminal.join("client.pem"))
        .arg(terminal.join("client.key.pem"))
        .arg(&health)
        .env("PYTHONPATH", &pythonpath)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    for version in ["v1", "v1alpha"] {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{version} services:")))
            .unwrap_or_else(|| panic!("no {version} line in {out}"));
        assert!(line.contains("onshi.v1.Confirmation"), "{line}");
        assert!(line.contains("grpc.health.v1.Health"), "{line}");
    }
    assert!(out.contains("\nhealth: SERVING"), "{out}");
    assert!(out.contains("plain health: SERVING"), "{out}");

    // The rest of the counters: a quota refusal (a fourth birth date that matches nobody for
    // the same valid numbers),
    // a batch through the queue, a TLS handshake refused, the caches and the group commits.
    let more_dates = ["19791230", "19791229", "19791228", "19791227"];
    let refused = runtime.block_on(async {
        let mut c = grpc::client(world, &service.url(), terminal).await.unwrap();
        let mut last = None;
        for date in more_dates {
            last = Some(
                c.confirm_by_numbers(pb::ConfirmByNumbersRequest {
                    query: Some(pb::NumbersQuery {
                        insurer_number: "06139984".into(),
                        symbol: "OPS".into(),
                        number: number.into(),
                        branch: "00".into(),
                        birth_date: date.into(),
                        ..Default::default()
                    }),
                    claimed_visit_time: None,
                })
                .await,
            );
        }
        c.submit_batch(pb::SubmitBatchRequest {
            queries: vec![pb::NumbersQuery {
                insurer_number: "06139984".into(),
                symbol: "OPS".into(),
                number: "1".into(),
                branch: "00".into(),
                birth_date: "19800101".into(),
                ..Default::default()
            }],
        })
        .await
        .unwrap();
        last.unwrap().unwrap_err()
    });
    assert_eq!(
        onshi_proto::status::result_code_of(&refused),
        Some(pb::ResultCode::TooManyBirthDates),
        "{refused:?}"
    );
    {
        use std::io::{Read as _, Write as _};
        let mut raw = std::net::TcpStream::connect(&service.addr).unwrap();
        raw.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        raw.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let _ = raw.read_to_end(&mut Vec::new());
    }
    let text = scrape(&metrics);
    let has = |name: &str, label: &str| counter(&text, name, label) > 0.0;
    assert!(
        has("onshi_refusals_total", "reason=\"too-many-birth-dates\""),
        "{text}"
    );
    assert!(
        has("onshi_tls_handshake_failures_total", "reason=\"refused\""),
        "{text}"
    );
    // Two clients: the terminal's certificate missed the cache once, then hit.
    assert!(
        has(
            "onshi_cache_lookups_total",
            "cache=\"terminal\",result=\"miss\""
        ),
        "{text}"
    );
    assert!(
        has(
            "onshi_cache_lookups_total",
            "cache=\"terminal\",result=\"hit\""
        ),
        "{text}"
    );
    let sample = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
    };
    // Every RPC above was audited through the group commit.
    assert!(sample("onshi_group_commit_writes_count") >= 6.0, "{text}");
    assert!(sample("onshi_group_commit_seconds_count") >= 1.0, "{text}");
    // The gauge counted the clients' connections; once they are gone (with the runtime that
    // drove them) the server notices.
    assert!(text.contains("onshi_open_connections "), "{text}");
    drop(runtime);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let now = scrape(&metrics);
        let open = now
            .lines()
            .find_map(|l| l.strip_prefix("onshi_open_connections "))
            .and_then(|v| v.parse::<f64>().ok());
        if open == Some(0.0) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{now}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with("onshi_batch_queue_jobs{state=\"pending\"}")),
        "{text}"
    );
    for secret in [number, birth_date].iter().chain(&more_dates) {
        assert!(!text.contains(secret), "{secret} in the metrics:\n{text}");
    }

    drop(service);
    // One JSON line per RPC, with its name, code and latency; no person data anywhere.
    let logged = std::fs::read_to_string(&log).unwrap();
    let rpc_lines: Vec<serde_json::Value> = logged
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "rpc")
        .collect();
    let numbers_lines = rpc_lines
        .iter()
        .filter(|v| v["fields"]["rpc"] == "onshi.v1.Confirmation/ConfirmByNumbers")
        .count();
    assert_eq!(numbers_lines, 6, "{logged}");
    assert!(rpc_lines
        .iter()
        .all(|v| v["fields"]["code"].is_string() && v["fields"]["latency_ms"].is_number()));
    // Each confirmation's line names the terminal and the confirmation id (of its audit
    // record), the refused one's too.
    let terminal_name = terminal.file_name().unwrap().to_str().unwrap();
    for line in rpc_lines
        .iter()
        .filter(|v| v["fields"]["rpc"] == "onshi.v1.Confirmation/ConfirmByNumbers")
    {
        assert_eq!(line["fields"]["terminal"], terminal_name, "{line}");
        let id = line["fields"]["confirmation_id"].as_str().unwrap();
        assert!(id.len() > 8 && id != "-", "{line}");
        // The audited outcome is on the same line: one line per call at INFO.
        let result = line["fields"]["result"].as_str().unwrap();
        assert!(result.starts_with("RESULT_CODE_"), "{line}");
        let reason = line["fields"]["reason"].as_str().unwrap();
        assert_eq!(
            reason == "-",
            result == "RESULT_CODE_OK"
                || result == "RESULT_CODE_NO_QUALIFICATION"
                || result == "RESULT_CODE_MULTIPLE_QUALIFICATIONS",
            "{line}"
        );
    }
    assert!(
        !logged.lines().any(|l| l.contains("\"level\":\"INFO\"")
            && (l.contains("\"message\":\"answered\"") || l.contains("\"message\":\"refused\""))),
        "a second INFO line per call:\n{logged}"
    );
    // The refused handshake: a line at WARN with the peer's address.
    assert!(
        logged.lines().any(|l| l.contains("TLS handshake refused")
            && l.contains("\"level\":\"WARN\"")
            && l.contains("127.0.0.1")),
        "{logged}"
    );
    for secret in [number, birth_date].iter().chain(&more_dates) {
        assert!(!logged.contains(secret), "{secret} in the log:\n{logged}");
    }
}

/// The plaintext health port answers anyone who reaches it: the service refuses to open it on
/// an address other than loopback, and says why, before it serves anything.
#[test]
fn the_plaintext_health_port_is_refused_off_loopback() {
    let world = world();
    let mut cmd = Command::new(onshi_e2e::bin("confirm-service").unwrap());
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--health-listen",
        "0.0.0.0:0",
    ])
    .arg("--config")
    .arg(world.dir.join("service.toml"));
    let out = onshi_e2e::run_bounded(cmd, std::time::Duration::from_secs(30)).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stdout}{stderr}");
    assert!(stderr.contains("not a loopback address"), "{stderr}");
    assert!(!stdout.contains("listening on"), "{stdout}");
}

#[test]
fn a_usage_error_exits_2_in_every_binary() {
    for name in [
        "confirm-service",
        "reader-agent",
        "testbed",
        "loadgen",
        "virtual-card",
    ] {
        let out = Command::new(onshi_e2e::bin(name).unwrap())
            .arg("--no-such-option")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}");
        assert!(!out.stderr.is_empty(), "{name} said nothing");
    }
}

#[test]
fn batch_answers_are_pure_csv_on_stdout_and_wait_0_fetches_once() {
    let world = world();
    let service = Service::start(&world.dir.join("service.toml")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("r.csv");
    // A quoted field with a comma is read as one field.
    std::fs::write(
        &csv,
        "insurer_number,symbol,number,branch,birth_date\n06139981,\"O,PS\",404,00,19800101\n",
    )
    .unwrap();
    let config = world.terminal("in-operation", 0).unwrap();
    let agent = |args: &[&str]| {
        Command::new(onshi_e2e::bin("reader-agent").unwrap())
            .arg("batch")
            .arg("--config")
            .arg(&config)
            .args(["--service", &service.url()])
            .args(args)
            .output()
            .unwrap()
    };
    let out = agent(&["--csv", csv.to_str().unwrap(), "--wait", "30"]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        2,
        "stdout is the header and one answer only:\n{stdout}"
    );
    assert!(lines[0].starts_with("ordinal,insurer_number,"), "{stdout}");
    assert!(lines[1].starts_with("0,06139981,\"O,PS\",404,"), "{stdout}");
    let reception = stderr
        .lines()
        .find_map(|l| l.strip_prefix("受付番号 reception number: "))
        .and_then(|l| l.split(' ').next())
        .unwrap_or_else(|| panic!("no reception number on stderr:\n{stderr}"))
        .to_owned();
    // `--wait 0` with a reception number: fetched at once, no waiting.
    let started = std::time::Instant::now();
    let again = agent(&["--reception", &reception, "--wait", "0"]);
    assert_eq!(
        again.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(String::from_utf8(again.stdout).unwrap(), stdout);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

/// `--listen` takes a host name as well as an address: `localhost:0` binds a free loopback
/// port and the service prints the address it got.
#[test]
fn serve_listens_on_localhost_port_0_and_prints_the_address() {
    let world = world();
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("service.log");
    let config = world.dir.join("service.toml");
    let mut cmd = Command::new(onshi_e2e::bin("confirm-service").unwrap());
    cmd.args(["serve", "--listen", "localhost:0", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap());
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = {
        use std::io::BufRead as _;
        let mut lines = std::io::BufReader::new(stdout).lines();
        lines
            .find_map(|l| {
                l.ok()?
                    .strip_prefix("confirm-service: listening on ")
                    .map(str::to_owned)
            })
            .unwrap_or_default()
    };
    let _ = child.kill();
    let _ = child.wait();
    let addr: std::net::SocketAddr = line.parse().unwrap_or_else(|_| {
        panic!(
            "{line:?}; {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    });
    assert!(addr.ip().is_loopback(), "{addr}");
    assert_ne!(addr.port(), 0);
    // A name that is not HOST:PORT is a usage error.
    let out = Command::new(onshi_e2e::bin("confirm-service").unwrap())
        .args(["serve", "--listen", "localhost", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("HOST:PORT"));
}

/// Every binary says in its `--help` that `RUST_LOG` filters its log lines.
#[test]
fn every_help_documents_rust_log() {
    for name in [
        "confirm-service",
        "reader-agent",
        "testbed",
        "loadgen",
        "virtual-card",
    ] {
        let out = Command::new(onshi_e2e::bin(name).unwrap())
            .arg("--help")
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}");
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("RUST_LOG"), "{name} --help:\n{help}");
    }
}
