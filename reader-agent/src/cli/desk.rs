//! The desk functions without a card: `numbers`, `medications`, `checkups`, `batch`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use onshi_proto::v1::confirmation_client::ConfirmationClient;
use onshi_reader_agent::desk::{self, ClinicalKind};
use tonic::transport::Channel;

use super::{load_config, print_outcome};
use crate::{DeskArgs, PatientArgs};

/// Connects as the configured terminal and runs a desk function; returns its exit code.
pub fn desk_run<F, Fut>(desk: &DeskArgs, f: F) -> ExitCode
where
    F: FnOnce(ConfirmationClient<Channel>) -> Fut,
    Fut: std::future::Future<Output = u8>,
{
    let config = match load_config(&desk.config) {
        Ok(c) => c,
        Err(code) => return code,
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

pub fn numbers(
    desk: &DeskArgs,
    patient: &PatientArgs,
    as_of: Option<String>,
    care: (i32, bool),
    json: bool,
) -> ExitCode {
    let mut numbers = patient.numbers();
    numbers.as_of_date = as_of.unwrap_or_default();
    let mut query = numbers.to_proto();
    desk::with_care(std::slice::from_mut(&mut query), care);
    desk_run(desk, |mut c| async move {
        let outcome = desk::confirm_query(&mut c, query).await;
        print_outcome(&outcome, json);
        outcome.exit_code()
    })
}

/// `institutions`: ListInstitutions, printed as CSV or JSON.
pub fn institutions(desk: &DeskArgs, json: bool) -> ExitCode {
    desk_run(desk, |mut c| async move {
        let list = match c
            .list_institutions(onshi_proto::v1::ListInstitutionsRequest {})
            .await
        {
            Ok(r) => r.into_inner().institutions,
            Err(status) => {
                let outcome = onshi_reader_agent::confirm::refused_by_service(&status);
                print_outcome(&outcome, json);
                return outcome.exit_code();
            }
        };
        let printed = if json {
            let rows: Vec<serde_json::Value> = list
                .iter()
                .map(|i| {
                    serde_json::json!({
                        "institution_code": i.institution_code,
                        "name": i.name,
                        "prefecture": i.prefecture,
                        "prefecture_name": i.prefecture_name,
                        "started_on": i.started_on,
                        "terminals_in_operation": i.terminals_in_operation,
                    })
                })
                .collect();
            serde_json::to_string_pretty(&rows)
                .map(|text| println!("{text}"))
                .map_err(|e| e.to_string())
        } else {
            write_institutions_csv(&list, std::io::stdout().lock()).map_err(|e| e.to_string())
        };
        match printed {
            Ok(()) => {
                eprintln!("reader-agent: {} institution(s)", list.len());
                0
            }
            Err(e) => {
                eprintln!("reader-agent: cannot print the list: {e}");
                3
            }
        }
    })
}

fn write_institutions_csv(
    list: &[onshi_proto::v1::Institution],
    out: impl std::io::Write,
) -> Result<(), csv::Error> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record([
        "institution_code",
        "name",
        "prefecture",
        "prefecture_name",
        "started_on",
        "terminals_in_operation",
    ])?;
    for i in list {
        w.write_record([
            i.institution_code.as_str(),
            &i.name,
            &i.prefecture,
            &i.prefecture_name,
            &i.started_on,
            &i.terminals_in_operation.to_string(),
        ])?;
    }
    w.flush()?;
    Ok(())
}

pub fn desk_clinical(
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

pub fn desk_batch(
    desk: &DeskArgs,
    csv: Option<PathBuf>,
    reception: Option<String>,
    stream: bool,
    (wait, out): (u64, Option<PathBuf>),
    as_of: Option<String>,
    care: (i32, bool),
) -> ExitCode {
    let queries = match &csv {
        Some(path) => match desk::read_csv(path) {
            Ok(mut q) => {
                desk::with_as_of(&mut q, as_of.as_deref().unwrap_or_default());
                desk::with_care(&mut q, care);
                Some(q)
            }
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
                    let line = format!(
                        "受付番号 reception number: {} ({} queries)",
                        r.reception_number, r.total
                    );
                    // When the answers' CSV follows on stdout, stdout holds that CSV only.
                    if wait > 0 && out.is_none() {
                        eprintln!("{line}");
                    } else {
                        println!("{line}");
                    }
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
        // With --reception, `--wait 0` fetches once and does not wait.
        let wait = Duration::from_secs(wait);
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
