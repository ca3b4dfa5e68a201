//! `reader-agent`: the reception terminal's command line.
#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use onshi_proto::binding::ConsentBits;
use onshi_proto::v1::confirmation_client::ConfirmationClient;
use onshi_reader_agent::config::AgentConfig;
use onshi_reader_agent::confirm::{self, Action, ConfirmOptions, PinSource};
use onshi_reader_agent::desk::{self, ClinicalKind, Numbers};
use onshi_reader_agent::pcsc_card::Trace;
use onshi_reader_agent::pin_input::{StdinLines, TtyPrompt};
use onshi_reader_agent::report::{render_human, Outcome};
use tonic::transport::Channel;

/// Every allocation is wiped when it is freed: the PIN's and the staff password's request
/// buffers (and any copy a library made of them) leave nothing behind in freed memory
/// (docs/kiosk.md, "Where the PIN goes").
#[global_allocator]
static ALLOCATOR: zeroizing_alloc::ZeroAlloc<std::alloc::System> =
    zeroizing_alloc::ZeroAlloc(std::alloc::System);

#[derive(Debug, Parser)]
#[command(
    name = "reader-agent",
    version,
    about = "onshi's reception terminal: reads a My Number card through PC/SC and confirms the holder's insurance eligibility"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum CharsetArg {
    ShiftJis,
    Utf8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Consent {
    Medication,
    Checkup,
    Clinical,
    Surgery,
    None,
}

/// `--wait`: bounded, so that adding it to the current instant can never overflow.
fn wait_seconds() -> clap::builder::RangedU64ValueParser<u64> {
    clap::value_parser!(u64).range(0..=86_400)
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the kiosk: the face-recognition card reader's screens for the patient
    /// (http://LISTEN/) and, on its own port, the staff's view behind a log-in
    /// (http://STAFF-LISTEN/), driven by real PC/SC card events, with a JSON API for scripts
    /// (docs/kiosk.md). Both listen on loopback only. Scripts send the token in
    /// STATE-DIR/kiosk-token as X-Onshi-Token. Runs until Ctrl-C or SIGTERM.
    Kiosk {
        /// The terminal configuration (a world's terminals/<name>/agent.toml); its
        /// device_key attests face and visual-check confirmations.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Override the configured service address, e.g. https://127.0.0.1:50443.
        #[arg(long, value_name = "URL")]
        service: Option<String>,
        /// Where to serve the patient's screens (a loopback address: the PIN pad posts the
        /// PIN here).
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Where to serve the staff's view (a loopback address, another port).
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8081")]
        staff_listen: std::net::SocketAddr,
        /// A staff log-in with no request for this long ends.
        #[arg(long, value_name = "SECONDS", default_value_t = 900, value_parser = clap::value_parser!(u64).range(10..=86_400))]
        staff_idle_timeout: u64,
        /// Use this reader only (default: whichever reader a card is placed in).
        #[arg(long, value_name = "NAME")]
        reader: Option<String>,
        /// Face-match threshold in permille (the matcher's score must reach it). The service
        /// refuses thresholds below its own minimum (800 by default).
        #[arg(long, value_name = "PERMILLE", default_value_t = onshi_reader_agent::face::DEFAULT_THRESHOLD_PERMILLE,
              value_parser = clap::value_parser!(u16).range(1..=1000))]
        face_threshold: u16,
        /// Folder for the kiosk's state (face-failure counts per card, the launch token, the
        /// staff accounts); created readable only by its owner.
        #[arg(long, value_name = "DIR", default_value = "kiosk-state")]
        state_dir: PathBuf,
        /// Bound on each card command, in seconds.
        #[arg(long, value_name = "SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
        card_timeout: u64,
        /// A session waiting this long for the patient ends (the card must be removed).
        #[arg(long, value_name = "SECONDS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(5..=3600))]
        idle_timeout: u64,
        /// The reception computer's folder (as `reader-agent oqs --dir`): each completed
        /// confirmation is written to DIR/face/ as OQSsiquc01res_face_<id>_<time>.xml.
        #[arg(long, value_name = "DIR")]
        oqs_dir: Option<PathBuf>,
    },
    /// Serve the reception computer's file interface (オンライン資格確認端末の連携フォルダ):
    /// reception software writes XmlMsg request files (OQSsiquc01req_*.xml one confirmation by
    /// numbers, OQSmuquc01req_/02req_ 一括照会 submit/fetch, YZKsiquc01req_ medication,
    /// TKKsiquc01req_ checkups) into DIR/req/; each is answered under the same name with
    /// req → res in DIR/res/, then moved to DIR/done/. Shift_JIS (CP932) by default, UTF-8 on
    /// request. Requests left by a crash are answered on start, none twice. One log line per
    /// answer. Layout and error codes: docs/oqs-files.md. Runs until Ctrl-C or SIGTERM.
    Oqs {
        /// The terminal configuration (a world's terminals/<name>/agent.toml).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The folder shared with the reception software (req/, res/, face/, done/ are
        /// created in it).
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Override the configured service address, e.g. https://127.0.0.1:50443.
        #[arg(long, value_name = "URL")]
        service: Option<String>,
        /// The answers' encoding when a request does not ask (CharacterCodeIdentifier).
        #[arg(long, value_enum, default_value = "shift-jis")]
        charset: CharsetArg,
        /// A request file its writer keeps open is read once unchanged this long
        /// (milliseconds); one closed or renamed into req/ is read at once.
        #[arg(long, value_name = "MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..=60_000))]
        settle_ms: u64,
    },
    /// Manage the staff accounts that may log in to the kiosk's staff view (kept in
    /// STATE-DIR/staff-accounts.json as argon2id hashes, readable only by the owner).
    Staff {
        #[command(subcommand)]
        command: StaffCommand,
    },
    /// Confirm eligibility with the card in the reader, in PIN mode. The PIN is asked on the
    /// terminal (no echo) or read from stdin with --pin-stdin, never from the command line.
    /// Exit codes: 0 confirmed, 1 refused (by the card or the service; see result_code),
    /// 2 usage or configuration error, 3 card, reader or connection failure.
    Confirm {
        /// The terminal configuration (a world's terminals/<name>/agent.toml).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Override the configured service address, e.g. https://127.0.0.1:50443.
        #[arg(long, value_name = "URL")]
        service: Option<String>,
        /// Use this reader (default: the first reader with a card).
        #[arg(long, value_name = "NAME")]
        reader: Option<String>,
        /// How long to wait for a card, in seconds (at most a day).
        #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = wait_seconds())]
        wait: u64,
        /// Read the PIN from standard input, one attempt per line.
        #[arg(long)]
        pin_stdin: bool,
        /// The patient's consents (comma-separated): medication, checkup, clinical, surgery,
        /// or none.
        #[arg(long, value_enum, value_delimiter = ',', default_value = "none")]
        consent: Vec<Consent>,
        /// Print the outcome as JSON (for scripts) instead of the staff view.
        #[arg(long)]
        json: bool,
        /// Record the APDU trace to this file ('-' for stderr); VERIFY data is always redacted.
        #[arg(long, value_name = "FILE")]
        trace: Option<String>,
        /// Give up on a card that takes longer than this (seconds) to answer a phase of the
        /// exchange: a mute card never hangs the agent.
        #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
        card_timeout: f64,
    },
    /// Register the card's holder for health-insurance use (健康保険証利用申込み), in PIN mode:
    /// the card signs a registration challenge after VERIFY. Idempotent: an already registered
    /// holder is reported as such. Exit codes as for confirm.
    Register {
        /// The terminal configuration (a world's terminals/<name>/agent.toml).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Override the configured service address, e.g. https://127.0.0.1:50443.
        #[arg(long, value_name = "URL")]
        service: Option<String>,
        /// Use this reader (default: the first reader with a card).
        #[arg(long, value_name = "NAME")]
        reader: Option<String>,
        /// How long to wait for a card, in seconds (at most a day).
        #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = wait_seconds())]
        wait: u64,
        /// Read the PIN from standard input, one attempt per line.
        #[arg(long)]
        pin_stdin: bool,
        /// Print the outcome as JSON (for scripts).
        #[arg(long)]
        json: bool,
        /// Record the APDU trace to this file ('-' for stderr); VERIFY data is always redacted.
        #[arg(long, value_name = "FILE")]
        trace: Option<String>,
        /// Give up on a card that takes longer than this (seconds) to answer a phase.
        #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
        card_timeout: f64,
    },
    /// Change the card's user-authentication PIN: the current PIN, then the new one (twice
    /// on a terminal; one line each with --pin-stdin). Exit codes: 0 changed, 1 wrong or
    /// locked PIN, 2 usage, 3 card or reader failure.
    ChangePin {
        /// Use this reader (default: the first reader with a card).
        #[arg(long, value_name = "NAME")]
        reader: Option<String>,
        /// How long to wait for a card, in seconds (at most a day).
        #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = wait_seconds())]
        wait: u64,
        /// Read the current and the new PIN from standard input, one per line.
        #[arg(long)]
        pin_stdin: bool,
        /// Give up on a card that does not answer within this many seconds.
        #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
        card_timeout: f64,
        /// Record the APDU trace to this file ('-' for stderr); PINs are always redacted.
        #[arg(long, value_name = "FILE")]
        trace: Option<String>,
    },
    /// Read the user-authentication certificate (EF 000A) the way a given client does, and
    /// print it as PEM (or write DER to --out): for checking a card or reader against every
    /// client reading pattern of jpki-card.md §4. No PIN is involved.
    ReadCertificate {
        /// Use this reader (default: the first reader with a card).
        #[arg(long, value_name = "NAME")]
        reader: Option<String>,
        /// How long to wait for a card, in seconds (at most a day).
        #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = wait_seconds())]
        wait: u64,
        /// canonical: 4-byte header then 256-byte chunks with an exact final Le (OpenSC, the
        /// agent); header7: 7-byte header then the rest from offset 7; chunks255: 255-byte
        /// reads from offset 0 until 6B00 or a short read; sfi: reads by short file id.
        #[arg(long, value_enum, default_value = "canonical")]
        pattern: PatternArg,
        /// Write the DER certificate to this file instead of printing PEM.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Give up on a card that does not answer within this many seconds.
        #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
        card_timeout: f64,
    },
    /// List the PC/SC readers and whether a card is present.
    Readers,
    /// Confirm eligibility without a card, by the insurance card's numbers and the birth date
    /// (reference classification 2). Exit codes: 0 carried out (any validity), 1 refused
    /// (see result_code, e.g. a bad check digit), 2 usage, 3 connection failure.
    Numbers {
        #[command(flatten)]
        desk: DeskArgs,
        #[command(flatten)]
        patient: PatientArgs,
        /// Print the outcome as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show the patient's past medication (薬剤情報): only within 24 hours of the patient's
    /// consent to this institution at the card reader. Exit codes as for numbers.
    Medications {
        #[command(flatten)]
        desk: DeskArgs,
        #[command(flatten)]
        patient: PatientArgs,
        #[arg(long)]
        json: bool,
    },
    /// Show the patient's specific health checkup results (特定健診情報), under the same rule.
    Checkups {
        #[command(flatten)]
        desk: DeskArgs,
        #[command(flatten)]
        patient: PatientArgs,
        #[arg(long)]
        json: bool,
    },
    /// 一括照会: submit a CSV of reservations (insurer_number,symbol,number,branch,birth_date
    /// per line), print the reception number, and with --wait also wait for the answers and
    /// print them as CSV.
    Batch {
        #[command(flatten)]
        desk: DeskArgs,
        /// The reservations CSV to submit.
        #[arg(long, value_name = "FILE", required_unless_present = "reception")]
        csv: Option<PathBuf>,
        /// Instead of submitting, fetch this reception number's answers (waits up to --wait).
        #[arg(long, value_name = "NUMBER", conflicts_with = "csv")]
        reception: Option<String>,
        /// Submit as a stream (for large batches: up to 100,000 lines instead of 10,000).
        #[arg(long)]
        stream: bool,
        /// Wait up to this many seconds for the answers (0: just submit).
        #[arg(long, value_name = "SECONDS", default_value_t = 0, value_parser = wait_seconds())]
        wait: u64,
        /// Write the answers' CSV to this file instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

/// The terminal whose identity the desk functions use.
#[derive(Debug, clap::Args)]
struct DeskArgs {
    /// The terminal configuration (a world's terminals/<name>/agent.toml).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Override the configured service address.
    #[arg(long, value_name = "URL")]
    service: Option<String>,
}

/// The patient's insurance card, as staff type it.
#[derive(Debug, clap::Args)]
struct PatientArgs {
    /// 保険者番号 (8 digits, 6 for 国保).
    #[arg(long, value_name = "DIGITS")]
    insurer: String,
    /// 記号 (empty for 後期高齢者医療).
    #[arg(long, value_name = "TEXT", default_value = "")]
    symbol: String,
    /// 番号.
    #[arg(long, value_name = "TEXT")]
    number: String,
    /// 枝番, 2 digits (empty for 後期高齢者医療).
    #[arg(long, value_name = "DIGITS", default_value = "")]
    branch: String,
    /// Birth date, YYYYMMDD.
    #[arg(long, value_name = "YYYYMMDD")]
    birth_date: String,
}

impl PatientArgs {
    fn numbers(&self) -> Numbers {
        Numbers {
            insurer_number: self.insurer.clone(),
            symbol: self.symbol.clone(),
            number: self.number.clone(),
            branch: self.branch.clone(),
            birth_date: self.birth_date.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PatternArg {
    Canonical,
    Header7,
    Chunks255,
    Sfi,
}

#[derive(Debug, Subcommand)]
enum StaffCommand {
    /// Add a staff member or set their password. The password is asked twice on the
    /// terminal (no echo), or read as one line from stdin with --password-stdin; never from
    /// the command line. 8 to 128 characters.
    Add {
        /// The kiosk's state folder (as given to `reader-agent kiosk --state-dir`).
        #[arg(long, value_name = "DIR", default_value = "kiosk-state")]
        state_dir: PathBuf,
        /// The staff id (1–32 of A-Z a-z 0-9 . _ -); it is recorded with every visual check.
        #[arg(long, value_name = "ID")]
        staff_id: String,
        /// Read the password from standard input (one line).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Remove a staff member; their log-ins end at their next request.
    Remove {
        #[arg(long, value_name = "DIR", default_value = "kiosk-state")]
        state_dir: PathBuf,
        #[arg(long, value_name = "ID")]
        staff_id: String,
    },
    /// List the staff ids.
    List {
        #[arg(long, value_name = "DIR", default_value = "kiosk-state")]
        state_dir: PathBuf,
    },
}

/// Marks the process non-dumpable: no core file, and other processes of the same user (a
/// debugger, a memory reader without CAP_SYS_PTRACE) cannot read its memory, where a PIN
/// passes (docs/kiosk.md).
fn not_dumpable() {
    if let Err(e) =
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
    {
        eprintln!("reader-agent: warning: cannot mark the process non-dumpable: {e}");
    }
}

fn main() -> ExitCode {
    not_dumpable();
    let cli = Cli::parse();
    match cli.command {
        Command::Staff { command } => staff_command(command),
        Command::Oqs {
            config,
            dir,
            service,
            charset,
            settle_ms,
        } => run_oqs(&config, dir, service, charset, settle_ms),
        Command::Kiosk {
            config,
            service,
            listen,
            staff_listen,
            staff_idle_timeout,
            reader,
            face_threshold,
            state_dir,
            card_timeout,
            idle_timeout,
            oqs_dir,
        } => run_kiosk(
            &config,
            onshi_reader_agent::kiosk::KioskOptions {
                listen,
                staff_listen,
                staff_idle_timeout: Duration::from_secs(staff_idle_timeout),
                reader,
                service_override: service,
                face_threshold_permille: face_threshold,
                state_dir,
                card_timeout: Duration::from_secs(card_timeout),
                idle_timeout: Duration::from_secs(idle_timeout),
                oqs_dir,
            },
        ),
        Command::Confirm {
            config,
            service,
            reader,
            wait,
            pin_stdin,
            consent,
            json,
            trace,
            card_timeout,
        } => run_confirm(
            config,
            service,
            reader,
            (wait, card_timeout),
            pin_stdin,
            (Action::Confirm, consent),
            json,
            trace,
        ),
        Command::Register {
            config,
            service,
            reader,
            wait,
            pin_stdin,
            json,
            trace,
            card_timeout,
        } => run_confirm(
            config,
            service,
            reader,
            (wait, card_timeout),
            pin_stdin,
            (Action::Register, Vec::new()),
            json,
            trace,
        ),
        Command::ChangePin {
            reader,
            wait,
            pin_stdin,
            card_timeout,
            trace,
        } => run_change_pin(reader, wait, pin_stdin, card_timeout, trace),
        Command::ReadCertificate {
            reader,
            wait,
            pattern,
            out,
            card_timeout,
        } => read_certificate(reader, wait, pattern, out, card_timeout),
        Command::Readers => list_readers(),
        Command::Numbers {
            desk,
            patient,
            json,
        } => desk_run(&desk, |mut c| async move {
            let outcome = desk::confirm_numbers(&mut c, &patient.numbers()).await;
            print_outcome(&outcome, json);
            outcome.exit_code()
        }),
        Command::Medications {
            desk,
            patient,
            json,
        } => desk_clinical(&desk, &patient, ClinicalKind::Medications, json),
        Command::Checkups {
            desk,
            patient,
            json,
        } => desk_clinical(&desk, &patient, ClinicalKind::Checkups, json),
        Command::Batch {
            desk,
            csv,
            reception,
            stream,
            wait,
            out,
        } => desk_batch(&desk, csv, reception, stream, wait, out),
    }
}

fn run_kiosk(
    config: &std::path::Path,
    options: onshi_reader_agent::kiosk::KioskOptions,
) -> ExitCode {
    let config = match AgentConfig::load(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("reader-agent: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(runtime) = two_thread_runtime() else {
        return ExitCode::from(3);
    };
    init_logging();
    runtime.block_on(async {
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

fn run_oqs(
    config: &std::path::Path,
    dir: PathBuf,
    service: Option<String>,
    charset: CharsetArg,
    settle_ms: u64,
) -> ExitCode {
    use onshi_reader_agent::oqs::{codec::Charset, serve};
    let config = match AgentConfig::load(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("reader-agent: {e}");
            return ExitCode::from(2);
        }
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
    init_logging();
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

fn staff_command(command: StaffCommand) -> ExitCode {
    use onshi_reader_agent::kiosk::staff_auth::{check_staff_id, Accounts};
    let done = match command {
        StaffCommand::Add {
            state_dir,
            staff_id,
            password_stdin,
        } => check_staff_id(&staff_id)
            .and_then(|()| read_new_password(password_stdin))
            .and_then(|password| Accounts::in_dir(&state_dir).set_password(&staff_id, &password))
            .map(|new| {
                if new {
                    println!("added staff member {staff_id}");
                } else {
                    println!("set the password of staff member {staff_id}");
                }
            }),
        StaffCommand::Remove {
            state_dir,
            staff_id,
        } => Accounts::in_dir(&state_dir)
            .remove(&staff_id)
            .and_then(|was| {
                if was {
                    println!("removed staff member {staff_id}");
                    Ok(())
                } else {
                    Err(format!("there is no staff member {staff_id}"))
                }
            }),
        StaffCommand::List { state_dir } => Accounts::in_dir(&state_dir).list().map(|ids| {
            for id in ids {
                println!("{id}");
            }
        }),
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("reader-agent: {e}");
            ExitCode::from(2)
        }
    }
}

/// A new password from stdin (one line) or typed twice on the terminal.
fn read_new_password(from_stdin: bool) -> Result<zeroize::Zeroizing<String>, String> {
    use zeroize::Zeroizing;
    if from_stdin {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the password from stdin: {e}"))?;
        let trimmed = Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_owned());
        return Ok(trimmed);
    }
    if !std::io::stdin().is_terminal() {
        return Err("no terminal to ask the password on: pass --password-stdin".into());
    }
    let first =
        Zeroizing::new(rpassword::prompt_password("new password: ").map_err(|e| e.to_string())?);
    let again =
        Zeroizing::new(rpassword::prompt_password("the same again: ").map_err(|e| e.to_string())?);
    if *first != *again {
        return Err("the two passwords differ".into());
    }
    Ok(first)
}

/// The runtime of the card flows and the kiosk: two workers (card work runs on blocking
/// threads besides). Says why when it cannot start.
fn two_thread_runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => Some(r),
        Err(e) => {
            eprintln!("reader-agent: cannot start the runtime: {e}");
            None
        }
    }
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn print_outcome(outcome: &Outcome, json: bool) {
    if json {
        match serde_json::to_string_pretty(outcome) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("reader-agent: {e}"),
        }
    } else {
        print!("{}", render_human(outcome));
    }
}

/// Connects as the configured terminal and runs a desk function; returns its exit code.
fn desk_run<F, Fut>(desk: &DeskArgs, f: F) -> ExitCode
where
    F: FnOnce(ConfirmationClient<Channel>) -> Fut,
    Fut: std::future::Future<Output = u8>,
{
    let config = match AgentConfig::load(&desk.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("reader-agent: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = onshi_reader_agent::client::endpoint(&config, desk.service.as_deref()) {
        eprintln!("reader-agent: {e}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("reader-agent: cannot start the runtime: {e}");
            return ExitCode::from(3);
        }
    };
    runtime.block_on(async {
        match onshi_reader_agent::client::connect(&config, desk.service.as_deref()).await {
            Ok(c) => ExitCode::from(f(c).await),
            Err(message) => {
                eprintln!("reader-agent: {message}");
                ExitCode::from(3)
            }
        }
    })
}

fn desk_clinical(
    desk: &DeskArgs,
    patient: &PatientArgs,
    kind: ClinicalKind,
    json: bool,
) -> ExitCode {
    let numbers = patient.numbers();
    desk_run(desk, |mut c| async move {
        match desk::clinical(&mut c, &numbers, kind).await {
            Ok(data) => {
                if json {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&data).unwrap_or_default()
                    );
                } else {
                    print!("{}", desk::render_clinical(&data));
                }
                0
            }
            Err(outcome) => {
                print_outcome(&outcome, json);
                outcome.exit_code()
            }
        }
    })
}

fn desk_batch(
    desk: &DeskArgs,
    csv: Option<PathBuf>,
    reception: Option<String>,
    stream: bool,
    wait: u64,
    out: Option<PathBuf>,
) -> ExitCode {
    let queries = match &csv {
        Some(path) => match desk::read_csv(path) {
            Ok(q) => Some(q),
            Err(e) => {
                eprintln!("reader-agent: {e}");
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    desk_run(desk, |mut c| async move {
        let reception = match (queries, reception) {
            (Some(queries), _) => match desk::submit(&mut c, queries, stream).await {
                Ok(r) => {
                    println!(
                        "受付番号 reception number: {} ({} queries)",
                        r.reception_number, r.total
                    );
                    r.reception_number
                }
                Err(outcome) => {
                    print_outcome(&outcome, false);
                    return outcome.exit_code();
                }
            },
            (None, Some(r)) => r,
            (None, None) => return 2,
        };
        if wait == 0 && csv.is_some() {
            return 0;
        }
        let progress = |completed: u32, total: u32, done: bool| {
            eprintln!(
                "batch {reception}: {completed} / {total} answered{}",
                if done { "" } else { " (処理中)" }
            )
        };
        let wait = Duration::from_secs(wait.max(1));
        match desk::wait_and_fetch(&mut c, &reception, wait, &progress).await {
            Ok((_, items)) => {
                let text = desk::results_csv(&items);
                match &out {
                    Some(path) => {
                        if let Err(e) = std::fs::write(path, text) {
                            eprintln!("reader-agent: cannot write {}: {e}", path.display());
                            return 3;
                        }
                        eprintln!("{} answers written to {}", items.len(), path.display());
                    }
                    None => print!("{text}"),
                }
                0
            }
            Err(outcome) => {
                print_outcome(&outcome, false);
                outcome.exit_code()
            }
        }
    })
}

#[allow(clippy::too_many_arguments)]
fn run_confirm(
    config: PathBuf,
    service: Option<String>,
    reader: Option<String>,
    (wait, card_timeout): (u64, f64),
    pin_stdin: bool,
    (action, consent): (Action, Vec<Consent>),
    json: bool,
    trace: Option<String>,
) -> ExitCode {
    let config = match AgentConfig::load(&config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("reader-agent: {e}");
            return ExitCode::from(2);
        }
    };
    // Configuration errors in the TLS material or the address exit 2 like the others, not 3
    // (a connection failure) once the agent is already talking to the card.
    if let Err(e) = onshi_reader_agent::client::endpoint(&config, service.as_deref()) {
        eprintln!("reader-agent: {e}");
        return ExitCode::from(2);
    }
    if !pin_stdin && !std::io::stdin().is_terminal() {
        eprintln!("reader-agent: stdin is not a terminal: use --pin-stdin to read the PIN from it");
        return ExitCode::from(2);
    }
    let has = |c: Consent| consent.contains(&c);
    let consents = ConsentBits::new(
        has(Consent::Medication),
        has(Consent::Checkup),
        has(Consent::Clinical),
        has(Consent::Surgery),
    );
    let Some(card_timeout) = card_timeout_arg(card_timeout) else {
        return ExitCode::from(2);
    };
    let trace = match open_trace(trace.as_deref()) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let pins: Box<dyn PinSource> = if pin_stdin {
        Box::new(StdinLines)
    } else {
        Box::new(TtyPrompt)
    };
    let opts = ConfirmOptions {
        reader,
        wait: Duration::from_secs(wait),
        card_timeout,
        consents,
        service_override: service,
        action,
    };
    let Some(runtime) = two_thread_runtime() else {
        return ExitCode::from(3);
    };
    let progress = |line: &str| eprintln!("{line}");
    let outcome: Outcome = runtime.block_on(confirm::run(&config, &opts, pins, trace, &progress));
    // A card thread stuck in a PC/SC call (a mute card) must not keep the process alive.
    runtime.shutdown_timeout(Duration::from_millis(100));
    if json {
        match serde_json::to_string_pretty(&outcome) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("reader-agent: {e}"),
        }
    } else {
        print!("{}", render_human(&outcome));
    }
    ExitCode::from(outcome.exit_code())
}

fn card_timeout_arg(seconds: f64) -> Option<Duration> {
    match Duration::try_from_secs_f64(seconds) {
        Ok(d) if !d.is_zero() && d <= Duration::from_secs(600) => Some(d),
        _ => {
            eprintln!("reader-agent: --card-timeout must be more than 0 and at most 600 seconds");
            None
        }
    }
}

fn open_trace(trace: Option<&str>) -> Result<Option<Trace>, ExitCode> {
    match trace {
        None => Ok(None),
        Some("-") => Ok(Some(Trace::new(Box::new(std::io::stderr())))),
        Some(path) => match std::fs::File::create(path) {
            Ok(f) => Ok(Some(Trace::new(Box::new(f)))),
            Err(e) => {
                eprintln!("reader-agent: cannot create trace file {path}: {e}");
                Err(ExitCode::from(2))
            }
        },
    }
}

fn run_change_pin(
    reader: Option<String>,
    wait: u64,
    pin_stdin: bool,
    card_timeout: f64,
    trace: Option<String>,
) -> ExitCode {
    let Some(card_timeout) = card_timeout_arg(card_timeout) else {
        return ExitCode::from(2);
    };
    if !pin_stdin && !std::io::stdin().is_terminal() {
        eprintln!(
            "reader-agent: stdin is not a terminal: use --pin-stdin to read the PINs from it"
        );
        return ExitCode::from(2);
    }
    let trace = match open_trace(trace.as_deref()) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let mut pins: Box<dyn PinSource> = if pin_stdin {
        Box::new(StdinLines)
    } else {
        Box::new(TtyPrompt)
    };
    let mut next = |what: &str| -> Option<onshi_jpki::Pin> {
        if !pin_stdin {
            eprintln!("{what}");
        }
        match pins.next_pin(0) {
            Ok(Some(p)) => Some(p),
            Ok(None) => {
                eprintln!("reader-agent: no PIN was entered for: {what}");
                None
            }
            Err(e) => {
                eprintln!("reader-agent: {e}");
                None
            }
        }
    };
    let Some(old) = next("現在の暗証番号 (current PIN)") else {
        return ExitCode::from(2);
    };
    let Some(new) = next("新しい暗証番号 (new PIN)") else {
        return ExitCode::from(2);
    };
    if !pin_stdin {
        let Some(again) = next("もう一度 (new PIN again)") else {
            return ExitCode::from(2);
        };
        if !again.same_as(&new) {
            eprintln!("reader-agent: the two new PINs differ; nothing was changed");
            return ExitCode::from(2);
        }
    }
    let outcome = onshi_reader_agent::change_pin::run(
        reader,
        Duration::from_secs(wait),
        card_timeout,
        old,
        new,
        trace,
    );
    println!("reader-agent: {}", outcome.message());
    ExitCode::from(outcome.exit_code())
}

fn read_certificate(
    reader: Option<String>,
    wait: u64,
    pattern: PatternArg,
    out: Option<PathBuf>,
    card_timeout: f64,
) -> ExitCode {
    use onshi_jpki::flows::{self, ReadPattern};
    use onshi_jpki::{commands, constants, CardChannel};
    use onshi_reader_agent::pcsc_card::{self, TransactionChannel};
    let Some(card_timeout) = card_timeout_arg(card_timeout) else {
        return ExitCode::from(2);
    };
    let pattern = match pattern {
        PatternArg::Canonical => ReadPattern::Canonical,
        PatternArg::Header7 => ReadPattern::HeaderThenRest {
            header_len: 7,
            chunk: 256,
        },
        PatternArg::Chunks255 => ReadPattern::UntilEnd { chunk: 255 },
        PatternArg::Sfi => ReadPattern::BySfi {
            sfi: constants::sfi(constants::EF_USER_AUTH_CERT),
        },
    };
    let wait = Duration::from_secs(wait);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let result = (|| -> Result<Vec<u8>, String> {
            let mut connected = pcsc_card::wait_and_connect(reader.as_deref(), wait, || {
                eprintln!("カードを置いてください (place the card on the reader)")
            })
            .map_err(|e| e.to_string())?;
            let mut ch =
                TransactionChannel::begin(&mut connected.card, None).map_err(|e| e.to_string())?;
            let r = (|| {
                flows::select_jpki(&mut ch).map_err(|e| e.to_string())?;
                if !matches!(pattern, ReadPattern::BySfi { .. }) {
                    let sw = ch
                        .transmit(&commands::select_ef(constants::EF_USER_AUTH_CERT))
                        .map_err(|e| e.to_string())?
                        .sw;
                    if !sw.is_success() {
                        return Err(format!("SELECT EF 000A answered {sw}"));
                    }
                }
                flows::read_ef_by_chunks(&mut ch, pattern).map_err(|e| e.to_string())
            })();
            ch.end();
            r
        })();
        let _ = tx.send(result);
    });
    let result = match rx.recv_timeout(wait + card_timeout) {
        Ok(r) => r,
        Err(_) => Err(format!(
            "the card did not answer within {} s",
            card_timeout.as_secs_f64()
        )),
    };
    let mut der = match result {
        Ok(d) => d,
        Err(e) => {
            eprintln!("reader-agent: {e}");
            return ExitCode::from(3);
        }
    };
    // The until-end pattern returns the whole EF: keep the DER object its header declares.
    if let [0x30, 0x82, hi, lo, ..] = der.as_slice() {
        let total = 4 + usize::from(u16::from_be_bytes([*hi, *lo]));
        der.truncate(total);
    }
    if let Err(e) = onshi_reader_agent::confirm::check_certificate_der(&der) {
        eprintln!("reader-agent: {e}");
        return ExitCode::from(3);
    }
    match out {
        Some(path) => {
            if let Err(e) = std::fs::write(&path, &der) {
                eprintln!("reader-agent: cannot write {}: {e}", path.display());
                return ExitCode::from(3);
            }
        }
        None => {
            let b64 = pem_base64(&der);
            println!("-----BEGIN CERTIFICATE-----\n{b64}-----END CERTIFICATE-----");
        }
    }
    ExitCode::SUCCESS
}

/// Base64 in 64-column lines, each ending in a newline (PEM body).
fn pem_base64(der: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for chunk in der.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                s.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                s.push('=');
            }
        }
    }
    let mut out = String::new();
    for line in s.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out
}

fn list_readers() -> ExitCode {
    let ctx = match pcsc::Context::establish(pcsc::Scope::User) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("reader-agent: the PC/SC service (pcscd) is not reachable: {e}");
            return ExitCode::from(3);
        }
    };
    let names = match ctx.list_readers_owned() {
        Ok(n) => n,
        Err(pcsc::Error::NoReadersAvailable) => Vec::new(),
        Err(e) => {
            eprintln!("reader-agent: {e}");
            return ExitCode::from(3);
        }
    };
    if names.is_empty() {
        println!("no readers");
    }
    let mut states: Vec<pcsc::ReaderState> = names
        .iter()
        .map(|n| pcsc::ReaderState::new(n.clone(), pcsc::State::UNAWARE))
        .collect();
    let _ = ctx.get_status_change(Duration::from_millis(0), &mut states);
    for s in &states {
        let present = s.event_state().contains(pcsc::State::PRESENT);
        println!(
            "{}\t{}",
            s.name().to_string_lossy(),
            if present { "card present" } else { "empty" }
        );
    }
    ExitCode::SUCCESS
}

/// Log lines to stderr, filtered by `RUST_LOG` (default `warn`).
fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_too_long_to_add_to_an_instant_is_a_usage_error() {
        for sub in ["change-pin", "read-certificate"] {
            assert!(Cli::try_parse_from(["reader-agent", sub, "--wait", "86400"]).is_ok());
            let err = Cli::try_parse_from(["reader-agent", sub, "--wait", "18446744073709551615"])
                .unwrap_err();
            assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation, "{sub}");
        }
        let confirm = ["reader-agent", "confirm", "--config", "a.toml", "--wait"];
        assert!(Cli::try_parse_from([&confirm[..], &["86401"]].concat()).is_err());
    }
}
