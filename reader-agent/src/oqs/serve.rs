//! `reader-agent oqs`: serves one terminal's folders. `req/` is watched through inotify (the
//! `notify` crate); each request is read when complete, answered through the confirmation
//! service, and its answer written to `res/` exactly once ([`super::folders`]).
//!
//! A request file is read when its writer closes it or renames it into `req/`; one still
//! open is read once its size and time have not changed for the settle time. A document that
//! ends early is waited for while it is still changing, and answered as malformed once it has
//! settled.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use notify::{EventKind, RecursiveMode, Watcher};
use onshi_proto::v1::confirmation_client::ConfirmationClient;
use onshi_proto::v1::{self as pb, ResultCode};
use tonic::transport::Channel;

use super::codec::{self, Charset, CodecError, Element};
use super::folders::{Folders, Recovered};
use super::message::{self as msg, AnswerContext, ErrorCode, Failure, Kind, Request};
use crate::config::AgentConfig;

/// gRPC metadata carrying the request file's key: the service answers a repeated key from its
/// memory instead of confirming (and auditing) again (docs/oqs-files.md, "Exactly once").
pub const IDEMPOTENCY_METADATA: &str = "idempotency-key";

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub dir: PathBuf,
    /// A file still open for writing is read once unchanged for this long.
    pub settle: Duration,
    /// The answers' encoding when the request does not ask (CharacterCodeIdentifier).
    pub default_charset: Charset,
    /// MedicalInstitutionCode of the answers when the request carries none.
    pub medical_institution_code: String,
}

/// One answered request, for the log.
#[derive(Debug, Clone)]
pub struct Answered {
    pub request: String,
    pub answer: String,
    pub segment: String,
    pub error_code: Option<String>,
    pub replaced: usize,
    pub took: Duration,
}

/// The service side of answering: a client, reconnecting on demand.
#[derive(Debug, Clone)]
pub struct Service {
    client: ConfirmationClient<Channel>,
}

impl Service {
    pub fn new(config: &AgentConfig, service_override: Option<&str>) -> Result<Self, String> {
        let channel = crate::client::endpoint(config, service_override)?.connect_lazy();
        Ok(Service {
            client: ConfirmationClient::new(channel),
        })
    }

    fn request<T>(message: T, key: &str) -> tonic::Request<T> {
        let mut r = tonic::Request::new(message);
        if let Ok(v) = key.parse() {
            r.metadata_mut().insert(IDEMPOTENCY_METADATA, v);
        }
        r
    }
}

