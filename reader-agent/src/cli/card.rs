//! The commands that use the card in the reader: `confirm`, `register`, `change-pin`,
//! `read-certificate`, `readers`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use onshi_proto::binding::ConsentBits;
use onshi_reader_agent::by_reader::{self, ByReaderOptions, ReaderMode};
use onshi_reader_agent::confirm::{self, Action, ConfirmOptions, PinSource};
use onshi_reader_agent::pin_input::{StdinLines, TtyPrompt};
use onshi_reader_agent::report::Outcome;

use super::{
    card_timeout_arg, current_thread_runtime, load_config, open_trace, print_outcome,
    two_thread_runtime,
};
use crate::{Consent, PatternArg};

#[allow(clippy::too_many_arguments)]
pub fn run_confirm(
    config: PathBuf,
    service: Option<String>,
    reader: Option<String>,
    (wait, card_timeout): (u64, f64),
    (pin_stdin, mode): (bool, Option<ReaderMode>),
    (action, consent, prescription): (Action, Vec<Consent>, onshi_proto::v1::PrescriptionIssue),
    (treatment, mobile): (onshi_proto::v1::MedicalTreatment, bool),
    json: bool,
    trace: Option<String>,
    phone: Option<PathBuf>,
) -> ExitCode {
    let config = match load_config(&config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    // Configuration errors in the TLS material or the address exit 2 like the others, not 3
    // (a connection failure) once the agent is already talking to the card.
    if let Err(e) = onshi_reader_agent::client::endpoint(&config, service.as_deref()) {
        eprintln!("reader-agent: {e}");
        return ExitCode::from(2);
    }
    // Face and visual-check modes ask for no PIN; nor does a phone that needs none (an iPhone
    // verifies on the phone): asked only if needed.
    if mode.is_none() && phone.is_none() && !pin_stdin && !std::io::stdin().is_terminal() {
        eprintln!("reader-agent: stdin is not a terminal: use --pin-stdin to read the PIN from it");
        return ExitCode::from(2);
    }
    if mobile
        && !matches!(
            treatment,
            onshi_proto::v1::MedicalTreatment::HomeVisit
                | onshi_proto::v1::MedicalTreatment::Online
        )
    {
        eprintln!(
            "reader-agent: --mobile (居宅同意取得型 first visit) needs --treatment home-visit or online"
        );
        return ExitCode::from(2);
    }
    let has = |c: Consent| consent.contains(&c);
    let consents = if has(Consent::All) {
        if consent.len() > 1 {
            eprintln!(
                "reader-agent: --consent all (包括同意) gives every kind already: give it alone"
            );
            return ExitCode::from(2);
        }
        ConsentBits::comprehensive()
    } else {
        ConsentBits::new(
            has(Consent::Medication),
            has(Consent::Checkup),
            has(Consent::Clinical),
            has(Consent::Surgery),
        )
    };
    let Some(card_timeout) = card_timeout_arg(card_timeout) else {
        return ExitCode::from(2);
    };
    if let Some(mode) = mode {
        if trace.is_some() {
            eprintln!("reader-agent: --trace is for PIN mode only");
            return ExitCode::from(2);
        }
        let opts = ByReaderOptions {
            reader,
            wait: Duration::from_secs(wait),
            card_timeout,
            service_override: service,
            mode,
            action,
            consents,
            prescription,
            treatment,
            mobile,
        };
        let Some(runtime) = two_thread_runtime() else {
            return ExitCode::from(3);
        };
        let progress = |line: &str| eprintln!("{line}");
        let outcome = runtime.block_on(by_reader::run(&config, &opts, &progress));
        runtime.shutdown_timeout(Duration::from_millis(100));
        print_outcome(&outcome, json);
        return ExitCode::from(outcome.exit_code());
    }
    let trace = match open_trace(trace.as_deref()) {
        Ok(t) => t,
        Err(code) => return code,
    };
    // A malformed PIN line on stdin is a usage error (exit 2), not a card failure (3).
    let mut malformed_pin = None;
    let pins: Box<dyn PinSource> = if pin_stdin {
        let lines = StdinLines::default();
        malformed_pin = Some(lines.usage_error());
        Box::new(lines)
    } else {
        Box::new(TtyPrompt)
    };
    let opts = ConfirmOptions {
        reader,
        wait: Duration::from_secs(wait),
        card_timeout,
        consents,
        prescription,
        service_override: service,
        action,
        treatment,
        mobile,
    };
    let Some(runtime) = two_thread_runtime() else {
        return ExitCode::from(3);
    };
    let progress = |line: &str| eprintln!("{line}");
    let outcome: Outcome = match &phone {
        // A smartphone マイナ保険証 through the simulator channel (docs/smartphone.md).
        Some(socket) => runtime.block_on(onshi_reader_agent::phone::run(
            &config,
            opts.service_override.as_deref(),
            socket,
            opts.consents,
            opts.prescription,
            pins,
            &progress,
        )),
        None => runtime.block_on(confirm::run(&config, &opts, pins, trace, &progress)),
    };
    // A card thread stuck in a PC/SC call (a mute card) must not keep the process alive.
    runtime.shutdown_timeout(Duration::from_millis(100));
    print_outcome(&outcome, json);
    if malformed_pin.is_some_and(|m| m.load(std::sync::atomic::Ordering::SeqCst)) {
        return ExitCode::from(2);
    }
    ExitCode::from(outcome.exit_code())
}

pub fn run_change_pin(
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
        Box::new(StdinLines::default())
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

pub fn read_certificate(
    reader: Option<String>,
    wait: u64,
    pattern: PatternArg,
    out: Option<PathBuf>,
    card_timeout: f64,
) -> ExitCode {
    use onshi_jpki::flows::{self, FlowError, ReadPattern};
    use onshi_jpki::{commands, constants, CardChannel};
    use onshi_reader_agent::pcsc_card::worker::CardHandle;
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
    let Some(runtime) = current_thread_runtime() else {
        return ExitCode::from(3);
    };
    let result = runtime.block_on(async move {
        let waiting = || eprintln!("カードを置いてください (place the card on the reader)");
        let (card, _) = CardHandle::wait_for_card(reader, wait, card_timeout, None, waiting)
            .await
            .map_err(|e| e.to_string())?;
        let read = card
            .transaction(move |ch| {
                Ok((|| {
                    flows::select_jpki(ch).map_err(|e| e.to_string())?;
                    if !matches!(pattern, ReadPattern::BySfi { .. }) {
                        let sw = ch
                            .transmit(&commands::select_ef(constants::EF_USER_AUTH_CERT))
                            .map_err(|e| e.to_string())?
                            .sw;
                        if !sw.is_success() {
                            return Err(format!("SELECT EF 000A answered {sw}"));
                        }
                    }
                    flows::read_ef_by_chunks(ch, pattern).map_err(|e| e.to_string())
                })())
            })
            .await;
        match read {
            Ok(Ok(read)) => read,
            Ok(Err(FlowError::Channel(e))) => Err(e.to_string()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!(
                "the card did not answer within {} s",
                card_timeout.as_secs_f64()
            )),
        }
    });
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
        None => print!("{}", certificate_pem(&der)),
    }
    ExitCode::SUCCESS
}

/// The certificate as PEM, with `\n` line ends.
fn certificate_pem(der: &[u8]) -> String {
    let pem = pem::Pem::new("CERTIFICATE", der);
    pem::encode_config(
        &pem,
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

pub fn list_readers() -> ExitCode {
    use onshi_reader_agent::pcsc_card::{self, CardIoError};
    let readers = match pcsc_card::readers() {
        Ok(r) => r,
        Err(CardIoError::Pcsc(e)) => {
            eprintln!("reader-agent: {e}");
            return ExitCode::from(3);
        }
        Err(e) => {
            eprintln!("reader-agent: {e}");
            return ExitCode::from(3);
        }
    };
    if readers.is_empty() {
        println!("no readers");
    }
    for (name, present) in readers {
        println!("{name}\t{}", if present { "card present" } else { "empty" });
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_is_printed_as_pem_in_64_columns() {
        let der: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let text = certificate_pem(&der);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "-----BEGIN CERTIFICATE-----");
        assert_eq!(lines[lines.len() - 1], "-----END CERTIFICATE-----");
        assert!(text.ends_with("-----END CERTIFICATE-----\n"));
        assert!(!text.contains('\r'));
        let body = &lines[1..lines.len() - 1];
        assert!(body[..body.len() - 1].iter().all(|l| l.len() == 64));
        assert!(body[body.len() - 1].len() <= 64);
        // 1,000 bytes are 1,336 base64 characters (with padding).
        assert_eq!(body.iter().map(|l| l.len()).sum::<usize>(), 1336);
        let parsed = pem::parse(&text).expect("valid PEM");
        assert_eq!(parsed.tag(), "CERTIFICATE");
        assert_eq!(parsed.contents(), &der[..]);
    }
}
