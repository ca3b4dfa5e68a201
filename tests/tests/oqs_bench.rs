//! Benchmark of the file interface (ignored by default; docs/performance.md, "Reception
//! files"): N single requests one at a time, each timed from the rename into `req/` to the
//! answer's appearance in `res/` (seen through inotify), p50 and p99; then one bulk of 10,000
//! queries end to end (submit file renamed in → last fetch answered).
//!
//! ```sh
//! cargo build --release --workspace --bins
//! cargo test --release -p onshi-e2e --test oqs_bench -- --ignored --nocapture
//! ```
//! `ONSHI_OQS_BENCH_N` sets N (1,000 by default).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::time::Duration;

use onshi_e2e::oqs::{self, check_answer, value, Arrivals, OqsAgent, Search};
use onshi_e2e::{Service, World};

fn world() -> &'static World {
    World::shared(env!("CARGO_TARGET_TMPDIR"), "oqs-bench-world", 8)
}

fn example(case: &str) -> Search {
    let e = world().manifest["examples"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["case"] == case)
        .unwrap()
        .clone();
    Search::from_example(&e, true)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[test]
#[ignore = "a benchmark: run with --ignored --nocapture (release build)"]
fn single_requests_one_at_a_time_and_a_bulk_of_ten_thousand() {
    let n: usize = std::env::var("ONSHI_OQS_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let config = world()
        .service_config_with(
            "service-oqs-bench.toml",
            "[rate_limit]\nper_second = 0\n[quotas]\nlookups_per_day = 0\nbirth_dates_per_numbers = 0\n",
        )
        .unwrap();
    let svc = Service::start(&config).unwrap();
    let agent_toml = world()
        .in_operation_terminal_dir("1340123452-T01")
        .unwrap()
        .join("agent.toml");
    let dir = tempfile::tempdir().unwrap();
    let _agent = OqsAgent::start(&agent_toml, dir.path(), &svc.url(), &[]).unwrap();
    let mut arrivals = Arrivals::watch(&dir.path().join("res")).unwrap();
    let search = example("validity-1");
    let header = [
        ("MedicalInstitutionCode", "1340123452"),
        ("ArbitraryFileIdentifier", "bench"),
    ];
    let mut times = Vec::with_capacity(n);
    for i in 0..n + 20 {
        let mut s = search.clone();
        s.arbitrary_identifier = format!("{i}");
        let bytes = oqs::request(&header, &s.xml(), true);
        let name = format!("OQSsiquc01req_{i:06}.xml");
        let sent = oqs::drop_request(dir.path(), &name, &bytes).unwrap();
        let (answer, seen) = arrivals
            .wait(&oqs::answer_name(&name), Duration::from_secs(30))
            .unwrap();
        if i < 20 {
            continue; // warm-up: connection, caches
        }
        times.push(seen.saturating_duration_since(sent));
        if i == 20 {
            let leaves = check_answer(&answer).unwrap();
            assert_eq!(
                value(&leaves, "MessageBody/QualificationValidity"),
                Some("1")
            );
        }
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "oqs bench: {n} single requests one at a time, rename into req/ → answer in res/: \
         p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(percentile(&times, 0.50)),
        ms(percentile(&times, 0.90)),
        ms(percentile(&times, 0.99)),
        ms(*times.last().unwrap())
    );

    // A bulk of 10,000 end to end.
    let cases = [
        "validity-1",
        "validity-2",
        "validity-3",
        "validity-4",
        "validity-5",
    ];
    let mut body = String::new();
    for i in 0..10_000usize {
        let mut s = example(cases[i % cases.len()]);
        s.arbitrary_identifier = format!("{i:05}");
        body.push_str(&s.xml());
    }
    let submit = oqs::request(&header, &body, true);
    let started = oqs::drop_request(dir.path(), "OQSmuquc01req_bench.xml", &submit).unwrap();
    let (answer, submitted) = arrivals
        .wait("OQSmuquc01res_bench.xml", Duration::from_secs(60))
        .unwrap();
    let leaves = check_answer(&answer).unwrap();
    let reception = value(&leaves, "MessageBody/ReceptionNumber")
        .unwrap()
        .to_owned();
    let fetch = oqs::request(
        &header,
        &format!("<ReceptionNumber>{reception}</ReceptionNumber>"),
        true,
    );
    let mut polls = 0;
    let done = loop {
        polls += 1;
        let name = format!("OQSmuquc02req_bench_{polls}.xml");
        oqs::drop_request(dir.path(), &name, &fetch).unwrap();
        let (answer, seen) = arrivals
            .wait(&oqs::answer_name(&name), Duration::from_secs(60))
            .unwrap();
        let leaves = check_answer(&answer).unwrap();
        if value(&leaves, "MessageHeader/SegmentOfResult") == Some("1") {
            assert_eq!(
                value(&leaves, "MessageHeader/NumberOfProcessingResult"),
                Some("10000")
            );
            break seen;
        }
        assert!(started.elapsed() < Duration::from_secs(600));
        std::thread::sleep(Duration::from_millis(200));
    };
    println!(
        "oqs bench: bulk of 10,000: submit answered in {:.0} ms, all results in res/ after {:.1} s ({polls} fetches, 200 ms apart)",
        ms(submitted.saturating_duration_since(started)),
        done.saturating_duration_since(started).as_secs_f64()
    );
}