/// A failed call: refused with a code, or the service not reached.
fn failure_of(status: &tonic::Status) -> Failure {
    match crate::client::refusal_code(status) {
        Some(ResultCode::ServiceUnavailable) | None => Failure::new(
            ErrorCode::ServiceUnreachable,
            format!(
                "資格確認システムに接続できません（{}）",
                crate::client::describe_status(status)
            ),
        ),
        Some(code) => Failure::new(ErrorCode::Refused(code), msg::refusal_text(code)),
    }
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn context(
    header: &msg::RequestHeader,
    options: &ServeOptions,
    charset: Charset,
    reference: &'static str,
) -> AnswerContext {
    let now = now_unix();
    AnswerContext {
        executed_at: msg::jst_timestamp(now),
        confirmation_date: header
            .confirmation_date
            .clone()
            .unwrap_or_else(|| msg::jst_date(now)),
        medical_institution_code: if header.medical_institution_code.is_empty() {
            options.medical_institution_code.clone()
        } else {
            header.medical_institution_code.clone()
        },
        arbitrary_file_identifier: header.arbitrary_file_identifier.clone(),
        reference_classification: reference,
        charset,
    }
}

/// Answers one request file's bytes: always an answer (an error answer when it cannot be
/// carried out), never a panic. `Err(Incomplete)` only when the document ends early, so the
/// caller may wait for the rest.
pub async fn answer_bytes(
    service: &mut Service,
    options: &ServeOptions,
    folders: &Folders,
    name: &str,
    bytes: &[u8],
    key: &str,
) -> Result<(Element, Charset), CodecError> {
    let fallback = options.default_charset;
    let no_header = msg::RequestHeader::default();
    let fail_early = |f: Failure, charset: Charset| {
        let ctx = context(&no_header, options, charset, "2");
        (msg::failure_answer(&ctx, &f, None), charset)
    };
    let Some(kind) = Kind::of_file_name(name) else {
        return Ok(fail_early(
            Failure::new(
                ErrorCode::UnknownKind,
                format!(
                    "ファイル名 {name} は既知の要求（{}）ではありません",
                    Kind::ALL.map(Kind::request_prefix).join(", ")
                ),
            ),
            fallback,
        ));
    };
    let (root, _file_charset) = match codec::read(bytes) {
        Ok(r) => r,
        Err(CodecError::Incomplete) => return Err(CodecError::Incomplete),
        Err(e @ (CodecError::WrongEncoding { .. } | CodecError::UnsupportedEncoding(_))) => {
            return Ok(fail_early(
                Failure::new(ErrorCode::Encoding, e.to_string()),
                fallback,
            ))
        }
        Err(e @ CodecError::TooLarge { .. }) => {
            return Ok(fail_early(
                Failure::new(ErrorCode::TooLarge, e.to_string()),
                fallback,
            ))
        }
        Err(e) => {
            return Ok(fail_early(
                Failure::new(ErrorCode::Malformed, e.to_string()),
                fallback,
            ))
        }
    };
    let request = match msg::read_request(kind, &root) {
        Ok(r) => r,
        Err((f, header)) => {
            let charset = header.answer_charset.unwrap_or(fallback);
            let ctx = context(&header, options, charset, "2");
            return Ok((msg::failure_answer(&ctx, &f, None), charset));
        }
    };
    let header = request.header().clone();
    let charset = header.answer_charset.unwrap_or(fallback);
    let ctx = context(&header, options, charset, "2");
    let answer = match request {
        Request::Single { search, .. } => {
            let call = service
                .client
                .confirm_by_numbers(Service::request(
                    pb::ConfirmByNumbersRequest {
                        query: Some(search.to_query_as_of(header.confirmation_date.as_deref())),
                        claimed_visit_time: None,
                    },
                    key,
                ))
                .await;
            match call {
                Ok(r) => {
                    let result = r.into_inner();
                    let limit = search.limit_consent.then_some(ctx.executed_at.as_str());
                    msg::confirmation_answer(&ctx, &result, Some(&search), limit)
                }
                Err(s) => msg::failure_answer(&ctx, &failure_of(&s), Some(&search)),
            }
        }
        Request::Medications { search, period, .. } => {
            let patient = Some(search.to_query());
            let call = service
                .client
                .get_medications(Service::request(pb::ClinicalDataRequest { patient }, key))
                .await;
            match call {
                Ok(r) => {
                    let r = r.into_inner();
                    let rows: Vec<pb::Medication> = r
                        .medications
                        .into_iter()
                        .filter(|m| in_period(&m.dispensed_on, period.as_ref()))
                        .collect();
                    msg::medications_answer(&ctx, &search, &rows)
                }
                Err(s) => msg::failure_answer(&ctx, &failure_of(&s), Some(&search)),
            }
        }
        Request::Checkups { search, .. } => {
            let patient = Some(search.to_query());
            let call = service
                .client
                .get_checkups(Service::request(pb::ClinicalDataRequest { patient }, key))
                .await;
            match call {
                Ok(r) => {
                    let r = r.into_inner();
                    msg::checkups_answer(&ctx, &search, &r.checkups)
                }
                Err(s) => msg::failure_answer(&ctx, &failure_of(&s), Some(&search)),
            }
        }
        Request::BulkSubmit { searches, .. } => {
            let as_of = header.confirmation_date.as_deref();
            let queries: Vec<pb::NumbersQuery> =
                searches.iter().map(|s| s.to_query_as_of(as_of)).collect();
            let call = service
                .client
                .submit_batch(Service::request(pb::SubmitBatchRequest { queries }, key))
                .await;
            match call {
                Ok(r) => {
                    let r = r.into_inner();
                    let echoes: Vec<(bool, String)> = searches
                        .iter()
                        .map(|s| (s.limit_consent, s.arbitrary_identifier.clone()))
                        .collect();
                    if let Err(e) = folders.save_bulk(&r.reception_number, &echoes) {
                        tracing::warn!(
                            "cannot keep the bulk echoes of {}: {e}",
                            r.reception_number
                        );
                    }
                    let at = r.submitted_at.map_or(now_unix(), |t| t.seconds);
                    msg::bulk_submit_answer(&ctx, &r.reception_number, &msg::jst_timestamp(at))
                }
                Err(s) => msg::failure_answer(&ctx, &failure_of(&s), None),
            }
        }
        Request::BulkFetch {
            reception_number, ..
        } => match fetch_bulk(service, &reception_number).await {
            Ok(None) => msg::bulk_processing_answer(&ctx, &reception_number),
            Ok(Some(items)) => {
                let echoes = folders.load_bulk(&reception_number);
                let items: Vec<msg::BulkItem> = items
                    .into_iter()
                    .map(|i| {
                        let q = i.query.unwrap_or_default();
                        let (flag, id) = echoes
                            .get(i.ordinal as usize)
                            .cloned()
                            .unwrap_or((false, String::new()));
                        msg::BulkItem {
                            search: msg::SearchInfo {
                                insurer_number: q.insurer_number,
                                symbol: q.symbol,
                                number: q.number,
                                branch: q.branch,
                                birth_date: q.birth_date,
                                limit_consent: flag,
                                arbitrary_identifier: id,
                                treatment: match q.treatment {
                                    0 => String::new(),
                                    t => t.to_string(),
                                },
                                requery: q.requery,
                            },
                            result: i.result.unwrap_or_default(),
                        }
                    })
                    .collect();
                msg::bulk_result_answer(&ctx, &reception_number, &items)
            }
            Err(s) => msg::failure_answer(&ctx, &failure_of(&s), None),
        },
    };
    Ok((answer, charset))
}

/// Whether a YYYYMMDD date is in a StartDate..EndDate period (YYYYMM or YYYYMMDD each).
fn in_period(date: &str, period: Option<&(String, String)>) -> bool {
    let Some((start, end)) = period else {
        return true;
    };
    let from = if start.len() == 6 {
        format!("{start}01")
    } else {
        start.clone()
    };
    let to = if end.len() == 6 {
        format!("{end}31")
    } else {
        end.clone()
    };
    date >= from.as_str() && date <= to.as_str()
}

/// A batch's answers once done (`None` while 処理中).
async fn fetch_bulk(
    service: &mut Service,
    reception_number: &str,
) -> Result<Option<Vec<pb::BatchItemResult>>, tonic::Status> {
    let first = service
        .client
        .get_batch_result(pb::GetBatchResultRequest {
            reception_number: reception_number.to_owned(),
            from: 0,
            limit: 0,
        })
        .await?
        .into_inner();
    if first.status() != pb::BatchStatus::Done {
        return Ok(None);
    }
    let total = first.total as usize;
    let mut items = first.items;
    while items.len() < total {
        let page = service
            .client
            .get_batch_result(pb::GetBatchResultRequest {
                reception_number: reception_number.to_owned(),
                from: items.len() as u32,
                limit: 0,
            })
            .await?
            .into_inner();
        if page.items.is_empty() {
            break;
        }
        items.extend(page.items);
    }
    Ok(Some(items))
}

/// Events from the watcher: a path, and whether its writer is known to be done with it
/// (closed after writing, or renamed in).
type Seen = (PathBuf, bool);

/// Serves the folders until `shutdown` resolves. `log` receives one line per answer and per
/// notable event.
pub async fn run(
    mut service: Service,
    options: ServeOptions,
    shutdown: impl std::future::Future<Output = ()>,
    log: &(dyn Fn(&str) + Sync),
) -> Result<(), String> {
    let folders = Folders::open(&options.dir).map_err(|e| {
        format!(
            "cannot create the folders under {}: {e}",
            options.dir.display()
        )
    })?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Seen>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        let complete = matches!(
            event.kind,
            EventKind::Access(notify::event::AccessKind::Close(
                notify::event::AccessMode::Write
            )) | EventKind::Modify(notify::event::ModifyKind::Name(
                notify::event::RenameMode::To | notify::event::RenameMode::Any
            ))
        );
        let relevant =
            complete || matches!(event.kind, EventKind::Create(_) | EventKind::Modify(_));
        if relevant {
            for p in event.paths {
                let _ = tx.send((p, complete));
            }
        }
    })
    .map_err(|e| format!("cannot watch {}: {e}", folders.req.display()))?;
    watcher
        .watch(&folders.req, RecursiveMode::NonRecursive)
        .map_err(|e| format!("cannot watch {}: {e}", folders.req.display()))?;
    let swept = folders
        .sweep_temporaries()
        .map_err(|e| format!("cannot clean {}: {e}", folders.res.display()))?;
    if swept > 0 {
        log(&format!(
            "oqs: removed {swept} unfinished temporary answer(s)"
        ));
    }
    // Requests left by a crash or written while the agent was stopped: due now (a file still
    // being written is waited for like any other).
    let mut due: BTreeMap<PathBuf, Instant> = BTreeMap::new();
    let mut waiting = 0;
    for entry in std::fs::read_dir(&folders.req)
        .map_err(|e| format!("cannot read {}: {e}", folders.req.display()))?
        .flatten()
    {
        due.insert(entry.path(), Instant::now());
        waiting += 1;
    }
    log(&format!(
        "oqs: serving {} (req/ → res/, face/; {waiting} request(s) waiting)",
        folders.root.display()
    ));
    tokio::pin!(shutdown);
    loop {
        let next = due.values().min().copied();
        let sleep = async {
            match next {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = &mut shutdown => break,
            seen = rx.recv() => {
                let Some((path, complete)) = seen else { break };
                if path.parent() != Some(folders.req.as_path()) {
                    continue;
                }
                let at = if complete { Instant::now() } else { Instant::now() + options.settle };
                due.insert(path, at);
            }
            _ = sleep => {
                let now = Instant::now();
                let ready: Vec<PathBuf> = due
                    .iter()
                    .filter(|(_, at)| **at <= now)
                    .map(|(p, _)| p.clone())
                    .collect();
                for path in ready {
                    due.remove(&path);
                    match serve_one(&mut service, &options, &folders, &path).await {
                        Ok(Some(answered)) => log(&describe(&answered)),
                        Ok(None) => {}
                        Err(Wait) => {
                            due.insert(path, Instant::now() + options.settle);
                        }
                    }
                }
            }
        }
    }
    drop(watcher);
    log("oqs: stopped");
    Ok(())
}

