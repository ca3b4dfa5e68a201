//! The README's main job: build a world, start a private pcscd with the vpcd driver, the
//! confirmation service and a virtual card, and run one PIN-mode confirmation with the reader
//! agent, printing the staff view. Everything it starts is stopped when it ends.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use onshi_e2e::{run_agent_raw, Card, Pcscd, Service, World};

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("onshi-demo: {e}");
            ExitCode::from(1)
        }
    }
}

const USAGE: &str = "usage: onshi-demo [WORLD-DIR]   (default demo-world; rebuilt on every run)

Builds a synthetic world in WORLD-DIR, starts a private pcscd with the vpcd driver (root is
needed for its mount namespace), the confirmation service and a virtual card, runs one PIN-mode
confirmation with the reader agent and prints the eligibility result. Everything it starts is
stopped when it ends. Exit codes: 0 confirmed, 1 anything else.";

fn run() -> Result<ExitCode, String> {
    let mut args = std::env::args_os().skip(1);
    let dir = match (args.next(), args.next()) {
        (Some(a), None) if a == "-h" || a == "--help" => {
            println!("{USAGE}");
            return Ok(ExitCode::SUCCESS);
        }
        (Some(a), None) if a.to_string_lossy().starts_with('-') => {
            return Err(format!(
                "unknown option {} (usage: onshi-demo [WORLD-DIR]; see --help)",
                a.to_string_lossy()
            ));
        }
        (Some(a), None) => PathBuf::from(a),
        (None, _) => PathBuf::from("demo-world"),
        (Some(_), Some(_)) => {
            return Err("too many arguments (usage: onshi-demo [WORLD-DIR]; see --help)".into())
        }
    };
    let started = Instant::now();
    eprintln!("==> building the synthetic world in {}", dir.display());
    let world = World::build(&dir, 8)?;
    let card = world.card("valid")?;
    let profile = dir.join(card["profile"].as_str().ok_or("card without profile")?);
    let pin = card["pin"].as_str().ok_or("card without pin")?.to_owned();
    let terminal = world.terminal("in-operation", 0)?;

    eprintln!("==> starting a private pcscd with the vpcd driver");
    let pcscd = Pcscd::start()?;
    eprintln!(
        "    pcscd socket {}, vpcd {}",
        pcscd.socket().display(),
        pcscd.vpcd()
    );
    eprintln!("==> starting the confirmation service (mutual TLS)");
    // The demo world runs with metrics on (docs/operations.md), on a port the system picks.
    let log = dir.join("service.log");
    let (service, printed) = Service::start_with_options(
        &dir.join("service.toml"),
        &log,
        &["--metrics-listen", "127.0.0.1:0"],
    )?;
    let metrics = printed
        .iter()
        .find_map(|l| l.strip_prefix("confirm-service: metrics on http://"))
        .and_then(|l| l.strip_suffix("/metrics"))
        .ok_or("the service did not say where its metrics are")?
        .to_owned();
    eprintln!("    listening on {}", service.addr);
    eprintln!(
        "    metrics on http://{metrics}/metrics, log lines in {}",
        log.display()
    );
    eprintln!(
        "==> attaching virtual card {} to pcscd",
        card["name"].as_str().unwrap_or("?")
    );
    let _card = Card::attach(&profile, &pcscd.vpcd(), &[])?;
    eprintln!(
        "==> reader-agent confirm (terminal {}, PIN typed by the demo on stdin)",
        terminal.display()
    );
    let t = Instant::now();
    let out = run_agent_raw(
        &pcscd,
        &terminal,
        &service,
        &format!("{pin}\n"),
        &["--consent", "medication"],
    )?;
    let confirm_time = t.elapsed();
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    print!("{}", String::from_utf8_lossy(&out.stdout));
    eprintln!(
        "==> reader-agent ran {:.0} ms (process start, TLS handshake, pcscd noticing the card, and the confirmation timed above); whole demo {:.1} s",
        confirm_time.as_secs_f64() * 1000.0,
        started.elapsed().as_secs_f64()
    );
    Ok(if out.status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
