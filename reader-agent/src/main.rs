//! `reader-agent`: the reception terminal's command line. This file parses the arguments and
//! dispatches; each command is run by a module of [`cli`].
#![forbid(unsafe_code)]

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use onshi_reader_agent::confirm::Action;
use onshi_reader_agent::desk::{ClinicalKind, Numbers};

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
    about = "onshi's reception terminal: reads a My Number card through PC/SC and confirms the holder's insurance eligibility",
    after_help = "Logging: RUST_LOG filters the log lines on stderr (default `warn`; e.g. \
                  RUST_LOG=info or RUST_LOG=onshi_reader_agent=debug); colours only on a terminal. \
                  Usage errors exit 2. Recipes: docs/operations.md."
)]
struct Cli {
    /// The log lines' format on stderr: text, or json (one object per line).
    #[arg(long, value_enum, default_value = "text", global = true)]
    log_format: cli::LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// A loopback address to listen on, by number or by name (`localhost:0` picks a free port).
fn loopback_listen(text: &str) -> Result<std::net::SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let addrs: Vec<_> = text
        .to_socket_addrs()
        .map_err(|e| format!("{text:?} is not an address: {e}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.ip().is_loopback() && a.is_ipv4())
        .or_else(|| addrs.iter().find(|a| a.ip().is_loopback()))
        .copied()
        .ok_or_else(|| {
            format!("{text} is not a loopback address (the kiosk listens on loopback only)")
        })
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
    /// 包括同意: every kind, given on one screen.
    All,
    None,
}

/// `--prescription`: the patient's choice at the reader (電子処方箋).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PrescriptionArg {
    /// 電子処方箋 (PrescriptionIssueSelect 1).
    Electronic,
    /// 紙の処方箋 (PrescriptionIssueSelect 2).
    Paper,
}

/// `--treatment`: the query's MedicalTreatmentFlag (docs/domain.md "Home visits and online
/// care").
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TreatmentArg {
    /// 外来 (1).
    Outpatient,
    /// 訪問診療・訪問看護 (2).
    HomeVisit,
    /// オンライン診療 (3).
    Online,
}

impl TreatmentArg {
    fn proto(treatment: Option<TreatmentArg>) -> onshi_proto::v1::MedicalTreatment {
        use onshi_proto::v1::MedicalTreatment as T;
        match treatment {
            None => T::Unspecified,
            Some(TreatmentArg::Outpatient) => T::Outpatient,
            Some(TreatmentArg::HomeVisit) => T::HomeVisit,
            Some(TreatmentArg::Online) => T::Online,
        }
    }
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
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080", value_parser = loopback_listen)]
        listen: std::net::SocketAddr,
        /// Where to serve the staff's view (a loopback address, another port).
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8081", value_parser = loopback_listen)]
        staff_listen: std::net::SocketAddr,
        /// Serve Prometheus metrics (sessions, outcomes by method) at http://ADDR/metrics
        /// (off by default; docs/operations.md).
        #[arg(long, value_name = "ADDR")]
        metrics_listen: Option<std::net::SocketAddr>,
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
        /// The bounded wait for the confirmation service, in seconds: past it the kiosk offers
        /// the outage path (資格申立書, docs/operations.md). Also bounds each probe and
        /// catch-up call.
        #[arg(long, value_name = "SECONDS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=60))]
        service_wait: u64,
        /// How often the service is probed and waiting outage visits caught up, in seconds.
        #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
        outage_probe: u64,
        /// Outage visits kept at most on this terminal (a full store refuses new ones).
        #[arg(long, value_name = "N", default_value_t = onshi_reader_agent::outage::DEFAULT_CAPACITY as u64,
              value_parser = clap::value_parser!(u64).range(1..=100_000))]
        outage_capacity: u64,
        /// The mobile device of a home visit or online care (居宅同意取得型): every session
        /// starts with the treatment (訪問診療・訪問看護 / オンライン診療), then the card's PIN
        /// or a staff visual check (no face match); the answer shows the re-query period
        /// within which the institution confirms later visits without the card
        /// (`numbers --requery`). docs/kiosk.md "The mobile mode".
        #[arg(long)]
        mobile: bool,
        /// The smartphone マイナ保険証's simulator channel (a `virtual-phone` socket,
        /// docs/smartphone.md): the start screen offers 「スマートフォンで受付」, and a phone
        /// session asks the phone on this socket. Not the real phone protocol. Not with
        /// --mobile (a 居宅同意取得型 first visit reads the card).
        #[arg(long, value_name = "SOCKET", conflicts_with = "mobile")]
        phone: Option<PathBuf>,
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
    /// Confirm eligibility with the card in the reader, in PIN mode, or with --face or
    /// --visual-check in face or visual-check mode (no PIN; a face-only card). The PIN is
    /// asked on the terminal (no echo) or read from stdin with --pin-stdin, never from the
    /// command line. Exit codes: 0 confirmed, 1 refused (by the card, the reader or the
    /// service; see result_code), 2 usage or configuration error, 3 card, reader or
    /// connection failure.
    Confirm {
        #[command(flatten)]
        terminal: TerminalArgs,
        #[command(flatten)]
        card: CardArgs,
        #[command(flatten)]
        by_reader: ReaderModeArgs,
        /// Read the PIN from standard input, one attempt per line.
        #[arg(long)]
        pin_stdin: bool,
        /// The patient's consents (comma-separated): medication, checkup, clinical, surgery,
        /// all (包括同意: every kind on one screen; alone), or none.
        #[arg(long, value_enum, value_delimiter = ',', default_value = "none")]
        consent: Vec<Consent>,
        /// The patient's choice of prescription (電子処方箋): electronic or paper; carried to
        /// the service and echoed in the result. Not asked when absent.
        #[arg(long, value_enum)]
        prescription: Option<PrescriptionArg>,
        /// The treatment the confirmation is for (MedicalTreatmentFlag); 外来 when absent.
        #[arg(long, value_enum)]
        treatment: Option<TreatmentArg>,
        /// 居宅同意取得型 first visit: this terminal is the mobile device at the patient's
        /// home; the card signs the patient's consent to later re-queries without the card
        /// (`numbers --requery`) by this institution, until the period the result shows.
        /// With the PIN, or with --visual-check --staff-id ID (the device key attests the
        /// staff member's check; not --face). Needs --treatment home-visit or online.
        #[arg(long, conflicts_with = "face")]
        mobile: bool,
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
        /// Confirm with a smartphone マイナ保険証 instead of the card: the simulated phone
        /// served by `virtual-phone` on this Unix socket (onshi's own simulator channel, not
        /// the real phones' protocol: docs/smartphone.md). Android: the phone's PIN is typed
        /// here (as for a card) and checked by the phone; iPhone: the patient verifies on the
        /// phone, no PIN. The reader options and --trace do not apply.
        #[arg(
            long,
            value_name = "SOCKET",
            conflicts_with_all = ["reader", "trace", "face", "visual_check", "mobile", "treatment"]
        )]
        phone: Option<PathBuf>,
    },
    /// Register the card's holder for health-insurance use (健康保険証利用申込み). In PIN
    /// mode the card signs a registration challenge after VERIFY. A card without a PIN
    /// (顔認証マイナンバーカード) is registered with --face or --visual-check --staff-id ID:
    /// the reader identifies the holder and attests it with the terminal's device_key
    /// (RegisterByReader); PIN mode on such a card answers RESULT_CODE_PIN_NOT_SET.
    /// Idempotent: an already registered holder is reported as such. Exit codes as for
    /// confirm.
    Register {
        #[command(flatten)]
        terminal: TerminalArgs,
        #[command(flatten)]
        card: CardArgs,
        #[command(flatten)]
        by_reader: ReaderModeArgs,
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
        #[command(flatten)]
        card: CardArgs,
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
        #[command(flatten)]
        card: CardArgs,
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
        /// The day the eligibility is asked for, YYYYMMDD (JST; default today). Within 365
        /// days before and 31 days after today; the answer is the validity on that day.
        #[arg(long, value_name = "YYYYMMDD")]
        as_of: Option<String>,
        #[command(flatten)]
        care: CareArgs,
        /// Print the outcome as JSON.
        #[arg(long)]
        json: bool,
    },
    /// 導入医療機関リスト: the institutions where the card works (at least one terminal in
    /// operation), from the service: CSV with a header line (institution_code, name,
    /// prefecture, prefecture_name, started_on, terminals_in_operation), or JSON. Exit codes:
    /// 0 printed, 1 refused by the service, 2 usage or configuration error, 3 connection
    /// failure.
    Institutions {
        #[command(flatten)]
        desk: DeskArgs,
        /// An array of JSON objects instead of CSV.
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
    /// per line; public_expense_number,recipient_number,birth_date for 医療扶助), print the reception number, and with --wait also wait for the answers and
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
        /// Wait up to this many seconds for the answers (0: don't wait: just submit, or with
        /// --reception fetch once). Without --out the answers go to stdout as pure CSV and
        /// the reception number to stderr.
        #[arg(long, value_name = "SECONDS", default_value_t = 0, value_parser = wait_seconds())]
        wait: u64,
        /// Write the answers' CSV to this file instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Ask every query for this day, YYYYMMDD (JST; default today), e.g. tomorrow for
        /// tomorrow's appointments. Within 365 days before and 31 days after the day the
        /// service answers; a query out of the window is answered with
        /// RESULT_CODE_AS_OF_DATE_OUT_OF_RANGE. The answers' CSV has the day in as_of_date.
        #[arg(long, value_name = "YYYYMMDD", conflicts_with = "reception")]
        as_of: Option<String>,
        /// The treatment and re-query flags, for every query of the CSV.
        #[command(flatten)]
        care: CareArgs,
    },
}