fn describe(a: &Answered) -> String {
    let mut s = format!(
        "oqs: {} → res/{} SegmentOfResult {}",
        a.request, a.answer, a.segment
    );
    if let Some(c) = &a.error_code {
        s.push_str(&format!(" ErrorCode {c}"));
    }
    if a.replaced > 0 {
        s.push_str(&format!(
            " ({} character(s) Shift_JIS cannot hold written as 〓)",
            a.replaced
        ));
    }
    s.push_str(&format!(" in {:.1} ms", a.took.as_secs_f64() * 1000.0));
    s
}

/// The document is not complete yet and still changing: look again later.
#[derive(Debug)]
struct Wait;

/// Answers one file of `req/` if it is a complete request; `Ok(None)` when there was nothing
/// to do (gone, not a request, answered before a crash).
async fn serve_one(
    service: &mut Service,
    options: &ServeOptions,
    folders: &Folders,
    path: &Path,
) -> Result<Option<Answered>, Wait> {
    let started = Instant::now();
    let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
        return Ok(None);
    };
    if !msg::is_request_file_name(&name) {
        return Ok(None);
    }
    let meta = match std::fs::metadata(path) {
        Ok(m) if m.is_file() => m,
        _ => return Ok(None),
    };
    let recently_changed = meta
        .modified()
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .is_none_or(|age| age < options.settle);
    let bytes = match read_bounded(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            tracing::warn!("cannot read {}: {e}", path.display());
            return Err(Wait);
        }
    };
    let key = Folders::key(&name, &bytes);
    match folders.recover(&name, &key) {
        Ok(Recovered::Finished) => {
            tracing::info!("{name}: its answer was written before a restart; retired");
            return Ok(None);
        }
        Ok(Recovered::Unanswered) => {}
        Err(e) => {
            tracing::warn!("cannot recover {name}: {e}");
            return Err(Wait);
        }
    }
    let answer_name = msg::answer_file_name(&name);
    let (element, charset) =
        match answer_bytes(service, options, folders, &name, &bytes, &key).await {
            Ok(a) => a,
            Err(_incomplete) if recently_changed => return Err(Wait),
            Err(e) => {
                let ctx = context(
                    &msg::RequestHeader::default(),
                    options,
                    options.default_charset,
                    "2",
                );
                let f = Failure::new(ErrorCode::Malformed, e.to_string());
                (msg::failure_answer(&ctx, &f, None), options.default_charset)
            }
        };
    let encoded = codec::write(&element, charset);
    if let Err(e) = folders.answer(&name, &key, &answer_name, &encoded.bytes) {
        tracing::warn!("cannot write the answer to {name}: {e}");
        return Err(Wait);
    }
    let header = element.child("MessageHeader");
    Ok(Some(Answered {
        request: name,
        answer: answer_name,
        segment: header
            .and_then(|h| h.text_of("SegmentOfResult"))
            .unwrap_or("")
            .to_owned(),
        error_code: header
            .and_then(|h| h.text_of("ErrorCode"))
            .map(str::to_owned),
        replaced: encoded.replaced,
        took: started.elapsed(),
    }))
}

/// Reads a file, refusing more than the codec's limit (plus one byte, so it can say so).
fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut buf = Vec::new();
    std::fs::File::open(path)?
        .take(codec::MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods() {
        let p = ("202501".to_owned(), "202502".to_owned());
        assert!(in_period("20250131", Some(&p)));
        assert!(in_period("20250228", Some(&p)));
        assert!(!in_period("20250301", Some(&p)));
        assert!(in_period("19000101", None));
    }
}
