//! The harness at tiny scale, so it cannot rot: a small world, the real service started by
//! `loadgen run --start-service`, a closed loop of about two seconds with every kind of invalid
//! request, the reference in the same run, then an open loop. Needs the workspace's binaries
//! (`cargo build --workspace --bins`), like the end-to-end tests.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use onshi_testbed::{build_world, WorldOptions};

fn world() -> &'static Path {
    static WORLD: OnceLock<PathBuf> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("loadgen-tiny-world");
        let mut opts = WorldOptions::new(&dir, time::OffsetDateTime::now_utc());
        opts.cards = 8;
        opts.persons = 40;
        opts.force = true;
        opts.progress = false;
        build_world(&opts).expect("build the tiny world");
        dir
    })
}

/// Runs loadgen with a hard time limit; the child is killed (by pid) if it overruns.
fn loadgen(args: &[&str], limit: Duration) -> Output {
    loadgen_in(Path::new("."), args, limit)
}

/// `loadgen` started in the directory `cwd`.
fn loadgen_in(cwd: &Path, args: &[&str], limit: Duration) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .current_dir(cwd)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start loadgen");
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().expect("poll loadgen").is_some() {
            return child.wait_with_output().expect("loadgen output");
        }
        if Instant::now() > deadline {
            if let Some(pid) = i32::try_from(child.id())
                .ok()
                .and_then(rustix::process::Pid::from_raw)
            {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            std::thread::sleep(Duration::from_secs(3));
            let _ = child.kill();
            let out = child.wait_with_output().expect("loadgen output");
            panic!(
                "loadgen ran past {limit:?}:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn tmp(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name)
}

/// A small world of the test's own (6 cards, 10 persons), for a test that changes its store or
/// configuration, or counts its run folders.
fn own_world(name: &str) -> PathBuf {
    let dir = tmp(name);
    let mut opts = WorldOptions::new(&dir, time::OffsetDateTime::now_utc());
    opts.cards = 6;
    opts.persons = 10;
    opts.force = true;
    opts.progress = false;
    build_world(&opts).expect("build the world");
    dir
}

/// Asserts that loadgen exited 0, saying what it printed otherwise; returns its stdout.
fn succeeded(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A child's output stream, line by line as it comes, read on a thread.
fn lines_of(stream: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stream)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    rx
}

#[test]
fn closed_loop_with_invalid_requests_and_the_reference() {
    let world = world().to_str().unwrap().to_owned();
    let json = tmp("tiny-closed.json");
    let plot = tmp("tiny-closed.svg");
    let hgrm = tmp("tiny-closed");
    let hgrm_files = [
        tmp("tiny-closed-service.hgrm"),
        tmp("tiny-closed-reference.hgrm"),
    ];
    for f in [&json, &plot].into_iter().chain(&hgrm_files) {
        let _ = std::fs::remove_file(f);
    }
    let out = loadgen(
        &[
            "run",
            "--world",
            &world,
            "--start-service",
            // More terminals than the world has: four are minted and registered.
            "--terminals",
            "4",
            "--streams",
            "2",
            "--duration",
            "2",
            "--prepare",
            "300",
            "--mix",
            "pin=80,revoked=4,expired=4,unregistered=4,bad-signature=4,replay=4",
            "--reference",
            // Service, reference, service, reference: one second each.
            "--rounds",
            "2",
            "--quiet",
            "--json",
            json.to_str().unwrap(),
            "--plot",
            plot.to_str().unwrap(),
            "--hgrm",
            hgrm.to_str().unwrap(),
        ],
        Duration::from_secs(180),
    );
    let stdout = succeeded(&out);
    assert!(
        stdout.contains("service / reference throughput") && stdout.contains("docs/performance.md"),
        "{stdout}"
    );
    assert!(stdout.contains(" p95 "), "{stdout}");

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["format"], "onshi-loadgen-report/2");
    for t in report["targets"].as_array().unwrap() {
        assert_eq!(
            t["harness_faults"].as_array().map(Vec::len),
            Some(0),
            "{t:#}"
        );
        // Only complete seconds: at most one a round for these one-second windows.
        let seconds = t["seconds"].as_array().unwrap();
        assert!(seconds.len() <= 2, "{t:#}");
        for s in seconds {
            assert!(
                s["completed"].as_u64().unwrap() > 0,
                "an empty measured second: {t:#}"
            );
        }
    }
    for f in &hgrm_files {
        let text = std::fs::read_to_string(f).unwrap();
        assert!(
            text.trim_start().starts_with("Value") && text.contains("#[Max"),
            "{}: {text}",
            f.display()
        );
    }
    assert_eq!(report["setup"]["terminal_identities"], "minted");
    assert_eq!(report["setup"]["rounds"], 2);
    let service = &report["targets"][0];
    assert_eq!(service["target"], "service");
    assert_eq!(service["unexpected_errors"], 0, "{service:#}");
    assert!(service["requests"].as_u64().unwrap() > 0);
    assert!(service["throughput_per_s"].as_f64().unwrap() > 0.0);
    let l = &service["latency"];
    let (p50, p99, max) = (
        l["p50_us"].as_u64().unwrap(),
        l["p99_us"].as_u64().unwrap(),
        l["max_us"].as_u64().unwrap(),
    );
    assert!(0 < p50 && p50 <= p99 && p99 <= max, "{l}");
    for key in ["p90_us", "p95_us", "p999_us", "mean_us", "count"] {
        assert!(l[key].is_number(), "latency.{key} missing: {l}");
    }
    let by_kind = &service["latency_by_kind"];
    for kind in [
        "pin",
        "revoked",
        "expired",
        "unregistered",
        "bad-signature",
        "replay",
    ] {
        assert_eq!(
            by_kind[kind]["count"].as_u64(),
            service["requests_by_kind"][kind].as_u64(),
            "{kind}: {by_kind}"
        );
        assert!(by_kind[kind]["p95_us"].as_u64().unwrap() > 0, "{by_kind}");
    }
    assert!(service["server_cpu"]["us_per_request"].as_f64().unwrap() > 0.0);

    // Every invalid request failed with its own code, and only those did.
    let sent = &service["requests_by_kind"];
    let codes = &service["errors_by_code"];
    for (kind, code) in [
        ("revoked", "RESULT_CODE_CERTIFICATE_REVOKED"),
        ("expired", "RESULT_CODE_CERTIFICATE_EXPIRED"),
        ("unregistered", "RESULT_CODE_CARD_NOT_REGISTERED"),
        ("bad-signature", "RESULT_CODE_SIGNATURE_INVALID"),
        ("replay", "RESULT_CODE_CHALLENGE_REUSED"),
    ] {
        let n = sent[kind].as_u64().unwrap_or(0);
        assert!(n > 0, "no {kind} request was sent: {sent}");
        assert_eq!(codes[code]["expected"].as_u64(), Some(n), "{kind}: {codes}");
        assert_eq!(
            codes[code]["unexpected"].as_u64(),
            Some(0),
            "{kind}: {codes}"
        );
    }
    assert_eq!(
        service["confirmed"].as_u64(),
        sent["pin"].as_u64(),
        "every PIN-mode request confirmed"
    );

    let reference = &report["targets"][1];
    assert_eq!(reference["target"], "reference");
    assert_eq!(reference["unexpected_errors"], 0, "{reference:#}");
    assert_eq!(
        reference["errors_by_code"]["RESULT_CODE_SIGNATURE_INVALID"]["expected"].as_u64(),
        reference["requests_by_kind"]["bad-signature"].as_u64()
    );
    assert!(report["reference_ratio"].as_f64().unwrap() > 0.0);

    // The service ran defended (issue 21): its limits on, and its per-RPC log line written
    // for at least every measured request.
    let notes: Vec<&str> = report["notes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n.as_str())
        .collect();
    assert!(
        notes.iter().any(|n| n.contains("with its protections on")),
        "{notes:?}"
    );
    let logged = notes
        .iter()
        .find_map(|n| n.strip_prefix("the service wrote "))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse::<u64>().ok())
        .expect("a note counting the service's per-RPC log lines");
    assert!(
        logged >= service["requests"].as_u64().unwrap(),
        "{logged} log lines for {} requests",
        service["requests"]
    );

    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(svg.starts_with("<svg"), "{svg}");
    assert!(svg.contains("<polyline"));
    assert!(svg.trim_end().ends_with("</svg>"));
}

#[test]
fn open_loop_at_a_fixed_rate_with_the_worlds_own_terminals() {
    // The world given relative to the directory loadgen starts in.
    let world = world();
    let parent = world.parent().unwrap();
    let relative = world.file_name().unwrap().to_str().unwrap().to_owned();
    let json = tmp("tiny-open.json");
    let out = loadgen_in(
        parent,
        &[
            "run",
            "--world",
            &relative,
            "--start-service",
            "--terminals",
            "2",
            "--rate",
            "100",
            "--duration",
            "1.5",
            "--mix",
            "pin=9,bad-signature=1",
            // As runs before issue 21: no limits, log line or metrics.
            "--bare-service",
            "--quiet",
            "--json",
            json.to_str().unwrap(),
        ],
        Duration::from_secs(120),
    );
    succeeded(&out);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["setup"]["mode"], "open");
    assert_eq!(report["setup"]["terminal_identities"], "world");
    let service = &report["targets"][0];
    assert_eq!(service["unexpected_errors"], 0, "{service:#}");
    // 150 requests were scheduled; all of them were prepared and sent.
    assert_eq!(service["requests"].as_u64(), Some(150), "{service:#}");
    let notes = report["notes"].to_string();
    assert!(
        notes.contains("--bare-service: the service ran without"),
        "{notes}"
    );
    assert!(!notes.contains("per-RPC log lines during"), "{notes}");
}