/// The treatment a card-less query is for, and whether it is a 居宅同意取得型 re-query.
#[derive(Debug, clap::Args)]
struct CareArgs {
    /// The treatment (MedicalTreatmentFlag); 外来 when absent.
    #[arg(long, value_enum)]
    treatment: Option<TreatmentArg>,
    /// 再照会: a later visit of a patient whose card was read at a 居宅同意取得型 first visit
    /// (`confirm --mobile`), within its period. Needs --treatment home-visit or online.
    #[arg(long)]
    requery: bool,
}

impl CareArgs {
    fn flags(&self) -> (i32, bool) {
        (TreatmentArg::proto(self.treatment) as i32, self.requery)
    }
}

/// The terminal a card command speaks for.
#[derive(Debug, clap::Args)]
struct TerminalArgs {
    /// The terminal configuration (a world's terminals/<name>/agent.toml).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Override the configured service address, e.g. https://127.0.0.1:50443.
    #[arg(long, value_name = "URL")]
    service: Option<String>,
}

/// Which reader's card a card command uses, and how long it waits for one.
#[derive(Debug, clap::Args)]
struct CardArgs {
    /// Use this reader (default: the first reader with a card).
    #[arg(long, value_name = "NAME")]
    reader: Option<String>,
    /// How long to wait for a card, in seconds (at most a day).
    #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = wait_seconds())]
    wait: u64,
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

/// Face or visual-check mode instead of the PIN (a card without a PIN,
/// 顔認証マイナンバーカード): the reader identifies the holder and attests it with the
/// terminal's device_key, as the kiosk does.
#[derive(Debug, clap::Args)]
struct ReaderModeArgs {
    /// Identify the holder by face instead of a PIN: the card's face photo against one
    /// capture of the simulated camera (the holder stands before it). Needs the
    /// configuration's device_key.
    #[arg(long, conflicts_with_all = ["visual_check", "pin_stdin"])]
    face: bool,
    /// With --face: the matcher's score must reach this (permille); the service refuses
    /// thresholds below its own minimum (800 by default).
    #[arg(long, value_name = "PERMILLE", requires = "face", default_value_t = onshi_reader_agent::face::DEFAULT_THRESHOLD_PERMILLE,
          value_parser = clap::value_parser!(u16).range(1..=1000))]
    face_threshold: u16,
    /// Identify the holder by a staff member's visual check (目視確認) instead of a PIN,
    /// recorded with --staff-id. Needs the configuration's device_key.
    #[arg(long, requires = "staff_id", conflicts_with = "pin_stdin")]
    visual_check: bool,
    /// The staff member who checked the holder (1–32 of A-Z a-z 0-9 . _ -).
    #[arg(long, value_name = "ID", requires = "visual_check")]
    staff_id: Option<String>,
}

