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

fn run() -> Result<ExitCode, String> {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("demo-world"));
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
    let service = Service::start(&dir.join("service.toml"))?;
    eprintln!("    listening on {}", service.addr);
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