#[test]
fn card_less_and_batch_kinds_against_the_service() {
    let world = world().to_str().unwrap().to_owned();
    let json = tmp("tiny-cardless.json");
    let _ = std::fs::remove_file(&json);
    let out = loadgen(
        &[
            "run",
            "--world",
            &world,
            "--start-service",
            "--terminals",
            "6",
            "--concurrency",
            "2",
            "--duration",
            "1.5",
            "--prepare",
            "400",
            "--mix",
            "cardless=6,bad-numbers=2,batch=2",
            "--batch-size",
            "5",
            "--quiet",
            "--json",
            json.to_str().unwrap(),
        ],
        Duration::from_secs(120),
    );
    succeeded(&out);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let service = &report["targets"][0];
    assert_eq!(service["unexpected_errors"], 0, "{service:#}");
    // Fewer workers than connections: the two workers take turns over all six connections,
    // so a window sends what was prepared for every connection before it ends; only the last
    // window's leftovers stay unsent.
    let unsent = service["prepared"].as_u64().unwrap() - service["requests"].as_u64().unwrap();
    assert!(
        unsent <= 400,
        "{unsent} prepared requests were never sent: {service:#}"
    );
    let sent = &service["requests_by_kind"];
    let n = |kind: &str| sent[kind].as_u64().unwrap_or(0);
    for kind in ["cardless", "bad-numbers", "batch"] {
        assert!(n(kind) > 0, "no {kind} request was sent: {sent}");
    }
    let codes = &service["errors_by_code"];
    assert_eq!(
        codes["RESULT_CODE_INVALID_INSURER_NUMBER"]["expected"].as_u64(),
        Some(n("bad-numbers")),
        "{codes}"
    );
    // Carried-out card-less confirmations and accepted submissions.
    assert_eq!(
        service["confirmed"].as_u64(),
        Some(n("cardless") + n("batch")),
        "{service:#}"
    );
}

