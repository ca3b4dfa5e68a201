//! `kiosk` and `oqs`: the two long-running services of the terminal.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::{load_config, shutdown_signal, two_thread_runtime};
use crate::CharsetArg;

pub fn run_kiosk(
    config: &std::path::Path,
    metrics_listen: Option<std::net::SocketAddr>,
    options: onshi_reader_agent::kiosk::KioskOptions,
) -> ExitCode {
    let config = match load_config(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let Some(runtime) = two_thread_runtime() else {
        return ExitCode::from(3);
    };
    runtime.block_on(async {
        if let Some(addr) = metrics_listen {
            match onshi_reader_agent::kiosk::metrics::serve(addr).await {
                Ok(local) => println!("kiosk: metrics on http://{local}/metrics"),
                Err(e) => {
                    eprintln!("reader-agent: {e}");
                    return ExitCode::from(3);
                }
            }
        }
        let ready = |l: &onshi_reader_agent::kiosk::Listening| {
            use std::io::Write as _;
            // The token itself is not printed (a log may be readable by others).
            println!(
                "kiosk: the patient's screen  http://{}/?token=TOKEN, TOKEN in {}",
                l.kiosk,
                l.token_file.display()
            );
            println!("kiosk: the staff's view      http://{}/ (log-in)", l.staff);
            if l.staff_accounts == 0 {
                println!(
                    "kiosk: no staff account yet: add one with \
                     `reader-agent staff add --state-dir DIR --staff-id ID`"
                );
            }
            println!(
                "kiosk: ready on {} staff {} (Ctrl-C to stop)",
                l.kiosk, l.staff
            );
            let _ = std::io::stdout().flush();
        };
        match onshi_reader_agent::kiosk::run(&config, options, ready, shutdown_signal()).await {
            Ok(()) => {
                eprintln!("kiosk: stopped");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("reader-agent: {e}");
                ExitCode::from(3)
            }
        }
    })
}

pub fn run_oqs(
    config: &std::path::Path,
    dir: PathBuf,
    service: Option<String>,
    charset: CharsetArg,
    settle_ms: u64,
) -> ExitCode {
    use onshi_reader_agent::oqs::{codec::Charset, serve};
    let config = match load_config(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let institution = config
        .terminal_name
        .as_deref()
        .and_then(|n| n.split('-').next())
        .unwrap_or("")
        .to_owned();
    let Some(runtime) = two_thread_runtime() else {
        return ExitCode::from(3);
    };
    runtime.block_on(async {
        // Inside the runtime: the lazy channel needs one.
        let client = match serve::Service::new(&config, service.as_deref()) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("reader-agent: {e}");
                return ExitCode::from(2);
            }
        };
        let options = serve::ServeOptions {
            dir,
            settle: Duration::from_millis(settle_ms),
            default_charset: match charset {
                CharsetArg::ShiftJis => Charset::ShiftJis,
                CharsetArg::Utf8 => Charset::Utf8,
            },
            medical_institution_code: institution,
        };
        let log = |line: &str| {
            use std::io::Write as _;
            println!("{line}");
            let _ = std::io::stdout().flush();
        };
        match serve::run(client, options, shutdown_signal(), &log).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("reader-agent: {e}");
                ExitCode::from(3)
            }
        }
    })
}