impl ReaderModeArgs {
    /// `None`: PIN mode.
    fn mode(self) -> Option<onshi_reader_agent::by_reader::ReaderMode> {
        use onshi_reader_agent::by_reader::ReaderMode;
        match (self.face, self.visual_check, self.staff_id) {
            (true, _, _) => Some(ReaderMode::Face {
                threshold: self.face_threshold,
            }),
            (false, true, Some(staff_id)) => Some(ReaderMode::Visual { staff_id }),
            _ => None,
        }
    }
}

/// The patient's insurance card, as staff type it.
#[derive(Debug, clap::Args)]
struct PatientArgs {
    /// 保険者番号 (8 digits, 6 for 国保); empty for a 医療扶助 query (--public-expense).
    #[arg(long, value_name = "DIGITS", default_value = "")]
    insurer: String,
    /// 記号 (empty for 後期高齢者医療).
    #[arg(long, value_name = "TEXT", default_value = "")]
    symbol: String,
    /// 番号 (empty for a 医療扶助 query).
    #[arg(long, value_name = "TEXT", default_value = "")]
    number: String,
    /// 枝番, 2 digits (empty for 後期高齢者医療).
    #[arg(long, value_name = "DIGITS", default_value = "")]
    branch: String,
    /// Birth date, YYYYMMDD.
    #[arg(long, value_name = "YYYYMMDD")]
    birth_date: String,
    /// 医療扶助: the 公費負担者番号 (8 digits, 法別 12) instead of the insurance numbers.
    #[arg(long = "public-expense", value_name = "DIGITS", default_value = "")]
    public_expense: String,
    /// 医療扶助: the 公費受給者番号 (7 digits), with --public-expense.
    #[arg(long, value_name = "DIGITS", default_value = "")]
    recipient: String,
}

