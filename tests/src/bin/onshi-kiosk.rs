//! The kiosk for a person at a browser: builds a world, starts a private pcscd with a
//! virtual-card rack, the confirmation service and `reader-agent kiosk`, then lets you place
//! and pull cards by typing commands. Everything it starts is stopped when it ends.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use onshi_e2e::kiosk::{KioskRig, STAFF_ID};
use onshi_e2e::World;

const USAGE: &str = "usage: onshi-kiosk [--listen ADDR] [--staff-listen ADDR] [WORLD-DIR]
       (defaults 127.0.0.1:8080, 127.0.0.1:8081, kiosk-world)

Builds a synthetic world in WORLD-DIR (rebuilt on every run), starts a private pcscd with the
vpcd driver (root is needed for its mount namespace), a virtual-card rack, the confirmation
service and the kiosk, and prints the kiosk's addresses, the staff member's log-in (made
for this run, with a fresh password) and where the API token is. Then type, one per line:

  insert KIND   place a card: valid, unregistered, lost, multiple, revoked, expired
  remove        pull the card out
  cards         list the cards and their PINs
  quit          stop everything (so does end of input or Ctrl-C)

A card keeps its PIN and face-failure counts for the whole run.";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("onshi-kiosk: {e}");
            ExitCode::from(1)
        }
    }
}

fn run() -> Result<(), String> {
    let mut listen = "127.0.0.1:8080".to_owned();
    let mut staff_listen = "127.0.0.1:8081".to_owned();
    let mut dir = PathBuf::from("kiosk-world");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            "--listen" => listen = args.next().ok_or("--listen needs an address")?,
            "--staff-listen" => {
                staff_listen = args.next().ok_or("--staff-listen needs an address")?
            }
            other if other.starts_with('-') => {
                return Err(format!("unknown option {other} (see --help)"))
            }
            other => dir = PathBuf::from(other),
        }
    }
    eprintln!("==> building the synthetic world in {}", dir.display());
    let world = World::build(&dir, 8)?;
    let cards_dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    eprintln!("==> starting pcscd, the card rack, the service and the kiosk");
    let rig = KioskRig::start(
        &dir.join("service.toml"),
        &world.terminal("in-operation", 0)?,
        &["--listen", &listen, "--staff-listen", &staff_listen],
    )?;
    println!();
    println!("  the patient's screen  {}", rig.launch_url());
    println!("  the staff's view      {}", rig.staff_url("/"));
    println!(
        "  staff log in as       {STAFF_ID}, password {} (made for this run; add others with",
        rig.staff_password
    );
    println!(
        "                        reader-agent staff add --state-dir {} --staff-id ID)",
        rig.state_path().display()
    );
    println!(
        "  the API's token       {} (send it as X-Onshi-Token, docs/kiosk.md)",
        rig.state_path().join("kiosk-token").display()
    );
    println!();
    print_cards(&world)?;
    println!("type `insert valid`, `remove`, `cards` or `quit`:");
    let mut placed: Option<String> = None;
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| e.to_string())?;
        let words: Vec<&str> = line.split_whitespace().collect();
        let result = match words.as_slice() {
            [] => Ok(()),
            ["quit"] | ["exit"] => break,
            ["cards"] => print_cards(&world),
            ["remove"] => rig.remove().map(|()| placed = None),
            ["insert", kind] => {
                if placed.is_some() {
                    Err("a card is already on the reader: `remove` it first".into())
                } else {
                    // A private copy per kind, made once: the card's counters persist.
                    let copy = cards_dir.path().join(format!("{kind}.json"));
                    let made = if copy.exists() {
                        Ok(copy.clone())
                    } else {
                        world
                            .private_card(kind, cards_dir.path())
                            .and_then(|(p, _)| {
                                std::fs::rename(&p, &copy).map_err(|e| e.to_string())?;
                                Ok(copy.clone())
                            })
                    };
                    made.and_then(|p| rig.insert(&p))
                        .map(|()| placed = Some((*kind).to_owned()))
                }
            }
            _ => Err(format!("unknown command {line:?}")),
        };
        match result {
            Ok(()) if !words.is_empty() => println!("ok"),
            Ok(()) => {}
            Err(e) => println!("error: {e}"),
        }
    }
    eprintln!("==> stopping");
    Ok(())
}

fn print_cards(world: &World) -> Result<(), String> {
    let cards = world.manifest["cards"]
        .as_array()
        .ok_or("world.json lists no cards")?;
    println!("cards (kind, PIN):");
    for c in cards {
        println!(
            "  {:<13} {}",
            c["kind"].as_str().unwrap_or("?"),
            c["pin"].as_str().unwrap_or("?")
        );
    }
    Ok(())
}