#[test]
fn card_less_kinds_are_not_sent_to_the_reference() {
    let world = world().to_str().unwrap().to_owned();
    let out = loadgen(
        &[
            "run",
            "--world",
            &world,
            "--start-service",
            "--reference",
            "--mix",
            "pin=9,batch=1",
        ],
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--reference compares ConfirmByCard only") && err.contains("batch"),
        "{err}"
    );
}

#[test]
fn usage_mistakes_are_explained_before_any_load() {
    let world = world().to_str().unwrap().to_owned();
    let cases: [(&[&str], &[&str]); 4] = [
        (&[], &["--service https://HOST:PORT", "--start-service"]),
        (
            &["--service", "http://127.0.0.1:50443"],
            &["mutual TLS", "https://127.0.0.1:50443"],
        ),
        (
            &["--start-service", "--json", "/nonexistent-folder/r.json"],
            &["--json", "does not exist"],
        ),
        (
            &["--start-service", "--plot", "/"],
            &["--plot", "is a directory"],
        ),
    ];
    for (extra, wanted) in cases {
        let mut args = vec!["run", "--world", &world];
        args.extend_from_slice(extra);
        let started = Instant::now();
        let out = loadgen(&args, Duration::from_secs(60));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        for w in wanted {
            assert!(err.contains(w), "{args:?}: {w:?} not in {err}");
        }
        // Refused before preparing anything or starting a service.
        assert!(!err.contains("preparing"), "{args:?}: {err}");
        assert!(started.elapsed() < Duration::from_secs(30), "{args:?}");
    }
}