impl PatientArgs {
    fn numbers(&self) -> Numbers {
        Numbers {
            insurer_number: self.insurer.clone(),
            symbol: self.symbol.clone(),
            number: self.number.clone(),
            branch: self.branch.clone(),
            birth_date: self.birth_date.clone(),
            as_of_date: String::new(),
            public_expense_number: self.public_expense.clone(),
            recipient_number: self.recipient.clone(),
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
    cli::init_logging(cli.log_format);
    match cli.command {
        Command::Staff { command } => cli::staff::staff_command(command),
        Command::Oqs {
            config,
            dir,
            service,
            charset,
            settle_ms,
        } => cli::serve::run_oqs(&config, dir, service, charset, settle_ms),
        Command::Kiosk {
            config,
            service,
            listen,
            staff_listen,
            metrics_listen,
            staff_idle_timeout,
            reader,
            face_threshold,
            state_dir,
            card_timeout,
            idle_timeout,
            oqs_dir,
            service_wait,
            outage_probe,
            outage_capacity,
            mobile,
            phone,
        } => cli::serve::run_kiosk(
            &config,
            metrics_listen,
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
                service_wait: Duration::from_secs(service_wait),
                outage_probe: Duration::from_secs(outage_probe),
                outage_capacity: usize::try_from(outage_capacity).unwrap_or(usize::MAX),
                mobile,
                phone,
            },
        ),
        Command::Confirm {
            terminal: TerminalArgs { config, service },
            card: CardArgs { reader, wait },
            by_reader,
            pin_stdin,
            consent,
            prescription,
            treatment,
            mobile,
            json,
            trace,
            card_timeout,
            phone,
        } => cli::card::run_confirm(
            config,
            service,
            reader,
            (wait, card_timeout),
            (pin_stdin, by_reader.mode()),
            (
                Action::Confirm,
                consent,
                match prescription {
                    None => onshi_proto::v1::PrescriptionIssue::Unspecified,
                    Some(PrescriptionArg::Electronic) => {
                        onshi_proto::v1::PrescriptionIssue::Electronic
                    }
                    Some(PrescriptionArg::Paper) => onshi_proto::v1::PrescriptionIssue::Paper,
                },
            ),
            (TreatmentArg::proto(treatment), mobile),
            json,
            trace,
            phone,
        ),
        Command::Register {
            terminal: TerminalArgs { config, service },
            card: CardArgs { reader, wait },
            by_reader,
            pin_stdin,
            json,
            trace,
            card_timeout,
        } => cli::card::run_confirm(
            config,
            service,
            reader,
            (wait, card_timeout),
            (pin_stdin, by_reader.mode()),
            (
                Action::Register,
                Vec::new(),
                onshi_proto::v1::PrescriptionIssue::Unspecified,
            ),
            (onshi_proto::v1::MedicalTreatment::Unspecified, false),
            json,
            trace,
            None,
        ),
        Command::ChangePin {
            card: CardArgs { reader, wait },
            pin_stdin,
            card_timeout,
            trace,
        } => cli::card::run_change_pin(reader, wait, pin_stdin, card_timeout, trace),
        Command::ReadCertificate {
            card: CardArgs { reader, wait },
            pattern,
            out,
            card_timeout,
        } => cli::card::read_certificate(reader, wait, pattern, out, card_timeout),
        Command::Readers => cli::card::list_readers(),
        Command::Numbers {
            desk,
            patient,
            as_of,
            care,
            json,
        } => cli::desk::numbers(&desk, &patient, as_of, care.flags(), json),
        Command::Institutions { desk, json } => cli::desk::institutions(&desk, json),
        Command::Medications {
            desk,
            patient,
            json,
        } => cli::desk::desk_clinical(&desk, &patient, ClinicalKind::Medications, json),
        Command::Checkups {
            desk,
            patient,
            json,
        } => cli::desk::desk_clinical(&desk, &patient, ClinicalKind::Checkups, json),
        Command::Batch {
            desk,
            csv,
            reception,
            stream,
            wait,
            out,
            as_of,
            care,
        } => cli::desk::desk_batch(
            &desk,
            csv,
            reception,
            stream,
            (wait, out),
            as_of,
            care.flags(),
        ),
    }
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

    #[test]
    fn the_kiosk_listens_on_localhost_by_name_and_nowhere_else() {
        let kiosk = |listen: &str| {
            Cli::try_parse_from([
                "reader-agent",
                "kiosk",
                "--config",
                "a.toml",
                "--listen",
                listen,
            ])
        };
        let Command::Kiosk { listen, .. } = kiosk("localhost:0").unwrap().command else {
            panic!("not the kiosk");
        };
        assert!(listen.ip().is_loopback());
        assert_eq!(listen.port(), 0);
        let err = kiosk("192.0.2.1:80").unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
        assert!(err.to_string().contains("loopback"), "{err}");
    }

    #[test]
    fn face_and_visual_check_mode_are_chosen_on_confirm_and_register() {
        use onshi_reader_agent::by_reader::ReaderMode;
        let parse = |args: &[&str]| {
            Cli::try_parse_from([&["reader-agent"], args, &["--config", "a.toml"]].concat())
        };
        let mode = |args: &[&str]| match parse(args).unwrap().command {
            Command::Confirm { by_reader, .. } | Command::Register { by_reader, .. } => {
                by_reader.mode()
            }
            _ => panic!("not a card command"),
        };
        assert_eq!(mode(&["register"]), None);
        assert_eq!(
            mode(&["register", "--face"]),
            Some(ReaderMode::Face {
                threshold: onshi_reader_agent::face::DEFAULT_THRESHOLD_PERMILLE
            })
        );
        assert_eq!(
            mode(&["confirm", "--face", "--face-threshold", "900"]),
            Some(ReaderMode::Face { threshold: 900 })
        );
        assert_eq!(
            mode(&["confirm", "--visual-check", "--staff-id", "sato"]),
            Some(ReaderMode::Visual {
                staff_id: "sato".into()
            })
        );
        // A visual check names its staff member; one mode at a time; no PIN with either.
        for bad in [
            &["register", "--visual-check"][..],
            &["register", "--staff-id", "sato"],
            &["register", "--face", "--visual-check", "--staff-id", "sato"],
            &["confirm", "--face", "--pin-stdin"],
            &["confirm", "--face-threshold", "900"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        use clap::CommandFactory;
        let help = Cli::command()
            .find_subcommand_mut("register")
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(
            help.contains("--face") && help.contains("--visual-check"),
            "{help}"
        );
        assert!(help.contains("without a PIN"), "{help}");
    }

    #[test]
    fn the_mobile_first_visit_is_made_with_the_pin_or_a_visual_check_not_a_face_match() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(
                [&["reader-agent", "confirm"], args, &["--config", "a.toml"]].concat(),
            )
        };
        for good in [
            &["--treatment", "home-visit", "--mobile"][..],
            &[
                "--treatment",
                "online",
                "--mobile",
                "--visual-check",
                "--staff-id",
                "sato",
            ],
        ] {
            assert!(parse(good).is_ok(), "{good:?}");
        }
        let err = parse(&["--treatment", "home-visit", "--mobile", "--face"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
        use clap::CommandFactory;
        let help = Cli::command()
            .find_subcommand_mut("confirm")
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(help.contains("--visual-check --staff-id ID"), "{help}");
    }

    #[test]
    fn the_log_format_is_text_or_json_for_every_command() {
        let cli = Cli::try_parse_from(["reader-agent", "readers", "--log-format", "json"]).unwrap();
        assert_eq!(cli.log_format, cli::LogFormat::Json);
        assert!(Cli::try_parse_from(["reader-agent", "--log-format", "xml", "readers"]).is_err());
    }
}