#[test]
fn an_unregistered_card_that_was_registered_since_is_refused_before_the_run() {
    use onshi_confirm_service::store::CardKey;
    let dir = own_world("loadgen-registered-world");
    // Register the holder of the world's unregistered card, as a kiosk would.
    let world = onshi_loadgen::world::World::load(&dir).unwrap();
    let card = world
        .cards_of(onshi_testbed::manifest::CardKind::Unregistered)
        .pop()
        .expect("an unregistered card");
    let config = onshi_confirm_service::config::Config::load(&dir.join("service.toml")).unwrap();
    let store = onshi_confirm_service::store::open(&config.store).unwrap();
    let person = store
        .person_for_card(&CardKey::from_der(&card.certificate).unwrap())
        .unwrap()
        .expect("the card's holder is in the store");
    store
        .register_for_insurance(&person, time::OffsetDateTime::now_utc())
        .unwrap();
    drop(store);

    let out = loadgen(
        &[
            "run",
            "--world",
            dir.to_str().unwrap(),
            "--start-service",
            "--mix",
            "pin=9,unregistered=1",
        ],
        Duration::from_secs(60),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&card.name) && err.contains("registered") && err.contains("--mix"),
        "{err}"
    );
    assert!(!err.contains("preparing"), "{err}");
}

/// SIGTERM during a long preparation stops it at once (it used to run the whole preparation,
/// minutes for a large `--prepare`, before the signal was looked at), stops the started
/// service and removes its run folder.
#[test]
fn a_signal_during_the_preparation_stops_the_run_promptly() {
    // A world of its own: the other tests' run folders would be counted in the shared one.
    let dir = own_world("loadgen-signal-world");
    let world = dir.to_str().unwrap().to_owned();
    let mut child = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "run",
            "--world",
            &world,
            "--start-service",
            "--terminals",
            "2",
            "--duration",
            "5",
            // Far more than the run could sign in the time this test waits.
            "--prepare",
            "400000",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start loadgen");
    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap();
    // Its progress lines, read as they come (the signal goes once the preparation has begun,
    // i.e. after loadgen installed its handler).
    let rx = lines_of(child.stderr.take().unwrap());
    let mut err = String::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                err.push_str(&line);
                err.push('\n');
                if line.contains("preparing") {
                    break;
                }
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("loadgen never began preparing: {err}");
            }
        }
    }
    let run_folders = || {
        std::fs::read_dir(&world)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".loadgen-run-"))
            .count()
    };
    assert_eq!(run_folders(), 1, "the started service's run folder: {err}");
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        child.try_wait().unwrap().is_none(),
        "loadgen ended before the signal: {err}"
    );
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let signalled = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if signalled.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("loadgen was still running 20 s after SIGTERM: {err}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // The rest of what it said, to the end of its output.
    err.extend(rx.iter().map(|l| l + "\n"));
    assert!(err.contains("interrupted"), "{status}: {err}");
    assert!(!err.contains(" req/s "), "nothing was measured, yet: {err}");
    assert_eq!(run_folders(), 0, "the run folder was left behind: {err}");
}

/// A service instance started by the test on a world's store, stopped (by pid) when dropped.
struct Instance {
    child: std::process::Child,
    url: String,
    log: PathBuf,
}

impl Instance {
    fn start(config: &Path, log: PathBuf) -> Instance {
        let service =
            PathBuf::from(env!("CARGO_BIN_EXE_loadgen")).with_file_name("confirm-service");
        let mut child = Command::new(service)
            .args([
                "serve",
                "--config",
                config.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start confirm-service (cargo build --workspace --bins)");
        let rx = lines_of(child.stdout.take().unwrap());
        let mut instance = Instance {
            child,
            url: String::new(),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            if let Some(addr) = line.strip_prefix("confirm-service: listening on ") {
                instance.url = format!("https://{addr}");
                return instance;
            }
        }
        panic!(
            "the service did not say where it listens: {}",
            std::fs::read_to_string(&instance.log).unwrap_or_default()
        );
    }

    /// ConfirmByCard calls in its per-RPC log lines.
    fn confirmations(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("ConfirmByCard"))
            .count()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(pid) = i32::try_from(self.child.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two instances sharing one store, each given with its own --service and --service-pid: the
/// virtual terminals are spread over both (each instance answers confirmations), the CPU time
/// of both is counted, and every answer is the expected one.
#[test]
fn several_instances_sharing_a_store_are_driven_together() {
    let dir = own_world("loadgen-instances-world");
    // As for any service driven by --service, its operator lifts the per-terminal rate limit.
    let config = dir.join("service.toml");
    let mut table: toml::Table = std::fs::read_to_string(&config).unwrap().parse().unwrap();
    let mut limit = toml::Table::new();
    limit.insert("per_second".into(), toml::Value::Float(0.0));
    table.insert("rate_limit".into(), toml::Value::Table(limit));
    std::fs::write(&config, toml::to_string(&table).unwrap()).unwrap();
    let a = Instance::start(&config, tmp("loadgen-instance-a.log"));
    let b = Instance::start(&config, tmp("loadgen-instance-b.log"));
    let json = tmp("loadgen-instances.json");
    let (pid_a, pid_b) = (a.child.id().to_string(), b.child.id().to_string());
    let out = loadgen(
        &[
            "run",
            "--world",
            dir.to_str().unwrap(),
            "--service",
            &a.url,
            "--service",
            &b.url,
            "--service-pid",
            &pid_a,
            "--service-pid",
            &pid_b,
            "--terminals",
            "4",
            "--duration",
            "2",
            "--prepare",
            "200",
            "--mix",
            "pin=9,revoked=1",
            "--quiet",
            "--json",
            json.to_str().unwrap(),
        ],
        Duration::from_secs(180),
    );
    let stdout = succeeded(&out);
    assert!(
        stdout.contains(&format!("pids {pid_a}, {pid_b}")),
        "{stdout}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let service = &report["targets"][0];
    assert_eq!(service["unexpected_errors"], 0, "{service}");
    assert_eq!(
        service["server_cpu"]["pids"],
        serde_json::json!([a.child.id(), b.child.id()])
    );
    // Each instance answered some of the confirmations (an RPC's log line is written before
    // its answer is sent).
    let (on_a, on_b) = (a.confirmations(), b.confirmations());
    assert!(
        on_a > 0 && on_b > 0,
        "confirmations on a: {on_a}, on b: {on_b}"
    );
}
